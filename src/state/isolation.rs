//! The `read_committed` filter for one partition's fetched data: which batches a consumer may hand
//! to the user and which it must drop.
//!
//! The rules are the Java consumer's `CompletedFetch.nextFetchedRecord` (with
//! `consumeAbortedTransactionsUpTo`, `isBatchAborted` and `containsAbortMarker`), from KIP-98
//! (exactly-once delivery):
//!
//! - A Fetch response in `read_committed` carries, per partition, the *aborted transactions* that
//!   overlap the returned range: `(producer id, first offset)`. The client keeps them ordered by
//!   first offset (Java: a `PriorityQueue`). josefk sorts the list itself because some brokers send
//!   it unordered, which lets aborted records through (Redpanda; fixed in franz-go 1.21.4).
//! - Batches are walked in offset order. Before each batch that has a producer id, every listed
//!   aborted transaction whose first offset is `<=` the batch's last offset is taken off the list
//!   and its producer id joins the *aborted set*.
//! - A transactional data batch whose producer id is in the aborted set is skipped. An ABORT control
//!   marker removes its producer id from the set (the aborted transaction is over; that producer's
//!   later data belongs to a new transaction). Non-transactional batches are always delivered.
//! - Control batches (transaction markers and any other control record) are never handed to users.
//! - `read_uncommitted` delivers every non-control batch and ignores the list entirely, because some
//!   brokers send it even then (Redpanda: franz-go #758).
//! - Records below the fetch offset are not delivered (a compressed batch may start before the offset
//!   asked for), and, as a defence the broker should make unnecessary, nothing at or above the last
//!   stable offset (LSO) is delivered in `read_committed`.
//!
//! The filter is a plain value fed one [`FetchedBatch`] at a time; it reads no clock and does no I/O.
//! The caller maps its decoded batch headers (`protocol::records::RecordBatch` and its control
//! record) into [`FetchedBatch`].

use std::collections::HashSet;

use crate::record::IsolationLevel;

/// One entry of a Fetch response's `AbortedTransactions` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbortedTransaction {
    /// The producer whose transaction was aborted.
    pub producer_id: i64,
    /// The offset of the transaction's first record in this partition.
    pub first_offset: i64,
}

impl AbortedTransaction {
    /// An aborted-transaction entry.
    pub fn new(producer_id: i64, first_offset: i64) -> Self {
        AbortedTransaction {
            producer_id,
            first_offset,
        }
    }
}

/// What a control batch's record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlMarker {
    /// A transaction marker: the producer's transaction was aborted.
    Abort,
    /// A transaction marker: the producer's transaction was committed.
    Commit,
    /// Any other control record, or a control batch with no record left (compaction). Skipped
    /// without changing the aborted set, as Java's `containsAbortMarker` returns false for these.
    Other,
}

/// The header facts of one fetched batch the filter needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FetchedBatch {
    /// Offset of the batch's first record.
    pub base_offset: i64,
    /// Offset of the batch's last record (`base_offset + lastOffsetDelta`; kept even when
    /// compaction removed that record).
    pub last_offset: i64,
    /// The producer id; negative when the producer is neither idempotent nor transactional.
    pub producer_id: i64,
    /// Whether the batch belongs to a transaction (attribute bit 4).
    pub is_transactional: bool,
    /// `Some` for a control batch (attribute bit 5), with what its record says.
    pub control: Option<ControlMarker>,
}

impl FetchedBatch {
    /// A data batch covering `base_offset..=last_offset`.
    #[cfg(test)]
    pub fn data(base_offset: i64, last_offset: i64, producer_id: i64, transactional: bool) -> Self {
        FetchedBatch {
            base_offset,
            last_offset,
            producer_id,
            is_transactional: transactional,
            control: None,
        }
    }

    /// A control batch (transaction markers are single-record, transactional batches).
    #[cfg(test)]
    pub fn control(offset: i64, producer_id: i64, marker: ControlMarker) -> Self {
        FetchedBatch {
            base_offset: offset,
            last_offset: offset,
            producer_id,
            is_transactional: true,
            control: Some(marker),
        }
    }

    /// The offset after the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset.saturating_add(1)
    }
}

/// Why a batch is not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// Data of an aborted transaction.
    Aborted,
    /// A control batch: never handed to users.
    Control,
    /// Every record is below the fetch offset (already consumed).
    BeforeFetchOffset,
}

/// What to do with one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchAction {
    /// Hand the user the batch's records whose offsets are in `start..end`. The range is the batch
    /// clipped to the fetch offset below and, in `read_committed`, to the LSO above.
    Deliver {
        /// First deliverable offset (inclusive).
        start: i64,
        /// End of the deliverable offsets (exclusive).
        end: i64,
    },
    /// Drop the whole batch.
    Skip(SkipReason),
    /// The batch starts at or above the last stable offset: deliver neither it nor anything after
    /// it in this response, and fetch again from [`TransactionFilter::next_fetch_offset`] later.
    Stop,
}

impl BatchAction {
    /// Whether a record at `offset` of this batch goes to the user.
    #[cfg(test)]
    pub fn delivers(&self, offset: i64) -> bool {
        matches!(*self, BatchAction::Deliver { start, end } if start <= offset && offset < end)
    }
}

