//! The transactional producer's IO: the coordinator driver task and the user calls
//! ([`Producer::init_transactions`](super::Producer::init_transactions) and friends).
//!
//! The rules live in [`crate::state::transaction::TransactionManager`] (Java's
//! `TransactionManager`); this module only moves its requests over the network. One driver task
//! per transactional producer (Java runs these on the `Sender` thread) loops: ask the manager for
//! the next coordinator request, send it to the transaction (or group) coordinator, feed the
//! answer back, and wake whoever waits. User calls change the manager's state and wait, bounded by
//! `max.block.ms`, for the driver to reach the outcome. So a call whose future is dropped, or that
//! timed out, has not been undone: the driver finishes what it started, and calling the same
//! method again resumes waiting for it (Java's "retry the blocking call after a timeout").

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, ApiKey, EndTxnRequest, GroupId,
    InitProducerIdRequest, ProduceRequest, ProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::{StrBytes, VersionRange};
use std::sync::Arc;
use tokio::time::Instant;
use tracing::debug;

use super::sender::Shared;
use crate::cluster::CoordinatorKind;
use crate::error::{Error, ErrorClass, Result};
use crate::net::Connection;
use crate::protocol::versions::client_versions;
use crate::record::TopicPartition;
use crate::state::sequence::ProducerIdAndEpoch;
use crate::state::transaction::{TxnCapabilities, TxnProtocol, TxnRequest, TxnState, TxnStep};

/// The consumer group whose offsets a transaction commits (Java `ConsumerGroupMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    /// `group.id`.
    pub group_id: String,
    /// The generation (the member epoch under KIP-848); -1 when not a group member.
    pub generation_id: i32,
    /// The member id; empty when not a group member.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// Metadata for a group this producer is not a member of (no generation fencing).
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerGroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

/// Offsets waiting for their TxnOffsetCommit.
#[derive(Debug, Clone)]
pub(crate) struct PendingOffsets {
    pub(crate) offsets: Vec<(TopicPartition, i64, Option<String>)>,
    pub(crate) group: ConsumerGroupMetadata,
}

impl PendingOffsets {
    /// The partitions whose offsets are still to be committed.
    pub(crate) fn partitions(&self) -> Vec<TopicPartition> {
        self.offsets.iter().map(|(tp, _, _)| tp.clone()).collect()
    }

    /// Drops the partitions `results` reports committed, so a retry resends only the ones that
    /// failed with a retriable error (Java `TxnOffsetCommitHandler` removes each committed
    /// partition from `pendingTxnOffsetCommits`). A partition the response left out stays: its
    /// outcome is unknown.
    pub(crate) fn keep_uncommitted(&mut self, results: &[(TopicPartition, Option<ResponseError>)]) {
        self.offsets.retain(|(tp, _, _)| {
            !results
                .iter()
                .any(|(done, code)| done == tp && code.is_none())
        });
    }
}

/// Highest version under the v1 protocol for the APIs whose next version means KIP-890 part 2.
const V1_MAX_PRODUCE: i16 = 11;
const V1_MAX_END_TXN: i16 = 4;
const V1_MAX_TXN_OFFSET_COMMIT: i16 = 4;

/// The version of `api` to use on `conn` under `protocol`.
pub(crate) fn txn_version(conn: &Connection, api: ApiKey, protocol: TxnProtocol) -> Result<i16> {
    let mut range: VersionRange = client_versions(api);
    if protocol == TxnProtocol::V1 {
        let cap = match api {
            ApiKey::Produce => V1_MAX_PRODUCE,
            ApiKey::EndTxn => V1_MAX_END_TXN,
            ApiKey::TxnOffsetCommit => V1_MAX_TXN_OFFSET_COMMIT,
            _ => range.max,
        };
        range.max = range.max.min(cap);
    }
    conn.versions().choose_within(api, range, conn.broker())
}

