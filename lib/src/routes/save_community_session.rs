//! `POST /api/community/sessions/{id}/save`.

use crate::domain::SessionId;
use crate::error::AppError;
use crate::http::{json, path_id, serve};
use crate::service::save_session::{save_community_session, Deadline};
use crate::{auth, App};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

const ROUTE: &str = "save-community-session";

/// Handles one request.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    serve(ROUTE, &req, save(app, &req)).await
}

async fn save(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let caller = auth::caller(req, app.config.local.as_ref())?;
    let source = SessionId(path_id(req, "id", "Invalid session ID")?);
    let deadline = Deadline::new(
        req.lambda_context_ref().map(|c| c.deadline),
        app.config.request_budget_ms,
    );
    let saved = save_community_session(app, &caller, source, deadline).await?;
    tracing::info!(source = %source, session_id = %saved.session_id, reused = saved.reused, "saved");
    Ok(json(
        200,
        &json!({ "success": true, "sessionId": saved.session_id, "reused": saved.reused }),
    ))
}
