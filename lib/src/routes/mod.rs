//! HTTP handlers, one module per route: parse at the edge, call a use case, shape the response.

pub mod community_feed;
pub mod get_media_share;
pub mod list_user_media;
pub mod report_community_media;
pub mod resolve_shared_media;
pub mod save_community_session;
pub mod share_media;
pub mod share_media_by_path;
pub mod unshare_media;
