//! The consumer role: [`Consumer`] reads partitions assigned by hand ([`Consumer::assign`]) or by
//! a consumer group ([`Consumer::subscribe`], or [`Consumer::subscribe_pattern`] for topics
//! matching a regex; classic or KIP-848 `consumer` protocol), fetches
//! them from their leaders in `read_uncommitted` or `read_committed`, hands out records in
//! per-partition offset order, and commits the group's offsets.
//!
//! # Design
//!
//! - Positions are kept per assigned partition. A partition without one gets one from the group's
//!   committed offset when `group.id` is set (assigned by the group or by hand, as in Java),
//!   otherwise (or when nothing is committed, or after
//!   OFFSET_OUT_OF_RANGE) from ListOffsets per `auto.offset.reset`, or `poll` fails naming it under
//!   `none`. These lookups and auto-commits run in the background (`background`), so `poll`
//!   keeps its timeout while the broker is slow to answer them.
//! - Group membership (the `group` module's join and heartbeat tasks over the IO-free
//!   `state::membership::Membership`) is driven from `poll`: a rejoin first revokes (eager
//!   protocol) or keeps (cooperative) the partitions, committing them under auto-commit and calling
//!   the [`RebalanceListener`], then waits for the join task until `poll`'s deadline.
//! - On a KIP-848 `consumer` group (`group.protocol=consumer`) the `heartbeat` task talks to the
//!   coordinator (ConsumerGroupHeartbeat over the IO-free
//!   `state::consumer_member::ConsumerMember`) and `poll` reconciles the assignment it
//!   receives (`reconcile`: revoke, then assign, then acknowledge); members whose partitions do
//!   not move never stop fetching.
//! - [`Consumer::poll`] hands out buffered records first. Otherwise it sends one Fetch per leader
//!   that has no fetch in flight, for every fetchable partition (assigned, not paused, with a
//!   position, nothing buffered), on `net::Lane::Fetch`, within that
//!   leader's incremental fetch session (KIP-227: only changed partitions are written). Fetches
//!   run as background tasks owned by the consumer, so a response that arrives after `poll`
//!   returned (or after its future was dropped) is kept for the next `poll`: that is the prefetch.
//! - A response partition becomes a buffered `fetch::PartitionFetch` (Java's `CompletedFetch`):
//!   batches are decoded lazily, CRCs checked (`check.crcs`), a truncated final batch ignored, and
//!   in `read_committed` each batch goes through `state::isolation::TransactionFilter`
//!   built from the partition's aborted-transaction list and last stable offset. Control batches
//!   are never delivered; skipped batches still advance the position.
//! - Errors per partition: NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, FENCED_LEADER_EPOCH
//!   and the other stale-metadata errors refresh metadata and retry; OFFSET_OUT_OF_RANGE resets per
//!   `auto.offset.reset` (or fails under `none`); a corrupt batch or CRC mismatch fails `poll` with
//!   the partition and offset once the records before it were handed out, and the position stays
//!   at the bad batch (seek past it to skip it). UNKNOWN_SERVER_ERROR is retried after the
//!   backoff, as Java does; other refusals of one partition (TOPIC_AUTHORIZATION_FAILED,
//!   CORRUPT_MESSAGE) fail `poll` naming it, the consumer staying usable (class `Rejected`, or
//!   `Retriable` for CORRUPT_MESSAGE), and the partition is fetched again after the backoff.
//!   Data for a partition the fetch did not ask for is dropped and is no progress.
//! - Follower fetching (KIP-392): with `client.rack` set, a leader may answer with a preferred
//!   read replica; the partition is fetched from it until `metadata.max.age.ms` has passed,
//!   the replica leaves the metadata, or a fetch from it fails or errs (an out-of-range offset
//!   there is not reset: the follower may lag), then from the leader again. In
//!   `read_uncommitted` control batches are skipped unopened.
//! - Memory: batches are decompressed one at a time as their records are handed out, and the
//!   records of one `poll` pin at most `max.poll.decompressed.bytes` of decompressed data; a batch
//!   that does not fit waits for the next poll, one that never fits is an error naming it.
//! - No busy loops (`retry`): fetches that make no progress (failed, partition errors, data the
//!   position cannot pass, empty answers from a broker that does not wait) back the partition or
//!   leader off exponentially (`retry.backoff.ms` to `retry.backoff.max.ms`); data the position
//!   cannot pass (a truncated or over-long batch, only re-sent records) fails `poll` after a few
//!   such fetches, naming partition, offset and reason.
//!
//! # Cancellation
//!
//! Every `&mut self` async call may be dropped at any await without losing records: positions only
//! move in the synchronous step that hands records to the caller, so a dropped `poll` has moved no
//! position past an undelivered record, and fetch responses land in the consumer's buffer whether
//! or not a `poll` is waiting.
//!
//! Commits (`commit`, auto-commit) may be left in flight by a dropped future; committing an offset
//! twice is harmless. A position lookup or auto-commit a `poll` started goes on after that `poll`
//! returns or is dropped, and the next `poll` applies its answer. A join left running by a dropped `poll` completes in the background and the
//! next `poll` applies its assignment.
//!
//! # Not yet
//!
//! Closing fetch sessions on close (the broker evicts them), leader-epoch validation of positions after a leader change (KIP-320's OffsetForLeaderEpoch).