/// What the coordinator's connection says the cluster supports.
fn capabilities(conn: &Connection) -> TxnCapabilities {
    let v = conn.versions();
    let max = |api: ApiKey| v.choose(api, conn.broker()).unwrap_or(-1);
    TxnCapabilities {
        transaction_version: v.finalized_feature("transaction.version").unwrap_or(0),
        produce_max: max(ApiKey::Produce),
        end_txn_max: max(ApiKey::EndTxn),
        txn_offset_commit_max: max(ApiKey::TxnOffsetCommit),
        init_producer_id_max: max(ApiKey::InitProducerId),
    }
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

impl Shared {
    pub(crate) fn transactional_id(&self) -> &str {
        self.config.transactional_id.as_deref().unwrap_or_default()
    }

    /// The transaction coordinator, recording its capabilities for the next transaction.
    pub(crate) async fn txn_coordinator(&self) -> Result<(i32, Connection)> {
        let (node, conn) = self
            .cluster
            .coordinator(CoordinatorKind::Transaction, self.transactional_id())
            .await?;
        let caps = capabilities(&conn);
        let mut state = self.lock();
        if let Some(txn) = &mut state.txn {
            txn.set_capabilities(caps);
            let can_bump = caps.coordinator_can_bump_epoch() || caps.protocol() == TxnProtocol::V2;
            if let Some(idem) = &mut state.idempotence {
                idem.set_can_bump_epoch(can_bump);
            }
        }
        Ok((node, conn))
    }

    /// Waits, until `deadline`, for `done` to say the outcome. `done` sees the state under the lock
    /// after every step of the driver.
    pub(crate) async fn wait_txn(
        &self,
        deadline: Instant,
        api: ApiKey,
        mut done: impl FnMut(&mut super::sender::ProducerState) -> Option<Result<()>>,
    ) -> Result<()> {
        loop {
            let progressed = self.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            {
                let mut state = self.lock();
                if let Some(result) = done(&mut state) {
                    return result;
                }
            }
            if tokio::time::timeout_at(deadline, progressed).await.is_err() {
                return Err(Error::Timeout {
                    api: Some(crate::error::ApiKey::from_protocol(api)),
                    broker: None,
                    after: self.config.max_block,
                    outcome_unknown: true,
                });
            }
        }
    }

    /// Wakes the transaction driver.
    pub(crate) fn wake_txn(&self) {
        self.txn_wake.notify_one();
    }
}

/// The error to report from a manager in an error state.
pub(crate) fn txn_error(state: &super::sender::ProducerState) -> Option<Error> {
    let txn = state.txn.as_ref()?;
    match txn.state() {
        TxnState::AbortableError | TxnState::FatalError => Some(
            txn.last_error()
                .map(|e| e.to_error())
                .unwrap_or_else(|| Error::Failed("transaction failed".into())),
        ),
        _ => None,
    }
}

/// Ends the flush `commit_transaction` began (every batch sent at once, linger.ms aside) once the
/// transaction is no longer committing.
fn end_commit_flush(state: &mut super::sender::ProducerState) {
    let txn_state = state.txn.as_ref().map(|t| t.state());
    if !matches!(txn_state, Some(TxnState::CommittingTransaction)) && state.txn_flush {
        state.txn_flush = false;
        state.end_flush();
    }
}

/// The driver task: sends the manager's coordinator requests one at a time. Ends when the producer
/// is closed or has failed.
pub(crate) async fn driver(shared: Arc<Shared>) {
    let mut backoff = shared.cluster.retry_backoff();
    loop {
        let wake = shared.txn_wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        let (request, changed) = {
            let mut state = shared.lock();
            if state.fatal.is_some() || (state.closing && state.sender_done) {
                return;
            }
            let incomplete = !state.idle();
            let txn = state.txn.as_mut();
            let before = txn.as_ref().map(|t| t.state());
            let request = txn.and_then(|t| t.next_request(incomplete));
            // next_request may end a transaction by itself (nothing was sent in it): tell the
            // waiters, and end the flush its commit began, or the next transaction would run
            // with linger.ms ignored.
            let changed = state.txn.as_ref().map(|t| t.state()) != before;
            if changed {
                end_commit_flush(&mut state);
            }
            (request, changed)
        };
        let Some(request) = request else {
            if changed {
                shared.progress.notify_waiters();
                continue;
            }
            wake.await;
            continue;
        };
        debug!(?request, "transactional request");
        let step = execute(&shared, &request).await;
        let mut retry_after = None;
        {
            let mut state = shared.lock();
            match &step {
                TxnStep::Done { new_producer } => {
                    backoff = shared.cluster.retry_backoff();
                    if let Some(p) = new_producer {
                        debug!(
                            producer_id = p.producer_id,
                            epoch = p.epoch,
                            "producer id and epoch"
                        );
                        if let Some(idem) = &mut state.idempotence {
                            idem.set_producer_id(*p, true);
                        }
                    }
                }
                TxnStep::Retry { backoff: b, .. } => {
                    retry_after = Some(b.unwrap_or_else(|| backoff.next_delay()));
                }
                TxnStep::Failed(e) => debug!(error = %e, "transactional request failed"),
            }
            end_commit_flush(&mut state);
        }
        if let Some(Err(e)) = check_fatal(&shared) {
            shared.fail_fatally(&e);
        }
        shared.progress.notify_waiters();
        shared.wake.notify_one();
        if let Some(delay) = retry_after {
            tokio::time::sleep(delay).await;
        }
    }
}

/// `Some(Err)` once the manager is in `FatalError`: the whole producer stops.
fn check_fatal(shared: &Shared) -> Option<Result<()>> {
    let state = shared.lock();
    let txn = state.txn.as_ref()?;
    (txn.state() == TxnState::FatalError && state.fatal.is_none())
        .then(|| Err(txn_error(&state).unwrap_or(Error::Closed)))
}

/// Sends one coordinator request and feeds its answer to the manager.
async fn execute(shared: &Shared, request: &TxnRequest) -> TxnStep {
    let outcome = send_one(shared, request).await;
    // A transport error is retried like NETWORK_EXCEPTION; an error that retrying cannot fix (no
    // common version) is fatal, as UNSUPPORTED_VERSION is.
    let network = match &outcome {
        Err(e) if e.class() == ErrorClass::Fatal => ResponseError::UnsupportedVersion,
        _ => ResponseError::NetworkException,
    };
    let mut guard = shared.lock();
    // One borrow per field: the manager and the pending offsets are both updated below.
    let state = &mut *guard;
    let began = state.txn_began;
    let Some(txn) = state.txn.as_mut() else {
        return TxnStep::Failed(Error::Closed);
    };
    // The coordinator aborted the transaction for running past `transaction.timeout.ms` and
    // bumped the epoch. Kafka 4.4 then answers the old epoch with INVALID_TXN_STATE (EndTxn, v2)
    // or PRODUCER_FENCED (AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, v1). That ends this
    // transaction: report it as abortable, keeping the broker's code, so the caller aborts.
    //
    // v2 recovers: the abort is answered and EndTxn v5 hands out the next epoch. v1 cannot, and
    // neither can the Java client: the coordinator's timeout fence
    // (`TransactionMetadata.prepareFenceProducerEpoch`) sets `lastProducerEpoch` to -1, so the
    // KIP-588 bump that follows the abort (InitProducerId with the current id and epoch) is
    // refused with PRODUCER_FENCED, exactly as when a newer instance took the transactional id
    // (the coordinator keeps nothing that tells the two apart, and KIP-588's
    // TRANSACTION_TIMED_OUT error, KAFKA-9910, was never merged). Java fails fatally on the
    // first PRODUCER_FENCED (EndTxnHandler, AddPartitionsToTxnHandler); josefk fails fatally at
    // that refused bump, naming the timeout (below). Re-initializing without the old id and
    // epoch would succeed, but would fence a genuine newer instance too, so only the caller,
    // by creating a new producer, may decide that.
    let timeout = shared.config.transaction_timeout;
    let mut timed_out_code = None;
    let mut expired = |code: Option<ResponseError>| match code {
        Some(c) if timed_out(c, began, timeout) => {
            timed_out_code = Some(c);
            Some(ResponseError::TransactionAbortable)
        }
        other => other,
    };
    let mut bump_refused = false;
    let result = match (request, outcome) {
        (TxnRequest::InitProducerId { current }, Ok(Answer::Init(r))) => {
            bump_refused = current.is_some() && r == Err(ResponseError::ProducerFenced);
            txn.on_init_producer_id(r)
        }
        (TxnRequest::InitProducerId { .. }, _) => txn.on_init_producer_id(Err(network)),
        (TxnRequest::AddPartitionsToTxn { .. }, Ok(Answer::Partitions(r))) => {
            let r: Vec<_> = r.into_iter().map(|(tp, c)| (tp, expired(c))).collect();
            txn.on_add_partitions(&r)
        }
        (TxnRequest::AddPartitionsToTxn { partitions }, _) => {
            let r: Vec<_> = partitions
                .iter()
                .map(|tp| (tp.clone(), Some(network)))
                .collect();
            txn.on_add_partitions(&r)
        }
        (TxnRequest::AddOffsetsToTxn { .. }, Ok(Answer::Code(c))) => txn.on_add_offsets(expired(c)),
        (TxnRequest::AddOffsetsToTxn { .. }, _) => txn.on_add_offsets(Some(network)),
        (TxnRequest::TxnOffsetCommit { .. }, Ok(Answer::Partitions(r))) => {
            // What was sent: the offsets cannot change while their commit is outstanding.
            let requested = state
                .pending_offsets
                .as_ref()
                .map(PendingOffsets::partitions)
                .unwrap_or_default();
            let step = txn.on_txn_offset_commit(&requested, &r);
            if matches!(step, Ok(TxnStep::Retry { .. })) {
                if let Some(pending) = &mut state.pending_offsets {
                    pending.keep_uncommitted(&r);
                }
            }
            settle_offsets(
                &step,
                &mut state.pending_offsets,
                &mut state.offsets_committed,
            );
            step
        }
        (TxnRequest::TxnOffsetCommit { .. }, _) => {
            let step =
                txn.on_txn_offset_commit(&[], &[(TopicPartition::new("", 0), Some(network))]);
            settle_offsets(
                &step,
                &mut state.pending_offsets,
                &mut state.offsets_committed,
            );
            step
        }
        (TxnRequest::EndTxn { commit }, Ok(Answer::End(Err(code)))) => match expired(Some(code)) {
            // The abort the coordinator already did: this one is done.
            Some(ResponseError::TransactionAbortable) if !*commit => txn.on_end_txn(Ok(None)),
            Some(c) => txn.on_end_txn(Err(c)),
            None => txn.on_end_txn(Ok(None)),
        },
        (TxnRequest::EndTxn { .. }, Ok(Answer::End(r))) => txn.on_end_txn(r),
        (TxnRequest::EndTxn { .. }, _) => txn.on_end_txn(Err(network)),
    };
    if matches!(request, TxnRequest::EndTxn { .. })
        && matches!(result, Ok(TxnStep::Done { .. }))
        && txn.protocol() == TxnProtocol::V2
    {
        state.pacing.on_transaction_ended(Instant::now().into_std());
    }
    if let Some(code) = timed_out_code {
        if txn.state() == TxnState::AbortableError {
            // What the caller can do next depends on the protocol: under v1 the abort's epoch
            // bump is refused (see above), so promising a new transaction would be false.
            let next = match txn.protocol() {
                TxnProtocol::V2 => "abort it and begin a new one",
                TxnProtocol::V1 => {
                    "abort it; under transaction.version < 2 the abort then fails fatally, and a \
                     new producer with the same transactional.id goes on"
                }
            };
            // Again from AbortableError: keeps the broker's code and asks for the epoch bump.
            txn.abortable_error(&Error::Broker {
                api: crate::error::ApiKey::from_protocol(request_api(request)),
                broker: None,
                code: crate::error::ErrorCode::from_protocol(code),
                message: Some(format!(
                    "the transaction ran longer than transaction.timeout.ms ({timeout:?}) and the \
                     coordinator aborted it; {next}"
                )),
                class: ErrorClass::Abortable,
            });
        }
    }
    if bump_refused && timed_out(ResponseError::ProducerFenced, began, timeout) {
        // See above: the v1 coordinator fenced the timed-out epoch for good. Say so, and what
        // to do, instead of a bare PRODUCER_FENCED.
        txn.fatal_error(&Error::Broker {
            api: crate::error::ApiKey::InitProducerId,
            broker: None,
            code: crate::error::ErrorCode::ProducerFenced,
            message: Some(format!(
                "the transaction ran longer than transaction.timeout.ms ({timeout:?}); under \
                 transaction.version < 2 the coordinator's abort fenced this producer's epoch \
                 and refuses to bump it (as for the Java client). Close this producer; a new \
                 one with the same transactional.id can go on, and fences any other instance \
                 using that id"
            )),
            class: ErrorClass::Fatal,
        });
    }
    match result {
        Ok(step) => step,
        Err(e) => {
            txn.fatal_error(&e);
            TxnStep::Failed(e)
        }
    }
}

/// The caller's offsets after their TxnOffsetCommit was answered, under the same lock as the
/// manager's step: a `send_offsets_to_transaction` never sees the manager done with them while
/// they are still held. Committed, they are counted; refused, they are dropped, so the abort and
/// the next transaction's offsets are not refused as "still being committed".
fn settle_offsets(
    step: &Result<TxnStep>,
    pending: &mut Option<PendingOffsets>,
    committed: &mut u64,
) {
    match step {
        Ok(TxnStep::Done { .. }) => {
            *pending = None;
            *committed += 1;
        }
        Ok(TxnStep::Retry { .. }) => {}
        Ok(TxnStep::Failed(_)) | Err(_) => *pending = None,
    }
}

fn request_api(request: &TxnRequest) -> ApiKey {
    match request {
        TxnRequest::InitProducerId { .. } => ApiKey::InitProducerId,
        TxnRequest::AddPartitionsToTxn { .. } => ApiKey::AddPartitionsToTxn,
        TxnRequest::AddOffsetsToTxn { .. } => ApiKey::AddOffsetsToTxn,
        TxnRequest::TxnOffsetCommit { .. } => ApiKey::TxnOffsetCommit,
        TxnRequest::EndTxn { .. } => ApiKey::EndTxn,
    }
}

/// Whether `code`, answering a request of a transaction that began `began`, means the
/// coordinator aborted it for exceeding `timeout` (it began longer ago than that; a genuine fence
/// shows again on the abort or the epoch bump that follows, and is fatal there).
fn timed_out(code: ResponseError, began: Option<Instant>, timeout: Duration) -> bool {
    matches!(
        code,
        ResponseError::InvalidTxnState
            | ResponseError::ProducerFenced
            | ResponseError::InvalidProducerEpoch
    ) && began.is_some_and(|b| b.elapsed() >= timeout)
}

/// A coordinator's answer, reduced to what the manager reads.
enum Answer {
    Init(std::result::Result<ProducerIdAndEpoch, ResponseError>),
    Partitions(Vec<(TopicPartition, Option<ResponseError>)>),
    Code(Option<ResponseError>),
    End(std::result::Result<Option<ProducerIdAndEpoch>, ResponseError>),
}

/// One round trip. Transport errors come back as `Err` (the caller retries them); a coordinator
/// that moved is forgotten.
async fn send_one(shared: &Shared, request: &TxnRequest) -> Result<Answer> {
    let (protocol, producer, timeout_ms, offsets) = {
        let state = shared.lock();
        let txn = state.txn.as_ref().ok_or(Error::Closed)?;
        (
            txn.protocol(),
            txn.producer(),
            i32::try_from(shared.config.transaction_timeout.as_millis()).unwrap_or(i32::MAX),
            state.pending_offsets.clone(),
        )
    };
    let tid = shared.transactional_id();
    let tid_wire = TransactionalId(str_bytes(tid));
    let (kind, key) = match (request, &offsets) {
        (TxnRequest::TxnOffsetCommit { .. }, Some(o)) => {
            (CoordinatorKind::Group, o.group.group_id.clone())
        }
        _ => (CoordinatorKind::Transaction, tid.to_owned()),
    };
    let (node, conn) = if kind == CoordinatorKind::Transaction {
        shared.txn_coordinator().await?
    } else {
        shared.cluster.coordinator(kind, &key).await?
    };
    let code = |c: i16| ResponseError::try_from_code(c);
    let lookup = |c: Option<ResponseError>| {
        if matches!(
            c,
            Some(ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable)
        ) {
            shared.cluster.invalidate_coordinator(kind, &key, node);
        }
    };
    let result = async {
        Ok(match request {
            TxnRequest::InitProducerId { current } => {
                let current = current.unwrap_or(ProducerIdAndEpoch::NONE);
                let r = InitProducerIdRequest::default()
                    .with_transactional_id(Some(tid_wire.clone()))
                    .with_transaction_timeout_ms(timeout_ms)
                    .with_producer_id(ProducerId(current.producer_id))
                    .with_producer_epoch(current.epoch);
                let resp = conn.send(&r).await?;
                let c = code(resp.error_code);
                lookup(c);
                Answer::Init(match c {
                    None => Ok(ProducerIdAndEpoch::new(
                        resp.producer_id.0,
                        resp.producer_epoch,
                    )),
                    Some(c) => Err(c),
                })
            }
            TxnRequest::AddPartitionsToTxn { partitions } => {
                let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
                for tp in partitions {
                    match topics.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
                        Some(t) => t.partitions.push(tp.partition),
                        None => topics.push(
                            AddPartitionsToTxnTopic::default()
                                .with_name(TopicName(str_bytes(&tp.topic)))
                                .with_partitions(vec![tp.partition]),
                        ),
                    }
                }
                let r = AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(tid_wire.clone())
                    .with_v3_and_below_producer_id(ProducerId(producer.producer_id))
                    .with_v3_and_below_producer_epoch(producer.epoch)
                    .with_v3_and_below_topics(topics);
                let resp = conn.send(&r).await?;
                let mut out = Vec::new();
                for t in &resp.results_by_topic_v3_and_below {
                    for p in &t.results_by_partition {
                        let c = code(p.partition_error_code);
                        lookup(c);
                        out.push((
                            TopicPartition::new(t.name.0.to_string(), p.partition_index),
                            c,
                        ));
                    }
                }
                Answer::Partitions(out)
            }
            TxnRequest::AddOffsetsToTxn { group_id } => {
                let r = AddOffsetsToTxnRequest::default()
                    .with_transactional_id(tid_wire.clone())
                    .with_producer_id(ProducerId(producer.producer_id))
                    .with_producer_epoch(producer.epoch)
                    .with_group_id(GroupId(str_bytes(group_id)));
                let resp = conn.send(&r).await?;
                let c = code(resp.error_code);
                lookup(c);
                Answer::Code(c)
            }
            TxnRequest::TxnOffsetCommit { .. } => {
                let Some(o) = offsets else {
                    return Err(Error::InvalidState("no offsets to commit".into()));
                };
                let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
                for (tp, offset, metadata) in &o.offsets {
                    let p = TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(tp.partition)
                        .with_committed_offset(*offset)
                        .with_committed_leader_epoch(-1)
                        .with_committed_metadata(metadata.as_deref().map(str_bytes));
                    match topics.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
                        Some(t) => t.partitions.push(p),
                        None => topics.push(
                            TxnOffsetCommitRequestTopic::default()
                                .with_name(TopicName(str_bytes(&tp.topic)))
                                .with_partitions(vec![p]),
                        ),
                    }
                }
                let r = TxnOffsetCommitRequest::default()
                    .with_transactional_id(tid_wire.clone())
                    .with_group_id(GroupId(str_bytes(&o.group.group_id)))
                    .with_producer_id(ProducerId(producer.producer_id))
                    .with_producer_epoch(producer.epoch)
                    .with_generation_id(o.group.generation_id)
                    .with_member_id(str_bytes(&o.group.member_id))
                    .with_group_instance_id(o.group.group_instance_id.as_deref().map(str_bytes))
                    .with_topics(topics);
                let version = txn_version(&conn, ApiKey::TxnOffsetCommit, protocol)?;
                let resp = conn.send_version(&r, version, None).await?;
                let mut out = Vec::new();
                for t in &resp.topics {
                    for p in &t.partitions {
                        let c = code(p.error_code);
                        lookup(c);
                        out.push((
                            TopicPartition::new(t.name.0.to_string(), p.partition_index),
                            c,
                        ));
                    }
                }
                Answer::Partitions(out)
            }
            TxnRequest::EndTxn { commit } => {
                let r = EndTxnRequest::default()
                    .with_transactional_id(tid_wire.clone())
                    .with_producer_id(ProducerId(producer.producer_id))
                    .with_producer_epoch(producer.epoch)
                    .with_committed(*commit);
                let version = txn_version(&conn, ApiKey::EndTxn, protocol)?;
                let resp = conn.send_version(&r, version, None).await?;
                let c = code(resp.error_code);
                lookup(c);
                Answer::End(match c {
                    None if version >= 5 => Ok(Some(ProducerIdAndEpoch::new(
                        resp.producer_id.0,
                        resp.producer_epoch,
                    ))),
                    None => Ok(None),
                    Some(c) => Err(c),
                })
            }
        })
    }
    .await;
    if let Err(e) = &result {
        debug!(error = %e, "transactional request did not complete");
        if e.class() == ErrorClass::Retriable {
            shared.cluster.invalidate_coordinator(kind, &key, node);
        }
    }
    result
}

