//! Share codes, community records, their tags and the feed, as conditional writes and
//! transactions (DESIGN invariants 3 and 5): one marker per media makes one community copy, and
//! every change of a record conditions on the version it read, so concurrent shares and unshares
//! serialize without locks.

use super::items::{
    CommunityMarker, CommunityMediaItem, CommunityTagItem, FeedEntry, MediaItem, MediaPathItem,
    ShareCodeItem,
};
use super::{from_item, key, keys, n, retry_conflicts, s, to_item, Store, StoreError};
use crate::domain::MediaId;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

/// Whether a conditional transaction committed.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// It committed.
    Done,
    /// A condition failed: what it read changed meanwhile (read again and decide again).
    Stale,
}

impl Store {
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
                Some(keys::COMMUNITY) => marker = Some(from_item(OP, item)?),
                _ => {}
            }
        }
        Ok((media, marker))
    }

    /// A share code's item, if the code exists.
    pub async fn share_code(&self, code: &str) -> Result<Option<ShareCodeItem>, StoreError> {
        self.get("get share code", keys::share(code), keys::SHARE)
            .await
    }

    /// The media record id of an object path, if one was recorded.
    pub async fn media_id_by_path(&self, file_path: &str) -> Result<Option<MediaId>, StoreError> {
        let found: Option<MediaPathItem> = self
            .get("get media path", keys::media_path(file_path), keys::PATH)
            .await?;
        Ok(found.map(|p| p.media_id))
    }

    /// Gives `media` the share code `code`, only if it has none (one code per media, unique by a
    /// conditional put). `Stale` if the media got a code meanwhile (or is gone).
    pub async fn assign_share_code(
        &self,
        media: &MediaItem,
        code: &ShareCodeItem,
    ) -> Result<Written, StoreError> {
        const OP: &str = "assign share code";
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(OP, code)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("table and item set");
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(media.pk.clone(), media.sk.clone())))
            .update_expression("SET shareCode = :code, isShared = :yes")
            .condition_expression(
                "attribute_exists(pk) AND ownerId = :owner AND (attribute_not_exists(shareCode) OR shareCode = :null)",
            )
            .expression_attribute_values(":code", s(&code.share_code))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":owner", s(media.owner_id.as_str()))
            .expression_attribute_values(":null", AttributeValue::Null(true))
            .build()
            .expect("table, key and expression set");
        self.write(
            OP,
            vec![
                TransactWriteItem::builder().put(put).build(),
                TransactWriteItem::builder().update(update).build(),
            ],
        )
        .await
    }

    /// Removes `media`'s share code (only if it is still `code`): the link stops working.
    pub async fn revoke_share_code(
        &self,
        media: &MediaItem,
        code: &str,
    ) -> Result<Written, StoreError> {
        const OP: &str = "revoke share code";
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(keys::share(code), keys::SHARE)))
            .build()
            .expect("table and key set");
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(media.pk.clone(), media.sk.clone())))
            .update_expression("SET isShared = :no, shareToCommunity = :no REMOVE shareCode")
            // No community copy (the attribute is absent, or null as serde writes `None`).
            .condition_expression(
                "shareCode = :code AND (attribute_not_exists(communityMediaId) OR communityMediaId = :null)",
            )
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":null", AttributeValue::Null(true))
            .expression_attribute_values(":code", s(code))
            .build()
            .expect("table, key and expression set");
        self.write(
            OP,
            vec![
                TransactWriteItem::builder().delete(delete).build(),
                TransactWriteItem::builder().update(update).build(),
            ],
        )
        .await
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

    /// Creates the community copy's records in one transaction: the media's marker (only if it has
    /// none: `Stale` then, and the caller joins the existing copy), the record, its tags, and the
    /// media's share state.
    pub async fn create_community(
        &self,
        media: &MediaItem,
        record: &CommunityMediaItem,
        tags: &[CommunityTagItem],
        code: &str,
    ) -> Result<Written, StoreError> {
        const OP: &str = "create community record";
        let marker = CommunityMarker {
            pk: media.pk.clone(),
            sk: keys::COMMUNITY.into(),
            community_media_id: record.community_media_id,
        };
        let mut items = vec![
            conditional_put(self, OP, &marker, "attribute_not_exists(pk)")?,
            conditional_put(self, OP, record, "attribute_not_exists(pk)")?,
        ];
        for tag in tags {
            items.push(conditional_put(self, OP, tag, "attribute_not_exists(pk)")?);
        }
        items.push(self.media_in_community(media, record.community_media_id, code));
        self.write(OP, items).await
    }

    /// Replaces a record's tags atomically (only if it is still at the version read): removed tags'
    /// items go, new ones come, and the media's share state says it is in the community.
    pub async fn retag_community(
        &self,
        media: &MediaItem,
        record: &CommunityMediaItem,
        tags: &[CommunityTagItem],
        code: &str,
    ) -> Result<Written, StoreError> {
        const OP: &str = "retag community record";
        let slugs: Vec<String> = tags.iter().map(|t| t.slug.clone()).collect();
        let mut items = vec![TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(record.pk.clone(), record.sk.clone())))
                    .update_expression("SET tags = :tags, version = :next")
                    .condition_expression("version = :version")
                    .expression_attribute_values(":tags", string_list(&slugs))
                    .expression_attribute_values(":next", n(record.version + 1))
                    .expression_attribute_values(":version", n(record.version))
                    .build()
                    .expect("table, key and expression set"),
            )
            .build()];
        for old in record.tags.iter().filter(|t| !slugs.contains(t)) {
            items.push(self.delete_op(record.pk.clone(), &keys::community_tag(old)));
        }
        // Kept tags are rewritten too: each carries the record's tag list.
        for tag in tags {
            items.push(self.put_op(to_item(OP, tag)?));
        }
        items.push(self.media_in_community(media, record.community_media_id, code));
        self.write(OP, items).await
    }

    /// Removes a community copy's records in one transaction (only if the record is still at the
    /// version read): marker, record, tag items, and the media's community state. The objects are
    /// the caller's to delete first.
    /// `media` is the original as the caller just read it, `None` if it is gone (community copies
    /// outlive it); its community state is updated only if it still exists.
    pub async fn remove_community(
        &self,
        media: Option<&MediaItem>,
        record: &CommunityMediaItem,
    ) -> Result<Written, StoreError> {
        const OP: &str = "remove community record";
        let mut items = vec![
            self.delete_op(keys::media(record.media_id), keys::COMMUNITY),
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key(record.pk.clone(), record.sk.clone())))
                        .condition_expression("version = :version")
                        .expression_attribute_values(":version", n(record.version))
                        .build()
                        .expect("table and key set"),
                )
                .build(),
        ];
        for tag in &record.tags {
            items.push(self.delete_op(record.pk.clone(), &keys::community_tag(tag)));
        }
        if let Some(media) = media {
            items.push(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.table)
                            .set_key(Some(key(media.pk.clone(), media.sk.clone())))
                            .update_expression("SET shareToCommunity = :no REMOVE communityMediaId")
                            .condition_expression("attribute_exists(pk)")
                            .expression_attribute_values(":no", AttributeValue::Bool(false))
                            .build()
                            .expect("table, key and expression set"),
                    )
                    .build(),
            );
        }
        self.write(OP, items).await
    }

    /// Marks a `pending` record `ready` (the watermark function published its object): only if it
    /// still exists at the version read and still expects `record.key`. The record and its tag
    /// items enter the feed index in the same transaction. `Stale` means it changed (retagged:
    /// read again) or is gone (unshared: the caller deletes what it wrote).
    pub async fn publish_community(
        &self,
        record: &CommunityMediaItem,
    ) -> Result<Written, StoreError> {
        const OP: &str = "publish community record";
        let id = record.community_media_id;
        let sort = keys::feed_sort(record.created_at_ms, id);
        let mut items = vec![TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(record.pk.clone(), record.sk.clone())))
                    .update_expression(
                        "SET #status = :ready, version = :next, gsi1pk = :feed, gsi1sk = :sort",
                    )
                    .condition_expression(
                        "version = :version AND #key = :key AND #status = :pending",
                    )
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_names("#key", "key")
                    .expression_attribute_values(":ready", s("ready"))
                    .expression_attribute_values(":pending", s("pending"))
                    .expression_attribute_values(":next", n(record.version + 1))
                    .expression_attribute_values(":version", n(record.version))
                    .expression_attribute_values(":key", s(&record.key))
                    .expression_attribute_values(":feed", s(keys::feed(id)))
                    .expression_attribute_values(":sort", s(&sort))
                    .build()
                    .expect("table, key and expression set"),
            )
            .build()];
        for slug in &record.tags {
            items.push(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.table)
                            .set_key(Some(key(record.pk.clone(), keys::community_tag(slug))))
                            .update_expression("SET gsi1pk = :feed, gsi1sk = :sort")
                            .condition_expression("attribute_exists(pk)")
                            .expression_attribute_values(":feed", s(keys::tag_feed(slug, id)))
                            .expression_attribute_values(":sort", s(&sort))
                            .build()
                            .expect("table, key and expression set"),
                    )
                    .build(),
            );
        }
        self.write(OP, items).await
    }

    /// Marks a `pending` record `failed` (its upload cannot be published): never listed, never
    /// served. `Stale` if it is gone or no longer pending for `record.key`.
    pub async fn fail_community(&self, record: &CommunityMediaItem) -> Result<Written, StoreError> {
        let out = retry_conflicts(|| {
            self.db
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(record.pk.clone(), record.sk.clone())))
                .update_expression("SET #status = :failed, version = version + :one")
                .condition_expression("#key = :key AND #status = :pending")
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#key", "key")
                .expression_attribute_values(":failed", s("failed"))
                .expression_attribute_values(":pending", s("pending"))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":key", s(&record.key))
                .send()
        })
        .await;
        match out {
            Ok(_) => Ok(Written::Done),
            Err(e) if super::records::is_condition_failure(&e) => Ok(Written::Stale),
            Err(e) => Err(StoreError::new("fail community record", e)),
        }
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
            conditional_put(self, OP, &path, "attribute_not_exists(pk)")?,
            conditional_put(self, OP, item, "attribute_not_exists(pk)")?,
        ];
        self.write(OP, items).await
    }

    /// Deletes a media record, its path item, share code and marker; its community copy stays
    /// (copies are independent of the original).
    pub async fn delete_media(&self, media: &MediaItem) -> Result<(), StoreError> {
        const OP: &str = "delete media";
        let mut items = vec![
            self.delete_op(media.pk.clone(), &media.sk),
            self.delete_op(keys::media_path(&media.file_path), keys::PATH),
            self.delete_op(media.pk.clone(), keys::COMMUNITY),
        ];
        if let Some(code) = &media.share_code {
            items.push(self.delete_op(keys::share(code), keys::SHARE));
        }
        match self.write(OP, items).await? {
            Written::Done => Ok(()),
            Written::Stale => Err(StoreError::corrupt(OP, "unexpected condition failure")),
        }
    }

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

    /// The media's share state, only while it still has share code `code` (a share never puts a
    /// copy in the community behind a code a concurrent DELETE revoked).
    fn media_in_community(
        &self,
        media: &MediaItem,
        community_id: u64,
        code: &str,
    ) -> TransactWriteItem {
        TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(media.pk.clone(), media.sk.clone())))
                    .update_expression(
                        "SET isShared = :yes, shareToCommunity = :yes, communityMediaId = :cid",
                    )
                    .condition_expression(
                        "attribute_exists(pk) AND ownerId = :owner AND shareCode = :code",
                    )
                    .expression_attribute_values(":yes", AttributeValue::Bool(true))
                    .expression_attribute_values(":code", s(code))
                    .expression_attribute_values(":cid", n(community_id))
                    .expression_attribute_values(":owner", s(media.owner_id.as_str()))
                    .build()
                    .expect("table, key and expression set"),
            )
            .build()
    }

    fn delete_op(&self, pk: String, sk: &str) -> TransactWriteItem {
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

    /// Sends a transaction (retrying conflicts); a failed condition is `Stale`.
    async fn write(
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
            Err(e) if condition_failed(&e) => Ok(Written::Stale),
            Err(e) => Err(StoreError::new(op, e)),
        }
    }
}

fn conditional_put<T: serde::Serialize>(
    store: &Store,
    op: &'static str,
    item: &T,
    condition: &str,
) -> Result<TransactWriteItem, StoreError> {
    let mut put = store.put_op(to_item(op, item)?);
    if let Some(p) = put.put.as_mut() {
        p.condition_expression = Some(condition.to_string());
    }
    Ok(put)
}

fn string_list(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().map(|v| s(v.as_str())).collect())
}

fn condition_failed<R>(err: &SdkError<TransactWriteItemsError, R>) -> bool {
    super::saves::failed_conditions(err).into_iter().any(|f| f)
}
