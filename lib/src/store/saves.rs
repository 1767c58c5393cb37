//! The save of a community session as conditional writes and transactions (DESIGN invariants 1
//! and 2): one small transaction charges and claims (carrying the media plan when it is a few
//! chunks, else the plan is put first), a copy lease (renewed as the copy progresses) says who may
//! finish it, and one small fixed transaction completes or rolls back. No transaction after the
//! charge grows with the session, so none can hit DynamoDB's 100-item or 4 MB limits then; the
//! claim's size is bounded by [`CLAIM_PLAN_CHUNKS`] and known before anything is written.

use super::items::{
    ActivityItem, PricingItem, SaveRecord, SaveState, SessionItem, SessionMediaChunk, SessionState,
    UserItem,
};
use super::{
    attr, failed_conditions, from_item, key, keys, n, retry_conflicts, s, to_item, Item, Store,
    StoreError, Written,
};
use crate::domain::{SessionId, UserId};
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, ReturnValue, TransactWriteItem, Update,
};

/// Why the claiming transaction did not commit.
#[derive(Debug, PartialEq, Eq)]
pub enum ClaimRefused {
    /// A save record exists: this user already saved (or is saving) the session.
    AlreadySaved,
    /// The balance does not cover the price (or the user has no profile).
    InsufficientCredits,
    /// The source session stopped being public, shared and ready after it was read.
    SourceChanged,
}

/// Media plans of at most this many chunks ride in the claiming transaction (one round trip
/// fewer for a small save): 8 chunks of at most 400 KB each and five small items stay well under a
/// transaction's 100 items and 4 MB. Larger plans are put before the claim.
pub const CLAIM_PLAN_CHUNKS: usize = 8;

impl Store {
    /// The caller's save record for `source`, if any.
    pub async fn save_record(
        &self,
        user: &UserId,
        source: SessionId,
    ) -> Result<Option<SaveRecord>, StoreError> {
        self.get("get save record", keys::user(user), &keys::save(source))
            .await
    }

    /// A feature's price and a user's profile in one round trip.
    pub async fn pricing_and_user(
        &self,
        feature: &str,
        user: &UserId,
    ) -> Result<(Option<PricingItem>, Option<UserItem>), StoreError> {
        const OP: &str = "get pricing and user";
        let pricing_key = key(keys::pricing(feature), keys::PRICING);
        let user_key = key(keys::user(user), keys::PROFILE);
        let found = self
            .batch_get(OP, vec![pricing_key.clone(), user_key.clone()], true)
            .await?;
        let is = |item: &Item, k: &Item| item.get(keys::PK) == k.get(keys::PK);
        let mut pricing = None;
        let mut profile = None;
        for item in found {
            if is(&item, &pricing_key) {
                pricing = Some(from_item(OP, item)?);
            } else if is(&item, &user_key) {
                profile = Some(from_item(OP, item)?);
            }
        }
        Ok((pricing, profile))
    }

    /// Puts the media plan of a save (its new session's media chunks) before the claim: the
    /// session item written by the claim is what makes them visible, so a lost claim leaves only
    /// chunks nobody reads (and the caller deletes them).
    pub async fn put_media_plan(&self, chunks: &[SessionMediaChunk]) -> Result<(), StoreError> {
        self.put_chunks(chunks).await
    }

    /// Removes the media plan of a claim that did not commit.
    pub async fn delete_media_plan(
        &self,
        session: SessionId,
        chunks: usize,
    ) -> Result<(), StoreError> {
        self.delete_chunks(&keys::session(session), chunks).await
    }

