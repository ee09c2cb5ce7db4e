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
    pub fn next_fetch_offset(&self) -> i64 {
        self.next_fetch_offset
    }

    /// Whether `producer_id`'s current transaction is known to be aborted.
    pub fn is_aborted(&self, producer_id: i64) -> bool {
        self.aborted_producers.contains(&producer_id)
    }

    /// Whether a batch reached the LSO, so the rest of this response is held back.
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
mod tests {
    use super::*;
    use IsolationLevel::{ReadCommitted, ReadUncommitted};

    const P1: i64 = 1000;
    const P2: i64 = 2000;
    const P3: i64 = 3000;

    fn txn(pid: i64, base: i64, last: i64) -> FetchedBatch {
        FetchedBatch::data(base, last, pid, true)
    }
    fn plain(base: i64, last: i64) -> FetchedBatch {
        FetchedBatch::data(base, last, -1, false)
    }
    fn commit(pid: i64, at: i64) -> FetchedBatch {
        FetchedBatch::control(at, pid, ControlMarker::Commit)
    }
    fn abort(pid: i64, at: i64) -> FetchedBatch {
        FetchedBatch::control(at, pid, ControlMarker::Abort)
    }

    /// Runs the batches through a filter and returns every delivered offset.
    fn delivered(filter: &mut TransactionFilter, batches: &[FetchedBatch]) -> Vec<i64> {
        let mut out = Vec::new();
        for b in batches {
            let action = filter.next_batch(b);
            out.extend((b.base_offset..=b.last_offset).filter(|&o| action.delivers(o)));
        }
        out
    }

    /// Three producers interleaved: P1 commits 0..=1, P2 aborts 2..=3 and 6, P3 commits 5,
    /// P1 aborts 8..=9, plus non-transactional records at 4 and 12.
    fn interleaved() -> (Vec<FetchedBatch>, Vec<AbortedTransaction>) {
        let batches = vec![
            txn(P1, 0, 1),
            txn(P2, 2, 3),
            plain(4, 4),
            txn(P3, 5, 5),
            txn(P2, 6, 6),
            commit(P1, 7),
            txn(P1, 8, 9),
            abort(P2, 10),
            commit(P3, 11),
            plain(12, 12),
            abort(P1, 13),
        ];
        let aborted = vec![
            AbortedTransaction::new(P2, 2),
            AbortedTransaction::new(P1, 8),
        ];
        (batches, aborted)
    }

    #[test]
    fn interleaved_transactions_of_three_producers() {
        let (batches, aborted) = interleaved();
        let mut f = TransactionFilter::new(ReadCommitted, 0, 14, aborted);
        assert_eq!(delivered(&mut f, &batches), vec![0, 1, 4, 5, 12]);
        assert_eq!(f.next_fetch_offset(), 14);
        assert!(
            !f.is_aborted(P1) && !f.is_aborted(P2),
            "markers cleared the set"
        );
    }

    #[test]
    fn per_batch_actions_and_aborted_set_evolution() {
        let (batches, aborted) = interleaved();
        let mut f = TransactionFilter::new(ReadCommitted, 0, -1, aborted);
        let deliver = |s, e| BatchAction::Deliver { start: s, end: e };
        let skip = BatchAction::Skip;
        let expected = [
            deliver(0, 2),
            skip(SkipReason::Aborted),
            deliver(4, 5),
            deliver(5, 6),
            skip(SkipReason::Aborted),
            skip(SkipReason::Control),
            skip(SkipReason::Aborted),
            skip(SkipReason::Control),
            skip(SkipReason::Control),
            deliver(12, 13),
            skip(SkipReason::Control),
        ];
        for (i, (b, want)) in batches.iter().zip(expected).enumerate() {
            assert_eq!(f.next_batch(b), want, "batch {i} at {}", b.base_offset);
            if b.base_offset == 8 {
                assert!(f.is_aborted(P1) && f.is_aborted(P2));
            }
            if b.base_offset == 10 {
                assert!(
                    !f.is_aborted(P2) && f.is_aborted(P1),
                    "P2's marker removes only P2"
                );
            }
        }
    }

