//! Presigned GETs from the S3 SDK's own endpoint rules and credentials, signed by
//! `aws-sigv4` (the signer the SDK itself uses), without the SDK's GetObject operation.
//!
//! Why not `get_object().presigned()`: it links the whole GetObject operation, and with it the
//! response-checksum code and crc-fast's tables, for a URL that is pure computation (900 KB of
//! resolve-shared-media, 14% of it, measured by tools/bench.sh). The URL is the one the SDK
//! writes, byte for byte (`lib/tests/it/presign.rs` compares the two).

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_s3::config::endpoint::{DefaultResolver, ResolveEndpoint};
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
    SignatureLocation, SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::Document;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Credentials are fetched again this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// Presigning failed: no credentials, no endpoint, or a key S3 cannot address.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PresignError(String);

fn failed(what: &str, e: impl std::fmt::Display) -> PresignError {
    PresignError(format!("{what}: {e}"))
}

/// How the S3 client addresses buckets, and its credentials (cached until near expiry).
#[derive(Clone, Debug)]
pub struct Presigner {
    /// The S3 SDK's endpoint rules (we configure no custom resolver), built once.
    resolver: Arc<DefaultResolver>,
    credentials: Option<SharedCredentialsProvider>,
    region: Option<String>,
    /// The emulator's endpoint, if any (then path-style, as the client is configured).
    endpoint_url: Option<String>,
    use_fips: bool,
    use_dual_stack: bool,
    cached: Arc<tokio::sync::Mutex<Option<Credentials>>>,
}

impl Presigner {
    /// Presigns as an S3 client built from `sdk` would: the SDK's endpoint rules (we configure
    /// no custom resolver), region, credentials and FIPS / dual-stack settings. `endpoint_url` is
    /// the emulator's (the client then uses path-style, see `App::s3_config`).
    pub fn new(sdk: &aws_config::SdkConfig, endpoint_url: Option<String>) -> Self {
        Self {
            resolver: Arc::new(DefaultResolver::new()),
            credentials: sdk.credentials_provider(),
            region: sdk.region().map(|r| r.as_ref().to_string()),
            endpoint_url,
            use_fips: sdk.use_fips().unwrap_or(false),
            use_dual_stack: sdk.use_dual_stack().unwrap_or(false),
            cached: Arc::default(),
        }
    }

    /// A GET of `bucket/key` valid for `ttl` from `now`.
    pub async fn get(
        &self,
        bucket: &str,
        key: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<String, PresignError> {
        let credentials = self.credentials().await?;
        self.sign_get(bucket, key, ttl, now, credentials).await
    }

    /// A GET of `bucket/key` valid for `ttl` from `now`, or less: a presigned URL stops working
    /// when the credentials that signed it expire (on Lambda, the role's session), so it never
    /// claims to outlive them. Returns the URL and when it really expires.
    pub async fn get_until(
        &self,
        bucket: &str,
        key: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<(String, SystemTime), PresignError> {
        let credentials = self.credentials().await?;
        let ttl = within_credentials(ttl, now, credentials.expiry());
        let url = self.sign_get(bucket, key, ttl, now, credentials).await?;
        Ok((url, now + ttl))
    }

    async fn sign_get(
        &self,
        bucket: &str,
        key: &str,
        ttl: Duration,
        now: SystemTime,
        credentials: Credentials,
    ) -> Result<String, PresignError> {
        let params = aws_sdk_s3::config::endpoint::Params::builder()
            .set_region(self.region.clone())
            .use_fips(self.use_fips)
            .use_dual_stack(self.use_dual_stack)
            .set_endpoint(self.endpoint_url.clone())
            .force_path_style(self.endpoint_url.is_some())
            .bucket(bucket)
            .key(key)
            .build()
            .map_err(|e| failed("endpoint parameters", e))?;
        let endpoint = self
            .resolver
            .resolve_endpoint(&params)
            .await
            .map_err(|e| failed("endpoint", e))?;
        let key = aws_smithy_http::label::fmt_string(
            key,
            aws_smithy_http::label::EncodingStrategy::Greedy,
        );
        if key.is_empty() {
            return Err(PresignError("empty key".into()));
        }
        let url = format!(
            "{}/{key}?x-id=GetObject",
            endpoint.url().trim_end_matches('/')
        );
        let region = signing_region(&endpoint)
            .or(self.region.clone())
            .ok_or_else(|| PresignError("no region".into()))?;
        let identity: Identity = credentials.into();

        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(ttl);
        let signing = v4::SigningParams::builder()
            .identity(&identity)
            .region(&region)
            .name("s3")
            .time(now)
            .settings(settings)
            .build()
            .map_err(|e| failed("signing parameters", e))?
            .into();
        let request = SignableRequest::new(
            "GET",
            &url,
            std::iter::empty(),
            SignableBody::UnsignedPayload,
        )
        .map_err(|e| failed("request", e))?;
        let (instructions, _) = sign(request, &signing)
            .map_err(|e| failed("signing", e))?
            .into_parts();
        let mut request = ::http::Request::get(&url)
            .body(())
            .map_err(|e| failed("url", e))?;
        instructions.apply_to_request_http1x(&mut request);
        Ok(request.uri().to_string())
    }

    /// The provider's credentials, fetched once and again only near their expiry (the SDK's
    /// clients cache them the same way; on Lambda they come from the environment).
    async fn credentials(&self) -> Result<Credentials, PresignError> {
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| PresignError("no credentials provider".into()))?;
        let mut cached = self.cached.lock().await;
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_none_or(|at| at > SystemTime::now() + REFRESH_BEFORE_EXPIRY)
        };
        if let Some(c) = cached.as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let c = provider.provide_credentials().await.map_err(|e| {
            failed(
                "credentials",
                aws_smithy_types::error::display::DisplayErrorContext(e),
            )
        })?;
        *cached = Some(c.clone());
        Ok(c)
    }
}

/// `ttl`, cut to end a safety margin before credentials expiring at `expiry` (at least one
/// second, so a link is never born expired).
pub fn within_credentials(ttl: Duration, now: SystemTime, expiry: Option<SystemTime>) -> Duration {
    let Some(expiry) = expiry else {
        return ttl;
    };
    let left = expiry
        .duration_since(now)
        .unwrap_or_default()
        .saturating_sub(CREDENTIALS_MARGIN);
    ttl.min(left).max(Duration::from_secs(1))
}

/// Presigned links end at least this long before the credentials that signed them.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(60);

/// The region the endpoint says to sign for (`authSchemes[].signingRegion`), if it says.
fn signing_region(endpoint: &aws_smithy_types::endpoint::Endpoint) -> Option<String> {
    let Some(Document::Array(schemes)) = endpoint.properties().get("authSchemes") else {
        return None;
    };
    schemes.iter().find_map(|scheme| match scheme {
        Document::Object(o) if matches!(o.get("name"), Some(Document::String(n)) if n == "sigv4") => {
            match o.get("signingRegion") {
                Some(Document::String(r)) => Some(r.clone()),
                _ => None,
            }
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_never_outlives_the_credentials_that_signed_it() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ttl = Duration::from_secs(300);
        assert_eq!(within_credentials(ttl, now, None), ttl);
        let later = now + Duration::from_secs(3600);
        assert_eq!(within_credentials(ttl, now, Some(later)), ttl);
        let soon = now + Duration::from_secs(200);
        assert_eq!(
            within_credentials(ttl, now, Some(soon)),
            Duration::from_secs(140)
        );
        assert_eq!(
            within_credentials(ttl, now, Some(now)),
            Duration::from_secs(1)
        );
    }
}
