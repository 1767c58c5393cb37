//! Faults, every k. For each write path (share, re-share, link-only share, link limits, a
//! limited link's view, the report that hides a copy, a takedown, unshare, share by path, the
//! watermark publish, save) a clean run first counts the DynamoDB and S3 calls the path
//! makes; then, for every k from 1 to that count, the k-th call fails, once before it lands
//! (nothing applied) and once after (applied, the answer lost). Every faulted request either
//! still answers its documented result, or answers its documented 500 and completes when retried
//! (the client sends the same request again, the queue redelivers the message; for a save, the
//! reaper first finishes what the copier left): the documented result, charged once, and every
//! record, marker, tag, code, save, session and object agreeing, nothing orphaned.

use crate::support;

use crate::support::handle_batch;
use futures_util::FutureExt;
use joip::domain::{now_millis, MediaId, MediaSource, SessionId, UserId};
use joip::routes::{save_community_session, share_media, share_media_by_path, unshare_media};
use joip::service::media::upload_media;
use joip::service::save_session::{reap, Deadline};
use joip::store::items::SaveState;
use joip::App;
use serde_json::{json, Value};
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use support::{
    community_session, read, snapshot_of, upload, without_counters, Event, FailNth, Fault, Stored,
    TestEnv,
};

const PHOTO: &[u8] = include_bytes!("../../../tools/demo/demo-photo.jpg");
const PNG: &[u8] = include_bytes!("../../../tools/demo/demo-upload.png");
const LOOP: &[u8] = include_bytes!("../../../tools/demo/demo-loop.gif");
const SHARE_ROUTE: &str = "/api/media/{id}/share";
const SHARE_FAILED: [&str; 2] = ["Failed to share media", "Failed to create share link"];
/// The price of a save in these runs.
const PRICE: i64 = 3;
/// Credits each saver starts with.
const CREDITS: i64 = 10;

/// Logs go to the test's output (shown when it fails).
fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("joip=warn")
        .try_init();
}

// ---- the sweep --------------------------------------------------------------------------------

/// One write path: its subject, its request and its documented result.
trait WritePath {
    type Fixture;

    /// Its name in reports.
    fn name(&self) -> String;

    /// What every run shares (canonical tags, pricing, a source session).
    async fn prepare(&mut self, _env: &TestEnv) {}

    /// A fresh subject for one run (through the fault-free App).
    async fn setup(&self, env: &TestEnv) -> Self::Fixture;

    /// The request (or delivery) through `app`: status and body.
    async fn send(&self, app: &App, fx: &Self::Fixture) -> (u16, Value);

    /// Whether `body` is one of the path's documented 500 bodies.
    fn documented_failure(&self, body: &Value) -> bool {
        SHARE_FAILED
            .iter()
            .any(|m| *body == json!({ "message": m }))
    }

    /// What the documented semantics do about a failed request without the client (the reaper).
    async fn settle(&self, _env: &TestEnv, _fx: &Self::Fixture) {}

    /// Asserts the documented result: the answer, and what is stored now.
    async fn check(&self, env: &TestEnv, fx: &Self::Fixture, answer: &Value, what: &str);

    /// The App a run goes through, with `faults` on both its clients.
    fn app(&self, env: &TestEnv, faults: FailNth) -> App {
        env.app_with_interceptor(faults)
    }
}

/// Runs `path` clean, then with each of its calls failing in each way, and prints what each run
/// came to; fails listing every run that did not end in the documented result.
async fn sweep<P: WritePath>(mut path: P) {
    logs();
    let started = std::time::Instant::now();
    let mut env = TestEnv::new().await;
    path.prepare(&env).await;
    let counter = FailNth::counter();
    let fx = path.setup(&env).await;
    let (status, answer) = path.send(&path.app(&env, counter.clone()), &fx).await;
    let name = path.name();
    assert_eq!(status, 200, "{name}, clean: {answer}");
    path.check(&env, &fx, &answer, &format!("{name}, clean"))
        .await;
    let calls = counter.calls();
    let mut report = format!("{name}: {} calls: {}\n", calls.len(), calls.join(", "));
    let mut failed = Vec::new();
    for fault in [Fault::BeforeSend, Fault::AnswerLost] {
        for k in 1..=calls.len() {
            let faults = FailNth::new(k, fault);
            let run = AssertUnwindSafe(faulted(&path, &env, faults.clone())).catch_unwind();
            let call = |f: &FailNth| f.injected().unwrap_or_else(|| format!("{k} (not reached)"));
            let outcome = match run.await {
                Ok(outcome) => outcome,
                Err(panic) => {
                    let why = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    failed.push(why.clone());
                    // What it left would fail every later run: they start on a clean slate.
                    env = TestEnv::new().await;
                    path.prepare(&env).await;
                    format!("FAILED: {}", why.lines().last().unwrap_or_default().trim())
                }
            };
            report.push_str(&format!("  {:<24} {fault:<10?} {outcome}\n", call(&faults)));
        }
    }
    report.push_str(&format!(
        "  ({} runs in {:.1?})",
        2 * calls.len(),
        started.elapsed()
    ));
    println!("{report}");
    assert!(failed.is_empty(), "{report}\n{}", failed.join("\n"));
}

