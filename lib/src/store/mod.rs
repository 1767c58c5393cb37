//! DynamoDB adapter: item types, keys, conditional writes and transactions. One table.

pub mod ids;
pub mod items;
pub mod keys;
pub mod schema;

mod media;
mod records;
mod saves;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

pub use ids::IdAllocator;
pub use media::MediaPage;
pub use saves::{ClaimRefused, Settled};

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
