//! S3 adapter: put, get, copy (multipart past 5 GB), delete; every object key in [`keys`].

pub mod keys;

use crate::error::BoxError;
use crate::presign::Presigner;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use futures_util::{StreamExt, TryStreamExt};

/// Largest object a single CopyObject can copy (5 GiB); larger ones are copied in parts.
pub const SINGLE_COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;
/// Part size for multipart copies (S3 allows 5 MiB to 5 GiB per part, at most 10,000 parts).
pub const COPY_PART_SIZE: u64 = 512 * 1024 * 1024;
/// Parallel part copies within one multipart copy.
const PART_CONCURRENCY: usize = 8;
/// Parallel deletes when a prefix is emptied.
const DELETE_CONCURRENCY: usize = 16;
/// `Cache-Control` of every public object. Browsers keep it minutes (they cannot be invalidated:
/// an unshare is gone from them within `max-age`); the CDN keeps it long (`s-maxage`) and is
/// invalidated on every removal. A key is never reused, so a cached object never goes stale.
pub const PUBLIC_CACHE_CONTROL: &str = "public, max-age=300, s-maxage=31536000";

/// An S3 operation failed.
#[derive(Debug, thiserror::Error)]
#[error("{op} s3://{bucket}/{key}")]
pub struct BlobError {
    op: &'static str,
    bucket: String,
    key: String,
    #[source]
    source: BoxError,
    /// No retry can fix it: the source object is missing or refused to us, or S3 rejects the
    /// request itself. A copy that fails so must be rolled back, never retried forever.
    pub permanent: bool,
    /// The object does not exist (or no longer has the ETag asked for). `AccessDenied` is not
    /// missing: it is a policy or key mistake, never taken as "already processed".
    pub missing: bool,
}

impl BlobError {
    fn new(
        op: &'static str,
        bucket: &str,
        key: &str,
        err: impl Into<BoxError>,
        permanent: bool,
    ) -> Self {
        Self {
            op,
            bucket: bucket.into(),
            key: key.into(),
            source: err.into(),
            permanent,
            missing: false,
        }
    }

    fn from_sdk<E>(
        op: &'static str,
        bucket: &str,
        key: &str,
        err: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let permanent = source_gone(&err);
        let missing = object_missing(&err);
        Self {
            missing,
            ..Self::new(op, bucket, key, err, permanent)
        }
    }
}

/// Whether an S3 error on reading a *source* object is one no retry can fix. Without
/// `s3:ListBucket` S3 answers a missing key with 403 AccessDenied rather than 404, so both count;
/// a missing bucket (ours) is a deployment fault a retry may fix, never a reason to roll back.
/// HEAD answers carry no error code, only the status.
fn source_gone<E: ProvideErrorMetadata>(
    err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    let code = err.code();
    let status = err.raw_response().map(|r| r.status().as_u16());
    matches!(
        code,
        Some("NoSuchKey" | "NotFound" | "AccessDenied" | "InvalidObjectState" | "NoSuchVersion")
    ) || (code.is_none() && matches!(status, Some(403 | 404)))
}

/// Whether S3 said the object (or the version or ETag asked for) is not there. A bucket that is
/// missing is a deployment fault, not a missing object.
fn object_missing<E: ProvideErrorMetadata>(
    err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    let code = err.code();
    let status = err.raw_response().map(|r| r.status().as_u16());
    matches!(code, Some("NoSuchKey" | "NotFound" | "PreconditionFailed"))
        || (code.is_none() && matches!(status, Some(404 | 412)))
}

/// What makes a copy public: the type sniffed from the source's bytes, and the ETag of those
/// bytes.
#[derive(Clone, Copy, Debug)]
struct Public<'a> {
    content_type: &'a str,
    e_tag: &'a str,
}

/// The first bytes of an object and what S3 says of the whole.
#[derive(Clone, Debug)]
pub struct Head {
    /// Up to the number of bytes asked for.
    pub bytes: Vec<u8>,
    /// The object's whole size, from `Content-Range`.
    pub size: u64,
    /// Its ETag (quoted), to copy exactly these bytes later (`CopySourceIfMatch`).
    pub e_tag: String,
}

/// An object read no further than a limit.
#[derive(Clone, Debug)]
pub enum Bounded {
    /// The whole object, within the limit.
    Whole(Vec<u8>),
    /// Larger than the limit: its size (nothing past the limit was read).
    TooLarge(u64),
}

/// What S3 lists for an object: enough to tell a finished copy from a missing or partial one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size: u64,
    /// The ETag as S3 sends it (quoted).
    pub e_tag: String,
    /// When it was written (epoch seconds), if S3 said.
    pub modified_s: Option<i64>,
}

