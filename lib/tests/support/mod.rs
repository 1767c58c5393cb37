//! Test support: a private table and buckets on the test emulator per test, and real API Gateway
//! v2 events for the handlers.
#![allow(dead_code)]

pub mod api;
mod chaos;
mod faults;
mod invariants;
#[allow(unused_imports)] // not every test binary uses them
pub use chaos::*;
#[allow(unused_imports)]
pub use faults::*;
#[allow(unused_imports)]
pub use invariants::*;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use joip::config::{Config, LocalMode};
use joip::App;
use lambda_http::Request;
use serde_json::{json, Value};

/// The emulator the tests own (tools/test.sh starts it on its own port).
pub fn endpoint() -> String {
    std::env::var("JOIP_TEST_ENDPOINT").expect(
        "JOIP_TEST_ENDPOINT is not set: run the tests with tools/test.sh, which starts a private emulator",
    )
}

pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(joip::app::https_client())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await
}

/// A fresh table and buckets with unique names, so tests run in parallel.
pub struct TestEnv {
    pub app: App,
    pub sdk: aws_config::SdkConfig,
}

impl TestEnv {
    /// Deployed-mode settings (no dev tokens): identity only from authorizer claims.
    pub async fn new() -> Self {
        Self::with_local(None).await
    }

    /// Local-mode settings: dev tokens signed with `secret` are accepted.
    pub async fn local(secret: &[u8]) -> Self {
        Self::with_local(Some(LocalMode {
            dev_token_secret: secret.to_vec().into(),
        }))
        .await
    }

    async fn with_local(local: Option<LocalMode>) -> Self {
        let endpoint = endpoint();
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let sdk = sdk_config(&endpoint).await;
        // Its own distribution in front of its own bucket: communityUrl goes through the
        // emulator's CDN, which caches as CloudFront does and is invalidated on removals.
        let general_bucket = format!("general-{suffix}");
        let distribution = joip::cdn::create_local_distribution(
            &aws_sdk_cloudfront::Client::new(&sdk),
            &general_bucket,
            "us-east-1",
        )
        .await
        .expect("create the CDN distribution");
        let config = Config {
            table: format!("t-{suffix}"),
            general_bucket,
            user_media_bucket: format!("user-media-{suffix}"),
            public_base_url: format!("{endpoint}/_joip/cdn/{distribution}"),
            cdn_distribution_id: Some(distribution),
            local,
            cursor_secret: Some(b"test-cursor-secret".to_vec().into()),
            endpoint_url: Some(endpoint.clone()),
            copy_concurrency: 8,
            id_block: 4,
            save_lease_ms: joip::config::DEFAULT_SAVE_LEASE_MS,
            request_budget_ms: joip::config::DEFAULT_REQUEST_BUDGET_MS,
            save_give_up_ms: joip::config::DEFAULT_SAVE_GIVE_UP_MS,
            sdk_max_attempts: joip::config::DEFAULT_SDK_MAX_ATTEMPTS,
            max_tags: joip::config::DEFAULT_MAX_TAGS,
            link_ttl_s: joip::config::DEFAULT_LINK_TTL_S,
            watermark_max_pixels: joip::config::DEFAULT_WATERMARK_MAX_PIXELS,
            watermark_max_bytes: joip::config::DEFAULT_WATERMARK_MAX_BYTES,
            community_max_bytes: joip::config::DEFAULT_COMMUNITY_MAX_BYTES,
            stage_max_bytes: joip::config::DEFAULT_STAGE_MAX_BYTES,
            reports_per_hour: joip::config::DEFAULT_REPORTS_PER_HOUR,
            report_hide_threshold: joip::config::DEFAULT_REPORT_HIDE_THRESHOLD,
            open_connections: true,
            extra_roots: None,
        };
        let app = App::new(config, &sdk);
        joip::store::schema::ensure_table(app.store.client(), &app.config.table)
            .await
            .expect("create table");
        for bucket in [&app.config.general_bucket, &app.config.user_media_bucket] {
            app.blob
                .client()
                .create_bucket()
                .bucket(bucket)
                .send()
                .await
                .expect("create bucket");
        }
        app.blob
            .serve_community_publicly(&app.config.general_bucket)
            .await
            .expect("community reads");
        Self { app, sdk }
    }

    /// A new user with `credits`.
    pub async fn user(&self, credits: i64, premium: bool) -> joip::domain::UserId {
        let id = joip::domain::UserId::random();
        self.app
            .store
            .create_user(&id, credits, premium)
            .await
            .expect("create user");
        id
    }
}

/// An API Gateway HTTP API (payload 2.0) event, as `events/` holds them.
pub struct Event {
    value: Value,
}