/// Used by the sink: the Produce version allowed under the current protocol.
pub(crate) fn produce_version(shared: &Shared, conn: &Connection) -> Result<i16> {
    let protocol = shared.lock().txn.as_ref().map(|t| t.protocol());
    match protocol {
        Some(p) => txn_version(conn, ApiKey::Produce, p),
        None => conn.version_for::<ProduceRequest>(),
    }
}

/// A short pause used by the sender when batches wait for AddPartitionsToTxn.
pub(crate) const GATED_RECHECK: Duration = Duration::from_millis(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_keeps_only_the_offsets_not_reported_committed() {
        let tp = |p| TopicPartition::new("t", p);
        let mut pending = PendingOffsets {
            offsets: (0..4).map(|p| (tp(p), i64::from(p) * 10, None)).collect(),
            group: ConsumerGroupMetadata::new("g"),
        };
        pending.keep_uncommitted(&[
            (tp(0), None),
            (tp(1), Some(ResponseError::CoordinatorLoadInProgress)),
            (tp(2), None),
            // Partition 3 is missing from the response: its outcome is unknown, so it stays.
        ]);
        let left: Vec<i32> = pending
            .offsets
            .iter()
            .map(|(tp, _, _)| tp.partition)
            .collect();
        assert_eq!(left, vec![1, 3]);
    }
}
