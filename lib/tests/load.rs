//! Load with invariants: a bounded mixed run over real HTTP against `cargo lambda watch` (started
//! by tools/test.sh) with the emulator's chaos switch on. 32 clients save the same and different
//! sessions, share, re-share, link-only share and unshare media, share objects by path, delete
//! originals (the store API `joip-admin media delete` uses), resolve links and read the feed, for
//! 15 s (`JOIP_LOAD_FULL=1`: 60 s; `JOIP_LOAD_SECS` sets it). Then chaos goes off, the reaper and
//! the watermark function run until nothing is left copying or pending, and everything the run
//! wrote must agree: credits spent = price x saves, one community record and one public object
//! per shared media, no orphan object, record or tag, no save left copying, and no 5xx but the
//! documented 500 bodies. It prints requests/s, p50/p99 per route and the error counts (also to
//! `JOIP_LOAD_REPORT`, a file, when set).

mod support;

use joip::auth::{mint_dev_token, DEV_TOKEN_TTL_SECS};
use joip::config::ExposeSecret;
use joip::domain::{MediaId, MediaSource, SessionId, UserId};
use joip::service::media::upload_media;
use joip::service::publish::process_staged;
use joip::service::save_session::{reap, Deadline};
use joip::service::share::{share_media, ShareRequest};
use joip::App;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{community_session, snapshot_of, upload, Snapshot, Stored};

const CLIENTS: usize = 32;
/// Fraction of DynamoDB and S3 calls the emulator fails during the run.
const CHAOS: f64 = 0.05;
const QUICK_SECS: u64 = 15;
const FULL_SECS: u64 = 60;
const PRICE: i64 = 2;
/// Each saver can afford this many of the sessions: later saves of new sessions are refused (402).
const AFFORDABLE: i64 = 4;
const OWNERS: usize = 8;
const SAVERS: usize = 8;
const SESSIONS: usize = 6;
/// Objects per owner uploaded straight to S3, shared by path.
const DIRECT: usize = 3;
const TAGS: [&str; 3] = ["red", "green", "blue"];
/// Concurrent warm-up requests per function.
const WARM_INSTANCES: usize = 8;
const PHOTO: &[u8] = include_bytes!("../../tools/demo/demo-photo.jpg");
const PNG: &[u8] = include_bytes!("../../tools/demo/demo-upload.png");
const LOOP: &[u8] = include_bytes!("../../tools/demo/demo-loop.gif");
const CLIP: &[u8] = include_bytes!("../../tools/demo/demo-clip.mp4");

fn base() -> String {
    std::env::var("JOIP_E2E_URL").expect(
        "JOIP_E2E_URL is not set: run the tests with tools/test.sh, which starts cargo lambda watch",
    )
}