    #[test]
    fn unsorted_aborted_list_gives_the_same_result() {
        let (batches, mut aborted) = interleaved();
        aborted.reverse();
        let mut f = TransactionFilter::new(ReadCommitted, 0, 14, aborted.clone());
        assert_eq!(delivered(&mut f, &batches), vec![0, 1, 4, 5, 12]);
        // Without the client-side sort, the walk would stop at P1's entry (8) when processing
        // offset 2..=3 and let P2's aborted records through: check the sort is what saves us.
        let mut unsorted = TransactionFilter::new(ReadCommitted, 0, 14, Vec::new());
        unsorted.aborted = aborted;
        assert!(delivered(&mut unsorted, &batches).contains(&2));
    }

    #[test]
    fn control_batches_are_never_delivered_in_either_mode() {
        for level in [ReadCommitted, ReadUncommitted] {
            let mut f = TransactionFilter::new(level, 0, -1, Vec::new());
            for b in [
                commit(P1, 0),
                abort(P1, 1),
                FetchedBatch::control(2, -1, ControlMarker::Other),
            ] {
                assert_eq!(f.next_batch(&b), BatchAction::Skip(SkipReason::Control));
            }
            assert_eq!(
                f.next_fetch_offset(),
                3,
                "skipped markers still advance the position"
            );
        }
    }

    #[test]
    fn read_uncommitted_delivers_all_data_and_ignores_the_list() {
        let (batches, aborted) = interleaved();
        // Redpanda sends the list even for read_uncommitted, and an LSO below the data.
        let mut f = TransactionFilter::new(ReadUncommitted, 0, 3, aborted);
        assert_eq!(
            delivered(&mut f, &batches),
            vec![0, 1, 2, 3, 4, 5, 6, 8, 9, 12]
        );
        assert!(!f.is_aborted(P2));
    }

    #[test]
    fn transactional_batch_of_a_producer_not_in_the_set_is_delivered() {
        let aborted = vec![AbortedTransaction::new(P1, 0)];
        let mut f = TransactionFilter::new(ReadCommitted, 0, -1, aborted);
        assert_eq!(
            delivered(&mut f, &[txn(P1, 0, 0), txn(P2, 1, 2), abort(P1, 3)]),
            vec![1, 2]
        );
    }

    #[test]
    fn non_transactional_batches_deliver_even_with_an_aborted_producer_id() {
        // An idempotent (non-transactional) batch carries a producer id too; it is never aborted.
        let aborted = vec![AbortedTransaction::new(P1, 0)];
        let mut f = TransactionFilter::new(ReadCommitted, 0, -1, aborted);
        let idem = FetchedBatch::data(1, 1, P1, false);
        assert_eq!(delivered(&mut f, &[txn(P1, 0, 0), idem]), vec![1]);
        assert!(f.is_aborted(P1));
    }

    #[test]
    fn several_aborted_transactions_of_one_producer_and_a_commit_between() {
        // P1: aborted 0..=1, marker 2; committed 3..=4, marker 5; aborted 6, marker 7; then 8.
        let aborted = vec![
            AbortedTransaction::new(P1, 6),
            AbortedTransaction::new(P1, 0),
        ];
        let batches = [
            txn(P1, 0, 1),
            abort(P1, 2),
            txn(P1, 3, 4),
            commit(P1, 5),
            txn(P1, 6, 6),
            abort(P1, 7),
            txn(P1, 8, 8),
        ];
        let mut f = TransactionFilter::new(ReadCommitted, 0, 9, aborted);
        assert_eq!(delivered(&mut f, &batches), vec![3, 4, 8]);
    }

    #[test]
    fn response_starting_mid_transaction() {
        // Fetch from 5: P1's aborted transaction began at 2 (before the fetch offset) and P2's
        // committed one at 3; the broker lists P1's because it overlaps the returned range.
        let aborted = vec![AbortedTransaction::new(P1, 2)];
        let batches = [
            txn(P1, 5, 6),
            txn(P2, 7, 7),
            abort(P1, 8),
            commit(P2, 9),
            txn(P1, 10, 10),
        ];
        let mut f = TransactionFilter::new(ReadCommitted, 5, 11, aborted);
        assert_eq!(delivered(&mut f, &batches), vec![7, 10]);
    }

