//! The consumer's fetch requests: which partitions go in one Fetch per leader, each leader's
//! incremental fetch session (KIP-227, over the IO-free
//! [`FetchSession`](crate::state::fetch_session::FetchSession)), the background fetch tasks, and
//! what each response partition means (buffered data, a reset, a metadata refresh, an error for
//! the next `poll`).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::task::JoinError;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::fetch::PartitionFetch;
use super::ReadReplica;
use super::{AutoOffsetReset, Consumer};
use crate::cluster::{is_stale_metadata_error, Cluster};
use crate::error::{BrokerRef, Error, Result};
use crate::net::Lane;
use crate::record::{IsolationLevel, TopicPartition};
use crate::state::fetch_session::{SessionPartition, SessionRequest};
use crate::state::isolation::AbortedTransaction;

/// One partition of a fetch in flight: where it was fetched from.
#[derive(Debug, Clone)]
pub(super) struct Fetching {
    tp: TopicPartition,
    offset: i64,
    leader_epoch: i32,
}

/// What a fetch task returns.
#[derive(Debug)]
pub(super) struct FetchOutcome {
    node: i32,
    /// Every partition fetched, written into the request or implicit in the session.
    partitions: Vec<Fetching>,
    result: Result<(FetchResponse, BrokerRef)>,
    /// The broker is too old for sessions (Fetch < 7) and the request went out sessionless.
    sessionless: bool,
    /// How long the request took, dial included.
    took: Duration,
}

/// Fetch settings the background tasks need.
#[derive(Debug, Clone)]
struct FetchParams {
    max_wait_ms: i32,
    min_bytes: i32,
    max_bytes: i32,
    partition_max_bytes: i32,
    isolation: i8,
    timeout: Duration,
    /// `client.rack`, for the leader to pick a replica in this rack (KIP-392).
    rack: String,
}

impl Consumer {
    /// Starts one fetch per leader that has fetchable partitions and no fetch in flight.
    pub(super) fn send_fetches(&mut self) {
        self.fetch_due = false;
        let snapshot = self.cluster.metadata();
        let now = Instant::now();
        let buffered: HashSet<&TopicPartition> = self.buffered.iter().map(|f| &f.tp).collect();
        let mut by_node: BTreeMap<i32, Vec<Fetching>> = BTreeMap::new();
        for (tp, state) in &self.assignment {
            let Some(offset) = state.position else {
                continue;
            };
            if state.paused || state.in_flight || buffered.contains(tp) || !state.retry.ready(now) {
                continue;
            }
            let Some(info) = snapshot.partition(tp) else {
                self.metadata_stale = true;
                continue;
            };
            let Some(leader) = info.leader else {
                self.metadata_stale = true;
                continue;
            };
            // The leader's choice of replica for this rack, while it lasts and the broker is
            // still in the cluster.
            let node = match state.read_replica {
                Some(r) if r.until > now && snapshot.brokers.contains_key(&r.node) => r.node,
                _ => leader,
            };
            let backing_off = self.node_retry.get(&node).is_some_and(|r| !r.ready(now));
            if self.busy_nodes.contains(&node) || backing_off {
                continue;
            }
            by_node.entry(node).or_default().push(Fetching {
                tp: tp.clone(),
                offset,
                leader_epoch: info.leader_epoch,
            });
        }
        let params = FetchParams {
            max_wait_ms: self.config.fetch_max_wait.as_millis() as i32,
            min_bytes: self.config.fetch_min_bytes as i32,
            max_bytes: self.config.fetch_max_bytes as i32,
            partition_max_bytes: self.config.max_partition_fetch_bytes as i32,
            isolation: self.config.isolation_level.wire(),
            timeout: self
                .config
                .client
                .request_timeout
                .saturating_add(self.config.fetch_max_wait),
            rack: self.config.client_rack.clone(),
        };
        for (node, partitions) in by_node {
            for f in &partitions {
                if let Some(state) = self.assignment.get_mut(&f.tp) {
                    state.in_flight = true;
                }
            }
            let wanted: BTreeMap<TopicPartition, SessionPartition> = partitions
                .iter()
                .map(|f| {
                    let p = SessionPartition {
                        fetch_offset: f.offset,
                        leader_epoch: f.leader_epoch,
                        max_bytes: params.partition_max_bytes,
                    };
                    (f.tp.clone(), p)
                })
                .collect();
            let session = self.sessions.entry(node).or_default().build(&wanted);
            self.busy_nodes.insert(node);
            let cluster = self.cluster.clone();
            let params = params.clone();
            self.in_flight.spawn(async move {
                let started = Instant::now();
                let (result, sessionless) =
                    match fetch_from(&cluster, node, &session, &partitions, &params).await {
                        Ok((response, broker, sessionless)) => {
                            (Ok((response, broker)), sessionless)
                        }
                        Err(e) => (Err(e), false),
                    };
                FetchOutcome {
                    node,
                    partitions,
                    result,
                    sessionless,
                    took: started.elapsed(),
                }
            });
        }
    }

