//! IAM on template.yaml: each function's policy allows every S3, DynamoDB and CloudFront call its
//! code makes, and grants no such action its code never needs.
//!
//! The emulator enforces no IAM, so this test is the only thing between a missing grant and a
//! function that fails on AWS (or, worse, half-works: S3 answers a missing key with 403
//! AccessDenied instead of 404 NoSuchKey when the caller may not list the bucket, so the code
//! cannot tell a source that is gone from one it may not read).
//!
//! How: every function in [`FUNCTIONS`] runs its real scenarios, through its real handler, on an
//! [`App`] whose DynamoDB, S3 and CloudFront clients carry a [`Recorder`] interceptor. The recorder turns each
//! SDK call into the IAM requests AWS authorizes for it ([`required`], from AWS's "Actions,
//! resources, and condition keys" pages and each operation's "Permissions" section). The
//! function's `Policies:` in template.yaml are parsed (short-form `!Sub`/`!GetAtt`/`!Ref`, SAM
//! policy templates) and resolved against the names the code was given, then evaluated like IAM
//! does (Allow/Deny, Action/NotAction, Resource/NotResource with `*`/`?`, string conditions).
//!
//! Rules enforced on top of the per-call mapping:
//! - **A read must be able to tell "missing" from "denied".** Every object a function reads
//!   (GetObject, HeadObject, the source of CopyObject/UploadPartCopy) needs `s3:ListBucket` on its
//!   bucket, or S3 answers a missing key with 403 instead of 404. AWS does not document which
//!   `s3:prefix` (if any) that implicit check carries, so the grant must hold both with no
//!   `s3:prefix` in the request and with `s3:prefix` = the key: an unconditional grant, or one
//!   conditioned with `StringLikeIfExists` on a pattern that matches the key. A plain
//!   `StringLike: s3:prefix` grant is not enough (a missing condition key fails `StringLike`).
//! - **Least privilege.** Every (action, resource) an Allow statement names for S3, DynamoDB or
//!   CloudFront must be needed by some recorded call; wildcard actions and NotAction/NotResource
//!   grants are reported as such.
//! - **The CDN is named where it is used.** A function whose scenarios invalidate must be given
//!   `JOIP_CDN_DISTRIBUTION_ID` (without it the code skips every invalidation, silently, and the
//!   edge keeps serving what was removed); a function that never invalidates is not given it.
//!
//! Adding a function: add a row to [`FUNCTIONS`] (its binary name, as in
//! `Metadata.BuildProperties.Binary`) and an async scenario function that drives its real
//! handler (or entry point) with `run.app` through every path that calls AWS: success, retries,
//! rollbacks, refusals. The test fails while template.yaml has a function with no row.

use crate::support;

use joip::domain::{MediaSource, SessionId, UserId};
use joip::service::sessions::{MediaInput, NewMedia};
use joip::App;
use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use support::{read, Event, TestEnv};

// ---------------------------------------------------------------------------------------------
// The functions and their scenarios
// ---------------------------------------------------------------------------------------------

/// A deployed function: its binary (`Metadata.BuildProperties.Binary` in template.yaml) and the
/// scenarios that make every AWS call its code can make.
struct Function {
    binary: &'static str,
    scenarios: Scenarios,
}

type Scenarios = for<'a> fn(&'a Run) -> Pin<Box<dyn Future<Output = ()> + 'a>>;

/// Every function in template.yaml. One row per function.
const FUNCTIONS: &[Function] = &[
    Function {
        binary: "list-user-media",
        scenarios: |run| Box::pin(list_user_media(run)),
    },
    Function {
        binary: "save-community-session",
        scenarios: |run| Box::pin(save_community_session(run)),
    },
    Function {
        binary: "save-reaper",
        scenarios: |run| Box::pin(save_reaper(run)),
    },
    Function {
        binary: "share-media",
        scenarios: |run| Box::pin(share_media(run)),
    },
    Function {
        binary: "unshare-media",
        scenarios: |run| Box::pin(unshare_media(run)),
    },
    Function {
        binary: "share-media-by-path",
        scenarios: |run| Box::pin(share_media_by_path(run)),
    },
    Function {
        binary: "resolve-shared-media",
        scenarios: |run| Box::pin(resolve_shared_media(run)),
    },
    Function {
        binary: "report-community-media",
        scenarios: |run| Box::pin(report_community_media(run)),
    },
    Function {
        binary: "get-media-share",
        scenarios: |run| Box::pin(get_media_share(run)),
    },
    Function {
        binary: "community-feed",
        scenarios: |run| Box::pin(community_feed(run)),
    },
    Function {
        binary: "watermark",
        scenarios: |run| Box::pin(watermark(run)),
    },
];

/// Makes every TransactWriteItems of the client it is on take 1.5 s longer (the emulator holds
/// it), so another request can change the record meanwhile.
#[derive(Debug, Clone)]
struct SlowTransactions;

impl aws_sdk_dynamodb::config::Intercept for SlowTransactions {
    fn name(&self) -> &'static str {
        "SlowTransactions"
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut<
            '_,
        >,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let request = context.request_mut();
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        if target.ends_with("TransactWriteItems") {
            request.headers_mut().insert("x-joip-latency-ms", "1500");
        }
        Ok(())
    }
}

/// The SQS event Lambda would deliver for a new staging object.
fn staged_event(key: &str) -> Value {
    let body = crate::support::s3_notification(key);
    json!({ "Records": [{ "messageId": uuid::Uuid::new_v4().to_string(), "body": body.to_string() }] })
}

/// `watermark`: a staged JPEG published (record and tags into the feed, staging removed), a
/// duplicate event, a staged file that is no image (record failed), an upload unshared while it
/// was being published (the public object withdrawn: removal owed, deleted, invalidated), and a
/// redelivery that finds a public object whose record is gone (withdrawn the same way).
async fn watermark(run: &Run) {
    use crate::support::handle_batch;
    let env = &run.env;
    for slug in ["solo", "artistic"] {
        env.app.store.put_tag(slug, slug).await.expect("tag");
    }
    let user = env.user(0, false).await;
    // `stage_max_bytes` 0: every GIF is handed over (the original, not a copy, is published).
    let staged_with = |name: &'static str, bytes: &'static [u8], stage_max_bytes: u64| {
        let (env, user) = (&run.env, user.clone());
        let mut app = env.app.clone();
        app.config.stage_max_bytes = stage_max_bytes;
        async move {
            let media = joip::service::media::upload_media(
                &env.app,
                &user,
                name,
                bytes.to_vec(),
                MediaSource::Upload,
                None,
            )
            .await
            .expect("upload");
            let body = json!({ "tags": ["solo"], "policyAgreed": true });
            let (status, shared) = post_share(run, &app, &user, media.media_id, body).await;
            assert_eq!(status, 200, "{shared}");
            let id = shared["communityMediaId"].as_u64().expect("community id");
            let record = env.app.store.community_media(id).await.unwrap().unwrap();
            (media.media_id, record.staging_key.expect("staged"))
        }
    };
    let staged = |name, bytes| staged_with(name, bytes, joip::config::DEFAULT_STAGE_MAX_BYTES);
    let handed_over = |name, bytes| staged_with(name, bytes, 0);
    let (_, photo) = staged("photo.jpg", PHOTO).await;
    for _ in 0..2 {
        assert!(handle_batch(&run.app, &staged_event(&photo))
            .await
            .is_empty());
    }
    // A GIF staged whole by the share, then its original deleted: published from the copy.
    let (kept, copied) = staged("loop.gif", GIF).await;
    let kept = env.app.store.media(kept).await.unwrap().unwrap();
    (env.app.blob)
        .delete(&env.app.config.user_media_bucket, &kept.file_path)
        .await
        .expect("delete the original");
    assert!(handle_batch(&run.app, &staged_event(&copied))
        .await
        .is_empty());
    // Handed over: the original sniffed again and copied to its public key, whole, then in parts
    // with a part failing (aborted; the redelivery finishes it); an original deleted before it
    // was published (failed, its marker removed).
    let (_, whole) = handed_over("loop.gif", GIF).await;
    assert!(handle_batch(&run.app, &staged_event(&whole))
        .await
        .is_empty());
    let mut multipart = run.app.clone();
    multipart.blob = multipart.blob.clone().with_copy_limits(1, 5 * MIB);
    let (_, parts) = handed_over("loop.gif", GIF).await;
    run.recorder.fail_nth("UploadPartCopy", 1);
    assert_eq!(
        handle_batch(&multipart, &staged_event(&parts)).await.len(),
        1,
        "retried"
    );
    assert!(handle_batch(&multipart, &staged_event(&parts))
        .await
        .is_empty());
    let (gone, deleted) = handed_over("loop.gif", GIF).await;
    let gone = env.app.store.media(gone).await.unwrap().unwrap();
    (env.app.blob)
        .delete(&env.app.config.user_media_bucket, &gone.file_path)
        .await
        .expect("delete the original");
    assert!(handle_batch(&run.app, &staged_event(&deleted))
        .await
        .is_empty());
    let (_, broken) = staged("broken.jpg", PHOTO).await;
    env.app
        .blob
        .put(
            &env.app.config.general_bucket,
            &broken,
            b"not an image".to_vec(),
            "image/jpeg",
        )
        .await
        .expect("overwrite");
    assert!(handle_batch(&run.app, &staged_event(&broken))
        .await
        .is_empty());

    let (media, racing) = staged("racing.jpg", PHOTO).await;
    let db = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&env.sdk)
            .interceptor(run.recorder.clone())
            .interceptor(SlowTransactions)
            .build(),
    );
    let mut slow = App::from_clients(
        env.app.config.clone(),
        &env.sdk,
        db,
        run.app.blob.client().clone(),
    );
    slow.cdn = run.app.cdn.clone();
    let publish = tokio::spawn(async move { handle_batch(&slow, &staged_event(&racing)).await });
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let unshare = json!({ "shareToCommunity": false });
    assert_eq!(
        post_share(run, &env.app, &user, media, unshare).await.0,
        200
    );
    assert!(publish.await.expect("publish").is_empty());

    // A publisher put the public object after the unshare and died; the message comes again.
    let (media, outlived) = staged("outlived.jpg", PHOTO).await;
    let id = joip::blob::keys::staging_record_id(&outlived).expect("a staging key");
    let record = env.app.store.community_media(id).await.unwrap().unwrap();
    let unshare = json!({ "shareToCommunity": false });
    assert_eq!(
        post_share(run, &env.app, &user, media, unshare).await.0,
        200
    );
    env.app
        .blob
        .put_public(
            &env.app.config.general_bucket,
            &record.key,
            PHOTO.to_vec(),
            "image/jpeg",
        )
        .await
        .expect("put the public object");
    assert!(handle_batch(&run.app, &staged_event(&outlived))
        .await
        .is_empty());
    let public = env
        .app
        .blob
        .head(&env.app.config.general_bucket, &record.key)
        .await
        .expect("head");
    assert!(public.is_none(), "withdrawn");

    // Content on the blocklist (last: it blocks these bytes for every later share): an image
    // (its perceptual hash, looked up in the index buckets) and a handed-over GIF, both `blocked`.
    for (name, bytes) in [("blocked.jpg", PHOTO), ("blocked.gif", GIF)] {
        joip::service::moderation::block_file(&env.app, bytes.to_vec(), Some("test"))
            .await
            .expect("block");
        let (_, key) = handed_over(name, bytes).await;
        assert!(handle_batch(&run.app, &staged_event(&key)).await.is_empty());
    }
}

