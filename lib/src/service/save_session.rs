//! Saving a community session into the caller's library: exactly once per (user, session), charged
//! once, and answered with 200 only when every media object of the copy is in place.
//!
//! The life of a save: the media plan (every entry of the copy, with the source key of each object
//! to copy) is written under the new session's partition, inside the claim when it is small, else
//! just before it; one transaction claims the save, charges, checks that the source is still
//! public, and creates the session in state `copying` with a copy lease held by this request. The copier renews the lease as it copies; when every object is in
//! place a small fixed transaction marks the save `ready`. A copier that dies stops renewing:
//! whoever finds the lease lapsed (the next request for the same save, or the `save-reaper`) takes
//! the lease over and finishes from the same plan, skipping objects already copied. A copy that
//! can never finish is rolled back and refunded.

use crate::blob::keys::{self as object_keys, SESSION_MEDIA_PREFIX};
use crate::blob::{BlobError, ObjectInfo};
use crate::config::COPY_DEADLINE_MARGIN_MS;
use crate::domain::{now_millis, rfc3339_millis, SessionId, UserId};
use crate::error::{AppError, Report};
use crate::service::activity;
use crate::store::ids::counters;
use crate::store::items::{SaveRecord, SaveState, SessionItem, SessionMedia, SessionState};
use crate::store::{keys, media_chunks, ClaimRefused, StoreError, Written, CLAIM_PLAN_CHUNKS};
use crate::App;
use futures_util::StreamExt;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// The documented message of every 5xx this use case answers besides pricing.
pub const FAILED: &str = "Failed to save session";
/// The feature key that saving a community session is priced under.
pub const PRICED_FEATURE: &str = "session_create";
/// 404 message.
pub const NOT_FOUND: &str = "Session not found or not public";
/// 403 message.
pub const NOT_SHARED: &str = "This session is not shared to the community";
/// 422 message: one media entry of the session is too large to store in a copy.
pub const TOO_LARGE: &str = "This session is too large to save";
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

/// When a request must have answered: nobody waits past it, and no copy starts in its last
/// stretch ([`COPY_DEADLINE_MARGIN_MS`], or a quarter of the time left for a short-lived
/// invocation, e.g. `cargo lambda watch`'s default timeout of a few seconds).
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    end: Instant,
    last_copy_start: Instant,
}

impl Deadline {
    /// The earlier of the Lambda invocation's deadline (epoch ms, from its context) and
    /// `budget_ms` from now.
    pub fn new(lambda_deadline_ms: Option<u64>, budget_ms: u64) -> Self {
        let now = Instant::now();
        let budget = now + Duration::from_millis(budget_ms);
        // A deadline already (nearly) past when the request starts is no real Lambda's: cargo
        // lambda watch starts its clock before it builds the function. The budget stands in.
        let lambda = lambda_deadline_ms
            .map(|d| d.saturating_sub(now_millis().max(0) as u64))
            .filter(|left| *left > 1_000)
            .map(|left| now + Duration::from_millis(left));
        let end = lambda.map_or(budget, |l| l.min(budget));
        let margin = Duration::from_millis(COPY_DEADLINE_MARGIN_MS).min((end - now) / 4);
        Self {
            end,
            last_copy_start: end - margin,
        }
    }

    /// Whether a new copy may still start.
    fn may_start_copy(&self) -> bool {
        Instant::now() < self.last_copy_start
    }

    fn passed(&self) -> bool {
        Instant::now() >= self.end
    }
}

