//! Request parsing at the edge and response building; one wrapper gives every route its span,
//! its error mapping and its log line.

use crate::error::{AppError, Report};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::future::Future;
use tracing::Instrument;

/// A JSON response with the given status.
pub fn json(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))
        .expect("status codes used here are valid")
}

/// The path parameter `name`, parsed as a positive id; `err` (the route's documented 400) otherwise.
pub fn path_id(req: &Request, name: &str, err: &'static str) -> Result<u64, AppError> {
    req.path_parameters_ref()
        .and_then(|p| p.first(name))
        .and_then(crate::domain::parse_positive_id)
        .ok_or(AppError::bad_request(err))
}

/// A query-string parameter, if present.
pub fn query<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
}

/// `?limit=`: 1 or more (larger than [`crate::config::MAX_PAGE_SIZE`] is capped), the default page
/// size when absent; anything else is 400 "Invalid limit".
pub fn page_limit(req: &Request) -> Result<u32, AppError> {
    use crate::config::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
    match query(req, "limit") {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .map(|n| n.min(MAX_PAGE_SIZE))
            .ok_or(AppError::bad_request("Invalid limit")),
    }
}

/// Parses a JSON object body; an empty body reads as `{}` so every field takes its documented
/// default. A body that is not declared `application/json`, not an object, or names a field
/// twice is `err`.
pub fn json_body<T: DeserializeOwned>(req: &Request, err: &'static str) -> Result<T, AppError> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => b"",
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => return Err(AppError::bad_request(err)),
    };
    if bytes.trim_ascii().is_empty() {
        return serde_json::from_slice(b"{}").map_err(|_| AppError::bad_request(err));
    }
    // Only an object is a body: serde would also read a struct from an array. Read straight
    // into `T`, not through a map, so a repeated field is refused instead of its last value
    // silently winning over what a proxy or client library read first.
    if !declares_json(req) || bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(AppError::bad_request(err));
    }
    serde_json::from_slice(bytes).map_err(|_| AppError::bad_request(err))
}

/// A body field that may be absent, `null`, or a value: the three mean different things (leave as
/// is, clear, set). Use with `#[serde(default)]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Field<T> {
    /// Not in the body.
    #[default]
    Absent,
    /// Present as `null`.
    Null,
    /// Present with a value.
    Value(T),
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Field<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<T>::deserialize(d).map(|v| v.map_or(Field::Null, Field::Value))
    }
}

/// Whether the request's `Content-Type` is `application/json` (any case, any parameters).
fn declares_json(req: &Request) -> bool {
    req.headers()
        .get(lambda_http::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// The API Gateway request id, for correlating client reports with logs.
pub fn request_id(req: &Request) -> String {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    }
    .or_else(|| req.lambda_context_ref().map(|c| c.request_id.clone()))
    .unwrap_or_default()
}

/// Runs one route inside a span named after it, carrying the request id. Expected failures become
/// their documented response; internal ones are logged with their cause and answered with the
/// documented 500 body.
pub async fn serve<F>(route: &'static str, req: &Request, handler: F) -> Response<Body>
where
    F: Future<Output = Result<Response<Body>, AppError>>,
{
    let span = tracing::info_span!("request", route, request_id = %request_id(req));
    async move {
        let response = handler.await.unwrap_or_else(|err| {
            let (status, body) = err.status_and_body();
            match &err {
                AppError::Internal { .. } => {
                    tracing::error!(status, error = %Report(&err), "request failed")
                }
                _ => tracing::info!(status, error = %err, "request refused"),
            }
            json(status, &body)
        });
        tracing::info!(status = response.status().as_u16(), "request done");
        response
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct ShareBody {
        #[serde(default = "yes")]
        share_to_community: bool,
        #[serde(default)]
        tags: Vec<String>,
    }

    fn yes() -> bool {
        true
    }

    fn request(body: Body) -> Request {
        typed(Some("application/json"), body)
    }

    fn typed(content_type: Option<&str>, body: Body) -> Request {
        let mut req = lambda_http::http::Request::builder();
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        req.body(body).unwrap()
    }

    #[test]
    fn an_empty_body_takes_the_documented_defaults() {
        for body in [Body::Empty, Body::Text("  ".into())] {
            let parsed: ShareBody = json_body(&request(body), "bad").unwrap();
            assert_eq!(
                parsed,
                ShareBody {
                    share_to_community: true,
                    tags: vec![]
                }
            );
        }
    }

    #[test]
    fn malformed_json_is_the_routes_400() {
        for body in ["{", "[]", r#"{"tags":"x"}"#] {
            let err = json_body::<ShareBody>(&request(Body::Text(body.into())), "Invalid body");
            assert!(
                matches!(err, Err(AppError::BadRequest(m)) if m == "Invalid body"),
                "{body}"
            );
        }
    }

    #[test]
    fn a_repeated_field_is_the_routes_400() {
        for body in [
            r#"{"shareToCommunity":true,"shareToCommunity":false}"#,
            r#"{"tags":[],"tags":[]}"#,
        ] {
            let err = json_body::<ShareBody>(&request(Body::Text(body.into())), "Invalid body");
            assert!(err.is_err(), "{body}");
        }
    }

    #[test]
    fn only_a_body_declared_json_is_read() {
        let body = || Body::Text(r#"{"shareToCommunity":false}"#.into());
        for t in ["application/json", "Application/JSON; charset=utf-8"] {
            let parsed: ShareBody = json_body(&typed(Some(t), body()), "bad").unwrap();
            assert!(!parsed.share_to_community, "{t}");
        }
        for t in [
            None,
            Some("text/plain"),
            Some("application/jsonx"),
            Some("text/json"),
        ] {
            assert!(
                json_body::<ShareBody>(&typed(t, body()), "bad").is_err(),
                "{t:?}"
            );
        }
        // No body needs no type.
        assert!(json_body::<ShareBody>(&typed(None, Body::Empty), "bad").is_ok());
    }

    #[test]
    fn responses_are_json() {
        let r = json(404, &serde_json::json!({ "message": "Media not found" }));
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()["content-type"], "application/json");
    }
}
