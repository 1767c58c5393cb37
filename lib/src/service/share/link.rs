//! Share links: one code per media (UUIDv4: 122 random bits), created once, kept across
//! re-shares, revoked by DELETE; resolved publicly to a short-lived presigned GET of the original.
//! Their owners may limit them: an instant after which they answer 410, and a number of views
//! (each resolve that carries a URL spends one, exactly; link-preview agents spend none).

use super::NOT_FOUND;
use crate::domain::{rfc3339_millis, MediaId, MediaKind, UserId};
use crate::error::AppError;
use crate::service::rounds::{settle, Round, ROUNDS};
use crate::store::items::{MediaItem, ShareCodeItem};
use crate::store::{keys, LimitChange, Spent, StoreError, Written};
use crate::App;
use serde_json::{json, Value};
use std::time::Duration;

/// 500 when no share code could be created.
pub const FAILED_LINK: &str = "Failed to create share link";
/// 404 for unknown, malformed and revoked codes alike.
pub const LINK_NOT_FOUND: &str = "Shared media not found";
/// 500 of the resolve route.
pub const LINK_FAILED: &str = "Failed to fetch shared media";
/// 410 once a link expired or its views are used up.
pub const LINK_EXPIRED: &str = "Share link expired";
/// A code no share ever has: malformed codes are looked up as this, so that they cost what an
/// unknown code costs and the two cannot be told apart by timing.
const NO_CODE: &str = "00000000-0000-0000-0000-000000000000";

/// The media's share code, created once and kept ever after, with `limits` applied: the link
/// as it is after this request. A code revoked meanwhile is replaced (the caller's round then
/// writes nothing for the old one).
pub async fn ensure(
    app: &App,
    media: &MediaItem,
    limits: LimitChange,
) -> Result<ShareCodeItem, AppError> {
    let link_failed = |e: StoreError| AppError::internal(FAILED_LINK, e);
    let reread = |id| async move {
        app.store
            .media_and_marker(id)
            .await
            .map_err(link_failed)?
            .0
            .ok_or(AppError::NotFound(NOT_FOUND))
    };
    settle(
        "assign share code",
        ROUNDS,
        media.clone(),
        |media| async move {
            if let Some(code) = &media.share_code {
                let set = app.store.set_link_limits(code, media.media_id, limits);
                return Ok(match set.await.map_err(link_failed)? {
                    Some(link) => Round::Done(link),
                    // Revoked since the media was read.
                    None => Round::Again(reread(media.media_id).await?),
                });
            }
            let code = uuid::Uuid::new_v4().hyphenated().to_string();
            let mut item = ShareCodeItem {
                pk: keys::share(&code),
                sk: keys::SHARE.into(),
                share_code: code.clone(),
                media_id: media.media_id,
                owner_id: media.owner_id.clone(),
                created_at: rfc3339_millis(app.clock.now_millis()),
                expires_at_ms: None,
                max_views: None,
                views_used: 0,
                views: 0,
                last_view: None,
            };
            limits.apply(&mut item);
            match app
                .store
                .assign_share_code(&media, &item)
                .await
                .map_err(link_failed)?
            {
                Written::Done => Ok(Round::Done(item)),
                // Another request gave it a code first (or, once in 2^61, the code was taken).
                Written::Stale => Ok(Round::Again(reread(media.media_id).await?)),
            }
        },
    )
    .await?
    .map_err(|e| AppError::internal(FAILED_LINK, e))
}

/// Link-preview agents (chat apps and social sites unfurling a pasted link), matched as
/// case-insensitive substrings of `User-Agent`: they get the link's description without a URL
/// and spend no view. The one list.
pub const PREVIEW_AGENTS: [&str; 14] = [
    "facebookexternalhit",
    "Facebot",
    "Twitterbot",
    "Slackbot",
    "Slack-ImgProxy",
    "Discordbot",
    "WhatsApp",
    "TelegramBot",
    "LinkedInBot",
    "SkypeUriPreview",
    "redditbot",
    "Applebot",
    "Iframely",
    "Embedly",
];

/// Whether `user_agent` is a link-preview agent's.
pub fn is_preview_agent(user_agent: Option<&str>) -> bool {
    let Some(agent) = user_agent.map(str::to_ascii_lowercase) else {
        return false;
    };
    PREVIEW_AGENTS
        .iter()
        .any(|bot| agent.contains(&bot.to_ascii_lowercase()))
}

/// Whether the link no longer works at `now_ms`: expired, or its views used up.
pub fn is_spent(link: &ShareCodeItem, now_ms: i64) -> bool {
    link.expires_at_ms.is_some_and(|at| at <= now_ms)
        || link.max_views.is_some_and(|max| link.views_used >= max)
}

