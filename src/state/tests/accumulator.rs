//! Unit tests for [`super`]: batching, draining and expiry of records per partition.

use super::*;
use crate::state::sequence::ProducerIdAndEpoch;

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("t", p)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config() -> AccumulatorConfig {
    AccumulatorConfig {
        batch_size: 200,
        linger: ms(10),
        buffer_memory: 1000,
        delivery_timeout: ms(1000),
        retry_backoff: ms(100),
        retry_backoff_max: ms(400),
        linger_slack: Duration::ZERO,
    }
}

fn appended<T: std::fmt::Debug>(r: AppendResult<T>) -> Appended {
    match r {
        AppendResult::Appended(a) => a,
        other => panic!("not appended: {other:?}"),
    }
}

/// Stamps consecutive sequences, like an idempotence state that never says no.
struct Stamp(i32);
impl DrainGate for Stamp {
    fn may_drain<T>(&mut self, _: &ProducerBatch<T>) -> bool {
        true
    }
    fn on_drain<T>(&mut self, b: &mut ProducerBatch<T>) {
        if b.sequence().is_none() {
            let producer = ProducerIdAndEpoch::new(1, 0);
            b.set_sequence(Some(BatchSequence {
                producer,
                base_sequence: self.0,
            }));
            self.0 += b.record_count();
        }
    }
}

fn seq<T>(b: &ProducerBatch<T>) -> i32 {
    b.sequence().unwrap().base_sequence
}

#[test]
fn records_fill_a_batch_then_a_new_one_opens() {
    let t0 = Instant::now();
    let mut acc = Accumulator::new(config());
    let a = appended(acc.append(&tp(0), 1, 50, t0));
    assert!(a.new_batch && !a.batch_full && !a.tail_full);
    assert_eq!(a.appended_bytes, RECORD_BATCH_OVERHEAD + 50);
    let b = appended(acc.append(&tp(0), 2, 50, t0));
    assert_eq!(
        (b.batch, b.new_batch, b.appended_bytes),
        (a.batch, false, 50)
    );
    // 61 + 3 * 50 > 200: the third record opens a second batch, the first is now sendable.
    let c = appended(acc.append(&tp(0), 3, 50, t0));
    assert!(c.new_batch && c.batch_full && c.batch != a.batch);
    assert_eq!(acc.queued_batches(&tp(0)), 2);
    assert_eq!(acc.used_memory(), 400);
    // A record bigger than batch.size gets a batch of its own, full at once.
    let big = appended(acc.append(&tp(1), 4, 500, t0));
    assert!(big.new_batch && big.tail_full && big.batch_full);
    assert_eq!(acc.used_memory(), 400 + 561);
}

#[test]
fn queue_lengths_count_batches_per_partition_asked_for() {
    let t0 = Instant::now();
    let mut acc = Accumulator::new(config());
    for r in 0..3 {
        appended(acc.append(&tp(2), r, 150, t0));
    }
    appended(acc.append(&tp(0), 9, 50, t0));
    let mut out = vec![(7, 7)];
    // Partition 1 never had a batch, 5 is beyond every queue: both count as empty.
    acc.queue_lengths("t", &[0, 1, 2, 5], &mut out);
    assert_eq!(out, vec![(0, 1), (1, 0), (2, 3), (5, 0)]);
    acc.queue_lengths("other", &[0], &mut out);
    assert_eq!(out, vec![(0, 0)]);
}

