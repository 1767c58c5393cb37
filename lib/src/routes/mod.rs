//! HTTP handlers, one module per route: parse at the edge, call a use case, shape the response.

pub mod list_user_media;
pub mod save_community_session;
