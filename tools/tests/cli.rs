//! `joip-admin` end to end: the real binary against the private emulator, one table, pair of
//! buckets and queue per test so the tests run in parallel. The contract: each command prints
//! exactly one JSON document on stdout and exits 0; on error it prints a message on stderr,
//! nothing on stdout, and exits 1.

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::Credentials;
use joip::auth::verify_dev_token;
use serde_json::{json, Value};
use std::process::Command;

const PHOTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/demo-photo.jpg");
const CLIP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/demo-clip.mp4");
const LOOP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/demo-loop.gif");
const UPLOAD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/demo-upload.png");
const NOT_MEDIA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");

/// A private stack on the test emulator: its own table, buckets and queue.
struct Stack {
    endpoint: String,
    table: String,
    general_bucket: String,
    user_media_bucket: String,
    queue: String,
}

impl Stack {
    /// Fresh names, then `joip-admin local init`.
    fn new() -> Self {
        let endpoint = std::env::var("JOIP_TEST_ENDPOINT").expect(
            "JOIP_TEST_ENDPOINT is not set: run the tests with tools/test.sh, which starts a private emulator",
        );
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let stack = Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            table: format!("joip-cli-{suffix}"),
            general_bucket: format!("joip-cli-{suffix}-general"),
            user_media_bucket: format!("joip-cli-{suffix}-user-media"),
            queue: format!("joip-cli-{suffix}-watermark"),
        };
        let init = ok(&stack, &["local", "init"]);
        assert_eq!(init["table"], stack.table, "{init}");
        stack
    }

    /// What an object in one of this stack's buckets holds (a signed GetObject: the emulator
    /// answers 403 to anonymous reads of private objects).
    fn object(&self, bucket: &str, key: &str) -> Vec<u8> {
        self.block_on(|sdk| async move {
            let s3 = aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&sdk)
                    .force_path_style(true)
                    .build(),
            );
            let out = s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("s3://{bucket}/{key}: {e:?}"));
            out.body
                .collect()
                .await
                .unwrap_or_else(|e| panic!("s3://{bucket}/{key}: {e}"))
                .into_bytes()
                .to_vec()
        })
    }

    /// Runs `f` with an SDK configuration for the test emulator.
    fn block_on<F: std::future::Future>(
        &self,
        f: impl FnOnce(aws_config::SdkConfig) -> F,
    ) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let sdk = aws_config::defaults(BehaviorVersion::latest())
                .http_client(joip::app::https_client())
                .endpoint_url(&self.endpoint)
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("test", "test", None, None, "cli-tests"))
                .load()
                .await;
            f(sdk).await
        })
    }

    /// This stack's queue URL and its dead-letter queue's.
    fn queue_urls(&self) -> (String, String) {
        let queue = self.queue.clone();
        self.block_on(|sdk| async move {
            let sqs = aws_sdk_sqs::Client::new(&sdk);
            let mut urls = Vec::new();
            for name in [queue.clone(), format!("{queue}-dlq")] {
                let out = sqs.get_queue_url().queue_name(&name).send().await;
                urls.push(out.expect("the queue exists").queue_url.unwrap_or_default());
            }
            (urls[0].clone(), urls[1].clone())
        })
    }

    fn send(&self, queue_url: &str, body: &str) {
        let (url, body) = (queue_url.to_string(), body.to_string());
        self.block_on(|sdk| async move {
            let sqs = aws_sdk_sqs::Client::new(&sdk);
            sqs.send_message()
                .queue_url(url)
                .message_body(body)
                .send()
                .await
                .expect("send");
        });
    }

    /// Bodies of the messages now visible in a queue (made visible again at once).
    fn peek(&self, queue_url: &str) -> Vec<String> {
        let url = queue_url.to_string();
        self.block_on(|sdk| async move {
            let sqs = aws_sdk_sqs::Client::new(&sdk);
            let out = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .send()
                .await
                .expect("receive");
            out.messages()
                .iter()
                .filter_map(|m| m.body().map(str::to_string))
                .collect()
        })
    }
}

/// Runs `joip-admin args` against `stack`: (exit code, stdout as JSON or Null if empty, stderr).
/// Panics if stdout is neither empty nor exactly one JSON document.
fn admin(stack: &Stack, args: &[&str]) -> (i32, Value, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_joip-admin"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("JOIP_") {
            cmd.env_remove(&key);
        }
    }
    let out = cmd
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_ENDPOINT_URL", &stack.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("JOIP_DEV_TOKEN_SECRET", dev_secret())
        .env("JOIP_TABLE", &stack.table)
        .env("JOIP_GENERAL_BUCKET", &stack.general_bucket)
        .env("JOIP_USER_MEDIA_BUCKET", &stack.user_media_bucket)
        .env("JOIP_WATERMARK_QUEUE", &stack.queue)
        .args(args)
        .output()
        .expect("joip-admin runs");
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("joip-admin {args:?}: stdout is not one JSON document ({e}):\n{stdout}")
        })
    };
    (out.status.code().unwrap_or(-1), json, stderr)
}

