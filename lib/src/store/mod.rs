//! DynamoDB adapter: item types, keys, conditional writes and transactions. One table.

pub mod ids;
pub mod items;
pub mod keys;
pub mod schema;

mod media;
mod records;
mod saves;
mod shares;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

pub use ids::IdAllocator;
pub use media::MediaPage;
pub use records::media_chunks;
pub use saves::{ClaimRefused, Settled};
pub use shares::Written;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// A store operation failed for a reason the caller cannot fix (logged, answered with a 500).
#[derive(Debug, thiserror::Error)]
#[error("{op}: {cause}")]
pub struct StoreError {
    op: &'static str,
    cause: String,
}

impl StoreError {
    /// Wraps an SDK or codec failure with the operation it interrupted.
    pub fn new(op: &'static str, err: impl std::error::Error) -> Self {
        Self {
            op,
            cause: DisplayErrorContext(&err).to_string(),
        }
    }

    /// A record that exists but cannot be read as its type.
    pub fn corrupt(op: &'static str, what: impl std::fmt::Display) -> Self {
        Self {
            op,
            cause: what.to_string(),
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