/// `POST /api/community/media/{id}/report`: reports counted (a repeat once), the third hiding
/// the copy (held privately, unpublished, invalidated), then a report of a hidden copy.
async fn report_community_media(run: &Run) {
    let (owner, gif, _) = sharer(run).await;
    let env = &run.env;
    let body = json!({ "tags": ["solo"] });
    let (status, shared) = post_share(run, &env.app, &owner, gif, body).await;
    assert_eq!(status, 200, "{shared}");
    let cid = shared["communityMediaId"].as_u64().expect("id");
    assert_eq!(env.publish_staged().await, 1);
    let report = |user: UserId, reason: &'static str| async move {
        let path = format!("/api/community/media/{cid}/report");
        let request = Event::new(
            "POST",
            "/api/community/media/{communityMediaId}/report",
            &path,
        )
        .path_params(json!({ "communityMediaId": cid.to_string() }))
        .caller(user.as_str())
        .body(&json!({ "reason": reason }).to_string())
        .request();
        read(
            Box::pin(joip::routes::report_community_media::handle(
                &run.app, request,
            ))
            .await,
        )
        .0
    };
    let first = env.user(0, false).await;
    assert_eq!(report(first.clone(), "spam").await, 200);
    assert_eq!(report(first, "spam").await, 200);
    for _ in 0..2 {
        assert_eq!(report(env.user(0, false).await, "spam").await, 200);
    }
    assert_eq!(report(env.user(0, false).await, "spam").await, 404);
}

const GIF: &[u8] = include_bytes!("../../../tools/demo/demo-loop.gif");

/// Canonical tags and a user with a GIF (copied as is) and a PNG upload (watermarked).
async fn sharer(run: &Run) -> (UserId, joip::domain::MediaId, joip::domain::MediaId) {
    let env = &run.env;
    for slug in ["solo", "artistic"] {
        env.app.store.put_tag(slug, slug).await.expect("tag");
    }
    let user = env.user(0, false).await;
    let upload = |name: &'static str, bytes: &'static [u8]| {
        joip::service::media::upload_media(
            &env.app,
            &user,
            name,
            bytes.to_vec(),
            MediaSource::Upload,
            None,
        )
    };
    let gif = upload("loop.gif", GIF).await.expect("gif");
    let png = upload("p.png", PNG).await.expect("png");
    (user.clone(), gif.media_id, png.media_id)
}

/// Shares media `id` through `POST /api/media/{id}/share`, or by its path through
/// `POST /api/user/media/share` when `by_path`.
async fn post_share(
    run: &Run,
    app: &App,
    user: &UserId,
    id: joip::domain::MediaId,
    body: Value,
) -> (u16, Value) {
    send_share(run, app, user, id, body, false).await
}

async fn send_share(
    run: &Run,
    app: &App,
    user: &UserId,
    id: joip::domain::MediaId,
    mut body: Value,
    by_path: bool,
) -> (u16, Value) {
    if by_path {
        let media = run
            .env
            .app
            .store
            .media(id)
            .await
            .expect("read")
            .expect("media");
        body["filePath"] = json!(media.file_path);
        let request = Event::new("POST", "/api/user/media/share", "/api/user/media/share")
            .caller(user.as_str())
            .body(&body.to_string())
            .request();
        return read(Box::pin(joip::routes::share_media_by_path::handle(app, request)).await);
    }
    let path = format!("/api/media/{id}/share");
    let request = Event::new("POST", "/api/media/{id}/share", &path)
        .path_params(json!({ "id": id.to_string() }))
        .caller(user.as_str())
        .body(&body.to_string())
        .request();
    read(Box::pin(joip::routes::share_media::handle(app, request)).await)
}

/// Both share routes: a GIF to the community (handed over: a marker at its staging key),
/// retagged, taken out of it, then staged whole and taken out; an upload image (copied to the staging prefix) and taken out; a
/// large copy of the image in parts failing once (aborted); a missing original.
async fn share_sequence(run: &Run, by_path: bool) {
    let (user, gif, png) = sharer(run).await;
    let tags = |t: &[&str]| json!({ "shareToCommunity": true, "tags": t, "policyAgreed": true });
    // The GIF handed over (a marker), then staged whole (copied to the staging prefix).
    let mut handover = run.app.clone();
    handover.config.stage_max_bytes = 0;
    let out = || json!({ "shareToCommunity": false });
    for (app, id, body) in [
        (&handover, gif, tags(&["solo"])),
        (&handover, gif, tags(&["artistic"])),
        (&handover, gif, out()),
        (&run.app, gif, tags(&["solo"])),
        (&run.app, gif, out()),
        (&run.app, png, tags(&["solo"])),
        (&run.app, png, out()),
        // Link limits set on the existing code, then cleared.
        (
            &run.app,
            png,
            json!({ "shareToCommunity": false, "expiresIn": 60, "maxViews": 3 }),
        ),
        (
            &run.app,
            png,
            json!({ "shareToCommunity": false, "expiresIn": null, "maxViews": null }),
        ),
    ] {
        let (status, answer) = send_share(run, app, &user, id, body, by_path).await;
        assert_eq!(status, 200, "{answer}");
    }
    let mut multipart = run.app.clone();
    multipart.blob = multipart.blob.clone().with_copy_limits(1, 5 * MIB);
    run.recorder.fail_nth("UploadPartCopy", 1);
    let (status, _) = send_share(run, &multipart, &user, png, tags(&["solo"]), by_path).await;
    assert_eq!(status, 500);
    let env = &run.env;
    let gone = env
        .app
        .store
        .media(gif)
        .await
        .expect("read")
        .expect("media");
    env.app
        .blob
        .delete(&env.app.config.user_media_bucket, &gone.file_path)
        .await
        .expect("delete");
    let (status, _) = send_share(run, &run.app, &user, gif, tags(&["solo"]), by_path).await;
    assert_eq!(status, if by_path { 404 } else { 500 });
}

async fn share_media(run: &Run) {
    share_sequence(run, false).await;
}

/// `DELETE /api/media/{id}/share`: of a shared GIF (its public copy: record, tags and code
/// removed with the removal owed, the object deleted, its path invalidated, the owed item
/// deleted) and of a shared upload image (its staging object too), each again (idempotent).
async fn unshare_media(run: &Run) {
    let (user, gif, png) = sharer(run).await;
    for id in [gif, png] {
        let body = json!({ "tags": ["solo"], "policyAgreed": true });
        assert_eq!(post_share(run, &run.env.app, &user, id, body).await.0, 200);
        for _ in 0..2 {
            let path = format!("/api/media/{id}/share");
            let request = Event::new("DELETE", "/api/media/{id}/share", &path)
                .path_params(json!({ "id": id.to_string() }))
                .caller(user.as_str())
                .request();
            let (status, body) =
                read(Box::pin(joip::routes::unshare_media::handle(&run.app, request)).await);
            assert_eq!(status, 200, "{body}");
        }
    }
}

/// `POST /api/user/media/share`: an object uploaded straight to S3 (record created from HEAD and
/// its first bytes), a path with no object, then everything the share route does, by path.
async fn share_media_by_path(run: &Run) {
    let (user, _, _) = sharer(run).await;
    let env = &run.env;
    let path = format!("users/{user}/direct/loop.gif");
    env.app
        .blob
        .put(
            &env.app.config.user_media_bucket,
            &path,
            GIF.to_vec(),
            "image/gif",
        )
        .await
        .expect("put");
    let share = |file_path: String| {
        let request = Event::new("POST", "/api/user/media/share", "/api/user/media/share")
            .caller(user.as_str())
            .body(&json!({ "filePath": file_path, "tags": ["solo"] }).to_string())
            .request();
        async move { read(Box::pin(joip::routes::share_media_by_path::handle(&run.app, request)).await) }
    };
    assert_eq!(share(path).await.0, 200);
    assert_eq!(share(format!("users/{user}/direct/none.gif")).await.0, 404);
    share_sequence(run, true).await;
}

/// `GET /api/shared/media/{code}`: a live code (presigned GET, a view counted in a shard), a
/// preview agent, a limited code (a view spent, then used up: 410), an unknown one.
async fn resolve_shared_media(run: &Run) {
    let (user, gif, _) = sharer(run).await;
    let body = json!({ "shareToCommunity": false });
    let (_, shared) = post_share(run, &run.env.app, &user, gif, body).await;
    let code = shared["shareCode"].as_str().expect("code").to_string();
    let resolve = |code: String, agent: &'static str| async move {
        let path = format!("/api/shared/media/{code}");
        let request = Event::new("GET", "/api/shared/media/{code}", &path)
            .path_params(json!({ "code": code }))
            .header("user-agent", agent)
            .request();
        read(
            Box::pin(joip::routes::resolve_shared_media::handle(
                &run.app, request,
            ))
            .await,
        )
    };
    let browser = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0";
    let limited = json!({ "shareToCommunity": false, "maxViews": 1 });
    for (step, (code, agent, want)) in [
        (code.clone(), browser, 200),
        (code.clone(), "Slackbot-LinkExpanding 1.0", 200),
        (code.clone(), browser, 200), // after maxViews: 1
        (code, browser, 410),
        (uuid::Uuid::new_v4().to_string(), browser, 404),
    ]
    .into_iter()
    .enumerate()
    {
        if step == 2 {
            let (status, _) = post_share(run, &run.env.app, &user, gif, limited.clone()).await;
            assert_eq!(status, 200);
        }
        let (status, body) = resolve(code, agent).await;
        assert_eq!(status, want, "{body}");
        if let Some(url) = body["url"].as_str() {
            run.recorder.presigned_get(url);
        }
    }
}

/// `GET /api/media/{id}/share`: media never shared, then shared with limits and views.
async fn get_media_share(run: &Run) {
    let (user, gif, _) = sharer(run).await;
    let state = |user: &UserId| {
        let path = format!("/api/media/{gif}/share");
        let request = Event::new("GET", "/api/media/{id}/share", &path)
            .path_params(json!({ "id": gif.to_string() }))
            .caller(user.as_str())
            .request();
        async move { read(Box::pin(joip::routes::get_media_share::handle(&run.app, request)).await) }
    };
    assert_eq!(state(&user).await.0, 200);
    let body = json!({ "tags": ["solo"], "expiresIn": 3600, "maxViews": 5 });
    assert_eq!(post_share(run, &run.env.app, &user, gif, body).await.0, 200);
    let (status, body) = state(&user).await;
    assert_eq!(status, 200, "{body}");
    let stranger = run.env.user(0, false).await;
    assert_eq!(state(&stranger).await.0, 404);
}

/// `GET /api/community/media`: the whole feed, one tag's, and the next page.
async fn community_feed(run: &Run) {
    let (user, gif, _) = sharer(run).await;
    let body = json!({ "tags": ["solo"] });
    assert_eq!(post_share(run, &run.env.app, &user, gif, body).await.0, 200);
    for query in [vec![], vec![("tag", "solo")], vec![("limit", "1")]] {
        let request = Event::new("GET", "/api/community/media", "/api/community/media")
            .query(&query)
            .request();
        let (status, body) =
            read(Box::pin(joip::routes::community_feed::handle(&run.app, request)).await);
        assert_eq!(status, 200, "{body}");
    }
}

const PHOTO: &[u8] = include_bytes!("../../../tools/demo/demo-photo.jpg");
const PNG: &[u8] = include_bytes!("../../../tools/demo/demo-upload.png");
const MIB: u64 = 1024 * 1024;

/// `GET /api/user/media`: an empty list, then pages followed by cursor to the end.
async fn list_user_media(run: &Run) {
    use joip::routes::list_user_media::handle;
    const ROUTE: &str = "/api/user/media";
    let env = &run.env;
    let alice = env.user(0, false).await;
    let list = |query: &[(&str, &str)]| {
        Event::new("GET", ROUTE, ROUTE)
            .query(query)
            .caller(alice.as_str())
            .request()
    };

    let (status, body) = read(handle(&run.app, list(&[])).await);
    assert_eq!((status, &body["media"]), (200, &json!([])), "{body}");

    for i in 0..3 {
        joip::service::media::upload_media(
            &env.app,
            &alice,
            &format!("p{i}.png"),
            PNG.to_vec(),
            MediaSource::Upload,
            None,
        )
        .await
        .expect("upload");
    }
    let mut cursor: Option<String> = None;
    let mut seen = 0;
    loop {
        let mut query = vec![("limit", "2")];
        if let Some(c) = &cursor {
            query.push(("cursor", c));
        }
        let (status, body) = read(handle(&run.app, list(&query)).await);
        assert_eq!(status, 200, "{body}");
        seen += body["media"].as_array().map_or(0, Vec::len);
        match body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, 3);
}

