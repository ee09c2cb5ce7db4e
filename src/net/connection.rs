//! One connection to one broker (plain TCP or TLS): its set-up, a task that owns the stream, and a
//! cloneable handle.
//!
//! Set-up, bounded as a whole by `socket.connection.setup.timeout.ms`:
//! TCP connect → TLS handshake (`SSL`, `SASL_SSL`) → ApiVersions → SASL (`SASL_*`) → ready.
//!
//! The task is the only code that reads or writes the socket. Callers encode their request in their
//! own task, hand the frame to the connection task over a bounded channel with a oneshot for the
//! answer, and decode the answer in their own task. Consequences, all deliberate:
//!
//! - **No torn frames.** A caller that drops its future drops only a oneshot receiver. A request not
//!   yet written is skipped (its receiver is closed); one already written is answered into the void.
//! - **Pipelining.** Up to `max_in_flight` requests are on the wire at once. Kafka answers in order on
//!   a connection, so each response must carry the correlation id at the front of the in-flight queue;
//!   anything else is a protocol violation that closes the connection.
//! - **Outcome-unknown on failure.** On any I/O or framing error, or a request timeout (as in the Java
//!   client, a timed-out request closes its connection), every request written or being written fails
//!   with [`Error::ConnectionLost`] `{ outcome_unknown: true }` (or [`Error::Timeout`] for the one that
//!   timed out, [`Error::Protocol`] for the one whose response broke the protocol); requests still
//!   queued fail with `outcome_unknown: false`. The handle reports [`Connection::is_closed`] before
//!   any caller hears of the failure, so a caller that retries at once gets a fresh connection.
//! - **Bounded memory.** The response length prefix is checked against `max_response_size` before a
//!   buffer is reserved for it.
//!
//! The read and write sides are polled in one `select!` with cancellation-safe operations
//! (`read_buf`, `write`), so a large request being written never stops responses from being read:
//! a broker blocked on writing a response to us cannot deadlock against us writing to it.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;
use tracing::{debug, trace, warn, Instrument};

use crate::error::{BrokerRef, Error, Result};
use crate::metrics::registry::{nanos, NodeCells};
use crate::metrics::ClientMetrics;
use crate::protocol::codec::{
    decode_response, encode_request, response_correlation_id, ApiRequest, EncodedRequest,
};
use crate::protocol::frame::split_frame;
use crate::protocol::versions::ApiVersions;
use crate::security::SecurityProtocol;

use super::sasl::reauth::Reauthenticator;
use super::sasl::{exchange, Authenticator};
#[cfg(feature = "tls")]
use super::tls::TlsConnector;
use super::transport::Transport;

/// Settings of one connection, taken from [`ClientConfig`](crate::ClientConfig).
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    /// Sent in every request header.
    pub client_id: Arc<str>,
    /// Default time allowed for a response once a request is accepted by the connection task.
    pub request_timeout: Duration,
    /// Time allowed for the whole set-up: TCP connect, TLS handshake, ApiVersions, SASL.
    pub setup_timeout: Duration,
    /// Largest response frame accepted.
    pub max_response_size: usize,
    /// Requests on the wire at once; further requests wait in the channel.
    pub max_in_flight: usize,
    /// How the connection is protected and authenticated (plaintext by default).
    pub security: ConnectionSecurity,
    /// Where the connection counts its requests, latencies and lifecycle (one per client).
    pub metrics: ClientMetrics,
}

/// The security settings a connection applies during set-up, built once per client from its
/// config and shared by every connection.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ConnectionSecurity {
    /// `security.protocol`.
    pub protocol: SecurityProtocol,
    /// The TLS connector: set exactly when `protocol` uses TLS.
    #[cfg(feature = "tls")]
    pub tls: Option<TlsConnector>,
    /// SASL: set exactly when `protocol` uses SASL. Authenticates each connection after
    /// ApiVersions and re-authenticates it before the broker's session ends (KIP-368).
    pub sasl: Option<Arc<Authenticator>>,
}

impl ConnectionOptions {
    /// Options from a client config. Reads the TLS trust and key material the config names, so
    /// build these once per client.
    pub fn from_config(config: &crate::ClientConfig) -> Result<Self> {
        #[cfg(feature = "tls")]
        let tls = if config.security_protocol.uses_tls() {
            Some(TlsConnector::new(&config.tls)?)
        } else {
            None
        };
        #[cfg(not(feature = "tls"))]
        if config.security_protocol.uses_tls() {
            return Err(tls_not_built());
        }
        Ok(ConnectionOptions {
            client_id: Arc::from(config.client_id.as_str()),
            request_timeout: config.request_timeout,
            setup_timeout: config.connection_setup_timeout,
            max_response_size: config.max_response_size,
            max_in_flight: config.max_in_flight_per_connection,
            security: ConnectionSecurity {
                protocol: config.security_protocol,
                #[cfg(feature = "tls")]
                tls,
                sasl: match config.security_protocol.uses_sasl() {
                    true => Some(Arc::new(Authenticator::from_config(config)?)),
                    false => None,
                },
            },
            metrics: ClientMetrics::new(&config.client_id, config.metrics_enabled),
        })
    }
}

