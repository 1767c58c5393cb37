//! Item shapes as stored (serde_dynamo). Each carries its own keys so one serialize is one put.

use crate::domain::{MediaId, MediaKind, SessionId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A user: balance and plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserItem {
    /// Partition key (see `keys`).
    pub pk: String,
    /// Sort key (see `keys`).
    pub sk: String,
    /// The user.
    pub user_id: UserId,
    /// Credit balance.
    pub credits: i64,
    /// Has a premium subscription.
    pub is_premium: bool,
    /// Creation time (RFC 3339, milliseconds).
    pub created_at: String,
}

/// What a feature costs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PricingItem {
    /// Partition key (see `keys`).
    pub pk: String,
    /// Sort key (see `keys`).
    pub sk: String,
    /// The priced feature.
    pub feature_key: String,
    /// Credit balance.
    pub credits: i64,
    /// Only premium users may use it.
    pub premium_only: bool,
}

/// A canonical tag.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagItem {
    /// Partition key (see `keys`).
    pub pk: String,
    /// Sort key (see `keys`).
    pub sk: String,
    /// The tag's slug.
    pub slug: String,
    /// Display name.
    pub name: String,
}

/// Lifecycle of a session: `copying` while a save copies its media, then `ready`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    /// Media copy in progress; never shown as complete.
    Copying,
    /// Complete.
    Ready,
}

/// A session (its media are separate rows in the same partition).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionItem {
    /// Partition key (see `keys`).
    pub pk: String,
    /// Sort key (see `keys`).
    pub sk: String,
    /// The session's id.
    pub session_id: SessionId,
    /// The owning user.
    pub owner_id: UserId,
    /// Title.
    pub title: String,
    /// The session's category, if any.
    #[serde(default)]
    pub category: Option<String>,
    /// Session settings (JSON, as the client sends them).
    #[serde(default)]
    pub settings: Value,
    /// Free-form metadata (JSON).
    #[serde(default)]
    pub metadata: Value,
    /// Visible to other users.
    pub is_public: bool,
    /// Shared to the community.
    pub shared_to_community: bool,
    /// Marked as a favourite.
    pub is_favorite: bool,
    /// Imported (saved from the community) rather than made.
    pub is_imported: bool,
    /// Where an imported session came from.
    #[serde(default)]
    pub import_source: Option<String>,
    /// The URL an imported session came from.
    #[serde(default)]
    pub import_url: Option<String>,
    /// Subreddits the session draws from.
    #[serde(default)]
    pub subreddits: Vec<String>,
    /// How many media the session has.
    pub media_count: u32,
    /// Where it is in its life.
    pub state: SessionState,
    /// Creation time (RFC 3339, milliseconds).
    pub created_at: String,
}

/// One media entry of a session, at its position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionMedia {
    /// Position in the session.
    pub order: u32,
    /// Image, video or GIF.
    #[serde(rename = "type")]
    pub kind: MediaKind,
    /// The media's caption, if any.
    #[serde(default)]
    pub caption: Option<String>,
    /// Bucket and key when the media is an object we store; absent for external URLs.
    #[serde(default)]
    pub bucket: Option<String>,
    /// The object key.
    #[serde(default)]
    pub key: Option<String>,
    /// A URL that works as is: external media and public objects. Absent for objects in a
    /// private bucket, which are reached by bucket and key (a presigned request), never by a
    /// stored URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Object size in bytes, when known (chooses single or multipart copy).
    #[serde(default)]
    pub size: Option<u64>,
    /// In a saved copy: the general-bucket key this object is copied from (the media plan fixed
    /// when the save was claimed, so every finisher copies the same version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_from: Option<String>,
}

/// Consecutive media of a session in one item of at most [`CHUNK_BYTES`], so a whole session
/// reads in one query whatever its length.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionMediaChunk {
    /// Partition key (see `keys`).
    pub pk: String,
    /// Sort key (see `keys`).
    pub sk: String,
    /// The media entries.
    pub media: Vec<SessionMedia>,
}

/// Budget of one chunk item, counted as its entries' JSON size (which is never smaller than
/// DynamoDB's own size of the same data): far enough below DynamoDB's 400 KB item limit that keys
/// and attribute names always fit.
pub const CHUNK_BYTES: usize = 300 * 1024;

