//! Moderation (issue 19), seen from outside: reports through the real route, hiding through the
//! unpublish path (feed and CDN), restores and takedowns as `joip-admin` runs them, and the
//! blocklist refusing re-uploads by anyone, all against the emulator.

use crate::support::api::{report, share};
use crate::support::{read, Event, Stored, TestEnv};
use joip::domain::{MediaId, MediaSource, UserId};
use joip::routes::{community_feed, get_media_share};
use joip::service::media::upload_media;
use joip::service::moderation;
use joip::store::items::CommunityStatus;
use joip::App;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const PHOTO: &[u8] = include_bytes!("../../../tools/demo/demo-photo.jpg");
/// Real photographs (lib/tests/photos/LICENSE.md): what a perceptual hash is for.
const ASTRONAUT: &[u8] = include_bytes!("../photos/astronaut.jpg");
const CHELSEA: &[u8] = include_bytes!("../photos/chelsea.jpg");
const PNG: &[u8] = include_bytes!("../../../tools/demo/demo-upload.png");
const LOOP: &[u8] = include_bytes!("../../../tools/demo/demo-loop.gif");
const CLIP: &[u8] = include_bytes!("../../../tools/demo/demo-clip.mp4");

async fn report_as(app: &App, caller: &UserId, cid: u64, reason: &str) -> (u16, Value) {
    let body = json!({ "reason": reason }).to_string();
    report(app, Some(caller), &cid.to_string(), &body).await
}

async fn share_state(app: &App, caller: &UserId, id: MediaId) -> Value {
    let e = Event::new(
        "GET",
        "/api/media/{id}/share",
        &format!("/api/media/{id}/share"),
    )
    .path_params(json!({ "id": id.to_string() }))
    .caller(caller.as_str());
    let (status, body) = read(Box::pin(get_media_share::handle(app, e.request())).await);
    assert_eq!(status, 200, "{body}");
    body
}

async fn feed_ids(app: &App) -> Vec<u64> {
    let e = Event::new("GET", "/api/community/media", "/api/community/media")
        .query(&[("limit", "100")]);
    let (status, body) = read(Box::pin(community_feed::handle(app, e.request())).await);
    assert_eq!(status, 200, "{body}");
    body["media"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["communityMediaId"].as_u64().unwrap())
        .collect()
}

/// A viewer's GET of a community URL through the CDN: its status.
async fn view(url: &str) -> u16 {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        agent.get(&url).call().expect("GET").status().as_u16()
    })
    .await
    .unwrap()
}

