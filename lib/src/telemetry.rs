//! Tracing subscriber: JSON lines in Lambda (CloudWatch), human-readable locally.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// Installs the global subscriber once. `RUST_LOG` overrides the default `info` level, in its
/// plain form (`warn`, `joip=debug,info`): per-target levels without `EnvFilter`'s span and
/// field directives, whose regex engine made every function's package about 0.5 MB larger.
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    let local = matches!(std::env::var("JOIP_LOCAL").as_deref(), Ok("1" | "true"));
    let fmt = tracing_subscriber::fmt::layer().with_target(false);
    // try_init: tests and tools may call this more than once.
    let _ = if local {
        tracing_subscriber::registry()
            .with(fmt)
            .with(filter)
            .try_init()
    } else {
        tracing_subscriber::registry()
            .with(
                fmt.json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .without_time(), // CloudWatch stamps every line
            )
            .with(filter)
            .try_init()
    };
}
