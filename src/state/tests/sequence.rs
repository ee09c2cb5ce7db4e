//! Unit tests for [`super`]: sequence stamping and the decision on every produce outcome.

use super::*;
use crate::error::BrokerRef;
use crate::state::accumulator::{Accumulator, AccumulatorConfig, AppendResult};
use std::time::{Duration, Instant};
use ResponseError as E;

/// An accumulator and an idempotence state driven together, on a fake clock.
struct Rig {
    acc: Accumulator<u32>,
    idem: IdempotenceState,
    now: Instant,
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("t", p)
}

impl Rig {
    fn new(transactional: bool) -> Self {
        let mut idem = IdempotenceState::new(transactional);
        idem.set_producer_id(ProducerIdAndEpoch::new(7, 0), false);
        let config = AccumulatorConfig {
            retry_backoff: Duration::ZERO,
            retry_backoff_max: Duration::ZERO,
            delivery_timeout: Duration::from_secs(1),
            ..AccumulatorConfig::default()
        };
        Rig {
            acc: Accumulator::new(config),
            idem,
            now: Instant::now(),
        }
    }
    /// Appends `records` records to a fresh batch of `tp`.
    fn batch(&mut self, tp: &TopicPartition, records: u32) {
        for r in 0..records {
            assert!(matches!(
                self.acc.append(tp, r, 10, self.now),
                AppendResult::Appended(_)
            ));
        }
    }
    fn drain(&mut self, tp: &TopicPartition) -> Option<ProducerBatch<u32>> {
        self.acc
            .drain(
                1,
                std::slice::from_ref(tp),
                usize::MAX,
                self.now,
                &mut self.idem,
            )
            .pop()
    }
    /// Appends and drains one batch of `records` records.
    fn send(&mut self, tp: &TopicPartition, records: u32) -> ProducerBatch<u32> {
        self.batch(tp, records);
        self.drain(tp).expect("drains")
    }
    fn respond(&mut self, b: &ProducerBatch<u32>, r: PartitionResponse) -> Decision {
        self.idem.on_response(b.tp(), b.id(), &r, true)
    }
    fn entry(&self, tp: &TopicPartition) -> &PartitionSequence {
        self.idem.partition(tp).unwrap()
    }
}

fn base(b: &ProducerBatch<u32>) -> i32 {
    b.sequence().unwrap().base_sequence
}

fn is_retry(d: &Decision, unknown: bool) -> bool {
    matches!(d, Decision::Retry { outcome_unknown } if *outcome_unknown == unknown)
}

fn failed_class(d: &Decision) -> Option<(ErrorClass, bool)> {
    match d {
        Decision::Fail {
            error,
            outcome_unknown,
        } => Some((error.class(), *outcome_unknown)),
        _ => None,
    }
}

#[test]
fn sequence_arithmetic_wraps_like_the_broker() {
    assert_eq!(increment_sequence(i32::MAX, 1), 0);
    assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
    assert_eq!(increment_sequence(5, 3), 8);
    assert_eq!(decrement_sequence(0, 1), i32::MAX);
    assert_eq!(decrement_sequence(1, 3), i32::MAX - 1);
    assert!(sequence_precedes(i32::MAX, 0));
    assert!(sequence_precedes(3, 4) && !sequence_precedes(4, 3) && !sequence_precedes(4, 4));
}