/// Until `url` stops answering 200 (the invalidation has taken effect), at most a minute.
async fn until_gone(url: &str) -> Duration {
    let since = Instant::now();
    while view(url).await == 200 {
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "{url} is still served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    since.elapsed()
}

/// An upload of `bytes` by a new user, shared to the community and published: (owner, media,
/// community id, community URL, status after the publisher).
async fn published(env: &TestEnv, name: &str, bytes: &[u8]) -> (UserId, MediaId, u64, String) {
    let (owner, media, cid, url) = shared(env, name, bytes).await;
    env.publish_staged().await;
    (owner, media, cid, url)
}

async fn shared(env: &TestEnv, name: &str, bytes: &[u8]) -> (UserId, MediaId, u64, String) {
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
    let body = json!({ "tags": ["solo"], "policyAgreed": true });
    let (status, answer) = share(&env.app, &owner, media.media_id, body).await;
    assert_eq!(status, 200, "{answer}");
    let cid = answer["communityMediaId"].as_u64().unwrap();
    let url = answer["communityUrl"].as_str().unwrap().to_string();
    (owner, media.media_id, cid, url)
}

async fn status_of(env: &TestEnv, cid: u64) -> CommunityStatus {
    env.app
        .store
        .community_media(cid)
        .await
        .unwrap()
        .expect("record")
        .status
}

async fn tagged(env: &TestEnv) {
    env.app.store.put_tag("solo", "Solo").await.unwrap();
}

fn assert_consistent(stored: &Stored, when: &str) {
    let problems = stored.violations();
    assert!(problems.is_empty(), "{when}:\n  {}", problems.join("\n  "));
}

// ---- the report contract ----------------------------------------------------------------------

#[tokio::test]
async fn a_report_is_answered_as_documented_and_counts_once_per_user() {
    let env = TestEnv::new().await;
    tagged(&env).await;
    let (_, _, cid, _) = published(&env, "photo.jpg", PHOTO).await;
    let reporter = env.user(0, false).await;
    let id = cid.to_string();
    let ok = json!({ "success": true });
    for body in [
        json!({ "reason": "spam" }),
        json!({ "reason": "spam", "note": "again" }),
    ] {
        let answer = report(&env.app, Some(&reporter), &id, &body.to_string()).await;
        assert_eq!(answer, (200, ok.clone()));
    }
    let open = moderation::open_reports(&env.app, None).await.unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["reporters"], 1, "a repeat counts once: {open:?}");
    assert_eq!(open[0]["reasons"], json!({ "spam": 1 }));
    assert_eq!(open[0]["status"], "visible");

    let msg = |m: &str| json!({ "message": m });
    let long = "n".repeat(1001);
    for (body, want) in [
        (r#"{}"#.to_string(), msg("Invalid reason")),
        (r#"{"reason":null}"#.into(), msg("Invalid reason")),
        (r#"{"reason":"rude"}"#.into(), msg("Invalid reason")),
        (r#"{"reason":["spam"]}"#.into(), msg("Invalid reason")),
        (
            json!({ "reason": "spam", "note": long }).to_string(),
            msg("Invalid note"),
        ),
        (r#"{"reason":"spam","note":3}"#.into(), msg("Invalid note")),
        (
            r#"{"reason":"spam","extra":1}"#.into(),
            msg("Invalid request body"),
        ),
        ("[1]".into(), msg("Invalid request body")),
        ("not json".into(), msg("Invalid request body")),
    ] {
        let other = env.user(0, false).await;
        assert_eq!(
            report(&env.app, Some(&other), &id, &body).await,
            (400, want),
            "{body}"
        );
    }
    for bad in ["0", "-1", "x", "9007199254740992"] {
        assert_eq!(
            report(&env.app, Some(&reporter), bad, r#"{"reason":"spam"}"#).await,
            (400, msg("Invalid community media ID"))
        );
    }
    let spam = r#"{"reason":"spam"}"#;
    assert_eq!(report(&env.app, None, &id, spam).await.0, 401);
    let missing = (404, msg("Community media not found"));
    assert_eq!(
        report_as(&env.app, &reporter, 999_999, "spam").await,
        missing
    );
    // A pending copy cannot be reported yet.
    let (_, _, pending, _) = shared(&env, "p.png", PNG).await;
    assert_eq!(
        report_as(&env.app, &reporter, pending, "spam").await,
        missing
    );
    let open = moderation::open_reports(&env.app, None).await.unwrap();
    assert_eq!(
        open[0]["reporters"], 1,
        "refusals counted nothing: {open:?}"
    );
}

#[tokio::test]
async fn more_reports_than_the_hourly_limit_are_refused_until_an_hour_has_passed() {
    let mut env = TestEnv::new().await;
    env.app.config.reports_per_hour = 3;
    env.app.clock = joip::domain::Clock::fixed(joip::domain::now_millis());
    tagged(&env).await;
    let mut items = Vec::new();
    for i in 0..5 {
        let (_, _, cid, _) = published(&env, &format!("p{i}.gif"), LOOP).await;
        items.push(cid);
    }
    let reporter = env.user(0, false).await;
    for cid in &items[..3] {
        assert_eq!(report_as(&env.app, &reporter, *cid, "spam").await.0, 200);
        env.app.clock.advance(60_000);
    }
    let limited = (429, json!({ "message": "Too many reports" }));
    assert_eq!(
        report_as(&env.app, &reporter, items[3], "spam").await,
        limited
    );
    // A repeat is not a new report: still 200.
    assert_eq!(
        report_as(&env.app, &reporter, items[0], "spam").await.0,
        200
    );
    // Another user is not limited by this one.
    let other = env.user(0, false).await;
    assert_eq!(report_as(&env.app, &other, items[3], "spam").await.0, 200);
    // An hour after the first report its slot is free again, and only that one.
    env.app.clock.advance(3_600_000 - 3 * 60_000 + 1);
    assert_eq!(
        report_as(&env.app, &reporter, items[3], "spam").await.0,
        200
    );
    assert_eq!(
        report_as(&env.app, &reporter, items[4], "spam").await,
        limited
    );
}

// ---- hiding, restoring, taking down -------------------------------------------------------------

#[tokio::test]
async fn three_reporters_hide_a_copy_everywhere_and_a_restore_brings_it_back() {
    let env = TestEnv::new().await;
    tagged(&env).await;
    let (owner, media, cid, url) = published(&env, "photo.jpg", PHOTO).await;
    assert_eq!(view(&url).await, 200, "cached at the edge");
    assert!(feed_ids(&env.app).await.contains(&cid));
    let mut reporters = Vec::new();
    for (i, reason) in ["spam", "copyright", "spam"].into_iter().enumerate() {
        let user = env.user(0, false).await;
        assert_eq!(report_as(&env.app, &user, cid, reason).await.0, 200);
        reporters.push(user);
        let want = if i < 2 {
            CommunityStatus::Ready
        } else {
            CommunityStatus::Hidden
        };
        assert_eq!(status_of(&env, cid).await, want, "after {} reports", i + 1);
    }
    assert!(!feed_ids(&env.app).await.contains(&cid), "out of the feed");
    until_gone(&url).await;
    assert_eq!(
        share_state(&env.app, &owner, media).await["communityStatus"],
        "hidden"
    );
    let open = moderation::open_reports(&env.app, Some("hidden"))
        .await
        .unwrap();
    assert_eq!(
        open.iter()
            .map(|r| (
                r["communityMediaId"].clone(),
                r["reporters"].clone(),
                r["reasons"].clone()
            ))
            .collect::<Vec<_>>(),
        [(json!(cid), json!(3), json!({ "spam": 2, "copyright": 1 }))]
    );
    assert!(moderation::open_reports(&env.app, Some("visible"))
        .await
        .unwrap()
        .is_empty());
    // Hidden copies take no reports.
    let late = env.user(0, false).await;
    assert_eq!(report_as(&env.app, &late, cid, "spam").await.0, 404);
    // The owner is told, never by whom.
    let log = env.app.store.activity(&owner).await.unwrap();
    let hidden: Vec<_> = log
        .iter()
        .filter(|a| a.action == "community_media_hidden")
        .collect();
    assert_eq!(hidden.len(), 1, "{log:?}");
    let text = serde_json::to_string(&hidden[0].details).unwrap();
    for r in &reporters {
        assert!(!text.contains(r.as_str()), "a reporter named: {text}");
    }
    assert_consistent(&Stored::read(&env.app).await, "hidden");

    moderation::restore(&env.app, cid, "reviewed: fine")
        .await
        .unwrap();
    assert_eq!(status_of(&env, cid).await, CommunityStatus::Ready);
    assert!(feed_ids(&env.app).await.contains(&cid), "back in the feed");
    assert_eq!(view(&url).await, 200, "served again");
    assert!(moderation::open_reports(&env.app, None)
        .await
        .unwrap()
        .is_empty());
    // Its reports were resolved: the same users report afresh.
    assert_eq!(report_as(&env.app, &reporters[0], cid, "spam").await.0, 200);
    assert_eq!(status_of(&env, cid).await, CommunityStatus::Ready);
    let log = env.app.store.activity(&owner).await.unwrap();
    assert!(
        log.iter()
            .any(|a| a.action == "community_media_restored"
                && a.details["reason"] == "reviewed: fine")
    );
    assert_consistent(&Stored::read(&env.app).await, "restored");
}

#[tokio::test]
async fn one_nonconsensual_or_underage_report_hides_at_once() {
    let env = TestEnv::new().await;
    tagged(&env).await;
    for reason in ["nonconsensual", "underage"] {
        let (_, _, cid, url) = published(&env, "loop.gif", LOOP).await;
        assert_eq!(view(&url).await, 200);
        let reporter = env.user(0, false).await;
        assert_eq!(report_as(&env.app, &reporter, cid, reason).await.0, 200);
        assert_eq!(
            status_of(&env, cid).await,
            CommunityStatus::Hidden,
            "{reason}"
        );
        until_gone(&url).await;
    }
    assert_consistent(&Stored::read(&env.app).await, "hidden at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_users_reporting_at_once_under_chaos_hide_it_exactly_once() {
    let env = TestEnv::new().await;
    tagged(&env).await;
    let (owner, _, cid, url) = published(&env, "photo.jpg", PHOTO).await;
    assert_eq!(view(&url).await, 200);
    let mut users = Vec::new();
    for _ in 0..10 {
        users.push(env.user(0, false).await);
    }
    let tasks: Vec<_> = users
        .iter()
        .map(|u| {
            let (app, u) = (env.chaos_app(0.15), u.clone());
            tokio::spawn(async move { report_as(&app, &u, cid, "spam").await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    // A report is counted (200), or refused after the copy was hidden (404), or failed (500)
    // and then completes when sent again.
    for (user, (status, body)) in users.iter().zip(&answers) {
        assert!([200, 404, 500].contains(status), "{status} {body}");
        if *status == 500 {
            let again = report_as(&env.app, user, cid, "spam").await.0;
            assert!([200, 404].contains(&again));
        }
    }
    assert!(
        answers.iter().filter(|a| a.0 == 200).count() >= 3,
        "{answers:?}"
    );
    assert_eq!(status_of(&env, cid).await, CommunityStatus::Hidden);
    until_gone(&url).await;
    let log = env.app.store.activity(&owner).await.unwrap();
    let hides = log
        .iter()
        .filter(|a| a.action == "community_media_hidden")
        .count();
    assert_eq!(hides, 1, "hidden exactly once: {log:?}");
    assert_consistent(&Stored::read(&env.app).await, "after the race");
}

#[tokio::test]
async fn a_takedown_blocklists_the_content_and_its_reuploads_by_anyone_are_blocked() {
    let env = TestEnv::new().await;
    tagged(&env).await;
    let (owner, _, cid, url) = published(&env, "astronaut.jpg", ASTRONAUT).await;
    assert_eq!(view(&url).await, 200);
    let hash = moderation::take_down(&env.app, cid, "non-consensual, confirmed")
        .await
        .unwrap()
        .expect("a content hash");
    assert!(hash.starts_with("pdq:"), "{hash}");
    assert_eq!(status_of(&env, cid).await, CommunityStatus::Removed);
    until_gone(&url).await;
    assert!(!feed_ids(&env.app).await.contains(&cid));
    let listed = moderation::blocklist(&env.app).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].hash, hash);
    assert_eq!(listed[0].community_media_id, Some(cid));
    // Idempotent.
    assert_eq!(
        moderation::take_down(&env.app, cid, "again").await.unwrap(),
        None
    );
    let log = env.app.store.activity(&owner).await.unwrap();
    assert!(log.iter().any(|a| a.action == "community_media_removed"
        && a.details["reason"] == "non-consensual, confirmed"));

    // The same picture re-encoded, resized, cropped, or as PNG, shared by other users.
    for (name, bytes) in variants(ASTRONAUT) {
        let (other, media, copy, copy_url) = published(&env, &name, &bytes).await;
        assert_eq!(
            status_of(&env, copy).await,
            CommunityStatus::Blocked,
            "{name}"
        );
        assert_eq!(view(&copy_url).await, 404, "{name}: never public");
        assert!(!feed_ids(&env.app).await.contains(&copy), "{name}");
        let state = share_state(&env.app, &other, media).await;
        assert_eq!(state["communityStatus"], "blocked", "{name}");
    }
    // Different pictures are not.
    for (name, bytes) in [
        ("cat.jpg", CHELSEA),
        ("photo.jpg", PHOTO),
        ("other.png", PNG),
    ] {
        let (_, _, distinct, _) = published(&env, name, bytes).await;
        assert_eq!(
            status_of(&env, distinct).await,
            CommunityStatus::Ready,
            "{name}"
        );
    }
    assert_consistent(&Stored::read(&env.app).await, "after the re-uploads");
}

#[tokio::test]
async fn a_file_blocked_by_an_operator_is_never_published_whatever_its_kind() {
    let env = TestEnv::new().await;
    tagged(&env).await;
    // A video by its bytes (SHA-256), a GIF by its first frame.
    for (name, bytes) in [("clip.mp4", CLIP), ("loop.gif", LOOP)] {
        let hash = moderation::block_file(&env.app, bytes.to_vec(), Some("known abuse"))
            .await
            .unwrap();
        let kind = if name.ends_with(".mp4") {
            "sha256:"
        } else {
            "pdq:"
        };
        assert!(hash.starts_with(kind), "{name}: {hash}");
        let (_, _, cid, url) = published(&env, name, bytes).await;
        assert_eq!(
            status_of(&env, cid).await,
            CommunityStatus::Blocked,
            "{name}"
        );
        assert_eq!(view(&url).await, 404);
    }
    let (_, _, fine, _) = published(&env, "photo.jpg", PHOTO).await;
    assert_eq!(status_of(&env, fine).await, CommunityStatus::Ready);
    assert_consistent(&Stored::read(&env.app).await, "blocked by an operator");
}

/// What people do to re-upload a picture: JPEG at quality 70, 90 % of its size, 2 % cropped off
/// each side, and as a PNG.
fn variants(original: &[u8]) -> Vec<(String, Vec<u8>)> {
    use image::codecs::jpeg::JpegEncoder;
    let img = image::load_from_memory(original).expect("decode").to_rgb8();
    let (w, h) = img.dimensions();
    let jpeg = |img: &image::RgbImage, q: u8| {
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, q)
            .encode_image(img)
            .expect("encode");
        out
    };
    let resized = image::imageops::resize(
        &img,
        w * 9 / 10,
        h * 9 / 10,
        image::imageops::FilterType::Triangle,
    );
    let (dx, dy) = (w / 50, h / 50);
    let cropped = image::imageops::crop_imm(&img, dx, dy, w - 2 * dx, h - 2 * dy).to_image();
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("png");
    vec![
        ("q70.jpg".into(), jpeg(&img, 70)),
        ("resized.jpg".into(), jpeg(&resized, 90)),
        ("cropped.jpg".into(), jpeg(&cropped, 90)),
        ("as.png".into(), png),
    ]
}

/// The robustness table: each re-upload variant's distance to the nearest of the original's
/// blocklisted hashes (its own and its centre crops'), and every distinct photograph's distance
/// to all of them. Printed (`--nocapture`) for the record, asserted against the threshold.
#[test]
fn reuploads_match_within_the_threshold_and_distinct_photographs_never_do() {
    use joip::perceptual::{hash_image_and_crops, MATCH_DISTANCE};
    let (whole, crops) = hash_image_and_crops(ASTRONAUT, 50_000_000).unwrap();
    let filed: Vec<_> = std::iter::once(whole).chain(crops).collect();
    let nearest = |bytes: &[u8]| {
        let (h, _) = hash_image_and_crops(bytes, 50_000_000).unwrap();
        filed.iter().map(|f| f.distance(&h)).min().unwrap()
    };
    println!("variant        distance  decision (threshold {MATCH_DISTANCE})");
    for (name, bytes) in variants(ASTRONAUT) {
        let d = nearest(&bytes);
        println!(
            "{name:<14} {d:>8}  {}",
            if d <= MATCH_DISTANCE {
                "blocked"
            } else {
                "MISSED"
            }
        );
        assert!(d <= MATCH_DISTANCE, "{name}: {d}");
    }
    let mut false_positives = 0;
    for (name, bytes) in [
        ("chelsea.jpg", CHELSEA),
        ("demo-photo.jpg", PHOTO),
        ("demo-upload.png", PNG),
    ] {
        let d = nearest(bytes);
        println!(
            "{name:<14} {d:>8}  {}",
            if d <= MATCH_DISTANCE {
                "FALSE POSITIVE"
            } else {
                "distinct"
            }
        );
        false_positives += usize::from(d <= MATCH_DISTANCE);
    }
    println!("false positives: {false_positives}");
    assert_eq!(false_positives, 0);
}
