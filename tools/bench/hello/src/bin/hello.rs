//! A bare `lambda_http` function answering a constant: the floor of any HTTP Lambda in Rust.

use lambda_http::{service_fn, Body, Error, Request, Response};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_req: Request| async {
        Ok::<_, Error>(Response::new(Body::from("{\"hello\":true}")))
    }))
    .await
}
