//! `POST /api/media/{id}/share`.

use joip::connections::Peer;
use lambda_http::{service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    joip::telemetry::init();
    let app = joip::App::from_env().await?;
    // What the first request calls at once, connected before it arrives.
    app.open_connections(&[Peer::Table(2), Peer::GeneralBucket, Peer::UserMediaBucket])
        .await;
    let app = &app;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(joip::routes::share_media::handle(app, req).await)
    }))
    .await
}
