//! The producer's record accumulator: per-partition queues of batches waiting to be sent.
//!
//! Mirrors the Java client's `RecordAccumulator` where it matters for delivery semantics:
//!
//! - batches fill up to `batch.size` bytes and become sendable when full, when `linger.ms` has
//!   passed, or when memory is short, a flush is running or the accumulator is closed
//!   ([`Accumulator::ready`]);
//! - memory is bounded by `buffer.memory`: instead of blocking a thread, [`Accumulator::append`]
//!   hands the record back ([`AppendResult::NoMemory`]) so the async layer can wait for
//!   [`Accumulator::release`] and try again;
//! - [`Accumulator::drain`] takes at most one batch per partition per request, bounded by
//!   `max.request.size`, rotating its start point per node so no partition starves; a
//!   [`DrainGate`] (the idempotence state) may hold partitions back and stamps sequences;
//! - retried batches go back in base-sequence order at the front ([`Accumulator::reenqueue`],
//!   Java `insertInSequenceOrder`) and wait out an exponential retry backoff;
//! - a multi-record batch the broker refuses as too large is split in two by bytes and the parts go
//!   back at the front in record order, keeping the original's sequence range, creation time and
//!   memory ([`Accumulator::split_and_reenqueue`], Java `splitAndReenqueue`);
//! - batches older than `delivery.timeout.ms` are expired ([`Accumulator::expire`]), a batch whose
//!   send may have been written included: its records fail as "outcome unknown", never as "not
//!   written", and the idempotence state keeps its sequence unresolved until that is settled.
//!
//! Records are opaque: each is a `T` plus the caller's estimate of its encoded size, so the
//! producer layer chooses the record type. Nothing here reads a clock; `now` is always passed in.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::sequence::{increment_sequence, sequence_precedes, BatchSequence};
use crate::record::TopicPartition;

/// Bytes a v2 `RecordBatch` header takes before its first record (`RECORD_BATCH_OVERHEAD` in
/// Java's `DefaultRecordBatch`); counted in every batch's size.
pub const RECORD_BATCH_OVERHEAD: usize = 61;

/// Identifies one batch for its whole life: appends, drains, retries, completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId(pub u64);

/// Accumulator settings. Field docs give the Java property and default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccumulatorConfig {
    /// `batch.size`: a batch takes records up to this many bytes. Default 16 KiB.
    pub batch_size: usize,
    /// `linger.ms`: how long a batch that is not full waits for more records. Default 5 ms
    /// (Kafka 4.0's default).
    pub linger: Duration,
    /// `buffer.memory`: bytes all queued and in-flight batches may hold. Default 32 MiB.
    pub buffer_memory: usize,
    /// `delivery.timeout.ms`: the time from a batch's creation after which it is failed. Default 2 min.
    pub delivery_timeout: Duration,
    /// `retry.backoff.ms`: wait before the first retry of a batch. Default 100 ms.
    pub retry_backoff: Duration,
    /// `retry.backoff.max.ms`: cap of the doubling retry wait. Default 1 s.
    pub retry_backoff_max: Duration,
    /// How much earlier than `linger` a lingering batch may go: the producer sets the time its
    /// sender takes from a timer's wake-up to the drain, so batches leave at `linger` rather than
    /// after it (linger.ms is documented as an upper bound on the delay). Not applied to retry
    /// backoff, which `drain` checks without it. Default zero (exact, for IO-free callers).
    pub linger_slack: Duration,
}

impl Default for AccumulatorConfig {
    fn default() -> Self {
        AccumulatorConfig {
            batch_size: 16 * 1024,
            linger: Duration::from_millis(5),
            buffer_memory: 32 * 1024 * 1024,
            delivery_timeout: Duration::from_secs(120),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            linger_slack: Duration::ZERO,
        }
    }
}

