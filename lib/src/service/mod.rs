//! Use cases: what the routes and the operator CLI do, independent of HTTP. One room per concept.

pub mod activity;
pub mod feed;
pub mod media;
pub mod moderation;
pub mod publish;
pub mod rounds;
pub mod save_session;
pub mod sessions;
pub mod share;
pub mod unpublish;
