//! Finding hanging transactions: list the transactions every coordinator holds
//! (ListTransactions), describe transactions by transactional id (DescribeTransactions: state,
//! producer, timeout, start time, partitions) and describe the producers a partition leader
//! tracks (DescribeProducers: the first offset of each producer's open transaction), and abort a
//! hanging transaction on a partition (WriteTxnMarkers to its leader).
//!
//! Names and semantics follow Java's `Admin.listTransactions`, `describeTransactions` and
//! `describeProducers` and `abortTransaction`. A transaction whose producer died is normally aborted by its
//! coordinator once `transaction.timeout.ms` passed; `abort_transaction` is for the ones no
//! coordinator will end.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest,
    ProducerId, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use super::deadline::Call;
use super::{topic_name, Admin};
use crate::cluster::{is_stale_metadata_error, CoordinatorKind, TopicsQuery};
use crate::error::{Error, Result};
use crate::net::Lane;
use crate::record::TopicPartition;

/// A transaction's state as its coordinator reports it (Java `TransactionState`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TransactionState {
    /// Open: partitions or offsets were added and no commit or abort has begun.
    Ongoing,
    /// A commit was asked for; markers are being written.
    PrepareCommit,
    /// An abort was asked for (by the producer, or by the coordinator after the timeout).
    PrepareAbort,
    /// The last transaction committed.
    CompleteCommit,
    /// The last transaction aborted.
    CompleteAbort,
    /// No transaction since the producer id was given out.
    Empty,
    /// The coordinator is fencing an older producer epoch.
    PrepareEpochFence,
    /// A state this version of josefk does not know, by the broker's name for it.
    Other(String),
}

impl TransactionState {
    /// The broker's name of the state (`Ongoing`, `PrepareCommit`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            TransactionState::Ongoing => "Ongoing",
            TransactionState::PrepareCommit => "PrepareCommit",
            TransactionState::PrepareAbort => "PrepareAbort",
            TransactionState::CompleteCommit => "CompleteCommit",
            TransactionState::CompleteAbort => "CompleteAbort",
            TransactionState::Empty => "Empty",
            TransactionState::PrepareEpochFence => "PrepareEpochFence",
            TransactionState::Other(name) => name,
        }
    }

    fn parse(name: &str) -> TransactionState {
        match name {
            "Ongoing" => TransactionState::Ongoing,
            "PrepareCommit" => TransactionState::PrepareCommit,
            "PrepareAbort" => TransactionState::PrepareAbort,
            "CompleteCommit" => TransactionState::CompleteCommit,
            "CompleteAbort" => TransactionState::CompleteAbort,
            "Empty" => TransactionState::Empty,
            "PrepareEpochFence" => TransactionState::PrepareEpochFence,
            other => TransactionState::Other(other.to_owned()),
        }
    }
}

impl std::fmt::Display for TransactionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Filters of [`Admin::list_transactions`] (Java `ListTransactionsOptions`). The default lists
/// every transactional id the coordinators know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListTransactionsOptions {
    /// Only transactions in one of these states (empty: any state).
    pub states: Vec<TransactionState>,
    /// Only transactions of one of these producer ids (empty: any producer).
    pub producer_ids: Vec<i64>,
    /// Only transactions open for longer than this (brokers speaking ListTransactions v1+; older
    /// ones make the call fail rather than list more than asked).
    pub running_longer_than: Option<Duration>,
    /// Only transactional ids matching this Java regular expression (brokers speaking
    /// ListTransactions v2+).
    pub transactional_id_pattern: Option<String>,
}

impl ListTransactionsOptions {
    /// No filter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only transactions in `state` (may be given more than once).
    pub fn state(mut self, state: TransactionState) -> Self {
        self.states.push(state);
        self
    }

    /// Only transactions of `producer_id` (may be given more than once).
    pub fn producer_id(mut self, producer_id: i64) -> Self {
        self.producer_ids.push(producer_id);
        self
    }

    /// Only transactions open for longer than `duration`.
    pub fn running_longer_than(mut self, duration: Duration) -> Self {
        self.running_longer_than = Some(duration);
        self
    }

    /// Only transactional ids matching `pattern` (a Java regular expression).
    pub fn transactional_id_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.transactional_id_pattern = Some(pattern.into());
        self
    }
}

/// One transactional id as [`Admin::list_transactions`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransactionListing {
    /// The `transactional.id`.
    pub transactional_id: String,
    /// The producer id the coordinator gave it.
    pub producer_id: i64,
    /// Its state.
    pub state: TransactionState,
    /// The node id of the coordinator that answered.
    pub coordinator: i32,
}

