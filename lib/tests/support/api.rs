//! The API's routes as the integration tests call them: one function per route, each building a
//! real API Gateway v2 event and running the route's real handler. Raw forms take the path
//! parameter and body as a client could send them (malformed included) and an optional caller.

use super::{read, Event, TestEnv};
use joip::domain::{MediaId, UserId};
use joip::routes::{
    community_feed, get_media_share, report_community_media, resolve_shared_media, share_media,
    share_media_by_path, unshare_media,
};
use joip::App;
use serde_json::{json, Value};
use std::borrow::Borrow;
use std::future::Future;

pub const SHARE_ROUTE: &str = "/api/media/{id}/share";
pub const BY_PATH_ROUTE: &str = "/api/user/media/share";
pub const RESOLVE_ROUTE: &str = "/api/shared/media/{code}";
pub const FEED_ROUTE: &str = "/api/community/media";
pub const REPORT_ROUTE: &str = "/api/community/media/{communityMediaId}/report";

/// Logs go to the test's output (shown when it fails).
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("joip=info")
        .try_init();
}

fn as_caller(e: Event, caller: Option<&UserId>) -> Event {
    match caller {
        Some(user) => e.caller(user.as_str()),
        None => e,
    }
}

/// `POST /api/media/{id}/share` with a raw path id and body.
pub async fn post_share(
    app: &App,
    caller: Option<&UserId>,
    id: &str,
    body: Option<&str>,
) -> (u16, Value) {
    logs();
    let mut e = Event::new("POST", SHARE_ROUTE, &format!("/api/media/{id}/share"))
        .path_params(json!({ "id": id }));
    if let Some(body) = body {
        e = e.body(body);
    }
    let e = as_caller(e, caller);
    read(Box::pin(share_media::handle(app, e.request())).await)
}

/// The caller shares their media `id` with `body`.
pub async fn share(
    app: &App,
    caller: &UserId,
    id: MediaId,
    body: impl Borrow<Value>,
) -> (u16, Value) {
    let body = body.borrow().to_string();
    post_share(app, Some(caller), &id.to_string(), Some(&body)).await
}

/// `DELETE /api/media/{id}/share` with a raw path id.
pub async fn delete_share(app: &App, caller: Option<&UserId>, id: &str) -> (u16, Value) {
    logs();
    let e = Event::new("DELETE", SHARE_ROUTE, &format!("/api/media/{id}/share"))
        .path_params(json!({ "id": id }));
    let e = as_caller(e, caller);
    read(Box::pin(unshare_media::handle(app, e.request())).await)
}

/// The caller unshares their media `id`.
pub async fn unshare(app: &App, caller: &UserId, id: MediaId) -> (u16, Value) {
    delete_share(app, Some(caller), &id.to_string()).await
}

/// `POST /api/user/media/share` with a raw body.
pub async fn share_by_path_raw(app: &App, caller: Option<&UserId>, body: &str) -> (u16, Value) {
    logs();
    let e = as_caller(
        Event::new("POST", BY_PATH_ROUTE, BY_PATH_ROUTE).body(body),
        caller,
    );
    read(Box::pin(share_media_by_path::handle(app, e.request())).await)
}

/// The caller shares by path with `body`.
pub async fn share_by_path(app: &App, caller: &UserId, body: &Value) -> (u16, Value) {
    share_by_path_raw(app, Some(caller), &body.to_string()).await
}

/// `GET /api/media/{id}/share` with a raw path id.
pub async fn link_state(app: &App, caller: Option<&UserId>, id: &str) -> (u16, Value) {
    logs();
    let e = Event::new("GET", SHARE_ROUTE, &format!("/api/media/{id}/share"))
        .path_params(json!({ "id": id }));
    let e = as_caller(e, caller);
    read(Box::pin(get_media_share::handle(app, e.request())).await)
}

/// `GET /api/shared/media/{code}` (public) with `User-Agent: agent`, or none.
pub async fn resolve_as(app: &App, code: &str, agent: Option<&str>) -> (u16, Value) {
    logs();
    let mut e = Event::new("GET", RESOLVE_ROUTE, &format!("/api/shared/media/{code}"))
        .path_params(json!({ "code": code }));
    if let Some(agent) = agent {
        e = e.header("user-agent", agent);
    }
    read(Box::pin(resolve_shared_media::handle(app, e.request())).await)
}

/// `GET /api/shared/media/{code}` with no `User-Agent`.
pub async fn resolve(app: &App, code: &str) -> (u16, Value) {
    resolve_as(app, code, None).await
}

/// `GET /api/community/media` (public) with `query`.
pub async fn feed(app: &App, query: &[(&str, &str)]) -> (u16, Value) {
    logs();
    let req = Event::new("GET", FEED_ROUTE, FEED_ROUTE)
        .query(query)
        .request();
    read(Box::pin(community_feed::handle(app, req)).await)
}

/// `POST /api/community/media/{communityMediaId}/report` with a raw id and body.
pub async fn report(app: &App, caller: Option<&UserId>, cid: &str, body: &str) -> (u16, Value) {
    logs();
    let e = Event::new(
        "POST",
        REPORT_ROUTE,
        &format!("/api/community/media/{cid}/report"),
    )
    .path_params(json!({ "communityMediaId": cid }))
    .body(body);
    let e = as_caller(e, caller);
    read(Box::pin(report_community_media::handle(app, e.request())).await)
}

/// Sends a request that must be refused with `status` and `message`, and asserts it changed
/// nothing in the table or the buckets (DESIGN invariant 6).
pub async fn refused(
    env: &TestEnv,
    what: &str,
    call: impl Future<Output = (u16, Value)>,
    status: u16,
    message: &str,
) {
    let before = env.snapshot().await;
    let (got, body) = call.await;
    assert_eq!(
        (got, &body),
        (status, &json!({ "message": message })),
        "{what}"
    );
    assert_eq!(
        env.snapshot().await,
        before,
        "{what}: a {status} changed nothing"
    );
}