/// A command that must succeed: exit 0 and one JSON document.
fn ok(stack: &Stack, args: &[&str]) -> Value {
    let (code, json, stderr) = admin(stack, args);
    assert_eq!(code, 0, "joip-admin {args:?} failed: {stderr}");
    assert!(!json.is_null(), "joip-admin {args:?} printed nothing");
    json
}

/// A command that must fail: exit 1, a message on stderr, nothing on stdout. Returns stderr.
fn fails(stack: &Stack, args: &[&str]) -> String {
    let (code, json, stderr) = admin(stack, args);
    assert_eq!(
        code, 1,
        "joip-admin {args:?} should exit 1: {json} / {stderr}"
    );
    assert!(
        json.is_null(),
        "joip-admin {args:?} printed {json} on failure"
    );
    assert!(
        !stderr.trim().is_empty(),
        "joip-admin {args:?} failed without a message"
    );
    stderr
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
}

fn keys_of(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

fn sorted<'a>(keys: &[&'a str]) -> Vec<&'a str> {
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys
}

/// The local stack's dev-token secret, as tools/test.sh exports it.
fn dev_secret() -> String {
    std::env::var("JOIP_DEV_TOKEN_SECRET")
        .expect("JOIP_DEV_TOKEN_SECRET is not set: run the tests with tools/test.sh")
}

/// The user a dev token was minted for, if it verifies with the local secret.
fn token_subject(token: &str) -> Option<String> {
    verify_dev_token(dev_secret().as_bytes(), token).map(|u| u.as_str().to_string())
}

/// `user create` with extra flags; returns the new user's id.
fn new_user(stack: &Stack, flags: &[&str]) -> String {
    let args: Vec<&str> = ["user", "create"].iter().chain(flags).copied().collect();
    str_of(&ok(stack, &args), "userId").to_string()
}

/// `session create` with these flags; returns the new session's id as text.
fn new_session(stack: &Stack, flags: &[&str]) -> String {
    let args: Vec<&str> = ["session", "create"].iter().chain(flags).copied().collect();
    let out = ok(stack, &args);
    assert_eq!(keys_of(&out), ["sessionId"], "{out}");
    let id = out["sessionId"]
        .as_u64()
        .unwrap_or_else(|| panic!("sessionId is not a positive integer: {out}"));
    assert!(id > 0);
    id.to_string()
}

// ---- local ----

#[test]
fn local_init_is_idempotent() {
    let stack = Stack::new();
    let again = ok(&stack, &["local", "init"]);
    assert_eq!(again["table"], stack.table);
    assert_eq!(again["generalBucket"], stack.general_bucket);
    assert_eq!(again["userMediaBucket"], stack.user_media_bucket);
    assert!(
        str_of(&again, "queueUrl").ends_with(&stack.queue),
        "{again}"
    );
    assert!(
        str_of(&again, "deadLetterQueueUrl").ends_with(&format!("{}-dlq", stack.queue)),
        "{again}"
    );
    // The stack still works after the second init.
    let user = new_user(&stack, &["--credits", "3"]);
    assert_eq!(ok(&stack, &["user", "show", &user])["credits"], 3);
}

#[test]
fn local_seed_twice_returns_the_same_ids() {
    let stack = Stack::new();
    let first = ok(&stack, &["local", "seed"]);
    let second = ok(&stack, &["local", "seed"]);

    assert_ne!(first["alreadySeeded"], json!(true), "{first}");
    assert_eq!(second["alreadySeeded"], json!(true), "{second}");
    for key in ["communitySessionId", "mediaId", "tags"] {
        assert!(!first[key].is_null(), "{key} missing: {first}");
        assert_eq!(first[key], second[key], "{key}");
    }
    let ids = |v: &Value| -> Vec<String> {
        v["users"]
            .as_array()
            .unwrap_or_else(|| panic!("users is not an array: {v}"))
            .iter()
            .map(|u| str_of(u, "userId").to_string())
            .collect()
    };
    assert_eq!(ids(&first), ids(&second));
    assert!(!ids(&first).is_empty());
    for summary in [&first, &second] {
        for u in summary["users"].as_array().unwrap() {
            assert_eq!(
                token_subject(str_of(u, "token")).as_deref(),
                Some(str_of(u, "userId")),
                "{u}"
            );
        }
    }

    // What the summary names really exists.
    let alice = &first["users"][0];
    let shown = ok(&stack, &["user", "show", str_of(alice, "userId")]);
    assert_eq!(shown["credits"], alice["credits"]);
    assert_eq!(shown["isPremium"], alice["isPremium"]);
    let session_id = first["communitySessionId"].to_string();
    let session = ok(&stack, &["session", "show", &session_id]);
    assert_eq!(session["ownerId"], alice["userId"]);
    assert_eq!(session["media"].as_array().map(Vec::len), Some(4));
    let media = ok(&stack, &["media", "show", &first["mediaId"].to_string()]);
    assert_eq!(media["mimeType"], "image/png");
    let slugs: Vec<Value> = ok(&stack, &["tag", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].clone())
        .collect();
    for slug in first["tags"].as_array().unwrap() {
        assert!(slugs.contains(slug), "{slug} not in tag list");
    }
}

// ---- users ----