/// What [`Admin::describe_transactions`] returns for one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransactionDescription {
    /// The `transactional.id`.
    pub transactional_id: String,
    /// The node id of its coordinator.
    pub coordinator: i32,
    /// Its state.
    pub state: TransactionState,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// The producer's `transaction.timeout.ms`.
    pub transaction_timeout: Duration,
    /// When the open transaction began, in ms since the epoch; `None` when none is open.
    pub transaction_start_time_ms: Option<i64>,
    /// The partitions in the open transaction, sorted.
    pub partitions: Vec<TopicPartition>,
}

/// One producer a partition leader tracks, from [`Admin::describe_producers`] (Java
/// `ProducerState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducerState {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch of its last write.
    pub producer_epoch: i32,
    /// The sequence number of its last record on the partition.
    pub last_sequence: i32,
    /// The timestamp of its last write, ms since the epoch.
    pub last_timestamp: i64,
    /// The coordinator epoch of its last transaction marker, if any.
    pub coordinator_epoch: Option<i32>,
    /// The offset of the first record of its open transaction on this partition, if one is
    /// open: what holds back the last stable offset.
    pub current_transaction_start_offset: Option<i64>,
}

/// Which open transaction [`Admin::abort_transaction`] aborts on one partition (Java
/// `AbortTransactionSpec`): the producer and epochs as [`Admin::describe_producers`] reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AbortTransactionSpec {
    /// The partition holding the transaction open.
    pub partition: TopicPartition,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch of the open transaction.
    pub producer_epoch: i16,
    /// The coordinator epoch the marker carries (the leader refuses one older than the last it
    /// saw from this producer).
    pub coordinator_epoch: i32,
}

impl AbortTransactionSpec {
    /// The spec aborting `producer`'s open transaction on `partition`, from what
    /// [`Admin::describe_producers`] returned (coordinator epoch 0 when none was recorded, as
    /// Kafka's `kafka-transactions.sh abort` does).
    pub fn for_producer(partition: TopicPartition, producer: &ProducerState) -> Result<Self> {
        let producer_epoch = i16::try_from(producer.producer_epoch).map_err(|_| {
            Error::InvalidArgument(format!(
                "producer epoch {} is out of range",
                producer.producer_epoch
            ))
        })?;
        Ok(AbortTransactionSpec {
            partition,
            producer_id: producer.producer_id,
            producer_epoch,
            coordinator_epoch: producer.coordinator_epoch.unwrap_or(0).max(0),
        })
    }
}