mod background;
mod config;
mod fetch;
mod fetcher;
mod group;
mod group_member;
mod heartbeat;
mod metrics;
mod offsets;
mod pattern;
mod reconcile;
mod retry;
mod stream;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::debug;

pub use crate::protocol::records::{DecodedHeader, Headers, HeadersIter, TimestampType};
pub use crate::state::assignor::Assignor;
pub use crate::state::fetch_session::FetchSessionStats;
pub use config::{AutoOffsetReset, CommitMode, ConsumerConfig, GroupProtocol};
pub use fetch::ConsumerRecord;
pub use group_member::{CommitHandle, RebalanceListener};
pub use stream::RecordStream;

use crate::admin::{Admin, OffsetSpec};
use crate::cluster::{Cluster, TopicsQuery};
use crate::error::{Error, Result};
use crate::record::TopicPartition;
use crate::state::fetch_session::FetchSession;
use crate::state::membership::{MemberTimers, Membership};
use fetch::{DecompressBudget, PartitionFetch};
use fetcher::FetchOutcome;
use group::Group;
use group_member::Listener;
use heartbeat::ConsumerGroup;
use offsets::MemberHandle;
use retry::{FetchRetry, STALLS_BEFORE_ERROR};

/// One assigned partition.
#[derive(Debug, Default, Clone)]
struct PartitionState {
    /// The offset of the next record to hand out; `None` until reset or seek.
    position: Option<i64>,
    /// The log end offset (last stable offset under read_committed) in the last fetch answer.
    end_offset: Option<i64>,
    paused: bool,
    /// A fetch including this partition is in flight.
    in_flight: bool,
    /// Fetches of this partition in a row that made no progress, and the backoff they set.
    retry: FetchRetry,
    /// The position the last `auto.offset.reset` lookup gave, until records are handed out from
    /// it: a fetch that finds that one out of range backs off before resetting again.
    reset_to: Option<i64>,
    /// The replica the leader pointed this consumer's rack at (KIP-392), fetched from instead of
    /// the leader until `metadata.max.age.ms` after the leader said so, or until it errs.
    read_replica: Option<ReadReplica>,
}

/// A follower to fetch one partition from (KIP-392 `preferred_read_replica`).
#[derive(Debug, Clone, Copy)]
struct ReadReplica {
    node: i32,
    until: tokio::time::Instant,
}

/// What ended a wait in `poll`.
enum Woken {
    Fetch(std::result::Result<FetchOutcome, tokio::task::JoinError>),
    Lookup(std::result::Result<background::LookupAnswer, tokio::task::JoinError>),
    AutoCommit(std::result::Result<background::AutoCommitAnswer, tokio::task::JoinError>),
    Timer,
}