/// A batch of records for one partition.
#[derive(Debug)]
pub struct ProducerBatch<T> {
    id: BatchId,
    tp: TopicPartition,
    records: Vec<T>,
    /// Each record's estimated size, parallel to `records` (for splitting).
    record_sizes: Vec<usize>,
    /// Estimated encoded size: header plus every record's size.
    size: usize,
    /// Bytes held from `buffer.memory` until [`Accumulator::release`].
    reserved: usize,
    created: Instant,
    /// Creation, then each re-enqueue: linger and retry backoff count from here (Java
    /// `lastAttemptMs`).
    last_attempt: Instant,
    attempts: u32,
    /// No more appends: it filled up, or it was drained once (its bytes and sequence are fixed).
    closed: bool,
    sequence: Option<BatchSequence>,
    /// A send of this batch may have been written (timeout, lost connection, ambiguous error).
    /// Sticky: once unsure, only a definite answer from the broker settles it.
    outcome_unknown: bool,
    /// Why its last attempt failed, for the error its records get if it is given up on.
    last_error: Option<String>,
}

impl<T> ProducerBatch<T> {
    fn new(id: BatchId, tp: TopicPartition, now: Instant) -> Self {
        ProducerBatch {
            id,
            tp,
            records: Vec::new(),
            record_sizes: Vec::new(),
            size: RECORD_BATCH_OVERHEAD,
            reserved: 0,
            created: now,
            last_attempt: now,
            attempts: 0,
            closed: false,
            sequence: None,
            outcome_unknown: false,
            last_error: None,
        }
    }

    fn push(&mut self, record: T, size: usize) {
        self.records.push(record);
        self.record_sizes.push(size);
        self.size += size;
    }

    /// This batch's id.
    pub fn id(&self) -> BatchId {
        self.id
    }

    /// The partition it is for.
    pub fn tp(&self) -> &TopicPartition {
        &self.tp
    }

    /// Its records, in append order.
    pub fn records(&self) -> &[T] {
        &self.records
    }

    /// How many records it holds (the sequence numbers it uses).
    pub fn record_count(&self) -> i32 {
        self.records.len() as i32
    }

    /// Estimated encoded size in bytes, batch header included.
    pub fn size_bytes(&self) -> usize {
        self.size
    }

    /// When the first record was appended.
    pub fn created(&self) -> Instant {
        self.created
    }

    /// How many times it was re-enqueued for a retry.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Producer id, epoch and base sequence, once drained by an idempotent producer.
    pub fn sequence(&self) -> Option<BatchSequence> {
        self.sequence
    }

    /// Stamps producer id, epoch and base sequence (called by a [`DrainGate`]).
    pub fn set_sequence(&mut self, sequence: Option<BatchSequence>) {
        self.sequence = sequence;
    }

    /// Whether a send of this batch may have been written.
    pub fn outcome_unknown(&self) -> bool {
        self.outcome_unknown
    }

    /// Why its last attempt failed (a lost connection, a broker error), if one did.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Records why an attempt failed.
    pub fn set_last_error(&mut self, why: String) {
        self.last_error = Some(why);
    }

    /// Records that a send may have been written. Cannot be undone.
    pub fn mark_outcome_unknown(&mut self) {
        self.outcome_unknown = true;
    }

    fn is_full(&self, batch_size: usize) -> bool {
        self.closed || self.size >= batch_size
    }
}

/// Decides, at drain time, whether a partition's front batch may be sent and stamps it.
///
/// The idempotence state implements this (Java's `shouldStopDrainBatchesForPartition` and the
/// sequence assignment in `drainBatchesForOneNode`); non-idempotent producers use [`NoGate`].
pub trait DrainGate {
    /// May `batch`, the front of its partition's queue, be drained now?
    fn may_drain<T>(&mut self, batch: &ProducerBatch<T>) -> bool;
    /// `batch` is being drained: stamp its producer id, epoch and sequence.
    fn on_drain<T>(&mut self, batch: &mut ProducerBatch<T>);
}

/// A [`DrainGate`] that lets everything through and stamps nothing (no idempotence).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoGate;

impl DrainGate for NoGate {
    fn may_drain<T>(&mut self, _: &ProducerBatch<T>) -> bool {
        true
    }
    fn on_drain<T>(&mut self, _: &mut ProducerBatch<T>) {}
}

/// Where an appended record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The batch holding the record.
    pub batch: BatchId,
    /// The partition has a batch ready to send (queue longer than one, or this batch is full;
    /// Java `batchIsFull`).
    pub batch_full: bool,
    /// A new batch was created for this record.
    pub new_batch: bool,
    /// The batch the record went into is full, so a sticky partitioner may switch
    /// (Java `allBatchesFull`).
    pub tail_full: bool,
    /// Bytes this append added, for the sticky partitioner.
    pub appended_bytes: usize,
}