/// Progress of a save: `copying` until every media object is in place, then `ready`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaveState {
    /// Charged, session created, media being copied.
    Copying,
    /// Complete.
    Ready,
}

/// That a user saved a community session, and into which session. Exactly one per pair.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SaveRecord {
    /// Partition key (see `keys`).
    pub pk: String,
    /// Sort key (see `keys`).
    pub sk: String,
    /// The community session that was saved.
    pub source_session_id: SessionId,
    /// The session's id.
    pub session_id: SessionId,
    /// Where it is in its life.
    pub state: SaveState,
    /// Credits charged, refunded as is if the save is rolled back.
    pub charged: i64,
    /// Sort key of the activity entry written with the charge.
    pub activity_sk: String,
    /// Creation time (RFC 3339, milliseconds).
    pub created_at: String,
    /// Creation time (epoch milliseconds).
    #[serde(default)]
    pub created_at_ms: i64,
    /// The saving user (also in `pk`), so the reaper can act on a record found through the index.
    pub user_id: UserId,
    /// While `copying`: who holds the copy lease (a random token per copier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
    /// While `copying`: when the lease lapses unless renewed (epoch ms). A copier that stops
    /// (gave up on a fault, or reached its deadline) sets it to 0, so the next one starts at once.
    #[serde(default)]
    pub lease_until_ms: i64,
    /// Sparse index of saves still copying (present only in that state): the reaper's work list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1pk: Option<String>,
    /// GSI1 sort key (see `keys`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1sk: Option<String>,
}

/// A user's media record (what `GET /api/user/media` lists and share acts on).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaItem {
    /// Partition key (see `keys`).
    pub pk: String,
    /// Sort key (see `keys`).
    pub sk: String,
    /// GSI1 partition key (see `keys`).
    pub gsi1pk: String,
    /// GSI1 sort key (see `keys`).
    pub gsi1sk: String,
    /// The user media record's id.
    pub media_id: MediaId,
    /// The owning user.
    pub owner_id: UserId,
    /// Key in the user-media bucket, always under `users/{ownerId}/`.
    pub file_path: String,
    /// Where the media came from (`MediaSource` wire name).
    pub source: String,
    /// MIME type, sniffed from the bytes.
    pub mime_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Creation time (RFC 3339, milliseconds).
    pub created_at: String,
    /// Creation time (epoch milliseconds).
    pub created_at_ms: i64,
    /// Has a share code.
    pub is_shared: bool,
    /// Shared to the community.
    pub share_to_community: bool,
    /// The live share code, if shared.
    #[serde(default)]
    pub share_code: Option<String>,
    /// The community copy's id.
    #[serde(default)]
    pub community_media_id: Option<u64>,
}

/// One entry of a user's activity log.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityItem {
    /// Partition key (see `keys`).
    pub pk: String,
    /// Sort key (see `keys`).
    pub sk: String,
    /// What happened (`media_shared`, `community_session_saved`, ...).
    pub action: String,
    /// The feature key the entry belongs to.
    pub feature: String,
    /// What the entry is about (JSON).
    #[serde(default)]
    pub details: Value,
    /// When (RFC 3339, milliseconds).
    pub at: String,
}

/// Where a community copy is in its life: `pending` until the watermark function publishes it,
/// then `ready`; `failed` records are never shown. Moderation takes a ready copy back: `hidden`
/// (reported; held privately for review), `removed` (taken down for good, its hash blocklisted);
/// `blocked` is a copy that matched the blocklist and was never published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommunityStatus {
    /// Waiting for the watermark function (its source is in the staging prefix).
    Pending,
    /// Public: the object is at `key` and the record is in the feed.
    Ready,
    /// Could not be published; never listed, never served.
    Failed,
    /// Out of the feed and unpublished after reports; its object held privately for review.
    Hidden,
    /// Taken down by an operator: unpublished for good, its hash blocklisted.
    Removed,
    /// Matched the blocklist when it was to be published: never public.
    Blocked,
}

