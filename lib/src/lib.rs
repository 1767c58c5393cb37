//! Shared core of joip-serverless: everything that is not a `main`.
//!
//! Layout follows `DESIGN.md`: configuration, telemetry, identity, errors and request parsing at the
//! edge; DynamoDB (`store`) and S3 (`blob`) adapters; use cases in `service`; HTTP handlers in `routes`.

#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod blob;
pub mod cdn;
pub mod config;
pub mod connections;
pub mod domain;
pub mod error;
pub mod http;
pub mod pagination;
pub mod perceptual;
pub mod presign;
pub mod routes;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod watermark;

pub use app::App;
pub use config::Config;
pub use error::AppError;
