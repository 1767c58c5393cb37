//! The public side of sharing: what a share link shows, and the community feed.

use crate::domain::{MediaKind, TagSlug};
use crate::error::AppError;
use crate::pagination;
use crate::service::share::code_hint;
use crate::store::items::FeedEntry;
use crate::App;
use serde_json::{json, Value};
use std::time::Duration;

/// 404 for unknown, malformed and revoked codes alike.
pub const LINK_NOT_FOUND: &str = "Shared media not found";
/// 500 of the resolve route.
pub const LINK_FAILED: &str = "Failed to fetch shared media";
/// 500 of the feed route.
pub const FEED_FAILED: &str = "Failed to fetch community media";
/// What the feed's cursors are for: their key is derived for this purpose alone.
pub const FEED_CURSOR_PURPOSE: &str = "community-feed";
/// A code no share ever has: malformed codes are looked up as this, so that they cost what an
/// unknown code costs and the two cannot be told apart by timing.
const NO_CODE: &str = "00000000-0000-0000-0000-000000000000";

/// The documented body of `GET /api/shared/media/{code}`: the original behind a live share code,
/// as a presigned GET valid for `JOIP_LINK_TTL_S`.
pub async fn resolve_shared_media(app: &App, raw_code: &str) -> Result<Value, AppError> {
    let failed = |e: &dyn std::fmt::Display| AppError::internal(LINK_FAILED, e.to_string());
    let code = canonical_code(raw_code);
    let found = app
        .store
        .share_code(code.as_deref().unwrap_or(NO_CODE))
        .await
        .map_err(|e| failed(&e))?
        .filter(|_| code.is_some())
        .ok_or(AppError::NotFound(LINK_NOT_FOUND))?;
    // Revoked (the media's code was removed or replaced) or the media deleted: gone.
    let (media, _) = app
        .store
        .media_and_marker(found.media_id)
        .await
        .map_err(|e| failed(&e))?;
    let media = media
        .filter(|m| m.share_code.as_deref() == Some(found.share_code.as_str()))
        .ok_or(AppError::NotFound(LINK_NOT_FOUND))?;
    let ttl = Duration::from_secs(app.config.link_ttl_s);
    let url = app
        .blob
        .presigned_get(&app.config.user_media_bucket, &media.file_path, ttl)
        .await
        .map_err(|e| failed(&e))?;
    let expires = crate::domain::now_millis() + ttl.as_millis() as i64;
    tracing::info!(code = %code_hint(&found.share_code), media_id = %media.media_id, "link resolved");
    Ok(json!({
        "shareCode": found.share_code,
        "type": kind_name(MediaKind::from_mime(&media.mime_type).unwrap_or(MediaKind::Image)),
        "mimeType": media.mime_type,
        "size": media.size,
        "url": url,
        "expiresAt": crate::domain::rfc3339_millis(expires),
    }))
}

/// A share code as we issue them (a lowercase hyphenated UUID), or `None`.
fn canonical_code(raw: &str) -> Option<String> {
    let parsed = uuid::Uuid::try_parse(raw).ok()?;
    let canonical = parsed.hyphenated().to_string();
    (canonical == raw).then_some(canonical)
}

/// The wire name of a media kind.
pub fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "image",
        MediaKind::Video => "video",
        MediaKind::Gif => "gif",
    }
}

/// One page of the community feed: ready records, newest first, optionally of one tag.
pub async fn community_feed(
    app: &App,
    tag: Option<&str>,
    limit: usize,
    cursor: Option<&str>,
) -> Result<Value, AppError> {
    let tag = tag
        .map(|t| TagSlug::parse(t).ok_or(AppError::BadRequest("Invalid tag")))
        .transpose()?;
    let scope = format!("feed:{}", tag.as_ref().map_or("", |t| t.as_str()));
    let key = app
        .config
        .cursor_key(FEED_CURSOR_PURPOSE)
        .ok_or_else(|| AppError::internal(FEED_FAILED, "JOIP_CURSOR_SECRET is not set"))?;
    let after = cursor
        .map(|c| pagination::open(&key, &scope, c).ok_or(AppError::BadRequest("Invalid cursor")))
        .transpose()?;
    let (entries, more) = app
        .store
        .community_feed(tag.as_ref().map(TagSlug::as_str), limit, after.as_deref())
        .await
        .map_err(|e| AppError::internal(FEED_FAILED, e))?;
    let next = more
        .then(|| entries.last())
        .flatten()
        .map(|last| pagination::seal(&key, &scope, &last.gsi1sk));
    let media: Vec<Value> = entries.iter().map(entry_json).collect();
    Ok(json!({ "media": media, "nextCursor": next }))
}

fn entry_json(e: &FeedEntry) -> Value {
    json!({
        "communityMediaId": e.community_media_id,
        "url": e.url,
        "type": kind_name(e.kind),
        "mimeType": e.mime_type,
        "tags": e.tags,
        "createdAt": e.created_at,
    })
}