/// The community copy of a shared media item: independent of the original once made.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommunityMediaItem {
    /// Partition key (see `keys`).
    pub pk: String,
    /// Sort key (see `keys`).
    pub sk: String,
    /// The community copy's id.
    pub community_media_id: u64,
    /// The user media record's id.
    pub media_id: MediaId,
    /// The owning user.
    pub owner_id: UserId,
    /// Where it is in its life.
    pub status: CommunityStatus,
    /// The bucket the object is in.
    pub bucket: String,
    /// The public object's key (under `community/`), present once published.
    pub key: String,
    /// The private object in the general bucket's staging prefix whose creation (an S3
    /// notification) starts the publisher, while `pending`: the staged original of an image to
    /// watermark, or an empty hand-over marker (see `handover`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging_key: Option<String>,
    /// What the publisher copies as is (GIFs, videos, generated media), handed over instead of
    /// copied inside the request, whatever its size: the user's original. `None` for an image
    /// the publisher watermarks from its staged copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<Handover>,
    /// Where it is served (public URL) or fetched from.
    pub url: String,
    /// Image, video or GIF.
    #[serde(rename = "type")]
    pub kind: MediaKind,
    /// MIME type, sniffed from the bytes.
    pub mime_type: String,
    /// Tag slugs.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Creation time (RFC 3339, milliseconds).
    pub created_at: String,
    /// Creation time (epoch milliseconds).
    pub created_at_ms: i64,
    /// Bumped by every change of tags or state: writers condition on the version they read.
    pub version: u64,
    /// The feed index (sharded), present only while `ready`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1pk: Option<String>,
    /// GSI1 sort key (see `keys`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1sk: Option<String>,
    /// What the publisher found the content to be, for the blocklist: `pdq:{hex}` for images
    /// (a GIF by its first frame), `sha256:{hex}` for anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// The perceptual hashes of its centre crops, blocklisted with `content_hash` on a takedown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crop_hashes: Vec<String>,
    /// While `hidden`: the private copy of its public object (under `held/`), for a restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_key: Option<String>,
}

/// One user's report of a community copy (one per user and round: a repeat counts once).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportItem {
    /// Partition key (see `keys`): the copy's partition.
    pub pk: String,
    /// Sort key (see `keys`).
    pub sk: String,
    /// The reporter (never shown to the owner).
    pub user_id: UserId,
    /// One of the documented reasons.
    pub reason: String,
    /// The reporter's note, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When (RFC 3339, milliseconds).
    pub reported_at: String,
}

/// The reports of a community copy, summed: what `joip-admin reports list` shows. Reports are
/// counted in rounds: a restore resolves the round's reports and starts the next.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportSummaryItem {
    /// Partition key (see `keys`): the copy's partition.
    pub pk: String,
    /// Sort key (see `keys`).
    pub sk: String,
    /// The copy.
    pub community_media_id: u64,
    /// The current round of reports (restores start a new one).
    #[serde(default)]
    pub round: u64,
    /// Distinct reporters this round.
    #[serde(default)]
    pub reporters: u64,
    /// Reports this round by reason, as `reason_{reason}` attributes.
    #[serde(flatten)]
    pub reason_counts: std::collections::BTreeMap<String, u64>,
    /// The round's first and last report (RFC 3339, milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_reported_at: Option<String>,
    /// See `first_reported_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reported_at: Option<String>,
    /// The open-reports index, present while the round has reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1pk: Option<String>,
    /// GSI1 sort key (see `keys`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1sk: Option<String>,
}

/// A user's recent reports, for the hourly limit: a ring of the last `limit` report times; the
/// slot `next` is the oldest, so a new report is allowed only if it is over an hour old.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportRateItem {
    /// Partition key (see `keys`): the user's partition.
    pub pk: String,
    /// Sort key (see `keys`).
    pub sk: String,
    /// The slot the next report takes.
    #[serde(default)]
    pub next: u64,
    /// Report times (epoch ms) by slot, as `slot{n}` attributes.
    #[serde(flatten)]
    pub slots: std::collections::BTreeMap<String, i64>,
}

/// A blocklisted content hash.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockedHashItem {
    /// Partition key (see `keys`).
    pub pk: String,
    /// Sort key (see `keys`).
    pub sk: String,
    /// `pdq:{hex}` or `sha256:{hex}`.
    pub hash: String,
    /// Why it was blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The community copy it came from, if a takedown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub community_media_id: Option<u64>,
    /// For a crop variant: the hash of the picture it was cut from (variants are not listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_of: Option<String>,
    /// When (RFC 3339, milliseconds).
    pub added_at: String,
    /// The blocklist's listing index (listed hashes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1pk: Option<String>,
    /// GSI1 sort key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1sk: Option<String>,
}

