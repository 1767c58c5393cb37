//! The operator commands. Each returns the JSON document to print.

use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use joip::auth::{mint_dev_token, DEV_TOKEN_TTL_SECS};
use joip::config::ExposeSecret;
use joip::domain::{MediaId, MediaSource, SessionId, TagSlug, UserId};
use joip::service::media::upload_media;
use joip::service::moderation;
use joip::service::sessions::{create_session, MediaInput, NewMedia, NewSession};
use joip::App;
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create a user; prints its id and (locally) a dev token.
    Create {
        /// Starting balance.
        #[arg(long, default_value_t = 0)]
        credits: u32,
        /// Premium subscriber.
        #[arg(long)]
        premium: bool,
        /// Use this id instead of a random UUID.
        #[arg(long)]
        id: Option<String>,
    },
    /// Show a user's balance and plan.
    Show { user_id: String },
    /// Add (or, negative, remove) credits; the balance never goes below zero.
    Credit {
        user_id: String,
        /// Credits to add; may be negative.
        #[arg(long, allow_negative_numbers = true)]
        add: i64,
    },
}

#[derive(Subcommand)]
pub enum PricingCmd {
    /// Set a feature's price.
    Set {
        feature_key: String,
        #[arg(long)]
        credits: u32,
        #[arg(long)]
        premium_only: bool,
    },
    /// Remove a feature's price.
    Delete { feature_key: String },
}

