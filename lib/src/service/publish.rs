//! The publisher's use case (the watermark function; DESIGN invariant 4): every community copy
//! goes public here, never from a request. A staged upload image becomes the public, watermarked
//! copy; a GIF, video or generated media (staged, or handed over) is copied as is; or the record becomes
//! `failed`. Idempotent and order-proof: a
//! duplicate or late event, an event for an object already processed, two deliveries racing, or a
//! crash between publishing and marking all end in one public object for one `ready` record, or
//! in none.

use crate::blob::keys::{community_for_staging, staging_record_id, COMMUNITY_PREFIX};
use crate::blob::Bounded;
use crate::domain::sniff_mime;
use crate::error::{BoxError, Report};
use crate::service::moderation::{self, ContentHashes};
use crate::service::share::community_copy::SNIFF_BYTES;
use crate::service::unpublish;
use crate::store::items::{CommunityMediaItem, CommunityStatus, Handover};
use crate::store::Written;
use crate::watermark::{stamp, Limits, WatermarkError};
use crate::App;
use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

/// Rounds of read-decide-write against concurrent retags before the message is retried.
const ROUNDS: usize = 8;

/// What became of one staged object.
#[derive(Debug, PartialEq, Eq)]
pub enum Processed {
    /// Published and marked `ready`.
    Published,
    /// Could never be published: the record is `failed`, nothing is public.
    Failed,
    /// Its content matches the blocklist: the record is `blocked`, nothing is public.
    Blocked,
    /// Nothing to do: not a staging key, already processed, or the record is gone (unshared).
    Skipped,
}