#[test]
fn the_memory_bound_hands_records_back_until_memory_is_released() {
    let t0 = Instant::now();
    let mut acc = Accumulator::new(config());
    for p in 0..5 {
        appended(acc.append(&tp(p), p, 10, t0));
    }
    assert!(!acc.memory_short());
    match acc.append(&tp(5), 99, 10, t0) {
        AppendResult::NoMemory(r) => assert_eq!(r, 99),
        other => panic!("{other:?}"),
    }
    assert!(acc.memory_short(), "a refused append leaves memory short");
    // Appends that fit an open batch still work.
    appended(acc.append(&tp(0), 100, 10, t0));
    // Someone waits for memory: everything is sendable before linger.
    let ready = acc.ready(|_| Some(1), t0);
    assert_eq!(ready.ready_nodes, BTreeSet::from([1]));
    let drained = acc.drain(1, &[tp(0)], 10_000, t0, &mut NoGate);
    assert_eq!(
        acc.release(drained.into_iter().next().unwrap()),
        vec![0, 100]
    );
    appended(acc.append(&tp(5), 99, 10, t0));
    assert!(
        !acc.memory_short(),
        "memory reserved again: no longer short"
    );
    assert!(
        acc.ready(|_| Some(1), t0).ready_nodes.is_empty(),
        "no waiter any more"
    );
    assert!(matches!(
        acc.append(&tp(9), 7, 2000, t0),
        AppendResult::TooLarge(7)
    ));
}

#[test]
fn ready_waits_for_linger_and_says_when_to_look_again() {
    let t0 = Instant::now();
    let mut acc = Accumulator::new(config());
    appended(acc.append(&tp(0), (), 10, t0));
    appended(acc.append(&TopicPartition::new("orphan", 0), (), 10, t0));
    let leader = |t: &TopicPartition| (t.topic == "t").then_some(1);
    let r = acc.ready(leader, t0 + ms(3));
    assert!(r.ready_nodes.is_empty());
    assert_eq!(r.next_check_delay, Some(ms(7)));
    assert_eq!(
        r.unknown_leader_topics,
        BTreeSet::from(["orphan".to_owned()])
    );
    assert_eq!(
        acc.ready(leader, t0 + ms(10)).ready_nodes,
        BTreeSet::from([1])
    );
    // A full batch does not linger.
    appended(acc.append(&tp(1), (), 300, t0));
    let r = acc.ready(|t| Some(t.partition + 1), t0);
    assert_eq!(r.ready_nodes, BTreeSet::from([2]));
}

#[test]
fn linger_slack_sends_a_lingering_batch_early_but_never_shortens_a_retry_backoff() {
    let t0 = Instant::now();
    let us = Duration::from_micros;
    let mut acc = Accumulator::new(AccumulatorConfig {
        linger_slack: us(500),
        buffer_memory: 10_000,
        ..config()
    });
    appended(acc.append(&tp(0), 0, 10, t0));
    // linger 10 ms, slack 0.5 ms: sendable from 9.5 ms, and the sender is told to look then.
    let r = acc.ready(|_| Some(1), t0 + ms(3));
    assert!(r.ready_nodes.is_empty());
    assert_eq!(r.next_check_delay, Some(us(6_500)));
    assert!(acc
        .ready(|_| Some(1), t0 + us(9_499))
        .ready_nodes
        .is_empty());
    assert_eq!(acc.ready(|_| Some(1), t0 + us(9_500)).ready_nodes.len(), 1);
    // A retry waits its full backoff (100 ms): ready and drain agree, so a node reported ready
    // always has something to drain.
    let sent = acc.drain(1, &[tp(0)], 10_000, t0 + ms(10), &mut NoGate);
    let s1 = t0 + ms(20);
    acc.reenqueue(sent.into_iter().next().unwrap(), s1);
    let r = acc.ready(|_| Some(1), s1 + us(99_800));
    assert!(r.ready_nodes.is_empty());
    assert_eq!(r.next_check_delay, Some(us(200)));
    assert_eq!(acc.ready(|_| Some(1), s1 + ms(100)).ready_nodes.len(), 1);
    assert_eq!(
        acc.drain(1, &[tp(0)], 10_000, s1 + ms(100), &mut NoGate)
            .len(),
        1
    );
}

#[test]
fn flush_and_close_make_everything_sendable() {
    let t0 = Instant::now();
    let mut acc = Accumulator::new(config());
    appended(acc.append(&tp(0), (), 10, t0));
    assert!(acc.ready(|_| Some(1), t0).ready_nodes.is_empty());
    acc.begin_flush();
    assert_eq!(acc.ready(|_| Some(1), t0).ready_nodes.len(), 1);
    acc.end_flush();
    assert!(acc.ready(|_| Some(1), t0).ready_nodes.is_empty());
    acc.close();
    assert_eq!(acc.ready(|_| Some(1), t0).ready_nodes.len(), 1);
    assert!(matches!(
        acc.append(&tp(0), (), 10, t0),
        AppendResult::Closed(())
    ));
}