#[derive(Subcommand)]
pub enum TagCmd {
    /// Create (or rename) a canonical tag.
    Create {
        slug: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// List canonical tags.
    List,
}

#[derive(Subcommand)]
pub enum SessionCmd {
    /// Create a session; media are kept in argument order.
    Create {
        #[arg(long)]
        owner: String,
        #[arg(long)]
        title: String,
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        public: bool,
        /// Shared to the community.
        #[arg(long)]
        community: bool,
        #[arg(long)]
        imported: bool,
        #[arg(long = "subreddit")]
        subreddits: Vec<String>,
        /// Settings as a JSON object.
        #[arg(long)]
        settings: Option<String>,
        /// Metadata as a JSON object.
        #[arg(long)]
        metadata: Option<String>,
        /// FILE[::CAPTION]: uploaded to the general bucket.
        #[arg(long = "media")]
        media: Vec<String>,
        /// URL[::CAPTION]: recorded as is.
        #[arg(long = "media-url")]
        media_url: Vec<String>,
    },
    /// Show a session and its media.
    Show { session_id: String },
}

#[derive(Subcommand)]
pub enum MediaCmd {
    /// Upload a file as the owner's media.
    Upload {
        #[arg(long)]
        owner: String,
        #[arg(long)]
        file: PathBuf,
        /// upload | smart-caption | babecock | hypnococks
        #[arg(long, default_value = "upload")]
        source: String,
        /// Overrides the type sniffed from the content.
        #[arg(long)]
        content_type: Option<String>,
    },
    /// Show a media record.
    Show { media_id: String },
    /// Delete a media record and its original object (the vault delete). Its share link stops
    /// working; its community copy stays (community copies are independent of the original).
    Delete { media_id: String },
}

#[derive(Subcommand)]
pub enum CommunityCmd {
    /// Show a community media record.
    Show { community_media_id: String },
    /// Publish a hidden copy again: back in the feed, its reports resolved.
    Restore {
        community_media_id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Take a copy down for good: unpublished, its content hash blocklisted.
    Takedown {
        community_media_id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Finish every owed removal of a public object (delete, CDN invalidation) that its remover
    /// left: what the scheduled reaper does each minute.
    Sweep,
}

/// `reports`.
#[derive(Subcommand)]
pub enum ReportsCmd {
    /// Community copies with open reports, oldest report first.
    List {
        /// hidden | visible
        #[arg(long)]
        status: Option<String>,
    },
}

/// `blocklist`.
#[derive(Subcommand)]
pub enum BlocklistCmd {
    /// Block an image (by its perceptual hash) or any file (by its SHA-256) from elsewhere.
    Add {
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Every blocked hash, oldest first.
    List,
}

pub async fn reports(app: &App, cmd: ReportsCmd) -> Result<Value> {
    let ReportsCmd::List { status } = cmd;
    if let Some(s) = status
        .as_deref()
        .filter(|s| !["hidden", "visible"].contains(s))
    {
        bail!("--status must be hidden or visible, not {s:?}");
    }
    let reports = moderation::open_reports(app, status.as_deref()).await?;
    Ok(json!({ "reports": reports }))
}

pub async fn blocklist(app: &App, cmd: BlocklistCmd) -> Result<Value> {
    match cmd {
        BlocklistCmd::Add { file, reason } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let reason = reason.as_deref().unwrap_or("added by an operator");
            let hash = moderation::block_file(app, bytes, Some(reason)).await?;
            Ok(json!({ "hash": hash, "added": true }))
        }
        BlocklistCmd::List => {
            let entries = moderation::blocklist(app).await?;
            Ok(json!({
                "blocklist": entries
                    .iter()
                    .map(|b| json!({
                        "hash": b.hash,
                        "reason": b.reason,
                        "communityMediaId": b.community_media_id,
                        "addedAt": b.added_at,
                    }))
                    .collect::<Vec<_>>()
            }))
        }
    }
}

#[derive(Subcommand)]
pub enum ActivityCmd {
    /// A user's activity, oldest first.
    List { user_id: String },
}

fn user_id(raw: &str) -> Result<UserId> {
    UserId::parse(raw).ok_or_else(|| anyhow!("invalid user id {raw:?}"))
}

fn feature_key(raw: &str) -> Result<&str> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(raw)
    } else {
        bail!("invalid feature key {raw:?}: use lowercase letters, digits and _")
    }
}

fn positive(raw: &str, what: &str) -> Result<u64> {
    joip::domain::parse_positive_id(raw).ok_or_else(|| anyhow!("invalid {what} {raw:?}"))
}

fn json_object(raw: Option<String>, what: &str) -> Result<Value> {
    match raw {
        None => Ok(json!({})),
        Some(raw) => {
            let v: Value =
                serde_json::from_str(&raw).with_context(|| format!("--{what} is not JSON"))?;
            if !v.is_object() {
                bail!("--{what} must be a JSON object");
            }
            Ok(v)
        }
    }
}

/// The dev token for `user`, when the target accepts dev tokens.
pub fn dev_token(app: &App, user: &UserId) -> Option<String> {
    app.config
        .local
        .as_ref()
        .map(|l| mint_dev_token(l.dev_token_secret.expose_secret(), user, DEV_TOKEN_TTL_SECS))
}

pub async fn user(app: &App, cmd: UserCmd) -> Result<Value> {
    match cmd {
        UserCmd::Create {
            credits,
            premium,
            id,
        } => {
            let user = match id {
                Some(id) => user_id(&id)?,
                None => UserId::random(),
            };
            app.store
                .create_user(&user, credits.into(), premium)
                .await
                .with_context(|| format!("creating user {user} (does it exist already?)"))?;
            Ok(json!({ "userId": user, "token": dev_token(app, &user) }))
        }
        UserCmd::Show { user_id: raw } => {
            let user = user_id(&raw)?;
            let u = app
                .store
                .user(&user)
                .await?
                .ok_or_else(|| anyhow!("no user {user}"))?;
            Ok(json!({ "userId": u.user_id, "credits": u.credits, "isPremium": u.is_premium }))
        }
        UserCmd::Credit { user_id: raw, add } => {
            let user = user_id(&raw)?;
            let credits = app
                .store
                .add_credits(&user, add)
                .await?
                .ok_or_else(|| anyhow!("no user {user}"))?;
            Ok(json!({ "userId": user, "credits": credits }))
        }
    }
}

pub fn token(app: &App, raw: &str) -> Result<Value> {
    let user = user_id(raw)?;
    let token = dev_token(app, &user)
        .ok_or_else(|| anyhow!("with --aws, tokens come from the identity provider"))?;
    Ok(json!({ "token": token }))
}

pub async fn pricing(app: &App, cmd: PricingCmd) -> Result<Value> {
    match cmd {
        PricingCmd::Set {
            feature_key: key,
            credits,
            premium_only,
        } => {
            let p = app
                .store
                .put_pricing(feature_key(&key)?, credits.into(), premium_only)
                .await?;
            Ok(
                json!({ "featureKey": p.feature_key, "credits": p.credits, "premiumOnly": p.premium_only }),
            )
        }
        PricingCmd::Delete { feature_key: key } => {
            let deleted = app.store.delete_pricing(feature_key(&key)?).await?;
            Ok(json!({ "featureKey": key, "deleted": deleted }))
        }
    }
}

pub async fn tag(app: &App, cmd: TagCmd) -> Result<Value> {
    match cmd {
        TagCmd::Create { slug, name } => {
            let slug = TagSlug::parse(&slug)
                .ok_or_else(|| anyhow!("invalid tag slug {slug:?}: use a-z, 0-9 and -"))?;
            let name = name.unwrap_or_else(|| slug.default_name());
            let t = app.store.put_tag(slug.as_str(), &name).await?;
            Ok(json!({ "slug": t.slug, "name": t.name }))
        }
        TagCmd::List => {
            let tags = app.store.tags().await?;
            Ok(Value::Array(
                tags.into_iter()
                    .map(|t| json!({ "slug": t.slug, "name": t.name }))
                    .collect(),
            ))
        }
    }
}

fn split_caption(raw: &str) -> (&str, Option<String>) {
    match raw.split_once("::") {
        Some((v, c)) => (v, Some(c.to_string())),
        None => (raw, None),
    }
}

pub async fn session(
    app: &App,
    cmd: SessionCmd,
    create_matches: Option<&clap::ArgMatches>,
) -> Result<Value> {
    match cmd {
        SessionCmd::Create {
            owner,
            title,
            category,
            public,
            community,
            imported,
            subreddits,
            settings,
            metadata,
            media,
            media_url,
        } => {
            // Keep --media and --media-url in the order they were given.
            let positions = |id: &str| -> Vec<usize> {
                create_matches
                    .and_then(|m| m.indices_of(id))
                    .map(|i| i.collect())
                    .unwrap_or_default()
            };
            let mut ordered: Vec<(usize, bool, String)> = Vec::new();
            for (pos, v) in positions("media").into_iter().zip(media) {
                ordered.push((pos, true, v));
            }
            for (pos, v) in positions("media_url").into_iter().zip(media_url) {
                ordered.push((pos, false, v));
            }
            ordered.sort_by_key(|(pos, ..)| *pos);
            let mut entries = Vec::with_capacity(ordered.len());
            for (_, is_file, raw) in ordered {
                let (value, caption) = split_caption(&raw);
                let input = if is_file {
                    let bytes = std::fs::read(value).with_context(|| format!("reading {value}"))?;
                    MediaInput::Upload {
                        file_name: value.to_string(),
                        bytes,
                    }
                } else {
                    MediaInput::External {
                        url: value.to_string(),
                    }
                };
                entries.push(NewMedia { input, caption });
            }
            let id = create_session(
                app,
                NewSession {
                    owner: user_id(&owner)?,
                    title,
                    category,
                    settings: json_object(settings, "settings")?,
                    metadata: json_object(metadata, "metadata")?,
                    is_public: public,
                    shared_to_community: community,
                    is_imported: imported,
                    subreddits,
                    media: entries,
                },
            )
            .await?;
            Ok(json!({ "sessionId": id }))
        }
        SessionCmd::Show { session_id } => {
            let id = SessionId(positive(&session_id, "session id")?);
            let (s, media) = app
                .store
                .session(id)
                .await?
                .ok_or_else(|| anyhow!("no session {id}"))?;
            Ok(json!({
                "sessionId": s.session_id,
                "ownerId": s.owner_id,
                "title": s.title,
                "category": s.category,
                "settings": s.settings,
                "metadata": s.metadata,
                "isPublic": s.is_public,
                "sharedToCommunity": s.shared_to_community,
                "isFavorite": s.is_favorite,
                "isImported": s.is_imported,
                "importSource": s.import_source,
                "importUrl": s.import_url,
                "subreddits": s.subreddits,
                "media": media.iter().map(|m| json!({
                    "order": m.order,
                    "type": m.kind,
                    "caption": m.caption,
                    "bucket": m.bucket,
                    "key": m.key,
                    "url": m.url,
                })).collect::<Vec<_>>(),
            }))
        }
    }
}

pub async fn media(app: &App, cmd: MediaCmd) -> Result<Value> {
    match cmd {
        MediaCmd::Upload {
            owner,
            file,
            source,
            content_type,
        } => {
            let owner = user_id(&owner)?;
            let source = MediaSource::parse(&source).ok_or_else(|| {
                anyhow!("invalid source {source:?}: upload, smart-caption, babecock or hypnococks")
            })?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "upload".into());
            let m =
                upload_media(app, &owner, &name, bytes, source, content_type.as_deref()).await?;
            Ok(json!({ "mediaId": m.media_id, "filePath": m.file_path }))
        }
        MediaCmd::Show { media_id } => {
            let id = MediaId(positive(&media_id, "media id")?);
            let m = app
                .store
                .media(id)
                .await?
                .ok_or_else(|| anyhow!("no media {id}"))?;
            Ok(json!({
                "mediaId": m.media_id,
                "ownerId": m.owner_id,
                "filePath": m.file_path,
                "source": m.source,
                "mimeType": m.mime_type,
                "isShared": m.is_shared,
                "shareToCommunity": m.share_to_community,
                "shareCode": m.share_code,
                "communityMediaId": m.community_media_id,
            }))
        }
        MediaCmd::Delete { media_id } => {
            let id = MediaId(positive(&media_id, "media id")?);
            let m = app
                .store
                .media(id)
                .await?
                .ok_or_else(|| anyhow!("no media {id}"))?;
            // The record first: a crash between the two leaves an unlisted object, never a
            // record pointing at nothing.
            app.store.delete_media(&m).await?;
            app.blob
                .delete(&app.config.user_media_bucket, &m.file_path)
                .await?;
            Ok(
                json!({ "mediaId": m.media_id, "deleted": true, "communityMediaId": m.community_media_id }),
            )
        }
    }
}