/// The object a community copy is published from by a server-side copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handover {
    /// The user-media bucket.
    pub bucket: String,
    /// The user's original.
    pub key: String,
}

/// One tag of a community record, with the record's public fields so a tag's feed reads in one
/// query. In the tag's feed index only while the record is `ready`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommunityTagItem {
    /// Partition key (see `keys`).
    pub pk: String,
    /// Sort key (see `keys`).
    pub sk: String,
    /// The tag's slug.
    pub slug: String,
    /// The community copy's id.
    pub community_media_id: u64,
    /// Where it is served (public URL) or fetched from.
    pub url: String,
    /// Image, video or GIF.
    #[serde(rename = "type")]
    pub kind: MediaKind,
    /// MIME type, sniffed from the bytes.
    pub mime_type: String,
    /// Tag slugs.
    pub tags: Vec<String>,
    /// Creation time (RFC 3339, milliseconds).
    pub created_at: String,
    /// GSI1 partition key (see `keys`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1pk: Option<String>,
    /// GSI1 sort key (see `keys`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1sk: Option<String>,
}

/// What the community feed shows of a record (read from records and tag items alike).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedEntry {
    /// The community copy's id.
    pub community_media_id: u64,
    /// Where it is served (public URL) or fetched from.
    pub url: String,
    /// Image, video or GIF.
    #[serde(rename = "type")]
    pub kind: MediaKind,
    /// MIME type, sniffed from the bytes.
    pub mime_type: String,
    /// Tag slugs.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Creation time (RFC 3339, milliseconds).
    pub created_at: String,
    /// GSI1 sort key (see `keys`).
    pub gsi1sk: String,
}

/// The one community copy a media item may have (DESIGN invariant 3): put with
/// `attribute_not_exists` in the transaction that creates the record.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommunityMarker {
    /// Partition key (see `keys`).
    pub pk: String,
    /// Sort key (see `keys`).
    pub sk: String,
    /// The community copy's id.
    pub community_media_id: u64,
}

/// A share code and the media it opens (unique by a conditional put).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShareCodeItem {
    /// Partition key (see `keys`).
    pub pk: String,
    /// Sort key (see `keys`).
    pub sk: String,
    /// The live share code, if shared.
    pub share_code: String,
    /// The user media record's id.
    pub media_id: MediaId,
    /// The owning user.
    pub owner_id: UserId,
    /// Creation time (RFC 3339, milliseconds).
    pub created_at: String,
    /// When the link stops working (ms since the epoch); never, if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// Views the link allows since that limit was last set; unlimited, if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_views: Option<u64>,
    /// Views spent against `max_views`.
    #[serde(default)]
    pub views_used: u64,
    /// Views counted on this item (every limited view); unlimited views are counted in the link's
    /// view shards.
    #[serde(default)]
    pub views: u64,
    /// The request that spent the last limited view: an attempt retried after its answer was lost
    /// recognises its own view instead of spending another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_view: Option<String>,
}

/// One shard of an unlimited link's view count.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkViewsItem {
    /// Partition key (see `keys`).
    pub pk: String,
    /// Sort key (see `keys`).
    pub sk: String,
    /// Views counted here.
    #[serde(default)]
    pub views: u64,
}

/// The media record of an object path (one record per path, created exactly once).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaPathItem {
    /// Partition key (see `keys`).
    pub pk: String,
    /// Sort key (see `keys`).
    pub sk: String,
    /// The user media record's id.
    pub media_id: MediaId,
}

/// An owed removal (the unpublish outbox): written in the transaction that removes what named the
/// object, done (object deleted, CDN path invalidated) right after by the remover and, if it
/// died or CloudFront was busy, by the reaper's sweep.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnpublishItem {
    /// Partition key (see `keys::unpublish`).
    pub pk: String,
    /// Sort key.
    pub sk: String,
    /// The object's bucket.
    pub bucket: String,
    /// The object's key.
    pub key: String,
    /// Whether the CDN may hold it (public keys); staged sources are only deleted.
    pub invalidate: bool,
    /// When the removal was owed (epoch milliseconds).
    pub created_at_ms: i64,
    /// GSI1 partition: the sweep's queue shard.
    pub gsi1pk: String,
    /// GSI1 sort key: when it was owed, so the sweep takes the oldest first.
    pub gsi1sk: String,
}
