//! Taking back what is public (DESIGN invariant 5): an object stops being named (its record
//! removed) in the same transaction that owes its removal (the unpublish outbox); then the object
//! is deleted and its path invalidated on the CDN, and the owed item goes. The remover does that
//! right away; whatever it could not finish (it died, S3 failed, CloudFront was busy or
//! throttled) the reaper's sweep finishes within a minute, batched up to CloudFront's limit of
//! paths per invalidation. Every step is idempotent, so doing one twice is harmless.

use crate::cdn::MAX_PATHS;
use crate::error::Report;
use crate::store::items::{CommunityMediaItem, UnpublishItem};
use crate::store::{keys, StoreError};
use crate::App;
use futures_util::{StreamExt, TryStreamExt};

/// Parallel object deletions in one drain.
const DELETE_CONCURRENCY: usize = 16;
/// How old an owed removal must be before the sweep takes it: the remover is usually finishing
/// it right now (taking it as well would be harmless, only wasteful).
pub const SWEEP_AFTER_MS: i64 = 10_000;

/// An owed removal could not be finished now (the item stays for the sweep).
#[derive(Debug, thiserror::Error)]
pub enum UnpublishError {
    /// Deleting the object or the owed item failed.
    #[error("unpublish: storage")]
    Store(#[from] StoreError),
    /// Deleting the object failed.
    #[error("unpublish: delete object")]
    Blob(#[from] crate::blob::BlobError),
    /// CloudFront did not accept the invalidation.
    #[error("unpublish: invalidate")]
    Cdn(#[from] crate::cdn::CdnError),
}

/// The removals a community copy's records owe: its public object (which the CDN may hold,
/// fetched through its `communityUrl` even while pending) and its staged source, also once
/// published: a publisher that died between marking the record `ready` and deleting the staged
/// object leaves it behind, and a redelivery that finds neither record nor public object would
/// otherwise wait out the staging grace period before removing it. A hidden copy's held object
/// goes too.
pub fn owed_by(record: &CommunityMediaItem, now_ms: i64) -> Vec<UnpublishItem> {
    let public = std::iter::once((record.key.as_str(), true));
    let staged = record.staging_key.iter().map(|k| (k.as_str(), false));
    let held = record.held_key.iter().map(|k| (k.as_str(), false));
    public
        .chain(staged)
        .chain(held)
        .map(|(key, invalidate)| owe(&record.bucket, key, invalidate, now_ms))
        .collect()
}

/// One owed removal of `bucket/key`.
pub fn owe(bucket: &str, key: &str, invalidate: bool, now_ms: i64) -> UnpublishItem {
    UnpublishItem {
        pk: keys::unpublish(bucket, key),
        sk: keys::UNPUBLISH.into(),
        bucket: bucket.into(),
        key: key.into(),
        invalidate,
        created_at_ms: now_ms,
        gsi1pk: keys::unpublish_queue(keys::unpublish_shard(key)),
        gsi1sk: keys::lease_sort(now_ms),
    }
}

/// Finishes owed removals (at most [`MAX_PATHS`] to invalidate): deletes the objects, invalidates
/// the paths in one request, then deletes the owed items. On any failure the items stay.
pub async fn drain(app: &App, owed: &[UnpublishItem]) -> Result<(), UnpublishError> {
    // Owned items: a borrowed stream item makes the future higher-ranked, which the runtime
    // refuses.
    futures_util::stream::iter(owed.to_vec())
        .map(|item| async move { app.blob.delete(&item.bucket, &item.key).await })
        .buffer_unordered(DELETE_CONCURRENCY)
        .try_collect::<()>()
        .await?;
    let paths: Vec<&str> = owed
        .iter()
        .filter(|i| i.invalidate)
        .map(|i| i.key.as_str())
        .collect();
    app.cdn.invalidate(&paths).await?;
    futures_util::stream::iter(owed.to_vec())
        .map(|item| async move { app.store.unpublished(&item).await })
        .buffer_unordered(DELETE_CONCURRENCY)
        .try_collect::<()>()
        .await?;
    tracing::info!(objects = owed.len(), paths = paths.len(), "unpublished");
    Ok(())
}

/// [`drain`] right after the removal was committed; what fails is left to the sweep (the
/// removal itself is durable), never to the caller.
pub async fn drain_now(app: &App, owed: &[UnpublishItem]) {
    if let Err(e) = drain(app, owed).await {
        tracing::warn!(error = %Report(&e), "unpublishing left for the sweep");
    }
}

/// What one sweep did.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Swept {
    /// Owed removals finished.
    pub unpublished: usize,
    /// Owed removals left for the next sweep (CloudFront busy, a failure).
    pub left: usize,
}

/// One pass of the sweep: every removal owed for longer than `older_than_ms`, oldest first,
/// finished in batches of at most [`MAX_PATHS`] paths.
pub async fn sweep(app: &App, older_than_ms: i64) -> Result<Swept, StoreError> {
    let owed = app
        .store
        .owed_unpublish(app.clock.now_millis() - older_than_ms, MAX_PATHS)
        .await?;
    let mut swept = Swept::default();
    for batch in owed.chunks(MAX_PATHS) {
        match drain(app, batch).await {
            Ok(()) => swept.unpublished += batch.len(),
            Err(e) => {
                tracing::warn!(error = %Report(&e), owed = batch.len(), "unpublishing left for the next sweep");
                swept.left += batch.len();
            }
        }
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdn::Cdn;
    use crate::domain::{MediaId, MediaKind, UserId};
    use crate::store::items::CommunityStatus;

    #[test]
    fn a_copy_owes_its_public_object_invalidated_and_its_source_deleted() {
        let record = CommunityMediaItem {
            pk: "COMMUNITY#7".into(),
            sk: "COMMUNITY".into(),
            community_media_id: 7,
            media_id: MediaId(3),
            owner_id: UserId::parse("u1").unwrap(),
            status: CommunityStatus::Pending,
            bucket: "general".into(),
            key: "community/aa/bb/7-x.jpg".into(),
            staging_key: Some("staging/aa/bb/7-x.jpg".into()),
            handover: None,
            url: "https://cdn/community/aa/bb/7-x.jpg".into(),
            kind: MediaKind::Image,
            mime_type: "image/jpeg".into(),
            tags: vec![],
            created_at: String::new(),
            created_at_ms: 0,
            version: 1,
            gsi1pk: None,
            gsi1sk: None,
            content_hash: None,
            crop_hashes: Vec::new(),
            held_key: None,
        };
        let owed = owed_by(&record, 5_000);
        assert_eq!(owed.len(), 2);
        assert!(owed[0].invalidate && owed[0].key == record.key);
        assert!(!owed[1].invalidate && owed[1].key == "staging/aa/bb/7-x.jpg");
        assert_eq!(Cdn::path(&owed[0].key), "/community/aa/bb/7-x.jpg");
        assert_ne!(owed[0].pk, owed[1].pk);
    }
}
