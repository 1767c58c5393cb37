//! Sharing against the emulator, through the real handlers: `POST`/`DELETE /api/media/{id}/share`,
//! `POST /api/user/media/share`, `GET /api/shared/media/{code}` and `GET /api/community/media`.
//! The contract (spec/share-media.txt), one community copy per media under real races with the
//! chaos switch on, unshare leaving nothing behind, and every 4xx changing nothing.

use crate::support;

use crate::support::api::{
    delete_share, feed, post_share, refused, resolve, share, share_by_path_raw,
};
use joip::domain::{MediaId, MediaSource, UserId};
use joip::service::media::upload_media;
use joip::store::items::{CommunityStatus, MediaItem};
use joip::App;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{FailNthCopy, Latency, Stored, TestEnv};

const PHOTO: &[u8] = include_bytes!("../../../tools/demo/demo-photo.jpg");
const PNG: &[u8] = include_bytes!("../../../tools/demo/demo-upload.png");
const CLIP: &[u8] = include_bytes!("../../../tools/demo/demo-clip.mp4");
const LOOP: &[u8] = include_bytes!("../../../tools/demo/demo-loop.gif");
/// Fraction of DynamoDB and S3 calls the emulator fails in the race tests.
const CHAOS: f64 = 0.1;

const INVALID_BODY: &str = "Invalid request body";
const INVALID_ID: &str = "Invalid media ID";
const INVALID_PATH: &str = "Invalid file path";
const NOT_FOUND: &str = "Media not found";
const LINK_NOT_FOUND: &str = "Shared media not found";
const POLICY_REQUIRED: &str = "Policy confirmation is required for upload sharing";
const TAG_REQUIRED: &str = "At least one tag is required for upload sharing";

// ---- requests -------------------------------------------------------------------------------

/// A share that must succeed; its answer.
async fn shared(app: &App, caller: &UserId, id: MediaId, body: &Value) -> Value {
    let (status, answer) = share(app, caller, id, body).await;
    assert_eq!(status, 200, "share {id} with {body}: {answer}");
    answer
}

/// The feed page's community ids, in order.
fn feed_ids(body: &Value) -> Vec<u64> {
    body["media"]
        .as_array()
        .unwrap_or_else(|| panic!("a feed page: {body}"))
        .iter()
        .map(|m| m["communityMediaId"].as_u64().expect("communityMediaId"))
        .collect()
}

/// A feed page that must succeed.
async fn feed_page(app: &App, query: &[(&str, &str)]) -> Value {
    let (status, body) = feed(app, query).await;
    assert_eq!(status, 200, "feed {query:?}: {body}");
    body
}

/// A plain, unsigned GET, as a browser or CloudFront makes it: status and bytes.
async fn http_get(url: &str) -> (u16, Vec<u8>) {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut resp = agent
            .get(&url)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = resp.status().as_u16();
        let bytes = resp.body_mut().read_to_vec().expect("body");
        (status, bytes)
    })
    .await
    .expect("GET task")
}

/// What an unsigned GET of a community URL answers (the emulator's bucket policy stands in for
/// CloudFront): the bytes, or `None` if nothing is served there.
async fn object_at(url: &str) -> Option<Vec<u8>> {
    match http_get(url).await {
        (200, bytes) => Some(bytes),
        // Anonymous reads of absent or private keys are refused, as S3 refuses them.
        (403 | 404, _) => None,
        (status, body) => panic!("GET {url}: {status} {}", String::from_utf8_lossy(&body)),
    }
}

// ---- set-up ---------------------------------------------------------------------------------

/// Stores `bytes` as the owner's media from `source` (MIME type sniffed) and records it.
async fn media(
    env: &TestEnv,
    owner: &UserId,
    name: &str,
    bytes: &[u8],
    source: MediaSource,
) -> MediaItem {
    upload_media(&env.app, owner, name, bytes.to_vec(), source, None)
        .await
        .expect("upload media")
}

/// Makes `slugs` canonical tags.
async fn canonical(env: &TestEnv, slugs: &[&str]) {
    for slug in slugs {
        env.app
            .store
            .put_tag(slug, &slug.to_uppercase())
            .await
            .expect("put tag");
    }
}

/// A share body with every field given.
fn body(community: bool, tags: &[&str], policy: bool) -> Value {
    json!({ "shareToCommunity": community, "tags": tags, "policyAgreed": policy })
}

/// A WebP header: enough for the sniffer (the watermark function is not part of these tests).
fn webp() -> Vec<u8> {
    let mut bytes = b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00".to_vec();
    bytes.extend_from_slice(&[0u8; 24]);
    bytes
}

/// The media record as stored now.
async fn media_now(env: &TestEnv, id: MediaId) -> MediaItem {
    env.app
        .store
        .media(id)
        .await
        .expect("read media")
        .expect("media exists")
}

