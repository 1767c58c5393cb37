//! `POST /api/user/media/share`: share by storage path (`filePath` plus the share fields).

use crate::error::AppError;
use crate::http::{json, json_body, serve};
use crate::routes::share_media::shared_json;
use crate::service::share::{share_media_by_path, ShareRequest, INVALID_BODY};
use crate::{auth, App};
use lambda_http::{Body, Request, Response};

const ROUTE: &str = "share-media-by-path";

/// The body: the object's key and the share fields.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ByPath {
    file_path: String,
    #[serde(default = "yes")]
    share_to_community: bool,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    policy_agreed: bool,
}

fn yes() -> bool {
    true
}

/// Handles one request.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    serve(ROUTE, &req, share(app, &req)).await
}

async fn share(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let caller = auth::caller(req, app.config.local.as_ref())?;
    let body: ByPath = json_body(req, INVALID_BODY)?;
    let request = ShareRequest {
        share_to_community: body.share_to_community,
        tags: body.tags,
        policy_agreed: body.policy_agreed,
    };
    let shared = share_media_by_path(app, &caller, &body.file_path, &request).await?;
    tracing::info!(community = shared.community.is_some(), "shared by path");
    Ok(json(200, &shared_json(&shared)))
}