impl Event {
    /// `method` on `route` (API Gateway form, e.g. `/api/media/{id}/share`) with `path` filled in.
    pub fn new(method: &str, route: &str, path: &str) -> Self {
        Self {
            value: json!({
                "version": "2.0",
                "routeKey": format!("{method} {route}"),
                "rawPath": path,
                "rawQueryString": "",
                "headers": { "host": "api.example.com", "content-type": "application/json" },
                "requestContext": {
                    "accountId": "123456789012",
                    "apiId": "api",
                    "domainName": "api.example.com",
                    "domainPrefix": "api",
                    "http": {
                        "method": method, "path": path, "protocol": "HTTP/1.1",
                        "sourceIp": "192.0.2.1", "userAgent": "tests"
                    },
                    "requestId": uuid::Uuid::new_v4().to_string(),
                    "routeKey": format!("{method} {route}"),
                    "stage": "$default",
                    "time": "23/Nov/2026:15:00:00 +0000",
                    "timeEpoch": 1_795_446_000_000_i64
                },
                "isBase64Encoded": false
            }),
        }
    }

    /// Adds the JWT authorizer's claims for `sub`, as API Gateway does after validating a token.
    pub fn caller(mut self, sub: &str) -> Self {
        self.value["requestContext"]["authorizer"] = json!({
            "jwt": { "claims": { "sub": sub, "iss": "https://issuer.example.com", "aud": "joip" }, "scopes": null }
        });
        self
    }

    /// Sets a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.value["headers"][name] = json!(value);
        self
    }

    /// Sets path parameters.
    pub fn path_params(mut self, params: Value) -> Self {
        self.value["pathParameters"] = params;
        self
    }

    /// Sets the query string (already encoded pairs).
    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        let raw: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        self.value["rawQueryString"] = json!(raw.join("&"));
        self.value["queryStringParameters"] = Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect(),
        );
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: &str) -> Self {
        self.value["body"] = json!(body);
        self
    }

    /// The request as lambda_http parses it from the wire.
    pub fn request(&self) -> Request {
        lambda_http::request::from_str(&self.value.to_string()).expect("valid API Gateway v2 event")
    }
}

/// A response's status and JSON body.
pub fn read(resp: lambda_http::Response<lambda_http::Body>) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = match resp.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).expect("JSON body"),
        lambda_http::Body::Empty => Value::Null,
        other => panic!("unexpected body {other:?}"),
    };
    (status, body)
}

/// Loads a sample event from `events/`.
pub fn sample_event(path: &str) -> Request {
    let file = format!("{}/../events/{path}", env!("CARGO_MANIFEST_DIR"));
    let raw = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    lambda_http::request::from_str(&raw).unwrap_or_else(|e| panic!("{file}: {e}"))
}

impl TestEnv {
    /// Another App on the same table and buckets whose S3 client runs `interceptor`.
    pub fn app_with_s3_interceptor(
        &self,
        interceptor: impl aws_sdk_s3::config::Intercept + 'static,
    ) -> App {
        let s3 = aws_sdk_s3::Client::from_conf(
            App::s3_config(&self.app.config, &self.sdk)
                .interceptor(interceptor)
                .build(),
        );
        App::from_clients(
            self.app.config.clone(),
            &self.sdk,
            self.app.store.client().clone(),
            s3,
        )
    }

    /// Everything in the table and both buckets, for "nothing changed" assertions.
    pub async fn snapshot(&self) -> Snapshot {
        snapshot_of(&self.app).await
    }

    /// Plays S3 -> SQS -> the publisher for every object staged now (the tests' buckets send
    /// no notifications): each staged key is processed once, in key order; returns how many
    /// copies went public. A publisher error fails the test.
    pub async fn publish_staged(&self) -> usize {
        let general = self.app.config.general_bucket.clone();
        let mut published = 0;
        for line in self.keys(&general, joip::blob::keys::STAGING_PREFIX).await {
            let key = line.split(' ').next().expect("a key");
            match joip::service::publish::process_staged(&self.app, key).await {
                Ok(joip::service::publish::Processed::Published) => published += 1,
                Ok(_) => {}
                Err(e) => panic!("publishing {key}: {}", joip::error::Report(&e)),
            }
        }
        published
    }

    /// Keys under `prefix` in `bucket`, with their ETags.
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let out = self
            .app
            .blob
            .client()
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .send()
            .await
            .expect("list objects");
        out.contents()
            .iter()
            .map(|o| {
                format!(
                    "{} {}",
                    o.key().unwrap_or_default(),
                    o.e_tag().unwrap_or_default()
                )
            })
            .collect()
    }
}

/// The table's items and the buckets' objects at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub items: Vec<String>,
    pub objects: Vec<String>,
}

