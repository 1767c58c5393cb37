//! Users, pricing, tags, sessions and activity: the records the operator CLI and the use cases
//! read and write directly.

use super::items::{
    ActivityItem, PricingItem, SessionItem, SessionMedia, SessionMediaChunk, TagItem, UserItem,
    CHUNK_BYTES,
};
use super::{
    from_item, is_condition_failure, key, keys, n, retry_conflicts, s, to_item, Store, StoreError,
};
use crate::domain::{now_millis, rfc3339_millis, SessionId, UserId};
use aws_sdk_dynamodb::types::ReturnValue;

impl Store {
    /// Creates a user; fails if the id exists.
    pub async fn create_user(
        &self,
        user: &UserId,
        credits: i64,
        is_premium: bool,
    ) -> Result<UserItem, StoreError> {
        let item = UserItem {
            pk: keys::user(user),
            sk: keys::PROFILE.into(),
            user_id: user.clone(),
            credits,
            is_premium,
            created_at: rfc3339_millis(now_millis()),
        };
        let put = to_item("create user", &item)?;
        retry_conflicts(|| {
            self.db
                .put_item()
                .table_name(&self.table)
                .set_item(Some(put.clone()))
                .condition_expression("attribute_not_exists(pk)")
                .send()
        })
        .await
        .map_err(|e| StoreError::new("create user", e))?;
        Ok(item)
    }

    /// A user's profile, if the user exists.
    pub async fn user(&self, user: &UserId) -> Result<Option<UserItem>, StoreError> {
        self.get("get user", keys::user(user), keys::PROFILE).await
    }