#[test]
fn user_create_returns_a_dev_token_for_the_new_user() {
    let stack = Stack::new();
    let out = ok(&stack, &["user", "create"]);
    assert_eq!(keys_of(&out), ["token", "userId"], "{out}");
    let user = str_of(&out, "userId");
    assert!(!user.is_empty());
    assert_eq!(token_subject(str_of(&out, "token")).as_deref(), Some(user));
}

#[test]
fn user_create_gives_each_user_a_fresh_id() {
    let stack = Stack::new();
    let a = new_user(&stack, &[]);
    let b = new_user(&stack, &[]);
    assert_ne!(a, b);
}

#[test]
fn user_create_takes_a_chosen_id_once() {
    let stack = Stack::new();
    let out = ok(&stack, &["user", "create", "--id", "auth0|operator-1"]);
    assert_eq!(out["userId"], "auth0|operator-1");
    assert_eq!(
        token_subject(str_of(&out, "token")).as_deref(),
        Some("auth0|operator-1")
    );
    fails(&stack, &["user", "create", "--id", "auth0|operator-1"]);
    fails(&stack, &["user", "create", "--id", "a#b"]);
}

#[test]
fn user_create_records_credits_and_premium() {
    let stack = Stack::new();
    let premium = new_user(&stack, &["--credits", "50", "--premium"]);
    assert_eq!(
        ok(&stack, &["user", "show", &premium]),
        json!({ "userId": premium, "credits": 50, "isPremium": true })
    );
    let plain = new_user(&stack, &[]);
    assert_eq!(
        ok(&stack, &["user", "show", &plain]),
        json!({ "userId": plain, "credits": 0, "isPremium": false })
    );
}

#[test]
fn user_show_unknown_user_fails() {
    let stack = Stack::new();
    fails(&stack, &["user", "show", "nobody-here"]);
    fails(&stack, &["user", "show", "a#b"]);
}

#[test]
fn credit_adds_and_removes() {
    let stack = Stack::new();
    let user = new_user(&stack, &["--credits", "10"]);
    let out = ok(&stack, &["user", "credit", &user, "--add", "5"]);
    assert_eq!(out["credits"], 15, "{out}");
    let out = ok(&stack, &["user", "credit", &user, "--add", "-5"]);
    assert_eq!(out["credits"], 10, "{out}");
    let out = ok(&stack, &["user", "credit", &user, "--add", "-10"]);
    assert_eq!(out["credits"], 0, "{out}");
    assert_eq!(ok(&stack, &["user", "show", &user])["credits"], 0);
}

#[test]
fn credit_never_goes_below_zero() {
    let stack = Stack::new();
    let user = new_user(&stack, &["--credits", "10"]);
    let out = ok(&stack, &["user", "credit", &user, "--add", "-25"]);
    assert_eq!(out["credits"], 0, "{out}");
    assert_eq!(ok(&stack, &["user", "show", &user])["credits"], 0);
    // It counts up from zero, not from a negative balance.
    let out = ok(&stack, &["user", "credit", &user, "--add", "7"]);
    assert_eq!(out["credits"], 7, "{out}");
    assert_eq!(
        ok(&stack, &["user", "show", &user]),
        json!({ "userId": user, "credits": 7, "isPremium": false })
    );
}

#[test]
fn credit_at_zero_stays_at_zero() {
    let stack = Stack::new();
    let user = new_user(&stack, &[]);
    let out = ok(&stack, &["user", "credit", &user, "--add", "-1"]);
    assert_eq!(out, json!({ "userId": user, "credits": 0 }));
}

#[test]
fn credit_of_zero_keeps_the_balance() {
    let stack = Stack::new();
    let user = new_user(&stack, &["--credits", "4"]);
    let out = ok(&stack, &["user", "credit", &user, "--add", "0"]);
    assert_eq!(out, json!({ "userId": user, "credits": 4 }));
}

#[test]
fn credit_for_an_unknown_user_fails() {
    let stack = Stack::new();
    fails(&stack, &["user", "credit", "nobody-here", "--add", "5"]);
    fails(&stack, &["user", "show", "nobody-here"]);
}

// ---- tokens ----

#[test]
fn token_is_a_dev_token_for_the_user() {
    let stack = Stack::new();
    let user = new_user(&stack, &[]);
    let out = ok(&stack, &["token", &user]);
    assert_eq!(keys_of(&out), ["token"], "{out}");
    assert_eq!(token_subject(str_of(&out, "token")), Some(user));
}

#[test]
fn token_rejects_an_invalid_user_id() {
    let stack = Stack::new();
    fails(&stack, &["token", "a#b"]);
    fails(&stack, &["token", "a/b"]);
}

// ---- pricing ----

#[test]
fn pricing_set_prints_the_price() {
    let stack = Stack::new();
    assert_eq!(
        ok(
            &stack,
            &["pricing", "set", "session_create", "--credits", "10"]
        ),
        json!({ "featureKey": "session_create", "credits": 10, "premiumOnly": false })
    );
    // Setting again replaces the price.
    assert_eq!(
        ok(
            &stack,
            &[
                "pricing",
                "set",
                "session_create",
                "--credits",
                "3",
                "--premium-only"
            ]
        ),
        json!({ "featureKey": "session_create", "credits": 3, "premiumOnly": true })
    );
}