/// Whether a record at `offset` may be delivered given the partition's last stable offset.
///
/// In `read_committed`, records at or above the LSO belong to transactions that may still abort (or
/// sit behind one), so they must wait. A negative LSO means the broker did not report one; the
/// broker's own limit then stands. `read_uncommitted` readers are limited by the high watermark
/// only, which the broker enforces.
pub fn below_last_stable_offset(
    isolation: IsolationLevel,
    last_stable_offset: i64,
    offset: i64,
) -> bool {
    match isolation {
        IsolationLevel::ReadUncommitted => true,
        IsolationLevel::ReadCommitted => last_stable_offset < 0 || offset < last_stable_offset,
    }
}

/// The per-partition, per-response filter (Java `CompletedFetch`'s transaction bookkeeping).
///
/// Build one for each partition of each Fetch response, then call [`TransactionFilter::next_batch`]
/// for the batches in the order they appear.
#[derive(Debug, Clone)]
pub struct TransactionFilter {
    isolation: IsolationLevel,
    last_stable_offset: i64,
    /// Sorted by first offset; entries before `cursor` have been moved into `aborted_producers`.
    aborted: Vec<AbortedTransaction>,
    cursor: usize,
    /// Producers whose current transaction is aborted.
    aborted_producers: HashSet<i64>,
    next_fetch_offset: i64,
    stopped: bool,
}

impl TransactionFilter {
    /// A filter for one partition's data fetched from `fetch_offset`, with the response's
    /// `last_stable_offset` (negative if absent) and `AbortedTransactions` list (in any order; `None`
    /// on the wire is an empty list). In `read_uncommitted` the list is ignored.
    pub fn new(
        isolation: IsolationLevel,
        fetch_offset: i64,
        last_stable_offset: i64,
        aborted_transactions: impl IntoIterator<Item = AbortedTransaction>,
    ) -> Self {
        let mut aborted: Vec<AbortedTransaction> = match isolation {
            IsolationLevel::ReadCommitted => aborted_transactions.into_iter().collect(),
            IsolationLevel::ReadUncommitted => Vec::new(),
        };
        // The walk below relies on ascending first offsets; brokers do not all guarantee it.
        aborted.sort_by_key(|t| t.first_offset);
        TransactionFilter {
            isolation,
            last_stable_offset,
            aborted,
            cursor: 0,
            aborted_producers: HashSet::new(),
            next_fetch_offset: fetch_offset,
            stopped: false,
        }
    }

    /// Decides what to do with the next batch (batches must come in offset order).
    pub fn next_batch(&mut self, batch: &FetchedBatch) -> BatchAction {
        if self.stopped
            || !below_last_stable_offset(self.isolation, self.last_stable_offset, batch.base_offset)
        {
            // Nothing past the first unstable batch may be delivered, and the bookkeeping is not
            // advanced: the next fetch starts here again and will replay it.
            self.stopped = true;
            return BatchAction::Stop;
        }
        let committed = self.isolation == IsolationLevel::ReadCommitted;
        if committed && batch.producer_id >= 0 {
            self.consume_aborted_up_to(batch.last_offset);
            if batch.control == Some(ControlMarker::Abort) {
                // The aborted transaction ends here; this producer's later batches are a new one.
                self.aborted_producers.remove(&batch.producer_id);
            }
        }
        let action = if batch.control.is_some() {
            BatchAction::Skip(SkipReason::Control)
        } else if committed && batch.is_transactional && self.is_aborted(batch.producer_id) {
            BatchAction::Skip(SkipReason::Aborted)
        } else if batch.last_offset < self.next_fetch_offset {
            BatchAction::Skip(SkipReason::BeforeFetchOffset)
        } else {
            let start = batch.base_offset.max(self.next_fetch_offset);
            let mut end = batch.next_offset();
            if committed && self.last_stable_offset >= 0 {
                end = end.min(self.last_stable_offset);
            }
            BatchAction::Deliver { start, end }
        };
        // Java moves the position past skipped batches too, so the next fetch does not return them
        // again (a partition of only aborted data would otherwise never advance).
        let after = match action {
            BatchAction::Deliver { end, .. } => end,
            _ => batch.next_offset(),
        };
        self.next_fetch_offset = self.next_fetch_offset.max(after);
        action
    }

    /// Where the next fetch of this partition should start once every delivered record was
    /// consumed: past the last batch processed, or at the batch that hit the LSO.
    #[cfg(test)]
    pub fn next_fetch_offset(&self) -> i64 {
        self.next_fetch_offset
    }

    /// Whether `producer_id`'s current transaction is known to be aborted.
    pub fn is_aborted(&self, producer_id: i64) -> bool {
        self.aborted_producers.contains(&producer_id)
    }

    /// Whether a batch reached the LSO, so the rest of this response is held back.
    #[cfg(test)]
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Moves every listed transaction that began at or before `offset` into the aborted set.
    fn consume_aborted_up_to(&mut self, offset: i64) {
        while let Some(txn) = self.aborted.get(self.cursor) {
            if txn.first_offset > offset {
                break;
            }
            self.aborted_producers.insert(txn.producer_id);
            self.cursor += 1;
        }
    }
}

#[cfg(test)]
#[path = "tests/isolation.rs"]
mod tests;
