//! Saving a community session into the caller's library: exactly once per (user, session), charged
//! once, and answered with 200 only when every media object of the copy is in place.

use crate::domain::{now_millis, rfc3339_millis, SessionId, UserId};
use crate::error::{AppError, SESSION_CREATE};
use crate::store::ids::counters;
use crate::store::items::{
    ActivityItem, SaveRecord, SaveState, SessionItem, SessionMedia, SessionState,
};
use crate::store::{keys, ClaimRefused, Settled};
use crate::App;
use futures_util::StreamExt;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};

/// The documented message of every 5xx this use case answers besides pricing.
pub const FAILED: &str = "Failed to save session";
/// 404 message.
pub const NOT_FOUND: &str = "Session not found or not public";
/// 403 message.
pub const NOT_SHARED: &str = "This session is not shared to the community";
/// `importSource` of a saved copy.
pub const IMPORT_SOURCE: &str = "community";

/// A completed save.
#[derive(Debug, PartialEq, Eq)]
pub struct Saved {
    /// The copy in the caller's library.
    pub session_id: SessionId,
    /// True when this request charged nothing: the session was saved (or being saved) before.
    pub reused: bool,
}

type Source = Option<(SessionItem, Vec<SessionMedia>)>;

/// Saves community session `source` for `user`.
pub async fn save_community_session(
    app: &App,
    user: &UserId,
    source: SessionId,
) -> Result<Saved, AppError> {
    let internal = |e: crate::store::StoreError| AppError::internal(FAILED, e);
    // Independent reads, issued together: one round trip of latency before the claim.
    let (record, src, priced) = tokio::join!(
        app.store.save_record(user, source),
        app.store.session(source),
        app.store.pricing_and_user(SESSION_CREATE, user),
    );
    let (record, src) = (record.map_err(internal)?, src.map_err(internal)?);
    if let Some(record) = record {
        return settle_existing(app, user, record, &src).await;
    }

    // Every refusal below is decided before the first write.
    let (session, media) = src
        .as_ref()
        .filter(|(s, _)| s.is_public && s.state == SessionState::Ready)
        .ok_or(AppError::NotFound(NOT_FOUND))?;
    if !session.shared_to_community {
        return Err(AppError::Forbidden(NOT_SHARED));
    }
    let (pricing, profile) = priced.map_err(internal)?;
    let pricing = pricing.ok_or(AppError::PricingMissing(SESSION_CREATE))?;
    let (current, premium) = profile.map_or((0, false), |p| (p.credits, p.is_premium));
    if pricing.premium_only && !premium {
        return Err(AppError::PremiumOnly(SESSION_CREATE));
    }
    let insufficient = |current| AppError::InsufficientCredits {
        required: pricing.credits,
        current,
        feature: SESSION_CREATE,
    };
    if current < pricing.credits {
        return Err(insufficient(current));
    }

    let id = SessionId(
        app.store
            .ids()
            .next(counters::SESSION)
            .await
            .map_err(internal)?,
    );
    let now = now_millis();
    let activity = ActivityItem {
        pk: keys::user(user),
        sk: keys::activity(now, &uuid::Uuid::new_v4().simple().to_string()),
        action: "community_session_saved".into(),
        feature: SESSION_CREATE.into(),
        details: json!({ "sourceSessionId": source, "sessionId": id, "credits": pricing.credits }),
        at: rfc3339_millis(now),
    };
    let record = SaveRecord {
        pk: keys::user(user),
        sk: keys::save(source),
        source_session_id: source,
        session_id: id,
        state: SaveState::Copying,
        charged: pricing.credits,
        activity_sk: activity.sk.clone(),
        created_at: rfc3339_millis(now),
        created_at_ms: now,
        released: false,
    };
    let copy = SessionItem {
        pk: keys::session(id),
        sk: keys::SESSION.into(),
        session_id: id,
        owner_id: user.clone(),
        title: session.title.clone(),
        category: session.category.clone(),
        settings: session.settings.clone(),
        metadata: session.metadata.clone(),
        is_public: false,
        shared_to_community: false,
        is_favorite: false,
        is_imported: session.is_imported,
        import_source: Some(IMPORT_SOURCE.into()),
        import_url: Some(format!("community:{source}")),
        subreddits: session.subreddits.clone(),
        media_count: media.len() as u32,
        state: SessionState::Copying,
        created_at: rfc3339_millis(now),
    };
    match app
        .store
        .claim_save(user, &record, &copy, &activity)
        .await
        .map_err(internal)?
    {
        Ok(()) => {
            finish(app, user, &record, &src).await?;
            Ok(Saved {
                session_id: id,
                reused: false,
            })
        }
        Err(ClaimRefused::AlreadySaved) => {
            // A concurrent request claimed first: join it.
            let record = app
                .store
                .save_record(user, source)
                .await
                .map_err(internal)?
                .ok_or_else(|| {
                    AppError::internal(FAILED, "save record vanished after a lost claim")
                })?;
            settle_existing(app, user, record, &src).await
        }
        Err(ClaimRefused::InsufficientCredits) => {
            // Only the error body needs the balance; the decision was the transaction's.
            let (_, profile) = app
                .store
                .pricing_and_user(SESSION_CREATE, user)
                .await
                .map_err(internal)?;
            Err(insufficient(profile.map_or(0, |p| p.credits)))
        }
    }
}