#[test]
fn pricing_delete_reports_whether_a_price_was_removed() {
    let stack = Stack::new();
    ok(
        &stack,
        &["pricing", "set", "smart_caption", "--credits", "2"],
    );
    assert_eq!(
        ok(&stack, &["pricing", "delete", "smart_caption"]),
        json!({ "featureKey": "smart_caption", "deleted": true })
    );
    assert_eq!(
        ok(&stack, &["pricing", "delete", "smart_caption"]),
        json!({ "featureKey": "smart_caption", "deleted": false })
    );
}

#[test]
fn pricing_rejects_an_invalid_feature_key() {
    let stack = Stack::new();
    fails(
        &stack,
        &["pricing", "set", "Session Create", "--credits", "1"],
    );
    fails(&stack, &["pricing", "delete", "a#b"]);
}

// ---- tags ----

#[test]
fn tag_name_defaults_from_the_slug() {
    let stack = Stack::new();
    assert_eq!(
        ok(&stack, &["tag", "create", "long-hair"]),
        json!({ "slug": "long-hair", "name": "Long Hair" })
    );
    assert_eq!(
        ok(&stack, &["tag", "create", "bw", "--name", "Black & White"]),
        json!({ "slug": "bw", "name": "Black & White" })
    );
}

#[test]
fn tag_list_shows_every_tag() {
    let stack = Stack::new();
    assert_eq!(ok(&stack, &["tag", "list"]), json!([]));
    ok(&stack, &["tag", "create", "outdoor"]);
    ok(&stack, &["tag", "create", "long-hair"]);
    // Creating again renames.
    ok(&stack, &["tag", "create", "outdoor", "--name", "Outside"]);
    let list = ok(&stack, &["tag", "list"]);
    let mut tags = list.as_array().expect("an array").clone();
    tags.sort_by(|a, b| str_of(a, "slug").cmp(str_of(b, "slug")));
    assert_eq!(
        tags,
        [
            json!({ "slug": "long-hair", "name": "Long Hair" }),
            json!({ "slug": "outdoor", "name": "Outside" }),
        ]
    );
}

#[test]
fn tag_create_rejects_an_invalid_slug() {
    let stack = Stack::new();
    fails(&stack, &["tag", "create", "Bad Slug"]);
    fails(&stack, &["tag", "create", "--", "-leading"]);
    assert_eq!(ok(&stack, &["tag", "list"]), json!([]));
}

// ---- sessions ----

#[test]
fn session_show_has_exactly_the_documented_fields() {
    let stack = Stack::new();
    let owner = new_user(&stack, &[]);
    let id = new_session(
        &stack,
        &[
            "--owner",
            &owner,
            "--title",
            "Evening",
            "--media",
            PHOTO,
            "--media-url",
            "https://images.example.com/a.jpg",
        ],
    );
    let s = ok(&stack, &["session", "show", &id]);
    assert_eq!(
        keys_of(&s),
        sorted(&[
            "sessionId",
            "ownerId",
            "title",
            "category",
            "settings",
            "metadata",
            "isPublic",
            "sharedToCommunity",
            "isFavorite",
            "isImported",
            "importSource",
            "importUrl",
            "subreddits",
            "media",
        ])
    );
    for m in s["media"].as_array().expect("media is an array") {
        assert_eq!(
            keys_of(m),
            sorted(&["order", "type", "caption", "bucket", "key", "url"])
        );
    }
}

#[test]
fn session_create_records_every_flag() {
    let stack = Stack::new();
    let owner = new_user(&stack, &[]);
    let id = new_session(
        &stack,
        &[
            "--owner",
            &owner,
            "--title",
            "Sunset warm-up",
            "--category",
            "relaxation",
            "--public",
            "--community",
            "--imported",
            "--subreddit",
            "EarthPorn",
            "--subreddit",
            "SkyPorn",
            "--settings",
            r#"{"intervalSeconds":8,"shuffle":false,"transition":"fade","nested":{"a":[1,2]}}"#,
            "--metadata",
            r#"{"description":"demo"}"#,
        ],
    );
    assert_eq!(
        ok(&stack, &["session", "show", &id]),
        json!({
            "sessionId": id.parse::<u64>().unwrap(),
            "ownerId": owner,
            "title": "Sunset warm-up",
            "category": "relaxation",
            "settings": {
                "intervalSeconds": 8,
                "shuffle": false,
                "transition": "fade",
                "nested": { "a": [1, 2] }
            },
            "metadata": { "description": "demo" },
            "isPublic": true,
            "sharedToCommunity": true,
            "isFavorite": false,
            "isImported": true,
            "importSource": null,
            "importUrl": null,
            "subreddits": ["EarthPorn", "SkyPorn"],
            "media": [],
        })
    );
}

#[test]
fn session_create_defaults() {
    let stack = Stack::new();
    let owner = new_user(&stack, &[]);
    let id = new_session(&stack, &["--owner", &owner, "--title", "Plain"]);
    assert_eq!(
        ok(&stack, &["session", "show", &id]),
        json!({
            "sessionId": id.parse::<u64>().unwrap(),
            "ownerId": owner,
            "title": "Plain",
            "category": null,
            "settings": {},
            "metadata": {},
            "isPublic": false,
            "sharedToCommunity": false,
            "isFavorite": false,
            "isImported": false,
            "importSource": null,
            "importUrl": null,
            "subreddits": [],
            "media": [],
        })
    );
}

