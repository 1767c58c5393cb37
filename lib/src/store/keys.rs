//! Every table key in one place. `pk`/`sk` on the table; `gsi1pk`/`gsi1sk` on GSI1 (per-owner
//! listings, newest first).

use crate::domain::{MediaId, SessionId, UserId};

/// Partition key attribute.
pub const PK: &str = "pk";
/// Sort key attribute.
pub const SK: &str = "sk";
/// GSI1 name and its key attributes.
pub const GSI1: &str = "gsi1";
/// GSI1 partition key attribute.
pub const GSI1PK: &str = "gsi1pk";
/// GSI1 sort key attribute.
pub const GSI1SK: &str = "gsi1sk";

/// The partition (and sort) key start-up reads to open a connection to the table
/// (`crate::connections`): no item, and no GSI1 entry, ever has it.
pub const CONNECTION_PROBE: &str = "PROBE#connection";

/// `USER#{id}`: the user's partition (profile, save records, activity).
pub fn user(user: &UserId) -> String {
    format!("USER#{user}")
}
/// Sort key of the user profile.
pub const PROFILE: &str = "PROFILE";

/// `PRICING#{feature}`.
pub fn pricing(feature: &str) -> String {
    format!("PRICING#{feature}")
}
/// Sort key of a pricing item.
pub const PRICING: &str = "PRICING";

/// All canonical tags share one small, read-mostly partition.
pub const TAGS: &str = "TAGS";
/// Sort key of a tag.
pub fn tag(slug: &str) -> String {
    format!("TAG#{slug}")
}

/// `SESSION#{id}`: the session and its media rows.
pub fn session(id: SessionId) -> String {
    format!("SESSION#{id}")
}
/// Sort key of the session item itself.
pub const SESSION: &str = "SESSION";
/// Sort-key prefix of session media chunks (in the session's partition).
pub const SESSION_MEDIA_SORT_PREFIX: &str = "MEDIA#";
/// Sort key of a session's media chunk number `chunk`.
pub fn session_media(chunk: u32) -> String {
    format!("{SESSION_MEDIA_SORT_PREFIX}{chunk:04}")
}

/// `MEDIA#{id}`: a user media record.
pub fn media(id: MediaId) -> String {
    format!("MEDIA#{id}")
}
/// Sort key of a user media record.
pub const MEDIA: &str = "MEDIA";
/// GSI1 partition listing an owner's media.
pub fn owner_media(owner: &UserId) -> String {
    format!("USER#{owner}#MEDIA")
}
/// GSI1 sort key: creation time then id, fixed width so text order is time order.
pub fn owner_media_sort(created_ms: i64, id: MediaId) -> String {
    format!("{created_ms:015}#{:016}", id.0)
}

/// Sort key of an activity entry in the user's partition.
pub fn activity(at_ms: i64, unique: &str) -> String {
    format!("ACTIVITY#{at_ms:015}#{unique}")
}
/// Sort prefix of activity entries.
pub const ACTIVITY_PREFIX: &str = "ACTIVITY#";

/// Sort key of the record that `user` saved community session `source`.
pub fn save(source: SessionId) -> String {
    format!("SAVE#{source}")
}

/// `COUNTER#{name}`: an id counter.
pub fn counter(name: &str) -> String {
    format!("COUNTER#{name}")
}
/// Sort key of a counter.
pub const COUNTER: &str = "COUNTER";

/// `COMMUNITY#{id}`: a community media record.
pub fn community(id: u64) -> String {
    format!("COMMUNITY#{id}")
}
/// Sort key of a community media record (in its `COMMUNITY#{id}` partition).
pub const COMMUNITY_RECORD: &str = "COMMUNITY";
/// Sort key of a media item's community marker (in the media's partition): the one copy's id.
pub const COMMUNITY_MARKER: &str = "COMMUNITY";
/// Sort key of a community record's tag assignment (`TAG#{slug}`, as canonical tags).
pub fn community_tag(slug: &str) -> String {
    tag(slug)
}

/// `SHARE#{code}`: a share code.
pub fn share(code: &str) -> String {
    format!("SHARE#{code}")
}
/// Sort key of a share code item.
pub const SHARE: &str = "SHARE";
/// Shards an unlimited link's views are counted in: a link resolved 10,000 times a second writes
/// about 300 a second to each (a partition takes 1,000), never one hot item.
pub const LINK_VIEW_SHARDS: u32 = 32;
/// `LINKVIEWS#{code}#{shard}`: one shard of an unlimited link's view count (each its own
/// partition).
pub fn link_views(code: &str, shard: u32) -> String {
    format!("LINKVIEWS#{code}#{shard}")
}
/// Sort key of a link view shard.
pub const LINK_VIEWS: &str = "VIEWS";