#[test]
fn drain_takes_one_batch_per_partition_within_the_request_size_and_rotates() {
    let t0 = Instant::now();
    let mut acc = Accumulator::new(AccumulatorConfig {
        buffer_memory: 10_000,
        ..config()
    });
    let parts = [tp(0), tp(1), tp(2)];
    for p in &parts {
        for _ in 0..2 {
            appended(acc.append(p, (), 150, t0));
        }
    }
    let all = acc.drain(1, &parts, 10_000, t0, &mut NoGate);
    let tps: Vec<_> = all.iter().map(|b| b.tp().partition).collect();
    assert_eq!(tps, vec![0, 1, 2], "one batch per partition");
    // Room for one 211-byte batch only: each drain continues where the last one stopped.
    let first = acc.drain(1, &parts, 300, t0, &mut NoGate);
    let second = acc.drain(1, &parts, 300, t0, &mut NoGate);
    assert_eq!(first.len(), 1);
    assert_eq!(second.len(), 1);
    assert_ne!(first[0].tp(), second[0].tp());
    // A single batch larger than the limit still goes, alone.
    let rest = acc.drain(1, &parts, 10, t0, &mut NoGate);
    assert_eq!(rest.len(), 1);
    assert!(!acc.has_undrained());
}

#[test]
fn drained_batches_are_closed_to_appends() {
    let t0 = Instant::now();
    let mut acc = Accumulator::new(config());
    let a = appended(acc.append(&tp(0), 1, 10, t0));
    let drained = acc.drain(1, &[tp(0)], 10_000, t0, &mut NoGate);
    assert_eq!(drained[0].id(), a.batch);
    let b = appended(acc.append(&tp(0), 2, 10, t0));
    assert!(b.new_batch);
}

#[test]
fn retried_batches_return_in_sequence_order_and_back_off() {
    let t0 = Instant::now();
    let mut acc = Accumulator::new(config());
    let mut gate = Stamp(0);
    let mut sent = Vec::new();
    for i in 0..3 {
        appended(acc.append(&tp(0), i, 150, t0));
        sent.extend(acc.drain(1, &[tp(0)], 10_000, t0, &mut gate));
    }
    appended(acc.append(&tp(0), 9, 10, t0));
    let s1 = t0 + ms(5);
    // Responses arrive out of order; the queue still ends up 0, 1, 2, then the new batch.
    let b2 = sent.pop().unwrap();
    let b0 = sent.remove(0);
    let b1 = sent.pop().unwrap();
    acc.reenqueue(b2, s1);
    acc.reenqueue(b0, s1);
    acc.reenqueue(b1, s1);
    let order: Vec<Option<i32>> = acc.queues["t"][0]
        .iter()
        .map(|b| b.sequence().map(|s| s.base_sequence))
        .collect();
    assert_eq!(order, vec![Some(0), Some(1), Some(2), None]);
    // First retry waits retry.backoff.ms (100 ms) from the re-enqueue.
    let r = acc.ready(|_| Some(1), s1 + ms(50));
    assert!(r.ready_nodes.is_empty());
    assert_eq!(r.next_check_delay, Some(ms(50)));
    assert!(acc
        .drain(1, &[tp(0)], 10_000, s1 + ms(50), &mut gate)
        .is_empty());
    let again = acc.drain(1, &[tp(0)], 10_000, s1 + ms(100), &mut gate);
    assert_eq!(seq(&again[0]), 0);
    assert_eq!(again[0].attempts(), 1);
    // Second retry of the same batch waits twice as long.
    let s2 = s1 + ms(100);
    acc.reenqueue(again.into_iter().next().unwrap(), s2);
    assert!(acc.ready(|_| Some(1), s2 + ms(150)).ready_nodes.is_empty());
    assert_eq!(acc.ready(|_| Some(1), s2 + ms(200)).ready_nodes.len(), 1);
}

