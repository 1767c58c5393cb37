//! The save under what AWS really does: overlapping transactions cancelled with
//! `TransactionConflict`, throttling and 5xx (the emulator's chaos switch), DynamoDB's item and
//! transaction limits, copiers that die or stall mid-copy, and a source unshared mid-request.
//! Every test here really races or really injects.

use crate::support;

use joip::domain::{SessionId, UserId};
use joip::routes::save_community_session::handle;
use joip::service::save_session::{reap, Deadline, Reaped};
use joip::service::sessions::{MediaInput, NewMedia};
use joip::store::items::{SaveState, SessionState};
use joip::App;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{community_session, read, upload, Event, FailNthCopy, TestEnv};

const ROUTE: &str = "/api/community/sessions/{id}/save";
const PHOTO: &[u8] = include_bytes!("../../../tools/demo/demo-photo.jpg");
/// Fraction of DynamoDB and S3 calls the emulator fails in the chaos tests.
const CHAOS: f64 = 0.1;

/// Logs go to the test's output (shown when it fails).
fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("joip=info")
        .try_init();
}

async fn save(app: &App, caller: &UserId, id: SessionId) -> (u16, Value) {
    logs();
    let req = Event::new("POST", ROUTE, &format!("/api/community/sessions/{id}/save"))
        .path_params(json!({ "id": id.to_string() }))
        .caller(caller.as_str())
        .request();
    read(handle(app, req).await)
}

fn photo(i: usize) -> Vec<u8> {
    let mut bytes = PHOTO.to_vec();
    bytes.extend_from_slice(format!("#{i}").as_bytes());
    bytes
}

/// A community session of `n` distinct photos owned by a fresh user.
async fn photos(env: &TestEnv, n: usize) -> SessionId {
    let owner = env.user(0, false).await;
    let media = (0..n)
        .map(|i| {
            upload(
                &format!("p{i}.jpg"),
                photo(i),
                Some(&format!("caption {i}")),
            )
        })
        .collect();
    community_session(&env.app, &owner, "photos", media).await
}

async fn priced(env: &TestEnv, credits: i64) {
    env.app
        .store
        .put_pricing("session_create", credits, false)
        .await
        .unwrap();
}

async fn credits(env: &TestEnv, user: &UserId) -> i64 {
    env.app.store.user(user).await.unwrap().unwrap().credits
}

fn id_of(body: &Value) -> SessionId {
    SessionId(body["sessionId"].as_u64().expect("sessionId"))
}

/// Everything but the id counters (allocating an id is not a change anyone sees).
fn without_counters(s: &support::Snapshot) -> (Vec<String>, Vec<String>) {
    let items = s
        .items
        .iter()
        .filter(|i| !i.contains("COUNTER#"))
        .cloned()
        .collect();
    (items, s.objects.clone())
}

/// Asserts the copy of `copy` is complete: ready, every media copied byte for byte.
async fn assert_complete(env: &TestEnv, source: SessionId, copy: SessionId) {
    let (_, original) = env.app.store.session(source).await.unwrap().unwrap();
    let (session, media) = env.app.store.session(copy).await.unwrap().unwrap();
    assert_eq!(session.state, SessionState::Ready);
    assert_eq!(media.len(), original.len());
    for (m, o) in media.iter().zip(&original) {
        assert_eq!((m.order, &m.caption), (o.order, &o.caption));
        if let (Some(key), Some(from)) = (&m.key, &o.key) {
            let copied = env
                .app
                .blob
                .get(&env.app.config.user_media_bucket, key)
                .await
                .unwrap();
            let source = env
                .app
                .blob
                .get(&env.app.config.general_bucket, from)
                .await
                .unwrap();
            assert_eq!(copied, source, "media {} copied byte for byte", m.order);
        }
    }
}