fn duration() -> Duration {
    let full = std::env::var("JOIP_LOAD_FULL").is_ok_and(|v| v == "1");
    let secs = std::env::var("JOIP_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { FULL_SECS } else { QUICK_SECS });
    Duration::from_secs(secs)
}

/// The stack watch serves: names and dev secret from the environment tools/test.sh sets.
async fn stack() -> App {
    let config = joip::Config::local_from_env().expect("config");
    App::new(config, &support::sdk_config(&support::endpoint()).await)
}

/// Sets the emulator's global chaos rate (`POST /_joip/chaos`); its report.
fn set_chaos(rate: f64) -> Value {
    ureq::post(format!("{}/_joip/chaos", support::endpoint()))
        .send_json(json!({ "rate": rate, "seed": 7 }))
        .expect("the emulator's chaos switch (tools/emulator.py)")
        .body_mut()
        .read_json()
        .expect("chaos report")
}

/// The emulator's count of injected faults (`GET /_joip/chaos`).
fn chaos_report() -> Value {
    ureq::get(format!("{}/_joip/chaos", support::endpoint()))
        .call()
        .expect("the emulator's chaos report")
        .body_mut()
        .read_json()
        .expect("chaos report")
}

/// Chaos on for as long as it lives: off again however the test ends.
struct ChaosOn;

impl ChaosOn {
    fn new(rate: f64) -> Self {
        set_chaos(rate);
        Self
    }
}

impl Drop for ChaosOn {
    fn drop(&mut self) {
        set_chaos(0.0);
    }
}

/// A tiny deterministic generator (xorshift64*), one per client.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

// ---- the world the clients act on -------------------------------------------------------------

struct Owner {
    id: UserId,
    token: String,
    media: Vec<MediaId>,
    direct: Vec<String>,
}

struct World {
    owners: Vec<Owner>,
    savers: Vec<(UserId, String)>,
    sessions: Vec<SessionId>,
    /// Codes the share answers gave, for resolves.
    codes: Mutex<Vec<String>>,
    /// Originals deleted through the store API.
    deleted: Mutex<BTreeSet<u64>>,
    samples: Mutex<Vec<Sample>>,
    /// Every save answer: (saver, session, status, body).
    saves: Mutex<Vec<(usize, SessionId, u16, Value)>>,
    /// Fault-free for the test's own reads; deletes go through `app` (chaos applies).
    app: App,
    runtime: tokio::runtime::Handle,
    seq: AtomicU64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Route {
    Save,
    Share,
    LinkOnly,
    Unshare,
    ByPath,
    Resolve,
    Feed,
    UserMedia,
    Delete,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Save => "POST /api/community/sessions/{id}/save",
            Route::Share => "POST /api/media/{id}/share (community)",
            Route::LinkOnly => "POST /api/media/{id}/share (link only)",
            Route::Unshare => "DELETE /api/media/{id}/share",
            Route::ByPath => "POST /api/user/media/share",
            Route::Resolve => "GET /api/shared/media/{code}",
            Route::Feed => "GET /api/community/media",
            Route::UserMedia => "GET /api/user/media",
            Route::Delete => "media delete (store API)",
        }
    }

    /// Whether `status` and `body` are a documented answer of the route (a 500 only with its
    /// documented body: chaos injects faults).
    fn documented(self, status: u16, body: &Value) -> bool {
        let message = |m: &str| *body == json!({ "message": m });
        let shared = |b: &Value| b["shareCode"].is_string() && b["shareUrl"].is_string();
        match (self, status) {
            (Route::Save, 200) => body["success"] == true && body["sessionId"].is_u64(),
            (Route::Save, 402) => body["code"] == "INSUFFICIENT_CREDITS",
            (Route::Save, 500) => message("Failed to save session"),
            (Route::Share | Route::ByPath, 200) => shared(body) && body["communityUrl"].is_string(),
            (Route::LinkOnly, 200) => shared(body) && body.get("communityUrl").is_none(),
            (Route::Unshare, 200) => *body == json!({ "success": true }),
            (Route::Share | Route::LinkOnly | Route::Unshare | Route::ByPath, 404) => {
                message("Media not found")
            }
            (Route::Share | Route::LinkOnly | Route::ByPath, 500) => {
                message("Failed to share media") || message("Failed to create share link")
            }
            (Route::Unshare, 500) => message("Failed to unshare media"),
            (Route::Resolve, 200) => body["url"].is_string(),
            (Route::Resolve, 404) => message("Shared media not found"),
            (Route::Resolve, 500) => message("Failed to fetch shared media"),
            (Route::Feed | Route::UserMedia, 200) => body["media"].is_array(),
            (Route::Feed, 500) => message("Failed to fetch community media"),
            (Route::UserMedia, 500) => message("Failed to fetch media"),
            (Route::Delete, 200 | 404 | 500) => true,
            _ => false,
        }
    }
}

