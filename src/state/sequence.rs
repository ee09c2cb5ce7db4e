//! Idempotent-producer sequence numbers: per-partition tracking and the decision taken on every
//! produce outcome.
//!
//! [`PartitionSequence`] mirrors the Java client's `TxnPartitionEntry` (it and the sequence
//! arithmetic are in `partition`, re-exported here); [`IdempotenceState`] mirrors the idempotence
//! half of `TransactionManager` (`canRetry`, `handleCompletedBatch`, `handleFailedBatch`,
//! unresolved sequences, epoch bumps) and is the [`DrainGate`] that stamps sequences on drained
//! batches. Invariants:
//!
//! - sequences of a partition are assigned in drain order, so in-flight batches are kept in
//!   base-sequence order; a batch keeps its sequence across retries unless an epoch bump or a
//!   failed predecessor rewrites it;
//! - at most [`MAX_IN_FLIGHT_PER_PARTITION`] batches per partition hold unacknowledged sequences,
//!   because the broker remembers only the last 5 batches per producer
//!   (`ProducerStateEntry.NUM_BATCHES_TO_RETAIN`) to detect duplicates;
//! - while a partition retries, only its lowest in-flight batch may be sent (Java
//!   `shouldStopDrainBatchesForPartition`: "This effectively reduces our in flight request count
//!   to 1");
//! - a batch whose outcome is unknown is never reported as failed-and-not-written
//!   (franz-go DESIGN "When can a batch fail?"): it is retried while `delivery.timeout.ms` and its
//!   retries last; after that it is given up on as outcome unknown ([`Decision::GiveUp`]) and its
//!   sequence marked unresolved, so no later batch of the partition takes a new sequence until
//!   the batches in flight settle it: acknowledged past it, or an epoch bump (idempotent; Java
//!   `bumpIdempotentEpochAndResetIdIfNeeded`) or an abortable transaction (transactional).

use std::collections::{HashMap, HashSet};

use super::accumulator::{BatchId, DrainGate, ProducerBatch};
use crate::error::{ApiKey, Error, ErrorClass};
use crate::record::TopicPartition;
use kafka_protocol::error::ResponseError;

mod partition;
// Used by the unit tests and, with `unstable-internals`, the tests' facade.
#[cfg_attr(not(feature = "unstable-internals"), allow(unused_imports))]
pub use partition::decrement_sequence;
use partition::InFlight;
pub use partition::{increment_sequence, sequence_precedes, BatchSequence, PartitionSequence};

/// The most batches per partition that may hold unacknowledged sequence numbers.
pub const MAX_IN_FLIGHT_PER_PARTITION: usize = 5;

/// A producer id and epoch, as granted by InitProducerId (Java `ProducerIdAndEpoch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerIdAndEpoch {
    /// The producer id; negative means none yet.
    pub producer_id: i64,
    /// The epoch.
    pub epoch: i16,
}

impl Default for ProducerIdAndEpoch {
    fn default() -> Self {
        ProducerIdAndEpoch::NONE
    }
}

impl ProducerIdAndEpoch {
    /// No producer id (`-1`/`-1`).
    pub const NONE: ProducerIdAndEpoch = ProducerIdAndEpoch {
        producer_id: -1,
        epoch: -1,
    };

    /// An id and epoch.
    pub fn new(producer_id: i64, epoch: i16) -> Self {
        ProducerIdAndEpoch { producer_id, epoch }
    }

    /// Whether this is a real producer id.
    pub fn is_valid(&self) -> bool {
        self.producer_id >= 0
    }
}

/// One partition's entry in a Produce response, as this layer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionResponse {
    /// The partition's error, if any.
    pub error: Option<ResponseError>,
    /// Offset of the batch's first record; `-1` when unknown.
    pub base_offset: i64,
    /// The partition's log start offset; `-1` when the broker did not know it.
    pub log_start_offset: i64,
    /// The broker's error message.
    pub message: Option<String>,
}

impl PartitionResponse {
    /// A success at `base_offset`.
    #[cfg(test)]
    pub fn ok(base_offset: i64) -> Self {
        PartitionResponse {
            error: None,
            base_offset,
            log_start_offset: -1,
            message: None,
        }
    }

