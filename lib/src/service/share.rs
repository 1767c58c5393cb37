//! Sharing a user's media: a share code (a public link), and optionally one community copy with
//! tags (DESIGN invariants 3, 5, 6). Every refusal is decided before the first write; every write
//! is a conditional write or transaction that re-reads and decides again when what it read
//! changed, so concurrent shares and unshares from many tabs converge without locks.

use crate::domain::{
    now_millis, rfc3339_millis, sniff_mime, MediaId, MediaKind, MediaSource, UserId,
};
use crate::error::AppError;
use crate::service::media::new_media_item;
use crate::store::ids::counters;
use crate::store::items::{
    ActivityItem, CommunityMediaItem, CommunityStatus, CommunityTagItem, MediaItem, ShareCodeItem,
};
use crate::store::{keys, StoreError, Written};
use crate::App;
use serde_json::json;

/// 400: the body is not the documented object.
pub const INVALID_BODY: &str = "Invalid request body";
/// 400: the path id is not a positive JS-safe integer.
pub const INVALID_ID: &str = "Invalid media ID";
/// 404, for missing and foreign media alike.
pub const NOT_FOUND: &str = "Media not found";
/// 400 for upload images shared to the community without the policy confirmation.
pub const POLICY_REQUIRED: &str = "Policy confirmation is required for upload sharing";
/// 400 for upload images shared to the community without tags.
pub const TAG_REQUIRED: &str = "At least one tag is required for upload sharing";
/// 500 when no share code could be created.
pub const FAILED_LINK: &str = "Failed to create share link";
/// 500 for any other internal failure of a share.
pub const FAILED: &str = "Failed to share media";
/// 500 for an internal failure of an unshare.
pub const FAILED_UNSHARE: &str = "Failed to unshare media";
/// 400 for a by-path share whose path is not a well-formed key of the caller's.
pub const INVALID_PATH: &str = "Invalid file path";
/// 400 when the bytes are no format the community may serve (JPEG, PNG, WebP, GIF, video).
pub const NOT_PUBLISHABLE: &str = "This file type cannot be shared to the community";
/// Feature key of share activity entries.
pub const MEDIA_GALLERY: &str = "media_gallery";
/// Formats the community copy is watermarked in (the watermark function's input).
pub const WATERMARKABLE: [&str; 3] = ["image/jpeg", "image/png", "image/webp"];
/// Prefix of the public community objects (CloudFront serves only this).
pub const COMMUNITY_PREFIX: &str = "community/";
/// Private prefix the watermark function reads upload images from.
pub const STAGING_PREFIX: &str = "staging/";
/// Bytes read from an object to tell its format.
const SNIFF_BYTES: u64 = 64;
/// Rounds of read-decide-write before a share gives up (each lost round means another request
/// changed the same media meanwhile).
const ROUNDS: usize = 32;

/// The body of a share request (both share routes).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShareRequest {
    /// Also put a copy in the community feed.
    #[serde(default = "yes")]
    pub share_to_community: bool,
    /// Tag slugs for the community copy.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The user confirmed the community policy.
    #[serde(default)]
    pub policy_agreed: bool,
}

fn yes() -> bool {
    true
}

/// What a share answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    /// The media's share code.
    pub share_code: String,
    /// The community copy's id and public URL, when shared to the community.
    pub community: Option<(u64, String)>,
}

/// Shares the caller's media `id`.
pub async fn share_media(
    app: &App,
    caller: &UserId,
    id: MediaId,
    request: &ShareRequest,
) -> Result<Shared, AppError> {
    let (media, _) = app.store.media_and_marker(id).await.map_err(failed)?;
    let media = media
        .filter(|m| &m.owner_id == caller)
        .ok_or(AppError::NotFound(NOT_FOUND))?;
    share_owned(app, media, request).await
}

