//! The emulator (tools/emulator.py) is as hostile as DynamoDB and S3: overlapping transactions
//! conflict, DynamoDB's limits are enforced, and chaos injects the faults AWS answers under load.
//! Each test owns its table and buckets; the emulator is shared with every other test.

use crate::support;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::{BoxError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Get, Put, PutRequest, TransactGetItem, TransactWriteItem,
    Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::time::{Duration, Instant};
use support::{Chaos, TestEnv};

/// How long the first of two racing transactions stays in flight: far longer than the second
/// request needs to reach the emulator, so the race always overlaps.
const HELD_MS: u64 = 3000;

/// DynamoDB's faults that chaos injects into any data-plane request.
const DYNAMODB_FAULTS: [&str; 3] = [
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "InternalServerError",
];

/// Sets one header on every request of the client it is on.
#[derive(Clone, Debug)]
struct Header(&'static str, String);

impl Intercept for Header {
    fn name(&self) -> &'static str {
        "Header"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert(self.0, self.1.clone());
        Ok(())
    }
}

/// A DynamoDB client without retries (so every fault surfaces), with chaos at `rate` (0 unless
/// given, whatever the emulator's global rate), whose transactions stay in flight for `txn_ms` if
/// given.
fn dynamodb(env: &TestEnv, rate: Option<f64>, txn_ms: Option<u64>) -> Client {
    let mut config = aws_sdk_dynamodb::config::Builder::from(&env.sdk)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .interceptor(Chaos {
            rate: rate.unwrap_or(0.0),
        });
    if let Some(ms) = txn_ms {
        config = config.interceptor(Header("x-joip-txn-ms", ms.to_string()));
    }
    Client::from_conf(config.build())
}

/// An S3 client without retries, with chaos at `rate`.
fn s3(env: &TestEnv, rate: f64) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        joip::App::s3_config(&env.app.config, &env.sdk)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .interceptor(Chaos { rate })
            .build(),
    )
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn key(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

fn item(pk: &str, sk: &str, attrs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
    let mut item = key(pk, sk);
    item.extend(attrs.iter().map(|(k, v)| (k.to_string(), v.clone())));
    item
}

fn put(table: &str, item: HashMap<String, AttributeValue>) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .build()
                .expect("table and item set"),
        )
        .build()
}

fn set_winner(table: &str, key: HashMap<String, AttributeValue>, who: &str) -> TransactWriteItem {
    TransactWriteItem::builder()
        .update(
            Update::builder()
                .table_name(table)
                .set_key(Some(key))
                .update_expression("SET winner = :w")
                .expression_attribute_values(":w", s(who))
                .build()
                .expect("table, key and expression set"),
        )
        .build()
}

/// `n` characters: an attribute of about `n` bytes.
fn text(n: usize) -> AttributeValue {
    AttributeValue::S("x".repeat(n))
}

/// The service error code of a failed call.
fn code<E: ProvideErrorMetadata + Debug, R: Debug>(err: &SdkError<E, R>) -> String {
    err.as_service_error()
        .and_then(|e| e.code())
        .unwrap_or_else(|| panic!("not a service error: {err:?}"))
        .to_string()
}

fn message<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> String {
    err.as_service_error()
        .and_then(|e| e.message())
        .unwrap_or_default()
        .to_string()
}

/// The cancellation reason codes of a cancelled transaction ("None" for the items that were not
/// the cause), or None if it failed otherwise.
fn cancellation_codes<R>(err: &SdkError<TransactWriteItemsError, R>) -> Option<Vec<String>> {
    match err.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(e) => Some(
            e.cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or_default().to_string())
                .collect(),
        ),
        _ => None,
    }
}

/// One of the emulator's own endpoints (`/_joip/...`).
async fn emulator_json(path: &str) -> Value {
    let url = format!("{}{path}", support::endpoint());
    tokio::task::spawn_blocking(move || {
        ureq::get(&url)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .body_mut()
            .read_json::<Value>()
            .expect("JSON")
    })
    .await
    .expect("request task")
}

