//! Hostile input over real HTTP: every route of the router table in Cargo.toml
//! (`[workspace.metadata.lambda.watch.router]`) against malformed ids, bodies, content types,
//! file paths, tags and query strings, and against forged, expired and foreign identities,
//! through `cargo lambda watch` and the emulator as tools/test.sh starts them. Every case gets
//! the status and body that openapi.yaml, the README and spec/ document (where they are silent,
//! a 400 with a `{"message"}`), never a 5xx and never a hang, and no case changes anything
//! (DESIGN invariant 6: every 4xx is decided before the first write).
//!
//! Two tests run in-process: deployed mode (no `JOIP_LOCAL`: watch runs in local mode), and the
//! inputs no local HTTP request can carry (an empty path parameter; a JSON body with replacement
//! characters).
//!
//! "Changes nothing" is a snapshot of the table and both buckets before and after, compared only
//! on what belongs to the test's own users: the e2e stack is shared with the other e2e, fault and
//! load tests running in parallel, whose writes would otherwise make any whole-table comparison
//! flaky. Every user here is named `h-{marker}-…` with a marker fresh per test, so an item or
//! object is ours when its text holds the marker (users, their media, paths, share codes,
//! community records, sessions, saves, activity, objects under `users/{id}/`), or when it hangs
//! off one of ours by id (a media's community marker, a record's tag items, a session's media
//! chunks, community and session objects in the general bucket). A write a refusal should not
//! make lands on one of those, so it is caught. Not checked: the global id counters (a refused
//! request that reserved an id could not be told from a concurrent test's reservation).

use crate::support;
use joip::config::ExposeSecret;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine;
use hmac::{Hmac, Mac};
use joip::auth::{mint_dev_token, DEV_TOKEN_TTL_SECS};
use joip::domain::{MediaId, MediaSource, SessionId, UserId, MAX_SAFE_ID};
use joip::service::share::ShareRequest;
use joip::store::items::{CommunityStatus, MediaItem};
use joip::App;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{read, Event, Snapshot, TestEnv};

/// Far longer than any case takes (tens of milliseconds), yet generous: watch runs one request at
/// a time per function, so a case may queue behind the load and fault tests' requests. A request
/// still unanswered by then is a hang.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);
/// The first request to a function may wait for watch to build and start its binary.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(180);
const MB: usize = 1 << 20;

fn base() -> String {
    std::env::var("JOIP_E2E_URL")
        .expect("JOIP_E2E_URL is not set: run the tests with tools/test.sh, which starts cargo lambda watch")
}

/// The same stack watch serves: names and dev secret from the environment tools/test.sh set.
async fn stack() -> App {
    let config = joip::Config::local_from_env().expect("config");
    App::new(config, &support::sdk_config(&support::endpoint()).await)
}

fn dev_secret(app: &App) -> Vec<u8> {
    let local = app.config.local.as_ref().expect("local mode");
    local.dev_token_secret.expose_secret().to_vec()
}

