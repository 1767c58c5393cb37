//! A user's media records: created for an object in the user-media bucket (exactly once per
//! path), and uploads stored and recorded in one step (the operator CLI and the tests use it).

use crate::blob::keys as object_keys;
use crate::domain::{rfc3339_millis, MediaId, MediaSource, UserId};
use crate::store::ids::counters;
use crate::store::items::MediaItem;
use crate::store::{keys, StoreError, Written};
use crate::App;

/// A media record not yet shared, created at `created_ms`.
pub fn new_media_item(
    owner: &UserId,
    file_path: &str,
    id: MediaId,
    source: MediaSource,
    mime_type: &str,
    size: u64,
    created_ms: i64,
) -> MediaItem {
    MediaItem {
        pk: keys::media(id),
        sk: keys::MEDIA.into(),
        gsi1pk: keys::owner_media(owner),
        gsi1sk: keys::owner_media_sort(created_ms, id),
        media_id: id,
        owner_id: owner.clone(),
        file_path: file_path.into(),
        source: source.as_str().into(),
        mime_type: mime_type.into(),
        size,
        created_at: rfc3339_millis(created_ms),
        created_at_ms: created_ms,
        is_shared: false,
        share_to_community: false,
        share_code: None,
        community_media_id: None,
    }
}

/// A media upload could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The object could not be written.
    #[error(transparent)]
    Blob(#[from] crate::blob::BlobError),
}

/// Stores `bytes` under the owner's prefix in the user-media bucket and records it. The MIME type
/// is `content_type` if given, else sniffed from the bytes.
pub async fn upload_media(
    app: &App,
    owner: &UserId,
    file_name: &str,
    bytes: Vec<u8>,
    source: MediaSource,
    content_type: Option<&str>,
) -> Result<MediaItem, UploadError> {
    let mime = content_type
        .map(str::to_string)
        .or_else(|| crate::domain::sniff_mime(&bytes).map(str::to_string))
        .unwrap_or_else(|| "application/octet-stream".into());
    let path = object_keys::upload(owner, file_name);
    let size = bytes.len() as u64;
    app.blob
        .put(&app.config.user_media_bucket, &path, bytes, &mime)
        .await?;
    let id = MediaId(app.store.ids().next(counters::MEDIA).await?);
    let item = new_media_item(
        owner,
        &path,
        id,
        source,
        &mime,
        size,
        app.clock.now_millis(),
    );
    match app.store.create_media_at_path(&item).await? {
        Written::Done => Ok(item),
        // The path is new (a random name): nothing else can have recorded it.
        Written::Stale => Err(StoreError::unexpected(
            "record media",
            format!("{path} already has a media record"),
        )
        .into()),
    }
}
