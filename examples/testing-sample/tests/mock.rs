//! The sample's scenarios against `josefk::testing::MockCluster`: plain `cargo test`, no Java.
//! (josefk's `tests/testing_parity.rs` runs the same scenarios against a real Kafka.)

use josefk::testing::{Api, Fault, MockCluster};
use josefk_testing_sample::scenarios;

/// Kafka's NOT_LEADER_OR_FOLLOWER.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume() {
    let cluster = MockCluster::start(3).await.unwrap();
    // A retriable error on the first produce: the idempotent producer retries it.
    cluster.inject(Fault::error(Api::Produce, NOT_LEADER_OR_FOLLOWER));
    scenarios::produce_consume(&cluster.bootstrap_servers())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_shares_partitions() {
    let cluster = MockCluster::start(3).await.unwrap();
    scenarios::group_shares_partitions(&cluster.bootstrap_servers())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_skips_aborted() {
    let cluster = MockCluster::start(1).await.unwrap();
    scenarios::read_committed_skips_aborted(&cluster.bootstrap_servers())
        .await
        .unwrap();
}

/// The copier under a coordinator move: both its group and its transaction coordinator move to
/// another broker, every connection is cut, and the next produce response is lost (the producer
/// must retry it without writing it twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_copy_survives_coordinator_move() {
    let cluster = MockCluster::start(3).await.unwrap();
    let bootstrap = cluster.bootstrap_servers();
    scenarios::exactly_once_copy(&bootstrap, |names| {
        let other = |current: i32| {
            cluster
                .broker_ids()
                .into_iter()
                .find(|&b| b != current)
                .unwrap()
        };
        let group_to = other(cluster.group_coordinator(&names.group));
        let txn_to = other(cluster.transaction_coordinator(&names.transactional_id));
        cluster
            .move_group_coordinator(&names.group, group_to)
            .unwrap();
        cluster
            .move_transaction_coordinator(&names.transactional_id, txn_to)
            .unwrap();
        cluster.drop_connections();
        cluster.inject(Fault::drop_response(Api::Produce));
        async {}
    })
    .await
    .unwrap();
}

/// The transaction scenarios on both transaction protocols: `transaction.version` 2 (KIP-890,
/// Kafka 4's default: partitions and groups added implicitly, an epoch bump per transaction) and
/// 0 (AddPartitionsToTxn, AddOffsetsToTxn).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_on_both_transaction_versions() {
    for version in [0, 2] {
        let cluster = MockCluster::builder()
            .brokers(3)
            .transaction_version(version)
            .start()
            .await
            .unwrap();
        let bootstrap = cluster.bootstrap_servers();
        scenarios::read_committed_skips_aborted(&bootstrap)
            .await
            .unwrap_or_else(|e| panic!("transaction.version {version}: {e}"));
        scenarios::exactly_once_copy(&bootstrap, |_| {
            cluster.drop_connections();
            async {}
        })
        .await
        .unwrap_or_else(|e| panic!("transaction.version {version}: {e}"));
        let explicit_adds = cluster.requests(Api::AddPartitionsToTxn);
        if version == 2 {
            assert_eq!(
                explicit_adds, 0,
                "KIP-890 clients add partitions by producing"
            );
        } else {
            assert!(
                explicit_adds > 0,
                "transaction.version 0 needs AddPartitionsToTxn"
            );
        }
        assert!(cluster.requests(Api::EndTxn) >= 3);
    }
}