/// What a caller hands the connection task.
struct Envelope {
    request: EncodedRequest,
    timeout: Duration,
    /// Gets the response frame (length prefix removed), or an empty `Bytes` once written for a
    /// request that expects no response.
    reply: oneshot::Sender<Result<Bytes>>,
    /// The caller's `kafka.request` span (if any), which learns the correlation id.
    span: tracing::Span,
}

/// A handle to a broker connection. Cheap to clone; the connection closes when the last handle
/// is dropped and the requests in flight are answered.
#[derive(Clone, Debug)]
pub struct Connection {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    tx: mpsc::Sender<Envelope>,
    broker: BrokerRef,
    versions: ApiVersions,
    options: ConnectionOptions,
    /// Set by [`Connection::close`]: the task stops at once, whatever it still holds.
    stop: Arc<Notify>,
}

impl Connection {
    /// Dials `addr`, performs the ApiVersions handshake, and starts the connection task.
    ///
    /// Cancellation: dropping this future before it completes closes the socket; nothing else
    /// was sent.
    pub async fn connect(
        addr: &str,
        node_id: Option<i32>,
        options: ConnectionOptions,
    ) -> Result<Connection> {
        let broker = BrokerRef {
            node_id,
            addr: addr.to_owned(),
        };
        let setup = async {
            let tcp = dial(addr, &broker).await?;
            // Each transport gets its own monomorphized set-up and connection task, so plaintext
            // pays nothing for TLS existing.
            #[cfg(feature = "tls")]
            if let Some(tls) = &options.security.tls {
                let stream = tls.handshake(tcp, &broker).await?;
                return Connection::set_up(stream, broker.clone(), options.clone()).await;
            }
            Connection::set_up(tcp, broker.clone(), options.clone()).await
        };
        match tokio::time::timeout(options.setup_timeout, setup).await {
            Ok(result) => result,
            Err(_) => Err(Error::Connect {
                broker,
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "connection setup took longer than {:?} (socket.connection.setup.timeout.ms)",
                        options.setup_timeout
                    ),
                ),
            }),
        }
    }

    /// The set-up steps after TCP connect, in order, then the connection task. Each step owns the
    /// stream until the next takes it over; the connection task starts only once all passed.
    async fn set_up<S: Transport>(
        mut stream: S,
        broker: BrokerRef,
        options: ConnectionOptions,
    ) -> Result<Connection> {
        let versions = handshake(&mut stream, &broker, &options).await?;
        // SASL (SASL_PLAINTEXT, SASL_SSL) authenticates here: after ApiVersions, which tells which
        // SaslHandshake/SaslAuthenticate versions the broker speaks, and before any other request.
        let reauth = match &options.security.sasl {
            Some(authenticator) => {
                let net = &options.metrics.0.net;
                let session_lifetime = match exchange::authenticate(
                    &mut stream,
                    authenticator,
                    &versions,
                    &broker,
                    options.client_id.clone(),
                    options.max_response_size,
                )
                .await
                {
                    Ok(lifetime) => {
                        net.successful_authentication_total.fetch_add(1, Relaxed);
                        lifetime
                    }
                    Err(e) => {
                        if matches!(e, Error::Authentication { .. }) {
                            net.failed_authentication_total.fetch_add(1, Relaxed);
                        }
                        return Err(e);
                    }
                };
                Some(Reauthenticator::new(
                    authenticator.clone(),
                    versions.clone(),
                    broker.clone(),
                    options.client_id.clone(),
                    session_lifetime,
                ))
            }
            None => None,
        };
        debug!(%broker, protocol = %options.security.protocol, "connected");
        let (tx, rx) = mpsc::channel(options.max_in_flight.max(16));
        let net = &options.metrics.0.net;
        net.connection_creation_total.fetch_add(1, Relaxed);
        net.connection_count.fetch_add(1, Relaxed);
        let task = ConnectionTask {
            broker: broker.clone(),
            max_response_size: options.max_response_size,
            max_in_flight: options.max_in_flight,
            request_timeout: options.request_timeout,
            metrics: options.metrics.clone(),
            node: options
                .metrics
                .0
                .enabled
                .then(|| net.node(broker.node_id.unwrap_or(-1))),
            latency: options.metrics.0.enabled.then(|| {
                ::metrics::histogram!(
                    "kafka.request.latency",
                    "client-id" => options.client_id.to_string(),
                    "node-id" => format!("node-{}", broker.node_id.unwrap_or(-1)),
                )
            }),
        };
        let stop = Arc::new(Notify::new());
        tokio::spawn(task.run(stream, rx, reauth, stop.clone()));
        Ok(Connection {
            shared: Arc::new(Shared {
                tx,
                broker,
                versions,
                options,
                stop,
            }),
        })
    }

    /// The broker at the other end.
    pub fn broker(&self) -> &BrokerRef {
        &self.shared.broker
    }

    /// What the broker advertised in ApiVersions.
    pub fn versions(&self) -> &ApiVersions {
        &self.shared.versions
    }

    /// True once the connection task has stopped (after an error or a close); such a connection
    /// fails every request, and the pool replaces it.
    pub fn is_closed(&self) -> bool {
        self.shared.tx.is_closed()
    }

    /// Stops the connection now, for an owner that promises nothing more is sent once it closed
    /// (the producer's `close`). When this returns the task writes nothing more, not even the
    /// rest of a request it took earlier: requests written (or partly written) fail as outcome
    /// unknown, queued ones as not sent, and every handle sees [`Connection::is_closed`].
    pub async fn close(&self) {
        // A stored permit: the task sees it even if it is not waiting at this moment.
        self.shared.stop.notify_one();
        // The task closes its channel the moment it stops, before answering anyone.
        self.shared.tx.closed().await;
    }

    /// The highest version of `R` both sides speak.
    pub fn version_for<R: ApiRequest>(&self) -> Result<i16> {
        self.shared.versions.choose(R::KEY, &self.shared.broker)
    }

    /// Sends `request` at the highest common version and decodes the response.
    ///
    /// Cancellation: dropping the future never tears a frame. If the request was not yet written it
    /// is not sent; if it was, the broker still processes it and the response is discarded.
    pub async fn send<R: ApiRequest>(&self, request: &R) -> Result<R::Response> {
        let version = self.version_for::<R>()?;
        self.send_version(request, version, None).await
    }

    /// Sends `request` at `version` with an optional timeout other than `request.timeout.ms`
    /// (a long-polling Fetch or JoinGroup needs more), and decodes the response.
    ///
    /// Cancellation: as [`Connection::send`].
    pub async fn send_version<R: ApiRequest>(
        &self,
        request: &R,
        version: i16,
        timeout: Option<Duration>,
    ) -> Result<R::Response> {
        let span = request_span(R::KEY, version, &self.shared.broker);
        let result = async {
            let encoded = encode_request(request, version, &self.shared.options.client_id)?;
            let frame = self.send_encoded(encoded, timeout).await?;
            decode_response::<R>(frame, version, Some(&self.shared.broker))
        }
        .instrument(span.clone())
        .await;
        if let Err(e) = &result {
            span.record("error", tracing::field::display(e));
        }
        result
    }

    /// Sends an already encoded request and returns the raw response frame (length prefix removed,
    /// header included), or an empty `Bytes` once written if the request expects no response.
    ///
    /// Cancellation: as [`Connection::send`].
    pub async fn send_encoded(
        &self,
        request: EncodedRequest,
        timeout: Option<Duration>,
    ) -> Result<Bytes> {
        self.submit(request, timeout).await?.await
    }

    /// Hands an encoded request to the connection task and returns a future for its response,
    /// without waiting for it. Requests submitted one after another from one task reach the wire
    /// in that order, which the idempotent producer relies on (the broker checks sequence numbers
    /// in arrival order); awaiting the responses can then happen elsewhere.
    ///
    /// Cancellation: dropping this call's future before it resolves means the request was not
    /// queued; dropping the returned [`PendingResponse`] is as dropping [`Connection::send`].
    pub async fn submit(
        &self,
        request: EncodedRequest,
        timeout: Option<Duration>,
    ) -> Result<PendingResponse> {
        let api = request.api_key;
        let (reply, response) = oneshot::channel();
        let envelope = Envelope {
            request,
            timeout: timeout.unwrap_or(self.shared.options.request_timeout),
            reply,
            span: tracing::Span::current(),
        };
        if self.shared.tx.send(envelope).await.is_err() {
            return Err(Error::ConnectionLost {
                api: Some(crate::error::ApiKey::from_protocol(api)),
                broker: self.shared.broker.clone(),
                outcome_unknown: false,
                reason: "connection already closed".into(),
            });
        }
        Ok(PendingResponse {
            api,
            broker: self.shared.broker.clone(),
            response,
        })
    }
}