impl Admin {
    /// The transactions every coordinator holds, filtered as `options` says, sorted by
    /// transactional id (one ListTransactions per broker, as Java's `listTransactions`). Fails if
    /// any broker cannot be asked.
    ///
    /// Cancellation: dropping the future changes nothing (it only reads).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use josefk::admin::{Admin, ListTransactionsOptions, TransactionState};
    /// use josefk::ClientConfig;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// let hanging = ListTransactionsOptions::new()
    ///     .state(TransactionState::Ongoing)
    ///     .running_longer_than(Duration::from_secs(600));
    /// for t in admin.list_transactions(&hanging).await? {
    ///     println!("{} (producer {}) is still open", t.transactional_id, t.producer_id);
    /// }
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(
        name = "kafka.admin.list_transactions",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn list_transactions(
        &self,
        options: &ListTransactionsOptions,
    ) -> Result<Vec<TransactionListing>> {
        let request = ListTransactionsRequest::default()
            .with_state_filters(
                options
                    .states
                    .iter()
                    .map(|s| StrBytes::from_string(s.as_str().to_owned()))
                    .collect(),
            )
            .with_producer_id_filters(
                options
                    .producer_ids
                    .iter()
                    .map(|&p| ProducerId(p))
                    .collect(),
            )
            .with_duration_filter(
                options
                    .running_longer_than
                    .map_or(-1, |d| d.as_millis().try_into().unwrap_or(i64::MAX)),
            )
            .with_transactional_id_pattern(
                options
                    .transactional_id_pattern
                    .as_ref()
                    .map(|p| StrBytes::from_string(p.clone())),
            );
        let call = self.call(ApiKey::ListTransactions);
        call.run(self.list_transactions_in(&request)).await
    }

    async fn list_transactions_in(
        &self,
        request: &ListTransactionsRequest,
    ) -> Result<Vec<TransactionListing>> {
        let snapshot = self.cluster.refresh_metadata(TopicsQuery::None).await?;
        let brokers: Vec<i32> = snapshot.brokers.keys().copied().collect();
        let mut out = Vec::new();
        for node in brokers {
            let response = self
                .retrying_on(node, |conn| {
                    let request = request.clone();
                    async move {
                        let version = conn.version_for::<ListTransactionsRequest>()?;
                        // Older versions would silently drop a filter and list more than asked.
                        let needs = if request.transactional_id_pattern.is_some() {
                            2
                        } else if request.duration_filter >= 0 {
                            1
                        } else {
                            0
                        };
                        if version < needs {
                            return Err(Error::InvalidArgument(format!(
                                "broker {} speaks ListTransactions up to v{version}; the filter \
                                 asked for needs v{needs}",
                                conn.broker()
                            )));
                        }
                        let response = conn.send_version(&request, version, None).await?;
                        Error::check_code(
                            ApiKey::ListTransactions,
                            Some(conn.broker()),
                            response.error_code,
                            None,
                        )?;
                        Ok(response)
                    }
                })
                .await?;
            for t in response.transaction_states {
                out.push(TransactionListing {
                    transactional_id: t.transactional_id.0.to_string(),
                    producer_id: t.producer_id.0,
                    state: TransactionState::parse(&t.transaction_state),
                    coordinator: node,
                });
            }
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }

    /// Describes transactional ids, each by its coordinator: state, producer id and epoch,
    /// timeout, and the start time and partitions of the open transaction. An id the
    /// coordinator does not know fails with TRANSACTIONAL_ID_NOT_FOUND naming it.
    ///
    /// Cancellation: dropping the future changes nothing (it only reads).
    ///
    /// ```no_run
    /// use josefk::admin::Admin;
    /// use josefk::ClientConfig;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// for t in admin.describe_transactions(&["copier-1"]).await? {
    ///     println!("{}: {} on {:?}", t.transactional_id, t.state, t.partitions);
    /// }
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(
        name = "kafka.admin.describe_transactions",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn describe_transactions(
        &self,
        transactional_ids: &[&str],
    ) -> Result<Vec<TransactionDescription>> {
        let call = self.call(ApiKey::DescribeTransactions);
        call.run(self.describe_transactions_in(&call, transactional_ids))
            .await
    }

    async fn describe_transactions_in(
        &self,
        call: &Call,
        transactional_ids: &[&str],
    ) -> Result<Vec<TransactionDescription>> {
        let mut out = Vec::with_capacity(transactional_ids.len());
        for id in transactional_ids {
            let kind = CoordinatorKind::Transaction;
            let (node, state) = self
                .with_coordinator(call, kind, id, |conn| async move {
                    let request =
                        DescribeTransactionsRequest::default().with_transactional_ids(vec![
                            TransactionalId(StrBytes::from_string((*id).to_owned())),
                        ]);
                    let response = conn.send(&request).await?;
                    let state = response
                        .transaction_states
                        .into_iter()
                        .find(|s| s.transactional_id.0.as_str() == *id)
                        .ok_or_else(|| Error::Protocol {
                            api: Some(crate::error::ApiKey::DescribeTransactions),
                            broker: Some(conn.broker().clone()),
                            message: format!("no answer for transactional id `{id}`"),
                        })?;
                    Error::check_code(
                        ApiKey::DescribeTransactions,
                        Some(conn.broker()),
                        state.error_code,
                        Some(&format!("transactional id `{id}`")),
                    )?;
                    Ok(state)
                })
                .await?;
            let mut partitions: Vec<TopicPartition> = state
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|&p| TopicPartition::new(t.topic.0.to_string(), p))
                })
                .collect();
            partitions.sort();
            out.push(TransactionDescription {
                transactional_id: state.transactional_id.0.to_string(),
                coordinator: node,
                state: TransactionState::parse(&state.transaction_state),
                producer_id: state.producer_id.0,
                producer_epoch: state.producer_epoch,
                transaction_timeout: Duration::from_millis(
                    state.transaction_timeout_ms.max(0) as u64
                ),
                transaction_start_time_ms: (state.transaction_start_time_ms >= 0)
                    .then_some(state.transaction_start_time_ms),
                partitions,
            });
        }
        Ok(out)
    }

