//! Sharing a user's media (DESIGN invariants 3, 5, 6): a share link, and optionally one community
//! copy with tags. One room per concept below; this module holds what the share routes have in
//! common: their request, their answer and their documented messages.
//!
//! - [`flow`]: share and unshare, the rounds that tie a link and a community copy together
//! - [`link`]: share codes and what a code resolves to
//! - [`community_copy`]: the one community copy: plan (every refusal), create, retag, remove
//! - [`by_path`]: sharing an object by its key, recording it first if it has no record

pub mod by_path;
pub mod community_copy;
pub mod flow;
pub mod link;

pub use by_path::share_media_by_path;
pub use flow::{share_media, unshare_media};

use crate::error::{AppError, BoxError};
use crate::http::Field;
use crate::store::LimitChange;

/// 400: the body is not the documented object.
pub const INVALID_BODY: &str = "Invalid request body";
/// 400: the path id is not a positive JS-safe integer.
pub const INVALID_ID: &str = "Invalid media ID";
/// 404, for missing and foreign media alike.
pub const NOT_FOUND: &str = "Media not found";
/// 500 for any internal failure of a share.
pub const FAILED: &str = "Failed to share media";
/// 500 for an internal failure of an unshare.
pub const FAILED_UNSHARE: &str = "Failed to unshare media";

/// The body of both share routes: the share fields, and `filePath` (the by-path route requires
/// it; the by-id route refuses a body that names it, even as `null`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShareRequest {
    /// The object's key in the user-media bucket (by-path route only).
    #[serde(default)]
    pub file_path: Field<String>,
    /// Also put a copy in the community feed.
    #[serde(default = "yes")]
    pub share_to_community: bool,
    /// Tag slugs for the community copy.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The user confirmed the community policy.
    #[serde(default)]
    pub policy_agreed: bool,
    /// Seconds from this request until the link stops working; `null` removes the limit.
    #[serde(default)]
    pub expires_in: Field<serde_json::Value>,
    /// Views the link allows from now on; `null` removes the limit.
    #[serde(default)]
    pub max_views: Field<serde_json::Value>,
}

/// 400: `expiresIn` is not a whole number of seconds in range.
pub const INVALID_EXPIRES_IN: &str = "Invalid expiresIn";
/// 400: `maxViews` is not a whole number in range.
pub const INVALID_MAX_VIEWS: &str = "Invalid maxViews";
/// The shortest and longest `expiresIn` (a minute, a year).
pub const EXPIRES_IN_S: std::ops::RangeInclusive<u64> = 60..=31_536_000;
/// The fewest and most `maxViews`.
pub const MAX_VIEWS: std::ops::RangeInclusive<u64> = 1..=1_000_000;

impl ShareRequest {
    /// The link limits the request asks for, decided at `now_ms`; every refusal before any I/O
    /// (`expiresIn` first).
    pub fn limits(&self, now_ms: i64) -> Result<LimitChange, AppError> {
        let expires_in = whole(&self.expires_in, &EXPIRES_IN_S)
            .map_err(|()| AppError::bad_request(INVALID_EXPIRES_IN))?;
        let max_views = whole(&self.max_views, &MAX_VIEWS)
            .map_err(|()| AppError::bad_request(INVALID_MAX_VIEWS))?;
        Ok(LimitChange {
            expires_at_ms: expires_in.map(|s| s.map(|s| now_ms + s as i64 * 1000)),
            max_views,
        })
    }
}

/// A limit field as a change (see [`LimitChange`]): absent, `null`, or a whole number in `range`
/// (JSON Schema's integer: `60` and `60.0` alike); `Err` for anything else (the caller's 400).
fn whole(
    field: &Field<serde_json::Value>,
    range: &std::ops::RangeInclusive<u64>,
) -> Result<Option<Option<u64>>, ()> {
    match field {
        Field::Absent => Ok(None),
        Field::Null => Ok(Some(None)),
        Field::Value(serde_json::Value::Number(number)) => {
            let value = number.as_u64().or_else(|| {
                number
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
                    .map(|f| f as u64)
            });
            match value {
                Some(v) if range.contains(&v) => Ok(Some(Some(v))),
                _ => Err(()),
            }
        }
        Field::Value(_) => Err(()),
    }
}

fn yes() -> bool {
    true
}

/// What a share answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    /// The media's share code.
    pub share_code: String,
    /// When the link stops working (ms since the epoch), if it expires.
    pub link_expires_at_ms: Option<i64>,
    /// Views the link allows, if limited.
    pub max_views: Option<u64>,
    /// The community copy's id and public URL, when shared to the community.
    pub community: Option<(u64, String)>,
}

/// The share routes' 500, carrying its cause to the log.
fn failed(e: impl Into<BoxError>) -> AppError {
    AppError::internal(FAILED, e)
}