    /// A failure with `code`.
    pub fn error(code: ResponseError) -> Self {
        PartitionResponse {
            error: Some(code),
            base_offset: -1,
            log_start_offset: -1,
            message: None,
        }
    }
}

/// The offset a batch of `records` records was written at, from the broker's `base_offset`:
/// `None` (offset unknown, as for acks=0) for -1 (the broker did not say) and for any offset no
/// batch can have, negative or with its last record past `i64::MAX`. Record offsets are then
/// `base + index`, which cannot overflow.
pub fn written_offset(base_offset: i64, records: i32) -> Option<i64> {
    let last = base_offset.checked_add(i64::from(records.max(1)) - 1);
    (base_offset >= 0 && last.is_some()).then_some(base_offset)
}

/// What to do with a batch after a produce outcome.
#[derive(Debug)]
pub enum Decision {
    /// Written. `base_offset` is `None` for DUPLICATE_SEQUENCE_NUMBER: the batch was written
    /// earlier but the broker no longer knows where (Java `Sender.completeBatch`).
    Complete {
        /// Offset of the first record, when known.
        base_offset: Option<i64>,
    },
    /// Re-enqueue it ([`Accumulator::reenqueue`](super::accumulator::Accumulator::reenqueue)
    /// keeps sequence order) and send it again. Until it completes, only this batch may be in
    /// flight for its partition; the drain gate enforces that. If `outcome_unknown`, call
    /// [`ProducerBatch::mark_outcome_unknown`] so that, if it expires, its records fail as
    /// outcome unknown.
    Retry {
        /// A send may have been written.
        outcome_unknown: bool,
    },
    /// Re-enqueue it, and call [`IdempotenceState::bump_epoch_if_needed`] before the next drain:
    /// the partition's sequences restart at 0 under a new epoch (idempotent producer only).
    BumpEpochAndRetry,
    /// Fail the batch's records with `error`. With `outcome_unknown` false the broker refused it,
    /// so nothing was written; with true, an earlier send may have been written and the user must
    /// be told so. For a transactional producer the error is [`ErrorClass::Abortable`]: feed it
    /// to the transaction manager.
    Fail {
        /// Why.
        error: Error,
        /// Whether an earlier send may have been written.
        outcome_unknown: bool,
    },
    /// Fail the batch and every later operation: the producer cannot go on (fenced, not
    /// authorized, unsupported).
    Fatal(Error),
    /// Stop trying: `delivery.timeout.ms` or the batch's retries ran out (or the producer is
    /// closing) before a definite answer. Fail its records saying whether a send of it may have
    /// been written (`outcome_unknown`). Its sequence, if it had one, is already marked
    /// unresolved.
    GiveUp {
        /// A send may have been written.
        outcome_unknown: bool,
    },
}

/// What [`IdempotenceState::bump_epoch_if_needed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochBump {
    /// The epoch went up locally; rewritten partitions restart at sequence 0.
    Bumped(ProducerIdAndEpoch),
    /// The epoch was `i16::MAX`: send InitProducerId for a new id, then call
    /// [`IdempotenceState::set_producer_id`]. Nothing drains until then.
    NeedsNewProducerId,
}

/// How an unresolved partition settled (see [`IdempotenceState::maybe_resolve_sequences`]).
// The partitions are read by the runtime-free tests and shown in logs through `Debug`.
// The partitions and errors are carried for the producer's logs (Debug); tests match variants.
#[allow(dead_code)]
#[derive(Debug)]
pub enum Resolution {
    /// Later batches were acknowledged, so the expired ones were written: nothing to do.
    Resolved(TopicPartition),
    /// Idempotent producer: the gap is real; an epoch bump is pending.
    BumpEpoch(TopicPartition),
    /// Transactional producer: abort the transaction (the epoch is bumped when it ends).
    Abortable(TopicPartition, Error),
    /// Transactional producer whose coordinator cannot bump epochs: it cannot go on.
    Fatal(TopicPartition, Error),
}