/// One run of `path` with `faults`: what it came to (panics if not the documented result).
async fn faulted<P: WritePath>(path: &P, env: &TestEnv, faults: FailNth) -> String {
    let fx = path.setup(env).await;
    let before = without_counters(&snapshot_of(&env.app).await);
    let (status, answer) = path.send(&path.app(env, faults.clone()), &fx).await;
    let call = faults.injected().unwrap_or_else(|| "none".into());
    let what = format!("{}, call {call} failing {:?}", path.name(), faults.fault);
    match status {
        200 => {
            path.check(env, &fx, &answer, &what).await;
            "200, the documented result".to_string()
        }
        500 => {
            assert!(
                path.documented_failure(&answer),
                "{what}: an undocumented 500 body {answer}"
            );
            let left = without_counters(&snapshot_of(&env.app).await);
            let partial = if left == before {
                "nothing changed".to_string()
            } else {
                let problems = Stored::from_snapshot(&left, &env.app).violations();
                if problems.is_empty() {
                    "a consistent change".to_string()
                } else {
                    format!("partial ({})", problems.join("; "))
                }
            };
            path.settle(env, &fx).await;
            let (status, retried) = path.send(&path.app(env, FailNth::counter()), &fx).await;
            assert_eq!(status, 200, "{what}: the retry answered {retried}");
            path.check(env, &fx, &retried, &format!("{what}, retried"))
                .await;
            format!("500, {partial}; the retry completed")
        }
        other => panic!("{what}: {other} {answer}"),
    }
}

/// Asserts nothing stored disagrees; the state, for further checks.
async fn consistent(env: &TestEnv, what: &str) -> Stored {
    let stored = Stored::read(&env.app).await;
    let problems = stored.violations();
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
    stored
}

// ---- requests -----------------------------------------------------------------------------------

async fn post_share(app: &App, owner: &UserId, id: MediaId, body: &Value) -> (u16, Value) {
    let req = Event::new("POST", SHARE_ROUTE, &format!("/api/media/{id}/share"))
        .path_params(json!({ "id": id.to_string() }))
        .caller(owner.as_str())
        .body(&body.to_string())
        .request();
    read(Box::pin(share_media::handle(app, req)).await)
}

async fn delete_share(app: &App, owner: &UserId, id: MediaId) -> (u16, Value) {
    let req = Event::new("DELETE", SHARE_ROUTE, &format!("/api/media/{id}/share"))
        .path_params(json!({ "id": id.to_string() }))
        .caller(owner.as_str())
        .request();
    read(Box::pin(unshare_media::handle(app, req)).await)
}

fn community(tags: &[&str]) -> Value {
    json!({ "shareToCommunity": true, "tags": tags, "policyAgreed": true })
}

async fn owner_with(env: &TestEnv, name: &str, bytes: &[u8]) -> (UserId, MediaId) {
    let owner = env.user(0, false).await;
    let media = upload_media(
        &env.app,
        &owner,
        name,
        bytes.to_vec(),
        MediaSource::Upload,
        None,
    )
    .await
    .expect("upload");
    (owner, media.media_id)
}

/// Shares `id` to the community with `tags` (fault-free): (code, community id, public key).
async fn shared(
    env: &TestEnv,
    owner: &UserId,
    id: MediaId,
    tags: &[&str],
) -> (String, u64, String) {
    let (status, answer) = post_share(&env.app, owner, id, &community(tags)).await;
    assert_eq!(status, 200, "{answer}");
    let cid = answer["communityMediaId"]
        .as_u64()
        .expect("communityMediaId");
    let record = env.app.store.community_media(cid).await.unwrap().unwrap();
    (
        answer["shareCode"].as_str().unwrap().to_string(),
        cid,
        record.key,
    )
}

