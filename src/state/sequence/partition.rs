//! The sequence numbers of one partition: their arithmetic (wrapping at `i32::MAX` as the broker
//! does), the [`BatchSequence`] a drained batch is stamped with, and [`PartitionSequence`], the
//! bookkeeping of the batches holding a partition's unacknowledged sequences (Java
//! `TxnPartitionEntry`). The producer-wide decisions that move them are in the parent module.

use super::ProducerIdAndEpoch;
use crate::state::accumulator::BatchId;

/// What an idempotent batch carries on the wire: who sent it and its first sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSequence {
    /// Producer id and epoch the batch is written with.
    pub producer: ProducerIdAndEpoch,
    /// Sequence of its first record.
    pub base_sequence: i32,
}

/// `sequence + increment`, wrapping from `i32::MAX` to 0 as the broker does
/// (Java `DefaultRecordBatch.incrementSequence`).
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// `sequence - decrement`, wrapping below 0 to `i32::MAX` (Java `decrementSequence`).
pub fn decrement_sequence(sequence: i32, decrement: i32) -> i32 {
    if sequence < decrement {
        i32::MAX - (decrement - sequence) + 1
    } else {
        sequence - decrement
    }
}

/// Whether sequence `a` comes before `b`, allowing for the wrap at `i32::MAX`: `b` is less than
/// half the sequence space ahead of `a`. (Java compares with `<` and so misorders at the wrap.)
pub fn sequence_precedes(a: i32, b: i32) -> bool {
    let ahead = (i64::from(b) - i64::from(a)).rem_euclid(1 << 31);
    ahead != 0 && ahead < (1 << 30)
}

/// One batch holding sequence numbers of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct InFlight {
    pub(super) id: BatchId,
    pub(super) producer: ProducerIdAndEpoch,
    pub(super) base_sequence: i32,
    pub(super) record_count: i32,
    /// Its sequence was rewritten after it was first sent (Java `sequenceHasBeenReset`): errors
    /// for the old numbering are expected and retried.
    pub(super) reset: bool,
    /// A send may have been written; sticky (see the `sequence` module docs).
    pub(super) outcome_unknown: bool,
}

impl InFlight {
    pub(super) fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.record_count - 1)
    }
}

/// Sequence bookkeeping of one partition (Java `TxnPartitionEntry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSequence {
    /// The id and epoch this partition's sequences belong to; lags the producer's after a bump
    /// until the partition's older batches are done.
    pub(super) producer: ProducerIdAndEpoch,
    pub(super) next_sequence: i32,
    last_acked_sequence: Option<i32>,
    /// Ordered by base sequence (see the `sequence` module docs).
    pub(super) in_flight: Vec<InFlight>,
    /// Tells retention ("our state was deleted") from data loss on UNKNOWN_PRODUCER_ID.
    pub(super) last_acked_offset: Option<i64>,
}

impl Default for PartitionSequence {
    fn default() -> Self {
        PartitionSequence {
            producer: ProducerIdAndEpoch::NONE,
            next_sequence: 0,
            last_acked_sequence: None,
            in_flight: Vec::new(),
            last_acked_offset: None,
        }
    }
}

impl PartitionSequence {
    /// Base sequence the next new batch gets.
    #[cfg(test)]
    pub fn next_sequence(&self) -> i32 {
        self.next_sequence
    }
    /// Last sequence of the last acknowledged batch.
    #[cfg(test)]
    pub fn last_acked_sequence(&self) -> Option<i32> {
        self.last_acked_sequence
    }
    /// Offset of the last acknowledged record.
    #[cfg(test)]
    pub fn last_acked_offset(&self) -> Option<i64> {
        self.last_acked_offset
    }
    /// How many batches hold unacknowledged sequences.
    #[cfg(test)]
    pub fn in_flight_count(&self) -> usize {
        self.in_flight.len()
    }
    /// Base sequence of the lowest unacknowledged batch.
    #[cfg(test)]
    pub fn first_in_flight_sequence(&self) -> Option<i32> {
        self.in_flight.first().map(|b| b.base_sequence)
    }
    /// The current producer id, epoch and sequence of a tracked batch.
    pub fn sequence_of(&self, id: BatchId) -> Option<BatchSequence> {
        self.find(id).map(|b| BatchSequence {
            producer: b.producer,
            base_sequence: b.base_sequence,
        })
    }

    pub(super) fn find(&self, id: BatchId) -> Option<&InFlight> {
        self.in_flight.iter().find(|b| b.id == id)
    }

    pub(super) fn remove(&mut self, id: BatchId) -> Option<InFlight> {
        let at = self.in_flight.iter().position(|b| b.id == id)?;
        Some(self.in_flight.remove(at))
    }

    pub(super) fn is_next_sequence(&self, sequence: i32) -> bool {
        increment_sequence(self.last_acked_sequence.unwrap_or(-1), 1) == sequence
    }

    /// Renumbers every in-flight batch from 0 under `producer` (Java `startSequencesAtBeginning`).
    pub(super) fn start_sequences_at_beginning(&mut self, producer: ProducerIdAndEpoch) {
        let mut sequence = 0;
        for b in &mut self.in_flight {
            b.producer = producer;
            b.base_sequence = sequence;
            b.reset = true;
            sequence = increment_sequence(sequence, b.record_count);
        }
        self.producer = producer;
        self.next_sequence = sequence;
        self.last_acked_sequence = None;
    }

    /// Closes the gap a definitely-unwritten batch left (Java `adjustSequencesDueToFailedBatch`).
    pub(super) fn adjust_sequences_due_to_failed_batch(
        &mut self,
        base_sequence: i32,
        record_count: i32,
    ) {
        self.next_sequence = decrement_sequence(self.next_sequence, record_count);
        for b in &mut self.in_flight {
            if !sequence_precedes(b.base_sequence, base_sequence) {
                b.base_sequence = decrement_sequence(b.base_sequence, record_count);
                b.reset = true;
            }
        }
    }

    pub(super) fn ack(&mut self, last_sequence: i32) {
        if self
            .last_acked_sequence
            .is_none_or(|acked| sequence_precedes(acked, last_sequence))
        {
            self.last_acked_sequence = Some(last_sequence);
        }
    }
}
