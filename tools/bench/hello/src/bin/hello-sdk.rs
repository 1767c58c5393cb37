//! The same as `hello`, plus the SDK clients every function of ours builds at start (DynamoDB
//! and S3, the same features and retry setup): the baseline our functions' size and cold
//! start are compared with. Whatever a function costs above this is our code.

use aws_config::BehaviorVersion;
use lambda_http::{service_fn, Body, Error, Request, Response};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // The same HTTP client as ours (rustls on ring: see the workspace Cargo.toml), trusting the
    // platform's roots and, as ours does under the benchmark's TLS front, the PEM file named by
    // JOIP_EXTRA_CA_FILE: so that it is built and started alike.
    use aws_smithy_http_client::tls;
    let mut trust = tls::TrustStore::default().with_native_roots(true);
    if let Some(path) = std::env::var_os("JOIP_EXTRA_CA_FILE") {
        trust = trust.with_pem_certificate(std::fs::read(path)?);
    }
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(tls::TlsContext::builder().with_trust_store(trust).build()?)
        .build_https();
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3))
        .load()
        .await;
    let db = aws_sdk_dynamodb::Client::new(&sdk);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(std::env::var_os("AWS_ENDPOINT_URL").is_some())
            .build(),
    );
    let (db, s3) = (&db, &s3);
    lambda_http::run(service_fn(move |_req: Request| async move {
        // Keep the clients alive (and linked) as a function of ours does.
        let _ = (db.config(), s3.config());
        Ok::<_, Error>(Response::new(Body::from("{\"hello\":true}")))
    }))
    .await
}