fn msg(message: &str) -> Value {
    json!({ "message": message })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Percent-encodes all but unreserved characters: any text fits a path segment or query value.
fn enc(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Requests and the table of cases

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

/// What a case must get back.
#[derive(Clone, Debug)]
enum Want {
    /// This status and exactly this JSON body.
    Json(u16, Value),
    /// This status, whatever the body: the router's refusals, which no handler answers (a path
    /// or method outside the router table is 404, from watch as from API Gateway), or an answer
    /// the test checks itself.
    Status(u16),
}

/// One request of the catalogue.
#[derive(Clone, Debug)]
struct Case {
    name: String,
    method: &'static str,
    /// Path and query, already percent-encoded.
    target: String,
    /// The whole `Authorization` header value.
    authorization: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
    want: Want,
}

impl Case {
    fn new(name: impl Into<String>, method: &'static str, target: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            method,
            target: target.into(),
            authorization: None,
            content_type: None,
            body: Vec::new(),
            want: Want::Status(0),
        }
    }

    fn bearer(mut self, token: &str) -> Self {
        self.authorization = Some(format!("Bearer {token}"));
        self
    }

    fn authorization(mut self, value: Option<String>) -> Self {
        self.authorization = value;
        self
    }

    /// A body declared as JSON (whatever its bytes are).
    fn json(self, body: impl Into<Vec<u8>>) -> Self {
        self.typed(Some("application/json"), body)
    }

    fn typed(mut self, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Self {
        self.content_type = content_type.map(str::to_string);
        self.body = body.into();
        self
    }

    fn wants(mut self, status: u16, body: Value) -> Self {
        self.want = Want::Json(status, body);
        self
    }

    fn status(mut self, status: u16) -> Self {
        self.want = Want::Status(status);
        self
    }
}

/// The status and body text of one request, or why there was none (a timeout is a hang).
fn send(agent: &ureq::Agent, case: &Case) -> Result<(u16, String), ureq::Error> {
    let mut req = ureq::http::Request::builder()
        .method(case.method)
        .uri(format!("{}{}", base(), case.target));
    if let Some(value) = &case.authorization {
        req = req.header("authorization", value);
    }
    if let Some(value) = &case.content_type {
        req = req.header("content-type", value);
    }
    let mut resp = if case.body.is_empty() {
        agent.run(req.body(()).expect("request"))?
    } else {
        agent.run(req.body(case.body.clone()).expect("request"))?
    };
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_vec()?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn shorten(text: &str) -> String {
    if text.len() <= 300 {
        return text.to_string();
    }
    let cut = (0..=300)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{}… ({} bytes)", &text[..cut], text.len())
}

/// Runs every case (blocking); one line per case that got a wrong answer.
fn failures(cases: &[Case]) -> Vec<String> {
    let agent = agent(CASE_TIMEOUT);
    let mut wrong = Vec::new();
    for case in cases {
        let started = Instant::now();
        let got = match send(&agent, case) {
            Ok(got) => got,
            Err(e) => {
                wrong.push(format!(
                    "{}: no answer after {:.1?} ({e})",
                    case.name,
                    started.elapsed()
                ));
                continue;
            }
        };
        let ok = match &case.want {
            Want::Json(status, body) => {
                got.0 == *status
                    && serde_json::from_str::<Value>(&got.1).ok().as_ref() == Some(body)
            }
            Want::Status(status) => got.0 == *status,
        };
        if !ok {
            let want = match &case.want {
                Want::Json(status, body) => shorten(&format!("{status} {body}")),
                Want::Status(status) => format!("{status}"),
            };
            wrong.push(format!(
                "{}: want {want}, got {} {}",
                case.name,
                got.0,
                shorten(&got.1)
            ));
        }
    }
    wrong
}

async fn run_cases(cases: Vec<Case>) -> Vec<String> {
    tokio::task::spawn_blocking(move || failures(&cases))
        .await
        .expect("cases ran")
}

/// One request per function, with time for watch to build and start it, so the cases' own
/// timeout measures only the handler.
async fn warm_up(token: &str) {
    let token = token.to_string();
    tokio::task::spawn_blocking(move || {
        let agent = agent(WARM_UP_TIMEOUT);
        let routes = [
            ("GET", "/api/user/media"),
            ("POST", "/api/community/sessions/abc/save"),
            ("POST", "/api/media/abc/share"),
            ("DELETE", "/api/media/abc/share"),
            ("POST", "/api/user/media/share"),
            ("GET", "/api/shared/media/abc"),
            ("GET", "/api/community/media"),
        ];
        for (method, target) in routes {
            let case = Case::new("warm-up", method, target).bearer(&token);
            send(&agent, &case).unwrap_or_else(|e| panic!("warm-up {method} {target}: {e}"));
        }
    })
    .await
    .expect("warm-up ran");
}

// ---------------------------------------------------------------------------------------------
// The world each test builds, and the part of a snapshot that is its own

/// Users, media and sessions of one test, all named with its `marker`.
struct World {
    app: App,
    marker: String,
    alice: UserId,
    bob: UserId,
    alice_token: String,
    bob_token: String,
    /// Alice's upload image, never shared: any share of it is a visible change.
    png: MediaItem,
    /// Alice's generated GIF, shared to the community (a share code and a ready record).
    gif: MediaItem,
    gif_code: String,
    /// The GIF's community copy.
    gif_community: u64,
    /// Bob's upload image (another user's object, for paths).
    bob_png: MediaItem,
    /// Canonical tags of this test.
    tags: Vec<String>,
    /// Alice's public session shared to the community, and a private one.
    community_session: SessionId,
    private_session: SessionId,
    /// The `nextCursor` of Alice's first page of one (she has two media).
    alice_cursor: String,
}

impl World {
    async fn new() -> Self {
        let app = stack().await;
        let marker = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let user = |name: &str| UserId::parse(&format!("h-{marker}-{name}")).expect("user id");
        let (alice, bob) = (user("alice"), user("bob"));
        app.store.create_user(&alice, 100, false).await.unwrap();
        app.store.create_user(&bob, 0, false).await.unwrap();
        let tags: Vec<String> = (0..11).map(|i| format!("t{marker}-{i}")).collect();
        for tag in &tags {
            app.store.put_tag(tag, tag).await.unwrap();
        }
        let upload = |owner: &UserId, name: &'static str, bytes: &'static [u8], source| {
            let (app, owner) = (&app, owner.clone());
            async move {
                joip::service::media::upload_media(app, &owner, name, bytes.to_vec(), source, None)
                    .await
                    .expect("upload")
            }
        };
        let png_bytes = include_bytes!("../../../tools/demo/demo-upload.png");
        let gif_bytes = include_bytes!("../../../tools/demo/demo-loop.gif");
        let png = upload(&alice, "photo.png", png_bytes, MediaSource::Upload).await;
        let gif = upload(&alice, "loop.gif", gif_bytes, MediaSource::SmartCaption).await;
        let bob_png = upload(&bob, "bob.png", png_bytes, MediaSource::Upload).await;
        let shared = joip::service::share::share_media(
            &app,
            &alice,
            gif.media_id,
            &ShareRequest {
                file_path: joip::http::Field::Absent,
                share_to_community: true,
                tags: vec![tags[0].clone()],
                policy_agreed: false,
                expires_in: joip::http::Field::Absent,
                max_views: joip::http::Field::Absent,
            },
        )
        .await
        .expect("share the gif");
        // The stack's poller publishes the copy: wait for it, so that no publish lands during a
        // test's before/after comparison (and the copy takes reports).
        let cid = shared.community.as_ref().expect("in the community").0;
        let since = Instant::now();
        while app
            .store
            .community_media(cid)
            .await
            .unwrap()
            .map(|r| r.status)
            != Some(CommunityStatus::Ready)
        {
            assert!(
                since.elapsed() < Duration::from_secs(120),
                "the GIF's community copy was never published (is the poller running?)"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let photo = include_bytes!("../../../tools/demo/demo-photo.jpg").to_vec();
        let community_session = support::community_session(
            &app,
            &alice,
            "hostile",
            vec![support::upload("p.jpg", photo.clone(), Some("hi"))],
        )
        .await;
        let private_session = joip::service::sessions::create_session(
            &app,
            joip::service::sessions::NewSession {
                owner: alice.clone(),
                title: "private".into(),
                category: None,
                settings: json!({}),
                metadata: json!({}),
                is_public: false,
                shared_to_community: false,
                is_imported: false,
                subreddits: vec![],
                media: vec![support::upload("q.jpg", photo, None)],
            },
        )
        .await
        .expect("private session");
        let secret = dev_secret(&app);
        let alice_token = mint_dev_token(&secret, &alice, DEV_TOKEN_TTL_SECS);
        let bob_token = mint_dev_token(&secret, &bob, DEV_TOKEN_TTL_SECS);
        warm_up(&alice_token).await;
        let first_page =
            Case::new("alice's first page", "GET", "/api/user/media?limit=1").bearer(&alice_token);
        let (_, page) =
            tokio::task::spawn_blocking(move || send(&agent(CASE_TIMEOUT), &first_page))
                .await
                .unwrap()
                .expect("an answer");
        let page: Value = serde_json::from_str(&page).expect("JSON page");
        let alice_cursor = page["nextCursor"]
            .as_str()
            .expect("a next page")
            .to_string();
        Self {
            app,
            marker,
            alice,
            bob,
            alice_token,
            bob_token,
            png,
            gif,
            gif_community: shared.community.as_ref().expect("in the community").0,
            gif_code: shared.share_code,
            bob_png,
            tags,
            community_session,
            private_session,
            alice_cursor,
        }
    }

    /// A user of this test that was never created.
    fn ghost(&self) -> UserId {
        UserId::parse(&format!("h-{}-ghost", self.marker)).expect("user id")
    }

    fn token(&self, user: &UserId) -> String {
        mint_dev_token(&dev_secret(&self.app), user, DEV_TOKEN_TTL_SECS)
    }

    /// The items and objects of this test (see the module comment).
    async fn snapshot(&self) -> Snapshot {
        own_part(&support::snapshot_of(&self.app).await, &self.marker)
    }

    /// What changed since `before` among this test's items and objects, one line each.
    async fn changes(&self, before: &Snapshot) -> Vec<String> {
        let after = self.snapshot().await;
        let diff = |what: &str, a: &[String], b: &[String]| -> Vec<String> {
            a.iter()
                .filter(|x| !b.contains(x))
                .map(|x| format!("{what}: {}", shorten(x)))
                .collect()
        };
        [
            diff("item gone", &before.items, &after.items),
            diff("new item", &after.items, &before.items),
            diff("object gone", &before.objects, &after.objects),
            diff("new object", &after.objects, &before.objects),
        ]
        .concat()
    }

    /// Fails with every wrong answer and every change, if any.
    async fn assert_answers_and_nothing_changed(&self, before: &Snapshot, wrong: &[String]) {
        let changed = self.changes(before).await;
        assert!(
            wrong.is_empty() && changed.is_empty(),
            "{} wrong answers:\n{}\n{} changes:\n{}",
            wrong.len(),
            wrong.join("\n"),
            changed.len(),
            changed.join("\n")
        );
    }
}

/// The items and objects of `snapshot` that belong to the test with `marker`: those whose text
/// holds it, and those hanging off one of them by media, community record or session id.
fn own_part(snapshot: &Snapshot, marker: &str) -> Snapshot {
    let parsed: Vec<(Value, &String)> = snapshot
        .items
        .iter()
        .map(|text| (serde_json::from_str(text).expect("item JSON"), text))
        .collect();
    let mut pks = BTreeSet::new();
    let (mut communities, mut sessions) = (BTreeSet::new(), BTreeSet::new());
    for (item, text) in &parsed {
        if !text.contains(marker) {
            continue;
        }
        if let Some(id) = item["mediaId"].as_u64() {
            pks.insert(format!("MEDIA#{id}"));
        }
        if let Some(id) = item["communityMediaId"].as_u64() {
            pks.insert(format!("COMMUNITY#{id}"));
            communities.insert(id);
        }
        if let Some(id) = item["sessionId"].as_u64() {
            pks.insert(format!("SESSION#{id}"));
            sessions.insert(id);
        }
    }
    let items = parsed
        .iter()
        .filter(|(item, text)| {
            text.contains(marker) || item["pk"].as_str().is_some_and(|pk| pks.contains(pk))
        })
        .map(|(_, text)| (*text).clone())
        .collect();
    // Objects: `bucket/key etag`. Community and staging objects are `…/{id}-…`, session media
    // `sessions/{id}/…`.
    let objects = snapshot
        .objects
        .iter()
        .filter(|object| {
            let key = object.split_once('/').map_or("", |(_, k)| k);
            let name = key.rsplit('/').next().unwrap_or("");
            let id_of = |s: &str| s.split('-').next().and_then(|n| n.parse::<u64>().ok());
            object.contains(marker)
                || ((key.starts_with("community/") || key.starts_with("staging/"))
                    && id_of(name).is_some_and(|id| communities.contains(&id)))
                || key
                    .strip_prefix("sessions/")
                    .and_then(|rest| rest.split('/').next())
                    .and_then(|id| id.parse::<u64>().ok())
                    .is_some_and(|id| sessions.contains(&id))
        })
        .cloned()
        .collect();
    Snapshot { items, objects }
}

/// `cursor` with one character changed.
fn tampered(cursor: &str) -> String {
    let mut bytes = cursor.as_bytes().to_vec();
    bytes[2] = if bytes[2] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ASCII")
}

fn file_name(media: &MediaItem) -> &str {
    media.file_path.rsplit('/').next().expect("a file name")
}

// ---------------------------------------------------------------------------------------------
// 3. The bad-input catalogue

/// Path ids that are not a positive JS-safe integer in plain decimal digits (already encoded).
fn bad_ids() -> Vec<(String, String)> {
    let named = [
        ("0", "0"),
        ("-1", "-1"),
        ("1.5", "1.5"),
        ("1e3", "1e3"),
        ("2^53", "9007199254740992"),
        ("2^53+1", "9007199254740993"),
        ("2^64", "18446744073709551616"),
        ("abc", "abc"),
        ("leading zero", "01"),
        ("plus sign", "%2B1"),
        ("hex", "0x1F"),
        ("space", "%201"),
        ("NUL", "1%00"),
        ("dot-dot", "%2e%2e"),
        ("encoded slash", "1%2F2"),
        ("fullwidth digit", "%EF%BC%91"),
        ("right-to-left override", "%E2%80%AE1"),
    ];
    let mut ids: Vec<(String, String)> = named
        .iter()
        .map(|(n, raw)| (format!("id {n}"), raw.to_string()))
        .collect();
    ids.push(("id of 10 KB".into(), "9".repeat(10 * 1024)));
    ids
}

/// Bodies that are not the documented object, each with the `filePath` the by-path route needs
/// (inserted into object bodies, so only the defect under test is wrong).
fn malformed_bodies() -> Vec<(&'static str, String)> {
    let deep = 10_000;
    let mut bodies: Vec<(&'static str, String)> = [
        ("not JSON", "nope"),
        ("truncated JSON", r#"{"shareToCommunity":false"#),
        ("trailing junk", r#"{"shareToCommunity":false} x"#),
        ("two documents", r#"{"shareToCommunity":false}{}"#),
        ("an array", r#"[{"shareToCommunity":false}]"#),
        ("an empty array", "[]"),
        ("a string", r#""shareToCommunity""#),
        ("a number", "1"),
        ("true", "true"),
        ("null", "null"),
        ("a byte-order mark", "\u{feff}{\"shareToCommunity\":false}"),
        (
            "shareToCommunity a string",
            r#"{"shareToCommunity":"false"}"#,
        ),
        ("shareToCommunity a number", r#"{"shareToCommunity":0}"#),
        (
            "tags a string",
            r#"{"tags":"solo","shareToCommunity":false}"#,
        ),
        (
            "tags of numbers",
            r#"{"tags":[1],"shareToCommunity":false}"#,
        ),
        (
            "tags an object",
            r#"{"tags":{"0":"solo"},"shareToCommunity":false}"#,
        ),
        (
            "policyAgreed a string",
            r#"{"policyAgreed":"yes","shareToCommunity":false}"#,
        ),
        ("shareToCommunity null", r#"{"shareToCommunity":null}"#),
        ("tags null", r#"{"tags":null,"shareToCommunity":false}"#),
        ("a null tag", r#"{"tags":[null],"shareToCommunity":false}"#),
        (
            "policyAgreed null",
            r#"{"policyAgreed":null,"shareToCommunity":false}"#,
        ),
        (
            "an unknown field",
            r#"{"shareToCommunity":false,"ownerId":"x"}"#,
        ),
        ("a field in the wrong case", r#"{"ShareToCommunity":false}"#),
        ("a field in snake case", r#"{"share_to_community":false}"#),
        (
            "a duplicate key",
            r#"{"shareToCommunity":true,"shareToCommunity":false}"#,
        ),
        (
            "a repeated key",
            r#"{"shareToCommunity":false,"shareToCommunity":false}"#,
        ),
        (
            "a lone surrogate",
            r#"{"tags":["\ud800"],"shareToCommunity":false}"#,
        ),
    ]
    .into_iter()
    .map(|(n, b)| (n, b.to_string()))
    .collect();
    bodies.push((
        "arrays nested 10,000 deep",
        "[".repeat(deep) + &"]".repeat(deep),
    ));
    bodies.push((
        "tags nested 10,000 deep",
        format!(
            r#"{{"shareToCommunity":false,"tags":{}{}}}"#,
            "[".repeat(deep),
            "]".repeat(deep)
        ),
    ));
    bodies.push((
        "objects nested 10,000 deep",
        r#"{"a":"#.repeat(deep) + "1" + &"}".repeat(deep),
    ));
    bodies
}

/// `body` with `"filePath": path` as its first field when it is an object.
fn with_path(body: &str, path: &str) -> String {
    match body.strip_prefix('{') {
        Some(rest) => format!(r#"{{"filePath":{},{rest}"#, json!(path)),
        None => body.to_string(),
    }
}

/// Path ids and share codes on every route with a path parameter, and methods outside the
/// router table.
fn id_cases(w: &World) -> Vec<Case> {
    let token = w.alice_token.clone();
    let share_png = format!("/api/media/{}/share", w.png.media_id);
    let mut cases = Vec::new();

    // Path ids, on every route with one.
    for (name, id) in bad_ids() {
        cases.push(
            Case::new(
                format!("save, {name}"),
                "POST",
                format!("/api/community/sessions/{id}/save"),
            )
            .bearer(&token)
            .wants(400, msg("Invalid session ID")),
        );
        cases.push(
            Case::new(
                format!("share, {name}"),
                "POST",
                format!("/api/media/{id}/share"),
            )
            .bearer(&token)
            .json(r#"{"shareToCommunity":false}"#)
            .wants(400, msg("Invalid media ID")),
        );
        cases.push(
            Case::new(
                format!("unshare, {name}"),
                "DELETE",
                format!("/api/media/{id}/share"),
            )
            .bearer(&token)
            .wants(400, msg("Invalid media ID")),
        );
        cases.push(
            Case::new(
                format!("share state, {name}"),
                "GET",
                format!("/api/media/{id}/share"),
            )
            .bearer(&token)
            .wants(400, msg("Invalid media ID")),
        );
        cases.push(
            Case::new(
                format!("report, {name}"),
                "POST",
                format!("/api/community/media/{id}/report"),
            )
            .bearer(&token)
            .json(r#"{"reason":"spam"}"#)
            .wants(400, msg("Invalid community media ID")),
        );
        // A malformed code is looked up like an unknown one (the same 404).
        cases.push(
            Case::new(
                format!("resolve, code {name}"),
                "GET",
                format!("/api/shared/media/{id}"),
            )
            .wants(404, msg("Shared media not found")),
        );
    }
    // An empty segment matches no route: the router answers, no function is reached.
    for (method, target) in [
        ("POST", "/api/community/sessions//save"),
        ("POST", "/api/media//share"),
        ("DELETE", "/api/media//share"),
        ("GET", "/api/media//share"),
        ("GET", "/api/shared/media/"),
        ("POST", "/api/community/media//report"),
    ] {
        cases.push(
            Case::new(format!("{method} {target} (empty id)"), method, target)
                .bearer(&token)
                .status(404),
        );
    }
    // Methods outside the router table.
    for (method, target) in [
        ("PUT", share_png.clone()),
        ("PATCH", share_png.clone()),
        (
            "PATCH",
            format!("/api/community/sessions/{}/save", w.community_session),
        ),
        ("POST", "/api/user/media".to_string()),
        (
            "GET",
            format!("/api/community/media/{}/report", w.gif_community),
        ),
        ("DELETE", "/api/community/media".to_string()),
    ] {
        cases.push(
            Case::new(format!("{method} {target} (no such route)"), method, target)
                .bearer(&token)
                .status(404),
        );
    }
    // Share codes that are not one as issued (the real code in other spellings included).
    let code = &w.gif_code;
    for (name, raw) in [
        ("upper case", code.to_uppercase()),
        ("braced", format!("{{{code}}}")),
        ("simple form", code.replace('-', "")),
        ("urn", format!("urn:uuid:{code}")),
        ("with a NUL", format!("{code}\0")),
        ("with a query-looking tail", format!("{code}?x=1")),
    ] {
        cases.push(
            Case::new(
                format!("resolve, code {name}"),
                "GET",
                format!("/api/shared/media/{}", enc(&raw)),
            )
            .wants(404, msg("Shared media not found")),
        );
    }
    cases
}

/// Bodies and content types, on both routes that read a body.
fn body_cases(w: &World) -> Vec<Case> {
    let token = w.alice_token.clone();
    let png_path = w.png.file_path.clone();
    let share_png = format!("/api/media/{}/share", w.png.media_id);
    let invalid_body = msg("Invalid request body");
    let mut cases = Vec::new();

    // Bodies, on both routes that read one (the share would succeed if the body were read as
    // the client meant: any acceptance is a visible change).
    for (name, body) in malformed_bodies() {
        cases.push(
            Case::new(format!("share, {name}"), "POST", share_png.clone())
                .bearer(&token)
                .json(body.clone())
                .wants(400, invalid_body.clone()),
        );
        cases.push(
            Case::new(
                format!("share by path, {name}"),
                "POST",
                "/api/user/media/share",
            )
            .bearer(&token)
            .json(with_path(&body, &png_path))
            .wants(400, invalid_body.clone()),
        );
    }
    for (name, body) in [
        ("no filePath", r#"{"shareToCommunity":false}"#.to_string()),
        (
            "filePath null",
            r#"{"filePath":null,"shareToCommunity":false}"#.into(),
        ),
        (
            "filePath a number",
            r#"{"filePath":1,"shareToCommunity":false}"#.into(),
        ),
        (
            "filePath an array",
            format!(
                r#"{{"filePath":[{}],"shareToCommunity":false}}"#,
                json!(png_path)
            ),
        ),
        (
            "filePath twice",
            format!(
                r#"{{"filePath":{},"filePath":{},"shareToCommunity":false}}"#,
                json!(w.bob_png.file_path),
                json!(png_path)
            ),
        ),
        ("an empty body", String::new()),
    ] {
        cases.push(
            Case::new(
                format!("share by path, {name}"),
                "POST",
                "/api/user/media/share",
            )
            .bearer(&token)
            .json(body)
            .wants(400, invalid_body.clone()),
        );
    }
    // An empty body is the defaults: a community share, which an upload image needs a policy
    // confirmation for.
    for body in ["", "  \n", "{}"] {
        cases.push(
            Case::new(format!("share, body {body:?}"), "POST", share_png.clone())
                .bearer(&token)
                .json(body)
                .wants(
                    400,
                    msg("Policy confirmation is required for upload sharing"),
                ),
        );
    }

    // Link limits out of range or of the wrong type (`expiresIn` is judged first): refused on
    // both share routes before anything is written, so no code is created either.
    let expires_in_msg = msg("Invalid expiresIn");
    let max_views_msg = msg("Invalid maxViews");
    let mut limits: Vec<(String, Value)> = Vec::new();
    for bad in [
        json!(0),
        json!(-1),
        json!(59),
        json!(31_536_001),
        json!(60.5),
        json!(1e300),
        json!("60"),
        json!(true),
        json!([60]),
        json!({ "s": 60 }),
    ] {
        limits.push((format!("expiresIn {bad}"), json!({ "expiresIn": bad })));
        limits.push((
            format!("expiresIn {bad} with a bad maxViews"),
            json!({ "expiresIn": bad, "maxViews": 0 }),
        ));
    }
    for bad in [
        json!(0),
        json!(-3),
        json!(1_000_001),
        json!(1.5),
        json!("3"),
        json!(false),
        json!([3]),
    ] {
        limits.push((
            format!("maxViews {bad}"),
            json!({ "expiresIn": 60, "maxViews": bad }),
        ));
    }
    for (name, mut body) in limits {
        let want = if name.starts_with("expiresIn") {
            expires_in_msg.clone()
        } else {
            max_views_msg.clone()
        };
        body["shareToCommunity"] = json!(false);
        cases.push(
            Case::new(format!("share, {name}"), "POST", share_png.clone())
                .bearer(&token)
                .json(body.to_string())
                .wants(400, want.clone()),
        );
        body["filePath"] = json!(png_path);
        cases.push(
            Case::new(
                format!("share by path, {name}"),
                "POST",
                "/api/user/media/share",
            )
            .bearer(&token)
            .json(body.to_string())
            .wants(400, want),
        );
    }

    // Reports: every refusal of the body is decided before the copy is looked up, so none is
    // counted (the snapshot would show the report, its summary or the reporter's rate ring).
    let report = format!("/api/community/media/{}/report", w.gif_community);
    let long_note = json!({ "reason": "spam", "note": "n".repeat(1001) }).to_string();
    for (name, content_type, body, want) in [
        (
            "no reason",
            Some("application/json"),
            "{}".to_string(),
            "Invalid reason",
        ),
        (
            "an empty body",
            Some("application/json"),
            String::new(),
            "Invalid reason",
        ),
        (
            "reason null",
            Some("application/json"),
            r#"{"reason":null}"#.into(),
            "Invalid reason",
        ),
        (
            "an unknown reason",
            Some("application/json"),
            r#"{"reason":"rude"}"#.into(),
            "Invalid reason",
        ),
        (
            "a reason in capitals",
            Some("application/json"),
            r#"{"reason":"SPAM"}"#.into(),
            "Invalid reason",
        ),
        (
            "a numeric reason",
            Some("application/json"),
            r#"{"reason":1}"#.into(),
            "Invalid reason",
        ),
        (
            "a note of 1001 characters",
            Some("application/json"),
            long_note,
            "Invalid note",
        ),
        (
            "a numeric note",
            Some("application/json"),
            r#"{"reason":"spam","note":5}"#.into(),
            "Invalid note",
        ),
        (
            "an unknown field",
            Some("application/json"),
            r#"{"reason":"spam","x":1}"#.into(),
            "Invalid request body",
        ),
        (
            "reason twice",
            Some("application/json"),
            r#"{"reason":"spam","reason":"spam"}"#.into(),
            "Invalid request body",
        ),
        (
            "an array",
            Some("application/json"),
            r#"["spam"]"#.into(),
            "Invalid request body",
        ),
        (
            "not JSON",
            Some("application/json"),
            "reason=spam".into(),
            "Invalid request body",
        ),
        (
            "text/plain",
            Some("text/plain"),
            r#"{"reason":"spam"}"#.into(),
            "Invalid request body",
        ),
        (
            "no content type",
            None,
            r#"{"reason":"spam"}"#.into(),
            "Invalid request body",
        ),
    ] {
        cases.push(
            Case::new(format!("report, {name}"), "POST", report.clone())
                .bearer(&token)
                .typed(content_type, body)
                .wants(400, msg(want)),
        );
    }

    // Content types: a body that would be a valid share, declared as something else.
    let valid = r#"{"shareToCommunity":false}"#;
    for content_type in [
        None,
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/xml"),
        Some("application/octet-stream"),
        Some("text/json"),
        Some("application/jsonx"),
        Some("application/json-seq"),
    ] {
        cases.push(
            Case::new(
                format!("share, content type {}", content_type.unwrap_or("none")),
                "POST",
                share_png.clone(),
            )
            .bearer(&token)
            .typed(content_type, valid)
            .wants(400, invalid_body.clone()),
        );
        cases.push(
            Case::new(
                format!(
                    "share by path, content type {}",
                    content_type.unwrap_or("none")
                ),
                "POST",
                "/api/user/media/share",
            )
            .bearer(&token)
            .typed(content_type, with_path(valid, &png_path))
            .wants(400, invalid_body.clone()),
        );
    }
    // Bytes that are not UTF-8, under a binary content type and declared JSON or text (which
    // API Gateway hands over base64-encoded, and so does the local gateway in front of watch,
    // which would answer its own 500), and with no content type at all; Schemathesis's case
    // among them.
    let not_utf8 = b"{\"tags\":[\"\xff\xfe\"],\"shareToCommunity\":false}".to_vec();
    for content_type in [
        Some("application/octet-stream"),
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("text/plain"),
        None,
    ] {
        let what = content_type.unwrap_or("none");
        cases.push(
            Case::new(
                format!("share, invalid UTF-8, {what}"),
                "POST",
                share_png.clone(),
            )
            .bearer(&token)
            .typed(content_type, not_utf8.clone())
            .wants(400, invalid_body.clone()),
        );
        cases.push(
            Case::new(
                format!("share by path, invalid UTF-8, {what}"),
                "POST",
                "/api/user/media/share",
            )
            .bearer(&token)
            .typed(content_type, b"\x1cn\xe2x1".to_vec())
            .wants(400, invalid_body.clone()),
        );
    }
    cases
}

/// The share refusals about policy and tags on both share routes, and the 1 MB bodies of every
/// route that takes one.
fn tag_cases(w: &World) -> Vec<Case> {
    let token = w.alice_token.clone();
    let alice = w.alice.as_str();
    let png_path = w.png.file_path.clone();
    let share_png = format!("/api/media/{}/share", w.png.media_id);
    let invalid_path = msg("Invalid file path");
    let mut cases = Vec::new();

    // Tags: the share refusals in the spec's order, unknown, too many, odd characters.
    let tags_json = |tags: &[String]| json!(tags).to_string();
    let eleven = tags_json(&w.tags);
    let unknown: Vec<String> = (0..11).map(|i| format!("nope{}-{i}", w.marker)).collect();
    let nine_and_one: Vec<String> = w.tags[..9]
        .iter()
        .cloned()
        .chain([unknown[0].clone()])
        .collect();
    let many: Vec<String> = (0..100_000).map(|i| format!("t{i}")).collect();
    let mut tag_cases: Vec<(String, String, Value)> = vec![
        (
            "policy not agreed".into(),
            format!(r#"{{"tags":["{}"]}}"#, w.tags[0]),
            msg("Policy confirmation is required for upload sharing"),
        ),
        (
            "no tags".into(),
            r#"{"policyAgreed":true}"#.into(),
            msg("At least one tag is required for upload sharing"),
        ),
        (
            "empty tags".into(),
            r#"{"tags":[],"policyAgreed":true}"#.into(),
            msg("At least one tag is required for upload sharing"),
        ),
        (
            "an unknown tag".into(),
            format!(r#"{{"tags":["{}"],"policyAgreed":true}}"#, unknown[0]),
            msg(&format!("Unknown tags: {}", unknown[0])),
        ),
        (
            "nine tags and an unknown one".into(),
            format!(
                r#"{{"tags":{},"policyAgreed":true}}"#,
                tags_json(&nine_and_one)
            ),
            msg(&format!("Unknown tags: {}", unknown[0])),
        ),
        (
            "11 canonical tags".into(),
            format!(r#"{{"tags":{eleven},"policyAgreed":true}}"#),
            msg("At most 10 tags are allowed"),
        ),
        (
            "11 unknown tags".into(),
            format!(r#"{{"tags":{},"policyAgreed":true}}"#, tags_json(&unknown)),
            msg("At most 10 tags are allowed"),
        ),
        (
            "100,000 tags (1 MB)".into(),
            format!(r#"{{"tags":{},"policyAgreed":true}}"#, tags_json(&many)),
            msg("At most 10 tags are allowed"),
        ),
    ];
    for (name, tag) in [
        ("a NUL in a tag", "so\u{0}lo"),
        ("a control character in a tag", "so\u{7}lo"),
        ("a right-to-left override in a tag", "\u{202e}olos"),
        ("a fullwidth tag", "ｓｏｌｏ"),
        ("an emoji tag", "🔥"),
        ("markup in a tag", "<script>alert(1)</script>"),
        ("a dotted capital I", "t\u{130}"),
        ("a zero-width space in a tag", "so\u{200b}lo"),
    ] {
        // Named back normalized (trimmed, lower-cased); JSON escapes the rest.
        tag_cases.push((
            name.into(),
            json!({ "tags": [tag], "policyAgreed": true }).to_string(),
            msg(&format!("Unknown tags: {}", tag.trim().to_lowercase())),
        ));
    }
    for (name, body, want) in tag_cases {
        cases.push(
            Case::new(format!("share, {name}"), "POST", share_png.clone())
                .bearer(&token)
                .json(body.clone())
                .wants(400, want.clone()),
        );
        cases.push(
            Case::new(
                format!("share by path, {name}"),
                "POST",
                "/api/user/media/share",
            )
            .bearer(&token)
            .json(with_path(&body, &png_path))
            .wants(400, want),
        );
    }
    // 1 MB: a tag, named back whole (the answer is bounded by the request) ...
    let huge = "x".repeat(MB);
    cases.push(
        Case::new("share, a 1 MB tag", "POST", share_png.clone())
            .bearer(&token)
            .json(json!({ "tags": [huge], "policyAgreed": true }).to_string())
            .wants(400, msg(&format!("Unknown tags: {huge}"))),
    );
    // ... a path, and bodies on the routes that read none.
    cases.push(
        Case::new(
            "share by path, a 1 MB filePath",
            "POST",
            "/api/user/media/share",
        )
        .bearer(&token)
        .json(json!({ "filePath": format!("users/{alice}/{huge}") }).to_string())
        .wants(400, invalid_path.clone()),
    );
    cases.push(
        Case::new(
            "save, bad id and a 1 MB body",
            "POST",
            "/api/community/sessions/abc/save",
        )
        .bearer(&token)
        .json(huge.clone())
        .wants(400, msg("Invalid session ID")),
    );
    cases.push(
        Case::new(
            "unshare, bad id and a 1 MB body",
            "DELETE",
            "/api/media/abc/share",
        )
        .bearer(&token)
        .json(huge.clone())
        .wants(400, msg("Invalid media ID")),
    );
    cases
}

/// `filePath` of the by-path share: only a well-formed key under the caller's own prefix.
fn path_cases(w: &World) -> Vec<Case> {
    let token = w.alice_token.clone();
    let alice = w.alice.as_str();
    let png_path = w.png.file_path.clone();
    let invalid_path = msg("Invalid file path");
    let mut cases = Vec::new();

    // filePath: only a well-formed key under the caller's own prefix (traversal, encodings,
    // other users' prefixes, odd characters: all one 400; a good key with no object: 404).
    let png_file = file_name(&w.png);
    let bob = w.bob.as_str();
    let bob_file = file_name(&w.bob_png);
    let paths: Vec<(&str, String)> = vec![
        (
            "dot-dot back into the prefix",
            format!("users/{alice}/uploads/../uploads/{png_file}"),
        ),
        (
            "dot-dot into another user's",
            format!("users/{alice}/../{bob}/uploads/{bob_file}"),
        ),
        (
            "dot-dot out of the bucket",
            format!("users/{alice}/../../{png_path}"),
        ),
        (
            "encoded dot-dot",
            format!("users/{alice}/%2e%2e/{bob}/uploads/{bob_file}"),
        ),
        (
            "upper-case encoded dot-dot",
            format!("users/{alice}/%2E%2E/uploads/{png_file}"),
        ),
        (
            "a percent-encoded name",
            format!(
                "users/{alice}/uploads/%{:02X}{}",
                png_file.as_bytes()[0],
                &png_file[1..]
            ),
        ),
        (
            "a dot segment",
            format!("users/{alice}/./uploads/{png_file}"),
        ),
        ("double slash", format!("users/{alice}//uploads/{png_file}")),
        ("trailing slash", format!("{png_path}/")),
        ("absolute", format!("/{png_path}")),
        ("backslashes", png_path.replace('/', "\\")),
        (
            "a backslash dot-dot",
            format!("users/{alice}/uploads\\..\\uploads/{png_file}"),
        ),
        ("another user's object", w.bob_png.file_path.clone()),
        (
            "another user's prefix, missing",
            format!("users/{bob}/uploads/nope.png"),
        ),
        (
            "a longer user id",
            format!("users/{alice}x/uploads/{png_file}"),
        ),
        (
            "the user id in upper case",
            format!("users/{}/uploads/{png_file}", alice.to_uppercase()),
        ),
        (
            "the prefix in upper case",
            format!("USERS/{alice}/uploads/{png_file}"),
        ),
        ("no prefix", format!("uploads/{png_file}")),
        ("the prefix alone", format!("users/{alice}/")),
        ("the prefix without a slash", format!("users/{alice}")),
        ("empty", String::new()),
        ("a NUL", format!("{png_path}\0")),
        (
            "a NUL before the name",
            format!("users/{alice}/uploads/\0{png_file}"),
        ),
        ("a newline", format!("users/{alice}/uploads/a\nb.png")),
        ("a tab", format!("users/{alice}/uploads/a\tb.png")),
        (
            "a leading space",
            format!("users/{alice}/uploads/ {png_file}"),
        ),
        ("a trailing space", format!("{png_path} ")),
        ("non-ASCII", format!("users/{alice}/uploads/é.png")),
        (
            "a fullwidth letter",
            format!("users/{alice}/uploads/ａ.png"),
        ),
        (
            "a fullwidth solidus",
            format!("users/{alice}／uploads/{png_file}"),
        ),
        (
            "a right-to-left override",
            format!("users/{alice}/uploads/\u{202e}gnp.exe"),
        ),
        ("a query", format!("{png_path}?versionId=1")),
        ("a fragment", format!("{png_path}#x")),
        ("an S3 URL", format!("s3://joip-e2e-user-media/{png_path}")),
        ("an HTTP URL", format!("http://127.0.0.1/{png_path}")),
        ("2 KB", format!("users/{alice}/{}", "a".repeat(2048))),
        (
            "1,025 bytes",
            format!("users/{alice}/{}", "a".repeat(1025 - 7 - alice.len())),
        ),
    ];
    for (name, path) in paths {
        cases.push(
            Case::new(
                format!("share by path, filePath {name}"),
                "POST",
                "/api/user/media/share",
            )
            .bearer(&token)
            .json(json!({ "filePath": path, "shareToCommunity": false }).to_string())
            .wants(400, invalid_path.clone()),
        );
    }
    cases.push(
        Case::new(
            "share by path, no object at the path",
            "POST",
            "/api/user/media/share",
        )
        .bearer(&token)
        .json(json!({ "filePath": format!("users/{alice}/uploads/nope.png") }).to_string())
        .wants(404, msg("Media not found")),
    );
    cases
}

/// Query strings of the two listings.
fn query_cases(w: &World) -> Vec<Case> {
    let token = w.alice_token.clone();
    let mut cases = Vec::new();

    // Query strings on the list routes: limit, cursor, tag, and their size.
    let bad_limits = [
        "0",
        "-1",
        "1.5",
        "1e3",
        "abc",
        "",
        "4294967296",
        "99999999999999999999",
        "%00",
        "%205",
        "5%20",
        "0x10",
        "%EF%BC%95",
    ];
    let bad_cursors = [
        "abc".to_string(),
        String::new(),
        "%00".into(),
        "%2B%2F%3D".into(),
        "A".repeat(2048),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        // Alice's own cursor, edited.
        tampered(&w.alice_cursor),
    ];
    let listings = [
        ("list", "/api/user/media", Some(token.clone())),
        ("feed", "/api/community/media", None),
    ];
    for (name, route, auth) in listings {
        let authorization = auth.map(|t| format!("Bearer {t}"));
        for limit in bad_limits {
            cases.push(
                Case::new(
                    format!("{name}, limit {limit:?}"),
                    "GET",
                    format!("{route}?limit={limit}"),
                )
                .authorization(authorization.clone())
                .wants(400, msg("Invalid limit")),
            );
        }
        for cursor in &bad_cursors {
            cases.push(
                Case::new(
                    format!("{name}, cursor {}", shorten(cursor)),
                    "GET",
                    format!("{route}?cursor={cursor}"),
                )
                .authorization(authorization.clone())
                .wants(400, msg("Invalid cursor")),
            );
        }
        cases.push(
            Case::new(
                format!("{name}, limit of 9 KB"),
                "GET",
                format!("{route}?limit={}", "9".repeat(9 * 1024)),
            )
            .authorization(authorization.clone())
            .wants(400, msg("Invalid limit")),
        );
        cases.push(
            Case::new(
                format!("{name}, cursor of 9 KB"),
                "GET",
                format!("{route}?cursor={}", "A".repeat(9 * 1024)),
            )
            .authorization(authorization.clone())
            .wants(400, msg("Invalid cursor")),
        );
        // Parameters a route does not know are ignored, however long (API Gateway refuses a
        // request line over 10 KB itself; watch, one over 64 KB).
        cases.push(
            Case::new(
                format!("{name}, an unknown parameter of 60 KB"),
                "GET",
                format!("{route}?x={}", "a".repeat(60 * 1024)),
            )
            .authorization(authorization.clone())
            .status(200),
        );
    }
    cases.push(
        Case::new(
            "feed, alice's user-media cursor",
            "GET",
            format!("/api/community/media?cursor={}", w.alice_cursor),
        )
        .wants(400, msg("Invalid cursor")),
    );
    for (name, tag) in [
        ("upper case", "Solo".to_string()),
        ("empty", String::new()),
        ("NUL", "%00".into()),
        ("space", "a%20b".into()),
        ("leading hyphen", "-a".into()),
        ("trailing hyphen", "a-".into()),
        ("65 characters", "a".repeat(65)),
        ("non-ASCII", "%C3%A9".into()),
        ("hash", "a%23b".into()),
        ("slash", "a%2Fb".into()),
        ("dot-dot", "..".into()),
        ("9 KB", "a".repeat(9 * 1024)),
    ] {
        cases.push(
            Case::new(
                format!("feed, tag {name}"),
                "GET",
                format!("/api/community/media?tag={tag}"),
            )
            .wants(400, msg("Invalid tag")),
        );
    }
    cases
}

#[tokio::test]
async fn bad_input_gets_its_documented_answer_and_changes_nothing() {
    let w = World::new().await;
    let before = w.snapshot().await;
    let cases: Vec<Case> = [id_cases, body_cases, tag_cases, path_cases, query_cases]
        .iter()
        .flat_map(|cases| cases(&w))
        .collect();
    let started = Instant::now();
    let count = cases.len();
    let wrong = run_cases(cases).await;
    eprintln!("{count} cases in {:.1?}", started.elapsed());
    w.assert_answers_and_nothing_changed(&before, &wrong).await;
}

// ---------------------------------------------------------------------------------------------
// 4. Auth attacks

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// A JWT of `header` and `claims`, signed by `sign` over its first two segments.
fn jwt(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

fn hs256(secret: &[u8]) -> impl FnOnce(&[u8]) -> Vec<u8> + '_ {
    move |input| {
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
        m.update(input);
        m.finalize().into_bytes().to_vec()
    }
}

fn hs512(secret: &[u8]) -> impl FnOnce(&[u8]) -> Vec<u8> + '_ {
    move |input| {
        let mut m = Hmac::<sha2::Sha512>::new_from_slice(secret).expect("any key length");
        m.update(input);
        m.finalize().into_bytes().to_vec()
    }
}

/// Authorization headers that must not authenticate `user`: none, malformed, expired, not yet
/// valid, badly signed, with another algorithm or a subject that is no user id.
fn forged(secret: &[u8], user: &UserId, other: &UserId) -> Vec<(&'static str, Option<String>)> {
    let now = now_secs();
    let sub = user.as_str();
    let hs = json!({ "alg": "HS256", "typ": "JWT" });
    let good_claims = json!({ "sub": sub, "iat": now, "exp": now + 3600 });
    let valid = jwt(&hs, &good_claims, hs256(secret));
    let signed = |claims: Value| jwt(&hs, &claims, hs256(secret));
    let with_alg = |alg: &str, sign: &dyn Fn(&[u8]) -> Vec<u8>| {
        jwt(&json!({ "alg": alg, "typ": "JWT" }), &good_claims, sign)
    };
    let mut flipped: Vec<u8> = B64.decode(valid.rsplit('.').next().unwrap()).unwrap();
    flipped[7] ^= 0x20;
    let (input, _) = valid.rsplit_once('.').unwrap();
    let wrong_signature = format!("{input}.{}", b64(&flipped));
    // Another user's token with this user's claims put in.
    let theirs = mint_dev_token(secret, other, 3600);
    let their_parts: Vec<&str> = theirs.split('.').collect();
    let edited = format!(
        "{}.{}.{}",
        their_parts[0],
        b64(good_claims.to_string().as_bytes()),
        their_parts[2]
    );
    let bearer = |t: String| Some(format!("Bearer {t}"));
    vec![
        ("no Authorization header", None),
        ("an empty bearer token", Some("Bearer ".into())),
        ("a garbage token", bearer("garbage".into())),
        ("two segments", bearer(input.to_string())),
        ("four segments", bearer(format!("{valid}.x"))),
        ("padded base64", bearer(valid.replacen('.', "=.", 1))),
        (
            "Basic credentials",
            Some(format!("Basic {}", STANDARD.encode(format!("{sub}:pw")))),
        ),
        ("a valid token with no scheme", Some(valid.clone())),
        (
            "a valid token in another scheme",
            Some(format!("Token {valid}")),
        ),
        (
            "expired a second ago",
            bearer(signed(
                json!({ "sub": sub, "iat": now - 3600, "exp": now - 1 }),
            )),
        ),
        (
            "expired long ago",
            bearer(signed(json!({ "sub": sub, "iat": 0, "exp": 1 }))),
        ),
        (
            "issued in an hour",
            bearer(signed(
                json!({ "sub": sub, "iat": now + 3600, "exp": now + 7200 }),
            )),
        ),
        (
            "not valid before an hour from now",
            bearer(signed(
                json!({ "sub": sub, "iat": now, "nbf": now + 3600, "exp": now + 7200 }),
            )),
        ),
        ("a wrong signature", bearer(wrong_signature)),
        (
            "signed with another secret",
            bearer(mint_dev_token(b"another-secret-of-some-length", user, 3600)),
        ),
        ("another user's signature on these claims", bearer(edited)),
        (
            "alg none, no signature",
            bearer(format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"JWT"}"#),
                b64(good_claims.to_string().as_bytes())
            )),
        ),
        (
            "alg none, signed",
            bearer(with_alg("none", &|i| hs256(secret)(i))),
        ),
        (
            "alg None, signed",
            bearer(with_alg("None", &|i| hs256(secret)(i))),
        ),
        (
            "alg RS256 keyed with the secret",
            bearer(with_alg("RS256", &|i| hs256(secret)(i))),
        ),
        (
            "alg HS512 keyed with the secret",
            bearer(with_alg("HS512", &|i| hs512(secret)(i))),
        ),
        (
            "alg hs256 in lower case",
            bearer(with_alg("hs256", &|i| hs256(secret)(i))),
        ),
        (
            "no alg",
            bearer(jwt(&json!({ "typ": "JWT" }), &good_claims, hs256(secret))),
        ),
        (
            "a header that is not JSON",
            bearer(format!(
                "{}.{}",
                b64(b"not json"),
                valid.split_once('.').unwrap().1
            )),
        ),
        (
            "a subject that is no user id",
            bearer(signed(
                json!({ "sub": format!("{sub}/../x"), "iat": now, "exp": now + 3600 }),
            )),
        ),
        (
            "no subject",
            bearer(signed(json!({ "iat": now, "exp": now + 3600 }))),
        ),
        (
            "no expiry",
            bearer(signed(json!({ "sub": sub, "iat": now }))),
        ),
        (
            "an expiry that is a string",
            bearer(signed(
                json!({ "sub": sub, "iat": now, "exp": (now + 3600).to_string() }),
            )),
        ),
        (
            "a subject that is a number",
            bearer(signed(json!({ "sub": 42, "iat": now, "exp": now + 3600 }))),
        ),
    ]
}

/// Every authenticated route, each with a request that would succeed (and, but for the list,
/// change something) for the rightful caller, so a forged identity that got through would show.
fn authenticated_requests(w: &World) -> Vec<Case> {
    let png = w.png.media_id;
    vec![
        Case::new("list", "GET", "/api/user/media"),
        Case::new(
            "save",
            "POST",
            format!("/api/community/sessions/{}/save", w.community_session),
        ),
        Case::new("share", "POST", format!("/api/media/{png}/share"))
            .json(r#"{"shareToCommunity":false}"#),
        // Before the unshare below, which takes the GIF's copy out of the community.
        Case::new(
            "report",
            "POST",
            format!("/api/community/media/{}/report", w.gif_community),
        )
        .json(r#"{"reason":"spam"}"#),
        Case::new(
            "unshare",
            "DELETE",
            format!("/api/media/{}/share", w.gif.media_id),
        ),
        Case::new(
            "share state",
            "GET",
            format!("/api/media/{}/share", w.gif.media_id),
        ),
        Case::new("share by path", "POST", "/api/user/media/share")
            .json(json!({ "filePath": w.png.file_path, "shareToCommunity": false }).to_string()),
    ]
}

#[tokio::test]
async fn forged_expired_and_malformed_tokens_are_unauthorized_everywhere() {
    let w = World::new().await;
    let before = w.snapshot().await;
    let secret = dev_secret(&w.app);
    let mut cases = Vec::new();
    for request in authenticated_requests(&w) {
        for (name, authorization) in forged(&secret, &w.alice, &w.bob) {
            let mut case = request.clone().authorization(authorization);
            case.name = format!("{}, {name}", request.name);
            cases.push(case.wants(401, msg("Unauthorized")));
        }
    }
    let wrong = run_cases(cases).await;
    w.assert_answers_and_nothing_changed(&before, &wrong).await;

    // With Alice's own token every one of those requests succeeds: the 401s were the tokens'.
    // (The save is priced by the shared stack, whose price may not be set yet: then 503.)
    let alice = w.alice_token.clone();
    let own = authenticated_requests(&w);
    let answers = tokio::task::spawn_blocking(move || {
        let agent = agent(CASE_TIMEOUT);
        own.into_iter()
            .map(|case| {
                let case = case.bearer(&alice);
                let (status, body) = send(&agent, &case).expect("an answer");
                (case.name, status, body)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (name, status, body) in answers {
        let unpriced = name == "save" && status == 503;
        assert!(
            status == 200 || unpriced,
            "{name} with alice's token: {status} {body}"
        );
    }
}

#[tokio::test]
async fn foreign_and_unknown_callers_get_what_a_missing_id_gets() {
    let w = World::new().await;
    let alice_cursor = w.alice_cursor.clone();
    let before = w.snapshot().await;

    let bob = w.bob_token.clone();
    let ghost_user = w.ghost();
    let ghost = w.token(&ghost_user);
    let alice = w.alice.as_str();
    let missing = MediaId(MAX_SAFE_ID);
    let not_found = msg("Media not found");
    let mut cases = Vec::new();
    for (who, token) in [("bob", &bob), ("an unknown user", &ghost)] {
        let with = |case: Case| case.bearer(token);
        for (what, id) in [
            ("alice's upload", w.png.media_id),
            ("alice's shared gif", w.gif.media_id),
            ("a missing media", missing),
        ] {
            cases.push(
                with(Case::new(
                    format!("{who} shares {what}"),
                    "POST",
                    format!("/api/media/{id}/share"),
                ))
                .json(r#"{"shareToCommunity":false}"#)
                .wants(404, not_found.clone()),
            );
            cases.push(
                with(Case::new(
                    format!("{who} shares {what} to the community"),
                    "POST",
                    format!("/api/media/{id}/share"),
                ))
                .json(json!({ "tags": [w.tags[0]], "policyAgreed": true }).to_string())
                .wants(404, not_found.clone()),
            );
            cases.push(
                with(Case::new(
                    format!("{who} unshares {what}"),
                    "DELETE",
                    format!("/api/media/{id}/share"),
                ))
                .wants(404, not_found.clone()),
            );
            cases.push(
                with(Case::new(
                    format!("{who} reads the share of {what}"),
                    "GET",
                    format!("/api/media/{id}/share"),
                ))
                .wants(404, not_found.clone()),
            );
            cases.push(
                with(Case::new(
                    format!("{who} limits the link of {what}"),
                    "POST",
                    format!("/api/media/{id}/share"),
                ))
                .json(r#"{"shareToCommunity":false,"expiresIn":60,"maxViews":1}"#)
                .wants(404, not_found.clone()),
            );
        }
        for (what, path) in [
            ("alice's object", w.png.file_path.clone()),
            (
                "a missing key of alice's",
                format!("users/{alice}/uploads/nope.png"),
            ),
        ] {
            cases.push(
                with(Case::new(
                    format!("{who} shares {what} by path"),
                    "POST",
                    "/api/user/media/share",
                ))
                .json(json!({ "filePath": path, "shareToCommunity": false }).to_string())
                .wants(400, msg("Invalid file path")),
            );
        }
        for (what, cursor) in [
            ("alice's cursor", alice_cursor.as_str()),
            ("a forged cursor", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ] {
            cases.push(
                with(Case::new(
                    format!("{who} lists with {what}"),
                    "GET",
                    format!("/api/user/media?cursor={cursor}"),
                ))
                .wants(400, msg("Invalid cursor")),
            );
        }
        for (what, id) in [
            ("alice's private session", w.private_session),
            ("a missing session", SessionId(MAX_SAFE_ID)),
        ] {
            cases.push(
                with(Case::new(
                    format!("{who} saves {what}"),
                    "POST",
                    format!("/api/community/sessions/{id}/save"),
                ))
                .wants(404, msg("Session not found or not public")),
            );
        }
    }
    // The unknown user: nothing to list, nothing to pay with, no object of its own.
    let ghost_path = format!("users/{ghost_user}/uploads/a.png");
    cases.push(
        Case::new("an unknown user lists", "GET", "/api/user/media")
            .bearer(&ghost)
            .wants(200, json!({ "media": [], "nextCursor": null })),
    );
    cases.push(
        Case::new(
            "an unknown user shares by its own path",
            "POST",
            "/api/user/media/share",
        )
        .bearer(&ghost)
        .json(json!({ "filePath": ghost_path }).to_string())
        .wants(404, not_found.clone()),
    );
    let mut wrong = run_cases(cases).await;
    // Nor anything to pay with. The price is the stack's, shared with the other e2e and load
    // tests, so it is neither set nor compared here (and may not be set yet: then 503).
    let save = Case::new(
        "an unknown user saves",
        "POST",
        format!("/api/community/sessions/{}/save", w.community_session),
    )
    .bearer(&ghost);
    let (status, body) = tokio::task::spawn_blocking(move || send(&agent(CASE_TIMEOUT), &save))
        .await
        .unwrap()
        .expect("an answer");
    let mut answer: Value = serde_json::from_str(&body).unwrap_or_default();
    let required = answer
        .as_object_mut()
        .and_then(|a| a.remove("required"))
        .and_then(|r| r.as_i64());
    let refused = match status {
        402 => {
            required.is_some_and(|r| r > 0)
                && answer
                    == json!({ "error": "Insufficient credits", "code": "INSUFFICIENT_CREDITS",
                               "current": 0, "featureKey": "session_create" })
        }
        503 => {
            answer
                == json!({ "error": "Session pricing is not configured",
                           "code": "FEATURE_PRICING_MISSING", "featureKey": "session_create" })
        }
        _ => false,
    };
    if !refused {
        wrong.push(format!("an unknown user saves: got {status} {body}"));
    }
    w.assert_answers_and_nothing_changed(&before, &wrong).await;

    // Bob sees his own and only his own.
    let listed = Case::new("bob lists", "GET", "/api/user/media").bearer(&bob);
    let (status, body) = tokio::task::spawn_blocking(move || send(&agent(CASE_TIMEOUT), &listed))
        .await
        .unwrap()
        .expect("an answer");
    let page: Value = serde_json::from_str(&body).expect("JSON page");
    assert_eq!(status, 200);
    let ids: Vec<u64> = page["media"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![w.bob_png.media_id.0], "{body}");
    assert!(
        !body.contains(alice) && !body.contains(&w.gif_code),
        "{body}"
    );

    // Alice's link still works: nobody revoked it.
    let resolve = Case::new(
        "resolve",
        "GET",
        format!("/api/shared/media/{}", w.gif_code),
    );
    let (status, body) = tokio::task::spawn_blocking(move || send(&agent(CASE_TIMEOUT), &resolve))
        .await
        .unwrap()
        .expect("an answer");
    assert_eq!(status, 200, "{body}");
}

// ---------------------------------------------------------------------------------------------
// In-process: what watch cannot serve

const SHARE_ROUTE: &str = "/api/media/{id}/share";
const SAVE_ROUTE: &str = "/api/community/sessions/{id}/save";
const BY_PATH_ROUTE: &str = "/api/user/media/share";
const LIST_ROUTE: &str = "/api/user/media";

/// Calls the handler of the authenticated `route` with `event`.
async fn call(app: &App, route: &str, event: Event) -> (u16, Value) {
    use joip::routes::*;
    let req = event.request();
    let resp = match route {
        LIST_ROUTE => Box::pin(list_user_media::handle(app, req)).await,
        SAVE_ROUTE => Box::pin(save_community_session::handle(app, req)).await,
        BY_PATH_ROUTE => Box::pin(share_media_by_path::handle(app, req)).await,
        SHARE_ROUTE if req.method() == lambda_http::http::Method::DELETE => {
            Box::pin(unshare_media::handle(app, req)).await
        }
        SHARE_ROUTE => Box::pin(share_media::handle(app, req)).await,
        other => panic!("no route {other}"),
    };
    read(resp)
}

/// Deployed, the API Gateway JWT authorizer's `sub` claim is the only identity: a dev token is
/// refused (well signed or not: there is no secret to check it with), claims win over any token,
/// and claims whose `sub` is no user id are no identity.
#[tokio::test]
async fn deployed_mode_refuses_dev_tokens_and_trusts_only_the_authorizer() {
    let env = TestEnv::new().await;
    assert!(env.app.config.local.is_none(), "deployed mode");
    let alice = env.user(10, false).await;
    let bob = env.user(10, false).await;
    let png = include_bytes!("../../../tools/demo/demo-upload.png").to_vec();
    let media = joip::service::media::upload_media(
        &env.app,
        &alice,
        "a.png",
        png,
        MediaSource::Upload,
        None,
    )
    .await
    .unwrap();
    let secret = b"a-dev-secret-of-some-length";
    let alice_token = mint_dev_token(secret, &alice, DEV_TOKEN_TTL_SECS);
    let share_path = format!("/api/media/{}/share", media.media_id);
    let requests: Vec<(&str, &str, String, String)> = vec![
        ("GET", LIST_ROUTE, LIST_ROUTE.into(), String::new()),
        (
            "POST",
            SAVE_ROUTE,
            "/api/community/sessions/1/save".into(),
            String::new(),
        ),
        (
            "POST",
            SHARE_ROUTE,
            share_path.clone(),
            r#"{"shareToCommunity":false}"#.into(),
        ),
        ("DELETE", SHARE_ROUTE, share_path.clone(), String::new()),
        (
            "POST",
            BY_PATH_ROUTE,
            BY_PATH_ROUTE.into(),
            json!({ "filePath": media.file_path, "shareToCommunity": false }).to_string(),
        ),
    ];
    let event = |method: &str, route: &str, path: &str, body: &str| {
        let id = path.rsplit('/').nth(1).unwrap_or("");
        let mut e = Event::new(method, route, path);
        if route.contains("{id}") {
            e = e.path_params(json!({ "id": id }));
        }
        if !body.is_empty() {
            e = e.body(body);
        }
        e
    };
    let before = env.snapshot().await;
    for (method, route, path, body) in &requests {
        let token = format!("Bearer {alice_token}");
        let refused = [
            (
                "a dev token alone",
                event(method, route, path, body).header("authorization", &token),
            ),
            ("no identity", event(method, route, path, body)),
            (
                "claims whose sub is no user id, and a dev token",
                event(method, route, path, body)
                    .caller(&format!("{alice}/x"))
                    .header("authorization", &token),
            ),
            (
                "claims with an empty sub",
                event(method, route, path, body).caller(""),
            ),
        ];
        for (name, e) in refused {
            assert_eq!(
                call(&env.app, route, e).await,
                (401, msg("Unauthorized")),
                "{method} {path}: {name}"
            );
        }
        // Bob's claims with Alice's token: Bob is the caller (Alice's media is not his).
        let as_bob = event(method, route, path, body)
            .caller(bob.as_str())
            .header("authorization", &token);
        let (status, answer) = call(&env.app, route, as_bob).await;
        let want = match *route {
            LIST_ROUTE => (200, json!({ "media": [], "nextCursor": null })),
            SAVE_ROUTE => (404, msg("Session not found or not public")),
            BY_PATH_ROUTE => (400, msg("Invalid file path")),
            _ => (404, msg("Media not found")),
        };
        assert_eq!((status, answer), want, "{method} {path} as bob by claims");
    }
    assert_eq!(env.snapshot().await, before, "nothing changed");
    // And the claims alone are enough for the rightful owner.
    let mine = Event::new("GET", LIST_ROUTE, LIST_ROUTE).caller(alice.as_str());
    let (status, page) = call(&env.app, LIST_ROUTE, mine).await;
    assert_eq!(
        (status, page["media"][0]["id"].as_u64()),
        (200, Some(media.media_id.0))
    );
}

/// Inputs that API Gateway can send but watch cannot: an empty or absent path parameter, and a
/// JSON body that is not UTF-8 (watch answers it with its own 500 before any function runs;
/// API Gateway hands it over base64-encoded or with replacement characters).
#[tokio::test]
async fn what_watch_cannot_deliver_gets_its_documented_answer_in_process() {
    let env = TestEnv::local(b"a-dev-secret-of-some-length").await;
    let alice = env.user(10, false).await;
    let png = include_bytes!("../../../tools/demo/demo-upload.png").to_vec();
    let media = joip::service::media::upload_media(
        &env.app,
        &alice,
        "a.png",
        png,
        MediaSource::Upload,
        None,
    )
    .await
    .unwrap();
    let path = format!("/api/media/{}/share", media.media_id);
    let before = env.snapshot().await;

    for (params, what) in [
        (json!({ "id": "" }), "an empty id"),
        (json!({}), "no id"),
        (Value::Null, "no parameters"),
    ] {
        let save = Event::new("POST", SAVE_ROUTE, "/api/community/sessions//save")
            .caller(alice.as_str())
            .path_params(params.clone());
        assert_eq!(
            call(&env.app, SAVE_ROUTE, save).await,
            (400, msg("Invalid session ID")),
            "save, {what}"
        );
        for method in ["POST", "DELETE"] {
            let e = Event::new(method, SHARE_ROUTE, "/api/media//share")
                .caller(alice.as_str())
                .path_params(params.clone());
            assert_eq!(
                call(&env.app, SHARE_ROUTE, e).await,
                (400, msg("Invalid media ID")),
                "{method}, {what}"
            );
        }
        let e = Event::new("GET", "/api/shared/media/{code}", "/api/shared/media/")
            .path_params(params.clone());
        let resp = joip::routes::resolve_shared_media::handle(&env.app, e.request()).await;
        assert_eq!(
            read(resp),
            (404, msg("Shared media not found")),
            "resolve, {what}"
        );
    }

    // Not UTF-8, declared JSON: as a binary body, and as text with replacement characters.
    let bytes = b"{\"tags\":[\"\xff\"],\"shareToCommunity\":false}".to_vec();
    let mut req = Event::new("POST", SHARE_ROUTE, &path)
        .caller(alice.as_str())
        .path_params(json!({ "id": media.media_id.to_string() }))
        .request();
    *req.body_mut() = lambda_http::Body::Binary(bytes);
    let resp = Box::pin(joip::routes::share_media::handle(&env.app, req)).await;
    assert_eq!(
        read(resp),
        (400, msg("Invalid request body")),
        "binary, not UTF-8"
    );
    let lossy =
        String::from_utf8_lossy(b"{\"tags\":[\"\xff\"],\"policyAgreed\":true}").into_owned();
    let e = Event::new("POST", SHARE_ROUTE, &path)
        .caller(alice.as_str())
        .path_params(json!({ "id": media.media_id.to_string() }))
        .body(&lossy);
    assert_eq!(
        call(&env.app, SHARE_ROUTE, e).await,
        (400, msg("Unknown tags: \u{fffd}")),
        "replacement characters"
    );
    assert_eq!(env.snapshot().await, before, "nothing changed");
}
