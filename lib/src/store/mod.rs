//! DynamoDB adapter: item types, keys, conditional writes and transactions. One table.

pub mod ids;
pub mod items;
pub mod keys;
pub mod schema;

mod community;
mod feed;
mod media;
mod moderation;
mod records;
mod saves;
mod share_codes;
mod unpublish;

use crate::error::BoxError;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

pub use ids::IdAllocator;
pub use media::MediaPage;
pub use moderation::{reason_attribute, RateSlot, Reported};
pub use records::media_chunks;
pub use saves::{ClaimRefused, CLAIM_PLAN_CHUNKS};
pub use share_codes::{LimitChange, Spent};

/// Whether a conditional write committed.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// It committed.
    Done,
    /// A condition failed: what the caller read changed meanwhile (another request got there
    /// first, or a lease was taken over). Read again and decide again, or give way.
    Stale,
}

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// A store operation failed for a reason the caller cannot fix (logged whole, with its source
/// chain; answered with a 500).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// DynamoDB, the network or the item codec failed; the source says how.
    #[error("{op}")]
    Failed {
        /// The operation it interrupted.
        op: &'static str,
        /// What failed.
        #[source]
        source: BoxError,
    },
    /// DynamoDB returned something this code never writes.
    #[error("{op}: unexpected data: {what}")]
    Unexpected {
        /// The operation that read it.
        op: &'static str,
        /// What was wrong with it.
        what: String,
    },
    /// A read-decide-write loop lost every round to concurrent changes of the same items.
    #[error("{op}: kept losing to concurrent changes")]
    Contended {
        /// The operation that gave up.
        op: &'static str,
    },
}

impl StoreError {
    /// Wraps an SDK or codec failure with the operation it interrupted.
    pub fn new(op: &'static str, err: impl Into<BoxError>) -> Self {
        Self::Failed {
            op,
            source: err.into(),
        }
    }

    /// Data that exists but is not what this code writes.
    pub fn unexpected(op: &'static str, what: impl std::fmt::Display) -> Self {
        Self::Unexpected {
            op,
            what: what.to_string(),
        }
    }
}

/// The table and the id counters, shared by every use case of a process.
#[derive(Clone, Debug)]
pub struct Store {
    db: Client,
    table: String,
    ids: IdAllocator,
}

impl Store {
    /// Wraps a client; `id_block` ids are reserved per counter round trip.
    pub fn new(db: Client, table: impl Into<String>, id_block: u64) -> Self {
        let table = table.into();
        Self {
            ids: IdAllocator::new(db.clone(), table.clone(), id_block),
            db,
            table,
        }
    }

    /// The underlying client (tools and tests).
    pub fn client(&self) -> &Client {
        &self.db
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The id allocator.
    pub fn ids(&self) -> &IdAllocator {
        &self.ids
    }
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn to_item<T: serde::Serialize>(op: &'static str, v: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(v).map_err(|e| StoreError::new(op, e))
}

pub(crate) fn from_item<T: serde::de::DeserializeOwned>(
    op: &'static str,
    item: Item,
) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::new(op, e))
}

pub(crate) fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([(keys::PK.to_string(), s(pk)), (keys::SK.to_string(), s(sk))])
}

/// Whether a failed write was refused only because another transaction held one of its items.
/// DynamoDB answers such an overlap at once (`TransactionConflict`) instead of waiting, and the
/// SDK does not retry it: the write was not applied and may simply be sent again.
pub(crate) trait Conflict {
    fn is_conflict(&self) -> bool;
}

impl<R> Conflict
    for aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >
{
    fn is_conflict(&self) -> bool {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
        match self.as_service_error() {
            Some(E::TransactionCanceledException(e)) => {
                let codes = || e.cancellation_reasons().iter().filter_map(|r| r.code());
                codes().any(|c| c == "TransactionConflict")
                    && !codes().any(|c| c == "ConditionalCheckFailed")
            }
            Some(E::TransactionInProgressException(_)) => true,
            _ => false,
        }
    }
}

macro_rules! single_write_conflict {
    ($($module:ident :: $error:ident),*) => {$(
        impl<R> Conflict
            for aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::$module::$error, R>
        {
            fn is_conflict(&self) -> bool {
                matches!(
                    self.as_service_error(),
                    Some(aws_sdk_dynamodb::operation::$module::$error::TransactionConflictException(_))
                )
            }
        }
    )*};
}
single_write_conflict!(
    put_item::PutItemError,
    update_item::UpdateItemError,
    delete_item::DeleteItemError
);

/// Attempts at one write that keeps meeting conflicts before the conflict is reported (about 6 s
/// of backoff in all at most: within a request's budget, far above any real contention).
const CONFLICT_ATTEMPTS: u32 = 14;

