//! `POST /api/user/media/share`: share by storage path (`filePath` plus the share fields).

use crate::error::AppError;
use crate::http::{json, json_body, serve, Field};
use crate::routes::share_media::shared_json;
use crate::service::share::{share_media_by_path, ShareRequest, INVALID_BODY};
use crate::{auth, App};
use lambda_http::{Body, Request, Response};

const ROUTE: &str = "share-media-by-path";

/// Handles one request.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    serve(ROUTE, &req, share(app, &req)).await
}

async fn share(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let caller = auth::caller(req, app.config.local.as_ref())?;
    let body: ShareRequest = json_body(req, INVALID_BODY)?;
    let Field::Value(file_path) = &body.file_path else {
        return Err(AppError::bad_request(INVALID_BODY));
    };
    let shared = share_media_by_path(app, &caller, file_path, &body).await?;
    tracing::info!(community = shared.community.is_some(), "shared by path");
    Ok(json(200, &shared_json(&shared)))
}
