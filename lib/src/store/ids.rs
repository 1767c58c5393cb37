//! Numeric ids from atomic counters, reserved in blocks so no counter item is hot
//! (one `ADD :n` per block, not one write per record).

use super::{key, keys, n, retry_conflicts, StoreError};
use aws_sdk_dynamodb::types::ReturnValue;
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;

/// Counter names.
pub mod counters {
    /// User media records.
    pub const MEDIA: &str = "media";
    /// Sessions.
    pub const SESSION: &str = "session";
    /// Community media records.
    pub const COMMUNITY_MEDIA: &str = "community";
}

/// Hands out ids from reserved ranges; one per process, shared by its requests.
#[derive(Clone, Debug)]
pub struct IdAllocator {
    db: Client,
    table: String,
    block: u64,
    ranges: Arc<Mutex<HashMap<&'static str, (u64, u64)>>>,
}

impl IdAllocator {
    pub(super) fn new(db: Client, table: String, block: u64) -> Self {
        Self {
            db,
            table,
            block: block.max(1),
            ranges: Arc::default(),
        }
    }

    /// The next id of `counter` (ids start at 1 and never repeat; gaps are allowed).
    pub async fn next(&self, counter: &'static str) -> Result<u64, StoreError> {
        let mut ranges = self.ranges.lock().await;
        let range = ranges.entry(counter).or_insert((1, 0));
        if range.0 > range.1 {
            let out = retry_conflicts(|| {
                self.db
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key(keys::counter(counter), keys::COUNTER)))
                    .update_expression("ADD #v :n")
                    .expression_attribute_names("#v", "value")
                    .expression_attribute_values(":n", n(self.block))
                    .return_values(ReturnValue::UpdatedNew)
                    .send()
            })
            .await
            .map_err(|e| StoreError::new("reserve ids", e))?;
            let high = out
                .attributes()
                .and_then(|a| a.get("value"))
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| StoreError::unexpected("reserve ids", "counter value missing"))?;
            *range = (high - self.block + 1, high);
        }
        let id = range.0;
        range.0 += 1;
        Ok(id)
    }
}