/// Sends a write again while it meets a `TransactionConflict`, with full-jitter exponential
/// backoff (10 ms doubling to 640 ms), so that a double-click or two
/// saves racing on one balance both settle instead of failing.
pub(crate) async fn retry_conflicts<T, E, F, Fut>(mut send: F) -> Result<T, E>
where
    E: Conflict,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut ceiling_ms: u64 = 10;
    let mut attempt = 1;
    loop {
        match send().await {
            Err(e) if e.is_conflict() && attempt < CONFLICT_ATTEMPTS => {
                let pause = jitter(ceiling_ms);
                tracing::debug!(attempt, pause_ms = pause, "transaction conflict; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                ceiling_ms = (ceiling_ms * 2).min(640);
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// A uniformly random wait in `0..=ceiling_ms` (full jitter: racers spread out instead of
/// colliding again in lockstep).
fn jitter(ceiling_ms: u64) -> u64 {
    (uuid::Uuid::new_v4().as_u128() as u64) % (ceiling_ms + 1)
}

/// The DynamoDB value of a serde-named enum (a status or state): the names come from serde,
/// never re-spelled beside it.
pub(crate) fn attr<T: serde::Serialize>(value: T) -> AttributeValue {
    serde_dynamo::to_attribute_value(value).expect("unit enums serialize")
}

/// For a cancelled transaction, which items failed their condition (in request order).
pub(crate) fn failed_conditions<R>(err: &SdkError<TransactWriteItemsError, R>) -> Vec<bool> {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => e
            .cancellation_reasons()
            .iter()
            .map(|r| r.code() == Some("ConditionalCheckFailed"))
            .collect(),
        _ => Vec::new(),
    }
}

/// True when a single-item update failed only because its condition did not hold.
pub(crate) fn is_condition_failure<R>(
    err: &SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError, R>,
) -> bool {
    err.as_service_error()
        .is_some_and(|e| e.is_conditional_check_failed_exception())
}

/// Transaction items: the building blocks every conditional write of the store is made of.
impl Store {
    /// A put of `item` in a transaction.
    pub(crate) fn put_op(&self, item: Item) -> TransactWriteItem {
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .build()
                    .expect("table and item set"),
            )
            .build()
    }

    /// A put of `item` in a transaction that holds only if `condition` does.
    pub(crate) fn put_if<T: serde::Serialize>(
        &self,
        op: &'static str,
        item: &T,
        condition: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = self.put_op(to_item(op, item)?);
        if let Some(p) = put.put.as_mut() {
            p.condition_expression = Some(condition.to_string());
        }
        Ok(put)
    }

    /// A delete of `pk`/`sk` in a transaction.
    pub(crate) fn delete_op(&self, pk: String, sk: &str) -> TransactWriteItem {
        TransactWriteItem::builder()
            .delete(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(pk, sk)))
                    .build()
                    .expect("table and key set"),
            )
            .build()
    }

    /// The items at `keys` that exist, in any order: BatchGetItem, 100 keys a request, the
    /// requests at once, unprocessed keys asked again. `consistent` for strongly consistent reads.
    pub(crate) async fn batch_get(
        &self,
        op: &'static str,
        keys: Vec<Item>,
        consistent: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let batches = keys.chunks(100).map(|batch| async move {
            let mut request = Some(
                aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                    .set_keys(Some(batch.to_vec()))
                    .consistent_read(consistent)
                    .build()
                    .map_err(|e| StoreError::new(op, e))?,
            );
            let mut found = Vec::new();
            while let Some(req) = request.take() {
                let out = self
                    .db
                    .batch_get_item()
                    .request_items(&self.table, req)
                    .send()
                    .await
                    .map_err(|e| StoreError::new(op, e))?;
                if let Some(mut items) = out.responses {
                    found.extend(items.remove(&self.table).unwrap_or_default());
                }
                request = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
            }
            Ok::<_, StoreError>(found)
        });
        let found = futures_util::future::try_join_all(batches).await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Every item `query` finds, page after page, read as `T`.
    pub(crate) async fn query_pages<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> Result<Vec<T>, StoreError> {
        let mut all = Vec::new();
        let mut start = None;
        loop {
            let out = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::new(op, e))?;
            for item in out.items.unwrap_or_default() {
                all.push(from_item(op, item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(all);
            }
        }
    }

    /// Sends a transaction (retrying conflicts); a failed condition is `Stale`.
    pub(crate) async fn write(
        &self,
        op: &'static str,
        items: Vec<TransactWriteItem>,
    ) -> Result<Written, StoreError> {
        let sent = retry_conflicts(|| {
            self.db
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
        })
        .await;
        match sent {
            Ok(_) => Ok(Written::Done),
            Err(e) if failed_conditions(&e).into_iter().any(|f| f) => Ok(Written::Stale),
            Err(e) => Err(StoreError::new(op, e)),
        }
    }
}
