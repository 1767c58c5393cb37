//! The user's activity log: one constructor for every entry a use case writes.

use crate::domain::{rfc3339_millis, UserId};
use crate::store::items::ActivityItem;
use crate::store::keys;
use crate::App;
use serde_json::Value;

/// Feature key of share activity entries.
pub const MEDIA_GALLERY: &str = "media_gallery";

/// An entry of `user`'s log at `at_ms`: `action` under `feature`, with `details`.
pub fn entry(
    user: &UserId,
    at_ms: i64,
    action: &str,
    feature: &str,
    details: Value,
) -> ActivityItem {
    ActivityItem {
        pk: keys::user(user),
        sk: keys::activity(at_ms, &uuid::Uuid::new_v4().simple().to_string()),
        action: action.into(),
        feature: feature.into(),
        details,
        at: rfc3339_millis(at_ms),
    }
}

/// Writes an entry for something already done: a lost log line is logged, never worth failing
/// the request it records.
pub async fn record(app: &App, entry: &ActivityItem) {
    if let Err(e) = app.store.put_activity(entry).await {
        tracing::warn!(error = %crate::error::Report(&e), action = %entry.action, "could not write an activity entry");
    }
}