/// A failure a redelivery may fix (the message is reported as a batch item failure).
#[derive(Debug, thiserror::Error)]
#[error("publishing failed; a redelivery will retry")]
pub struct Transient(#[source] BoxError);

fn transient(e: impl Into<BoxError>) -> Transient {
    Transient(e.into())
}

/// Processes the object S3 reported at `key` in the general bucket.
pub async fn process_staged(app: &App, key: &str) -> Result<Processed, Transient> {
    let general = &app.config.general_bucket;
    let Some(id) = staging_record_id(key) else {
        // Never written by a share: nothing to publish, and never ours to delete.
        tracing::warn!(%key, "ignoring an object outside the staging naming scheme");
        return Ok(Processed::Skipped);
    };
    let record = app.store.community_media(id).await.map_err(transient)?;
    let record = match record {
        Some(r) if r.staging_key.as_deref() == Some(key) => r,
        // Replaced by another copy: the staged original is an orphan.
        Some(_) => {
            app.blob.delete(general, key).await.map_err(transient)?;
            return Ok(Processed::Skipped);
        }
        None => return missing_record(app, key).await,
    };
    if record.status != CommunityStatus::Pending {
        // Already published (a duplicate event) or failed: only the staging object may remain.
        app.blob.delete(general, key).await.map_err(transient)?;
        return Ok(Processed::Skipped);
    }
    if !record.key.starts_with(COMMUNITY_PREFIX) {
        return Err(transient(format!("record {id} expects a non-public key")));
    }
    let made = match &record.handover {
        Some(original) => copy_original(app, &record, original).await?,
        None => stamp_staged(app, &record, key).await?,
    };
    match made {
        Made::Public(hash) => commit(app, record, key, &hash).await,
        Made::Refused(why) => fail(app, &record, key, &why).await,
        Made::SourceGone => source_gone(app, id, key).await,
        Made::Blocked(hash) => block(app, &record, key, &hash.primary).await,
    }
}

/// What became of making the public object.
enum Made {
    /// The public object is written; the content's hashes (see `moderation::content_hash`).
    Public(ContentHashes),
    /// The content matches the blocklist: nothing was made public.
    Blocked(ContentHashes),
    /// The source can never be published (too large, not what the share sniffed, corrupt).
    Refused(WatermarkError),
    /// The source is gone.
    SourceGone,
}

/// An upload image: its staged copy, read no further than the size limit and one byte, stamped
/// and put at the public key.
async fn stamp_staged(
    app: &App,
    record: &CommunityMediaItem,
    key: &str,
) -> Result<Made, Transient> {
    let general = &app.config.general_bucket;
    // Never more than the limit and one byte: a huge file is refused by its size, unread.
    let original = match app
        .blob
        .get_bounded(general, key, app.config.watermark_max_bytes)
        .await
    {
        Ok(Bounded::Whole(bytes)) => bytes,
        Ok(Bounded::TooLarge(size)) => {
            return Ok(Made::Refused(WatermarkError::TooLarge(format!(
                "{size} bytes, the limit is {}",
                app.config.watermark_max_bytes
            ))));
        }
        Err(e) if e.missing => return Ok(Made::SourceGone),
        // AccessDenied included: a policy or key mistake is retried, then dead-lettered and
        // alarmed, never taken for "already processed".
        Err(e) => return Err(transient(e)),
    };
    let limits = Limits {
        max_pixels: app.config.watermark_max_pixels,
        max_bytes: usize::try_from(app.config.watermark_max_bytes).unwrap_or(usize::MAX),
    };
    // The blocking thread carries the request's span, so the image code's lines keep its id.
    // The content hash is taken from the upload as shared, before the mark.
    let span = tracing::Span::current();
    let max_pixels = app.config.watermark_max_pixels;
    let (stamped, hash) = tokio::task::spawn_blocking(move || {
        span.in_scope(|| {
            let hash = moderation::hash_bytes(&original, max_pixels);
            (stamp(&original, &limits), hash)
        })
    })
    .await
    .map_err(transient)?;
    let stamped = match stamped {
        Ok(stamped) => stamped,
        Err(e) => return Ok(Made::Refused(e)),
    };
    if moderation::blocklisted(app, &hash.primary)
        .await
        .map_err(transient)?
        .is_some()
    {
        return Ok(Made::Blocked(hash));
    }
    app.blob
        .put_public(general, &record.key, stamped.bytes, stamped.mime)
        .await
        .map_err(transient)?;
    Ok(Made::Public(hash))
}

/// A kind published as is (GIF, video, generated media): its source (the share's staged copy,
/// or the handed-over original when it was too large to stage), sniffed again here (the bytes decide its type, whatever changed since the share), then copied
/// server-side, exactly the bytes sniffed (`CopySourceIfMatch`), as a public object with headers
/// from those bytes. The copy is S3's, so it costs this function no memory whatever the size.
async fn copy_original(
    app: &App,
    record: &CommunityMediaItem,
    original: &Handover,
) -> Result<Made, Transient> {
    let source = (original.bucket.as_str(), original.key.as_str());
    let head = match app.blob.get_range(source.0, source.1, SNIFF_BYTES).await {
        Ok(head) => head,
        Err(e) if e.missing => return Ok(Made::SourceGone),
        Err(e) => return Err(transient(e)),
    };
    let mime = sniff_mime(&head.bytes);
    if mime != Some(record.mime_type.as_str()) {
        return Ok(Made::Refused(WatermarkError::Unsupported(
            "the original's bytes are no longer what was shared",
        )));
    }
    let max = app.config.community_max_bytes;
    if head.size > max {
        return Ok(Made::Refused(WatermarkError::TooLarge(format!(
            "{} bytes, the limit is {max}",
            head.size
        ))));
    }
    let hash = match moderation::content_hash(app, source.0, source.1, &head).await {
        Ok(hash) => hash,
        Err(e) if e.missing => return Ok(Made::SourceGone),
        Err(e) => return Err(transient(e)),
    };
    if moderation::blocklisted(app, &hash.primary)
        .await
        .map_err(transient)?
        .is_some()
    {
        return Ok(Made::Blocked(hash));
    }
    let target = (app.config.general_bucket.as_str(), record.key.as_str());
    let public = (record.mime_type.as_str(), head.e_tag.as_str());
    match app
        .blob
        .copy_public(source, target, Some(head.size), public)
        .await
    {
        Ok(()) => Ok(Made::Public(hash)),
        // Deleted, or other bytes since the sniff (412): never copied.
        Err(e) if e.missing => Ok(Made::SourceGone),
        Err(e) => Err(transient(e)),
    }
}

/// Marks the record `ready` (conditioned on its version: a retag meanwhile is read and published
/// at its new version), then deletes the staged object. A record unshared meanwhile gets nothing
/// public: what this run wrote is withdrawn.
async fn commit(
    app: &App,
    record: CommunityMediaItem,
    key: &str,
    hash: &ContentHashes,
) -> Result<Processed, Transient> {
    let general = &app.config.general_bucket;
    let id = record.community_media_id;
    let mut current = record;
    for _ in 0..ROUNDS {
        match app
            .store
            .publish_community(&current, (&hash.primary, &hash.crops))
            .await
            .map_err(transient)?
        {
            Written::Done => {
                app.blob.delete(general, key).await.map_err(transient)?;
                tracing::info!(community_media_id = id, "published");
                return Ok(Processed::Published);
            }
            Written::Stale => match app.store.community_media(id).await.map_err(transient)? {
                // Retagged meanwhile: publish at the new version.
                Some(r) if r.status == CommunityStatus::Pending && r.key == current.key => {
                    current = r
                }
                Some(r) if r.status == CommunityStatus::Ready && r.key == current.key => {
                    app.blob.delete(general, key).await.map_err(transient)?;
                    return Ok(Processed::Skipped);
                }
                // Unshared while we worked: leave nothing public behind, at the edge either
                // (its URL was known while it was pending).
                _ => {
                    withdraw(app, &current.key, key).await?;
                    return Ok(Processed::Skipped);
                }
            },
        }
    }
    Err(transient(format!("record {id} kept changing")))
}

/// How long a staged object may wait for its record: a share copies the object before it writes
/// the record, and S3 can notify in between. Past this, a staged object without a record is an
/// orphan (its share was undone or died) and is removed.
/// Shorter than the queue's first redelivery (its visibility timeout, 360 s in template.yaml),
/// so an orphan is removed on its second delivery, long before the message could reach the
/// dead-letter queue; far longer than a share takes to write its record (its 29 s budget).
pub const STAGING_GRACE_S: i64 = 120;

/// Whether a staged object written at `written_s` (if S3 said) with no record is an orphan at
/// `now_s`, rather than the source of a share still writing its record.
pub fn is_orphan(now_s: i64, written_s: Option<i64>) -> bool {
    written_s.is_none_or(|written| now_s - written >= STAGING_GRACE_S)
}

/// No record (yet) for a staged object. A public object at its key is an orphan of an unshare
/// that raced a publish (no record means nothing may be public): withdrawn at once, at the edge
/// too. The staged object is retried while the share that staged it may still be writing its
/// record, and removed as an orphan after [`STAGING_GRACE_S`].
async fn missing_record(app: &App, key: &str) -> Result<Processed, Transient> {
    let general = &app.config.general_bucket;
    let public = community_for_staging(key);
    if app
        .blob
        .head(general, &public)
        .await
        .map_err(transient)?
        .is_some()
    {
        withdraw(app, &public, key).await?;
        return Ok(Processed::Skipped);
    }
    let Some(object) = app.blob.head(general, key).await.map_err(transient)? else {
        return Ok(Processed::Skipped); // unshared: the unshare removed it already
    };
    if !is_orphan(app.clock.now_millis() / 1000, object.modified_s) {
        return Err(transient(format!(
            "{key} has no record yet (its share may still be writing it): retry"
        )));
    }
    app.blob.delete(general, key).await.map_err(transient)?;
    Ok(Processed::Skipped)
}

/// The staged source is gone. A concurrent delivery that published it deletes the source only
/// after the record is `ready`; an unshare removes the record too. So a record still pending for
/// this key will never be published (its source expired by the staging lifecycle rule, or was
/// deleted by hand): it is `failed`, never left pending for good.
async fn source_gone(app: &App, id: u64, key: &str) -> Result<Processed, Transient> {
    match app.store.community_media(id).await.map_err(transient)? {
        Some(r)
            if r.status == CommunityStatus::Pending && r.staging_key.as_deref() == Some(key) =>
        {
            let why = WatermarkError::Corrupt("the staged source is gone".into());
            fail(app, &r, key, &why).await
        }
        _ => Ok(Processed::Skipped),
    }
}

/// Takes back what this run may have published for a record that is gone: its public object
/// (deleted and invalidated on the CDN) and the staged source, through the unpublish outbox so
/// that a failure now is finished by the next delivery or the sweep.
async fn withdraw(app: &App, public_key: &str, staging_key: &str) -> Result<(), Transient> {
    let general = &app.config.general_bucket;
    let now = app.clock.now_millis();
    let owed = [
        unpublish::owe(general, public_key, true, now),
        unpublish::owe(general, staging_key, false, now),
    ];
    app.store.owe_unpublish(&owed).await.map_err(transient)?;
    unpublish::drain(app, &owed).await.map_err(transient)?;
    tracing::warn!(key = %public_key, "withdrew an object published for a record that is gone");
    Ok(())
}

/// The content matches the blocklist: the record is `blocked` (never public, never in the feed;
/// its owner sees `communityStatus: "blocked"`), the staged source removed.
async fn block(
    app: &App,
    record: &CommunityMediaItem,
    key: &str,
    hash: &str,
) -> Result<Processed, Transient> {
    let id = record.community_media_id;
    match app
        .store
        .block_community(record, hash)
        .await
        .map_err(transient)?
    {
        Written::Done => {
            tracing::warn!(
                community_media_id = id,
                "community copy matches the blocklist"
            );
            moderation::log_blocked(app, record).await;
        }
        // Unshared or retagged meanwhile: the next delivery (or none) decides again.
        Written::Stale => return Err(transient(format!("record {id} changed while blocking"))),
    }
    app.blob
        .delete(&app.config.general_bucket, key)
        .await
        .map_err(transient)?;
    Ok(Processed::Blocked)
}

async fn fail(
    app: &App,
    record: &CommunityMediaItem,
    key: &str,
    why: &WatermarkError,
) -> Result<Processed, Transient> {
    tracing::warn!(community_media_id = record.community_media_id, reason = %why, "community copy cannot be published");
    app.store.fail_community(record).await.map_err(transient)?;
    app.blob
        .delete(&app.config.general_bucket, key)
        .await
        .map_err(transient)?;
    Ok(Processed::Failed)
}

/// Handles one SQS batch of S3 notifications: the messages to redeliver are its batch item
/// failures.
pub async fn handle_batch(app: &App, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for message in event.records {
        let id = message.message_id.unwrap_or_default();
        // An s3:TestEvent (sent when the notification is configured) has no Records and is
        // done with. Anything else that is not an S3 event, or names a key that does not
        // decode, can never succeed: it is reported failed so that, after the queue's
        // maxReceiveCount, it lands in the DLQ for an operator instead of vanishing.
        let Some(keys) = message.body.as_deref().and_then(staged_keys) else {
            tracing::error!(message_id = %id, "not an S3 event: left for the dead-letter queue");
            response.add_failure(id);
            continue;
        };
        for key in keys {
            match process_staged(app, &key).await {
                Ok(outcome) => tracing::info!(?outcome, "staged object processed"),
                Err(e) => {
                    tracing::error!(error = %Report(&e), message_id = %id, "staged object will be retried");
                    response.add_failure(id.clone());
                    break;
                }
            }
        }
    }
    response
}

/// The object keys an SQS message body names: none for S3's test event, `None` for a body that
/// is no S3 notification or names a key that does not decode.
fn staged_keys(body: &str) -> Option<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct TestEvent {
        #[serde(rename = "Event")]
        event: String,
    }
    if serde_json::from_str::<TestEvent>(body).is_ok_and(|t| t.event == "s3:TestEvent") {
        return Some(Vec::new());
    }
    let event: S3Event = serde_json::from_str(body).ok()?;
    event
        .records
        .iter()
        .map(|r| r.s3.object.key.as_deref().and_then(decode_key))
        .collect()
}