#[test]
fn expiry_fails_every_batch_past_the_delivery_timeout_unsure_ones_included() {
    let t0 = Instant::now();
    let mut acc = Accumulator::new(config());
    let mut gate = Stamp(0);
    appended(acc.append(&tp(0), "sent", 150, t0));
    let mut b = acc.drain(1, &[tp(0)], 10_000, t0, &mut gate).pop().unwrap();
    b.mark_outcome_unknown();
    b.set_last_error("lost".into());
    acc.reenqueue(b, t0 + ms(1));
    appended(acc.append(&tp(0), "behind", 150, t0 + ms(2)));
    appended(acc.append(&tp(1), "other", 10, t0 + ms(3)));
    // The unsure batch's deadline counts from its creation, not from its retry.
    assert_eq!(acc.next_expiry(), Some(t0 + ms(1000)));
    assert!(acc.expire(t0 + ms(999)).is_empty());
    let expired = acc.expire(t0 + ms(1000));
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].records(), ["sent"]);
    // It says it may have been written, and why its last attempt failed.
    assert!(expired[0].outcome_unknown());
    assert_eq!(expired[0].last_error(), Some("lost"));
    let expired = acc.expire(t0 + ms(2000));
    let records: Vec<_> = expired.iter().map(|b| b.records()[0]).collect();
    assert_eq!(records, ["behind", "other"]);
    assert!(!expired[0].outcome_unknown());
    assert_eq!(acc.next_expiry(), None);
}

#[test]
fn aborting_drops_only_unsent_batches() {
    let t0 = Instant::now();
    let mut acc = Accumulator::new(config());
    appended(acc.append(&tp(0), 1, 150, t0));
    let sent = acc
        .drain(1, &[tp(0)], 10_000, t0, &mut Stamp(0))
        .pop()
        .unwrap();
    acc.reenqueue(sent, t0);
    appended(acc.append(&tp(0), 2, 150, t0));
    let aborted = acc.abort_undrained();
    assert_eq!(aborted.len(), 1);
    assert_eq!(aborted[0].records(), [2]);
    assert_eq!(acc.queued_batches(&tp(0)), 1);
    assert_eq!(acc.abort_all().len(), 1);
    assert!(!acc.has_undrained());
}

#[test]
fn muted_partitions_are_neither_ready_nor_drained() {
    let t0 = Instant::now();
    let mut acc = Accumulator::new(config());
    appended(acc.append(&tp(0), (), 300, t0));
    acc.mute(&tp(0));
    assert!(acc.ready(|_| Some(1), t0).ready_nodes.is_empty());
    assert!(acc.drain(1, &[tp(0)], 10_000, t0, &mut NoGate).is_empty());
    acc.unmute(&tp(0));
    assert_eq!(acc.drain(1, &[tp(0)], 10_000, t0, &mut NoGate).len(), 1);
}

