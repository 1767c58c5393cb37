//! Share links their owners control (issue 18): expiry from the stored instant (the clock is set,
//! never slept on), view limits exact under concurrency and chaos, link-preview agents that
//! spend nothing, and the owner's view of the link; through the real route handlers against the
//! emulator.

use crate::support::{read, Event, TestEnv};
use joip::domain::{rfc3339_millis, Clock, MediaId, MediaSource, UserId};
use joip::routes::{get_media_share, resolve_shared_media, share_media, unshare_media};
use joip::service::media::upload_media;
use joip::service::share::link::PREVIEW_AGENTS;
use joip::App;
use serde_json::{json, Value};

const LOOP: &[u8] = include_bytes!("../../../tools/demo/demo-loop.gif");
const BROWSER: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";

async fn share(app: &App, caller: &UserId, id: MediaId, body: Value) -> (u16, Value) {
    let e = Event::new(
        "POST",
        "/api/media/{id}/share",
        &format!("/api/media/{id}/share"),
    )
    .path_params(json!({ "id": id.to_string() }))
    .caller(caller.as_str())
    .body(&body.to_string());
    read(Box::pin(share_media::handle(app, e.request())).await)
}

async fn resolve(app: &App, code: &str, agent: &str) -> (u16, Value) {
    let e = Event::new(
        "GET",
        "/api/shared/media/{code}",
        &format!("/api/shared/media/{code}"),
    )
    .path_params(json!({ "code": code }))
    .header("user-agent", agent);
    read(Box::pin(resolve_shared_media::handle(app, e.request())).await)
}

async fn state(app: &App, caller: &UserId, id: MediaId) -> (u16, Value) {
    let e = Event::new(
        "GET",
        "/api/media/{id}/share",
        &format!("/api/media/{id}/share"),
    )
    .path_params(json!({ "id": id.to_string() }))
    .caller(caller.as_str());
    read(Box::pin(get_media_share::handle(app, e.request())).await)
}

/// A GIF of a new user's, never shared.
async fn media(env: &TestEnv) -> (UserId, MediaId) {
    let owner = env.user(0, false).await;
    let m = upload_media(
        &env.app,
        &owner,
        "loop.gif",
        LOOP.to_vec(),
        MediaSource::Babecock,
        None,
    )
    .await
    .expect("upload");
    (owner, m.media_id)
}

/// A link-only share with `limits`: its code.
async fn link(env: &TestEnv, owner: &UserId, id: MediaId, limits: Value) -> String {
    let mut body = json!({ "shareToCommunity": false });
    for (k, v) in limits.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, answer) = share(&env.app, owner, id, body).await;
    assert_eq!(status, 200, "{answer}");
    answer["shareCode"].as_str().unwrap().to_string()
}

