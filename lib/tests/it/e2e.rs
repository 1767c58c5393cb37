//! End to end over real HTTP: `cargo lambda watch` (started by tools/test.sh) serving the real
//! function binaries at their API paths, against the private emulator.

use crate::support;
use joip::config::ExposeSecret;

use joip::auth::{mint_dev_token, DEV_TOKEN_TTL_SECS};
use joip::domain::{MediaSource, UserId};
use joip::App;
use serde_json::Value;
use std::time::Duration;

fn base() -> String {
    std::env::var("JOIP_E2E_URL")
        .expect("JOIP_E2E_URL is not set: run the tests with tools/test.sh, which starts cargo lambda watch")
}

/// The same stack watch serves: names and dev secret from the environment tools/test.sh set.
async fn stack() -> App {
    let config = joip::Config::local_from_env().expect("config");
    App::new(config, &support::sdk_config(&support::endpoint()).await)
}

fn token(app: &App, user: &UserId) -> String {
    let secret = &app
        .config
        .local
        .as_ref()
        .expect("local mode")
        .dev_token_secret;
    mint_dev_token(secret.expose_secret(), user, DEV_TOKEN_TTL_SECS)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        // The first request to a function may wait for watch to start its binary.
        .timeout_global(Some(Duration::from_secs(180)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// One request with an optional bearer token; the status and JSON body of the answer.
fn call(method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", base()));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let mut resp = agent()
        .run(req.body(()).expect("request"))
        .expect("HTTP request");
    let status = resp.status().as_u16();
    let body: Value = resp.body_mut().read_json().expect("JSON body");
    (status, body)
}

fn get(path: &str, token: Option<&str>) -> (u16, Value) {
    call("GET", path, token)
}

fn post(path: &str, token: Option<&str>) -> (u16, Value) {
    call("POST", path, token)
}

#[tokio::test]
async fn user_media_over_http() {
    let app = stack().await;
    let alice = UserId::random();
    let bob = UserId::random();
    app.store.create_user(&alice, 0, false).await.unwrap();
    app.store.create_user(&bob, 0, false).await.unwrap();
    let png = include_bytes!("../../../tools/demo/demo-upload.png").to_vec();
    let media =
        joip::service::media::upload_media(&app, &alice, "e2e.png", png, MediaSource::Upload, None)
            .await
            .unwrap();

    let alice_token = token(&app, &alice);
    let (status, body) =
        tokio::task::spawn_blocking(move || get("/api/user/media", Some(&alice_token)))
            .await
            .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["media"][0]["id"], media.media_id.0);
    assert_eq!(body["media"].as_array().unwrap().len(), 1);

    let bob_token = token(&app, &bob);
    let (status, body) =
        tokio::task::spawn_blocking(move || get("/api/user/media", Some(&bob_token)))
            .await
            .unwrap();
    assert_eq!((status, body["media"].as_array().unwrap().len()), (200, 0));

    let (status, body) = tokio::task::spawn_blocking(|| get("/api/user/media", None))
        .await
        .unwrap();
    assert_eq!(
        (status, body),
        (401, serde_json::json!({ "message": "Unauthorized" }))
    );
}

#[tokio::test]
async fn save_a_community_session_over_http() {
    let app = stack().await;
    app.store
        .put_pricing("session_create", 3, false)
        .await
        .unwrap();
    let owner = UserId::random();
    let saver = UserId::random();
    app.store.create_user(&owner, 0, false).await.unwrap();
    app.store.create_user(&saver, 5, false).await.unwrap();
    let photo = include_bytes!("../../../tools/demo/demo-photo.jpg").to_vec();
    let media = vec![support::upload("p.jpg", photo, Some("hi"))];
    let source = support::community_session(&app, &owner, "over http", media).await;
    let path = format!("/api/community/sessions/{source}/save");
    let token = token(&app, &saver);

    let (p, t) = (path.clone(), token.clone());
    let (status, first) = tokio::task::spawn_blocking(move || post(&p, Some(&t)))
        .await
        .unwrap();
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["reused"], false);
    let (p, t) = (path.clone(), token.clone());
    let (status, again) = tokio::task::spawn_blocking(move || post(&p, Some(&t)))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        again,
        serde_json::json!({ "success": true, "sessionId": first["sessionId"], "reused": true })
    );
    assert_eq!(app.store.user(&saver).await.unwrap().unwrap().credits, 2);

    let t = token.clone();
    let (status, body) =
        tokio::task::spawn_blocking(move || post("/api/community/sessions/abc/save", Some(&t)))
            .await
            .unwrap();
    assert_eq!(
        (status, body),
        (400, serde_json::json!({ "message": "Invalid session ID" }))
    );
    let (status, _) = tokio::task::spawn_blocking(move || post(&path, None))
        .await
        .unwrap();
    assert_eq!(status, 401);
}