struct Sample {
    route: Route,
    status: u16,
    ms: f64,
    body: Value,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(180)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// One HTTP request: status and JSON body (a non-JSON body as a string).
fn call(
    agent: &ureq::Agent,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}{path}", base());
    let auth = token.map(|t| format!("Bearer {t}"));
    let sent = match (method, body) {
        ("POST", body) => {
            let mut req = agent.post(&url);
            if let Some(auth) = &auth {
                req = req.header("authorization", auth);
            }
            req.send_json(body.unwrap_or(json!({})))
        }
        ("DELETE", _) => {
            let mut req = agent.delete(&url);
            if let Some(auth) = &auth {
                req = req.header("authorization", auth);
            }
            req.call()
        }
        _ => {
            let mut req = agent.get(&url);
            if let Some(auth) = &auth {
                req = req.header("authorization", auth);
            }
            req.call()
        }
    };
    // No answer at all (watch timed out, a connection dropped): status 0, never documented.
    let mut resp = match sent {
        Ok(resp) => resp,
        Err(e) => return (0, Value::String(format!("{method} {path}: {e}"))),
    };
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

impl World {
    fn record(&self, route: Route, started: Instant, status: u16, body: Value) {
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        self.samples.lock().unwrap().push(Sample {
            route,
            status,
            ms,
            body,
        });
    }

