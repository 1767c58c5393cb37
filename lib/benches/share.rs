//! Benchmark: the sharing routes against the emulator.
//!
//! Prints, per route, the DynamoDB + S3 calls one request makes (an SDK interceptor on both
//! clients), then p50/p99 latency of community shares and feed reads with 8 concurrent clients,
//! each as a ratio to one bare DynamoDB GetItem round trip measured the same way in the same run
//! (this machine is shared and noisy, so only ratios mean anything).
//!
//! Run with `tools/bench.sh` (it starts a private emulator).

mod report;
#[path = "../tests/support/mod.rs"]
mod support;

use joip::domain::{MediaId, MediaSource, UserId};
use joip::App;
use serde_json::json;
use std::time::{Duration, Instant};
use support::{read, Event, FailNthCopy, TestEnv};

const GIF: &[u8] = include_bytes!("../../tools/demo/demo-loop.gif");
const CLIENTS: usize = 8;

fn rounds() -> usize {
    std::env::var("JOIP_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25)
}

/// An App whose DynamoDB and S3 clients both count their calls.
fn counted(env: &TestEnv, counter: &FailNthCopy) -> App {
    let db = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&env.sdk)
            .interceptor(counter.clone())
            .build(),
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        App::s3_config(&env.app.config, &env.sdk)
            .interceptor(counter.clone())
            .build(),
    );
    App::from_clients(env.app.config.clone(), &env.sdk, db, s3)
}

async fn gif(env: &TestEnv, user: &UserId) -> MediaId {
    joip::service::media::upload_media(
        &env.app,
        user,
        "loop.gif",
        GIF.to_vec(),
        MediaSource::SmartCaption,
        None,
    )
    .await
    .expect("upload")
    .media_id
}

async fn share(app: &App, user: &UserId, id: MediaId, body: serde_json::Value) -> u16 {
    let path = format!("/api/media/{id}/share");
    let req = Event::new("POST", "/api/media/{id}/share", &path)
        .path_params(json!({ "id": id.to_string() }))
        .caller(user.as_str())
        .body(&body.to_string())
        .request();
    read(Box::pin(joip::routes::share_media::handle(app, req)).await).0
}

async fn unshare(app: &App, user: &UserId, id: MediaId) -> u16 {
    let path = format!("/api/media/{id}/share");
    let req = Event::new("DELETE", "/api/media/{id}/share", &path)
        .path_params(json!({ "id": id.to_string() }))
        .caller(user.as_str())
        .request();
    read(Box::pin(joip::routes::unshare_media::handle(app, req)).await).0
}

async fn by_path(app: &App, user: &UserId, path: &str) -> u16 {
    let req = Event::new("POST", "/api/user/media/share", "/api/user/media/share")
        .caller(user.as_str())
        .body(&json!({ "filePath": path, "tags": ["solo"] }).to_string())
        .request();
    read(Box::pin(joip::routes::share_media_by_path::handle(app, req)).await).0
}

async fn resolve(app: &App, code: &str) -> u16 {
    let path = format!("/api/shared/media/{code}");
    let req = Event::new("GET", "/api/shared/media/{code}", &path)
        .path_params(json!({ "code": code }))
        .request();
    read(Box::pin(joip::routes::resolve_shared_media::handle(app, req)).await).0
}

async fn resolve_as(app: &App, code: &str, agent: &str) -> u16 {
    let path = format!("/api/shared/media/{code}");
    let req = Event::new("GET", "/api/shared/media/{code}", &path)
        .path_params(json!({ "code": code }))
        .header("user-agent", agent)
        .request();
    read(Box::pin(joip::routes::resolve_shared_media::handle(app, req)).await).0
}

/// What a resolve did before links had limits (the baseline of the link rows): the code, then its
/// media, then a presigned GET; no view counted.
async fn resolve_as_before(app: &App, code: &str) {
    let link = app.store.share_code(code).await.unwrap().expect("code");
    let (media, _) = app.store.media_and_marker(link.media_id).await.unwrap();
    let media = media.expect("media");
    app.blob
        .presigned_get(
            &app.config.user_media_bucket,
            &media.file_path,
            Duration::from_secs(300),
            std::time::SystemTime::now(),
        )
        .await
        .expect("presign");
}

async fn feed(app: &App) -> u16 {
    let req = Event::new("GET", "/api/community/media", "/api/community/media")
        .query(&[("limit", "20")])
        .request();
    read(Box::pin(joip::routes::community_feed::handle(app, req)).await).0
}