    #[test]
    fn records_below_the_fetch_offset_are_not_redelivered() {
        // A compressed batch 0..=9 returned for a fetch at 4; a wholly older batch is skipped.
        let mut f = TransactionFilter::new(ReadCommitted, 4, -1, Vec::new());
        assert_eq!(
            f.next_batch(&plain(0, 2)),
            BatchAction::Skip(SkipReason::BeforeFetchOffset)
        );
        assert_eq!(
            f.next_batch(&plain(0, 9)),
            BatchAction::Deliver { start: 4, end: 10 }
        );
        assert_eq!(f.next_fetch_offset(), 10);
    }

    #[test]
    fn nothing_at_or_above_the_lso_is_delivered_in_read_committed() {
        assert!(below_last_stable_offset(ReadCommitted, 10, 9));
        assert!(!below_last_stable_offset(ReadCommitted, 10, 10));
        assert!(below_last_stable_offset(ReadCommitted, -1, 1 << 40));
        assert!(below_last_stable_offset(ReadUncommitted, 10, 50));

        let mut f = TransactionFilter::new(ReadCommitted, 0, 5, Vec::new());
        assert_eq!(
            f.next_batch(&plain(0, 6)),
            BatchAction::Deliver { start: 0, end: 5 },
            "a batch straddling the LSO is clipped"
        );
        assert_eq!(f.next_batch(&txn(P1, 7, 8)), BatchAction::Stop);
        // Once stopped, even a (hypothetical) later stable-looking batch is held back.
        assert_eq!(f.next_batch(&plain(9, 9)), BatchAction::Stop);
        assert!(f.is_stopped());
        assert_eq!(f.next_fetch_offset(), 5);
    }

    #[test]
    fn a_partition_of_only_aborted_data_still_advances() {
        let aborted = vec![AbortedTransaction::new(P1, 100)];
        let mut f = TransactionFilter::new(ReadCommitted, 100, 103, aborted);
        assert!(delivered(&mut f, &[txn(P1, 100, 101), abort(P1, 102)]).is_empty());
        assert_eq!(f.next_fetch_offset(), 103);
    }

    #[test]
    fn randomized_interleavings_deliver_exactly_the_committed_records() {
        // Deterministic xorshift: random producers writing transactional batches and ending their
        // transactions with commit or abort; the filter must deliver exactly the committed data.
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        for _ in 0..200 {
            let mut offset = 0i64;
            let mut open: Vec<(i64, i64, Vec<i64>)> = Vec::new(); // (pid, first, offsets)
            let (mut batches, mut aborted, mut committed) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..40 {
                let pid = 10 + next(4) as i64;
                let pos = open.iter().position(|t| t.0 == pid);
                if let (Some(i), true) = (pos, next(3) == 0) {
                    let (pid, first, offs) = open.remove(i);
                    if next(2) == 0 {
                        batches.push(commit(pid, offset));
                        committed.extend(offs);
                    } else {
                        batches.push(abort(pid, offset));
                        aborted.push(AbortedTransaction::new(pid, first));
                    }
                    offset += 1;
                } else if next(5) == 0 {
                    batches.push(plain(offset, offset));
                    committed.push(offset);
                    offset += 1;
                } else {
                    let len = 1 + next(3) as i64;
                    batches.push(txn(pid, offset, offset + len - 1));
                    match pos {
                        Some(i) => open[i].2.extend(offset..offset + len),
                        None => open.push((pid, offset, (offset..offset + len).collect())),
                    }
                    offset += len;
                }
            }
            // Close what is still open so everything is below the LSO.
            for (pid, first, _) in open.drain(..) {
                batches.push(abort(pid, offset));
                aborted.push(AbortedTransaction::new(pid, first));
                offset += 1;
            }
            // Shuffle the list to mimic an unordered broker.
            for i in (1..aborted.len()).rev() {
                aborted.swap(i, next(i as u64 + 1) as usize);
            }
            committed.sort_unstable();
            let mut f = TransactionFilter::new(ReadCommitted, 0, offset, aborted);
            assert_eq!(delivered(&mut f, &batches), committed);
            assert_eq!(f.next_fetch_offset(), offset);
        }
    }
}