/// Everything in `app`'s table and both buckets (every page): [`TestEnv::snapshot`] for any App,
/// e.g. the stack `cargo lambda watch` serves.
pub async fn snapshot_of(app: &App) -> Snapshot {
    let db = app.store.client();
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = db
            .scan()
            .table_name(&app.config.table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        for item in out.items.unwrap_or_default() {
            // serde_json's maps are sorted: a canonical text for nested maps too.
            let value: Value = serde_dynamo::from_item(item).expect("item as JSON");
            items.push(value.to_string());
        }
        start = out.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    items.sort();
    let mut objects = Vec::new();
    for bucket in [&app.config.general_bucket, &app.config.user_media_bucket] {
        let mut token = None;
        loop {
            let out = app
                .blob
                .client()
                .list_objects_v2()
                .bucket(bucket)
                .set_continuation_token(token)
                .send()
                .await
                .expect("list objects");
            objects.extend(out.contents().iter().map(|o| {
                let (key, etag) = (o.key().unwrap_or_default(), o.e_tag().unwrap_or_default());
                format!("{bucket}/{key} {etag}")
            }));
            token = out.next_continuation_token;
            if token.is_none() {
                break;
            }
        }
    }
    objects.sort();
    Snapshot { items, objects }
}

/// Counts the SDK operations made through the clients it is installed on (any service: the
/// interceptor trait is shared), CopyObject separately, and fails the `nth` (1-based) CopyObject.
/// Clones share the counts.
#[derive(Debug, Clone)]
pub struct FailNthCopy {
    pub nth: usize,
    pub seen: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FailNthCopy {
    pub fn new(nth: usize) -> Self {
        Self {
            nth,
            seen: Default::default(),
            calls: Default::default(),
        }
    }

    /// Counts, fails nothing.
    pub fn counter() -> Self {
        Self::new(usize::MAX)
    }

    /// Copies seen so far.
    pub fn copies(&self) -> usize {
        self.seen.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// (all operations, copies) since the last call, and starts counting again.
    pub fn take(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::SeqCst;
        (self.calls.swap(0, SeqCst), self.seen.swap(0, SeqCst))
    }
}

impl aws_sdk_s3::config::Intercept for FailNthCopy {
    fn name(&self) -> &'static str {
        "FailNthCopy"
    }

    fn read_before_execution(
        &self,
        context: &aws_sdk_s3::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let is_copy = context
            .input()
            .downcast_ref::<aws_sdk_s3::operation::copy_object::CopyObjectInput>()
            .is_some();
        if is_copy && self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == self.nth {
            return Err("injected fault: copy failed".into());
        }
        Ok(())
    }
}

/// A public session shared to the community, owned by `owner`, with `media` in order.
pub async fn community_session(
    app: &App,
    owner: &joip::domain::UserId,
    title: &str,
    media: Vec<joip::service::sessions::NewMedia>,
) -> joip::domain::SessionId {
    joip::service::sessions::create_session(
        app,
        joip::service::sessions::NewSession {
            owner: owner.clone(),
            title: title.into(),
            category: None,
            settings: json!({}),
            metadata: json!({}),
            is_public: true,
            shared_to_community: true,
            is_imported: false,
            subreddits: vec![],
            media,
        },
    )
    .await
    .expect("create session")
}

/// An upload entry for a new session.
pub fn upload(
    file_name: &str,
    bytes: Vec<u8>,
    caption: Option<&str>,
) -> joip::service::sessions::NewMedia {
    joip::service::sessions::NewMedia {
        input: joip::service::sessions::MediaInput::Upload {
            file_name: file_name.into(),
            bytes,
        },
        caption: caption.map(str::to_string),
    }
}

/// Makes every server-side copy (CopyObject, UploadPartCopy) of the client it is on take
/// `ms_per_mib` for each MiB it copies, as S3's copies take time in proportion to their size (the
/// emulator holds the request: `x-joip-copy-ms-per-mib`).
#[derive(Debug, Clone)]
pub struct CopyRate {
    pub ms_per_mib: u64,
}

impl aws_sdk_s3::config::Intercept for CopyRate {
    fn name(&self) -> &'static str {
        "CopyRate"
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _components: &aws_sdk_s3::config::RuntimeComponents,
        _cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request_mut();
        if request.headers().contains_key("x-amz-copy-source") {
            request
                .headers_mut()
                .insert("x-joip-copy-ms-per-mib", self.ms_per_mib.to_string());
        }
        Ok(())
    }
}

/// Makes every CopyObject of the client it is on take `copy_ms` longer (the emulator holds the
/// request: asynchronous for the caller, as a slow S3 is), and counts them in `counter`.
#[derive(Debug, Clone)]
pub struct Latency {
    pub copy_ms: u64,
    pub counter: FailNthCopy,
}

impl aws_sdk_s3::config::Intercept for Latency {
    fn name(&self) -> &'static str {
        "Latency"
    }

    fn read_before_execution(
        &self,
        context: &aws_sdk_s3::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.counter.read_before_execution(context, cfg)
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _components: &aws_sdk_s3::config::RuntimeComponents,
        _cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request_mut();
        if request.headers().contains_key("x-amz-copy-source") {
            request
                .headers_mut()
                .insert("x-joip-latency-ms", self.copy_ms.to_string());
        }
        Ok(())
    }
}