/// `POST /api/community/sessions/{id}/save`: a fresh save (uploads and an external URL), the same
/// save reused, a refusal, a save whose source object is gone (rolled back), a copy failing
/// part-way then finished by the retry, and a multipart copy that fails (aborted) then succeeds.
async fn save_community_session(run: &Run) {
    let env = &run.env;
    env.app
        .store
        .put_pricing("session_create", 10, false)
        .await
        .expect("pricing");
    let user = env.user(1000, false).await;

    let mixed = run
        .community_session(vec![
            photo(0),
            NewMedia {
                input: MediaInput::External {
                    url: "https://cdn.example.com/x/remote.mp4".into(),
                },
                caption: None,
            },
            photo(1),
        ])
        .await;
    let (status, body) = run.save(&run.app, &user, mixed).await;
    assert_eq!((status, &body["reused"]), (200, &json!(false)), "{body}");
    let (status, body) = run.save(&run.app, &user, mixed).await;
    assert_eq!((status, &body["reused"]), (200, &json!(true)), "{body}");

    let poor = env.user(1, false).await;
    assert_eq!(run.save(&run.app, &poor, mixed).await.0, 402);

    // A source object deleted after sharing: the copy can never finish, so the save is rolled
    // back (refund, records removed, copies listed and deleted).
    let broken = run.community_session(vec![photo(0), photo(1)]).await;
    let general = &env.app.config.general_bucket;
    let keys = env.keys(general, &format!("sessions/{broken}/")).await;
    let gone = keys[1].split_whitespace().next().expect("a key");
    env.app.blob.delete(general, gone).await.expect("delete");
    let (status, body) = run.save(&run.app, &user, broken).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        env.app
            .store
            .save_record(&user, broken)
            .await
            .expect("read")
            .is_none(),
        "rolled back"
    );

    // The third copy fails: the save stays pending and the retry finishes it.
    let six = run
        .community_session((0..6).map(photo).collect::<Vec<_>>())
        .await;
    run.recorder.fail_nth("CopyObject", 3);
    assert_eq!(run.save(&run.app, &user, six).await.0, 500);
    let (status, body) = run.save(&run.app, &user, six).await;
    assert_eq!(status, 200, "{body}");

    // Past the single-copy limit the copy is multipart; a failed part aborts the upload, and the
    // retry copies it in parts.
    let mut multipart = run.app.clone();
    multipart.blob = multipart.blob.clone().with_copy_limits(5 * MIB, 5 * MIB);
    let mut big = PHOTO.to_vec();
    big.resize(12 * MIB as usize + 7, 0xAB);
    let large = run
        .community_session(vec![support::upload("big.jpg", big, None)])
        .await;
    run.recorder.fail_nth("UploadPartCopy", 1);
    assert_eq!(run.save(&multipart, &user, large).await.0, 500);
    let (status, body) = run.save(&multipart, &user, large).await;
    assert_eq!(status, 200, "{body}");
}

/// `save-reaper`: the sweep finishing the removals a remover owed and never did (objects deleted,
/// the public path invalidated, owed items deleted); one pass that finishes a save whose copier
/// gave up part-way (resume: lists the copies, checks sources, copies the rest, completes) and
/// rolls back one whose source object is gone (deletes copies, refunds, removes records and plan).
async fn save_reaper(run: &Run) {
    use joip::service::unpublish::{owed_by, sweep, Swept};
    let env = &run.env;
    // A shared upload image (public key and staging key) whose remover committed the removal,
    // then died before deleting or invalidating anything.
    let (owner, _, png) = sharer(run).await;
    let body = json!({ "tags": ["solo"], "policyAgreed": true });
    assert_eq!(post_share(run, &env.app, &owner, png, body).await.0, 200);
    let (media, marker) = env.app.store.media_and_marker(png).await.expect("read");
    let record = env
        .app
        .store
        .community_media(marker.expect("marker").community_media_id)
        .await
        .expect("read")
        .expect("record");
    let owed = owed_by(&record, env.app.clock.now_millis());
    env.app
        .store
        .remove_community(media.as_ref(), &record, &owed)
        .await
        .expect("remove");
    assert_eq!(
        sweep(&run.app, 0).await.expect("sweep"),
        Swept {
            unpublished: 2,
            left: 0
        }
    );
    save_reaper_passes(run).await;
}

/// The reaper's save passes (see [`save_reaper`]).
async fn save_reaper_passes(run: &Run) {
    use joip::service::save_session::{reap, Deadline, Reaped};
    let env = &run.env;
    env.app
        .store
        .put_pricing("session_create", 10, false)
        .await
        .expect("pricing");
    let user = env.user(1000, false).await;
    // Set up without recording: two saves stranded mid-copy, their leases released.
    let stranded = |nth| env.app_with_s3_interceptor(support::FailNthCopy::new(nth));
    let resumable = run
        .community_session((0..4).map(photo).collect::<Vec<_>>())
        .await;
    assert_eq!(run.save(&stranded(3), &user, resumable).await.0, 500);
    let doomed = run
        .community_session((0..3).map(photo).collect::<Vec<_>>())
        .await;
    assert_eq!(run.save(&stranded(2), &user, doomed).await.0, 500);
    let general = &env.app.config.general_bucket;
    let keys = env.keys(general, &format!("sessions/{doomed}/")).await;
    let gone = keys[2].split_whitespace().next().expect("a key");
    env.app.blob.delete(general, gone).await.expect("delete");

    // A large object: the reaper copies it in parts, and a failed part aborts the upload.
    let mut big = PHOTO.to_vec();
    big.resize(12 * MIB as usize + 7, 0xAB);
    let large = run
        .community_session(vec![support::upload("big.jpg", big, None)])
        .await;
    assert_eq!(run.save(&stranded(1), &user, large).await.0, 500);

    let mut multipart = run.app.clone();
    multipart.blob = multipart.blob.clone().with_copy_limits(5 * MIB, 5 * MIB);
    run.recorder.fail_nth("UploadPartCopy", 1);
    let pass = || async {
        reap(&multipart, Deadline::new(None, 60_000))
            .await
            .expect("reap")
    };
    let first = pass().await;
    assert_eq!(
        first,
        Reaped {
            finished: 1,
            rolled_back: 1,
            left: 1
        }
    );
    assert_eq!(
        pass().await,
        Reaped {
            finished: 1,
            ..Reaped::default()
        }
    );
}

fn photo(i: usize) -> NewMedia {
    let mut bytes = PHOTO.to_vec();
    bytes.extend_from_slice(format!("#{i}").as_bytes());
    support::upload(&format!("photo-{i}.jpg"), bytes, Some("caption"))
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn each_function_is_allowed_every_call_it_makes_and_nothing_more() {
    let template = Template::load();
    let mut missing = Vec::new();
    let mut unused = Vec::new();
    for function in FUNCTIONS {
        let logical = template.function(function.binary);
        let run = Run::new().await;
        (function.scenarios)(&run).await;
        let calls = run.recorder.calls();
        for call in &calls {
            if let Some(unknown) = &call.unknown {
                missing.push(format!(
                    "{logical}: the recorder does not know this call, so it cannot check it \
                     (add it to `required`): {unknown}"
                ));
            }
        }
        let needs = needs(&calls);
        assert!(
            !needs.is_empty(),
            "{logical}: its scenarios made no AWS call"
        );
        let invalidates = needs
            .iter()
            .any(|n| n.action == "cloudfront:CreateInvalidation");
        // The code invalidates only on the distribution its environment names.
        match (
            invalidates,
            template.variables(&logical).contains_key(CDN_VARIABLE),
        ) {
            (true, false) => {
                missing.push(format!(
                    "{logical}: invalidates on the CDN, but template.yaml does not set \
                     {CDN_VARIABLE} (on AWS the code would skip every invalidation)"
                ));
                continue;
            }
            (false, true) => unused.push(format!(
                "{logical}: is given {CDN_VARIABLE} but no scenario invalidated"
            )),
            _ => {}
        }
        let names = template.names(&logical, &run.env.app.config);
        let policy = template.policy(&logical, &names);
        missing.extend(
            policy
                .missing(&needs)
                .into_iter()
                .map(|m| format!("{logical} {}", names.show(&m))),
        );
        unused.extend(
            policy
                .unused(&needs)
                .into_iter()
                .map(|u| format!("{logical} {}", names.show(&u))),
        );
    }
    assert!(
        missing.is_empty() && unused.is_empty(),
        "template.yaml policies do not match what the code calls.\n\
         Missing (the call is denied on AWS):\n  {}\n\
         Unused (least privilege: remove, or add the scenario that needs it):\n  {}",
        missing.join("\n  "),
        unused.join("\n  ")
    );
}

#[test]
fn every_function_in_the_template_has_a_row() {
    let template = Template::load();
    let in_template: BTreeSet<String> = template.functions().into_keys().collect();
    let in_test: BTreeSet<String> = FUNCTIONS.iter().map(|f| f.binary.to_string()).collect();
    assert_eq!(
        in_template, in_test,
        "every AWS::Serverless::Function in template.yaml needs a row in FUNCTIONS (and a \
         scenario), and every row a function"
    );
}

// ---------------------------------------------------------------------------------------------
// A run: a private table and buckets, and an App whose clients record every call
// ---------------------------------------------------------------------------------------------

/// One function's scenarios: `env` sets things up (not recorded), `app` is what the function
/// runs with (recorded).
struct Run {
    env: TestEnv,
    app: App,
    recorder: Recorder,
}

impl Run {
    async fn new() -> Self {
        let env = TestEnv::new().await;
        let recorder = Recorder::default();
        let db = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&env.sdk)
                .interceptor(recorder.clone())
                .build(),
        );
        let s3 = aws_sdk_s3::Client::from_conf(
            App::s3_config(&env.app.config, &env.sdk)
                .interceptor(recorder.clone())
                .build(),
        );
        let mut app = App::from_clients(env.app.config.clone(), &env.sdk, db, s3);
        let cloudfront = aws_sdk_cloudfront::Client::from_conf(
            aws_sdk_cloudfront::config::Builder::from(&env.sdk)
                .interceptor(recorder.clone())
                .build(),
        );
        app.cdn = joip::cdn::Cdn::new(cloudfront, env.app.config.cdn_distribution_id.clone());
        Self { env, app, recorder }
    }

    /// A public community session owned by a fresh user (set up without recording).
    async fn community_session(&self, media: Vec<NewMedia>) -> SessionId {
        let owner = self.env.user(0, false).await;
        support::community_session(&self.env.app, &owner, "shared", media).await
    }

    /// The save handler as `caller`, run with `app`.
    async fn save(&self, app: &App, caller: &UserId, source: SessionId) -> (u16, Value) {
        let path = format!("/api/community/sessions/{source}/save");
        let request = Event::new("POST", "/api/community/sessions/{id}/save", &path)
            .path_params(json!({ "id": source.to_string() }))
            .caller(caller.as_str())
            .request();
        // Boxed: the handler's future is large in debug builds, and scenarios await it often.
        read(Box::pin(joip::routes::save_community_session::handle(app, request)).await)
    }
}

// ---------------------------------------------------------------------------------------------
// Recording calls and what IAM requires for them
// ---------------------------------------------------------------------------------------------

/// Region and account the resolved ARNs use (the same on both sides of every comparison).
const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";

/// What one IAM authorization needs: an action on a resource, with the request's `s3:prefix`
/// and `dynamodb:LeadingKeys`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Need {
    action: String,
    resource: String,
    /// `s3:prefix` in the request context.
    prefix: Option<String>,
    /// `dynamodb:LeadingKeys` of an item-level request on the table (its items' partition
    /// keys), each cut to its entity prefix (`SHARE#`, `LINKVIEWS#`, ...): every key of an
    /// entity then authorizes alike, so a condition on this key must be written `ENTITY#*`
    /// (checked where policies are parsed). `None` where AWS sends no such key (DescribeTable,
    /// Scan, a Query of an index).
    leading_keys: Option<BTreeSet<String>>,
    /// The call that needs it, for messages.
    by: String,
}

