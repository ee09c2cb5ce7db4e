//! Bootstrapping a [`Cluster`] the way Java's clients wait for their first metadata: the
//! bootstrap addresses must resolve (Java refuses a `bootstrap.servers` with none resolvable when
//! the client is built), and while no broker answers, ask again after the backoff until the
//! caller's deadline (`max.block.ms` for a producer, `default.api.timeout.ms` otherwise), so a
//! service that starts before Kafka does not fail at once. A failure no retry can mend
//! (credentials, TLS, configuration, a peer that is not Kafka) ends it at once.

use tokio::time::Instant;
use tracing::debug;

use super::{Cluster, TopicsQuery};
use crate::config::ClientConfig;
use crate::error::{ApiKey, Error, Result};

impl Cluster {
    /// [`Cluster::connect`], asked again after the backoff while it fails retriably, until
    /// `deadline`. Past it: the last failure (a retriable error naming every address and its
    /// cause), or [`Error::Timeout`] on Metadata if the deadline cut the first attempt.
    pub async fn connect_by(config: ClientConfig, deadline: Instant) -> Result<Cluster> {
        config.validate()?;
        // The caller's whole bound, as its own timeout errors state it.
        let bound = deadline.saturating_duration_since(Instant::now());
        let timed_out = || Error::Timeout {
            api: Some(ApiKey::Metadata),
            broker: None,
            after: bound,
            outcome_unknown: false,
        };
        match tokio::time::timeout_at(deadline, resolvable(&config)).await {
            Ok(resolved) => resolved?,
            Err(_) => return Err(timed_out()),
        }
        let cluster = Cluster::unconnected(config)?;
        let mut backoff = cluster.retry_backoff();
        let mut last = None;
        loop {
            let attempt = cluster.refresh_metadata(TopicsQuery::None);
            let e = match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(_)) => return Ok(cluster),
                Ok(Err(e)) if e.is_retriable() => e,
                Ok(Err(e)) => return Err(e),
                // The deadline cut this attempt: the last one that ended says more.
                Err(_) => {
                    return Err(last
                        .map_or_else(timed_out, |e| with_listener_hint(e, &cluster.inner.config)))
                }
            };
            let wake = crate::clock::from_now(backoff.next_delay());
            if wake >= deadline {
                return Err(with_listener_hint(e, &cluster.inner.config));
            }
            debug!(error = %e, "no bootstrap broker answered yet; asking again");
            last = Some(e);
            tokio::time::sleep_until(wake).await;
        }
    }
}

/// A client without SASL whose Metadata request makes the broker hang up (after ApiVersions
/// was answered) is most likely on a SASL listener, which closes connections that skip
/// authentication: say so, as the ApiVersions set-up does for TLS and SASL mix-ups.
fn with_listener_hint(e: Error, config: &ClientConfig) -> Error {
    use crate::security::SecurityProtocol::{Plaintext, Ssl};
    match e {
        Error::ConnectionLost {
            api: Some(ApiKey::Metadata),
            broker,
            outcome_unknown,
            mut reason,
        } if matches!(config.security_protocol, Plaintext | Ssl) => {
            reason.push_str(
                " (a SASL listener closes the connection of a client that does not \
                 authenticate: check the port and `security.protocol`)",
            );
            Error::ConnectionLost {
                api: Some(ApiKey::Metadata),
                broker,
                outcome_unknown,
                reason,
            }
        }
        other => other,
    }
}

/// Refuses a `bootstrap.servers` of which no address resolves (Java: "No resolvable bootstrap
/// urls given in bootstrap.servers"): a misspelt host is a configuration error, not something to
/// retry until a timeout.
async fn resolvable(config: &ClientConfig) -> Result<()> {
    let mut failures = Vec::new();
    for addr in &config.bootstrap_servers {
        match tokio::net::lookup_host(addr.as_str()).await {
            Ok(mut found) => match found.next() {
                Some(_) => return Ok(()),
                None => failures.push(format!("{addr}: no address")),
            },
            Err(e) => failures.push(format!("{addr}: {e}")),
        }
    }
    Err(Error::Config(format!(
        "no address in `bootstrap.servers` resolves ({})",
        failures.join("; ")
    )))
}
