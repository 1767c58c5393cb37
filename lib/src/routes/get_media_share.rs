//! `GET /api/media/{id}/share` (owner only).

use crate::domain::MediaId;
use crate::error::AppError;
use crate::http::{json, path_id, serve};
use crate::service::share::link::media_share;
use crate::service::share::INVALID_ID;
use crate::{auth, App};
use lambda_http::{Body, Request, Response};

const ROUTE: &str = "get-media-share";

/// Handles one request.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    serve(ROUTE, &req, state(app, &req)).await
}

async fn state(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let caller = auth::caller(req, app.config.local.as_ref())?;
    let id = MediaId(path_id(req, "id", INVALID_ID)?);
    Ok(json(200, &media_share(app, &caller, id).await?))
}
