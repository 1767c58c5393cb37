//! Moderation: users report community copies; enough reporters (or one report of non-consensual
//! or underage content) hide a copy at once, through the same removal path as an unshare (its
//! public object deleted and invalidated on the CDN, its record kept for review); an operator
//! restores it or takes it down for good, which blocklists its content hash; the publisher
//! refuses (`blocked`) any later copy whose content matches the blocklist.
//!
//! Removal first, review after: a hide costs one conditional transaction and is never undone by
//! a lost race (only `ready` copies are hidden, only `hidden` ones restored, each conditioned on
//! the version read). Reporters are never named to the owner: the owner's activity log says what
//! happened and why, by reason and count.

use crate::blob::Bounded;
use crate::domain::{rfc3339_millis, sniff_mime, UserId};
use crate::error::{AppError, Report};
use crate::http::Field;
use crate::perceptual::{hash_image_and_crops, PdqHash, CHUNKS, MATCH_DISTANCE};
use crate::service::activity;
use crate::service::rounds::{settle, Round, ROUNDS};
use crate::service::unpublish;
use crate::store::items::{
    BlockedHashItem, CommunityMediaItem, CommunityStatus, ReportItem, ReportSummaryItem,
};
use crate::store::{keys, reason_attribute, RateSlot, Reported, StoreError, Written};
use crate::App;
use serde_json::{json, Value};

/// The reasons a report may give.
pub const REASONS: [&str; 6] = [
    "spam",
    "illegal",
    "nonconsensual",
    "underage",
    "copyright",
    "other",
];
/// Reasons that hide a copy at the first report (removal first, review after).
pub const HIDE_AT_ONCE: [&str; 2] = ["nonconsensual", "underage"];
/// Longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 1000;

/// 400: the reason is missing or not one of [`REASONS`].
pub const INVALID_REASON: &str = "Invalid reason";
/// 400: the note is not a string of at most [`MAX_NOTE_CHARS`] characters.
pub const INVALID_NOTE: &str = "Invalid note";
/// 400: the body is not the documented object.
pub const INVALID_BODY: &str = "Invalid request body";
/// 400: the path id is not a positive JS-safe integer.
pub const INVALID_ID: &str = "Invalid community media ID";
/// 404: unknown, not ready, hidden or removed.
pub const NOT_FOUND: &str = "Community media not found";
/// 429: more than `JOIP_REPORTS_PER_HOUR` new reports within an hour.
pub const TOO_MANY: &str = "Too many reports";
/// 500 of the report route.
pub const FAILED: &str = "Failed to report media";
/// Feature key of moderation entries in the owner's activity log.
pub const MODERATION: &str = "community_moderation";
/// Where a hidden copy's object is held for review (never served: the CDN serves `community/`).
pub const HELD_PREFIX: &str = "held/";

/// The body of `POST /api/community/media/{id}/report`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// One of [`REASONS`].
    #[serde(default)]
    pub reason: Field<Value>,
    /// Free text, at most [`MAX_NOTE_CHARS`] characters.
    #[serde(default)]
    pub note: Field<Value>,
}

impl ReportRequest {
    /// The reason and note, or the documented 400 (the reason first).
    pub fn checked(&self) -> Result<(&'static str, Option<String>), AppError> {
        let reason = match &self.reason {
            Field::Value(Value::String(r)) => REASONS.iter().find(|known| *known == r),
            _ => None,
        }
        .ok_or(AppError::bad_request(INVALID_REASON))?;
        let note = match &self.note {
            Field::Absent | Field::Null => None,
            Field::Value(Value::String(n)) if n.chars().count() <= MAX_NOTE_CHARS => {
                Some(n.clone())
            }
            Field::Value(_) => return Err(AppError::bad_request(INVALID_NOTE)),
        };
        Ok((reason, note))
    }
}

