//! `POST /api/community/sessions/{id}/save` against the emulator: the contract, exactly-once under
//! real races, and complete-or-rolled-back under injected faults.

use crate::support;

use joip::domain::{SessionId, UserId};
use joip::routes::save_community_session::handle;
use joip::service::sessions::{create_session, MediaInput, NewMedia, NewSession};
use joip::App;
use serde_json::{json, Value};
use std::sync::Arc;
use support::{read, Event, TestEnv};

const ROUTE: &str = "/api/community/sessions/{id}/save";
const PHOTO: &[u8] = include_bytes!("../../../tools/demo/demo-photo.jpg");
const CLIP: &[u8] = include_bytes!("../../../tools/demo/demo-clip.mp4");
const LOOP: &[u8] = include_bytes!("../../../tools/demo/demo-loop.gif");

fn save_request(caller: Option<&UserId>, id: &str) -> lambda_http::Request {
    let mut e = Event::new("POST", ROUTE, &format!("/api/community/sessions/{id}/save"))
        .path_params(json!({ "id": id }));
    if let Some(user) = caller {
        e = e.caller(user.as_str());
    }
    e.request()
}

async fn save(app: &App, caller: &UserId, id: SessionId) -> (u16, Value) {
    read(handle(app, save_request(Some(caller), &id.to_string())).await)
}

struct Flags {
    public: bool,
    community: bool,
}

const COMMUNITY: Flags = Flags {
    public: true,
    community: true,
};

/// A session owned by a fresh user: `n` distinct photos in the general bucket (plus, when `mixed`,
/// a video, a GIF and an external URL).
async fn session(env: &TestEnv, n: usize, mixed: bool, flags: Flags) -> SessionId {
    let owner = env.user(0, false).await;
    let mut media: Vec<NewMedia> = (0..n)
        .map(|i| {
            let mut bytes = PHOTO.to_vec();
            bytes.extend_from_slice(format!("#{i}").as_bytes());
            NewMedia {
                input: MediaInput::Upload {
                    file_name: format!("photo-{i}.jpg"),
                    bytes,
                },
                caption: Some(format!("caption {i}")),
            }
        })
        .collect();
    if mixed {
        media.insert(
            1.min(media.len()),
            NewMedia {
                input: MediaInput::External {
                    url: "https://cdn.example.com/x/remote.mp4".into(),
                },
                caption: None,
            },
        );
        for (name, bytes) in [("clip.mp4", CLIP), ("loop.gif", LOOP)] {
            media.push(NewMedia {
                input: MediaInput::Upload {
                    file_name: name.into(),
                    bytes: bytes.to_vec(),
                },
                caption: Some(name.into()),
            });
        }
    }
    create_session(
        &env.app,
        NewSession {
            owner,
            title: "Community favourite".into(),
            category: Some("tease".into()),
            settings: json!({ "interval": 7, "order": ["a", "b"], "nested": { "ok": true } }),
            metadata: json!({ "origin": "reddit" }),
            is_public: flags.public,
            shared_to_community: flags.community,
            is_imported: true,
            subreddits: vec!["one".into(), "two".into()],
            media,
        },
    )
    .await
    .expect("create session")
}

async fn priced(env: &TestEnv, credits: i64, premium_only: bool) {
    env.app
        .store
        .put_pricing("session_create", credits, premium_only)
        .await
        .unwrap();
}

async fn credits(env: &TestEnv, user: &UserId) -> i64 {
    env.app.store.user(user).await.unwrap().unwrap().credits
}

fn session_id(body: &Value) -> SessionId {
    SessionId(body["sessionId"].as_u64().expect("sessionId is a number"))
}

