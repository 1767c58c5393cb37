//! Benchmark: saving community sessions of 1, 50 and 500 media against the emulator.
//!
//! For each size it prints the save's time divided by the floor: the same CopyObject calls issued
//! bare, at the same parallelism, in the same run (this machine is shared and noisy, so only ratios
//! mean anything). It also counts the DynamoDB and S3 calls each save makes (an SDK interceptor on
//! both clients). Goals: ratio <= 1.2; at most n copies + 6 other calls for n general-bucket media.
//! A small save's goal is its copy plus three DynamoDB round trips: each save's calls are timed
//! (an interceptor on both clients), and the table shows the DynamoDB round trips it made one
//! after another (overlapping ones counted once), their time, and the save's time against the
//! bare copies plus that DynamoDB time (what is left is our own work and waiting between calls).
//!
//! Run with `tools/bench.sh` (it starts a private emulator).

mod report;
#[path = "../tests/support/mod.rs"]
mod support;

use futures_util::StreamExt;
use joip::domain::{SessionId, UserId};
use joip::service::save_session::{save_community_session, Deadline};
use joip::App;
use std::time::{Duration, Instant};

async fn community_session(app: &App, owner: &UserId, n: usize) -> SessionId {
    let media = (0..n)
        .map(|i| {
            let mut bytes = include_bytes!("../../tools/demo/demo-upload.png").to_vec();
            bytes.extend_from_slice(format!("{i}").as_bytes());
            support::upload(&format!("m{i}.png"), bytes, Some(&format!("#{i}")))
        })
        .collect();
    support::community_session(app, owner, &format!("bench {n}"), media).await
}

/// The floor: the same copies, bare, at the same parallelism.
async fn bare_copies(app: &App, keys: &[String], run: usize) -> Duration {
    let started = Instant::now();
    let results: Vec<_> = futures_util::stream::iter(keys.iter().enumerate())
        .map(|(i, key)| {
            let dst = format!("bench/{run}/{i:04}");
            async move {
                app.blob
                    .copy(
                        &app.config.general_bucket,
                        key,
                        &app.config.user_media_bucket,
                        &dst,
                        None,
                    )
                    .await
            }
        })
        .buffer_unordered(app.config.copy_concurrency)
        .collect()
        .await;
    let took = started.elapsed();
    assert!(results.iter().all(Result::is_ok), "bare copy failed");
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The App under test: the env's table and buckets, production settings, both clients counted
/// (operations, not retries).
fn counted_app(
    env: &support::TestEnv,
    calls: &support::FailNthCopy,
    timeline: &support::Timeline,
) -> App {
    let s3 = aws_sdk_s3::Client::from_conf(
        App::s3_config(&env.app.config, &env.sdk)
            .interceptor(calls.clone())
            .interceptor(timeline.clone())
            .build(),
    );
    let db = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&env.sdk)
            .interceptor(calls.clone())
            .interceptor(timeline.clone())
            .build(),
    );
    let mut config = env.app.config.clone();
    config.copy_concurrency = joip::config::DEFAULT_COPY_CONCURRENCY;
    config.id_block = joip::config::DEFAULT_ID_BLOCK;
    App::from_clients(config, &env.sdk, db, s3)
}

