//! Creating and listing a user's media records.

use crate::domain::{now_millis, rfc3339_millis, MediaId, MediaSource, UserId};
use crate::store::ids::counters;
use crate::store::items::MediaItem;
use crate::store::{keys, Store, StoreError};

/// Records a media object already stored at `file_path` in the user-media bucket.
pub async fn record_media(
    store: &Store,
    owner: &UserId,
    file_path: &str,
    source: MediaSource,
    mime_type: &str,
    size: u64,
) -> Result<MediaItem, StoreError> {
    let id = MediaId(store.ids().next(counters::MEDIA).await?);
    let item = new_media_item(owner, file_path, id, source, mime_type, size);
    match store.create_media_at_path(&item).await? {
        crate::store::Written::Done => Ok(item),
        crate::store::Written::Stale => Err(StoreError::corrupt(
            "record media",
            format!("{file_path} already has a media record"),
        )),
    }
}

/// A media record not yet shared, created now.
pub fn new_media_item(
    owner: &UserId,
    file_path: &str,
    id: MediaId,
    source: MediaSource,
    mime_type: &str,
    size: u64,
) -> MediaItem {
    let created = now_millis();
    MediaItem {
        pk: keys::media(id),
        sk: keys::MEDIA.into(),
        gsi1pk: keys::owner_media(owner),
        gsi1sk: keys::owner_media_sort(created, id),
        media_id: id,
        owner_id: owner.clone(),
        file_path: file_path.into(),
        source: source.as_str().into(),
        mime_type: mime_type.into(),
        size,
        created_at: rfc3339_millis(created),
        created_at_ms: created,
        is_shared: false,
        share_to_community: false,
        share_code: None,
        community_media_id: None,
    }
}

/// Where in the user-media bucket a user's upload named `file_name` goes.
pub fn upload_path(owner: &UserId, file_name: &str) -> String {
    let safe: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{}/{owner}/uploads/{}-{safe}",
        crate::config::USER_PREFIX,
        uuid::Uuid::new_v4().simple()
    )
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
    app: &crate::App,
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
    let path = upload_path(owner, file_name);
    let size = bytes.len() as u64;
    app.blob
        .put(&app.config.user_media_bucket, &path, bytes, &mime)
        .await?;
    Ok(record_media(&app.store, owner, &path, source, &mime, size).await?)
}
