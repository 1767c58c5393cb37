//! Typed settings read once from the environment at start-up.

pub use secrecy::{ExposeSecret, SecretSlice};
use std::env;

/// Names the local stack and `joip-admin` use when nothing else is given.
pub mod local {
    /// The emulator's endpoint for the dev stack.
    pub const ENDPOINT: &str = "http://127.0.0.1:4566";
    /// Region used against the emulator.
    pub const REGION: &str = "us-east-1";
    /// The table name of the dev stack.
    pub const TABLE: &str = "joip-local";
    /// The general (community) bucket of the dev stack.
    pub const GENERAL_BUCKET: &str = "joip-local-general";
    /// The private user-media bucket of the dev stack.
    pub const USER_MEDIA_BUCKET: &str = "joip-local-user-media";
    /// The queue that receives the general bucket's staging notifications.
    pub const WATERMARK_QUEUE: &str = "joip-local-watermark";
}

/// Shortest dev-token secret local mode accepts (there is no built-in one: the local stack
/// generates its own).
pub const MIN_SECRET_BYTES: usize = 16;

/// Largest page a list endpoint returns.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Page size when the client asks for none.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Parallel S3 copies per request (DESIGN: bounded fan-out).
pub const DEFAULT_COPY_CONCURRENCY: usize = 32;
/// Ids reserved per counter round trip in a long-lived process.
pub const DEFAULT_ID_BLOCK: u64 = 16;
/// How long a save's copy lease lasts unless renewed; the copier renews it every third of that,
/// so a live copier, however slow, is never joined by a second one, and a dead one is replaced
/// this long after its last renewal.
pub const DEFAULT_SAVE_LEASE_MS: u64 = 10_000;
/// Longest a save request works (API Gateway's HTTP API answers 503 itself at 30 s): it stops
/// starting copies [`COPY_DEADLINE_MARGIN_MS`] before this or before its Lambda deadline.
pub const DEFAULT_REQUEST_BUDGET_MS: u64 = 27_000;
/// Time kept back before a deadline: no copy starts later than this before it.
pub const COPY_DEADLINE_MARGIN_MS: u64 = 3_000;
/// A save still copying this long after its claim is rolled back and refunded by the reaper
/// (it keeps failing for reasons a retry has not fixed).
pub const DEFAULT_SAVE_GIVE_UP_MS: u64 = 6 * 3600 * 1000;
/// SDK attempts per call (the first and its retries) on throttling, 5xx and transient network
/// faults; DynamoDB's own SDKs default to more than the generic 3.
pub const DEFAULT_SDK_MAX_ATTEMPTS: u32 = 6;

/// Longest start-up waits for the connections a function's first request needs (see
/// [`crate::connections`]): past it the request opens what is missing itself. A TLS handshake to
/// DynamoDB or S3 takes hundreds of milliseconds at 128 MB; Lambda allows 10 s of init.
pub const OPEN_CONNECTIONS_TIMEOUT_MS: u64 = 2_000;

/// Names the PEM file of extra root certificates (local TLS testing only: the benchmark's and the
/// tests' throwaway CA in front of the emulator). template.yaml never sets it.
pub const EXTRA_CA_FILE_ENV: &str = "JOIP_EXTRA_CA_FILE";

/// Most tags one community copy may carry.
pub const DEFAULT_MAX_TAGS: usize = 10;
/// The most `JOIP_MAX_TAGS` may be: a retag removes the old tags and writes the new ones, plus
/// the record and the media, in one transaction of at most 100 actions (2 + 2 x 48 = 98).
pub const MAX_TAGS_LIMIT: usize = 48;
/// How long a resolved share link's presigned URL stays valid.
pub const DEFAULT_LINK_TTL_S: u64 = 300;

