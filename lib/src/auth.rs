//! Caller identity. Deployed, API Gateway's JWT authorizer has already validated the token and we
//! read its `sub` claim. In local mode only, `cargo lambda watch` has no authorizer, so we verify an
//! HS256 dev token minted by `joip-admin token`.

use crate::config::LocalMode;
use crate::domain::UserId;
use crate::error::AppError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};

type HmacSha256 = Hmac<Sha256>;

/// How long a dev token lives.
pub const DEV_TOKEN_TTL_SECS: u64 = 30 * 24 * 3600;
/// Clock skew tolerated on `iat`/`nbf`: a token from further in the future is not valid yet.
const CLOCK_SKEW_SECS: u64 = 60;
const DEV_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

#[derive(Serialize, Deserialize)]
struct DevClaims {
    sub: String,
    iat: u64,
    exp: u64,
    /// Not before: never minted here, but honoured as API Gateway's authorizer does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length.
    HmacSha256::new_from_slice(secret).expect("hmac takes any key length")
}

/// Mints a dev token for `user` (local mode only; the deployed API never accepts one).
pub fn mint_dev_token(secret: &[u8], user: &UserId, ttl_secs: u64) -> String {
    let iat = now_secs();
    let claims = DevClaims {
        sub: user.as_str().to_string(),
        iat,
        exp: iat + ttl_secs,
        nbf: None,
    };
    let claims = serde_json::to_vec(&claims).expect("claims serialize");
    let signing_input = format!("{}.{}", B64.encode(DEV_HEADER), B64.encode(claims));
    let mut m = mac(secret);
    m.update(signing_input.as_bytes());
    let sig = B64.encode(m.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// Verifies a dev token's signature, algorithm and validity period; returns its subject.
pub fn verify_dev_token(secret: &[u8], token: &str) -> Option<UserId> {
    let mut parts = token.split('.');
    let (header, claims, sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: serde_json::Value = serde_json::from_slice(&B64.decode(header).ok()?).ok()?;
    if header.get("alg")?.as_str()? != "HS256" {
        return None;
    }
    let mut m = mac(secret);
    m.update(header_and_claims(token)?.as_bytes());
    m.verify_slice(&B64.decode(sig).ok()?).ok()?;
    let claims: DevClaims = serde_json::from_slice(&B64.decode(claims).ok()?).ok()?;
    let now = now_secs();
    let valid_from = claims.iat.max(claims.nbf.unwrap_or(0));
    if claims.exp <= now || valid_from > now + CLOCK_SKEW_SECS {
        return None;
    }
    UserId::parse(&claims.sub)
}

fn header_and_claims(token: &str) -> Option<&str> {
    token.rfind('.').map(|i| &token[..i])
}

/// The authenticated caller, or 401.
pub fn caller(req: &Request, local: Option<&LocalMode>) -> Result<UserId, AppError> {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() {
        let sub = ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .and_then(|jwt| jwt.claims.get("sub"));
        if let Some(user) = sub.and_then(|s| UserId::parse(s)) {
            return Ok(user);
        }
    }
    let local = local.ok_or(AppError::Unauthorized)?;
    let token = req
        .headers()
        .get(lambda_http::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or(AppError::Unauthorized)?;
    verify_dev_token(local.dev_token_secret.expose_secret(), token.trim())
        .ok_or(AppError::Unauthorized)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserId {
        UserId::parse("0b7c6f2e-8a1d-4c1e-9f3a-2d5e6f7a8b9c").unwrap()
    }

    #[test]
    fn a_minted_token_verifies() {
        let t = mint_dev_token(b"k", &user(), 60);
        assert_eq!(verify_dev_token(b"k", &t), Some(user()));
    }

    #[test]
    fn wrong_secret_tampered_or_expired_tokens_fail() {
        let t = mint_dev_token(b"k", &user(), 60);
        assert_eq!(verify_dev_token(b"other", &t), None);
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = B64.encode(br#"{"sub":"someone-else","iat":0,"exp":99999999999}"#);
        parts[1] = &forged;
        assert_eq!(verify_dev_token(b"k", &parts.join(".")), None);
        assert_eq!(
            verify_dev_token(b"k", &mint_dev_token(b"k", &user(), 0)),
            None
        );
        assert_eq!(verify_dev_token(b"k", "a.b"), None);
    }

    #[test]
    fn tokens_from_the_future_are_not_valid_yet() {
        let sign = |claims: &str| {
            let input = format!("{}.{}", B64.encode(DEV_HEADER), B64.encode(claims));
            let mut m = mac(b"k");
            m.update(input.as_bytes());
            format!("{input}.{}", B64.encode(m.finalize().into_bytes()))
        };
        let (sub, now) = (user(), now_secs());
        let at = |iat: u64, nbf: Option<u64>| {
            let nbf = nbf.map_or(String::new(), |n| format!(r#","nbf":{n}"#));
            sign(&format!(
                r#"{{"sub":"{sub}","iat":{iat},"exp":{}{nbf}}}"#,
                now + 7200
            ))
        };
        assert_eq!(verify_dev_token(b"k", &at(now, None)), Some(user()));
        assert_eq!(
            verify_dev_token(b"k", &at(now + 30, Some(now + 30))),
            Some(user()),
            "skew"
        );
        assert_eq!(verify_dev_token(b"k", &at(now + 3600, None)), None, "iat");
        assert_eq!(
            verify_dev_token(b"k", &at(now, Some(now + 3600))),
            None,
            "nbf"
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let t = mint_dev_token(b"k", &user(), 60);
        let claims = t.split('.').nth(1).unwrap();
        let none = format!("{}.{claims}.", B64.encode(r#"{"alg":"none"}"#));
        assert_eq!(verify_dev_token(b"k", &none), None);
    }
}