fn expired() -> (u16, Value) {
    (410, json!({ "message": "Share link expired" }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twelve_concurrent_resolves_of_a_three_view_link_under_chaos_serve_exactly_three() {
    let env = TestEnv::new().await;
    let (owner, id) = media(&env).await;
    let code = link(&env, &owner, id, json!({ "maxViews": 3 })).await;
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (app, code) = (env.chaos_app(0.2), code.clone());
            tokio::spawn(async move { resolve(&app, &code, BROWSER).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let served: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(served.len(), 3, "{answers:?}");
    assert!(served.iter().all(|b| b["url"].is_string()));
    let mut left: Vec<u64> = served
        .iter()
        .map(|b| b["viewsLeft"].as_u64().unwrap())
        .collect();
    left.sort_unstable();
    assert_eq!(left, [0, 1, 2], "each view spent once");
    let refused = answers.iter().filter(|a| **a == expired()).count();
    assert_eq!(refused, 9, "{answers:?}");
    let (_, s) = state(&env.app, &owner, id).await;
    assert_eq!(s["views"], 3);
    assert_eq!(s["maxViews"], 3);
    assert_eq!(resolve(&env.app, &code, BROWSER).await, expired());
}

#[tokio::test]
async fn preview_agents_get_no_url_and_spend_no_view() {
    let env = TestEnv::new().await;
    let (owner, id) = media(&env).await;
    let code = link(&env, &owner, id, json!({ "maxViews": 1 })).await;
    let mut agents: Vec<String> = PREVIEW_AGENTS.iter().map(|a| a.to_string()).collect();
    agents.push("Mozilla/5.0 (compatible; DISCORDBOT/2.0; +https://discordapp.com)".into());
    agents.push("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)".into());
    for agent in &agents {
        let (status, body) = resolve(&env.app, &code, agent).await;
        assert_eq!(status, 200, "{agent}: {body}");
        assert!(
            body.get("url").is_none() && body.get("expiresAt").is_none(),
            "{agent}: {body}"
        );
        assert_eq!(body["viewsLeft"], 1, "{agent}");
        assert_eq!(body["mimeType"], "image/gif");
    }
    assert_eq!(
        state(&env.app, &owner, id).await.1["views"],
        0,
        "previews are no views"
    );
    let (status, body) = resolve(&env.app, &code, BROWSER).await;
    assert_eq!(status, 200);
    assert!(body["url"].is_string());
    assert_eq!(body["viewsLeft"], 0);
    assert_eq!(state(&env.app, &owner, id).await.1["views"], 1);
    for agent in [BROWSER, "Twitterbot/1.0"] {
        assert_eq!(resolve(&env.app, &code, agent).await, expired(), "{agent}");
    }
}

#[tokio::test]
async fn a_link_expires_at_its_stored_instant_and_its_urls_never_outlive_it() {
    let mut env = TestEnv::new().await;
    let start = joip::domain::now_millis();
    env.app.clock = Clock::fixed(start);
    let (owner, id) = media(&env).await;
    let (status, answer) = share(
        &env.app,
        &owner,
        id,
        json!({ "shareToCommunity": false, "expiresIn": 60 }),
    )
    .await;
    assert_eq!(status, 200);
    let until = rfc3339_millis(start + 60_000);
    assert_eq!(answer["linkExpiresAt"], until.as_str());
    assert_eq!(answer["maxViews"], Value::Null);
    let code = answer["shareCode"].as_str().unwrap().to_string();
    // JOIP_LINK_TTL_S (300 s) is longer than what is left of the link: the URL is cut to it.
    for (after, left_s) in [(0, 60), (45_000, 15)] {
        env.app.clock = Clock::fixed(start + after);
        let (status, body) = resolve(&env.app, &code, BROWSER).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["linkExpiresAt"], until.as_str());
        assert_eq!(body["viewsLeft"], Value::Null);
        let expires = body["expiresAt"].as_str().unwrap();
        assert!(expires <= until.as_str(), "{expires} after {until}");
        assert_eq!(expires, rfc3339_millis(start + after + left_s * 1000));
    }
    env.app.clock = Clock::fixed(start + 60_000);
    assert_eq!(resolve(&env.app, &code, BROWSER).await, expired());
    assert_eq!(resolve(&env.app, &code, "Slackbot 1.0").await, expired());
    // The owner lifts the limit: the same code works again.
    let (status, answer) = share(
        &env.app,
        &owner,
        id,
        json!({ "shareToCommunity": false, "expiresIn": null }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["shareCode"], code.as_str());
    assert_eq!(answer["linkExpiresAt"], Value::Null);
    assert_eq!(resolve(&env.app, &code, BROWSER).await.0, 200);
}

#[tokio::test]
async fn only_the_owner_sets_changes_and_clears_limits() {
    let env = TestEnv::new().await;
    let (owner, id) = media(&env).await;
    let stranger = env.user(0, false).await;
    let code = link(
        &env,
        &owner,
        id,
        json!({ "maxViews": 2, "expiresIn": 3600 }),
    )
    .await;
    let before = state(&env.app, &owner, id).await.1;
    let not_found = (404, json!({ "message": "Media not found" }));
    let limits = json!({ "shareToCommunity": false, "maxViews": 1000, "expiresIn": null });
    assert_eq!(share(&env.app, &stranger, id, limits).await, not_found);
    assert_eq!(state(&env.app, &stranger, id).await, not_found);
    assert_eq!(
        state(&env.app, &owner, id).await.1,
        before,
        "nothing changed"
    );
    // Absent fields leave the limits as they were; a new maxViews counts from now.
    assert_eq!(resolve(&env.app, &code, BROWSER).await.1["viewsLeft"], 1);
    let kept = json!({ "shareToCommunity": false });
    let (_, answer) = share(&env.app, &owner, id, kept).await;
    assert_eq!(
        (answer["maxViews"].clone(), answer["linkExpiresAt"].clone()),
        (json!(2), before["linkExpiresAt"].clone())
    );
    let raised = json!({ "shareToCommunity": false, "maxViews": 5 });
    assert_eq!(share(&env.app, &owner, id, raised).await.1["maxViews"], 5);
    assert_eq!(resolve(&env.app, &code, BROWSER).await.1["viewsLeft"], 4);
    let cleared = json!({ "shareToCommunity": false, "maxViews": null, "expiresIn": null });
    let (_, answer) = share(&env.app, &owner, id, cleared).await;
    assert_eq!(answer["shareCode"], code.as_str());
    assert_eq!(
        (answer["maxViews"].clone(), answer["linkExpiresAt"].clone()),
        (Value::Null, Value::Null)
    );
    let (status, body) = resolve(&env.app, &code, BROWSER).await;
    assert_eq!((status, body["viewsLeft"].clone()), (200, Value::Null));
    let (_, s) = state(&env.app, &owner, id).await;
    assert_eq!(
        s["views"], 3,
        "limited and unlimited views both counted: {s}"
    );
}

#[tokio::test]
async fn the_owner_sees_the_link_as_it_is_and_nulls_for_media_never_shared() {
    let env = TestEnv::new().await;
    let (owner, id) = media(&env).await;
    assert_eq!(
        state(&env.app, &owner, id).await,
        (
            200,
            json!({
                "shareCode": null, "shareUrl": null, "linkExpiresAt": null, "maxViews": null,
                "views": 0, "shareToCommunity": false, "communityMediaId": null,
                "communityStatus": null,
            })
        )
    );
    // An unlimited link's views are counted across its shards.
    let code = link(&env, &owner, id, json!({})).await;
    for _ in 0..40 {
        assert_eq!(resolve(&env.app, &code, BROWSER).await.0, 200);
    }
    let (status, s) = state(&env.app, &owner, id).await;
    assert_eq!(status, 200);
    assert_eq!(s["shareCode"], code.as_str());
    assert_eq!(s["shareUrl"], format!("/shared/media/{code}"));
    assert_eq!(s["views"], 40);
    // A revoked code is unknown, whatever its limits were.
    let e = Event::new(
        "DELETE",
        "/api/media/{id}/share",
        &format!("/api/media/{id}/share"),
    )
    .path_params(json!({ "id": id.to_string() }))
    .caller(owner.as_str());
    assert_eq!(
        read(Box::pin(unshare_media::handle(&env.app, e.request())).await).0,
        200
    );
    assert_eq!(
        resolve(&env.app, &code, BROWSER).await,
        (404, json!({ "message": "Shared media not found" }))
    );
    let (_, s) = state(&env.app, &owner, id).await;
    assert_eq!(
        (s["shareCode"].clone(), s["views"].clone()),
        (Value::Null, json!(0))
    );
    assert_eq!(
        state(&env.app, &owner, MediaId(9_007_199_254_740_991))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn refused_limits_change_nothing_and_create_no_code() {
    let env = TestEnv::new().await;
    let (owner, id) = media(&env).await;
    let before = env.snapshot().await;
    for (body, message) in [
        (json!({ "expiresIn": 59 }), "Invalid expiresIn"),
        (json!({ "expiresIn": 31_536_001 }), "Invalid expiresIn"),
        (json!({ "expiresIn": 60.5 }), "Invalid expiresIn"),
        (json!({ "expiresIn": "60" }), "Invalid expiresIn"),
        (
            json!({ "expiresIn": 0, "maxViews": 0 }),
            "Invalid expiresIn",
        ),
        (json!({ "maxViews": 0 }), "Invalid maxViews"),
        (json!({ "maxViews": 1_000_001 }), "Invalid maxViews"),
        (json!({ "maxViews": true }), "Invalid maxViews"),
    ] {
        let mut body = body;
        body["shareToCommunity"] = json!(false);
        assert_eq!(
            share(&env.app, &owner, id, body.clone()).await,
            (400, json!({ "message": message })),
            "{body}"
        );
    }
    assert_eq!(env.snapshot().await, before, "no code, no change");
    // Whole numbers written as floats are integers (JSON Schema's reading).
    let (status, answer) = share(
        &env.app,
        &owner,
        id,
        json!({ "shareToCommunity": false, "expiresIn": 60.0, "maxViews": 2.0 }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["maxViews"], 2);
}
