//! Tracing subscriber: JSON lines in Lambda (CloudWatch), human-readable locally.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once. `RUST_LOG` overrides the default `info` level.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let local = matches!(std::env::var("JOIP_LOCAL").as_deref(), Ok("1" | "true"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // try_init: tests and tools may call this more than once.
    let _ = if local {
        builder.try_init()
    } else {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .without_time() // CloudWatch stamps every line
            .try_init()
    };
}