/// A success whose base offset no batch can have (-1, negative, or a last record past
/// `i64::MAX`) completes the batch with its offset unknown, as acks=0 does; no arithmetic
/// overflows (which would panic under the producer's lock and poison it), and the offset the
/// partition last acked keeps its last real value.
#[test]
fn an_impossible_base_offset_completes_the_batch_with_its_offset_unknown() {
    let mut rig = Rig::new(false);
    let a = rig.send(&tp(0), 3);
    let d = rig.respond(&a, PartitionResponse::ok(10));
    assert!(
        matches!(
            d,
            Decision::Complete {
                base_offset: Some(10)
            }
        ),
        "{d:?}"
    );
    for base_offset in [i64::MAX - 3, i64::MAX, -1, -7, i64::MIN] {
        let b = rig.send(&tp(0), 5);
        let d = rig.respond(&b, PartitionResponse::ok(base_offset));
        assert!(
            matches!(d, Decision::Complete { base_offset: None }),
            "{base_offset}: {d:?}"
        );
        assert_eq!(rig.entry(&tp(0)).last_acked_offset(), Some(12));
    }
    assert_eq!(rig.entry(&tp(0)).next_sequence(), 28);
    assert_eq!(rig.entry(&tp(0)).first_in_flight_sequence(), None);
    // The last offset that fits is a real one.
    let c = rig.send(&tp(0), 4);
    let d = rig.respond(&c, PartitionResponse::ok(i64::MAX - 3));
    assert!(
        matches!(d, Decision::Complete { base_offset: Some(o) } if o == i64::MAX - 3),
        "{d:?}"
    );
    assert_eq!(rig.entry(&tp(0)).last_acked_offset(), Some(i64::MAX));
    assert_eq!(written_offset(0, 1), Some(0));
    assert_eq!(written_offset(i64::MAX, 1), Some(i64::MAX));
    assert_eq!(written_offset(i64::MAX, 2), None);
}

#[test]
fn sequences_are_stamped_at_drain_and_acks_advance_the_partition() {
    let mut rig = Rig::new(false);
    let a = rig.send(&tp(0), 3);
    let b = rig.send(&tp(0), 2);
    assert_eq!((base(&a), base(&b)), (0, 3));
    assert_eq!(
        a.sequence().unwrap().producer,
        ProducerIdAndEpoch::new(7, 0)
    );
    assert_eq!(rig.entry(&tp(0)).next_sequence(), 5);
    assert_eq!(rig.entry(&tp(0)).first_in_flight_sequence(), Some(0));
    let d = rig.respond(&a, PartitionResponse::ok(100));
    assert!(matches!(
        d,
        Decision::Complete {
            base_offset: Some(100)
        }
    ));
    assert!(matches!(
        rig.respond(&b, PartitionResponse::ok(103)),
        Decision::Complete { .. }
    ));
    let e = rig.entry(&tp(0));
    assert_eq!(
        (e.last_acked_sequence(), e.last_acked_offset()),
        (Some(4), Some(104))
    );
    assert_eq!(e.in_flight_count(), 0);
}

#[test]
fn sequences_wrap_from_i32_max_to_zero() {
    let mut rig = Rig::new(false);
    rig.send(&tp(0), 1);
    rig.idem.partitions.get_mut(&tp(0)).unwrap().next_sequence = i32::MAX - 1;
    let b = rig.send(&tp(0), 3);
    assert_eq!(base(&b), i32::MAX - 1);
    assert_eq!(rig.entry(&tp(0)).next_sequence(), 1);
}

#[test]
fn nothing_drains_without_a_producer_id_and_at_most_five_batches_are_out() {
    let mut rig = Rig::new(false);
    rig.idem.set_producer_id(ProducerIdAndEpoch::NONE, false);
    rig.batch(&tp(0), 1);
    assert!(rig.drain(&tp(0)).is_none());
    rig.idem
        .set_producer_id(ProducerIdAndEpoch::new(7, 0), false);
    let sent: Vec<_> = (0..5)
        .map(|_| {
            rig.drain(&tp(0))
                .or_else(|| Some(rig.send(&tp(0), 1)))
                .unwrap()
        })
        .collect();
    rig.batch(&tp(0), 1);
    assert!(
        rig.drain(&tp(0)).is_none(),
        "a sixth would leave the broker's dedup window"
    );
    rig.respond(&sent[0], PartitionResponse::ok(0));
    assert_eq!(base(&rig.drain(&tp(0)).unwrap()), 5);
}

