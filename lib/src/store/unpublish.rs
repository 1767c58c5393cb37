//! The unpublish outbox: owed removals of objects, written in the same transaction as whatever
//! stopped naming them, and deleted once the object is gone and its CDN path invalidated.

use super::items::UnpublishItem;
use super::{from_item, keys, s, Store, StoreError};

impl Store {
    /// Records owed removals on their own (the publisher's cleanup, which removes no record).
    pub async fn owe_unpublish(&self, items: &[UnpublishItem]) -> Result<(), StoreError> {
        const OP: &str = "owe unpublish";
        for item in items {
            self.put(OP, item).await?;
        }
        Ok(())
    }

    /// Owed removals older than `before_ms`, oldest first within each shard, at most `limit` a
    /// shard (one query a shard, all at once).
    pub async fn owed_unpublish(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<UnpublishItem>, StoreError> {
        const OP: &str = "list owed unpublish";
        let shards = (0..keys::UNPUBLISH_SHARDS).map(|shard| async move {
            let out = self
                .db
                .query()
                .table_name(&self.table)
                .index_name(keys::GSI1)
                .key_condition_expression("gsi1pk = :queue AND gsi1sk < :before")
                .expression_attribute_values(":queue", s(keys::unpublish_queue(shard)))
                .expression_attribute_values(":before", s(keys::lease_sort(before_ms)))
                .limit(limit as i32)
                .send()
                .await
                .map_err(|e| StoreError::new(OP, e))?;
            out.items
                .unwrap_or_default()
                .into_iter()
                .map(|i| from_item::<UnpublishItem>(OP, i))
                .collect::<Result<Vec<_>, _>>()
        });
        let pages = futures_util::future::try_join_all(shards).await?;
        Ok(pages.into_iter().flatten().collect())
    }

    /// An owed removal is done.
    pub async fn unpublished(&self, item: &UnpublishItem) -> Result<(), StoreError> {
        self.delete("unpublished", item.pk.clone(), &item.sk)
            .await
            .map(drop)
    }
}