#[test]
fn session_settings_round_trip() {
    let stack = Stack::new();
    let owner = new_user(&stack, &[]);
    let id = new_session(
        &stack,
        &[
            "--owner",
            &owner,
            "--title",
            "T",
            "--settings",
            r#"{"a":1}"#,
        ],
    );
    let s = ok(&stack, &["session", "show", &id]);
    assert_eq!(s["settings"], json!({ "a": 1 }));
    assert_eq!(s["metadata"], json!({}));
}

#[test]
fn session_settings_and_metadata_must_be_json_objects() {
    let stack = Stack::new();
    let owner = new_user(&stack, &[]);
    let base = ["--owner", owner.as_str(), "--title", "T"];
    for (flag, bad) in [
        ("--settings", "[1]"),
        ("--settings", "{not json"),
        ("--settings", "\"text\""),
        ("--settings", "null"),
        ("--metadata", "[1]"),
        ("--metadata", "{not json"),
    ] {
        let args: Vec<&str> = ["session", "create"]
            .iter()
            .chain(&base)
            .chain(&[flag, bad])
            .copied()
            .collect();
        let stderr = fails(&stack, &args);
        assert!(
            stderr.contains(flag),
            "{flag} {bad}: message should name the flag: {stderr}"
        );
    }
}

#[test]
fn session_media_keep_argument_order() {
    let stack = Stack::new();
    let owner = new_user(&stack, &[]);
    let photo = format!("{PHOTO}::Breathe in");
    let gif = format!("{LOOP}::Loop");
    let id = new_session(
        &stack,
        &[
            "--owner",
            &owner,
            "--title",
            "Mixed",
            "--media-url",
            "https://images.example.com/first.png::First",
            "--media",
            &photo,
            "--media-url",
            "https://images.example.com/third.gif",
            "--media",
            CLIP,
            "--media",
            &gif,
            "--media-url",
            "https://videos.example.com/sixth.mp4::Sixth",
        ],
    );
    let s = ok(&stack, &["session", "show", &id]);
    let media = s["media"].as_array().expect("media is an array");
    let seen: Vec<(Value, Value, Value)> = media
        .iter()
        .map(|m| (m["order"].clone(), m["type"].clone(), m["caption"].clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (json!(0), json!("image"), json!("First")),
            (json!(1), json!("image"), json!("Breathe in")),
            (json!(2), json!("gif"), Value::Null),
            (json!(3), json!("video"), Value::Null),
            (json!(4), json!("gif"), json!("Loop")),
            (json!(5), json!("video"), json!("Sixth")),
        ]
    );
    let urls: Vec<Option<&str>> = media.iter().map(|m| m["url"].as_str()).collect();
    assert_eq!(urls[0], Some("https://images.example.com/first.png"));
    assert_eq!(urls[2], Some("https://images.example.com/third.gif"));
    assert_eq!(urls[5], Some("https://videos.example.com/sixth.mp4"));
    // The uploads are the right files, in the right slots.
    for (slot, file) in [(1, PHOTO), (3, CLIP), (4, LOOP)] {
        let m = &media[slot];
        let key = str_of(m, "key");
        assert!(
            key.starts_with(&format!("sessions/{id}/")),
            "slot {slot}: {m}"
        );
        assert_eq!(
            stack.object(&stack.general_bucket, key),
            read(file),
            "slot {slot}: {m}"
        );
    }
}

#[test]
fn session_uploads_are_typed_by_content_and_stored_in_the_general_bucket() {
    let stack = Stack::new();
    let owner = new_user(&stack, &[]);
    let photo = format!("{PHOTO}::A photo");
    let id = new_session(
        &stack,
        &[
            "--owner", &owner, "--title", "Uploads", "--media", &photo, "--media", CLIP, "--media",
            LOOP,
        ],
    );
    let s = ok(&stack, &["session", "show", &id]);
    let media = s["media"].as_array().expect("media is an array");
    assert_eq!(media.len(), 3);
    for (m, (file, kind, caption)) in media.iter().zip([
        (PHOTO, "image", json!("A photo")),
        (CLIP, "video", Value::Null),
        (LOOP, "gif", Value::Null),
    ]) {
        assert_eq!(m["type"], kind, "{m}");
        assert_eq!(m["caption"], caption, "{m}");
        assert_eq!(m["bucket"], stack.general_bucket.as_str(), "{m}");
        let key = str_of(m, "key");
        assert!(key.starts_with(&format!("sessions/{id}/")), "{m}");
        // The object really is there, with the file's bytes; the bucket is private, so it is
        // reached by bucket and key and no URL is stored.
        assert_eq!(stack.object(&stack.general_bucket, key), read(file), "{m}");
        assert_eq!(m["url"], Value::Null, "{m}");
    }
}