/// Largest image (width x height) the watermark function decodes; refused from the header.
pub const DEFAULT_WATERMARK_MAX_PIXELS: u64 = 50_000_000;
/// Largest staged file the watermark function reads.
pub const DEFAULT_WATERMARK_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Largest file shared to the community as is (GIFs, videos, generated media); upload images
/// are held to the watermark function's limit. The publisher copies it within its own deadline
/// (60 s), so the limit keeps that one copy well inside it.
pub const DEFAULT_COMMUNITY_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Largest as-is file a share copies to staging within its request (a server-side copy of this
/// size takes well under a second); larger ones are handed over: the record names the user's
/// original and the publisher copies it. A staged copy no longer depends on the original, which
/// its owner may delete before the publisher runs.
pub const DEFAULT_STAGE_MAX_BYTES: u64 = 32 * 1024 * 1024;

/// New reports one user may make within any hour (more: 429 `Too many reports`).
pub const DEFAULT_REPORTS_PER_HOUR: u64 = 20;
/// Distinct reporters that hide a community copy.
pub const DEFAULT_REPORT_HIDE_THRESHOLD: u64 = 3;

/// Everything a function, test or tool needs to know about where it runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The single DynamoDB table.
    pub table: String,
    /// Bucket holding community media (public through CloudFront) and session media.
    pub general_bucket: String,
    /// Private bucket holding each user's media under `users/{userId}/`.
    pub user_media_bucket: String,
    /// Base URL that community objects are served from (no trailing slash).
    pub public_base_url: String,
    /// The CloudFront distribution serving them, invalidated on every removal
    /// (`JOIP_CDN_DISTRIBUTION_ID`; locally the emulator's CDN, `joip-admin local init` makes it).
    pub cdn_distribution_id: Option<String>,
    /// Set only by the local stack: dev tokens are accepted and logs are pretty.
    pub local: Option<LocalMode>,
    /// Secret that pagination keys are derived from (see [`Config::cursor_key`]); only the
    /// functions that sign cursors receive it.
    pub cursor_secret: Option<SecretSlice<u8>>,
    /// Emulator endpoint, if any (`AWS_ENDPOINT_URL`); S3 then uses path-style addressing.
    pub endpoint_url: Option<String>,
    /// Parallel copies per request.
    pub copy_concurrency: usize,
    /// Ids reserved per counter update.
    pub id_block: u64,
    /// See [`DEFAULT_SAVE_LEASE_MS`].
    pub save_lease_ms: u64,
    /// See [`DEFAULT_REQUEST_BUDGET_MS`].
    pub request_budget_ms: u64,
    /// See [`DEFAULT_SAVE_GIVE_UP_MS`].
    pub save_give_up_ms: u64,
    /// See [`DEFAULT_SDK_MAX_ATTEMPTS`].
    pub sdk_max_attempts: u32,
    /// See [`DEFAULT_MAX_TAGS`].
    pub max_tags: usize,
    /// See [`DEFAULT_LINK_TTL_S`].
    pub link_ttl_s: u64,
    /// See [`DEFAULT_WATERMARK_MAX_PIXELS`].
    pub watermark_max_pixels: u64,
    /// See [`DEFAULT_WATERMARK_MAX_BYTES`].
    pub watermark_max_bytes: u64,
    /// See [`DEFAULT_COMMUNITY_MAX_BYTES`].
    pub community_max_bytes: u64,
    /// See [`DEFAULT_STAGE_MAX_BYTES`].
    pub stage_max_bytes: u64,
    /// See [`DEFAULT_REPORTS_PER_HOUR`].
    pub reports_per_hour: u64,
    /// See [`DEFAULT_REPORT_HIDE_THRESHOLD`].
    pub report_hide_threshold: u64,
    /// Whether start-up opens the connections the first request needs (`JOIP_OPEN_CONNECTIONS`,
    /// on unless `0`): the benchmark turns it off to measure what it saves.
    pub open_connections: bool,
    /// Roots trusted beside the platform's ([`EXTRA_CA_FILE_ENV`]); never set deployed.
    pub extra_roots: Option<ExtraRoots>,
}

/// PEM root certificates the HTTPS client trusts in addition to the platform's (a local TLS
/// terminator's throwaway CA). Checked when read, so that a bad file fails start-up with its
/// name rather than panicking inside the HTTP client on the first request.
#[derive(Clone, Debug)]
pub struct ExtraRoots {
    pem: Vec<u8>,
}

impl ExtraRoots {
    /// Parses `pem` (one or more `CERTIFICATE` blocks), refusing anything that is not a usable
    /// trust anchor.
    pub fn from_pem(pem: Vec<u8>) -> Result<Self, ConfigError> {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError(format!("{EXTRA_CA_FILE_ENV}: not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(ConfigError(format!(
                "{EXTRA_CA_FILE_ENV}: no certificate in the file"
            )));
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|e| {
                ConfigError(format!(
                    "{EXTRA_CA_FILE_ENV}: not a usable root certificate: {e}"
                ))
            })?;
        }
        Ok(Self { pem })
    }

    /// Reads and checks the file at `path`.
    pub fn from_file(path: &str) -> Result<Self, ConfigError> {
        let pem = std::fs::read(path)
            .map_err(|e| ConfigError(format!("{EXTRA_CA_FILE_ENV}={path}: {e}")))?;
        Self::from_pem(pem)
    }

    /// The certificates as given, PEM.
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }
}

