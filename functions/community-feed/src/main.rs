//! `GET /api/community/media` (public).

use joip::connections::Peer;
use lambda_http::{service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    joip::telemetry::init();
    let app = joip::App::from_env().await?;
    // Fail at start, not on the first paged request.
    app.config
        .cursor_key(joip::service::feed::FEED_CURSOR_PURPOSE)
        .ok_or("JOIP_CURSOR_SECRET is not set")?;
    // What the first request calls at once, connected before it arrives.
    app.open_connections(&[Peer::Index(joip::store::keys::FEED_SHARDS as usize)])
        .await;
    let app = &app;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(joip::routes::community_feed::handle(app, req).await)
    }))
    .await
}
