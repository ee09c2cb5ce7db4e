//! Live test: the idempotent producer's delivery timeout against a real Kafka that stops
//! answering. The broker of a private one-node cluster is frozen with SIGSTOP (sockets open,
//! nothing answered, as in a long GC pause), records sent meanwhile must settle by
//! `delivery.timeout.ms` (plus one request timeout) as outcome unknown, and after SIGCONT the
//! records sent next must be written exactly once, in order, behind everything before: the
//! producer moved to a new epoch and the broker accepted it. The log is read back with raw
//! Fetch requests, not the producer's bookkeeping.

mod common;

use std::time::{Duration, Instant};

use josefk::admin::{Admin, NewTopic};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{Error, ProducerRecord};
use josefk_harness::ClusterSpec;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(8);
/// Slack on upper bounds: two cores shared with other builds and brokers.
const SLACK: Duration = Duration::from_secs(5);

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

#[tokio::test]
async fn idempotence_and_order_hold_across_a_delivery_timeout() {
    let cluster = common::PrivateCluster::start(ClusterSpec::single()).await;
    let bootstrap = cluster.bootstrap_servers();
    let node = cluster.node_ids().await[0];
    let admin = Admin::connect(common::config(&bootstrap))
        .await
        .expect("admin");
    let topic = common::unique_topic("delivery-timeout");
    admin
        .create_topics(&[NewTopic::new(&topic, 1, 1)])
        .await
        .expect("create topic");
    let client = common::config(&bootstrap)
        .request_timeout(REQUEST_TIMEOUT)
        .connection_setup_timeout(Duration::from_secs(2))
        .retry_backoff(Duration::from_millis(100), Duration::from_millis(500))
        .reconnect_backoff(Duration::from_millis(100), Duration::from_millis(500));
    let mut config = ProducerConfig::with_client(client);
    config.delivery_timeout = DELIVERY_TIMEOUT;
    config.max_block = Duration::from_secs(30);
    let producer = Producer::connect(config).await.expect("producer");
    let send_all = |batch: Vec<String>| {
        let producer = producer.clone();
        let topic = topic.clone();
        async move {
            let mut futures = Vec::new();
            for v in batch {
                let record = ProducerRecord::new(&topic, v).partition(0);
                futures.push(producer.send(record).await.expect("queued"));
            }
            futures
        }
    };

    let before = values("before", 50);
    for f in send_all(before.clone()).await {
        f.await.expect("delivered before the pause");
    }

    cluster.pause_node(node).await;
    let stuck = values("stuck", 20);
    let sent = Instant::now();
    let futures = send_all(stuck.clone()).await;
    for f in futures {
        let error = tokio::time::timeout(DELIVERY_TIMEOUT + REQUEST_TIMEOUT + SLACK * 2, f)
            .await
            .expect("settles while the broker is frozen")
            .expect_err("the broker answers nothing");
        assert!(matches!(error, Error::Undelivered { .. }), "{error:?}");
        assert!(error.outcome_unknown(), "it was sent: {error}");
    }
    let took = sent.elapsed();
    eprintln!(
        "{} unknown-outcome records settled after {took:?}",
        stuck.len()
    );
    assert!(
        took <= DELIVERY_TIMEOUT + REQUEST_TIMEOUT + SLACK,
        "settled after {took:?}"
    );
    cluster.resume_node(node).await;

    let after = values("after", 50);
    for f in send_all(after.clone()).await {
        f.await.expect("delivered after the broker came back");
    }
    producer
        .close(Duration::from_secs(20))
        .await
        .expect("close");

    let log = common::read_log(&bootstrap, &topic, 1).await;
    let written: Vec<String> = log[&0]
        .iter()
        .flat_map(|b| &b.records)
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    // No record twice.
    let mut unique = written.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), written.len(), "duplicates in {written:?}");
    // Everything sent before and after, in send order, `after` behind `before`; of the records
    // whose outcome was unknown, any subset in order, between the two.
    let pick = |prefix: &str| -> Vec<String> {
        written
            .iter()
            .filter(|v| v.starts_with(prefix))
            .cloned()
            .collect()
    };
    assert_eq!(pick("before-"), before);
    assert_eq!(pick("after-"), after);
    let stuck_written = pick("stuck-");
    let mut in_order = stuck_written.clone();
    in_order.sort_by_key(|v| v[6..].parse::<usize>().unwrap());
    assert_eq!(
        stuck_written, in_order,
        "unknown-outcome records out of order"
    );
    let expected: Vec<String> = before
        .iter()
        .chain(&stuck_written)
        .chain(&after)
        .cloned()
        .collect();
    assert_eq!(written, expected);
    eprintln!(
        "{} of {} unknown-outcome records were written; {} records in all",
        stuck_written.len(),
        stuck.len(),
        written.len()
    );
    cluster.shutdown().await;
}