pub async fn community(app: &App, cmd: CommunityCmd) -> Result<Value> {
    let community_media_id = match cmd {
        CommunityCmd::Show { community_media_id } => community_media_id,
        CommunityCmd::Sweep => {
            let swept = joip::service::unpublish::sweep(app, 0).await?;
            return Ok(serde_json::to_value(swept)?);
        }
        CommunityCmd::Restore {
            community_media_id,
            reason,
        } => {
            let id = positive(&community_media_id, "community media id")?;
            let why = reason.as_deref().unwrap_or("restored by an operator");
            moderation::restore(app, id, why).await?;
            return Ok(json!({ "communityMediaId": id, "status": "ready" }));
        }
        CommunityCmd::Takedown {
            community_media_id,
            reason,
        } => {
            let id = positive(&community_media_id, "community media id")?;
            let why = reason.as_deref().unwrap_or("taken down by an operator");
            moderation::take_down(app, id, why).await?;
            return Ok(json!({ "communityMediaId": id, "status": "removed" }));
        }
    };
    let id = positive(&community_media_id, "community media id")?;
    let c = app
        .store
        .community_media(id)
        .await?
        .ok_or_else(|| anyhow!("no community media {id}"))?;
    Ok(json!({
        "communityMediaId": c.community_media_id,
        "mediaId": c.media_id,
        "status": c.status,
        "bucket": c.bucket,
        "key": c.key,
        "url": c.url,
        "tags": c.tags,
        "contentHash": c.content_hash,
    }))
}

pub async fn activity(app: &App, cmd: ActivityCmd) -> Result<Value> {
    let ActivityCmd::List { user_id: raw } = cmd;
    let user = user_id(&raw)?;
    let entries = app.store.activity(&user).await?;
    Ok(Value::Array(
        entries
            .into_iter()
            .map(|a| json!({ "action": a.action, "feature": a.feature, "details": a.details, "at": a.at }))
            .collect(),
    ))
}

/// `saves`.
#[derive(Subcommand)]
pub enum SavesCmd {
    /// Finish, or roll back and refund, every save whose copier's lease lapsed (one pass of the
    /// scheduled `save-reaper`; the local stack runs it every minute).
    Reap,
}

/// Runs a `saves` command.
pub async fn saves(app: &App, cmd: SavesCmd) -> Result<Value> {
    let SavesCmd::Reap = cmd;
    let deadline = joip::service::save_session::Deadline::new(None, 5 * 60 * 1000);
    let reaped = joip::service::save_session::reap(app, deadline).await?;
    Ok(serde_json::to_value(reaped)?)
}