/// The outcome of [`Accumulator::append`]. The variants that refuse give the record back.
#[derive(Debug)]
pub enum AppendResult<T> {
    /// Queued.
    Appended(Appended),
    /// `buffer.memory` is used up: wait until batches are released, then append again. All
    /// partitions are sendable meanwhile, so memory frees up as fast as possible.
    NoMemory(T),
    /// The record can never fit: it needs more than `buffer.memory` on its own.
    TooLarge(T),
    /// The accumulator is closed.
    Closed(T),
}

/// The outcome of [`Accumulator::ready`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadyCheck {
    /// Leaders with at least one sendable partition.
    pub ready_nodes: BTreeSet<i32>,
    /// When to check again for batches still lingering or backing off; `None` if none are.
    pub next_check_delay: Option<Duration>,
    /// Topics with queued batches but no known leader: refresh their metadata.
    pub unknown_leader_topics: BTreeSet<String>,
}

/// Per-partition batch queues with a memory bound. See the module docs.
#[derive(Debug)]
pub struct Accumulator<T> {
    config: AccumulatorConfig,
    /// Queues by topic, then indexed by partition number. Ordered so `ready` and `expire` visit
    /// partitions deterministically (topic, then partition: `TopicPartition`'s order). Looking up
    /// a partition costs one topic comparison per tree level and an index, where a map keyed by
    /// `TopicPartition` compared the topic string with several keys per append.
    queues: BTreeMap<String, Vec<VecDeque<ProducerBatch<T>>>>,
    /// Bytes reserved by batches not yet released.
    used_memory: usize,
    /// An append was refused for memory and has not succeeded since (Java `free.queued() > 0`).
    memory_waiters: bool,
    /// Partitions with a request in flight, for `max.in.flight = 1` ordering without idempotence.
    muted: HashSet<TopicPartition>,
    /// Per node, where the last drain stopped (Java `nodesDrainIndex`), so partitions take turns.
    drain_index: HashMap<i32, usize>,
    flushes: usize,
    closed: bool,
    next_id: u64,
}