#[test]
fn session_external_media_are_recorded_as_given() {
    let stack = Stack::new();
    let owner = new_user(&stack, &[]);
    let urls = [
        ("https://cdn.example.com/p/photo.jpg", "image"),
        ("https://cdn.example.com/p/anim.GIF?size=large", "gif"),
        ("https://cdn.example.com/p/clip.webm#t=3", "video"),
        ("https://cdn.example.com/p/movie.mov", "video"),
        ("https://cdn.example.com/gallery/page", "image"),
    ];
    let mut args = vec!["--owner", owner.as_str(), "--title", "Links"];
    for (url, _) in &urls {
        args.extend(["--media-url", url]);
    }
    let id = new_session(&stack, &args);
    let s = ok(&stack, &["session", "show", &id]);
    let media = s["media"].as_array().expect("media is an array");
    assert_eq!(media.len(), urls.len());
    for (order, (m, (url, kind))) in media.iter().zip(urls).enumerate() {
        assert_eq!(
            *m,
            json!({
                "order": order,
                "type": kind,
                "caption": null,
                "bucket": null,
                "key": null,
                "url": url,
            })
        );
    }
}

#[test]
fn session_create_rejects_a_bad_owner_or_media() {
    let stack = Stack::new();
    let owner = new_user(&stack, &[]);
    fails(
        &stack,
        &["session", "create", "--owner", "a#b", "--title", "T"],
    );
    fails(
        &stack,
        &[
            "session",
            "create",
            "--owner",
            &owner,
            "--title",
            "T",
            "--media",
            "/nonexistent/joip-cli-test.jpg",
        ],
    );
    // A file that is not an image, GIF or video.
    fails(
        &stack,
        &[
            "session", "create", "--owner", &owner, "--title", "T", "--media", NOT_MEDIA,
        ],
    );
}

#[test]
fn session_show_unknown_or_malformed_id_fails() {
    let stack = Stack::new();
    fails(&stack, &["session", "show", "999999"]);
    fails(&stack, &["session", "show", "abc"]);
    fails(&stack, &["session", "show", "0"]);
    fails(&stack, &["session", "show", "--", "-1"]);
}

// ---- media ----

#[test]
fn media_delete_removes_the_record_and_the_original() {
    let stack = Stack::new();
    let owner = new_user(&stack, &[]);
    let up = ok(
        &stack,
        &["media", "upload", "--owner", &owner, "--file", UPLOAD],
    );
    let id = up["mediaId"].as_u64().expect("mediaId").to_string();
    let path = str_of(&up, "filePath").to_string();
    assert_eq!(
        ok(&stack, &["media", "delete", &id]),
        json!({ "mediaId": id.parse::<u64>().unwrap(), "deleted": true, "communityMediaId": null })
    );
    assert!(fails(&stack, &["media", "show", &id]).contains("no media"));
    assert!(fails(&stack, &["media", "delete", &id]).contains("no media"));
    let gone = std::panic::catch_unwind(|| stack.object(&stack.user_media_bucket, &path));
    assert!(gone.is_err(), "the original object is deleted");
    assert!(fails(&stack, &["media", "delete", "0"]).contains("media id"));
}

#[test]
fn media_upload_records_the_file_under_the_owner() {
    let stack = Stack::new();
    let owner = new_user(&stack, &[]);
    let up = ok(
        &stack,
        &["media", "upload", "--owner", &owner, "--file", UPLOAD],
    );
    assert_eq!(keys_of(&up), ["filePath", "mediaId"], "{up}");
    let path = str_of(&up, "filePath");
    assert!(path.starts_with(&format!("users/{owner}/")), "{up}");
    let id = up["mediaId"].as_u64().expect("mediaId is a number");
    assert!(id > 0);

    assert_eq!(
        ok(&stack, &["media", "show", &id.to_string()]),
        json!({
            "mediaId": id,
            "ownerId": owner,
            "filePath": path,
            "source": "upload",
            "mimeType": "image/png",
            "isShared": false,
            "shareToCommunity": false,
            "shareCode": null,
            "communityMediaId": null,
        })
    );
    // The object is in the user-media bucket at filePath.
    assert_eq!(stack.object(&stack.user_media_bucket, path), read(UPLOAD));
}

#[test]
fn media_upload_takes_source_and_content_type() {
    let stack = Stack::new();
    let owner = new_user(&stack, &[]);
    for source in ["upload", "smart-caption", "babecock", "hypnococks"] {
        let up = ok(
            &stack,
            &[
                "media", "upload", "--owner", &owner, "--file", PHOTO, "--source", source,
            ],
        );
        let shown = ok(&stack, &["media", "show", &up["mediaId"].to_string()]);
        assert_eq!(shown["source"], source, "{shown}");
        assert_eq!(shown["mimeType"], "image/jpeg", "{shown}");
    }
    let up = ok(
        &stack,
        &[
            "media",
            "upload",
            "--owner",
            &owner,
            "--file",
            UPLOAD,
            "--content-type",
            "image/webp",
        ],
    );
    let shown = ok(&stack, &["media", "show", &up["mediaId"].to_string()]);
    assert_eq!(shown["mimeType"], "image/webp", "{shown}");
    assert_eq!(shown["source"], "upload", "{shown}");
}