/// p50 and p99 of `CLIENTS` concurrent clients each running `op` `rounds` times.
async fn latencies<F, Fut>(op: F) -> (Duration, Duration)
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let n = rounds();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut took = Vec::with_capacity(n);
                for round in 0..n {
                    let started = Instant::now();
                    op(client, round).await;
                    took.push(started.elapsed());
                }
                took
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client"));
    }
    all.sort();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    (at(0.5), at(0.99))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let env = TestEnv::new().await;
    for slug in ["solo", "artistic"] {
        env.app.store.put_tag(slug, slug).await.expect("tag");
    }
    let user = env.user(0, false).await;
    let counter = FailNthCopy::counter();
    let app = counted(&env, &counter);

    // Calls per request, one route at a time.
    let media = gif(&env, &user).await;
    let direct = format!("users/{user}/direct/loop.gif");
    env.app
        .blob
        .put(
            &env.app.config.user_media_bucket,
            &direct,
            GIF.to_vec(),
            "image/gif",
        )
        .await
        .expect("put");
    counter.take();
    let mut rows: Vec<(&str, u16, (usize, usize))> = Vec::new();
    let body = json!({ "tags": ["solo"] });
    rows.push((
        "share (new community copy)",
        share(&app, &user, media, body).await,
        counter.take(),
    ));
    let body = json!({ "tags": ["artistic"] });
    rows.push((
        "share again (retag)",
        share(&app, &user, media, body).await,
        counter.take(),
    ));
    let code = env
        .app
        .store
        .media(media)
        .await
        .unwrap()
        .unwrap()
        .share_code
        .unwrap();
    rows.push(("resolve", resolve(&app, &code).await, counter.take()));
    rows.push(("feed (8 shards)", feed(&app).await, counter.take()));
    let body = json!({ "shareToCommunity": false });
    rows.push((
        "share, shareToCommunity:false",
        share(&app, &user, media, body).await,
        counter.take(),
    ));
    rows.push((
        "unshare (DELETE)",
        unshare(&app, &user, media).await,
        counter.take(),
    ));
    rows.push((
        "share by path (new record)",
        by_path(&app, &user, &direct).await,
        counter.take(),
    ));
    println!(
        "{:<32} {:>6} {:>10} {:>10}",
        "route", "status", "calls", "of them S3 copies"
    );
    for (route, status, (calls, copies)) in &rows {
        assert_eq!(*status, 200, "{route}");
        println!("{route:<32} {status:>6} {calls:>10} {copies:>10}");
    }

    // Latency under 8 concurrent clients, against a bare GetItem round trip under the same load.
    let users: Vec<UserId> = {
        let mut v = Vec::new();
        for _ in 0..CLIENTS {
            v.push(env.user(0, false).await);
        }
        v
    };
    let mut media = Vec::new();
    for u in &users {
        media.push(gif(&env, u).await);
    }
    let (users, media) = (std::sync::Arc::new(users), std::sync::Arc::new(media));
    let plain = env.app.clone();
    let floor = latencies({
        let plain = plain.clone();
        move |_, _| {
            let plain = plain.clone();
            async move {
                plain.store.pricing("none").await.expect("get item");
            }
        }
    })
    .await;
    let shares = latencies({
        let (plain, users, media) = (plain.clone(), users.clone(), media.clone());
        move |client, round| {
            let (plain, users, media) = (plain.clone(), users.clone(), media.clone());
            async move {
                let tags = if round % 2 == 0 { "solo" } else { "artistic" };
                let body = json!({ "tags": [tags] });
                assert_eq!(
                    share(&plain, &users[client], media[client], body).await,
                    200
                );
            }
        }
    })
    .await;
    let feeds = latencies({
        let plain = plain.clone();
        move |_, _| {
            let plain = plain.clone();
            async move {
                assert_eq!(feed(&plain).await, 200);
            }
        }
    })
    .await;
    println!(
        "\n{CLIENTS} concurrent clients x {} requests; ratio = latency / one GetItem round trip (p50 {:?})",
        rounds(),
        floor.0
    );
    println!(
        "{:<12} {:>12} {:>12} {:>10} {:>10}",
        "route", "p50", "p99", "p50 ratio", "p99 ratio"
    );
    let mut latency = Vec::new();
    for (name, (p50, p99)) in [("share", shares), ("feed", feeds)] {
        println!(
            "{name:<12} {p50:>12.1?} {p99:>12.1?} {:>10.1} {:>10.1}",
            p50.as_secs_f64() / floor.0.as_secs_f64(),
            p99.as_secs_f64() / floor.1.as_secs_f64()
        );
        latency.push(json!({
            "route": name, "p50_ms": p50.as_secs_f64() * 1e3, "p99_ms": p99.as_secs_f64() * 1e3,
            "p50_vs_get_item": p50.as_secs_f64() / floor.0.as_secs_f64(),
            "p99_vs_get_item": p99.as_secs_f64() / floor.1.as_secs_f64(),
        }));
    }
    let links = link_rows(&env, &counter, &app).await;
    let calls: Vec<_> = rows
        .iter()
        .map(|(route, status, (calls, copies))| {
            json!({ "route": route, "status": status, "calls": calls, "copies": copies })
        })
        .collect();
    report::write(
        "share",
        json!({ "clients": CLIENTS, "rounds": rounds(), "calls": calls, "latency": latency, "links": links }),
    );
}