impl<T> Accumulator<T> {
    /// An empty accumulator.
    pub fn new(config: AccumulatorConfig) -> Self {
        Accumulator {
            config,
            queues: BTreeMap::new(),
            used_memory: 0,
            memory_waiters: false,
            muted: HashSet::new(),
            drain_index: HashMap::new(),
            flushes: 0,
            closed: false,
            next_id: 0,
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &AccumulatorConfig {
        &self.config
    }

    /// Appends `record` of encoded size `size` to `tp`'s last batch, or to a new batch when it does
    /// not fit (Java `tryAppend` / `appendNewBatch`). A new batch reserves
    /// `max(batch.size, its first record)` bytes of `buffer.memory`, as Java's `BufferPool` does.
    #[cfg(any(test, feature = "unstable-internals"))] // and benches/micro.rs
    pub fn append(
        &mut self,
        tp: &TopicPartition,
        record: T,
        size: usize,
        now: Instant,
    ) -> AppendResult<T> {
        self.append_with(tp, record, |_| size, || now, |record, _| record)
    }

    /// [`Accumulator::append`] for callers whose queued record depends on its batch: `join`
    /// turns the incoming record into the queued one, given the last record of the batch it
    /// joins (`None` when it opens a new batch), and `size` gives the record's encoded size in
    /// the batch it would join, given that batch's first record and how many it holds (`None`
    /// for a new batch): a v2 record's size depends on its offset and timestamp deltas, and
    /// counting exact sizes fills batches to `batch.size` as Java's `hasRoomFor` does. The clock
    /// is read only when a new batch is created (most appends join an open batch and need no
    /// time). Refusals hand back the incoming record; `join` is then not called.
    pub fn append_with<R>(
        &mut self,
        tp: &TopicPartition,
        record: R,
        size: impl Fn(Option<(&T, usize)>) -> usize,
        now: impl FnOnce() -> Instant,
        join: impl FnOnce(R, Option<&T>) -> T,
    ) -> AppendResult<R> {
        if self.closed {
            return AppendResult::Closed(record);
        }
        let batch_size = self.config.batch_size;
        if let Some(queue) = self.queue_mut(tp) {
            let queued = queue.len();
            if let Some(last) = queue.back_mut().filter(|b| !b.closed) {
                let size = match last.records.first() {
                    Some(first) => size(Some((first, last.records.len()))),
                    None => size(None),
                };
                if last.size + size <= batch_size {
                    let record = join(record, last.records.last());
                    last.push(record, size);
                    let tail_full = last.is_full(batch_size);
                    return AppendResult::Appended(Appended {
                        batch: last.id,
                        batch_full: queued > 1 || tail_full,
                        new_batch: false,
                        tail_full,
                        appended_bytes: size,
                    });
                }
                // Full for this record: later records must not slip in ahead of it.
                last.closed = true;
            }
        }
        let size = size(None);
        let reserve = batch_size.max(RECORD_BATCH_OVERHEAD + size);
        if reserve > self.config.buffer_memory {
            return AppendResult::TooLarge(record);
        }
        if self.used_memory + reserve > self.config.buffer_memory {
            self.memory_waiters = true;
            return AppendResult::NoMemory(record);
        }
        self.used_memory += reserve;
        self.memory_waiters = false;
        self.next_id += 1;
        let mut batch = ProducerBatch::new(BatchId(self.next_id), tp.clone(), now());
        // Room for as many records like this one as the batch takes: growing the vectors by
        // doubling costs a dozen reallocations and copies per batch of small records.
        let expected =
            (batch_size.saturating_sub(RECORD_BATCH_OVERHEAD) / size.max(1)).clamp(1, 4096);
        batch.records.reserve_exact(expected);
        batch.record_sizes.reserve_exact(expected);
        batch.reserved = reserve;
        batch.push(join(record, None), size);
        let tail_full = batch.is_full(batch_size);
        let appended_bytes = batch.size;
        let id = batch.id;
        let queue = self.queue_entry(tp);
        queue.push_back(batch);
        AppendResult::Appended(Appended {
            batch: id,
            batch_full: queue.len() > 1 || tail_full,
            new_batch: true,
            tail_full,
            appended_bytes,
        })
    }

    /// Which leaders have something to send now, and when to look again (Java `ready`).
    ///
    /// A partition is sendable when its front batch is not backing off from a retry, not muted,
    /// and any of: the queue holds a full batch, `linger.ms` passed, memory is short, a flush is
    /// running, or the accumulator is closed. `leader_of` maps a partition to its leader's node id.
    pub fn ready(
        &self,
        leader_of: impl Fn(&TopicPartition) -> Option<i32>,
        now: Instant,
    ) -> ReadyCheck {
        let mut out = ReadyCheck::default();
        for queue in self.queues.values().flatten() {
            let Some(first) = queue.front() else { continue };
            let tp = &first.tp;
            let Some(leader) = leader_of(tp) else {
                out.unknown_leader_topics.insert(tp.topic.clone());
                continue;
            };
            if out.ready_nodes.contains(&leader) || self.muted.contains(tp) {
                continue;
            }
            let waited = now.saturating_duration_since(first.last_attempt);
            let backoff = retry_backoff(&self.config, first.attempts);
            let backing_off = backoff.is_some_and(|b| waited < b);
            // Slack shortens only the linger wait: `drain` checks backoff without it.
            let wait_for = backoff
                .unwrap_or_else(|| self.config.linger.saturating_sub(self.config.linger_slack));
            let full = queue.len() > 1 || first.is_full(self.config.batch_size);
            let sendable = full
                || waited >= wait_for
                || self.memory_waiters
                || self.closed
                || self.flushes > 0;
            if sendable && !backing_off {
                out.ready_nodes.insert(leader);
            } else {
                let left = wait_for.saturating_sub(waited);
                out.next_check_delay = Some(out.next_check_delay.map_or(left, |d| d.min(left)));
            }
        }
        out
    }

    /// How many batches are queued for each of `partitions` of `topic` (none for a partition that
    /// never had a batch), into `out`: KIP-794's adaptive partitioning weighs its next sticky
    /// partition by these (Java collects them in `partitionReady`).
    pub fn queue_lengths(&self, topic: &str, partitions: &[i32], out: &mut Vec<(i32, usize)>) {
        out.clear();
        let queues = self.queues.get(topic);
        out.extend(partitions.iter().map(|&p| {
            let queued = usize::try_from(p)
                .ok()
                .and_then(|i| queues?.get(i))
                .map_or(0, VecDeque::len);
            (p, queued)
        }));
    }

    /// Takes batches for one request to `node` (Java `drainBatchesForOneNode`): at most one batch
    /// per partition of `partitions` (the partitions `node` leads), in total at most
    /// `max_request_size` bytes (a single larger batch still goes alone). Partitions backing off,
    /// muted, or refused by `gate` are skipped; drained batches are stamped by `gate`.
    ///
    /// Every non-empty partition of the node is drained, lingering or not: the request is going
    /// anyway, so waiting batches ride along.
    pub fn drain(
        &mut self,
        node: i32,
        partitions: &[TopicPartition],
        max_request_size: usize,
        now: Instant,
        gate: &mut impl DrainGate,
    ) -> Vec<ProducerBatch<T>> {
        let mut out = Vec::new();
        if partitions.is_empty() {
            return out;
        }
        let start = self.drain_index.get(&node).copied().unwrap_or(0) % partitions.len();
        let mut size = 0;
        for step in 0..partitions.len() {
            let idx = (start + step) % partitions.len();
            self.drain_index.insert(node, idx);
            let tp = &partitions[idx];
            if self.muted.contains(tp) {
                continue;
            }
            // Borrows only `queues`: the backoff check below reads `config`.
            let Some(queue) = queue_in(&mut self.queues, tp) else {
                continue;
            };
            let Some(first) = queue.front() else { continue };
            let waited = now.saturating_duration_since(first.last_attempt);
            if retry_backoff(&self.config, first.attempts).is_some_and(|b| waited < b) {
                continue;
            }
            if size + first.size > max_request_size && !out.is_empty() {
                break;
            }
            // Java breaks out of the whole node here; skipping just this partition lets the
            // others still go.
            if !gate.may_drain(first) {
                continue;
            }
            let mut batch = queue.pop_front().expect("front exists");
            batch.closed = true;
            gate.on_drain(&mut batch);
            size += batch.size;
            out.push(batch);
        }
        out
    }

    /// Puts a batch back for a retry: counts the attempt, restarts its backoff clock and inserts it
    /// before every queued batch with a later sequence (Java `reenqueue` /
    /// `insertInSequenceOrder`), so sequences keep going out in order.
    pub fn reenqueue(&mut self, mut batch: ProducerBatch<T>, now: Instant) {
        batch.attempts += 1;
        batch.last_attempt = batch.last_attempt.max(now);
        self.insert_in_sequence_order(batch);
    }

    /// Splits a batch the broker refused as too large (MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE)
    /// into two parts of about half its bytes each and puts them back at the front of its queue,
    /// in record order (Java `splitAndReenqueue`; Java splits into `batch.size` pieces, but the
    /// broker's limit may be below that, so halving until it fits is used instead).
    ///
    /// The parts are new batches (fresh ids) treated as never tried: no attempt is counted and no
    /// backoff applies. They keep the original's creation time (so `delivery.timeout.ms` still
    /// counts from the first append), its unknown outcome, and its memory, shared between them.
    /// A sequenced batch's range is carved up: the parts get `base`, `base + k`, ... and are
    /// placed in sequence order; tell the idempotence state with
    /// [`IdempotenceState::on_split`](super::sequence::IdempotenceState::on_split), passing the
    /// returned `(id, record count)` list.
    ///
    /// A batch of one record cannot be split: it is handed back (`Err`) for the caller to fail.
    // The batch is handed back by value on the rare refusal, as `release` takes it.
    #[allow(clippy::result_large_err)]
    pub fn split_and_reenqueue(
        &mut self,
        batch: ProducerBatch<T>,
    ) -> Result<Vec<(BatchId, i32)>, ProducerBatch<T>> {
        if batch.records.len() < 2 {
            return Err(batch);
        }
        let ProducerBatch {
            id: _,
            tp,
            records,
            record_sizes,
            size,
            reserved,
            created,
            last_attempt,
            attempts: _,
            closed: _,
            sequence,
            outcome_unknown,
            last_error,
        } = batch;
        // The first part takes records while it stays within half the record bytes; each part
        // holds at least one record.
        let half = (size - RECORD_BATCH_OVERHEAD) / 2;
        let mut cut = 1;
        let mut first_bytes = record_sizes[0];
        while cut < records.len() - 1 && first_bytes + record_sizes[cut] <= half {
            first_bytes += record_sizes[cut];
            cut += 1;
        }
        let mut records = records;
        let mut record_sizes = record_sizes;
        let second_records = records.split_off(cut);
        let second_sizes = record_sizes.split_off(cut);
        let mut parts = Vec::with_capacity(2);
        let mut left_to_reserve = reserved;
        let mut next_sequence = sequence;
        for (i, (recs, sizes)) in [(records, record_sizes), (second_records, second_sizes)]
            .into_iter()
            .enumerate()
        {
            self.next_id += 1;
            let mut part = ProducerBatch::new(BatchId(self.next_id), tp.clone(), created);
            part.last_attempt = last_attempt;
            part.closed = true;
            part.outcome_unknown = outcome_unknown;
            part.last_error.clone_from(&last_error);
            part.size = RECORD_BATCH_OVERHEAD + sizes.iter().sum::<usize>();
            part.records = recs;
            part.record_sizes = sizes;
            // The original's reservation is shared out so `used_memory` is unchanged and each
            // part's release gives back its share; the last part takes what is left.
            part.reserved = if i == 0 {
                part.size.min(left_to_reserve)
            } else {
                left_to_reserve
            };
            left_to_reserve -= part.reserved;
            part.sequence = next_sequence;
            next_sequence = next_sequence.map(|s| BatchSequence {
                base_sequence: increment_sequence(s.base_sequence, part.record_count()),
                ..s
            });
            parts.push(part);
        }
        let out = parts.iter().map(|p| (p.id, p.record_count())).collect();
        // Inserted last part first: with no sequence each goes to the very front.
        for part in parts.into_iter().rev() {
            self.insert_in_sequence_order(part);
        }
        Ok(out)
    }

    /// Inserts `batch` at the front of its queue, before every queued batch with a later sequence
    /// (Java `insertInSequenceOrder`); a batch without a sequence goes first.
    fn insert_in_sequence_order(&mut self, batch: ProducerBatch<T>) {
        let queue = self.queue_entry(&batch.tp);
        let at = match batch.sequence {
            None => 0,
            Some(seq) => queue
                .iter()
                .position(|b| match b.sequence {
                    Some(s) => !sequence_precedes(s.base_sequence, seq.base_sequence),
                    None => true,
                })
                .unwrap_or(queue.len()),
        };
        queue.insert(at, batch);
    }

    /// Removes and returns the batches past `delivery.timeout.ms` for the caller to fail, oldest
    /// first per partition (Java `expiredBatches`).
    ///
    /// A batch whose outcome is unknown expires too: its records must be failed as "may have been
    /// written" ([`ProducerBatch::outcome_unknown`]), never as "not written". A returned batch
    /// that carries a sequence was sent before; report it to the idempotence state, which marks
    /// the sequence unresolved.
    pub fn expire(&mut self, now: Instant) -> Vec<ProducerBatch<T>> {
        let timeout = self.config.delivery_timeout;
        let mut out = Vec::new();
        for queue in self.queues.values_mut().flatten() {
            while let Some(first) = queue.front() {
                if now.saturating_duration_since(first.created) < timeout {
                    break;
                }
                out.extend(queue.pop_front());
            }
        }
        out
    }

    /// The earliest time a queued batch can expire, for the caller's timer.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.queues
            .values()
            .flatten()
            .filter_map(|q| q.front())
            .map(|b| b.created + self.config.delivery_timeout)
            .min()
    }

    /// Gives back a completed, failed or expired batch's memory and returns its records so the
    /// caller can resolve them. Every batch that left the accumulator must come back here once.
    pub fn release(&mut self, batch: ProducerBatch<T>) -> Vec<T> {
        self.used_memory = self.used_memory.saturating_sub(batch.reserved);
        batch.records
    }

    /// Removes every batch never drained (no sequence yet), for an aborted transaction (Java
    /// `abortUndrainedBatches`). Batches already sent stay: their outcome must be learned.
    pub fn abort_undrained(&mut self) -> Vec<ProducerBatch<T>> {
        let mut out = Vec::new();
        for queue in self.queues.values_mut().flatten() {
            let (keep, drop): (VecDeque<_>, VecDeque<_>) =
                queue.drain(..).partition(|b| b.sequence.is_some());
            *queue = keep;
            out.extend(drop);
        }
        out
    }

    /// Removes every queued batch (a forced close, Java `abortBatches`).
    pub fn abort_all(&mut self) -> Vec<ProducerBatch<T>> {
        let mut out = Vec::new();
        for queue in self.queues.values_mut().flatten() {
            out.extend(queue.drain(..));
        }
        out
    }

    /// Starts a flush: every partition is sendable until [`Accumulator::end_flush`]. Also use it
    /// while a transaction commits or aborts, as Java treats `transactionCompleting`.
    pub fn begin_flush(&mut self) {
        self.flushes += 1;
    }

    /// Ends one [`Accumulator::begin_flush`].
    pub fn end_flush(&mut self) {
        self.flushes = self.flushes.saturating_sub(1);
    }

    /// Closes for appends; everything queued becomes sendable at once.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Holds `tp` back from draining (a request for it is in flight).
    #[cfg(test)]
    pub fn mute(&mut self, tp: &TopicPartition) {
        self.muted.insert(tp.clone());
    }

    /// Undoes [`Accumulator::mute`].
    #[cfg(test)]
    pub fn unmute(&mut self, tp: &TopicPartition) {
        self.muted.remove(tp);
    }

    /// Whether any batch is queued (Java `hasUndrained`).
    pub fn has_undrained(&self) -> bool {
        self.queues.values().flatten().any(|q| !q.is_empty())
    }

    /// How many batches are queued for `tp` (the queue length KIP-794 weighs partitions by).
    #[cfg(test)]
    pub fn queued_batches(&self, tp: &TopicPartition) -> usize {
        let partition = usize::try_from(tp.partition).ok();
        self.queues
            .get(tp.topic.as_str())
            .and_then(|parts| parts.get(partition?))
            .map_or(0, VecDeque::len)
    }

    /// `tp`'s queue, if it ever had one.
    fn queue_mut(&mut self, tp: &TopicPartition) -> Option<&mut VecDeque<ProducerBatch<T>>> {
        queue_in(&mut self.queues, tp)
    }

    /// `tp`'s queue, created if needed (the topic name is copied once per topic).
    ///
    /// # Panics
    ///
    /// If `tp.partition` is negative: partitions are numbered from 0.
    fn queue_entry(&mut self, tp: &TopicPartition) -> &mut VecDeque<ProducerBatch<T>> {
        let partition = usize::try_from(tp.partition).expect("a partition number is not negative");
        if !self.queues.contains_key(tp.topic.as_str()) {
            self.queues.insert(tp.topic.clone(), Vec::new());
        }
        let parts = self.queues.get_mut(tp.topic.as_str()).expect("inserted");
        if parts.len() <= partition {
            parts.resize_with(partition + 1, VecDeque::new);
        }
        &mut parts[partition]
    }

    /// An append was refused for memory and none has reserved memory since: [`ready`](Self::ready)
    /// then treats every batch as sendable (Java `free.queued() > 0`).
    pub fn memory_short(&self) -> bool {
        self.memory_waiters
    }

    /// Bytes of `buffer.memory` held by unreleased batches.
    pub fn used_memory(&self) -> usize {
        self.used_memory
    }
}

/// `tp`'s queue in `queues`, if it ever had one.
fn queue_in<'a, T>(
    queues: &'a mut BTreeMap<String, Vec<VecDeque<ProducerBatch<T>>>>,
    tp: &TopicPartition,
) -> Option<&'a mut VecDeque<ProducerBatch<T>>> {
    let partition = usize::try_from(tp.partition).ok()?;
    queues.get_mut(tp.topic.as_str())?.get_mut(partition)
}

/// Java's retry wait before attempt `attempts + 1`: `retry.backoff.ms * 2^(attempts-1)` capped at
/// `retry.backoff.max.ms`, none before the first send. (Java adds ±20 % jitter; this layer stays
/// deterministic.)
fn retry_backoff(config: &AccumulatorConfig, attempts: u32) -> Option<Duration> {
    let exp = attempts.checked_sub(1)?.min(30);
    Some(
        config
            .retry_backoff
            .saturating_mul(1 << exp)
            .min(config.retry_backoff_max.max(config.retry_backoff)),
    )
}

#[cfg(test)]
#[path = "tests/accumulator.rs"]
mod tests;
