//! `GET /api/user/media` against the emulator: identity, isolation, ordering, pagination.

use crate::support;

use joip::domain::MediaSource;
use joip::routes::list_user_media::handle;
use joip::service::media::upload_media;
use support::{read, Event, TestEnv};

const ROUTE: &str = "/api/user/media";

fn list(caller: Option<&str>, query: &[(&str, &str)]) -> lambda_http::Request {
    let mut e = Event::new("GET", ROUTE, ROUTE).query(query);
    if let Some(sub) = caller {
        e = e.caller(sub);
    }
    e.request()
}

async fn upload(env: &TestEnv, owner: &joip::domain::UserId, name: &str) -> u64 {
    let png = include_bytes!("../../../tools/demo/demo-upload.png").to_vec();
    upload_media(&env.app, owner, name, png, MediaSource::Upload, None)
        .await
        .expect("upload")
        .media_id
        .0
}

#[tokio::test]
async fn lists_only_the_callers_media_newest_first() {
    let env = TestEnv::new().await;
    let alice = env.user(0, false).await;
    let bob = env.user(0, false).await;
    let mut alices = Vec::new();
    for i in 0..3 {
        alices.push(upload(&env, &alice, &format!("a{i}.png")).await);
        upload(&env, &bob, &format!("b{i}.png")).await;
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let (status, body) = read(handle(&env.app, list(Some(alice.as_str()), &[])).await);
    assert_eq!(status, 200);
    let media = body["media"].as_array().unwrap();
    let ids: Vec<u64> = media.iter().map(|m| m["id"].as_u64().unwrap()).collect();
    alices.reverse();
    assert_eq!(ids, alices, "only alice's media, newest first");
    let first = &media[0];
    assert_eq!(first["source"], "upload");
    assert_eq!(first["mimeType"], "image/png");
    assert_eq!(first["size"], 1862);
    assert_eq!(first["isShared"], false);
    assert_eq!(first["shareToCommunity"], false);
    assert!(first["shareCode"].is_null());
    assert!(first["filePath"]
        .as_str()
        .unwrap()
        .starts_with(&format!("users/{alice}/")));
    assert!(first["createdAt"].as_str().unwrap().ends_with('Z'));
    assert!(body["nextCursor"].is_null());
}

#[tokio::test]
async fn pages_follow_the_cursor_to_the_end() {
    let env = TestEnv::new().await;
    let alice = env.user(0, false).await;
    for i in 0..5 {
        upload(&env, &alice, &format!("p{i}.png")).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut q = vec![("limit", "2")];
        if let Some(c) = &cursor {
            q.push(("cursor", c.as_str()));
        }
        let (status, body) = read(handle(&env.app, list(Some(alice.as_str()), &q)).await);
        assert_eq!(status, 200);
        pages += 1;
        for m in body["media"].as_array().unwrap() {
            seen.push(m["id"].as_u64().unwrap());
        }
        match body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "every item exactly once: {seen:?}");
}

#[tokio::test]
async fn a_cursor_is_useless_to_another_user_or_when_edited() {
    let env = TestEnv::new().await;
    let alice = env.user(0, false).await;
    let bob = env.user(0, false).await;
    for i in 0..3 {
        upload(&env, &alice, &format!("c{i}.png")).await;
    }
    let (_, body) = read(handle(&env.app, list(Some(alice.as_str()), &[("limit", "1")])).await);
    let cursor = body["nextCursor"].as_str().unwrap().to_string();
    let (status, body) =
        read(handle(&env.app, list(Some(bob.as_str()), &[("cursor", &cursor)])).await);
    assert_eq!(
        (status, body),
        (400, serde_json::json!({ "message": "Invalid cursor" }))
    );
    let mut edited = cursor.into_bytes();
    edited[2] = if edited[2] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).unwrap();
    let (status, _) =
        read(handle(&env.app, list(Some(alice.as_str()), &[("cursor", &edited)])).await);
    assert_eq!(status, 400);
}

#[tokio::test]
async fn limit_must_be_a_positive_number_and_is_capped() {
    let env = TestEnv::new().await;
    let alice = env.user(0, false).await;
    for bad in ["abc", "0", "-1", "1.5"] {
        let (status, body) =
            read(handle(&env.app, list(Some(alice.as_str()), &[("limit", bad)])).await);
        assert_eq!(
            (status, body),
            (400, serde_json::json!({ "message": "Invalid limit" })),
            "{bad}"
        );
    }
    let (status, _) =
        read(handle(&env.app, list(Some(alice.as_str()), &[("limit", "100000")])).await);
    assert_eq!(status, 200);
}

#[tokio::test]
async fn no_identity_is_401() {
    let env = TestEnv::new().await;
    let (status, body) = read(handle(&env.app, list(None, &[])).await);
    assert_eq!(
        (status, body),
        (401, serde_json::json!({ "message": "Unauthorized" }))
    );
    let (status, _) = read(
        handle(
            &env.app,
            support::sample_event("list-user-media/no-identity.json"),
        )
        .await,
    );
    assert_eq!(status, 401);
}

#[tokio::test]
async fn dev_tokens_work_only_in_local_mode() {
    let deployed = TestEnv::new().await;
    let local = TestEnv::local(b"dev-secret").await;
    let alice = local.user(0, false).await;
    let token = joip::auth::mint_dev_token(b"dev-secret", &alice, 60);
    let req = || {
        Event::new("GET", ROUTE, ROUTE)
            .header("authorization", &format!("Bearer {token}"))
            .request()
    };
    assert_eq!(read(handle(&local.app, req()).await).0, 200);
    assert_eq!(read(handle(&deployed.app, req()).await).0, 401);
    let forged = joip::auth::mint_dev_token(b"guessed", &alice, 60);
    let req = Event::new("GET", ROUTE, ROUTE)
        .header("authorization", &format!("Bearer {forged}"))
        .request();
    assert_eq!(read(handle(&local.app, req).await).0, 401);
}

#[tokio::test]
async fn the_sample_event_reaches_the_handler() {
    let env = TestEnv::new().await;
    let (status, body) =
        read(handle(&env.app, support::sample_event("list-user-media/ok.json")).await);
    assert_eq!(status, 200);
    assert!(body["media"].is_array());
}

#[tokio::test]
async fn a_storage_failure_is_the_documented_500_without_internals() {
    let env = TestEnv::new().await;
    let alice = env.user(0, false).await;
    let mut config = env.app.config.clone();
    config.table = "no-such-table".into();
    let broken = joip::App::new(config, &env.sdk);
    let (status, body) = read(handle(&broken, list(Some(alice.as_str()), &[])).await);
    assert_eq!(
        (status, body),
        (
            500,
            serde_json::json!({ "message": "Failed to fetch media" })
        )
    );
}
