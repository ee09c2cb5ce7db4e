//! The producer's sender task and the state it shares with [`Producer`](super::Producer) handles.
//!
//! One task per producer (Java's `Sender` thread) loops: expire batches past
//! `delivery.timeout.ms`, settle the idempotence bookkeeping (epoch bumps, unresolved sequences),
//! ask the accumulator which leaders have sendable batches, drain one request per ready leader
//! with a free in-flight slot, and hand each request to that broker's sink task (`sink`), which
//! encodes its batches, submits them on the broker's produce connection in drain order, and spawns
//! a task per request that awaits the answer and feeds every partition's outcome back into the
//! shared state, which completes, retries or fails the batch. The sender sleeps until an append
//! makes a batch sendable to a leader with a free in-flight slot (or memory first runs out), a
//! request finishes, or the accumulator's next linger/backoff deadline.
//!
//! The shared state is one `std::sync::Mutex`, held only for bookkeeping (never across an await):
//! contention is one lock per `send` and per response.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, ProduceRequest, ProducerId};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::delivery::{Completion, Settler};
use super::request::{build_produce_request, parse_produce_response, PartitionOutcome};
use super::transaction::{produce_version, txn_error, PendingOffsets, GATED_RECHECK};
use super::{Acks, PendingRecord, ProducerConfig, RecordData};
use crate::cluster::{is_stale_metadata_error, Cluster, MetadataSnapshot, TopicInfo, TopicsQuery};
use crate::error::{Error, ErrorClass, Millis, Result};
use crate::net::{Lane, PendingResponse};
use crate::protocol::codec::{decode_response, encode_request};
use crate::protocol::compression::Compression;
use crate::protocol::records::{encode_batch, record_size, BatchOptions, RecordInput};
use crate::record::TopicPartition;
use crate::state::accumulator::{
    Accumulator, AccumulatorConfig, AppendResult, NoGate, ProducerBatch,
};
use crate::state::marker_pacing::MarkerPacing;
use crate::state::partitioner::StickyPartitioner;
use crate::state::sequence::{
    written_offset, Decision, EpochBump, IdempotenceState, PartitionResponse, ProducerIdAndEpoch,
    Resolution,
};
use crate::state::transaction::{TransactionManager, TransactionalGate, TxnProtocol, TxnState};

mod sink;
mod tasks;
mod timer;

type Batch = ProducerBatch<PendingRecord>;

/// What every handle and the sender task share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<ProducerState>,
    /// Wakes the sender: a batch became sendable to a leader with a free in-flight slot, memory
    /// first ran out, a request finished, a flush or close began.
    /// An `Arc` so the linger timer's thread (`timer::PreciseTimer`) can hold it without holding
    /// the rest of this state (whose last reference must not go away on that thread).
    pub(crate) wake: Arc<Notify>,
    /// Wakes handles: memory was released, a request finished (flush and close wait on it), a
    /// transactional request finished.
    pub(crate) progress: Notify,
    /// Wakes the transaction driver.
    pub(crate) txn_wake: Notify,
    pub(crate) cluster: Cluster,
    pub(crate) compression: Compression,
    pub(crate) config: ProducerConfig,
    /// Set once by `close`: every task settles what it holds and ends, sending nothing more.
    pub(crate) stop: watch::Sender<bool>,
    /// Tasks spawned through [`Shared::spawn`] and not yet ended (`close` waits for none).
    pub(crate) live_tasks: AtomicUsize,
    /// Notified when `live_tasks` drops to zero.
    pub(crate) tasks_ended: Notify,
    /// The background metadata refresh: whether it runs, and what was asked of it since its last
    /// round (see [`Shared::refresh_metadata_in_background`]).
    pub(crate) metadata_refresh: Mutex<RefreshAsks>,
}

/// Metadata refreshes asked for while the background refresh task runs.
#[derive(Debug, Default)]
pub(crate) struct RefreshAsks {
    /// The task is running (it takes the asks below before each round).
    pub(crate) running: bool,
    /// Some ask was for every topic.
    pub(crate) all: bool,
    /// Topics asked for.
    pub(crate) topics: std::collections::BTreeSet<String>,
}