/// Saves community session `source` for `user`.
pub async fn save_community_session(
    app: &App,
    user: &UserId,
    source: SessionId,
    deadline: Deadline,
) -> Result<Saved, AppError> {
    // Independent reads, issued together: one round trip of latency before the claim.
    let (record, src, priced) = tokio::join!(
        app.store.save_record(user, source),
        app.store.session(source),
        app.store.pricing_and_user(PRICED_FEATURE, user),
    );
    if let Some(record) = record.map_err(internal)? {
        return Box::pin(settle_existing(app, record, deadline)).await;
    }

    // Every refusal below is decided before the first write.
    let src = src.map_err(internal)?;
    let (session, media) = shared_source(src.as_ref())?;
    let (pricing, profile) = priced.map_err(internal)?;
    let pricing = pricing.ok_or(AppError::PricingMissing(PRICED_FEATURE))?;
    let (current, premium) = profile.map_or((0, false), |p| (p.credits, p.is_premium));
    if pricing.premium_only && !premium {
        return Err(AppError::PremiumOnly(PRICED_FEATURE));
    }
    let insufficient = |current| AppError::InsufficientCredits {
        required: pricing.credits,
        current,
        feature: PRICED_FEATURE,
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
    let plan = media_plan(app, user, id, media)?;
    let chunks =
        media_chunks(&keys::session(id), &plan).ok_or(AppError::Unprocessable(TOO_LARGE))?;

    let now = app.clock.now_millis();
    let activity = activity::entry(
        user,
        now,
        "community_session_saved",
        PRICED_FEATURE,
        json!({ "sourceSessionId": source, "sessionId": id, "credits": pricing.credits }),
    );
    let lease = Lease::new();
    let lease_until = now + app.config.save_lease_ms as i64;
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
        user_id: user.clone(),
        lease_owner: Some(lease.owner.clone()),
        lease_until_ms: lease_until,
        gsi1pk: Some(keys::copying_saves(keys::copying_shard(user, source))),
        gsi1sk: Some(keys::lease_sort(lease_until)),
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
        media_count: plan.len() as u32,
        state: SessionState::Copying,
        created_at: rfc3339_millis(now),
    };

    // A small plan rides in the claim (one round trip fewer); a large one is put first, so the
    // claim never grows with the session.
    let plan_in_claim = chunks.len() <= CLAIM_PLAN_CHUNKS;
    let claimed = if plan_in_claim {
        app.store
            .claim_save(user, &record, &copy, &activity, &chunks)
            .await
    } else {
        match app.store.put_media_plan(&chunks).await {
            Ok(()) => {
                app.store
                    .claim_save(user, &record, &copy, &activity, &[])
                    .await
            }
            Err(e) => Err(e),
        }
    };
    let claimed = match claimed {
        // The answer may have been lost after the claim committed: the save record, naming this
        // request's session, says which.
        Err(e) => match app.store.save_record(user, source).await {
            Ok(Some(saved)) if saved.session_id == id => Ok(Ok(())),
            Ok(_) => Err(e),
            // Unknown: keep the plan, which a committed claim needs (an uncommitted one's is
            // never read).
            Err(_) => return Err(internal(e)),
        },
        claimed => claimed,
    };
    if !plan_in_claim && !matches!(claimed, Ok(Ok(()))) {
        // The plan's chunks are unreachable without the session item: remove them (a plan that
        // rode in an uncommitted claim was never written).
        if let Err(e) = app.store.delete_media_plan(id, chunks.len()).await {
            tracing::warn!(error = %Report(&e), session_id = %id, "could not delete an unclaimed media plan");
        }
    }
    match claimed.map_err(internal)? {
        // Boxed: the copy's future is large, and the request's would hold it inline twice.
        Ok(()) => match Box::pin(copy_and_complete(
            app, &record, &lease, &plan, false, deadline,
        ))
        .await?
        {
            Copied::Complete => Ok(Saved {
                session_id: id,
                reused: false,
            }),
            // Another copier took the save over (this one stalled past its lease): it finishes.
            Copied::LeaseLost => {
                let record = reread(app, &record).await?;
                Box::pin(settle_existing(app, record, deadline))
                    .await
                    .map(|saved| Saved {
                        reused: false,
                        ..saved
                    })
            }
        },
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
            Box::pin(settle_existing(app, record, deadline)).await
        }
        Err(ClaimRefused::InsufficientCredits) => {
            // Only the error body needs the balance; the decision was the transaction's.
            let (_, profile) = app
                .store
                .pricing_and_user(PRICED_FEATURE, user)
                .await
                .map_err(internal)?;
            Err(insufficient(profile.map_or(0, |p| p.credits)))
        }
        Err(ClaimRefused::SourceChanged) => {
            // Unshared (or made private) after the read: answer what a fresh read says.
            let now = app.store.session(source).await.map_err(internal)?;
            Err(shared_source(now.as_ref())
                .err()
                .unwrap_or(AppError::NotFound(NOT_FOUND)))
        }
    }
}

fn internal(e: StoreError) -> AppError {
    AppError::internal(FAILED, e)
}

/// The source session and its media if it may be saved, else the documented refusal.
fn shared_source(
    src: Option<&(SessionItem, Vec<SessionMedia>)>,
) -> Result<(&SessionItem, &[SessionMedia]), AppError> {
    let (session, media) = src
        .filter(|(s, _)| s.is_public && s.state == SessionState::Ready)
        .ok_or(AppError::NotFound(NOT_FOUND))?;
    if !session.shared_to_community {
        return Err(AppError::Forbidden(NOT_SHARED));
    }
    Ok((session, media))
}

