//! `DELETE /api/media/{id}/share`.

use crate::domain::MediaId;
use crate::error::AppError;
use crate::http::{json, path_id, serve};
use crate::service::share::{unshare_media, INVALID_ID};
use crate::{auth, App};
use lambda_http::{Body, Request, Response};
use serde_json::json;

const ROUTE: &str = "unshare-media";

/// Handles one request.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    serve(ROUTE, &req, unshare(app, &req)).await
}

async fn unshare(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let caller = auth::caller(req, app.config.local.as_ref())?;
    let id = MediaId(path_id(req, "id", INVALID_ID)?);
    unshare_media(app, &caller, id).await?;
    tracing::info!(media_id = %id, "unshared");
    Ok(json(200, &json!({ "success": true })))
}