/// The `debug` span of one broker request: API, version, broker, and (recorded by the connection
/// task when it takes the request) the correlation id; `error` when it failed. Its duration is
/// the request's, queueing and decoding included. Names follow the OpenTelemetry messaging
/// conventions where they have one (`messaging.system`).
pub(crate) fn request_span(api: ApiKey, version: i16, broker: &BrokerRef) -> tracing::Span {
    tracing::debug_span!(
        "kafka.request",
        messaging.system = "kafka",
        api = ?api,
        version,
        node = broker.node_id.unwrap_or(-1),
        correlation_id = tracing::field::Empty,
        error = tracing::field::Empty,
    )
}

/// The response to a [`Connection::submit`]ted request: the raw frame (length prefix removed), or
/// an empty `Bytes` once written for a request that expects no response.
#[derive(Debug)]
#[must_use = "a pending response reports whether the request succeeded"]
pub struct PendingResponse {
    api: ApiKey,
    broker: BrokerRef,
    response: oneshot::Receiver<Result<Bytes>>,
}

impl std::future::Future for PendingResponse {
    type Output = Result<Bytes>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let api = self.api;
        std::pin::Pin::new(&mut self.response).poll(cx).map(|r| {
            // The task always answers an envelope it took; a dropped sender means it died mid-way.
            r.unwrap_or_else(|_| {
                Err(Error::ConnectionLost {
                    api: Some(crate::error::ApiKey::from_protocol(api)),
                    broker: self.broker.clone(),
                    outcome_unknown: true,
                    reason: "connection task ended".into(),
                })
            })
        })
    }
}