/// `cargo lambda invoke --data-file events/...` against watch: each sample event reaches its
/// function and gets the documented status.
#[test]
fn sample_events_invoke_through_watch() {
    let base = base();
    let port = base.rsplit(':').next().expect("port in JOIP_E2E_URL");
    let events = format!("{}/../events", env!("CARGO_MANIFEST_DIR"));
    let cases = [
        ("list-user-media", "ok.json", 200),
        ("list-user-media", "paged.json", 200),
        ("list-user-media", "bad-limit.json", 400),
        ("list-user-media", "bad-cursor.json", 400),
        ("list-user-media", "no-identity.json", 401),
        ("save-community-session", "invalid-id.json", 400),
        ("save-community-session", "not-found.json", 404),
        ("save-community-session", "no-identity.json", 401),
        ("share-media", "invalid-id.json", 400),
        ("share-media", "bad-body.json", 400),
        ("share-media", "not-found.json", 404),
        ("share-media", "no-identity.json", 401),
        ("unshare-media", "not-found.json", 404),
        ("unshare-media", "no-identity.json", 401),
        ("share-media-by-path", "invalid-path.json", 400),
        ("share-media-by-path", "not-found.json", 404),
        ("share-media-by-path", "no-identity.json", 401),
        ("resolve-shared-media", "unknown-code.json", 404),
        ("resolve-shared-media", "malformed-code.json", 404),
        ("community-feed", "ok.json", 200),
        ("community-feed", "by-tag.json", 200),
        ("community-feed", "bad-limit.json", 400),
    ];
    for (function, file, status) in cases {
        let out = std::process::Command::new("cargo")
            .args([
                "lambda",
                "invoke",
                "-A",
                "127.0.0.1",
                "-P",
                port,
                function,
                "--data-file",
            ])
            .arg(format!("{events}/{function}/{file}"))
            .output()
            .expect("cargo lambda invoke runs");
        assert!(
            out.status.success(),
            "{function}/{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let response: Value = serde_json::from_slice(&out.stdout).expect("invoke prints JSON");
        assert_eq!(
            response["statusCode"], status,
            "{function}/{file}: {response}"
        );
    }
}

/// A POST with a JSON body and a bearer token.
fn post_json(path: &str, token: &str, body: &Value) -> (u16, Value) {
    let mut resp = agent()
        .post(format!("{}{path}", base()))
        .header("authorization", format!("Bearer {token}"))
        .send_json(body)
        .expect("HTTP request");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_json().expect("JSON body"))
}

/// The whole sharing path as the web client sees it: share an upload over HTTP, the staged
/// original goes S3 -> SQS -> the local poller -> the watermark function through watch, and the
/// community copy turns up in the public feed, watermarked and without its metadata.
#[tokio::test]
async fn a_shared_upload_is_published_through_the_queue() {
    let app = stack().await;
    let user = UserId::random();
    app.store.create_user(&user, 0, false).await.unwrap();
    app.store.put_tag("solo", "Solo").await.unwrap();
    let photo = include_bytes!("../../../tools/demo/demo-photo.jpg").to_vec();
    let media = joip::service::media::upload_media(
        &app,
        &user,
        "photo.jpg",
        photo.clone(),
        joip::domain::MediaSource::Upload,
        None,
    )
    .await
    .unwrap();
    let token = token(&app, &user);
    let path = format!("/api/media/{}/share", media.media_id);
    let body = serde_json::json!({ "tags": ["solo"], "policyAgreed": true });
    let (status, shared) = tokio::task::spawn_blocking(move || post_json(&path, &token, &body))
        .await
        .unwrap();
    assert_eq!(status, 200, "{shared}");
    let id = shared["communityMediaId"].as_u64().unwrap();
    let url = shared["communityUrl"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (status, feed) =
            tokio::task::spawn_blocking(|| get("/api/community/media?tag=solo", None))
                .await
                .unwrap();
        assert_eq!(status, 200);
        let listed = feed["media"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["communityMediaId"] == id);
        if listed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never published: {feed}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let public = tokio::task::spawn_blocking(move || {
        let mut resp = agent().get(&url).call().expect("GET communityUrl");
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_vec().unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(public.0, 200);
    assert_ne!(public.1, photo, "watermarked");
    assert!(!public.1.windows(4).any(|w| w == b"Exif"), "metadata-free");
}