async fn share_owned(
    app: &App,
    media: MediaItem,
    request: &ShareRequest,
) -> Result<Shared, AppError> {
    // Every refusal first.
    let plan = if request.share_to_community {
        Some(plan_community(app, &media, request).await?)
    } else {
        None
    };
    // A DELETE may revoke the code while this share runs: the community copy is only ever
    // written for the code this request answers with (the media update conditions on it), and
    // a lost code starts the share again with a new one.
    let mut media = media;
    let mut answer = None;
    for _ in 0..ROUNDS {
        let share_code = ensure_share_code(app, &media).await?;
        let community = match &plan {
            Some(plan) => match ensure_community(app, media.media_id, plan, &share_code).await? {
                Some(record) => Some(record),
                None => {
                    media = reread_media(app, media.media_id).await?;
                    continue;
                }
            },
            None => {
                remove_community(app, media.media_id)
                    .await
                    .map_err(|e| AppError::internal(FAILED, e))?;
                let now = reread_media(app, media.media_id).await?;
                if now.share_code.as_deref() != Some(share_code.as_str()) {
                    media = now;
                    continue;
                }
                None
            }
        };
        answer = Some((share_code, community));
        break;
    }
    let (share_code, community) =
        answer.ok_or_else(|| AppError::internal(FAILED, "kept losing to concurrent changes"))?;
    let status = community.as_ref().map_or("none", |c| c.status_name());
    log_share(app, &media, &share_code, status).await;
    Ok(Shared {
        share_code,
        community: community.map(|c| (c.community_media_id, c.url)),
    })
}

/// Removes the caller's share entirely (code and community copy). Idempotent.
pub async fn unshare_media(app: &App, caller: &UserId, id: MediaId) -> Result<(), AppError> {
    let internal = |e: StoreError| AppError::internal(FAILED_UNSHARE, e);
    let (media, _) = app.store.media_and_marker(id).await.map_err(internal)?;
    let media = media
        .filter(|m| &m.owner_id == caller)
        .ok_or(AppError::NotFound(NOT_FOUND))?;
    let mut media = media;
    for _ in 0..ROUNDS {
        // A share may commit a community copy between these steps: the revoke then refuses (it
        // requires no copy) and the round starts again.
        remove_community(app, id)
            .await
            .map_err(|e| AppError::internal(FAILED_UNSHARE, e))?;
        let Some(code) = media.share_code.clone() else {
            match app.store.media_and_marker(id).await.map_err(internal)? {
                (Some(m), None) if m.share_code.is_none() && m.community_media_id.is_none() => {
                    return Ok(())
                }
                (Some(m), _) => {
                    media = m;
                    continue;
                }
                (None, _) => return Ok(()),
            }
        };
        match app
            .store
            .revoke_share_code(&media, &code)
            .await
            .map_err(internal)?
        {
            Written::Done => return Ok(()),
            Written::Stale => match app.store.media_and_marker(id).await.map_err(internal)? {
                (Some(m), _) => media = m,
                (None, _) => return Ok(()),
            },
        }
    }
    Err(AppError::internal(
        FAILED_UNSHARE,
        "kept losing to concurrent changes",
    ))
}