#[tokio::main]
async fn main() {
    println!(
        "{:>6} {:>6} {:>12} {:>12} {:>7} {:>10} {:>10} {:>10} {:>12} {:>9} {:>10} {:>10}",
        "media",
        "runs",
        "save (med)",
        "floor (med)",
        "ratio",
        "db+s3",
        "copies",
        "other",
        "db rtt (med)",
        "db steps",
        "db (med)",
        "/copy+db"
    );
    // Quick mode (the test command's, so the benchmark cannot rot): small sizes, one run each.
    let sizes: &[(usize, usize)] = if std::env::var_os("JOIP_BENCH_QUICK").is_some() {
        &[(1, 1), (50, 1)]
    } else {
        &[(1, 15), (50, 7), (500, 3)]
    };
    let mut report = Vec::new();
    for &(n, runs) in sizes {
        // A fresh table and buckets per size, so one size's data never slows another's.
        let env = support::TestEnv::new().await;
        let calls = support::FailNthCopy::counter();
        let timeline = support::Timeline::default();
        let app = counted_app(&env, &calls, &timeline);
        app.store
            .put_pricing("session_create", 1, false)
            .await
            .unwrap();
        let owner = env.user(0, false).await;
        let source = community_session(&app, &owner, n).await;
        let (_, media) = app.store.session(source).await.unwrap().unwrap();
        let keys: Vec<String> = media.iter().filter_map(|m| m.key.clone()).collect();
        // Warm both paths (connections, id block) before measuring.
        let warm = env.user(1, false).await;
        save_community_session(
            &app,
            &warm,
            source,
            Deadline::new(None, app.config.request_budget_ms),
        )
        .await
        .unwrap();
        bare_copies(&app, &keys, 0).await;

        let (mut saves, mut floors, mut rtts) = (Vec::new(), Vec::new(), Vec::new());
        let (mut db_steps, mut db_busy, mut beyond) = (0, Vec::new(), Vec::new());
        let mut per_save = (0, 0);
        for run in 1..=runs {
            let user = env.user(1, false).await;
            calls.take();
            timeline.take(Instant::now());
            let started = Instant::now();
            let saved = save_community_session(
                &app,
                &user,
                source,
                Deadline::new(None, app.config.request_budget_ms),
            )
            .await
            .unwrap();
            saves.push(started.elapsed());
            // Where the save's time went: its DynamoDB round trips one after another (the rest
            // is the copies and our own work).
            let line = timeline.take(started);
            let (steps, busy) = support::dynamodb_steps(&line);
            db_steps = db_steps.max(steps);
            db_busy.push(Duration::from_secs_f64(busy / 1e3));
            if run == runs {
                // The last save's calls: each one's start and end.
                let steps: Vec<String> = line
                    .iter()
                    .filter(|(name, ..)| n <= 1 || name != "s3:CopyObject")
                    .map(|(name, from, to)| format!("{name} {from:.1}-{to:.1}"))
                    .collect();
                println!(
                    "       {n} media, calls in ms from the start: {}",
                    steps.join(", ")
                );
            }
            assert!(!saved.reused);
            per_save = per_save.max(calls.take());
            let floor = bare_copies(&app, &keys, run).await;
            floors.push(floor);
            // What the save took beyond the bare copies and its own DynamoDB time.
            beyond.push(saves[saves.len() - 1].as_secs_f64() / (floor.as_secs_f64() + busy / 1e3));
            // One DynamoDB round trip, for scale: a save adds three sequential ones to the floor.
            let started = Instant::now();
            app.store.save_record(&user, source).await.unwrap();
            rtts.push(started.elapsed());
        }
        let (save, floor) = (median(saves), median(floors));
        let (total, copies) = per_save;
        let db = median(db_busy);
        beyond.sort_by(f64::total_cmp);
        let over_copy_and_db = beyond[beyond.len() / 2];
        println!(
            "{n:>6} {runs:>6} {:>10.1}ms {:>10.1}ms {:>7.2} {total:>10} {copies:>10} {:>10} {:>10.1}ms {db_steps:>9} {:>8.1}ms {over_copy_and_db:>10.2}",
            save.as_secs_f64() * 1e3,
            floor.as_secs_f64() * 1e3,
            save.as_secs_f64() / floor.as_secs_f64(),
            total - copies,
            median(rtts).as_secs_f64() * 1e3,
            db.as_secs_f64() * 1e3,
        );
        report.push(serde_json::json!({
            "media": n, "runs": runs,
            "save_ms": save.as_secs_f64() * 1e3, "floor_ms": floor.as_secs_f64() * 1e3,
            "save_vs_floor": save.as_secs_f64() / floor.as_secs_f64(),
            "calls": total, "copies": copies,
            "db_round_trips": db_steps, "db_ms": db.as_secs_f64() * 1e3,
            "save_vs_copy_plus_db": over_copy_and_db,
        }));
    }
    report::write("save_session", serde_json::json!({ "rows": report }));
}