/// Exchanges ApiVersions on a fresh socket, before the connection task takes it over.
///
/// Sends the highest ApiVersions version josefk knows; a broker that does not know it answers with
/// error UNSUPPORTED_VERSION in the v0 format, listing the ApiVersions versions it does speak, and the
/// request is sent once more at that version (KIP-511).
async fn handshake<S: Transport>(
    stream: &mut S,
    broker: &BrokerRef,
    options: &ConnectionOptions,
) -> Result<ApiVersions> {
    let mut version = ApiKey::ApiVersions.valid_versions().max;
    let mut buf = BytesMut::with_capacity(4096);
    for correlation_id in [-1, -2] {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("josefk"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut encoded = encode_request(&request, version, &options.client_id)?;
        encoded.set_correlation_id(correlation_id);
        let io_lost = |e: std::io::Error| {
            // TLS 1.3 lets the broker refuse a client certificate only after the client's
            // handshake finished: the refusal arrives here, as an alert.
            #[cfg(feature = "tls")]
            if S::NEEDS_FLUSH && super::tls::tls_cause(&e).is_some() {
                return super::tls::explain(&e, broker, false);
            }
            Error::ConnectionLost {
                api: Some(crate::error::ApiKey::ApiVersions),
                broker: broker.clone(),
                outcome_unknown: true,
                reason: e.to_string(),
            }
        };
        stream.write_all(&encoded.frame).await.map_err(io_lost)?;
        stream.flush().await.map_err(io_lost)?;
        let frame = loop {
            match split_frame(&mut buf, options.max_response_size) {
                Ok(Some(frame)) => break frame.freeze(),
                Ok(None) => {}
                Err(e) => {
                    return Err(
                        not_tls_expected::<S>(&buf, broker).unwrap_or(Error::Protocol {
                            api: Some(crate::error::ApiKey::ApiVersions),
                            broker: Some(broker.clone()),
                            message: e.to_string(),
                        }),
                    )
                }
            }
            if stream.read_buf(&mut buf).await.map_err(io_lost)? == 0 {
                if let Some(e) = not_tls_expected::<S>(&buf, broker) {
                    return Err(e);
                }
                let mut e = io_lost(std::io::ErrorKind::UnexpectedEof.into());
                if let Error::ConnectionLost { reason, .. } = &mut e {
                    reason.push_str(
                        ": the broker closed the connection before answering ApiVersions (a TLS \
                         or SASL listener does this to a client that skips its handshake: check \
                         the port and `security.protocol`)",
                    );
                }
                return Err(e);
            }
        };
        if response_correlation_id(&frame) != Some(correlation_id) {
            return Err(Error::Protocol {
                api: Some(crate::error::ApiKey::ApiVersions),
                broker: Some(broker.clone()),
                message: "ApiVersions response carries the wrong correlation id".into(),
            });
        }
        let response =
            match decode_response::<ApiVersionsRequest>(frame.clone(), version, Some(broker)) {
                Ok(r) if r.error_code == 0 => return Ok(ApiVersions::from_response(&r)),
                Ok(r) => r,
                // An error answer is in the v0 format whatever version was asked for. If it is
                // not that either, the first error (at the version asked) says more.
                Err(first) => decode_v0_api_versions(frame, broker).map_err(|_| first)?,
            };
        const UNSUPPORTED_VERSION: i16 = 35;
        if response.error_code != UNSUPPORTED_VERSION {
            return Error::check_code(ApiKey::ApiVersions, Some(broker), response.error_code, None)
                .map(|()| ApiVersions::from_response(&response));
        }
        let theirs = ApiVersions::from_response(&response);
        version = theirs.choose(ApiKey::ApiVersions, broker)?;
    }
    Err(Error::Protocol {
        api: Some(crate::error::ApiKey::ApiVersions),
        broker: Some(broker.clone()),
        message: "broker refused every ApiVersions version offered".into(),
    })
}

/// The error for `security.protocol=SSL` in a build without TLS.
#[cfg(not(feature = "tls"))]
pub(crate) fn tls_not_built() -> Error {
    Error::Config(
        "`security.protocol=SSL` needs josefk's `tls` cargo feature (on by default; its crypto \
         provider builds on x86_64 and aarch64)"
            .into(),
    )
}

/// On a plaintext set-up, an answer that starts like a TLS record (handshake or alert, version
/// 3.x) means the port is a TLS listener: say so instead of reporting a 350 MB frame.
fn not_tls_expected<S: Transport>(received: &[u8], broker: &BrokerRef) -> Option<Error> {
    let looks_like_tls = matches!(received, [0x15 | 0x16, 0x03, ..]);
    (!S::NEEDS_FLUSH && looks_like_tls).then(|| Error::Tls {
        broker: broker.clone(),
        message: "the broker answered with TLS: this port is a TLS listener; set \
                  `security.protocol=SSL` (or SASL_SSL) and the `ssl.*` settings"
            .into(),
    })
}

/// Dials `addr` over TCP.
async fn dial(addr: &str, broker: &BrokerRef) -> Result<TcpStream> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| Error::Connect {
            broker: broker.clone(),
            source,
        })?;
    // Requests are written whole; Nagle would only delay small ones.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Decodes an ApiVersions response frame in the v0 format (header: correlation id only), through
