//! Chaos per client: the emulator (tools/emulator.py) fails the requests that carry
//! `x-joip-chaos: <rate>` at that rate, with the faults AWS answers under load, applying nothing.
//! Other tests on the same emulator keep the global rate (0 unless `JOIP_EMULATOR_CHAOS` is set).

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use joip::App;
use std::time::Duration;

/// Sends `x-joip-chaos: {rate}` with every request (every attempt) of the client it is on.
#[derive(Clone, Debug)]
pub struct Chaos {
    pub rate: f64,
}

impl Intercept for Chaos {
    fn name(&self) -> &'static str {
        "Chaos"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert("x-joip-chaos", self.rate.to_string());
        Ok(())
    }
}

/// Retries for clients under chaos: every injected fault but TransactionConflict is retryable.
/// Short backoffs keep the tests quick (the SDK's default starts at 1 s).
pub fn chaos_retry_config() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(8)
        .with_initial_backoff(Duration::from_millis(20))
}

impl super::TestEnv {
    /// Another App on the same table and buckets whose DynamoDB and S3 requests run under chaos
    /// at `rate`, with generous retries.
    pub fn chaos_app(&self, rate: f64) -> App {
        let chaos = Chaos { rate };
        let db = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&self.sdk)
                .interceptor(chaos.clone())
                .retry_config(chaos_retry_config())
                .build(),
        );
        let s3 = aws_sdk_s3::Client::from_conf(
            App::s3_config(&self.app.config, &self.sdk)
                .interceptor(chaos)
                .retry_config(chaos_retry_config())
                .build(),
        );
        App::from_clients(self.app.config.clone(), &self.sdk, db, s3)
    }
}