/// Views left on a limited link.
pub fn views_left(link: &ShareCodeItem) -> Option<u64> {
    link.max_views
        .map(|max| max.saturating_sub(link.views_used))
}

/// How long a URL issued at `now_ms` may stay valid: `JOIP_LINK_TTL_S`, never past the link's
/// expiry; `None` when less than a second of the link is left.
pub fn url_ttl(link: &ShareCodeItem, now_ms: i64, link_ttl_s: u64) -> Option<Duration> {
    let ttl = Duration::from_secs(link_ttl_s);
    match link.expires_at_ms {
        None => Some(ttl),
        Some(at) => {
            let left = Duration::from_secs(u64::try_from(at - now_ms).ok()? / 1000);
            (!left.is_zero()).then(|| ttl.min(left))
        }
    }
}

/// Rounds of spending a view against an owner changing the link's limits meanwhile.
const VIEW_ROUNDS: usize = 4;

/// The documented body of `GET /api/shared/media/{code}`: the original behind a live share code,
/// as a presigned GET valid for `JOIP_LINK_TTL_S` (never past the link's expiry), spending one
/// view; a link-preview agent gets the description alone and spends none. `410` once the link
/// expired or its views are used up.
pub async fn resolve_shared_media(
    app: &App,
    raw_code: &str,
    user_agent: Option<&str>,
) -> Result<Value, AppError> {
    let failed = |e: StoreError| AppError::internal(LINK_FAILED, e);
    let code = canonical_code(raw_code);
    let found = app
        .store
        .share_code(code.as_deref().unwrap_or(NO_CODE))
        .await
        .map_err(failed)?
        .filter(|_| code.is_some())
        .ok_or(AppError::NotFound(LINK_NOT_FOUND))?;
    let now = app.clock.now_millis();
    let usable = |link: &ShareCodeItem| {
        url_ttl(link, now, app.config.link_ttl_s)
            .filter(|_| !is_spent(link, now))
            .ok_or(AppError::Gone(LINK_EXPIRED))
    };
    usable(&found)?;
    let preview = is_preview_agent(user_agent);
    // An unlimited link counts its view in parallel with reading the media (one round trip after
    // the code's; a count for a link revoked meanwhile is never read). A limited link spends its
    // view only once the media is known to serve, so that no failure before the URL costs one.
    let count = async {
        if !preview && found.max_views.is_none() {
            count_view(app, &found.share_code).await;
        }
    };
    let (media, ()) = tokio::join!(app.store.media_and_marker(found.media_id), count);
    // Revoked (the media's code was removed or replaced) or the media deleted: gone.
    let media = media
        .map_err(failed)?
        .0
        .filter(|m| m.share_code.as_deref() == Some(found.share_code.as_str()))
        .ok_or(AppError::NotFound(LINK_NOT_FOUND))?;
    let link = match preview || found.max_views.is_none() {
        true => found,
        false => spend_view(app, found, now).await?,
    };
    // As the link is after this view (its owner may have changed its expiry meanwhile).
    let ttl = url_ttl(&link, now, app.config.link_ttl_s).ok_or(AppError::Gone(LINK_EXPIRED))?;
    let mut body = json!({
        "shareCode": link.share_code,
        "type": MediaKind::from_mime(&media.mime_type).unwrap_or(MediaKind::Image),
        "mimeType": media.mime_type,
        "size": media.size,
        "linkExpiresAt": link.expires_at_ms.map(rfc3339_millis),
        "viewsLeft": views_left(&link),
    });
    if preview {
        tracing::info!(code = %code_hint(&link.share_code), "link previewed");
        return Ok(body);
    }
    let (url, until) = app
        .blob
        .presigned_get(
            &app.config.user_media_bucket,
            &media.file_path,
            ttl,
            std::time::UNIX_EPOCH + Duration::from_millis(now.max(0) as u64),
        )
        .await
        .map_err(|e| AppError::internal(LINK_FAILED, e))?;
    // The URL's own expiry, never later than the credentials that signed it.
    let expires = until
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    tracing::info!(code = %code_hint(&link.share_code), media_id = %media.media_id, "link resolved");
    body["url"] = json!(url);
    body["expiresAt"] = json!(rfc3339_millis(expires));
    Ok(body)
}

/// Counts one view of an unlimited link in a random shard of its count (never one hot item).
/// A failure does not stop the view: it is served, the count misses it, and the failure is
/// logged.
async fn count_view(app: &App, code: &str) {
    let shard = (uuid::Uuid::new_v4().as_u128() % u128::from(keys::LINK_VIEW_SHARDS)) as u32;
    if let Err(e) = app.store.count_view(code, shard).await {
        tracing::error!(error = %crate::error::Report(&e), "a view of an unlimited link was not counted");
    }
}