/// the same bounds pre-check as every other response.
fn decode_v0_api_versions(frame: Bytes, broker: &BrokerRef) -> Result<ApiVersionsResponse> {
    decode_response::<ApiVersionsRequest>(frame, 0, Some(broker))
}

/// A request on the wire (or being written), waiting for its response.
struct InFlight {
    correlation_id: i32,
    api: ApiKey,
    /// When the connection task took the request (request latency starts here).
    accepted: Instant,
    deadline: Instant,
    timeout: Duration,
    /// `None` for the connection's own re-authentication requests, answered inside the task.
    reply: Option<oneshot::Sender<Result<Bytes>>>,
}

/// A frame waiting to be written. `reply` is set only for requests that expect no response: they
/// are answered once their last byte is written.
struct PendingWrite {
    frame: Bytes,
    reply: Option<oneshot::Sender<Result<Bytes>>>,
}

/// Why the connection task stopped.
enum Closed {
    /// All handles were dropped and nothing was left in flight.
    Finished,
    /// [`Connection::close`]: stop writing at once.
    Stopped,
    /// I/O error or EOF: everything in flight has an unknown outcome.
    Broken(Error),
    /// The response to the oldest request in flight broke the protocol (over the size cap, wrong
    /// correlation id): that request gets this error, the rest have an unknown outcome.
    Violation(Error),
    /// A request passed its deadline.
    TimedOut {
        correlation_id: i32,
        api: ApiKey,
        after: Duration,
    },
}

/// The state owned by the connection task.
struct ConnectionTask {
    broker: BrokerRef,
    max_response_size: usize,
    max_in_flight: usize,
    /// Deadline of the connection's own re-authentication requests.
    request_timeout: Duration,
    metrics: ClientMetrics,
    /// This broker's request cells (`None` with `metrics.enabled=false`).
    node: Option<Arc<NodeCells>>,
    /// Request latency in ms as a `metrics` facade histogram (`kafka.request.latency`; a no-op
    /// without a recorder), registered once per connection so each answer costs one `record`.
    latency: Option<::metrics::Histogram>,
}