/// One SDK call: the authorizations AWS makes for it, or what it was if unknown.
#[derive(Debug, Clone)]
struct Call {
    needs: Vec<Need>,
    unknown: Option<String>,
}

/// Records every call made through the clients it is installed on (every service: the
/// interceptor trait is shared) and can fail the nth call of an operation once. Clones share.
#[derive(Debug, Clone, Default)]
struct Recorder {
    calls: Arc<Mutex<Vec<Call>>>,
    faults: Arc<Mutex<Vec<(&'static str, usize)>>>,
}

impl Recorder {
    /// Fails the `nth` (1-based) next call of `operation`, once.
    fn fail_nth(&self, operation: &'static str, nth: usize) {
        self.faults.lock().unwrap().push((operation, nth));
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// A presigned GET the code handed out (signed without an SDK call, so no interceptor saw
    /// it): whoever follows it reads the object with the function's permissions.
    fn presigned_get(&self, url: &str) {
        // Path-style on the emulator: http://host/bucket/key?X-Amz-..., the key URL-encoded as in
        // a CopySource.
        let (bucket, key) = copy_source(url.splitn(4, '/').nth(3).expect("path-style URL"));
        self.calls.lock().unwrap().push(Call {
            needs: read_object(&bucket, &key, "a presigned GetObject"),
            unknown: None,
        });
    }
}

impl aws_sdk_s3::config::Intercept for Recorder {
    fn name(&self) -> &'static str {
        "PolicyRecorder"
    }

    fn read_before_execution(
        &self,
        context: &aws_sdk_s3::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let (operation, call) = required(context);
        self.calls.lock().unwrap().push(call);
        let mut faults = self.faults.lock().unwrap();
        for i in 0..faults.len() {
            if faults[i].0 == operation {
                faults[i].1 -= 1;
                if faults[i].1 == 0 {
                    faults.remove(i);
                    return Err(format!("injected fault: {operation} failed").into());
                }
                break;
            }
        }
        Ok(())
    }
}

fn table_arn(table: &str) -> String {
    if table.starts_with("arn:") {
        table.to_string()
    } else {
        format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}")
    }
}

/// CloudFront ARNs name no region.
fn distribution_arn(id: &str) -> String {
    format!("arn:aws:cloudfront::{ACCOUNT}:distribution/{id}")
}

fn need(action: &str, resource: String, by: &str) -> Need {
    Need {
        action: action.into(),
        resource,
        prefix: None,
        leading_keys: None,
        by: by.into(),
    }
}

/// The entity prefix of a partition key (`SHARE#abc` → `SHARE#`), as [`Need::leading_keys`]
/// holds it.
fn entity(pk: &str) -> String {
    match pk.find('#') {
        Some(i) => pk[..=i].to_string(),
        None => pk.to_string(),
    }
}

/// The partition key of an item key or item (`pk`), as a string.
fn partition_key(
    item: Option<&std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
) -> Option<String> {
    let value = item?.get(joip::store::keys::PK)?;
    value.as_s().ok().map(|s| entity(s))
}

/// An item-level request's need: `on_table` with the partition keys it touches.
fn on_items(
    action: &str,
    table: Option<&str>,
    keys: impl IntoIterator<Item = Option<String>>,
    by: &str,
) -> Need {
    let keys: Option<BTreeSet<String>> = keys.into_iter().collect();
    Need {
        leading_keys: Some(keys.unwrap_or_else(|| panic!("{by}: an item without a string pk"))),
        ..on_table(action, table, None, by)
    }
}

/// The partition key a table Query names (`pk = :v` in its key condition), cut to its entity.
fn queried_partition(i: &aws_sdk_dynamodb::operation::query::QueryInput) -> Option<String> {
    let condition = i.key_condition_expression()?;
    let names = i.expression_attribute_names();
    let (left, rest) = condition.split_once('=')?;
    let left = left.trim();
    let left = names.and_then(|n| n.get(left)).map_or(left, String::as_str);
    if left != joip::store::keys::PK {
        return None;
    }
    let placeholder = rest.split_whitespace().next()?;
    let value = i.expression_attribute_values()?.get(placeholder)?;
    value.as_s().ok().map(|s| entity(s))
}

/// `dynamodb:{action}` on a table, or on one of its indexes.
fn on_table(action: &str, table: Option<&str>, index: Option<&str>, by: &str) -> Need {
    let table = table_arn(table.unwrap_or_default());
    let resource = match index {
        Some(index) => format!("{table}/index/{index}"),
        None => table,
    };
    need(&format!("dynamodb:{action}"), resource, by)
}

fn object(bucket: Option<&str>, key: Option<&str>) -> String {
    format!(
        "arn:aws:s3:::{}/{}",
        bucket.unwrap_or_default(),
        key.unwrap_or_default()
    )
}

/// Reading an object: `s3:GetObject` on it, and `s3:ListBucket` on its bucket so that a missing
/// key answers 404 rather than 403 (see the module doc: both ways S3 may build the context).
fn read_object(bucket: &str, key: &str, by: &str) -> Vec<Need> {
    let why = format!("{by} (so that a missing key answers 404, not 403)");
    vec![
        need("s3:GetObject", object(Some(bucket), Some(key)), by),
        need("s3:ListBucket", format!("arn:aws:s3:::{bucket}"), &why),
        Need {
            prefix: Some(key.to_string()),
            ..need("s3:ListBucket", format!("arn:aws:s3:::{bucket}"), &why)
        },
    ]
}

/// A copy source (`bucket/key`, URL-encoded, optionally `?versionId=`) as (bucket, key).
fn copy_source(source: &str) -> (String, String) {
    let source = source.trim_start_matches('/');
    let source = source.split('?').next().unwrap_or_default();
    let (bucket, key) = source.split_once('/').unwrap_or((source, ""));
    let bytes = key.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                decoded.push(b);
                i += 3;
            }
            (b, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    (
        bucket.to_string(),
        String::from_utf8_lossy(&decoded).into_owned(),
    )
}

/// Writing an object, with the extra actions its tagging or ACL headers need.
fn write_object(
    bucket: Option<&str>,
    key: Option<&str>,
    tagging: bool,
    acl: bool,
    by: &str,
) -> Vec<Need> {
    let resource = object(bucket, key);
    let mut needs = vec![need("s3:PutObject", resource.clone(), by)];
    if tagging {
        needs.push(need("s3:PutObjectTagging", resource.clone(), by));
    }
    if acl {
        needs.push(need("s3:PutObjectAcl", resource, by));
    }
    needs
}

/// The IAM authorizations AWS makes for one SDK call, from its input. Sources: the "Permissions"
/// section of each S3 operation and DynamoDB's "Actions, resources, and condition keys" page.
///
/// | call | IAM |
/// |---|---|
/// | DynamoDB GetItem, PutItem, UpdateItem, DeleteItem, DescribeTable | the same-named action on the table |
/// | Query, Scan | the same-named action on the table, or on the index ARN (`table/T/index/I`) |
/// | BatchGetItem, BatchWriteItem | the same-named action on each table |
/// | TransactWriteItems | per item: PutItem / UpdateItem / DeleteItem / ConditionCheckItem on its table |
/// | TransactGetItems | per item: GetItem on its table |
/// | S3 GetObject, HeadObject | s3:GetObject on the object (+ the 404 rule: s3:ListBucket on the bucket) |
/// | CopyObject, UploadPartCopy | s3:GetObject on the source (+ 404 rule) and s3:PutObject on the destination |
/// | PutObject, CreateMultipartUpload, UploadPart, CompleteMultipartUpload | s3:PutObject on the object (+ s3:PutObjectTagging with tags, s3:PutObjectAcl with an ACL) |
/// | AbortMultipartUpload | s3:AbortMultipartUpload on the object |
/// | DeleteObject | s3:DeleteObject on the object; DeleteObjects: s3:DeleteObject on each key |
/// | ListObjectsV2, ListObjects | s3:ListBucket on the bucket, with `s3:prefix` = the prefix |
/// | HeadBucket | s3:ListBucket on the bucket |
/// | CloudFront CreateInvalidation | cloudfront:CreateInvalidation on the distribution |
///
/// Anything else is reported as unknown, never passed.
fn required(
    context: &aws_sdk_s3::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
) -> (&'static str, Call) {
    use aws_sdk_cloudfront::operation as cf;
    use aws_sdk_dynamodb::operation as db;
    use aws_sdk_s3::operation as s3;
    let input = context.input();
    macro_rules! on {
        ($($op:literal: $ty:ty => |$i:ident| $needs:expr;)*) => {
            $(if let Some($i) = input.downcast_ref::<$ty>() {
                let needs: Vec<Need> = $needs;
                return ($op, Call { needs, unknown: None });
            })*
        };
    }
    on! {
        "GetItem": db::get_item::GetItemInput => |i| vec![on_items("GetItem", i.table_name(), [partition_key(i.key())], "GetItem")];
        "PutItem": db::put_item::PutItemInput => |i| vec![on_items("PutItem", i.table_name(), [partition_key(i.item())], "PutItem")];
        "UpdateItem": db::update_item::UpdateItemInput => |i| vec![on_items("UpdateItem", i.table_name(), [partition_key(i.key())], "UpdateItem")];
        "DeleteItem": db::delete_item::DeleteItemInput => |i| vec![on_items("DeleteItem", i.table_name(), [partition_key(i.key())], "DeleteItem")];
        "DescribeTable": db::describe_table::DescribeTableInput => |i| vec![on_table("DescribeTable", i.table_name(), None, "DescribeTable")];
        "Query": db::query::QueryInput => |i| vec![match i.index_name() {
            Some(_) => on_table("Query", i.table_name(), i.index_name(), "Query"),
            None => on_items("Query", i.table_name(), [queried_partition(i)], "Query"),
        }];
        "Scan": db::scan::ScanInput => |i| vec![on_table("Scan", i.table_name(), i.index_name(), "Scan")];
        "BatchGetItem": db::batch_get_item::BatchGetItemInput => |i| i
            .request_items()
            .into_iter()
            .flatten()
            .map(|(t, keys)| on_items(
                "BatchGetItem",
                Some(t),
                keys.keys().iter().map(|k| partition_key(Some(k))),
                "BatchGetItem",
            ))
            .collect();
        "BatchWriteItem": db::batch_write_item::BatchWriteItemInput => |i| i
            .request_items()
            .into_iter()
            .flat_map(|m| m.keys())
            .map(|t| on_table("BatchWriteItem", Some(t), None, "BatchWriteItem"))
            .collect();
        "TransactWriteItems": db::transact_write_items::TransactWriteItemsInput => |i| i
            .transact_items()
            .iter()
            .flat_map(|item| {
                [
                    item.put().map(|p| ("PutItem", p.table_name(), partition_key(Some(p.item())))),
                    item.update().map(|u| ("UpdateItem", u.table_name(), partition_key(Some(u.key())))),
                    item.delete().map(|d| ("DeleteItem", d.table_name(), partition_key(Some(d.key())))),
                    item.condition_check().map(|c| ("ConditionCheckItem", c.table_name(), partition_key(Some(c.key())))),
                ]
            })
            .flatten()
            .map(|(action, table, pk)| {
                on_items(action, Some(table), [pk], &format!("TransactWriteItems ({action})"))
            })
            .collect();
        "TransactGetItems": db::transact_get_items::TransactGetItemsInput => |i| i
            .transact_items()
            .iter()
            .filter_map(|item| item.get())
            .map(|g| on_items("GetItem", Some(g.table_name()), [partition_key(Some(g.key()))], "TransactGetItems"))
            .collect();

        "GetObject": s3::get_object::GetObjectInput => |i| read_object(
            i.bucket().unwrap_or_default(), i.key().unwrap_or_default(), "GetObject");
        "HeadObject": s3::head_object::HeadObjectInput => |i| read_object(
            i.bucket().unwrap_or_default(), i.key().unwrap_or_default(), "HeadObject");
        "CopyObject": s3::copy_object::CopyObjectInput => |i| {
            let (bucket, key) = copy_source(i.copy_source().unwrap_or_default());
            let mut needs = read_object(&bucket, &key, "CopyObject source");
            let retag = i.tagging().is_some();
            needs.extend(write_object(i.bucket(), i.key(), retag, i.acl().is_some(), "CopyObject destination"));
            needs
        };
        "UploadPartCopy": s3::upload_part_copy::UploadPartCopyInput => |i| {
            let (bucket, key) = copy_source(i.copy_source().unwrap_or_default());
            let mut needs = read_object(&bucket, &key, "UploadPartCopy source");
            needs.extend(write_object(i.bucket(), i.key(), false, false, "UploadPartCopy destination"));
            needs
        };
        "PutObject": s3::put_object::PutObjectInput => |i| write_object(
            i.bucket(), i.key(), i.tagging().is_some(), i.acl().is_some(), "PutObject");
        "CreateMultipartUpload": s3::create_multipart_upload::CreateMultipartUploadInput => |i| write_object(
            i.bucket(), i.key(), i.tagging().is_some(), i.acl().is_some(), "CreateMultipartUpload");
        "UploadPart": s3::upload_part::UploadPartInput => |i| write_object(
            i.bucket(), i.key(), false, false, "UploadPart");
        "CompleteMultipartUpload": s3::complete_multipart_upload::CompleteMultipartUploadInput => |i| write_object(
            i.bucket(), i.key(), false, false, "CompleteMultipartUpload");
        "AbortMultipartUpload": s3::abort_multipart_upload::AbortMultipartUploadInput => |i| vec![
            need("s3:AbortMultipartUpload", object(i.bucket(), i.key()), "AbortMultipartUpload")];
        "DeleteObject": s3::delete_object::DeleteObjectInput => |i| vec![
            need("s3:DeleteObject", object(i.bucket(), i.key()), "DeleteObject")];
        "DeleteObjects": s3::delete_objects::DeleteObjectsInput => |i| i
            .delete()
            .map(|d| d.objects())
            .unwrap_or_default()
            .iter()
            .map(|o| need("s3:DeleteObject", object(i.bucket(), Some(o.key())), "DeleteObjects"))
            .collect();
        "ListObjectsV2": s3::list_objects_v2::ListObjectsV2Input => |i| vec![Need {
            prefix: i.prefix().map(str::to_string),
            ..need("s3:ListBucket", format!("arn:aws:s3:::{}", i.bucket().unwrap_or_default()), "ListObjectsV2")
        }];
        "ListObjects": s3::list_objects::ListObjectsInput => |i| vec![Need {
            prefix: i.prefix().map(str::to_string),
            ..need("s3:ListBucket", format!("arn:aws:s3:::{}", i.bucket().unwrap_or_default()), "ListObjects")
        }];
        "HeadBucket": s3::head_bucket::HeadBucketInput => |i| vec![
            need("s3:ListBucket", format!("arn:aws:s3:::{}", i.bucket().unwrap_or_default()), "HeadBucket")];

        "CreateInvalidation": cf::create_invalidation::CreateInvalidationInput => |i| vec![need(
            "cloudfront:CreateInvalidation",
            distribution_arn(i.distribution_id().unwrap_or_default()),
            "CreateInvalidation")];
    }
    let mut what = format!("{input:?}");
    what.truncate(160);
    (
        "unknown",
        Call {
            needs: Vec::new(),
            unknown: Some(what),
        },
    )
}

