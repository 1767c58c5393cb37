//! The one community copy of a media: planned (every refusal decided before any write), created
//! (staged source first, then marker + `pending` record + tags in one transaction), retagged
//! atomically, or removed (records and the owed removal of its objects in one transaction, then
//! the objects). Every kind goes public through the publisher: upload images are watermarked from
//! a staged copy, everything else is copied as is from a staged copy or, when too large to stage
//! within the request, from the handed-over original.

use super::{failed, ShareRequest, NOT_FOUND};
use crate::blob::keys as object_keys;
use crate::domain::{normalize_tags, rfc3339_millis, sniff_mime, MediaId, MediaKind, MediaSource};
use crate::error::AppError;
use crate::service::rounds::{settle, Round, ROUNDS};
use crate::service::unpublish;
use crate::store::ids::counters;
use crate::store::items::{
    CommunityMediaItem, CommunityStatus, CommunityTagItem, Handover, MediaItem,
};
use crate::store::{keys, StoreError, Written};
use crate::App;

/// 400 for upload images shared to the community without the policy confirmation.
pub const POLICY_REQUIRED: &str = "Policy confirmation is required for upload sharing";
/// 400 for upload images shared to the community without tags.
pub const TAG_REQUIRED: &str = "At least one tag is required for upload sharing";
/// 400 when the bytes are no format the community may serve (JPEG, PNG, WebP, GIF, video).
pub const NOT_PUBLISHABLE: &str = "This file type cannot be shared to the community";
/// 400 when the file is larger than the community takes (`JOIP_COMMUNITY_MAX_BYTES`, or the
/// watermark limit for upload images).
pub const TOO_LARGE: &str = "This file is too large to share to the community";
/// Formats the community copy is watermarked in (the publisher's input).
pub const WATERMARKABLE: [&str; 3] = ["image/jpeg", "image/png", "image/webp"];
/// Bytes read from an object to tell its format.
pub const SNIFF_BYTES: u64 = 64;
/// The content type of the empty object that hands a copy over to the publisher.
pub const HANDOVER_MARKER_TYPE: &str = "application/x-joip-handover";

/// What the community copy will be, decided (and refused) before any write.
pub struct CommunityPlan {
    media: MediaItem,
    tags: Vec<String>,
    mime: String,
    kind: MediaKind,
    /// The object's size, as S3 gave it when it was sniffed.
    size: u64,
    /// Upload images go through the publisher; everything else is copied as is.
    watermark: bool,
}

/// What a community copy of `mime` from `source` is, and whether it is watermarked; or the
/// documented refusal. Only what we can serve safely goes public: the watermarkable images, GIFs
/// and videos (never SVG, HTML or unknown bytes, whatever the source).
pub fn publishable(
    source: Option<MediaSource>,
    mime: Option<&str>,
) -> Result<(MediaKind, bool), AppError> {
    let mime = mime.ok_or(AppError::bad_request(NOT_PUBLISHABLE))?;
    let kind = MediaKind::from_mime(mime)
        .filter(|k| *k != MediaKind::Image || WATERMARKABLE.contains(&mime))
        .ok_or(AppError::bad_request(NOT_PUBLISHABLE))?;
    Ok((
        kind,
        source == Some(MediaSource::Upload) && kind == MediaKind::Image,
    ))
}

/// The refusals that need no I/O: no file larger than the community takes (`max_bytes`); an
/// upload image needs the policy confirmation and a tag; no copy has more than `max_tags`
/// (counted before the names are checked, so an answer naming unknown tags names at most this
/// many).
pub fn check_request(
    (watermark, size, max_bytes): (bool, u64, u64),
    policy_agreed: bool,
    tags: &[String],
    max_tags: usize,
) -> Result<(), AppError> {
    if size > max_bytes {
        return Err(AppError::bad_request(TOO_LARGE));
    }
    if watermark && !policy_agreed {
        return Err(AppError::bad_request(POLICY_REQUIRED));
    }
    if watermark && tags.is_empty() {
        return Err(AppError::bad_request(TAG_REQUIRED));
    }
    if tags.len() > max_tags {
        return Err(AppError::invalid(format!(
            "At most {max_tags} tags are allowed"
        )));
    }
    Ok(())
}