#[tokio::test]
async fn saving_copies_the_session_and_its_media() {
    let env = TestEnv::new().await;
    priced(&env, 10, false).await;
    let source = session(&env, 3, true, COMMUNITY).await;
    let user = env.user(25, false).await;

    let (status, body) = save(&env.app, &user, source).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["reused"], false);
    assert_eq!(body.as_object().unwrap().len(), 3);
    let copy_id = session_id(&body);
    assert_ne!(copy_id, source);
    assert_eq!(credits(&env, &user).await, 15);

    let (orig, orig_media) = env.app.store.session(source).await.unwrap().unwrap();
    let (copy, media) = env.app.store.session(copy_id).await.unwrap().unwrap();
    assert_eq!(copy.owner_id, user);
    assert_eq!(copy.title, orig.title);
    assert_eq!(copy.settings, orig.settings);
    assert_eq!(copy.metadata, orig.metadata);
    assert_eq!(copy.category, orig.category);
    assert_eq!(copy.import_source.as_deref(), Some("community"));
    assert_eq!(copy.import_url, Some(format!("community:{source}")));
    assert!(!copy.is_public && !copy.shared_to_community && !copy.is_favorite);
    assert!(copy.is_imported);
    assert_eq!(copy.subreddits, orig.subreddits);

    assert_eq!(media.len(), orig_media.len());
    let prefix = format!("users/{user}/manual-sessions/{copy_id}/");
    for (m, o) in media.iter().zip(&orig_media) {
        assert_eq!((m.order, m.kind, &m.caption), (o.order, o.kind, &o.caption));
        match &o.bucket {
            None => assert_eq!((&m.bucket, &m.key, &m.url), (&None, &None, &o.url)),
            Some(_) => {
                assert_eq!(m.url, None, "no stored URL to a private bucket");
                assert_eq!(m.copied_from, o.key, "the plan names its source");
                assert_eq!(
                    m.bucket.as_deref(),
                    Some(env.app.config.user_media_bucket.as_str())
                );
                let key = m.key.as_deref().unwrap();
                assert!(key.starts_with(&prefix), "{key}");
                let copied = env
                    .app
                    .blob
                    .get(&env.app.config.user_media_bucket, key)
                    .await
                    .unwrap();
                let original = env
                    .app
                    .blob
                    .get(&env.app.config.general_bucket, o.key.as_deref().unwrap())
                    .await
                    .unwrap();
                assert_eq!(copied, original, "media {} copied byte for byte", m.order);
            }
        }
    }
    let activity = env.app.store.activity(&user).await.unwrap();
    assert_eq!(activity.len(), 1);
    assert_eq!(activity[0].details["sessionId"], copy_id.0);
}

#[tokio::test]
async fn saving_again_is_reused_and_free_even_after_a_price_change() {
    let env = TestEnv::new().await;
    priced(&env, 10, false).await;
    let source = session(&env, 2, false, COMMUNITY).await;
    let user = env.user(100, false).await;
    let (_, first) = save(&env.app, &user, source).await;
    priced(&env, 50, true).await;
    let (status, again) = save(&env.app, &user, source).await;
    assert_eq!(status, 200);
    assert_eq!(
        again,
        json!({ "success": true, "sessionId": first["sessionId"], "reused": true })
    );
    assert_eq!(credits(&env, &user).await, 90);
    env.app
        .store
        .delete_pricing("session_create")
        .await
        .unwrap();
    let (status, _) = save(&env.app, &user, source).await;
    assert_eq!(status, 200, "dedup comes before the pricing check");
}

#[tokio::test]
async fn sixteen_concurrent_saves_charge_once() {
    let env = TestEnv::new().await;
    priced(&env, 10, false).await;
    let source = session(&env, 4, true, COMMUNITY).await;
    let user = env.user(100, false).await;
    let copies = support::FailNthCopy::counter();
    let app = Arc::new(env.app_with_s3_interceptor(copies.clone()));
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
    let reused = answers.iter().filter(|(_, b)| b["reused"] == true).count();
    assert_eq!(reused, 15);
    assert_eq!(credits(&env, &user).await, 90, "charged exactly once");
    let copy = SessionId(*ids.iter().next().unwrap());
    let (s, media) = env.app.store.session(copy).await.unwrap().unwrap();
    assert_eq!(s.state, joip::store::items::SessionState::Ready);
    assert_eq!(media.len(), 7);
    assert_eq!(
        copies.copies(),
        6,
        "the others waited instead of copying again"
    );
}

#[tokio::test]
async fn credits_for_one_of_two_sessions_buy_exactly_one() {
    let env = TestEnv::new().await;
    priced(&env, 10, false).await;
    for _round in 0..5 {
        let a = session(&env, 1, false, COMMUNITY).await;
        let b = session(&env, 1, false, COMMUNITY).await;
        let user = env.user(15, false).await;
        let (ra, rb) = tokio::join!(save(&env.app, &user, a), save(&env.app, &user, b));
        let mut statuses = [ra.0, rb.0];
        statuses.sort();
        assert_eq!(statuses, [200, 402], "{ra:?} {rb:?}");
        let refused = if ra.0 == 402 { &ra.1 } else { &rb.1 };
        assert_eq!(
            refused,
            &json!({
                "error": "Insufficient credits", "code": "INSUFFICIENT_CREDITS",
                "required": 10, "current": 5, "featureKey": "session_create"
            })
        );
        assert_eq!(
            credits(&env, &user).await,
            5,
            "never negative, charged once"
        );
    }
}