    /// One client: random requests until `end`.
    fn client(&self, n: usize, end: Instant) {
        let agent = agent();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (n as u64 + 1).wrapping_mul(0x1000_0001));
        while Instant::now() < end {
            let owner = &self.owners[rng.below(OWNERS)];
            let media = owner.media[rng.below(owner.media.len())];
            let tags: Vec<&str> = TAGS.iter().copied().filter(|_| rng.below(2) == 0).collect();
            let tags = if tags.is_empty() { vec!["red"] } else { tags };
            let share_path = format!("/api/media/{media}/share");
            let started = Instant::now();
            let (route, (status, body)) = match rng.below(100) {
                0..=21 => {
                    let saver = rng.below(SAVERS);
                    let session = self.sessions[rng.below(SESSIONS)];
                    let path = format!("/api/community/sessions/{session}/save");
                    let answer = call(&agent, "POST", &path, Some(&self.savers[saver].1), None);
                    self.saves
                        .lock()
                        .unwrap()
                        .push((saver, session, answer.0, answer.1.clone()));
                    (Route::Save, answer)
                }
                22..=43 => {
                    let body = json!({ "tags": tags, "policyAgreed": true });
                    (
                        Route::Share,
                        call(&agent, "POST", &share_path, Some(&owner.token), Some(body)),
                    )
                }
                44..=51 => {
                    let body = json!({ "shareToCommunity": false });
                    (
                        Route::LinkOnly,
                        call(&agent, "POST", &share_path, Some(&owner.token), Some(body)),
                    )
                }
                52..=59 => (
                    Route::Unshare,
                    call(&agent, "DELETE", &share_path, Some(&owner.token), None),
                ),
                60..=67 => {
                    let path = &owner.direct[rng.below(owner.direct.len())];
                    let body = json!({ "filePath": path, "tags": tags, "policyAgreed": true });
                    (
                        Route::ByPath,
                        call(
                            &agent,
                            "POST",
                            "/api/user/media/share",
                            Some(&owner.token),
                            Some(body),
                        ),
                    )
                }
                68..=79 => {
                    let code = {
                        let codes = self.codes.lock().unwrap();
                        match codes.len() {
                            0 => uuid::Uuid::new_v4().to_string(),
                            len => codes[rng.below(len)].clone(),
                        }
                    };
                    (
                        Route::Resolve,
                        call(
                            &agent,
                            "GET",
                            &format!("/api/shared/media/{code}"),
                            None,
                            None,
                        ),
                    )
                }
                80..=93 => {
                    let path = match rng.below(3) {
                        0 => "/api/community/media".to_string(),
                        1 => format!("/api/community/media?tag={}", TAGS[rng.below(3)]),
                        _ => "/api/community/media?limit=10".to_string(),
                    };
                    (Route::Feed, call(&agent, "GET", &path, None, None))
                }
                94..=97 => (
                    Route::UserMedia,
                    call(&agent, "GET", "/api/user/media", Some(&owner.token), None),
                ),
                _ => (Route::Delete, self.delete(media)),
            };
            if let Some(code) = body["shareCode"].as_str() {
                self.codes.lock().unwrap().push(code.to_string());
            }
            self.record(route, started, status, body);
            self.seq.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `joip-admin media delete`: the record (with its code, path item and marker), then the
    /// original; its community copy stays.
    fn delete(&self, id: MediaId) -> (u16, Value) {
        let app = &self.app;
        let outcome = self.runtime.block_on(async {
            let Some(media) = app.store.media(id).await.map_err(|e| e.to_string())? else {
                return Ok(false);
            };
            app.store
                .delete_media(&media)
                .await
                .map_err(|e| e.to_string())?;
            app.blob
                .delete(&app.config.user_media_bucket, &media.file_path)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<bool, String>(true)
        });
        match outcome {
            Ok(true) => {
                self.deleted.lock().unwrap().insert(id.0);
                (200, json!({ "deleted": id.0 }))
            }
            Ok(false) => (404, json!({ "message": "no such media" })),
            Err(e) => (500, json!({ "error": e })),
        }
    }
}

// ---- set-up ---------------------------------------------------------------------------------------

async fn set_up(app: &App) -> World {
    for tag in TAGS {
        app.store.put_tag(tag, tag).await.unwrap();
    }
    app.store
        .put_pricing("session_create", PRICE, false)
        .await
        .unwrap();
    let secret = app
        .config
        .local
        .as_ref()
        .expect("local mode")
        .dev_token_secret
        .clone();
    let token = |user: &UserId| mint_dev_token(secret.expose_secret(), user, DEV_TOKEN_TTL_SECS);
    let kinds: [(&str, &[u8], MediaSource); 6] = [
        ("loop.gif", LOOP, MediaSource::Upload),
        ("photo.png", PNG, MediaSource::Upload),
        ("photo.jpg", PHOTO, MediaSource::Upload),
        ("clip.mp4", CLIP, MediaSource::Upload),
        ("caption.png", PNG, MediaSource::SmartCaption),
        ("loop2.gif", LOOP, MediaSource::Babecock),
    ];
    let mut owners = Vec::new();
    for _ in 0..OWNERS {
        let id = UserId::random();
        app.store.create_user(&id, 0, false).await.unwrap();
        let mut media = Vec::new();
        for (i, (name, bytes, source)) in kinds.into_iter().enumerate() {
            let m = upload_media(app, &id, name, bytes.to_vec(), source, None)
                .await
                .unwrap();
            if i % 2 == 0 {
                // Half start in the community, so unshares and deletes meet copies at once.
                let request = ShareRequest {
                    file_path: joip::http::Field::Absent,
                    share_to_community: true,
                    tags: vec![TAGS[i % TAGS.len()].to_string()],
                    policy_agreed: true,
                    expires_in: joip::http::Field::Absent,
                    max_views: joip::http::Field::Absent,
                };
                share_media(app, &id, m.media_id, &request).await.unwrap();
            }
            media.push(m.media_id);
        }
        let mut direct = Vec::new();
        for i in 0..DIRECT {
            let path = format!("users/{id}/direct/{i}.png");
            app.blob
                .put(
                    &app.config.user_media_bucket,
                    &path,
                    PNG.to_vec(),
                    "image/png",
                )
                .await
                .unwrap();
            direct.push(path);
        }
        owners.push(Owner {
            token: token(&id),
            id,
            media,
            direct,
        });
    }
    let mut savers = Vec::new();
    for _ in 0..SAVERS {
        let id = UserId::random();
        app.store
            .create_user(&id, AFFORDABLE * PRICE, false)
            .await
            .unwrap();
        savers.push((id.clone(), token(&id)));
    }
    let mut sessions = Vec::new();
    for i in 0..SESSIONS {
        let media = vec![
            upload(&format!("s{i}.jpg"), PHOTO.to_vec(), Some("a photo")),
            upload(&format!("s{i}.png"), PNG.to_vec(), None),
        ];
        let owner = &owners[i % OWNERS].id;
        sessions.push(community_session(app, owner, &format!("load {i}"), media).await);
    }
    World {
        owners,
        savers,
        sessions,
        codes: Mutex::default(),
        deleted: Mutex::default(),
        samples: Mutex::default(),
        saves: Mutex::default(),
        app: app.clone(),
        runtime: tokio::runtime::Handle::current(),
        seq: AtomicU64::new(0),
    }
}

// ---- after the run ------------------------------------------------------------------------------

fn pk_of(raw: &str) -> String {
    let item: Value = serde_json::from_str(raw).expect("item JSON");
    item["pk"].as_str().unwrap_or_default().to_string()
}

/// What the load test wrote: items of partitions that did not exist before it started, objects
/// that did not (but not those of another test's community records), never the id counters.
fn ours(before: &Snapshot, now: &Snapshot) -> Snapshot {
    let old_pks: HashSet<String> = before.items.iter().map(|i| pk_of(i)).collect();
    let path = |o: &str| o.rsplit_once(' ').map_or(o, |(p, _)| p).to_string();
    let old_objects: HashSet<String> = before.objects.iter().map(|o| path(o)).collect();
    // community/ab/cd/{id}-… and staging/ab/cd/{id}-… name their record.
    let record_of = |p: &str| -> Option<String> {
        let name = p.rsplit('/').next()?;
        let id: u64 = name.split('-').next()?.parse().ok()?;
        (p.contains("/community/") || p.contains("/staging/")).then(|| format!("COMMUNITY#{id}"))
    };
    Snapshot {
        items: now
            .items
            .iter()
            .filter(|i| {
                let pk = pk_of(i);
                !old_pks.contains(&pk) && !pk.starts_with("COUNTER#")
            })
            .cloned()
            .collect(),
        objects: now
            .objects
            .iter()
            .filter(|o| {
                let p = path(o);
                !old_objects.contains(&p) && !record_of(&p).is_some_and(|r| old_pks.contains(&r))
            })
            .cloned()
            .collect(),
    }
}

/// Runs the reaper and the watermark function (as the poller would) until no save of the run is
/// copying and no community record of it is pending; the rounds it took.
async fn quiesce(app: &App, before: &Snapshot) -> usize {
    let until = Instant::now() + Duration::from_secs(120);
    for round in 1.. {
        let stored = Stored::from_snapshot(&ours(before, &snapshot_of(app).await), app);
        let copying = stored.copying_saves().len();
        let pending: Vec<String> = stored
            .records
            .values()
            .filter(|r| r["status"] == "pending")
            .filter_map(|r| r["stagingKey"].as_str().map(str::to_string))
            .collect();
        if copying == 0 && pending.is_empty() {
            return round;
        }
        assert!(
            Instant::now() < until,
            "never quiet: {copying} saves copying, pending records {pending:?}"
        );
        for key in &pending {
            if let Err(e) = process_staged(app, key).await {
                eprintln!("watermark {key}: {e} (retried)");
            }
        }
        if copying > 0 {
            reap(app, Deadline::new(None, 60_000)).await.expect("reap");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    unreachable!()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn figures(samples: &[Sample], wall: Duration, chaos: &Value) -> String {
    let mut out = String::new();
    let total = samples.len();
    let _ = writeln!(
        out,
        "load: {CLIENTS} clients for {:.1} s, chaos {CHAOS} ({} faults injected: {})",
        wall.as_secs_f64(),
        chaos["injected"],
        chaos["by_kind"]
    );
    let _ = writeln!(
        out,
        "{total} requests, {:.1} requests/s",
        total as f64 / wall.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "{:<42} {:>6} {:>8} {:>8}  statuses",
        "route", "n", "p50 ms", "p99 ms"
    );
    let mut by_route: BTreeMap<Route, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        by_route.entry(s.route).or_default().push(s);
    }
    for (route, list) in &by_route {
        let mut ms: Vec<f64> = list.iter().map(|s| s.ms).collect();
        ms.sort_by(f64::total_cmp);
        let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
        for s in list {
            *statuses.entry(s.status).or_default() += 1;
        }
        let statuses: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
        let _ = writeln!(
            out,
            "{:<42} {:>6} {:>8.0} {:>8.0}  {}",
            route.name(),
            list.len(),
            percentile(&ms, 50.0),
            percentile(&ms, 99.0),
            statuses.join(", ")
        );
    }
    let mut errors: BTreeMap<(String, u16, String), usize> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.status != 200) {
        let key = (s.route.name().to_string(), s.status, s.body.to_string());
        *errors.entry(key).or_default() += 1;
    }
    let _ = writeln!(out, "errors:");
    for ((route, status, body), n) in &errors {
        let _ = writeln!(out, "  {n:>5} x {status} {route} {body}");
    }
    out
}

/// Refused requests to every function, a few at once, so that `cargo lambda watch` starts its
/// instances (as many as it runs at once: `--concurrency`) before the measured run, not in it.
fn warm_up(world: &World) {
    let token = world.owners[0].token.as_str();
    let none = "/api/media/999999999/share";
    let requests = [
        ("GET", "/api/community/media?limit=1", None, None),
        ("GET", "/api/user/media?limit=1", Some(token), None),
        ("GET", "/api/shared/media/unknown", None, None),
        ("POST", none, Some(token), None),
        ("DELETE", none, Some(token), None),
        (
            "POST",
            "/api/user/media/share",
            Some(token),
            Some(json!({ "filePath": "-" })),
        ),
        (
            "POST",
            "/api/community/sessions/999999999/save",
            Some(token),
            None,
        ),
    ];
    std::thread::scope(|scope| {
        for _ in 0..WARM_INSTANCES {
            scope.spawn(|| {
                let agent = agent();
                for (method, path, token, body) in requests.clone() {
                    let (status, body) = call(&agent, method, path, token, body);
                    let answered = (200..500).contains(&status);
                    assert!(answered, "warming up {method} {path}: {status} {body}");
                }
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mixed_load_under_chaos_keeps_every_invariant() {
    let _ = base();
    let app = stack().await;
    let before = snapshot_of(&app).await;
    let world = Arc::new(set_up(&app).await);
    let length = duration();
    let warm = world.clone();
    tokio::task::spawn_blocking(move || warm_up(&warm))
        .await
        .expect("warm-up");

    // The run: chaos on, 32 clients, then chaos off however it ends.
    let faults_before = chaos_report();
    let chaos = ChaosOn::new(CHAOS);
    let started = Instant::now();
    let end = started + length;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let world = world.clone();
            std::thread::spawn(move || world.client(n, end))
        })
        .collect();
    for c in clients {
        c.join().expect("client thread");
    }
    let wall = started.elapsed();
    drop(chaos);
    let faults = chaos_report();
    let mut by_kind = BTreeMap::new();
    for (kind, n) in faults["by_kind"].as_object().into_iter().flatten() {
        let was = faults_before["by_kind"][kind].as_u64().unwrap_or(0);
        by_kind.insert(kind.clone(), n.as_u64().unwrap_or(0) - was);
    }
    let injected = json!({
        "injected": faults["injected"].as_u64().unwrap_or(0) - faults_before["injected"].as_u64().unwrap_or(0),
        "by_kind": by_kind,
    });

    let samples = std::mem::take(&mut *world.samples.lock().unwrap());
    let mut report = figures(&samples, wall, &injected);
    let rounds = quiesce(&app, &before).await;
    // The removals a remover left owed (its delete of the owed item failed under chaos) are
    // finished by the reaper's sweep each minute: the quiescent point is after it.
    support::settle_removals(&app).await;
    let stored = Stored::from_snapshot(&ours(&before, &snapshot_of(&app).await), &app);

    // No 5xx (nor anything else) but the documented answers.
    let undocumented: Vec<String> = samples
        .iter()
        .filter(|s| !s.route.documented(s.status, &s.body))
        .map(|s| format!("{} {} {}", s.route.name(), s.status, s.body))
        .collect();

    // Credits spent = price x saves; every 200 names the one save of its pair; at most one
    // answer per pair charged.
    let saves = world.saves.lock().unwrap().clone();
    let mut problems = stored.violations();
    let mut charged_saves = 0;
    for (n, (saver, _)) in world.savers.iter().enumerate() {
        let records: Vec<&Value> = stored
            .saves
            .iter()
            .filter(|s| s["userId"] == saver.as_str())
            .collect();
        charged_saves += records.len();
        let charged: i64 = records
            .iter()
            .map(|r| r["charged"].as_i64().unwrap_or(0))
            .sum();
        let credits = stored.users[saver.as_str()]["credits"].as_i64().unwrap();
        if AFFORDABLE * PRICE - credits != charged || charged != PRICE * records.len() as i64 {
            problems.push(format!(
                "saver {n}: spent {} for {} saves charging {charged}",
                AFFORDABLE * PRICE - credits,
                records.len()
            ));
        }
        for session in &world.sessions {
            let answers: Vec<&Value> = saves
                .iter()
                .filter(|(s, id, status, _)| *s == n && id == session && *status == 200)
                .map(|(.., body)| body)
                .collect();
            let record = records.iter().find(|r| r["sourceSessionId"] == session.0);
            if answers
                .iter()
                .any(|a| Some(&a["sessionId"]) != record.map(|r| &r["sessionId"]))
            {
                problems.push(format!(
                    "saver {n}, session {session}: answers {answers:?} but record {record:?}"
                ));
            }
            if answers.iter().filter(|a| a["reused"] == false).count() > 1 {
                problems.push(format!(
                    "saver {n}, session {session}: charged twice: {answers:?}"
                ));
            }
        }
    }
    // One community record and one public object per shared media (copies of deleted
    // originals included); nothing left pending.
    let mut per_media: BTreeMap<u64, usize> = BTreeMap::new();
    for r in stored.records.values() {
        *per_media.entry(r["mediaId"].as_u64().unwrap()).or_default() += 1;
        if r["status"] != "ready" {
            problems.push(format!(
                "record {} is {} after the poller ran",
                r["communityMediaId"], r["status"]
            ));
        }
    }
    for (media, n) in &per_media {
        if *n > 1 {
            problems.push(format!("media {media} has {n} community records"));
        }
    }
    let saved_200 = saves
        .iter()
        .filter(|(.., status, _)| *status == 200)
        .map(|(s, id, ..)| (*s, *id))
        .collect::<BTreeSet<_>>()
        .len();
    let _ = writeln!(
        report,
        "after the run (chaos off; reaper and watermark until quiet, {rounds} rounds):\n  \
         {charged_saves} saves charged {PRICE} each ({saved_200} distinct pairs answered 200), \
         {} saves copying\n  {} media ({} deleted), {} community records, {} public objects, \
         {} staged, {} share codes, {} tag items\n  {} undocumented answers, {} invariant violations",
        stored.copying_saves().len(),
        stored.media.len(),
        world.deleted.lock().unwrap().len(),
        stored.records.len(),
        stored.public.len(),
        stored.staging.len(),
        stored.codes.len(),
        stored.tag_items.values().map(Vec::len).sum::<usize>(),
        undocumented.len(),
        problems.len(),
    );
    println!("{report}");
    if let Ok(file) = std::env::var("JOIP_LOAD_REPORT") {
        std::fs::write(&file, &report).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    assert!(
        undocumented.is_empty(),
        "undocumented answers:\n  {}",
        undocumented.join("\n  ")
    );
    assert!(
        problems.is_empty(),
        "invariants:\n  {}",
        problems.join("\n  ")
    );
    assert!(world.seq.load(Ordering::Relaxed) > 0, "no request was made");
}