/// Plans the community copy of `media`: its format from its bytes (never from a name or a
/// claimed type), and every refusal.
pub async fn plan(
    app: &App,
    media: &MediaItem,
    request: &ShareRequest,
) -> Result<CommunityPlan, AppError> {
    let head = app
        .blob
        .get_range(&app.config.user_media_bucket, &media.file_path, SNIFF_BYTES)
        .await
        .map_err(failed)?;
    let mime = sniff_mime(&head.bytes);
    let (kind, watermark) = publishable(MediaSource::parse(&media.source), mime)?;
    let tags = normalize_tags(&request.tags);
    let max_bytes = if watermark {
        app.config.watermark_max_bytes
    } else {
        app.config.community_max_bytes
    };
    check_request(
        (watermark, head.size, max_bytes),
        request.policy_agreed,
        &tags,
        app.config.max_tags,
    )?;
    if !tags.is_empty() {
        let canonical = app.store.tags().await.map_err(failed)?;
        let unknown: Vec<&str> = tags
            .iter()
            .filter(|t| !canonical.iter().any(|c| &c.slug == *t))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(AppError::invalid(format!(
                "Unknown tags: {}",
                unknown.join(", ")
            )));
        }
    }
    Ok(CommunityPlan {
        media: media.clone(),
        tags,
        mime: mime.unwrap_or_default().to_string(),
        kind,
        size: head.size,
        watermark,
    })
}

/// The one community copy of the media, with exactly `plan.tags`: created or, if it exists,
/// retagged atomically. `None` when the media's share code is no longer `code` (revoked
/// meanwhile).
pub async fn ensure(
    app: &App,
    media_id: MediaId,
    plan: &CommunityPlan,
    code: &str,
) -> Result<Option<CommunityMediaItem>, AppError> {
    settle("ensure community copy", ROUNDS, (), |()| async move {
        let (media, marker) = app.store.media_and_marker(media_id).await.map_err(failed)?;
        let media = media.ok_or(AppError::NotFound(NOT_FOUND))?;
        if media.share_code.as_deref() != Some(code) {
            return Ok(Round::Done(None));
        }
        let Some(marker) = marker else {
            return Ok(match create(app, &media, plan, code).await? {
                Some(created) => Round::Done(Some(created)),
                None => Round::Again(()),
            });
        };
        let record = app
            .store
            .community_media(marker.community_media_id)
            .await
            .map_err(failed)?;
        let Some(record) = record else {
            return Ok(Round::Again(())); // being removed right now
        };
        if record.status == CommunityStatus::Failed {
            // A copy that could not be published is replaced by a fresh one.
            remove_record(app, Some(&media), &record)
                .await
                .map_err(failed)?;
            return Ok(Round::Again(()));
        }
        let tags = tag_items(&record, &plan.tags);
        let retagged = CommunityMediaItem {
            tags: plan.tags.clone(),
            version: record.version + 1,
            ..record.clone()
        };
        Ok(
            match app
                .store
                .retag_community(&media, &record, &tags, code)
                .await
                .map_err(failed)?
            {
                Written::Done => Round::Done(Some(retagged)),
                Written::Stale => Round::Again(()),
            },
        )
    })
    .await?
    .map_err(failed)
}

