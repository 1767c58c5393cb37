//! Moderation's records: reports (one per user and round, summed per copy), each user's report
//! rate, the hide / restore / takedown state changes of a community copy (each one transaction
//! conditioned on the version read, owing the removal of what it unpublishes), and the blocklist
//! with its multi-index (DESIGN invariants 3-5: no locks, no read-then-write without a condition).

use super::items::{
    BlockedHashItem, CommunityMediaItem, CommunityStatus, ReportItem, ReportRateItem,
    ReportSummaryItem, UnpublishItem,
};
use super::{
    attr, failed_conditions, is_condition_failure, key, keys, n, retry_conflicts, s, to_item,
    Store, StoreError, Written,
};
use crate::domain::UserId;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem, Update};

/// What became of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// Counted.
    Counted,
    /// This user had reported the copy already (this round): counted once.
    Again,
    /// The copy is not (or no longer) ready.
    NotReady,
    /// The summary or the rate ring changed since it was read: read again.
    Stale,
}

/// The report-rate slot a user's next report takes, as read: its index and, if used, when.
#[derive(Debug, Clone, Copy)]
pub struct RateSlot {
    /// The ring's `next` as read; `None` if the user has no ring yet.
    pub read: Option<u64>,
    /// The slot this report takes (`next`, within the ring's current size).
    pub index: u64,
    /// The ring's size (the hourly limit).
    pub size: u64,
}

impl Store {
    /// A copy's record and its report summary, read together.
    pub async fn record_and_reports(
        &self,
        id: u64,
    ) -> Result<(Option<CommunityMediaItem>, Option<ReportSummaryItem>), StoreError> {
        tokio::try_join!(
            self.community_media(id),
            self.get("get report summary", keys::community(id), keys::REPORTS)
        )
    }

    /// A user's report-rate ring.
    pub async fn report_rate(&self, user: &UserId) -> Result<Option<ReportRateItem>, StoreError> {
        self.get("get report rate", keys::user(user), keys::REPORT_RATE)
            .await
    }

    /// Whether `user` reported copy `id` in report round `round`.
    pub async fn report_exists(
        &self,
        id: u64,
        round: u64,
        user: &UserId,
    ) -> Result<bool, StoreError> {
        let found: Option<ReportItem> = self
            .get(
                "get report",
                keys::community(id),
                &keys::report(round, user),
            )
            .await?;
        Ok(found.is_some())
    }

