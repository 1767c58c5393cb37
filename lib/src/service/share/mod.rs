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
}

fn yes() -> bool {
    true
}

/// What a share answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    /// The media's share code.
    pub share_code: String,
    /// The community copy's id and public URL, when shared to the community.
    pub community: Option<(u64, String)>,
}

/// The share routes' 500, carrying its cause to the log.
fn failed(e: impl Into<BoxError>) -> AppError {
    AppError::internal(FAILED, e)
}
