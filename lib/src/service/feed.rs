//! The community feed: ready community media, newest first, optionally of one tag, with signed
//! cursors.

use crate::domain::TagSlug;
use crate::error::AppError;
use crate::pagination;
use crate::store::items::FeedEntry;
use crate::App;
use serde_json::{json, Value};

/// 500 of the feed route.
pub const FEED_FAILED: &str = "Failed to fetch community media";
/// What the feed's cursors are for: their key is derived for this purpose alone.
pub const FEED_CURSOR_PURPOSE: &str = "community-feed";

/// One page of the community feed: ready records, newest first, optionally of one tag.
pub async fn community_feed(
    app: &App,
    tag: Option<&str>,
    limit: usize,
    cursor: Option<&str>,
) -> Result<Value, AppError> {
    let tag = tag
        .map(|t| TagSlug::parse(t).ok_or(AppError::bad_request("Invalid tag")))
        .transpose()?;
    let scope = format!("feed:{}", tag.as_ref().map_or("", |t| t.as_str()));
    let key = app
        .config
        .cursor_key(FEED_CURSOR_PURPOSE)
        .ok_or_else(|| AppError::internal(FEED_FAILED, "JOIP_CURSOR_SECRET is not set"))?;
    let after = cursor
        .map(|c| pagination::open(&key, &scope, c).ok_or(AppError::bad_request("Invalid cursor")))
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
        "type": e.kind,
        "mimeType": e.mime_type,
        "tags": e.tags,
        "createdAt": e.created_at,
    })
}
