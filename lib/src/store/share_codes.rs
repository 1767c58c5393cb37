//! Share codes: one per media, unique by a conditional put, revoked only while they are still the
//! media's code (DESIGN invariant 3).

use super::items::{LinkViewsItem, MediaItem, ShareCodeItem};
use super::{
    from_item, is_condition_failure, key, keys, n, retry_conflicts, s, to_item, Item, Store,
    StoreError, Written,
};
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, TransactWriteItem, Update,
};

/// A change to a link's limits: `None` leaves a limit as it is, `Some(None)` removes it,
/// `Some(Some(v))` sets it (a new view limit starts counting from zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitChange {
    /// The instant the link stops working (ms since the epoch).
    pub expires_at_ms: Option<Option<i64>>,
    /// Views the link allows from now on.
    pub max_views: Option<Option<u64>>,
}

impl LimitChange {
    /// Whether the change changes nothing.
    pub fn is_empty(&self) -> bool {
        self.expires_at_ms.is_none() && self.max_views.is_none()
    }

    /// Applies the change to a new link's item.
    pub fn apply(&self, item: &mut ShareCodeItem) {
        if let Some(at) = self.expires_at_ms {
            item.expires_at_ms = at;
        }
        if let Some(max) = self.max_views {
            item.max_views = max;
            item.views_used = 0;
        }
    }
}

/// What became of spending one view of a limited link.
#[derive(Debug)]
pub enum Spent {
    /// Counted: the item as it is after this view.
    Counted(ShareCodeItem),
    /// Not counted: the link as it is now (gone, expired, used up, or no longer limited).
    Refused(Option<ShareCodeItem>),
}

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

    /// Changes the limits of the link `code` of media `media_id`; the item as it is after, or
    /// `None` if the code no longer exists (revoked meanwhile). With no change, the item as it is.
    pub async fn set_link_limits(
        &self,
        code: &str,
        media_id: crate::domain::MediaId,
        change: LimitChange,
    ) -> Result<Option<ShareCodeItem>, StoreError> {
        const OP: &str = "set link limits";
        if change.is_empty() {
            return self.share_code(code).await;
        }
        let mut set = Vec::new();
        let mut remove = Vec::new();
        let mut values = vec![(":media", n(media_id.0))];
        match change.expires_at_ms {
            Some(Some(at)) => {
                set.push("expiresAtMs = :expires");
                values.push((":expires", n(at)));
            }
            Some(None) => remove.push("expiresAtMs"),
            None => {}
        }
        if let Some(max) = change.max_views {
            set.push("viewsUsed = :zero");
            values.push((":zero", n(0)));
            match max {
                Some(max) => {
                    set.push("maxViews = :max");
                    values.push((":max", n(max)));
                }
                None => remove.push("maxViews"),
            }
        }
        let mut expression = String::new();
        if !set.is_empty() {
            expression += &format!("SET {}", set.join(", "));
        }
        if !remove.is_empty() {
            expression += &format!(" REMOVE {}", remove.join(", "));
        }
        let sent = retry_conflicts(|| {
            let mut update = self
                .db
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(keys::share(code), keys::SHARE)))
                .update_expression(expression.trim())
                .condition_expression("attribute_exists(pk) AND mediaId = :media")
                .return_values(ReturnValue::AllNew);
            for (name, value) in &values {
                update = update.expression_attribute_values(*name, value.clone());
            }
            update.send()
        })
        .await;
        match sent {
            Ok(out) => out.attributes.map(|i| from_item(OP, i)).transpose(),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(StoreError::new(OP, e)),
        }
    }

    /// Spends one view of the limited link `code` for the request `token`, only while it has views
    /// left and has not expired at `now_ms`. Exact under any concurrency (one conditional update
    /// per view); an attempt retried after its answer was lost finds its own token and is counted
    /// once.
    pub async fn spend_view(
        &self,
        code: &str,
        token: &str,
        now_ms: i64,
    ) -> Result<Spent, StoreError> {
        const OP: &str = "spend link view";
        let sent = retry_conflicts(|| {
            self.db
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(keys::share(code), keys::SHARE)))
                .update_expression(
                    "SET viewsUsed = viewsUsed + :one, #views = if_not_exists(#views, :zero) + :one, lastView = :token",
                )
                .condition_expression(
                    "attribute_exists(pk) AND viewsUsed < maxViews \
                     AND (attribute_not_exists(expiresAtMs) OR expiresAtMs > :now) \
                     AND (attribute_not_exists(lastView) OR lastView <> :token)",
                )
                .expression_attribute_names("#views", "views")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":token", s(token))
                .expression_attribute_values(":now", n(now_ms))
                .return_values(ReturnValue::AllNew)
                .send()
        })
        .await;
        match sent {
            Ok(out) => match out.attributes {
                Some(item) => Ok(Spent::Counted(from_item(OP, item)?)),
                None => Err(StoreError::unexpected(OP, "an update answered no item")),
            },
            Err(e) if is_condition_failure(&e) => {
                let now = self.share_code(code).await?;
                Ok(match now {
                    // Our own view, applied by an attempt whose answer was lost.
                    Some(item) if item.last_view.as_deref() == Some(token) => Spent::Counted(item),
                    other => Spent::Refused(other),
                })
            }
            Err(e) => Err(StoreError::new(OP, e)),
        }
    }

    /// Counts one view of an unlimited link in its shard `shard` (no condition, no read).
    pub async fn count_view(&self, code: &str, shard: u32) -> Result<(), StoreError> {
        retry_conflicts(|| {
            self.db
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(keys::link_views(code, shard), keys::LINK_VIEWS)))
                .update_expression("ADD #views :one")
                .expression_attribute_names("#views", "views")
                .expression_attribute_values(":one", n(1))
                .send()
        })
        .await
        .map(drop)
        .map_err(|e| StoreError::new("count link view", e))
    }

    /// Views of the link `code` counted in its shards (unlimited views), summed.
    pub async fn sharded_views(&self, code: &str) -> Result<u64, StoreError> {
        const OP: &str = "read link view shards";
        let keys: Vec<Item> = (0..keys::LINK_VIEW_SHARDS)
            .map(|shard| key(keys::link_views(code, shard), keys::LINK_VIEWS))
            .collect();
        let mut views = 0;
        for item in self.batch_get(OP, keys, true).await? {
            views += from_item::<LinkViewsItem>(OP, item)?.views;
        }
        Ok(views)
    }
}