/// A save record exists: answer with its session, once its copy is complete. While the request
/// that claimed it is still copying, wait for it (no duplicate copies); if that request gave up or
/// went quiet for longer than the stall time, finish the copy here (it is idempotent).
async fn settle_existing(
    app: &App,
    user: &UserId,
    mut record: SaveRecord,
    src: &Source,
) -> Result<Saved, AppError> {
    let stall = app.config.save_stall_ms as i64;
    let mut pause = std::time::Duration::from_millis(50);
    while record.state == SaveState::Copying
        && !record.released
        && now_millis() - record.created_at_ms < stall
    {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(400));
        record = app
            .store
            .save_record(user, record.source_session_id)
            .await
            .map_err(|e| AppError::internal(FAILED, e))?
            // Gone: its owner rolled it back because it can never complete.
            .ok_or_else(|| AppError::internal(FAILED, "the save was rolled back"))?;
    }
    if record.state == SaveState::Copying {
        finish(app, user, &record, src).await?;
    }
    Ok(Saved {
        session_id: record.session_id,
        reused: true,
    })
}

/// Where the copy of the media at `order` goes.
fn destination(user: &UserId, session: SessionId, order: u32, src_key: &str) -> String {
    let name = src_key.rsplit('/').next().unwrap_or("media");
    format!(
        "{}/{user}/manual-sessions/{session}/{order:04}-{name}",
        crate::config::USER_PREFIX
    )
}

fn copy_prefix(user: &UserId, session: SessionId) -> String {
    format!(
        "{}/{user}/manual-sessions/{session}/",
        crate::config::USER_PREFIX
    )
}

/// Copies every general-bucket media object (idempotent: fixed destination keys) and completes the
/// save; rolls it back if a source object is gone for good.
async fn finish(
    app: &App,
    user: &UserId,
    record: &SaveRecord,
    src: &Source,
) -> Result<(), AppError> {
    let Some((_, media)) = src else {
        return roll_back(app, user, record, "the source session no longer exists").await;
    };
    let general = &app.config.general_bucket;
    let target_bucket = &app.config.user_media_bucket;
    let copies: Vec<SessionMedia> = media
        .iter()
        .map(|m| match (&m.bucket, &m.key) {
            (Some(b), Some(k)) if b == general => {
                let key = destination(user, record.session_id, m.order, k);
                SessionMedia {
                    url: app.blob.object_url(target_bucket, &key),
                    bucket: Some(target_bucket.clone()),
                    key: Some(key),
                    ..m.clone()
                }
            }
            _ => m.clone(),
        })
        .collect();

    // Bounded parallel copies. After the first failure no new copy starts, but every copy in
    // flight is awaited, so nothing lands in the prefix after a rollback has cleaned it.
    let jobs: Vec<(String, String, Option<u64>)> = media
        .iter()
        .zip(&copies)
        .filter_map(|(from, to)| match (&from.key, &to.key) {
            (Some(f), Some(t)) if f != t => Some((f.clone(), t.clone(), from.size)),
            _ => None,
        })
        .collect();
    let stop = AtomicBool::new(false);
    let stop = &stop;
    let results: Vec<Result<(), crate::blob::BlobError>> = futures_util::stream::iter(jobs)
        .map(|(src_key, dst_key, size)| async move {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let copied = app
                .blob
                .copy(general, &src_key, target_bucket, &dst_key, size)
                .await;
            if copied.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            copied
        })
        .buffer_unordered(app.config.copy_concurrency)
        .collect()
        .await;
    let errors: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    if let Some(gone) = errors.iter().find(|e| e.missing) {
        return roll_back(app, user, record, gone).await;
    }
    if let Some(err) = errors.into_iter().next() {
        // Transient: the save stays `copying`, charged once; a retry finishes it without waiting.
        if let Err(e) = app.store.release_save(user, record).await {
            tracing::warn!(error = %e, "could not release a pending save");
        }
        return Err(AppError::internal(FAILED, err));
    }

    match app
        .store
        .complete_save(user, record, &copies)
        .await
        .map_err(|e| AppError::internal(FAILED, e))?
    {
        Settled::Done => Ok(()),
        Settled::Lost => {
            // Rolled back by a concurrent request while we copied: leave nothing behind.
            clean_copies(app, user, record).await;
            Err(AppError::internal(
                FAILED,
                "save was rolled back concurrently",
            ))
        }
    }
}

/// Undoes a save that can never complete: refund, remove session and record, delete copies.
async fn roll_back(
    app: &App,
    user: &UserId,
    record: &SaveRecord,
    why: impl std::fmt::Display,
) -> Result<(), AppError> {
    tracing::warn!(session_id = %record.session_id, %why, "rolling back a save that cannot complete");
    let settled = app
        .store
        .roll_back_save(user, record)
        .await
        .map_err(|e| AppError::internal(FAILED, e))?;
    if settled == Settled::Lost {
        // Someone else settled it first: completed (then it is whole) or rolled back.
        let now = app
            .store
            .save_record(user, record.source_session_id)
            .await
            .map_err(|e| AppError::internal(FAILED, e))?;
        if now.is_some_and(|r| r.session_id == record.session_id && r.state == SaveState::Ready) {
            return Ok(());
        }
    }
    clean_copies(app, user, record).await;
    Err(AppError::internal(
        FAILED,
        format!("save rolled back: {why}"),
    ))
}

async fn clean_copies(app: &App, user: &UserId, record: &SaveRecord) {
    let prefix = copy_prefix(user, record.session_id);
    if let Err(e) = app
        .blob
        .delete_prefix(&app.config.user_media_bucket, &prefix)
        .await
    {
        tracing::error!(error = %e, %prefix, "could not delete the copies of a rolled-back save");
    }
}