async fn reap_now(app: &App) -> Reaped {
    reap(app, Deadline::new(None, 60_000)).await.expect("reap")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_saves_under_chaos_charge_once_and_agree() {
    let env = TestEnv::new().await;
    priced(&env, 10).await;
    let source = photos(&env, 5).await;
    let user = env.user(100, false).await;
    let app = Arc::new(env.chaos_app(CHAOS));
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (app, user, barrier) = (app.clone(), user.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                save(&app, &user, source).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let ids: std::collections::HashSet<u64> = answers
        .iter()
        .map(|(_, b)| b["sessionId"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "one session for all 16: {answers:?}");
    let fresh = answers.iter().filter(|(_, b)| b["reused"] == false).count();
    assert_eq!(fresh, 1, "exactly one answer charged: {answers:?}");
    assert_eq!(credits(&env, &user).await, 90, "charged exactly once");
    assert_complete(&env, source, id_of(&answers[0].1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sessions_saved_at_once_by_one_user_both_succeed_under_conflicts() {
    let env = TestEnv::new().await;
    priced(&env, 10).await;
    let (a, b) = (photos(&env, 3).await, photos(&env, 3).await);
    let user = env.user(20, false).await;
    // Both claims update the same balance item: on AWS the second one in flight is cancelled
    // with TransactionConflict, which must be retried, not answered.
    let both = |app: App, user: UserId| async move {
        // Tasks, not an inline join: each save's future is large in a debug build.
        let first = tokio::spawn({
            let (app, user) = (app.clone(), user.clone());
            async move { save(&app, &user, a).await }
        });
        let second = tokio::spawn(async move { save(&app, &user, b).await });
        (first.await.unwrap(), second.await.unwrap())
    };
    for round in 0..3 {
        let user = env.user(20, false).await;
        let ((sa, ba), (sb, bb)) = both(env.chaos_app(CHAOS), user.clone()).await;
        assert_eq!((sa, sb), (200, 200), "round {round}: {ba} {bb}");
        assert_eq!(
            (&ba["reused"], &bb["reused"]),
            (&json!(false), &json!(false))
        );
        assert_eq!(credits(&env, &user).await, 0);
    }
    let ((sa, _), (sb, _)) = both(env.app.clone(), user.clone()).await;
    assert_eq!((sa, sb), (200, 200));
    assert_eq!(credits(&env, &user).await, 0);
}

#[tokio::test]
async fn ten_thousand_media_save_completely() {
    // Today's limits: a 101-item completion transaction (about 9,800 media) failed after the
    // charge on every retry. Now the plan is chunked by bytes and no transaction grows with it.
    let env = TestEnv::new().await;
    priced(&env, 10).await;
    let owner = env.user(0, false).await;
    let mut media: Vec<NewMedia> = (0..9_995)
        .map(|i| NewMedia {
            input: MediaInput::External {
                url: format!("https://cdn.example.com/media/{i:05}.jpg"),
            },
            caption: Some(format!("external {i}")),
        })
        .collect();
    for i in 0..5 {
        media.insert(i * 2_000, upload(&format!("p{i}.jpg"), photo(i), None));
    }
    let source = community_session(&env.app, &owner, "huge", media).await;
    let user = env.user(10, false).await;
    // About sizes, not deadlines: a loaded 2-core CI machine may take longer than API Gateway's
    // budget to move 3 MB through the emulator (that path has its own tests).
    let mut app = env.app.clone();
    app.config.request_budget_ms = 300_000;
    let (status, body) = save(&app, &user, source).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(credits(&env, &user).await, 0);
    assert_complete(&env, source, id_of(&body)).await;
    let (_, copied) = env.app.store.session(id_of(&body)).await.unwrap().unwrap();
    assert_eq!(copied.len(), 10_000);
    assert!(
        copied.windows(2).all(|w| w[0].order < w[1].order),
        "order kept"
    );
}

#[tokio::test]
async fn a_hundred_media_with_long_captions_save_completely() {
    // 100 media of 4 KB captions made a 430 KB chunk: over DynamoDB's 400 KB item limit, after
    // the charge. Chunks are now sized by bytes.
    let env = TestEnv::new().await;
    priced(&env, 10).await;
    let owner = env.user(0, false).await;
    let caption = "ä".repeat(2_048); // 4 KB of UTF-8
    let media = (0..100)
        .map(|i| {
            upload(
                &format!("p{i}.jpg"),
                photo(i),
                Some(&format!("{i} {caption}")),
            )
        })
        .collect();
    let source = community_session(&env.app, &owner, "captions", media).await;
    let user = env.user(10, false).await;
    let mut app = env.app.clone();
    app.config.request_budget_ms = 300_000;
    let (status, body) = save(&app, &user, source).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(credits(&env, &user).await, 0);
    assert_complete(&env, source, id_of(&body)).await;
}

/// Runs a save and drops it (as a Lambda timeout or crash would) once `k` copies have started;
/// the save is left `copying`, charged, with a lease nobody renews.
async fn killed_after(app: &App, user: &UserId, source: SessionId, k: usize, copies: &FailNthCopy) {
    let killed = tokio::select! {
        _ = save(app, user, source) => false,
        () = async {
            while copies.copies() < k {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        } => true,
    };
    assert!(killed, "the save finished before it could be killed");
}

#[tokio::test]
async fn a_copier_killed_mid_copy_is_finished_by_the_reaper() {
    let env = TestEnv::new().await;
    priced(&env, 10).await;
    let source = photos(&env, 12).await;
    let user = env.user(30, false).await;
    let copies = FailNthCopy::counter();
    let mut app = env.app_with_s3_interceptor(copies.clone());
    app.config.save_lease_ms = 500;
    app.config.copy_concurrency = 2;
    killed_after(&app, &user, source, 4, &copies).await;
    let record = env
        .app
        .store
        .save_record(&user, source)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, SaveState::Copying);
    assert_eq!(
        credits(&env, &user).await,
        20,
        "charged once, stranded for now"
    );

    // Before the lease lapses the reaper leaves it alone; after, it finishes it.
    assert_eq!(reap_now(&app).await, Reaped::default());
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = copies.copies();
    let reaped = reap_now(&app).await;
    assert_eq!(
        reaped,
        Reaped {
            finished: 1,
            ..Reaped::default()
        }
    );
    assert!(
        copies.copies() - before < 12,
        "objects already copied are skipped on resume"
    );
    assert_complete(&env, source, record.session_id).await;
    assert_eq!(credits(&env, &user).await, 20, "no second charge");
    let done = env
        .app
        .store
        .save_record(&user, source)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((done.state, done.gsi1pk), (SaveState::Ready, None));
    assert_eq!(
        reap_now(&app).await,
        Reaped::default(),
        "nothing left to reap"
    );
    let (status, body) = save(&env.app, &user, source).await;
    assert_eq!((status, id_of(&body)), (200, record.session_id));
    assert_eq!(body["reused"], true);
}

#[tokio::test]
async fn a_killed_copier_whose_source_vanished_is_rolled_back_and_refunded_by_the_reaper() {
    let env = TestEnv::new().await;
    priced(&env, 10).await;
    let source = photos(&env, 8).await;
    let user = env.user(30, false).await;
    let before = env.snapshot().await;
    let copies = FailNthCopy::counter();
    let mut app = env.app_with_s3_interceptor(copies.clone());
    app.config.save_lease_ms = 400;
    app.config.copy_concurrency = 1;
    killed_after(&app, &user, source, 3, &copies).await;
    assert_eq!(credits(&env, &user).await, 20);
    let (_, media) = env.app.store.session(source).await.unwrap().unwrap();
    let gone = media[7].key.clone().unwrap();
    let general = env.app.config.general_bucket.clone();
    env.app.blob.delete(&general, &gone).await.unwrap();

    tokio::time::sleep(Duration::from_millis(500)).await;
    let reaped = reap_now(&app).await;
    assert_eq!(
        reaped,
        Reaped {
            rolled_back: 1,
            ..Reaped::default()
        }
    );
    assert_eq!(credits(&env, &user).await, 30, "refunded");
    let mut after = without_counters(&env.snapshot().await);
    let mut expected = without_counters(&before);
    after
        .1
        .retain(|o| !o.ends_with(&gone) && !o.contains(&gone));
    expected.1.retain(|o| !o.contains(&gone));
    assert_eq!(
        after, expected,
        "no record, session, plan, activity or copy left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_live_copier_is_never_joined_by_a_second_one() {
    let env = TestEnv::new().await;
    priced(&env, 10).await;
    let source = photos(&env, 6).await;
    let user = env.user(30, false).await;
    // Each copy takes longer than half a lease, and the whole copy several leases: only the
    // renewals keep others out.
    let slow_copies = FailNthCopy::counter();
    let mut slow = env.app_with_s3_interceptor(support::Latency {
        copy_ms: 250,
        counter: slow_copies.clone(),
    });
    slow.config.save_lease_ms = 400;
    slow.config.copy_concurrency = 1;
    let other_copies = FailNthCopy::counter();
    let mut other = env.app_with_s3_interceptor(other_copies.clone());
    other.config.save_lease_ms = 400;

    let first = tokio::spawn({
        let (slow, user) = (slow.clone(), user.clone());
        async move { save(&slow, &user, source).await }
    });
    while slow_copies.copies() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = tokio::spawn({
        let (other, user) = (other.clone(), user.clone());
        async move { save(&other, &user, source).await }
    });
    let mut reaped = Vec::new();
    while !first.is_finished() {
        reaped.push(reap_now(&other).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s1, b1) = first.await.unwrap();
    let (s2, b2) = second.await.unwrap();
    assert_eq!((s1, s2), (200, 200), "{b1} {b2}");
    assert_eq!(
        (&b1["reused"], &b2["reused"]),
        (&json!(false), &json!(true))
    );
    assert_eq!(id_of(&b1), id_of(&b2));
    assert_eq!(other_copies.copies(), 0, "nobody joined the live copier");
    assert_eq!(slow_copies.copies(), 6);
    assert!(reaped.iter().all(|r| *r == Reaped::default()), "{reaped:?}");
    assert_eq!(credits(&env, &user).await, 20);
    assert_complete(&env, source, id_of(&b1)).await;
}

/// Runs `during` once, just before the first TransactWriteItems (the claim) is sent.
#[derive(Clone)]
struct BeforeClaim {
    during: Arc<dyn Fn() + Send + Sync>,
    done: Arc<AtomicBool>,
}

impl std::fmt::Debug for BeforeClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BeforeClaim")
    }
}

impl aws_sdk_dynamodb::config::Intercept for BeforeClaim {
    fn name(&self) -> &'static str {
        "BeforeClaim"
    }

    fn read_before_execution(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef<
            '_,
        >,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let is_claim = context
            .input()
            .downcast_ref::<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput>()
            .is_some();
        if is_claim && !self.done.swap(true, Ordering::SeqCst) {
            (self.during)();
        }
        Ok(())
    }
}

/// Runs `f` to completion on its own thread, runtime and SDK clients (an interceptor is
/// synchronous, and blocking on the caller's runtime could wait on a task parked on this thread).
fn on_own_runtime<F, Fut>(f: F)
where
    F: FnOnce(aws_config::SdkConfig) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move { f(support::sdk_config(&support::endpoint()).await).await });
    })
    .join()
    .expect("the injected step panicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_source_unshared_between_read_and_claim_charges_nothing() {
    let env = TestEnv::new().await;
    priced(&env, 10).await;
    let source = photos(&env, 3).await;
    let user = env.user(30, false).await;
    let table = env.app.config.table.clone();
    // The owner unshares after the save read the session as shared, before its claim.
    let unshare = BeforeClaim {
        during: Arc::new(move || {
            let table = table.clone();
            on_own_runtime(move |sdk| async move {
                use aws_sdk_dynamodb::types::AttributeValue::{Bool, S};
                aws_sdk_dynamodb::Client::new(&sdk)
                    .update_item()
                    .table_name(table)
                    .key("pk", S(format!("SESSION#{source}")))
                    .key("sk", S("SESSION".into()))
                    .update_expression("SET sharedToCommunity = :no")
                    .expression_attribute_values(":no", Bool(false))
                    .send()
                    .await
                    .unwrap();
            })
        }),
        done: Arc::default(),
    };
    let db = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&env.sdk)
            .interceptor(unshare.clone())
            .build(),
    );
    let app = App::from_clients(
        env.app.config.clone(),
        &env.sdk,
        db,
        env.app.blob.client().clone(),
    );
    let before = env.snapshot().await;

    let (status, body) = save(&app, &user, source).await;
    assert!(unshare.done.load(Ordering::SeqCst), "the claim was reached");
    assert_eq!(
        (status, body),
        (
            403,
            json!({ "message": "This session is not shared to the community" })
        )
    );
    assert_eq!(credits(&env, &user).await, 30, "nothing charged");
    let (mut expected, after) = (
        without_counters(&before),
        without_counters(&env.snapshot().await),
    );
    for item in expected.0.iter_mut() {
        if item.contains(&format!("\"SESSION#{source}\"")) && item.contains("\"sk\":\"SESSION\"") {
            *item = item.replace("\"sharedToCommunity\":true", "\"sharedToCommunity\":false");
        }
    }
    expected.0.sort();
    assert_eq!(
        after, expected,
        "only the unshare: no record, session or plan left behind"
    );
}