/// Produce errors that make any producer unusable (Java `maybeTransitionToErrorState`).
fn is_producer_fatal(code: ResponseError) -> bool {
    matches!(
        code,
        ResponseError::ClusterAuthorizationFailed
            | ResponseError::TransactionalIdAuthorizationFailed
            | ResponseError::ProducerFenced
            | ResponseError::UnsupportedVersion
    )
}

/// An error that stopped a connection being set up — the broker's certificate or our credentials
/// were refused, or it speaks no Produce version we do — so nothing was sent, and a redial fails
/// the same way until someone changes something.
fn is_refused_setup(error: &Error) -> bool {
    matches!(
        error,
        Error::Tls { .. } | Error::Authentication { .. } | Error::UnsupportedVersion { .. }
    )
}

/// Errors after which the batch may or may not be in the log (franz-go `unsureIfProduced`, plus
/// NETWORK_EXCEPTION: the broker disconnected before answering).
fn is_ambiguous(code: ResponseError) -> bool {
    matches!(
        code,
        ResponseError::RequestTimedOut
            | ResponseError::NotEnoughReplicasAfterAppend
            | ResponseError::NetworkException
    )
}

enum Verdict {
    Retry,
    BumpAndRetry,
    No,
}

/// Producer-wide idempotence state: the producer id, every partition's sequences, and the
/// epoch-bump and unresolved-sequence bookkeeping of Java's `TransactionManager`.
#[derive(Debug)]
pub struct IdempotenceState {
    transactional: bool,
    /// Whether the transaction coordinator can bump epochs (InitProducerId v3+ or transactions
    /// v2); always true for an idempotent producer (Java `canBumpEpoch`).
    can_bump_epoch: bool,
    producer: ProducerIdAndEpoch,
    partitions: HashMap<TopicPartition, PartitionSequence>,
    /// Partitions where a sent batch expired: no new sequences until settled. The value is the
    /// sequence right after the expired batch (Java `partitionsWithUnresolvedSequences`).
    unresolved: HashMap<TopicPartition, i32>,
    /// Partitions to renumber at the next epoch bump (Java `partitionsToRewriteSequences`).
    rewrite_on_bump: HashSet<TopicPartition>,
    epoch_bump_required: bool,
}

impl IdempotenceState {
    /// State for an idempotent (`transactional == false`) or transactional producer, with no
    /// producer id yet.
    pub fn new(transactional: bool) -> Self {
        IdempotenceState {
            transactional,
            can_bump_epoch: !transactional,
            producer: ProducerIdAndEpoch::NONE,
            partitions: HashMap::new(),
            unresolved: HashMap::new(),
            rewrite_on_bump: HashSet::new(),
            epoch_bump_required: false,
        }
    }

    /// Records whether the transaction coordinator can bump epochs (ignored when idempotent).
    pub fn set_can_bump_epoch(&mut self, can: bool) {
        self.can_bump_epoch = can || !self.transactional;
    }

    /// The current producer id and epoch.
    pub fn producer(&self) -> ProducerIdAndEpoch {
        self.producer
    }

    /// Adopts a producer id and epoch from InitProducerId or EndTxn v5. With `reset_sequences`
    /// (any id or epoch after the first), every partition restarts at sequence 0 under it and
    /// unresolved sequences are forgotten (Java `resetSequenceNumbers`).
    pub fn set_producer_id(&mut self, producer: ProducerIdAndEpoch, reset_sequences: bool) {
        self.producer = producer;
        if reset_sequences {
            for entry in self.partitions.values_mut() {
                entry.start_sequences_at_beginning(producer);
            }
            self.unresolved.clear();
            self.rewrite_on_bump.clear();
            self.epoch_bump_required = false;
        }
    }

    /// A partition's sequence bookkeeping.
    #[cfg(test)]
    pub fn partition(&self, tp: &TopicPartition) -> Option<&PartitionSequence> {
        self.partitions.get(tp)
    }

    /// Whether `tp` has an unresolved sequence (a sent batch expired).
    #[cfg(test)]
    pub fn has_unresolved_sequence(&self, tp: &TopicPartition) -> bool {
        self.unresolved.contains_key(tp)
    }