fn keys_of(body: &Value) -> BTreeSet<&str> {
    body.as_object()
        .unwrap_or_else(|| panic!("an object: {body}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn set(keys: &[&'static str]) -> BTreeSet<&'static str> {
    keys.iter().copied().collect()
}

fn assert_uuid_v4(code: &str) {
    let parsed = uuid::Uuid::parse_str(code).unwrap_or_else(|_| panic!("{code} is a UUID"));
    assert_eq!(parsed.get_version_num(), 4, "{code} is a UUIDv4");
    assert_eq!(parsed.hyphenated().to_string(), code, "canonical form");
}

/// A tiny deterministic generator (xorshift64*): the races are random but repeatable.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

// ---- the cross-record invariants (support/invariants.rs) ---------------------------------------

/// Asserts the cross-record invariants hold now (copies and links alike); the state, for further
/// checks.
async fn assert_consistent(env: &TestEnv, when: &str) -> Stored {
    let state = assert_copies_agree(env, when).await;
    let dead = state.dead_links();
    assert!(
        dead.is_empty(),
        "{when}: share state without a live code:\n  {}\n{state:#?}",
        dead.join("\n  ")
    );
    state
}

/// Asserts the media records, markers, community records, tag items, objects and code items
/// agree now; the state, for further checks.
async fn assert_copies_agree(env: &TestEnv, when: &str) -> Stored {
    let state = Stored::read(&env.app).await;
    let violations = state.copy_violations();
    assert!(
        violations.is_empty(),
        "{when}: sharing state disagrees:\n  {}\n{state:#?}",
        violations.join("\n  ")
    );
    state
}

// ---- races (chaos on) -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_community_shares_make_one_copy() {
    let env = TestEnv::new().await;
    let pool = ["red", "green", "blue", "solo", "outdoor"];
    canonical(&env, &pool).await;
    let owner = env.user(0, false).await;
    let gif = media(&env, &owner, "loop.gif", LOOP, MediaSource::Upload).await;
    // Sixteen distinct, non-empty tag sets: the bits of 1..=16 over the pool.
    let sets: Vec<Vec<String>> = (1..=16usize)
        .map(|n| {
            pool.iter()
                .enumerate()
                .filter(|(bit, _)| n & (1 << bit) != 0)
                .map(|(_, t)| t.to_string())
                .collect()
        })
        .collect();
    let id = gif.media_id;
    let app = Arc::new(env.chaos_app(CHAOS));
    let barrier = Arc::new(tokio::sync::Barrier::new(sets.len()));
    let tasks: Vec<_> = sets
        .iter()
        .map(|tags| {
            let (app, owner, barrier) = (app.clone(), owner.clone(), barrier.clone());
            let request = json!({ "tags": tags, "policyAgreed": true });
            tokio::spawn(async move {
                barrier.wait().await;
                share(&app, &owner, id, &request).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("share task"));
    }
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:#?}");
    let distinct = |field: &str| -> BTreeSet<String> {
        answers.iter().map(|(_, b)| b[field].to_string()).collect()
    };
    assert_eq!(distinct("shareCode").len(), 1, "one code: {answers:#?}");
    assert_eq!(
        distinct("communityMediaId").len(),
        1,
        "one copy: {answers:#?}"
    );
    assert_eq!(distinct("communityUrl").len(), 1, "one URL: {answers:#?}");

    let state = assert_consistent(&env, "after 16 concurrent shares").await;
    assert_eq!(state.records.len(), 1, "one community record");
    assert!(
        state.public.is_empty(),
        "nothing public before the publisher"
    );
    assert_eq!(state.staging.len(), 1, "one hand-over");
    assert_eq!(env.publish_staged().await, 1);
    let state = assert_consistent(&env, "after publishing").await;
    assert_eq!(state.public.len(), 1, "one public object");
    assert!(state.staging.is_empty(), "the hand-over is done with");
    assert_eq!(state.codes.len(), 1, "one share code");
    let answer = &answers[0].1;
    let cid = answer["communityMediaId"].as_u64().unwrap();
    let record = &state.records[&cid];
    let final_tags: Vec<String> = serde_json::from_value(record["tags"].clone()).unwrap();
    assert!(
        sets.contains(&final_tags),
        "final tags {final_tags:?} are exactly one request's set"
    );
    let m = media_now(&env, gif.media_id).await;
    assert_eq!(m.share_code.as_deref(), answer["shareCode"].as_str());
    assert_eq!(m.community_media_id, Some(cid));
    assert!(m.is_shared && m.share_to_community);
    let copy = object_at(answer["communityUrl"].as_str().unwrap()).await;
    assert_eq!(copy.as_deref(), Some(LOOP), "the copy is published");
}

/// One request of the share/unshare race.
#[derive(Clone, Copy, Debug)]
enum RaceOp {
    /// Share to the community with the tag set at this index.
    Share(usize),
    /// `shareToCommunity: false`: keep the link, drop the copy.
    LinkOnly,
    /// `DELETE`: drop both.
    Delete,
}

const RACE_TAGS: [&[&str]; 3] = [&["red"], &["red", "green"], &["blue", "green"]];

async fn race_op(app: &App, owner: &UserId, id: MediaId, op: RaceOp) -> (u16, Value) {
    match op {
        RaceOp::Share(set) => share(app, owner, id, &body(true, RACE_TAGS[set], true)).await,
        RaceOp::LinkOnly => share(app, owner, id, &body(false, &[], false)).await,
        RaceOp::Delete => delete_share(app, Some(owner), &id.to_string()).await,
    }
}

/// Thirty rounds of 2-4 concurrent requests on each of two media (one copied straight to the
/// public prefix, one staged for the watermark function), chaos on: community shares with varying
/// tags, `shareToCommunity: false`, and (if `deletes`) `DELETE`. After every round, every record,
/// object, marker, tag item and code agrees.
async fn race_shares(deletes: bool) {
    let env = TestEnv::new().await;
    canonical(&env, &["red", "green", "blue"]).await;
    let owner = env.user(0, false).await;
    let gif = media(&env, &owner, "loop.gif", LOOP, MediaSource::Upload).await;
    let png = media(&env, &owner, "photo.png", PNG, MediaSource::Upload).await;
    let app = Arc::new(env.chaos_app(CHAOS));
    let mut rng = 0x5eed_f5a7_u64;
    let mut seen = BTreeMap::<&str, usize>::new();
    for round in 0..30 {
        let mut ops = Vec::new();
        for id in [gif.media_id, png.media_id] {
            for _ in 0..2 + next(&mut rng) % 3 {
                let op = match next(&mut rng) % if deletes { 5 } else { 4 } {
                    0 | 1 => RaceOp::Share((next(&mut rng) % 3) as usize),
                    2 | 3 => RaceOp::LinkOnly,
                    _ => RaceOp::Delete,
                };
                ops.push((id, op));
            }
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(ops.len()));
        let tasks: Vec<_> = ops
            .iter()
            .map(|&(id, op)| {
                let (app, owner, barrier) = (app.clone(), owner.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    race_op(&app, &owner, id, op).await
                })
            })
            .collect();
        for (t, (id, op)) in tasks.into_iter().zip(&ops) {
            let (status, answer) = t.await.expect("race task");
            assert_eq!(status, 200, "round {round}: {op:?} of media {id}: {answer}");
        }
        let state = assert_consistent(&env, &format!("after round {round} ({ops:?})")).await;
        for m in state.media.values() {
            let shape = match (m["isShared"].as_bool(), m["shareToCommunity"].as_bool()) {
                (Some(true), Some(true)) => "in the community",
                (Some(true), _) => "link only",
                _ => "not shared",
            };
            *seen.entry(shape).or_default() += 1;
        }
    }
    // Every end state was reached: the rounds really raced the requests against each other.
    let shapes = if deletes { 3 } else { 2 };
    assert_eq!(seen.len(), shapes, "end states seen: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_shares_and_link_only_shares_leave_records_objects_and_tags_agreeing() {
    race_shares(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_shares_and_unshares_leave_records_objects_and_tags_agreeing() {
    race_shares(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_shares_by_path_make_one_record_and_one_code() {
    let env = TestEnv::new().await;
    canonical(&env, &["red"]).await;
    let owner = env.user(0, false).await;
    let path = format!("users/{owner}/direct/photo.png");
    env.app
        .blob
        .put(
            &env.app.config.user_media_bucket,
            &path,
            PNG.to_vec(),
            "image/png",
        )
        .await
        .unwrap();
    let app = Arc::new(env.chaos_app(CHAOS));
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let request = json!({ "filePath": path, "tags": ["red"], "policyAgreed": true }).to_string();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (app, owner, barrier, request) =
                (app.clone(), owner.clone(), barrier.clone(), request.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                share_by_path_raw(&app, Some(&owner), &request).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("share task"));
    }
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:#?}");
    let codes: BTreeSet<String> = answers
        .iter()
        .map(|(_, b)| b["shareCode"].to_string())
        .collect();
    let copies: BTreeSet<String> = answers
        .iter()
        .map(|(_, b)| b["communityMediaId"].to_string())
        .collect();
    assert_eq!((codes.len(), copies.len()), (1, 1), "{answers:#?}");
    let state = assert_consistent(&env, "after 8 concurrent shares by path").await;
    assert_eq!(state.media.len(), 1, "one media record for the path");
    assert_eq!(state.codes.len(), 1, "one share code");
    assert_eq!(state.records.len(), 1, "one community record");
    assert_eq!(
        (state.staging.len(), state.public.len()),
        (1, 0),
        "an upload image is staged, never public"
    );
    let m = state.media.values().next().unwrap();
    assert_eq!(m["filePath"], path.as_str());
    assert_eq!(m["ownerId"], owner.as_str());
}

/// Holds every DynamoDB transaction of the client it is on for `ms` before the emulator applies
/// it (as a slow or retried request is), and says when the first one left.
#[derive(Clone, Debug)]
struct SlowTransactions {
    ms: u64,
    sent: Arc<AtomicBool>,
}

impl aws_sdk_dynamodb::config::Intercept for SlowTransactions {
    fn name(&self) -> &'static str {
        "SlowTransactions"
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut<
            '_,
        >,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let request = context.request_mut();
        let transaction = request
            .headers()
            .get("x-amz-target")
            .is_some_and(|t| t.ends_with(".TransactWriteItems"));
        if transaction {
            request
                .headers_mut()
                .insert("x-joip-latency-ms", self.ms.to_string());
            self.sent.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Another App on the same table and buckets whose DynamoDB transactions arrive `ms` late; the
/// flag turns true when the first one is sent.
fn app_with_slow_transactions(env: &TestEnv, ms: u64) -> (App, Arc<AtomicBool>) {
    let sent = Arc::new(AtomicBool::new(false));
    let db = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&env.sdk)
            .interceptor(SlowTransactions {
                ms,
                sent: sent.clone(),
            })
            .build(),
    );
    let app = App::from_clients(
        env.app.config.clone(),
        &env.sdk,
        db,
        env.app.blob.client().clone(),
    );
    (app, sent)
}

/// Waits (at most 20 s) until `done` says so.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unshare_racing_a_community_share_leaves_no_copy_behind() {
    let env = TestEnv::new().await;
    canonical(&env, &["red"]).await;
    let owner = env.user(0, false).await;
    let gif = media(&env, &owner, "loop.gif", LOOP, MediaSource::Upload).await;
    shared(&env.app, &owner, gif.media_id, &body(false, &[], false)).await;
    // The unshare has found no copy to remove; its revoke arrives late.
    let (slow, sent) = app_with_slow_transactions(&env, 1_500);
    let unshare = tokio::spawn({
        let (owner, id) = (owner.clone(), gif.media_id.to_string());
        async move { delete_share(&slow, Some(&owner), &id).await }
    });
    until("the unshare's revoke", || sent.load(Ordering::SeqCst)).await;
    // Meanwhile a community share completes.
    let answer = shared(&env.app, &owner, gif.media_id, &body(true, &["red"], false)).await;
    assert!(answer["communityMediaId"].is_u64());
    let (status, body) = unshare.await.expect("unshare task");
    assert_eq!((status, body), (200, json!({ "success": true })));
    // In either serial order the copy exists exactly when the media says it is in the community:
    // share then unshare leaves nothing; unshare then share leaves the copy and a live code.
    assert_consistent(&env, "after an unshare raced a community share").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_share_racing_an_unshare_answers_a_live_code() {
    let env = TestEnv::new().await;
    canonical(&env, &["red"]).await;
    let owner = env.user(0, false).await;
    // An upload image: its share copies it to staging, which is what is slowed here.
    let gif = media(&env, &owner, "photo.png", PNG, MediaSource::Upload).await;
    shared(&env.app, &owner, gif.media_id, &body(false, &[], false)).await;
    // The share has read the media's code and is copying (slowly) when the unshare runs.
    let counter = FailNthCopy::counter();
    let slow = env.app_with_s3_interceptor(Latency {
        copy_ms: 1_500,
        counter: counter.clone(),
    });
    let share_task = tokio::spawn({
        let (owner, id) = (owner.clone(), gif.media_id);
        async move { share(&slow, &owner, id, &body(true, &["red"], true)).await }
    });
    until("the share's copy", || counter.copies() >= 1).await;
    let (status, body) = delete_share(&env.app, Some(&owner), &gif.media_id.to_string()).await;
    assert_eq!((status, body), (200, json!({ "success": true })));
    let (status, answer) = share_task.await.expect("share task");
    assert_eq!(status, 200, "{answer}");
    // Whatever the order, the code a 200 share answers opens the media.
    let code = answer["shareCode"].as_str().expect("a code");
    let (status, link) = resolve(&env.app, code).await;
    assert_eq!(status, 200, "the answered code {code} is live: {link}");
    assert_consistent(&env, "after a community share raced an unshare").await;
}

// ---- isolation and bad input ------------------------------------------------------------------

#[tokio::test]
async fn another_users_media_is_not_found_and_nothing_changes() {
    let env = TestEnv::new().await;
    canonical(&env, &["red"]).await;
    let alice = env.user(0, false).await;
    let bob = env.user(0, false).await;
    let gif = media(&env, &alice, "loop.gif", LOOP, MediaSource::Upload).await;
    let png = media(&env, &alice, "photo.png", PNG, MediaSource::Upload).await;
    shared(&env.app, &alice, gif.media_id, &body(true, &["red"], false)).await;
    let id = gif.media_id.to_string();
    for request in [
        body(true, &["red"], true),
        body(false, &[], false),
        json!({}),
    ] {
        refused(
            &env,
            &format!("bob shares alice's shared media with {request}"),
            share(&env.app, &bob, gif.media_id, &request),
            404,
            NOT_FOUND,
        )
        .await;
        refused(
            &env,
            &format!("bob shares alice's unshared media with {request}"),
            share(&env.app, &bob, png.media_id, &request),
            404,
            NOT_FOUND,
        )
        .await;
    }
    refused(
        &env,
        "bob unshares alice's media",
        delete_share(&env.app, Some(&bob), &id),
        404,
        NOT_FOUND,
    )
    .await;
    // By path, another user's key is not a path of the caller's at all: the same answer whether
    // or not the object exists, so nothing can be probed.
    for path in [
        png.file_path.clone(),
        format!("users/{alice}/uploads/nothing-here.png"),
    ] {
        refused(
            &env,
            &format!("bob shares alice's path {path}"),
            share_by_path_raw(
                &env.app,
                Some(&bob),
                &json!({ "filePath": path, "shareToCommunity": false }).to_string(),
            ),
            400,
            INVALID_PATH,
        )
        .await;
    }
    let m = media_now(&env, png.media_id).await;
    assert!(
        !m.is_shared && m.share_code.is_none(),
        "alice's media untouched"
    );
}

#[tokio::test]
async fn missing_media_is_not_found() {
    let env = TestEnv::new().await;
    let owner = env.user(0, false).await;
    let gif = media(&env, &owner, "loop.gif", LOOP, MediaSource::Upload).await;
    for id in [
        (gif.media_id.0 + 1000).to_string(),
        "9007199254740991".into(),
    ] {
        refused(
            &env,
            &format!("share {id}"),
            post_share(&env.app, Some(&owner), &id, Some("{}")),
            404,
            NOT_FOUND,
        )
        .await;
        refused(
            &env,
            &format!("unshare {id}"),
            delete_share(&env.app, Some(&owner), &id),
            404,
            NOT_FOUND,
        )
        .await;
    }
}

#[tokio::test]
async fn invalid_media_ids_are_refused() {
    let env = TestEnv::new().await;
    let owner = env.user(0, false).await;
    media(&env, &owner, "loop.gif", LOOP, MediaSource::Upload).await;
    for id in [
        "0",
        "-1",
        "1.5",
        "abc",
        "9007199254740993",
        "9007199254740992",
        "01",
        "+1",
        "1e3",
        "0x1",
    ] {
        refused(
            &env,
            &format!("share {id}"),
            post_share(&env.app, Some(&owner), id, Some("{}")),
            400,
            INVALID_ID,
        )
        .await;
        refused(
            &env,
            &format!("unshare {id}"),
            delete_share(&env.app, Some(&owner), id),
            400,
            INVALID_ID,
        )
        .await;
    }
}

#[tokio::test]
async fn no_identity_is_unauthorized() {
    let env = TestEnv::new().await;
    let owner = env.user(0, false).await;
    let gif = media(&env, &owner, "loop.gif", LOOP, MediaSource::Upload).await;
    let id = gif.media_id.to_string();
    for id in [id.as_str(), "abc"] {
        refused(
            &env,
            &format!("anonymous share {id}"),
            post_share(&env.app, None, id, Some("{}")),
            401,
            "Unauthorized",
        )
        .await;
        refused(
            &env,
            &format!("anonymous unshare {id}"),
            delete_share(&env.app, None, id),
            401,
            "Unauthorized",
        )
        .await;
    }
    refused(
        &env,
        "anonymous share by path",
        share_by_path_raw(
            &env.app,
            None,
            &json!({ "filePath": gif.file_path }).to_string(),
        ),
        401,
        "Unauthorized",
    )
    .await;
}

#[tokio::test]
async fn malformed_bodies_are_refused_without_a_change() {
    let env = TestEnv::new().await;
    let owner = env.user(0, false).await;
    let gif = media(&env, &owner, "loop.gif", LOOP, MediaSource::Upload).await;
    let id = gif.media_id.to_string();
    let common = [
        "{",
        "not json",
        "[]",
        r#"[{"shareToCommunity":false}]"#,
        r#""text""#,
        "1",
        "null",
        "true",
        r#"{"shareToCommunity":"yes"}"#,
        r#"{"shareToCommunity":1}"#,
        r#"{"shareToCommunity":null}"#,
        r#"{"tags":"red"}"#,
        r#"{"tags":[1]}"#,
        r#"{"tags":[null]}"#,
        r#"{"tags":{"red":true}}"#,
        r#"{"policyAgreed":"true"}"#,
        r#"{"policyAgreed":1}"#,
        r#"{"shareToCommunity":false,"extra":1}"#,
        r#"{"ShareToCommunity":false}"#,
    ];
    for raw in common.iter().copied().chain([r#"{"filePath":"x"}"#]) {
        refused(
            &env,
            &format!("share with {raw}"),
            post_share(&env.app, Some(&owner), &id, Some(raw)),
            400,
            INVALID_BODY,
        )
        .await;
    }
    let path = &gif.file_path;
    let by_path: Vec<String> = common
        .iter()
        .map(|raw| match serde_json::from_str::<Value>(raw) {
            // Keep the broken field next to a valid path.
            Ok(Value::Object(mut fields)) => {
                fields.insert("filePath".into(), json!(path));
                Value::Object(fields).to_string()
            }
            _ => raw.to_string(),
        })
        .chain([
            "{}".to_string(),
            String::new(),
            r#"{"filePath":1}"#.into(),
            r#"{"filePath":null}"#.into(),
            r#"{"filePath":["a"]}"#.into(),
            json!({ "filePath": path, "id": 1 }).to_string(),
        ])
        .collect();
    for raw in &by_path {
        refused(
            &env,
            &format!("share by path with {raw}"),
            share_by_path_raw(&env.app, Some(&owner), raw),
            400,
            INVALID_BODY,
        )
        .await;
    }
}

// ---- the share contract -----------------------------------------------------------------------

#[tokio::test]
async fn sharing_a_gif_publishes_a_copy_under_the_community_prefix() {
    // Staged whole by the share (the default), then handed over (larger than the stage limit).
    for handed_over in [false, true] {
        gif_share(handed_over).await;
    }
}

async fn gif_share(handed_over: bool) {
    let mut env = TestEnv::new().await;
    if handed_over {
        env.app.config.stage_max_bytes = 0;
    }
    canonical(&env, &["loop"]).await;
    let owner = env.user(0, false).await;
    let gif = media(&env, &owner, "loop.gif", LOOP, MediaSource::Upload).await;
    // shareToCommunity defaults to true; a GIF needs no policy confirmation.
    let answer = shared(&env.app, &owner, gif.media_id, &json!({ "tags": ["loop"] })).await;
    assert_eq!(
        keys_of(&answer),
        set(&[
            "shareCode",
            "shareUrl",
            "linkExpiresAt",
            "maxViews",
            "communityUrl",
            "communityMediaId"
        ])
    );
    let code = answer["shareCode"].as_str().unwrap();
    assert_uuid_v4(code);
    assert_eq!(answer["shareUrl"], format!("/shared/media/{code}"));
    let cid = answer["communityMediaId"].as_u64().expect("a number");
    let url = answer["communityUrl"].as_str().unwrap();

    let pending = env
        .app
        .store
        .community_media(cid)
        .await
        .unwrap()
        .expect("record");
    assert_eq!(pending.status, CommunityStatus::Pending, "published later");
    assert_eq!(
        object_at(url).await,
        None,
        "nothing public from the request"
    );
    let source = pending.handover.clone().expect("published as is");
    let staging = pending.staging_key.clone().expect("a staging key");
    let general = &env.app.config.general_bucket;
    let staged = env.app.blob.get(general, &staging).await.unwrap();
    let source = (source.bucket.as_str(), source.key.as_str());
    if handed_over {
        let original = (env.app.config.user_media_bucket.as_str(), &*gif.file_path);
        assert_eq!(source, original, "the original, not a copy");
        assert_eq!(staged, Vec::<u8>::new(), "an empty hand-over marker");
    } else {
        assert_eq!(source, (general.as_str(), &*staging), "its staged copy");
        assert_eq!(staged, LOOP, "the original's bytes");
    }
    assert_eq!(env.publish_staged().await, 1);

    let record = env
        .app
        .store
        .community_media(cid)
        .await
        .unwrap()
        .expect("record");
    assert_eq!(record.status, CommunityStatus::Ready);
    assert_eq!(record.media_id, gif.media_id);
    assert_eq!(record.mime_type, "image/gif");
    assert_eq!(record.tags, ["loop"]);
    let segments: Vec<&str> = record.key.split('/').collect();
    assert_eq!(segments.len(), 4, "community/xx/yy/name: {}", record.key);
    assert_eq!(segments[0], "community");
    for level in &segments[1..3] {
        assert!(
            level.len() == 2 && level.bytes().all(|b| b.is_ascii_hexdigit()),
            "hashed prefix levels: {}",
            record.key
        );
    }
    assert!(record.key.ends_with(".gif"), "{}", record.key);
    assert_eq!(
        url,
        format!("{}/{}", env.app.config.public_base_url, record.key)
    );
    assert_eq!(record.url, url);
    assert_eq!(
        object_at(url).await.as_deref(),
        Some(LOOP),
        "the same bytes"
    );

    let m = media_now(&env, gif.media_id).await;
    assert!(m.is_shared && m.share_to_community);
    assert_eq!(m.share_code.as_deref(), Some(code));
    assert_eq!(m.community_media_id, Some(cid));
    let state = assert_consistent(&env, "after a GIF share").await;
    assert!(state.staging.is_empty());
    assert_eq!(state.public.len(), 1);
}

#[tokio::test]
async fn sharing_an_upload_image_stages_it_and_keeps_it_private() {
    let env = TestEnv::new().await;
    canonical(&env, &["red"]).await;
    let owner = env.user(0, false).await;
    for (name, bytes, mime) in [
        ("photo.png", PNG.to_vec(), "image/png"),
        ("photo.jpg", PHOTO.to_vec(), "image/jpeg"),
        ("photo.webp", webp(), "image/webp"),
    ] {
        let item = media(&env, &owner, name, &bytes, MediaSource::Upload).await;
        let answer = shared(&env.app, &owner, item.media_id, &body(true, &["red"], true)).await;
        assert_eq!(
            keys_of(&answer),
            set(&[
                "shareCode",
                "shareUrl",
                "linkExpiresAt",
                "maxViews",
                "communityUrl",
                "communityMediaId"
            ]),
            "{name}"
        );
        let cid = answer["communityMediaId"].as_u64().unwrap();
        let record = env
            .app
            .store
            .community_media(cid)
            .await
            .unwrap()
            .expect("record");
        assert_eq!(record.status, CommunityStatus::Pending, "{name}");
        assert_eq!(record.mime_type, mime);
        let staged = record.staging_key.clone().expect("a staging key");
        assert!(staged.starts_with("staging/"), "{staged}");
        let copy = env
            .app
            .blob
            .get(&env.app.config.general_bucket, &staged)
            .await
            .expect("the staged original");
        assert_eq!(copy, bytes, "{name}: the watermark function's input");
        let public = object_at(answer["communityUrl"].as_str().unwrap()).await;
        assert_eq!(public, None, "{name}: nothing public before the watermark");
        let staged_url = format!("{}/{staged}", env.app.config.public_base_url);
        let (status, _) = http_get(&staged_url).await;
        assert_eq!(status, 403, "{name}: the staged original is private");
        let m = media_now(&env, item.media_id).await;
        assert!(m.is_shared && m.share_to_community);
        assert_eq!(m.community_media_id, Some(cid));
    }
    let state = assert_consistent(&env, "after upload image shares").await;
    assert!(state.public.is_empty(), "no unwatermarked upload is public");
    assert_eq!(state.staging.len(), 3);
    let page = feed_page(&env.app, &[]).await;
    assert_eq!(
        feed_ids(&page),
        Vec::<u64>::new(),
        "pending copies are not listed"
    );
    let page = feed_page(&env.app, &[("tag", "red")]).await;
    assert_eq!(
        feed_ids(&page),
        Vec::<u64>::new(),
        "not in the tag's feed either"
    );
}

#[tokio::test]
async fn generated_media_videos_and_gifs_need_neither_tags_nor_policy() {
    let env = TestEnv::new().await;
    canonical(&env, &["red"]).await;
    let owner = env.user(0, false).await;
    let cases = [
        (
            MediaSource::SmartCaption,
            "caption.png",
            PNG,
            "image",
            "png",
        ),
        (MediaSource::Babecock, "studio.jpg", PHOTO, "image", "jpg"),
        (MediaSource::Hypnococks, "render.mp4", CLIP, "video", "mp4"),
        (MediaSource::Upload, "clip.mp4", CLIP, "video", "mp4"),
        (MediaSource::Upload, "loop.gif", LOOP, "gif", "gif"),
        (MediaSource::SmartCaption, "loop.gif", LOOP, "gif", "gif"),
    ];
    let mut published = BTreeMap::new();
    for (source, name, bytes, kind, ext) in cases {
        let item = media(&env, &owner, name, bytes, source).await;
        // An empty body takes the defaults: shared to the community, no tags, no policy.
        let (status, answer) =
            post_share(&env.app, Some(&owner), &item.media_id.to_string(), None).await;
        assert_eq!(status, 200, "{source:?} {name}: {answer}");
        let cid = answer["communityMediaId"].as_u64().expect("a copy");
        assert_eq!(env.publish_staged().await, 1, "{source:?} {name}");
        let record = env.app.store.community_media(cid).await.unwrap().unwrap();
        assert_eq!(record.status, CommunityStatus::Ready, "{source:?} {name}");
        assert!(record.key.starts_with("community/") && record.key.ends_with(ext));
        let copy = object_at(answer["communityUrl"].as_str().unwrap()).await;
        assert_eq!(copy.as_deref(), Some(bytes), "{source:?} {name}");
        published.insert(cid, (kind, item.mime_type.clone()));
    }
    // Other sources may send tags (canonical ones).
    let tagged = media(&env, &owner, "tagged.png", PNG, MediaSource::Hypnococks).await;
    let answer = shared(
        &env.app,
        &owner,
        tagged.media_id,
        &body(true, &["red"], false),
    )
    .await;
    let cid = answer["communityMediaId"].as_u64().unwrap();
    assert_eq!(env.publish_staged().await, 1);
    let record = env.app.store.community_media(cid).await.unwrap().unwrap();
    assert_eq!(record.tags, ["red"]);
    published.insert(cid, ("image", "image/png".into()));

    let page = feed_page(&env.app, &[]).await;
    for entry in page["media"].as_array().unwrap() {
        let cid = entry["communityMediaId"].as_u64().unwrap();
        let (kind, mime) = &published[&cid];
        assert_eq!(
            (entry["type"].as_str(), entry["mimeType"].as_str()),
            (Some(*kind), Some(mime.as_str()))
        );
    }
    assert_eq!(feed_ids(&page).len(), published.len(), "every copy listed");
    let state = assert_consistent(&env, "after generated media shares").await;
    assert!(state.staging.is_empty(), "every hand-over is done with");
}

#[tokio::test]
async fn upload_images_need_policy_and_up_to_ten_canonical_tags() {
    let env = TestEnv::new().await;
    let eleven: Vec<String> = (1..=11).map(|i| format!("t{i:02}")).collect();
    let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();
    canonical(&env, &eleven).await;
    let owner = env.user(0, false).await;
    let png = media(&env, &owner, "photo.png", PNG, MediaSource::Upload).await;
    let jpg = media(&env, &owner, "photo.jpg", PHOTO, MediaSource::Upload).await;
    let webp = media(&env, &owner, "photo.webp", &webp(), MediaSource::Upload).await;
    let cases: Vec<(Value, String)> = vec![
        (json!({ "tags": ["t01"] }), POLICY_REQUIRED.into()),
        (body(true, &["t01"], false), POLICY_REQUIRED.into()),
        (json!({}), POLICY_REQUIRED.into()),
        (json!({ "policyAgreed": true }), TAG_REQUIRED.into()),
        (body(true, &[], true), TAG_REQUIRED.into()),
        (
            body(true, &["nope", "t01", "other"], true),
            "Unknown tags: nope, other".into(),
        ),
        (
            body(true, &eleven, true),
            "At most 10 tags are allowed".into(),
        ),
    ];
    for item in [&png, &jpg, &webp] {
        for (request, message) in &cases {
            refused(
                &env,
                &format!("share {} with {request}", item.mime_type),
                share(&env.app, &owner, item.media_id, request),
                400,
                message,
            )
            .await;
        }
    }
    // Ten distinct tags after trimming, lower-casing and de-duplicating are allowed.
    let mut ten: Vec<String> = eleven[..10].iter().map(|t| t.to_string()).collect();
    ten.push(" T01 ".into());
    ten.push("t10".into());
    let answer = shared(
        &env.app,
        &owner,
        png.media_id,
        &json!({ "tags": ten, "policyAgreed": true }),
    )
    .await;
    let cid = answer["communityMediaId"].as_u64().unwrap();
    let record = env.app.store.community_media(cid).await.unwrap().unwrap();
    assert_eq!(record.tags, eleven[..10]);
    // Without the community, neither is needed.
    let answer = shared(&env.app, &owner, jpg.media_id, &body(false, &[], false)).await;
    assert_eq!(
        keys_of(&answer),
        set(&["shareCode", "shareUrl", "linkExpiresAt", "maxViews"])
    );
    assert_consistent(&env, "after upload image shares").await;
}

#[tokio::test]
async fn tags_are_trimmed_lowercased_and_deduplicated() {
    let env = TestEnv::new().await;
    canonical(&env, &["brunette", "solo"]).await;
    let owner = env.user(0, false).await;
    let png = media(&env, &owner, "photo.png", PNG, MediaSource::Upload).await;
    let answer = shared(
        &env.app,
        &owner,
        png.media_id,
        &body(true, &[" Brunette ", "SOLO", "brunette", "solo\t"], true),
    )
    .await;
    let cid = answer["communityMediaId"].as_u64().unwrap();
    let record = env.app.store.community_media(cid).await.unwrap().unwrap();
    assert_eq!(record.tags, ["brunette", "solo"]);
    let state = assert_consistent(&env, "after a share with messy tags").await;
    assert_eq!(state.tag_items[&cid].len(), 2);
}

#[tokio::test]
async fn unknown_tags_are_refused_for_every_source() {
    let env = TestEnv::new().await;
    canonical(&env, &["red"]).await;
    let owner = env.user(0, false).await;
    for (source, bytes) in [
        (MediaSource::SmartCaption, PNG),
        (MediaSource::Babecock, PHOTO),
        (MediaSource::Hypnococks, CLIP),
        (MediaSource::Upload, LOOP),
    ] {
        let item = media(&env, &owner, "m", bytes, source).await;
        refused(
            &env,
            &format!("{source:?} with unknown tags"),
            share(
                &env.app,
                &owner,
                item.media_id,
                &body(true, &["red", "made-up", "Blue "], false),
            ),
            400,
            "Unknown tags: made-up, blue",
        )
        .await;
    }
}

#[tokio::test]
async fn the_share_code_is_a_uuid_v4_stable_across_reshares() {
    let env = TestEnv::new().await;
    canonical(&env, &["red", "blue"]).await;
    let owner = env.user(0, false).await;
    let gif = media(&env, &owner, "loop.gif", LOOP, MediaSource::Upload).await;
    let first = shared(&env.app, &owner, gif.media_id, &body(false, &[], false)).await;
    assert_eq!(
        keys_of(&first),
        set(&["shareCode", "shareUrl", "linkExpiresAt", "maxViews"]),
        "no community fields"
    );
    let code = first["shareCode"].as_str().unwrap().to_string();
    assert_uuid_v4(&code);
    let m = media_now(&env, gif.media_id).await;
    assert!(m.is_shared && !m.share_to_community);
    assert_eq!(m.share_code.as_deref(), Some(code.as_str()));
    for request in [
        json!({}),
        body(true, &["red"], false),
        body(true, &["blue"], true),
        body(false, &["red"], true),
        json!({ "shareToCommunity": false }),
        body(true, &[], false),
    ] {
        let answer = shared(&env.app, &owner, gif.media_id, &request).await;
        assert_eq!(answer["shareCode"], code.as_str(), "{request}");
        assert_eq!(answer["shareUrl"], format!("/shared/media/{code}"));
    }
    let state = assert_consistent(&env, "after re-shares").await;
    assert_eq!(state.codes.len(), 1, "one code ever");
    // Codes of different media differ.
    let other = media(&env, &owner, "other.gif", LOOP, MediaSource::Upload).await;
    let answer = shared(&env.app, &owner, other.media_id, &body(false, &[], false)).await;
    assert_ne!(answer["shareCode"], code.as_str());
}

#[tokio::test]
async fn sharing_without_community_removes_the_copy_and_keeps_the_code() {
    let env = TestEnv::new().await;
    canonical(&env, &["red", "blue"]).await;
    let owner = env.user(0, false).await;
    let gif = media(&env, &owner, "loop.gif", LOOP, MediaSource::Upload).await;
    let png = media(&env, &owner, "photo.png", PNG, MediaSource::Upload).await;
    let mut urls = Vec::new();
    let mut codes = Vec::new();
    for item in [&gif, &png] {
        let answer = shared(
            &env.app,
            &owner,
            item.media_id,
            &body(true, &["red", "blue"], true),
        )
        .await;
        urls.push(answer["communityUrl"].as_str().unwrap().to_string());
        codes.push(answer["shareCode"].as_str().unwrap().to_string());
    }
    let state = assert_consistent(&env, "after the shares").await;
    assert_eq!(
        (state.records.len(), state.public.len(), state.staging.len()),
        (2, 0, 2)
    );
    // The GIF's hand-over only: the image stays pending (staged).
    let gif_marker = state
        .staging
        .iter()
        .find(|k| k.ends_with(".gif"))
        .expect("the GIF's hand-over")
        .clone();
    let published = joip::service::publish::process_staged(&env.app, &gif_marker).await;
    assert_eq!(
        published.unwrap(),
        joip::service::publish::Processed::Published
    );
    let state = assert_consistent(&env, "after publishing the GIF").await;
    assert_eq!(
        (state.records.len(), state.public.len(), state.staging.len()),
        (2, 1, 1)
    );
    assert_eq!(state.tag_items.values().map(Vec::len).sum::<usize>(), 4);

    for (item, code) in [&gif, &png].into_iter().zip(&codes) {
        let answer = shared(&env.app, &owner, item.media_id, &body(false, &[], false)).await;
        assert_eq!(
            answer,
            json!({
                "shareCode": code,
                "shareUrl": format!("/shared/media/{code}"),
                "linkExpiresAt": null,
                "maxViews": null,
            })
        );
        let m = media_now(&env, item.media_id).await;
        assert!(m.is_shared && !m.share_to_community, "the link stays");
        assert_eq!(m.share_code.as_ref(), Some(code));
        assert_eq!(m.community_media_id, None);
        let (status, _) = resolve(&env.app, code).await;
        assert_eq!(status, 200, "the kept code still opens the media");
    }
    let state = assert_consistent(&env, "after shareToCommunity: false").await;
    assert!(state.records.is_empty(), "no community record");
    assert!(state.markers.is_empty(), "no marker");
    assert!(state.tag_items.is_empty(), "no tag items");
    assert!(
        state.public.is_empty() && state.staging.is_empty(),
        "no object"
    );
    assert_eq!(state.codes.len(), 2, "both codes kept");
    for url in &urls {
        assert_eq!(object_at(url).await, None, "the community copy is gone");
    }
    assert_eq!(feed_ids(&feed_page(&env.app, &[]).await), Vec::<u64>::new());
    assert_eq!(
        feed_ids(&feed_page(&env.app, &[("tag", "red")]).await),
        Vec::<u64>::new()
    );
}

#[tokio::test]
async fn resharing_with_other_tags_replaces_them_and_keeps_the_record() {
    let env = TestEnv::new().await;
    canonical(&env, &["red", "green", "blue"]).await;
    let owner = env.user(0, false).await;
    let gif = media(&env, &owner, "loop.gif", LOOP, MediaSource::Upload).await;
    let first = shared(
        &env.app,
        &owner,
        gif.media_id,
        &body(true, &["red", "green"], false),
    )
    .await;
    let cid = first["communityMediaId"].as_u64().unwrap();
    assert_eq!(env.publish_staged().await, 1);
    let before = assert_consistent(&env, "after the first share").await;
    let second = shared(
        &env.app,
        &owner,
        gif.media_id,
        &body(true, &["green", "blue"], false),
    )
    .await;
    assert_eq!(second["communityMediaId"], cid, "the same copy");
    assert_eq!(second["communityUrl"], first["communityUrl"]);
    assert_eq!(second["shareCode"], first["shareCode"]);
    let after = assert_consistent(&env, "after the re-share").await;
    assert_eq!(after.records.len(), 1);
    assert_eq!(after.public, before.public, "the same object");
    let record = env.app.store.community_media(cid).await.unwrap().unwrap();
    assert_eq!(record.tags, ["green", "blue"]);
    for (tag, listed) in [("red", false), ("green", true), ("blue", true)] {
        let page = feed_page(&env.app, &[("tag", tag)]).await;
        let expected = if listed { vec![cid] } else { vec![] };
        assert_eq!(feed_ids(&page), expected, "tag {tag}");
        if listed {
            assert_eq!(page["media"][0]["tags"], json!(["green", "blue"]));
        }
    }
    let page = feed_page(&env.app, &[]).await;
    assert_eq!(page["media"][0]["tags"], json!(["green", "blue"]));
}

#[tokio::test]
async fn unsharing_removes_the_code_and_the_copy_and_is_idempotent() {
    let env = TestEnv::new().await;
    canonical(&env, &["red"]).await;
    let owner = env.user(0, false).await;
    let gif = media(&env, &owner, "loop.gif", LOOP, MediaSource::Upload).await;
    let png = media(&env, &owner, "photo.png", PNG, MediaSource::Upload).await;
    let never = media(&env, &owner, "never.gif", LOOP, MediaSource::Upload).await;
    let mut codes = Vec::new();
    for item in [&gif, &png] {
        let answer = shared(&env.app, &owner, item.media_id, &body(true, &["red"], true)).await;
        codes.push(answer["shareCode"].as_str().unwrap().to_string());
    }
    for (item, code) in [&gif, &png].into_iter().zip(&codes) {
        let id = item.media_id.to_string();
        let (status, answer) = delete_share(&env.app, Some(&owner), &id).await;
        assert_eq!((status, answer), (200, json!({ "success": true })));
        let m = media_now(&env, item.media_id).await;
        assert!(!m.is_shared && !m.share_to_community);
        assert_eq!((m.share_code, m.community_media_id), (None, None));
        refused(
            &env,
            "the revoked code",
            resolve(&env.app, code),
            404,
            LINK_NOT_FOUND,
        )
        .await;
        // Again: the same answer, and nothing changes.
        let before = env.snapshot().await;
        let (status, answer) = delete_share(&env.app, Some(&owner), &id).await;
        assert_eq!((status, answer), (200, json!({ "success": true })));
        assert_eq!(
            env.snapshot().await,
            before,
            "a second unshare changes nothing"
        );
    }
    let state = assert_consistent(&env, "after unsharing").await;
    assert!(state.records.is_empty() && state.markers.is_empty() && state.tag_items.is_empty());
    assert!(state.public.is_empty() && state.staging.is_empty() && state.codes.is_empty());
    let (status, answer) = delete_share(&env.app, Some(&owner), &never.media_id.to_string()).await;
    assert_eq!(
        (status, answer),
        (200, json!({ "success": true })),
        "never shared"
    );

    // Sharing again makes a new code; the old one stays dead.
    let again = shared(&env.app, &owner, gif.media_id, &body(false, &[], false)).await;
    assert_ne!(again["shareCode"], codes[0].as_str());
    assert_uuid_v4(again["shareCode"].as_str().unwrap());
    let (status, _) = resolve(&env.app, &codes[0]).await;
    assert_eq!(status, 404);
    let (status, _) = resolve(&env.app, again["shareCode"].as_str().unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn each_share_is_logged_without_the_whole_code() {
    let env = TestEnv::new().await;
    canonical(&env, &["red"]).await;
    let owner = env.user(0, false).await;
    let gif = media(&env, &owner, "loop.gif", LOOP, MediaSource::Upload).await;
    let png = media(&env, &owner, "photo.png", PNG, MediaSource::Upload).await;
    let mut expected = BTreeSet::new();
    let mut codes = BTreeSet::new();
    for (item, request, status) in [
        (&gif, body(false, &[], false), "none"),
        (&gif, body(true, &["red"], false), "pending"),
        (&png, body(true, &["red"], true), "pending"),
    ] {
        let answer = shared(&env.app, &owner, item.media_id, &request).await;
        codes.insert(answer["shareCode"].as_str().unwrap().to_string());
        expected.insert((item.media_id.0, status.to_string()));
    }
    // A refused share logs nothing.
    let (status, _) = share(&env.app, &owner, png.media_id, &body(true, &[], false)).await;
    assert_eq!(status, 400);
    let activity = env.app.store.activity(&owner).await.unwrap();
    assert_eq!(activity.len(), 3, "one entry per successful share");
    let mut logged = BTreeSet::new();
    for entry in &activity {
        assert_eq!(entry.action, "media_shared");
        assert_eq!(entry.feature, "media_gallery");
        let hint = entry.details["shareCode"].as_str().expect("a code hint");
        let code = codes
            .iter()
            .find(|c| c.starts_with(hint.trim_end_matches('…')))
            .expect("the hint is the start of a code");
        assert!(
            hint.len() < code.len() && !hint.contains(code.as_str()),
            "{hint}"
        );
        let all = serde_json::to_string(&entry.details).unwrap();
        assert!(
            codes.iter().all(|c| !all.contains(c.as_str())),
            "never the whole code: {all}"
        );
        logged.insert((
            entry.details["mediaId"].as_u64().expect("mediaId"),
            entry.details["communityStatus"]
                .as_str()
                .expect("communityStatus")
                .to_string(),
        ));
    }
    assert_eq!(logged, expected);
}

// ---- the public link ----------------------------------------------------------------------------

#[tokio::test]
async fn a_share_link_resolves_to_a_presigned_url_of_the_original() {
    let env = TestEnv::new().await;
    canonical(&env, &["red"]).await;
    let owner = env.user(0, false).await;
    let cases = [
        (
            "photo.png",
            PNG,
            "image",
            "image/png",
            body(false, &[], false),
        ),
        (
            "photo.jpg",
            PHOTO,
            "image",
            "image/jpeg",
            body(true, &["red"], true),
        ),
        (
            "clip.mp4",
            CLIP,
            "video",
            "video/mp4",
            body(false, &[], false),
        ),
        ("loop.gif", LOOP, "gif", "image/gif", json!({})),
    ];
    for (name, bytes, kind, mime, request) in cases {
        let item = media(&env, &owner, name, bytes, MediaSource::Upload).await;
        let answer = shared(&env.app, &owner, item.media_id, &request).await;
        let code = answer["shareCode"].as_str().unwrap();
        let before = env.snapshot().await;
        let earliest = joip::domain::rfc3339_millis(joip::domain::now_millis());
        let (status, link) = resolve(&env.app, code).await;
        assert_eq!(status, 200, "{name}: {link}");
        let after = env.snapshot().await;
        let counts = |s: &support::Snapshot| -> Vec<String> {
            let views = s.items.iter().filter(|i| i.contains("\"LINKVIEWS#"));
            views.cloned().collect()
        };
        let (mut rest_before, mut rest_after) = (before.clone(), after.clone());
        rest_before.items.retain(|i| !i.contains("\"LINKVIEWS#"));
        rest_after.items.retain(|i| !i.contains("\"LINKVIEWS#"));
        assert_eq!(
            rest_after, rest_before,
            "resolving changes nothing but its count"
        );
        let earlier = counts(&before);
        let counted: Vec<String> = counts(&after)
            .into_iter()
            .filter(|c| !earlier.contains(c))
            .collect();
        assert_eq!(counted.len(), 1, "{name}: one view shard: {counted:?}");
        assert!(
            counted[0].contains(code) && counted[0].contains("\"views\":1"),
            "{name}: {counted:?}"
        );
        assert_eq!(
            keys_of(&link),
            set(&[
                "shareCode",
                "type",
                "mimeType",
                "size",
                "url",
                "expiresAt",
                "linkExpiresAt",
                "viewsLeft"
            ])
        );
        assert_eq!(link["shareCode"], code);
        assert_eq!(link["type"], kind, "{name}");
        assert_eq!(link["mimeType"], mime, "{name}");
        assert_eq!(link["size"], bytes.len() as u64, "{name}");
        let url = link["url"].as_str().unwrap();
        assert!(url.contains("X-Amz-Signature="), "presigned: {url}");
        let (status, got) = http_get(url).await;
        assert_eq!(
            (status, got.as_slice()),
            (200, bytes),
            "{name}: the original"
        );
        let expires = link["expiresAt"].as_str().unwrap();
        let latest = joip::domain::rfc3339_millis(
            joip::domain::now_millis() + 1000 * env.app.config.link_ttl_s as i64,
        );
        assert!(
            earliest.as_str() < expires && expires <= latest.as_str(),
            "{earliest} < {expires} <= {latest}"
        );
    }
}

#[tokio::test]
async fn unknown_malformed_and_revoked_codes_are_not_found() {
    let env = TestEnv::new().await;
    let owner = env.user(0, false).await;
    let gif = media(&env, &owner, "loop.gif", LOOP, MediaSource::Upload).await;
    let answer = shared(&env.app, &owner, gif.media_id, &body(false, &[], false)).await;
    let code = answer["shareCode"].as_str().unwrap().to_string();
    let simple = code.replace('-', "");
    for bad in [
        uuid::Uuid::new_v4().to_string(),
        "abc".into(),
        "00000000-0000-0000-0000-000000000000".into(),
        code.to_uppercase(),
        simple,
        format!("urn:uuid:{code}"),
        format!("{code}0"),
        code[..35].to_string(),
        format!("{}%2F..", &code[..8]),
    ] {
        refused(
            &env,
            &format!("resolve {bad}"),
            resolve(&env.app, &bad),
            404,
            LINK_NOT_FOUND,
        )
        .await;
    }
    let (status, _) = resolve(&env.app, &code).await;
    assert_eq!(status, 200);
    let (status, _) = delete_share(&env.app, Some(&owner), &gif.media_id.to_string()).await;
    assert_eq!(status, 200);
    refused(
        &env,
        "resolve the revoked code",
        resolve(&env.app, &code),
        404,
        LINK_NOT_FOUND,
    )
    .await;
}

// ---- the community feed -------------------------------------------------------------------------

#[tokio::test]
async fn the_feed_lists_ready_media_newest_first_and_filters_by_tag() {
    let env = TestEnv::new().await;
    canonical(&env, &["red", "blue", "green"]).await;
    let alice = env.user(0, false).await;
    let bob = env.user(0, false).await;
    let mut ready = Vec::new();
    let mut codes = Vec::new();
    let plan = [
        (&alice, "loop.gif", LOOP, MediaSource::Upload, vec!["red"]),
        (&bob, "clip.mp4", CLIP, MediaSource::Upload, vec!["blue"]),
        (
            &alice,
            "caption.png",
            PNG,
            MediaSource::SmartCaption,
            vec!["red", "blue"],
        ),
    ];
    for (owner, name, bytes, source, tags) in plan {
        let item = media(&env, owner, name, bytes, source).await;
        let answer = shared(&env.app, owner, item.media_id, &body(true, &tags, false)).await;
        ready.push(answer["communityMediaId"].as_u64().unwrap());
        codes.push(answer["shareCode"].as_str().unwrap().to_string());
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    assert_eq!(env.publish_staged().await, ready.len());
    // A pending upload image (tagged red) is never listed.
    let png = media(&env, &bob, "photo.png", PNG, MediaSource::Upload).await;
    let answer = shared(&env.app, &bob, png.media_id, &body(true, &["red"], true)).await;
    codes.push(answer["shareCode"].as_str().unwrap().to_string());
    let pending = answer["communityMediaId"].as_u64().unwrap();

    let page = feed_page(&env.app, &[]).await;
    let newest_first: Vec<u64> = ready.iter().rev().copied().collect();
    assert_eq!(feed_ids(&page), newest_first);
    assert!(page["nextCursor"].is_null());
    let entries = page["media"].as_array().unwrap();
    for entry in entries {
        assert_eq!(
            keys_of(entry),
            set(&[
                "communityMediaId",
                "url",
                "type",
                "mimeType",
                "tags",
                "createdAt"
            ])
        );
        let url = entry["url"].as_str().unwrap();
        assert!(
            object_at(url).await.is_some(),
            "every listed URL answers: {url}"
        );
    }
    let created: Vec<&str> = entries
        .iter()
        .map(|e| e["createdAt"].as_str().unwrap())
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "{created:?}");
    assert_eq!(entries[0]["type"], "image");
    assert_eq!(entries[0]["mimeType"], "image/png");
    assert_eq!(entries[0]["tags"], json!(["red", "blue"]));
    assert_eq!(entries[1]["type"], "video");
    assert_eq!(entries[2]["type"], "gif");

    let by_tag = |tag: &'static str| {
        let app = env.app.clone();
        async move { feed_ids(&feed_page(&app, &[("tag", tag)]).await) }
    };
    assert_eq!(by_tag("red").await, [ready[2], ready[0]]);
    assert_eq!(by_tag("blue").await, [ready[2], ready[1]]);
    assert_eq!(by_tag("green").await, Vec::<u64>::new());
    assert!(!feed_ids(&page).contains(&pending));

    // Nothing private: no owner, no user path, no share code.
    for query in [vec![], vec![("tag", "red")], vec![("tag", "blue")]] {
        let text = feed_page(&env.app, &query).await.to_string();
        for secret in [alice.as_str(), bob.as_str(), "users/", "staging/"]
            .into_iter()
            .chain(codes.iter().map(String::as_str))
        {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

#[tokio::test]
async fn paging_the_feed_returns_every_ready_record_once() {
    let env = TestEnv::new().await;
    canonical(&env, &["red", "blue"]).await;
    let owner = env.user(0, false).await;
    let mut ready = Vec::new();
    let mut red = Vec::new();
    // Eleven copies: every feed shard holds some.
    for i in 0..11 {
        let (name, bytes) = if i % 2 == 0 {
            ("loop.gif", LOOP)
        } else {
            ("clip.mp4", CLIP)
        };
        let item = media(&env, &owner, name, bytes, MediaSource::Upload).await;
        let tags: &[&str] = if i % 3 == 0 { &["red"] } else { &["blue"] };
        let answer = shared(&env.app, &owner, item.media_id, &body(true, tags, false)).await;
        let cid = answer["communityMediaId"].as_u64().unwrap();
        ready.push(cid);
        if i % 3 == 0 {
            red.push(cid);
        }
    }
    assert_eq!(env.publish_staged().await, ready.len());
    let png = media(&env, &owner, "photo.png", PNG, MediaSource::Upload).await;
    shared(&env.app, &owner, png.media_id, &body(true, &["red"], true)).await;
    ready.reverse();
    red.reverse();

    let all = feed_ids(&feed_page(&env.app, &[("limit", "100")]).await);
    assert_eq!(all, ready, "newest first, pending absent");
    for (tag, expected) in [(None, &ready), (Some("red"), &red)] {
        for limit in [1usize, 2, 3, 4, 11, 12] {
            let limit_text = limit.to_string();
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            let mut pages = 0;
            loop {
                let mut query = vec![("limit", limit_text.as_str())];
                if let Some(t) = tag {
                    query.push(("tag", t));
                }
                if let Some(c) = &cursor {
                    query.push(("cursor", c.as_str()));
                }
                let page = feed_page(&env.app, &query).await;
                pages += 1;
                let ids = feed_ids(&page);
                assert!(ids.len() <= limit);
                seen.extend(ids);
                match page["nextCursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => break,
                }
                assert!(pages <= expected.len() + 1, "the cursor makes progress");
            }
            assert_eq!(
                &seen, expected,
                "tag {tag:?}, limit {limit}: each once, in order"
            );
            assert_eq!(
                pages,
                expected.len().div_ceil(limit).max(1),
                "tag {tag:?}, limit {limit}"
            );
        }
    }
}

#[tokio::test]
async fn feed_limits_and_cursors_are_checked() {
    let env = TestEnv::new().await;
    canonical(&env, &["red"]).await;
    let owner = env.user(0, false).await;
    for _ in 0..3 {
        let item = media(&env, &owner, "loop.gif", LOOP, MediaSource::Upload).await;
        shared(
            &env.app,
            &owner,
            item.media_id,
            &body(true, &["red"], false),
        )
        .await;
    }
    assert_eq!(env.publish_staged().await, 3);
    for bad in ["0", "-1", "abc", "1.5", "", "1e2", "2x"] {
        refused(
            &env,
            &format!("limit {bad:?}"),
            feed(&env.app, &[("limit", bad)]),
            400,
            "Invalid limit",
        )
        .await;
    }
    for big in ["100", "101", "100000"] {
        let page = feed_page(&env.app, &[("limit", big)]).await;
        assert_eq!(
            feed_ids(&page).len(),
            3,
            "limit {big} is capped, not refused"
        );
    }
    let page = feed_page(&env.app, &[("limit", "1")]).await;
    let cursor = page["nextCursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let tag_page = feed_page(&env.app, &[("limit", "1"), ("tag", "red")]).await;
    let tag_cursor = tag_page["nextCursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let mut edited = cursor.clone().into_bytes();
    let mid = edited.len() / 2;
    edited[mid] = if edited[mid] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).unwrap();
    let cases: Vec<(String, Option<&str>)> = vec![
        (edited, None),
        (cursor[..cursor.len() - 1].to_string(), None),
        (format!("{cursor}A"), None),
        ("garbage".into(), None),
        ("a".repeat(2000), None),
        // A cursor is valid for the feed it was issued for only.
        (cursor.clone(), Some("red")),
        (tag_cursor.clone(), None),
    ];
    for (bad, tag) in &cases {
        let mut query = vec![("cursor", bad.as_str())];
        if let Some(t) = tag {
            query.push(("tag", t));
        }
        refused(
            &env,
            &format!("cursor {bad} for tag {tag:?}"),
            feed(&env.app, &query),
            400,
            "Invalid cursor",
        )
        .await;
    }
    let (status, _) = feed(&env.app, &[("cursor", &cursor)]).await;
    assert_eq!(status, 200, "the cursor as issued works");
}

// ---- sharing by path ----------------------------------------------------------------------------

#[tokio::test]
async fn sharing_by_path_shares_the_recorded_media() {
    let env = TestEnv::new().await;
    canonical(&env, &["loop"]).await;
    let owner = env.user(0, false).await;
    let gif = media(&env, &owner, "loop.gif", LOOP, MediaSource::Upload).await;
    let (status, answer) = share_by_path_raw(
        &env.app,
        Some(&owner),
        &json!({ "filePath": gif.file_path, "tags": ["loop"] }).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        keys_of(&answer),
        set(&[
            "shareCode",
            "shareUrl",
            "linkExpiresAt",
            "maxViews",
            "communityUrl",
            "communityMediaId"
        ])
    );
    let m = media_now(&env, gif.media_id).await;
    assert_eq!(m.share_code.as_deref(), answer["shareCode"].as_str());
    assert_eq!(m.community_media_id, answer["communityMediaId"].as_u64());
    let state = assert_consistent(&env, "after a share by path").await;
    assert_eq!(state.media.len(), 1, "no second record for a recorded path");
    // The same media by id: the same code and copy.
    let by_id = shared(
        &env.app,
        &owner,
        gif.media_id,
        &body(true, &["loop"], false),
    )
    .await;
    assert_eq!(by_id, answer);
    // Off the community by path.
    let (status, off) = share_by_path_raw(
        &env.app,
        Some(&owner),
        &json!({ "filePath": gif.file_path, "shareToCommunity": false }).to_string(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        keys_of(&off),
        set(&["shareCode", "shareUrl", "linkExpiresAt", "maxViews"])
    );
    assert_eq!(off["shareCode"], answer["shareCode"]);
    let state = assert_consistent(&env, "after unsharing by path").await;
    assert!(state.records.is_empty() && state.public.is_empty());
}

#[tokio::test]
async fn sharing_an_unrecorded_object_by_path_records_it_once() {
    let env = TestEnv::new().await;
    canonical(&env, &["red"]).await;
    let owner = env.user(0, false).await;
    let bucket = env.app.config.user_media_bucket.clone();
    // The client's claimed types are wrong: the record's type comes from the bytes.
    for (name, bytes, claimed, mime) in [
        ("photo.png", PNG, "text/plain", "image/png"),
        ("loop.gif", LOOP, "image/png", "image/gif"),
        ("clip.mp4", CLIP, "application/octet-stream", "video/mp4"),
    ] {
        let path = format!("users/{owner}/direct/{name}");
        env.app
            .blob
            .put(&bucket, &path, bytes.to_vec(), claimed)
            .await
            .unwrap();
        let request = json!({ "filePath": path, "shareToCommunity": false }).to_string();
        let (status, first) = share_by_path_raw(&env.app, Some(&owner), &request).await;
        assert_eq!(status, 200, "{name}: {first}");
        let code = first["shareCode"].as_str().unwrap();
        let item = env
            .app
            .store
            .share_code(code)
            .await
            .unwrap()
            .expect("code item");
        let m = media_now(&env, item.media_id).await;
        assert_eq!(m.owner_id, owner);
        assert_eq!(m.file_path, path);
        assert_eq!(m.source, "upload");
        assert_eq!(m.mime_type, mime, "{name}: sniffed, not claimed");
        assert_eq!(m.size, bytes.len() as u64, "{name}: from HEAD");
        assert!(m.is_shared && !m.share_to_community);
        // Again, now to the community: the same record and code.
        let request =
            json!({ "filePath": path, "tags": ["red"], "policyAgreed": true }).to_string();
        let (status, again) = share_by_path_raw(&env.app, Some(&owner), &request).await;
        assert_eq!(status, 200, "{name}: {again}");
        assert_eq!(again["shareCode"], code);
        let m = media_now(&env, item.media_id).await;
        assert_eq!(m.community_media_id, again["communityMediaId"].as_u64());
    }
    let state = assert_consistent(&env, "after shares by path").await;
    assert_eq!(state.media.len(), 3, "one record per object");
    assert_eq!((state.staging.len(), state.public.len()), (3, 0));
    // The two hand-overs are copied, the upload image watermarked.
    assert_eq!(env.publish_staged().await, 3);
    let state = assert_consistent(&env, "after publishing").await;
    assert_eq!((state.staging.len(), state.public.len()), (0, 3));
}

#[tokio::test]
async fn invalid_file_paths_are_refused() {
    let env = TestEnv::new().await;
    let owner = env.user(0, false).await;
    let other = env.user(0, false).await;
    let bucket = env.app.config.user_media_bucket.clone();
    // Objects at some of the refused keys exist: refusing is about the path, not the object.
    for key in [
        format!("users/{other}/x.png"),
        format!("users/{owner}x/x.png"),
        format!("Users/{owner}/x.png"),
    ] {
        env.app
            .blob
            .put(&bucket, &key, PNG.to_vec(), "image/png")
            .await
            .unwrap();
    }
    let mine = format!("users/{owner}");
    let too_long = format!("{mine}/{}", "a".repeat(1025 - mine.len() - 1));
    assert_eq!(too_long.len(), 1025);
    let bad = [
        String::new(),
        "x.png".into(),
        mine.clone(),
        format!("{mine}/"),
        format!("/{mine}/x.png"),
        format!("{mine}//x.png"),
        format!("{mine}/../{other}/x.png"),
        format!("{mine}/a/../../{other}/x.png"),
        format!("{mine}/./x.png"),
        format!("{mine}/a/."),
        format!("{mine}/a/.."),
        format!("{mine}/dir/"),
        format!("{mine}/a\\..\\x.png"),
        format!("{mine}/%2e%2e/{other}/x.png"),
        format!("{mine}/%2E%2E/x.png"),
        format!("{mine}/x%2Fy.png"),
        format!("{mine}/\u{ff0e}\u{ff0e}/x.png"),
        format!("{mine}/\u{2024}\u{2024}/x.png"),
        format!("{mine}/x\u{2215}y.png"),
        format!("{mine}/caf\u{e9}.png"),
        format!("{mine}/x\u{0}.png"),
        format!("{mine}/x\n.png"),
        format!("{mine}/x\r.png"),
        format!("{mine}/x\t.png"),
        format!("{mine}/x\u{7f}.png"),
        format!("{mine}/x\u{200b}.png"),
        too_long,
        format!("users/{other}/x.png"),
        format!("users/{owner}x/x.png"),
        format!("Users/{owner}/x.png"),
        format!("users/{}/x.png", owner.as_str().to_uppercase()),
    ];
    for path in &bad {
        refused(
            &env,
            &format!("path {path:?}"),
            share_by_path_raw(
                &env.app,
                Some(&owner),
                &json!({ "filePath": path, "shareToCommunity": false }).to_string(),
            ),
            400,
            INVALID_PATH,
        )
        .await;
    }
}

#[tokio::test]
async fn a_path_that_is_not_an_object_of_the_callers_is_not_found() {
    let env = TestEnv::new().await;
    let owner = env.user(0, false).await;
    let mine = format!("users/{owner}");
    let longest = format!("{mine}/{}", "a".repeat(1024 - mine.len() - 1));
    assert_eq!(longest.len(), 1024);
    let only_general = format!("{mine}/general-only.png");
    env.app
        .blob
        .put(
            &env.app.config.general_bucket,
            &only_general,
            PNG.to_vec(),
            "image/png",
        )
        .await
        .unwrap();
    // A recorded media whose original was deleted: its path no longer opens anything.
    let gone = media(&env, &owner, "gone.gif", LOOP, MediaSource::Upload).await;
    env.app.store.delete_media(&gone).await.unwrap();
    env.app
        .blob
        .delete(&env.app.config.user_media_bucket, &gone.file_path)
        .await
        .unwrap();
    for path in [
        format!("{mine}/nothing.png"),
        longest,
        only_general,
        gone.file_path.clone(),
    ] {
        for request in [
            json!({ "filePath": path, "shareToCommunity": false }),
            json!({ "filePath": path }),
        ] {
            refused(
                &env,
                &format!("share {request}"),
                share_by_path_raw(&env.app, Some(&owner), &request.to_string()),
                404,
                NOT_FOUND,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn a_refused_share_by_path_records_nothing() {
    let env = TestEnv::new().await;
    canonical(&env, &["red"]).await;
    let owner = env.user(0, false).await;
    let path = format!("users/{owner}/direct/photo.png");
    env.app
        .blob
        .put(
            &env.app.config.user_media_bucket,
            &path,
            PNG.to_vec(),
            "image/png",
        )
        .await
        .unwrap();
    for (request, message) in [
        (json!({ "filePath": path }), POLICY_REQUIRED.to_string()),
        (
            json!({ "filePath": path, "policyAgreed": true }),
            TAG_REQUIRED.to_string(),
        ),
        (
            json!({ "filePath": path, "policyAgreed": true, "tags": ["nope"] }),
            "Unknown tags: nope".to_string(),
        ),
    ] {
        refused(
            &env,
            &format!("share by path with {request}"),
            share_by_path_raw(&env.app, Some(&owner), &request.to_string()),
            400,
            &message,
        )
        .await;
    }
}

// ---- community copies outlive their original --------------------------------------------------

#[tokio::test]
async fn deleting_the_original_keeps_the_community_copy() {
    let env = TestEnv::new().await;
    canonical(&env, &["red"]).await;
    let owner = env.user(0, false).await;
    let gif = media(&env, &owner, "loop.gif", LOOP, MediaSource::Upload).await;
    let answer = shared(&env.app, &owner, gif.media_id, &body(true, &["red"], false)).await;
    let cid = answer["communityMediaId"].as_u64().unwrap();
    let url = answer["communityUrl"].as_str().unwrap().to_string();
    let code = answer["shareCode"].as_str().unwrap().to_string();
    assert_eq!(env.publish_staged().await, 1);
    let before = assert_consistent(&env, "after the share").await;

    let original = media_now(&env, gif.media_id).await;
    env.app.store.delete_media(&original).await.unwrap();
    env.app
        .blob
        .delete(&env.app.config.user_media_bucket, &original.file_path)
        .await
        .unwrap();

    let after = assert_consistent(&env, "after deleting the original").await;
    assert!(after.media.is_empty() && after.markers.is_empty() && after.codes.is_empty());
    assert_eq!(
        after.records.keys().collect::<Vec<_>>(),
        [&cid],
        "the record stays"
    );
    assert_eq!(after.public, before.public, "the object stays");
    assert_eq!(after.tag_items[&cid].len(), 1);
    assert_eq!(object_at(&url).await.as_deref(), Some(LOOP));
    assert_eq!(feed_ids(&feed_page(&env.app, &[]).await), [cid]);
    assert_eq!(
        feed_ids(&feed_page(&env.app, &[("tag", "red")]).await),
        [cid]
    );
    // The original's own link and routes are gone.
    let (status, _) = resolve(&env.app, &code).await;
    assert_eq!(status, 404);
    refused(
        &env,
        "share the deleted media",
        share(&env.app, &owner, gif.media_id, &json!({})),
        404,
        NOT_FOUND,
    )
    .await;
    refused(
        &env,
        "unshare the deleted media",
        delete_share(&env.app, Some(&owner), &gif.media_id.to_string()),
        404,
        NOT_FOUND,
    )
    .await;
}
