//! `POST /api/community/media/{communityMediaId}/report`.

use crate::error::AppError;
use crate::http::{json, json_body, path_id, serve};
use crate::service::moderation::{report, ReportRequest, INVALID_BODY, INVALID_ID};
use crate::{auth, App};
use lambda_http::{Body, Request, Response};
use serde_json::json;

const ROUTE: &str = "report-community-media";

/// Handles one request.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    serve(ROUTE, &req, reported(app, &req)).await
}

async fn reported(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let caller = auth::caller(req, app.config.local.as_ref())?;
    let id = path_id(req, "communityMediaId", INVALID_ID)?;
    let body: ReportRequest = json_body(req, INVALID_BODY)?;
    report(app, &caller, id, &body).await?;
    Ok(json(200, &json!({ "success": true })))
}