/// A consumer of manually assigned or group-assigned partitions. See the module docs.
#[derive(Debug)]
pub struct Consumer {
    cluster: Cluster,
    config: ConsumerConfig,
    assignment: BTreeMap<TopicPartition, PartitionState>,
    /// Fetched data not yet handed out, in arrival order.
    buffered: VecDeque<PartitionFetch>,
    in_flight: JoinSet<FetchOutcome>,
    /// Nodes with a fetch in flight (one at a time per node, as in Java).
    busy_nodes: HashSet<i32>,
    /// Per leader: fetches in a row that failed or came back empty early, and the backoff.
    node_retry: HashMap<i32, FetchRetry>,
    metadata_stale: bool,
    /// A fetch was taken in since the last [`Consumer::send_fetches`]: its partitions and its
    /// node may be fetchable again.
    fetch_due: bool,
    last_metadata_refresh: Option<Instant>,
    /// An error to report from the next `poll`.
    pending_error: Option<Error>,
    /// Each leader's incremental fetch session.
    sessions: HashMap<i32, FetchSession>,
    /// The member's identity for commits, when `group.id` is set (shared with `group` or
    /// `consumer_group`).
    membership: Option<MemberHandle>,
    /// Classic group membership tasks, while subscribed with `group.protocol=classic`.
    group: Option<Group>,
    /// KIP-848 heartbeat task, while subscribed with `group.protocol=consumer`.
    consumer_group: Option<ConsumerGroup>,
    /// When metadata was last looked up for assigned topic ids it did not know.
    last_id_lookup: Option<Instant>,
    /// Assigned topic ids metadata did not resolve even after a lookup, warned about once each.
    unresolved_ids: std::collections::BTreeSet<crate::state::consumer_member::TopicId>,
    /// The names of the topics the member owns, by id (Java's assignedTopicNamesCache).
    owned_topic_names: BTreeMap<crate::state::consumer_member::TopicId, String>,
    /// The KIP-714 push task (`enable.metrics.push`); dropping it ends the task.
    telemetry: Option<crate::cluster::telemetry::TelemetryHandle>,
    /// Subscribed topics, sorted (for a pattern on a classic group: the topics it matched).
    subscription: Vec<String>,
    /// A pattern subscription (`subscribe_pattern`).
    pattern: Option<pattern::PatternSubscription>,
    listener: Listener,
    /// Assigned by the group: their committed offsets must be read before they get a position.
    awaiting_committed: BTreeSet<TopicPartition>,
    /// The last offset this consumer committed per partition (auto-commit skips unchanged ones).
    last_committed: HashMap<TopicPartition, i64>,
    last_auto_commit: Instant,
    /// Partition counts of the subscribed topics as of the last join (`None` until looked up):
    /// a change means the group must rebalance to assign the new partitions.
    group_topic_counts: Option<BTreeMap<String, usize>>,
    last_group_metadata_check: Instant,
    /// Position lookups and auto-commits running as tasks, so `poll` keeps its timeout.
    background: background::Background,
}

