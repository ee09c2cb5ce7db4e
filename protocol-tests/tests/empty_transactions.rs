//! Transactions with nothing sent in them, on josefk's mock cluster (which, as Kafka 4.4,
//! refuses EndTxn for a transaction the coordinator never saw): they end without EndTxn on both
//! protocols, and the flush their commit began ends with them, so the next transaction keeps
//! `linger.ms`. (Live on both protocols: `tests/transactions.rs`, `empty_transactions`.)

use std::time::Duration;

use josefk::producer::{Producer, ProducerConfig};
use josefk::testing::{Api, MockCluster};
use josefk::{ClientConfig, ProducerRecord};

/// A guard against hangs only.
const HANG_GUARD: Duration = Duration::from_secs(60);

async fn producer(cluster: &MockCluster, linger: Duration) -> Producer {
    let config = ProducerConfig::with_client(ClientConfig::new(&cluster.bootstrap_servers()))
        .transactional_id("empty-txn")
        .linger(linger);
    let producer = Producer::connect(config).await.expect("connect");
    producer.init_transactions().await.expect("init");
    producer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_commits_and_aborts_send_no_end_txn_on_either_protocol() {
    for version in [2, 0] {
        let cluster = MockCluster::builder()
            .transaction_version(version)
            .start()
            .await
            .unwrap();
        let producer = producer(&cluster, Duration::from_millis(5)).await;
        for commit in [true, false, true] {
            producer.begin_transaction().unwrap();
            let ended = if commit {
                tokio::time::timeout(HANG_GUARD, producer.commit_transaction()).await
            } else {
                tokio::time::timeout(HANG_GUARD, producer.abort_transaction()).await
            };
            ended
                .expect("hang guard")
                .unwrap_or_else(|e| panic!("v{version} empty (commit {commit}): {e}"));
        }
        assert_eq!(cluster.requests(Api::EndTxn), 0, "v{version}");
        producer.close(Duration::from_secs(10)).await.unwrap();
    }
}

/// After an empty commit, records of the next transaction wait out `linger.ms` (60 s here) and
/// leave with its commit, in one Produce. Were the empty commit's flush left on, the first
/// record would go out alone during the pause below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transaction_after_an_empty_commit_keeps_linger() {
    let cluster = MockCluster::builder()
        .transaction_version(2)
        .start()
        .await
        .unwrap();
    cluster.create_topic("out", 1).unwrap();
    let producer = producer(&cluster, Duration::from_secs(60)).await;
    producer.begin_transaction().unwrap();
    producer.commit_transaction().await.unwrap();

    producer.begin_transaction().unwrap();
    let mut deliveries = Vec::new();
    for i in 0..3 {
        let record = ProducerRecord::new("out", format!("r{i}")).partition(0);
        deliveries.push(producer.send(record).await.unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        cluster.requests(Api::Produce),
        0,
        "nothing leaves before linger or commit"
    );
    tokio::time::timeout(HANG_GUARD, producer.commit_transaction())
        .await
        .expect("hang guard")
        .unwrap();
    for d in deliveries {
        d.await.unwrap();
    }
    assert_eq!(
        cluster.requests(Api::Produce),
        1,
        "one request, at the commit"
    );
    assert_eq!(
        cluster.end_offset("out", 0),
        Some(4),
        "3 records and the commit marker"
    );
    producer.close(Duration::from_secs(10)).await.unwrap();
}
