//! Which stack the CLI talks to: the local emulator (default) or, with `--aws`, a deployed stack
//! whose resource names come from its CloudFormation outputs.

use anyhow::{bail, Context, Result};
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use joip::config::{local, Config};
use joip::App;

/// Where to connect.
pub struct Target {
    /// The same App the functions build.
    pub app: App,
    /// The SDK config (for the clients the functions do not need: SQS, CloudFormation).
    pub sdk: aws_config::SdkConfig,
}

impl Target {
    /// The local emulator: `AWS_ENDPOINT_URL` or 127.0.0.1:4566, names from `JOIP_*` or the
    /// dev-stack defaults, test credentials unless the environment has some.
    pub async fn local() -> Result<Self> {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| local::ENDPOINT.into());
        std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(joip::app::https_client())
            .endpoint_url(&endpoint)
            .region(Region::new(
                std::env::var("AWS_REGION").unwrap_or_else(|_| local::REGION.into()),
            ));
        if std::env::var("AWS_ACCESS_KEY_ID").is_err() {
            loader =
                loader.credentials_provider(Credentials::new("test", "test", None, None, "local"));
        }
        let sdk = loader.load().await;
        // The local stack keeps its generated dev secret here (tools/common.sh).
        if std::env::var_os("JOIP_DEV_TOKEN_SECRET").is_none() {
            if let Ok(secret) = std::fs::read_to_string(".local/dev-token-secret") {
                std::env::set_var("JOIP_DEV_TOKEN_SECRET", secret.trim());
            }
        }
        let mut config = Config::local_from_env()?;
        // One id per record keeps the operator's ids dense and predictable.
        config.id_block = 1;
        Ok(Self {
            app: App::new(config, &sdk),
            sdk,
        })
    }

    /// A deployed stack: real credentials, names from the stack's outputs.
    pub async fn aws(stack: &str) -> Result<Self> {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .http_client(joip::app::https_client())
            .load()
            .await;
        let cfn = aws_sdk_cloudformation::Client::new(&sdk);
        let out = cfn
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await
            .with_context(|| format!("describing stack {stack}"))?;
        let outputs = out
            .stacks()
            .first()
            .map(|s| s.outputs().to_vec())
            .unwrap_or_default();
        let get = |key: &str| -> Result<String> {
            match outputs.iter().find(|o| o.output_key() == Some(key)) {
                Some(o) => Ok(o.output_value().unwrap_or_default().to_string()),
                None => bail!("stack {stack} has no output {key}"),
            }
        };
        let config = Config {
            table: get("TableName")?,
            general_bucket: get("GeneralBucketName")?,
            user_media_bucket: get("UserMediaBucketName")?,
            public_base_url: get("CommunityBaseUrl")?,
            cdn_distribution_id: Some(get("DistributionId")?),
            local: None,
            // The CLI never lists pages, so it needs no cursor secret.
            cursor_secret: None,
            endpoint_url: None,
            copy_concurrency: joip::config::DEFAULT_COPY_CONCURRENCY,
            id_block: 1,
            save_lease_ms: joip::config::DEFAULT_SAVE_LEASE_MS,
            request_budget_ms: joip::config::DEFAULT_REQUEST_BUDGET_MS,
            save_give_up_ms: joip::config::DEFAULT_SAVE_GIVE_UP_MS,
            sdk_max_attempts: joip::config::DEFAULT_SDK_MAX_ATTEMPTS,
            max_tags: joip::config::DEFAULT_MAX_TAGS,
            link_ttl_s: joip::config::DEFAULT_LINK_TTL_S,
            watermark_max_pixels: joip::config::DEFAULT_WATERMARK_MAX_PIXELS,
            watermark_max_bytes: joip::config::DEFAULT_WATERMARK_MAX_BYTES,
            community_max_bytes: joip::config::DEFAULT_COMMUNITY_MAX_BYTES,
            stage_max_bytes: joip::config::DEFAULT_STAGE_MAX_BYTES,
            reports_per_hour: joip::config::DEFAULT_REPORTS_PER_HOUR,
            report_hide_threshold: joip::config::DEFAULT_REPORT_HIDE_THRESHOLD,
            // The CLI serves no requests: nothing to open ahead of one.
            open_connections: false,
            extra_roots: None,
        };
        Ok(Self {
            app: App::new(config, &sdk),
            sdk,
        })
    }
}