/// The body of the S3 notification of a new object at `key` (URL-encoded by the caller where it
/// needs to be), as S3 sends it through SQS: the real one in `events/watermark/`, its key replaced.
pub fn s3_notification(key: &str) -> Value {
    let event: Value = serde_json::from_str(include_str!(
        "../../../events/watermark/sqs-s3-object-created.json"
    ))
    .expect("the sample SQS event");
    let body = event["Records"][0]["body"].as_str().expect("an SQS body");
    let mut notification: Value = serde_json::from_str(body).expect("an S3 notification");
    notification["Records"][0]["s3"]["object"]["key"] = json!(key);
    notification
}

/// Hands an SQS batch (its JSON, as Lambda delivers it) to the publisher; the ids it reports as
/// batch item failures.
pub async fn handle_batch(app: &App, batch: &Value) -> Vec<String> {
    let event: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_value(batch.clone()).expect("an SQS event");
    joip::service::publish::handle_batch(app, event)
        .await
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect()
}

/// One call of a [`Timeline`]: its operation, when it was sent, when its answer came.
pub type TimedCall = (String, std::time::Instant, Option<std::time::Instant>);

/// Records when each SDK operation made through the clients it is installed on started and
/// ended (first attempt's serialisation to the last response's deserialisation), by name, so a
/// benchmark can say where a request's time went. Clones share the record.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub calls: std::sync::Arc<std::sync::Mutex<Vec<TimedCall>>>,
}

impl Timeline {
    /// The operations since the last call, as (name, start, end) relative to `since`, in ms.
    pub fn take(&self, since: std::time::Instant) -> Vec<(String, f64, f64)> {
        let ms = |t: std::time::Instant| t.saturating_duration_since(since).as_secs_f64() * 1e3;
        std::mem::take(&mut *self.calls.lock().unwrap())
            .into_iter()
            .map(|(name, start, end)| (name, ms(start), end.map_or(f64::NAN, ms)))
            .collect()
    }
}

/// DynamoDB's share of a timeline: (round trips one after another, with overlapping calls
/// counted once; the time during which at least one was in flight, ms).
pub fn dynamodb_steps(calls: &[(String, f64, f64)]) -> (usize, f64) {
    let mut spans: Vec<(f64, f64)> = calls
        .iter()
        .filter(|(name, ..)| name.starts_with("dynamodb:"))
        .map(|&(_, from, to)| (from, to))
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut steps, mut busy, mut open): (usize, f64, Option<(f64, f64)>) = (0, 0.0, None);
    for (from, to) in spans {
        match open {
            Some((start, end)) if from <= end => open = Some((start, end.max(to))),
            _ => {
                if let Some((start, end)) = open {
                    busy += end - start;
                }
                steps += 1;
                open = Some((from, to));
            }
        }
    }
    if let Some((start, end)) = open {
        busy += end - start;
    }
    (steps, busy)
}

impl Timeline {
    /// The operation an HTTP request carries, as `dynamodb:<target>` or `s3:<x-id query
    /// parameter, else the method>`.
    fn operation(req: &aws_smithy_runtime_api::http::Request) -> String {
        if let Some(target) = req.headers().get("x-amz-target") {
            return format!("dynamodb:{}", target.rsplit('.').next().unwrap_or(target));
        }
        let op = req
            .uri()
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("x-id="))
            .unwrap_or(req.method());
        format!("s3:{op}")
    }
}

impl aws_sdk_s3::config::Intercept for Timeline {
    fn name(&self) -> &'static str {
        "Timeline"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_s3::config::RuntimeComponents,
        _cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let name = Self::operation(context.request());
        self.calls
            .lock()
            .unwrap()
            .push((name, std::time::Instant::now(), None));
        Ok(())
    }

    fn read_after_transmit(
        &self,
        context: &aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _components: &aws_sdk_s3::config::RuntimeComponents,
        _cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let _ = context;
        let now = std::time::Instant::now();
        let mut calls = self.calls.lock().unwrap();
        // Answers come back in any order when calls overlap: the oldest open call takes it
        // (exact for the sequential steps this is for).
        if let Some(open) = calls.iter_mut().find(|(.., end)| end.is_none()) {
            open.2 = Some(now);
        }
        Ok(())
    }
}
