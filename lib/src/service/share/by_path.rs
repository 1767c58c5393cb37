//! Sharing an object by its key in the caller's prefix (`POST /api/user/media/share`): its media
//! record is created first, exactly once, if it has none; then it is shared as by id.

use super::community_copy::{self, SNIFF_BYTES};
use super::flow::share_media;
use super::{failed, ShareRequest, Shared, FAILED, NOT_FOUND};
use crate::blob::keys as object_keys;
use crate::domain::{sniff_mime, MediaId, MediaSource, UserId};
use crate::error::AppError;
use crate::service::media::new_media_item;
use crate::store::ids::counters;
use crate::store::Written;
use crate::App;

/// 400 for a by-path share whose path is not a well-formed key of the caller's.
pub const INVALID_PATH: &str = "Invalid file path";

/// Shares the object at `file_path` in the caller's prefix, creating its media record (exactly
/// once) if it has none.
pub async fn share_media_by_path(
    app: &App,
    caller: &UserId,
    file_path: &str,
    request: &ShareRequest,
) -> Result<Shared, AppError> {
    // Every refusal that needs no I/O first: a refused request records nothing.
    request.limits(app.clock.now_millis())?;
    if !is_own_path(caller, file_path) {
        return Err(AppError::bad_request(INVALID_PATH));
    }
    // The object must exist, whether or not it has a record yet.
    let info = app
        .blob
        .head(&app.config.user_media_bucket, file_path)
        .await
        .map_err(failed)?
        .ok_or(AppError::NotFound(NOT_FOUND))?;
    let known = app
        .store
        .media_id_by_path(file_path)
        .await
        .map_err(failed)?;
    let id = match known {
        Some(id) => id,
        None => {
            // Every refusal before the record is written: plan the share on the record it would
            // be (planning reads the object's first bytes, as recording does).
            let provisional = new_media_item(
                caller,
                file_path,
                MediaId(0),
                MediaSource::Upload,
                "",
                info.size,
                app.clock.now_millis(),
            );
            if request.share_to_community {
                community_copy::plan(app, &provisional, request).await?;
            }
            record_path(app, caller, file_path, info.size).await?
        }
    };
    share_media(app, caller, id, request).await
}

/// Whether `path` is a well-formed key under `users/{caller}/`: plain ASCII segments, none empty,
/// `.` or `..`; no backslash, percent-encoding, control character or look-alike; at most 1,024
/// bytes (S3's key limit).
pub fn is_own_path(caller: &UserId, path: &str) -> bool {
    let Some(rest) = path.strip_prefix(&object_keys::user_prefix(caller)) else {
        return false;
    };
    let char_ok = |b: u8| b.is_ascii_alphanumeric() || b"._-~()+,=@! ".contains(&b);
    path.len() <= 1024
        && !rest.is_empty()
        && rest.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment.bytes().all(char_ok)
                && !segment.starts_with(' ')
                && !segment.ends_with(' ')
        })
}

/// Creates the media record of an object the client uploaded straight to S3: size from HEAD,
/// type from the first bytes. Concurrent callers get one record.
async fn record_path(
    app: &App,
    caller: &UserId,
    file_path: &str,
    size: u64,
) -> Result<MediaId, AppError> {
    let bucket = &app.config.user_media_bucket;
    let first = app
        .blob
        .get_range(bucket, file_path, SNIFF_BYTES)
        .await
        .map_err(failed)?;
    let mime = sniff_mime(&first.bytes).unwrap_or("application/octet-stream");
    let id = MediaId(
        app.store
            .ids()
            .next(counters::MEDIA)
            .await
            .map_err(failed)?,
    );
    let item = new_media_item(
        caller,
        file_path,
        id,
        MediaSource::Upload,
        mime,
        size,
        app.clock.now_millis(),
    );
    match app
        .store
        .create_media_at_path(&item)
        .await
        .map_err(failed)?
    {
        Written::Done => Ok(id),
        Written::Stale => app
            .store
            .media_id_by_path(file_path)
            .await
            .map_err(failed)?
            .ok_or_else(|| AppError::internal(FAILED, "path record vanished")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_keys_of_the_caller_are_paths() {
        let me = UserId::parse("user_1").unwrap();
        assert!(is_own_path(&me, "users/user_1/uploads/a-b.jpg"));
        assert!(is_own_path(&me, "users/user_1/x (1).png"));
        for bad in [
            "users/user_1/",
            "users/user_2/a.jpg",
            "/users/user_1/a.jpg",
            "users/user_1//a.jpg",
            "users/user_1/../user_2/a.jpg",
            "users/user_1/./a.jpg",
            "users/user_1/%2e%2e/a.jpg",
            "users/user_1/a\\b.jpg",
            "users/user_1/a\u{0}.jpg",
            "users/user_1/a\n.jpg",
            "users/user_1/\u{ff0e}\u{ff0e}/a.jpg",
            "users/user_1/caf\u{e9}.jpg",
            "users/user_10/a.jpg",
        ] {
            assert!(!is_own_path(&me, bad), "{bad:?}");
        }
        assert!(!is_own_path(
            &me,
            &format!("users/user_1/{}", "a".repeat(1020))
        ));
    }
}
