//! Taking back what is public (issue 17), seen from outside: every community URL read through the
//! emulator's CDN, which keeps serving what it cached after S3 forgets it, until an invalidation
//! for its path arrives (as CloudFront does). Removals must reach the edge within a bound, also
//! when CloudFront refuses the invalidation or the remover dies after removing the records; what
//! is public is served as its bytes, never as the uploader said; the publisher reads no more than
//! its limit and withdraws what a lost record leaves.

use crate::support::api::{share, unshare};
use crate::support::{self, handle_batch, read, s3_notification, Event, Stored, TestEnv};
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use joip::cdn::Cdn;
use joip::domain::{MediaId, MediaSource, UserId};
use joip::routes::share_media_by_path;
use joip::service::media::upload_media;
use joip::service::unpublish;
use joip::store::items::CommunityStatus;
use joip::App;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LOOP: &[u8] = include_bytes!("../../../tools/demo/demo-loop.gif");
const PHOTO: &[u8] = include_bytes!("../../../tools/demo/demo-photo.jpg");
const CLIP: &[u8] = include_bytes!("../../../tools/demo/demo-clip.mp4");
/// The longest a removal may take to reach the edge locally (the goal).
const GONE_WITHIN: Duration = Duration::from_secs(60);

// ---- requests ---------------------------------------------------------------------------------

/// A viewer's GET of a community URL (through the CDN): status, headers (lower-cased), body.
async fn view(url: &str) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut resp = agent.get(&url).call().expect("GET");
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_lowercase(),
                    v.to_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let status = resp.status().as_u16();
        (
            status,
            headers,
            resp.body_mut().read_to_vec().expect("body"),
        )
    })
    .await
    .expect("GET task")
}

/// How long `url` took to stop answering 200 (polled every 20 ms), or `None` past `within`.
async fn gone_after(url: &str, since: Instant, within: Duration) -> Option<Duration> {
    loop {
        if view(url).await.0 != 200 {
            return Some(since.elapsed());
        }
        if since.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A GIF in the community (handed over to the publisher, which copies it as is), viewed once so
/// the edge holds it: (owner, media id, community URL, object key).
async fn cached_gif(env: &TestEnv) -> (UserId, MediaId, String, String) {
    let owner = env.user(0, false).await;
    let media = upload_media(
        &env.app,
        &owner,
        "loop.gif",
        LOOP.to_vec(),
        MediaSource::Babecock,
        None,
    )
    .await
    .expect("upload");
    let (status, answer) = share(&env.app, &owner, media.media_id, json!({})).await;
    assert_eq!(status, 200, "{answer}");
    let url = answer["communityUrl"]
        .as_str()
        .expect("communityUrl")
        .to_string();
    let (status, _, _) = view(&url).await;
    assert_ne!(status, 200, "nothing is public before the publisher runs");
    assert_eq!(env.publish_staged().await, 1);
    let (status, headers, body) = view(&url).await;
    assert_eq!((status, body.as_slice()), (200, LOOP), "{headers:?}");
    let (_, headers, _) = view(&url).await;
    assert_eq!(
        headers["x-cache"], "Hit from cloudfront",
        "the edge holds it"
    );
    let key = url
        .strip_prefix(&format!("{}/", env.app.config.public_base_url))
        .expect("a key under the CDN base")
        .to_string();
    (owner, media.media_id, url, key)
}

/// An upload image shared to the community, pending (staged for the publisher), uploaded with
/// `claimed` as its type: the test env, the owner, the media and the share's answer.
async fn pending_upload(
    claimed: Option<&str>,
) -> (TestEnv, UserId, joip::store::items::MediaItem, Value) {
    let env = TestEnv::new().await;
    env.app.store.put_tag("solo", "Solo").await.unwrap();
    let owner = env.user(0, false).await;
    let photo = PHOTO.to_vec();
    let media = upload_media(
        &env.app,
        &owner,
        "p.jpg",
        photo,
        MediaSource::Upload,
        claimed,
    )
    .await
    .unwrap();
    let body = json!({ "tags": ["solo"], "policyAgreed": true });
    let (status, answer) = share(&env.app, &owner, media.media_id, body).await;
    assert_eq!(status, 200, "{answer}");
    (env, owner, media, answer)
}

/// `app` whose CloudFront client has its first `failures` calls answered with a fault (the
/// emulator's chaos header): CloudFront throttling, busy or down.
fn app_with_failing_cdn(env: &TestEnv, failures: usize) -> (App, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let client = aws_sdk_cloudfront::Client::from_conf(
        aws_sdk_cloudfront::config::Builder::from(&env.sdk)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .interceptor(FailFirst {
                failures,
                calls: calls.clone(),
            })
            .build(),
    );
    let mut app = env.app.clone();
    app.cdn = Cdn::new(client, env.app.config.cdn_distribution_id.clone());
    (app, calls)
}

#[derive(Debug)]
struct FailFirst {
    failures: usize,
    calls: Arc<AtomicUsize>,
}

impl Intercept for FailFirst {
    fn name(&self) -> &'static str {
        "FailFirst"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            context
                .request_mut()
                .headers_mut()
                .insert("x-joip-chaos", "1");
        }
        Ok(())
    }
}

