//! Share links their owners control (issue 18), through the real handlers against the emulator:
//! `expiresIn` and `maxViews` on both share routes, `GET /api/shared/media/{code}` answering 410
//! once a link expired or its views are used up (exactly N views under concurrency and chaos),
//! link-preview agents that see the link without a URL and spend nothing, and the owner's
//! `GET /api/media/{id}/share`. Time is the app's clock, set and moved by the tests.

use crate::support::api::{link_state, refused, resolve_as, share, share_by_path, unshare};
use crate::support::TestEnv;
use joip::domain::{rfc3339_millis, Clock, MediaId, MediaSource, UserId};
use joip::service::media::upload_media;
use joip::service::share::link::PREVIEW_AGENTS;
use joip::store::items::MediaItem;
use joip::App;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

const LOOP: &[u8] = include_bytes!("../../../tools/demo/demo-loop.gif");
const PNG: &[u8] = include_bytes!("../../../tools/demo/demo-upload.png");
/// Fraction of DynamoDB and S3 calls the emulator fails in the race test.
const CHAOS: f64 = 0.2;

const EXPIRED: &str = "Share link expired";
const LINK_NOT_FOUND: &str = "Shared media not found";
const NOT_FOUND: &str = "Media not found";
const INVALID_ID: &str = "Invalid media ID";
const INVALID_PATH: &str = "Invalid file path";
const INVALID_EXPIRES_IN: &str = "Invalid expiresIn";
const INVALID_MAX_VIEWS: &str = "Invalid maxViews";

/// The preview agents the issue names: every one must be recognised.
const ISSUE_AGENTS: [&str; 14] = [
    "facebookexternalhit",
    "Facebot",
    "Twitterbot",
    "Slackbot",
    "Slack-ImgProxy",
    "Discordbot",
    "WhatsApp",
    "TelegramBot",
    "LinkedInBot",
    "SkypeUriPreview",
    "redditbot",
    "Applebot",
    "Iframely",
    "Embedly",
];