/// Local-only settings. template.yaml never sets `JOIP_LOCAL`.
#[derive(Clone, Debug)]
pub struct LocalMode {
    /// HS256 secret for dev tokens (its `Debug` is redacted).
    pub dev_token_secret: SecretSlice<u8>,
}

/// A required setting is missing or malformed.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Reads the environment. In local mode (`JOIP_LOCAL=1`) every name has a dev-stack default
    /// but the dev-token secret, which is required; deployed, the table, buckets and public URL
    /// are required.
    pub fn from_env() -> Result<Self, ConfigError> {
        let local = matches!(env::var("JOIP_LOCAL").as_deref(), Ok("1" | "true"));
        Self::from_lookup(local, |k| env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Same as [`Config::from_env`] with local mode forced on (the tools, the tests).
    pub fn local_from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(true, |k| env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// The key that signs cursors for `purpose` (one per kind of listing), derived from the
    /// secret with HKDF-SHA256 so that no two purposes, and nothing else, share a key. `None`
    /// when this function was given no secret.
    pub fn cursor_key(&self, purpose: &str) -> Option<[u8; 32]> {
        let secret = self.cursor_secret.as_ref()?;
        let mut key = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(Some(b"joip-serverless/cursor/v1"), secret.expose_secret())
            .expand(purpose.as_bytes(), &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        Some(key)
    }

    fn from_lookup(local: bool, get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        // Lambda itself sets these (reserved: a function's configuration cannot); cargo lambda
        // watch sets AWS_LAMBDA_FUNCTION_NAME but none of them.
        let in_lambda = get("AWS_EXECUTION_ENV").is_some_and(|v| v.starts_with("AWS_Lambda_"))
            || get("LAMBDA_TASK_ROOT").is_some();
        if local && in_lambda {
            return Err(ConfigError(
                "JOIP_LOCAL is set inside AWS Lambda: local mode (dev tokens) never runs deployed"
                    .into(),
            ));
        }
        let dev_token_secret = if local {
            let secret = get("JOIP_DEV_TOKEN_SECRET").ok_or_else(|| {
                ConfigError(
                    "local mode needs JOIP_DEV_TOKEN_SECRET (tools/dev.sh makes one)".into(),
                )
            })?;
            if secret.len() < MIN_SECRET_BYTES {
                return Err(ConfigError(format!(
                    "JOIP_DEV_TOKEN_SECRET must be at least {MIN_SECRET_BYTES} bytes"
                )));
            }
            Some(SecretSlice::from(secret.into_bytes()))
        } else {
            None
        };
        let setting = |key: &str, default: &str| -> Result<String, ConfigError> {
            match get(key) {
                Some(v) => Ok(v),
                None if local => Ok(default.to_string()),
                None => Err(ConfigError(format!("{key} is not set"))),
            }
        };
        let endpoint_url = get("AWS_ENDPOINT_URL");
        let general_bucket = setting("JOIP_GENERAL_BUCKET", local::GENERAL_BUCKET)?;
        let cdn_distribution_id = get("JOIP_CDN_DISTRIBUTION_ID");
        // Locally the emulator serves the distribution (a CDN that caches, as CloudFront does)
        // at this path; without one, the bucket's own object URLs.
        let endpoint = endpoint_url.as_deref().unwrap_or(local::ENDPOINT);
        let default_public = match &cdn_distribution_id {
            Some(id) => format!("{endpoint}/_joip/cdn/{id}"),
            None => format!("{endpoint}/{general_bucket}"),
        };
        let number = |key: &str, default: u64| -> Result<u64, ConfigError> {
            get(key).map_or(Ok(default), |v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ConfigError(format!("{key} must be a positive integer")))
            })
        };
        Ok(Self {
            table: setting("JOIP_TABLE", local::TABLE)?,
            user_media_bucket: setting("JOIP_USER_MEDIA_BUCKET", local::USER_MEDIA_BUCKET)?,
            public_base_url: setting("JOIP_PUBLIC_BASE_URL", &default_public)?
                .trim_end_matches('/')
                .to_string(),
            general_bucket,
            cdn_distribution_id,
            // Locally the dev secret stands in (the derived keys differ from the token key).
            cursor_secret: get("JOIP_CURSOR_SECRET")
                .map(|s| SecretSlice::from(s.into_bytes()))
                .or_else(|| dev_token_secret.clone()),
            local: dev_token_secret.map(|dev_token_secret| LocalMode { dev_token_secret }),
            endpoint_url,
            copy_concurrency: number("JOIP_COPY_CONCURRENCY", DEFAULT_COPY_CONCURRENCY as u64)?
                as usize,
            id_block: number("JOIP_ID_BLOCK", DEFAULT_ID_BLOCK)?,
            save_lease_ms: number("JOIP_SAVE_LEASE_MS", DEFAULT_SAVE_LEASE_MS)?,
            request_budget_ms: number("JOIP_REQUEST_BUDGET_MS", DEFAULT_REQUEST_BUDGET_MS)?,
            save_give_up_ms: number("JOIP_SAVE_GIVE_UP_MS", DEFAULT_SAVE_GIVE_UP_MS)?,
            sdk_max_attempts: number("JOIP_SDK_MAX_ATTEMPTS", DEFAULT_SDK_MAX_ATTEMPTS.into())?
                .min(20) as u32,
            max_tags: number("JOIP_MAX_TAGS", DEFAULT_MAX_TAGS as u64)?.min(MAX_TAGS_LIMIT as u64)
                as usize,
            link_ttl_s: number("JOIP_LINK_TTL_S", DEFAULT_LINK_TTL_S)?.min(7 * 24 * 3600),
            watermark_max_pixels: number(
                "JOIP_WATERMARK_MAX_PIXELS",
                DEFAULT_WATERMARK_MAX_PIXELS,
            )?,
            watermark_max_bytes: number("JOIP_WATERMARK_MAX_BYTES", DEFAULT_WATERMARK_MAX_BYTES)?,
            community_max_bytes: number("JOIP_COMMUNITY_MAX_BYTES", DEFAULT_COMMUNITY_MAX_BYTES)?,
            stage_max_bytes: number("JOIP_STAGE_MAX_BYTES", DEFAULT_STAGE_MAX_BYTES)?,
            // The ring of a user's report times has this many slots (one item, well under 400 KB).
            reports_per_hour: number("JOIP_REPORTS_PER_HOUR", DEFAULT_REPORTS_PER_HOUR)?.min(1000),
            report_hide_threshold: number(
                "JOIP_REPORT_HIDE_THRESHOLD",
                DEFAULT_REPORT_HIDE_THRESHOLD,
            )?,
            open_connections: !matches!(
                get("JOIP_OPEN_CONNECTIONS").as_deref(),
                Some("0" | "false")
            ),
            extra_roots: get(EXTRA_CA_FILE_ENV)
                .map(|path| ExtraRoots::from_file(&path))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const LOCAL_SECRET: &str = "a-local-secret-of-some-length";

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn deployed_mode_requires_every_name() {
        let err = Config::from_lookup(false, lookup(&[])).unwrap_err();
        assert!(err.to_string().contains("JOIP_GENERAL_BUCKET"));
    }

    #[test]
    fn deployed_mode_never_accepts_dev_tokens() {
        let cfg = Config::from_lookup(
            false,
            lookup(&[
                ("JOIP_TABLE", "t"),
                ("JOIP_GENERAL_BUCKET", "g"),
                ("JOIP_USER_MEDIA_BUCKET", "u"),
                ("JOIP_PUBLIC_BASE_URL", "https://cdn.example.com/"),
                ("JOIP_DEV_TOKEN_SECRET", "leaked-leaked-leaked"),
            ]),
        )
        .unwrap();
        assert!(cfg.local.is_none());
        assert!(cfg.cursor_secret.is_none(), "no secret unless given");
        assert_eq!(cfg.public_base_url, "https://cdn.example.com");
    }

    #[test]
    fn secrets_never_print() {
        let cfg = Config::from_lookup(
            true,
            lookup(&[
                ("JOIP_DEV_TOKEN_SECRET", "dev-secret-dev-secret"),
                ("JOIP_CURSOR_SECRET", "cursor-secret-cursor"),
            ]),
        )
        .unwrap();
        let printed = format!("{cfg:?}");
        for secret in ["dev-secret-dev-secret", "cursor-secret-cursor"] {
            let bytes = format!("{:?}", secret.as_bytes());
            assert!(!printed.contains(secret), "{printed}");
            assert!(
                !printed.contains(bytes.trim_matches(|c| c == '[' || c == ']')),
                "{printed}"
            );
        }
        assert!(printed.contains("REDACTED"), "{printed}");
    }

    #[test]
    fn local_mode_has_no_built_in_secret() {
        let err = Config::from_lookup(true, lookup(&[])).unwrap_err();
        assert!(err.to_string().contains("JOIP_DEV_TOKEN_SECRET"), "{err}");
        let short = Config::from_lookup(true, lookup(&[("JOIP_DEV_TOKEN_SECRET", "short")]));
        assert!(short.is_err());
    }

    #[test]
    fn local_mode_refuses_to_start_inside_lambda() {
        for (name, value) in [
            ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023"),
            ("LAMBDA_TASK_ROOT", "/var/task"),
        ] {
            let err = Config::from_lookup(
                true,
                lookup(&[(name, value), ("JOIP_DEV_TOKEN_SECRET", LOCAL_SECRET)]),
            )
            .unwrap_err();
            assert!(err.to_string().contains("inside AWS Lambda"), "{err}");
        }
        // What cargo lambda watch sets is not Lambda.
        let watch = Config::from_lookup(
            true,
            lookup(&[
                ("AWS_LAMBDA_FUNCTION_NAME", "list-user-media"),
                (
                    "AWS_LAMBDA_RUNTIME_API",
                    "http://127.0.0.1:9000/.rt/list-user-media",
                ),
                ("JOIP_DEV_TOKEN_SECRET", LOCAL_SECRET),
            ]),
        );
        assert!(watch.is_ok());
    }

    #[test]
    fn cursor_keys_differ_per_purpose_and_from_the_secret() {
        let cfg = Config::from_lookup(
            true,
            lookup(&[
                ("JOIP_DEV_TOKEN_SECRET", LOCAL_SECRET),
                ("JOIP_CURSOR_SECRET", "cursor-secret-0123456789"),
            ]),
        )
        .unwrap();
        let a = cfg.cursor_key("user-media").unwrap();
        let b = cfg.cursor_key("community-feed").unwrap();
        assert_ne!(a, b);
        assert_ne!(&a[..], b"cursor-secret-0123456789".as_slice());
        assert_eq!(cfg.cursor_key("user-media"), Some(a), "stable");
    }

    #[test]
    fn local_mode_defaults_to_the_dev_stack() {
        let cfg = Config::from_lookup(
            true,
            lookup(&[
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:4567"),
                ("JOIP_DEV_TOKEN_SECRET", LOCAL_SECRET),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.table, local::TABLE);
        assert_eq!(
            cfg.public_base_url,
            "http://127.0.0.1:4567/joip-local-general"
        );
        assert!(cfg.local.is_some());
    }

    #[test]
    fn rejects_a_zero_copy_concurrency() {
        let zero = lookup(&[
            ("JOIP_COPY_CONCURRENCY", "0"),
            ("JOIP_DEV_TOKEN_SECRET", LOCAL_SECRET),
        ]);
        assert!(Config::from_lookup(true, zero).is_err());
    }

    #[test]
    fn extra_roots_refuse_what_is_not_a_root_certificate() {
        for bad in [
            &b""[..],
            b"not pem at all",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            let err = ExtraRoots::from_pem(bad.to_vec()).unwrap_err();
            assert!(err.to_string().contains(EXTRA_CA_FILE_ENV), "{err}");
        }
        let missing = ExtraRoots::from_file("/nonexistent/joip-ca.pem").unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/joip-ca.pem"));
    }

    #[test]
    fn extra_roots_accept_a_ca_made_now_and_default_off() {
        let dir = std::env::temp_dir().join(format!("joip-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (key, cert) = (dir.join("ca.key"), dir.join("ca.pem"));
        let made = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args([
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=joip test CA",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output();
        let Ok(out) = made else {
            eprintln!("SKIPPED: openssl not installed (Debian: apt-get install openssl)");
            return;
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let roots = ExtraRoots::from_file(cert.to_str().unwrap()).unwrap();
        assert!(roots.pem().starts_with(b"-----BEGIN CERTIFICATE-----"));
        let cfg = Config::from_lookup(
            true,
            lookup(&[
                ("JOIP_DEV_TOKEN_SECRET", LOCAL_SECRET),
                (EXTRA_CA_FILE_ENV, cert.to_str().unwrap()),
                ("JOIP_OPEN_CONNECTIONS", "0"),
            ]),
        )
        .unwrap();
        assert!(cfg.extra_roots.is_some());
        assert!(!cfg.open_connections);
        let plain =
            Config::from_lookup(true, lookup(&[("JOIP_DEV_TOKEN_SECRET", LOCAL_SECRET)])).unwrap();
        assert!(plain.extra_roots.is_none(), "no extra root unless given");
        assert!(
            plain.open_connections,
            "connections are opened unless turned off"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