/// The copy's media, fixed before the claim: general-bucket objects are copied under the caller's
/// prefix (bucket and key, no stored URL: the bucket is private), external URLs are kept as they
/// are. An object anywhere else (another prefix or bucket) is not ours to copy: refused before any
/// charge, and logged, since only an operator can fix the session.
fn media_plan(
    app: &App,
    user: &UserId,
    session: SessionId,
    media: &[SessionMedia],
) -> Result<Vec<SessionMedia>, AppError> {
    let general = &app.config.general_bucket;
    media
        .iter()
        .map(|m| match (&m.bucket, &m.key) {
            (Some(b), Some(k)) if b == general && k.starts_with(SESSION_MEDIA_PREFIX) => {
                Ok(SessionMedia {
                    bucket: Some(app.config.user_media_bucket.clone()),
                    key: Some(object_keys::saved_session_media(user, session, m.order, k)),
                    url: None,
                    copied_from: Some(k.clone()),
                    ..m.clone()
                })
            }
            (None, None) => Ok(m.clone()),
            (bucket, key) => Err(AppError::internal(
                FAILED,
                format!(
                    "media #{} is stored outside {general}/{SESSION_MEDIA_PREFIX}: {bucket:?}/{key:?}",
                    m.order
                ),
            )),
        })
        .collect()
}

/// A save record exists: answer with its session once its copy is complete. While a live copier
/// holds the lease, wait for it (no duplicate copies); once the lease has lapsed, take it over and
/// finish the copy here.
async fn settle_existing(
    app: &App,
    mut record: SaveRecord,
    deadline: Deadline,
) -> Result<Saved, AppError> {
    let mut pause = Duration::from_millis(50);
    loop {
        if record.state == SaveState::Ready {
            return Ok(Saved {
                session_id: record.session_id,
                reused: true,
            });
        }
        if deadline.passed() {
            return Err(AppError::internal(
                FAILED,
                "deadline reached while the save is still copying (it continues elsewhere)",
            ));
        }
        let now = app.clock.now_millis();
        if record.lease_until_ms > now {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(400));
        } else {
            let lease = Lease::new();
            let until = now + app.config.save_lease_ms as i64;
            let taken = app
                .store
                .take_over_save(&record, &lease.owner, until, now)
                .await
                .map_err(internal)?;
            if let Some(mine) = taken {
                let plan = plan_of(app, &mine).await?;
                if Box::pin(copy_and_complete(app, &mine, &lease, &plan, true, deadline)).await?
                    == Copied::Complete
                {
                    return Ok(Saved {
                        session_id: mine.session_id,
                        reused: true,
                    });
                }
            }
        }
        record = reread(app, &record).await?;
    }
}

/// The save record again; gone means its copy was rolled back (and refunded) for good.
async fn reread(app: &App, record: &SaveRecord) -> Result<SaveRecord, AppError> {
    app.store
        .save_record(&record.user_id, record.source_session_id)
        .await
        .map_err(internal)?
        .filter(|r| r.session_id == record.session_id)
        .ok_or_else(|| AppError::internal(FAILED, "the save was rolled back"))
}

/// The media plan fixed when `record` was claimed.
async fn plan_of(app: &App, record: &SaveRecord) -> Result<Vec<SessionMedia>, AppError> {
    app.store
        .session(record.session_id)
        .await
        .map_err(internal)?
        .map(|(_, media)| media)
        .ok_or_else(|| AppError::internal(FAILED, "the session of a copying save is missing"))
}

/// A copier's hold on a save: a random token, written as `leaseOwner`.
struct Lease {
    owner: String,
}

