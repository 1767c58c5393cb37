//! Use cases: what the routes and the operator CLI do, independent of HTTP.

pub mod community;
pub mod media;
pub mod save_session;
pub mod sessions;
pub mod share;
pub mod watermark;