/// Stages the copy's source under its new, unique key, then commits the `pending` records; the
/// publisher makes the public object. `None` if another request created the media's copy first
/// (our staged object is deleted again, and the caller joins theirs).
///
/// Nothing goes public from here, and nothing here outgrows the request: an image to watermark,
/// and any other file up to `JOIP_STAGE_MAX_BYTES`, is copied to staging (the publisher then
/// works from that copy, whatever becomes of the original); a larger file is handed over (the
/// record names the user's original and an empty marker starts the publisher, which copies it
/// server-side within its own, longer deadline).
async fn create(
    app: &App,
    media: &MediaItem,
    plan: &CommunityPlan,
    code: &str,
) -> Result<Option<CommunityMediaItem>, AppError> {
    let id = app
        .store
        .ids()
        .next(counters::COMMUNITY_MEDIA)
        .await
        .map_err(failed)?;
    let now = app.clock.now_millis();
    let key = object_keys::community(id, &plan.mime);
    let staging_key = object_keys::staging_for(&key);
    let source = (
        app.config.user_media_bucket.as_str(),
        plan.media.file_path.as_str(),
    );
    let general = &app.config.general_bucket;
    // What the publisher copies as is: the staged copy, or the original when it is too large to
    // copy here.
    let staged_whole = plan.watermark || plan.size <= app.config.stage_max_bytes;
    let handover = (!plan.watermark).then(|| match staged_whole {
        true => Handover {
            bucket: general.clone(),
            key: staging_key.clone(),
        },
        false => Handover {
            bucket: source.0.to_string(),
            key: source.1.to_string(),
        },
    });
    let record = CommunityMediaItem {
        pk: keys::community(id),
        sk: keys::COMMUNITY_RECORD.into(),
        community_media_id: id,
        media_id: media.media_id,
        owner_id: media.owner_id.clone(),
        status: CommunityStatus::Pending,
        bucket: app.config.general_bucket.clone(),
        url: format!("{}/{key}", app.config.public_base_url),
        key,
        staging_key: Some(staging_key.clone()),
        handover,
        kind: plan.kind,
        mime_type: plan.mime.clone(),
        tags: plan.tags.clone(),
        created_at: rfc3339_millis(now),
        created_at_ms: now,
        version: 1,
        gsi1pk: None,
        gsi1sk: None,
        content_hash: None,
        crop_hashes: Vec::new(),
        held_key: None,
    };
    let staged = if staged_whole {
        let size = Some(plan.media.size);
        (app.blob)
            .copy(source.0, source.1, general, &staging_key, size)
            .await
    } else {
        let marker = Vec::new();
        (app.blob)
            .put(general, &staging_key, marker, HANDOVER_MARKER_TYPE)
            .await
    };
    if let Err(e) = staged {
        // A copy whose answer was lost may have landed: nothing will ever name our key.
        discard(app, &staging_key).await;
        return Err(failed(e));
    }
    let tags = tag_items(&record, &plan.tags);
    match app
        .store
        .create_community(media, &record, &tags, code)
        .await
    {
        Ok(Written::Done) => Ok(Some(record)),
        Ok(Written::Stale) => {
            // Nothing may point at our object: remove it before joining the other copy.
            discard(app, &staging_key).await;
            Ok(None)
        }
        // The answer may have been lost after the transaction committed: our record (the id is
        // ours alone) says which. Only an object no record can name is removed.
        Err(e) => match app.store.community_media(id).await {
            Ok(Some(_)) => Ok(Some(record)),
            Ok(None) => {
                discard(app, &staging_key).await;
                Err(failed(e))
            }
            Err(_) => Err(failed(e)),
        },
    }
}

/// Deletes the object of a community copy that was never committed (its key is unique to the
/// request that copied it).
async fn discard(app: &App, key: &str) {
    if let Err(e) = app.blob.delete(&app.config.general_bucket, key).await {
        tracing::error!(error = %crate::error::Report(&e), %key, "could not delete the object of an uncommitted community copy");
    }
}

/// The tag items of `record` for `tags`, in its feed index when the record is ready.
fn tag_items(record: &CommunityMediaItem, tags: &[String]) -> Vec<CommunityTagItem> {
    let ready = record.status == CommunityStatus::Ready;
    let id = record.community_media_id;
    tags.iter()
        .map(|slug| CommunityTagItem {
            pk: record.pk.clone(),
            sk: keys::community_tag(slug),
            slug: slug.clone(),
            community_media_id: id,
            url: record.url.clone(),
            kind: record.kind,
            mime_type: record.mime_type.clone(),
            tags: tags.to_vec(),
            created_at: record.created_at.clone(),
            gsi1pk: ready.then(|| keys::tag_feed(slug, id)),
            gsi1sk: ready.then(|| keys::feed_sort(record.created_at_ms, id)),
        })
        .collect()
}