#[tokio::test]
async fn the_reaper_gives_up_on_a_save_that_keeps_failing_and_refunds_it() {
    let env = TestEnv::new().await;
    priced(&env, 10).await;
    let source = photos(&env, 3).await;
    let user = env.user(30, false).await;
    let faulty = env.app_with_s3_interceptor(FailNthCopy::new(1));
    assert_eq!(save(&faulty, &user, source).await.0, 500);
    assert_eq!(credits(&env, &user).await, 20);
    let mut app = env.app.clone();
    app.config.save_give_up_ms = 1;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let reaped = reap_now(&app).await;
    assert_eq!(reaped.rolled_back, 1, "{reaped:?}");
    assert_eq!(credits(&env, &user).await, 30);
    assert!(env
        .app
        .store
        .save_record(&user, source)
        .await
        .unwrap()
        .is_none());
}

/// The reaper's read of stale saves covers every shard of the index (queried at once) and takes
/// the oldest lapses first across all of them, however few it may take.
#[tokio::test]
async fn stale_saves_come_from_every_shard_oldest_lapse_first() {
    let env = TestEnv::new().await;
    priced(&env, 1).await;
    let user = env.user(100, false).await;
    let copies = FailNthCopy::counter();
    let mut app = env.app_with_s3_interceptor(copies.clone());
    app.config.save_lease_ms = 300;
    app.config.copy_concurrency = 1;
    let mut sources = Vec::new();
    for _ in 0..6 {
        let source = photos(&env, 3).await;
        let started = copies.copies();
        killed_after(&app, &user, source, started + 1, &copies).await;
        sources.push(source);
        // Distinct lapses, in the order the saves were stranded.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shards: std::collections::HashSet<u32> = (sources.iter())
        .map(|s| joip::store::keys::copying_shard(&user, *s))
        .collect();
    assert!(
        shards.len() > 1,
        "the sources landed in one shard: {shards:?}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;

    let now = joip::domain::now_millis();
    let all = env.app.store.stale_saves(now, 100).await.unwrap();
    let order: Vec<SessionId> = all.iter().map(|r| r.source_session_id).collect();
    assert_eq!(order, sources, "every stranded save, oldest lapse first");
    for n in [1, 3, 5] {
        let first = env.app.store.stale_saves(now, n).await.unwrap();
        let order: Vec<SessionId> = first.iter().map(|r| r.source_session_id).collect();
        assert_eq!(order, sources[..n], "the {n} oldest lapses");
    }
    // Not stale yet at the time the first was stranded.
    let early = all[0].lease_until_ms;
    assert!(env
        .app
        .store
        .stale_saves(early, 100)
        .await
        .unwrap()
        .is_empty());
}