    /// Whether an epoch bump was requested and not yet done.
    #[cfg(test)]
    pub fn epoch_bump_required(&self) -> bool {
        self.epoch_bump_required
    }

    /// Decides what happens to batch `id` of `tp` after its Produce response.
    ///
    /// `retry_allowed` is false once the batch's retries or `delivery.timeout.ms` are used up;
    /// even then a response whose outcome is ambiguous is retried (see module docs).
    pub fn on_response(
        &mut self,
        tp: &TopicPartition,
        id: BatchId,
        response: &PartitionResponse,
        retry_allowed: bool,
    ) -> Decision {
        let Some(code) = response.error else {
            return self.complete(tp, id, Some(response.base_offset));
        };
        let entry = self.partitions.entry(tp.clone()).or_default();
        let mut unknown = false;
        if let Some(b) = entry.in_flight.iter_mut().find(|b| b.id == id) {
            b.outcome_unknown |= is_ambiguous(code);
            unknown = b.outcome_unknown;
        }
        if retry_allowed {
            match self.can_retry(tp, id, code, response.log_start_offset) {
                Verdict::Retry => {
                    return Decision::Retry {
                        outcome_unknown: unknown,
                    }
                }
                Verdict::BumpAndRetry => return Decision::BumpEpochAndRetry,
                Verdict::No => {}
            }
        }
        if code == ResponseError::DuplicateSequenceNumber {
            return self.complete(tp, id, None);
        }
        self.fail(tp, id, code, response.message.clone(), unknown)
    }

    /// Records that a send of batch `id` may have been written although its error does not say
    /// so (an answer arrived but could not be decoded), so later decisions treat it as unknown.
    pub fn mark_outcome_unknown(&mut self, tp: &TopicPartition, id: BatchId) {
        if let Some(b) = self
            .partitions
            .get_mut(tp)
            .and_then(|e| e.in_flight.iter_mut().find(|b| b.id == id))
        {
            b.outcome_unknown = true;
        }
    }

    /// Decides what happens to batch `id` when its request got no response: the connection was
    /// lost, the request timed out, or it was never sent (no connection). The outcome is unknown
    /// if `error` says the request may have reached the broker, or an earlier send was unsure.
    /// A retry while `retry_allowed`; otherwise the batch is given up on and its sequence marked
    /// unresolved, as when it expires queued ([`IdempotenceState::on_expired`]).
    pub fn on_no_response(
        &mut self,
        tp: &TopicPartition,
        id: BatchId,
        error: &Error,
        retry_allowed: bool,
    ) -> Decision {
        let entry = self.partitions.entry(tp.clone()).or_default();
        let mut unknown = error.outcome_unknown();
        if let Some(b) = entry.in_flight.iter_mut().find(|b| b.id == id) {
            b.outcome_unknown |= unknown;
            unknown = b.outcome_unknown;
        }
        if is_refused_setup(error) {
            // Retrying cannot help before someone fixes the certificate, credentials or broker:
            // the batch fails now with the real error, like a partition's non-retriable refusal.
            let removed = self.partitions.get_mut(tp).and_then(|e| e.remove(id));
            self.forget_failed(tp, removed, None, unknown);
            return Decision::Fail {
                error: error.duplicate(),
                outcome_unknown: unknown,
            };
        }
        if retry_allowed {
            return Decision::Retry {
                outcome_unknown: unknown,
            };
        }
        self.on_expired(tp, id);
        Decision::GiveUp {
            outcome_unknown: unknown,
        }
    }