/// Why the producer stopped trying to deliver a batch (the start of its records' error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GiveUp {
    /// `delivery.timeout.ms` passed.
    Expired,
    /// Its `retries` were used up.
    RetriesUsed,
    /// The producer was closed.
    Closed,
    /// The broker refused a retry for a reason of its own after an earlier send went unanswered.
    Refused,
}

/// The producer's bookkeeping, behind [`Shared::state`].
#[derive(Debug)]
pub(crate) struct ProducerState {
    pub(crate) accumulator: Accumulator<PendingRecord>,
    /// Present when idempotent: producer id, epoch and per-partition sequences.
    pub(crate) idempotence: Option<IdempotenceState>,
    /// Sticky partitioners by topic. A tree: finding a topic costs a few string comparisons
    /// (one for a producer of one topic), cheaper per record than SipHashing the name.
    sticky: BTreeMap<String, StickyPartitioner>,
    /// Scratch for the queue lengths the sender hands the sticky partitioners on each pass.
    queue_lengths: Vec<(i32, usize)>,
    /// Produce requests in flight per leader.
    in_flight: HashMap<i32, usize>,
    pub(crate) closing: bool,
    /// Why the producer cannot go on, once it cannot.
    pub(crate) fatal: Option<String>,
    /// A new producer id is being fetched; nothing drains meanwhile.
    reinitializing: bool,
    /// Present when transactional.
    pub(crate) txn: Option<TransactionManager>,
    /// Offsets waiting for their TxnOffsetCommit.
    pub(crate) pending_offsets: Option<PendingOffsets>,
    /// How many TxnOffsetCommits succeeded (`send_offsets_to_transaction` waits for one more).
    pub(crate) offsets_committed: u64,
    /// A commit holds a flush (every batch sendable) until it ends.
    pub(crate) txn_flush: bool,
    /// The sender task has stopped.
    pub(crate) sender_done: bool,
    /// When the open transaction began (tells a coordinator's timeout abort apart).
    pub(crate) txn_began: Option<Instant>,
    /// When a v2 transaction's first Produce may follow the previous EndTxn.
    pub(crate) pacing: MarkerPacing,
    /// `close` stopped the producer: nothing is sent or retried any more.
    pub(crate) stopped: bool,
    /// Records failed by `close`: never written, and in flight (outcome unknown).
    closed_unsent: usize,
    closed_unknown: usize,
}

impl ProducerState {
    pub(crate) fn new(config: AccumulatorConfig, idempotent: bool, transactional: bool) -> Self {
        ProducerState {
            accumulator: Accumulator::new(config),
            idempotence: (idempotent || transactional)
                .then(|| IdempotenceState::new(transactional)),
            txn: transactional.then(TransactionManager::new),
            pending_offsets: None,
            offsets_committed: 0,
            txn_flush: false,
            sender_done: false,
            txn_began: None,
            pacing: MarkerPacing::new(),
            sticky: BTreeMap::new(),
            queue_lengths: Vec::new(),
            in_flight: HashMap::new(),
            closing: false,
            fatal: None,
            reinitializing: false,
            stopped: false,
            closed_unsent: 0,
            closed_unknown: 0,
        }
    }

    pub(crate) fn set_producer_id(&mut self, producer: ProducerIdAndEpoch) {
        if let Some(idem) = &mut self.idempotence {
            let reset = idem.producer().is_valid();
            idem.set_producer_id(producer, reset);
        }
        self.reinitializing = false;
    }