impl Consumer {
    /// Validates `config` and connects to the cluster. No partition is assigned yet.
    ///
    /// Bounded by `default.api.timeout.ms`: while no bootstrap broker answers it asks again after
    /// the backoff, then fails with the last cause (a retriable [`Error::Connect`] naming each
    /// address). A `bootstrap.servers` of which no address resolves, refused credentials and TLS
    /// failures fail at once.
    ///
    /// Cancellation: dropping the future abandons the bootstrap; nothing is left running.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use josefk::consumer::{CommitMode, Consumer, ConsumerConfig};
    /// # async fn demo() -> josefk::Result<()> {
    /// let config = ConsumerConfig::new("127.0.0.1:9092")
    ///     .group_id("billing")
    ///     .commit_mode(CommitMode::Manual);
    /// let mut consumer = Consumer::connect(config).await?;
    /// consumer.subscribe(&["orders"])?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(config: ConsumerConfig) -> Result<Consumer> {
        config.validate()?;
        // The consumer's own `default.api.timeout.ms` bounds the admin calls it makes too.
        let mut client = config.client.clone();
        client.default_api_timeout = config.default_api_timeout;
        crate::config::default_client_id(
            &mut client,
            crate::config::ClientKind::Consumer,
            None,
            config.group_id.as_deref(),
        );
        let deadline = crate::clock::from_now(config.default_api_timeout);
        let cluster = Cluster::connect_by(client, deadline).await?;
        let registry = Arc::downgrade(&cluster.pool().metrics().0);
        let exported = registry.clone();
        crate::metrics::spawn_exporter(config.client.metrics_enabled, move || {
            let registry = exported.upgrade()?;
            Some(crate::metrics::ConsumerMetrics::read(&registry).to_metrics())
        });
        let telemetry = crate::cluster::telemetry::spawn(cluster.clone(), move || {
            let registry = registry.upgrade()?;
            Some(crate::metrics::ConsumerMetrics::read(&registry).to_metrics())
        });
        let membership = config.group_id.as_ref().map(|_| {
            if config.group_protocol == GroupProtocol::Consumer {
                return MemberHandle::Consumer(reconcile::new_member(&config));
            }
            MemberHandle::Classic(Arc::new(Mutex::new(Membership::new(
                config.group_instance_id.clone(),
                MemberTimers {
                    session_timeout: config.session_timeout,
                    heartbeat_interval: config.heartbeat_interval,
                    max_poll_interval: config.max_poll_interval,
                },
                std::time::Instant::now(),
            ))))
        });
        Ok(Consumer {
            cluster,
            config,
            assignment: BTreeMap::new(),
            buffered: VecDeque::new(),
            in_flight: JoinSet::new(),
            busy_nodes: HashSet::new(),
            node_retry: HashMap::new(),
            metadata_stale: false,
            fetch_due: false,
            last_metadata_refresh: None,
            pending_error: None,
            sessions: HashMap::new(),
            membership,
            group: None,
            consumer_group: None,
            last_id_lookup: None,
            unresolved_ids: Default::default(),
            owned_topic_names: BTreeMap::new(),
            telemetry,
            subscription: Vec::new(),
            pattern: None,
            listener: Listener::default(),
            awaiting_committed: BTreeSet::new(),
            last_committed: HashMap::new(),
            last_auto_commit: Instant::now(),
            group_topic_counts: None,
            last_group_metadata_check: Instant::now(),
            background: background::Background::default(),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    internal_fn! {
        /// The cluster view (shared with nothing else unless cloned).
        fn cluster(&self) -> &Cluster {
            &self.cluster
        }
    }

    /// Replaces the assignment with `partitions`. Partitions that stay assigned keep their
    /// positions and pause state; new ones start without a position: the first `poll` or
    /// `position` gives them the group's committed offset when `group.id` is set and the group
    /// has one (as Java's consumer does), otherwise resets them per `auto.offset.reset`. Buffered
    /// data of partitions no longer assigned is dropped.
    ///
    /// Fails, assigning nothing, if a topic does not exist (after waiting up to
    /// `default.api.timeout.ms` for a just-created topic to appear) or a partition index is beyond
    /// the topic's partitions.
    ///
    /// Cancellation: dropping the future leaves the previous assignment in place.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use josefk::consumer::{CommitMode, Consumer, ConsumerConfig};
    /// use josefk::TopicPartition;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let mut consumer = Consumer::connect(ConsumerConfig::new("k:9092")).await?;
    /// // No group: read partition 0 of `orders` from its beginning.
    /// let tp = TopicPartition::new("orders", 0);
    /// consumer.assign(std::slice::from_ref(&tp)).await?;
    /// consumer.seek_to_beginning(&[tp]).await?;
    /// let records = consumer.poll(Duration::from_secs(1)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn assign(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        if self.subscribed() {
            return Err(Error::InvalidState(
                "cannot assign partitions while subscribed to topics: call unsubscribe first"
                    .into(),
            ));
        }
        let topics: BTreeSet<&str> = partitions.iter().map(|tp| tp.topic.as_str()).collect();
        for topic in &topics {
            crate::cluster::validate_topic_name(topic)?;
        }
        if !topics.is_empty() {
            let names: Vec<&str> = topics.into_iter().collect();
            let snapshot = self
                .cluster
                .wait_for_topics(&names, self.config.default_api_timeout)
                .await
                .map_err(|e| match e {
                    Error::Broker {
                        api,
                        broker,
                        code,
                        message,
                        class,
                    } => Error::Broker {
                        api,
                        broker,
                        code,
                        message: Some(format!(
                            "cannot assign {}: {}",
                            names.join(", "),
                            message.unwrap_or_default()
                        )),
                        class,
                    },
                    other => other,
                })?;
            for tp in partitions {
                let count = snapshot
                    .topics
                    .get(&tp.topic)
                    .map_or(0, |t| t.partitions.len());
                if snapshot.partition(tp).is_none() {
                    return Err(Error::from_code(
                        ApiKey::Metadata,
                        None,
                        ResponseError::UnknownTopicOrPartition,
                        Some(format!(
                            "cannot assign {tp}: topic `{}` has {count} partitions",
                            tp.topic
                        )),
                    ));
                }
            }
        }
        let mut next = BTreeMap::new();
        for tp in partitions {
            let state = match self.assignment.get(tp) {
                Some(kept) => kept.clone(),
                None => {
                    // As Java: with a `group.id`, a newly assigned partition starts at the
                    // group's committed offset, and only without one per `auto.offset.reset`.
                    if self.config.group_id.is_some() {
                        self.await_committed(tp.clone());
                    }
                    PartitionState::default()
                }
            };
            next.insert(tp.clone(), state);
        }
        self.assignment = next;
        let assignment = &self.assignment;
        self.buffered.retain(|f| assignment.contains_key(&f.tp));
        self.awaiting_committed
            .retain(|tp| assignment.contains_key(tp));
        self.assignment_changed();
        Ok(())
    }