#[test]
fn a_retry_narrows_the_partition_to_its_lowest_batch() {
    let mut rig = Rig::new(false);
    let b0 = rig.send(&tp(0), 1);
    let b1 = rig.send(&tp(0), 1);
    let b2 = rig.send(&tp(0), 1);
    // b0 hit a leader change; b1 and b2 were then rejected as out of order (not next).
    assert!(is_retry(
        &rig.respond(&b0, PartitionResponse::error(E::NotLeaderOrFollower)),
        false
    ));
    assert!(is_retry(
        &rig.respond(&b1, PartitionResponse::error(E::OutOfOrderSequenceNumber)),
        false
    ));
    assert!(is_retry(
        &rig.respond(&b2, PartitionResponse::error(E::OutOfOrderSequenceNumber)),
        false
    ));
    let now = rig.now;
    rig.acc.reenqueue(b2, now);
    rig.acc.reenqueue(b1, now);
    rig.acc.reenqueue(b0, now);
    rig.batch(&tp(0), 1);
    let r0 = rig.drain(&tp(0)).unwrap();
    assert_eq!(base(&r0), 0);
    assert!(rig.drain(&tp(0)).is_none(), "b1 waits until b0 is done");
    rig.respond(&r0, PartitionResponse::ok(10));
    let r1 = rig.drain(&tp(0)).unwrap();
    assert_eq!(base(&r1), 1);
    rig.respond(&r1, PartitionResponse::ok(11));
    let r2 = rig.drain(&tp(0)).unwrap();
    rig.respond(&r2, PartitionResponse::ok(12));
    assert_eq!(
        base(&rig.drain(&tp(0)).unwrap()),
        3,
        "the new batch comes last"
    );
}

#[test]
fn a_duplicate_is_a_success_without_an_offset() {
    let mut rig = Rig::new(false);
    let b = rig.send(&tp(0), 2);
    let d = rig.respond(&b, PartitionResponse::error(E::DuplicateSequenceNumber));
    assert!(matches!(d, Decision::Complete { base_offset: None }));
    assert_eq!(rig.entry(&tp(0)).last_acked_sequence(), Some(1));
}

#[test]
fn an_unknown_outcome_is_retried_until_the_deadline_then_given_up_as_unknown() {
    let mut rig = Rig::new(false);
    let b = rig.send(&tp(0), 1);
    let timed_out = PartitionResponse::error(E::RequestTimedOut);
    assert!(is_retry(&rig.respond(&b, timed_out.clone()), true));
    // Sticky: a later definite-looking retriable error does not make it known.
    assert!(is_retry(
        &rig.respond(&b, PartitionResponse::error(E::NotLeaderOrFollower)),
        true
    ));
    let lost = Error::ConnectionLost {
        api: Some(ApiKey::Produce),
        broker: BrokerRef {
            node_id: Some(1),
            addr: "b:9092".into(),
        },
        outcome_unknown: true,
        reason: "reset".into(),
    };
    assert!(is_retry(
        &rig.idem.on_no_response(b.tp(), b.id(), &lost, true),
        true
    ));
    // A refusal now says nothing about the earlier send: failed, but flagged unknown, and
    // the sequence is held unresolved instead of being reused.
    let d = rig.respond(&b, PartitionResponse::error(E::TopicAuthorizationFailed));
    assert_eq!(failed_class(&d), Some((ErrorClass::Rejected, true)));
    assert!(rig.idem.has_unresolved_sequence(&tp(0)));
    rig.batch(&tp(0), 1);
    assert!(rig.drain(&tp(0)).is_none());
}

