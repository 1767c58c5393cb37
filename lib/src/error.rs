//! One error enum; each variant maps to exactly one documented status and body.

use serde_json::{json, Value};
use std::borrow::Cow;

/// Any error, kept whole with its source chain (what an internal failure carries to the log).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Displays an error and every source below it (`a: b: c`): what a log line says of a failure.
pub struct Report<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

/// Everything a handler can answer other than success. Internal errors carry the route's
/// documented 500 message; their cause is logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No (valid) identity.
    #[error("unauthorized")]
    Unauthorized,
    /// 400 with `{"message": ..}`: a documented message, or one built from the input (e.g.
    /// which tags are unknown).
    #[error("bad request: {0}")]
    BadRequest(Cow<'static, str>),
    /// 404 with `{"message": ..}`.
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// 403 with `{"message": ..}`.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// 410 with `{"message": ..}`: it existed and is gone for good (an expired link).
    #[error("gone: {0}")]
    Gone(&'static str),
    /// 429 with `{"message": ..}`: a per-user limit of ours (not API Gateway's throttling).
    #[error("too many requests: {0}")]
    TooManyRequests(&'static str),
    /// 422 with `{"message": ..}`: well-formed, but the data cannot be processed.
    #[error("unprocessable: {0}")]
    Unprocessable(&'static str),
    /// 402 `INSUFFICIENT_CREDITS`.
    #[error("insufficient credits: need {required}, have {current}")]
    InsufficientCredits {
        /// Price of the feature.
        required: i64,
        /// Caller's balance.
        current: i64,
        /// The priced feature.
        feature: &'static str,
    },
    /// 403 `PREMIUM_ONLY`.
    #[error("premium only: {0}")]
    PremiumOnly(&'static str),
    /// 503 `FEATURE_PRICING_MISSING`.
    #[error("pricing missing: {0}")]
    PricingMissing(&'static str),
    /// 500 with the route's documented message; the source is logged whole by the route
    /// wrapper, never sent.
    #[error("internal: {message}")]
    Internal {
        /// The documented message for this route.
        message: &'static str,
        /// What actually went wrong.
        #[source]
        source: BoxError,
    },
}

impl AppError {
    /// An internal failure with the route's documented message and its cause.
    pub fn internal(message: &'static str, cause: impl Into<BoxError>) -> Self {
        Self::Internal {
            message,
            source: cause.into(),
        }
    }

    /// 400 with a documented message.
    pub fn bad_request(message: &'static str) -> Self {
        Self::BadRequest(Cow::Borrowed(message))
    }

    /// 400 with a message built from the input.
    pub fn invalid(message: String) -> Self {
        Self::BadRequest(Cow::Owned(message))
    }

    /// HTTP status and the exact documented JSON body.
    pub fn status_and_body(&self) -> (u16, Value) {
        match self {
            Self::Unauthorized => (401, json!({ "message": "Unauthorized" })),
            Self::BadRequest(m) => (400, json!({ "message": m })),
            Self::NotFound(m) => (404, json!({ "message": m })),
            Self::Forbidden(m) => (403, json!({ "message": m })),
            Self::Gone(m) => (410, json!({ "message": m })),
            Self::TooManyRequests(m) => (429, json!({ "message": m })),
            Self::Unprocessable(m) => (422, json!({ "message": m })),
            Self::InsufficientCredits {
                required,
                current,
                feature,
            } => (
                402,
                json!({
                    "error": "Insufficient credits",
                    "code": "INSUFFICIENT_CREDITS",
                    "required": required,
                    "current": current,
                    "featureKey": feature,
                }),
            ),
            Self::PremiumOnly(feature) => (
                403,
                json!({
                    "error": "This feature is only available for Premium subscribers",
                    "code": "PREMIUM_ONLY",
                    "featureKey": feature,
                }),
            ),
            Self::PricingMissing(feature) => (
                503,
                json!({
                    "error": "Session pricing is not configured",
                    "code": "FEATURE_PRICING_MISSING",
                    "featureKey": feature,
                }),
            ),
            Self::Internal { message, .. } => (500, json!({ "message": message })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_are_logged_with_their_whole_chain() {
        let store = crate::store::StoreError::new("get media", "throttled by dynamodb");
        let err = AppError::internal("Failed to share media", store);
        assert_eq!(
            Report(&err).to_string(),
            "internal: Failed to share media: get media: throttled by dynamodb"
        );
    }

    #[test]
    fn internal_errors_never_leak_their_cause() {
        let (status, body) =
            AppError::internal("Failed to share media", "dynamodb: secret-table-name")
                .status_and_body();
        assert_eq!(status, 500);
        assert_eq!(body.to_string(), r#"{"message":"Failed to share media"}"#);
    }

    #[test]
    fn insufficient_credits_carries_numbers() {
        let (status, body) = AppError::InsufficientCredits {
            required: 10,
            current: 5,
            feature: "session_create",
        }
        .status_and_body();
        assert_eq!(status, 402);
        assert_eq!(body["required"], 10);
        assert_eq!(body["current"], 5);
        assert_eq!(body["featureKey"], "session_create");
    }
}