    /// Claims the save in one transaction: the save record with the claimant's copy lease (only
    /// if none exists), the charge (only if the balance covers it), a check that the source is
    /// still public, shared and ready, the new session in state `copying`, the activity entry,
    /// and `plan` (the media plan's chunks when there are at most [`CLAIM_PLAN_CHUNKS`]; empty
    /// when it was put before): the plan commits with the session that makes it visible, or not
    /// at all.
    pub async fn claim_save(
        &self,
        user: &UserId,
        record: &SaveRecord,
        session: &SessionItem,
        activity: &ActivityItem,
        plan: &[SessionMediaChunk],
    ) -> Result<Result<(), ClaimRefused>, StoreError> {
        const OP: &str = "claim save";
        if plan.len() > CLAIM_PLAN_CHUNKS {
            return Err(StoreError::unexpected(
                OP,
                "a media plan this large is put before the claim",
            ));
        }
        let save_put = self.put_if(OP, record, "attribute_not_exists(pk)")?;
        // A free save charges nothing, so it needs no balance (nor even a profile).
        let charge = (record.charged > 0).then(|| {
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(key(keys::user(user), keys::PROFILE)))
                        .update_expression("SET credits = credits - :cost")
                        .condition_expression("attribute_exists(pk) AND credits >= :cost")
                        .expression_attribute_values(":cost", n(record.charged))
                        .build()
                        .expect("table, key and expression set"),
                )
                .build()
        });
        let source_check = TransactWriteItem::builder()
            .condition_check(
                ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(
                        keys::session(record.source_session_id),
                        keys::SESSION,
                    )))
                    .condition_expression(
                        "isPublic = :yes AND sharedToCommunity = :yes AND #state = :ready",
                    )
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":yes", AttributeValue::Bool(true))
                    .expression_attribute_values(":ready", attr(SessionState::Ready))
                    .build()
                    .expect("table, key and condition set"),
            )
            .build();
        let session_put = self.put_if(OP, session, "attribute_not_exists(pk)")?;
        let activity_put = self.put_op(to_item(OP, activity)?);
        let charge_at = charge.is_some().then_some(1);
        let source_at = 1 + usize::from(charge.is_some());
        // The plan's puts go last: the indices of the conditions above stay as they are read.
        let plan_puts = plan
            .iter()
            .map(|chunk| Ok(self.put_op(to_item(OP, chunk)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let items: Vec<TransactWriteItem> = std::iter::once(save_put)
            .chain(charge)
            .chain([source_check, session_put, activity_put])
            .chain(plan_puts)
            .collect();
        let sent = retry_conflicts(|| {
            self.db
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
        })
        .await;
        match sent {
            Ok(_) => Ok(Ok(())),
            Err(err) => {
                let failed = failed_conditions(&err);
                let at = |i: usize| failed.get(i) == Some(&true);
                if at(0) {
                    Ok(Err(ClaimRefused::AlreadySaved))
                } else if charge_at.is_some_and(at) {
                    Ok(Err(ClaimRefused::InsufficientCredits))
                } else if at(source_at) {
                    Ok(Err(ClaimRefused::SourceChanged))
                } else {
                    Err(StoreError::new(OP, err))
                }
            }
        }
    }

    /// Takes over the copy of a save whose lease lapsed (its copier died, timed out or gave up):
    /// `owner` holds it until `until_ms`. `None` if the save is no longer copying or another
    /// copier holds a live lease.
    pub async fn take_over_save(
        &self,
        record: &SaveRecord,
        owner: &str,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<Option<SaveRecord>, StoreError> {
        const OP: &str = "take over save";
        let out = retry_conflicts(|| {
            self.db
                .update_item()
                .table_name(&self.table)
                .set_key(Some(save_key(record)))
                .update_expression("SET leaseOwner = :me, leaseUntilMs = :until, gsi1sk = :sort")
                .condition_expression(
                    "sessionId = :sid AND #state = :copying AND leaseUntilMs < :now",
                )
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":me", s(owner))
                .expression_attribute_values(":until", n(until_ms))
                .expression_attribute_values(":sort", s(keys::lease_sort(until_ms)))
                .expression_attribute_values(":sid", n(record.session_id))
                .expression_attribute_values(":copying", attr(SaveState::Copying))
                .expression_attribute_values(":now", n(now_ms))
                .return_values(ReturnValue::AllNew)
                .send()
        })
        .await;
        match out {
            Ok(out) => out.attributes.map(|a| from_item(OP, a)).transpose(),
            Err(e) if super::is_condition_failure(&e) => Ok(None),
            Err(e) => Err(StoreError::new(OP, e)),
        }
    }

    /// Extends the lease `owner` holds; false if it no longer holds it (then it must stop).
    pub async fn renew_lease(
        &self,
        record: &SaveRecord,
        owner: &str,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        self.set_lease("renew save lease", record, owner, until_ms)
            .await
    }

    /// Gives the lease up (the copier stops on a fault a retry may fix, or at its deadline), so
    /// the next request or the reaper finishes the copy at once instead of waiting for it to lapse.
    pub async fn release_save(&self, record: &SaveRecord, owner: &str) -> Result<(), StoreError> {
        self.set_lease("release save", record, owner, 0)
            .await
            .map(drop)
    }

    async fn set_lease(
        &self,
        op: &'static str,
        record: &SaveRecord,
        owner: &str,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let out = retry_conflicts(|| {
            self.db
                .update_item()
                .table_name(&self.table)
                .set_key(Some(save_key(record)))
                .update_expression("SET leaseUntilMs = :until, gsi1sk = :sort")
                .condition_expression("leaseOwner = :me AND #state = :copying")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":me", s(owner))
                .expression_attribute_values(":until", n(until_ms))
                .expression_attribute_values(":sort", s(keys::lease_sort(until_ms)))
                .expression_attribute_values(":copying", attr(SaveState::Copying))
                .send()
        })
        .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if super::is_condition_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::new(op, e)),
        }
    }

    /// Completes a save in one fixed two-item transaction: save record and session become
    /// `ready`, only if `owner` still holds the copy lease and both are still `copying` (a late
    /// finisher never overwrites a settled save).
    pub async fn complete_save(
        &self,
        record: &SaveRecord,
        owner: &str,
    ) -> Result<Written, StoreError> {
        const OP: &str = "complete save";
        let save = Update::builder()
            .table_name(&self.table)
            .set_key(Some(save_key(record)))
            .update_expression(
                "SET #state = :ready, leaseUntilMs = :zero REMOVE leaseOwner, gsi1pk, gsi1sk",
            )
            .condition_expression("sessionId = :sid AND #state = :copying AND leaseOwner = :me")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":ready", attr(SaveState::Ready))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":sid", n(record.session_id))
            .expression_attribute_values(":copying", attr(SaveState::Copying))
            .expression_attribute_values(":me", s(owner))
            .build()
            .expect("table, key and expression set");
        let session = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(keys::session(record.session_id), keys::SESSION)))
            .update_expression("SET #state = :ready")
            .condition_expression("#state = :copying")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":ready", attr(SessionState::Ready))
            .expression_attribute_values(":copying", attr(SessionState::Copying))
            .build()
            .expect("table, key and expression set");
        let items = vec![
            TransactWriteItem::builder().update(save).build(),
            TransactWriteItem::builder().update(session).build(),
        ];
        self.write(OP, items).await
    }

    /// Rolls back a save that can never complete, in one fixed transaction: removes the save
    /// record (only while `owner` holds its lease), refunds exactly what was charged, removes the
    /// session and the activity entry. The media plan's chunks are the caller's to delete after.
    pub async fn roll_back_save(
        &self,
        record: &SaveRecord,
        owner: &str,
    ) -> Result<Written, StoreError> {
        const OP: &str = "roll back save";
        let delete = |pk: String, sk: &str| {
            Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(pk, sk)))
        };
        let save_delete = delete(keys::user(&record.user_id), &record.sk)
            .condition_expression("sessionId = :sid AND #state = :copying AND leaseOwner = :me")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":sid", n(record.session_id))
            .expression_attribute_values(":copying", attr(SaveState::Copying))
            .expression_attribute_values(":me", s(owner))
            .build()
            .expect("table and key set");
        let refund = (record.charged > 0).then(|| {
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(keys::user(&record.user_id), keys::PROFILE)))
                .update_expression("ADD credits :charged")
                .expression_attribute_values(":charged", n(record.charged))
                .build()
                .expect("table, key and expression set")
        });
        let session_delete = delete(keys::session(record.session_id), keys::SESSION)
            .build()
            .expect("table and key set");
        let activity_delete = delete(keys::user(&record.user_id), &record.activity_sk)
            .build()
            .expect("table and key set");
        let items = std::iter::once(TransactWriteItem::builder().delete(save_delete).build())
            .chain(refund.map(|r| TransactWriteItem::builder().update(r).build()))
            .chain([
                TransactWriteItem::builder().delete(session_delete).build(),
                TransactWriteItem::builder().delete(activity_delete).build(),
            ])
            .collect();
        self.write(OP, items).await
    }

    /// Saves still `copying` whose lease lapsed before `now_ms`, oldest lapse first, at most
    /// `limit`: read from the sparse index of copying saves (never a scan), every shard at once
    /// (one round trip of wall time, not one a shard), each up to `limit` in its own order.
    pub async fn stale_saves(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<SaveRecord>, StoreError> {
        let shards =
            (0..keys::COPYING_SHARDS).map(|shard| self.stale_saves_in(shard, now_ms, limit));
        let mut found: Vec<SaveRecord> = futures_util::future::try_join_all(shards)
            .await?
            .into_iter()
            .flatten()
            .collect();
        found.sort_by_key(|r| r.lease_until_ms);
        found.truncate(limit);
        Ok(found)
    }

    /// One shard's share of `stale_saves`: its oldest lapses first (the index sorts by lapse).
    async fn stale_saves_in(
        &self,
        shard: u32,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<SaveRecord>, StoreError> {
        const OP: &str = "list stale saves";
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .db
                .query()
                .table_name(&self.table)
                .index_name(keys::GSI1)
                .key_condition_expression("gsi1pk = :pk AND gsi1sk < :now")
                .expression_attribute_values(":pk", s(keys::copying_saves(shard)))
                .expression_attribute_values(":now", s(keys::lease_sort(now_ms)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::new(OP, e))?;
            for item in out.items.unwrap_or_default() {
                found.push(from_item::<SaveRecord>(OP, item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() || found.len() >= limit {
                return Ok(found);
            }
        }
    }
}

fn save_key(record: &SaveRecord) -> Item {
    key(record.pk.clone(), record.sk.clone())
}