/// Reports community copy `id` for `caller`: counted once per user (until a restore resolves
/// the reports), at most `JOIP_REPORTS_PER_HOUR` new reports per user in any hour; hides the copy
/// when its distinct reporters reach `JOIP_REPORT_HIDE_THRESHOLD` or at the first report of
/// [`HIDE_AT_ONCE`].
pub async fn report(
    app: &App,
    caller: &UserId,
    id: u64,
    request: &ReportRequest,
) -> Result<(), AppError> {
    let (reason, note) = request.checked()?;
    let failed = |e: StoreError| AppError::internal(FAILED, e);
    let limit = app.config.reports_per_hour;
    settle("report", ROUNDS, (), |()| {
        let note = note.clone();
        async move {
            let now = app.clock.now_millis();
            let ((record, summary), ring) = tokio::try_join!(
                app.store.record_and_reports(id),
                app.store.report_rate(caller)
            )
            .map_err(failed)?;
            let round = summary.as_ref().map_or(0, |s| s.round);
            let Some(record) = record.filter(|r| r.status == CommunityStatus::Ready) else {
                // A user who reported it already gets the same answer as before (a report sent
                // again after a lost answer, perhaps the one that hid it); anyone else 404.
                let again = app
                    .store
                    .report_exists(id, round, caller)
                    .await
                    .map_err(failed)?;
                return match again {
                    true => Ok(Round::Done(false)),
                    false => Err(AppError::NotFound(NOT_FOUND)),
                };
            };
            let rate = match &ring {
                Some(ring) => {
                    let index = ring.next % limit;
                    let used = ring.slots.get(&format!("slot{index}")).copied();
                    if used.is_some_and(|at| at > now - 3_600_000) {
                        // Unless this user already reported it: that answers 200 and counts once.
                        let again = app
                            .store
                            .report_exists(id, round, caller)
                            .await
                            .map_err(failed)?;
                        return match again {
                            true => Ok(Round::Done(false)),
                            false => Err(AppError::TooManyRequests(TOO_MANY)),
                        };
                    }
                    RateSlot {
                        read: Some(ring.next),
                        index,
                        size: limit,
                    }
                }
                None => RateSlot {
                    read: None,
                    index: 0,
                    size: limit,
                },
            };
            let item = ReportItem {
                pk: keys::community(id),
                sk: keys::report(round, caller),
                user_id: caller.clone(),
                reason: reason.to_string(),
                note,
                reported_at: rfc3339_millis(now),
            };
            Ok(
                match app
                    .store
                    .add_report(&record, round, &item, rate, now)
                    .await
                    .map_err(failed)?
                {
                    Reported::Counted => Round::Done(true),
                    Reported::Again => Round::Done(false),
                    Reported::NotReady => return Err(AppError::NotFound(NOT_FOUND)),
                    Reported::Stale => Round::Again(()),
                },
            )
        }
    })
    .await?
    .map_err(|e| AppError::internal(FAILED, e))?;
    // Also after a repeat: a report whose hide failed (a 500) completes it when sent again.
    let due = HIDE_AT_ONCE.contains(&reason) || {
        let (_, summary) = app.store.record_and_reports(id).await.map_err(failed)?;
        summary.is_some_and(|s| s.reporters >= app.config.report_hide_threshold)
    };
    if due {
        let why = if HIDE_AT_ONCE.contains(&reason) {
            format!("reported as {reason}")
        } else {
            format!(
                "reported by {} or more users",
                app.config.report_hide_threshold
            )
        };
        hide(app, id, &why)
            .await
            .map_err(|e| AppError::internal(FAILED, e))?;
    }
    tracing::info!(community_media_id = id, reason, "reported");
    Ok(())
}

