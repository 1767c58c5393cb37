//! The watermark function's use case against the emulator: a staged upload is published
//! watermarked and marked ready exactly once, whatever the delivery order, duplicates, faults or
//! a concurrent unshare; what cannot be published fails and is never shown.

use crate::support;

use crate::support::handle_batch;
use joip::domain::{MediaSource, UserId};
use joip::service::publish::{process_staged, Processed};
use joip::store::items::CommunityStatus;
use joip::App;
use serde_json::{json, Value};
use support::{read, Event, TestEnv};

const PHOTO: &[u8] = include_bytes!("../../../tools/demo/demo-photo.jpg");

fn event(keys: &[&str]) -> Value {
    let records: Vec<Value> = keys
        .iter()
        .map(|key| {
            let body = crate::support::s3_notification(key);
            json!({ "messageId": format!("m-{key}"), "body": body.to_string() })
        })
        .collect();
    json!({ "Records": records })
}

/// A user's JPEG upload shared to the community: (media id, community id, staging key).
async fn staged(env: &TestEnv, user: &UserId) -> (u64, u64, String) {
    env.app.store.put_tag("solo", "Solo").await.unwrap();
    let media = joip::service::media::upload_media(
        &env.app,
        user,
        "photo.jpg",
        PHOTO.to_vec(),
        MediaSource::Upload,
        None,
    )
    .await
    .unwrap();
    let (status, body) = share(
        &env.app,
        user,
        media.media_id.0,
        json!({ "tags": ["solo"], "policyAgreed": true }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = body["communityMediaId"].as_u64().unwrap();
    let record = env.app.store.community_media(id).await.unwrap().unwrap();
    assert_eq!(record.status, CommunityStatus::Pending);
    (media.media_id.0, id, record.staging_key.unwrap())
}

async fn share(app: &App, user: &UserId, id: u64, body: Value) -> (u16, Value) {
    let path = format!("/api/media/{id}/share");
    let req = Event::new("POST", "/api/media/{id}/share", &path)
        .path_params(json!({ "id": id.to_string() }))
        .caller(user.as_str())
        .body(&body.to_string())
        .request();
    read(Box::pin(joip::routes::share_media::handle(app, req)).await)
}

fn public_get(url: &str) -> (u16, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent.get(url).call().expect("GET");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_vec().unwrap_or_default())
}

async fn feed_ids(env: &TestEnv) -> Vec<u64> {
    let req = Event::new("GET", "/api/community/media", "/api/community/media").request();
    let (_, body) = read(Box::pin(joip::routes::community_feed::handle(&env.app, req)).await);
    body["media"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["communityMediaId"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_staged_upload_is_published_watermarked_once_whatever_the_deliveries() {
    let env = TestEnv::new().await;
    let user = env.user(0, false).await;
    let (_, id, key) = staged(&env, &user).await;
    assert!(
        !feed_ids(&env).await.contains(&id),
        "pending is never listed"
    );
    // Two deliveries racing, then a late duplicate.
    let (a, b) = tokio::join!(
        tokio::spawn({
            let app = env.app.clone();
            let key = key.clone();
            async move { process_staged(&app, &key).await.unwrap() }
        }),
        tokio::spawn({
            let app = env.app.clone();
            let key = key.clone();
            async move { process_staged(&app, &key).await.unwrap() }
        })
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    assert!(outcomes.contains(&Processed::Published), "{outcomes:?}");
    assert_eq!(
        process_staged(&env.app, &key).await.unwrap(),
        Processed::Skipped
    );
    let record = env.app.store.community_media(id).await.unwrap().unwrap();
    assert_eq!(record.status, CommunityStatus::Ready);
    let (status, published) = public_get(&record.url);
    assert_eq!(status, 200, "communityUrl answers once ready");
    assert_ne!(published, PHOTO, "the public copy is stamped");
    assert!(
        image::load_from_memory(&published).is_ok(),
        "and still an image"
    );
    assert!(
        !published.windows(4).any(|w| w == b"Exif" || w == b"GPS\0"),
        "no EXIF reaches the public copy"
    );
    assert!(feed_ids(&env).await.contains(&id));
    let staging = env.keys(&env.app.config.general_bucket, "staging/").await;
    assert!(staging.is_empty(), "staging removed: {staging:?}");
}

#[tokio::test]
async fn what_is_no_image_fails_and_is_never_public() {
    let env = TestEnv::new().await;
    let user = env.user(0, false).await;
    let (_, id, key) = staged(&env, &user).await;
    let general = env.app.config.general_bucket.clone();
    env.app
        .blob
        .put(&general, &key, b"PK\x03\x04 a zip".to_vec(), "image/jpeg")
        .await
        .unwrap();
    assert!(handle_batch(&env.app, &event(&[&key])).await.is_empty());
    let record = env.app.store.community_media(id).await.unwrap().unwrap();
    assert_eq!(record.status, CommunityStatus::Failed);
    assert!(
        env.keys(&general, "").await.is_empty(),
        "nothing public, staging gone"
    );
    assert!(!feed_ids(&env).await.contains(&id));
}

#[tokio::test]
async fn a_crash_after_publishing_is_completed_by_the_redelivery() {
    let env = TestEnv::new().await;
    let user = env.user(0, false).await;
    let (_, id, key) = staged(&env, &user).await;
    let record = env.app.store.community_media(id).await.unwrap().unwrap();
    // As if a first delivery wrote the public object and died before marking the record.
    let general = env.app.config.general_bucket.clone();
    env.app
        .blob
        .put(&general, &record.key, b"half-done".to_vec(), "image/jpeg")
        .await
        .unwrap();
    assert_eq!(
        process_staged(&env.app, &key).await.unwrap(),
        Processed::Published
    );
    let (status, body) = public_get(&record.url);
    assert_eq!(status, 200);
    assert_ne!(body, b"half-done", "the redelivery wrote the real copy");
    assert!(feed_ids(&env).await.contains(&id));
}

#[tokio::test]
async fn events_for_objects_gone_or_outside_staging_change_nothing() {
    let env = TestEnv::new().await;
    let before = env.snapshot().await;
    let failures = handle_batch(
        &env.app,
        &event(&[
            "staging/aa/bb/999-gone.jpg",
            "community/aa/bb/1-x.jpg",
            "staging/a%20b.jpg",
        ]),
    )
    .await;
    assert!(failures.is_empty());
    assert_eq!(env.snapshot().await, before);
}

/// Messages that can never succeed are reported failed every time (so SQS moves them to the
/// DLQ after maxReceiveCount), without holding back the good messages of their batch.
#[tokio::test]
async fn poison_messages_are_failed_and_the_rest_of_the_batch_is_not() {
    let env = TestEnv::new().await;
    let before = env.snapshot().await;
    let test_event = json!({ "Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b" });
    let bad_key = json!({ "Records": [{ "s3": { "object": { "key": "staging/%zz.jpg" } } }] });
    let batch = json!({ "Records": [
        { "messageId": "garbage", "body": "not json {" },
        { "messageId": "no-records", "body": "{\"hello\":1}" },
        { "messageId": "no-body" },
        { "messageId": "bad-key", "body": bad_key.to_string() },
        { "messageId": "test-event", "body": test_event.to_string() },
        event(&["staging/aa/bb/999-gone.jpg"])["Records"][0].clone(),
    ]});
    for _ in 0..2 {
        assert_eq!(
            handle_batch(&env.app, &batch).await,
            vec!["garbage", "no-records", "no-body", "bad-key"],
            "the same verdict on every delivery"
        );
    }
    assert_eq!(env.snapshot().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_chaos_redelivery_publishes_exactly_once() {
    let env = TestEnv::new().await;
    let user = env.user(0, false).await;
    let (_, id, key) = staged(&env, &user).await;
    let chaos = env.chaos_app(0.3);
    // Lambda's event source redelivers the batch item failures until they succeed.
    let mut deliveries = 0;
    while !handle_batch(&chaos, &event(&[&key])).await.is_empty() {
        deliveries += 1;
        assert!(deliveries < 50, "never published");
    }
    let record = env.app.store.community_media(id).await.unwrap().unwrap();
    assert_eq!(record.status, CommunityStatus::Ready);
    let community = env.keys(&env.app.config.general_bucket, "community/").await;
    assert_eq!(community.len(), 1, "{community:?}");
}

#[tokio::test]
async fn unsharing_during_watermarking_leaves_no_public_object() {
    let env = TestEnv::new().await;
    let user = env.user(0, false).await;
    let (media, _, key) = staged(&env, &user).await;
    let (status, _) = share(&env.app, &user, media, json!({ "shareToCommunity": false })).await;
    assert_eq!(status, 200);
    // The notification of the staged object arrives after the unshare.
    assert_eq!(
        process_staged(&env.app, &key).await.unwrap(),
        Processed::Skipped
    );
    assert!(env
        .keys(&env.app.config.general_bucket, "")
        .await
        .is_empty());
}

#[tokio::test]
async fn a_png_upload_is_published_through_the_fallback_as_png() {
    let env = TestEnv::new().await;
    let user = env.user(0, false).await;
    env.app.store.put_tag("solo", "Solo").await.unwrap();
    let png = include_bytes!("../../../tools/demo/demo-upload.png");
    let media = joip::service::media::upload_media(
        &env.app,
        &user,
        "upload.png",
        png.to_vec(),
        MediaSource::Upload,
        None,
    )
    .await
    .unwrap();
    let body = json!({ "tags": ["solo"], "policyAgreed": true });
    let (status, shared) = share(&env.app, &user, media.media_id.0, body).await;
    assert_eq!(status, 200, "{shared}");
    let id = shared["communityMediaId"].as_u64().unwrap();
    let key = env
        .app
        .store
        .community_media(id)
        .await
        .unwrap()
        .unwrap()
        .staging_key
        .unwrap();
    assert_eq!(
        process_staged(&env.app, &key).await.unwrap(),
        Processed::Published
    );
    let (status, published) = public_get(shared["communityUrl"].as_str().unwrap());
    assert_eq!(status, 200);
    assert_eq!(
        image::guess_format(&published).unwrap(),
        image::ImageFormat::Png,
        "same format"
    );
    assert_ne!(published, png.to_vec(), "stamped");
}

#[tokio::test]
async fn an_event_that_beats_its_record_is_retried_not_dropped() {
    // A share copies to staging before it writes the record, and S3 may notify in between.
    let env = TestEnv::new().await;
    let general = env.app.config.general_bucket.clone();
    let key = "staging/aa/bb/4242-early.jpg";
    env.app
        .blob
        .put(&general, key, PHOTO.to_vec(), "image/jpeg")
        .await
        .unwrap();
    assert!(
        process_staged(&env.app, key).await.is_err(),
        "retried later"
    );
    let failures = handle_batch(&env.app, &event(&[key])).await;
    assert_eq!(failures, vec![format!("m-{key}")], "a batch item failure");
    assert_eq!(
        env.keys(&general, "staging/").await.len(),
        1,
        "the staged original waits for its record"
    );
}