/// Waits until a transaction on `table` is in flight.
async fn wait_in_flight(table: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let report = emulator_json("/_joip/in-flight").await;
        let on_table = report["transactions"]
            .as_array()
            .expect("transactions")
            .iter()
            .any(|t| t["table"] == table);
        if on_table {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no transaction on {table} went in flight"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn injected() -> u64 {
    emulator_json("/_joip/chaos").await["injected"]
        .as_u64()
        .expect("injected count")
}

/// Starts a transaction that puts `(pk, sk)` with `winner = "first"` and stays in flight for
/// HELD_MS; returns once the emulator has marked its item.
async fn hold_item(
    env: &TestEnv,
    pk: &str,
    sk: &str,
) -> tokio::task::JoinHandle<Result<(), SdkError<TransactWriteItemsError>>> {
    let table = env.app.config.table.clone();
    let slow = dynamodb(env, None, Some(HELD_MS));
    let first = put(&table, item(pk, sk, &[("winner", s("first"))]));
    let handle = tokio::spawn(async move {
        slow.transact_write_items()
            .transact_items(first)
            .send()
            .await
            .map(|_| ())
    });
    wait_in_flight(&table).await;
    handle
}

async fn winner(db: &Client, table: &str, pk: &str, sk: &str) -> Option<String> {
    let out = db
        .get_item()
        .table_name(table)
        .set_key(Some(key(pk, sk)))
        .consistent_read(true)
        .send()
        .await
        .expect("get item");
    out.item
        .and_then(|i| i.get("winner").and_then(|w| w.as_s().ok()).cloned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_transactions_on_one_item_one_commits_the_other_is_cancelled() {
    let env = TestEnv::new().await;
    let table = env.app.config.table.clone();
    let db = dynamodb(&env, None, None);

    let first = hold_item(&env, "race", "item").await;
    // The second names another item first, then the held one: one reason per action, in order.
    let second = db
        .transact_write_items()
        .transact_items(put(&table, item("race", "other", &[])))
        .transact_items(set_winner(&table, key("race", "item"), "second"))
        .send()
        .await
        .expect_err("the overlapping transaction is cancelled");
    assert_eq!(
        cancellation_codes(&second),
        Some(vec!["None".to_string(), "TransactionConflict".to_string()]),
        "{second:?}"
    );
    // Reads are never refused: the item is not there yet.
    assert_eq!(winner(&db, &table, "race", "item").await, None);

    first
        .await
        .expect("task")
        .expect("the first transaction commits");
    assert_eq!(
        winner(&db, &table, "race", "item").await.as_deref(),
        Some("first")
    );
    let other = db
        .get_item()
        .table_name(&table)
        .set_key(Some(key("race", "other")))
        .consistent_read(true)
        .send()
        .await
        .expect("get item");
    assert!(
        other.item.is_none(),
        "the cancelled transaction applied nothing"
    );

    // Once the first is done the item is free again.
    db.transact_write_items()
        .transact_items(set_winner(&table, key("race", "item"), "second"))
        .send()
        .await
        .expect("no transaction in flight any more");
    assert_eq!(
        winner(&db, &table, "race", "item").await.as_deref(),
        Some("second")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_racing_an_in_flight_transaction_gets_transaction_conflict() {
    let env = TestEnv::new().await;
    let table = env.app.config.table.clone();
    let db = dynamodb(&env, None, None);

    let first = hold_item(&env, "race", "item").await;
    let err = db
        .put_item()
        .table_name(&table)
        .set_item(Some(item("race", "item", &[("winner", s("put"))])))
        .send()
        .await
        .expect_err("the put conflicts with the transaction");
    assert!(err
        .as_service_error()
        .is_some_and(|e| e.is_transaction_conflict_exception()));
    assert_eq!(message(&err), "Transaction is ongoing for the item");

    let err = db
        .update_item()
        .table_name(&table)
        .set_key(Some(key("race", "item")))
        .update_expression("SET winner = :w")
        .expression_attribute_values(":w", s("update"))
        .send()
        .await
        .expect_err("the update conflicts with the transaction");
    assert_eq!(code(&err), "TransactionConflictException");

    // A transactional read of the item is cancelled too; a plain read is not refused.
    let err = db
        .transact_get_items()
        .transact_items(
            TransactGetItem::builder()
                .get(
                    Get::builder()
                        .table_name(&table)
                        .set_key(Some(key("race", "item")))
                        .build()
                        .expect("table and key set"),
                )
                .build(),
        )
        .send()
        .await
        .expect_err("the transactional read conflicts");
    assert_eq!(code(&err), "TransactionCanceledException");
    assert_eq!(winner(&db, &table, "race", "item").await, None);

    // A write to another item goes through meanwhile.
    db.put_item()
        .table_name(&table)
        .set_item(Some(item("race", "neighbour", &[("winner", s("put"))])))
        .send()
        .await
        .expect("another item is not in flight");

    first.await.expect("task").expect("the transaction commits");
    assert_eq!(
        winner(&db, &table, "race", "item").await.as_deref(),
        Some("first")
    );
}

#[tokio::test]
async fn a_transaction_of_101_actions_is_refused() {
    let env = TestEnv::new().await;
    let table = env.app.config.table.clone();
    let db = dynamodb(&env, None, None);
    let before = env.snapshot().await;

    let actions: Vec<_> = (0..101)
        .map(|i| put(&table, item("many", &format!("{i:03}"), &[])))
        .collect();
    let err = db
        .transact_write_items()
        .set_transact_items(Some(actions))
        .send()
        .await
        .expect_err("101 actions are refused");
    assert_eq!(code(&err), "ValidationException");
    let msg = message(&err);
    assert!(
        msg.starts_with("1 validation error detected: Value '[com.amazonaws.dynamodb.v20120810.TransactWriteItem@")
            && msg.ends_with("at 'transactItems' failed to satisfy constraint: Member must have length less than or equal to 100"),
        "{msg}"
    );
    assert_eq!(env.snapshot().await, before);

    // 100 are fine.
    let actions: Vec<_> = (0..100)
        .map(|i| put(&table, item("many", &format!("{i:03}"), &[])))
        .collect();
    db.transact_write_items()
        .set_transact_items(Some(actions))
        .send()
        .await
        .expect("100 actions are allowed");
    assert_eq!(env.snapshot().await.items.len(), 100);
}

/// moto applies a transaction's actions one by one: when a later one fails, the earlier ones must
/// be undone (the emulator puts back the items the transaction names), as nothing of a cancelled
/// transaction is ever visible on AWS.
#[tokio::test]
async fn a_cancelled_transaction_undoes_the_actions_before_the_failing_one() {
    let env = TestEnv::new().await;
    let table = env.app.config.table.clone();
    let db = dynamodb(&env, None, None);
    let n = |v: &str| AttributeValue::N(v.into());
    db.put_item()
        .table_name(&table)
        .set_item(Some(item("undo", "kept", &[("v", n("1"))])))
        .send()
        .await
        .expect("put");
    let before = env.snapshot().await;

    let delete = TransactWriteItem::builder()
        .delete(
            aws_sdk_dynamodb::types::Delete::builder()
                .table_name(&table)
                .set_key(Some(key("undo", "kept")))
                .build()
                .expect("table and key set"),
        )
        .build();
    let failing = TransactWriteItem::builder()
        .update(
            Update::builder()
                .table_name(&table)
                .set_key(Some(key("undo", "missing")))
                .update_expression("SET v = :v")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":v", n("2"))
                .build()
                .expect("table, key and expression set"),
        )
        .build();
    let err = db
        .transact_write_items()
        .transact_items(put(&table, item("undo", "new", &[("v", n("3"))])))
        .transact_items(delete)
        .transact_items(failing)
        .send()
        .await
        .expect_err("the last action's condition fails");
    assert_eq!(code(&err), "TransactionCanceledException");
    assert_eq!(env.snapshot().await, before, "nothing of it is left");
}

#[tokio::test]
async fn a_transaction_with_two_operations_on_one_item_is_refused() {
    let env = TestEnv::new().await;
    let table = env.app.config.table.clone();
    let db = dynamodb(&env, None, None);
    let before = env.snapshot().await;

    let check = TransactWriteItem::builder()
        .condition_check(
            ConditionCheck::builder()
                .table_name(&table)
                .set_key(Some(key("dup", "item")))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .expect("table, key and condition set"),
        )
        .build();
    let err = db
        .transact_write_items()
        .transact_items(put(&table, item("dup", "first", &[])))
        .transact_items(put(&table, item("dup", "item", &[])))
        .transact_items(check)
        .send()
        .await
        .expect_err("two operations on one item are refused");
    assert_eq!(code(&err), "ValidationException");
    assert_eq!(
        message(&err),
        "Transaction request cannot include multiple operations on one item"
    );
    assert_eq!(env.snapshot().await, before);
}

#[tokio::test]
async fn items_over_400_kb_and_transactions_over_4_mb_are_refused() {
    let env = TestEnv::new().await;
    let table = env.app.config.table.clone();
    let db = dynamodb(&env, None, None);
    let before = env.snapshot().await;
    let too_big = || item("big", "item", &[("blob", text(401 * 1024))]);
    let small = || item("big", "small", &[]);
    const TOO_BIG: &str = "Item size has exceeded the maximum allowed size";

    let err = db
        .put_item()
        .table_name(&table)
        .set_item(Some(too_big()))
        .send()
        .await
        .expect_err("PutItem of 401 KB is refused");
    assert_eq!(
        (code(&err), message(&err)),
        ("ValidationException".into(), TOO_BIG.into())
    );

    let err = db
        .transact_write_items()
        .transact_items(put(&table, small()))
        .transact_items(put(&table, too_big()))
        .send()
        .await
        .expect_err("a transaction putting 401 KB is refused");
    assert_eq!(
        (code(&err), message(&err)),
        ("ValidationException".into(), TOO_BIG.into())
    );

    let write = |item| {
        WriteRequest::builder()
            .put_request(
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .expect("item set"),
            )
            .build()
    };
    let err = db
        .batch_write_item()
        .request_items(&table, vec![write(small()), write(too_big())])
        .send()
        .await
        .expect_err("a batch putting 401 KB is refused");
    assert_eq!(
        (code(&err), message(&err)),
        ("ValidationException".into(), TOO_BIG.into())
    );

    // Eleven items of 390 KB each are each allowed, but not in one transaction.
    let actions: Vec<_> = (0..11)
        .map(|i| {
            put(
                &table,
                item(
                    "big",
                    &format!("part-{i:02}"),
                    &[("blob", text(390 * 1024))],
                ),
            )
        })
        .collect();
    let err = db
        .transact_write_items()
        .set_transact_items(Some(actions))
        .send()
        .await
        .expect_err("a transaction over 4 MB is refused");
    assert_eq!(code(&err), "ValidationException");
    assert_eq!(
        message(&err),
        "Transaction request cannot be larger than 4 MB"
    );

    assert_eq!(env.snapshot().await, before, "nothing was applied");

    db.put_item()
        .table_name(&table)
        .set_item(Some(item("big", "fits", &[("blob", text(390 * 1024))])))
        .send()
        .await
        .expect("390 KB fits");
}

#[tokio::test]
async fn chaos_at_rate_one_fails_every_data_call_and_applies_nothing() {
    let env = TestEnv::new().await;
    let table = env.app.config.table.clone();
    let bucket = env.app.config.user_media_bucket.clone();
    let db = dynamodb(&env, Some(1.0), None);
    let s3 = s3(&env, 1.0);
    let before = env.snapshot().await;
    let counted_before = injected().await;
    let mut kinds = BTreeSet::new();
    let mut faults = 0;

    for i in 0..10 {
        let err = db
            .put_item()
            .table_name(&table)
            .set_item(Some(item("chaos", &format!("put-{i}"), &[])))
            .send()
            .await
            .expect_err("every put fails");
        let kind = code(&err);
        assert!(
            DYNAMODB_FAULTS.contains(&kind.as_str()) || kind == "TransactionConflictException",
            "{err:?}"
        );
        kinds.insert(kind);

        let err = db
            .get_item()
            .table_name(&table)
            .set_key(Some(key("chaos", "get")))
            .send()
            .await
            .expect_err("every get fails");
        let kind = code(&err);
        assert!(DYNAMODB_FAULTS.contains(&kind.as_str()), "{err:?}");
        kinds.insert(kind);

        let err = db
            .transact_write_items()
            .transact_items(put(&table, item("chaos", &format!("txn-a-{i}"), &[])))
            .transact_items(put(&table, item("chaos", &format!("txn-b-{i}"), &[])))
            .send()
            .await
            .expect_err("every transaction fails");
        match cancellation_codes(&err) {
            // A conflict blamed on exactly one of its items.
            Some(codes) => {
                let mut sorted = codes.clone();
                sorted.sort();
                assert_eq!(sorted, ["None", "TransactionConflict"], "{codes:?}");
                kinds.insert("TransactionConflict".to_string());
            }
            None => {
                let kind = code(&err);
                assert!(DYNAMODB_FAULTS.contains(&kind.as_str()), "{err:?}");
                kinds.insert(kind);
            }
        }

        let err = s3
            .put_object()
            .bucket(&bucket)
            .key(format!("chaos/{i}"))
            .body(b"bytes".to_vec().into())
            .send()
            .await
            .expect_err("every S3 put fails");
        let status = err.raw_response().map(|r| r.status().as_u16());
        match code(&err).as_str() {
            "SlowDown" => assert_eq!(status, Some(503)),
            "InternalError" => assert_eq!(status, Some(500)),
            other => panic!("unexpected S3 error {other}: {err:?}"),
        }
        kinds.insert(code(&err));
        faults += 4;
    }
    // Forty draws from one seeded generator: more than one kind of fault.
    assert!(kinds.len() > 2, "{kinds:?}");

    // The control plane never sees chaos.
    db.describe_table()
        .table_name(&table)
        .send()
        .await
        .expect("DescribeTable is not faulted");
    s3.head_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("HeadBucket is not faulted");

    assert_eq!(env.snapshot().await, before, "no fault applied anything");
    let counted = injected().await - counted_before;
    assert!(
        counted >= faults,
        "the emulator counted {counted} of {faults} faults"
    );
}

#[tokio::test]
async fn chaos_at_rate_zero_injects_nothing() {
    let env = TestEnv::new().await;
    let table = env.app.config.table.clone();
    let bucket = env.app.config.user_media_bucket.clone();
    // No retries: any injected fault would fail the call. The header's 0 also overrides a global
    // JOIP_EMULATOR_CHAOS, so this holds however the emulator runs.
    let db = dynamodb(&env, Some(0.0), None);
    let s3 = s3(&env, 0.0);
    for i in 0..10 {
        db.put_item()
            .table_name(&table)
            .set_item(Some(item("calm", &format!("{i}"), &[])))
            .send()
            .await
            .expect("put");
        db.transact_write_items()
            .transact_items(set_winner(&table, key("calm", &format!("{i}")), "txn"))
            .send()
            .await
            .expect("transaction");
        s3.put_object()
            .bucket(&bucket)
            .key(format!("calm/{i}"))
            .body(b"bytes".to_vec().into())
            .send()
            .await
            .expect("S3 put");
        s3.get_object()
            .bucket(&bucket)
            .key(format!("calm/{i}"))
            .send()
            .await
            .expect("S3 get");
    }
    let snapshot = env.snapshot().await;
    assert_eq!(snapshot.items.len(), 10);
    assert_eq!(snapshot.objects.len(), 10);
}

#[tokio::test]
async fn chaos_app_carries_the_rate_and_retries_retryable_faults() {
    let env = TestEnv::new().await;
    let table = env.app.config.table.clone();

    // At rate 0 the chaos app is an ordinary app on the same table and buckets.
    let calm = env.chaos_app(0.0);
    calm.store
        .client()
        .put_item()
        .table_name(&table)
        .set_item(Some(item("calm", "item", &[])))
        .send()
        .await
        .expect("put through the chaos app at rate 0");
    calm.blob
        .client()
        .put_object()
        .bucket(&env.app.config.general_bucket)
        .key("calm")
        .body(b"bytes".to_vec().into())
        .send()
        .await
        .expect("S3 put through the chaos app at rate 0");
    let snapshot = env.snapshot().await;
    assert_eq!((snapshot.items.len(), snapshot.objects.len()), (1, 1));

    // At rate 1 every attempt of a read fails with a retryable fault: the SDK tries 8 times.
    let stormy = env.chaos_app(1.0);
    let counted_before = injected().await;
    let err = stormy
        .store
        .client()
        .get_item()
        .table_name(&table)
        .set_key(Some(key("absent", "absent")))
        .send()
        .await
        .expect_err("every attempt fails");
    assert!(DYNAMODB_FAULTS.contains(&code(&err).as_str()), "{err:?}");
    let counted = injected().await - counted_before;
    assert!(counted >= 8, "{counted} attempts were faulted, not 8");
}

/// DynamoDB Local answers DynamoDB behind the hostile layer, not moto: a transaction's
/// `ClientRequestToken` is honoured, and reusing it for another request is refused with
/// `IdempotentParameterMismatchException`, as on AWS (moto ignores the token and applies both).
#[tokio::test]
async fn a_reused_client_request_token_with_other_parameters_is_refused() {
    let env = TestEnv::new().await;
    let table = env.app.config.table.clone();
    let db = dynamodb(&env, None, None);
    let token = uuid::Uuid::new_v4().to_string();
    let first = || put(&table, item("token", "first", &[]));
    for attempt in ["first", "retried"] {
        db.transact_write_items()
            .transact_items(first())
            .client_request_token(&token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{attempt} request: {e:?}"));
    }
    let err = db
        .transact_write_items()
        .transact_items(put(&table, item("token", "other", &[])))
        .client_request_token(&token)
        .send()
        .await
        .expect_err("the same token with other items");
    assert_eq!(code(&err), "IdempotentParameterMismatchException");
    let rows = env.snapshot().await.items;
    assert_eq!(rows.len(), 1, "only the first request applied: {rows:?}");
}

/// A GSI is eventually consistent: with `x-joip-gsi-lag-ms` (and for a seeded share of GSI reads
/// while chaos is on) a query misses the writes younger than the window, and sees them once they
/// are older; the table itself, and a GSI read without lag, see them at once.
#[tokio::test]
async fn a_lagging_gsi_misses_young_writes_until_they_age() {
    const LAG_MS: u64 = 1500;
    let env = TestEnv::new().await;
    let table = env.app.config.table.clone();
    let db = dynamodb(&env, None, None);
    let lagging = Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&env.sdk)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .interceptor(Chaos { rate: 0.0 })
            .interceptor(Header("x-joip-gsi-lag-ms", LAG_MS.to_string()))
            .build(),
    );
    let indexed = |sk: &str| item("lag", sk, &[("gsi1pk", s("lag-index")), ("gsi1sk", s(sk))]);
    db.put_item()
        .table_name(&table)
        .set_item(Some(indexed("old")))
        .send()
        .await
        .expect("put old");
    tokio::time::sleep(Duration::from_millis(LAG_MS + 200)).await;
    let written = Instant::now();
    db.put_item()
        .table_name(&table)
        .set_item(Some(indexed("young")))
        .send()
        .await
        .expect("put young");
    let applied = Instant::now(); // the emulator timed the write before it answered
    let on_index = |client: &Client| {
        client
            .query()
            .table_name(&table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :p")
            .expression_attribute_values(":p", s("lag-index"))
            .send()
    };
    let sks = |out: aws_sdk_dynamodb::operation::query::QueryOutput| {
        out.items()
            .iter()
            .map(|i| i["sk"].as_s().expect("sk").clone())
            .collect::<Vec<_>>()
    };
    let before = emulator_json("/_joip/chaos").await["gsi_lag"]["items_missed"]
        .as_u64()
        .expect("items missed");
    let seen = sks(on_index(&lagging).await.expect("lagging query"));
    assert!(
        written.elapsed() < Duration::from_millis(LAG_MS),
        "too slow to tell"
    );
    assert_eq!(
        seen,
        ["old"],
        "the young write is missing from the lagging GSI"
    );
    let missed = emulator_json("/_joip/chaos").await["gsi_lag"]["items_missed"]
        .as_u64()
        .expect("items missed");
    assert!(missed > before, "the emulator counts what it hid");
    assert_eq!(
        sks(on_index(&db).await.expect("query")),
        ["old", "young"],
        "without lag"
    );
    let table_read = db
        .get_item()
        .table_name(&table)
        .set_key(Some(key("lag", "young")))
        .send()
        .await
        .expect("get");
    assert!(table_read.item.is_some(), "the table has it at once");
    tokio::time::sleep(Duration::from_millis(LAG_MS + 100).saturating_sub(applied.elapsed())).await;
    assert_eq!(
        sks(on_index(&lagging).await.expect("lagging query")),
        ["old", "young"],
        "once older than the window"
    );
}
