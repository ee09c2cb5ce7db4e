//! Live tests of the `josefk::admin::Admin` calls that change topics: configs described and
//! changed incrementally (checked key by key, with their sources; a bad key changes nothing),
//! partitions added (and refused when not more), and records deleted before an offset (the log
//! start moves, a reader from the beginning starts there).
//!
//! The broker comes from `KAFKA_BOOTSTRAP_SERVERS` (see `common::bootstrap`).

mod common;

use std::time::Duration;

use josefk::admin::{Admin, ConfigChange, ConfigResource, ConfigSource, NewTopic, OffsetSpec};
use josefk::consumer::{Consumer, ConsumerConfig};
use josefk::producer::{Producer, ProducerConfig};
use josefk::ErrorCode;
use josefk::{Error, IsolationLevel, ProducerRecord, TopicPartition};

use common::*;

fn value_of(entries: &[josefk::admin::ConfigEntry], key: &str) -> (Option<String>, ConfigSource) {
    let e = entries
        .iter()
        .find(|e| e.name == key)
        .unwrap_or_else(|| panic!("no config {key}"));
    (e.value.clone(), e.source)
}

fn broker_code(e: &Error) -> Option<ErrorCode> {
    match e {
        Error::Broker { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_configs_are_described_and_changed_incrementally() {
    let admin = Admin::connect(config(&bootstrap())).await.unwrap();
    let topic = unique_topic("configs");
    admin
        .create_topics(&[NewTopic::new(&topic, 1, 1).config("retention.ms", "3600000")])
        .await
        .unwrap();
    let resource = ConfigResource::Topic(topic.clone());
    let before = admin.describe_configs(&resource).await.unwrap();
    assert_eq!(
        value_of(&before, "retention.ms"),
        (Some("3600000".into()), ConfigSource::Topic)
    );
    assert_eq!(
        value_of(&before, "max.message.bytes").1,
        ConfigSource::Default
    );

    admin
        .alter_configs(
            &resource,
            &[
                ConfigChange::Set("max.message.bytes".into(), "300000".into()),
                ConfigChange::Delete("retention.ms".into()),
            ],
        )
        .await
        .unwrap();
    // The change reaches the broker that answers through the metadata log: wait for it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let after = loop {
        let after = admin.describe_configs(&resource).await.unwrap();
        if value_of(&after, "retention.ms").1 != ConfigSource::Topic
            || tokio::time::Instant::now() > deadline
        {
            break after;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        value_of(&after, "max.message.bytes"),
        (Some("300000".into()), ConfigSource::Topic)
    );
    assert_ne!(value_of(&after, "retention.ms").1, ConfigSource::Topic);

    // A bad change fails naming the topic and changes nothing.
    let e = admin
        .alter_configs(
            &resource,
            &[
                ConfigChange::Set("max.message.bytes".into(), "400000".into()),
                ConfigChange::Set("retention.ms".into(), "not-a-number".into()),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(broker_code(&e), Some(ErrorCode::InvalidConfig), "{e}");
    assert!(e.to_string().contains(&topic), "{e}");
    let unchanged = admin.describe_configs(&resource).await.unwrap();
    assert_eq!(
        value_of(&unchanged, "max.message.bytes").0.as_deref(),
        Some("300000")
    );

    // A broker's configs come from that broker.
    let node = admin.describe_cluster().await.unwrap().brokers[0].node_id;
    let broker = admin
        .describe_configs(&ConfigResource::Broker(node))
        .await
        .unwrap();
    assert!(broker.iter().any(|e| e.name == "log.retention.hours"));
    admin.delete_topics(&[&topic]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_added_and_records_deleted_before_an_offset() {
    let bootstrap = bootstrap();
    let admin = Admin::connect(config(&bootstrap)).await.unwrap();
    let topic = unique_topic("partitions");
    admin
        .create_topics(&[NewTopic::new(&topic, 2, 1)])
        .await
        .unwrap();
    admin.create_partitions(&topic, 4).await.unwrap();
    let described = admin.describe_topics(&[&topic]).await.unwrap();
    assert_eq!(described[0].partitions.len(), 4);
    let e = admin.create_partitions(&topic, 3).await.unwrap_err();
    assert_eq!(broker_code(&e), Some(ErrorCode::InvalidPartitions), "{e}");

    // Ten records into the new partition 3.
    let producer = Producer::connect(ProducerConfig::with_client(config(&bootstrap)))
        .await
        .unwrap();
    for i in 0..10 {
        producer
            .send(ProducerRecord::new(&topic, format!("r{i}")).partition(3))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    producer.close(Duration::from_secs(30)).await.unwrap();
    let tp = TopicPartition::new(&topic, 3);
    let low = admin.delete_records(&[(tp.clone(), 4)]).await.unwrap();
    assert_eq!(low[&tp], 4);
    let earliest = admin
        .list_offsets(
            &[(tp.clone(), OffsetSpec::Earliest)],
            IsolationLevel::ReadUncommitted,
        )
        .await
        .unwrap();
    assert_eq!(earliest[&tp].offset, 4);
    let mut reader = Consumer::connect(ConsumerConfig::with_client(config(&bootstrap)))
        .await
        .unwrap();
    reader.assign(std::slice::from_ref(&tp)).await.unwrap();
    reader
        .seek_to_beginning(std::slice::from_ref(&tp))
        .await
        .unwrap();
    let mut offsets = Vec::new();
    while offsets.len() < 6 {
        for r in reader.poll(Duration::from_secs(5)).await.unwrap() {
            offsets.push((
                r.offset,
                String::from_utf8_lossy(r.value.as_deref().unwrap()).into_owned(),
            ));
        }
    }
    assert_eq!(
        offsets,
        (4..10).map(|i| (i, format!("r{i}"))).collect::<Vec<_>>()
    );
    // -1: everything up to the high watermark.
    let low = admin.delete_records(&[(tp.clone(), -1)]).await.unwrap();
    assert_eq!(low[&tp], 10);
    admin.delete_topics(&[&topic]).await.unwrap();
}