#[test]
fn a_refused_batch_splits_in_half_by_bytes_and_goes_back_first_in_record_order() {
    let t0 = Instant::now();
    let mut acc = Accumulator::new(config());
    for (r, size) in [(1, 10), (2, 60), (3, 10), (4, 10)] {
        appended(acc.append(&tp(0), r, size, t0));
    }
    appended(acc.append(&tp(0), 5, 150, t0)); // does not fit: a second batch
    assert_eq!(acc.used_memory(), 200 + RECORD_BATCH_OVERHEAD + 150);
    let t1 = t0 + ms(50);
    let mut big = acc.drain(1, &[tp(0)], usize::MAX, t1, &mut NoGate);
    let big = big.pop().unwrap();
    assert_eq!(big.records(), &[1, 2, 3, 4]);
    acc.reenqueue(big, t1);
    let big = acc.drain(1, &[tp(0)], usize::MAX, t1 + ms(100), &mut NoGate);
    let big = big.into_iter().next().unwrap();
    assert_eq!(big.attempts(), 1);
    let original = big.id();

    let parts = acc.split_and_reenqueue(big).ok().unwrap();
    // 90 record bytes: the first part stays within 45, and every part holds a record.
    assert_eq!(parts.len(), 2);
    assert_eq!((parts[0].1, parts[1].1), (1, 3));
    assert!(parts.iter().all(|(id, _)| *id != original));
    assert_eq!(
        acc.used_memory(),
        411,
        "the parts hold the original's memory"
    );
    assert_eq!(acc.queued_batches(&tp(0)), 3);
    // Never tried: no backoff, sendable at once (ahead of the later batch).
    let now = t1 + ms(100);
    assert!(acc.ready(|_| Some(1), now).ready_nodes.contains(&1));
    let a = acc
        .drain(1, &[tp(0)], usize::MAX, now, &mut NoGate)
        .pop()
        .unwrap();
    let b = acc
        .drain(1, &[tp(0)], usize::MAX, now, &mut NoGate)
        .pop()
        .unwrap();
    let c = acc
        .drain(1, &[tp(0)], usize::MAX, now, &mut NoGate)
        .pop()
        .unwrap();
    assert_eq!((a.id(), b.id()), (parts[0].0, parts[1].0));
    assert_eq!(
        (a.records(), b.records(), c.records()),
        (&[1][..], &[2, 3, 4][..], &[5][..])
    );
    assert_eq!(
        (a.size_bytes(), b.size_bytes()),
        (RECORD_BATCH_OVERHEAD + 10, RECORD_BATCH_OVERHEAD + 80)
    );
    assert_eq!((a.attempts(), b.attempts()), (0, 0));
    assert_eq!((a.created(), b.created()), (t0, t0));

    // The second part splits again; a lone record cannot.
    let parts = acc.split_and_reenqueue(b).ok().unwrap();
    assert_eq!((parts[0].1, parts[1].1), (1, 2));
    let d = acc
        .drain(1, &[tp(0)], usize::MAX, now, &mut NoGate)
        .pop()
        .unwrap();
    assert_eq!(d.records(), &[2]);
    let lone = acc.split_and_reenqueue(d).err().unwrap();
    assert_eq!(lone.records(), &[2]);
    let e = acc
        .drain(1, &[tp(0)], usize::MAX, now, &mut NoGate)
        .pop()
        .unwrap();
    assert_eq!(e.records(), &[3, 4]);
    for batch in [a, c, lone, e] {
        acc.release(batch);
    }
    assert_eq!(acc.used_memory(), 0, "every byte comes back exactly once");
}

#[test]
fn split_parts_keep_the_original_sequence_range_and_sequence_order() {
    let t0 = Instant::now();
    let mut acc = Accumulator::new(config());
    let mut gate = Stamp(10);
    for r in 0..3 {
        appended(acc.append(&tp(0), r, 20, t0));
    }
    let big = acc
        .drain(1, &[tp(0)], usize::MAX, t0, &mut gate)
        .pop()
        .unwrap();
    assert_eq!(seq(&big), 10);
    appended(acc.append(&tp(0), 9, 20, t0));
    let later = acc
        .drain(1, &[tp(0)], usize::MAX, t0, &mut gate)
        .pop()
        .unwrap();
    assert_eq!(seq(&later), 13);
    // The later batch came back for a retry before the split.
    acc.reenqueue(later, t0);
    appended(acc.append(&tp(0), 10, 20, t0)); // not drained yet: no sequence
    let mut big = big;
    big.mark_outcome_unknown();
    let parts = acc.split_and_reenqueue(big).ok().unwrap();
    assert_eq!((parts[0].1, parts[1].1), (1, 2));
    let now = t0 + ms(1000);
    let order: Vec<_> = (0..4)
        .map(|_| {
            acc.drain(1, &[tp(0)], usize::MAX, now, &mut gate)
                .pop()
                .unwrap()
        })
        .collect();
    let seqs: Vec<_> = order
        .iter()
        .map(|b| b.sequence().map(|s| s.base_sequence))
        .collect();
    assert_eq!(seqs, vec![Some(10), Some(11), Some(13), Some(14)]);
    assert_eq!(order[0].records(), &[0]);
    assert_eq!(order[1].records(), &[1, 2]);
    assert!(order[0].outcome_unknown() && order[1].outcome_unknown());
    assert!(!order[2].outcome_unknown());
}