#[test]
fn media_upload_ids_are_distinct() {
    let stack = Stack::new();
    let owner = new_user(&stack, &[]);
    let a = ok(
        &stack,
        &["media", "upload", "--owner", &owner, "--file", UPLOAD],
    );
    let b = ok(
        &stack,
        &["media", "upload", "--owner", &owner, "--file", UPLOAD],
    );
    assert_ne!(a["mediaId"], b["mediaId"]);
    assert_ne!(a["filePath"], b["filePath"]);
}

#[test]
fn media_upload_rejects_a_bad_source() {
    let stack = Stack::new();
    let owner = new_user(&stack, &[]);
    let stderr = fails(
        &stack,
        &[
            "media", "upload", "--owner", &owner, "--file", UPLOAD, "--source", "camera",
        ],
    );
    assert!(stderr.contains("camera"), "{stderr}");
}

#[test]
fn media_upload_of_a_missing_file_fails() {
    let stack = Stack::new();
    let owner = new_user(&stack, &[]);
    fails(
        &stack,
        &[
            "media",
            "upload",
            "--owner",
            &owner,
            "--file",
            "/nonexistent/joip-cli-test.png",
        ],
    );
}

#[test]
fn media_upload_rejects_an_invalid_owner() {
    let stack = Stack::new();
    fails(
        &stack,
        &["media", "upload", "--owner", "a#b", "--file", UPLOAD],
    );
}

#[test]
fn media_show_unknown_or_malformed_id_fails() {
    let stack = Stack::new();
    fails(&stack, &["media", "show", "999999"]);
    fails(&stack, &["media", "show", "abc"]);
}

// ---- usage ----

#[test]
fn usage_errors_print_nothing_on_stdout() {
    let stack = Stack::new();
    for args in [
        &["user", "create", "--credits", "-5"][..],
        &["user", "create", "--credits", "lots"],
        &["pricing", "set", "session_create"],
        &["session", "create", "--title", "no owner"],
        &["session", "show", "-1"],
        &["no-such-command"],
    ] {
        let (code, json, stderr) = admin(&stack, args);
        assert_ne!(code, 0, "{args:?}");
        assert!(json.is_null(), "{args:?} printed {json}");
        assert!(!stderr.trim().is_empty(), "{args:?}: no message");
    }
}

// ---- community, activity ----

#[test]
fn community_show_unknown_id_fails_with_a_message() {
    let stack = Stack::new();
    let stderr = fails(&stack, &["community", "show", "999999"]);
    assert!(stderr.contains("999999"), "{stderr}");
    fails(&stack, &["community", "show", "abc"]);
}

#[test]
fn activity_list_is_empty_for_a_new_user() {
    let stack = Stack::new();
    let user = new_user(&stack, &[]);
    assert_eq!(ok(&stack, &["activity", "list", &user]), json!([]));
}

#[test]
fn activity_list_rejects_an_invalid_user_id() {
    let stack = Stack::new();
    fails(&stack, &["activity", "list", "a#b"]);
}

// ---- local poll ----

