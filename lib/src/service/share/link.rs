//! Share links: one code per media (UUIDv4: 122 random bits), created once, kept across
//! re-shares, revoked by DELETE; resolved publicly to a short-lived presigned GET of the original.

use super::NOT_FOUND;
use crate::domain::{rfc3339_millis, MediaKind};
use crate::error::AppError;
use crate::service::rounds::{settle, Round, ROUNDS};
use crate::store::items::{MediaItem, ShareCodeItem};
use crate::store::{keys, StoreError, Written};
use crate::App;
use serde_json::{json, Value};
use std::time::Duration;

/// 500 when no share code could be created.
pub const FAILED_LINK: &str = "Failed to create share link";
/// 404 for unknown, malformed and revoked codes alike.
pub const LINK_NOT_FOUND: &str = "Shared media not found";
/// 500 of the resolve route.
pub const LINK_FAILED: &str = "Failed to fetch shared media";
/// A code no share ever has: malformed codes are looked up as this, so that they cost what an
/// unknown code costs and the two cannot be told apart by timing.
const NO_CODE: &str = "00000000-0000-0000-0000-000000000000";

/// The media's share code, created once and kept ever after.
pub async fn ensure(app: &App, media: &MediaItem) -> Result<String, AppError> {
    let link_failed = |e: StoreError| AppError::internal(FAILED_LINK, e);
    settle(
        "assign share code",
        ROUNDS,
        media.clone(),
        |media| async move {
            if let Some(code) = &media.share_code {
                return Ok(Round::Done(code.clone()));
            }
            let code = uuid::Uuid::new_v4().hyphenated().to_string();
            let item = ShareCodeItem {
                pk: keys::share(&code),
                sk: keys::SHARE.into(),
                share_code: code.clone(),
                media_id: media.media_id,
                owner_id: media.owner_id.clone(),
                created_at: rfc3339_millis(app.clock.now_millis()),
            };
            match app
                .store
                .assign_share_code(&media, &item)
                .await
                .map_err(link_failed)?
            {
                Written::Done => Ok(Round::Done(code)),
                // Another request gave it a code first (or, once in 2^61, the code was taken).
                Written::Stale => Ok(Round::Again(
                    app.store
                        .media_and_marker(media.media_id)
                        .await
                        .map_err(link_failed)?
                        .0
                        .ok_or(AppError::NotFound(NOT_FOUND))?,
                )),
            }
        },
    )
    .await?
    .map_err(|e| AppError::internal(FAILED_LINK, e))
}

/// The documented body of `GET /api/shared/media/{code}`: the original behind a live share code,
/// as a presigned GET valid for `JOIP_LINK_TTL_S`.
pub async fn resolve_shared_media(app: &App, raw_code: &str) -> Result<Value, AppError> {
    let failed = |e: StoreError| AppError::internal(LINK_FAILED, e);
    let code = canonical_code(raw_code);
    let found = app
        .store
        .share_code(code.as_deref().unwrap_or(NO_CODE))
        .await
        .map_err(failed)?
        .filter(|_| code.is_some())
        .ok_or(AppError::NotFound(LINK_NOT_FOUND))?;
    // Revoked (the media's code was removed or replaced) or the media deleted: gone.
    let (media, _) = app
        .store
        .media_and_marker(found.media_id)
        .await
        .map_err(failed)?;
    let media = media
        .filter(|m| m.share_code.as_deref() == Some(found.share_code.as_str()))
        .ok_or(AppError::NotFound(LINK_NOT_FOUND))?;
    let ttl = Duration::from_secs(app.config.link_ttl_s);
    let (url, until) = app
        .blob
        .presigned_get(&app.config.user_media_bucket, &media.file_path, ttl)
        .await
        .map_err(|e| AppError::internal(LINK_FAILED, e))?;
    // The URL's own expiry, never later than the credentials that signed it.
    let expires = until
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    tracing::info!(code = %code_hint(&found.share_code), media_id = %media.media_id, "link resolved");
    Ok(json!({
        "shareCode": found.share_code,
        "type": MediaKind::from_mime(&media.mime_type).unwrap_or(MediaKind::Image),
        "mimeType": media.mime_type,
        "size": media.size,
        "url": url,
        "expiresAt": rfc3339_millis(expires),
    }))
}

/// A share code as we issue them (a lowercase hyphenated UUID), or `None`.
fn canonical_code(raw: &str) -> Option<String> {
    let parsed = uuid::Uuid::try_parse(raw).ok()?;
    let canonical = parsed.hyphenated().to_string();
    (canonical == raw).then_some(canonical)
}

/// The first characters of a share code: enough to correlate, never enough to use.
pub fn code_hint(code: &str) -> String {
    format!("{}…", code.chars().take(8).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_codes_are_looked_up() {
        let code = "0b6a4d3e-2f1c-4c8b-9a7d-5e6f7a8b9c0d";
        assert_eq!(canonical_code(code).as_deref(), Some(code));
        assert_eq!(canonical_code(&code.to_uppercase()), None);
        assert_eq!(canonical_code(&code.replace('-', "")), None);
        assert_eq!(code_hint(code), "0b6a4d3e…");
    }
}
