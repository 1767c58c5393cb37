//! The connections a function's first request needs, opened during init. On AWS the first call
//! to DynamoDB or S3 after a cold start pays a TCP and TLS handshake (hundreds of milliseconds at
//! 128 MB, most of the first request); made here, it is paid before the first event is taken,
//! and the request finds the connection in the HTTP client's pool.
//!
//! Each connection is opened with the cheapest call the function's IAM policy already grants:
//! an item or index read of a key no item has (DynamoDB bills it as one half read request unit:
//! $0.06 a million cold starts on demand), or a HEAD of a key no object has (one S3 GET-class
//! request, 404 or 403: $0.40 a million). Nothing is written and nothing fails init: a call that
//! cannot connect is logged and the first request connects as it did before.
//!
//! Lambda freezes the environment between events; the pool drops a connection idle for longer
//! than its idle timeout (hyper's 90 s), which DynamoDB's own idle close (about 60 s) may beat.
//! A request after such an idle pays one handshake: nothing inside a frozen function can keep a
//! connection open, and opening one again when the next event arrives is the handshake itself.
//!
//! Parallel probes of one service do not by themselves leave one connection each: the HTTP
//! client races a new connection against the pool, so a probe whose handshake is slower than a
//! sibling's whole call takes the sibling's connection, and its own finishes in the background,
//! maybe after the first event has arrived (which then opens one more). So the probes' bodies
//! are held ([`Gate`]) until every probe is being sent on a connection of its own: a connection
//! is busy until its request's body is sent, so none can be shared.

use crate::app::App;
use crate::blob::keys as object_keys;
use crate::config::OPEN_CONNECTIONS_TIMEOUT_MS;
use crate::store::keys;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

/// A service a function's first request calls, and how many of its calls run at once (each
/// needs a connection of its own: the SDK speaks HTTP/1.1 to both services).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// The table, through item reads (functions granted `dynamodb:GetItem`).
    Table(usize),
    /// The table's GSI1, through queries (the listings, granted only `dynamodb:Query` on it).
    Index(usize),
    /// The general bucket (community, sessions and staging objects): a host of its own.
    GeneralBucket,
    /// The private user-media bucket: a host of its own.
    UserMediaBucket,
}

impl Peer {
    fn connections(self) -> usize {
        match self {
            Peer::Table(n) | Peer::Index(n) => n,
            Peer::GeneralBucket | Peer::UserMediaBucket => 1,
        }
    }
}

/// What opening the connections did, for the log and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Opened {
    /// Calls that got an answer (any status: the connection is open and pooled).
    pub answered: usize,
    /// Calls that failed to connect or did not finish within the time allowed.
    pub failed: usize,
}

impl App {
    /// Opens the connections `peers` need before the first request (see the module's doc),
    /// waiting at most [`OPEN_CONNECTIONS_TIMEOUT_MS`]. Never fails: what could not be opened is
    /// logged, and the request that needs it opens it.
    pub async fn open_connections(&self, peers: &[Peer]) -> Opened {
        if !self.config.open_connections {
            return Opened::default();
        }
        // A handful per function (a constant of its main.rs), all at once: parallel calls on an
        // empty pool each open a connection of their own.
        let calls = peers
            .iter()
            .flat_map(|&peer| std::iter::repeat_n(peer, peer.connections()))
            .map(|peer| async move { (peer, self.probe(peer).await) });
        let total = peers.iter().map(|p| p.connections()).sum::<usize>();
        // The table's probes carry a body, and wait for each other (see the module's doc); the
        // buckets' are one connection per host and a HEAD, bodiless, so they never wait.
        let table_probes = peers
            .iter()
            .filter(|p| matches!(p, Peer::Table(_) | Peer::Index(_)))
            .map(|p| p.connections())
            .sum::<usize>();
        let all = futures_util::future::join_all(calls);
        let all = async {
            if table_probes > 1 {
                GATE.scope(Arc::new(Gate::new(table_probes)), all).await
            } else {
                all.await
            }
        };
        let wait = Duration::from_millis(OPEN_CONNECTIONS_TIMEOUT_MS);
        let Ok(results) = tokio::time::timeout(wait, all).await else {
            tracing::warn!(
                timeout_ms = OPEN_CONNECTIONS_TIMEOUT_MS,
                "connections not all opened at start: the first request opens the rest"
            );
            return Opened {
                answered: 0,
                failed: total,
            };
        };
        let mut opened = Opened::default();
        for (peer, result) in results {
            match result {
                Ok(()) => opened.answered += 1,
                Err(error) => {
                    opened.failed += 1;
                    tracing::warn!(?peer, %error, "could not open a connection at start");
                }
            }
        }
        tracing::debug!(?opened, "connections opened at start");
        opened
    }

