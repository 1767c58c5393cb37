//! `watermark`: invoked by Lambda's SQS event source with S3 notifications of new staging
//! objects; publishes each watermarked community copy. Only the messages whose processing failed
//! for a reason a retry may fix are reported back (batch item failures) and redelivered.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    joip::telemetry::init();
    let app = joip::App::from_env().await?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(joip::service::publish::handle_batch(app, event.payload).await)
    }))
    .await
}
