//! How a transaction ends under coordinator faults a real broker cannot be made to produce on
//! demand, and the epoch the next transaction starts with: the coordinator moving at EndTxn
//! (NOT_COORDINATOR), EndTxn cut after it was written or never answered, requests whose outcome
//! is unknown (a late copy must be fenced by a newer epoch), the client's KIP-360 epoch bump
//! after an abortable failure under v1, and EndTxn v5 handing out the next epoch and, once the
//! epoch runs out, a new producer id under KIP-890 transactions v2.
//!
//! The scripted cluster is in `transaction_support`.

mod transaction_support;

use std::time::Duration;

use kafka_protocol::messages::ApiKey;

use josefk::{Error, ErrorClass};
use protocol_tests::Action;
use transaction_support::*;

// ---- the transaction coordinator moves at EndTxn ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_txn_not_coordinator_finds_the_new_coordinator_and_commits_there() {
    let cluster = TxnCluster::start(false, (7, 3), |node, req, model| match req {
        Req::EndTxn { .. } if node == 1 => {
            // The transaction log partition moved to node 2.
            model.txn_coordinator = 2;
            Some(refuse(req, NOT_COORDINATOR, model))
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[0]).await;
    within(producer.commit_transaction())
        .await
        .expect("commit succeeds at the new coordinator");
    delivered(futures).await;
    assert_eq!(
        cluster.end_txns(),
        vec![
            end_txn(1, 7, 3, true, V1_END_TXN),
            end_txn(2, 7, 3, true, V1_END_TXN)
        ],
        "EndTxn retried once, at node 2, with the same producer id and epoch"
    );
    // init_transactions found node 1; NOT_COORDINATOR made the producer look again.
    assert_eq!(cluster.find_coordinators(1), 2);
    // The next transaction talks to node 2 straight away.
    commit_records(&producer, &[1]).await;
    let adds = cluster.requests(|r| matches!(r, Req::AddPartitions { .. }));
    assert_eq!(adds.last().map(|(n, _)| *n), Some(2));
    assert_eq!(
        cluster.end_txns().last(),
        Some(&end_txn(2, 7, 3, true, V1_END_TXN))
    );
    assert_eq!(cluster.find_coordinators(1), 2);
}

// ---- the connection is cut after EndTxn was written ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_txn_cut_before_the_answer_is_retried_and_the_commit_succeeds() {
    let cluster = TxnCluster::start(false, (7, 0), |_, req, model| match req {
        // The coordinator received the commit, then the connection died before it answered.
        Req::EndTxn { .. } if model.nth(ApiKey::EndTxn) == 1 => Some(Action::Close),
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[0, 1]).await;
    within(producer.commit_transaction())
        .await
        .expect("the retried EndTxn completes the commit");
    delivered(futures).await;
    assert_eq!(
        cluster.end_txns(),
        vec![
            end_txn(1, 7, 0, true, V1_END_TXN),
            end_txn(1, 7, 0, true, V1_END_TXN)
        ],
        "the same EndTxn(commit) again, never an abort"
    );
    // The outcome of the first EndTxn was unknown: under v1 the epoch is bumped before the next
    // transaction (see `unknown_outcome_never_lets_a_late_copy_touch_the_next_transaction`).
    commit_records(&producer, &[0]).await;
    assert_eq!(
        cluster.produced().last(),
        Some(&(0, 7, 1, 0, 1)),
        "the next transaction starts at sequence 0 under the bumped epoch"
    );
}

// ---- unknown outcomes: a late copy of a request must not reach the next transaction ----

/// The (producer id, epoch) each request of the transactional protocol carries; `None` for the
/// others.
fn carried(req: &Req) -> Vec<(i64, i16)> {
    match req {
        Req::AddPartitions {
            producer_id, epoch, ..
        }
        | Req::AddOffsets { producer_id, epoch }
        | Req::TxnOffsetCommit {
            producer_id, epoch, ..
        }
        | Req::EndTxn {
            producer_id, epoch, ..
        } => vec![(*producer_id, *epoch)],
        Req::Produce { batches, .. } => batches.iter().map(|b| (b.1, b.2)).collect(),
        _ => Vec::new(),
    }
}

/// A transactional request of the first transaction is cut after the coordinator received it
/// (`cut` picks it), so its outcome is unknown and a copy of it may still be applied late: Kafka
/// matches transactional requests to a transaction by producer id and epoch only. Whatever the
/// protocol, every request of the next transaction must carry a newer epoch than the cut one, so
/// the coordinator fences the late copy instead of letting it end the next transaction or add
/// the earlier offsets to it (Jepsen's Bufstream analysis, 2024; franz-go v1.21.6). Under v1
/// josefk bumps the epoch with InitProducerId once the transaction ends; under v2 EndTxn v5 does.
async fn late_copy_is_fenced(v2: bool, cut: fn(&Req) -> bool) {
    let cluster = TxnCluster::start(v2, (7, 0), move |_, req, model| {
        if model.faulty && cut(req) {
            model.faulty = false;
            return Some(Action::Close);
        }
        None
    })
    .await;
    let producer = cluster.producer().await;
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[0, 1]).await;
    send_offsets(&producer, &[(0, 1)]).await.expect("offsets");
    within(producer.commit_transaction())
        .await
        .expect("the retried request completes the commit");
    delivered(futures).await;
    let first = cluster.log().len();
    let (_, cut_request) = cluster
        .log()
        .into_iter()
        .find(|(_, r)| cut(r))
        .expect("the cut request was sent");
    let stale = carried(&cut_request)[0];
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[0, 1]).await;
    send_offsets(&producer, &[(0, 2)]).await.expect("offsets");
    within(producer.commit_transaction()).await.expect("commit");
    delivered(futures).await;
    let next: Vec<(i64, i16)> = cluster.log()[first..]
        .iter()
        .flat_map(|(_, r)| carried(r))
        .collect();
    assert!(!next.is_empty());
    assert!(
        next.iter()
            .all(|&(pid, epoch)| pid != stale.0 || epoch > stale.1),
        "a request of the next transaction carries the cut request's id and epoch {stale:?}, so \
         a late copy of {cut_request:?} would act on it: {next:?}"
    );
    let bumps = cluster
        .requests(|r| matches!(r, Req::InitProducerId { producer_id: 7, .. }))
        .len();
    assert_eq!(bumps, usize::from(!v2), "v1 bumps once; v2 needs no bump");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_outcome_never_lets_a_late_copy_touch_the_next_transaction() {
    let end_txn: fn(&Req) -> bool = |r| matches!(r, Req::EndTxn { .. });
    let offsets: fn(&Req) -> bool = |r| matches!(r, Req::TxnOffsetCommit { .. });
    let add_partitions: fn(&Req) -> bool = |r| matches!(r, Req::AddPartitions { .. });
    for (v2, name, cut) in [
        (false, "v1 EndTxn", end_txn),
        (false, "v1 TxnOffsetCommit", offsets),
        (false, "v1 AddPartitionsToTxn", add_partitions),
        (true, "v2 EndTxn", end_txn),
        (true, "v2 TxnOffsetCommit", offsets),
    ] {
        eprintln!("case: {name}");
        late_copy_is_fenced(v2, cut).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_txn_never_answered_fails_the_commit_within_max_block_and_a_later_call_finishes_it() {
    let cluster = TxnCluster::start(false, (7, 0), |_, req, model| match req {
        Req::EndTxn { .. } if model.faulty => Some(Action::Close),
        _ => None,
    })
    .await;
    let producer = cluster
        .producer_with(|c| c.max_block = Duration::from_secs(2))
        .await;
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[0]).await;
    let e = within(producer.commit_transaction())
        .await
        .expect_err("no EndTxn answer within max.block.ms");
    assert!(
        matches!(e, Error::Timeout { .. }),
        "a timeout, not a failed transaction: {e:?}"
    );
    assert_eq!(e.class(), ErrorClass::Retriable, "{e}");
    let attempts = cluster.end_txns();
    assert!(attempts.len() >= 2, "EndTxn was retried: {attempts:?}");
    assert!(attempts
        .iter()
        .all(|a| *a == end_txn(1, 7, 0, true, V1_END_TXN)));
    // The commit is still under way: it cannot become an abort or make room for a new
    // transaction (Java's "previous call timed out and must be retried").
    let e = within(producer.abort_transaction())
        .await
        .expect_err("a pending commit cannot be aborted");
    assert!(e.to_string().contains("commit_transaction again"), "{e}");
    assert!(producer.begin_transaction().is_err());
    // The coordinator recovers; calling commit again waits for the same commit (Java: retry the
    // blocking call after a timeout).
    cluster.heal();
    within(producer.commit_transaction())
        .await
        .expect("the resumed commit succeeds");
    delivered(futures).await;
    assert!(cluster
        .end_txns()
        .iter()
        .all(|a| *a == end_txn(1, 7, 0, true, V1_END_TXN)));
    producer
        .begin_transaction()
        .expect("ready for the next transaction");
}

// ---- transactions v2: EndTxn v5 hands out the next epoch, and a new id on overflow ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_epoch_overflow_moves_the_next_transaction_to_the_new_producer_id() {
    // Epoch 32765: the first commit bumps to 32766, which is exhausted, so the second commit gets
    // a new producer id with epoch 0.
    let cluster = TxnCluster::start(true, (1000, i16::MAX - 2), |_, _, _| None).await;
    let producer = cluster.producer().await;
    for round in 0..3 {
        producer.begin_transaction().unwrap();
        let mut futures = send_all(&producer, &[0]).await;
        futures.extend(send_all(&producer, &[0]).await);
        within(producer.commit_transaction())
            .await
            .unwrap_or_else(|e| panic!("commit {round}: {e}"));
        delivered(futures).await;
    }
    let produced = cluster.produced();
    let per_txn: Vec<(i64, i16, i32)> = produced
        .iter()
        .filter(|b| b.3 == 0)
        .map(|&(_, pid, epoch, seq, _)| (pid, epoch, seq))
        .collect();
    assert_eq!(
        per_txn,
        vec![
            (1000, i16::MAX - 2, 0),
            (1000, i16::MAX - 1, 0),
            (2000, 0, 0)
        ],
        "each transaction starts at sequence 0 under the epoch EndTxn v5 returned: {produced:?}"
    );
    assert!(
        produced.iter().all(|b| b.0 == 0),
        "only partition 0 was written: {produced:?}"
    );
    assert_eq!(
        cluster.end_txns(),
        vec![
            end_txn(1, 1000, i16::MAX - 2, true, 5),
            end_txn(1, 1000, i16::MAX - 1, true, 5),
            end_txn(1, 2000, 0, true, 5),
        ]
    );
    // v2: partitions join implicitly through Produce v12, and the client never bumps the epoch.
    assert!(cluster
        .requests(|r| matches!(r, Req::AddPartitions { .. }))
        .is_empty());
    assert!(cluster
        .requests(|r| matches!(r, Req::Produce { version, .. } if *version != 12))
        .is_empty());
    assert_eq!(
        cluster
            .requests(|r| matches!(r, Req::InitProducerId { .. }))
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_end_txn_cut_at_the_overflow_is_retried_and_the_new_producer_id_is_adopted() {
    // The commit that exhausts the epoch loses its answer; the retry (old id, old epoch) gets the
    // new producer id, as Kafka's `retryOnOverflow` answers.
    let cluster = TxnCluster::start(true, (1000, i16::MAX - 1), |_, req, model| match req {
        Req::EndTxn { .. } if model.nth(ApiKey::EndTxn) == 1 => {
            model.producer = (2000, 0);
            Some(Action::Close)
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    commit_records(&producer, &[1]).await;
    commit_records(&producer, &[1]).await;
    assert_eq!(
        cluster.produced(),
        vec![(1, 1000, i16::MAX - 1, 0, 1), (1, 2000, 0, 0, 1)]
    );
    assert_eq!(
        cluster.end_txns(),
        vec![
            end_txn(1, 1000, i16::MAX - 1, true, 5),
            end_txn(1, 1000, i16::MAX - 1, true, 5),
            end_txn(1, 2000, 0, true, 5),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_end_txn_cut_after_the_commit_is_retried_and_the_bumped_epoch_is_adopted() {
    // The coordinator committed (and bumped the epoch) but its answer was lost; the retry with
    // the old epoch gets the bumped one (Kafka's `retryOnEpochBump`), not a second bump.
    let cluster = TxnCluster::start(true, (1000, 4), |_, req, model| match req {
        Req::EndTxn { .. } if model.nth(ApiKey::EndTxn) == 1 => {
            model.producer = (1000, 5);
            Some(Action::Close)
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    for _ in 0..2 {
        commit_records(&producer, &[0]).await;
    }
    assert_eq!(
        cluster.end_txns(),
        vec![
            end_txn(1, 1000, 4, true, 5),
            end_txn(1, 1000, 4, true, 5),
            end_txn(1, 1000, 5, true, 5),
        ]
    );
    assert_eq!(
        cluster.produced(),
        vec![(0, 1000, 4, 0, 1), (0, 1000, 5, 0, 1)]
    );
}

// ---- v1: the client bumps the epoch after an abortable send failure (KIP-360) ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_abort_after_a_failed_send_bumps_the_epoch_and_a_timed_out_abort_is_resumed() {
    let cluster = TxnCluster::start(false, (7, 0), |_, req, model| match req {
        Req::Produce { .. } if model.nth(ApiKey::Produce) == 1 => {
            Some(refuse(req, OUT_OF_ORDER_SEQUENCE_NUMBER, model))
        }
        // The bump that ends the abort gets no answer until the test heals the coordinator.
        Req::InitProducerId { producer_id: 7, .. } if model.faulty => Some(Action::Close),
        Req::InitProducerId {
            producer_id: 7,
            epoch: 0,
        } => {
            model.producer = (7, 1);
            None
        }
        _ => None,
    })
    .await;
    let producer = cluster
        .producer_with(|c| c.max_block = Duration::from_secs(2))
        .await;
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[0]).await;
    for f in futures {
        let e = within(f).await.expect_err("the broker refused the batch");
        assert_eq!(e.class(), ErrorClass::Abortable, "{e}");
    }
    let e = within(producer.commit_transaction())
        .await
        .expect_err("a transaction with a failed send cannot commit");
    assert_eq!(e.class(), ErrorClass::Abortable, "{e}");
    let e = within(producer.abort_transaction())
        .await
        .expect_err("the epoch bump gets no answer within max.block.ms");
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(
        producer.begin_transaction().is_err(),
        "the abort is not over"
    );
    cluster.heal();
    within(producer.abort_transaction())
        .await
        .expect("calling abort again finishes the same abort");
    commit_records(&producer, &[0]).await;
    assert_eq!(
        cluster.end_txns(),
        vec![
            end_txn(1, 7, 0, false, V1_END_TXN),
            end_txn(1, 7, 1, true, V1_END_TXN)
        ],
        "one EndTxn(abort) at the old epoch, then the commit at the bumped one"
    );
    let inits = cluster.requests(|r| matches!(r, Req::InitProducerId { .. }));
    assert!(inits.len() >= 3, "{inits:?}");
    assert_eq!(
        inits[0].1,
        Req::InitProducerId {
            producer_id: -1,
            epoch: -1
        }
    );
    assert!(
        inits[1..].iter().all(|(_, r)| *r
            == Req::InitProducerId {
                producer_id: 7,
                epoch: 0
            }),
        "the bump names the current id and epoch (KIP-360): {inits:?}"
    );
    assert_eq!(
        cluster.produced(),
        vec![(0, 7, 0, 0, 1), (0, 7, 1, 0, 1)],
        "the next transaction starts at sequence 0 under the bumped epoch"
    );
}

// ---- a Produce that is never answered: the delivery times out inside a transaction ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_produce_never_answered_times_out_as_unknown_and_the_abort_bumps_the_epoch() {
    let cluster = TxnCluster::start(false, (7, 0), |_, req, model| match req {
        Req::Produce { .. } if model.faulty => Some(Action::NoReply),
        Req::InitProducerId {
            producer_id: 7,
            epoch: 0,
        } => {
            model.producer = (7, 1);
            None
        }
        _ => None,
    })
    .await;
    let producer = cluster
        .producer_with(|c| c.delivery_timeout = Duration::from_secs(4))
        .await;
    producer.begin_transaction().unwrap();
    let started = std::time::Instant::now();
    for f in send_all(&producer, &[0]).await {
        let e = within(f).await.expect_err("the broker never answers");
        assert!(e.outcome_unknown(), "{e}");
        assert!(matches!(e, Error::Undelivered { .. }), "{e:?}");
    }
    // delivery.timeout.ms (4 s) plus one request timeout (2 s), with slack for a loaded machine.
    let took = started.elapsed();
    assert!(took <= Duration::from_secs(9), "settled after {took:?}");
    let e = within(producer.commit_transaction())
        .await
        .expect_err("a transaction with an undelivered record cannot commit");
    assert_eq!(e.class(), ErrorClass::Abortable, "{e}");
    cluster.heal();
    within(producer.abort_transaction()).await.expect("abort");
    commit_records(&producer, &[0]).await;
    let produced = cluster.produced();
    assert!(
        produced[..produced.len() - 1]
            .iter()
            .all(|b| *b == (0, 7, 0, 0, 1)),
        "every attempt of the stuck batch: {produced:?}"
    );
    assert_eq!(
        produced.last(),
        Some(&(0, 7, 1, 0, 1)),
        "the next transaction starts at sequence 0 under the bumped epoch"
    );
    assert_eq!(
        cluster.end_txns(),
        vec![
            end_txn(1, 7, 0, false, V1_END_TXN),
            end_txn(1, 7, 1, true, V1_END_TXN)
        ]
    );
}