/// The distinct needs of `calls` (the first call's description kept).
fn needs(calls: &[Call]) -> Vec<Need> {
    let mut seen = BTreeMap::new();
    for n in calls.iter().flat_map(|c| &c.needs) {
        seen.entry((
            n.action.clone(),
            n.resource.clone(),
            n.prefix.clone(),
            n.leading_keys.clone(),
        ))
        .or_insert_with(|| n.clone());
    }
    seen.into_values().collect()
}

// ---------------------------------------------------------------------------------------------
// template.yaml
// ---------------------------------------------------------------------------------------------

/// Where the code finds each resource: the variable template.yaml sets (to `!Ref Resource`), the
/// Config field the code reads it into, and whether every function must be given it. This ties
/// the names the recorded calls use to the logical ids the policies name.
const RESOURCE_VARIABLES: &[(&str, ConfigField, Given)] = &[
    ("JOIP_TABLE", |c| c.table.as_str(), Given::Always),
    (
        "JOIP_GENERAL_BUCKET",
        |c| c.general_bucket.as_str(),
        Given::Always,
    ),
    (
        "JOIP_USER_MEDIA_BUCKET",
        |c| c.user_media_bucket.as_str(),
        Given::Always,
    ),
    (
        CDN_VARIABLE,
        |c| c.cdn_distribution_id.as_deref().unwrap_or_default(),
        Given::IfUsed,
    ),
];

/// The variable that names the CloudFront distribution. A function without it skips every
/// invalidation silently (the code has no distribution to invalidate on), so it must be set on
/// exactly the functions that invalidate.
const CDN_VARIABLE: &str = "JOIP_CDN_DISTRIBUTION_ID";

type ConfigField = fn(&joip::config::Config) -> &str;

/// Whether every function is given a resource, or only those that use it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Given {
    Always,
    IfUsed,
}

/// Managed policies a function may attach that grant no S3, DynamoDB or CloudFront action.
const MANAGED_WITHOUT_DATA_ACCESS: &[&str] = &[
    "AWSLambdaBasicExecutionRole",
    "AWSXRayDaemonWriteAccess",
    "AWSXrayWriteOnlyAccess",
    "AWSLambdaSQSQueueExecutionRole",
];

/// SAM policy templates this test can expand (from SAM's policy_templates.json); the parameter
/// is `${TableName}` or `${BucketName}`. Any other template fails the test until added here.
const SAM_POLICY_TEMPLATES: &[(&str, &str)] = &[
    (
        "DynamoDBCrudPolicy",
        "- Effect: Allow
  Action: [dynamodb:GetItem, dynamodb:DeleteItem, dynamodb:PutItem, dynamodb:Scan, dynamodb:Query,
           dynamodb:UpdateItem, dynamodb:BatchWriteItem, dynamodb:BatchGetItem,
           dynamodb:DescribeTable, dynamodb:ConditionCheckItem]
  Resource:
    - !Sub 'arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${TableName}'
    - !Sub 'arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${TableName}/index/*'",
    ),
    (
        "DynamoDBReadPolicy",
        "- Effect: Allow
  Action: [dynamodb:GetItem, dynamodb:Scan, dynamodb:Query, dynamodb:BatchGetItem,
           dynamodb:DescribeTable]
  Resource:
    - !Sub 'arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${TableName}'
    - !Sub 'arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${TableName}/index/*'",
    ),
    (
        "S3ReadPolicy",
        "- Effect: Allow
  Action: [s3:GetObject, s3:ListBucket, s3:GetBucketLocation, s3:GetObjectVersion,
           s3:GetLifecycleConfiguration]
  Resource:
    - !Sub 'arn:${AWS::Partition}:s3:::${BucketName}'
    - !Sub 'arn:${AWS::Partition}:s3:::${BucketName}/*'",
    ),
    (
        "S3CrudPolicy",
        "- Effect: Allow
  Action: [s3:GetObject, s3:ListBucket, s3:GetBucketLocation, s3:GetObjectVersion, s3:PutObject,
           s3:PutObjectAcl, s3:GetLifecycleConfiguration, s3:PutLifecycleConfiguration,
           s3:DeleteObject]
  Resource:
    - !Sub 'arn:${AWS::Partition}:s3:::${BucketName}'
    - !Sub 'arn:${AWS::Partition}:s3:::${BucketName}/*'",
    ),
];

/// template.yaml as JSON, short-form intrinsics in their long form (`!Ref X` -> `{"Ref": "X"}`,
/// `!GetAtt A.B` -> `{"Fn::GetAtt": ["A", "B"]}`, `!Sub s` -> `{"Fn::Sub": "s"}`).
struct Template {
    root: Value,
}

/// Logical id -> the physical name the code was given.
struct Names(BTreeMap<String, String>);

impl Names {
    /// `text` with physical names in ARNs shown as `${LogicalId}`, for messages.
    fn show(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (logical, name) in &self.0 {
            out = out
                .replace(&format!(":::{name}"), &format!(":::${{{logical}}}"))
                .replace(&format!(":table/{name}"), &format!(":table/${{{logical}}}"))
                .replace(
                    &format!(":distribution/{name}"),
                    &format!(":distribution/${{{logical}}}"),
                );
        }
        out
    }
}

fn parse_yaml(text: &str) -> Value {
    let docs = Yaml::load_from_str(text).unwrap_or_else(|e| panic!("YAML: {e}"));
    to_json(docs.first().expect("one YAML document"))
}

fn to_json(node: &Yaml) -> Value {
    match node {
        Yaml::Value(Scalar::Null) => Value::Null,
        Yaml::Value(Scalar::Boolean(b)) => json!(b),
        Yaml::Value(Scalar::Integer(i)) => json!(i),
        Yaml::Value(Scalar::FloatingPoint(f)) => json!(f.into_inner()),
        Yaml::Value(Scalar::String(s)) => json!(s),
        Yaml::Representation(s, _, _) => json!(s),
        Yaml::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Yaml::Tagged(tag, inner) => {
            let value = to_json(inner);
            match tag.suffix.as_str() {
                "Ref" => json!({ "Ref": value }),
                "Condition" => json!({ "Condition": value }),
                "GetAtt" => match value.as_str().and_then(|s| s.split_once('.')) {
                    Some((resource, attribute)) => json!({ "Fn::GetAtt": [resource, attribute] }),
                    None => json!({ "Fn::GetAtt": value }),
                },
                other => json!({ format!("Fn::{other}"): value }),
            }
        }
        Yaml::Alias(_) | Yaml::BadValue => panic!("unsupported YAML node {node:?}"),
    }
}