/// Records the `Range` of every S3 GetObject.
#[derive(Debug, Default, Clone)]
struct Ranges(Arc<Mutex<Vec<Option<String>>>>);

impl Intercept for Ranges {
    fn name(&self) -> &'static str {
        "Ranges"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let is_get = request.method() == "GET" && !request.uri().contains("list-type");
        if is_get {
            let range = request.headers().get("range").map(str::to_string);
            self.0.lock().unwrap().push(range);
        }
        Ok(())
    }
}

fn assert_settled(stored: &Stored, when: &str) {
    let problems = stored.violations();
    assert!(problems.is_empty(), "{when}:\n  {}", problems.join("\n  "));
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

// ---- the edge ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_cdn_keeps_serving_a_deleted_object_until_its_path_is_invalidated() {
    let env = TestEnv::new().await;
    let (_, _, url, key) = cached_gif(&env).await;
    env.app
        .blob
        .delete(&env.app.config.general_bucket, &key)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, headers, body) = view(&url).await;
    assert_eq!(
        (status, body.as_slice()),
        (200, LOOP),
        "S3 forgot it, the edge did not: {headers:?}"
    );
    let started = Instant::now();
    env.app.cdn.invalidate(&[&key]).await.expect("invalidate");
    let took = gone_after(&url, started, Duration::from_secs(10)).await;
    assert!(took.is_some(), "an invalidation ends it");
}

#[tokio::test]
async fn unsharing_takes_a_community_url_off_the_edge_within_the_bound() {
    let env = TestEnv::new().await;
    let mut times = Vec::new();
    for round in 0..6 {
        let (owner, media, url, _) = cached_gif(&env).await;
        let started = Instant::now();
        // DELETE, or keep the link and leave the community.
        let (status, answer) = if round % 2 == 0 {
            unshare(&env.app, &owner, media).await
        } else {
            share(
                &env.app,
                &owner,
                media,
                json!({ "shareToCommunity": false }),
            )
            .await
        };
        assert_eq!(status, 200, "{answer}");
        let took = gone_after(&url, started, GONE_WITHIN).await;
        times.push(
            took.unwrap_or_else(|| panic!("round {round}: still served after {GONE_WITHIN:?}")),
        );
    }
    times.sort();
    println!(
        "unshare to gone at the edge: p50 {:?}, p99 {:?} ({} unshares)",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.len()
    );
    assert_settled(&Stored::read(&env.app).await, "after the unshares");
}

