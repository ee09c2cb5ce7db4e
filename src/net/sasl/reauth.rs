//! Re-authentication (KIP-368) as the connection task sees it: when the broker granted a session
//! lifetime, a new SASL exchange is due at a random 85–95 % of it (as in Java, so connections
//! opened together do not re-authenticate together).
//!
//! The task stops taking new requests while [`Reauthenticator::is_idle`] is false, sends the
//! requests [`Reauthenticator::next_request`] yields behind whatever is already queued, and hands
//! the answers to them (which arrive after the answers to everything sent before) to
//! [`Reauthenticator::on_response`]. Nothing the callers sent is failed, dropped or reordered.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tracing::debug;

use crate::error::{BrokerRef, Result};
use crate::net::sasl::exchange::{Progress, SaslExchange};
use crate::net::sasl::{Authenticator, SaslSession};
use crate::protocol::codec::EncodedRequest;
use crate::protocol::versions::ApiVersions;
use crate::security::SaslMechanism;

type SessionFuture =
    Pin<Box<dyn Future<Output = Result<(SaslMechanism, Box<dyn SaslSession>)>> + Send>>;

enum State {
    /// Authenticated; the next exchange is due at `at` (never, for `None`).
    Waiting { at: Option<Instant> },
    /// Getting a session (possibly fetching a token).
    Preparing(SessionFuture),
    /// The exchange is on the wire.
    Exchanging(SaslExchange),
}

/// One connection's re-authentication schedule and exchange.
pub(crate) struct Reauthenticator {
    authenticator: Arc<Authenticator>,
    versions: ApiVersions,
    broker: BrokerRef,
    client_id: Arc<str>,
    state: State,
    /// The client's metric cells (`successful-reauthentication-total`).
    metrics: crate::metrics::ClientMetrics,
}

/// When to re-authenticate a session of `lifetime` that started now.
fn due(lifetime: Option<Duration>) -> Option<Instant> {
    let lifetime = lifetime?;
    let mut raw = [0u8; 4];
    // Without OS randomness the middle of the window is as good.
    let unit = match getrandom::fill(&mut raw) {
        Ok(()) => f64::from(u32::from_le_bytes(raw)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    };
    Some(crate::clock::from_now(lifetime.mul_f64(0.85 + 0.10 * unit)))
}

impl Reauthenticator {
    /// The schedule after the set-up exchange granted `session_lifetime`.
    pub(crate) fn new(
        authenticator: Arc<Authenticator>,
        versions: ApiVersions,
        broker: BrokerRef,
        client_id: Arc<str>,
        session_lifetime: Option<Duration>,
        metrics: crate::metrics::ClientMetrics,
    ) -> Self {
        Reauthenticator {
            authenticator,
            versions,
            broker,
            client_id,
            metrics,
            state: State::Waiting {
                at: due(session_lifetime),
            },
        }
    }

    /// A schedule whose exchange `exchange` is already on the wire (the fuzz target feeds it
    /// answers without a runtime).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn exchanging(
        authenticator: Arc<Authenticator>,
        versions: ApiVersions,
        broker: BrokerRef,
        client_id: Arc<str>,
        exchange: SaslExchange,
        metrics: crate::metrics::ClientMetrics,
    ) -> Self {
        Reauthenticator {
            authenticator,
            versions,
            broker,
            client_id,
            metrics,
            state: State::Exchanging(exchange),
        }
    }

    /// Whether the connection may take new requests (no exchange due or under way).
    pub(crate) fn is_idle(&self) -> bool {
        match self.state {
            State::Waiting { at } => at.is_none_or(|at| Instant::now() < at),
            _ => false,
        }
    }

    /// Waits until the exchange is due, prepares it, and returns its first request. Pending
    /// forever while an exchange is on the wire or none is ever due.
    ///
    /// Cancellation-safe: progress is kept in `self`.
    pub(crate) async fn next_request(&mut self) -> Result<EncodedRequest> {
        loop {
            match &mut self.state {
                State::Waiting { at: Some(at) } => {
                    tokio::time::sleep_until(*at).await;
                    debug!(broker = %self.broker, "re-authenticating");
                    let authenticator = self.authenticator.clone();
                    let broker = self.broker.clone();
                    self.state =
                        State::Preparing(Box::pin(
                            async move { authenticator.session(&broker).await },
                        ));
                }
                State::Waiting { at: None } | State::Exchanging(_) => {
                    std::future::pending::<()>().await
                }
                State::Preparing(session) => {
                    let (mechanism, session) = session.await?;
                    let (exchange, request) = SaslExchange::start(
                        mechanism,
                        session,
                        &self.versions,
                        &self.broker,
                        self.client_id.clone(),
                    )?;
                    self.state = State::Exchanging(exchange);
                    return Ok(request);
                }
            }
        }
    }

    /// Feeds the answer to the last re-authentication request; returns the next one to send, or
    /// `None` once re-authenticated (the connection takes requests again).
    pub(crate) fn on_response(&mut self, frame: Bytes) -> Result<Option<EncodedRequest>> {
        let State::Exchanging(exchange) = &mut self.state else {
            return Err(crate::Error::Protocol {
                api: None,
                broker: Some(self.broker.clone()),
                message: "re-authentication answer while none is under way".into(),
            });
        };
        match exchange.on_response(frame)? {
            Progress::Send(request) => Ok(Some(request)),
            Progress::Done { session_lifetime } => {
                self.authenticator.count_reauthentication();
                self.metrics
                    .0
                    .net
                    .successful_reauthentication_total
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                debug!(broker = %self.broker, ?session_lifetime, "re-authenticated");
                self.state = State::Waiting {
                    at: due(session_lifetime),
                };
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_falls_within_85_to_95_percent_of_the_lifetime() {
        assert!(due(None).is_none());
        let lifetime = Duration::from_secs(100);
        for _ in 0..50 {
            let start = Instant::now();
            let at = due(Some(lifetime)).unwrap();
            let after = at.duration_since(start);
            assert!(after >= Duration::from_secs(85), "{after:?}");
            assert!(
                after <= Duration::from_secs(95) + Duration::from_millis(50),
                "{after:?}"
            );
        }
        // A broker granting i64::MAX ms: far in the future, not an overflow panic in the
        // connection task.
        let at = due(Some(Duration::from_millis(i64::MAX as u64))).unwrap();
        assert!(at > Instant::now() + Duration::from_secs(86_400 * 365));
    }
}
