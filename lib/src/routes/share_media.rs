//! `POST /api/media/{id}/share` and the answer both share routes give.

use crate::domain::{rfc3339_millis, MediaId};
use crate::error::AppError;
use crate::http::{json, json_body, path_id, serve, Field};
use crate::service::share::{share_media, ShareRequest, Shared, INVALID_BODY, INVALID_ID};
use crate::{auth, App};
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

const ROUTE: &str = "share-media";

/// Handles one request.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    serve(ROUTE, &req, share(app, &req)).await
}

async fn share(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let caller = auth::caller(req, app.config.local.as_ref())?;
    let id = MediaId(path_id(req, "id", INVALID_ID)?);
    let body: ShareRequest = json_body(req, INVALID_BODY)?;
    if body.file_path != Field::Absent {
        return Err(AppError::bad_request(INVALID_BODY)); // the by-path route's field
    }
    let shared = share_media(app, &caller, id, &body).await?;
    tracing::info!(media_id = %id, community = shared.community.is_some(), "shared");
    Ok(json(200, &shared_json(&shared)))
}

/// The documented 200 body: the link and its limits; `communityUrl` and `communityMediaId` only
/// for a community share.
pub fn shared_json(shared: &Shared) -> Value {
    let mut body = json!({
        "shareCode": shared.share_code,
        "shareUrl": format!("/shared/media/{}", shared.share_code),
        "linkExpiresAt": shared.link_expires_at_ms.map(rfc3339_millis),
        "maxViews": shared.max_views,
    });
    if let Some((id, url)) = &shared.community {
        body["communityUrl"] = json!(url);
        body["communityMediaId"] = json!(id);
    }
    body
}
