//! User media records: create (once per path), read (with the community marker), delete, list by
//! owner (GSI1, newest first).

use super::items::{CommunityMarker, MediaItem, MediaPathItem};
use super::{from_item, key, keys, retry_conflicts, s, Item, Store, StoreError, Written};
use crate::domain::{MediaId, UserId};
use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem};

/// One page of an owner's media and where the next page starts (GSI1 sort key of the last item).
#[derive(Debug)]
pub struct MediaPage {
    /// Newest first.
    pub items: Vec<MediaItem>,
    /// Present when more media follow.
    pub next: Option<String>,
}

impl Store {
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

    /// A media record by id together with its community marker, in one round trip.
    pub async fn media_and_marker(
        &self,
        id: MediaId,
    ) -> Result<(Option<MediaItem>, Option<CommunityMarker>), StoreError> {
        const OP: &str = "get media and marker";
        let out = self
            .db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(keys::media(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::new(OP, e))?;
        let (mut media, mut marker) = (None, None);
        for item in out.items.unwrap_or_default() {
            match item
                .get(keys::SK)
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
            {
                Some(keys::MEDIA) => media = Some(from_item(OP, item)?),
                Some(keys::COMMUNITY_MARKER) => marker = Some(from_item(OP, item)?),
                _ => {}
            }
        }
        Ok((media, marker))
    }

    /// The media record id of an object path, if one was recorded.
    pub async fn media_id_by_path(&self, file_path: &str) -> Result<Option<MediaId>, StoreError> {
        let found: Option<MediaPathItem> = self
            .get("get media path", keys::media_path(file_path), keys::PATH)
            .await?;
        Ok(found.map(|p| p.media_id))
    }

    /// Sets `shareToCommunity` false on a media record that has no community copy.
    pub async fn mark_not_in_community(&self, media: &MediaItem) -> Result<(), StoreError> {
        retry_conflicts(|| {
            self.db
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(media.pk.clone(), media.sk.clone())))
                .update_expression("SET shareToCommunity = :no REMOVE communityMediaId")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":no", AttributeValue::Bool(false))
                .send()
        })
        .await
        .map(drop)
        .map_err(|e| StoreError::new("mark media not in community", e))
    }

    /// Creates a media record with its path item, exactly once per path: `Stale` if the path
    /// already has a record (concurrent creators: one record, one id).
    pub async fn create_media_at_path(&self, item: &MediaItem) -> Result<Written, StoreError> {
        const OP: &str = "create media at path";
        let path = MediaPathItem {
            pk: keys::media_path(&item.file_path),
            sk: keys::PATH.into(),
            media_id: item.media_id,
        };
        let items = vec![
            self.put_if(OP, &path, "attribute_not_exists(pk)")?,
            self.put_if(OP, item, "attribute_not_exists(pk)")?,
        ];
        self.write(OP, items).await
    }

    /// Deletes a media record, its path item, share code and marker; its community copy stays
    /// (copies are independent of the original). The delete is conditioned on the share code it
    /// removes with the record: a share that gave the media a code meanwhile makes it read the
    /// media again, so no code is ever left opening a media that is gone.
    pub async fn delete_media(&self, media: &MediaItem) -> Result<(), StoreError> {
        const OP: &str = "delete media";
        let mut media = media.clone();
        for _ in 0..crate::service::rounds::ROUNDS {
            let mut record = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(media.pk.clone(), media.sk.clone())));
            record = match &media.share_code {
                Some(code) => record
                    .condition_expression("shareCode = :code")
                    .expression_attribute_values(":code", s(code)),
                None => record
                    .condition_expression("attribute_not_exists(shareCode) OR shareCode = :null")
                    .expression_attribute_values(":null", AttributeValue::Null(true)),
            };
            let mut items = vec![
                TransactWriteItem::builder()
                    .delete(record.build().expect("table and key set"))
                    .build(),
                self.delete_op(keys::media_path(&media.file_path), keys::PATH),
                self.delete_op(media.pk.clone(), keys::COMMUNITY_MARKER),
            ];
            if let Some(code) = &media.share_code {
                items.push(self.delete_op(keys::share(code), keys::SHARE));
            }
            match self.write(OP, items).await? {
                Written::Done => return Ok(()),
                Written::Stale => match self.media(media.media_id).await? {
                    Some(now) => media = now,
                    None => return Ok(()),
                },
            }
        }
        Err(StoreError::Contended { op: OP })
    }
}
