//! The mock cluster held to the real broker: the sample user project's scenarios
//! (`examples/testing-sample/src/scenarios.rs`), which its own tests run against
//! `josefk::testing::MockCluster`, run here unchanged against a real Kafka.
//!
//! Live: `cargo run -p josefk-harness -- test --test testing_parity`. The exactly-once scenario
//! starts its own single-node cluster and restarts its broker as the fault (on the mock, the fault
//! is a coordinator move with every connection cut).

mod common;

// The sample crate's library, compiled into this test: its scenarios are plain functions of a
// `bootstrap.servers` string, so the same code runs against both targets.
#[allow(dead_code)]
#[path = "../examples/testing-sample/src/lib.rs"]
mod sample;

use common::{bootstrap, init_tracing, PrivateCluster};
use josefk_harness::ClusterSpec;
use sample::scenarios;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume() {
    init_tracing();
    scenarios::produce_consume(&bootstrap()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_shares_partitions() {
    init_tracing();
    scenarios::group_shares_partitions(&bootstrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_skips_aborted() {
    init_tracing();
    scenarios::read_committed_skips_aborted(&bootstrap())
        .await
        .unwrap();
}

/// The copier while its broker (coordinator of its group and transaction, leader of every
/// partition) is stopped and started again, then a copier crash inside a transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_copy_survives_broker_restart() {
    let cluster = PrivateCluster::start(ClusterSpec::single()).await;
    let servers = cluster.bootstrap_servers();
    let restart = |_names| {
        let cluster = cluster.clone();
        async move {
            let id = cluster.node_ids().await[0];
            cluster.stop_node(id).await;
            cluster.start_node(id).await;
        }
    };
    let outcome = scenarios::exactly_once_copy(&servers, restart).await;
    cluster.shutdown().await;
    outcome.unwrap();
}
