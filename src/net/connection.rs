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
//! - **Every request has a deadline.** One that expects a response times out without it; one that
//!   expects none (acks=0 Produce) times out unless fully written in time: a broker that stops
//!   reading (hung, stopped) fills the socket buffers, and the write then neither completes nor
//!   fails.
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

mod reader;
mod setup;
mod task;

#[cfg(not(feature = "tls"))]
pub(crate) use setup::tls_not_built;
use setup::{dial, handshake};
use task::ConnectionTask;

/// Settings of one connection, taken from [`ClientConfig`](crate::ClientConfig).
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    /// Sent in every request header.
    pub client_id: Arc<str>,
    /// Default time allowed for a response once a request is accepted by the connection task (for
    /// a request that expects none, for writing it).
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
                    options.metrics.clone(),
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
