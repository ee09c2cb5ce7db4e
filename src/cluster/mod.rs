//! The shared view of the cluster that every role uses: bootstrap, metadata (topic → partitions →
//! leader and leader epoch), coordinators, and the connection pool.
//!
//! [`Cluster`] is a cheap `Clone` over an `Arc`. Metadata lives in an immutable
//! [`MetadataSnapshot`] swapped whole on refresh. Refreshes happen on demand: when a role asks about a
//! topic the snapshot lacks, when the snapshot is older than `metadata.max.age.ms`, and when a
//! response says it is stale (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION,
//! FENCED/UNKNOWN_LEADER_EPOCH — see [`is_stale_metadata_error`]); retries back off between
//! `retry.backoff.ms` and `retry.backoff.max.ms`.

mod bootstrap;
pub mod coordinator;
pub mod metadata;
pub(crate) mod telemetry;
mod topic_name;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;
use tracing::debug;

use coordinator::coordinator_in;
#[cfg_attr(not(feature = "unstable-internals"), allow(unused_imports))] // the tests' facade
pub use coordinator::{CoordinatorCache, CoordinatorKind};
#[cfg_attr(not(feature = "unstable-internals"), allow(unused_imports))] // the tests' facade
pub use metadata::{BrokerInfo, MetadataSnapshot, PartitionInfo, TopicInfo};
#[cfg_attr(not(feature = "unstable-internals"), allow(unused_imports))] // the tests' facade
pub use topic_name::{validate_topic_name, MAX_TOPIC_NAME_LENGTH};

use crate::config::ClientConfig;
use crate::error::{BrokerRef, Error, ErrorClass, Result};
use crate::net::{BrokerPool, Connection, Endpoint, Lane};
use crate::state::backoff::Backoff;

/// True for errors that mean the client's metadata is out of date and a refresh may fix the request.
pub fn is_stale_metadata_error(code: ResponseError) -> bool {
    matches!(
        code,
        ResponseError::NotLeaderOrFollower
            | ResponseError::UnknownTopicOrPartition
            | ResponseError::LeaderNotAvailable
            | ResponseError::FencedLeaderEpoch
            | ResponseError::UnknownLeaderEpoch
            | ResponseError::UnknownTopicId
            | ResponseError::KafkaStorageError
    )
}

/// Which topics a metadata request asks about.
#[derive(Debug, Clone, Copy)]
pub enum TopicsQuery<'a> {
    /// Brokers only.
    None,
    /// Every topic in the cluster.
    All,
    /// These topics.
    Some(&'a [&'a str]),
}

/// A connected cluster. See the module docs.
#[derive(Debug, Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ClientConfig,
    pool: BrokerPool,
    metadata: RwLock<Arc<MetadataSnapshot>>,
    coordinators: CoordinatorCache,
}

impl Cluster {
    /// Validates `config` and fetches the cluster's brokers from the first bootstrap server that
    /// answers: one attempt (the clients use [`Cluster::connect_by`], which asks again until a
    /// deadline).
    ///
    /// Cancellation: dropping the future abandons the bootstrap; nothing is left running.
    #[cfg_attr(not(feature = "unstable-internals"), allow(dead_code))] // the tests' facade
    pub async fn connect(config: ClientConfig) -> Result<Cluster> {
        config.validate()?;
        let cluster = Cluster::unconnected(config)?;
        cluster.refresh_metadata(TopicsQuery::None).await?;
        Ok(cluster)
    }

    /// The cluster with no metadata yet and no connection open.
    fn unconnected(config: ClientConfig) -> Result<Cluster> {
        Ok(Cluster {
            inner: Arc::new(Inner {
                pool: BrokerPool::new(&config)?,
                metadata: RwLock::new(Arc::new(MetadataSnapshot::empty(std::time::Instant::now()))),
                coordinators: CoordinatorCache::default(),
                config,
            }),
        })
    }

    /// The configuration this cluster was connected with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The connection pool.
    pub fn pool(&self) -> &BrokerPool {
        &self.inner.pool
    }

    /// The current metadata snapshot (no request is made).
    pub fn metadata(&self) -> Arc<MetadataSnapshot> {
        self.inner
            .metadata
            .read()
            .expect("metadata lock poisoned")
            .clone()
    }