#[test]
fn past_the_deadline_an_ambiguous_answer_fails_the_batch_as_unknown() {
    let mut rig = Rig::new(false);
    let b = rig.send(&tp(0), 1);
    let timed_out = PartitionResponse::error(E::RequestTimedOut);
    let d = rig.idem.on_response(b.tp(), b.id(), &timed_out, false);
    assert!(matches!(
        d,
        Decision::Fail {
            outcome_unknown: true,
            ..
        }
    ));
    assert!(rig.idem.has_unresolved_sequence(&tp(0)));
}

#[test]
fn no_answer_past_the_deadline_gives_up_then_the_next_batch_starts_a_new_epoch_at_zero() {
    let mut rig = Rig::new(false);
    let b = rig.send(&tp(0), 3);
    let lost = Error::ConnectionLost {
        api: Some(ApiKey::Produce),
        broker: BrokerRef {
            node_id: Some(1),
            addr: "b:9092".into(),
        },
        outcome_unknown: true,
        reason: "request timed out".into(),
    };
    let d = rig.idem.on_no_response(b.tp(), b.id(), &lost, false);
    assert!(matches!(
        d,
        Decision::GiveUp {
            outcome_unknown: true
        }
    ));
    // Sequences 0..3 may or may not be in the log: nothing new goes out under epoch 0.
    assert!(rig.idem.has_unresolved_sequence(&tp(0)));
    rig.batch(&tp(0), 1);
    assert!(rig.drain(&tp(0)).is_none());
    // With nothing in flight the gap is settled by a new epoch; the next batch starts at 0.
    let resolutions = rig.idem.maybe_resolve_sequences();
    assert!(matches!(resolutions[..], [Resolution::BumpEpoch(_)]));
    assert_eq!(
        rig.idem.bump_epoch_if_needed(),
        Some(EpochBump::Bumped(ProducerIdAndEpoch::new(7, 1)))
    );
    let next = rig.drain(&tp(0)).expect("drains under the new epoch");
    assert_eq!(
        next.sequence(),
        Some(BatchSequence {
            producer: ProducerIdAndEpoch::new(7, 1),
            base_sequence: 0
        })
    );
}

#[test]
fn a_batch_never_sent_past_the_deadline_gives_up_as_not_written() {
    let mut rig = Rig::new(false);
    let b = rig.send(&tp(0), 1);
    let refused = Error::Connect {
        broker: BrokerRef {
            node_id: Some(1),
            addr: "b:9092".into(),
        },
        source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
    };
    assert!(is_retry(
        &rig.idem.on_no_response(b.tp(), b.id(), &refused, true),
        false
    ));
    let d = rig.idem.on_no_response(b.tp(), b.id(), &refused, false);
    assert!(matches!(
        d,
        Decision::GiveUp {
            outcome_unknown: false
        }
    ));
}

#[test]
fn a_connection_refused_at_setup_fails_the_batch_at_once_and_keeps_sequences_whole() {
    let broker = BrokerRef {
        node_id: Some(1),
        addr: "b:9092".into(),
    };
    let revoked = Error::Authentication {
        broker: broker.clone(),
        message: "revoked".into(),
    };
    // Idempotent: the gap the failed batch leaves is closed by a new epoch.
    let mut rig = Rig::new(false);
    let b = rig.send(&tp(0), 2);
    let d = rig.idem.on_no_response(b.tp(), b.id(), &revoked, true);
    assert!(
        matches!(
            &d,
            Decision::Fail {
                error: Error::Authentication { .. },
                outcome_unknown: false
            }
        ),
        "{d:?}"
    );
    assert!(rig.idem.epoch_bump_required());
    assert_eq!(rig.entry(&tp(0)).in_flight_count(), 0);

    // Transactional: later batches move down over the gap; no bump.
    let mut rig = Rig::new(true);
    let b0 = rig.send(&tp(0), 2);
    let b1 = rig.send(&tp(0), 3);
    let bad_certificate = Error::Tls {
        broker,
        message: "bad certificate".into(),
    };
    let d = rig
        .idem
        .on_no_response(b0.tp(), b0.id(), &bad_certificate, true);
    assert!(
        matches!(
            d,
            Decision::Fail {
                error: Error::Tls { .. },
                ..
            }
        ),
        "{d:?}"
    );
    assert_eq!(
        rig.entry(&tp(0))
            .sequence_of(b1.id())
            .unwrap()
            .base_sequence,
        0
    );
    assert!(!rig.idem.epoch_bump_required());
}

