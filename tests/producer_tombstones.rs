//! Live test: a tombstone (`ProducerRecord::tombstone`, and a null value forwarded with
//! `ProducerRecord::from_parts`) reaches the log with a null value, distinct from an empty one —
//! read back raw (Fetch and josefk's batch decoder) and by Kafka's own ConsoleConsumer, which
//! prints a null value as its `null.literal`.
//!
//! The broker comes from `KAFKA_BOOTSTRAP_SERVERS` (see `common::bootstrap`).

mod common;

use std::time::Duration;

use bytes::Bytes;
use josefk::admin::{Admin, NewTopic};
use josefk::producer::{Producer, ProducerConfig};
use josefk::ProducerRecord;
use josefk_harness::KafkaDist;

use common::*;

#[tokio::test]
async fn a_tombstone_is_logged_with_a_null_value() {
    let bootstrap = bootstrap();
    let admin = Admin::connect(config(&bootstrap)).await.expect("admin");
    let topic = unique_topic("tombstone");
    admin
        .create_topics(&[NewTopic::new(&topic, 1, 1).config("cleanup.policy", "compact")])
        .await
        .expect("create topic");
    let producer = Producer::connect(ProducerConfig::with_client(config(&bootstrap)))
        .await
        .expect("producer");
    let records = [
        ProducerRecord::new(&topic, Bytes::from("v1")).key("k1"),
        ProducerRecord::tombstone(&topic, "k1"),
        ProducerRecord::new(&topic, Bytes::new()).key("k2"),
        ProducerRecord::from_parts(&topic, Some(Bytes::from("k2")), None),
    ];
    for r in records {
        producer
            .send(r)
            .await
            .expect("send")
            .await
            .expect("delivered");
    }
    producer
        .close(Duration::from_secs(30))
        .await
        .expect("close");

    let log = read_log(&bootstrap, &topic, 1).await;
    let logged: Vec<(Option<Bytes>, Option<Bytes>)> = log[&0]
        .iter()
        .flat_map(|b| &b.records)
        .map(|r| (r.key.clone(), r.value.clone()))
        .collect();
    assert_eq!(
        logged,
        vec![
            (Some(Bytes::from("k1")), Some(Bytes::from("v1"))),
            (Some(Bytes::from("k1")), None),
            (Some(Bytes::from("k2")), Some(Bytes::new())),
            (Some(Bytes::from("k2")), None),
        ]
    );

    let java = tokio::task::spawn_blocking(move || {
        let dist = KafkaDist::provision().expect("provision Kafka's tools");
        josefk_harness::run_java_tool(
            &dist,
            "org.apache.kafka.tools.consumer.ConsoleConsumer",
            &[
                "--bootstrap-server",
                &bootstrap,
                "--topic",
                &topic,
                "--from-beginning",
                "--formatter-property",
                "print.key=true",
                "--formatter-property",
                "null.literal=NULL-VALUE",
                "--max-messages",
                "4",
                "--timeout-ms",
                "30000",
            ],
            Duration::from_secs(180),
        )
        .expect("ConsoleConsumer")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&java.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with('k')).collect();
    assert_eq!(
        lines,
        vec!["k1\tv1", "k1\tNULL-VALUE", "k2\t", "k2\tNULL-VALUE"],
        "{stdout}"
    );
}