    /// Places a record: sets `tp.partition` to `partition`, or for a keyless record to the topic's
    /// sticky partition (KIP-480), which is then told how much went there to know when to
    /// switch; a transactional producer refuses it outside a transaction (Java
    /// `maybeAddPartition`), before it is queued. Then appends it.
    ///
    /// The topic's sticky partitioner is looked up once per record, and the clock is read only
    /// when the record opens a new batch.
    pub(crate) fn append(
        &mut self,
        tp: &mut TopicPartition,
        partition: Option<i32>,
        info: &TopicInfo,
        record: RecordData,
        fields: usize,
        placed: &mut Option<(Arc<Completion>, u32)>,
    ) -> Result<AppendResult<RecordData>> {
        let n = info.partitions.len() as i32;
        let mut sticky = match partition {
            Some(p) => {
                tp.partition = p;
                None
            }
            None => {
                // Probe before `entry`, which would allocate the key on every record.
                let sticky = match self.sticky.get_mut(tp.topic.as_str()) {
                    Some(s) => s,
                    None => {
                        let batch_size = self.accumulator.config().batch_size;
                        self.sticky
                            .entry(tp.topic.clone())
                            .or_insert_with(|| StickyPartitioner::new(batch_size, seed()))
                    }
                };
                tp.partition = sticky.partition(&info.available, n);
                Some(sticky)
            }
        };
        if let Some(txn) = &self.txn {
            txn.check_add_partition(tp)?;
        }
        let timestamp = record.timestamp;
        let result = self.accumulator.append_with(
            tp,
            record,
            |batch| size_in_batch(fields, timestamp, batch),
            || Instant::now().into_std(),
            // The record joins its batch's shared completion, or opens a new one.
            |data, previous| {
                let (settler, index) = match previous {
                    Some(p) => (p.settler.clone(), p.index + 1),
                    None => (Settler::new(), 0),
                };
                *placed = Some((settler.completion().clone(), index));
                PendingRecord {
                    data,
                    settler,
                    index,
                }
            },
        );
        if let (Some(sticky), AppendResult::Appended(a)) = (&mut sticky, &result) {
            sticky.on_append(a.appended_bytes, a.tail_full, &info.available, n);
        }
        // Only a queued record joins the transaction (checked above under the same lock): one
        // refused for memory or size must not make its commit send EndTxn.
        if let (Some(txn), AppendResult::Appended(_)) = (&mut self.txn, &result) {
            txn.add_partition(tp);
        }
        Ok(result)
    }

    /// Whether the sender could send to `leader` now: false while `max_in_flight` requests to it
    /// are out (the sender then skips it, and the end of one of them wakes the sender). An
    /// unknown leader may be sendable once metadata is refreshed: true.
    pub(crate) fn may_send_to(&self, leader: Option<i32>, max_in_flight: usize) -> bool {
        leader.is_none_or(|node| self.in_flight.get(&node).is_none_or(|&n| n < max_in_flight))
    }

    /// Fails once the producer is closed or broken.
    pub(crate) fn check_usable(&self) -> Result<()> {
        if let Some(e) = self
            .txn
            .as_ref()
            .filter(|t| t.state() == TxnState::FatalError)
        {
            return Err(e
                .last_error()
                .map(|e| e.to_error())
                .unwrap_or_else(|| Error::Failed("producer failed".into())));
        }
        if let Some(why) = &self.fatal {
            return Err(Error::Failed(format!("producer failed: {why}")));
        }
        if self.closing {
            return Err(Error::Closed);
        }
        Ok(())
    }

    pub(crate) fn begin_flush(&mut self) {
        self.accumulator.begin_flush();
    }

    pub(crate) fn end_flush(&mut self) {
        self.accumulator.end_flush();
    }

    pub(crate) fn idle(&self) -> bool {
        !self.accumulator.has_undrained() && self.in_flight.values().all(|&n| n == 0)
    }
}

