//! Durations at the edge of the clock (found by a review: `Duration::MAX` as a timeout panicked
//! with "overflow when adding duration to instant"). Java's `long` millisecond settings
//! (`max.block.ms`, `metadata.max.age.ms`, the backoff maxima, the connection set-up timeout)
//! and per-call timeouts may be anything and mean "no practical bound"; Java's `int` ones
//! (`request.timeout.ms`, `default.api.timeout.ms`, `delivery.timeout.ms`, ...) are refused
//! above `i32::MAX` ms with a config error naming them, as Java's `ConfigDef` refuses them.
//! Against the in-process mock cluster.

use std::time::Duration;

use josefk::admin::Admin;
use josefk::consumer::{AutoOffsetReset, Consumer, ConsumerConfig};
use josefk::producer::{Producer, ProducerConfig};
use josefk::testing::MockCluster;
use josefk::{ClientConfig, Error, ProducerRecord, TopicPartition};

const INT_MAX_MS: Duration = Duration::from_millis(i32::MAX as u64);

/// Every Java `long` setting at `Duration::MAX`, every `int` one at its largest value.
fn boundless(cluster: &MockCluster) -> ClientConfig {
    let mut c = ClientConfig::new(&cluster.bootstrap_servers())
        .request_timeout(INT_MAX_MS)
        .default_api_timeout(INT_MAX_MS)
        .reconnect_backoff(Duration::from_millis(50), Duration::MAX);
    c.metadata_max_age = Duration::MAX;
    c.retry_backoff_max = Duration::MAX;
    c.connection_setup_timeout = Duration::MAX;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_durations_work_end_to_end() {
    let cluster = MockCluster::start(1).await.unwrap();
    cluster.create_topic("t", 1).unwrap();
    let admin = Admin::connect(boundless(&cluster)).await.expect("admin");
    assert!(admin
        .list_topics()
        .await
        .unwrap()
        .contains(&"t".to_string()));

    // `delivery.timeout.ms` must cover `linger.ms` + `request.timeout.ms`, so this one is lower.
    let client = boundless(&cluster).request_timeout(INT_MAX_MS - Duration::from_secs(1));
    let mut config = ProducerConfig::with_client(client).max_block(Duration::MAX);
    config.delivery_timeout = INT_MAX_MS;
    config.transaction_timeout = INT_MAX_MS;
    let producer = Producer::connect(config).await.expect("producer");
    let mut acks = Vec::new();
    for i in 0..3 {
        acks.push(
            producer
                .send(ProducerRecord::new("t", format!("v{i}")))
                .await
                .unwrap(),
        );
    }
    producer.flush().await.unwrap();
    for (i, ack) in acks.into_iter().enumerate() {
        assert_eq!(ack.await.unwrap().offset, Some(i as i64));
    }
    producer.close(Duration::MAX).await.unwrap();

    let config = ConsumerConfig::with_client(boundless(&cluster))
        .auto_offset_reset(AutoOffsetReset::Earliest);
    let mut consumer = Consumer::connect(config).await.expect("consumer");
    consumer
        .assign(&[TopicPartition::new("t", 0)])
        .await
        .unwrap();
    let mut values = Vec::new();
    while values.len() < 3 {
        for r in consumer.poll(Duration::MAX).await.unwrap() {
            values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(values, ["v0", "v1", "v2"]);
    consumer.close().await.unwrap();
}

#[tokio::test]
async fn int_settings_beyond_i32_max_ms_are_config_errors_naming_them() {
    let cluster = MockCluster::start(1).await.unwrap();
    let base = || ClientConfig::new(&cluster.bootstrap_servers());
    let cases: Vec<(&str, ClientConfig)> = vec![
        ("request.timeout.ms", base().request_timeout(Duration::MAX)),
        (
            "default.api.timeout.ms",
            base().default_api_timeout(Duration::MAX),
        ),
    ];
    for (key, config) in cases {
        match Admin::connect(config).await {
            Err(Error::Config(m)) => assert!(m.contains(key), "{m}"),
            other => panic!("{key}: {other:?}"),
        }
    }
    let mut producer = ProducerConfig::with_client(base());
    producer.delivery_timeout = Duration::MAX;
    match Producer::connect(producer).await {
        Err(Error::Config(m)) => assert!(m.contains("delivery.timeout.ms"), "{m}"),
        other => panic!("delivery.timeout.ms: {:?}", other.err()),
    }
    let consumer = ConsumerConfig::with_client(base()).fetch_max_wait(Duration::MAX);
    match Consumer::connect(consumer).await {
        Err(Error::Config(m)) => assert!(m.contains("fetch.max.wait.ms"), "{m}"),
        other => panic!("fetch.max.wait.ms: {:?}", other.err()),
    }
}