/// Reads are done into at least this much spare room, so small responses need one syscall.
const READ_CHUNK: usize = 64 * 1024;

impl ConnectionTask {
    /// `reauth` is set for SASL connections (kept out of `self`: the session it holds is `Send`
    /// but not `Sync`).
    async fn run<S: Transport>(
        self,
        stream: S,
        mut rx: mpsc::Receiver<Envelope>,
        mut reauth: Option<Reauthenticator>,
        stop: Arc<Notify>,
    ) {
        let (mut reader, mut writer) = stream.split();
        // Bytes a TLS writer accepted but may not have sent yet (see `Transport::NEEDS_FLUSH`).
        let mut unflushed = false;
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut writes: VecDeque<PendingWrite> = VecDeque::new();
        let mut read_buf = BytesMut::with_capacity(READ_CHUNK);
        let mut next_correlation_id: i32 = 0;
        let mut accepting = true;
        // Requests of this connection counted in the node's `requests-in-flight`.
        let mut counted_in_flight: i64 = 0;

        let closed = 'task: loop {
            if let Some(node) = &self.node {
                let now_in_flight = in_flight.len() as i64;
                if now_in_flight != counted_in_flight {
                    node.requests_in_flight
                        .fetch_add(now_in_flight - counted_in_flight, Relaxed);
                    counted_in_flight = now_in_flight;
                }
            }
            if !accepting && in_flight.is_empty() && writes.is_empty() {
                break Closed::Finished;
            }
            if read_buf.capacity() - read_buf.len() < READ_CHUNK / 4 {
                read_buf.reserve(READ_CHUNK);
            }
            // Requests may carry different timeouts (a long-polling Fetch), so the earliest
            // deadline is not necessarily the oldest request's.
            let deadline = in_flight.iter().map(|f| f.deadline).min();
            // A request that expects an answer is counted once, in `in_flight`, while it is also
            // being written; `writes` bounds the rest (acks=0 frames).
            let room = in_flight.len() < self.max_in_flight && writes.len() < self.max_in_flight;
            // While re-authenticating (KIP-368) the connection takes no new requests; the ones
            // already queued go out first and are answered before the re-authentication.
            let reauth_idle = reauth.as_ref().is_none_or(Reauthenticator::is_idle);
            tokio::select! {
                biased;
                _ = stop.notified() => break Closed::Stopped,
                read = reader.read_buf(&mut read_buf) => match read {
                    Ok(0) => break Closed::Broken(self.lost("broker closed the connection")),
                    Ok(_) => loop {
                        match self.dispatch_responses(&mut read_buf, &mut in_flight) {
                            Ok(None) => break,
                            Ok(Some(reauth_answer)) => {
                                let next = match reauth.as_mut() {
                                    Some(reauth) => reauth.on_response(reauth_answer),
                                    None => Ok(None),
                                };
                                match next {
                                    Ok(Some(request)) => {
                                        next_correlation_id = next_correlation_id.wrapping_add(1);
                                        push_own_request(
                                            request,
                                            next_correlation_id,
                                            self.request_timeout,
                                            &mut in_flight,
                                            &mut writes,
                                        );
                                    }
                                    Ok(None) => {}
                                    Err(e) => break 'task Closed::Broken(e),
                                }
                            }
                            Err(e) => break 'task Closed::Violation(e),
                        }
                    },
                    Err(e) => break Closed::Broken(self.lost(&e.to_string())),
                },
                step = write_or_flush(&mut writer, writes.front().map(|w| &w.frame[..])),
                    if !writes.is_empty() || unflushed =>
                {
                    match step {
                        Ok(WriteStep::Wrote(0)) => {
                            break Closed::Broken(self.lost("socket closed while writing"))
                        }
                        Ok(WriteStep::Wrote(n)) => {
                            unflushed = S::NEEDS_FLUSH;
                            let front = writes.front_mut().expect("checked non-empty");
                            front.frame.advance(n);
                            if front.frame.is_empty() {
                                let done = writes.pop_front().expect("checked non-empty");
                                if let Some(reply) = done.reply {
                                    let _ = reply.send(Ok(Bytes::new()));
                                }
                            }
                        }
                        Ok(WriteStep::Flushed) => unflushed = false,
                        Err(e) => break Closed::Broken(self.lost(&e.to_string())),
                    }
                }
                request = next_reauth_request(reauth.as_mut()), if accepting => match request {
                    Ok(request) => {
                        next_correlation_id = next_correlation_id.wrapping_add(1);
                        push_own_request(
                            request,
                            next_correlation_id,
                            self.request_timeout,
                            &mut in_flight,
                            &mut writes,
                        );
                    }
                    Err(e) => break Closed::Broken(e),
                },
                envelope = rx.recv(), if accepting && room && reauth_idle => match envelope {
                    None => accepting = false,
                    Some(envelope) => {
                        // The caller gave up before its request reached the wire: do not send it.
                        if envelope.reply.is_closed() {
                            continue;
                        }
                        next_correlation_id = next_correlation_id.wrapping_add(1);
                        let Envelope { mut request, timeout, reply, span } = envelope;
                        request.set_correlation_id(next_correlation_id);
                        span.record("correlation_id", next_correlation_id);
                        trace!(api = ?request.api_key, correlation_id = next_correlation_id, "send");
                        let frame = request.frame.freeze();
                        if let Some(node) = &self.node {
                            node.requests_sent.fetch_add(1, Relaxed);
                            node.outgoing_bytes.fetch_add(frame.len() as u64, Relaxed);
                        }
                        if request.expects_response {
                            let accepted = Instant::now();
                            in_flight.push_back(InFlight {
                                correlation_id: next_correlation_id,
                                api: request.api_key,
                                accepted,
                                deadline: accepted + timeout,
                                timeout,
                                reply: Some(reply),
                            });
                            writes.push_back(PendingWrite { frame, reply: None });
                        } else {
                            writes.push_back(PendingWrite { frame, reply: Some(reply) });
                        }
                    }
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    let expired = in_flight
                        .iter()
                        .min_by_key(|f| f.deadline)
                        .expect("deadline implies in-flight");
                    break Closed::TimedOut {
                        correlation_id: expired.correlation_id,
                        api: expired.api,
                        after: expired.timeout,
                    };
                }
            }
        };
        if let Some(node) = &self.node {
            node.requests_in_flight
                .fetch_sub(counted_in_flight, Relaxed);
        }
        let net = &self.metrics.0.net;
        net.connection_close_total.fetch_add(1, Relaxed);
        net.connection_count.fetch_sub(1, Relaxed);
        self.fail_all(closed, in_flight, writes, rx).await;
    }

    /// Answers every complete response frame in `buf`, in order, stopping early at an answer to
    /// the connection's own re-authentication, which it returns.
    fn dispatch_responses(
        &self,
        buf: &mut BytesMut,
        in_flight: &mut VecDeque<InFlight>,
    ) -> Result<Option<Bytes>> {
        loop {
            let frame = match split_frame(buf, self.max_response_size) {
                Ok(Some(frame)) => frame.freeze(),
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(self.violation(in_flight.front().map(|f| f.api), e.to_string()))
                }
            };
            let Some(id) = response_correlation_id(&frame) else {
                return Err(self.violation(
                    in_flight.front().map(|f| f.api),
                    "response shorter than its correlation id".into(),
                ));
            };
            let Some(expected) = in_flight.pop_front() else {
                return Err(self.violation(
                    None,
                    format!("response with correlation id {id} while no request is in flight"),
                ));
            };
            if id != expected.correlation_id {
                let message = format!(
                    "response correlation id {id} does not match the oldest request in flight ({})",
                    expected.correlation_id
                );
                let api = Some(expected.api);
                in_flight.push_front(expected);
                return Err(self.violation(api, message));
            }
            trace!(api = ?expected.api, correlation_id = id, len = frame.len(), "receive");
            if let Some(node) = &self.node {
                let took = expected.accepted.elapsed();
                // Before the stat: a snapshot never counts more answers than the histogram.
                if let Some(latency) = &self.latency {
                    latency.record(took.as_secs_f64() * 1e3);
                }
                node.request_latency.record(nanos(took));
                node.incoming_bytes.fetch_add(frame.len() as u64, Relaxed);
            }
            match expected.reply {
                Some(reply) => {
                    let _ = reply.send(Ok(frame));
                }
                None => return Ok(Some(frame)),
            }
        }
    }

    /// Fails everything the task still holds, with errors that say whether each request may have
    /// reached the broker, then drains the channel so queued callers hear back too.
    async fn fail_all(
        &self,
        closed: Closed,
        in_flight: VecDeque<InFlight>,
        writes: VecDeque<PendingWrite>,
        mut rx: mpsc::Receiver<Envelope>,
    ) {
        // The request whose own failure closed the connection (by correlation id; `None` means the
        // oldest in flight), and its error.
        let mut culprit: Option<i32> = None;
        let (reason, mut own_error) = match closed {
            Closed::Finished => {
                debug!(broker = %self.broker, "connection closed by its handles");
                return;
            }
            Closed::Stopped => {
                debug!(broker = %self.broker, "connection stopped by its owner");
                ("connection closed by its owner".to_owned(), None)
            }
            Closed::Broken(e) => {
                warn!(broker = %self.broker, error = %e, "connection failed");
                // Each request's own error names the connection and the request; the reason
                // adds only why, so the message says each thing once.
                let reason = match e {
                    Error::ConnectionLost { reason, .. } => reason,
                    other => other.to_string(),
                };
                (reason, None)
            }
            Closed::Violation(e) => {
                warn!(broker = %self.broker, error = %e, "connection failed");
                (e.to_string(), Some(e))
            }
            Closed::TimedOut {
                correlation_id,
                api,
                after,
            } => {
                culprit = Some(correlation_id);
                warn!(broker = %self.broker, ?api, "request timed out; closing connection");
                let api_key = crate::error::ApiKey::from_protocol(api);
                let error = Error::Timeout {
                    api: Some(api_key),
                    broker: Some(self.broker.clone()),
                    after,
                    outcome_unknown: !api_key.only_reads(),
                };
                (format!("{api:?} request timed out"), Some(error))
            }
        };
        // Closed before anyone is answered: a caller woken by its error may run on another thread
        // and must already see `is_closed()`, or a retry through the pool reuses this connection.
        rx.close();
        for f in in_flight {
            let is_culprit = culprit.is_none_or(|id| id == f.correlation_id);
            let error =
                own_error
                    .take_if(|_| is_culprit)
                    .unwrap_or_else(|| Error::ConnectionLost {
                        api: Some(crate::error::ApiKey::from_protocol(f.api)),
                        broker: self.broker.clone(),
                        outcome_unknown: true,
                        reason: reason.clone(),
                    });
            if let Some(reply) = f.reply {
                let _ = reply.send(Err(error));
            }
        }
        for w in writes {
            if let Some(reply) = w.reply {
                let _ = reply.send(Err(self.lost(&reason)));
            }
        }
        while let Some(envelope) = rx.recv().await {
            let _ = envelope.reply.send(Err(Error::ConnectionLost {
                api: Some(crate::error::ApiKey::from_protocol(envelope.request.api_key)),
                broker: self.broker.clone(),
                outcome_unknown: false,
                reason: reason.clone(),
            }));
        }
    }

    /// The error for the connection as a whole breaking.
    fn lost(&self, reason: &str) -> Error {
        Error::ConnectionLost {
            api: None,
            broker: self.broker.clone(),
            outcome_unknown: true,
            reason: reason.to_owned(),
        }
    }

    /// The error for a broker that broke the protocol.
    fn violation(&self, api: Option<ApiKey>, message: String) -> Error {
        Error::Protocol {
            api: api.map(crate::error::ApiKey::from_protocol),
            broker: Some(self.broker.clone()),
            message,
        }
    }
}