    pub(super) fn handle_joined(&mut self, joined: std::result::Result<FetchOutcome, JoinError>) {
        self.fetch_due = true;
        let outcome = match joined {
            Ok(outcome) => outcome,
            Err(e) => {
                // A fetch task panicked: forget all bookkeeping of fetches in flight; their
                // partitions are fetched again (responses still arriving are checked against
                // positions, so nothing is applied twice).
                self.pending_error = Some(Error::Failed(format!("fetch task failed: {e}")));
                self.busy_nodes.clear();
                self.sessions.clear();
                for state in self.assignment.values_mut() {
                    state.in_flight = false;
                }
                return;
            }
        };
        self.busy_nodes.remove(&outcome.node);
        for f in &outcome.partitions {
            if let Some(state) = self.assignment.get_mut(&f.tp) {
                state.in_flight = false;
            }
        }
        let session = self.sessions.entry(outcome.node).or_default();
        let (response, broker) = match outcome.result {
            Ok(ok) => ok,
            Err(e) => {
                session.on_failure();
                // A replica that cannot be reached is given up for the leader (as Java does on
                // any fetch failure from it).
                for f in &outcome.partitions {
                    if let Some(state) = self.assignment.get_mut(&f.tp) {
                        if state.read_replica.is_some_and(|r| r.node == outcome.node) {
                            state.read_replica = None;
                        }
                    }
                }
                self.fetch_failed(outcome.node, e);
                return;
            }
        };
        if outcome.sessionless {
            session.on_failure();
        } else {
            session.on_response(
                ResponseError::try_from_code(response.error_code),
                response.session_id,
            );
        }
        // One handle for the whole answer (its partitions count lag and kept bytes too).
        let registry = self.cluster.pool().metrics().0.clone();
        if registry.enabled {
            super::metrics::count_fetch(&registry.consumer, &response, outcome.took);
        }
        if let Some(
            ResponseError::FetchSessionIdNotFound | ResponseError::InvalidFetchSessionEpoch,
        ) = ResponseError::try_from_code(response.error_code)
        {
            // The session is gone (broker restart, eviction): the next fetch starts a new one,
            // after a backoff in case the broker keeps answering this.
            debug!(
                node = outcome.node,
                code = response.error_code,
                "fetch session reset"
            );
            self.node_failed(outcome.node);
            return;
        }
        if let Err(mut e) =
            Error::check_code(ApiKey::Fetch, Some(&broker), response.error_code, None)
        {
            if e.kafka_code() == Some(crate::error::ErrorCode::UnknownServerError) {
                // A broker's passing failure, not the consumer's: backed off and fetched again,
                // as Java's fetcher does with any top-level error.
                if let Error::Broker { class, .. } = &mut e {
                    *class = crate::error::ErrorClass::Retriable;
                }
            }
            self.fetch_failed(outcome.node, e);
            return;
        }
        // A broker holds a fetch with nothing to return for `fetch.max.wait.ms`; answering empty
        // much sooner means it is not waiting, and fetching again at once would spin. (Half the
        // wait, so that a broker timer firing a little early does not delay the next long poll.)
        let mut answered_something = false;
        for topic in response.responses {
            let name = topic.topic.0.to_string();
            for p in topic.partitions {
                let Some(asked) = outcome
                    .partitions
                    .iter()
                    .find(|f| f.tp.partition == p.partition_index && f.tp.topic == name)
                else {
                    // Not asked for: dropped, and no sign the broker is serving this consumer
                    // (counted as progress it would end the backoff and let fetches spin).
                    continue;
                };
                if p.error_code != 0 || p.records.as_ref().is_some_and(|r| !r.is_empty()) {
                    answered_something = true;
                }
                let tp = asked.tp.clone();
                let Some(state) = self.assignment.get_mut(&tp) else {
                    continue; // no longer assigned
                };
                if state.position != Some(asked.offset) {
                    continue; // seeked while the fetch was in flight
                }
                let now = Instant::now();
                let preferred = p.preferred_read_replica.0;
                if p.error_code == 0 && preferred >= 0 {
                    // KIP-392: the leader names the replica this rack should read from (its
                    // answer then holds no records); it is followed until metadata.max.age.ms.
                    debug!(%tp, replica = preferred, "preferred read replica");
                    answered_something = true;
                    state.read_replica = Some(ReadReplica {
                        node: preferred,
                        until: crate::clock::after(now, self.config.client.metadata_max_age),
                    });
                }
                // An error from the read replica sends this partition back to its leader; only
                // an error from the leader itself is the partition's (Java: an out-of-range
                // offset on a follower, which may lag, is not reset). The partition backs off
                // first: a leader that names the same failing replica again must not make the
                // consumer spin between the two.
                let (initial, max) = (
                    self.config.client.retry_backoff,
                    self.config.client.retry_backoff_max,
                );
                let from_replica = state
                    .read_replica
                    .is_some_and(|r| r.node == outcome.node && p.error_code != 0);
                if from_replica {
                    debug!(%tp, node = outcome.node, code = p.error_code, "read replica erred; back to the leader");
                    state.read_replica = None;
                    if p.error_code == ResponseError::OffsetOutOfRange.code() {
                        state.retry.failed(now, initial, max);
                        continue;
                    }
                }
                if p.error_code == 0 {
                    let end = match self.config.isolation_level {
                        IsolationLevel::ReadCommitted => p.last_stable_offset,
                        IsolationLevel::ReadUncommitted => p.high_watermark,
                    };
                    if end >= 0 {
                        state.end_offset = Some(end);
                        if registry.enabled {
                            super::metrics::note_lag(&registry.consumer, &tp, state);
                        }
                    }
                }
                match ResponseError::try_from_code(p.error_code) {
                    None => {
                        let Some(records) = p.records.filter(|r| !r.is_empty()) else {
                            continue;
                        };
                        if registry.enabled {
                            super::metrics::count_kept(&registry.consumer, records.len());
                        }
                        let aborted = p
                            .aborted_transactions
                            .unwrap_or_default()
                            .into_iter()
                            .map(|t| AbortedTransaction::new(t.producer_id.0, t.first_offset));
                        self.buffered.push_back(PartitionFetch::new(
                            tp,
                            Some(broker.clone()),
                            asked.offset,
                            records,
                            self.config.isolation_level,
                            p.last_stable_offset,
                            aborted,
                            self.config.check_crcs,
                            self.config.max_poll_decompressed_bytes,
                        ));
                    }
                    Some(ResponseError::OffsetOutOfRange) => {
                        if self.config.auto_offset_reset == AutoOffsetReset::None {
                            self.pending_error = Some(Error::InvalidState(format!(
                                "fetch position {} of partition {tp} is out of range (log {}..{}) \
                                 and `auto.offset.reset` is none: seek to a valid offset",
                                asked.offset, p.log_start_offset, p.high_watermark
                            )));
                        } else {
                            debug!(%tp, offset = asked.offset, "offset out of range; resetting");
                            state.position = None;
                            // Reset at once (as Java does), unless the position out of range is
                            // the one the last reset gave: a broker whose ListOffsets answer is
                            // itself out of range for its Fetch would otherwise have the two asked
                            // in turn with no pause. Records handed out again end the backoff.
                            if state.reset_to == Some(asked.offset) {
                                state.retry.failed(now, initial, max);
                            }
                        }
                    }
                    Some(code) if is_stale_metadata_error(code) => {
                        debug!(%tp, ?code, "stale metadata; refreshing before the next fetch");
                        self.metadata_stale = true;
                        state.retry.failed(now, initial, max);
                    }
                    Some(ResponseError::UnknownServerError) => {
                        // Java logs it and fetches again; the backoff keeps that slow.
                        warn!(%tp, offset = asked.offset, "fetch answered UNKNOWN_SERVER_ERROR; retrying");
                        state.retry.failed(now, initial, max);
                    }
                    Some(code) if code.is_retriable() && code != ResponseError::CorruptMessage => {
                        debug!(%tp, ?code, "retriable fetch error");
                        state.retry.failed(now, initial, max);
                    }
                    Some(code) => {
                        // Reported (Java throws these from poll), then fetched again after the
                        // backoff: a corrupt log, a denied topic. They concern this partition
                        // only, so the consumer stays usable: CORRUPT_MESSAGE keeps its
                        // retriable class, the rest are this partition's refusal.
                        state.retry.failed(now, initial, max);
                        let mut e = Error::from_code(
                            ApiKey::Fetch,
                            Some(broker.clone()),
                            code,
                            Some(format!("partition {tp} at offset {}", asked.offset)),
                        );
                        if let Error::Broker { class, .. } = &mut e {
                            if *class == crate::error::ErrorClass::Fatal {
                                *class = crate::error::ErrorClass::Rejected;
                            }
                        }
                        self.pending_error = Some(e);
                    }
                }
            }
        }
        if answered_something || outcome.took >= self.config.fetch_max_wait / 2 {
            self.node_retry.entry(outcome.node).or_default().succeeded();
        } else {
            debug!(node = outcome.node, took = ?outcome.took, "empty fetch answered early");
            self.node_failed(outcome.node);
        }
    }