/// Asserts a community share's documented answer and what it stored: one record for the media
/// with exactly `tags`, in state `status`, behind a live code. The code and community id.
fn assert_in_community(
    stored: &Stored,
    what: &str,
    id: MediaId,
    answer: &Value,
    tags: &[&str],
    status: &str,
) -> (String, u64) {
    let keys: Vec<&str> = answer
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "communityMediaId",
            "communityUrl",
            "linkExpiresAt",
            "maxViews",
            "shareCode",
            "shareUrl"
        ],
        "{what}: {answer}"
    );
    let code = answer["shareCode"].as_str().unwrap().to_string();
    let uuid = uuid::Uuid::parse_str(&code).expect("a UUID");
    assert_eq!(uuid.get_version_num(), 4, "{what}");
    assert_eq!(
        answer["shareUrl"],
        format!("/shared/media/{code}"),
        "{what}"
    );
    let cid = answer["communityMediaId"].as_u64().unwrap();
    let media = &stored.media[&id.0];
    assert_eq!(
        media["shareCode"],
        code.as_str(),
        "{what}: the answered code is live"
    );
    assert_eq!(media["communityMediaId"], cid, "{what}");
    let records = stored.records_of(id.0);
    assert_eq!(
        records.len(),
        1,
        "{what}: one community record: {records:?}"
    );
    let record = records[0].1;
    assert_eq!(*records[0].0, cid, "{what}");
    assert_eq!(record["tags"], json!(tags), "{what}");
    assert_eq!(record["status"], status, "{what}");
    assert_eq!(record["url"], answer["communityUrl"], "{what}");
    (code, cid)
}

// ---- the paths -----------------------------------------------------------------------------------

/// `POST /api/media/{id}/share` of media never shared: an upload image (staged for the
/// watermark function) or a GIF (published as is).
struct ShareNew {
    file: &'static str,
    bytes: &'static [u8],
    status: &'static str,
}

impl WritePath for ShareNew {
    type Fixture = (UserId, MediaId);

    fn name(&self) -> String {
        format!("share {} (new)", self.file)
    }

    async fn prepare(&mut self, env: &TestEnv) {
        env.app.store.put_tag("red", "Red").await.unwrap();
    }

    async fn setup(&self, env: &TestEnv) -> Self::Fixture {
        owner_with(env, self.file, self.bytes).await
    }

    async fn send(&self, app: &App, (owner, id): &Self::Fixture) -> (u16, Value) {
        post_share(app, owner, *id, &community(&["red"])).await
    }

    async fn check(&self, env: &TestEnv, (_, id): &Self::Fixture, answer: &Value, what: &str) {
        let stored = consistent(env, what).await;
        assert_in_community(&stored, what, *id, answer, &["red"], self.status);
    }
}

/// `POST /api/media/{id}/share` again with other tags: the same record, retagged.
struct Retag;

impl WritePath for Retag {
    type Fixture = (UserId, MediaId, String, u64);

    fn name(&self) -> String {
        "re-share with other tags".into()
    }

    async fn prepare(&mut self, env: &TestEnv) {
        for tag in ["red", "green", "blue"] {
            env.app.store.put_tag(tag, tag).await.unwrap();
        }
    }

    async fn setup(&self, env: &TestEnv) -> Self::Fixture {
        let (owner, id) = owner_with(env, "loop.gif", LOOP).await;
        let (code, cid, _) = shared(env, &owner, id, &["red", "green"]).await;
        assert_eq!(env.publish_staged().await, 1);
        (owner, id, code, cid)
    }

    async fn send(&self, app: &App, (owner, id, ..): &Self::Fixture) -> (u16, Value) {
        post_share(app, owner, *id, &community(&["green", "blue"])).await
    }

    async fn check(&self, env: &TestEnv, fx: &Self::Fixture, answer: &Value, what: &str) {
        let (_, id, code, cid) = fx;
        let stored = consistent(env, what).await;
        let now = assert_in_community(&stored, what, *id, answer, &["green", "blue"], "ready");
        assert_eq!(
            (&now.0, now.1),
            (code, *cid),
            "{what}: same code, same record"
        );
    }
}

/// `POST /api/media/{id}/share` with `shareToCommunity: false` (keep the link, drop the copy),
/// or `DELETE /api/media/{id}/share` (drop both).
struct Unshare {
    delete: bool,
}

impl WritePath for Unshare {
    type Fixture = (UserId, MediaId, String, String);

    fn name(&self) -> String {
        if self.delete {
            "unshare (DELETE)".into()
        } else {
            "link-only share (shareToCommunity false)".into()
        }
    }

    fn documented_failure(&self, body: &Value) -> bool {
        let message = if self.delete {
            "Failed to unshare media"
        } else {
            "Failed to share media"
        };
        *body == json!({ "message": message })
            || (!self.delete
                && SHARE_FAILED
                    .iter()
                    .any(|m| *body == json!({ "message": m })))
    }