/// Queues one of the connection's own requests (re-authentication) behind everything queued.
fn push_own_request(
    mut request: EncodedRequest,
    correlation_id: i32,
    timeout: Duration,
    in_flight: &mut VecDeque<InFlight>,
    writes: &mut VecDeque<PendingWrite>,
) {
    request.set_correlation_id(correlation_id);
    trace!(api = ?request.api_key, correlation_id, "send (re-authentication)");
    let accepted = Instant::now();
    in_flight.push_back(InFlight {
        correlation_id,
        api: request.api_key,
        accepted,
        deadline: accepted + timeout,
        timeout,
        reply: None,
    });
    writes.push_back(PendingWrite {
        frame: request.frame.freeze(),
        reply: None,
    });
}

/// The next re-authentication request, or never for a connection without SASL.
async fn next_reauth_request(reauth: Option<&mut Reauthenticator>) -> Result<EncodedRequest> {
    match reauth {
        Some(reauth) => reauth.next_request().await,
        None => std::future::pending().await,
    }
}

/// What one turn of the write side did.
enum WriteStep {
    /// Bytes of the front frame handed to the stream.
    Wrote(usize),
    /// Everything handed over before is on the socket.
    Flushed,
}

/// Writes part of `front`, or, with nothing left to write, flushes what the stream buffered (only
/// TLS buffers: while frames remain, each `write` also pushes out what it buffered). Both are
/// cancellation-safe: a write not completed wrote nothing.
async fn write_or_flush<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut W,
    front: Option<&[u8]>,
) -> std::io::Result<WriteStep> {
    match front {
        Some(bytes) => writer.write(bytes).await.map(WriteStep::Wrote),
        None => writer.flush().await.map(|()| WriteStep::Flushed),
    }
}

/// Sleeps until `deadline`, or forever without one (the `select!` guard disables that branch).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
