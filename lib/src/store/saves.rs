//! The save of a community session as conditional writes and transactions (DESIGN invariants 1
//! and 2): one transaction charges and claims, one completes, one rolls back.

use super::items::{
    ActivityItem, PricingItem, SaveRecord, SaveState, SessionItem, SessionMedia, SessionState,
    UserItem,
};
use super::records::media_chunks;
use super::{from_item, key, keys, n, to_item, Item, Store, StoreError};
use crate::domain::{SessionId, UserId};
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, KeysAndAttributes, TransactWriteItem, Update,
};

/// Why the claiming transaction did not commit.
#[derive(Debug)]
pub enum ClaimRefused {
    /// A save record exists: this user already saved (or is saving) the session.
    AlreadySaved,
    /// The balance does not cover the price (or the user has no profile).
    InsufficientCredits,
}

/// The outcome of a completing or rolling-back transaction whose condition may fail.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    /// The transaction committed.
    Done,
    /// Its condition failed: another request settled the save first (or rolled it back).
    Lost,
}

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
        let mut request = Some(
            KeysAndAttributes::builder()
                .keys(pricing_key.clone())
                .keys(user_key.clone())
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::new(OP, e))?,
        );
        let mut found: Vec<Item> = Vec::new();
        while let Some(req) = request.take() {
            let out = self
                .db
                .batch_get_item()
                .request_items(&self.table, req)
                .send()
                .await
                .map_err(|e| StoreError::new(OP, e))?;
            if let Some(mut items) = out.responses {
                found.extend(items.remove(&self.table).unwrap_or_default());
            }
            request = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .filter(|k| !k.keys().is_empty());
        }
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

    /// Claims the save in one transaction: the save record (only if none exists), the charge (only
    /// if the balance covers it), the new session in state `copying` and the activity entry.
    pub async fn claim_save(
        &self,
        user: &UserId,
        record: &SaveRecord,
        session: &SessionItem,
        activity: &ActivityItem,
    ) -> Result<Result<(), ClaimRefused>, StoreError> {
        const OP: &str = "claim save";
        let save_put = conditional_put(
            self.put_op(to_item(OP, record)?),
            "attribute_not_exists(pk)",
        );
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
        let charged = charge.is_some();
        let session_put = conditional_put(
            self.put_op(to_item(OP, session)?),
            "attribute_not_exists(pk)",
        );
        let activity_put = self.put_op(to_item(OP, activity)?);
        let items: Vec<TransactWriteItem> = std::iter::once(save_put)
            .chain(charge)
            .chain([session_put, activity_put])
            .collect();
        let sent = self
            .db
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Ok(())),
            Err(err) => {
                let failed = failed_conditions(&err);
                if failed.first() == Some(&true) {
                    Ok(Err(ClaimRefused::AlreadySaved))
                } else if charged && failed.get(1) == Some(&true) {
                    Ok(Err(ClaimRefused::InsufficientCredits))
                } else {
                    Err(StoreError::new(OP, err))
                }
            }
        }
    }

    /// Completes a save: writes the copy's media and marks session and save record `ready`, only
    /// if the save record still points at this session (it was not rolled back).
    pub async fn complete_save(
        &self,
        user: &UserId,
        record: &SaveRecord,
        media: &[SessionMedia],
    ) -> Result<Settled, StoreError> {
        const OP: &str = "complete save";
        let session_pk = keys::session(record.session_id);
        let mut items = Vec::new();
        items.push(
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(key(
                            keys::user(user),
                            keys::save(record.source_session_id),
                        )))
                        .update_expression("SET #state = :ready")
                        .condition_expression("sessionId = :sid")
                        .expression_attribute_names("#state", "state")
                        .expression_attribute_values(":ready", attr(SaveState::Ready))
                        .expression_attribute_values(":sid", n(record.session_id))
                        .build()
                        .expect("table, key and expression set"),
                )
                .build(),
        );
        items.push(
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(key(session_pk.clone(), keys::SESSION)))
                        .update_expression("SET #state = :ready")
                        .condition_expression("attribute_exists(pk)")
                        .expression_attribute_names("#state", "state")
                        .expression_attribute_values(":ready", attr(SessionState::Ready))
                        .build()
                        .expect("table, key and expression set"),
                )
                .build(),
        );
        for chunk in media_chunks(&session_pk, media) {
            items.push(self.put_op(to_item(OP, &chunk)?));
        }
        self.settle(OP, items).await
    }

    /// Marks a pending save as abandoned by the request that was copying it, so the next request
    /// finishes it at once instead of waiting. A no-op if the save settled meanwhile.
    pub async fn release_save(&self, user: &UserId, record: &SaveRecord) -> Result<(), StoreError> {
        let released = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                keys::user(user),
                keys::save(record.source_session_id),
            )))
            .update_expression("SET released = :yes")
            .condition_expression("sessionId = :sid AND #state = :copying")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":sid", n(record.session_id))
            .expression_attribute_values(":copying", attr(SaveState::Copying))
            .send()
            .await;
        match released {
            Err(e) if !super::records::is_condition_failure(&e) => {
                Err(StoreError::new("release save", e))
            }
            _ => Ok(()),
        }
    }

    /// Rolls back a save that can never complete, in one transaction: removes the save record
    /// (only if still `copying` for this session), refunds exactly what was charged, removes the
    /// session and the activity entry.
    pub async fn roll_back_save(
        &self,
        user: &UserId,
        record: &SaveRecord,
    ) -> Result<Settled, StoreError> {
        const OP: &str = "roll back save";
        let delete = |pk: String, sk: &str, condition: Option<&str>| {
            let mut d = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(pk, sk)));
            if let Some(c) = condition {
                d = d.condition_expression(c);
            }
            d
        };
        let save_delete = delete(
            keys::user(user),
            &keys::save(record.source_session_id),
            Some("sessionId = :sid AND #state = :copying"),
        )
        .expression_attribute_names("#state", "state")
        .expression_attribute_values(":sid", n(record.session_id))
        .expression_attribute_values(":copying", attr(SaveState::Copying))
        .build()
        .expect("table and key set");
        let refund = (record.charged > 0).then(|| {
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(keys::user(user), keys::PROFILE)))
                .update_expression("ADD credits :charged")
                .expression_attribute_values(":charged", n(record.charged))
                .build()
                .expect("table, key and expression set")
        });
        let session_delete = delete(keys::session(record.session_id), keys::SESSION, None)
            .build()
            .expect("table and key set");
        let activity_delete = delete(keys::user(user), &record.activity_sk, None)
            .build()
            .expect("table and key set");
        let items = std::iter::once(TransactWriteItem::builder().delete(save_delete).build())
            .chain(refund.map(|r| TransactWriteItem::builder().update(r).build()))
            .chain([
                TransactWriteItem::builder().delete(session_delete).build(),
                TransactWriteItem::builder().delete(activity_delete).build(),
            ])
            .collect();
        self.settle(OP, items).await
    }

    async fn settle(
        &self,
        op: &'static str,
        items: Vec<TransactWriteItem>,
    ) -> Result<Settled, StoreError> {
        match self
            .db
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Settled::Done),
            Err(err) if failed_conditions(&err).iter().any(|f| *f) => Ok(Settled::Lost),
            Err(err) => Err(StoreError::new(op, err)),
        }
    }
}

/// A state enum as stored (its serde name), so expressions and items never disagree.
fn attr<T: serde::Serialize>(state: T) -> AttributeValue {
    serde_dynamo::to_attribute_value(state).expect("unit enums serialize")
}

fn conditional_put(mut op: TransactWriteItem, condition: &str) -> TransactWriteItem {
    if let Some(put) = op.put.as_mut() {
        put.condition_expression = Some(condition.to_string());
    }
    op
}

/// For a cancelled transaction, which items failed their condition (in request order).
fn failed_conditions<R>(
    err: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> Vec<bool> {
    match err.as_service_error() {
        Some(
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
                e,
            ),
        ) => e
            .cancellation_reasons()
            .iter()
            .map(|r| r.code() == Some("ConditionalCheckFailed"))
            .collect(),
        _ => Vec::new(),
    }
}