/// The exact encoded size of a record whose fields take `fields` bytes (`record_fields_len`),
/// stamped `timestamp`, in `batch`: the one it would join (its first record and how many it holds)
/// or, for `None`, a new one. Counting exact sizes fills batches to `batch.size` bytes as encoded,
/// as Java's `MemoryRecordsBuilder.hasRoomFor` does; an upper bound per record (every delta at its
/// widest) left a quarter of each 100-byte-record batch empty.
pub(crate) fn size_in_batch(
    fields: usize,
    timestamp: i64,
    batch: Option<(&PendingRecord, usize)>,
) -> usize {
    match batch {
        None => record_size(fields, 0, 0),
        Some((first, count)) => record_size(
            fields,
            timestamp.wrapping_sub(first.data.timestamp),
            i32::try_from(count).unwrap_or(i32::MAX),
        ),
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, ProducerState> {
        self.state.lock().expect("producer state poisoned")
    }

    /// Fails fast once the producer is closed or broken.
    pub(crate) fn check_usable(&self) -> Result<()> {
        self.lock().check_usable()
    }

    /// Stops new sends; the sender delivers what is queued and exits.
    pub(crate) fn begin_close(&self) {
        let mut state = self.lock();
        state.closing = true;
        state.accumulator.close();
        drop(state);
        self.wake.notify_one();
        self.txn_wake.notify_one();
        self.progress.notify_waiters();
    }

    /// Waits until nothing is queued or in flight (or `deadline` passes).
    pub(crate) async fn wait_until_idle(&self, deadline: Option<Instant>) -> Result<()> {
        let started = Instant::now();
        loop {
            let progressed = self.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            {
                let state = self.lock();
                if state.idle() {
                    return Ok(());
                }
                if let Some(why) = &state.fatal {
                    return Err(Error::Failed(format!("producer failed: {why}")));
                }
            }
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d, progressed).await.is_err() {
                        return Err(Error::Timeout {
                            api: None,
                            broker: None,
                            after: d.saturating_duration_since(started),
                            outcome_unknown: true,
                        });
                    }
                }
                None => progressed.await,
            }
        }
    }

    /// The error for the records of `batch`, given up on for `why`. `last` says what was last
    /// tried when the batch itself does not know. Counts the records `close` failed.
    pub(crate) fn undelivered(
        &self,
        batch: &Batch,
        why: GiveUp,
        outcome_unknown: bool,
        last: Option<&str>,
    ) -> Error {
        let mut reason = match why {
            GiveUp::Expired => format!(
                "delivery.timeout.ms ({}) passed",
                Millis(self.config.delivery_timeout)
            ),
            GiveUp::RetriesUsed => format!("its retries ({}) were used up", self.config.retries),
            GiveUp::Closed if outcome_unknown => {
                "the producer was closed before a definite answer came".to_owned()
            }
            GiveUp::Closed => "the producer was closed".to_owned(),
            GiveUp::Refused => "an earlier send went unanswered, then a retry was refused".into(),
        };
        match batch.last_error().or(last) {
            Some(last) => {
                reason.push_str("; last attempt: ");
                reason.push_str(last);
            }
            None if !outcome_unknown => reason.push_str(" before it was sent"),
            None => {}
        }
        if why == GiveUp::Closed {
            let mut state = self.lock();
            let count = batch.records().len();
            if outcome_unknown {
                state.closed_unknown += count;
            } else {
                state.closed_unsent += count;
            }
        }
        Error::Undelivered {
            topic: batch.tp().topic.clone(),
            partition: batch.tp().partition,
            outcome_unknown,
            reason,
        }
    }

    /// Fails every queued record (a fatal error).
    pub(crate) fn abort_all(&self, error: impl Fn() -> Error) {
        let batches = self.lock().accumulator.abort_all();
        for batch in batches {
            self.fail_batch(batch, &error);
        }
        self.progress.notify_waiters();
    }

    pub(crate) fn fail_batch(&self, batch: Batch, error: &dyn Fn() -> Error) {
        let (topic, count) = (batch.tp().topic.clone(), batch.record_count() as usize);
        self.count_records(&topic, count, super::metrics::RecordOutcome::Failed);
        let records = self.lock().accumulator.release(batch);
        // A batch's records are a contiguous range of its settler's indexes (a split keeps them
        // in order), so one outcome covers them all.
        if let Some(first) = records.first() {
            first.settler.fail(first.index, records.len(), error);
        }
    }

    /// Marks the producer unusable and fails everything queued.
    pub(crate) fn fail_fatally(&self, error: &Error) {
        warn!(%error, "producer failed");
        {
            let mut state = self.lock();
            state.fatal = Some(error.to_string());
            if let Some(txn) = &mut state.txn {
                if txn.state() != TxnState::FatalError {
                    txn.fatal_error(error);
                }
            }
        }
        self.txn_wake.notify_one();
        let message = error.to_string();
        self.abort_all(|| Error::Failed(format!("producer failed: {message}")));
        self.wake.notify_one();
    }
}