    fn fetch_failed(&mut self, node: i32, e: Error) {
        self.node_failed(node);
        if e.is_retriable() {
            debug!(node, error = %e, "fetch failed; backing off");
            self.metadata_stale = true;
        } else {
            self.pending_error = Some(e);
        }
    }

    /// Backs `node` off after a fetch that failed or came back empty early.
    fn node_failed(&mut self, node: i32) {
        let (initial, max) = (
            self.config.client.retry_backoff,
            self.config.client.retry_backoff_max,
        );
        self.node_retry
            .entry(node)
            .or_default()
            .failed(Instant::now(), initial, max);
    }
}

/// One Fetch request to `node` (run as a task owned by the consumer): the session's request, or
/// every partition sessionless if the broker predates sessions (the flag returned).
async fn fetch_from(
    cluster: &Cluster,
    node: i32,
    session: &SessionRequest,
    all: &[Fetching],
    params: &FetchParams,
) -> Result<(FetchResponse, BrokerRef, bool)> {
    let conn = cluster.connection(node, Lane::Fetch).await?;
    let version = conn.version_for::<FetchRequest>()?;
    let sessionless = version < 7;
    let send: Vec<(TopicPartition, SessionPartition)> = if sessionless {
        all.iter()
            .map(|f| {
                let p = SessionPartition {
                    fetch_offset: f.offset,
                    leader_epoch: f.leader_epoch,
                    max_bytes: params.partition_max_bytes,
                };
                (f.tp.clone(), p)
            })
            .collect()
    } else {
        session.to_send.clone()
    };
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (tp, p) in &send {
        let partition = FetchPartition::default()
            .with_partition(tp.partition)
            .with_current_leader_epoch(p.leader_epoch)
            .with_fetch_offset(p.fetch_offset)
            .with_last_fetched_epoch(-1)
            .with_log_start_offset(-1)
            .with_partition_max_bytes(p.max_bytes);
        match topics.iter_mut().find(|t| t.topic.0.as_str() == tp.topic) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(tp.topic.clone())))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let mut forgotten: Vec<ForgottenTopic> = Vec::new();
    if !sessionless {
        for tp in &session.to_forget {
            match forgotten
                .iter_mut()
                .find(|t| t.topic.0.as_str() == tp.topic)
            {
                Some(t) => t.partitions.push(tp.partition),
                None => forgotten.push(
                    ForgottenTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(tp.topic.clone())))
                        .with_partitions(vec![tp.partition]),
                ),
            }
        }
    }
    let (session_id, epoch) = if sessionless {
        (0, -1)
    } else {
        (session.session_id, session.epoch)
    };
    let mut request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(params.max_wait_ms)
        .with_min_bytes(params.min_bytes)
        .with_max_bytes(params.max_bytes)
        .with_isolation_level(params.isolation)
        .with_session_id(session_id)
        .with_session_epoch(epoch)
        .with_topics(topics)
        .with_forgotten_topics_data(forgotten);
    if version >= 11 && !params.rack.is_empty() {
        request.rack_id = StrBytes::from_string(params.rack.clone());
    }
    let response = conn
        .send_version(&request, version, Some(params.timeout))
        .await?;
    Ok((response, conn.broker().clone(), sessionless))
}