    /// A connection on `lane` to broker `node_id`.
    pub async fn connection(&self, node_id: i32, lane: Lane) -> Result<Connection> {
        self.inner.pool.get(Endpoint::Node(node_id), lane).await
    }

    /// A connection on `lane` to any broker that answers: pooled live brokers first, then every
    /// broker metadata knows, then the bootstrap servers.
    pub async fn any_connection(&self, lane: Lane) -> Result<Connection> {
        self.any_connection_avoiding(lane, &[]).await
    }

    /// [`Cluster::any_connection`], trying the brokers in `avoid` (by node id or address) last: a
    /// retry after a broker failed to answer asks another one, not the same one again (a broker
    /// that accepts connections but never answers would otherwise take every attempt).
    async fn any_connection_avoiding(&self, lane: Lane, avoid: &[BrokerRef]) -> Result<Connection> {
        let snapshot = self.metadata();
        let mut candidates: Vec<Endpoint> = Vec::new();
        for id in self.inner.pool.live_nodes() {
            candidates.push(Endpoint::Node(id));
        }
        for id in snapshot.brokers.keys() {
            if !candidates.contains(&Endpoint::Node(*id)) {
                candidates.push(Endpoint::Node(*id));
            }
        }
        for addr in &self.inner.config.bootstrap_servers {
            candidates.push(Endpoint::Bootstrap(addr.clone()));
        }
        let avoided = |endpoint: &Endpoint| match endpoint {
            Endpoint::Node(id) => avoid.iter().any(|b| {
                b.node_id == Some(*id)
                    || snapshot
                        .brokers
                        .get(id)
                        .is_some_and(|known| known.address() == b.addr)
            }),
            Endpoint::Bootstrap(addr) => avoid.iter().any(|b| &b.addr == addr),
        };
        // Stable: the avoided ones keep their order behind the others.
        candidates.sort_by_key(avoided);
        let mut failures = Vec::new();
        for endpoint in candidates {
            match self.inner.pool.get(endpoint.clone(), lane).await {
                Ok(conn) => return Ok(conn),
                // Refused credentials will be refused by every broker: say so at once instead of
                // dialling the rest and hiding the cause in a generic connect error.
                Err(e @ (Error::Authentication { .. } | Error::Config(_))) => return Err(e),
                Err(e) => failures.push(e),
            }
        }
        Err(no_broker_answered(&self.inner.config, failures))
    }

