//! Requests move on when a broker accepts connections but never answers: Metadata goes to the
//! next broker (a client whose first bootstrap server hangs still connects and lists topics
//! through the second), and a group coordinator that stops answering is looked up again (a commit
//! reaches the coordinator the group moved to).
//!
//! The cluster is josefk's mock cluster (`josefk::testing`): two brokers, one request type held
//! far past the request timeout on one of them.

use std::time::Duration;

use josefk::admin::Admin;
use josefk::consumer::{Consumer, ConsumerConfig};
use josefk::testing::{Api, Fault, MockCluster};
use josefk::{ClientConfig, TopicPartition};

/// A guard against hangs only.
const HANG_GUARD: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_goes_to_the_next_broker_when_one_never_answers() {
    let cluster = MockCluster::start(2).await.unwrap();
    let hung = cluster.broker_ids()[0];
    cluster.create_topic("orders", 3).unwrap();
    cluster.inject(
        Fault::delay(Api::Metadata, Duration::from_secs(600))
            .on_broker(hung)
            .times(1000),
    );
    // The hung broker first in bootstrap.servers, so it is asked first.
    let servers = servers_with_first(&cluster, hung);
    let config = ClientConfig::new(&servers).request_timeout(Duration::from_secs(1));
    let admin = tokio::time::timeout(HANG_GUARD, Admin::connect(config))
        .await
        .expect("hang guard")
        .expect("connects through the broker that answers");
    // Twice: the second refresh starts from the pooled brokers, the hung one among them.
    for _ in 0..2 {
        let topics = tokio::time::timeout(HANG_GUARD, admin.list_topics())
            .await
            .expect("hang guard")
            .expect("listed through the broker that answers");
        assert!(topics.contains(&"orders".to_string()), "{topics:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_finds_the_new_coordinator_when_the_old_one_stops_answering() {
    let cluster = MockCluster::start(2).await.unwrap();
    cluster.create_topic("orders", 1).unwrap();
    let group = "silent-coordinator";
    let client = ClientConfig::new(&cluster.bootstrap_servers())
        .request_timeout(Duration::from_secs(1))
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(200));
    let mut consumer = Consumer::connect(
        ConsumerConfig::with_client(client)
            .group_id(group)
            .default_api_timeout(Duration::from_secs(20)),
    )
    .await
    .unwrap();
    let tp = TopicPartition::new("orders", 0);
    consumer.assign(std::slice::from_ref(&tp)).await.unwrap();
    consumer.commit_offsets(&[(tp.clone(), 0)]).await.unwrap();
    // The coordinator hangs; the group moves to the other broker.
    let old = cluster.group_coordinator(group);
    let new = cluster
        .broker_ids()
        .into_iter()
        .find(|&b| b != old)
        .unwrap();
    cluster.inject(
        Fault::delay(Api::OffsetCommit, Duration::from_secs(600))
            .on_broker(old)
            .times(1000),
    );
    cluster.move_group_coordinator(group, new).unwrap();
    tokio::time::timeout(HANG_GUARD, consumer.commit_offsets(&[(tp.clone(), 7)]))
        .await
        .expect("hang guard")
        .expect("committed through the group's new coordinator");
    assert_eq!(cluster.committed_offset(group, "orders", 0), Some(7));
}

/// The cluster's `bootstrap.servers` with broker `node` first.
fn servers_with_first(cluster: &MockCluster, node: i32) -> String {
    // `broker_ids` and `bootstrap_servers` list the brokers in the same order.
    let mut servers: Vec<(i32, String)> = cluster
        .broker_ids()
        .into_iter()
        .zip(cluster.bootstrap_servers().split(',').map(str::to_owned))
        .collect();
    servers.sort_by_key(|(id, _)| *id != node);
    let servers: Vec<String> = servers.into_iter().map(|(_, s)| s).collect();
    servers.join(",")
}