/// S3 event keys are URL-encoded (spaces as `+`).
pub fn decode_key(raw: &str) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staged_object_without_a_record_is_an_orphan_only_after_the_grace_period() {
        assert!(!is_orphan(1_000, Some(1_000)));
        assert!(!is_orphan(1_000 + STAGING_GRACE_S - 1, Some(1_000)));
        assert!(is_orphan(1_000 + STAGING_GRACE_S, Some(1_000)));
        assert!(is_orphan(1_000, None));
    }

    #[test]
    fn message_bodies_name_their_keys_or_are_refused() {
        let event = include_str!("../../../events/watermark/sqs-s3-object-created.json");
        let event: SqsEvent = serde_json::from_str(event).unwrap();
        let body = event.records[0].body.as_deref().unwrap();
        assert_eq!(staged_keys(body).unwrap().len(), 1);
        let test = include_str!("../../../events/watermark/s3-test-event.json");
        let test: SqsEvent = serde_json::from_str(test).unwrap();
        assert_eq!(
            staged_keys(test.records[0].body.as_deref().unwrap()),
            Some(vec![])
        );
        assert_eq!(staged_keys("not json"), None);
        assert_eq!(staged_keys(r#"{"Records":[{"foo":1}]}"#), None);
    }

    #[test]
    fn event_keys_are_url_decoded() {
        assert_eq!(
            decode_key("staging/a+b%2Bc.png").as_deref(),
            Some("staging/a b+c.png")
        );
        assert_eq!(decode_key("bad%2"), None);
    }
}