    /// Fetches metadata for `topics` and installs it (merged with what is known of other topics).
    ///
    /// Cancellation: dropping the future leaves the previous snapshot in place.
    pub async fn refresh_metadata(&self, topics: TopicsQuery<'_>) -> Result<Arc<MetadataSnapshot>> {
        // An answer about every topic replaces the snapshot's topics (a deleted topic is gone);
        // an answer about some keeps the others.
        let every_topic = matches!(topics, TopicsQuery::All);
        let request = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(match topics {
                TopicsQuery::All => None,
                TopicsQuery::None => Some(Vec::new()),
                TopicsQuery::Some(names) => Some(
                    names
                        .iter()
                        .map(|n| {
                            MetadataRequestTopic::default()
                                .with_name(Some(TopicName(StrBytes::from_string((*n).to_owned()))))
                        })
                        .collect(),
                ),
            });
        let mut last_error = None;
        // A broker may die, or never answer, between being chosen and answering: try another one.
        let mut tried: Vec<BrokerRef> = Vec::new();
        for _ in 0..3 {
            let conn = self.any_connection_avoiding(Lane::Control, &tried).await?;
            match conn.send(&request).await {
                Ok(response) => {
                    Error::check_code(
                        ApiKey::Metadata,
                        Some(conn.broker()),
                        response.error_code,
                        None,
                    )?;
                    let fresh =
                        MetadataSnapshot::from_response(&response, std::time::Instant::now());
                    self.inner
                        .pool
                        .set_addresses(fresh.brokers.values().map(|b| (b.node_id, b.address())));
                    let snapshot = {
                        let mut slot = self.inner.metadata.write().expect("metadata lock poisoned");
                        let merged = Arc::new(if every_topic {
                            fresh
                        } else {
                            slot.merged_into(fresh)
                        });
                        *slot = merged.clone();
                        merged
                    };
                    debug!(
                        brokers = snapshot.brokers.len(),
                        topics = snapshot.topics.len(),
                        "metadata refreshed"
                    );
                    return Ok(snapshot);
                }
                Err(e) if e.is_retriable() => {
                    tried.push(conn.broker().clone());
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.expect("loop ran"))
    }

    /// Metadata in which every topic in `topics` exists and every partition has a leader,
    /// refreshing with backoff until `timeout`. Fails with UNKNOWN_TOPIC_OR_PARTITION if a topic
    /// still does not exist then.
    pub async fn wait_for_topics(
        &self,
        topics: &[&str],
        timeout: Duration,
    ) -> Result<Arc<MetadataSnapshot>> {
        let ready = MetadataSnapshot::topic_ready;
        self.wait_for_topics_where(topics, timeout, "with leaders", ready)
            .await
    }

    /// [`Cluster::wait_for_topics`] with the caller's idea of a usable topic (the producer needs
    /// only its partitions known, not a leader for each: records for a partition without one
    /// wait in the accumulator as in Java), which `usable` names in the timeout's message.
    pub async fn wait_for_topics_where(
        &self,
        topics: &[&str],
        timeout: Duration,
        usable: &str,
        ready: impl Fn(&MetadataSnapshot, &str) -> bool,
    ) -> Result<Arc<MetadataSnapshot>> {
        let deadline = crate::clock::from_now(timeout);
        let mut backoff = self.retry_backoff();
        let snapshot = self.metadata();
        let fresh_enough = snapshot.fetched_at.elapsed() < self.inner.config.metadata_max_age;
        if fresh_enough && topics.iter().all(|t| ready(&snapshot, t)) {
            return Ok(snapshot);
        }
        loop {
            let snapshot = self.refresh_metadata(TopicsQuery::Some(topics)).await?;
            let missing: Vec<&&str> = topics.iter().filter(|t| !ready(&snapshot, t)).collect();
            if missing.is_empty() {
                return Ok(snapshot);
            }
            // A refusal no refresh can change (an invalid name, no permission) ends the wait.
            if let Some((topic, code)) = missing.iter().find_map(|t| {
                let code = snapshot.topic_errors.get(**t).copied()?;
                (!crate::error::is_retriable_code(code)).then_some((t, code))
            }) {
                return Err(Error::Broker {
                    api: crate::error::ApiKey::Metadata,
                    broker: None,
                    code: crate::error::ErrorCode::from_protocol(code),
                    message: Some(format!("topic `{topic}`")),
                    class: ErrorClass::Rejected,
                });
            }
            let delay = backoff.next_delay();
            if crate::clock::from_now(delay) > deadline {
                let code = missing
                    .iter()
                    .find_map(|t| snapshot.topic_errors.get(**t).copied())
                    .unwrap_or(ResponseError::LeaderNotAvailable);
                return Err(Error::Broker {
                    api: crate::error::ApiKey::Metadata,
                    broker: None,
                    code: crate::error::ErrorCode::from_protocol(code),
                    message: Some(format!(
                        "topics {missing:?} not available {usable} after {}",
                        crate::error::Millis(timeout)
                    )),
                    class: ErrorClass::Retriable,
                });
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// The coordinator of a group or transactional id, from the cache or FindCoordinator, retrying
    /// COORDINATOR_NOT_AVAILABLE and COORDINATOR_LOAD_IN_PROGRESS until `request.timeout.ms`.
    /// Returns the coordinator's node id and a connection to it on the coordinator lane.
    pub async fn coordinator(&self, kind: CoordinatorKind, key: &str) -> Result<(i32, Connection)> {
        let deadline = crate::clock::from_now(self.inner.config.request_timeout);
        self.coordinator_by(kind, key, deadline).await
    }

    /// [`Cluster::coordinator`], retrying until `deadline` (an admin call's own deadline).
    pub async fn coordinator_by(
        &self,
        kind: CoordinatorKind,
        key: &str,
        deadline: Instant,
    ) -> Result<(i32, Connection)> {
        if let Some(node) = self.inner.coordinators.get(kind, key) {
            match self.connection(node, Lane::Coordinator).await {
                Ok(conn) => return Ok((node, conn)),
                Err(_) => self.inner.coordinators.invalidate(kind, key, node),
            }
        }
        let mut backoff = self.retry_backoff();
        loop {
            match self.find_coordinator(kind, key).await {
                Ok(node) => {
                    self.inner.coordinators.set(kind, key, node);
                    let conn = self.connection(node, Lane::Coordinator).await?;
                    return Ok((node, conn));
                }
                Err(e) if e.is_retriable() => {
                    let delay = backoff.next_delay();
                    if crate::clock::from_now(delay) > deadline {
                        return Err(e);
                    }
                    debug!(error = %e, ?kind, key, "FindCoordinator will be retried");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Forgets a coordinator after an error that says it moved (or its connection died).
    pub fn invalidate_coordinator(&self, kind: CoordinatorKind, key: &str, node_id: i32) {
        self.inner.coordinators.invalidate(kind, key, node_id);
    }

    /// One FindCoordinator round trip.
    async fn find_coordinator(&self, kind: CoordinatorKind, key: &str) -> Result<i32> {
        let conn = self.any_connection(Lane::Control).await?;
        let version = conn.version_for::<FindCoordinatorRequest>()?;
        let key_bytes = StrBytes::from_string(key.to_owned());
        let mut request = FindCoordinatorRequest::default().with_key_type(kind.key_type());
        // Version 4 moved the key into a batch list (KIP-699).
        if version >= 4 {
            request.coordinator_keys = vec![key_bytes];
        } else {
            request.key = key_bytes;
        }
        let response = conn.send_version(&request, version, None).await?;
        let (node, address) = coordinator_in(&response, version, key, Some(conn.broker()))?;
        self.inner.pool.set_addresses([(node, address)]);
        Ok(node)
    }

    /// A fresh backoff for one retried operation.
    pub fn retry_backoff(&self) -> Backoff {
        Backoff::new(
            self.inner.config.retry_backoff,
            self.inner.config.retry_backoff_max,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1),
        )
    }
}

/// The error when no broker at all could be reached: names every address tried. A fatal failure
/// (a TLS certificate refused, credentials rejected, a broker too old) is returned as it is, so
/// the caller stops at once instead of retrying until its timeout what cannot succeed.
fn no_broker_answered(config: &ClientConfig, mut failures: Vec<Error>) -> Error {
    if let Some(i) = failures.iter().position(|e| !e.is_retriable()) {
        return failures.swap_remove(i);
    }
    // One address tried: its own error already names it.
    if let [Error::Connect { .. }] = failures.as_slice() {
        return failures.swap_remove(0);
    }
    // Each failure by its address and cause, not its whole message (which would repeat
    // "cannot connect to bootstrap broker ..." inside this error's own).
    let detail: Vec<String> = failures
        .iter()
        .map(|e| match e {
            Error::Connect { broker, source } => format!("{}: {source}", broker.addr),
            other => other.to_string(),
        })
        .collect();
    Error::Connect {
        broker: crate::BrokerRef {
            node_id: None,
            addr: config.bootstrap_servers.join(","),
        },
        source: std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            format!("no broker answered: {}", detail.join("; ")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(addr: &str) -> Error {
        Error::Connect {
            broker: crate::BrokerRef {
                node_id: None,
                addr: addr.into(),
            },
            source: std::io::ErrorKind::ConnectionRefused.into(),
        }
    }

    #[test]
    fn one_address_refused_is_its_own_error_said_once() {
        let config = ClientConfig::new("127.0.0.1:1");
        let e = no_broker_answered(&config, vec![refused("127.0.0.1:1")]);
        let text = e.to_string();
        assert!(matches!(e, Error::Connect { .. }), "{e:?}");
        assert_eq!(text.matches("127.0.0.1:1").count(), 1, "{text}");
        assert_eq!(text.matches("cannot connect").count(), 1, "{text}");
    }

    #[test]
    fn several_addresses_refused_name_each_once_with_its_cause() {
        let config = ClientConfig::new("127.0.0.1:1,127.0.0.1:2");
        let e = no_broker_answered(
            &config,
            vec![refused("127.0.0.1:1"), refused("127.0.0.1:2")],
        );
        let text = e.to_string();
        assert!(e.is_retriable(), "{e:?}");
        assert_eq!(text.matches("cannot connect").count(), 1, "{text}");
        for addr in ["127.0.0.1:1", "127.0.0.1:2"] {
            let cause = format!("{addr}: connection refused");
            assert_eq!(text.matches(&cause).count(), 1, "{text}");
        }
    }
}