#[tokio::test]
async fn without_an_invalidation_the_edge_would_serve_an_unshared_object() {
    // The control of the test above: the same unshare by a remover that never invalidates (no
    // distribution configured) leaves the object at the edge, so that test can fail.
    let env = TestEnv::new().await;
    let (owner, media, url, _) = cached_gif(&env).await;
    let mut blind = env.app.clone();
    blind.cdn = Cdn::new(aws_sdk_cloudfront::Client::new(&env.sdk), None);
    assert_eq!(unshare(&blind, &owner, media).await.0, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, headers, _) = view(&url).await;
    assert_eq!(status, 200, "the edge still holds it: {headers:?}");
    assert_eq!(headers["x-cache"], "Hit from cloudfront");
}

#[tokio::test]
async fn a_refused_invalidation_is_finished_by_the_sweep() {
    let env = TestEnv::new().await;
    let (owner, media, url, key) = cached_gif(&env).await;
    let (app, calls) = app_with_failing_cdn(&env, 3);
    let started = Instant::now();
    let (status, answer) = unshare(&app, &owner, media).await;
    assert_eq!(status, 200, "the removal is durable: {answer}");
    assert!(calls.load(Ordering::SeqCst) >= 1, "the remover tried");
    let general = &env.app.config.general_bucket;
    assert!(
        env.app.blob.head(general, &key).await.unwrap().is_none(),
        "deleted from S3"
    );
    let (status, _, _) = view(&url).await;
    assert_eq!(status, 200, "CloudFront refused: the edge still holds it");
    // The reaper's sweep, each minute: it keeps trying until CloudFront accepts.
    let mut sweeps = 0;
    loop {
        sweeps += 1;
        let swept = unpublish::sweep(&app, 0).await.unwrap();
        if swept.left == 0 && swept.unpublished > 0 {
            break;
        }
        assert!(sweeps < 10, "the sweep never finished: {swept:?}");
    }
    let took = gone_after(&url, started, GONE_WITHIN).await;
    assert!(took.is_some(), "gone at the edge after {sweeps} sweeps");
    assert_settled(&Stored::read(&env.app).await, "after the sweep");
}

#[tokio::test]
async fn a_remover_that_dies_after_removing_the_records_is_finished_by_the_sweep() {
    let env = TestEnv::new().await;
    let (_, media, url, key) = cached_gif(&env).await;
    let (m, marker) = env.app.store.media_and_marker(media).await.unwrap();
    let record = env
        .app
        .store
        .community_media(marker.expect("marker").community_media_id)
        .await
        .unwrap()
        .expect("record");
    // The transaction commits, then the Lambda is gone: no delete, no invalidation.
    let owed = unpublish::owed_by(&record, env.app.clock.now_millis());
    let removed = env
        .app
        .store
        .remove_community(m.as_ref(), &record, &owed)
        .await
        .unwrap();
    assert_eq!(removed, joip::store::Written::Done);
    let general = &env.app.config.general_bucket;
    assert!(env.app.blob.head(general, &key).await.unwrap().is_some());
    assert_eq!(view(&url).await.0, 200, "still public until the sweep");
    let started = Instant::now();
    let swept = unpublish::sweep(&env.app, 0).await.unwrap();
    assert_eq!(
        (swept.unpublished, swept.left),
        (2, 0),
        "the public object and the hand-over marker"
    );
    assert!(env.app.blob.head(general, &key).await.unwrap().is_none());
    assert!(gone_after(&url, started, GONE_WITHIN).await.is_some());
    assert_settled(&Stored::read(&env.app).await, "after the sweep");
}

// ---- served as what it is ---------------------------------------------------------------------

