//! CloudFront: every removal of a public object is invalidated on the distribution, so the edge
//! stops serving it (DESIGN invariant 5). Browsers cannot be invalidated: public objects carry a
//! short `max-age` for them (see `blob::PUBLIC_CACHE_CONTROL`).

use crate::error::BoxError;
use aws_sdk_cloudfront::error::ProvideErrorMetadata;
use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};

/// Most paths one invalidation may name (CloudFront's limit, which is also the most a
/// distribution may have in progress at once).
pub const MAX_PATHS: usize = 3000;

/// The distribution that serves the general bucket's community objects.
#[derive(Clone, Debug)]
pub struct Cdn {
    client: aws_sdk_cloudfront::Client,
    distribution_id: Option<String>,
}

/// An invalidation was not accepted.
#[derive(Debug, thiserror::Error)]
#[error("invalidate {paths} paths on distribution {distribution}")]
pub struct CdnError {
    distribution: String,
    paths: usize,
    #[source]
    source: BoxError,
    /// CloudFront is busy (too many invalidations in progress, throttled): the same request
    /// succeeds later.
    pub busy: bool,
}

impl Cdn {
    /// Invalidates on `distribution_id`; without one (a tool, a test without a CDN) nothing is
    /// cached anywhere and there is nothing to invalidate.
    pub fn new(client: aws_sdk_cloudfront::Client, distribution_id: Option<String>) -> Self {
        Self {
            client,
            distribution_id,
        }
    }

    /// The distribution, if one is configured.
    pub fn distribution_id(&self) -> Option<&str> {
        self.distribution_id.as_deref()
    }

    /// The path an object key is served at (keys are URL-safe: see `blob::keys`).
    pub fn path(key: &str) -> String {
        format!("/{key}")
    }

    /// Invalidates the objects at `keys` (at most [`MAX_PATHS`]) in one request.
    pub async fn invalidate(&self, keys: &[&str]) -> Result<(), CdnError> {
        let Some(distribution) = self.distribution_id.as_deref() else {
            return Ok(());
        };
        if keys.is_empty() {
            return Ok(());
        }
        let error = |source: BoxError, busy| CdnError {
            distribution: distribution.to_string(),
            paths: keys.len(),
            source,
            busy,
        };
        let paths = Paths::builder()
            .quantity(keys.len() as i32)
            .set_items(Some(keys.iter().map(|k| Self::path(k)).collect()))
            .build()
            .map_err(|e| error(e.into(), false))?;
        // A new reference each time: a retry after an unknown outcome invalidates again, which
        // costs one more invalidation and never leaves a path cached.
        let batch = InvalidationBatch::builder()
            .paths(paths)
            .caller_reference(uuid::Uuid::new_v4().simple().to_string())
            .build()
            .map_err(|e| error(e.into(), false))?;
        self.client
            .create_invalidation()
            .distribution_id(distribution)
            .invalidation_batch(batch)
            .send()
            .await
            .map(drop)
            .map_err(|e| {
                let busy = matches!(
                    e.code(),
                    Some("TooManyInvalidationsInProgress" | "Throttling" | "ServiceUnavailable")
                );
                error(e.into(), busy)
            })
    }
}

/// Creates (or finds, by its comment) the local stack's distribution in front of `bucket` on the
/// emulator, as template.yaml's is on AWS: one S3 origin, the managed CachingOptimized policy.
/// Returns its id; the emulator serves it at `{endpoint}/_joip/cdn/{id}`.
pub async fn ensure_local_distribution(
    client: &aws_sdk_cloudfront::Client,
    bucket: &str,
    region: &str,
) -> Result<String, BoxError> {
    let comment = local_comment(bucket);
    let listed = client.list_distributions().send().await?;
    let existing = (listed.distribution_list())
        .map(|l| l.items())
        .unwrap_or_default()
        .iter()
        .find(|d| d.comment() == comment)
        .map(|d| d.id().to_string());
    match existing {
        Some(id) => Ok(id),
        None => create_local_distribution(client, bucket, region).await,
    }
}

/// Creates a distribution in front of `bucket` on the emulator (see
/// [`ensure_local_distribution`]); each test's own buckets get their own.
pub async fn create_local_distribution(
    client: &aws_sdk_cloudfront::Client,
    bucket: &str,
    region: &str,
) -> Result<String, BoxError> {
    use aws_sdk_cloudfront::types::{
        DefaultCacheBehavior, DistributionConfig, Origin, Origins, S3OriginConfig,
        ViewerProtocolPolicy,
    };
    let comment = local_comment(bucket);
    let origin = Origin::builder()
        .id("GeneralBucket")
        .domain_name(format!("{bucket}.s3.{region}.amazonaws.com"))
        .s3_origin_config(S3OriginConfig::builder().origin_access_identity("").build())
        .build()?;
    let config = DistributionConfig::builder()
        .caller_reference(uuid::Uuid::new_v4().simple().to_string())
        .comment(comment)
        .enabled(true)
        .origins(Origins::builder().quantity(1).items(origin).build()?)
        .default_cache_behavior(
            DefaultCacheBehavior::builder()
                .target_origin_id("GeneralBucket")
                .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
                // Managed CachingOptimized, as template.yaml.
                .cache_policy_id("658327ea-f89d-4fab-a63d-7e88639e58f6")
                .build()?,
        )
        .build()?;
    let created = client
        .create_distribution()
        .distribution_config(config)
        .send()
        .await?;
    Ok(created
        .distribution()
        .map(|d| d.id().to_string())
        .ok_or("CreateDistribution answered no distribution")?)
}

/// The comment that names the local distribution of `bucket` (how `ensure_local_distribution`
/// finds it again).
fn local_comment(bucket: &str) -> String {
    format!("joip local community media: {bucket}")
}
