//! Share and unshare: the rounds that give a media its link and make (or remove) its community
//! copy. Every refusal is decided before the first write; every write conditions on what was
//! read, and a lost condition reads and decides again, so concurrent shares and unshares from
//! many tabs converge without locks.

use super::{community_copy, failed, link, ShareRequest, Shared, FAILED_UNSHARE, NOT_FOUND};
use crate::domain::{MediaId, UserId};
use crate::error::AppError;
use crate::service::activity::{self, MEDIA_GALLERY};
use crate::service::rounds::{settle, Round, ROUNDS};
use crate::store::items::{CommunityMediaItem, MediaItem};
use crate::store::{LimitChange, StoreError, Written};
use crate::App;
use serde_json::json;

/// Shares the caller's media `id`.
pub async fn share_media(
    app: &App,
    caller: &UserId,
    id: MediaId,
    request: &ShareRequest,
) -> Result<Shared, AppError> {
    let limits = request.limits(app.clock.now_millis())?;
    let (media, _) = app.store.media_and_marker(id).await.map_err(failed)?;
    let media = media
        .filter(|m| &m.owner_id == caller)
        .ok_or(AppError::NotFound(NOT_FOUND))?;
    share_owned(app, media, request, limits).await
}

async fn share_owned(
    app: &App,
    media: MediaItem,
    request: &ShareRequest,
    limits: LimitChange,
) -> Result<Shared, AppError> {
    // Every refusal first.
    let plan = if request.share_to_community {
        Some(community_copy::plan(app, &media, request).await?)
    } else {
        None
    };
    let plan = plan.as_ref();
    // A DELETE may revoke the code while this share runs: the community copy is only ever
    // written for the code this request answers with (the media update conditions on it), and
    // a lost code starts the share again with a new one.
    let (media, link, community) = settle("share", ROUNDS, media, |media| async move {
        let link = link::ensure(app, &media, limits).await?;
        let share_code = &link.share_code;
        let community = match plan {
            Some(plan) => {
                match community_copy::ensure(app, media.media_id, plan, share_code).await? {
                    Some(record) => Some(record),
                    None => return Ok(Round::Again(reread_media(app, media.media_id).await?)),
                }
            }
            None => {
                community_copy::remove(app, media.media_id)
                    .await
                    .map_err(failed)?;
                let now = reread_media(app, media.media_id).await?;
                if now.share_code.as_deref() != Some(share_code.as_str()) {
                    return Ok(Round::Again(now));
                }
                None
            }
        };
        Ok(Round::Done((media, link, community)))
    })
    .await?
    .map_err(failed)?;
    log_share(app, &media, &link.share_code, community.as_ref()).await;
    Ok(Shared {
        share_code: link.share_code,
        link_expires_at_ms: link.expires_at_ms,
        max_views: link.max_views,
        community: community.map(|c| (c.community_media_id, c.url)),
    })
}

/// Removes the caller's share entirely (code and community copy). Idempotent.
pub async fn unshare_media(app: &App, caller: &UserId, id: MediaId) -> Result<(), AppError> {
    let internal = |e: StoreError| AppError::internal(FAILED_UNSHARE, e);
    let (media, _) = app.store.media_and_marker(id).await.map_err(internal)?;
    let media = media
        .filter(|m| &m.owner_id == caller)
        .ok_or(AppError::NotFound(NOT_FOUND))?;
    settle("unshare", ROUNDS, media, |media| async move {
        // A share may commit a community copy between these steps: the revoke then refuses (it
        // requires no copy) and the round starts again.
        community_copy::remove(app, id).await?;
        let Some(code) = media.share_code.clone() else {
            return Ok(match app.store.media_and_marker(id).await? {
                (Some(m), None) if m.share_code.is_none() && m.community_media_id.is_none() => {
                    Round::Done(())
                }
                (Some(m), _) => Round::Again(m),
                (None, _) => Round::Done(()),
            });
        };
        Ok(match app.store.revoke_share_code(&media, &code).await? {
            Written::Done => Round::Done(()),
            Written::Stale => match app.store.media_and_marker(id).await? {
                (Some(m), _) => Round::Again(m),
                (None, _) => Round::Done(()),
            },
        })
    })
    .await
    .map_err(internal)?
    .map_err(|e| AppError::internal(FAILED_UNSHARE, e))
}

/// The media as it is now; 404 if it was deleted meanwhile.
async fn reread_media(app: &App, id: MediaId) -> Result<MediaItem, AppError> {
    app.store
        .media_and_marker(id)
        .await
        .map_err(failed)?
        .0
        .ok_or(AppError::NotFound(NOT_FOUND))
}

async fn log_share(
    app: &App,
    media: &MediaItem,
    code: &str,
    community: Option<&CommunityMediaItem>,
) {
    let details = json!({
        "mediaId": media.media_id,
        "shareCode": link::code_hint(code),
        "communityStatus": community.map_or(json!("none"), |c| json!(c.status)),
    });
    let entry = activity::entry(
        &media.owner_id,
        app.clock.now_millis(),
        "media_shared",
        MEDIA_GALLERY,
        details,
    );
    activity::record(app, &entry).await;
}