/// Share links with limits (issue 18): DynamoDB calls per resolve and p50/p99 under `CLIENTS`
/// concurrent clients all on one code (the viral case: an unlimited link counts in shards, a
/// limited one spends on its one item), each as a ratio to the resolve as it was before limits,
/// measured the same way in the same run.
async fn link_rows(env: &TestEnv, counter: &FailNthCopy, app: &App) -> serde_json::Value {
    let owner = env.user(0, false).await;
    let shared = |limits: serde_json::Value| {
        let (owner, env) = (owner.clone(), env);
        async move {
            let id = gif(env, &owner).await;
            let mut body = json!({ "shareToCommunity": false });
            for (k, v) in limits.as_object().unwrap() {
                body[k] = v.clone();
            }
            assert_eq!(share(&env.app, &owner, id, body).await, 200);
            let media = env.app.store.media(id).await.unwrap().unwrap();
            media.share_code.unwrap()
        }
    };
    let unlimited = shared(json!({})).await;
    let limited = shared(json!({ "maxViews": 1_000_000, "expiresIn": 86_400 })).await;
    let browser = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0";
    let bot = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)";
    counter.take();
    resolve_as_before(app, &unlimited).await;
    let before_calls = counter.take().0;
    let mut calls = Vec::new();
    for (name, code, agent) in [
        ("unlimited", &unlimited, browser),
        ("limited", &limited, browser),
        ("preview agent", &limited, bot),
    ] {
        assert_eq!(resolve_as(app, code, agent).await, 200, "{name}");
        calls.push((name, counter.take().0));
    }
    let plain = env.app.clone();
    let timed = |code: String, agent: Option<&'static str>| {
        let plain = plain.clone();
        latencies(move |_, _| {
            let (plain, code) = (plain.clone(), code.clone());
            async move {
                match agent {
                    Some(agent) => assert_eq!(resolve_as(&plain, &code, agent).await, 200),
                    None => resolve_as_before(&plain, &code).await,
                }
            }
        })
    };
    // Alternating, so that a burst of load on the machine lands on both.
    let mut runs: Vec<(&str, Vec<(Duration, Duration)>)> = vec![
        ("before limits", vec![]),
        ("unlimited", vec![]),
        ("limited", vec![]),
    ];
    for _ in 0..3 {
        runs[0].1.push(timed(unlimited.clone(), None).await);
        runs[1]
            .1
            .push(timed(unlimited.clone(), Some(browser)).await);
        runs[2].1.push(timed(limited.clone(), Some(browser)).await);
    }
    let median = |v: &Vec<(Duration, Duration)>| {
        let mut p50: Vec<_> = v.iter().map(|x| x.0).collect();
        let mut p99: Vec<_> = v.iter().map(|x| x.1).collect();
        p50.sort();
        p99.sort();
        (p50[p50.len() / 2], p99[p99.len() / 2])
    };
    let base = median(&runs[0].1);
    println!(
        "\nshare links: {CLIENTS} concurrent clients on one code; ratio = latency / the resolve before limits (p50 {:?}, {before_calls} calls)",
        base.0
    );
    println!(
        "{:<16} {:>6} {:>12} {:>12} {:>10} {:>10}",
        "resolve", "calls", "p50", "p99", "p50 ratio", "p99 ratio"
    );
    let mut out = Vec::new();
    for (name, samples) in &runs {
        let (p50, p99) = median(samples);
        let n = match *name {
            "before limits" => before_calls,
            other => calls.iter().find(|(c, _)| *c == other).unwrap().1,
        };
        let (r50, r99) = (
            p50.as_secs_f64() / base.0.as_secs_f64(),
            p99.as_secs_f64() / base.1.as_secs_f64(),
        );
        println!("{name:<16} {n:>6} {p50:>12.1?} {p99:>12.1?} {r50:>10.2} {r99:>10.2}");
        out.push(json!({
            "resolve": name, "calls": n, "p50_ms": p50.as_secs_f64() * 1e3,
            "p99_ms": p99.as_secs_f64() * 1e3, "p50_vs_before": r50, "p99_vs_before": r99,
        }));
    }
    let (_, preview_calls) = calls[2];
    println!("{:<16} {preview_calls:>6}", "preview agent");
    out.push(json!({ "resolve": "preview agent", "calls": preview_calls }));
    json!(out)
}