#[test]
fn idempotent_out_of_order_on_the_next_batch_bumps_the_epoch_and_rewrites_sequences() {
    let mut rig = Rig::new(false);
    let b0 = rig.send(&tp(0), 2);
    let b1 = rig.send(&tp(0), 1);
    let d = rig.respond(&b0, PartitionResponse::error(E::OutOfOrderSequenceNumber));
    assert!(matches!(d, Decision::BumpEpochAndRetry));
    let now = rig.now;
    rig.acc.reenqueue(b0, now);
    assert!(rig.drain(&tp(0)).is_none(), "held until the bump");
    assert_eq!(
        rig.idem.bump_epoch_if_needed(),
        Some(EpochBump::Bumped(ProducerIdAndEpoch::new(7, 1)))
    );
    assert_eq!(rig.idem.bump_epoch_if_needed(), None);
    let r0 = rig.drain(&tp(0)).unwrap();
    assert_eq!(
        r0.sequence().unwrap(),
        BatchSequence {
            producer: ProducerIdAndEpoch::new(7, 1),
            base_sequence: 0
        }
    );
    // b1 was in flight under the old numbering; its rejection is expected and retried.
    let d = rig.respond(&b1, PartitionResponse::error(E::OutOfOrderSequenceNumber));
    assert!(is_retry(&d, false));
    assert_eq!(
        rig.entry(&tp(0))
            .sequence_of(b1.id())
            .unwrap()
            .base_sequence,
        2
    );
}

#[test]
fn transactional_out_of_order_fails_abortably_and_closes_the_gap() {
    let mut rig = Rig::new(true);
    let b0 = rig.send(&tp(0), 2);
    let b1 = rig.send(&tp(0), 3);
    let d = rig.respond(&b0, PartitionResponse::error(E::OutOfOrderSequenceNumber));
    assert_eq!(failed_class(&d), Some((ErrorClass::Abortable, false)));
    // b0 was not written, so b1 moves down to take its sequences.
    assert_eq!(
        rig.entry(&tp(0))
            .sequence_of(b1.id())
            .unwrap()
            .base_sequence,
        0
    );
    assert_eq!(rig.entry(&tp(0)).next_sequence(), 3);
    assert!(!rig.idem.epoch_bump_required());
}

#[test]
fn unknown_producer_id_tells_retention_from_loss() {
    let retention = |offset_acked: i64| PartitionResponse {
        log_start_offset: offset_acked + 40,
        ..PartitionResponse::error(E::UnknownProducerId)
    };
    // Idempotent, state deleted by retention: new epoch, retry.
    let mut rig = Rig::new(false);
    let b = rig.send(&tp(0), 1);
    rig.respond(&b, PartitionResponse::ok(10));
    let b = rig.send(&tp(0), 1);
    assert!(matches!(
        rig.respond(&b, retention(10)),
        Decision::BumpEpochAndRetry
    ));
    // Unknown log start: just retry.
    let mut rig = Rig::new(false);
    let b = rig.send(&tp(0), 1);
    assert!(is_retry(
        &rig.respond(&b, PartitionResponse::error(E::UnknownProducerId)),
        false
    ));
    // Transactional, retention: restart at 0 under the same epoch, keep the transaction.
    let mut rig = Rig::new(true);
    let b = rig.send(&tp(0), 1);
    rig.respond(&b, PartitionResponse::ok(10));
    let b = rig.send(&tp(0), 1);
    assert!(is_retry(&rig.respond(&b, retention(10)), false));
    assert_eq!(
        rig.entry(&tp(0)).sequence_of(b.id()).unwrap().base_sequence,
        0
    );
    // Transactional, log start not past our last ack: real loss, abort.
    let b2 = rig.send(&tp(1), 1);
    rig.respond(&b2, PartitionResponse::ok(100));
    let b2 = rig.send(&tp(1), 1);
    let lost = PartitionResponse {
        log_start_offset: 50,
        ..PartitionResponse::error(E::UnknownProducerId)
    };
    assert_eq!(
        failed_class(&rig.respond(&b2, lost)),
        Some((ErrorClass::Abortable, false))
    );
    assert!(
        rig.idem.partition(&tp(1)).is_none(),
        "the broker will take sequence 0 next"
    );
}