impl Lease {
    fn new() -> Self {
        Self {
            owner: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

/// How a copier's run ended, other than with an error answered to the client.
#[derive(Debug, PartialEq, Eq)]
enum Copied {
    /// Every object is in place and the save is `ready`.
    Complete,
    /// Another copier holds the lease now: it finishes (or has finished) the save.
    LeaseLost,
}

/// Copies every object of the plan that is not in place yet (bounded parallel, renewing the
/// lease as it goes), then completes the save; rolls it back if an object can never be copied.
/// A fault a retry may fix, or the deadline, releases the lease and answers 500: the save stays
/// charged once, and the next request or the reaper finishes it.
async fn copy_and_complete(
    app: &App,
    record: &SaveRecord,
    lease: &Lease,
    plan: &[SessionMedia],
    resume: bool,
    deadline: Deadline,
) -> Result<Copied, AppError> {
    let run = copy_objects(app, record, lease, plan, resume, deadline).await;
    if run.lost.load(Ordering::SeqCst) {
        return Ok(Copied::LeaseLost);
    }
    if let Some(gone) = run.errors.iter().find(|e| e.permanent) {
        return roll_back(app, record, lease, gone).await;
    }
    if let Some(err) = run.errors.into_iter().next() {
        release(app, record, lease).await;
        return Err(AppError::internal(FAILED, err));
    }
    if run.stopped_early {
        release(app, record, lease).await;
        return Err(AppError::internal(
            FAILED,
            "deadline reached mid-copy; the save is released for the next request or the reaper",
        ));
    }
    match app.store.complete_save(record, &lease.owner).await {
        Ok(Written::Done) => Ok(Copied::Complete),
        Ok(Written::Stale) => Ok(Copied::LeaseLost),
        Err(e) => {
            release(app, record, lease).await;
            Err(internal(e))
        }
    }
}

async fn release(app: &App, record: &SaveRecord, lease: &Lease) {
    if let Err(e) = app.store.release_save(record, &lease.owner).await {
        // Not fatal: the lease lapses on its own.
        tracing::warn!(error = %Report(&e), session_id = %record.session_id, "could not release a save");
    }
}

struct CopyRun {
    errors: Vec<BlobError>,
    /// The lease was taken over: this copier must not settle the save.
    lost: AtomicBool,
    /// Some copies were not started because the deadline came near.
    stopped_early: bool,
}

async fn copy_objects(
    app: &App,
    record: &SaveRecord,
    lease: &Lease,
    plan: &[SessionMedia],
    resume: bool,
    deadline: Deadline,
) -> CopyRun {
    let general = &app.config.general_bucket;
    let target = &app.config.user_media_bucket;
    let mut run = CopyRun {
        errors: Vec::new(),
        lost: AtomicBool::new(false),
        stopped_early: false,
    };
    // On resume, what a previous copier already put in place (one listing, not a HEAD each).
    let existing: HashMap<String, ObjectInfo> = if resume {
        let prefix = object_keys::saved_session_prefix(&record.user_id, record.session_id);
        match app.blob.list(target, &prefix).await {
            Ok(found) => found,
            Err(e) => {
                run.errors.push(e);
                return run;
            }
        }
    } else {
        HashMap::new()
    };
    // Owned: a borrowed stream item makes the future higher-ranked, which the runtime refuses.
    let jobs: Vec<(String, String, Option<u64>)> = plan
        .iter()
        .filter_map(|m| Some((m.copied_from.clone()?, m.key.clone()?, m.size)))
        .collect();

    // After the first failure, a lost lease or near the deadline, no new copy starts; every copy
    // in flight is awaited, so nothing lands in the prefix after a rollback has cleaned it.
    let stop = AtomicBool::new(false);
    let skipped_for_deadline = AtomicBool::new(false);
    let (stop, skipped, lost, existing) = (&stop, &skipped_for_deadline, &run.lost, &existing);
    let copies = futures_util::stream::iter(jobs)
        .map(|(src, dst, size)| async move {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            if !deadline.may_start_copy() {
                skipped.store(true, Ordering::SeqCst);
                stop.store(true, Ordering::SeqCst);
                return Ok(());
            }
            if let Some(done) = existing.get(&dst) {
                match app.blob.head(general, &src).await {
                    Ok(Some(source)) if done.same_content(&source) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
            let copied = app.blob.copy(general, &src, target, &dst, size).await;
            if copied.is_err() {
                stop.store(true, Ordering::SeqCst);
            }
            copied
        })
        .buffer_unordered(app.config.copy_concurrency)
        .filter_map(|r| async move { r.err() })
        .collect::<Vec<BlobError>>();
    let renewals = async {
        let every = Duration::from_millis((app.config.save_lease_ms / 3).max(1));
        loop {
            tokio::time::sleep(every).await;
            let until = app.clock.now_millis() + app.config.save_lease_ms as i64;
            match app.store.renew_lease(record, &lease.owner, until).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(session_id = %record.session_id, "copy lease lost; stopping");
                    lost.store(true, Ordering::SeqCst);
                    stop.store(true, Ordering::SeqCst);
                    return;
                }
                // A fault a retry may fix: the lease has slack for two more tries.
                Err(e) => tracing::warn!(error = %Report(&e), "could not renew the copy lease"),
            }
        }
    };
    tokio::pin!(copies);
    run.errors = tokio::select! {
        errors = &mut copies => errors,
        () = renewals => copies.await,
    };
    run.stopped_early = skipped_for_deadline.load(Ordering::SeqCst);
    run
}

/// Undoes a save that can never complete: deletes the copies while still holding the lease (so
/// a crash here leaves a save the reaper rolls back again), then refunds and removes session,
/// record and activity in one transaction, then the plan's chunks.
async fn roll_back(
    app: &App,
    record: &SaveRecord,
    lease: &Lease,
    why: impl std::fmt::Display,
) -> Result<Copied, AppError> {
    tracing::warn!(session_id = %record.session_id, %why, "rolling back a save that cannot complete");
    let prefix = object_keys::saved_session_prefix(&record.user_id, record.session_id);
    app.blob
        .delete_prefix(&app.config.user_media_bucket, &prefix)
        .await
        .map_err(|e| AppError::internal(FAILED, e))?;
    let plan_chunks = app
        .store
        .session(record.session_id)
        .await
        .map_err(internal)?
        .map_or(0, |(_, media)| media_chunk_count(record.session_id, &media));
    match app
        .store
        .roll_back_save(record, &lease.owner)
        .await
        .map_err(internal)?
    {
        Written::Done => {
            if let Err(e) = app
                .store
                .delete_media_plan(record.session_id, plan_chunks)
                .await
            {
                tracing::warn!(error = %Report(&e), "could not delete the media plan of a rolled-back save");
            }
            Err(AppError::internal(
                FAILED,
                format!("save rolled back and refunded: {why}"),
            ))
        }
        Written::Stale => Ok(Copied::LeaseLost),
    }
}

fn media_chunk_count(session: SessionId, media: &[SessionMedia]) -> usize {
    media_chunks(&keys::session(session), media).map_or(0, |c| c.len())
}

/// What one pass of the reaper did.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reaped {
    /// Saves whose lapsed copy this pass finished.
    pub finished: usize,
    /// Saves rolled back and refunded (a copy that can never finish, or that kept failing for
    /// longer than the give-up time).
    pub rolled_back: usize,
    /// Saves left for the next pass (taken over meanwhile, a fault a retry may fix, or the
    /// deadline came).
    pub left: usize,
}

/// Saves the reaper looks at per pass.
const REAP_BATCH: usize = 100;

/// One pass of the `save-reaper`: finds saves whose copy lease lapsed (their copier died, timed
/// out or gave up) through the sparse index, and finishes each, or rolls it back and refunds it
/// if it can never finish or has kept failing for longer than the give-up time.
pub async fn reap(app: &App, deadline: Deadline) -> Result<Reaped, StoreError> {
    let mut reaped = Reaped::default();
    let stale = app
        .store
        .stale_saves(app.clock.now_millis(), REAP_BATCH)
        .await?;
    for record in stale {
        if deadline.passed() || !deadline.may_start_copy() {
            reaped.left += 1;
            continue;
        }
        let lease = Lease::new();
        let now = app.clock.now_millis();
        let Some(mine) = app
            .store
            .take_over_save(
                &record,
                &lease.owner,
                now + app.config.save_lease_ms as i64,
                now,
            )
            .await?
        else {
            reaped.left += 1;
            continue;
        };
        let outcome = if now - mine.created_at_ms > app.config.save_give_up_ms as i64 {
            roll_back(app, &mine, &lease, "still copying past the give-up time").await
        } else {
            match plan_of(app, &mine).await {
                Ok(plan) => copy_and_complete(app, &mine, &lease, &plan, true, deadline).await,
                Err(e) => Err(e),
            }
        };
        let exists = app
            .store
            .save_record(&mine.user_id, mine.source_session_id)
            .await?
            .is_some_and(|r| r.session_id == mine.session_id);
        match outcome {
            Ok(Copied::Complete) => reaped.finished += 1,
            _ if !exists => reaped.rolled_back += 1,
            Ok(Copied::LeaseLost) => reaped.left += 1,
            Err(e) => {
                tracing::warn!(session_id = %mine.session_id, error = %Report(&e), "save left for the next pass");
                reaped.left += 1;
            }
        }
    }
    Ok(reaped)
}
