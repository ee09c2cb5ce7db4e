//! Default `client.id`s, as Java gives them: one per client, so that broker logs, quotas and
//! the metrics' `client-id` tag tell clients apart (a shared default made clients in one
//! process overwrite each other's metrics). Against the in-process mock cluster.

use josefk::admin::Admin;
use josefk::consumer::{Consumer, ConsumerConfig};
use josefk::producer::{Producer, ProducerConfig};
use josefk::testing::MockCluster;
use josefk::{ClientConfig, Guarantee};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_gets_its_own_client_id_unless_one_is_set() {
    let cluster = MockCluster::start(1).await.unwrap();
    let client = || ClientConfig::new(&cluster.bootstrap_servers());
    let p1 = Producer::connect(ProducerConfig::with_client(client()))
        .await
        .unwrap();
    let p2 = Producer::connect(ProducerConfig::with_client(client()))
        .await
        .unwrap();
    let (id1, id2) = (p1.metrics().client_id, p2.metrics().client_id);
    assert!(
        id1.starts_with("producer-") && id2.starts_with("producer-"),
        "{id1} {id2}"
    );
    assert_ne!(id1, id2);
    let txn = Producer::connect(
        ProducerConfig::with_client(client())
            .guarantee(Guarantee::ExactlyOnce)
            .transactional_id("orders-copier"),
    )
    .await
    .unwrap();
    assert_eq!(txn.metrics().client_id, "producer-orders-copier");
    let grouped = Consumer::connect(ConsumerConfig::with_client(client()).group_id("billing"))
        .await
        .unwrap();
    let id = grouped.metrics().client_id;
    assert!(id.starts_with("consumer-billing-"), "{id}");
    let plain = Consumer::connect(ConsumerConfig::with_client(client()))
        .await
        .unwrap();
    let id = plain.metrics().client_id;
    assert!(
        id.starts_with("consumer-") && id[9..].parse::<u64>().is_ok(),
        "{id}"
    );
    let admin = Admin::connect(client()).await.unwrap();
    assert!(admin.metrics().client_id.starts_with("adminclient-"));
    let named = Admin::connect(client().client_id("ops")).await.unwrap();
    assert_eq!(named.metrics().client_id, "ops");
}
