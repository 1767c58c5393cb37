//! S3 adapter: put, get, copy (multipart past 5 GB), delete, public URLs.

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

/// An S3 operation failed.
#[derive(Debug, thiserror::Error)]
#[error("{op} s3://{bucket}/{key}: {cause}")]
pub struct BlobError {
    op: &'static str,
    bucket: String,
    key: String,
    cause: String,
    /// The source object does not exist (a copy can never succeed).
    pub missing: bool,
}

impl BlobError {
    fn new<E: std::error::Error>(
        op: &'static str,
        bucket: &str,
        key: &str,
        err: E,
        missing: bool,
    ) -> Self {
        Self {
            op,
            bucket: bucket.into(),
            key: key.into(),
            cause: DisplayErrorContext(&err).to_string(),
            missing,
        }
    }
}

/// The S3 client and the URL community objects are served from.
#[derive(Clone, Debug)]
pub struct Blob {
    s3: Client,
    endpoint_url: Option<String>,
}

impl Blob {
    /// Wraps a client; `endpoint_url` is the emulator's, if any (for object URLs).
    pub fn new(s3: Client, endpoint_url: Option<String>) -> Self {
        Self { s3, endpoint_url }
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.s3
    }

    /// Stores `bytes` at `bucket/key`.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), BlobError> {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
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
            .map_err(|e| {
                let missing = e.as_service_error().is_some_and(|s| s.is_no_such_key());
                BlobError::new("get", bucket, key, e, missing)
            })?;
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

    /// The URL an object is reachable at: path-style on the emulator, virtual-hosted on AWS
    /// (private objects still need a presigned request).
    pub fn object_url(&self, bucket: &str, key: &str) -> String {
        match &self.endpoint_url {
            Some(endpoint) => format!("{}/{bucket}/{key}", endpoint.trim_end_matches('/')),
            None => format!("https://{bucket}.s3.amazonaws.com/{key}"),
        }
    }
}
