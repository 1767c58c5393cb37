//! `GET /api/community/media` (public: no identity).

use crate::config::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::error::AppError;
use crate::http::{json, query, serve};
use crate::service::community::community_feed;
use crate::App;
use lambda_http::{Body, Request, Response};

const ROUTE: &str = "community-feed";

/// Handles one request.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    serve(ROUTE, &req, feed(app, &req)).await
}

async fn feed(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let limit = match query(req, "limit") {
        None => DEFAULT_PAGE_SIZE,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or(AppError::BadRequest("Invalid limit"))?
            .min(MAX_PAGE_SIZE),
    };
    let body = community_feed(app, query(req, "tag"), limit as usize, query(req, "cursor")).await?;
    Ok(json(200, &body))
}
