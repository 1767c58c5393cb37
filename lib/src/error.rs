//! One error enum; each variant maps to exactly one documented status and body.

use serde_json::{json, Value};

/// The feature key that saving a community session is priced under.
pub const SESSION_CREATE: &str = "session_create";

/// Everything a handler can answer other than success. Internal errors carry the route's
/// documented 500 message; their cause is logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No (valid) identity.
    #[error("unauthorized")]
    Unauthorized,
    /// 400 with `{"message": ..}`.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// 400 with a message built from the input (e.g. which tags are unknown).
    #[error("bad request: {0}")]
    Invalid(String),
    /// 404 with `{"message": ..}`.
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// 403 with `{"message": ..}`.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
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
    /// 500 with the route's documented message; the cause is logged by the route wrapper.
    #[error("internal: {message}: {cause}")]
    Internal {
        /// The documented message for this route.
        message: &'static str,
        /// What actually went wrong (logged, never sent).
        cause: String,
    },
}

impl AppError {
    /// An internal failure with the route's documented message and a loggable cause.
    pub fn internal(message: &'static str, cause: impl std::fmt::Display) -> Self {
        Self::Internal {
            message,
            cause: cause.to_string(),
        }
    }

    /// HTTP status and the exact documented JSON body.
    pub fn status_and_body(&self) -> (u16, Value) {
        match self {
            Self::Unauthorized => (401, json!({ "message": "Unauthorized" })),
            Self::BadRequest(m) => (400, json!({ "message": m })),
            Self::Invalid(m) => (400, json!({ "message": m })),
            Self::NotFound(m) => (404, json!({ "message": m })),
            Self::Forbidden(m) => (403, json!({ "message": m })),
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
            feature: SESSION_CREATE,
        }
        .status_and_body();
        assert_eq!(status, 402);
        assert_eq!(body["required"], 10);
        assert_eq!(body["current"], 5);
        assert_eq!(body["featureKey"], "session_create");
    }
}
