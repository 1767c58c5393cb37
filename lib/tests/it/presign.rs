//! `joip::presign` writes the URL the SDK's own presigner writes, byte for byte: the same
//! endpoint (virtual-hosted, path-style, FIPS, dual-stack, the emulator's), the same key
//! encoding, the same signature, with and without a session token. No network: presigning is
//! computation, so both sides run here with fixed credentials and a fixed clock.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use joip::presign::Presigner;
use std::time::{Duration, SystemTime};

struct Case {
    region: &'static str,
    bucket: &'static str,
    key: &'static str,
    endpoint_url: Option<&'static str>,
    fips: bool,
    dual_stack: bool,
    token: Option<&'static str>,
}

const fn case(region: &'static str, bucket: &'static str, key: &'static str) -> Case {
    Case {
        region,
        bucket,
        key,
        endpoint_url: None,
        fips: false,
        dual_stack: false,
        token: None,
    }
}

fn cases() -> Vec<Case> {
    vec![
        case("us-east-1", "joip-user-media", "users/u1/media/a.jpg"),
        case("eu-west-1", "joip-user-media", "users/u1/media/a.jpg"),
        case(
            "ap-southeast-2",
            "joip-user-media",
            "users/u 1/ä+x%20(1)?.jpg",
        ),
        // Not DNS-compatible with TLS: the resolver goes path-style.
        case("eu-west-1", "joip.user.media", "users/u1/a.png"),
        case(
            "us-west-2",
            "b",
            "sessions/s1/~tilde/*star/'quote'/;semi,comma=eq&amp.gif",
        ),
        Case {
            token: Some("FwoGZXIvYXdzE+/=token"),
            ..case("eu-central-1", "joip-user-media", "users/u1/media/b.mp4")
        },
        Case {
            fips: true,
            ..case("us-east-1", "joip-user-media", "users/u1/media/a.jpg")
        },
        Case {
            dual_stack: true,
            ..case("eu-west-1", "joip-user-media", "users/u1/media/a.jpg")
        },
        Case {
            endpoint_url: Some("http://127.0.0.1:4566"),
            ..case("us-east-1", "joip-user-media", "users/u1/media/a b.jpg")
        },
        Case {
            endpoint_url: Some("http://localhost:4566/"),
            token: Some("local"),
            ..case("eu-west-1", "joip-user-media", "users/u1/x.webp")
        },
    ]
}

fn sdk_config(c: &Case) -> SdkConfig {
    let credentials = Credentials::new(
        "AKIAEXAMPLEEXAMPLE01",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        c.token.map(str::to_string),
        None,
        "test",
    );
    let mut b = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(c.region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .use_fips(c.fips)
        .use_dual_stack(c.dual_stack);
    if let Some(url) = c.endpoint_url {
        b = b.endpoint_url(url);
    }
    b.build()
}

#[tokio::test]
async fn our_presigned_get_is_the_sdks() {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
    for ttl in [
        Duration::from_secs(1),
        Duration::from_secs(3600),
        Duration::from_secs(604_800),
    ] {
        for c in cases() {
            let sdk = sdk_config(&c);
            let client = aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&sdk)
                    .force_path_style(c.endpoint_url.is_some())
                    .build(),
            );
            let theirs = client
                .get_object()
                .bucket(c.bucket)
                .key(c.key)
                .presigned(
                    aws_sdk_s3::presigning::PresigningConfig::builder()
                        .start_time(at)
                        .expires_in(ttl)
                        .build()
                        .unwrap(),
                )
                .await
                .unwrap()
                .uri()
                .to_string();
            let ours = Presigner::new(&sdk, c.endpoint_url.map(str::to_string))
                .get(c.bucket, c.key, ttl, at)
                .await
                .unwrap();
            assert_eq!(ours, theirs, "{} {} {:?}", c.region, c.bucket, c.key);
        }
    }
}

#[tokio::test]
async fn a_presigned_get_without_credentials_is_an_error_not_an_unsigned_url() {
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .build();
    let err = Presigner::new(&sdk, None)
        .get("b", "k", Duration::from_secs(60), SystemTime::now())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("credentials"), "{err}");
}
