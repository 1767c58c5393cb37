//! `GET /api/user/media`: the caller's media, newest first, cursor-paginated.

use crate::error::AppError;
use crate::http::{json, page_limit, query, serve};
use crate::store::items::MediaItem;
use crate::{auth, pagination, App};
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

/// What this route's cursors are for: their key is derived for this purpose alone.
pub const CURSOR_PURPOSE: &str = "user-media";
const ROUTE: &str = "list-user-media";
const FAILED: &str = "Failed to fetch media";

/// Handles one request.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    serve(ROUTE, &req, list(app, &req)).await
}

async fn list(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let caller = auth::caller(req, app.config.local.as_ref())?;
    let limit = page_limit(req)?;
    let key = app
        .config
        .cursor_key(CURSOR_PURPOSE)
        .ok_or_else(|| AppError::internal(FAILED, "JOIP_CURSOR_SECRET is not set"))?;
    let secret = &key[..];
    let after = query(req, "cursor")
        .map(|c| {
            pagination::open(secret, caller.as_str(), c)
                .ok_or(AppError::bad_request("Invalid cursor"))
        })
        .transpose()?;
    let page = app
        .store
        .media_by_owner(&caller, limit, after.as_deref())
        .await
        .map_err(|e| AppError::internal(FAILED, e))?;
    let media: Vec<Value> = page.items.iter().map(media_json).collect();
    let next = page
        .next
        .map(|sk| pagination::seal(secret, caller.as_str(), &sk));
    Ok(json(200, &json!({ "media": media, "nextCursor": next })))
}

fn media_json(m: &MediaItem) -> Value {
    json!({
        "id": m.media_id,
        "filePath": m.file_path,
        "source": m.source,
        "mimeType": m.mime_type,
        "size": m.size,
        "createdAt": m.created_at,
        "isShared": m.is_shared,
        "shareToCommunity": m.share_to_community,
        "shareCode": m.share_code,
    })
}