    /// Batch `original` of `tp` was refused as too large and split into `parts` (id and record
    /// count, in record order; see
    /// [`Accumulator::split_and_reenqueue`](super::accumulator::Accumulator::split_and_reenqueue)).
    /// Its in-flight entry is replaced by one per part, with sequences carved from its range
    /// (`base`, `base + n0`, ...), so later batches keep theirs (Java `splitAndReenqueue` +
    /// `addInFlightBatch`). The parts keep the original's producer id, epoch, reset and unknown
    /// outcome flags. Returns whether the original was tracked; if not, the parts are new to
    /// this state and get sequences when drained.
    pub fn on_split(
        &mut self,
        tp: &TopicPartition,
        original: BatchId,
        parts: &[(BatchId, i32)],
    ) -> bool {
        let Some(entry) = self.partitions.get_mut(tp) else {
            return false;
        };
        let Some(at) = entry.in_flight.iter().position(|b| b.id == original) else {
            return false;
        };
        let old = entry.in_flight.remove(at);
        debug_assert_eq!(
            parts.iter().map(|&(_, n)| n).sum::<i32>(),
            old.record_count,
            "split parts must cover the original's records"
        );
        let mut sequence = old.base_sequence;
        for (i, &(id, record_count)) in parts.iter().enumerate() {
            entry.in_flight.insert(
                at + i,
                InFlight {
                    id,
                    base_sequence: sequence,
                    record_count,
                    ..old.clone()
                },
            );
            sequence = increment_sequence(sequence, record_count);
        }
        true
    }

    /// Batch `id` of `tp` expired in the accumulator after it had been sent (it carries a
    /// sequence): its records are failed, but its sequence may or may not be in the log, so the
    /// partition takes no new sequences until [`IdempotenceState::maybe_resolve_sequences`]
    /// settles it (Java `markSequenceUnresolved`). Returns whether the batch was tracked.
    pub fn on_expired(&mut self, tp: &TopicPartition, id: BatchId) -> bool {
        let Some(removed) = self.partitions.get_mut(tp).and_then(|e| e.remove(id)) else {
            return false;
        };
        self.mark_unresolved(tp, removed.last_sequence());
        true
    }

    /// Settles unresolved partitions whose batches are all done (Java `maybeResolveSequences`):
    /// if every assigned sequence was acknowledged the expired batches were written; otherwise
    /// there is a gap, closed by an epoch bump (idempotent) or by aborting (transactional). Call
    /// after responses and expiries.
    pub fn maybe_resolve_sequences(&mut self) -> Vec<Resolution> {
        let mut settled: Vec<TopicPartition> = self
            .unresolved
            .keys()
            .filter(|tp| {
                self.partitions
                    .get(*tp)
                    .is_none_or(|e| e.in_flight.is_empty())
            })
            .cloned()
            .collect();
        settled.sort();
        let mut out = Vec::new();
        for tp in settled {
            self.unresolved.remove(&tp);
            let resolved = self
                .partitions
                .get(&tp)
                .is_none_or(|e| e.is_next_sequence(e.next_sequence));
            out.push(if resolved {
                Resolution::Resolved(tp)
            } else if !self.transactional {
                self.request_epoch_bump(&tp);
                Resolution::BumpEpoch(tp)
            } else {
                let class = if self.can_bump_epoch {
                    ErrorClass::Abortable
                } else {
                    ErrorClass::Fatal
                };
                let error = Error::Broker {
                    api: ApiKey::Produce,
                    broker: None,
                    code: crate::error::ErrorCode::RequestTimedOut,
                    message: Some(
                        "sent batches expired without acknowledgement; their sequences cannot be reused"
                            .into(),
                    ),
                    class,
                };
                match class {
                    ErrorClass::Abortable => Resolution::Abortable(tp, error),
                    _ => Resolution::Fatal(tp, error),
                }
            });
        }
        out
    }

    /// Performs a requested epoch bump of an idempotent producer locally (Java
    /// `bumpIdempotentEpochAndResetIdIfNeeded`): epoch + 1 and the partitions that asked for it
    /// renumbered from 0. Call before every drain; `None` when nothing was requested.
    pub fn bump_epoch_if_needed(&mut self) -> Option<EpochBump> {
        if self.transactional || !self.epoch_bump_required {
            return None;
        }
        let bump = if self.producer.epoch == i16::MAX {
            self.producer = ProducerIdAndEpoch::NONE;
            EpochBump::NeedsNewProducerId
        } else {
            self.producer.epoch += 1;
            EpochBump::Bumped(self.producer)
        };
        for tp in self.rewrite_on_bump.drain() {
            if let Some(entry) = self.partitions.get_mut(&tp) {
                entry.start_sequences_at_beginning(self.producer);
            }
            self.unresolved.remove(&tp);
        }
        self.epoch_bump_required = false;
        Some(bump)
    }