    /// What incremental fetch sessions (KIP-227) did so far, summed over brokers: requests built
    /// full and incremental, partitions written into requests and partitions fetched implicitly.
    pub fn fetch_session_stats(&self) -> FetchSessionStats {
        let mut total = FetchSessionStats::default();
        for s in self.sessions.values() {
            let s = s.stats();
            total.full_requests += s.full_requests;
            total.incremental_requests += s.incremental_requests;
            total.partitions_sent += s.partitions_sent;
            total.partitions_implicit += s.partitions_implicit;
        }
        total
    }

    /// The assigned partitions, in order.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assignment.keys().cloned().collect()
    }

    /// Sets the offset of the next record `poll` returns for `tp`. Buffered data of `tp` is
    /// dropped; a fetch of it in flight is ignored when it arrives. An offset beyond the log is
    /// found out by the next fetch and handled per `auto.offset.reset`.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        if offset < 0 {
            return Err(Error::InvalidState(format!(
                "cannot seek {tp} to negative offset {offset}"
            )));
        }
        let state = self.state_mut(tp)?;
        state.position = Some(offset);
        state.reset_to = None;
        // A seek is how a user gets past a batch that cannot be read: fetch at once.
        state.retry.succeeded();
        self.buffered.retain(|f| &f.tp != tp);
        // The user's position wins over a committed offset still to be looked up.
        self.awaiting_committed.remove(tp);
        Ok(())
    }

    /// Moves `partitions` to their log start offsets (ListOffsets, earliest). A partition the
    /// broker knows no offset for yet (-1) is asked again after the backoff until
    /// `default.api.timeout.ms` ([`Error::Timeout`]); no position moves unless all do.
    ///
    /// Cancellation: dropping the future leaves the positions unchanged.
    pub async fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_to(partitions, OffsetSpec::Earliest).await
    }

    /// Moves `partitions` to their ends: the high watermark, or the last stable offset under
    /// `read_committed`. Retried and bounded as [`Consumer::seek_to_beginning`].
    ///
    /// Cancellation: dropping the future leaves the positions unchanged.
    pub async fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_to(partitions, OffsetSpec::Latest).await
    }

    /// Partitions answered with no offset (-1: the broker knows none yet) are asked again after
    /// the backoff, as Java's offset reset does, until `default.api.timeout.ms`; positions move
    /// only once every partition has its offset.
    async fn seek_to(&mut self, partitions: &[TopicPartition], spec: OffsetSpec) -> Result<()> {
        for tp in partitions {
            self.state_mut(tp)?;
        }
        let admin = Admin::from_cluster(self.cluster.clone());
        let isolation = self.config.isolation_level;
        let timeout = self.config.default_api_timeout;
        let deadline = crate::clock::from_now(timeout);
        let mut backoff = self.cluster.retry_backoff();
        let mut pending: Vec<TopicPartition> = partitions.to_vec();
        let mut found: Vec<(TopicPartition, i64)> = Vec::with_capacity(partitions.len());
        let timed_out = || Error::Timeout {
            api: Some(crate::error::ApiKey::ListOffsets),
            broker: None,
            after: timeout,
            outcome_unknown: false,
        };
        loop {
            let ask = background::list_offsets(&admin, &pending, spec, isolation);
            let answers = tokio::time::timeout_at(deadline, ask)
                .await
                .map_err(|_| timed_out())??;
            pending.clear();
            for (tp, offset) in answers {
                if offset < 0 {
                    pending.push(tp);
                } else {
                    found.push((tp, offset));
                }
            }
            if pending.is_empty() {
                break;
            }
            let wake = crate::clock::from_now(backoff.next_delay());
            if wake >= deadline {
                return Err(timed_out());
            }
            debug!(partitions = ?pending, ?spec, "ListOffsets answered no offset; asking again");
            tokio::time::sleep_until(wake).await;
        }
        for (tp, offset) in found {
            self.seek(&tp, offset)?;
        }
        Ok(())
    }

    /// The offset of the next record `poll` will return for `tp`, resetting it first (ListOffsets)
    /// if it has none.
    ///
    /// Cancellation: dropping the future leaves the position as it was; a lookup it started goes
    /// on in the background and the next `poll` (or `position`) applies its answer.
    pub async fn position(&mut self, tp: &TopicPartition) -> Result<i64> {
        self.state_mut(tp)?;
        let timeout = self.config.default_api_timeout;
        let deadline = crate::clock::from_now(timeout);
        loop {
            self.take_finished_background();
            if let Some(e) = self.background.lookup_error.take() {
                return Err(e);
            }
            let state = self.state_mut(tp)?;
            if let Some(position) = state.position {
                return Ok(position);
            }
            self.start_position_lookup()?;
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    api: Some(crate::error::ApiKey::ListOffsets),
                    broker: None,
                    after: timeout,
                    outcome_unknown: false,
                });
            }
            // Wakes when the lookup ends, or when a reset that found no offset (ListOffsets
            // answered -1) or a failed lookup may be tried again.
            let retry_at = self.next_retry(now).unwrap_or(deadline);
            let wake = retry_at.max(now + Duration::from_millis(1)).min(deadline);
            self.wait_for_lookup(wake).await;
        }
    }

    /// Stops handing out records of `partitions` and stops fetching them, keeping their positions
    /// and any buffered data.
    pub fn pause(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        for tp in partitions {
            self.state_mut(tp)?;
        }
        for tp in partitions {
            self.state_mut(tp)?.paused = true;
        }
        Ok(())
    }

    /// Undoes [`Consumer::pause`].
    pub fn resume(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        for tp in partitions {
            self.state_mut(tp)?;
        }
        for tp in partitions {
            self.state_mut(tp)?.paused = false;
        }
        Ok(())
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.assignment
            .iter()
            .filter(|(_, s)| s.paused)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Returns up to `max.poll.records` records: buffered ones at once, otherwise the first that
    /// fetches bring within `timeout`, or an empty list when the time is up. Records of one
    /// partition come in offset order; each partition's position moves past what is returned.
    ///
    /// Errors: a partition without position under `auto.offset.reset=none`, an out-of-range
    /// position under `none`, invalid fetched data (CRC, corrupt batch; the position stays at the
    /// bad batch), a batch that decompresses to more than `max.poll.decompressed.bytes`, fetched
    /// data the position cannot move past (a truncated or over-long batch, only records before
    /// the position) in several fetches while the position does not move, and a broker's
    /// refusal of a partition (a denied topic: class [`ErrorClass::Rejected`](crate::ErrorClass),
    /// the consumer stays usable), each naming the partition. Retriable failures (leader moves, lost connections) are retried inside `poll`
    /// with backoff.
    ///
    /// Cancellation: safe at any await. A dropped `poll` returned nothing and moved no position;
    /// fetches it started keep running and their data waits for the next `poll`.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use josefk::consumer::{CommitMode, Consumer, ConsumerConfig};
    /// # async fn demo() -> josefk::Result<()> {
    /// # let mut consumer = Consumer::connect(ConsumerConfig::new("k:9092").group_id("g").commit_mode(CommitMode::Manual)).await?;
    /// # consumer.subscribe(&["orders"])?;
    /// loop {
    ///     for record in consumer.poll(Duration::from_millis(500)).await? {
    ///         println!("{}-{}@{}: {:?}", record.topic, record.partition, record.offset, record.value);
    ///     }
    ///     consumer.commit().await?; // after processing: at least once
    /// #   break;
    /// }
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(
        name = "poll",
        level = "debug",
        skip_all,
        fields(
            messaging.system = "kafka",
            messaging.operation.type = "receive",
            messaging.consumer.group.name = self.config.group_id.as_deref().unwrap_or_default(),
            messaging.batch.message_count = tracing::field::Empty,
        ),
        err(level = "debug")
    )]
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let started = self.poll_started();
        let result = self
            .poll_limited(timeout, self.config.max_poll_records)
            .await;
        if let Ok(records) = &result {
            tracing::Span::current().record("messaging.batch.message_count", records.len());
        }
        self.poll_ended(started);
        result
    }

    /// [`Consumer::poll`] returning at most `limit` records.
    async fn poll_limited(
        &mut self,
        timeout: Duration,
        limit: usize,
    ) -> Result<Vec<ConsumerRecord>> {
        let deadline = crate::clock::from_now(timeout);
        if self.subscribed() {
            self.on_poll_member();
            if !self.resolve_pattern(deadline).await? {
                return Ok(Vec::new());
            }
            if !self.ensure_group(deadline).await? {
                return Ok(Vec::new());
            }
            if self.group.is_some() {
                self.check_subscribed_topics().await;
            }
        }
        // With `group.id`, manually assigned partitions are committed too (generation -1), as in
        // Java.
        // Here too, not only in the loop below: a poll that hands out buffered records returns
        // before reaching it. A finished auto-commit counts as running until taken in (so none
        // would start while records stay buffered), and a partition assigned meanwhile would get
        // no position until the other partitions' buffers ran dry. Only the committed-offset
        // lookup is started here: it needs no scan of the assignment (a stream polls per record).
        self.take_finished_background();
        if self.membership.is_some() {
            self.maybe_auto_commit();
        }
        if !self.awaiting_committed.is_empty() {
            self.start_position_lookup()?;
        }
        loop {
            if self.subscribed() && !self.ensure_group(deadline).await? {
                return Ok(Vec::new());
            }
            let mut out = Vec::new();
            let buffered_before = self.buffered.len();
            self.drain_buffered(&mut out, limit)?;
            if !out.is_empty() {
                self.prefetch(self.buffered.len() < buffered_before);
                self.count_consumed(out.len());
                if self.membership.is_some()
                    && self.config.commit_mode == CommitMode::BeforeProcessing
                {
                    self.commit_before_processing(&out).await?;
                }
                return Ok(out);
            }
            self.take_finished_background();
            if let Some(e) = self.pending_error.take() {
                return Err(e);
            }
            if let Some(e) = self.background.lookup_error.take() {
                return Err(e);
            }
            self.start_position_lookup()?;
            self.refresh_metadata_if_stale().await?;
            self.send_fetches();
            let now = Instant::now();
            if now >= deadline {
                return Ok(out);
            }
            // Partitions or leaders backing off become fetchable again by themselves.
            let retry_at = self.next_retry(now).unwrap_or(deadline).min(deadline);
            if self.in_flight.is_empty() && !self.background.busy() {
                // Nothing fetchable now (all paused, or backing off): wait a little.
                let wake = retry_at.min(crate::clock::after(now, self.config.client.retry_backoff));
                tokio::time::sleep_until(wake).await;
                continue;
            }
            let background = &mut self.background;
            let woken = tokio::select! {
                Some(joined) = self.in_flight.join_next() => Woken::Fetch(joined),
                Some(joined) = background.lookups.join_next() => Woken::Lookup(joined),
                Some(joined) = background.auto_commits.join_next() => Woken::AutoCommit(joined),
                () = tokio::time::sleep_until(retry_at) => Woken::Timer,
            };
            match woken {
                Woken::Fetch(joined) => self.handle_joined(joined),
                Woken::Lookup(joined) => self.apply_lookup(joined),
                Woken::AutoCommit(joined) => self.apply_auto_commit(joined),
                Woken::Timer => {}
            }
        }
    }

    /// Before records go back to the caller: takes in the fetches that finished meanwhile and
    /// starts the next ones for partitions with nothing buffered (as Java's consumer does before
    /// returning), so the broker prepares the next data while the caller handles these records.
    /// Without it a fetch went out only once everything buffered was drained, and each fetch's
    /// full round trip (long over TLS, where the broker encrypts every byte) was waited for.
    /// `emptied`: a partition's buffer ran out in this drain. Only that and a fetch taken in
    /// since the last [`Consumer::send_fetches`] make a partition fetchable between two drains
    /// (backoffs are left to the waiting path), so other polls skip the scan (a stream polls
    /// per record).
    ///
    /// Only when a partition that could go out is behind its end offset: a fetch of partitions
    /// that are all caught up would wait `fetch.max.wait.ms` at the broker, and while it waits the
    /// partitions being drained could not be fetched (one fetch per broker at a time). Those are
    /// fetched as before, once everything buffered has been handed out.
    fn prefetch(&mut self, emptied: bool) {
        while let Some(joined) = self.in_flight.try_join_next() {
            self.handle_joined(joined);
        }
        if !(emptied || self.fetch_due) || self.metadata_stale {
            return;
        }
        self.fetch_due = false;
        let buffered: HashSet<&TopicPartition> = self.buffered.iter().map(|f| &f.tp).collect();
        let behind = self.assignment.iter().any(|(tp, state)| {
            let Some(position) = state.position else {
                return false;
            };
            !state.paused
                && !state.in_flight
                && !buffered.contains(tp)
                && state.end_offset.is_none_or(|end| position < end)
        });
        if behind {
            self.send_fetches();
        }
    }

    /// The earliest time after `now` a partition or leader that is backing off may be fetched.
    /// A position lookup that failed counts too: the next one may start then.
    fn next_retry(&self, now: Instant) -> Option<Instant> {
        let partitions = self.assignment.values().map(|s| &s.retry);
        partitions
            .chain(self.node_retry.values())
            .filter_map(FetchRetry::not_before)
            .chain(self.background.next_lookup)
            .filter(|at| *at > now)
            .min()
    }

    fn state_mut(&mut self, tp: &TopicPartition) -> Result<&mut PartitionState> {
        self.assignment
            .get_mut(tp)
            .ok_or_else(|| Error::InvalidState(format!("partition {tp} is not assigned")))
    }

    /// Hands out buffered records of unpaused partitions, moving their positions, within one
    /// poll's `max.poll.decompressed.bytes`. Returns the error of a bad batch once the records
    /// before it have been returned. Data the position cannot move past backs its partition off,
    /// and is an error once that happened [`STALLS_BEFORE_ERROR`] times since the position last
    /// moved.
    fn drain_buffered(&mut self, out: &mut Vec<ConsumerRecord>, limit: usize) -> Result<()> {
        let mut budget = DecompressBudget::new(self.config.max_poll_decompressed_bytes);
        let (initial, max) = (
            self.config.client.retry_backoff,
            self.config.client.retry_backoff_max,
        );
        let mut i = 0;
        while i < self.buffered.len() && out.len() < limit && !budget.is_full() {
            let fetch = &mut self.buffered[i];
            let Some(state) = self.assignment.get_mut(&fetch.tp) else {
                self.buffered.remove(i);
                continue;
            };
            if state.position != Some(fetch.next_offset()) {
                // Seeked (or reset) since the fetch: the data is not where the position is.
                self.buffered.remove(i);
                continue;
            }
            if state.paused {
                i += 1;
                continue;
            }
            fetch.drain(limit, &mut budget, out);
            if state.position != Some(fetch.next_offset()) {
                state.retry.succeeded();
                state.reset_to = None;
            }
            state.position = Some(fetch.next_offset());
            let registry = &self.cluster.pool().metrics().0;
            if registry.enabled {
                metrics::note_lag(&registry.consumer, &fetch.tp, state);
            }
            if fetch.has_error() {
                if out.is_empty() {
                    let error = fetch.take_error().expect("has an error");
                    // Fetching the same bad batch again at once would only fail again.
                    state.retry.failed(Instant::now(), initial, max);
                    self.buffered.remove(i);
                    return Err(error);
                }
                // Report it on the next poll, after these records.
                break;
            }
            if !fetch.is_drained() {
                i += 1;
                continue;
            }
            if let Some(why) = fetch.stall() {
                let stalls = state.retry.stalled(Instant::now(), initial, max);
                debug!(tp = %fetch.tp, stalls, why, "fetch made no progress; backing off");
                if stalls >= STALLS_BEFORE_ERROR {
                    let error = Error::PartitionStalled {
                        topic: fetch.tp.topic.clone(),
                        partition: fetch.tp.partition,
                        offset: fetch.next_offset(),
                        broker: fetch.broker().cloned(),
                        reason: format!("{stalls} fetches since it last moved returned {why}"),
                    };
                    self.buffered.remove(i);
                    if out.is_empty() {
                        return Err(error);
                    }
                    self.pending_error = Some(error);
                    break;
                }
            }
            self.buffered.remove(i);
        }
        Ok(())
    }

    async fn refresh_metadata_if_stale(&mut self) -> Result<()> {
        if !self.metadata_stale {
            return Ok(());
        }
        let backoff = self.config.client.retry_backoff;
        if self
            .last_metadata_refresh
            .is_some_and(|at| at.elapsed() < backoff)
        {
            return Ok(());
        }
        let topics: BTreeSet<&str> = self.assignment.keys().map(|tp| tp.topic.as_str()).collect();
        let topics: Vec<&str> = topics.into_iter().collect();
        self.last_metadata_refresh = Some(Instant::now());
        match self
            .cluster
            .refresh_metadata(TopicsQuery::Some(&topics))
            .await
        {
            Ok(_) => self.metadata_stale = false,
            Err(e) if e.is_retriable() => debug!(error = %e, "metadata refresh will be retried"),
            Err(e) => return Err(e),
        }
        Ok(())
    }
}
