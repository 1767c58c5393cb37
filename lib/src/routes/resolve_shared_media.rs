//! `GET /api/shared/media/{code}` (public: no identity).

use crate::error::AppError;
use crate::http::{json, serve};
use crate::service::share::link::{resolve_shared_media, LINK_NOT_FOUND};
use crate::App;
use lambda_http::{Body, Request, RequestExt, Response};

const ROUTE: &str = "resolve-shared-media";

/// Handles one request.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    serve(ROUTE, &req, resolve(app, &req)).await
}

async fn resolve(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let code = req
        .path_parameters_ref()
        .and_then(|p| p.first("code"))
        .ok_or(AppError::NotFound(LINK_NOT_FOUND))?;
    let agent = req
        .headers()
        .get(lambda_http::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    Ok(json(200, &resolve_shared_media(app, code, agent).await?))
}