impl ObjectInfo {
    /// True when `self` (a copy) holds the same bytes as `source`: same size, and the same ETag
    /// unless either was written in parts (a multipart ETag is not a digest of the bytes).
    pub fn same_content(&self, source: &ObjectInfo) -> bool {
        let multipart = |e: &str| e.contains('-');
        self.size == source.size
            && (self.e_tag == source.e_tag || multipart(&self.e_tag) || multipart(&source.e_tag))
    }
}

/// The S3 client and how objects are addressed.
#[derive(Clone, Debug)]
pub struct Blob {
    s3: Client,
    presigner: Presigner,
    single_copy_limit: u64,
    part_size: u64,
}

impl Blob {
    /// Wraps a client built from `sdk`; `endpoint_url` is the emulator's, if any (for presigned
    /// URLs).
    pub fn new(s3: Client, sdk: &aws_config::SdkConfig, endpoint_url: Option<String>) -> Self {
        Self {
            presigner: Presigner::new(sdk, endpoint_url),
            s3,
            single_copy_limit: SINGLE_COPY_LIMIT,
            part_size: COPY_PART_SIZE,
        }
    }

    /// Overrides the single-copy limit and part size (tests exercise multipart copy with small
    /// objects; S3's minimum part size is 5 MiB).
    pub fn with_copy_limits(mut self, single_copy_limit: u64, part_size: u64) -> Self {
        self.single_copy_limit = single_copy_limit;
        self.part_size = part_size;
        self
    }

    /// Copies `src` to `dst` server-side: one CopyObject up to 5 GiB, a multipart copy beyond.
    /// `size` is the source size when known; when unknown, S3's refusal of a too-large single
    /// copy switches to the multipart path. `permanent` is set if no retry can succeed.
    pub async fn copy(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        size: Option<u64>,
    ) -> Result<(), BlobError> {
        self.copy_as(src_bucket, src_key, dst_bucket, dst_key, size, None)
            .await
    }

    /// Copies exactly the bytes of `src` whose ETag is `e_tag` (those its `content_type` was
    /// sniffed from: `CopySourceIfMatch`, so other bytes are `missing`, never copied) to a public
    /// `dst` served as exactly what it is: `content_type`, [`PUBLIC_CACHE_CONTROL`], and none of
    /// the source's metadata, disposition or uploader-given type (`MetadataDirective=REPLACE`).
    pub async fn copy_public(
        &self,
        (src_bucket, src_key): (&str, &str),
        (dst_bucket, dst_key): (&str, &str),
        size: Option<u64>,
        (content_type, e_tag): (&str, &str),
    ) -> Result<(), BlobError> {
        let public = Some(Public {
            content_type,
            e_tag,
        });
        self.copy_as(src_bucket, src_key, dst_bucket, dst_key, size, public)
            .await
    }

    async fn copy_as(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        size: Option<u64>,
        public: Option<Public<'_>>,
    ) -> Result<(), BlobError> {
        if size.is_some_and(|s| s > self.single_copy_limit) {
            return self
                .copy_multipart(src_bucket, src_key, dst_bucket, dst_key, public)
                .await;
        }
        let mut request = self
            .s3
            .copy_object()
            .copy_source(copy_source(src_bucket, src_key))
            .bucket(dst_bucket)
            .key(dst_key);
        if let Some(public) = public {
            request = request
                .copy_source_if_match(public.e_tag)
                .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
                .content_type(public.content_type)
                .cache_control(PUBLIC_CACHE_CONTROL);
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("InvalidRequest") && size.is_none() => {
                // "The specified copy source is larger than the maximum allowable size".
                self.copy_multipart(src_bucket, src_key, dst_bucket, dst_key, public)
                    .await
            }
            Err(e) => Err(BlobError::from_sdk("copy", src_bucket, src_key, e)),
        }
    }