    fn request_epoch_bump(&mut self, tp: &TopicPartition) {
        self.epoch_bump_required = true;
        self.rewrite_on_bump.insert(tp.clone());
    }

    fn mark_unresolved(&mut self, tp: &TopicPartition, last_sequence: i32) {
        let next = increment_sequence(last_sequence, 1);
        let slot = self.unresolved.entry(tp.clone()).or_insert(next);
        if sequence_precedes(*slot, next) {
            *slot = next;
        }
    }

    /// Java `TransactionManager.canRetry`.
    fn can_retry(
        &mut self,
        tp: &TopicPartition,
        id: BatchId,
        code: ResponseError,
        log_start_offset: i64,
    ) -> Verdict {
        let tx = self.transactional;
        let producer = self.producer;
        let unresolved = self.unresolved.get(tp).copied();
        let entry = self.partitions.entry(tp.clone()).or_default();
        let (reset, base) = entry
            .find(id)
            .map_or((false, None), |b| (b.reset, Some(b.base_sequence)));
        match code {
            ResponseError::UnknownProducerId => {
                // -1: the partition moved while answering; a later answer will carry it.
                if log_start_offset == -1 || reset {
                    return Verdict::Retry;
                }
                if entry.last_acked_offset.unwrap_or(-1) < log_start_offset {
                    // Retention removed our last records and with them our producer state:
                    // nothing was lost. Transactional: renumber from 0 and keep the transaction.
                    if tx {
                        entry.start_sequences_at_beginning(producer);
                        return Verdict::Retry;
                    }
                    self.request_epoch_bump(tp);
                    return Verdict::BumpAndRetry;
                }
                if tx {
                    return Verdict::No;
                }
                self.request_epoch_bump(tp);
                Verdict::BumpAndRetry
            }
            ResponseError::OutOfOrderSequenceNumber => {
                let next_expected = base.is_some_and(|s| entry.is_next_sequence(s));
                if unresolved.is_none() && (reset || !next_expected) {
                    // A batch ahead of it failed; it will fit once that one is resent.
                    return Verdict::Retry;
                }
                if tx {
                    return Verdict::No;
                }
                // A real gap (or the batch right after an expired one): Java's gap-tolerant
                // choice for idempotent producers is a new epoch, not a fatal error.
                if unresolved.is_none() || base == unresolved {
                    self.request_epoch_bump(tp);
                    return Verdict::BumpAndRetry;
                }
                Verdict::Retry
            }
            _ if crate::error::is_retriable_code(code) => Verdict::Retry,
            _ => Verdict::No,
        }
    }

    /// Java `handleCompletedBatch`.
    fn complete(&mut self, tp: &TopicPartition, id: BatchId, base_offset: Option<i64>) -> Decision {
        let entry = self.partitions.entry(tp.clone()).or_default();
        let removed = entry.remove(id);
        // A batch no longer tracked still has at least one record.
        let records = removed.as_ref().map_or(1, |b| b.record_count);
        let base_offset = base_offset.and_then(|o| written_offset(o, records));
        if let Some(b) = removed {
            entry.ack(b.last_sequence());
            if let Some(base) = base_offset {
                let last = base + (i64::from(b.record_count) - 1);
                if entry.last_acked_offset.is_none_or(|o| o < last) {
                    entry.last_acked_offset = Some(last);
                }
            }
        }
        Decision::Complete { base_offset }
    }

