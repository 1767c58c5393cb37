//! Faults at the SDK level: the k-th DynamoDB, S3 or CloudFront call of an App fails as a network
//! fails one, before the request lands (nothing applied) or after it (applied, the answer lost).
//! One interceptor on every client counts their calls together, so a sweep over k reaches every
//! call a use case makes (an unshare's invalidation included), in the order it makes them.

use aws_sdk_dynamodb::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use joip::App;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Where an injected fault strikes its call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The connection drops before the request lands: nothing is applied, and the SDK does not
    /// retry (what a 5xx after the SDK's last attempt, or a refused connection, looks like).
    BeforeSend,
    /// The request is applied, then the connection drops: the caller sees an error for a call
    /// that happened (a write whose outcome it cannot know).
    AnswerLost,
}

/// Counts every DynamoDB and S3 call of the clients it is on (clones share the count) and fails
/// the `nth` (1-based) with `fault`. `usize::MAX` counts and fails nothing.
#[derive(Clone, Debug)]
pub struct FailNth {
    pub nth: usize,
    pub fault: Fault,
    calls: Arc<Mutex<Vec<String>>>,
    /// The operation whose answer is to be lost, by the address of its config bag: one bag per
    /// operation, alive (and pinned) from its first interceptor hook to its last.
    doomed: Arc<AtomicUsize>,
    injected: Arc<Mutex<Option<String>>>,
}

impl FailNth {
    pub fn new(nth: usize, fault: Fault) -> Self {
        Self {
            nth,
            fault,
            calls: Arc::default(),
            doomed: Arc::default(),
            injected: Arc::default(),
        }
    }

    /// Counts, fails nothing.
    pub fn counter() -> Self {
        Self::new(usize::MAX, Fault::BeforeSend)
    }

    /// The calls sent so far, by operation name, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// The call the fault struck (`"{n} {operation}"`), if it was reached.
    pub fn injected(&self) -> Option<String> {
        self.injected.lock().unwrap().clone()
    }
}

/// The SDK operation an HTTP request is: DynamoDB names it, S3 is told by method and query.
fn operation(request: &aws_sdk_dynamodb::config::http::HttpRequest) -> String {
    let headers = request.headers();
    if let Some(target) = headers.get("x-amz-target") {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    if request.uri().contains("/2020-05-31/distribution/") {
        return "CreateInvalidation".to_string(); // the one CloudFront call the code makes
    }
    let query = request.uri().split_once('?').map_or("", |(_, q)| q);
    let name = match request.method() {
        "PUT" if headers.contains_key("x-amz-copy-source") && query.contains("partNumber") => {
            "UploadPartCopy"
        }
        "PUT" if headers.contains_key("x-amz-copy-source") => "CopyObject",
        "PUT" if query.contains("policy") => "PutBucketPolicy",
        "PUT" => "PutObject",
        "HEAD" => "HeadObject",
        "GET" if query.contains("list-type") => "ListObjectsV2",
        "GET" => "GetObject",
        "DELETE" => "DeleteObject",
        "POST" if query.contains("delete") => "DeleteObjects",
        other => other,
    };
    name.to_string()
}

impl Intercept for FailNth {
    fn name(&self) -> &'static str {
        "FailNth"
    }

    // Once per operation, after serialization and before the retry loop: an error here is not
    // retried, and the SDK reports it as a dispatch failure (the connection went away).
    fn read_after_serialization(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = operation(context.request());
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(name.clone());
            calls.len()
        };
        if n != self.nth {
            return Ok(());
        }
        *self.injected.lock().unwrap() = Some(format!("{n} {name}"));
        match self.fault {
            Fault::BeforeSend => {
                Err(format!("injected fault: call {n} ({name}) never sent").into())
            }
            Fault::AnswerLost => {
                self.doomed
                    .store(cfg as *const ConfigBag as usize, Ordering::SeqCst);
                Ok(())
            }
        }
    }

    // Once per operation, after its last attempt: an error here replaces its result.
    fn read_after_execution(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let me = cfg as *const ConfigBag as usize;
        if self
            .doomed
            .compare_exchange(me, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return Err("injected fault: the connection dropped after the call was applied".into());
        }
        Ok(())
    }
}

impl super::TestEnv {
    /// Another App on the same table and buckets whose DynamoDB, S3 and CloudFront clients all
    /// run `interceptor` (one count for all), with fresh id ranges.
    pub fn app_with_interceptor(&self, interceptor: FailNth) -> App {
        let db = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&self.sdk)
                .interceptor(interceptor.clone())
                .build(),
        );
        let s3 = aws_sdk_s3::Client::from_conf(
            App::s3_config(&self.app.config, &self.sdk)
                .interceptor(interceptor.clone())
                .build(),
        );
        let cloudfront = aws_sdk_cloudfront::Client::from_conf(
            aws_sdk_cloudfront::config::Builder::from(&self.sdk)
                .interceptor(interceptor)
                .build(),
        );
        let mut app = App::from_clients(self.app.config.clone(), &self.sdk, db, s3);
        let distribution = self.app.config.cdn_distribution_id.clone();
        app.cdn = joip::cdn::Cdn::new(cloudfront, distribution);
        app
    }
}