/// Spends one view of the limited `link`: one conditional update, exact (with N views left and
/// any number of concurrent requests, N are counted). A failed attempt is sent again with the
/// same token, so one whose answer was lost is found applied, not spent twice. If its owner
/// lifted the limit meanwhile, the view is counted as an unlimited one.
async fn spend_view(
    app: &App,
    mut link: ShareCodeItem,
    now: i64,
) -> Result<ShareCodeItem, AppError> {
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut error = None;
    for _ in 0..VIEW_ROUNDS {
        if link.max_views.is_none() {
            count_view(app, &link.share_code).await;
            return Ok(link);
        }
        let spent = match app.store.spend_view(&link.share_code, &token, now).await {
            Ok(spent) => spent,
            Err(e) => {
                tracing::warn!(error = %crate::error::Report(&e), "spending a view failed; trying again");
                error = Some(e);
                continue;
            }
        };
        match spent {
            Spent::Counted(after) => return Ok(after),
            Spent::Refused(None) => return Err(AppError::NotFound(LINK_NOT_FOUND)),
            Spent::Refused(Some(now_is)) if is_spent(&now_is, now) => {
                return Err(AppError::Gone(LINK_EXPIRED))
            }
            // The owner changed the limits meanwhile: spend against them.
            Spent::Refused(Some(now_is)) => link = now_is,
        }
    }
    Err(AppError::internal(
        LINK_FAILED,
        error.unwrap_or(StoreError::Contended {
            op: "spend link view",
        }),
    ))
}

/// 500 of `GET /api/media/{id}/share`.
pub const STATE_FAILED: &str = "Failed to fetch share settings";

/// The documented body of `GET /api/media/{id}/share`: the owner's view of the media's link
/// (its limits and views) and community copy. Others' and missing media are 404 alike.
pub async fn media_share(app: &App, caller: &UserId, id: MediaId) -> Result<Value, AppError> {
    let failed = |e: StoreError| AppError::internal(STATE_FAILED, e);
    let (media, marker) = app.store.media_and_marker(id).await.map_err(failed)?;
    let media = media
        .filter(|m| &m.owner_id == caller)
        .ok_or(AppError::NotFound(NOT_FOUND))?;
    let community_id = marker.map(|m| m.community_media_id);
    let link = async {
        match &media.share_code {
            Some(code) => {
                let (link, sharded) =
                    tokio::try_join!(app.store.share_code(code), app.store.sharded_views(code))?;
                Ok(link.map(|l| (l, sharded)))
            }
            None => Ok(None),
        }
    };
    let record = async {
        match community_id {
            Some(id) => app.store.community_media(id).await,
            None => Ok(None),
        }
    };
    let (link, record) = tokio::try_join!(link, record).map_err(failed)?;
    let link = link.filter(|(l, _)| l.media_id == media.media_id);
    Ok(json!({
        "shareCode": link.as_ref().map(|(l, _)| &l.share_code),
        "shareUrl": link.as_ref().map(|(l, _)| format!("/shared/media/{}", l.share_code)),
        "linkExpiresAt": link.as_ref().and_then(|(l, _)| l.expires_at_ms).map(rfc3339_millis),
        "maxViews": link.as_ref().and_then(|(l, _)| l.max_views),
        "views": link.as_ref().map_or(0, |(l, sharded)| l.views + sharded),
        "shareToCommunity": media.share_to_community,
        "communityMediaId": record.as_ref().map(|r| r.community_media_id),
        "communityStatus": record.as_ref().map(|r| r.status),
    }))
}

/// A share code as we issue them (a lowercase hyphenated UUID), or `None`.
fn canonical_code(raw: &str) -> Option<String> {
    let parsed = uuid::Uuid::try_parse(raw).ok()?;
    let canonical = parsed.hyphenated().to_string();
    (canonical == raw).then_some(canonical)
}

/// The first characters of a share code: enough to correlate, never enough to use.
pub fn code_hint(code: &str) -> String {
    format!("{}…", code.chars().take(8).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_codes_are_looked_up() {
        let code = "0b6a4d3e-2f1c-4c8b-9a7d-5e6f7a8b9c0d";
        assert_eq!(canonical_code(code).as_deref(), Some(code));
        assert_eq!(canonical_code(&code.to_uppercase()), None);
        assert_eq!(canonical_code(&code.replace('-', "")), None);
        assert_eq!(code_hint(code), "0b6a4d3e…");
    }
}