    /// The producers each partition's leader tracks, with the start offset of any open
    /// transaction (Java `describeProducers`). Every partition asked for is in the answer; stale
    /// leadership is retried, and a topic that does not exist yet waited for, until the call's
    /// timeout.
    ///
    /// Cancellation: dropping the future changes nothing (it only reads).
    ///
    /// ```no_run
    /// use josefk::admin::Admin;
    /// use josefk::{ClientConfig, TopicPartition};
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// let tp = TopicPartition::new("orders", 0);
    /// for p in &admin.describe_producers(&[tp.clone()]).await?[&tp] {
    ///     if let Some(start) = p.current_transaction_start_offset {
    ///         println!("producer {} holds a transaction open from offset {start}", p.producer_id);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(
        name = "kafka.admin.describe_producers",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn describe_producers(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Vec<ProducerState>>> {
        let call = self.call(ApiKey::DescribeProducers);
        call.run(self.describe_producers_in(&call, partitions))
            .await
    }

    async fn describe_producers_in(
        &self,
        call: &Call,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Vec<ProducerState>>> {
        let mut backoff = self.cluster.retry_backoff();
        let mut pending: BTreeSet<TopicPartition> = partitions.iter().cloned().collect();
        let mut done = BTreeMap::new();
        loop {
            let topics: Vec<&str> = pending.iter().map(|tp| tp.topic.as_str()).collect();
            let snapshot = self.topics_ready(call, &topics).await?;
            let mut by_leader: BTreeMap<i32, Vec<&TopicPartition>> = BTreeMap::new();
            for tp in &pending {
                let leader = snapshot.leader(tp).ok_or_else(|| {
                    Error::from_code(
                        ApiKey::DescribeProducers,
                        None,
                        ResponseError::UnknownTopicOrPartition,
                        Some(format!("partition {tp}")),
                    )
                })?;
                by_leader.entry(leader).or_default().push(tp);
            }
            let mut retry = BTreeSet::new();
            for (leader, tps) in by_leader {
                let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                for tp in &tps {
                    by_topic.entry(&tp.topic).or_default().push(tp.partition);
                }
                let request = DescribeProducersRequest::default().with_topics(
                    by_topic
                        .into_iter()
                        .map(|(t, ps)| {
                            TopicRequest::default()
                                .with_name(topic_name(t))
                                .with_partition_indexes(ps)
                        })
                        .collect(),
                );
                let answer = match self.cluster.connection(leader, Lane::Control).await {
                    Ok(conn) => conn
                        .send(&request)
                        .await
                        .map(|r| (conn.broker().clone(), r)),
                    Err(e) => Err(e),
                };
                let (broker, response) = match answer {
                    Ok(answer) => answer,
                    Err(e) if e.is_retriable() && !matches!(e, Error::Timeout { .. }) => {
                        debug!(error = %e, leader, "DescribeProducers will be retried");
                        retry.extend(tps.into_iter().cloned());
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                for t in response.topics {
                    for p in t.partitions {
                        let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                        if !pending.contains(&tp) {
                            continue;
                        }
                        match ResponseError::try_from_code(p.error_code) {
                            None => {
                                let producers = p
                                    .active_producers
                                    .iter()
                                    .map(|a| ProducerState {
                                        producer_id: a.producer_id.0,
                                        producer_epoch: a.producer_epoch,
                                        last_sequence: a.last_sequence,
                                        last_timestamp: a.last_timestamp,
                                        coordinator_epoch: (a.coordinator_epoch >= 0)
                                            .then_some(a.coordinator_epoch),
                                        current_transaction_start_offset: (a
                                            .current_txn_start_offset
                                            >= 0)
                                            .then_some(a.current_txn_start_offset),
                                    })
                                    .collect();
                                done.insert(tp, producers);
                            }
                            Some(code) => {
                                let message = match &p.error_message {
                                    Some(m) => format!("partition {tp}: {m}"),
                                    None => format!("partition {tp}"),
                                };
                                let e = Error::from_code(
                                    ApiKey::DescribeProducers,
                                    Some(broker.clone()),
                                    code,
                                    Some(message),
                                );
                                if !is_stale_metadata_error(code) {
                                    return Err(e);
                                }
                                debug!(error = %e, "DescribeProducers will be retried");
                                retry.insert(tp);
                            }
                        }
                    }
                }
            }
            if let Some(tp) = pending
                .iter()
                .find(|tp| !done.contains_key(*tp) && !retry.contains(*tp))
            {
                return Err(Error::Protocol {
                    api: Some(crate::error::ApiKey::DescribeProducers),
                    broker: None,
                    message: format!("the leader's answer left out partition {tp}"),
                });
            }
            if retry.is_empty() {
                return Ok(done);
            }
            tokio::time::sleep(backoff.next_delay()).await;
            let topics: Vec<&str> = retry.iter().map(|tp| tp.topic.as_str()).collect();
            self.refresh_for_retry(&topics).await?;
            pending = retry;
        }
    }
}

impl Admin {
    /// Aborts a hanging transaction on one partition by writing an abort marker through the
    /// partition's leader (WriteTxnMarkers, as Java's `abortTransaction` and
    /// `kafka-transactions.sh abort`): the last stable offset moves past it and `read_committed`
    /// consumers go on. For a transaction whose coordinator lost track of it (its producer is
    /// gone and no timeout will end it); a live transaction is better left to its coordinator.
    /// Needs `ClusterAction` on the cluster where an authorizer is on.
    ///
    /// Cancellation: if dropped after the request was sent, the marker may have been written.
    ///
    /// ```no_run
    /// use josefk::admin::{AbortTransactionSpec, Admin};
    /// use josefk::{ClientConfig, TopicPartition};
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// let tp = TopicPartition::new("orders", 0);
    /// for p in &admin.describe_producers(&[tp.clone()]).await?[&tp] {
    ///     if p.current_transaction_start_offset.is_some() {
    ///         let spec = AbortTransactionSpec::for_producer(tp.clone(), p)?;
    ///         admin.abort_transaction(&spec).await?;
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(
        name = "kafka.admin.abort_transaction",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn abort_transaction(&self, spec: &AbortTransactionSpec) -> Result<()> {
        let tp = &spec.partition;
        let request =
            WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                .with_producer_id(ProducerId(spec.producer_id))
                .with_producer_epoch(spec.producer_epoch)
                .with_transaction_result(false)
                .with_coordinator_epoch(spec.coordinator_epoch)
                .with_topics(vec![WritableTxnMarkerTopic::default()
                    .with_name(topic_name(&tp.topic))
                    .with_partition_indexes(vec![tp.partition])])]);
        let call = self.call(ApiKey::WriteTxnMarkers);
        call.run(self.abort_transaction_in(&call, tp, &request))
            .await
    }

    async fn abort_transaction_in(
        &self,
        call: &Call,
        tp: &TopicPartition,
        request: &WriteTxnMarkersRequest,
    ) -> Result<()> {
        let mut backoff = self.cluster.retry_backoff();
        loop {
            let snapshot = self.topics_ready(call, &[&tp.topic]).await?;
            let leader = snapshot.leader(tp).ok_or_else(|| {
                Error::from_code(
                    ApiKey::WriteTxnMarkers,
                    None,
                    ResponseError::UnknownTopicOrPartition,
                    Some(format!("partition {tp}")),
                )
            })?;
            let attempt = async {
                let conn = self.cluster.connection(leader, Lane::Control).await?;
                let response = call.send(&conn, request).await?;
                let code = response
                    .markers
                    .iter()
                    .flat_map(|m| &m.topics)
                    .filter(|t| t.name.0.as_str() == tp.topic)
                    .flat_map(|t| &t.partitions)
                    .find(|p| p.partition_index == tp.partition)
                    .map(|p| p.error_code)
                    .ok_or_else(|| Error::Protocol {
                        api: Some(crate::error::ApiKey::WriteTxnMarkers),
                        broker: Some(conn.broker().clone()),
                        message: format!("the leader's answer left out partition {tp}"),
                    })?;
                match ResponseError::try_from_code(code) {
                    None => Ok(()),
                    Some(code) => {
                        let mut e = Error::from_code(
                            ApiKey::WriteTxnMarkers,
                            Some(conn.broker().clone()),
                            code,
                            Some(format!("partition {tp}")),
                        );
                        if is_stale_metadata_error(code) {
                            if let Error::Broker { class, .. } = &mut e {
                                *class = crate::error::ErrorClass::Retriable;
                            }
                        }
                        Err(e)
                    }
                }
            }
            .await;
            match attempt {
                Err(e) if e.is_retriable() && !matches!(e, Error::Timeout { .. }) => {
                    debug!(error = %e, %tp, "WriteTxnMarkers will be retried");
                    tokio::time::sleep(backoff.next_delay()).await;
                    self.refresh_for_retry(&[&tp.topic]).await?;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_keep_the_broker_names() {
        for name in [
            "Ongoing",
            "PrepareCommit",
            "PrepareAbort",
            "CompleteCommit",
            "CompleteAbort",
            "Empty",
            "PrepareEpochFence",
            "SomethingNew",
        ] {
            assert_eq!(TransactionState::parse(name).as_str(), name);
        }
        assert_eq!(
            TransactionState::parse("Ongoing"),
            TransactionState::Ongoing
        );
        assert_eq!(
            TransactionState::parse("SomethingNew"),
            TransactionState::Other("SomethingNew".into())
        );
    }
}