    async fn prepare(&mut self, env: &TestEnv) {
        env.app.store.put_tag("red", "Red").await.unwrap();
    }

    async fn setup(&self, env: &TestEnv) -> Self::Fixture {
        let (owner, id) = owner_with(env, "loop.gif", LOOP).await;
        let (code, _, key) = shared(env, &owner, id, &["red"]).await;
        assert_eq!(
            env.publish_staged().await,
            1,
            "public before it is taken back"
        );
        (owner, id, code, key)
    }

    async fn send(&self, app: &App, (owner, id, ..): &Self::Fixture) -> (u16, Value) {
        if self.delete {
            delete_share(app, owner, *id).await
        } else {
            post_share(app, owner, *id, &json!({ "shareToCommunity": false })).await
        }
    }

    async fn check(&self, env: &TestEnv, fx: &Self::Fixture, answer: &Value, what: &str) {
        let (_, id, code, key) = fx;
        let stored = consistent(env, what).await;
        let media = &stored.media[&id.0];
        if self.delete {
            assert_eq!(*answer, json!({ "success": true }), "{what}");
            assert_eq!(media["shareCode"], Value::Null, "{what}: the code is gone");
            assert!(!stored.codes.contains_key(code), "{what}: its item too");
        } else {
            let link = json!({
                "shareCode": code,
                "shareUrl": format!("/shared/media/{code}"),
                "linkExpiresAt": null,
                "maxViews": null,
            });
            assert_eq!(*answer, link, "{what}: the same code");
            assert_eq!(media["shareCode"], code.as_str(), "{what}");
        }
        assert_eq!(media["shareToCommunity"], false, "{what}");
        assert!(
            stored.records_of(id.0).is_empty(),
            "{what}: no community record"
        );
        assert!(
            !stored.public.contains(key),
            "{what}: the public object is gone"
        );
    }
}

/// `POST /api/media/{id}/share` with link limits on a media that has a code: the same code,
/// limited (its view count restarted).
struct LimitLink;

impl WritePath for LimitLink {
    type Fixture = (UserId, MediaId, String);

    fn name(&self) -> String {
        "limit a link (expiresIn, maxViews)".into()
    }

    async fn setup(&self, env: &TestEnv) -> Self::Fixture {
        let (owner, id) = owner_with(env, "loop.gif", LOOP).await;
        let body = json!({ "shareToCommunity": false, "maxViews": 9 });
        let (status, answer) = post_share(&env.app, &owner, id, &body).await;
        assert_eq!(status, 200, "{answer}");
        (owner, id, answer["shareCode"].as_str().unwrap().to_string())
    }

    async fn send(&self, app: &App, (owner, id, _): &Self::Fixture) -> (u16, Value) {
        let body = json!({ "shareToCommunity": false, "expiresIn": 3600, "maxViews": 2 });
        post_share(app, owner, *id, &body).await
    }

    async fn check(&self, env: &TestEnv, fx: &Self::Fixture, answer: &Value, what: &str) {
        let (_, id, code) = fx;
        let stored = consistent(env, what).await;
        assert_eq!(stored.media[&id.0]["shareCode"], code.as_str(), "{what}");
        assert_eq!(answer["shareCode"], code.as_str(), "{what}: the same code");
        assert_eq!(answer["maxViews"], 2, "{what}");
        let link = env.app.store.share_code(code).await.unwrap().expect("live");
        let expires = link.expires_at_ms.expect("an expiry");
        assert_eq!(
            answer["linkExpiresAt"],
            joip::domain::rfc3339_millis(expires),
            "{what}"
        );
        assert_eq!((link.max_views, link.views_used), (Some(2), 0), "{what}");
    }
}

/// `GET /api/shared/media/{code}` of a limited link: exactly one view spent per answered URL,
/// whichever call fails (an attempt whose answer was lost is found applied by its retry).
struct SpendView;

impl WritePath for SpendView {
    type Fixture = String;

    fn name(&self) -> String {
        "resolve a limited link (one view)".into()
    }

    fn documented_failure(&self, body: &Value) -> bool {
        *body == json!({ "message": "Failed to fetch shared media" })
    }

    async fn setup(&self, env: &TestEnv) -> Self::Fixture {
        let (owner, id) = owner_with(env, "loop.gif", LOOP).await;
        let body = json!({ "shareToCommunity": false, "maxViews": 2 });
        let (status, answer) = post_share(&env.app, &owner, id, &body).await;
        assert_eq!(status, 200, "{answer}");
        answer["shareCode"].as_str().unwrap().to_string()
    }

