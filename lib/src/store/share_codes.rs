//! Share codes: one per media, unique by a conditional put, revoked only while they are still the
//! media's code (DESIGN invariant 3).

use super::items::{MediaItem, ShareCodeItem};
use super::{key, keys, s, to_item, Store, StoreError, Written};
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

impl Store {
    /// A share code's item, if the code exists.
    pub async fn share_code(&self, code: &str) -> Result<Option<ShareCodeItem>, StoreError> {
        self.get("get share code", keys::share(code), keys::SHARE)
            .await
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
}
