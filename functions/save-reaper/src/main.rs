//! `save-reaper`: every minute (EventBridge schedule), finishes or rolls back (refunds) saves
//! whose copier's lease lapsed, and finishes the removals of public objects (delete, CDN
//! invalidation) that their removers left.

use joip::service::save_session::{reap, Deadline};
use joip::service::unpublish::{sweep, SWEEP_AFTER_MS};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    joip::telemetry::init();
    let app = joip::App::from_env().await?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // The whole invocation is the budget: the schedule's next tick takes what is left.
        let deadline = Deadline::new(Some(event.context.deadline), u64::MAX / 2);
        let swept = sweep(app, SWEEP_AFTER_MS).await?;
        let reaped = reap(app, deadline).await?;
        tracing::info!(?reaped, ?swept, "reaper pass");
        Ok::<_, Error>(json!({ "saves": reaped, "unpublish": swept }))
    }))
    .await
}