/// A string or a list of them.
fn strings(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

impl Template {
    fn load() -> Self {
        let path = format!("{}/../template.yaml", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Self::parse(&text)
    }

    fn parse(text: &str) -> Self {
        Self {
            root: parse_yaml(text),
        }
    }

    fn resources(&self) -> &Map<String, Value> {
        self.root["Resources"]
            .as_object()
            .expect("template.yaml has Resources")
    }

    /// Binary name -> logical id of every `AWS::Serverless::Function`.
    fn functions(&self) -> BTreeMap<String, String> {
        self.resources()
            .iter()
            .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
            .map(|(logical, r)| {
                let binary = r["Metadata"]["BuildProperties"]["Binary"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{logical}: no Metadata.BuildProperties.Binary"));
                (binary.to_string(), logical.clone())
            })
            .collect()
    }

    fn function(&self, binary: &str) -> String {
        self.functions()
            .remove(binary)
            .unwrap_or_else(|| panic!("template.yaml has no function with binary {binary}"))
    }

    /// `function`'s environment variables: the global ones and its own.
    fn variables(&self, function: &str) -> Map<String, Value> {
        let mut variables = self.root["Globals"]["Function"]["Environment"]["Variables"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        if let Some(own) =
            self.resources()[function]["Properties"]["Environment"]["Variables"].as_object()
        {
            variables.extend(own.clone());
        }
        variables
    }

    /// The resources `function`'s environment points the code at, with the names `config` gave.
    fn names(&self, function: &str, config: &joip::config::Config) -> Names {
        let variables = self.variables(function);
        let mut names = BTreeMap::new();
        for (variable, field, given) in RESOURCE_VARIABLES {
            let logical = match variables.get(*variable) {
                None if *given == Given::IfUsed => continue,
                set => set.and_then(|v| v["Ref"].as_str()).unwrap_or_else(|| {
                    panic!("{function}: template.yaml must set {variable} to !Ref a resource")
                }),
            };
            names.insert(logical.to_string(), field(config).to_string());
        }
        Names(names)
    }

    /// The statements of `function`'s `Policies:`, resolved with `names`.
    fn policy(&self, function: &str, names: &Names) -> Policy {
        let properties = &self.resources()[function]["Properties"];
        assert!(
            properties.get("Role").is_none(),
            "{function}: an explicit Role is not checked by this test; use Policies"
        );
        let scope = Scope {
            resources: self.resources(),
            names,
            locals: BTreeMap::new(),
        };
        let mut statements = Vec::new();
        for (i, entry) in strings(&properties["Policies"]).into_iter().enumerate() {
            let origin = format!("Policies[{i}]");
            match entry {
                Value::String(managed) => {
                    let name = managed.rsplit('/').next().unwrap_or(managed);
                    assert!(
                        MANAGED_WITHOUT_DATA_ACCESS.contains(&name),
                        "{function}: managed policy {managed} may grant S3, DynamoDB or CloudFront actions \
                         this test cannot see; use inline statements"
                    );
                }
                Value::Object(map) if map.contains_key("Statement") => {
                    for (j, s) in strings(&map["Statement"]).into_iter().enumerate() {
                        statements.extend(Statement::parse(
                            s,
                            &scope,
                            format!("{origin}.Statement[{j}]"),
                        ));
                    }
                }
                Value::Object(map) if map.len() == 1 => {
                    let (name, parameters) = map.iter().next().expect("one entry");
                    let (_, definition) = SAM_POLICY_TEMPLATES
                        .iter()
                        .find(|(n, _)| n == name)
                        .unwrap_or_else(|| {
                            panic!("{function}: SAM policy template {name} is not modelled here: add it to SAM_POLICY_TEMPLATES")
                        });
                    let mut locals = BTreeMap::new();
                    for (parameter, value) in parameters.as_object().into_iter().flatten() {
                        let resolved = scope
                            .resolve(value)
                            .unwrap_or_else(|e| panic!("{function} {origin}: {e}"));
                        locals.insert(parameter.clone(), resolved);
                    }
                    let inner = Scope {
                        locals,
                        ..scope.clone()
                    };
                    for (j, s) in strings(&parse_yaml(definition)).into_iter().enumerate() {
                        statements.extend(Statement::parse(
                            s,
                            &inner,
                            format!("{origin} ({name}).Statement[{j}]"),
                        ));
                    }
                }
                other => panic!("{function} {origin}: unsupported policy entry {other}"),
            }
        }
        Policy { statements }
    }
}

/// What `!Ref`, `!GetAtt` and `${..}` resolve to.
#[derive(Clone)]
struct Scope<'a> {
    resources: &'a Map<String, Value>,
    names: &'a Names,
    /// `!Sub` variables and SAM policy template parameters.
    locals: BTreeMap<String, String>,
}

impl Scope<'_> {
    fn reference(&self, name: &str) -> Result<String, String> {
        if let Some(v) = self.locals.get(name) {
            return Ok(v.clone());
        }
        match name {
            "AWS::Partition" => return Ok("aws".into()),
            "AWS::Region" => return Ok(REGION.into()),
            "AWS::AccountId" => return Ok(ACCOUNT.into()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".into()),
            "AWS::StackName" => return Ok("joip-test".into()),
            _ => {}
        }
        self.names
            .0
            .get(name)
            .cloned()
            .ok_or_else(|| format!("cannot resolve !Ref {name} (not a resource the code is given)"))
    }

    fn attribute(&self, resource: &str, attribute: &str) -> Result<String, String> {
        let name = self.reference(resource)?;
        let kind = self.resources.get(resource).map(|r| &r["Type"]);
        match (kind.and_then(Value::as_str), attribute) {
            (Some("AWS::DynamoDB::Table"), "Arn") => Ok(table_arn(&name)),
            (Some("AWS::S3::Bucket"), "Arn") => Ok(format!("arn:aws:s3:::{name}")),
            (kind, _) => Err(format!(
                "cannot resolve !GetAtt {resource}.{attribute} ({kind:?})"
            )),
        }
    }

    fn substitute(&self, text: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {text}"))?;
            let variable = &after[..end];
            if let Some(literal) = variable.strip_prefix('!') {
                out.push_str(&format!("${{{literal}}}"));
            } else if let Some((resource, attribute)) = variable
                .split_once('.')
                .filter(|_| !self.locals.contains_key(variable))
            {
                out.push_str(&self.attribute(resource, attribute)?);
            } else {
                out.push_str(&self.reference(variable)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// A string-valued template expression.
    fn resolve(&self, value: &Value) -> Result<String, String> {
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Object(map) if map.len() == 1 => {
                let (function, argument) = map.iter().next().expect("one entry");
                match (function.as_str(), argument) {
                    ("Ref", Value::String(name)) => self.reference(name),
                    ("Fn::GetAtt", Value::Array(parts)) if parts.len() == 2 => self.attribute(
                        parts[0].as_str().unwrap_or_default(),
                        parts[1].as_str().unwrap_or_default(),
                    ),
                    ("Fn::Sub", Value::String(text)) => self.substitute(text),
                    ("Fn::Sub", Value::Array(parts)) if parts.len() == 2 => {
                        let mut inner = self.clone();
                        for (k, v) in parts[1].as_object().into_iter().flatten() {
                            inner.locals.insert(k.clone(), self.resolve(v)?);
                        }
                        inner.substitute(parts[0].as_str().unwrap_or_default())
                    }
                    ("Fn::Join", Value::Array(parts)) if parts.len() == 2 => {
                        let items: Result<Vec<String>, String> = strings(&parts[1])
                            .into_iter()
                            .map(|v| self.resolve(v))
                            .collect();
                        Ok(items?.join(parts[0].as_str().unwrap_or_default()))
                    }
                    _ => Err(format!("unsupported intrinsic {value}")),
                }
            }
            other => Err(format!("unsupported value {other}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// IAM evaluation
// ---------------------------------------------------------------------------------------------

/// `*` matches any run of characters, `?` any one (IAM's wildcards in actions and ARNs).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Action names are case-insensitive.
fn action_matches(pattern: &str, action: &str) -> bool {
    glob(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}

/// The services whose calls the recorder sees (IAM service prefixes).
const RECORDED_SERVICES: &[&str] = &["s3", "dynamodb", "cloudfront"];

/// Whether an action pattern can match an action of a service the recorder sees.
fn is_data_action(pattern: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.split_once(':') {
        Some((service, _)) => RECORDED_SERVICES.iter().any(|s| glob(service, s)),
        None => glob(&pattern, "s3:getobject"),
    }
}

/// How a condition reads a multivalued key (`ForAllValues:` / `ForAnyValue:`), if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOperator {
    ForAllValues,
    ForAnyValue,
}

/// One string condition: `StringLike: {s3:prefix: [..]}`, or on `dynamodb:LeadingKeys` with a
/// set operator (`ForAllValues:StringLike: {dynamodb:LeadingKeys: [SHARE#*]}`).
#[derive(Debug, Clone)]
struct Condition {
    set: Option<SetOperator>,
    operator: String,
    if_exists: bool,
    key: String,
    values: Vec<String>,
}

impl Condition {
    fn matches(&self, value: &str) -> bool {
        self.values.iter().any(|v| match self.operator.as_str() {
            "StringEquals" | "StringNotEquals" => v == value,
            _ => glob(v, value),
        })
    }

    fn holds(&self, need: &Need) -> bool {
        let negated = self.operator.starts_with("StringNot");
        if self.key.eq_ignore_ascii_case("dynamodb:LeadingKeys") {
            // IAM's set operators: ForAllValues holds when every value matches, and vacuously
            // when the key is absent or empty (why grants must not rely on it alone for
            // requests that carry no key); ForAnyValue needs one matching value.
            let keys = need.leading_keys.iter().flatten();
            return match self.set {
                Some(SetOperator::ForAllValues) => {
                    keys.into_iter().all(|k| self.matches(k) != negated)
                }
                Some(SetOperator::ForAnyValue) => {
                    keys.into_iter().any(|k| self.matches(k) != negated)
                }
                None => panic!("dynamodb:LeadingKeys is multivalued: use ForAllValues:"),
            };
        }
        let present = if self.key.eq_ignore_ascii_case("s3:prefix") {
            need.prefix.as_deref()
        } else {
            None
        };
        let Some(value) = present else {
            // IAM: an absent key fails a condition unless `...IfExists` or negated.
            return self.if_exists || negated;
        };
        self.matches(value) != negated
    }
}

/// One resolved policy statement.
#[derive(Debug, Clone)]
struct Statement {
    origin: String,
    allow: bool,
    actions: Vec<String>,
    not_action: bool,
    resources: Vec<String>,
    not_resource: bool,
    conditions: Vec<Condition>,
}

impl Statement {
    /// Parses a statement; `None` when it cannot concern a recorded service (logs, SQS, ...).
    fn parse(value: &Value, scope: &Scope<'_>, origin: String) -> Option<Self> {
        let fail = |what: String| -> ! { panic!("{origin}: {what}") };
        let allow = match value["Effect"].as_str() {
            Some("Allow") => true,
            Some("Deny") => false,
            other => fail(format!("Effect {other:?}")),
        };
        let not_action = value.get("NotAction").is_some();
        let actions: Vec<String> = strings(&value[if not_action { "NotAction" } else { "Action" }])
            .into_iter()
            .map(|a| {
                a.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| fail(format!("action {a}")))
            })
            .collect();
        if !not_action && !actions.iter().any(|a| is_data_action(a)) {
            return None;
        }
        let not_resource = value.get("NotResource").is_some();
        let resources = strings(
            &value[if not_resource {
                "NotResource"
            } else {
                "Resource"
            }],
        )
        .into_iter()
        .map(|r| scope.resolve(r).unwrap_or_else(|e| fail(e)))
        .collect();
        let mut conditions = Vec::new();
        for (operator, keys) in value["Condition"].as_object().into_iter().flatten() {
            let (set, operator) = match operator.split_once(':') {
                Some(("ForAllValues", op)) => (Some(SetOperator::ForAllValues), op.to_string()),
                Some(("ForAnyValue", op)) => (Some(SetOperator::ForAnyValue), op.to_string()),
                Some(_) => fail(format!("condition operator {operator} is not modelled")),
                None => (None, operator.clone()),
            };
            let (base, if_exists) = match operator.strip_suffix("IfExists") {
                Some(base) => (base, true),
                None => (operator.as_str(), false),
            };
            if ![
                "StringEquals",
                "StringNotEquals",
                "StringLike",
                "StringNotLike",
            ]
            .contains(&base)
            {
                fail(format!("condition operator {operator} is not modelled"));
            }
            for (key, values) in keys.as_object().into_iter().flatten() {
                let values: Vec<String> = strings(values)
                    .into_iter()
                    .map(|v| scope.resolve(v).unwrap_or_else(|e| fail(e)))
                    .collect();
                if key.eq_ignore_ascii_case("dynamodb:LeadingKeys")
                    && values
                        .iter()
                        .any(|v| !v.ends_with("#*") || v[..v.len() - 2].contains(['#', '*', '?']))
                {
                    fail(format!(
                        "dynamodb:LeadingKeys {values:?}: the evaluator knows each key's entity \
                         prefix only, so write ENTITY#*"
                    ));
                }
                conditions.push(Condition {
                    set,
                    operator: base.to_string(),
                    if_exists,
                    key: key.clone(),
                    values,
                });
            }
        }
        Some(Self {
            origin,
            allow,
            actions,
            not_action,
            resources,
            not_resource,
            conditions,
        })
    }

    fn matches_action(&self, action: &str) -> bool {
        self.actions.iter().any(|p| action_matches(p, action)) != self.not_action
    }

    fn matches_resource(&self, resource: &str) -> bool {
        self.resources.iter().any(|p| glob(p, resource)) != self.not_resource
    }

    fn applies(&self, need: &Need) -> bool {
        self.matches_action(&need.action)
            && self.matches_resource(&need.resource)
            && self.conditions.iter().all(|c| c.holds(need))
    }
}

/// A function's statements on the recorded services.
#[derive(Debug)]
struct Policy {
    statements: Vec<Statement>,
}

fn describe(need: &Need) -> String {
    let context = match &need.prefix {
        Some(p) => format!(" with s3:prefix = {p:?}"),
        None if need.action == "s3:ListBucket" => " with no s3:prefix".to_string(),
        None => String::new(),
    };
    let keys = match &need.leading_keys {
        Some(keys) => format!(" with dynamodb:LeadingKeys {keys:?}"),
        None => String::new(),
    };
    format!("{} on {}{context}{keys}", need.action, need.resource)
}

impl Policy {
    /// IAM: allowed when some Allow statement applies and no Deny statement does.
    fn allows(&self, need: &Need) -> bool {
        self.statements.iter().any(|s| s.allow && s.applies(need))
            && !self.statements.iter().any(|s| !s.allow && s.applies(need))
    }

    /// Needs no statement allows: "lacks ACTION on RESOURCE, needed by CALL", one line per
    /// action, call and kind of context (the first resource shown, and how many more alike).
    fn missing(&self, needs: &[Need]) -> Vec<String> {
        let mut groups: BTreeMap<(&str, &str, bool), Vec<&Need>> = BTreeMap::new();
        for n in needs.iter().filter(|n| !self.allows(n)) {
            groups
                .entry((&n.action, &n.by, n.prefix.is_some()))
                .or_default()
                .push(n);
        }
        groups
            .into_values()
            .map(|group| {
                let more = match group.len() - 1 {
                    0 => String::new(),
                    n => format!(" (and {n} more like it)"),
                };
                format!(
                    "lacks {}{more}, needed by {}",
                    describe(group[0]),
                    group[0].by
                )
            })
            .collect()
    }

    /// Grants no need uses (and grants that name no action): least privilege.
    fn unused(&self, needs: &[Need]) -> Vec<String> {
        let mut out = Vec::new();
        for s in self.statements.iter().filter(|s| s.allow) {
            if s.not_action || s.not_resource {
                out.push(format!(
                    "{}: NotAction/NotResource grants more than it names",
                    s.origin
                ));
                continue;
            }
            for action in s.actions.iter().filter(|a| is_data_action(a)) {
                if action.contains(['*', '?']) {
                    out.push(format!(
                        "{}: wildcard action {action}: name the actions",
                        s.origin
                    ));
                }
                for resource in &s.resources {
                    let used = needs.iter().any(|n| {
                        action_matches(action, &n.action)
                            && glob(resource, &n.resource)
                            && s.conditions.iter().all(|c| c.holds(n))
                    });
                    if !used {
                        out.push(format!(
                            "{}: grants {action} on {resource}, which no scenario needed",
                            s.origin
                        ));
                    }
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Self-tests: the checker fails when it should
// ---------------------------------------------------------------------------------------------

/// A template with one function whose `Policies:` are `policies` (indented as under
/// `Properties:`), a table `Table`, a bucket `Bucket` and a distribution `Distribution`.
fn policy_of(policies: &str) -> (Policy, Names) {
    let text = format!(
        "Resources:
  Table:
    Type: AWS::DynamoDB::Table
  Bucket:
    Type: AWS::S3::Bucket
  Distribution:
    Type: AWS::CloudFront::Distribution
  Fn:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: fn
    Properties:
      Policies:
{policies}"
    );
    let template = Template::parse(&text);
    let names = Names(BTreeMap::from([
        ("Table".to_string(), "tbl-1".to_string()),
        ("Bucket".to_string(), "bkt-1".to_string()),
        ("Distribution".to_string(), "DIST1".to_string()),
    ]));
    (template.policy("Fn", &names), names)
}

fn s3(action: &str, key: &str) -> Need {
    need(action, format!("arn:aws:s3:::bkt-1/{key}"), "test")
}

fn list(prefix: Option<&str>) -> Need {
    Need {
        prefix: prefix.map(str::to_string),
        ..need("s3:ListBucket", "arn:aws:s3:::bkt-1".into(), "test")
    }
}

#[test]
fn short_form_tags_resolve_to_arns() {
    let (policy, _) = policy_of(
        "        - Statement:
            - Effect: Allow
              Action: dynamodb:Query
              Resource: !Sub '${Table.Arn}/index/gsi1'
            - Effect: Allow
              Action: [dynamodb:GetItem]
              Resource: !GetAtt Table.Arn
            - Effect: Allow
              Action: s3:GetObject
              Resource: !Sub 'arn:${AWS::Partition}:s3:::${Bucket}/sessions/*'",
    );
    let table = table_arn("tbl-1");
    assert!(policy.allows(&on_table("Query", Some("tbl-1"), Some("gsi1"), "t")));
    assert!(!policy.allows(&on_table("Query", Some("tbl-1"), None, "t")));
    assert!(!policy.allows(&on_table("Query", Some("tbl-1"), Some("gsi2"), "t")));
    assert!(policy.allows(&need("dynamodb:GetItem", table, "t")));
    assert!(policy.allows(&s3("s3:GetObject", "sessions/1/a.jpg")));
}

#[test]
fn a_policy_lacking_an_action_is_reported() {
    let (policy, names) = policy_of(
        "        - Statement:
            - Effect: Allow
              Action: s3:GetObject
              Resource: !Sub '${Bucket.Arn}/sessions/*'",
    );
    let put = s3("s3:PutObject", "sessions/1/a.jpg");
    let missing = policy.missing(&[s3("s3:GetObject", "sessions/1/a.jpg"), put]);
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(
        names.show(&missing[0]),
        "lacks s3:PutObject on arn:aws:s3:::${Bucket}/sessions/1/a.jpg, needed by test"
    );
}

#[test]
fn a_grant_on_another_prefix_is_reported() {
    let (policy, _) = policy_of(
        "        - Statement:
            - Effect: Allow
              Action: s3:GetObject
              Resource: !Sub '${Bucket.Arn}/community/*'",
    );
    let missing = policy.missing(&[s3("s3:GetObject", "sessions/1/a.jpg")]);
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(missing[0].contains("s3:GetObject on arn:aws:s3:::bkt-1/sessions/1/a.jpg"));
}

#[test]
fn a_list_bucket_whose_prefix_condition_does_not_match_is_reported() {
    let (policy, _) = policy_of(
        "        - Statement:
            - Effect: Allow
              Action: s3:ListBucket
              Resource: !GetAtt Bucket.Arn
              Condition:
                StringLike:
                  s3:prefix: users/*/manual-sessions/*",
    );
    assert!(policy.allows(&list(Some("users/u1/manual-sessions/7/"))));
    let missing = policy.missing(&[list(Some("users/u1/uploads/")), list(None)]);
    assert_eq!(missing.len(), 2, "{missing:?}");
    assert!(missing.iter().any(|m| m.contains("with no s3:prefix")));
    assert!(missing
        .iter()
        .any(|m| m.contains("with s3:prefix = \"users/u1/uploads/\"")));
}

#[test]
fn a_read_needs_a_list_grant_that_holds_whatever_prefix_s3_checks() {
    let reads = read_object("bkt-1", "sessions/1/a.jpg", "GetObject");
    let get = "            - Effect: Allow
              Action: s3:GetObject
              Resource: !Sub '${Bucket.Arn}/sessions/*'";
    let with_list = |condition: &str| {
        policy_of(&format!(
            "        - Statement:
{get}
            - Effect: Allow
              Action: s3:ListBucket
              Resource: !GetAtt Bucket.Arn
{condition}"
        ))
        .0
    };
    let (without, _) = policy_of(&format!("        - Statement:\n{get}"));
    assert_eq!(without.missing(&reads).len(), 2, "no ListBucket: 403");
    assert!(with_list("").missing(&reads).is_empty(), "unconditional");
    let like = with_list(
        "              Condition:
                StringLike:
                  s3:prefix: sessions/*",
    );
    assert_eq!(
        like.missing(&reads).len(),
        1,
        "StringLike fails when S3 checks with no s3:prefix"
    );
    let if_exists = |pattern: &str| {
        with_list(&format!(
            "              Condition:
                StringLikeIfExists:
                  s3:prefix: {pattern}"
        ))
    };
    assert!(if_exists("sessions/*").missing(&reads).is_empty());
    assert_eq!(if_exists("community/*").missing(&reads).len(), 1);
}

#[test]
fn an_update_conditioned_on_leading_keys_reaches_only_those_entities() {
    let (policy, _) = policy_of(
        "        - Statement:
            - Effect: Allow
              Action: dynamodb:UpdateItem
              Resource: !GetAtt Table.Arn
              Condition:
                ForAllValues:StringLike:
                  dynamodb:LeadingKeys: ['SHARE#*', 'LINKVIEWS#*']",
    );
    let update = |pk: &str| {
        on_items(
            "UpdateItem",
            Some("tbl-1"),
            [Some(entity(pk))],
            "UpdateItem",
        )
    };
    assert!(policy.allows(&update("SHARE#abcdefgh")));
    assert!(policy.allows(&update("LINKVIEWS#abcdefgh#7")));
    let missing = policy.missing(&[update("MEDIA#m1"), update("USER#u1")]);
    assert_eq!(missing.len(), 1, "one line for both: {missing:?}");
    assert!(
        missing[0].contains("dynamodb:LeadingKeys {\"MEDIA#\"}"),
        "{missing:?}"
    );
    // A batch is allowed only when every key it touches is.
    let batch = on_items(
        "UpdateItem",
        Some("tbl-1"),
        [Some(entity("SHARE#a")), Some(entity("MEDIA#m1"))],
        "t",
    );
    assert!(!policy.allows(&batch));
}

#[test]
#[should_panic(expected = "write ENTITY#*")]
fn a_leading_keys_condition_finer_than_an_entity_is_refused() {
    policy_of(
        "        - Statement:
            - Effect: Allow
              Action: dynamodb:UpdateItem
              Resource: !GetAtt Table.Arn
              Condition:
                ForAllValues:StringLike:
                  dynamodb:LeadingKeys: ['SHARE#abc*']",
    );
}

#[test]
fn a_deny_wins_and_unused_grants_are_listed() {
    let (policy, names) = policy_of(
        "        - Statement:
            - Effect: Allow
              Action: [dynamodb:GetItem, dynamodb:DeleteItem]
              Resource: !GetAtt Table.Arn
            - Effect: Allow
              Action: s3:*
              Resource: !Sub '${Bucket.Arn}/*'
            - Effect: Deny
              Action: s3:DeleteObject
              Resource: !Sub '${Bucket.Arn}/keep/*'",
    );
    let get = on_table("GetItem", Some("tbl-1"), None, "t");
    assert!(policy.allows(&s3("s3:DeleteObject", "tmp/a")));
    assert!(!policy.allows(&s3("s3:DeleteObject", "keep/a")));
    let unused: Vec<String> = policy
        .unused(&[get, s3("s3:GetObject", "a")])
        .iter()
        .map(|u| names.show(u))
        .collect();
    assert_eq!(
        unused,
        [
            "Policies[0].Statement[0]: grants dynamodb:DeleteItem on \
             arn:aws:dynamodb:us-east-1:123456789012:table/${Table}, which no scenario needed",
            "Policies[0].Statement[1]: wildcard action s3:*: name the actions",
        ]
    );
}

#[test]
fn an_invalidation_grant_is_checked_like_the_data_grants() {
    let (policy, names) = policy_of(
        "        - Statement:
            - Effect: Allow
              Action: cloudfront:CreateInvalidation
              Resource: !Sub 'arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${Distribution}'",
    );
    let invalidate = |id| need("cloudfront:CreateInvalidation", distribution_arn(id), "t");
    assert!(policy.allows(&invalidate("DIST1")));
    assert!(
        !policy.allows(&invalidate("OTHER")),
        "this distribution only"
    );
    assert!(policy.unused(&[invalidate("DIST1")]).is_empty());
    let unused: Vec<String> = policy.unused(&[]).iter().map(|u| names.show(u)).collect();
    assert_eq!(
        unused,
        [
            "Policies[0].Statement[0]: grants cloudfront:CreateInvalidation on \
             arn:aws:cloudfront::123456789012:distribution/${Distribution}, which no scenario \
             needed"
        ]
    );
}

#[test]
fn sam_policy_templates_expand_to_their_statements() {
    let (policy, _) = policy_of(
        "        - DynamoDBReadPolicy:
            TableName: !Ref Table
        - AWSLambdaBasicExecutionRole",
    );
    assert!(policy.allows(&on_table("Query", Some("tbl-1"), Some("gsi1"), "t")));
    assert!(!policy.allows(&on_table("PutItem", Some("tbl-1"), None, "t")));
    let unused = policy.unused(&[on_table("Query", Some("tbl-1"), Some("gsi1"), "t")]);
    assert!(
        unused.iter().any(|u| u.contains("dynamodb:Scan")),
        "{unused:?}"
    );
}

#[test]
fn copy_sources_are_decoded() {
    assert_eq!(
        copy_source("general/sessions/1/%C3%A4%2Bx.jpg?versionId=3"),
        ("general".to_string(), "sessions/1/ä+x.jpg".to_string())
    );
}

/// CloudFront serves the general bucket's `community/` prefix and nothing else (the emulator
/// enforces no access rules, so this is checked here): the bucket policy lets only this
/// distribution read, only `community/*`; the origin adds no path; no other statement allows a
/// read of the bucket; Block Public Access stays on.
#[test]
fn cloudfront_serves_only_the_community_prefix() {
    let template = Template::load();
    let resources = template.resources();
    let policy = &resources["GeneralBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"];
    let allows: Vec<&Value> = strings(policy)
        .into_iter()
        .filter(|s| s["Effect"] == "Allow")
        .collect();
    assert_eq!(
        allows.len(),
        1,
        "one Allow on the general bucket: {allows:?}"
    );
    let allow = allows[0];
    assert_eq!(
        allow["Principal"],
        json!({ "Service": "cloudfront.amazonaws.com" })
    );
    assert_eq!(allow["Action"], "s3:GetObject");
    assert_eq!(
        allow["Resource"],
        json!({ "Fn::Sub": "${GeneralBucket.Arn}/community/*" }),
        "CloudFront reads community/ only: never staging/ or sessions/"
    );
    let source = allow["Condition"]["StringEquals"]["AWS:SourceArn"].to_string();
    assert!(
        source.contains("${Distribution}"),
        "only this distribution: {source}"
    );
    let origins = &resources["Distribution"]["Properties"]["DistributionConfig"]["Origins"];
    for origin in strings(origins) {
        assert!(
            origin
                .get("OriginPath")
                .is_none_or(|p| p.as_str() == Some("")),
            "an origin path would map public URLs elsewhere: {origin}"
        );
    }
    let block = &resources["GeneralBucket"]["Properties"]["PublicAccessBlockConfiguration"];
    for flag in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[flag], true, "{flag}");
    }
}

/// What the watermark's redelivery rests on, and the emulator cannot show: Lambda honours the
/// function's batch item failures only when the event source asks for them (otherwise a returned
/// list is ignored and every message of the batch is deleted), SQS moves a message to the DLQ
/// after maxReceiveCount receives (the local queue is made the same way: tools/src/local.rs),
/// and a message must stay invisible longer than the function can run (AWS: >= 6x its timeout).
#[test]
fn the_watermark_queue_redelivers_only_failed_messages_then_parks_them_in_an_alarmed_dlq() {
    let template = Template::load();
    let resources = template.resources();
    let function = &resources["WatermarkFunction"]["Properties"];
    let source = &function["Events"]["Staged"];
    assert_eq!(source["Type"], "SQS");
    assert!(
        source["Properties"]["Queue"]
            .to_string()
            .contains("WatermarkQueue"),
        "{source}"
    );
    assert_eq!(
        source["Properties"]["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    let queue = &resources["WatermarkQueue"]["Properties"];
    let timeout = function["Timeout"]
        .as_u64()
        .expect("the function's Timeout");
    let visibility = queue["VisibilityTimeout"]
        .as_u64()
        .expect("VisibilityTimeout");
    assert!(
        visibility >= 6 * timeout,
        "visibility {visibility} s < 6 x {timeout} s"
    );
    let redrive = &queue["RedrivePolicy"];
    assert_eq!(
        redrive["maxReceiveCount"], 5,
        "as the local queue: {redrive}"
    );
    assert!(
        redrive["deadLetterTargetArn"]
            .to_string()
            .contains("WatermarkDeadLetterQueue"),
        "{redrive}"
    );
    assert!(
        function["ReservedConcurrentExecutions"].as_u64().is_some(),
        "a burst of shares never takes the HTTP functions' concurrency"
    );
    let alarmed = resources.values().any(|r| {
        r["Type"] == "AWS::CloudWatch::Alarm"
            && r["Properties"]["Dimensions"]
                .to_string()
                .contains("WatermarkDeadLetterQueue")
    });
    assert!(alarmed, "an alarm on the dead-letter queue");
}

/// Invariant 7 at the edge: every response of the community domain says `nosniff` and carries
/// a CSP under which nothing runs (a polyglot opened directly stays inert), whatever the origin
/// sent; and the rest of the managed SecurityHeadersPolicy it replaces (HSTS) stays.
#[test]
fn community_objects_are_served_with_nosniff_and_a_csp_that_runs_nothing() {
    let template = Template::load();
    let resources = template.resources();
    let config = &resources["Distribution"]["Properties"]["DistributionConfig"];
    let mut behaviours = vec![&config["DefaultCacheBehavior"]];
    behaviours.extend(strings(&config["CacheBehaviors"]));
    for behaviour in behaviours {
        let policy = behaviour["ResponseHeadersPolicyId"]["Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("a response headers policy of this stack: {behaviour}"));
        let policy = &resources[policy];
        assert_eq!(policy["Type"], "AWS::CloudFront::ResponseHeadersPolicy");
        let security =
            &policy["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"];
        assert_eq!(
            security["ContentTypeOptions"]["Override"], true,
            "X-Content-Type-Options: nosniff, whatever the origin says"
        );
        let csp = &security["ContentSecurityPolicy"];
        assert_eq!(csp["ContentSecurityPolicy"], "default-src 'none'; sandbox");
        assert_eq!(csp["Override"], true, "{csp}");
        let hsts = &security["StrictTransportSecurity"];
        assert!(
            hsts["AccessControlMaxAgeSec"]
                .as_u64()
                .is_some_and(|age| age >= 31_536_000),
            "HSTS for a year at least, as the managed policy: {hsts}"
        );
    }
}

/// A removal is gone from the edge within the invalidation, and an object published right
/// after a miss is served at once: CloudFront keeps no 403 (what S3 answers a key it may not
/// list) or 404 (by default it would, for 10 s). The emulator's CDN caches no errors either.
#[test]
fn the_edge_caches_no_missing_object() {
    let template = Template::load();
    let config = &template.resources()["Distribution"]["Properties"]["DistributionConfig"];
    for code in [403, 404] {
        let response = strings(&config["CustomErrorResponses"])
            .into_iter()
            .find(|r| r["ErrorCode"] == code)
            .unwrap_or_else(|| panic!("a CustomErrorResponse for {code}"));
        assert_eq!(response["ErrorCachingMinTTL"], 0, "{response}");
        assert!(
            response.get("ResponsePagePath").is_none(),
            "served as the error it is: {response}"
        );
    }
}

/// Lambda polls the watermark queue no faster than the function may run: past its reserved
/// concurrency an invocation is throttled, and the message's receive still counts, so a burst
/// of shares would land in the DLQ unprocessed. MaximumConcurrency is at least 2 (AWS's floor).
#[test]
fn the_watermark_queue_is_polled_no_faster_than_the_function_may_run() {
    let template = Template::load();
    let function = &template.resources()["WatermarkFunction"]["Properties"];
    let reserved = function["ReservedConcurrentExecutions"]
        .as_u64()
        .expect("ReservedConcurrentExecutions");
    let scaling = &function["Events"]["Staged"]["Properties"]["ScalingConfig"];
    let maximum = scaling["MaximumConcurrency"]
        .as_u64()
        .unwrap_or_else(|| panic!("Events.Staged ScalingConfig.MaximumConcurrency: {scaling}"));
    assert!(
        (2..=reserved).contains(&maximum),
        "MaximumConcurrency {maximum} must be in 2..={reserved} (the reserved concurrency)"
    );
}

/// A staged object with no record is an orphan after the publisher's grace period; the grace
/// must end before the message's first redelivery (the queue's visibility timeout), so that the
/// second delivery removes it, long before the message could reach the DLQ.
#[test]
fn a_staged_orphan_is_removed_by_the_second_delivery() {
    let template = Template::load();
    let queue = &template.resources()["WatermarkQueue"]["Properties"];
    let visibility = queue["VisibilityTimeout"]
        .as_i64()
        .expect("VisibilityTimeout");
    let grace = joip::service::publish::STAGING_GRACE_S;
    assert!(
        grace < visibility,
        "the publisher's grace ({grace} s) must be shorter than the visibility timeout \
         ({visibility} s)"
    );
}

/// The backstop for staged originals nobody removed: the general bucket expires `staging/`
/// after a day, and no expiration ever reaches another prefix (community/ and sessions/ are
/// what users see).
#[test]
fn staged_objects_expire_after_a_day_and_nothing_else_does() {
    let template = Template::load();
    let resources = template.resources();
    let mut staging = Vec::new();
    for (bucket, resource) in resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::S3::Bucket")
    {
        let rules = &resource["Properties"]["LifecycleConfiguration"]["Rules"];
        for rule in strings(rules) {
            let expires = ["ExpirationInDays", "ExpirationDate"]
                .iter()
                .any(|k| rule.get(*k).is_some());
            if !expires {
                continue;
            }
            let prefix = rule["Prefix"]
                .as_str()
                .or(rule["Filter"]["Prefix"].as_str());
            assert_eq!(
                (bucket.as_str(), prefix),
                ("GeneralBucket", Some("staging/")),
                "only staged originals expire: {rule}"
            );
            staging.push(rule);
        }
    }
    assert_eq!(staging.len(), 1, "one expiration rule for staging/");
    assert_eq!(staging[0]["Status"], "Enabled");
    assert_eq!(staging[0]["ExpirationInDays"], 1, "{}", staging[0]);
}

/// The access log names the route, never the path: `/api/shared/media/{code}` carries whole
/// share codes, and reading the logs must not open the links.
#[test]
fn access_logs_name_the_route_never_the_path() {
    let template = Template::load();
    let settings = &template.resources()["HttpApi"]["Properties"]["AccessLogSettings"];
    let format = settings["Format"].as_str().expect("an access log format");
    assert!(format.contains("$context.routeKey"), "{format}");
    assert!(!format.contains("$context.path"), "{format}");
}

/// The code invalidates only on the distribution its environment names, so the variable and
/// the grant go together: a function is given `JOIP_CDN_DISTRIBUTION_ID` (as `!Ref` the
/// distribution, on itself, never in Globals) exactly when its policy allows CreateInvalidation.
/// The policy test checks that the grant is there exactly when the code invalidates.
#[test]
fn the_distribution_id_is_given_to_exactly_the_functions_that_may_invalidate() {
    let template = Template::load();
    let resources = template.resources();
    assert!(
        template.root["Globals"]["Function"]["Environment"]["Variables"]
            .get(CDN_VARIABLE)
            .is_none(),
        "not in Globals: only functions that invalidate"
    );
    let mut given = Vec::new();
    for logical in template.functions().into_values() {
        let properties = &resources[&logical]["Properties"];
        let variable = properties["Environment"]["Variables"].get(CDN_VARIABLE);
        let grants = properties["Policies"]
            .to_string()
            .contains("cloudfront:CreateInvalidation");
        assert_eq!(
            variable.is_some(),
            grants,
            "{logical}: {CDN_VARIABLE} and the CreateInvalidation grant go together"
        );
        if let Some(variable) = variable {
            let distribution = variable["Ref"].as_str().unwrap_or_default();
            assert_eq!(
                resources.get(distribution).map(|r| &r["Type"]),
                Some(&json!("AWS::CloudFront::Distribution")),
                "{logical}: {CDN_VARIABLE} is !Ref the distribution, not {variable}"
            );
            given.push(logical);
        }
    }
    assert!(!given.is_empty(), "someone unpublishes");
}
