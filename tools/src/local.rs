//! The local stack: create the emulator's resources (same settings as template.yaml) and seed demo
//! data. Both are safe to re-run.

use crate::commands::dev_token;
use crate::target::Target;
use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};
use aws_sdk_sqs::types::QueueAttributeName;
use clap::Subcommand;
use joip::domain::{MediaSource, UserId};
use joip::service::media::upload_media;
use joip::service::sessions::{create_session, MediaInput, NewMedia, NewSession};
use joip::store::keys;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum LocalCmd {
    /// Create the table, buckets, queue (+ DLQ) and the S3 -> SQS notification.
    Init {
        /// Queue name for the watermark notifications.
        #[arg(long, env = "JOIP_WATERMARK_QUEUE", default_value = joip::config::local::WATERMARK_QUEUE)]
        queue: String,
    },
    /// Seed demo users, pricing, tags, a community session and an upload (once per table).
    Seed,
    /// Play Lambda's SQS event source for the watermark function: receive the queue's messages,
    /// invoke the function through `cargo lambda watch`, delete only the messages it did not
    /// report as batch item failures (those are redelivered after the visibility timeout).
    Poll {
        /// Queue name for the watermark notifications.
        #[arg(long, env = "JOIP_WATERMARK_QUEUE", default_value = joip::config::local::WATERMARK_QUEUE)]
        queue: String,
        /// Where `cargo lambda watch` listens.
        #[arg(long, default_value = "http://127.0.0.1:9000")]
        api: String,
        /// One receive (up to 10 messages) and stop, instead of polling forever.
        #[arg(long)]
        once: bool,
        /// Seconds a received message stays invisible before it is redelivered (deployed, the
        /// queue's VisibilityTimeout; shorter here so a failed message comes back soon).
        #[arg(long, default_value_t = 30)]
        visibility_timeout: i32,
    },
}

pub async fn run(target: &Target, cmd: LocalCmd) -> Result<Value> {
    match cmd {
        LocalCmd::Init { queue } => init(target, &queue).await,
        LocalCmd::Seed => seed(target).await,
        LocalCmd::Poll {
            queue,
            api,
            once,
            visibility_timeout,
        } => poll(target, &queue, &api, once, visibility_timeout).await,
    }
}

async fn poll(
    target: &Target,
    queue: &str,
    api: &str,
    once: bool,
    visibility_timeout: i32,
) -> Result<Value> {
    let sqs = aws_sdk_sqs::Client::new(&target.sdk);
    let url = sqs
        .get_queue_url()
        .queue_name(queue)
        .send()
        .await
        .context("finding the watermark queue (run `joip-admin local init` first)")?
        .queue_url()
        .unwrap_or_default()
        .to_string();
    let invoke = format!(
        "{}/2015-03-31/functions/watermark/invocations",
        api.trim_end_matches('/')
    );
    let (mut delivered, mut failed) = (0usize, 0usize);
    loop {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(if once { 1 } else { 5 })
            .visibility_timeout(visibility_timeout)
            .send()
            .await
            .context("receiving from the watermark queue")?;
        let messages = out.messages().to_vec();
        if !messages.is_empty() {
            let records: Vec<Value> = messages
                .iter()
                .map(|m| {
                    json!({
                        "messageId": m.message_id(),
                        "receiptHandle": m.receipt_handle(),
                        "body": m.body(),
                        "attributes": {},
                        "messageAttributes": {},
                        "eventSource": "aws:sqs",
                    })
                })
                .collect();
            let event = json!({ "Records": records });
            let invoke = invoke.clone();
            let answer = tokio::task::spawn_blocking(move || -> Result<Value> {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(std::time::Duration::from_secs(300)))
                    .build()
                    .into();
                Ok(agent
                    .post(&invoke)
                    .send_json(&event)?
                    .body_mut()
                    .read_json()?)
            })
            .await?;
            // A function error (crash, timeout, an answer that is not JSON) fails the whole
            // batch, as Lambda's event source does: every message comes back after the
            // visibility timeout. The poller itself goes on.
            let failures: Vec<&str> = match &answer {
                Ok(answer) => answer["batchItemFailures"]
                    .as_array()
                    .map(|f| {
                        f.iter()
                            .filter_map(|i| i["itemIdentifier"].as_str())
                            .collect()
                    })
                    .unwrap_or_default(),
                Err(e) => {
                    eprintln!("joip-admin local poll: the watermark function failed: {e:#}");
                    messages.iter().filter_map(|m| m.message_id()).collect()
                }
            };
            for m in &messages {
                if failures.contains(&m.message_id().unwrap_or_default()) {
                    failed += 1;
                    continue;
                }
                delivered += 1;
                sqs.delete_message()
                    .queue_url(&url)
                    .set_receipt_handle(m.receipt_handle().map(str::to_string))
                    .send()
                    .await
                    .context("deleting a processed message")?;
            }
        }
        if once {
            return Ok(json!({ "delivered": delivered, "failed": failed }));
        }
    }
}

