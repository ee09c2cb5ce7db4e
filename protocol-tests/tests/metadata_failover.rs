//! Metadata requests move on to another broker when one accepts connections but never answers:
//! a client whose first bootstrap server hangs still connects and lists topics through the second.
//!
//! The cluster is josefk's mock cluster (`josefk::testing`): two brokers, Metadata on the first
//! held far past the request timeout.

use std::time::Duration;

use josefk::admin::Admin;
use josefk::testing::{Api, Fault, MockCluster};
use josefk::ClientConfig;

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