#[test]
fn a_bump_holds_new_batches_on_partitions_with_old_epoch_batches_out() {
    let mut rig = Rig::new(false);
    let a = rig.send(&tp(0), 1);
    let other = rig.send(&tp(1), 1);
    assert!(matches!(
        rig.respond(&a, PartitionResponse::error(E::OutOfOrderSequenceNumber)),
        Decision::BumpEpochAndRetry
    ));
    rig.idem.bump_epoch_if_needed();
    rig.batch(&tp(1), 1);
    assert!(
        rig.drain(&tp(1)).is_none(),
        "epoch 0 batch still out on t-1"
    );
    rig.respond(&other, PartitionResponse::ok(5));
    let fresh = rig.drain(&tp(1)).unwrap();
    assert_eq!(
        fresh.sequence().unwrap(),
        BatchSequence {
            producer: ProducerIdAndEpoch::new(7, 1),
            base_sequence: 0
        }
    );
}

#[test]
fn an_exhausted_epoch_needs_a_new_producer_id() {
    let mut rig = Rig::new(false);
    rig.idem
        .set_producer_id(ProducerIdAndEpoch::new(7, i16::MAX), false);
    let b = rig.send(&tp(0), 1);
    rig.respond(&b, PartitionResponse::error(E::MessageTooLarge));
    assert_eq!(
        rig.idem.bump_epoch_if_needed(),
        Some(EpochBump::NeedsNewProducerId)
    );
    rig.batch(&tp(0), 1);
    assert!(rig.drain(&tp(0)).is_none());
    rig.idem
        .set_producer_id(ProducerIdAndEpoch::new(8, 0), true);
    let b = rig.drain(&tp(0)).unwrap();
    assert_eq!(
        b.sequence().unwrap(),
        BatchSequence {
            producer: ProducerIdAndEpoch::new(8, 0),
            base_sequence: 0
        }
    );
}

#[test]
fn definite_failures_of_an_idempotent_producer_request_a_bump() {
    let mut rig = Rig::new(false);
    let b = rig.send(&tp(0), 1);
    let d = rig.respond(&b, PartitionResponse::error(E::MessageTooLarge));
    assert_eq!(failed_class(&d), Some((ErrorClass::Rejected, false)));
    let b = rig.send(&tp(1), 1);
    let d = rig.idem.on_response(
        b.tp(),
        b.id(),
        &PartitionResponse::error(E::NotLeaderOrFollower),
        false,
    );
    assert_eq!(
        failed_class(&d),
        Some((ErrorClass::Retriable, false)),
        "retries used up"
    );
    assert!(rig.idem.epoch_bump_required());
}

#[test]
fn fencing_and_authorization_are_fatal_for_the_producer() {
    for code in [
        E::ProducerFenced,
        E::ClusterAuthorizationFailed,
        E::TransactionalIdAuthorizationFailed,
        E::UnsupportedVersion,
    ] {
        let mut rig = Rig::new(true);
        let b = rig.send(&tp(0), 1);
        assert!(
            matches!(rig.respond(&b, PartitionResponse::error(code)), Decision::Fatal(e) if e.class() == ErrorClass::Fatal)
        );
    }
}