/// Sort key of a community copy's report summary (in the copy's partition).
pub const REPORTS: &str = "REPORTS";
/// Sort key of one user's report of a community copy in report round `round`.
pub fn report(round: u64, user: &UserId) -> String {
    format!("REPORT#{round}#{user}")
}
/// GSI1 partition listing community copies with open reports (an operator's queue: rare writes).
pub const OPEN_REPORTS: &str = "REPORTS";
/// Sort key of a user's report-rate ring (in the user's partition).
pub const REPORT_RATE: &str = "REPORTRATE";
/// `BLOCK#{hash}`: a blocklisted content hash (`pdq:…` or `sha256:…`).
pub fn blocked(hash: &str) -> String {
    format!("BLOCK#{hash}")
}
/// Sort key of a blocklisted hash.
pub const BLOCKED: &str = "BLOCK";
/// GSI1 partition listing the blocklist.
pub const BLOCKLIST: &str = "BLOCKLIST";
/// `BLOCKIDX#{i}#{chunk}`: the bucket of blocked PDQ hashes whose `i`-th 16-bit chunk is
/// `chunk` (a multi-index; see `service::moderation::blocklisted`).
pub fn block_index(i: usize, chunk: u16) -> String {
    format!("BLOCKIDX#{i:02}#{chunk:04x}")
}
/// Sort key of a blocklist index bucket (its hashes: a string set).
pub const BLOCK_BUCKET: &str = "BUCKET";

/// `PATH#{key}`: the media record of an object in the user-media bucket.
pub fn media_path(file_path: &str) -> String {
    format!("PATH#{file_path}")
}
/// Sort key of a media path item.
pub const PATH: &str = "PATH";

/// Shards of the community feed index: no single partition takes every public item (or every item
/// of one tag); reads merge them.
pub const FEED_SHARDS: u64 = 8;
/// GSI1 partition of the whole feed, shard of community record `id`.
pub fn feed(id: u64) -> String {
    format!("FEED#{}", id % FEED_SHARDS)
}
/// GSI1 partition of one tag's feed, shard of community record `id`.
pub fn tag_feed(slug: &str, id: u64) -> String {
    format!("FEED#{slug}#{}", id % FEED_SHARDS)
}
/// Every shard partition of the feed (`tag` or the whole feed).
pub fn feed_shards(tag: Option<&str>) -> Vec<String> {
    (0..FEED_SHARDS)
        .map(|shard| match tag {
            Some(slug) => tag_feed(slug, shard),
            None => feed(shard),
        })
        .collect()
}
/// GSI1 sort key in the feed: creation time then id, fixed width so text order is time order.
pub fn feed_sort(created_ms: i64, id: u64) -> String {
    format!("{created_ms:015}#{id:016}")
}

/// Shards of the sparse index of saves still copying: enough that no single index partition is
/// hot, few enough that the reaper reads them all each minute.
pub const COPYING_SHARDS: u32 = 8;
/// GSI1 partition of saves still copying, shard `shard` (the reaper's work list).
pub fn copying_saves(shard: u32) -> String {
    format!("SAVES#COPYING#{shard}")
}
/// GSI1 shard of a save record: spread by its own key.
pub fn copying_shard(user: &UserId, source: SessionId) -> u32 {
    stable_hash(user.as_str().bytes().chain(source.0.to_be_bytes())) % COPYING_SHARDS
}
/// FNV-1a: stable across processes and releases (std's hasher is neither), for spreading keys.
pub fn stable_hash(bytes: impl IntoIterator<Item = u8>) -> u32 {
    bytes.into_iter().fold(0x811c_9dc5, |h: u32, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}
/// GSI1 sort key of a copying save: when its lease lapses, fixed width so text order is time order.
pub fn lease_sort(until_ms: i64) -> String {
    format!("{:015}", until_ms.max(0))
}

/// `UNPUBLISH#{bucket}/{key}`: an object whose removal (delete, then CDN invalidation) is owed.
pub fn unpublish(bucket: &str, key: &str) -> String {
    format!("UNPUBLISH#{bucket}/{key}")
}
/// Sort key of an owed removal.
pub const UNPUBLISH: &str = "UNPUBLISH";
/// Shards of the sparse index of owed removals (the sweep reads them all).
pub const UNPUBLISH_SHARDS: u32 = 8;
/// GSI1 partition of owed removals, shard `shard`.
pub fn unpublish_queue(shard: u32) -> String {
    format!("UNPUBLISH#QUEUE#{shard}")
}
/// GSI1 shard of an owed removal: spread by its key.
pub fn unpublish_shard(key: &str) -> u32 {
    stable_hash(key.bytes()) % UNPUBLISH_SHARDS
}
