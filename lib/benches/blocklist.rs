//! Benchmark: a blocklist lookup costs the same whatever the blocklist's size (issue 19).
//!
//! Fills the blocklist's index to a small and a large size (100 and 100,000 PDQ hashes; quick
//! mode 100 and 2,000), then looks up, at each size, hashes that match nothing and near copies
//! of blocked ones (a few bits off): DynamoDB calls per lookup (an SDK interceptor), items read,
//! and p50/p99 latency, each as a ratio of the large blocklist to the small one measured the same
//! way in the same run (this machine is shared and noisy, so only ratios mean anything).
//!
//! The index is filled as the code files a hash (each hash into its 16 chunk buckets), written
//! with BatchWriteItem of whole bucket items to keep filling 100,000 hashes within minutes.
//!
//! Run with `tools/bench.sh` (it starts a private emulator).

mod report;
#[path = "../tests/support/mod.rs"]
mod support;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use joip::perceptual::{PdqHash, CHUNKS};
use joip::service::moderation::{blocklisted, probes};
use joip::store::keys;
use joip::App;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use support::{FailNthCopy, TestEnv};

const LOOKUPS: usize = 200;

fn quick() -> bool {
    std::env::var_os("JOIP_BENCH_QUICK").is_some()
}

/// A reproducible stream of random hashes.
struct Hashes(u64);

impl Hashes {
    fn next(&mut self) -> PdqHash {
        let mut bytes = [0u8; 32];
        for b in &mut bytes {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
        PdqHash(bytes)
    }
}

/// Files `hashes` in the index buckets, as `Store::add_blocked` files each (the same keys and
/// string sets), a table's worth of buckets at a time.
async fn fill(app: &App, hashes: &[PdqHash]) {
    let mut buckets: HashMap<(usize, u16), Vec<String>> = HashMap::new();
    for h in hashes {
        for i in 0..CHUNKS {
            buckets.entry((i, h.chunk(i))).or_default().push(h.to_hex());
        }
    }
    let requests: Vec<WriteRequest> = buckets
        .into_iter()
        .map(|((i, chunk), hexes)| {
            let item = HashMap::from([
                (
                    "pk".to_string(),
                    AttributeValue::S(keys::block_index(i, chunk)),
                ),
                (
                    "sk".to_string(),
                    AttributeValue::S(keys::BLOCK_BUCKET.into()),
                ),
                ("hashes".to_string(), AttributeValue::Ss(hexes)),
            ]);
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                .build()
        })
        .collect();
    let db = app.store.client();
    let batches: Vec<Vec<WriteRequest>> = requests.chunks(25).map(<[_]>::to_vec).collect();
    let writes = batches.into_iter().map(|batch| async move {
        let mut pending = batch;
        while !pending.is_empty() {
            let out = db
                .batch_write_item()
                .request_items(app.store.table(), pending.clone())
                .send()
                .await
                .expect("batch write");
            pending = out
                .unprocessed_items
                .and_then(|mut u| u.remove(app.store.table()))
                .unwrap_or_default();
        }
    });
    futures_util::stream::iter(writes)
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

use futures_util::StreamExt;

/// Lookups of `queries`: (DynamoDB calls per lookup, matches, p50, p99).
async fn lookups(
    app: &App,
    counter: &FailNthCopy,
    queries: &[PdqHash],
) -> (f64, usize, Duration, Duration) {
    counter.take();
    let mut took = Vec::with_capacity(queries.len());
    let mut matched = 0;
    for q in queries {
        let started = Instant::now();
        let found = blocklisted(app, &format!("pdq:{}", q.to_hex()))
            .await
            .expect("lookup");
        took.push(started.elapsed());
        matched += usize::from(found.is_some());
    }
    let (calls, _) = counter.take();
    took.sort();
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    (
        calls as f64 / queries.len() as f64,
        matched,
        at(0.5),
        at(0.99),
    )
}

/// `hash` with `bits` of its bits flipped (spread over its chunks).
fn near(hash: &PdqHash, bits: usize) -> PdqHash {
    let mut out = *hash;
    for b in 0..bits {
        let bit = (b * 37) % 256;
        out.0[bit / 8] ^= 1 << (bit % 8);
    }
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let sizes = if quick() {
        [100, 2_000]
    } else {
        [100, 100_000]
    };
    let mut rows = Vec::new();
    let mut source = Hashes(0x2545_f491_4f6c_dd1d);
    println!(
        "{:<10} {:>10} {:>12} {:>12} {:>12} {:>10}",
        "blocked", "queries", "calls/look", "p50", "p99", "matched"
    );
    let mut base = None;
    for size in sizes {
        let env = TestEnv::new().await;
        let counter = FailNthCopy::counter();
        let db = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&env.sdk)
                .interceptor(counter.clone())
                .build(),
        );
        let app = App::from_clients(
            env.app.config.clone(),
            &env.sdk,
            db,
            env.app.blob.client().clone(),
        );
        let blocked: Vec<PdqHash> = (0..size).map(|_| source.next()).collect();
        let started = Instant::now();
        fill(&env.app, &blocked).await;
        let filled = started.elapsed();
        // Misses: hashes blocked nowhere. Hits: blocked hashes with up to 31 bits flipped.
        let misses: Vec<PdqHash> = (0..LOOKUPS).map(|_| source.next()).collect();
        let hits: Vec<PdqHash> = blocked
            .iter()
            .take(LOOKUPS)
            .enumerate()
            .map(|(i, h)| near(h, i % 32))
            .collect();
        for (kind, queries) in [("miss", &misses), ("hit", &hits)] {
            let (calls, matched, p50, p99) = lookups(&app, &counter, queries).await;
            println!(
                "{size:<10} {:>10} {calls:>12.1} {p50:>12.1?} {p99:>12.1?} {matched:>10}   ({kind}; filled in {filled:.1?})",
                queries.len()
            );
            if kind == "hit" {
                assert_eq!(
                    matched,
                    queries.len(),
                    "every near copy within 31 bits is found"
                );
            }
            let key = (kind, p50, p99);
            let ratio = match (base, kind) {
                (Some((_, b50, b99)), "miss") => Some((
                    p50.as_secs_f64() / Duration::as_secs_f64(&b50),
                    p99.as_secs_f64() / Duration::as_secs_f64(&b99),
                )),
                _ => None,
            };
            if base.is_none() && kind == "miss" {
                base = Some(key);
            }
            rows.push(json!({
                "blocked": size, "lookups": queries.len(), "kind": kind,
                "calls_per_lookup": calls, "keys_per_lookup": probes(&PdqHash([0; 32])).len(),
                "matched": matched, "p50_ms": p50.as_secs_f64() * 1e3, "p99_ms": p99.as_secs_f64() * 1e3,
                "p50_vs_smallest": ratio.map(|r| r.0), "p99_vs_smallest": ratio.map(|r| r.1),
            }));
        }
    }
    if let (Some(small), Some(large)) = (rows.first(), rows.get(2)) {
        println!(
            "misses, {} vs {} blocked: p50 x{:.2}, p99 x{:.2}, calls {} vs {}",
            large["blocked"],
            small["blocked"],
            large["p50_vs_smallest"].as_f64().unwrap_or(f64::NAN),
            large["p99_vs_smallest"].as_f64().unwrap_or(f64::NAN),
            large["calls_per_lookup"],
            small["calls_per_lookup"]
        );
    }
    report::write("blocklist", json!({ "rows": rows }));
}