/// Sends b0 and b1, then b0 fails retriably, is re-enqueued and expires.
fn expired_head(transactional: bool) -> (Rig, ProducerBatch<u32>) {
    let mut rig = Rig::new(transactional);
    let b0 = rig.send(&tp(0), 1);
    let b1 = rig.send(&tp(0), 1);
    assert!(is_retry(
        &rig.respond(&b0, PartitionResponse::error(E::NotLeaderOrFollower)),
        false
    ));
    let now = rig.now;
    rig.acc.reenqueue(b0, now);
    rig.now += Duration::from_secs(2);
    let expired = rig.acc.expire(rig.now);
    assert_eq!(expired.len(), 1);
    assert!(rig.idem.on_expired(expired[0].tp(), expired[0].id()));
    assert!(rig.idem.has_unresolved_sequence(&tp(0)));
    rig.batch(&tp(0), 1);
    assert!(
        rig.drain(&tp(0)).is_none(),
        "no new sequences while unresolved"
    );
    (rig, b1)
}

#[test]
fn an_expired_sent_batch_resolves_when_later_batches_are_acknowledged() {
    let (mut rig, b1) = expired_head(false);
    assert!(
        rig.idem.maybe_resolve_sequences().is_empty(),
        "b1 still out"
    );
    rig.respond(&b1, PartitionResponse::ok(1));
    let r = rig.idem.maybe_resolve_sequences();
    assert!(matches!(&r[..], [Resolution::Resolved(t)] if *t == tp(0)));
    assert_eq!(base(&rig.drain(&tp(0)).unwrap()), 2);
}

#[test]
fn an_unresolved_gap_bumps_an_idempotent_epoch() {
    let (mut rig, b1) = expired_head(false);
    // b1 is the batch right after the expired one: a real gap.
    let d = rig.respond(&b1, PartitionResponse::error(E::OutOfOrderSequenceNumber));
    assert!(matches!(d, Decision::BumpEpochAndRetry));
}

#[test]
fn an_unresolved_gap_aborts_a_transaction_or_is_fatal_without_bumps() {
    for (can_bump, abortable) in [(true, true), (false, false)] {
        let (mut rig, b1) = expired_head(true);
        rig.idem.set_can_bump_epoch(can_bump);
        let d = rig.respond(&b1, PartitionResponse::error(E::OutOfOrderSequenceNumber));
        assert_eq!(failed_class(&d), Some((ErrorClass::Abortable, false)));
        let r = rig.idem.maybe_resolve_sequences();
        match &r[..] {
            [Resolution::Abortable(_, e)] => {
                assert!(abortable && e.class() == ErrorClass::Abortable)
            }
            [Resolution::Fatal(_, e)] => assert!(!abortable && e.class() == ErrorClass::Fatal),
            other => panic!("{other:?}"),
        }
    }
}

/// Splits `b` (refused as too large) through the accumulator and the idempotence state together.
fn split(rig: &mut Rig, b: ProducerBatch<u32>) -> Vec<(BatchId, i32)> {
    let (tp, id) = (b.tp().clone(), b.id());
    let parts = rig.acc.split_and_reenqueue(b).expect("splits");
    assert!(rig.idem.on_split(&tp, id, &parts));
    parts
}