    /// Java `Sender.failBatch` + `TransactionManager.handleFailedBatch`.
    fn fail(
        &mut self,
        tp: &TopicPartition,
        id: BatchId,
        code: ResponseError,
        message: Option<String>,
        outcome_unknown: bool,
    ) -> Decision {
        let fatal = is_producer_fatal(code);
        let class = if fatal {
            ErrorClass::Fatal
        } else if self.transactional {
            ErrorClass::Abortable
        } else if crate::error::is_retriable_code(code) {
            ErrorClass::Retriable
        } else {
            // Refused for this batch only (too large, invalid record, topic): the producer is
            // fine.
            ErrorClass::Rejected
        };
        let error = Error::Broker {
            api: ApiKey::Produce,
            broker: None,
            code: crate::error::ErrorCode::from_protocol(code),
            message,
            class,
        };
        let removed = self.partitions.get_mut(tp).and_then(|e| e.remove(id));
        if fatal {
            return Decision::Fatal(error);
        }
        self.forget_failed(tp, removed, Some(code), outcome_unknown);
        Decision::Fail {
            error,
            outcome_unknown,
        }
    }

    /// Keeps the sequences of `tp` consistent after its batch `removed` failed for good (`code`
    /// when a partition answered with one): a sequence that may be in the log is marked
    /// unresolved; otherwise an idempotent producer bumps its epoch and a transactional one
    /// shifts the later batches' sequences down over the gap.
    fn forget_failed(
        &mut self,
        tp: &TopicPartition,
        removed: Option<InFlight>,
        code: Option<ResponseError>,
        outcome_unknown: bool,
    ) {
        let tx = self.transactional;
        match removed {
            // It may be in the log: its sequence can neither be reused nor skipped silently.
            Some(b) if outcome_unknown => self.mark_unresolved(tp, b.last_sequence()),
            _ if !tx => self.request_epoch_bump(tp),
            // The broker holds no state for us and will take sequence 0 next.
            _ if code == Some(ResponseError::UnknownProducerId) => {
                self.partitions.remove(tp);
                self.unresolved.remove(tp);
            }
            Some(b) => {
                if let Some(entry) = self.partitions.get_mut(tp) {
                    entry.adjust_sequences_due_to_failed_batch(b.base_sequence, b.record_count);
                }
            }
            None => {}
        }
    }
}

impl DrainGate for IdempotenceState {
    /// Java `shouldStopDrainBatchesForPartition`, plus two holds of this crate: no new sequence
    /// while the partition waits for an epoch bump, or while it already has
    /// [`MAX_IN_FLIGHT_PER_PARTITION`] batches out.
    fn may_drain<T>(&mut self, batch: &ProducerBatch<T>) -> bool {
        if !self.producer.is_valid() {
            return false;
        }
        let tp = batch.tp();
        if self.epoch_bump_required && self.rewrite_on_bump.contains(tp) {
            return false;
        }
        let producer = self.producer;
        let unresolved = self.unresolved.contains_key(tp);
        let entry = self.partitions.entry(tp.clone()).or_default();
        match entry.in_flight.iter().position(|b| b.id == batch.id()) {
            // A retry: only the lowest outstanding batch may go.
            Some(at) => at == 0,
            None => {
                (entry.in_flight.is_empty() || entry.producer == producer)
                    && entry.in_flight.len() < MAX_IN_FLIGHT_PER_PARTITION
                    && !unresolved
            }
        }
    }

    fn on_drain<T>(&mut self, batch: &mut ProducerBatch<T>) {
        let producer = self.producer;
        let entry = self.partitions.entry(batch.tp().clone()).or_default();
        if let Some(seq) = entry.sequence_of(batch.id()) {
            batch.set_sequence(Some(seq));
            return;
        }
        // A new batch (or one whose tracking was reset): the partition moves to the current
        // producer id once its older batches are done (Java `maybeUpdateProducerIdAndEpoch`).
        if entry.producer != producer && entry.in_flight.is_empty() {
            entry.start_sequences_at_beginning(producer);
        }
        let base_sequence = entry.next_sequence;
        entry.next_sequence = increment_sequence(base_sequence, batch.record_count());
        entry.in_flight.push(InFlight {
            id: batch.id(),
            producer,
            base_sequence,
            record_count: batch.record_count(),
            reset: batch.sequence().is_some(),
            outcome_unknown: batch.outcome_unknown(),
        });
        batch.set_sequence(Some(BatchSequence {
            producer,
            base_sequence,
        }));
    }
}

#[cfg(test)]
#[path = "tests/sequence.rs"]
mod tests;