/// InitProducerId for an idempotent (non-transactional) producer, from any broker, retrying
/// retriable errors until `request.timeout.ms`.
pub(crate) async fn init_producer_id(shared: &Shared) -> Result<ProducerIdAndEpoch> {
    let deadline = crate::clock::from_now(shared.config.client.request_timeout);
    let mut backoff = shared.cluster.retry_backoff();
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(i32::MAX)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    loop {
        let attempt = async {
            let conn = shared.cluster.any_connection(Lane::Control).await?;
            let response = conn.send(&request).await?;
            Error::check_code(
                ApiKey::InitProducerId,
                Some(conn.broker()),
                response.error_code,
                None,
            )?;
            Ok::<_, Error>(ProducerIdAndEpoch::new(
                response.producer_id.0,
                response.producer_epoch,
            ))
        };
        match attempt.await {
            Ok(p) => {
                debug!(
                    producer_id = p.producer_id,
                    epoch = p.epoch,
                    "producer id assigned"
                );
                return Ok(p);
            }
            Err(e) if e.is_retriable() => {
                let delay = backoff.next_delay();
                if crate::clock::from_now(delay) > deadline {
                    return Err(e);
                }
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// How early a lingering batch may go (`AccumulatorConfig::linger_slack`): about the time from
/// the linger deadline to the sender's drain when `timer::PreciseTimer` wakes it (the thread's
/// wake-up, then the sender task's; ~0.1 ms measured), so the batch leaves at `linger.ms`, which
/// Java documents as an upper bound on the wait.
pub(crate) const LINGER_SLACK: Duration = Duration::from_micros(100);

/// The sender task. Ends when the producer is closed and everything has an outcome.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut leaders = LeaderIndex::default();
    let mut sinks: HashMap<i32, mpsc::UnboundedSender<Vec<Batch>>> = HashMap::new();
    let timer = timer::PreciseTimer::start(shared.wake.clone());
    loop {
        let Plan {
            requests,
            sleep_for,
            done,
        } = plan(&shared, &mut leaders);
        for (node, batches) in requests {
            let sink = sinks.entry(node).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                shared.spawn(sink::sink(shared.clone(), node, rx));
                tx
            });
            // A sink stops early only when the producer is stopped: these were never sent.
            if let Err(mpsc::error::SendError(batches)) = sink.send(batches) {
                sink::settle(&shared, node, batches, Err(Error::Closed));
                sink::finish_request(&shared, node);
            }
        }
        if done {
            debug!("producer sender stopped");
            shared.lock().sender_done = true;
            shared.txn_wake.notify_one();
            shared.progress.notify_waiters();
            return;
        }
        // The precise timer wakes the sender at the deadline; tokio's sleep below, up to 2 ms
        // late, only backs it up.
        if let Some(timer) = &timer {
            timer.arm(sleep_for);
        }
        let wake = shared.wake.notified();
        let wait = async {
            match sleep_for {
                Some(d) => {
                    let _ = tokio::time::timeout(d, wake).await;
                }
                None => wake.await,
            }
        };
        tokio::select! {
            biased;
            _ = shared.stopped() => {}
            _ = wait => {}
        }
    }
}

/// Which partitions each broker leads, rebuilt only when the metadata snapshot changes.
#[derive(Default)]
struct LeaderIndex {
    snapshot: Option<Arc<MetadataSnapshot>>,
    by_node: HashMap<i32, Vec<TopicPartition>>,
}

impl LeaderIndex {
    fn update(&mut self, snapshot: Arc<MetadataSnapshot>) {
        if self
            .snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &snapshot))
        {
            return;
        }
        self.by_node.clear();
        for topic in snapshot.topics.values() {
            for p in &topic.partitions {
                if let Some(leader) = p.leader {
                    self.by_node
                        .entry(leader)
                        .or_default()
                        .push(TopicPartition::new(topic.name.clone(), p.partition));
                }
            }
        }
        self.snapshot = Some(snapshot);
    }
}

/// What one pass of the sender loop decided.
struct Plan {
    /// Batches to send, by leader.
    requests: Vec<(i32, Vec<Batch>)>,
    /// When to look again without a wake-up; `None` means only on a wake-up.
    sleep_for: Option<Duration>,
    /// Closed and nothing left, or failed: the sender stops.
    done: bool,
}