async fn init(target: &Target, queue: &str) -> Result<Value> {
    let app = &target.app;
    joip::store::schema::ensure_table(app.store.client(), &app.config.table)
        .await
        .context("creating the table")?;
    let s3 = app.blob.client();
    // us-east-1 is the one region that takes no location constraint.
    let location = target
        .sdk
        .region()
        .map(|r| r.as_ref())
        .filter(|r| *r != "us-east-1")
        .map(|r| {
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(r))
                .build()
        });
    for bucket in [&app.config.general_bucket, &app.config.user_media_bucket] {
        let created = s3
            .create_bucket()
            .bucket(bucket)
            .set_create_bucket_configuration(location.clone())
            .send()
            .await;
        if let Err(e) = created {
            let owned = e.as_service_error().is_some_and(|s| {
                s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
            });
            if !owned {
                return Err(anyhow::Error::new(e).context(format!("creating bucket {bucket}")));
            }
        }
    }
    app.blob
        .serve_community_publicly(&app.config.general_bucket)
        .await
        .context("letting community objects be read as CloudFront serves them")?;
    let sqs = aws_sdk_sqs::Client::new(&target.sdk);
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{queue}-dlq"))
        .send()
        .await
        .context("creating the dead-letter queue")?
        .queue_url
        .unwrap_or_default();
    let dlq_arn = queue_arn(&sqs, &dlq_url).await?;
    let redrive = json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5" }).to_string();
    let queue_url = sqs
        .create_queue()
        .queue_name(queue)
        .attributes(QueueAttributeName::VisibilityTimeout, "180")
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .context("creating the watermark queue")?
        .queue_url
        .unwrap_or_default();
    let queue_arn = queue_arn(&sqs, &queue_url).await?;
    let filter = NotificationConfigurationFilter::builder()
        .key(
            S3KeyFilter::builder()
                .filter_rules(
                    FilterRule::builder()
                        .name(FilterRuleName::Prefix)
                        .value(joip::blob::keys::STAGING_PREFIX)
                        .build(),
                )
                .build(),
        )
        .build();
    s3.put_bucket_notification_configuration()
        .bucket(&app.config.general_bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(
                    QueueConfiguration::builder()
                        .queue_arn(&queue_arn)
                        .events(Event::from("s3:ObjectCreated:*"))
                        .filter(filter)
                        .build()
                        .context("notification")?,
                )
                .build(),
        )
        .send()
        .await
        .context("wiring the staging prefix to the queue")?;
    // The CDN in front of the community objects (the emulator's, caching as CloudFront does):
    // the functions invalidate it on every removal (JOIP_CDN_DISTRIBUTION_ID, which the scripts
    // take from this answer), and communityUrl points at it.
    let region = target.sdk.region().map_or("us-east-1", |r| r.as_ref());
    let cloudfront = aws_sdk_cloudfront::Client::new(&target.sdk);
    // An emulator without CloudFront's API (LocalStack's community edition) has no CDN: the
    // objects are then read from the bucket, and nothing caches them.
    let distribution =
        joip::cdn::ensure_local_distribution(&cloudfront, &app.config.general_bucket, region)
            .await
            .inspect_err(|e| eprintln!("joip-admin: no CDN on this emulator ({e}); community objects are served from the bucket"))
            .ok();
    Ok(json!({
        "table": app.config.table,
        "generalBucket": app.config.general_bucket,
        "userMediaBucket": app.config.user_media_bucket,
        "queueUrl": queue_url,
        "deadLetterQueueUrl": dlq_url,
        "distributionId": distribution,
    }))
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .with_context(|| format!("reading queue {url}"))?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .with_context(|| format!("queue {url} has no ARN"))
}

const DEMO_PHOTO: &[u8] = include_bytes!("../demo/demo-photo.jpg");
const DEMO_CLIP: &[u8] = include_bytes!("../demo/demo-clip.mp4");
const DEMO_LOOP: &[u8] = include_bytes!("../demo/demo-loop.gif");
const DEMO_UPLOAD: &[u8] = include_bytes!("../demo/demo-upload.png");
const DEMO_TAGS: [&str; 5] = ["brunette", "solo", "lingerie", "artistic", "outdoor"];
const SEED_MARKER: &str = "SEED#demo";

/// The key of the item that records that (and what) the demo data was seeded.
fn seed_marker_key() -> std::collections::HashMap<String, AttributeValue> {
    [keys::PK, keys::SK]
        .into_iter()
        .map(|k| (k.to_string(), AttributeValue::S(SEED_MARKER.into())))
        .collect()
}