/// User-Agent strings as the agents send them (their case differs from the list's).
const REAL_PREVIEW_AGENTS: [&str; 6] = [
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Mozilla/5.0 (compatible; DISCORDBOT/2.0; +https://discordapp.com)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "WhatsApp/2.23.20.0 A",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 Safari/537.36 twitterbot/1.0",
    "TelegramBot (like TwitterBot)",
];

const BROWSER: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15";

// ---- requests -------------------------------------------------------------------------------

/// A share that must succeed; its answer, whose keys must be the documented ones.
async fn shared(app: &App, caller: &UserId, id: MediaId, body: &Value) -> Value {
    let (status, answer) = share(app, caller, id, body).await;
    assert_eq!(status, 200, "share {id} with {body}: {answer}");
    assert_share_keys(&answer);
    answer
}

/// The owner's view of their media's link, which must be answered.
async fn state_of(app: &App, owner: &UserId, id: MediaId) -> Value {
    let (status, body) = link_state(app, Some(owner), &id.to_string()).await;
    assert_eq!(status, 200, "link state of {id}: {body}");
    assert_eq!(
        keys_of(&body),
        set(&[
            "shareCode",
            "shareUrl",
            "linkExpiresAt",
            "maxViews",
            "views",
            "shareToCommunity",
            "communityMediaId",
            "communityStatus"
        ]),
        "{body}"
    );
    body
}

/// A browser's resolve that must answer the URL; the body.
async fn viewed(app: &App, code: &str) -> Value {
    let (status, body) = resolve_as(app, code, Some(BROWSER)).await;
    assert_eq!(status, 200, "resolve {code}: {body}");
    assert_eq!(keys_of(&body), set(&VIEW_KEYS), "{body}");
    body
}

// ---- set-up and shapes ----------------------------------------------------------------------

/// A GIF of the owner's (a GIF shares to the community without tags or policy).
async fn gif(env: &TestEnv, owner: &UserId) -> MediaItem {
    upload_media(
        &env.app,
        owner,
        "loop.gif",
        LOOP.to_vec(),
        MediaSource::Upload,
        None,
    )
    .await
    .expect("upload media")
}

/// An object in the owner's prefix with no media record (for the by-path route).
async fn unrecorded_object(env: &TestEnv, owner: &UserId, name: &str) -> String {
    let path = format!("users/{owner}/direct/{name}");
    env.app
        .blob
        .put(
            &env.app.config.user_media_bucket,
            &path,
            PNG.to_vec(),
            "image/png",
        )
        .await
        .expect("put object");
    path
}

/// A link-only share body with `limits` added.
fn link_only(limits: Value) -> Value {
    let mut body = json!({ "shareToCommunity": false });
    for (k, v) in limits.as_object().expect("an object") {
        body[k] = v.clone();
    }
    body
}

/// A clock standing at a whole second of today plus 123 ms (presigned URLs stay fetchable; the
/// milliseconds show in every instant).
fn fixed_clock() -> Clock {
    Clock::fixed(joip::domain::now_millis() / 1000 * 1000 + 123)
}

/// The keys of a resolve that carries a URL.
const VIEW_KEYS: [&str; 8] = [
    "shareCode",
    "type",
    "mimeType",
    "size",
    "url",
    "expiresAt",
    "linkExpiresAt",
    "viewsLeft",
];
/// The keys of a preview agent's resolve.
const PREVIEW_KEYS: [&str; 6] = [
    "shareCode",
    "type",
    "mimeType",
    "size",
    "linkExpiresAt",
    "viewsLeft",
];

fn keys_of(body: &Value) -> BTreeSet<&str> {
    body.as_object()
        .unwrap_or_else(|| panic!("an object: {body}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn set<'a>(keys: &[&'a str]) -> BTreeSet<&'a str> {
    keys.iter().copied().collect()
}

/// A share's 200 has exactly the documented keys: the link and its limits, plus the community
/// copy's when there is one.
fn assert_share_keys(answer: &Value) {
    let link = ["shareCode", "shareUrl", "linkExpiresAt", "maxViews"];
    let community = [&link[..], &["communityUrl", "communityMediaId"]].concat();
    let keys = keys_of(answer);
    assert!(
        keys == set(&link) || keys == set(&community),
        "documented share keys: {answer}"
    );
    let code = answer["shareCode"].as_str().expect("a code");
    assert_eq!(answer["shareUrl"], format!("/shared/media/{code}"));
    for limit in ["linkExpiresAt", "maxViews"] {
        assert!(
            answer[limit].is_null() || answer[limit].is_string() || answer[limit].is_u64(),
            "{limit}: {answer}"
        );
    }
}

/// The share code of a share's answer.
fn code_of(answer: &Value) -> String {
    answer["shareCode"].as_str().expect("shareCode").to_string()
}

/// The presigned URL's own lifetime (`X-Amz-Expires`), in seconds.
fn url_lifetime_s(body: &Value) -> u64 {
    let url = body["url"].as_str().expect("a url");
    let (_, rest) = url
        .split_once("X-Amz-Expires=")
        .unwrap_or_else(|| panic!("presigned: {url}"));
    rest.split('&').next().unwrap().parse().expect("seconds")
}

/// Asserts a resolve at `now` issued a URL that lives `ttl_s` and expires no later than the link.
fn assert_url_within_link(body: &Value, now: i64, ttl_s: u64) {
    let expires = body["expiresAt"].as_str().expect("expiresAt");
    assert_eq!(expires, rfc3339_millis(now + 1000 * ttl_s as i64), "{body}");
    assert_eq!(url_lifetime_s(body), ttl_s, "{body}");
    if let Some(link) = body["linkExpiresAt"].as_str() {
        assert!(
            expires <= link,
            "expiresAt {expires} > linkExpiresAt {link}"
        );
    }
}

/// Items under the `LINKVIEWS#` shards of `code`, and the code's own item.
async fn view_items(env: &TestEnv, code: &str) -> (Vec<Value>, Value) {
    let snapshot = env.snapshot().await;
    let items: Vec<Value> = snapshot
        .items
        .iter()
        .map(|i| serde_json::from_str(i).expect("JSON item"))
        .collect();
    let shards = items
        .iter()
        .filter(|i| {
            i["pk"]
                .as_str()
                .is_some_and(|pk| pk.starts_with("LINKVIEWS#"))
        })
        .filter(|i| i["pk"].as_str().is_some_and(|pk| pk.contains(code)))
        .cloned()
        .collect();
    let item = items
        .into_iter()
        .find(|i| i["pk"] == format!("SHARE#{code}"))
        .unwrap_or_else(|| panic!("the item of {code}"));
    (shards, item)
}

// ---- view limits under concurrency ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twelve_concurrent_resolves_of_a_three_view_link_answer_three_urls_under_chaos() {
    let env = TestEnv::new().await;
    let owner = env.user(0, false).await;
    // A few links, so that chaos strikes some views' updates and reads.
    for _ in 0..4 {
        twelve_resolves_of_three_views(&env, &owner).await;
    }
}

/// 12 resolves at once, each on its own client under chaos, of a new `maxViews: 3` link.
async fn twelve_resolves_of_three_views(env: &TestEnv, owner: &UserId) {
    let media = gif(env, owner).await;
    let answer = shared(
        &env.app,
        owner,
        media.media_id,
        &link_only(json!({ "maxViews": 3 })),
    )
    .await;
    assert_eq!(answer["maxViews"], 3);
    let code = code_of(&answer);

    let barrier = Arc::new(tokio::sync::Barrier::new(12));
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (app, code, barrier) = (env.chaos_app(CHAOS), code.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                resolve_as(&app, &code, Some(BROWSER)).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("resolve task"));
    }
    let served: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    let gone = answers
        .iter()
        .filter(|a| **a == (410, json!({ "message": EXPIRED })))
        .count();
    assert_eq!((served.len(), gone), (3, 9), "{answers:#?}");
    for body in &served {
        assert_eq!(keys_of(body), set(&VIEW_KEYS), "{body}");
        assert!(body["url"]
            .as_str()
            .is_some_and(|u| u.contains("X-Amz-Signature=")));
        assert_eq!(body["shareCode"], code.as_str());
    }
    let left: BTreeSet<u64> = served
        .iter()
        .map(|b| b["viewsLeft"].as_u64().expect("viewsLeft"))
        .collect();
    assert_eq!(left, BTreeSet::from([0, 1, 2]), "each view counted once");

    let state = state_of(&env.app, owner, media.media_id).await;
    assert_eq!(
        (state["views"].clone(), state["maxViews"].clone()),
        (json!(3), json!(3))
    );
    refused(
        env,
        "a further resolve",
        resolve_as(&env.chaos_app(CHAOS), &code, Some(BROWSER)),
        410,
        EXPIRED,
    )
    .await;
    refused(
        env,
        "a resolve without User-Agent",
        resolve_as(&env.app, &code, None),
        410,
        EXPIRED,
    )
    .await;
    assert_eq!(state_of(&env.app, owner, media.media_id).await["views"], 3);
}

// ---- link-preview agents ----------------------------------------------------------------------

#[tokio::test]
async fn preview_agents_see_the_link_without_a_url_and_spend_no_view() {
    let env = TestEnv::new().await;
    let owner = env.user(0, false).await;
    for agent in ISSUE_AGENTS {
        assert!(
            PREVIEW_AGENTS.iter().any(|a| a.eq_ignore_ascii_case(agent)),
            "{agent} is in the one list"
        );
    }
    let mut agents: Vec<String> = Vec::new();
    for agent in ISSUE_AGENTS {
        agents.push(agent.to_string());
        agents.push(agent.to_uppercase());
        agents.push(format!(
            "Mozilla/5.0 (compatible; {}/1.0)",
            agent.to_lowercase()
        ));
    }
    agents.extend(REAL_PREVIEW_AGENTS.iter().map(|a| a.to_string()));

    // A limited link: previews leave its views as they are.
    let media = gif(&env, &owner).await;
    let answer = shared(
        &env.app,
        &owner,
        media.media_id,
        &link_only(json!({ "maxViews": 1 })),
    )
    .await;
    let code = code_of(&answer);
    let before = env.snapshot().await;
    for agent in &agents {
        let (status, body) = resolve_as(&env.app, &code, Some(agent)).await;
        assert_eq!(status, 200, "{agent}: {body}");
        assert_eq!(
            keys_of(&body),
            set(&PREVIEW_KEYS),
            "{agent}: no URL: {body}"
        );
        assert_eq!(body["shareCode"], code.as_str());
        assert_eq!(body["type"], "gif");
        assert_eq!(body["mimeType"], "image/gif");
        assert_eq!(body["size"], LOOP.len() as u64);
        assert_eq!(body["viewsLeft"], 1, "{agent}: no view spent");
        assert_eq!(body["linkExpiresAt"], Value::Null);
    }
    assert_eq!(env.snapshot().await, before, "previews spent nothing");
    assert_eq!(state_of(&env.app, &owner, media.media_id).await["views"], 0);

    // A browser spends the one view; then previews, too, find the link used up.
    let body = viewed(&env.app, &code).await;
    assert_eq!(body["viewsLeft"], 0);
    assert_eq!(state_of(&env.app, &owner, media.media_id).await["views"], 1);
    let before = env.snapshot().await;
    for agent in agents.iter().map(String::as_str).chain([BROWSER]) {
        assert_eq!(
            resolve_as(&env.app, &code, Some(agent)).await,
            (410, json!({ "message": EXPIRED })),
            "{agent} on a used-up link"
        );
    }
    assert_eq!(env.snapshot().await, before, "410s changed nothing");

    // An unlimited link: previews write no view shard; other agents (none too) each count one.
    let media = gif(&env, &owner).await;
    let code = code_of(&shared(&env.app, &owner, media.media_id, &link_only(json!({}))).await);
    let before = env.snapshot().await;
    for agent in &agents {
        let (status, body) = resolve_as(&env.app, &code, Some(agent)).await;
        assert_eq!(status, 200, "{agent}: {body}");
        assert_eq!(
            keys_of(&body),
            set(&PREVIEW_KEYS),
            "{agent}: no URL: {body}"
        );
        assert_eq!(body["viewsLeft"], Value::Null);
    }
    assert_eq!(env.snapshot().await, before, "previews counted nothing");
    let others = [
        Some(BROWSER),
        Some("curl/8.5.0"),
        Some("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"),
        None,
    ];
    for agent in others {
        let (status, body) = resolve_as(&env.app, &code, agent).await;
        assert_eq!(status, 200, "{agent:?}: {body}");
        assert_eq!(keys_of(&body), set(&VIEW_KEYS), "{agent:?}: {body}");
    }
    assert_eq!(
        state_of(&env.app, &owner, media.media_id).await["views"],
        others.len()
    );
}

// ---- expiry ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_link_expires_at_its_instant_and_its_urls_never_outlive_it() {
    let mut env = TestEnv::new().await;
    env.app.clock = fixed_clock();
    let t0 = env.app.clock.now_millis();
    assert_eq!(env.app.config.link_ttl_s, 300, "the default URL lifetime");
    let owner = env.user(0, false).await;
    let media = gif(&env, &owner).await;
    let id = media.media_id;

    let answer = shared(&env.app, &owner, id, &link_only(json!({ "expiresIn": 60 }))).await;
    let code = code_of(&answer);
    let link_expires = rfc3339_millis(t0 + 60_000);
    assert!(
        link_expires.ends_with(".123Z"),
        "RFC 3339 with ms: {link_expires}"
    );
    assert_eq!(
        answer["linkExpiresAt"],
        link_expires.as_str(),
        "now + 60 s exactly"
    );
    assert_eq!(answer["maxViews"], Value::Null);

    // Before: the URL is capped at the link's expiry (60 s, not JOIP_LINK_TTL_S's 300).
    let body = viewed(&env.app, &code).await;
    assert_eq!(body["linkExpiresAt"], link_expires.as_str());
    assert_eq!(body["viewsLeft"], Value::Null);
    assert_url_within_link(&body, t0, 60);
    assert_eq!(body["expiresAt"], link_expires.as_str());
    env.app.clock.advance(45_000);
    let body = viewed(&env.app, &code).await;
    assert_url_within_link(&body, t0 + 45_000, 15);
    env.app.clock.advance(14_000);
    let body = viewed(&env.app, &code).await;
    assert_url_within_link(&body, t0 + 59_000, 1);

    // At the instant and after: 410, for browsers and previews alike, changing nothing.
    env.app.clock.advance(1_000);
    for agent in [Some(BROWSER), Some("Twitterbot/1.0"), None] {
        refused(
            &env,
            &format!("{agent:?} at the instant"),
            resolve_as(&env.app, &code, agent),
            410,
            EXPIRED,
        )
        .await;
    }
    env.app.clock.advance(86_400_000);
    refused(
        &env,
        "a day later",
        resolve_as(&env.app, &code, Some(BROWSER)),
        410,
        EXPIRED,
    )
    .await;
    let state = state_of(&env.app, &owner, id).await;
    assert_eq!(state["shareCode"], code.as_str());
    assert_eq!(state["linkExpiresAt"], link_expires.as_str());

    // Another user can neither lift nor move it.
    let other = env.user(0, false).await;
    for body in [
        link_only(json!({ "expiresIn": null })),
        link_only(json!({ "expiresIn": 3600, "maxViews": 5 })),
        json!({}),
    ] {
        refused(
            &env,
            &format!("another user shares with {body}"),
            share(&env.app, &other, id, &body),
            404,
            NOT_FOUND,
        )
        .await;
    }
    let mut by_path = link_only(json!({ "expiresIn": null }));
    by_path["filePath"] = json!(media.file_path);
    refused(
        &env,
        "another user shares the owner's path",
        share_by_path(&env.app, &other, &by_path),
        400,
        INVALID_PATH,
    )
    .await;
    refused(
        &env,
        "resolve after the others' attempts",
        resolve_as(&env.app, &code, Some(BROWSER)),
        410,
        EXPIRED,
    )
    .await;

    // The owner lifts it: the same code works again, its URLs live JOIP_LINK_TTL_S.
    let answer = shared(
        &env.app,
        &owner,
        id,
        &link_only(json!({ "expiresIn": null })),
    )
    .await;
    assert_eq!(code_of(&answer), code, "the code stays");
    assert_eq!(answer["linkExpiresAt"], Value::Null);
    let now = env.app.clock.now_millis();
    let body = viewed(&env.app, &code).await;
    assert_eq!(body["linkExpiresAt"], Value::Null);
    assert_url_within_link(&body, now, 300);

    // A new expiry counts from its own request; a long one leaves URLs at JOIP_LINK_TTL_S.
    let answer = shared(
        &env.app,
        &owner,
        id,
        &link_only(json!({ "expiresIn": 3600 })),
    )
    .await;
    assert_eq!(code_of(&answer), code);
    let later = rfc3339_millis(now + 3_600_000);
    assert_eq!(answer["linkExpiresAt"], later.as_str());
    let body = viewed(&env.app, &code).await;
    assert_eq!(body["linkExpiresAt"], later.as_str());
    assert_url_within_link(&body, now, 300);
    // Re-set by a share by path, from that request's instant.
    env.app.clock.advance(1_000);
    let mut by_path = link_only(json!({ "expiresIn": 120 }));
    by_path["filePath"] = json!(media.file_path);
    let (status, answer) = share_by_path(&env.app, &owner, &by_path).await;
    assert_eq!(status, 200, "{answer}");
    assert_share_keys(&answer);
    assert_eq!(code_of(&answer), code);
    assert_eq!(
        answer["linkExpiresAt"],
        rfc3339_millis(now + 121_000).as_str()
    );
    env.app.clock.advance(120_000);
    refused(
        &env,
        "after the by-path expiry",
        resolve_as(&env.app, &code, Some(BROWSER)),
        410,
        EXPIRED,
    )
    .await;
    assert_eq!(
        state_of(&env.app, &owner, id).await["shareCode"],
        code.as_str()
    );
}

