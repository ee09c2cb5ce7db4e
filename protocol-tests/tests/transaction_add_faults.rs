//! What goes into a transaction under coordinator faults a real broker cannot be made to produce
//! on demand: AddPartitionsToTxn and TxnOffsetCommit at a coordinator that moved
//! (NOT_COORDINATOR), answers that refuse some partitions or leave requested ones out, offsets
//! refused or still being retried when their transaction aborts, and a v2 Produce answered
//! CONCURRENT_TRANSACTIONS while the leader adds its partition.
//!
//! The scripted cluster is in `transaction_support`.

mod transaction_support;

use std::time::Duration;

use kafka_protocol::messages::ApiKey;

use josefk::{Error, ErrorClass};
use transaction_support::*;

// ---- the transaction or group coordinator moves ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_partitions_not_coordinator_is_retried_at_the_new_coordinator_before_producing() {
    let cluster = TxnCluster::start(false, (7, 0), |node, req, model| match req {
        Req::AddPartitions { .. } if node == 1 => {
            model.txn_coordinator = 2;
            Some(refuse(req, NOT_COORDINATOR, model))
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    commit_records(&producer, &[0]).await;
    let log: Vec<(i32, Req)> = cluster
        .log()
        .into_iter()
        .filter(|(_, r)| !matches!(r, Req::FindCoordinator { .. }))
        .collect();
    assert_eq!(
        log,
        vec![
            (
                1,
                Req::InitProducerId {
                    producer_id: -1,
                    epoch: -1
                }
            ),
            (
                1,
                Req::AddPartitions {
                    producer_id: 7,
                    epoch: 0,
                    partitions: vec![0]
                }
            ),
            (
                2,
                Req::AddPartitions {
                    producer_id: 7,
                    epoch: 0,
                    partitions: vec![0]
                }
            ),
            (
                1,
                Req::Produce {
                    version: 11,
                    batches: vec![(0, 7, 0, 0, 1)]
                }
            ),
            end_txn(2, 7, 0, true, V1_END_TXN),
        ],
        "the batch waited for the partition to be added at the new coordinator"
    );
    assert_eq!(cluster.find_coordinators(1), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_offset_commit_not_coordinator_finds_the_new_group_coordinator() {
    let cluster = TxnCluster::start(false, (7, 0), |node, req, model| match req {
        Req::TxnOffsetCommit { .. } if node == 1 => {
            model.group_coordinator = 2;
            Some(refuse(req, NOT_COORDINATOR, model))
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    producer.begin_transaction().unwrap();
    send_offsets(&producer, &[(0, 42)])
        .await
        .expect("offsets committed at the new group coordinator");
    within(producer.commit_transaction()).await.expect("commit");
    let commits = cluster.requests(|r| matches!(r, Req::TxnOffsetCommit { .. }));
    let expected = Req::TxnOffsetCommit {
        producer_id: 7,
        epoch: 0,
        partitions: vec![(0, 42)],
    };
    assert_eq!(commits, vec![(1, expected.clone()), (2, expected)]);
    // The group coordinator was looked up twice, the transaction coordinator once.
    assert_eq!(cluster.find_coordinators(0), 2);
    assert_eq!(cluster.find_coordinators(1), 1);
    assert_eq!(cluster.end_txns(), vec![end_txn(1, 7, 0, true, V1_END_TXN)]);
}

// ---- v2: the leader is still adding the partition to the transaction ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_produce_concurrent_transactions_is_retried_not_made_abortable() {
    // Kafka 4.x: the leader adds the partition to the transaction itself and, while the previous
    // transaction's markers are still being written, answers CONCURRENT_TRANSACTIONS once its
    // own retries (add.partitions.to.txn.retry.backoff.max.ms) run out. Kafka and Java treat it
    // as retriable.
    let cluster = TxnCluster::start(true, (1000, 0), |_, req, model| match req {
        Req::Produce { .. } if model.nth(ApiKey::Produce) == 1 => {
            Some(refuse(req, CONCURRENT_TRANSACTIONS, model))
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[0]).await;
    within(producer.commit_transaction())
        .await
        .expect("the produce is retried and the commit succeeds");
    for f in futures {
        let md = within(f).await.expect("record delivered");
        assert_eq!(md.offset, Some(0));
    }
    assert_eq!(
        cluster.produced(),
        vec![(0, 1000, 0, 0, 1), (0, 1000, 0, 0, 1)],
        "the same batch again: same producer id, epoch and sequence"
    );
    assert_eq!(cluster.end_txns(), vec![end_txn(1, 1000, 0, true, 5)]);
}

// ---- TxnOffsetCommit: only the partitions that failed are sent again ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_offset_commit_retries_only_the_partitions_that_failed() {
    let cluster = TxnCluster::start(false, (7, 0), |_, req, model| match req {
        Req::TxnOffsetCommit { partitions, .. } if model.nth(ApiKey::TxnOffsetCommit) == 1 => {
            // Partition 0 is committed; partition 1's group coordinator is still loading.
            let codes = partitions.iter().map(|&(p, _)| {
                (
                    p,
                    if p == 1 {
                        COORDINATOR_LOAD_IN_PROGRESS
                    } else {
                        0
                    },
                )
            });
            Some(txn_offset_commit_answer(codes, model.version))
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    producer.begin_transaction().unwrap();
    send_offsets(&producer, &[(0, 10), (1, 20)])
        .await
        .expect("offsets committed");
    within(producer.commit_transaction()).await.expect("commit");
    assert_eq!(
        cluster.offset_commits(),
        vec![vec![(0, 10), (1, 20)], vec![(1, 20)]]
    );
}

// ---- answers that leave requested partitions out ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_offset_commit_answer_leaving_a_partition_out_sends_it_again_before_the_commit() {
    let cluster = TxnCluster::start(false, (7, 0), |_, req, model| match req {
        Req::TxnOffsetCommit { partitions, .. } if model.nth(ApiKey::TxnOffsetCommit) == 1 => {
            // Partition 0 committed; partition 1 not in the answer at all.
            let codes = partitions
                .iter()
                .filter(|&&(p, _)| p != 1)
                .map(|&(p, _)| (p, 0));
            Some(txn_offset_commit_answer(codes, model.version))
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    producer.begin_transaction().unwrap();
    send_offsets(&producer, &[(0, 10), (1, 20)])
        .await
        .expect("offsets committed");
    // Before the call returned, partition 1 was sent again and answered.
    assert_eq!(
        cluster.offset_commits(),
        vec![vec![(0, 10), (1, 20)], vec![(1, 20)]]
    );
    within(producer.commit_transaction()).await.expect("commit");
    assert_eq!(cluster.end_txns(), vec![end_txn(1, 7, 0, true, V1_END_TXN)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_partitions_answer_leaving_a_partition_out_is_asked_again_after_the_backoff() {
    let cluster = TxnCluster::start(false, (7, 0), |_, req, model| match req {
        Req::AddPartitions { partitions, .. } if model.faulty => {
            // Partition 1 is never in the answer while the fault lasts.
            let results = partitions.iter().filter(|&&p| p != 1).map(|&p| (p, 0));
            Some(add_partitions_answer(results, model.version))
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[0, 1]).await;
    let window = Duration::from_millis(500);
    tokio::time::sleep(window).await;
    let asked = cluster
        .requests(|r| matches!(r, Req::AddPartitions { .. }))
        .len();
    // With retry.backoff.ms 10..50 ms about a dozen; paced by the round trip alone, thousands.
    assert!(
        (2..=30).contains(&asked),
        "{asked} AddPartitionsToTxn in {window:?}"
    );
    assert!(
        cluster.produced().iter().all(|&(p, ..)| p != 1),
        "partition 1 was never added: nothing may be produced to it"
    );
    cluster.heal();
    within(producer.commit_transaction()).await.expect("commit");
    delivered(futures).await;
    let log = cluster.log();
    // The last AddPartitionsToTxn is the one answered for partition 1.
    let added = log
        .iter()
        .rposition(
            |(_, r)| matches!(r, Req::AddPartitions { partitions, .. } if partitions == &[1]),
        )
        .expect("partition 1 asked for alone");
    let produced = log
        .iter()
        .position(
            |(_, r)| matches!(r, Req::Produce { batches, .. } if batches.iter().any(|b| b.0 == 1)),
        )
        .expect("partition 1 produced");
    assert!(added < produced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_refused_then_aborted_do_not_block_the_next_transactions_offsets() {
    const ILLEGAL_GENERATION: i16 = 22;
    let cluster = TxnCluster::start(false, (7, 0), |_, req, model| match req {
        Req::TxnOffsetCommit { .. } if model.nth(ApiKey::TxnOffsetCommit) == 1 => {
            Some(refuse(req, ILLEGAL_GENERATION, model))
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    producer.begin_transaction().unwrap();
    let err = send_offsets(&producer, &[(0, 10)])
        .await
        .expect_err("the group refused the generation");
    assert_eq!(err.class(), ErrorClass::Abortable, "{err}");
    within(producer.abort_transaction()).await.expect("abort");
    producer.begin_transaction().unwrap();
    send_offsets(&producer, &[(0, 11)])
        .await
        .expect("the next transaction's offsets are sent");
    within(producer.commit_transaction()).await.expect("commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_still_retried_when_aborted_do_not_block_the_next_transactions_offsets() {
    let cluster = TxnCluster::start(false, (7, 0), |_, req, model| match req {
        Req::TxnOffsetCommit { .. } if model.faulty => {
            Some(refuse(req, COORDINATOR_LOAD_IN_PROGRESS, model))
        }
        _ => None,
    })
    .await;
    let producer = cluster
        .producer_with(|c| c.max_block = Duration::from_millis(500))
        .await;
    producer.begin_transaction().unwrap();
    let err = send_offsets(&producer, &[(0, 10)])
        .await
        .expect_err("the group coordinator is still loading");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    within(producer.abort_transaction()).await.expect("abort");
    cluster.heal();
    producer.begin_transaction().unwrap();
    send_offsets(&producer, &[(0, 11)])
        .await
        .expect("the next transaction's offsets are sent");
    within(producer.commit_transaction()).await.expect("commit");
    let last = cluster
        .requests(|r| matches!(r, Req::TxnOffsetCommit { .. }))
        .pop()
        .map(|(_, r)| r);
    assert!(
        matches!(last, Some(Req::TxnOffsetCommit { ref partitions, .. }) if partitions == &[(0, 11)]),
        "{last:?}"
    );
}