#[tokio::test]
async fn public_copies_are_served_as_their_bytes_never_as_uploaded() {
    let env = TestEnv::new().await;
    let owner = env.user(0, false).await;
    let mut polyglot = LOOP.to_vec();
    polyglot.extend_from_slice(b"<html><script>alert(document.domain)</script></html>");
    for (name, bytes, mime) in [
        ("loop.gif", polyglot.as_slice(), "image/gif"),
        ("clip.mp4", CLIP, "video/mp4"),
    ] {
        let key = format!("users/{owner}/uploads/{name}");
        env.app
            .blob
            .client()
            .put_object()
            .bucket(&env.app.config.user_media_bucket)
            .key(&key)
            .body(bytes.to_vec().into())
            .content_type("text/html")
            .content_disposition("attachment; filename=\"page.html\"")
            .metadata("owner", "someone-else")
            .send()
            .await
            .unwrap();
        let body = json!({ "filePath": key }).to_string();
        let e = Event::new("POST", "/api/user/media/share", "/api/user/media/share")
            .caller(owner.as_str())
            .body(&body);
        let (status, answer) =
            read(Box::pin(share_media_by_path::handle(&env.app, e.request())).await);
        assert_eq!(status, 200, "{name}: {answer}");
        assert_eq!(env.publish_staged().await, 1, "{name}");
        let (status, headers, got) = view(answer["communityUrl"].as_str().unwrap()).await;
        assert_eq!((status, got.as_slice()), (200, bytes), "{name}");
        assert_eq!(headers["content-type"], mime, "{name}: the sniffed type");
        assert!(
            !headers.contains_key("content-disposition"),
            "{name}: {headers:?}"
        );
        assert!(
            !headers.keys().any(|h| h.starts_with("x-amz-meta-")),
            "{name}: no uploader metadata: {headers:?}"
        );
        assert_eq!(
            headers["cache-control"],
            joip::blob::PUBLIC_CACHE_CONTROL,
            "{name}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
}

#[tokio::test]
async fn a_watermarked_copy_is_served_as_its_bytes_with_a_short_browser_lifetime() {
    let (env, _, _, answer) = pending_upload(Some("text/html")).await;
    let cid = answer["communityMediaId"].as_u64().unwrap();
    let record = env.app.store.community_media(cid).await.unwrap().unwrap();
    let staged = record.staging_key.clone().unwrap();
    let batch =
        json!({ "Records": [{ "messageId": "m", "body": s3_notification(&staged).to_string() }] });
    assert!(handle_batch(&env.app, &batch).await.is_empty());
    let (status, headers, _) = view(answer["communityUrl"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/jpeg");
    assert_eq!(
        headers["cache-control"],
        "public, max-age=300, s-maxage=31536000"
    );
    assert!(!headers.contains_key("content-disposition"));
}

// ---- the publisher ----------------------------------------------------------------------------

#[tokio::test]
async fn a_staged_object_over_the_limit_fails_in_one_delivery_unread() {
    let (env, _, _, answer) = pending_upload(None).await;
    let cid = answer["communityMediaId"].as_u64().unwrap();
    let record = env.app.store.community_media(cid).await.unwrap().unwrap();
    let staged = record.staging_key.clone().unwrap();
    // The publisher's limit is lower than the staged file (a file staged before a lower limit,
    // or a 700 MB "JPEG"): the ranged read stops at the limit and one byte.
    let ranges = Ranges::default();
    let s3 = aws_sdk_s3::Client::from_conf(
        App::s3_config(&env.app.config, &env.sdk)
            .interceptor(ranges.clone())
            .build(),
    );
    let db = aws_sdk_dynamodb::Client::new(&env.sdk);
    let mut config = env.app.config.clone();
    config.watermark_max_bytes = 4096;
    let small = App::from_clients(config, &env.sdk, db, s3);
    let batch =
        json!({ "Records": [{ "messageId": "m", "body": s3_notification(&staged).to_string() }] });
    assert!(
        handle_batch(&small, &batch).await.is_empty(),
        "done in one delivery"
    );
    let record = env.app.store.community_media(cid).await.unwrap().unwrap();
    assert_eq!(record.status, CommunityStatus::Failed);
    assert_eq!(
        ranges.0.lock().unwrap().clone(),
        vec![Some("bytes=0-4096".to_string())],
        "one ranged read of the limit and one byte"
    );
    assert_settled(&Stored::read(&env.app).await, "after the refusal");
}

#[tokio::test]
async fn a_publish_that_outlived_its_record_is_withdrawn_on_redelivery() {
    let (env, owner, media, answer) = pending_upload(None).await;
    let url = answer["communityUrl"].as_str().unwrap().to_string();
    let cid = answer["communityMediaId"].as_u64().unwrap();
    let record = env.app.store.community_media(cid).await.unwrap().unwrap();
    let staged = record.staging_key.clone().unwrap();
    // The unshare removes everything; then a publisher that had read the record puts the
    // public object, the edge caches it, and the publisher dies before it could clean up.
    assert_eq!(unshare(&env.app, &owner, media.media_id).await.0, 200);
    let general = &env.app.config.general_bucket;
    env.app
        .blob
        .put_public(general, &record.key, PHOTO.to_vec(), "image/jpeg")
        .await
        .unwrap();
    assert_eq!(view(&url).await.0, 200, "public with no record");
    // The message is redelivered: no record, so nothing may be public.
    let started = Instant::now();
    let batch =
        json!({ "Records": [{ "messageId": "m", "body": s3_notification(&staged).to_string() }] });
    assert!(handle_batch(&env.app, &batch).await.is_empty());
    assert!(env
        .app
        .blob
        .head(general, &record.key)
        .await
        .unwrap()
        .is_none());
    assert!(
        gone_after(&url, started, GONE_WITHIN).await.is_some(),
        "and off the edge"
    );
    assert_settled(&Stored::read(&env.app).await, "after the redelivery");
    let _ = support::endpoint();
}

#[tokio::test]
async fn a_pending_copy_whose_staged_source_is_gone_fails_instead_of_waiting_forever() {
    // The staging lifecycle rule expired the source (a message redriven from the DLQ a day
    // later), or it was deleted by hand: nobody will ever publish the record.
    let (env, _, _, answer) = pending_upload(None).await;
    let cid = answer["communityMediaId"].as_u64().unwrap();
    let record = env.app.store.community_media(cid).await.unwrap().unwrap();
    let staged = record.staging_key.clone().unwrap();
    let general = &env.app.config.general_bucket;
    env.app.blob.delete(general, &staged).await.unwrap();
    let batch =
        json!({ "Records": [{ "messageId": "m", "body": s3_notification(&staged).to_string() }] });
    assert!(handle_batch(&env.app, &batch).await.is_empty());
    let record = env.app.store.community_media(cid).await.unwrap().unwrap();
    assert_eq!(
        record.status,
        CommunityStatus::Failed,
        "never shown, never pending for good"
    );
    assert_settled(&Stored::read(&env.app).await, "after the source was gone");
}

/// A large video: the share answers at once whatever the size (the request hands the original
/// over, it copies nothing), nothing is public until the publisher's copy is done and the record
/// `ready`, and then it is served as its bytes. Every copy of this run takes time in proportion
/// to its size, as S3's do; the publisher's is shown to take it (so a copy in the request would
/// have been seen).
#[tokio::test]
async fn a_large_video_share_answers_at_once_and_is_public_only_when_ready() {
    let env = TestEnv::new().await;
    let owner = env.user(0, false).await;
    let mut video = CLIP.to_vec();
    video.resize(8 << 20, 0); // the edge client reads at most 10 MB
    let media = upload_media(
        &env.app,
        &owner,
        "long.mp4",
        video.clone(),
        MediaSource::Upload,
        None,
    )
    .await
    .expect("upload");
    const MS_PER_MIB: u64 = 800; // 6.4 s for this file
    let mut slow = env.app_with_s3_interceptor(support::CopyRate {
        ms_per_mib: MS_PER_MIB,
    });
    // Above the stage limit: handed over, copied by the publisher alone.
    slow.config.stage_max_bytes = 4 << 20;
    let copy_time = Duration::from_millis(MS_PER_MIB * 8);
    let started = Instant::now();
    let (status, answer) = share(&slow, &owner, media.media_id, json!({})).await;
    let answered = started.elapsed();
    assert_eq!(status, 200, "{answer}");
    assert!(
        answered < copy_time / 2,
        "the share answered in {answered:?}: it must not wait for a {copy_time:?} copy"
    );
    let url = answer["communityUrl"].as_str().expect("communityUrl");
    let cid = answer["communityMediaId"].as_u64().expect("an id");
    let record = env.app.store.community_media(cid).await.unwrap().unwrap();
    assert_eq!(record.status, CommunityStatus::Pending);
    assert_ne!(view(url).await.0, 200, "nothing public before it is ready");
    let stored = Stored::read(&env.app).await;
    assert!(
        stored.public.is_empty(),
        "no public object: {:?}",
        stored.public
    );

    let staged = record.staging_key.expect("a hand-over marker");
    let started = Instant::now();
    let published = joip::service::publish::process_staged(&slow, &staged).await;
    let took = started.elapsed();
    assert_eq!(
        published.unwrap(),
        joip::service::publish::Processed::Published
    );
    assert!(took >= copy_time, "the publisher's copy took {took:?}");
    let record = env.app.store.community_media(cid).await.unwrap().unwrap();
    assert_eq!(record.status, CommunityStatus::Ready);
    let (status, headers, body) = view(url).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "video/mp4");
    assert!(body == video, "the same bytes");
    assert_settled(
        &Stored::read(&env.app).await,
        "after publishing a large video",
    );
}

/// The publisher copies exactly the bytes it sniffed: a copy conditioned on their ETag
/// (`CopySourceIfMatch`, which the emulator honours as S3 does) of an object replaced meanwhile is
/// refused as `missing` and writes nothing; and an original replaced by other bytes before its
/// publish (here an HTML page where a GIF was shared) ends `failed`, never public.
#[tokio::test]
async fn only_the_sniffed_bytes_of_an_original_are_ever_published() {
    let mut env = TestEnv::new().await;
    env.app.config.stage_max_bytes = 0; // every GIF handed over: the original is what is copied
    let owner = env.user(0, false).await;
    let media = upload_media(
        &env.app,
        &owner,
        "loop.gif",
        LOOP.to_vec(),
        MediaSource::Upload,
        None,
    )
    .await
    .expect("upload");
    let (users, general) = (
        env.app.config.user_media_bucket.clone(),
        env.app.config.general_bucket.clone(),
    );
    let sniffed = env.app.blob.get_range(&users, &media.file_path, 64).await;
    let sniffed = sniffed.expect("the original's first bytes");
    let html = b"<html><script>alert(document.domain)</script></html>".to_vec();
    let replace = |bytes: Vec<u8>| {
        let (app, users, key) = (&env.app, users.clone(), media.file_path.clone());
        async move {
            app.blob
                .put(&users, &key, bytes, "image/gif")
                .await
                .expect("replace the original")
        }
    };
    replace(html.clone()).await;
    let target = "community/zz/zz/if-match.gif";
    let copied = env
        .app
        .blob
        .copy_public(
            (&users, &media.file_path),
            (&general, target),
            None,
            ("image/gif", &sniffed.e_tag),
        )
        .await;
    assert!(copied.is_err_and(|e| e.missing), "412: other bytes now");
    assert!(env.app.blob.head(&general, target).await.unwrap().is_none());

    // Through the share and the publisher: replaced after the share sniffed it.
    replace(LOOP.to_vec()).await;
    let (status, answer) = share(&env.app, &owner, media.media_id, json!({})).await;
    assert_eq!(status, 200, "{answer}");
    replace(html).await;
    assert_eq!(env.publish_staged().await, 0);
    let cid = answer["communityMediaId"].as_u64().unwrap();
    let record = env.app.store.community_media(cid).await.unwrap().unwrap();
    assert_eq!(record.status, CommunityStatus::Failed);
    let url = answer["communityUrl"].as_str().unwrap();
    assert_ne!(view(url).await.0, 200);
    let stored = Stored::read(&env.app).await;
    assert!(stored.public.is_empty() && stored.staging.is_empty());
}