    async fn copy_multipart(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        public: Option<Public<'_>>,
    ) -> Result<(), BlobError> {
        let head = self
            .s3
            .head_object()
            .bucket(src_bucket)
            .key(src_key)
            .send()
            .await
            .map_err(|e| BlobError::from_sdk("head", src_bucket, src_key, e))?;
        let size = head.content_length().unwrap_or(0).max(0) as u64;
        // A multipart copy never carries the source's metadata; a public one gets its headers.
        let content_type = public
            .map(|p| p.content_type)
            .or(head.content_type())
            .map(str::to_string);
        let if_match = public.map(|p| p.e_tag.to_string());
        let upload = self
            .s3
            .create_multipart_upload()
            .bucket(dst_bucket)
            .key(dst_key)
            .set_content_type(content_type)
            .set_cache_control(public.map(|_| PUBLIC_CACHE_CONTROL.to_string()))
            .send()
            .await
            .map_err(|e| BlobError::new("start multipart copy", dst_bucket, dst_key, e, false))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_string();
        let ranges: Vec<(i32, u64, u64)> = (0..size.div_ceil(self.part_size).max(1))
            .map(|i| {
                let start = i * self.part_size;
                let end = (start + self.part_size).min(size).max(1) - 1;
                (i as i32 + 1, start, end)
            })
            .collect();
        let source = copy_source(src_bucket, src_key);
        let parts: Result<Vec<CompletedPart>, BlobError> = futures_util::stream::iter(ranges)
            .map(|(number, start, end)| {
                let source = source.clone();
                let upload_id = upload_id.clone();
                let if_match = if_match.clone();
                async move {
                    let out = self
                        .s3
                        .upload_part_copy()
                        .bucket(dst_bucket)
                        .key(dst_key)
                        .upload_id(upload_id)
                        .part_number(number)
                        .copy_source(source)
                        .copy_source_range(format!("bytes={start}-{end}"))
                        .set_copy_source_if_match(if_match)
                        .send()
                        .await
                        .map_err(|e| BlobError::from_sdk("copy part", src_bucket, src_key, e))?;
                    Ok(CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(
                            out.copy_part_result()
                                .and_then(|r| r.e_tag())
                                .map(str::to_string),
                        )
                        .build())
                }
            })
            .buffered(PART_CONCURRENCY)
            .try_collect()
            .await;
        let completed = match parts {
            Ok(parts) => self
                .s3
                .complete_multipart_upload()
                .bucket(dst_bucket)
                .key(dst_key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    BlobError::new("complete multipart copy", dst_bucket, dst_key, e, false)
                }),
            Err(e) => Err(e),
        };
        if completed.is_err() {
            // Abandoned parts cost storage until aborted (the bucket's lifecycle rule is the backstop).
            let _ = self
                .s3
                .abort_multipart_upload()
                .bucket(dst_bucket)
                .key(dst_key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        completed
    }

    /// Deletes every object under `prefix`; returns how many were deleted.
    ///
    /// One DeleteObject a key, `DELETE_CONCURRENCY` at a time, not DeleteObjects: a quiet
    /// DeleteObjects answers 200 with the keys it failed to delete in its body, and S3 requires a
    /// checksum of its request body, which links the SDK's CRC code and its tables (700 KB of
    /// every function that calls it, measured by tools/bench.sh). This runs on rollbacks, which
    /// are rare and a few dozen keys at most.
    pub async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<usize, BlobError> {
        let mut deleted = 0;
        let mut token = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| BlobError::new("list", bucket, prefix, e, false))?;
            // Owned: a borrowed stream item makes the future higher-ranked, which the runtime
            // refuses.
            let keys: Vec<String> = (page.contents().iter())
                .filter_map(|o| o.key().map(str::to_string))
                .collect();
            deleted += keys.len();
            futures_util::stream::iter(keys)
                .map(|key| async move { self.delete(bucket, &key).await })
                .buffer_unordered(DELETE_CONCURRENCY)
                .try_collect::<()>()
                .await?;
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                return Ok(deleted);
            }
        }
    }

    /// Size and ETag of an object; `None` if it does not exist (or is refused to us, which S3
    /// says instead of 404 to callers without `s3:ListBucket`).
    pub async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>, BlobError> {
        match self.s3.head_object().bucket(bucket).key(key).send().await {
            Ok(out) => Ok(Some(ObjectInfo {
                size: out.content_length().unwrap_or(0).max(0) as u64,
                e_tag: out.e_tag().unwrap_or_default().to_string(),
                modified_s: out.last_modified().map(|d| d.secs()),
            })),
            Err(e) if source_gone(&e) => Ok(None),
            Err(e) => Err(BlobError::new("head", bucket, key, e, false)),
        }
    }

    /// The first `n` bytes of an object (all of it if shorter), with its size and ETag: one
    /// ranged GET.
    pub async fn get_range(&self, bucket: &str, key: &str, n: u64) -> Result<Head, BlobError> {
        let out = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .range(format!("bytes=0-{}", n.max(1) - 1))
            .send()
            .await
            .map_err(|e| BlobError::from_sdk("get range", bucket, key, e))?;
        let e_tag = out.e_tag().unwrap_or_default().to_string();
        let length = out.content_length().unwrap_or(0).max(0) as u64;
        // "bytes 0-63/12345"; an empty object has no range.
        let size = (out.content_range())
            .and_then(|r| r.rsplit('/').next())
            .and_then(|total| total.parse().ok())
            .unwrap_or(length);
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| BlobError::new("read", bucket, key, e, false))?;
        Ok(Head {
            bytes: body.into_bytes().to_vec(),
            size,
            e_tag,
        })
    }

    /// The SHA-256 (lowercase hex) of exactly the object whose ETag is `e_tag` (`If-Match`: other
    /// bytes are `missing`), read as a stream: memory stays bounded whatever the size.
    pub async fn sha256(&self, bucket: &str, key: &str, e_tag: &str) -> Result<String, BlobError> {
        use sha2::Digest;
        let out = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .if_match(e_tag)
            .send()
            .await
            .map_err(|e| BlobError::from_sdk("get for hashing", bucket, key, e))?;
        let mut body = out.body;
        let mut digest = sha2::Sha256::new();
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| BlobError::new("read", bucket, key, e, false))?
        {
            digest.update(&chunk);
        }
        Ok(digest
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }

    /// An object, read no further than `max` bytes and one more: a larger object is
    /// `TooLarge` without being read (a ranged GET, so memory stays bounded whatever the size).
    pub async fn get_bounded(
        &self,
        bucket: &str,
        key: &str,
        max: u64,
    ) -> Result<Bounded, BlobError> {
        let head = self.get_range(bucket, key, max.saturating_add(1)).await?;
        if head.size > max || head.bytes.len() as u64 > max {
            return Ok(Bounded::TooLarge(head.size));
        }
        Ok(Bounded::Whole(head.bytes))
    }

    /// A presigned GET of an object, signed at `now`, valid for `ttl` or until the credentials
    /// that sign it expire, whichever comes first; and when that is.
    pub async fn presigned_get(
        &self,
        bucket: &str,
        key: &str,
        ttl: std::time::Duration,
        now: std::time::SystemTime,
    ) -> Result<(String, std::time::SystemTime), BlobError> {
        self.presigner
            .get_until(bucket, key, ttl, now)
            .await
            .map_err(|e| BlobError::new("presign", bucket, key, e, false))
    }

    /// Every object under `prefix`, by key.
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<std::collections::HashMap<String, ObjectInfo>, BlobError> {
        let mut found = std::collections::HashMap::new();
        let mut token = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| BlobError::new("list", bucket, prefix, e, false))?;
            for object in page.contents() {
                if let Some(key) = object.key() {
                    let info = ObjectInfo {
                        size: object.size().unwrap_or(0).max(0) as u64,
                        e_tag: object.e_tag().unwrap_or_default().to_string(),
                        modified_s: object.last_modified().map(|d| d.secs()),
                    };
                    found.insert(key.to_string(), info);
                }
            }
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                return Ok(found);
            }
        }
    }

    /// Local stand-in for CloudFront: lets anyone GET the general bucket's `community/` objects
    /// (and nothing else: staging stays private), so a `communityUrl` answers on the emulator as
    /// it does through CloudFront. Deployed, template.yaml grants CloudFront alone.
    pub async fn serve_community_publicly(&self, bucket: &str) -> Result<(), BlobError> {
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "LocalCommunityReads",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": format!("arn:aws:s3:::{bucket}/{}*", keys::COMMUNITY_PREFIX),
            }]
        });
        self.s3
            .put_bucket_policy()
            .bucket(bucket)
            .policy(policy.to_string())
            .send()
            .await
            .map_err(|e| BlobError::new("put bucket policy", bucket, "", e, false))?;
        Ok(())
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.s3
    }

    /// Stores `bytes` at `bucket/key` (a private object).
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), BlobError> {
        self.put_with(bucket, key, bytes, content_type, None).await
    }

    /// Stores a public object, served as exactly what it is: `content_type` from its bytes,
    /// [`PUBLIC_CACHE_CONTROL`], no disposition, no user metadata.
    pub async fn put_public(
        &self,
        bucket: &str,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), BlobError> {
        let cache_control = Some(PUBLIC_CACHE_CONTROL);
        self.put_with(bucket, key, bytes, content_type, cache_control)
            .await
    }

    async fn put_with(
        &self,
        bucket: &str,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        cache_control: Option<&str>,
    ) -> Result<(), BlobError> {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .set_cache_control(cache_control.map(str::to_string))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| BlobError::new("put", bucket, key, e, false))?;
        Ok(())
    }

    /// Reads a whole object.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, BlobError> {
        let out = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| BlobError::from_sdk("get", bucket, key, e))?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| BlobError::new("read", bucket, key, e, false))?;
        Ok(body.into_bytes().to_vec())
    }

    /// Deletes an object (absent objects are fine: deletes are idempotent).
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), BlobError> {
        self.s3
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| BlobError::new("delete", bucket, key, e, false))?;
        Ok(())
    }
}

/// `bucket/key` for CopySource, the key percent-encoded (keys may hold any UTF-8).
fn copy_source(bucket: &str, key: &str) -> String {
    let mut out = String::with_capacity(bucket.len() + key.len() + 1);
    out.push_str(bucket);
    out.push('/');
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_source_encodes_the_key_only() {
        assert_eq!(
            super::copy_source("b", "users/u 1/ä+x.jpg"),
            "b/users/u%201/%C3%A4%2Bx.jpg"
        );
    }
}