/// One pass of the sender loop under the lock: what to send, how long to sleep, whether to stop.
fn plan(shared: &Arc<Shared>, leaders: &mut LeaderIndex) -> Plan {
    if shared.lock().stopped {
        return Plan {
            requests: Vec::new(),
            sleep_for: None,
            done: true,
        };
    }
    let now = Instant::now().into_std();
    let mut expired = Vec::new();
    let mut requests = Vec::new();
    let mut need_producer_id = false;
    let mut fatal = None;
    let mut refresh = Vec::new();
    let mut aborted = Vec::new();
    let mut gated = false;
    let mut pace_for = None;
    let (sleep_for, done) = {
        let mut guard = shared.lock();
        let state = &mut *guard;
        let snapshot = shared.cluster.metadata();
        for batch in state.accumulator.expire(now) {
            if let (Some(idem), Some(_)) = (&mut state.idempotence, batch.sequence()) {
                idem.on_expired(batch.tp(), batch.id());
            }
            if let Some(txn) = &mut state.txn {
                txn.on_send_failed(&Error::Timeout {
                    api: Some(crate::error::ApiKey::Produce),
                    broker: None,
                    after: shared.config.delivery_timeout,
                    outcome_unknown: false,
                });
            }
            // What kept a batch that was never tried from going out.
            let waiting = match snapshot.leader(batch.tp()) {
                None => format!("no leader of {} was known", batch.tp()),
                Some(node) => format!("waiting for a request to broker {node}"),
            };
            expired.push((batch, waiting));
        }
        // A transaction that must abort sends nothing more (Java `abortUndrainedBatches`).
        if let Some(txn) = &state.txn {
            if matches!(
                txn.state(),
                TxnState::AbortableError | TxnState::AbortingTransaction
            ) {
                aborted.extend(state.accumulator.abort_undrained());
            }
        }
        if let Some(idem) = &mut state.idempotence {
            for resolution in idem.maybe_resolve_sequences() {
                match resolution {
                    Resolution::Resolved(_) | Resolution::BumpEpoch(_) => {}
                    Resolution::Abortable(_, e) => match &mut state.txn {
                        Some(txn) => txn.abortable_error(&e),
                        None => fatal = Some(e),
                    },
                    Resolution::Fatal(_, e) => fatal = Some(e),
                }
            }
            match idem.bump_epoch_if_needed() {
                Some(EpochBump::Bumped(p)) => {
                    debug!(
                        producer_id = p.producer_id,
                        epoch = p.epoch,
                        "epoch bumped locally"
                    )
                }
                Some(EpochBump::NeedsNewProducerId) => need_producer_id = true,
                None => {}
            }
            if need_producer_id && !state.reinitializing {
                state.reinitializing = true;
            } else {
                need_producer_id = false;
            }
        }
        let check = state.accumulator.ready(|tp| snapshot.leader(tp), now);
        // KIP-794 adaptive partitioning (Java's `partitionReady` does this on every pass): the
        // sticky partitioner's next choice favours partitions with fewer batches queued, so a
        // slow broker's partitions get fewer keyless records.
        if shared.config.adaptive_partitioning {
            let queued = &mut state.queue_lengths;
            for (topic, sticky) in state.sticky.iter_mut() {
                match snapshot.topics.get(topic) {
                    Some(info) => {
                        state
                            .accumulator
                            .queue_lengths(topic, &info.available, queued);
                        sticky.update_load_stats(queued, info.partitions.len());
                    }
                    None => sticky.clear_load_stats(),
                }
            }
        }
        refresh.extend(check.unknown_leader_topics.iter().cloned());
        tracing::trace!(ready = ?check.ready_nodes, next = ?check.next_check_delay, unknown = ?check.unknown_leader_topics, "sender plan");
        leaders.update(snapshot);
        let max_in_flight = shared.config.max_in_flight;
        let blocked = state.reinitializing
            || state
                .idempotence
                .as_ref()
                .is_some_and(|i| !i.producer().is_valid());
        // The first Produce of a v2 transaction right after an EndTxn waits out the learned
        // marker window (state::marker_pacing).
        let paced = state
            .txn
            .as_ref()
            .filter(|t| t.protocol() == TxnProtocol::V2)
            .and_then(|_| state.pacing.hold_until(now))
            .filter(|_| !check.ready_nodes.is_empty());
        if let Some(at) = paced {
            let until = at.saturating_duration_since(now);
            tracing::trace!(?until, "first produce of the transaction paced");
            pace_for = Some(until);
        } else if !blocked {
            for node in check.ready_nodes {
                let in_flight = state.in_flight.entry(node).or_default();
                if *in_flight >= max_in_flight {
                    continue;
                }
                let Some(partitions) = leaders.by_node.get(&node) else {
                    continue;
                };
                let batches = match (&mut state.idempotence, &state.txn) {
                    (Some(idem), Some(txn)) => state.accumulator.drain(
                        node,
                        partitions,
                        shared.config.max_request_size,
                        now,
                        &mut TransactionalGate {
                            txn,
                            idempotence: idem,
                        },
                    ),
                    (Some(idem), None) => state.accumulator.drain(
                        node,
                        partitions,
                        shared.config.max_request_size,
                        now,
                        idem,
                    ),
                    (None, _) => state.accumulator.drain(
                        node,
                        partitions,
                        shared.config.max_request_size,
                        now,
                        &mut NoGate,
                    ),
                };
                tracing::trace!(node, drained = batches.len(), "drain");
                if !batches.is_empty() {
                    if state.txn.is_some() {
                        state.pacing.on_produce_sent(batches[0].id().0, now);
                    }
                    *state.in_flight.entry(node).or_default() += 1;
                    requests.push((node, batches));
                } else if state.txn.is_some() {
                    // Held back by the transaction gate (partitions not added yet).
                    gated = true;
                }
            }
        }
        let mut sleep_for = check.next_check_delay;
        if let Some(d) = pace_for {
            sleep_for = Some(sleep_for.map_or(d, |s| s.min(d)));
        }
        if let Some(at) = state.accumulator.next_expiry() {
            let until = at.saturating_duration_since(now);
            sleep_for = Some(sleep_for.map_or(until, |d| d.min(until)));
        }
        if !refresh.is_empty() {
            // Leaderless partitions: look again soon rather than at the next append.
            sleep_for = Some(sleep_for.map_or(Duration::from_millis(100), |d| {
                d.min(Duration::from_millis(100))
            }));
        }
        if gated {
            // Do not spin on ready batches the gate holds; AddPartitionsToTxn wakes us too.
            sleep_for = Some(sleep_for.map_or(GATED_RECHECK, |d| d.max(GATED_RECHECK)));
        }
        let done = state.closing && state.idle() || state.fatal.is_some() || state.stopped;
        (sleep_for, done)
    };
    if !aborted.is_empty() {
        let why = txn_error(&shared.lock()).map(|e| e.to_string());
        let why = why.unwrap_or_else(|| "the transaction was aborted".into());
        for batch in aborted {
            shared.fail_batch(batch, &|| Error::Broker {
                api: crate::error::ApiKey::Produce,
                broker: None,
                code: crate::error::ErrorCode::TransactionAbortable,
                message: Some(format!("batch not sent: {why}")),
                class: ErrorClass::Abortable,
            });
        }
        shared.progress.notify_waiters();
        shared.txn_wake.notify_one();
    }

    if !expired.is_empty() {
        for (batch, waiting) in expired {
            let unknown = batch.outcome_unknown();
            let error = shared.undelivered(&batch, GiveUp::Expired, unknown, Some(&waiting));
            shared.fail_batch(batch, &|| error.duplicate());
        }
        // Their memory is free, and with them gone the producer may be idle: sends waiting for
        // memory and `flush`/`close` waiting for the queue to drain must look again (no request
        // ends to tell them when a batch that never left expires).
        shared.progress.notify_waiters();
    }
    if !refresh.is_empty() {
        shared.refresh_metadata_in_background(Some(refresh), "leaderless partitions");
    }
    if need_producer_id {
        let task_shared = shared.clone();
        shared.spawn_until_stopped(async move {
            let shared = task_shared;
            match init_producer_id(&shared).await {
                Ok(p) => shared.lock().set_producer_id(p),
                Err(e) => shared.fail_fatally(&e),
            }
            shared.wake.notify_one();
        });
    }
    if let Some(e) = fatal {
        shared.fail_fatally(&e);
    }
    Plan {
        requests,
        sleep_for,
        done,
    }
}

/// A per-producer seed for the sticky partitioner's choice.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}
