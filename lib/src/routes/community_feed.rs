//! `GET /api/community/media` (public: no identity).

use crate::error::AppError;
use crate::http::{json, page_limit, query, serve};
use crate::service::feed::community_feed;
use crate::App;
use lambda_http::{Body, Request, Response};

const ROUTE: &str = "community-feed";

/// Handles one request.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    serve(ROUTE, &req, feed(app, &req)).await
}

async fn feed(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let limit = page_limit(req)?;
    let body = community_feed(app, query(req, "tag"), limit as usize, query(req, "cursor")).await?;
    Ok(json(200, &body))
}