#[tokio::test]
async fn view_limits_are_changed_and_cleared_by_the_owner_only() {
    let env = TestEnv::new().await;
    let owner = env.user(0, false).await;
    let other = env.user(0, false).await;
    let media = gif(&env, &owner).await;
    let id = media.media_id;

    // Another user's limits on a never-shared media: 404, and no code is made.
    refused(
        &env,
        "another user limits a never-shared media",
        share(&env.app, &other, id, &link_only(json!({ "maxViews": 5 }))),
        404,
        NOT_FOUND,
    )
    .await;
    assert_eq!(
        state_of(&env.app, &owner, id).await["shareCode"],
        Value::Null
    );

    let answer = shared(&env.app, &owner, id, &link_only(json!({ "maxViews": 1 }))).await;
    let code = code_of(&answer);
    assert_eq!(answer["maxViews"], 1);
    assert_eq!(viewed(&env.app, &code).await["viewsLeft"], 0);
    let gone = (410, json!({ "message": EXPIRED }));
    assert_eq!(resolve_as(&env.app, &code, Some(BROWSER)).await, gone);

    // Another user can't restore it.
    for body in [
        link_only(json!({ "maxViews": null })),
        link_only(json!({ "maxViews": 10 })),
    ] {
        refused(
            &env,
            &format!("another user shares with {body}"),
            share(&env.app, &other, id, &body),
            404,
            NOT_FOUND,
        )
        .await;
    }
    assert_eq!(resolve_as(&env.app, &code, Some(BROWSER)).await, gone);

    // The owner sets a new limit: N views from that request.
    let answer = shared(&env.app, &owner, id, &link_only(json!({ "maxViews": 2 }))).await;
    assert_eq!(
        (code_of(&answer), answer["maxViews"].clone()),
        (code.clone(), json!(2))
    );
    assert_eq!(viewed(&env.app, &code).await["viewsLeft"], 1);
    // A share without the field leaves the limit and its count as they are.
    let answer = shared(&env.app, &owner, id, &link_only(json!({}))).await;
    assert_eq!(
        (code_of(&answer), answer["maxViews"].clone()),
        (code.clone(), json!(2))
    );
    assert_eq!(answer["linkExpiresAt"], Value::Null);
    assert_eq!(
        viewed(&env.app, &code).await["viewsLeft"],
        0,
        "not restarted"
    );
    assert_eq!(resolve_as(&env.app, &code, Some(BROWSER)).await, gone);
    let state = state_of(&env.app, &owner, id).await;
    assert_eq!(
        (state["maxViews"].clone(), state["views"].clone()),
        (json!(2), json!(3))
    );

    // Cleared: unlimited again, the same code; views keep counting.
    let answer = shared(
        &env.app,
        &owner,
        id,
        &link_only(json!({ "maxViews": null })),
    )
    .await;
    assert_eq!(
        (code_of(&answer), answer["maxViews"].clone()),
        (code.clone(), Value::Null)
    );
    for _ in 0..2 {
        assert_eq!(viewed(&env.app, &code).await["viewsLeft"], Value::Null);
    }
    let state = state_of(&env.app, &owner, id).await;
    assert_eq!(
        (state["maxViews"].clone(), state["views"].clone()),
        (Value::Null, json!(5))
    );
    assert_eq!(state["shareCode"], code.as_str());

    // Both limits at once, then each cleared on its own.
    let answer = shared(
        &env.app,
        &owner,
        id,
        &link_only(json!({ "maxViews": 4, "expiresIn": 600 })),
    )
    .await;
    assert_eq!(answer["maxViews"], 4);
    let expires = answer["linkExpiresAt"].clone();
    assert!(expires.is_string(), "{answer}");
    let answer = shared(
        &env.app,
        &owner,
        id,
        &link_only(json!({ "maxViews": null })),
    )
    .await;
    assert_eq!(
        (answer["maxViews"].clone(), answer["linkExpiresAt"].clone()),
        (Value::Null, expires)
    );
    let answer = shared(
        &env.app,
        &owner,
        id,
        &link_only(json!({ "expiresIn": null })),
    )
    .await;
    assert_eq!(
        (answer["maxViews"].clone(), answer["linkExpiresAt"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(code_of(&answer), code);
}

// ---- validation ----------------------------------------------------------------------------

#[tokio::test]
async fn invalid_limits_are_refused_on_both_routes_and_change_nothing() {
    let mut env = TestEnv::new().await;
    env.app.clock = fixed_clock();
    let t0 = env.app.clock.now_millis();
    let owner = env.user(0, false).await;
    let fresh = gif(&env, &owner).await;
    let limited = gif(&env, &owner).await;
    let answer = shared(
        &env.app,
        &owner,
        limited.media_id,
        &link_only(json!({ "maxViews": 3, "expiresIn": 600 })),
    )
    .await;
    let limited_code = code_of(&answer);
    assert_eq!(viewed(&env.app, &limited_code).await["viewsLeft"], 2);
    let new_path = unrecorded_object(&env, &owner, "new.png").await;

    let bad_expires = [
        json!(0),
        json!(-1),
        json!(59),
        json!(31_536_001),
        json!(60.5),
        json!("60"),
        json!(true),
        json!([]),
        json!({}),
    ];
    let bad_views = [
        json!(0),
        json!(-1),
        json!(1_000_001),
        json!(1.5),
        json!("3"),
        json!(false),
        json!([3]),
    ];
    let mut cases: Vec<(Value, &str)> = Vec::new();
    for bad in &bad_expires {
        cases.push((json!({ "expiresIn": bad }), INVALID_EXPIRES_IN));
        // Judged first: with a bad maxViews too.
        cases.push((
            json!({ "expiresIn": bad, "maxViews": 0 }),
            INVALID_EXPIRES_IN,
        ));
    }
    for bad in &bad_views {
        cases.push((json!({ "maxViews": bad }), INVALID_MAX_VIEWS));
        cases.push((
            json!({ "expiresIn": 60, "maxViews": bad }),
            INVALID_MAX_VIEWS,
        ));
    }
    for (i, (limits, message)) in cases.iter().enumerate() {
        // Link-only and community shares alike (a community share would write the most).
        let mut body = limits.clone();
        body["shareToCommunity"] = json!(i % 2 == 0);
        for media in [&fresh, &limited] {
            refused(
                &env,
                &format!("share {} with {body}", media.media_id),
                share(&env.app, &owner, media.media_id, &body),
                400,
                message,
            )
            .await;
        }
        // A new path (no record may be made) and a recorded, limited one.
        for path in [&new_path, &limited.file_path] {
            let mut body = body.clone();
            body["filePath"] = json!(path);
            refused(
                &env,
                &format!("share by path {path} with {body}"),
                share_by_path(&env.app, &owner, &body),
                400,
                message,
            )
            .await;
        }
    }
    // Still never shared, still unrecorded, still as limited as before.
    let state = state_of(&env.app, &owner, fresh.media_id).await;
    assert_eq!(
        (state["shareCode"].clone(), state["views"].clone()),
        (Value::Null, json!(0))
    );
    assert_eq!(
        env.app
            .store
            .media_id_by_path(&new_path)
            .await
            .expect("read path"),
        None,
        "no record for a refused by-path share"
    );
    let state = state_of(&env.app, &owner, limited.media_id).await;
    assert_eq!(state["maxViews"], 3);
    assert_eq!(
        state["linkExpiresAt"],
        rfc3339_millis(t0 + 600_000).as_str()
    );
    assert_eq!(viewed(&env.app, &limited_code).await["viewsLeft"], 1);

    // Whole numbers written as floats, and the bounds, are accepted.
    let answer = shared(
        &env.app,
        &owner,
        fresh.media_id,
        &link_only(json!({ "expiresIn": 60.0, "maxViews": 3.0 })),
    )
    .await;
    assert_eq!(
        answer["linkExpiresAt"],
        rfc3339_millis(t0 + 60_000).as_str()
    );
    assert_eq!(answer["maxViews"].to_string(), "3", "an integer");
    for (expires_in, max_views) in [(60, 1), (31_536_000, 1_000_000)] {
        let answer = shared(
            &env.app,
            &owner,
            fresh.media_id,
            &link_only(json!({ "expiresIn": expires_in, "maxViews": max_views })),
        )
        .await;
        let at = rfc3339_millis(t0 + expires_in * 1000);
        assert_eq!(answer["linkExpiresAt"], at.as_str());
        assert_eq!(answer["maxViews"], max_views);
    }
    let mut body = link_only(json!({ "expiresIn": 60.0, "maxViews": 1000000.0 }));
    body["filePath"] = json!(new_path);
    let (status, answer) = share_by_path(&env.app, &owner, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_share_keys(&answer);
    assert_eq!(
        answer["linkExpiresAt"],
        rfc3339_millis(t0 + 60_000).as_str()
    );
    assert_eq!(answer["maxViews"].to_string(), "1000000");
}

// ---- the share routes' answers ----------------------------------------------------------------

#[tokio::test]
async fn every_share_answers_its_limits_and_absent_fields_keep_them() {
    let mut env = TestEnv::new().await;
    env.app.clock = fixed_clock();
    let t0 = env.app.clock.now_millis();
    let owner = env.user(0, false).await;
    let media = gif(&env, &owner).await;
    let id = media.media_id;

    // No limits: both null, on a link-only and a community share.
    let first = shared(&env.app, &owner, id, &link_only(json!({}))).await;
    assert_eq!(
        keys_of(&first),
        set(&["shareCode", "shareUrl", "linkExpiresAt", "maxViews"])
    );
    assert_eq!(
        (first["linkExpiresAt"].clone(), first["maxViews"].clone()),
        (Value::Null, Value::Null)
    );
    let code = code_of(&first);
    let community = shared(&env.app, &owner, id, &json!({})).await;
    assert_eq!(
        keys_of(&community),
        set(&[
            "shareCode",
            "shareUrl",
            "linkExpiresAt",
            "maxViews",
            "communityUrl",
            "communityMediaId"
        ])
    );
    assert_eq!(
        (
            community["linkExpiresAt"].clone(),
            community["maxViews"].clone()
        ),
        (Value::Null, Value::Null)
    );

    // Limits set with a community share, then shares without the fields keep them.
    let limits = json!({ "expiresIn": 3600, "maxViews": 7 });
    let set_now = shared(&env.app, &owner, id, &limits).await;
    let at = rfc3339_millis(t0 + 3_600_000);
    assert_eq!(
        (
            set_now["linkExpiresAt"].clone(),
            set_now["maxViews"].clone()
        ),
        (json!(at), json!(7))
    );
    env.app.clock.advance(5_000);
    for body in [
        json!({}),
        link_only(json!({})),
        json!({ "shareToCommunity": true }),
    ] {
        let again = shared(&env.app, &owner, id, &body).await;
        assert_eq!(code_of(&again), code, "{body}");
        assert_eq!(
            (again["linkExpiresAt"].clone(), again["maxViews"].clone()),
            (json!(at), json!(7)),
            "{body} keeps the limits"
        );
    }
    let by_path = [
        json!({ "filePath": media.file_path }),
        json!({ "filePath": media.file_path, "shareToCommunity": false }),
    ];
    for body in by_path {
        let (status, again) = share_by_path(&env.app, &owner, &body).await;
        assert_eq!(status, 200, "{again}");
        assert_share_keys(&again);
        assert_eq!(code_of(&again), code, "{body}");
        assert_eq!(
            (again["linkExpiresAt"].clone(), again["maxViews"].clone()),
            (json!(at), json!(7)),
            "{body} keeps the limits"
        );
    }
    let state = state_of(&env.app, &owner, id).await;
    assert_eq!(
        (state["linkExpiresAt"].clone(), state["maxViews"].clone()),
        (json!(at), json!(7))
    );

    // A new object shared by path: the first answer carries its limits (or nulls).
    let path = unrecorded_object(&env, &owner, "direct.png").await;
    let (status, answer) = share_by_path(
        &env.app,
        &owner,
        &json!({ "filePath": path, "shareToCommunity": false }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        keys_of(&answer),
        set(&["shareCode", "shareUrl", "linkExpiresAt", "maxViews"])
    );
    assert_eq!(
        (answer["linkExpiresAt"].clone(), answer["maxViews"].clone()),
        (Value::Null, Value::Null)
    );
    let path2 = unrecorded_object(&env, &owner, "limited.png").await;
    let (status, answer) = share_by_path(
        &env.app,
        &owner,
        &json!({ "filePath": path2, "shareToCommunity": false, "maxViews": 2, "expiresIn": 90 }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_share_keys(&answer);
    let now = env.app.clock.now_millis();
    assert_eq!(
        (answer["linkExpiresAt"].clone(), answer["maxViews"].clone()),
        (json!(rfc3339_millis(now + 90_000)), json!(2))
    );
}

// ---- the owner's view of a link -------------------------------------------------------------

#[tokio::test]
async fn the_owner_reads_the_link_state_and_views_across_shards() {
    let env = TestEnv::new().await;
    let owner = env.user(0, false).await;
    let other = env.user(0, false).await;
    let media = gif(&env, &owner).await;
    let id = media.media_id;

    let never = json!({
        "shareCode": null,
        "shareUrl": null,
        "linkExpiresAt": null,
        "maxViews": null,
        "views": 0,
        "shareToCommunity": false,
        "communityMediaId": null,
        "communityStatus": null
    });
    assert_eq!(state_of(&env.app, &owner, id).await, never);

    // A community share of a GIF: pending until the publisher makes its object.
    let answer = shared(&env.app, &owner, id, &json!({})).await;
    let code = code_of(&answer);
    let cid = answer["communityMediaId"].as_u64().expect("a community id");
    let mut expected = json!({
        "shareCode": code,
        "shareUrl": format!("/shared/media/{code}"),
        "linkExpiresAt": null,
        "maxViews": null,
        "views": 0,
        "shareToCommunity": true,
        "communityMediaId": cid,
        "communityStatus": "pending"
    });
    assert_eq!(state_of(&env.app, &owner, id).await, expected);
    assert_eq!(env.publish_staged().await, 1);
    expected["communityStatus"] = json!("ready");
    assert_eq!(state_of(&env.app, &owner, id).await, expected);

    // An unlimited link counts its views in shards, never on its own item.
    let (_, item_before) = view_items(&env, &code).await;
    let views = futures_util::future::join_all((0..40).map(|_| viewed(&env.app, &code))).await;
    assert!(views.iter().all(|v| v["viewsLeft"].is_null()));
    let (shards, item_after) = view_items(&env, &code).await;
    assert_eq!(
        item_after, item_before,
        "no write to the code's item per view"
    );
    assert!(shards.len() > 1, "views spread over shards: {shards:?}");
    let counted: u64 = shards.iter().map(|s| s["views"].as_u64().unwrap()).sum();
    assert_eq!(counted, 40);
    expected["views"] = json!(40);
    assert_eq!(state_of(&env.app, &owner, id).await, expected);

    // Limited views add to them; the limits show.
    let answer = shared(
        &env.app,
        &owner,
        id,
        &json!({ "maxViews": 5, "expiresIn": 600 }),
    )
    .await;
    for _ in 0..2 {
        viewed(&env.app, &code).await;
    }
    expected["views"] = json!(42);
    expected["maxViews"] = json!(5);
    expected["linkExpiresAt"] = answer["linkExpiresAt"].clone();
    assert_eq!(state_of(&env.app, &owner, id).await, expected);

    // Others, anonymous callers and bad ids.
    let id_text = id.to_string();
    let missing = (id.0 + 1000).to_string();
    for (caller, raw, status, message) in [
        (Some(&other), id_text.as_str(), 404, NOT_FOUND),
        (Some(&owner), missing.as_str(), 404, NOT_FOUND),
        (None, id_text.as_str(), 401, "Unauthorized"),
        (None, "abc", 401, "Unauthorized"),
        (Some(&other), "abc", 400, INVALID_ID),
        (Some(&owner), "0", 400, INVALID_ID),
        (Some(&owner), "-1", 400, INVALID_ID),
        (Some(&owner), "1.5", 400, INVALID_ID),
        (Some(&owner), "abc", 400, INVALID_ID),
        (Some(&owner), "01", 400, INVALID_ID),
        (Some(&owner), "9007199254740992", 400, INVALID_ID),
    ] {
        refused(
            &env,
            &format!("{caller:?} reads the link state of {raw}"),
            link_state(&env.app, caller, raw),
            status,
            message,
        )
        .await;
    }

    // Unshared: nothing left to show, the old code is gone.
    let (status, body) = unshare(&env.app, &owner, id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(state_of(&env.app, &owner, id).await, never);
    assert_eq!(
        resolve_as(&env.app, &code, Some(BROWSER)).await,
        (404, json!({ "message": LINK_NOT_FOUND }))
    );
}

// ---- revocation ---------------------------------------------------------------------------

#[tokio::test]
async fn revoked_codes_are_not_found_whatever_their_limits() {
    let mut env = TestEnv::new().await;
    env.app.clock = fixed_clock();
    let owner = env.user(0, false).await;
    let used_up = gif(&env, &owner).await;
    let expired = gif(&env, &owner).await;
    let live = gif(&env, &owner).await;
    let mut codes = Vec::new();
    for (media, limits) in [
        (&used_up, json!({ "maxViews": 1 })),
        (&expired, json!({ "expiresIn": 60 })),
        (&live, json!({ "maxViews": 5, "expiresIn": 3600 })),
    ] {
        let answer = shared(&env.app, &owner, media.media_id, &link_only(limits)).await;
        codes.push(code_of(&answer));
    }
    viewed(&env.app, &codes[0]).await;
    let gone = (410, json!({ "message": EXPIRED }));
    assert_eq!(resolve_as(&env.app, &codes[0], Some(BROWSER)).await, gone);
    env.app.clock.advance(60_000);
    assert_eq!(resolve_as(&env.app, &codes[1], Some(BROWSER)).await, gone);
    assert_eq!(viewed(&env.app, &codes[2]).await["viewsLeft"], 4);

    for (media, code) in [&used_up, &expired, &live].into_iter().zip(&codes) {
        let (status, body) = unshare(&env.app, &owner, media.media_id).await;
        assert_eq!(status, 200, "{body}");
        for agent in [Some(BROWSER), Some("Discordbot/2.0"), None] {
            refused(
                &env,
                &format!("{agent:?} resolves the revoked {code}"),
                resolve_as(&env.app, code, agent),
                404,
                LINK_NOT_FOUND,
            )
            .await;
        }
    }

    // Sharing again makes a new code with no limits unless asked; the old one stays not found.
    let answer = shared(&env.app, &owner, used_up.media_id, &link_only(json!({}))).await;
    assert_ne!(code_of(&answer), codes[0]);
    assert_eq!(
        (answer["linkExpiresAt"].clone(), answer["maxViews"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(
        viewed(&env.app, &code_of(&answer)).await["viewsLeft"],
        Value::Null
    );
    assert_eq!(
        resolve_as(&env.app, &codes[0], Some(BROWSER)).await,
        (404, json!({ "message": LINK_NOT_FOUND }))
    );
    let state = state_of(&env.app, &owner, used_up.media_id).await;
    assert_eq!(
        (state["shareCode"].clone(), state["views"].clone()),
        (answer["shareCode"].clone(), json!(1))
    );
}
