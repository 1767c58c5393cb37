//! The community copy's records: the per-media marker that makes one copy, the record, its tag
//! items and its publish state (DESIGN invariants 3-5). Every change conditions on the version it
//! read, so concurrent shares, unshares and publishes serialize without locks.

use super::items::{
    CommunityMarker, CommunityMediaItem, CommunityStatus, CommunityTagItem, MediaItem,
    UnpublishItem,
};
use super::{
    attr, is_condition_failure, key, keys, n, retry_conflicts, s, to_item, Store, StoreError,
    Written,
};
use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem, Update};

impl Store {
    /// A community media record, if it exists.
    pub async fn community_media(&self, id: u64) -> Result<Option<CommunityMediaItem>, StoreError> {
        self.get(
            "get community media",
            keys::community(id),
            keys::COMMUNITY_RECORD,
        )
        .await
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
            sk: keys::COMMUNITY_MARKER.into(),
            community_media_id: record.community_media_id,
        };
        let mut items = vec![
            self.put_if(OP, &marker, "attribute_not_exists(pk)")?,
            self.put_if(OP, record, "attribute_not_exists(pk)")?,
        ];
        for tag in tags {
            items.push(self.put_if(OP, tag, "attribute_not_exists(pk)")?);
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
    /// version read): marker, record, tag items, and the media's community state; and in the same
    /// transaction owes the removal of its objects (`owed`: the unpublish outbox), so nothing
    /// public is ever left that no item names.
    /// `media` is the original as the caller just read it, `None` if it is gone (community copies
    /// outlive it); its community state is updated only if it still exists.
    pub async fn remove_community(
        &self,
        media: Option<&MediaItem>,
        record: &CommunityMediaItem,
        owed: &[UnpublishItem],
    ) -> Result<Written, StoreError> {
        const OP: &str = "remove community record";
        let mut items = vec![
            self.delete_op(keys::media(record.media_id), keys::COMMUNITY_MARKER),
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
        for owed in owed {
            items.push(self.put_op(to_item(OP, owed)?));
        }
        self.write(OP, items).await
    }

    /// Marks a `pending` record `ready` (the watermark function published its object): only if it
    /// still exists at the version read and still expects `record.key`. The record and its tag
    /// items enter the feed index in the same transaction, and the content's hashes (for the
    /// blocklist) are stored with it. `Stale` means it changed (retagged:
    /// read again) or is gone (unshared: the caller deletes what it wrote).
    pub async fn publish_community(
        &self,
        record: &CommunityMediaItem,
        (content_hash, crop_hashes): (&str, &[String]),
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
                        "SET #status = :ready, version = :next, gsi1pk = :feed, gsi1sk = :sort, \
                         contentHash = :hash, cropHashes = :crops",
                    )
                    .condition_expression(
                        "version = :version AND #key = :key AND #status = :pending",
                    )
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_names("#key", "key")
                    .expression_attribute_values(":ready", attr(CommunityStatus::Ready))
                    .expression_attribute_values(":pending", attr(CommunityStatus::Pending))
                    .expression_attribute_values(":next", n(record.version + 1))
                    .expression_attribute_values(":version", n(record.version))
                    .expression_attribute_values(":key", s(&record.key))
                    .expression_attribute_values(":feed", s(keys::feed(id)))
                    .expression_attribute_values(":sort", s(&sort))
                    .expression_attribute_values(":hash", s(content_hash))
                    .expression_attribute_values(":crops", string_list(crop_hashes))
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
                .expression_attribute_values(":failed", attr(CommunityStatus::Failed))
                .expression_attribute_values(":pending", attr(CommunityStatus::Pending))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":key", s(&record.key))
                .send()
        })
        .await;
        match out {
            Ok(_) => Ok(Written::Done),
            Err(e) if is_condition_failure(&e) => Ok(Written::Stale),
            Err(e) => Err(StoreError::new("fail community record", e)),
        }
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
}

fn string_list(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().map(|v| s(v.as_str())).collect())
}
