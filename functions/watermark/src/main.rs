//! `watermark`: invoked by Lambda's SQS event source with S3 notifications of new staging
//! objects; publishes each watermarked community copy. Only the messages whose processing failed
//! for a reason a retry may fix are reported back (batch item failures) and redelivered.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    joip::telemetry::init();
    let app = joip::App::from_env().await?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let failures = joip::service::watermark::handle_batch(app, &event.payload).await;
        let items: Vec<Value> = failures
            .into_iter()
            .map(|id| json!({ "itemIdentifier": id }))
            .collect();
        Ok::<_, Error>(json!({ "batchItemFailures": items }))
    }))
    .await
}
