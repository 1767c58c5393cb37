//! `POST /api/community/sessions/{id}/save`.

use joip::connections::Peer;
use lambda_http::{service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    joip::telemetry::init();
    let app = joip::App::from_env().await?;
    // What the first request calls at once, connected before it arrives.
    app.open_connections(&[Peer::Table(3), Peer::GeneralBucket, Peer::UserMediaBucket])
        .await;
    let app = &app;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(joip::routes::save_community_session::handle(app, req).await)
    }))
    .await
}
