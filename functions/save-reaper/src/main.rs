//! `save-reaper`: every minute (EventBridge schedule), finishes or rolls back (refunds) saves
//! whose copier's lease lapsed.

use joip::service::save_session::{reap, Deadline};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    joip::telemetry::init();
    let app = joip::App::from_env().await?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // The whole invocation is the budget: the schedule's next tick takes what is left.
        let deadline = Deadline::new(Some(event.context.deadline), u64::MAX / 2);
        let reaped = reap(app, deadline).await?;
        tracing::info!(?reaped, "reaper pass");
        Ok::<_, Error>(reaped)
    }))
    .await
}