    async fn send(&self, app: &App, code: &Self::Fixture) -> (u16, Value) {
        let path = format!("/api/shared/media/{code}");
        let req = Event::new("GET", "/api/shared/media/{code}", &path)
            .path_params(json!({ "code": code }))
            .request();
        read(Box::pin(joip::routes::resolve_shared_media::handle(app, req)).await)
    }

    async fn check(&self, env: &TestEnv, code: &Self::Fixture, answer: &Value, what: &str) {
        consistent(env, what).await;
        assert!(answer["url"].is_string(), "{what}: {answer}");
        assert_eq!(answer["viewsLeft"], 1, "{what}");
        let link = env.app.store.share_code(code).await.unwrap().expect("live");
        assert_eq!(
            (link.views_used, link.views),
            (1, 1),
            "{what}: one view spent"
        );
    }
}

/// The report that hides a community copy (its third reporter): counted, the copy held, hidden,
/// unpublished and invalidated, whichever call fails; a failed report completes when sent again.
struct ReportHides;

impl WritePath for ReportHides {
    type Fixture = (UserId, u64, String);

    fn name(&self) -> String {
        "the report that hides a copy".into()
    }

    fn documented_failure(&self, body: &Value) -> bool {
        *body == json!({ "message": "Failed to report media" })
    }

    async fn prepare(&mut self, env: &TestEnv) {
        env.app.store.put_tag("red", "Red").await.unwrap();
    }

    async fn setup(&self, env: &TestEnv) -> Self::Fixture {
        let (owner, id) = owner_with(env, "loop.gif", LOOP).await;
        let (_, cid, key) = shared(env, &owner, id, &["red"]).await;
        assert_eq!(env.publish_staged().await, 1);
        for _ in 0..2 {
            let reporter = env.user(0, false).await;
            assert_eq!(report(&env.app, &reporter, cid).await.0, 200);
        }
        (env.user(0, false).await, cid, key)
    }

    async fn send(&self, app: &App, (reporter, cid, _): &Self::Fixture) -> (u16, Value) {
        report(app, reporter, *cid).await
    }

    async fn check(&self, env: &TestEnv, fx: &Self::Fixture, answer: &Value, what: &str) {
        let (_, cid, key) = fx;
        assert_eq!(*answer, json!({ "success": true }), "{what}");
        let stored = consistent(env, what).await;
        let record = &stored.records[cid];
        assert_eq!(record["status"], "hidden", "{what}");
        assert!(!stored.public.contains(key), "{what}: unpublished");
        assert!(!stored.edge.contains(key), "{what}: off the edge");
        let held = record["heldKey"].as_str().expect("a held key");
        assert!(stored.held.contains(held), "{what}: held for review");
    }
}