#[tokio::test]
async fn a_copy_failing_part_way_is_finished_by_the_retry_without_a_second_charge() {
    let env = TestEnv::new().await;
    priced(&env, 10, false).await;
    let source = session(&env, 6, false, COMMUNITY).await;
    let user = env.user(30, false).await;
    let faulty = env.app_with_s3_interceptor(support::FailNthCopy::new(3));

    let (status, body) = save(&faulty, &user, source).await;
    assert_eq!(
        (status, body),
        (500, json!({ "message": "Failed to save session" }))
    );
    assert_eq!(credits(&env, &user).await, 20);
    let record = env
        .app
        .store
        .save_record(&user, source)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.lease_until_ms, 0,
        "the failed request releases its lease, so the retry goes ahead at once"
    );
    let (pending, _) = env
        .app
        .store
        .session(record.session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pending.state, joip::store::items::SessionState::Copying);

    let (status, body) = save(&env.app, &user, source).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        session_id(&body),
        record.session_id,
        "the same session is finished"
    );
    assert_eq!(credits(&env, &user).await, 20, "no second charge");
    let (done, media) = env
        .app
        .store
        .session(record.session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.state, joip::store::items::SessionState::Ready);
    let prefix = format!("users/{user}/manual-sessions/{}/", record.session_id);
    assert_eq!(
        env.keys(&env.app.config.user_media_bucket, &prefix)
            .await
            .len(),
        6
    );
    assert_eq!(media.len(), 6);
}

#[tokio::test]
async fn a_copy_that_can_never_finish_is_rolled_back_then_a_later_save_works() {
    let env = TestEnv::new().await;
    priced(&env, 10, false).await;
    let source = session(&env, 5, false, COMMUNITY).await;
    let user = env.user(30, false).await;
    let (_, media) = env.app.store.session(source).await.unwrap().unwrap();
    let gone = media[3].key.clone().unwrap();
    let general = env.app.config.general_bucket.clone();
    let bytes = env.app.blob.get(&general, &gone).await.unwrap();
    env.app.blob.delete(&general, &gone).await.unwrap();
    let before = env.snapshot().await;

    let (status, body) = save(&env.app, &user, source).await;
    assert_eq!(
        (status, body),
        (500, json!({ "message": "Failed to save session" }))
    );
    assert_eq!(credits(&env, &user).await, 30, "refunded");
    assert!(env
        .app
        .store
        .save_record(&user, source)
        .await
        .unwrap()
        .is_none());
    assert!(env.app.store.activity(&user).await.unwrap().is_empty());
    let after = env.snapshot().await;
    let counters_only = |s: &support::Snapshot| -> Vec<String> {
        s.items
            .iter()
            .filter(|i| !i.contains("COUNTER#"))
            .cloned()
            .collect()
    };
    assert_eq!(
        counters_only(&after),
        counters_only(&before),
        "no session, record or charge left"
    );
    assert_eq!(after.objects, before.objects, "no copied object left");

    env.app
        .blob
        .put(&general, &gone, bytes, "image/jpeg")
        .await
        .unwrap();
    let (status, body) = save(&env.app, &user, source).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reused"], false);
    assert_eq!(credits(&env, &user).await, 20);
}