/// Shares the object at `file_path` in the caller's prefix, creating its media record (exactly
/// once) if it has none.
pub async fn share_media_by_path(
    app: &App,
    caller: &UserId,
    file_path: &str,
    request: &ShareRequest,
) -> Result<Shared, AppError> {
    if !is_own_path(caller, file_path) {
        return Err(AppError::BadRequest(INVALID_PATH));
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
            );
            if request.share_to_community {
                plan_community(app, &provisional, request).await?;
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
    let prefix = format!("{}/{caller}/", crate::config::USER_PREFIX);
    let Some(rest) = path.strip_prefix(&prefix) else {
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
    let mime = sniff_mime(&first).unwrap_or("application/octet-stream");
    let id = MediaId(
        app.store
            .ids()
            .next(counters::MEDIA)
            .await
            .map_err(failed)?,
    );
    let item = new_media_item(caller, file_path, id, MediaSource::Upload, mime, size);
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

async fn reread_media(app: &App, id: MediaId) -> Result<MediaItem, AppError> {
    app.store
        .media_and_marker(id)
        .await
        .map_err(failed)?
        .0
        .ok_or(AppError::NotFound(NOT_FOUND))
}

fn failed(e: impl std::fmt::Display) -> AppError {
    AppError::internal(FAILED, e)
}

/// What the community copy will be, decided (and refused) before any write.
struct CommunityPlan {
    media: MediaItem,
    tags: Vec<String>,
    mime: String,
    kind: MediaKind,
    /// Upload images go through the watermark function; everything else is copied as is.
    watermark: bool,
}

async fn plan_community(
    app: &App,
    media: &MediaItem,
    request: &ShareRequest,
) -> Result<CommunityPlan, AppError> {
    let source = MediaSource::parse(&media.source);
    // The format comes from the bytes, never from a name or a claimed type.
    let sniffed = app
        .blob
        .get_range(&app.config.user_media_bucket, &media.file_path, SNIFF_BYTES)
        .await
        .map_err(failed)?;
    let mime = sniff_mime(&sniffed)
        .ok_or(AppError::BadRequest(NOT_PUBLISHABLE))?
        .to_string();
    // Only what we can serve safely goes public: the watermarkable images, GIFs and videos (never
    // SVG, HTML or unknown bytes, whatever the source).
    let kind = MediaKind::from_mime(&mime)
        .filter(|k| *k != MediaKind::Image || WATERMARKABLE.contains(&mime.as_str()))
        .ok_or(AppError::BadRequest(NOT_PUBLISHABLE))?;
    let watermark = source == Some(MediaSource::Upload) && kind == MediaKind::Image;
    let tags = normalize_tags(&request.tags);
    if watermark && !request.policy_agreed {
        return Err(AppError::BadRequest(POLICY_REQUIRED));
    }
    if watermark && tags.is_empty() {
        return Err(AppError::BadRequest(TAG_REQUIRED));
    }
    // The count before the names: an answer naming unknown tags names at most this many.
    if tags.len() > app.config.max_tags {
        return Err(AppError::Invalid(format!(
            "At most {} tags are allowed",
            app.config.max_tags
        )));
    }
    if !tags.is_empty() {
        let canonical = app.store.tags().await.map_err(failed)?;
        let unknown: Vec<&str> = tags
            .iter()
            .filter(|t| !canonical.iter().any(|c| &c.slug == *t))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(AppError::Invalid(format!(
                "Unknown tags: {}",
                unknown.join(", ")
            )));
        }
    }
    Ok(CommunityPlan {
        media: media.clone(),
        tags,
        mime,
        kind,
        watermark,
    })
}

/// Trimmed, lower-cased, de-duplicated in first-seen order. Anything that is not a slug stays as
/// given (trimmed) so the "Unknown tags" answer names it. Linear: a body may hold 100,000 tags.
pub fn normalize_tags(raw: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    raw.iter()
        .map(|tag| tag.trim().to_lowercase())
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

/// The media's share code, created once (UUIDv4: 122 random bits) and kept ever after.
async fn ensure_share_code(app: &App, media: &MediaItem) -> Result<String, AppError> {
    let link_failed = |e: StoreError| AppError::internal(FAILED_LINK, e);
    let mut media = media.clone();
    for _ in 0..ROUNDS {
        if let Some(code) = &media.share_code {
            return Ok(code.clone());
        }
        let code = uuid::Uuid::new_v4().hyphenated().to_string();
        let item = ShareCodeItem {
            pk: keys::share(&code),
            sk: keys::SHARE.into(),
            share_code: code.clone(),
            media_id: media.media_id,
            owner_id: media.owner_id.clone(),
            created_at: rfc3339_millis(now_millis()),
        };
        match app
            .store
            .assign_share_code(&media, &item)
            .await
            .map_err(link_failed)?
        {
            Written::Done => return Ok(code),
            // Another request gave it a code first (or, once in 2^61, the code was taken).
            Written::Stale => {
                media = app
                    .store
                    .media_and_marker(media.media_id)
                    .await
                    .map_err(link_failed)?
                    .0
                    .ok_or(AppError::NotFound(NOT_FOUND))?;
            }
        }
    }
    Err(AppError::internal(
        FAILED_LINK,
        "kept losing to concurrent changes",
    ))
}

/// The one community copy of the media, with exactly `plan.tags`: created (object first, then
/// marker + record + tags in one transaction) or, if it exists, retagged atomically.
/// `None` when the media's share code is no longer `code` (revoked meanwhile).
async fn ensure_community(
    app: &App,
    media_id: MediaId,
    plan: &CommunityPlan,
    code: &str,
) -> Result<Option<CommunityMediaItem>, AppError> {
    for _ in 0..ROUNDS {
        let (media, marker) = app.store.media_and_marker(media_id).await.map_err(failed)?;
        let media = media.ok_or(AppError::NotFound(NOT_FOUND))?;
        if media.share_code.as_deref() != Some(code) {
            return Ok(None);
        }
        if let Some(marker) = marker {
            let record = app
                .store
                .community_media(marker.community_media_id)
                .await
                .map_err(failed)?;
            let Some(record) = record else {
                continue; // being removed right now
            };
            if record.status == CommunityStatus::Failed {
                // A copy that could not be published is replaced by a fresh one.
                remove_record(app, Some(&media), &record)
                    .await
                    .map_err(failed)?;
                continue;
            }
            let tags = tag_items(&record, &plan.tags);
            let retagged = CommunityMediaItem {
                tags: plan.tags.clone(),
                version: record.version + 1,
                ..record.clone()
            };
            match app
                .store
                .retag_community(&media, &record, &tags, code)
                .await
                .map_err(failed)?
            {
                Written::Done => return Ok(Some(retagged)),
                Written::Stale => continue,
            }
        }
        if let Some(created) = create_community(app, &media, plan, code).await? {
            return Ok(Some(created));
        }
    }
    Err(AppError::internal(
        FAILED,
        "kept losing to concurrent changes",
    ))
}

/// Copies the object to its new, unique key, then commits the records; `None` if another request
/// created the media's copy first (ours is deleted again, and the caller joins theirs).
async fn create_community(
    app: &App,
    media: &MediaItem,
    plan: &CommunityPlan,
    code: &str,
) -> Result<Option<CommunityMediaItem>, AppError> {
    let id = app
        .store
        .ids()
        .next(counters::COMMUNITY)
        .await
        .map_err(failed)?;
    let now = now_millis();
    let key = community_key(id, &plan.mime);
    let staging_key = plan.watermark.then(|| {
        format!(
            "{STAGING_PREFIX}{}",
            key.trim_start_matches(COMMUNITY_PREFIX)
        )
    });
    let status = if plan.watermark {
        CommunityStatus::Pending
    } else {
        CommunityStatus::Ready
    };
    let ready = status == CommunityStatus::Ready;
    let record = CommunityMediaItem {
        pk: keys::community(id),
        sk: keys::COMMUNITY.into(),
        community_media_id: id,
        media_id: media.media_id,
        owner_id: media.owner_id.clone(),
        status,
        bucket: app.config.general_bucket.clone(),
        url: format!("{}/{key}", app.config.public_base_url),
        key: key.clone(),
        staging_key: staging_key.clone(),
        kind: plan.kind,
        mime_type: plan.mime.clone(),
        tags: plan.tags.clone(),
        created_at: rfc3339_millis(now),
        created_at_ms: now,
        version: 1,
        gsi1pk: ready.then(|| keys::feed(id)),
        gsi1sk: ready.then(|| keys::feed_sort(now, id)),
    };
    let target = staging_key.as_deref().unwrap_or(&key);
    let general = &app.config.general_bucket;
    let copied = app
        .blob
        .copy(
            &app.config.user_media_bucket,
            &plan.media.file_path,
            general,
            target,
            Some(plan.media.size),
        )
        .await;
    if let Err(e) = copied {
        // A copy whose answer was lost may have landed: nothing will ever name our key.
        discard(app, target).await;
        return Err(failed(e));
    }
    let tags = tag_items(&record, &plan.tags);
    match app
        .store
        .create_community(media, &record, &tags, code)
        .await
    {
        Ok(Written::Done) => Ok(Some(record)),
        Ok(Written::Stale) => {
            // Nothing may point at our object: remove it before joining the other copy.
            discard(app, target).await;
            Ok(None)
        }
        // The answer may have been lost after the transaction committed: our record (the id is
        // ours alone) says which. Only an object no record can name is removed.
        Err(e) => match app.store.community_media(id).await {
            Ok(Some(_)) => Ok(Some(record)),
            Ok(None) => {
                discard(app, target).await;
                Err(failed(e))
            }
            Err(_) => Err(failed(e)),
        },
    }
}

/// Deletes the object of a community copy that was never committed (its key is unique to the
/// request that copied it).
async fn discard(app: &App, key: &str) {
    if let Err(e) = app.blob.delete(&app.config.general_bucket, key).await {
        tracing::error!(error = %e, %key, "could not delete the object of an uncommitted community copy");
    }
}

/// The tag items of `record` for `tags`, in its feed index when the record is ready.
fn tag_items(record: &CommunityMediaItem, tags: &[String]) -> Vec<CommunityTagItem> {
    let ready = record.status == CommunityStatus::Ready;
    let id = record.community_media_id;
    tags.iter()
        .map(|slug| CommunityTagItem {
            pk: record.pk.clone(),
            sk: keys::community_tag(slug),
            slug: slug.clone(),
            community_media_id: id,
            url: record.url.clone(),
            kind: record.kind,
            mime_type: record.mime_type.clone(),
            tags: tags.to_vec(),
            created_at: record.created_at.clone(),
            gsi1pk: ready.then(|| keys::tag_feed(slug, id)),
            gsi1sk: ready.then(|| keys::feed_sort(record.created_at_ms, id)),
        })
        .collect()
}

/// A unique name under a non-flat prefix (two levels from a hash of the id), so no single S3
/// prefix takes every community object.
fn community_key(id: u64, mime: &str) -> String {
    let h = keys::stable_hash(id.to_be_bytes());
    let unique = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{COMMUNITY_PREFIX}{:02x}/{:02x}/{id}-{}.{}",
        h >> 24,
        (h >> 16) & 0xff,
        &unique[..12],
        extension(mime)
    )
}

fn extension(mime: &str) -> &'static str {
    match mime {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "video/mp4" => "mp4",
        "video/webm" => "webm",
        "video/quicktime" => "mov",
        _ => "bin",
    }
}

/// Removes the media's community copy, if any: its objects, then its records in one transaction.
async fn remove_community(app: &App, media_id: MediaId) -> Result<(), StoreError> {
    for _ in 0..ROUNDS {
        let (media, marker) = app.store.media_and_marker(media_id).await?;
        let Some(marker) = marker else {
            if let Some(media) = media
                .as_ref()
                .filter(|m| m.share_to_community || m.community_media_id.is_some())
            {
                app.store.mark_not_in_community(media).await?;
            }
            return Ok(());
        };
        let Some(record) = app.store.community_media(marker.community_media_id).await? else {
            continue;
        };
        if remove_record(app, media.as_ref(), &record).await? == Written::Done {
            return Ok(());
        }
    }
    Err(StoreError::corrupt(
        "remove community copy",
        "kept losing to concurrent changes",
    ))
}

/// Deletes a copy's objects, then its records. In this order a failure leaves the records, so a
/// retry finds the keys again; the other order could leave a public object nothing names any
/// more, served for good. A watermark run publishing meanwhile changes the record's version, so
/// the removal is `Stale` and the caller reads, deletes and removes again.
async fn remove_record(
    app: &App,
    media: Option<&MediaItem>,
    record: &CommunityMediaItem,
) -> Result<Written, StoreError> {
    for key in std::iter::once(&record.key).chain(&record.staging_key) {
        app.blob
            .delete(&record.bucket, key)
            .await
            .map_err(|e| StoreError::new("delete community object", e))?;
    }
    app.store.remove_community(media, record).await
}

/// The first characters of a share code: enough to correlate, never enough to use.
pub fn code_hint(code: &str) -> String {
    format!("{}…", code.chars().take(8).collect::<String>())
}

async fn log_share(app: &App, media: &MediaItem, code: &str, status: &str) {
    let at = now_millis();
    let entry = ActivityItem {
        pk: keys::user(&media.owner_id),
        sk: keys::activity(at, &uuid::Uuid::new_v4().simple().to_string()),
        action: "media_shared".into(),
        feature: MEDIA_GALLERY.into(),
        details: json!({
            "mediaId": media.media_id,
            "shareCode": code_hint(code),
            "communityStatus": status,
        }),
        at: rfc3339_millis(at),
    };
    if let Err(e) = app.store.put_activity(&entry).await {
        // The share itself is done: a missing log line is not worth failing it for.
        tracing::warn!(error = %e, "could not log a share");
    }
}

impl CommunityMediaItem {
    fn status_name(&self) -> &'static str {
        match self.status {
            CommunityStatus::Pending => "pending",
            CommunityStatus::Ready => "ready",
            CommunityStatus::Failed => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_trimmed_lowercased_and_deduplicated() {
        let raw: Vec<String> = [" Brunette", "brunette", "SOLO ", "Bad Tag"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(normalize_tags(&raw), ["brunette", "solo", "bad tag"]);
    }

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

    #[test]
    fn community_keys_are_unique_and_spread() {
        let a = community_key(7, "image/png");
        let b = community_key(7, "image/png");
        assert_ne!(a, b);
        assert!(a.starts_with("community/") && a.ends_with(".png"));
        assert_eq!(a.matches('/').count(), 3);
    }
}
