//! Creating sessions directly (operator CLI, seeding, tests); saving a community session builds on
//! the same records.

use crate::domain::{rfc3339_millis, sniff_mime, MediaKind, SessionId, UserId};
use crate::store::ids::counters;
use crate::store::items::{SessionItem, SessionMedia, SessionState};
use crate::store::keys;
use crate::App;
use serde_json::Value;

/// Where a new session's media entry comes from.
pub enum MediaInput {
    /// Bytes to store in the general bucket; the kind is sniffed from the content.
    Upload {
        /// File name, used for the object key's extension.
        file_name: String,
        /// Content.
        bytes: Vec<u8>,
    },
    /// An external URL recorded as is; the kind comes from its extension.
    External {
        /// The URL.
        url: String,
    },
}

/// A media entry of a new session.
pub struct NewMedia {
    /// Content or URL.
    pub input: MediaInput,
    /// Optional caption.
    pub caption: Option<String>,
}

/// A session to create.
pub struct NewSession {
    /// The owning user.
    pub owner: UserId,
    /// Title.
    pub title: String,
    /// The session's category, if any.
    pub category: Option<String>,
    /// Session settings (JSON, as the client sends them).
    pub settings: Value,
    /// Free-form metadata (JSON).
    pub metadata: Value,
    /// Visible to other users.
    pub is_public: bool,
    /// Shared to the community.
    pub shared_to_community: bool,
    /// Imported (saved from the community) rather than made.
    pub is_imported: bool,
    /// Subreddits the session draws from.
    pub subreddits: Vec<String>,
    /// The media entries.
    pub media: Vec<NewMedia>,
}

/// A session could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateSessionError {
    /// An uploaded file is not an image, GIF or video.
    #[error("media #{0} is not an image, GIF or video")]
    UnsupportedMedia(usize),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// An upload failed.
    #[error(transparent)]
    Blob(#[from] crate::blob::BlobError),
}

/// The kind of an external media URL, from its path's extension (images by default).
pub fn kind_from_url(url: &str) -> MediaKind {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("gif") => MediaKind::Gif,
        Some("mp4" | "webm" | "mov" | "m4v" | "mkv") => MediaKind::Video,
        _ => MediaKind::Image,
    }
}

/// Stores uploads in the general bucket under `sessions/{id}/` and writes the session with its
/// media rows in argument order.
pub async fn create_session(app: &App, new: NewSession) -> Result<SessionId, CreateSessionError> {
    let id = SessionId(app.store.ids().next(counters::SESSION).await?);
    let pk = keys::session(id);
    let mut rows = Vec::with_capacity(new.media.len());
    for (order, media) in new.media.into_iter().enumerate() {
        let (kind, bucket, key, url, size) = match media.input {
            MediaInput::Upload { file_name, bytes } => {
                let mime = sniff_mime(&bytes).ok_or(CreateSessionError::UnsupportedMedia(order))?;
                let kind = MediaKind::from_mime(mime)
                    .ok_or(CreateSessionError::UnsupportedMedia(order))?;
                let ext = infer::get(&bytes).map_or("bin", |t| t.extension());
                let stem: String = file_name
                    .rsplit('/')
                    .next()
                    .unwrap_or("media")
                    .split('.')
                    .next()
                    .unwrap_or("media")
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .take(40)
                    .collect();
                let key = crate::blob::keys::session_media(id, order, &stem, ext);
                let bucket = app.config.general_bucket.clone();
                let size = bytes.len() as u64;
                app.blob.put(&bucket, &key, bytes, mime).await?;
                // The bucket is private: the object is reached by bucket and key, never by a
                // stored URL.
                (kind, Some(bucket), Some(key), None, Some(size))
            }
            MediaInput::External { url } => (kind_from_url(&url), None, None, Some(url), None),
        };
        rows.push(SessionMedia {
            order: order as u32,
            kind,
            caption: media.caption,
            bucket,
            key,
            url,
            size,
            copied_from: None,
        });
    }
    let session = SessionItem {
        pk,
        sk: keys::SESSION.into(),
        session_id: id,
        owner_id: new.owner,
        title: new.title,
        category: new.category,
        settings: new.settings,
        metadata: new.metadata,
        is_public: new.is_public,
        shared_to_community: new.shared_to_community,
        is_favorite: false,
        is_imported: new.is_imported,
        import_source: None,
        import_url: None,
        subreddits: new.subreddits,
        media_count: rows.len() as u32,
        state: SessionState::Ready,
        created_at: rfc3339_millis(app.clock.now_millis()),
    };
    app.store.put_session(&session, &rows).await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_kinds_come_from_the_extension() {
        assert_eq!(kind_from_url("https://x.test/a.GIF?x=1"), MediaKind::Gif);
        assert_eq!(kind_from_url("https://x.test/v.mp4#t=3"), MediaKind::Video);
        assert_eq!(kind_from_url("https://x.test/p.jpg"), MediaKind::Image);
        assert_eq!(kind_from_url("https://x.test/page"), MediaKind::Image);
    }
}