async fn seed(target: &Target) -> Result<Value> {
    let app = &target.app;
    let db = app.store.client();
    let marker = db
        .get_item()
        .table_name(&app.config.table)
        .set_key(Some(seed_marker_key()))
        .consistent_read(true)
        .send()
        .await
        .context("reading the seed marker")?;
    if let Some(summary) = marker
        .item
        .and_then(|i| i.get("summary").and_then(|v| v.as_s().ok()).cloned())
    {
        let mut summary: Value = serde_json::from_str(&summary)?;
        summary["alreadySeeded"] = json!(true);
        return refresh_tokens(app, summary);
    }

    let alice = UserId::parse("demo-user-1").expect("valid id");
    let bob = UserId::parse("demo-user-2").expect("valid id");
    app.store.create_user(&alice, 100, true).await?;
    app.store.create_user(&bob, 25, false).await?;
    app.store
        .put_pricing(joip::service::save_session::PRICED_FEATURE, 10, false)
        .await?;
    for slug in DEMO_TAGS {
        let slug = joip::domain::TagSlug::parse(slug).expect("valid slug");
        app.store
            .put_tag(slug.as_str(), &slug.default_name())
            .await?;
    }
    let upload = |name: &str, bytes: &[u8], caption: &str| NewMedia {
        input: MediaInput::Upload {
            file_name: name.into(),
            bytes: bytes.to_vec(),
        },
        caption: Some(caption.into()),
    };
    let session = create_session(
        app,
        NewSession {
            owner: alice.clone(),
            title: "Sunset warm-up".into(),
            category: Some("relaxation".into()),
            settings: json!({ "intervalSeconds": 8, "shuffle": false, "transition": "fade" }),
            metadata: json!({ "description": "A short demo session shared to the community" }),
            is_public: true,
            shared_to_community: true,
            is_imported: false,
            subreddits: vec!["EarthPorn".into()],
            media: vec![
                upload("demo-photo.jpg", DEMO_PHOTO, "Breathe in"),
                upload("demo-clip.mp4", DEMO_CLIP, "Watch closely"),
                upload("demo-loop.gif", DEMO_LOOP, "Loop"),
                NewMedia {
                    input: MediaInput::External {
                        url: "https://images.example.com/demo/remote.jpg".into(),
                    },
                    caption: Some("Hosted elsewhere".into()),
                },
            ],
        },
    )
    .await?;
    let media = upload_media(
        app,
        &alice,
        "demo-upload.png",
        DEMO_UPLOAD.to_vec(),
        MediaSource::Upload,
        None,
    )
    .await?;
    // Shared as the web client would: the upload to the community, and a generated GIF. Both are
    // pending until the publisher (the watermark function, which `tools/dev.sh`'s poller feeds)
    // makes them public: the upload watermarked, the GIF copied as is.
    let share = |tags: &[&str]| joip::service::share::ShareRequest {
        file_path: joip::http::Field::Absent,
        share_to_community: true,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        policy_agreed: true,
        expires_in: joip::http::Field::Absent,
        max_views: joip::http::Field::Absent,
    };
    let shared_upload =
        joip::service::share::share_media(app, &alice, media.media_id, &share(&["solo"]))
            .await
            .map_err(|e| anyhow::anyhow!("sharing the demo upload: {}", joip::error::Report(&e)))?;
    let gif = upload_media(
        app,
        &alice,
        "demo-loop.gif",
        DEMO_LOOP.to_vec(),
        MediaSource::SmartCaption,
        None,
    )
    .await?;
    let shared_gif =
        joip::service::share::share_media(app, &alice, gif.media_id, &share(&["artistic"]))
            .await
            .map_err(|e| anyhow::anyhow!("sharing the demo GIF: {}", joip::error::Report(&e)))?;
    let summary = json!({
        "users": [
            { "userId": alice, "credits": 100, "isPremium": true },
            { "userId": bob, "credits": 25, "isPremium": false },
        ],
        "communitySessionId": session,
        "mediaId": media.media_id,
        "shareCode": shared_upload.share_code,
        "gifMediaId": gif.media_id,
        "gifShareCode": shared_gif.share_code,
        "gifCommunityMediaId": shared_gif.community.map(|(id, _)| id),
        "tags": DEMO_TAGS,
    });
    db.put_item()
        .table_name(&app.config.table)
        .set_item(Some(seed_marker_key()))
        .item("summary", AttributeValue::S(summary.to_string()))
        .send()
        .await
        .context("writing the seed marker")?;
    refresh_tokens(app, summary)
}

/// Adds a fresh dev token to each seeded user (tokens are never stored).
fn refresh_tokens(app: &joip::App, mut summary: Value) -> Result<Value> {
    if let Some(users) = summary["users"].as_array_mut() {
        for u in users {
            let id = u["userId"]
                .as_str()
                .and_then(UserId::parse)
                .context("seeded user id")?;
            u["token"] = json!(dev_token(app, &id));
        }
    }
    Ok(summary)
}
