//! User media records: create, read, list by owner (GSI1, newest first).

use super::items::MediaItem;
use super::{from_item, keys, retry_conflicts, s, to_item, Item, Store, StoreError};
use crate::domain::{MediaId, UserId};

/// One page of an owner's media and where the next page starts (GSI1 sort key of the last item).
#[derive(Debug)]
pub struct MediaPage {
    /// Newest first.
    pub items: Vec<MediaItem>,
    /// Present when more media follow.
    pub next: Option<String>,
}

impl Store {
    /// Records a new media item; fails if the id exists.
    pub async fn create_media(&self, item: &MediaItem) -> Result<(), StoreError> {
        let item = to_item("create media", item)?;
        retry_conflicts(|| {
            self.db
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(pk)")
                .send()
        })
        .await
        .map_err(|e| StoreError::new("create media", e))?;
        Ok(())
    }

    /// A media record by id, whoever owns it (callers check ownership).
    pub async fn media(&self, id: MediaId) -> Result<Option<MediaItem>, StoreError> {
        self.get("get media", keys::media(id), keys::MEDIA).await
    }

    /// Up to `limit` of `owner`'s media, newest first, starting after the GSI1 sort key `after`.
    pub async fn media_by_owner(
        &self,
        owner: &UserId,
        limit: u32,
        after: Option<&str>,
    ) -> Result<MediaPage, StoreError> {
        const OP: &str = "list media";
        let mut query = self
            .db
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI1)
            .key_condition_expression("gsi1pk = :owner")
            .expression_attribute_values(":owner", s(keys::owner_media(owner)))
            .scan_index_forward(false)
            // One extra item tells whether another page exists without an empty last page.
            .limit(limit as i32 + 1);
        if let Some(after) = after {
            query = query
                .key_condition_expression("gsi1pk = :owner AND gsi1sk < :after")
                .expression_attribute_values(":after", s(after));
        }
        let out = query.send().await.map_err(|e| StoreError::new(OP, e))?;
        let mut items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|i: Item| from_item::<MediaItem>(OP, i))
            .collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|m| m.gsi1sk.clone())
        } else {
            None
        };
        Ok(MediaPage { items, next })
    }
}