#[tokio::test]
async fn every_refusal_changes_nothing() {
    let env = TestEnv::new().await;
    let community = session(&env, 2, true, COMMUNITY).await;
    let private = session(
        &env,
        1,
        false,
        Flags {
            public: false,
            community: true,
        },
    )
    .await;
    let not_shared = session(
        &env,
        1,
        false,
        Flags {
            public: true,
            community: false,
        },
    )
    .await;
    let poor = env.user(5, false).await;
    let free = env.user(500, false).await;
    let msg = |m: &str| json!({ "message": m });

    let mut cases: Vec<(lambda_http::Request, u16, Value)> = Vec::new();
    for bad in ["abc", "0", "-1", "1.5", "12abc", "9007199254740992"] {
        cases.push((
            save_request(Some(&poor), bad),
            400,
            msg("Invalid session ID"),
        ));
    }
    cases.push((
        save_request(None, &community.to_string()),
        401,
        msg("Unauthorized"),
    ));
    cases.push((
        save_request(Some(&poor), "987654"),
        404,
        msg("Session not found or not public"),
    ));
    cases.push((
        save_request(Some(&poor), &private.to_string()),
        404,
        msg("Session not found or not public"),
    ));
    cases.push((
        save_request(Some(&poor), &not_shared.to_string()),
        403,
        msg("This session is not shared to the community"),
    ));
    let pricing_missing = json!({
        "error": "Session pricing is not configured", "code": "FEATURE_PRICING_MISSING",
        "featureKey": "session_create"
    });
    for (req, status, body) in cases {
        let before = env.snapshot().await;
        assert_eq!(read(handle(&env.app, req).await), (status, body));
        assert_eq!(env.snapshot().await, before);
    }

    let before = env.snapshot().await;
    assert_eq!(
        save(&env.app, &poor, community).await,
        (503, pricing_missing)
    );
    assert_eq!(env.snapshot().await, before);

    priced(&env, 10, true).await;
    let before = env.snapshot().await;
    assert_eq!(
        save(&env.app, &free, community).await,
        (
            403,
            json!({
                "error": "This feature is only available for Premium subscribers",
                "code": "PREMIUM_ONLY", "featureKey": "session_create"
            })
        )
    );
    assert_eq!(env.snapshot().await, before);

    priced(&env, 10, false).await;
    let before = env.snapshot().await;
    let (status, body) = save(&env.app, &poor, community).await;
    assert_eq!(status, 402);
    assert_eq!(
        (body["required"].as_i64(), body["current"].as_i64()),
        (Some(10), Some(5))
    );
    assert_eq!(env.snapshot().await, before);
}

#[tokio::test]
async fn five_hundred_media_save_well_within_the_gateway_timeout() {
    let env = TestEnv::new().await;
    priced(&env, 1, false).await;
    let source = session(&env, 500, false, COMMUNITY).await;
    let user = env.user(1, false).await;
    let started = std::time::Instant::now();
    let (status, body) = save(&env.app, &user, source).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(took < std::time::Duration::from_secs(29), "took {took:?}");
    let (_, media) = env
        .app
        .store
        .session(session_id(&body))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(media.len(), 500);
    let prefix = format!("users/{user}/manual-sessions/{}/", session_id(&body));
    let listed = env
        .app
        .blob
        .client()
        .list_objects_v2()
        .bucket(&env.app.config.user_media_bucket)
        .prefix(&prefix)
        .max_keys(1000)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(500));
}

#[tokio::test]
async fn objects_past_the_single_copy_limit_are_copied_in_parts() {
    let env = TestEnv::new().await;
    priced(&env, 1, false).await;
    let mut app = env.app.clone();
    const MIB: u64 = 1024 * 1024;
    app.blob = app.blob.clone().with_copy_limits(5 * MIB, 5 * MIB);
    let mut big = PHOTO.to_vec();
    big.resize(12 * MIB as usize + 7, 0xAB);
    let owner = env.user(0, false).await;
    let source = support::community_session(
        &app,
        &owner,
        "big",
        vec![support::upload("big.jpg", big.clone(), None)],
    )
    .await;
    let user = env.user(1, false).await;
    let (status, body) = save(&app, &user, source).await;
    assert_eq!(status, 200, "{body}");
    let (_, media) = app.store.session(session_id(&body)).await.unwrap().unwrap();
    let copied = app
        .blob
        .get(
            &app.config.user_media_bucket,
            media[0].key.as_deref().unwrap(),
        )
        .await
        .unwrap();
    assert!(copied == big, "multipart copy is byte for byte");
}

#[tokio::test]
async fn sample_events_get_their_documented_answers() {
    let env = TestEnv::new().await;
    let cases = [
        ("save-community-session/invalid-id.json", 400),
        ("save-community-session/no-identity.json", 401),
        ("save-community-session/not-found.json", 404),
    ];
    for (file, status) in cases {
        assert_eq!(
            read(handle(&env.app, support::sample_event(file)).await).0,
            status,
            "{file}"
        );
    }
}