async fn report(app: &App, reporter: &UserId, cid: u64) -> (u16, Value) {
    let path = format!("/api/community/media/{cid}/report");
    let req = Event::new(
        "POST",
        "/api/community/media/{communityMediaId}/report",
        &path,
    )
    .path_params(json!({ "communityMediaId": cid.to_string() }))
    .caller(reporter.as_str())
    .body(r#"{"reason":"spam"}"#)
    .request();
    read(Box::pin(joip::routes::report_community_media::handle(app, req)).await)
}

/// `joip-admin community takedown` of a published copy: removed, unpublished, its hash
/// blocklisted, whichever call fails (the operator runs it again after a failure).
struct TakeDown;

impl WritePath for TakeDown {
    type Fixture = (u64, String);

    fn name(&self) -> String {
        "take a copy down".into()
    }

    fn documented_failure(&self, body: &Value) -> bool {
        body["error"].is_string()
    }

    async fn prepare(&mut self, env: &TestEnv) {
        env.app.store.put_tag("red", "Red").await.unwrap();
    }

    async fn setup(&self, env: &TestEnv) -> Self::Fixture {
        // A picture of its own each run: a takedown blocks the picture for every later share.
        let (owner, id) = owner_with(env, "noise.png", &noise()).await;
        let (_, cid, key) = shared(env, &owner, id, &["red"]).await;
        let published = env.publish_staged().await;
        let record = env.app.store.community_media(cid).await.unwrap().unwrap();
        assert_eq!(
            published, 1,
            "{:?} {:?}",
            record.status, record.content_hash
        );
        (cid, key)
    }

    async fn send(&self, app: &App, (cid, _): &Self::Fixture) -> (u16, Value) {
        match joip::service::moderation::take_down(app, *cid, "confirmed").await {
            Ok(_) => (200, json!({ "status": "removed" })),
            Err(e) => (500, json!({ "error": joip::error::Report(&e).to_string() })),
        }
    }

    async fn check(&self, env: &TestEnv, (cid, key): &Self::Fixture, _: &Value, what: &str) {
        let stored = consistent(env, what).await;
        assert_eq!(stored.records[cid]["status"], "removed", "{what}");
        assert!(
            !stored.public.contains(key) && !stored.edge.contains(key),
            "{what}"
        );
        let hash = stored.records[cid]["contentHash"].as_str().expect("hash");
        let listed = joip::service::moderation::blocklist(&env.app)
            .await
            .unwrap();
        let entries = listed.iter().filter(|b| b.hash == hash).count();
        assert_eq!(entries, 1, "{what}: blocklisted once");
    }
}

/// A PNG of a random 6 x 4 grid of colours: a picture no other run shares.
fn noise() -> Vec<u8> {
    let seed = uuid::Uuid::new_v4().as_bytes().to_vec();
    let img = image::RgbImage::from_fn(96, 64, |x, y| {
        let cell = ((y / 16) * 6 + x / 16) as usize;
        let v = seed[cell % 16].wrapping_mul(cell as u8 + 1);
        image::Rgb([v, v.wrapping_mul(7), !v])
    });
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("png");
    png
}

/// `POST /api/user/media/share` of an object uploaded straight to S3 (no record yet).
struct ShareByPath;

impl WritePath for ShareByPath {
    type Fixture = (UserId, String);

    fn name(&self) -> String {
        "share by path (unrecorded upload)".into()
    }

    async fn prepare(&mut self, env: &TestEnv) {
        env.app.store.put_tag("red", "Red").await.unwrap();
    }

    async fn setup(&self, env: &TestEnv) -> Self::Fixture {
        let owner = env.user(0, false).await;
        let path = format!("users/{owner}/direct/photo.png");
        let bucket = &env.app.config.user_media_bucket;
        env.app
            .blob
            .put(bucket, &path, PNG.to_vec(), "image/png")
            .await
            .unwrap();
        (owner, path)
    }

    async fn send(&self, app: &App, (owner, path): &Self::Fixture) -> (u16, Value) {
        let mut body = community(&["red"]);
        body["filePath"] = json!(path);
        let req = Event::new("POST", "/api/user/media/share", "/api/user/media/share")
            .caller(owner.as_str())
            .body(&body.to_string())
            .request();
        read(Box::pin(share_media_by_path::handle(app, req)).await)
    }

    async fn check(&self, env: &TestEnv, (_, path): &Self::Fixture, answer: &Value, what: &str) {
        let stored = consistent(env, what).await;
        let id = *stored.paths.get(path).expect("a media record for the path");
        let records: Vec<_> = stored
            .media
            .values()
            .filter(|m| m["filePath"] == path.as_str())
            .collect();
        assert_eq!(records.len(), 1, "{what}: one media record for the path");
        assert_in_community(&stored, what, MediaId(id), answer, &["red"], "pending");
    }
}

/// The publisher's delivery of a staged upload image (stamped) or a handed-over GIF (copied as
/// is) (`handle_batch`): 200 when the batch reports no failure, 500 when it asks for a
/// redelivery.
struct Watermark {
    file: &'static str,
    bytes: &'static [u8],
}

impl WritePath for Watermark {
    type Fixture = (MediaId, u64, String);

    fn name(&self) -> String {
        format!("publish {} (SQS delivery)", self.file)
    }

    fn documented_failure(&self, body: &Value) -> bool {
        body.is_array()
    }

    async fn prepare(&mut self, env: &TestEnv) {
        env.app.store.put_tag("red", "Red").await.unwrap();
    }

    async fn setup(&self, env: &TestEnv) -> Self::Fixture {
        let (owner, id) = owner_with(env, self.file, self.bytes).await;
        let (_, cid, _) = shared(env, &owner, id, &["red"]).await;
        let record = env.app.store.community_media(cid).await.unwrap().unwrap();
        (id, cid, record.staging_key.expect("staged"))
    }

    async fn send(&self, app: &App, (.., key): &Self::Fixture) -> (u16, Value) {
        let body = crate::support::s3_notification(key);
        let event = json!({ "Records": [{ "messageId": "m-1", "body": body.to_string() }] });
        match handle_batch(app, &event).await {
            failures if failures.is_empty() => (200, Value::Null),
            failures => (500, json!(failures)),
        }
    }

    async fn check(&self, env: &TestEnv, fx: &Self::Fixture, _: &Value, what: &str) {
        let (id, cid, staging) = fx;
        let stored = consistent(env, what).await;
        let record = &stored.records[cid];
        assert_eq!(record["status"], "ready", "{what}");
        assert_eq!(record["mediaId"], id.0, "{what}");
        let key = record["key"].as_str().unwrap();
        assert!(stored.public.contains(key), "{what}: published");
        assert!(!stored.staging.contains(staging), "{what}: staging removed");
        let published = env
            .app
            .blob
            .get(&env.app.config.general_bucket, key)
            .await
            .unwrap();
        if self.bytes == PHOTO {
            assert_ne!(published, PHOTO, "{what}: the public copy is stamped");
        } else {
            assert_eq!(published, self.bytes, "{what}: copied as is");
        }
    }
}

/// A delivery to the publisher (faulted) racing the owner's unshare (`DELETE`, fault-free), which
/// starts once the publisher's k-th call is under way: whatever either does first, once the
/// message is redelivered until it succeeds and the unpublish sweep has run, nothing of the copy
/// is left: no record, no public object in the bucket or at the edge, no staged object, no owed
/// removal.
struct PublishRacingUnshare {
    file: &'static str,
    bytes: &'static [u8],
    runs: std::sync::atomic::AtomicUsize,
}

/// The watermark queue's maxReceiveCount (template.yaml).
const MAX_RECEIVES: usize = 5;

impl WritePath for PublishRacingUnshare {
    type Fixture = (UserId, MediaId, u64, String, String);

    fn name(&self) -> String {
        format!("publish {} racing an unshare", self.file)
    }

    fn documented_failure(&self, body: &Value) -> bool {
        body.is_array()
    }

    async fn prepare(&mut self, env: &TestEnv) {
        env.app.store.put_tag("red", "Red").await.unwrap();
    }

    async fn setup(&self, env: &TestEnv) -> Self::Fixture {
        let (owner, id) = owner_with(env, self.file, self.bytes).await;
        let (_, cid, key) = shared(env, &owner, id, &["red"]).await;
        let record = env.app.store.community_media(cid).await.unwrap().unwrap();
        let staged = record.staging_key.expect("staged");
        (owner, id, cid, key, staged)
    }

    async fn send(&self, app: &App, (owner, id, _, _, staged): &Self::Fixture) -> (u16, Value) {
        let body = crate::support::s3_notification(staged);
        let event = json!({ "Records": [{ "messageId": "m-1", "body": body.to_string() }] });
        // The queue delivers until the publisher reports no failure (up to its maxReceiveCount):
        // a delivery that meets the unshare half done is told to come back.
        let deliveries = async {
            let mut failures = Vec::new();
            for _ in 0..MAX_RECEIVES {
                failures = handle_batch(app, &event).await;
                if failures.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            failures
        };
        // The unshare, fault-free, starts at a different point of the publisher's work in each
        // run.
        let run = self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let plain = App::new(
            app.config.clone(),
            &support::sdk_config(&support::endpoint()).await,
        );
        let unshare = async {
            tokio::time::sleep(Duration::from_millis(10 * (run % 7) as u64)).await;
            delete_share(&plain, owner, *id).await
        };
        let (failures, (status, body)) = tokio::join!(deliveries, unshare);
        assert_eq!(status, 200, "the unshare answered {body}");
        match failures {
            failures if failures.is_empty() => (200, Value::Null),
            failures => (500, json!(failures)),
        }
    }

    async fn check(&self, env: &TestEnv, fx: &Self::Fixture, _: &Value, what: &str) {
        let (_, id, cid, key, staged) = fx;
        // Stored::read finishes owed removals first, as the reaper's sweep would.
        let stored = consistent(env, what).await;
        assert!(!stored.records.contains_key(cid), "{what}: no record");
        assert!(stored.records_of(id.0).is_empty(), "{what}");
        assert!(!stored.public.contains(key), "{what}: nothing public");
        assert!(!stored.staging.contains(staged), "{what}: nothing staged");
    }
}

/// `POST /api/community/sessions/{id}/save` of a two-photo community session by a new user.
#[derive(Default)]
struct Save {
    source: Option<SessionId>,
}

impl Save {
    fn source(&self) -> SessionId {
        self.source.expect("prepared")
    }
}

impl WritePath for Save {
    type Fixture = UserId;

    fn name(&self) -> String {
        "save a community session".into()
    }

    fn documented_failure(&self, body: &Value) -> bool {
        *body == json!({ "message": "Failed to save session" })
    }

    fn app(&self, env: &TestEnv, faults: FailNth) -> App {
        let mut app = env.app_with_interceptor(faults);
        // Long enough that a clean run never renews it (a renewal would shift the calls), short
        // enough that a lease a failed copier kept lapses soon.
        app.config.save_lease_ms = 3_000;
        app
    }

    async fn prepare(&mut self, env: &TestEnv) {
        env.app
            .store
            .put_pricing("session_create", PRICE, false)
            .await
            .unwrap();
        let owner = env.user(0, false).await;
        let media = vec![
            upload("a.jpg", PHOTO.to_vec(), Some("first")),
            upload("b.png", PNG.to_vec(), None),
        ];
        self.source = Some(community_session(&env.app, &owner, "two", media).await);
    }

    async fn setup(&self, env: &TestEnv) -> Self::Fixture {
        env.user(CREDITS, false).await
    }

    async fn send(&self, app: &App, user: &Self::Fixture) -> (u16, Value) {
        let id = self.source();
        let req = Event::new(
            "POST",
            "/api/community/sessions/{id}/save",
            &format!("/api/community/sessions/{id}/save"),
        )
        .path_params(json!({ "id": id.to_string() }))
        .caller(user.as_str())
        .request();
        read(Box::pin(save_community_session::handle(app, req)).await)
    }

    /// The reaper finishes (or rolls back and refunds) a save its copier left `copying`, once
    /// the copier's lease has lapsed.
    async fn settle(&self, env: &TestEnv, user: &Self::Fixture) {
        let reaper = self.app(env, FailNth::counter());
        for _ in 0..100 {
            let record = env
                .app
                .store
                .save_record(user, self.source())
                .await
                .unwrap();
            match record {
                Some(r) if r.state == SaveState::Copying => {
                    if r.lease_until_ms < now_millis() {
                        reap(&reaper, Deadline::new(None, 60_000)).await.unwrap();
                    } else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                _ => return,
            }
        }
        panic!("the reaper never settled the save");
    }

    async fn check(&self, env: &TestEnv, user: &Self::Fixture, answer: &Value, what: &str) {
        let stored = consistent(env, what).await;
        assert_eq!(answer["success"], true, "{what}: {answer}");
        assert!(answer["reused"].is_boolean(), "{what}: {answer}");
        let session = answer["sessionId"].as_u64().expect("sessionId");
        let saves: Vec<_> = stored
            .saves
            .iter()
            .filter(|s| s["userId"] == user.as_str())
            .collect();
        assert_eq!(saves.len(), 1, "{what}: one save record");
        assert_eq!(saves[0]["state"], "ready", "{what}");
        assert_eq!(saves[0]["sessionId"], session, "{what}");
        assert_eq!(
            stored.users[user.as_str()]["credits"],
            CREDITS - PRICE,
            "{what}: charged exactly once"
        );
        let copied = stored.session_media.get(&session).map_or(0, Vec::len);
        assert_eq!(copied, 2, "{what}: every media of the source");
    }
}

// ---- the tests -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_an_upload_image_survives_any_one_failing_call() {
    sweep(ShareNew {
        file: "photo.png",
        bytes: PNG,
        status: "pending",
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_a_gif_survives_any_one_failing_call() {
    sweep(ShareNew {
        file: "loop.gif",
        bytes: LOOP,
        status: "pending",
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resharing_with_other_tags_survives_any_one_failing_call() {
    sweep(Retag).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_only_share_survives_any_one_failing_call() {
    sweep(Unshare { delete: false }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limiting_a_link_survives_any_one_failing_call() {
    sweep(LimitLink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_view_is_spent_once_whichever_call_fails() {
    sweep(SpendView).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_that_hides_a_copy_survives_any_one_failing_call() {
    sweep(ReportHides).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takedown_survives_any_one_failing_call() {
    sweep(TakeDown).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsharing_survives_any_one_failing_call() {
    sweep(Unshare { delete: true }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_by_path_survives_any_one_failing_call() {
    sweep(ShareByPath).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_a_watermarked_upload_survives_any_one_failing_call() {
    sweep(Watermark {
        file: "photo.jpg",
        bytes: PHOTO,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_a_handed_over_gif_survives_any_one_failing_call() {
    sweep(Watermark {
        file: "loop.gif",
        bytes: LOOP,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_racing_an_unshare_leaves_nothing_public_whichever_call_fails() {
    for (file, bytes) in [("photo.jpg", PHOTO), ("loop.gif", LOOP)] {
        sweep(PublishRacingUnshare {
            file,
            bytes,
            runs: Default::default(),
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saving_a_session_survives_any_one_failing_call() {
    sweep(Save::default()).await;
}