#[test]
fn a_split_batch_keeps_its_sequence_range_while_later_batches_are_in_flight() {
    let mut rig = Rig::new(false);
    let a = rig.send(&tp(0), 4);
    let b = rig.send(&tp(0), 2);
    assert_eq!((base(&a), base(&b)), (0, 4));
    let parts = split(&mut rig, a);
    assert_eq!((parts[0].1, parts[1].1), (2, 2));
    let e = rig.entry(&tp(0));
    assert_eq!((e.in_flight_count(), e.next_sequence()), (3, 6));
    assert_eq!(e.sequence_of(parts[0].0).unwrap().base_sequence, 0);
    assert_eq!(e.sequence_of(parts[1].0).unwrap().base_sequence, 2);
    assert_eq!(e.sequence_of(b.id()).unwrap().base_sequence, 4, "untouched");
    // The later batch was refused because its predecessor was: retried, not a gap.
    assert!(is_retry(
        &rig.respond(&b, PartitionResponse::error(E::OutOfOrderSequenceNumber)),
        false
    ));
    rig.acc.reenqueue(b, rig.now);
    // Only the lowest outstanding batch goes: the parts one by one, then the later batch.
    let p0 = rig.drain(&tp(0)).unwrap();
    assert_eq!(
        (p0.id(), base(&p0), p0.records()),
        (parts[0].0, 0, &[0, 1][..])
    );
    assert!(rig.drain(&tp(0)).is_none());
    assert!(matches!(
        rig.respond(&p0, PartitionResponse::ok(10)),
        Decision::Complete { .. }
    ));
    let p1 = rig.drain(&tp(0)).unwrap();
    assert_eq!(
        (p1.id(), base(&p1), p1.records()),
        (parts[1].0, 2, &[2, 3][..])
    );
    rig.respond(&p1, PartitionResponse::ok(12));
    let b = rig.drain(&tp(0)).unwrap();
    assert_eq!(base(&b), 4);
    rig.respond(&b, PartitionResponse::ok(14));
    let e = rig.entry(&tp(0));
    assert_eq!(
        (
            e.last_acked_sequence(),
            e.last_acked_offset(),
            e.in_flight_count()
        ),
        (Some(5), Some(15), 0)
    );
    assert!(!rig.idem.epoch_bump_required());
}

#[test]
fn a_transactional_split_whose_lone_record_fails_closes_the_gap() {
    let mut rig = Rig::new(true);
    let a = rig.send(&tp(0), 3);
    let b = rig.send(&tp(0), 1);
    assert_eq!(base(&b), 3);
    let parts = split(&mut rig, a);
    assert_eq!((parts[0].1, parts[1].1), (1, 2));
    let p0 = rig.drain(&tp(0)).unwrap();
    assert_eq!(base(&p0), 0);
    rig.respond(&p0, PartitionResponse::ok(0));
    let p1 = rig.drain(&tp(0)).unwrap();
    assert_eq!(base(&p1), 1);
    // Still too large: split again, the range 1..=2 carved into 1 and 2.
    let parts = split(&mut rig, p1);
    let q0 = rig.drain(&tp(0)).unwrap();
    assert_eq!((q0.id(), base(&q0)), (parts[0].0, 1));
    // The lone record is refused: it fails (abortable) and later sequences close the gap.
    let d = rig.respond(&q0, PartitionResponse::error(E::MessageTooLarge));
    assert_eq!(failed_class(&d), Some((ErrorClass::Abortable, false)));
    let e = rig.entry(&tp(0));
    assert_eq!(e.sequence_of(parts[1].0).unwrap().base_sequence, 1);
    assert_eq!(e.sequence_of(b.id()).unwrap().base_sequence, 2);
    assert_eq!(e.next_sequence(), 3);
    let q1 = rig.drain(&tp(0)).unwrap();
    assert_eq!((q1.id(), base(&q1)), (parts[1].0, 1));
}

#[test]
fn splitting_an_untracked_batch_leaves_the_state_alone() {
    let mut rig = Rig::new(false);
    rig.batch(&tp(0), 2);
    let parts = [(BatchId(100), 1), (BatchId(101), 1)];
    assert!(!rig.idem.on_split(&tp(0), BatchId(99), &parts));
    let a = rig.send(&tp(0), 1);
    assert!(!rig.idem.on_split(&tp(0), BatchId(99), &parts));
    assert_eq!(rig.entry(&tp(0)).in_flight_count(), 1);
    assert_eq!(base(&a), 0);
}
