//! The community feed: ready records (and per-tag entries) in a sharded index, merged on read.

use super::items::FeedEntry;
use super::{from_item, keys, s, Store, StoreError};

impl Store {
    /// One page of the community feed (ready records only), newest first: every shard of the
    /// whole feed (or of one tag's) read after `after` and merged.
    pub async fn community_feed(
        &self,
        tag: Option<&str>,
        limit: usize,
        after: Option<&str>,
    ) -> Result<(Vec<FeedEntry>, bool), StoreError> {
        const OP: &str = "read community feed";
        let shards = keys::feed_shards(tag);
        let pages = futures_util::future::try_join_all(shards.into_iter().map(|pk| async move {
            let mut query = self
                .db
                .query()
                .table_name(&self.table)
                .index_name(keys::GSI1)
                .scan_index_forward(false)
                .limit(limit as i32 + 1)
                .expression_attribute_values(":pk", s(pk));
            query = match after {
                Some(after) => query
                    .key_condition_expression("gsi1pk = :pk AND gsi1sk < :after")
                    .expression_attribute_values(":after", s(after)),
                None => query.key_condition_expression("gsi1pk = :pk"),
            };
            let out = query.send().await.map_err(|e| StoreError::new(OP, e))?;
            out.items
                .unwrap_or_default()
                .into_iter()
                .map(|i| from_item::<FeedEntry>(OP, i))
                .collect::<Result<Vec<_>, _>>()
        }))
        .await?;
        let mut entries: Vec<FeedEntry> = pages.into_iter().flatten().collect();
        entries.sort_by(|a, b| b.gsi1sk.cmp(&a.gsi1sk));
        let more = entries.len() > limit;
        entries.truncate(limit);
        Ok((entries, more))
    }
}