    /// Adds `delta` credits (may be negative); the balance never goes below zero. Returns the new
    /// balance, or `None` if the user does not exist.
    pub async fn add_credits(&self, user: &UserId, delta: i64) -> Result<Option<i64>, StoreError> {
        // Two conditional writes, never read-then-write: apply the delta if it keeps the balance
        // non-negative, else clamp to zero if the balance is still too small; repeat on a race.
        // The balance the delta needs to leave zero or more (i64::MIN has no negation: saturate).
        let floor = delta.checked_neg().unwrap_or(i64::MAX).max(0);
        loop {
            let applied = retry_conflicts(|| {
                self.db
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key(keys::user(user), keys::PROFILE)))
                    .update_expression("ADD credits :d")
                    .condition_expression("attribute_exists(pk) AND credits >= :floor")
                    .expression_attribute_values(":d", n(delta))
                    .expression_attribute_values(":floor", n(floor))
                    .return_values(ReturnValue::AllNew)
                    .send()
            })
            .await;
            match applied {
                Ok(out) => return Ok(read_credits(out.attributes())),
                Err(e) if !is_condition_failure(&e) => {
                    return Err(StoreError::new("add credits", e))
                }
                Err(_) => {}
            }
            if self.user(user).await?.is_none() {
                return Ok(None);
            }
            let clamped = retry_conflicts(|| {
                self.db
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key(keys::user(user), keys::PROFILE)))
                    .update_expression("SET credits = :zero")
                    .condition_expression("attribute_exists(pk) AND credits < :floor")
                    .expression_attribute_values(":zero", n(0))
                    .expression_attribute_values(":floor", n(floor))
                    .return_values(ReturnValue::AllNew)
                    .send()
            })
            .await;
            match clamped {
                Ok(out) => return Ok(read_credits(out.attributes())),
                Err(e) if !is_condition_failure(&e) => {
                    return Err(StoreError::new("clamp credits", e))
                }
                Err(_) => {}
            }
        }
    }

    /// Sets a feature's price.
    pub async fn put_pricing(
        &self,
        feature: &str,
        credits: i64,
        premium_only: bool,
    ) -> Result<PricingItem, StoreError> {
        let item = PricingItem {
            pk: keys::pricing(feature),
            sk: keys::PRICING.into(),
            feature_key: feature.into(),
            credits,
            premium_only,
        };
        self.put("put pricing", &item).await?;
        Ok(item)
    }

    /// Removes a feature's price; true if there was one.
    pub async fn delete_pricing(&self, feature: &str) -> Result<bool, StoreError> {
        self.delete("delete pricing", keys::pricing(feature), keys::PRICING)
            .await
    }

    /// A feature's price, if configured.
    pub async fn pricing(&self, feature: &str) -> Result<Option<PricingItem>, StoreError> {
        self.get("get pricing", keys::pricing(feature), keys::PRICING)
            .await
    }

    /// Creates or renames a canonical tag.
    pub async fn put_tag(&self, slug: &str, name: &str) -> Result<TagItem, StoreError> {
        let item = TagItem {
            pk: keys::TAGS.into(),
            sk: keys::tag(slug),
            slug: slug.into(),
            name: name.into(),
        };
        self.put("put tag", &item).await?;
        Ok(item)
    }

    /// Every canonical tag, by slug.
    pub async fn tags(&self) -> Result<Vec<TagItem>, StoreError> {
        self.query_partition("list tags", keys::TAGS.into(), "TAG#")
            .await
    }

    /// Writes a session's media chunks, then the session item: a session is never visible without
    /// its media, and no transaction limit (100 items, 4 MB) bounds its length.
    pub async fn put_session(
        &self,
        session: &SessionItem,
        media: &[SessionMedia],
    ) -> Result<(), StoreError> {
        const OP: &str = "put session";
        let chunks = media_chunks(&session.pk, media)
            .ok_or_else(|| StoreError::unexpected(OP, "a media entry is larger than a chunk"))?;
        self.put_chunks(&chunks).await?;
        self.put(OP, session).await
    }

    /// Puts media chunks (idempotent: fixed keys), a few at a time.
    pub(crate) async fn put_chunks(&self, chunks: &[SessionMediaChunk]) -> Result<(), StoreError> {
        use futures_util::{StreamExt, TryStreamExt};
        // Indices, not references, into the stream: a borrowed item makes the future's type
        // higher-ranked, which `lambda_http::run` (Send across any lifetime) refuses.
        futures_util::stream::iter(0..chunks.len())
            .map(|i| self.put("put media chunk", &chunks[i]))
            .buffer_unordered(CHUNK_WRITE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map(drop)
    }

    /// Deletes the media chunks of a session partition (best effort by the caller: an orphan chunk
    /// without its session item is never read).
    pub(crate) async fn delete_chunks(&self, pk: &str, count: usize) -> Result<(), StoreError> {
        use futures_util::{StreamExt, TryStreamExt};
        futures_util::stream::iter(0..count)
            .map(|i| async move {
                let sk = keys::session_media(i as u32);
                self.delete("delete media chunk", pk.to_string(), &sk).await
            })
            .buffer_unordered(CHUNK_WRITE_CONCURRENCY)
            .try_collect::<Vec<bool>>()
            .await
            .map(drop)
    }

    /// A session and its media in order, if it exists (one query: the session and its chunks
    /// share a partition).
    pub async fn session(
        &self,
        id: SessionId,
    ) -> Result<Option<(SessionItem, Vec<SessionMedia>)>, StoreError> {
        const OP: &str = "get session";
        let mut session = None;
        let mut media = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .db
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(keys::session(id)))
                .set_exclusive_start_key(start)
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| StoreError::new(OP, e))?;
            for item in out.items.unwrap_or_default() {
                let sk = item.get(keys::SK).and_then(|v| v.as_s().ok()).cloned();
                match sk.as_deref() {
                    Some(keys::SESSION) => session = Some(from_item(OP, item)?),
                    Some(sk) if sk.starts_with(keys::SESSION_MEDIA_SORT_PREFIX) => {
                        let chunk: SessionMediaChunk = from_item(OP, item)?;
                        media.extend(chunk.media);
                    }
                    _ => {}
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(session.map(|s| (s, media)))
    }

    /// Writes an activity entry (built by `service::activity`).
    pub async fn put_activity(&self, entry: &ActivityItem) -> Result<(), StoreError> {
        self.put("log activity", entry).await
    }

    /// A user's activity, oldest first.
    pub async fn activity(&self, user: &UserId) -> Result<Vec<ActivityItem>, StoreError> {
        self.query_partition("list activity", keys::user(user), keys::ACTIVITY_PREFIX)
            .await
    }

    pub(crate) async fn get<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        pk: String,
        sk: &str,
    ) -> Result<Option<T>, StoreError> {
        let out = self
            .db
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::new(op, e))?;
        out.item.map(|i| from_item(op, i)).transpose()
    }

    pub(crate) async fn put<T: serde::Serialize>(
        &self,
        op: &'static str,
        item: &T,
    ) -> Result<(), StoreError> {
        let item = to_item(op, item)?;
        retry_conflicts(|| {
            self.db
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .send()
        })
        .await
        .map_err(|e| StoreError::new(op, e))?;
        Ok(())
    }

    pub(crate) async fn delete(
        &self,
        op: &'static str,
        pk: String,
        sk: &str,
    ) -> Result<bool, StoreError> {
        let key = key(pk, sk);
        let out = retry_conflicts(|| {
            self.db
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .return_values(ReturnValue::AllOld)
                .send()
        })
        .await
        .map_err(|e| StoreError::new(op, e))?;
        Ok(out.attributes.is_some())
    }

    async fn query_partition<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        pk: String,
        sk_prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        let query = self
            .db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(sk_prefix));
        self.query_pages(op, query).await
    }
}

/// Parallel chunk writes per session.
const CHUNK_WRITE_CONCURRENCY: usize = 8;

/// Splits a session's media, in order, into the chunk items stored beside it, each at most
/// [`CHUNK_BYTES`] of entries. `None` if one entry alone is larger than that.
pub fn media_chunks(pk: &str, media: &[SessionMedia]) -> Option<Vec<SessionMediaChunk>> {
    let mut chunks: Vec<SessionMediaChunk> = Vec::new();
    let mut used = 0;
    for entry in media {
        let size = serde_json::to_vec(entry).map_or(usize::MAX, |v| v.len());
        if size > CHUNK_BYTES {
            return None;
        }
        match chunks.last_mut() {
            Some(chunk) if used + size <= CHUNK_BYTES => chunk.media.push(entry.clone()),
            _ => {
                chunks.push(SessionMediaChunk {
                    pk: pk.to_string(),
                    sk: keys::session_media(chunks.len() as u32),
                    media: vec![entry.clone()],
                });
                used = 0;
            }
        }
        used += size;
    }
    Some(chunks)
}

fn read_credits(attrs: Option<&super::Item>) -> Option<i64> {
    attrs?.get("credits")?.as_n().ok()?.parse().ok()
}
