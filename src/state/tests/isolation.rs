//! Unit tests for [`super`]: the `read_committed` filter over fetched batches.

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