    /// One cheap call to `peer`. Any answer, an error status included (a policy without the
    /// read, a missing key), means the connection was made.
    async fn probe(&self, peer: Peer) -> Result<(), String> {
        match peer {
            Peer::Table(_) => answered(
                self.store
                    .client()
                    .get_item()
                    .table_name(self.store.table())
                    .key(keys::PK, AttributeValue::S(keys::CONNECTION_PROBE.into()))
                    .key(keys::SK, AttributeValue::S(keys::CONNECTION_PROBE.into()))
                    .send()
                    .await,
            ),
            Peer::Index(_) => answered(
                self.store
                    .client()
                    .query()
                    .table_name(self.store.table())
                    .index_name(keys::GSI1)
                    .key_condition_expression("gsi1pk = :pk")
                    .expression_attribute_values(
                        ":pk",
                        AttributeValue::S(keys::CONNECTION_PROBE.into()),
                    )
                    .limit(1)
                    .send()
                    .await,
            ),
            Peer::GeneralBucket | Peer::UserMediaBucket => {
                let bucket = match peer {
                    Peer::GeneralBucket => &self.config.general_bucket,
                    _ => &self.config.user_media_bucket,
                };
                answered(
                    self.blob
                        .client()
                        .head_object()
                        .bucket(bucket)
                        .key(object_keys::CONNECTION_PROBE)
                        .send()
                        .await,
                )
            }
        }
    }
}

/// Ok when the service answered at all.
fn answered<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<(), String>
where
    SdkError<E, R>: std::error::Error,
{
    match result {
        Ok(_) | Err(SdkError::ServiceError(_)) => Ok(()),
        Err(e) => Err(aws_smithy_types::error::display::DisplayErrorContext(&e).to_string()),
    }
}

tokio::task_local! {
    /// The gate the probes running in this task's scope wait at, set by `open_connections`.
    static GATE: Arc<Gate>;
}

/// Releases the bodies of `need` requests once all of them are being sent, each on the
/// connection it holds until its body is sent.
#[derive(Debug)]
struct Gate {
    need: usize,
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    arrived: usize,
    waiting: Vec<Waker>,
}

impl Gate {
    fn new(need: usize) -> Self {
        Self {
            need,
            state: Mutex::default(),
        }
    }

    /// Ready once `need` bodies have arrived; `arrived` is the caller's own flag, so that a body
    /// polled again is counted once.
    fn poll_open(&self, arrived: &mut bool, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !*arrived {
            *arrived = true;
            state.arrived += 1;
            if state.arrived >= self.need {
                state.waiting.drain(..).for_each(Waker::wake);
            }
        }
        if state.arrived >= self.need {
            return Poll::Ready(());
        }
        state.waiting.push(cx.waker().clone());
        Poll::Pending
    }
}

/// A request body of bytes that is sent once its gate opens.
struct GatedBody {
    gate: Arc<Gate>,
    arrived: bool,
    data: Option<Bytes>,
}

impl http_body::Body for GatedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        ready!(this.gate.poll_open(&mut this.arrived, cx));
        Poll::Ready(
            this.data
                .take()
                .map(|data| Ok(http_body::Frame::data(data))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// The SDK's HTTP client with init's probes held at their gate: every request made inside
/// `open_connections` with a body goes through it; any other request passes as it is.
#[derive(Debug)]
pub(crate) struct ProbeGated(pub(crate) SharedHttpClient);

impl HttpClient for ProbeGated {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(GatedConnector(self.0.http_connector(settings, components)))
    }

    fn validate_base_client_config(
        &self,
        components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        self.0.validate_base_client_config(components, cfg)
    }

    fn connector_metadata(
        &self,
    ) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

#[derive(Debug)]
struct GatedConnector(SharedHttpConnector);

impl HttpConnector for GatedConnector {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        if let Ok(gate) = GATE.try_with(Arc::clone) {
            let body = request.body().bytes().filter(|b| !b.is_empty());
            if let Some(data) = body.map(Bytes::copy_from_slice) {
                *request.body_mut() = SdkBody::from_body_1_x(GatedBody {
                    gate,
                    arrived: false,
                    data: Some(data),
                });
            }
        }
        self.0.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Count(std::sync::atomic::AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn the_gate_opens_when_the_last_body_arrives_and_wakes_the_others() {
        let gate = Gate::new(3);
        let woken = Arc::new(Count(0.into()));
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        let (mut a, mut b, mut c) = (false, false, false);
        assert!(gate.poll_open(&mut a, &mut cx).is_pending());
        // Polled again, the same body is not counted twice.
        assert!(gate.poll_open(&mut a, &mut cx).is_pending());
        assert!(gate.poll_open(&mut b, &mut cx).is_pending());
        assert_eq!(woken.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert!(gate.poll_open(&mut c, &mut cx).is_ready());
        assert_eq!(woken.0.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert!(gate.poll_open(&mut a, &mut cx).is_ready());
        assert!(gate.poll_open(&mut b, &mut cx).is_ready());
    }
}
