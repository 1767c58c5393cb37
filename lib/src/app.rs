//! The dependencies every handler shares, built once per process.

use crate::blob::Blob;
use crate::cdn::Cdn;
use crate::config::{Config, ConfigError, ExtraRoots};
use crate::domain::Clock;
use crate::store::Store;
use aws_config::BehaviorVersion;

/// Config plus the clients built from it; cheap to clone.
#[derive(Clone, Debug)]
pub struct App {
    /// Settings.
    pub config: Config,
    /// The table.
    pub store: Store,
    /// The buckets.
    pub blob: Blob,
    /// The CDN in front of the community objects.
    pub cdn: Cdn,
    /// The time (the system's; tests set their own).
    pub clock: Clock,
}

/// The HTTP client every SDK config of ours uses: rustls with ring, the only TLS stack and
/// crypto provider linked (see the workspace Cargo.toml), trusting the platform's roots.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    https_client_trusting(None)
}

/// [`https_client`] trusting `extra` roots too. They are added to the platform's, never put in
/// their place: a deployed function given a CA by mistake still verifies AWS as before.
pub fn https_client_trusting(
    extra: Option<&ExtraRoots>,
) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls;
    let mut trust = tls::TrustStore::default().with_native_roots(true);
    if let Some(extra) = extra {
        trust = trust.with_pem_certificate(extra.pem());
    }
    let context = tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a TLS context of roots alone always builds");
    let client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(context)
        .build_https();
    // Init's connection probes wait for each other in it (see `crate::connections`).
    aws_smithy_runtime_api::client::http::SharedHttpClient::new(crate::connections::ProbeGated(
        client,
    ))
}

impl App {
    /// Reads the environment and builds the clients (once, in `main`).
    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client_trusting(config.extra_roots.as_ref()))
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(config.sdk_max_attempts),
            )
            .load()
            .await;
        Ok(Self::new(config, &sdk))
    }

    /// Builds the clients from an SDK config. S3 uses path-style addressing when an emulator
    /// endpoint is configured.
    pub fn new(config: Config, sdk: &aws_config::SdkConfig) -> Self {
        let db = aws_sdk_dynamodb::Client::new(sdk);
        let s3 = aws_sdk_s3::Client::from_conf(Self::s3_config(&config, sdk).build());
        Self::from_clients(config, sdk, db, s3)
    }

    /// The S3 client settings `new` uses, for callers that add to them (interceptors in tests).
    pub fn s3_config(config: &Config, sdk: &aws_config::SdkConfig) -> aws_sdk_s3::config::Builder {
        aws_sdk_s3::config::Builder::from(sdk).force_path_style(config.endpoint_url.is_some())
    }

    /// Assembles an App from clients built elsewhere from `sdk` (whose credentials presign).
    pub fn from_clients(
        config: Config,
        sdk: &aws_config::SdkConfig,
        db: aws_sdk_dynamodb::Client,
        s3: aws_sdk_s3::Client,
    ) -> Self {
        Self {
            store: Store::new(db, config.table.clone(), config.id_block),
            blob: Blob::new(s3, sdk, config.endpoint_url.clone()),
            cdn: Cdn::new(
                aws_sdk_cloudfront::Client::new(sdk),
                config.cdn_distribution_id.clone(),
            ),
            config,
            clock: Clock::system(),
        }
    }
}