/// The local stand-in for Lambda's SQS event source, against the watermark function served by
/// the test stack's `cargo lambda watch`: a message the function can never process comes back
/// after every visibility timeout and, after the queue's maxReceiveCount (5), sits in the
/// dead-letter queue; the good message of the same batch is delivered once and deleted.
#[test]
fn a_poison_message_reaches_the_dead_letter_queue() {
    let api = std::env::var("JOIP_E2E_URL").expect(
        "JOIP_E2E_URL is not set: run the tests with tools/test.sh, which serves the functions",
    );
    let stack = Stack::new();
    let (queue, dlq) = stack.queue_urls();
    // Wiring the bucket to the queue sent S3's test event; it is delivered like any other.
    let already = stack.peek(&queue).len() as u64;
    stack.send(&queue, "this is not an S3 event");
    // The good message: a notification as S3 sends it (the sample in events/, for an object
    // already gone).
    let sample: Value = serde_json::from_str(include_str!(
        "../../events/watermark/sqs-s3-object-created.json"
    ))
    .unwrap();
    let mut notification: Value =
        serde_json::from_str(sample["Records"][0]["body"].as_str().unwrap()).unwrap();
    notification["Records"][0]["s3"]["object"]["key"] = json!("staging/aa/bb/999-gone.jpg");
    stack.send(&queue, &notification.to_string());
    let (mut delivered, mut failed) = (0, 0);
    for _ in 0..20 {
        let out = ok(
            &stack,
            &[
                "local",
                "poll",
                "--once",
                "--api",
                &api,
                "--visibility-timeout",
                "1",
            ],
        );
        delivered += out["delivered"].as_u64().unwrap();
        failed += out["failed"].as_u64().unwrap();
        let dead = stack.peek(&dlq);
        if !dead.is_empty() {
            assert_eq!(dead, vec!["this is not an S3 event".to_string()]);
            assert_eq!(
                delivered,
                already + 1,
                "the good message (and S3's test event), once"
            );
            assert_eq!(failed, 5, "the poison message, maxReceiveCount times");
            assert!(stack.peek(&queue).is_empty(), "nothing left in the queue");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    panic!("the poison message never reached the DLQ: delivered {delivered}, failed {failed}");
}

// ---- moderation ----

impl Stack {
    /// The App the functions would build for this stack (to share and publish in-process, as the
    /// API and the watermark function would).
    fn app(&self, sdk: &aws_config::SdkConfig) -> joip::App {
        let mut config = joip::Config::local_from_env().expect("local config");
        config.table = self.table.clone();
        config.general_bucket = self.general_bucket.clone();
        config.user_media_bucket = self.user_media_bucket.clone();
        config.public_base_url = format!("{}/{}", self.endpoint, self.general_bucket);
        config.cdn_distribution_id = None;
        config.endpoint_url = Some(self.endpoint.clone());
        joip::App::new(config, sdk)
    }
}

#[test]
fn reports_restore_takedown_and_the_blocklist_answer_as_documented() {
    let stack = Stack::new();
    assert!(ok(&stack, &["tag", "create", "solo", "--name", "Solo"]).is_object());
    let owner = new_user(&stack, &[]);
    let up = ok(
        &stack,
        &["media", "upload", "--owner", &owner, "--file", LOOP],
    );
    let media = up["mediaId"].as_u64().expect("mediaId");
    let reporters: Vec<String> = (0..3).map(|_| new_user(&stack, &[])).collect();
    // Shared, published and reported three times, in-process as the API and publisher do it.
    let cid = stack.block_on(|sdk| {
        let (stack, owner, reporters) = (&stack, owner.clone(), reporters.clone());
        async move {
            let app = stack.app(&sdk);
            let owner = joip::domain::UserId::parse(&owner).unwrap();
            let request: joip::service::share::ShareRequest =
                serde_json::from_value(json!({ "tags": ["solo"] })).unwrap();
            let shared = joip::service::share::share_media(
                &app,
                &owner,
                joip::domain::MediaId(media),
                &request,
            )
            .await
            .expect("share");
            let (cid, _) = shared.community.expect("a community copy");
            let record = app.store.community_media(cid).await.unwrap().unwrap();
            let staged = record.staging_key.expect("staged");
            joip::service::publish::process_staged(&app, &staged)
                .await
                .expect("published");
            let spam: joip::service::moderation::ReportRequest =
                serde_json::from_value(json!({ "reason": "spam" })).unwrap();
            for r in &reporters {
                let r = joip::domain::UserId::parse(r).unwrap();
                joip::service::moderation::report(&app, &r, cid, &spam)
                    .await
                    .expect("report");
            }
            cid
        }
    });
    let id = cid.to_string();
    assert_eq!(ok(&stack, &["community", "show", &id])["status"], "hidden");
    let listed = ok(&stack, &["reports", "list"]);
    assert_eq!(keys_of(&listed), ["reports"], "{listed}");
    let report = &listed["reports"][0];
    assert_eq!(
        keys_of(report),
        sorted(&[
            "communityMediaId",
            "status",
            "reporters",
            "reasons",
            "firstReportedAt",
            "lastReportedAt"
        ]),
        "{report}"
    );
    assert_eq!(report["communityMediaId"], cid);
    assert_eq!(report["status"], "hidden");
    assert_eq!(report["reporters"], 3);
    assert_eq!(report["reasons"], json!({ "spam": 3 }));
    assert_eq!(
        ok(&stack, &["reports", "list", "--status", "hidden"])["reports"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        ok(&stack, &["reports", "list", "--status", "visible"]),
        json!({ "reports": [] })
    );
    assert!(fails(&stack, &["reports", "list", "--status", "gone"]).contains("--status"));

    assert_eq!(
        ok(
            &stack,
            &["community", "restore", &id, "--reason", "reviewed"]
        ),
        json!({ "communityMediaId": cid, "status": "ready" })
    );
    assert_eq!(ok(&stack, &["community", "show", &id])["status"], "ready");
    assert_eq!(ok(&stack, &["reports", "list"]), json!({ "reports": [] }));
    assert!(fails(&stack, &["community", "restore", &id]).contains("not hidden"));

    assert_eq!(
        ok(
            &stack,
            &["community", "takedown", &id, "--reason", "confirmed"]
        ),
        json!({ "communityMediaId": cid, "status": "removed" })
    );
    let shown = ok(&stack, &["community", "show", &id]);
    assert_eq!(shown["status"], "removed");
    let hash = str_of(&shown, "contentHash").to_string();
    let blocked = ok(&stack, &["blocklist", "list"]);
    assert_eq!(blocked["blocklist"][0]["hash"], hash.as_str(), "{blocked}");
    assert_eq!(blocked["blocklist"][0]["communityMediaId"], cid);
    assert_eq!(blocked["blocklist"][0]["reason"], "confirmed");

    let added = ok(
        &stack,
        &[
            "blocklist",
            "add",
            "--file",
            PHOTO,
            "--reason",
            "from elsewhere",
        ],
    );
    assert_eq!(keys_of(&added), ["added", "hash"], "{added}");
    assert_eq!(added["added"], true);
    assert!(str_of(&added, "hash").starts_with("pdq:"), "{added}");
    let video = ok(&stack, &["blocklist", "add", "--file", CLIP]);
    assert!(str_of(&video, "hash").starts_with("sha256:"), "{video}");
    assert_eq!(
        ok(&stack, &["blocklist", "list"])["blocklist"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(fails(&stack, &["blocklist", "add", "--file", "/nonexistent"]).contains("reading"));
}