/// Removes the media's community copy, if any: its objects, then its records in one transaction.
pub async fn remove(app: &App, media_id: MediaId) -> Result<(), StoreError> {
    settle("remove community copy", ROUNDS, (), |()| async move {
        let (media, marker) = app.store.media_and_marker(media_id).await?;
        let Some(marker) = marker else {
            if let Some(media) = media
                .as_ref()
                .filter(|m| m.share_to_community || m.community_media_id.is_some())
            {
                app.store.mark_not_in_community(media).await?;
            }
            return Ok(Round::Done(()));
        };
        let Some(record) = app.store.community_media(marker.community_media_id).await? else {
            return Ok(Round::Again(()));
        };
        Ok(match remove_record(app, media.as_ref(), &record).await? {
            Written::Done => Round::Done(()),
            Written::Stale => Round::Again(()),
        })
    })
    .await?
    .map_err(|e| StoreError::Contended { op: e.0 })
}

/// Removes a copy's records and, in the same transaction, owes the removal of its objects (the
/// unpublish outbox); then deletes them and invalidates the CDN at once. Whatever that misses,
/// the sweep finishes: the owed items name the objects until they are gone, so nothing public is
/// ever left unnamed. A publish meanwhile changes the record's version, so the removal is
/// `Stale` and the caller reads and removes again.
async fn remove_record(
    app: &App,
    media: Option<&MediaItem>,
    record: &CommunityMediaItem,
) -> Result<Written, StoreError> {
    let owed = unpublish::owed_by(record, app.clock.now_millis());
    let removed = app.store.remove_community(media, record, &owed).await?;
    if removed == Written::Done {
        unpublish::drain_now(app, &owed).await;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_servable_formats_go_public_and_only_upload_images_are_watermarked() {
        let upload = Some(MediaSource::Upload);
        assert_eq!(
            publishable(upload, Some("image/png")).unwrap(),
            (MediaKind::Image, true)
        );
        assert_eq!(
            publishable(upload, Some("image/gif")).unwrap(),
            (MediaKind::Gif, false)
        );
        assert_eq!(
            publishable(Some(MediaSource::Babecock), Some("image/jpeg")).unwrap(),
            (MediaKind::Image, false)
        );
        assert_eq!(
            publishable(upload, Some("video/mp4")).unwrap(),
            (MediaKind::Video, false)
        );
        for refused in [
            Some("image/svg+xml"),
            Some("text/html"),
            Some("image/bmp"),
            None,
        ] {
            assert!(publishable(upload, refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn the_request_rules_refuse_what_is_too_large_unconfirmed_untagged_or_overtagged() {
        let tags = |n: usize| vec!["solo".to_string(); n];
        let (image, other) = ((true, 10, 10), (false, 10, 10));
        assert!(check_request(image, true, &tags(1), 10).is_ok());
        assert!(check_request(other, false, &[], 10).is_ok());
        let message =
            |r: Result<(), AppError>| r.unwrap_err().status_and_body().1["message"].clone();
        assert_eq!(
            message(check_request(image, false, &tags(1), 10)),
            POLICY_REQUIRED
        );
        assert_eq!(message(check_request(image, true, &[], 10)), TAG_REQUIRED);
        assert_eq!(
            message(check_request(other, false, &tags(11), 10)),
            "At most 10 tags are allowed"
        );
        assert_eq!(
            message(check_request((false, 11, 10), true, &tags(1), 10)),
            TOO_LARGE
        );
        assert_eq!(
            message(check_request((true, 11, 10), false, &[], 10)),
            TOO_LARGE
        );
    }
}