    /// Records `report` of `record` (still `ready`) in one transaction: the report (once per user
    /// and round), the summary's counts (only if still at `round`), and the user's rate slot
    /// (only if that slot is free or over an hour old at `now_ms`).
    pub async fn add_report(
        &self,
        record: &CommunityMediaItem,
        round: u64,
        report: &ReportItem,
        rate: RateSlot,
        now_ms: i64,
    ) -> Result<Reported, StoreError> {
        const OP: &str = "add report";
        let id = record.community_media_id;
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(record.pk.clone(), record.sk.clone())))
            .condition_expression("#status = :ready")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":ready", attr(CommunityStatus::Ready))
            .build()
            .expect("table, key and condition set");
        let summary = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(keys::community(id), keys::REPORTS)))
            .update_expression(
                "SET communityMediaId = :id, #round = :round, \
                 firstReportedAt = if_not_exists(firstReportedAt, :at), lastReportedAt = :at, \
                 gsi1pk = :open, gsi1sk = :sort \
                 ADD reporters :one, #reason :one",
            )
            .condition_expression("attribute_not_exists(pk) OR #round = :round")
            .expression_attribute_names("#round", "round")
            .expression_attribute_names("#reason", reason_attribute(&report.reason))
            .expression_attribute_values(":id", n(id))
            .expression_attribute_values(":round", n(round))
            .expression_attribute_values(":at", s(&report.reported_at))
            .expression_attribute_values(":open", s(keys::OPEN_REPORTS))
            .expression_attribute_values(":sort", s(format!("{}#{id:020}", report.reported_at)))
            .expression_attribute_values(":one", n(1))
            .build()
            .expect("table, key and expression set");
        let slot = format!("slot{}", rate.index);
        let mut ring = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(keys::user(&report.user_id), keys::REPORT_RATE)))
            .update_expression("SET #next = :following, #slot = :now")
            .expression_attribute_names("#next", "next")
            .expression_attribute_names("#slot", slot)
            .expression_attribute_values(":following", n((rate.index + 1) % rate.size.max(1)))
            .expression_attribute_values(":now", n(now_ms));
        ring = match rate.read {
            Some(next) => ring
                .condition_expression(
                    "#next = :read AND (attribute_not_exists(#slot) OR #slot <= :hour_ago)",
                )
                .expression_attribute_values(":read", n(next))
                .expression_attribute_values(":hour_ago", n(now_ms - 3_600_000)),
            None => ring.condition_expression("attribute_not_exists(pk)"),
        };
        let items = vec![
            TransactWriteItem::builder().condition_check(check).build(),
            self.put_if(OP, report, "attribute_not_exists(pk)")?,
            TransactWriteItem::builder().update(summary).build(),
            TransactWriteItem::builder()
                .update(ring.build().expect("table, key and expression set"))
                .build(),
        ];
        let sent = retry_conflicts(|| {
            self.db
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
        })
        .await;
        match sent {
            Ok(_) => Ok(Reported::Counted),
            Err(e) => {
                let failed = failed_conditions(&e);
                let at = |i: usize| failed.get(i).copied().unwrap_or(false);
                if failed.is_empty() {
                    return Err(StoreError::new(OP, e));
                }
                // A taken rate slot (the ring moved on under a concurrent report of this user, or
                // the slot was used within the hour) is read again: the caller's check of the
                // slot's time decides the limit.
                Ok(if at(0) {
                    Reported::NotReady
                } else if at(1) {
                    Reported::Again
                } else {
                    Reported::Stale
                })
            }
        }
    }

    /// Hides a `ready` copy (only at the version read): out of the feed (record and tags), its
    /// public object's removal owed (`owed`), its private copy at `held_key` named for a restore.
    pub async fn hide_community(
        &self,
        record: &CommunityMediaItem,
        held_key: Option<&str>,
        owed: &[UnpublishItem],
    ) -> Result<Written, StoreError> {
        const OP: &str = "hide community record";
        let mut set = "SET #status = :hidden, version = :next".to_string();
        if held_key.is_some() {
            set += ", heldKey = :held";
        }
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(record.pk.clone(), record.sk.clone())))
            .update_expression(format!("{set} REMOVE gsi1pk, gsi1sk"))
            .condition_expression("version = :version AND #status = :ready")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":hidden", attr(CommunityStatus::Hidden))
            .expression_attribute_values(":ready", attr(CommunityStatus::Ready))
            .expression_attribute_values(":next", n(record.version + 1))
            .expression_attribute_values(":version", n(record.version));
        if let Some(held) = held_key {
            update = update.expression_attribute_values(":held", s(held));
        }
        let mut items = vec![TransactWriteItem::builder()
            .update(update.build().expect("table, key and expression set"))
            .build()];
        items.extend(self.tags_listed(record, false));
        for owed in owed {
            items.push(self.put_op(to_item(OP, owed)?));
        }
        self.write(OP, items).await
    }

    /// Restores a `hidden` copy whose object is public again (only at the version read): back in
    /// the feed, its held copy's removal owed, and its reports resolved (a new round starts).
    pub async fn restore_community(
        &self,
        record: &CommunityMediaItem,
        next_round: u64,
        owed: &[UnpublishItem],
    ) -> Result<Written, StoreError> {
        const OP: &str = "restore community record";
        let id = record.community_media_id;
        let sort = keys::feed_sort(record.created_at_ms, id);
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(record.pk.clone(), record.sk.clone())))
            .update_expression(
                "SET #status = :ready, version = :next, gsi1pk = :feed, gsi1sk = :sort \
                 REMOVE heldKey",
            )
            .condition_expression("version = :version AND #status = :hidden")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":hidden", attr(CommunityStatus::Hidden))
            .expression_attribute_values(":ready", attr(CommunityStatus::Ready))
            .expression_attribute_values(":next", n(record.version + 1))
            .expression_attribute_values(":version", n(record.version))
            .expression_attribute_values(":feed", s(keys::feed(id)))
            .expression_attribute_values(":sort", s(sort))
            .build()
            .expect("table, key and expression set");
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        items.extend(self.tags_listed(record, true));
        items.push(self.put_op(to_item(OP, &fresh_summary(id, next_round))?));
        for owed in owed {
            items.push(self.put_op(to_item(OP, owed)?));
        }
        self.write(OP, items).await
    }

    /// Takes a copy down for good (only at the version read): `removed`, out of the feed, its
    /// objects' removal owed and its reports closed, in one transaction.
    pub async fn take_down_community(
        &self,
        record: &CommunityMediaItem,
        next_round: u64,
        owed: &[UnpublishItem],
    ) -> Result<Written, StoreError> {
        const OP: &str = "take down community record";
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(record.pk.clone(), record.sk.clone())))
            .update_expression(
                "SET #status = :removed, version = :next REMOVE gsi1pk, gsi1sk, heldKey",
            )
            .condition_expression("version = :version")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":removed", attr(CommunityStatus::Removed))
            .expression_attribute_values(":next", n(record.version + 1))
            .expression_attribute_values(":version", n(record.version))
            .build()
            .expect("table, key and expression set");
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        items.extend(self.tags_listed(record, false));
        items.push(self.put_op(to_item(
            OP,
            &fresh_summary(record.community_media_id, next_round),
        )?));
        for owed in owed {
            items.push(self.put_op(to_item(OP, owed)?));
        }
        self.write(OP, items).await
    }

    /// Marks a `pending` copy `blocked` (its content matched the blocklist): never published.
    /// `Stale` if it is gone or no longer pending for `record.key`.
    pub async fn block_community(
        &self,
        record: &CommunityMediaItem,
        hash: &str,
    ) -> Result<Written, StoreError> {
        let out = retry_conflicts(|| {
            self.db
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(record.pk.clone(), record.sk.clone())))
                .update_expression(
                    "SET #status = :blocked, contentHash = :hash, version = version + :one",
                )
                .condition_expression("#key = :key AND #status = :pending")
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#key", "key")
                .expression_attribute_values(":blocked", attr(CommunityStatus::Blocked))
                .expression_attribute_values(":pending", attr(CommunityStatus::Pending))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":key", s(&record.key))
                .expression_attribute_values(":hash", s(hash))
                .send()
        })
        .await;
        match out {
            Ok(_) => Ok(Written::Done),
            Err(e) if is_condition_failure(&e) => Ok(Written::Stale),
            Err(e) => Err(StoreError::new("block community record", e)),
        }
    }

    /// Adds a hash to the blocklist (idempotent: the same hash again changes nothing but its
    /// reason).
    pub async fn add_blocked(&self, blocked: &BlockedHashItem) -> Result<(), StoreError> {
        const OP: &str = "add to blocklist";
        match self.write(OP, self.block_items(OP, blocked)?).await? {
            Written::Done => Ok(()),
            Written::Stale => Err(StoreError::unexpected(
                OP,
                "an unconditional write was refused",
            )),
        }
    }

    /// A blocklisted hash, by its exact text.
    pub async fn blocked_hash(&self, hash: &str) -> Result<Option<BlockedHashItem>, StoreError> {
        self.get("get blocked hash", keys::blocked(hash), keys::BLOCKED)
            .await
    }

    /// The blocked PDQ hashes (hex) filed in the multi-index buckets `buckets` (chunk position,
    /// chunk value): BatchGetItem, 100 keys a request, all at once; the cost depends on the
    /// number of buckets asked, never on the blocklist's size.
    pub async fn blocked_in_buckets(
        &self,
        buckets: &[(usize, u16)],
    ) -> Result<Vec<String>, StoreError> {
        const OP: &str = "read blocklist index";
        let keys = buckets
            .iter()
            .map(|(i, chunk)| key(keys::block_index(*i, *chunk), keys::BLOCK_BUCKET))
            .collect();
        let mut found = Vec::new();
        for item in self.batch_get(OP, keys, false).await? {
            if let Some(AttributeValue::Ss(hashes)) = item.get("hashes") {
                found.extend(hashes.iter().cloned());
            }
        }
        Ok(found)
    }

    /// Every item of GSI1 partition `pk`, in sort order.
    pub async fn gsi_partition<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        pk: &str,
    ) -> Result<Vec<T>, StoreError> {
        let query = self
            .db
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI1)
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", s(pk));
        self.query_pages(op, query).await
    }

    /// The blocklist entry and, for a PDQ hash, its hash added to its 16 index buckets.
    fn block_items(
        &self,
        op: &'static str,
        blocked: &BlockedHashItem,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut items = vec![self.put_op(to_item(op, blocked)?)];
        if let Some(pdq) = blocked
            .hash
            .strip_prefix("pdq:")
            .and_then(crate::perceptual::PdqHash::from_hex)
        {
            let hex = pdq.to_hex();
            for i in 0..crate::perceptual::CHUNKS {
                let update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(
                        keys::block_index(i, pdq.chunk(i)),
                        keys::BLOCK_BUCKET,
                    )))
                    .update_expression("ADD hashes :hash")
                    .expression_attribute_values(":hash", AttributeValue::Ss(vec![hex.clone()]))
                    .build()
                    .expect("table, key and expression set");
                items.push(TransactWriteItem::builder().update(update).build());
            }
        }
        Ok(items)
    }

    /// The record's tag items, in the feed index (`listed`) or out of it.
    fn tags_listed(&self, record: &CommunityMediaItem, listed: bool) -> Vec<TransactWriteItem> {
        let id = record.community_media_id;
        let sort = keys::feed_sort(record.created_at_ms, id);
        record
            .tags
            .iter()
            .map(|slug| {
                let update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(record.pk.clone(), keys::community_tag(slug))))
                    .condition_expression("attribute_exists(pk)");
                let update = if listed {
                    update
                        .update_expression("SET gsi1pk = :feed, gsi1sk = :sort")
                        .expression_attribute_values(":feed", s(keys::tag_feed(slug, id)))
                        .expression_attribute_values(":sort", s(&sort))
                } else {
                    update.update_expression("REMOVE gsi1pk, gsi1sk")
                };
                TransactWriteItem::builder()
                    .update(update.build().expect("table, key and expression set"))
                    .build()
            })
            .collect()
    }
}

/// The attribute a reason is counted in on the summary item.
pub fn reason_attribute(reason: &str) -> String {
    format!("reason_{reason}")
}

/// A report summary with no reports, at `round`.
fn fresh_summary(id: u64, round: u64) -> ReportSummaryItem {
    ReportSummaryItem {
        pk: keys::community(id),
        sk: keys::REPORTS.into(),
        community_media_id: id,
        round,
        ..ReportSummaryItem::default()
    }
}