#[tokio::test]
async fn a_free_save_needs_no_balance_and_a_rollback_refunds_nothing() {
    let env = TestEnv::new().await;
    priced(&env, 0, false).await;
    let source = session(&env, 2, false, COMMUNITY).await;
    let broke = env.user(0, false).await;
    let (status, body) = save(&env.app, &broke, source).await;
    assert_eq!(
        (status, body["reused"].clone()),
        (200, json!(false)),
        "{body}"
    );
    assert_eq!(credits(&env, &broke).await, 0);

    // A caller with no profile at all can take a free session too, and nothing invents one.
    let stranger = UserId::random();
    let (status, _) = save(&env.app, &stranger, source).await;
    assert_eq!(status, 200);
    assert!(env.app.store.user(&stranger).await.unwrap().is_none());

    let (_, media) = env.app.store.session(source).await.unwrap().unwrap();
    env.app
        .blob
        .delete(
            &env.app.config.general_bucket,
            media[1].key.as_deref().unwrap(),
        )
        .await
        .unwrap();
    let other = UserId::random();
    let (status, _) = save(&env.app, &other, source).await;
    assert_eq!(status, 500);
    assert!(
        env.app.store.user(&other).await.unwrap().is_none(),
        "no refund item invented"
    );
    assert!(env
        .app
        .store
        .save_record(&other, source)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_storage_failure_is_the_documented_500_and_charges_nothing() {
    let env = TestEnv::new().await;
    priced(&env, 10, false).await;
    let source = session(&env, 1, false, COMMUNITY).await;
    let user = env.user(30, false).await;
    let mut config = env.app.config.clone();
    config.user_media_bucket = "no-such-bucket".into();
    let broken = App::new(config, &env.sdk);
    // Copies fail for a reason a retry can fix: the save stays pending, charged once.
    let (status, body) = save(&broken, &user, source).await;
    assert_eq!(
        (status, body),
        (500, json!({ "message": "Failed to save session" }))
    );
    let (status, body) = save(&env.app, &user, source).await;
    assert_eq!(
        (status, body["reused"].clone()),
        (200, json!(true)),
        "{body}"
    );
    assert_eq!(credits(&env, &user).await, 20);

    let mut config = env.app.config.clone();
    config.table = "no-such-table".into();
    let no_table = App::new(config, &env.sdk);
    let (status, body) = save(&no_table, &user, source).await;
    assert_eq!(
        (status, body),
        (500, json!({ "message": "Failed to save session" }))
    );
}

#[tokio::test]
async fn a_save_whose_copier_died_is_taken_over_once_its_lease_lapses() {
    let env = TestEnv::new().await;
    priced(&env, 10, false).await;
    let source = session(&env, 3, false, COMMUNITY).await;
    let user = env.user(30, false).await;
    let faulty = env.app_with_s3_interceptor(support::FailNthCopy::new(2));
    assert_eq!(save(&faulty, &user, source).await.0, 500);
    // As if the copier had died without a word (a Lambda timeout) just after renewing its lease.
    let lapse = joip::domain::now_millis() + 1_500;
    env.app
        .store
        .client()
        .update_item()
        .table_name(&env.app.config.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("USER#{user}")),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("SAVE#{source}")),
        )
        .update_expression("SET leaseUntilMs = :t, leaseOwner = :dead")
        .expression_attribute_values(
            ":t",
            aws_sdk_dynamodb::types::AttributeValue::N(lapse.to_string()),
        )
        .expression_attribute_values(
            ":dead",
            aws_sdk_dynamodb::types::AttributeValue::S("dead-copier".into()),
        )
        .send()
        .await
        .unwrap();
    let pending = env
        .app
        .store
        .save_record(&user, source)
        .await
        .unwrap()
        .unwrap();

    // While the lease is live another request waits for its holder rather than copying; once it
    // lapses, that same request takes over and finishes the same session, charged once.
    let copies = support::FailNthCopy::counter();
    let waiting = env.app_with_s3_interceptor(copies.clone());
    let request = tokio::spawn({
        let user = user.clone();
        async move { save(&waiting, &user, source).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(copies.copies(), 0, "no copy while the lease is live");
    let (status, body) = request.await.unwrap();
    assert!(joip::domain::now_millis() >= lapse);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (session_id(&body), body["reused"].clone()),
        (pending.session_id, json!(true))
    );
    assert_eq!(credits(&env, &user).await, 20);
    let (done, _) = env
        .app
        .store
        .session(pending.session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.state, joip::store::items::SessionState::Ready);
    let record = env
        .app
        .store
        .save_record(&user, source)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.gsi1pk, record.lease_owner),
        (None, None),
        "a finished save leaves the index of copying saves"
    );
}