/// A moderation step failed (the operator or the client tries again).
#[derive(Debug, thiserror::Error)]
pub enum ModerationError {
    /// Storage failed.
    #[error("moderation: storage")]
    Store(#[from] StoreError),
    /// An object could not be copied or read.
    #[error("moderation: objects")]
    Blob(#[from] crate::blob::BlobError),
    /// Unpublishing failed.
    #[error("moderation: unpublish")]
    Unpublish(#[from] unpublish::UnpublishError),
    /// The copy is not in a state the step applies to.
    #[error("community media {0} is {1}")]
    State(u64, &'static str),
    /// Rounds ran out against concurrent changes.
    #[error("community media {0} kept changing")]
    Contended(u64),
}

fn contended(id: u64) -> impl Fn(crate::service::rounds::Contended) -> ModerationError {
    move |_| ModerationError::Contended(id)
}

/// Hides a `ready` copy: its object copied to [`HELD_PREFIX`] for review, then (one transaction)
/// the record `hidden` and out of the feed with its public object's removal owed, then the object
/// deleted and its CDN path invalidated (the sweep finishes what fails). `false` if it was not
/// ready (already hidden, removed, unshared): nothing done.
pub async fn hide(app: &App, id: u64, why: &str) -> Result<bool, ModerationError> {
    let general = &app.config.general_bucket;
    // The state between rounds: the held copy an earlier round made, if any.
    let hidden = settle("hide", ROUNDS, None, |copied: Option<String>| async move {
        let record = app.store.community_media(id).await?;
        let Some(record) = record.filter(|r| r.status == CommunityStatus::Ready) else {
            // Unshared or hidden by another request meanwhile: a copy this made that no record
            // names is removed (through the outbox, so a failure now is finished by the sweep).
            if let Some(held) = copied {
                let now = app.store.community_media(id).await?;
                if now.and_then(|r| r.held_key).as_ref() != Some(&held) {
                    let owed = [unpublish::owe(
                        general,
                        &held,
                        false,
                        app.clock.now_millis(),
                    )];
                    app.store.owe_unpublish(&owed).await?;
                    unpublish::drain_now(app, &owed).await;
                }
            }
            return Ok(Round::Done(None));
        };
        let held = held_key(&record.key);
        let kept = match app
            .blob
            .copy(general, &record.key, general, &held, None)
            .await
        {
            Ok(()) => Some(held),
            // Its object is already gone: nothing to hold, the record is hidden all the same.
            Err(e) if e.missing => None,
            Err(e) => return Err(ModerationError::from(e)),
        };
        let owed = [unpublish::owe(
            general,
            &record.key,
            true,
            app.clock.now_millis(),
        )];
        match app
            .store
            .hide_community(&record, kept.as_deref(), &owed)
            .await?
        {
            Written::Done => {
                unpublish::drain_now(app, &owed).await;
                Ok(Round::Done(Some(record)))
            }
            Written::Stale => Ok(Round::Again(kept)),
        }
    })
    .await?
    .map_err(contended(id))?;
    let Some(record) = hidden else {
        return Ok(false);
    };
    tracing::warn!(
        community_media_id = id,
        reason = why,
        "community media hidden"
    );
    log(app, &record, "community_media_hidden", why).await;
    Ok(true)
}

/// Restores a `hidden` copy: its held object published again at its key (served as its bytes),
/// then (one transaction) `ready` and back in the feed, its reports resolved, the held copy's
/// removal owed. A copy unshared meanwhile gets nothing public: what this wrote is withdrawn.
pub async fn restore(app: &App, id: u64, why: &str) -> Result<(), ModerationError> {
    let general = &app.config.general_bucket;
    let restored = settle("restore", ROUNDS, false, |copied| async move {
        let (record, summary) = app.store.record_and_reports(id).await?;
        let Some(record) = record.filter(|r| r.status == CommunityStatus::Hidden) else {
            if copied {
                withdraw_unless_ready(app, id).await?;
            }
            return Ok(Round::Done(None));
        };
        let Some(held) = record.held_key.clone() else {
            return Err(ModerationError::State(id, "hidden without a held object"));
        };
        let head = app.blob.get_range(general, &held, 1).await?;
        let public = (record.mime_type.as_str(), head.e_tag.as_str());
        (app.blob)
            .copy_public((general, &held), (general, &record.key), None, public)
            .await?;
        let owed = [unpublish::owe(
            general,
            &held,
            false,
            app.clock.now_millis(),
        )];
        let round = summary.map_or(0, |s| s.round) + 1;
        match app.store.restore_community(&record, round, &owed).await? {
            Written::Done => {
                unpublish::drain_now(app, &owed).await;
                Ok(Round::Done(Some(record)))
            }
            Written::Stale => Ok(Round::Again(true)),
        }
    })
    .await?
    .map_err(contended(id))?;
    let Some(record) = restored else {
        return Err(ModerationError::State(id, "not hidden"));
    };
    log(app, &record, "community_media_restored", why).await;
    Ok(())
}

/// A restore wrote the public object, then found the copy no longer hidden: unless another
/// restore made it ready, nothing may be public at its key.
async fn withdraw_unless_ready(app: &App, id: u64) -> Result<(), ModerationError> {
    let record = app.store.community_media(id).await?;
    if record
        .as_ref()
        .is_some_and(|r| r.status == CommunityStatus::Ready)
    {
        return Ok(());
    }
    if let Some(record) = record {
        let general = &app.config.general_bucket;
        let owed = [unpublish::owe(
            general,
            &record.key,
            true,
            app.clock.now_millis(),
        )];
        app.store.owe_unpublish(&owed).await?;
        unpublish::drain(app, &owed).await?;
    }
    Ok(())
}

/// Takes a copy down for good: `removed`, out of the feed, every object of it unpublished (the
/// public one invalidated on the CDN), its reports closed and its content hash blocklisted, in
/// one transaction; then the objects are removed. Idempotent.
pub async fn take_down(app: &App, id: u64, why: &str) -> Result<Option<String>, ModerationError> {
    let taken = settle("take down", ROUNDS, (), |()| async move {
        let (record, summary) = app.store.record_and_reports(id).await?;
        let Some(record) = record else {
            return Err(ModerationError::State(id, "gone"));
        };
        if record.status == CommunityStatus::Removed {
            return Ok(Round::Done(None));
        }
        let hashes = match &record.content_hash {
            Some(primary) => Some(ContentHashes {
                primary: primary.clone(),
                crops: record.crop_hashes.clone(),
            }),
            None => hash_of_record(app, &record).await?,
        };
        // Blocklisted first (idempotent): a takedown that fails after this leaves the content
        // blocked, never the reverse.
        if let Some(hashes) = &hashes {
            block(app, hashes, Some(why), Some(id)).await?;
        }
        let now = app.clock.now_millis();
        let owed = unpublish::owed_by(&record, now);
        let round = summary.map_or(0, |s| s.round) + 1;
        match app.store.take_down_community(&record, round, &owed).await? {
            Written::Done => {
                unpublish::drain_now(app, &owed).await;
                Ok(Round::Done(Some((record, hashes.map(|h| h.primary)))))
            }
            Written::Stale => Ok(Round::Again(())),
        }
    })
    .await?
    .map_err(contended(id))?;
    let Some((record, hash)) = taken else {
        return Ok(None);
    };
    tracing::warn!(
        community_media_id = id,
        reason = why,
        "community media taken down"
    );
    log(app, &record, "community_media_removed", why).await;
    Ok(hash)
}

/// The content hashes of a copy published before hashes were kept: from its public or held
/// object.
async fn hash_of_record(
    app: &App,
    record: &CommunityMediaItem,
) -> Result<Option<ContentHashes>, ModerationError> {
    let general = &app.config.general_bucket;
    for key in [Some(&record.key), record.held_key.as_ref()]
        .into_iter()
        .flatten()
    {
        match app.blob.get_range(general, key, SNIFF).await {
            Ok(head) => return Ok(Some(content_hash(app, general, key, &head).await?)),
            Err(e) if e.missing => continue,
            Err(e) => return Err(ModerationError::from(e)),
        }
    }
    Ok(None)
}

/// Bytes read to tell an object's format.
const SNIFF: u64 = 64;

/// What a copy's content is, for the blocklist: `pdq:{hex}` of an image (a GIF by its first
/// frame) and of its centre crops (`perceptual::CROP_MARGINS`), or `sha256:{hex}` of anything
/// else (no crops).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentHashes {
    /// The content's own hash (stored as the record's `contentHash`, looked up at publish).
    pub primary: String,
    /// Hashes of its centre crops (blocklisted with it on a takedown).
    pub crops: Vec<String>,
}

impl ContentHashes {
    /// Every hash a takedown blocklists.
    pub fn all(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.primary).chain(&self.crops)
    }
}

/// The content hashes of the object at `bucket/key` whose first bytes and ETag are `head`: an
/// image up to the watermark's size and pixel limits perceptually, anything else by the SHA-256
/// of exactly those bytes (streamed, `If-Match` their ETag).
pub async fn content_hash(
    app: &App,
    bucket: &str,
    key: &str,
    head: &crate::blob::Head,
) -> Result<ContentHashes, crate::blob::BlobError> {
    let image = matches!(
        sniff_mime(&head.bytes),
        Some("image/jpeg" | "image/png" | "image/webp" | "image/gif")
    );
    if image && head.size <= app.config.watermark_max_bytes {
        if let Bounded::Whole(bytes) = app
            .blob
            .get_bounded(bucket, key, app.config.watermark_max_bytes)
            .await?
        {
            if let Some(hashes) = perceptual(app, bytes).await {
                return Ok(hashes);
            }
        }
    }
    let sha = app.blob.sha256(bucket, key, &head.e_tag).await?;
    Ok(ContentHashes {
        primary: format!("sha256:{sha}"),
        crops: Vec::new(),
    })
}

/// The content hashes of bytes in memory (see [`ContentHashes`]).
pub fn hash_bytes(bytes: &[u8], max_pixels: u64) -> ContentHashes {
    match hash_image_and_crops(bytes, max_pixels) {
        Ok((whole, crops)) => pdq_hashes(whole, &crops),
        Err(e) => {
            tracing::info!(error = %Report(&e), "not perceptually hashable; hashed by its bytes");
            ContentHashes {
                primary: sha256_hex(bytes),
                crops: Vec::new(),
            }
        }
    }
}

fn pdq_hashes(whole: PdqHash, crops: &[PdqHash]) -> ContentHashes {
    ContentHashes {
        primary: format!("pdq:{}", whole.to_hex()),
        crops: crops
            .iter()
            .map(|c| format!("pdq:{}", c.to_hex()))
            .collect(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The owner's log entry for a copy the blocklist refused.
pub async fn log_blocked(app: &App, record: &CommunityMediaItem) {
    log(
        app,
        record,
        "community_media_blocked",
        "matches the blocklist",
    )
    .await;
}

/// The perceptual hashes of an image's bytes, off the async threads; `None` if it cannot be
/// hashed (the caller hashes its bytes).
pub async fn perceptual(app: &App, bytes: Vec<u8>) -> Option<ContentHashes> {
    let max_pixels = app.config.watermark_max_pixels;
    let span = tracing::Span::current();
    let hashed = tokio::task::spawn_blocking(move || {
        span.in_scope(|| hash_image_and_crops(&bytes, max_pixels))
    })
    .await
    .ok()?;
    match hashed {
        Ok((whole, crops)) => Some(pdq_hashes(whole, &crops)),
        Err(e) => {
            tracing::info!(error = %Report(&e), "not perceptually hashable; hashed by its bytes");
            None
        }
    }
}

/// The blocklisted hash `hash` matches, if any: the same `sha256:` exactly, or a `pdq:` hash
/// within [`MATCH_DISTANCE`] bits. No scan: each blocked PDQ hash is filed in 16 buckets, one per
/// 16-bit chunk; two hashes within 31 bits differ in at most one bit in at least one of their 16
/// chunks (pigeonhole: 16 chunks x 2 bits > 31), so looking up each chunk's own bucket and the 16
/// buckets one bit away (272 keys, three BatchGetItem requests at once) finds every match,
/// whatever the blocklist's size.
pub async fn blocklisted(app: &App, hash: &str) -> Result<Option<String>, StoreError> {
    let Some(pdq) = hash.strip_prefix("pdq:").and_then(PdqHash::from_hex) else {
        return Ok(app.store.blocked_hash(hash).await?.map(|b| b.hash));
    };
    let candidates = app.store.blocked_in_buckets(&probes(&pdq)).await?;
    Ok(candidates
        .into_iter()
        .filter_map(|hex| PdqHash::from_hex(&hex))
        .filter(|c| c.distance(&pdq) <= MATCH_DISTANCE)
        .min_by_key(|c| c.distance(&pdq))
        .map(|c| format!("pdq:{}", c.to_hex())))
}

// The lookup's guarantee holds only while a match leaves some chunk at most one bit off.
const _: () = assert!(MATCH_DISTANCE < 2 * CHUNKS as u32);

/// The index buckets a lookup of `hash` reads: each chunk as it is and with each one of its 16
/// bits flipped.
pub fn probes(hash: &PdqHash) -> Vec<(usize, u16)> {
    (0..CHUNKS)
        .flat_map(|i| {
            let chunk = hash.chunk(i);
            std::iter::once((i, chunk)).chain((0..16).map(move |bit| (i, chunk ^ (1 << bit))))
        })
        .collect()
}

/// Adds an image (or any file, by SHA-256) from elsewhere to the blocklist: its hash (its crop
/// variants are blocked with it).
pub async fn block_file(
    app: &App,
    bytes: Vec<u8>,
    why: Option<&str>,
) -> Result<String, StoreError> {
    let max_pixels = app.config.watermark_max_pixels;
    let hashes = tokio::task::spawn_blocking(move || hash_bytes(&bytes, max_pixels))
        .await
        .map_err(|e| StoreError::new("hash a file", e))?;
    block(app, &hashes, why, None).await?;
    Ok(hashes.primary)
}

/// Blocklists `hashes` (the primary listed, its crops filed for lookups only), each its own
/// idempotent transaction.
async fn block(
    app: &App,
    hashes: &ContentHashes,
    why: Option<&str>,
    community_media_id: Option<u64>,
) -> Result<(), StoreError> {
    let now = rfc3339_millis(app.clock.now_millis());
    for hash in hashes.all() {
        let listed = *hash == hashes.primary;
        let item = BlockedHashItem {
            pk: keys::blocked(hash),
            sk: keys::BLOCKED.into(),
            hash: hash.clone(),
            reason: why.map(str::to_string),
            community_media_id,
            variant_of: (!listed).then(|| hashes.primary.clone()),
            added_at: now.clone(),
            gsi1pk: listed.then(|| keys::BLOCKLIST.into()),
            gsi1sk: listed.then(|| format!("{now}#{hash}")),
        };
        app.store.add_blocked(&item).await?;
    }
    Ok(())
}

/// The blocklist, oldest first.
pub async fn blocklist(app: &App) -> Result<Vec<BlockedHashItem>, StoreError> {
    app.store
        .gsi_partition("list blocklist", keys::BLOCKLIST)
        .await
}

/// The copies with open reports, `hidden` or `visible` (still ready), oldest report first:
/// `joip-admin reports list`.
pub async fn open_reports(app: &App, status: Option<&str>) -> Result<Vec<Value>, StoreError> {
    let summaries: Vec<ReportSummaryItem> = app
        .store
        .gsi_partition("list open reports", keys::OPEN_REPORTS)
        .await?;
    let mut out = Vec::new();
    for summary in summaries {
        let Some(record) = app
            .store
            .community_media(summary.community_media_id)
            .await?
        else {
            continue;
        };
        let state = match record.status {
            CommunityStatus::Hidden => "hidden",
            CommunityStatus::Ready => "visible",
            _ => continue,
        };
        if status.is_some_and(|s| s != state) {
            continue;
        }
        let reasons: serde_json::Map<String, Value> = REASONS
            .iter()
            .filter_map(|r| {
                let n = summary.reason_counts.get(&reason_attribute(r)).copied()?;
                (n > 0).then(|| (r.to_string(), json!(n)))
            })
            .collect();
        out.push(json!({
            "communityMediaId": summary.community_media_id,
            "status": state,
            "reporters": summary.reporters,
            "reasons": reasons,
            "firstReportedAt": summary.first_reported_at,
            "lastReportedAt": summary.last_reported_at,
        }));
    }
    Ok(out)
}

/// The private key a hidden copy's object is held at.
pub fn held_key(public_key: &str) -> String {
    format!("{HELD_PREFIX}{public_key}")
}

/// An entry in the owner's activity log (never naming a reporter).
async fn log(app: &App, record: &CommunityMediaItem, action: &str, why: &str) {
    let details = json!({
        "communityMediaId": record.community_media_id,
        "mediaId": record.media_id,
        "reason": why,
    });
    let entry = activity::entry(
        &record.owner_id,
        app.clock.now_millis(),
        action,
        MODERATION,
        details,
    );
    activity::record(app, &entry).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str) -> ReportRequest {
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn only_documented_reasons_and_short_notes_are_taken() {
        assert_eq!(
            request(r#"{"reason":"spam"}"#).checked().unwrap(),
            ("spam", None)
        );
        let long = "é".repeat(MAX_NOTE_CHARS);
        let body = json!({ "reason": "other", "note": long }).to_string();
        assert_eq!(request(&body).checked().unwrap().1.unwrap(), long);
        let message = |body: &str| request(body).checked().unwrap_err().status_and_body().1;
        for bad in [
            r#"{}"#,
            r#"{"reason":null}"#,
            r#"{"reason":"SPAM"}"#,
            r#"{"reason":1}"#,
            r#"{"reason":"spam ","note":1}"#,
        ] {
            assert_eq!(message(bad)["message"], INVALID_REASON, "{bad}");
        }
        let too_long = json!({ "reason": "spam", "note": "x".repeat(MAX_NOTE_CHARS + 1) });
        for bad in [
            too_long.to_string(),
            r#"{"reason":"spam","note":5}"#.into(),
            r#"{"reason":"spam","note":["x"]}"#.into(),
        ] {
            assert_eq!(message(&bad)["message"], INVALID_NOTE, "{bad}");
        }
    }

    #[test]
    fn every_hash_within_the_match_distance_shares_a_probed_bucket() {
        // Seeded (a fixed xorshift): hashes at exactly the threshold, bits spread at random.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let mut bytes = [0u8; 32];
            bytes.iter_mut().for_each(|b| *b = next() as u8);
            let blocked = PdqHash(bytes);
            let mut near = bytes;
            let mut flipped = std::collections::BTreeSet::new();
            while flipped.len() < MATCH_DISTANCE as usize {
                flipped.insert((next() % 256) as usize);
            }
            for bit in &flipped {
                near[bit / 8] ^= 1 << (bit % 8);
            }
            let near = PdqHash(near);
            assert_eq!(near.distance(&blocked), MATCH_DISTANCE);
            let filed: Vec<(usize, u16)> = (0..CHUNKS).map(|i| (i, blocked.chunk(i))).collect();
            assert!(probes(&near).iter().any(|p| filed.contains(p)));
        }
        assert_eq!(probes(&PdqHash([0; 32])).len(), CHUNKS * 17);
    }

    #[test]
    fn a_hidden_object_is_held_outside_what_the_cdn_serves() {
        let held = held_key("community/ab/cd/7-x.jpg");
        assert_eq!(held, "held/community/ab/cd/7-x.jpg");
        assert!(!held.starts_with(crate::blob::keys::COMMUNITY_PREFIX));
    }
}
