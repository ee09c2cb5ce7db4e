//! Live tests of `josefk::admin::Admin` against a real Kafka broker.
//!
//! - Topic lifecycle: create with 6 partitions and configs, describe (partitions, leaders that
//!   are brokers of `describe_cluster`), configs checked three ways (DescribeConfigs, Kafka's own
//!   `TopicCommand --describe`, and the broker enforcing `max.message.bytes`), create again
//!   (TOPIC_ALREADY_EXISTS naming the topic), delete (then UNKNOWN_TOPIC_OR_PARTITION), delete
//!   again; `list_topics` forgets a deleted topic.
//! - Errors the broker raises for bad requests reach the caller with the topic named
//!   (INVALID_REPLICATION_FACTOR, INVALID_PARTITIONS).
//! - Offsets: earliest/latest are 0/0 on an empty topic; after records written by josefk (raw
//!   Produce to one partition) and by Kafka's `ConsoleProducer`, latest offsets count exactly the
//!   records written, and timestamp lookups find the right record.
//!
//! The broker comes from `KAFKA_BOOTSTRAP_SERVERS` (see `common::bootstrap`).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use josefk::admin::{Admin, NewTopic, OffsetSpec};
use josefk::ErrorCode;
use josefk::{Error, IsolationLevel, TopicPartition};
use josefk_harness::KafkaDist;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::DescribeConfigsRequest;
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use common::*;

const PARTITIONS: i32 = 6;
const MAX_MESSAGE_BYTES: &str = "200000";
const RETENTION_MS: &str = "3600000";

async fn admin() -> Admin {
    Admin::connect(config(&bootstrap()))
        .await
        .expect("connect to the shared broker")
}

/// The `(value, source)` of each named config of `topic`, by a raw DescribeConfigs request.
async fn describe_configs(admin: &Admin, topic: &str, keys: &[&str]) -> Vec<(String, String, i8)> {
    const TOPIC_RESOURCE: i8 = 2;
    let _ = admin;
    let conn = common::RawCluster::new(&bootstrap()).any().await;
    let response = conn
        .send(&DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(TOPIC_RESOURCE)
                    .with_resource_name(StrBytes::from_string(topic.to_owned()))
                    .with_configuration_keys(Some(
                        keys.iter()
                            .map(|k| StrBytes::from_string((*k).to_owned()))
                            .collect(),
                    )),
            ]))
        .await
        .expect("DescribeConfigs");
    let result = &response.results[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    assert_eq!(result.resource_name.as_str(), topic);
    result
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                c.config_source,
            )
        })
        .collect()
}

/// Runs `org.apache.kafka.tools.TopicCommand --describe` and returns its stdout.
async fn java_describe_topic(bootstrap: String, topic: String) -> String {
    tokio::task::spawn_blocking(move || {
        let dist = KafkaDist::provision().expect("provision Kafka's tools");
        let out = josefk_harness::run_java_tool(
            &dist,
            "org.apache.kafka.tools.TopicCommand",
            &[
                "--bootstrap-server",
                &bootstrap,
                "--describe",
                "--topic",
                &topic,
            ],
            Duration::from_secs(60),
        )
        .expect("run TopicCommand");
        assert!(
            out.status.success(),
            "TopicCommand failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    })
    .await
    .unwrap()
}

/// Writes `lines` as records with Kafka's `ConsoleProducer` (acks=all), which spreads them over
/// partitions as the Java client does.
async fn java_console_produce(bootstrap: String, topic: String, lines: Vec<String>) {
    tokio::task::spawn_blocking(move || {
        let dist = KafkaDist::provision().expect("provision Kafka's tools");
        let stdin = lines.join("\n") + "\n";
        let out = josefk_harness::run_java_tool_with_stdin(
            &dist,
            "org.apache.kafka.tools.ConsoleProducer",
            &[
                "--bootstrap-server",
                &bootstrap,
                "--topic",
                &topic,
                "--producer-property",
                "acks=all",
            ],
            stdin.as_bytes(),
            Duration::from_secs(60),
        )
        .expect("run ConsoleProducer");
        assert!(
            out.status.success(),
            "ConsoleProducer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await
    .unwrap()
}

fn broker_code(e: &Error) -> Option<ErrorCode> {
    match e {
        Error::Broker { code, .. } => Some(*code),
        _ => None,
    }
}

/// Create → describe → configs → create again → delete → describe → delete again.
#[tokio::test(flavor = "multi_thread")]
async fn topic_lifecycle_with_partitions_leaders_and_configs() {
    let admin = admin().await;
    let cluster = admin.describe_cluster().await.expect("describe cluster");
    assert!(cluster.cluster_id.is_some(), "KRaft clusters have an id");
    assert!(!cluster.brokers.is_empty());
    let broker_ids: HashSet<i32> = cluster.brokers.iter().map(|b| b.node_id).collect();
    let controller = cluster.controller_id.expect("metadata names a controller");
    assert!(
        broker_ids.contains(&controller),
        "controller {controller} is a broker"
    );

    let topic = unique_topic("lifecycle");
    admin
        .create_topics(&[NewTopic::new(&topic, PARTITIONS, 1)
            .config("max.message.bytes", MAX_MESSAGE_BYTES)
            .config("retention.ms", RETENTION_MS)])
        .await
        .expect("create topic");
    assert!(admin.list_topics().await.unwrap().contains(&topic));

    let described = admin.describe_topics(&[&topic]).await.expect("describe");
    assert_eq!(described.len(), 1);
    let t = &described[0];
    assert_eq!(t.name, topic);
    assert!(!t.internal);
    assert_ne!(t.id, [0; 16], "a topic id (KIP-516)");
    let indexes: Vec<i32> = t.partitions.iter().map(|p| p.partition).collect();
    assert_eq!(indexes, (0..PARTITIONS).collect::<Vec<_>>());
    for p in &t.partitions {
        let leader = p.leader.expect("every partition has a leader");
        assert!(
            broker_ids.contains(&leader),
            "leader {leader} of partition {} is not a broker of describe_cluster {broker_ids:?}",
            p.partition
        );
        assert_eq!(p.replicas.len(), 1, "replication factor 1");
        assert_eq!(p.replicas[0], leader);
        assert_eq!(p.isr, p.replicas);
        assert!(p.leader_epoch >= 0);
        assert_eq!(p.error, None);
    }

    // The configs were stored as topic overrides (source 1 = DYNAMIC_TOPIC_CONFIG)...
    let mut configs =
        describe_configs(&admin, &topic, &["max.message.bytes", "retention.ms"]).await;
    configs.sort();
    assert_eq!(
        configs,
        vec![
            (
                "max.message.bytes".to_owned(),
                MAX_MESSAGE_BYTES.to_owned(),
                1
            ),
            ("retention.ms".to_owned(), RETENTION_MS.to_owned(), 1),
        ]
    );
    // ...Kafka's own tool sees the same topic...
    let java = java_describe_topic(bootstrap(), topic.clone()).await;
    assert!(java.contains(&format!("Topic: {topic}")), "{java}");
    assert!(
        java.contains(&format!("PartitionCount: {PARTITIONS}")),
        "{java}"
    );
    assert!(
        java.contains(&format!("max.message.bytes={MAX_MESSAGE_BYTES}")),
        "{java}"
    );
    assert!(
        java.contains(&format!("retention.ms={RETENTION_MS}")),
        "{java}"
    );
    // ...and the broker enforces them: a record over max.message.bytes is refused.
    let leader = t.partitions[0].leader.unwrap();
    let conn = common::RawCluster::new(&bootstrap()).node(leader).await;
    produce(&conn, &topic, 0, &records("small", 1, now_ms())).await;
    let mut big = records("big", 1, now_ms());
    big[0].value = Some(vec![b'x'; 300_000].into());
    let response = conn
        .send(&produce_request(&topic, 0, &big, -1))
        .await
        .unwrap();
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        ErrorCode::MessageTooLarge.code(),
        "a 300 kB record must exceed max.message.bytes={MAX_MESSAGE_BYTES}"
    );

    // Creating it again fails with TOPIC_ALREADY_EXISTS, and says which topic.
    let e = admin
        .create_topics(&[NewTopic::new(&topic, PARTITIONS, 1)])
        .await
        .expect_err("topic exists");
    assert_eq!(broker_code(&e), Some(ErrorCode::TopicAlreadyExists), "{e}");
    assert!(e.to_string().contains(&topic), "{e} should name {topic}");
    assert!(!e.is_retriable());

    admin.delete_topics(&[&topic]).await.expect("delete");
    // Deletion is committed by the controller; the broker's metadata follows within moments.
    let deadline = Instant::now() + Duration::from_secs(15);
    let e = loop {
        match admin.describe_topics(&[&topic]).await {
            Err(e) => break e,
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Ok(_) => panic!("{topic} still described 15 s after deletion"),
        }
    };
    assert_eq!(
        broker_code(&e),
        Some(ErrorCode::UnknownTopicOrPartition),
        "{e}"
    );
    assert!(e.to_string().contains(&topic), "{e}");
    assert!(!admin.list_topics().await.unwrap().contains(&topic));
    let e = admin
        .delete_topics(&[&topic])
        .await
        .expect_err("already deleted");
    assert_eq!(
        broker_code(&e),
        Some(ErrorCode::UnknownTopicOrPartition),
        "{e}"
    );
    assert!(e.to_string().contains(&topic), "{e}");
}

/// Requests the broker refuses come back as broker errors naming the topic, and create nothing.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_topic_requests_are_refused_with_the_topic_named() {
    let admin = admin().await;
    let brokers = admin.describe_cluster().await.unwrap().brokers.len();

    let topic = unique_topic("bad-rf");
    let e = admin
        .create_topics(&[NewTopic::new(&topic, 1, brokers as i16 + 1)])
        .await
        .expect_err("more replicas than brokers");
    assert_eq!(
        broker_code(&e),
        Some(ErrorCode::InvalidReplicationFactor),
        "{e}"
    );
    assert!(e.to_string().contains(&topic), "{e}");

    let topic2 = unique_topic("bad-partitions");
    let e = admin
        .create_topics(&[NewTopic::new(&topic2, 0, 1)])
        .await
        .expect_err("zero partitions");
    assert_eq!(broker_code(&e), Some(ErrorCode::InvalidPartitions), "{e}");
    assert!(e.to_string().contains(&topic2), "{e}");

    let names = admin.list_topics().await.unwrap();
    assert!(!names.contains(&topic) && !names.contains(&topic2));
}

/// Calls about a topic that does not exist fail with UNKNOWN_TOPIC_OR_PARTITION, as Java's do:
/// they were retried until `default.api.timeout.ms` and then reported as a timeout.
#[tokio::test(flavor = "multi_thread")]
async fn calls_on_a_missing_topic_say_it_is_unknown() {
    use josefk::admin::{ConfigChange, ConfigResource};
    let admin = admin().await;
    let missing = unique_topic("missing");
    let e = admin
        .create_partitions(&missing, 4)
        .await
        .expect_err("no such topic");
    assert_eq!(
        broker_code(&e),
        Some(ErrorCode::UnknownTopicOrPartition),
        "{e}"
    );
    assert!(e.to_string().contains(&missing), "{e}");
    assert!(!e.is_retriable(), "{e}");
    let resource = ConfigResource::Topic(missing.clone());
    let e = admin
        .describe_configs(&resource)
        .await
        .expect_err("no such topic");
    assert_eq!(
        broker_code(&e),
        Some(ErrorCode::UnknownTopicOrPartition),
        "{e}"
    );
    let e = admin
        .alter_configs(
            &resource,
            &[ConfigChange::Set("retention.ms".into(), "1000".into())],
        )
        .await
        .expect_err("no such topic");
    assert_eq!(
        broker_code(&e),
        Some(ErrorCode::UnknownTopicOrPartition),
        "{e}"
    );
    let e = admin.create_partitions("", 4).await.expect_err("no name");
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    // A negative timestamp (-1 and -2 would silently mean latest and earliest on the wire), and
    // a partition named twice (the broker refuses the request), are refused before sending.
    let tp = TopicPartition::new(&missing, 0);
    for specs in [
        vec![(tp.clone(), OffsetSpec::Timestamp(-1))],
        vec![
            (tp.clone(), OffsetSpec::Latest),
            (tp.clone(), OffsetSpec::Earliest),
        ],
    ] {
        let e = admin
            .list_offsets(&specs, IsolationLevel::ReadUncommitted)
            .await
            .expect_err("refused");
        assert!(matches!(e, Error::InvalidArgument(_)), "{specs:?}: {e:?}");
    }
}

/// One refused topic in a batch does not hide the others: they are created (and ready) or
/// deleted, and the refusal is the call's error (an existing topic to create, a missing one to
/// delete, which is not retriable).
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_topic_in_a_batch_leaves_the_others_done() {
    let admin = admin().await;
    let (existing, new) = (unique_topic("exists"), unique_topic("new"));
    admin
        .create_topics(&[NewTopic::new(&existing, 1, 1)])
        .await
        .unwrap();
    let e = admin
        .create_topics(&[NewTopic::new(&existing, 1, 1), NewTopic::new(&new, 2, 1)])
        .await
        .expect_err("one exists");
    assert_eq!(broker_code(&e), Some(ErrorCode::TopicAlreadyExists), "{e}");
    // Created and waited for: its partitions answer at once.
    let ends = admin
        .list_offsets(
            &[
                (TopicPartition::new(&new, 0), OffsetSpec::Latest),
                (TopicPartition::new(&new, 1), OffsetSpec::Latest),
            ],
            IsolationLevel::ReadUncommitted,
        )
        .await
        .expect("the new topic is ready");
    assert_eq!(ends.len(), 2);
    let missing = unique_topic("missing");
    let e = admin
        .delete_topics(&[&missing, &existing])
        .await
        .expect_err("one is missing");
    assert_eq!(
        broker_code(&e),
        Some(ErrorCode::UnknownTopicOrPartition),
        "{e}"
    );
    assert!(!e.is_retriable(), "retrying cannot help: {e}");
    let names = admin.list_topics().await.unwrap();
    assert!(!names.contains(&existing), "the existing one was deleted");
    admin.delete_topics(&[&new]).await.unwrap();
}

/// `list_topics` after another client deleted a topic no longer names it, though this client saw it
/// (the cached metadata once kept every topic an answer about all topics left out).
#[tokio::test(flavor = "multi_thread")]
async fn list_topics_forgets_a_deleted_topic() {
    let (admin, other) = (admin().await, admin().await);
    let topic = unique_topic("listed-then-deleted");
    admin
        .create_topics(&[NewTopic::new(&topic, 2, 1)])
        .await
        .expect("create topic");
    assert!(admin.list_topics().await.unwrap().contains(&topic));
    // Deleted by another client, so this one learns of it only from its next answers.
    other.delete_topics(&[&topic]).await.expect("delete");
    // The broker's metadata follows the controller's deletion within moments.
    let deadline = Instant::now() + Duration::from_secs(15);
    while admin.list_topics().await.unwrap().contains(&topic) {
        assert!(
            Instant::now() < deadline,
            "{topic} still listed 15 s after deletion"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And it stays gone: the next answer about every topic does not bring it back.
    assert!(!admin.list_topics().await.unwrap().contains(&topic));
}

/// Earliest/latest offsets are 0/0 on an empty topic; after josefk writes 5 records to one
/// partition and Kafka's console producer writes 20 more anywhere, latest offsets add up to
/// exactly what was written, and a timestamp lookup finds the record with that timestamp.
#[tokio::test(flavor = "multi_thread")]
async fn list_offsets_on_empty_and_written_topic() {
    let admin = admin().await;
    let topic = unique_topic("offsets");
    admin
        .create_topics(&[NewTopic::new(&topic, PARTITIONS, 1)])
        .await
        .expect("create topic");
    let all = |spec: OffsetSpec| -> Vec<(TopicPartition, OffsetSpec)> {
        (0..PARTITIONS)
            .map(|p| (TopicPartition::new(&topic, p), spec))
            .collect()
    };
    let offsets =
        |found: &std::collections::HashMap<TopicPartition, josefk::admin::ListedOffset>| {
            (0..PARTITIONS)
                .map(|p| found[&TopicPartition::new(&topic, p)].offset)
                .collect::<Vec<_>>()
        };

    for spec in [OffsetSpec::Earliest, OffsetSpec::Latest] {
        let found = admin
            .list_offsets(&all(spec), IsolationLevel::ReadUncommitted)
            .await
            .expect("list offsets");
        assert_eq!(found.len(), PARTITIONS as usize);
        assert_eq!(offsets(&found), vec![0; PARTITIONS as usize], "{spec:?}");
    }

    // Five records on partition 2, an hour in the past, one ms apart.
    let tp2 = TopicPartition::new(&topic, 2);
    let t0 = now_ms() - 3_600_000;
    let conn = common::RawCluster::new(&bootstrap())
        .leader_connection(&tp2.topic, tp2.partition)
        .await;
    assert_eq!(produce(&conn, &topic, 2, &records("raw", 5, t0)).await, 0);
    let found = admin
        .list_offsets(&all(OffsetSpec::Latest), IsolationLevel::ReadUncommitted)
        .await
        .unwrap();
    assert_eq!(offsets(&found), vec![0, 0, 5, 0, 0, 0]);
    let found = admin
        .list_offsets(
            &[
                (tp2.clone(), OffsetSpec::Earliest),
                (TopicPartition::new(&topic, 3), OffsetSpec::Timestamp(t0)),
            ],
            IsolationLevel::ReadCommitted,
        )
        .await
        .unwrap();
    assert_eq!(found[&tp2].offset, 0);
    assert_eq!(
        found[&TopicPartition::new(&topic, 3)].offset,
        -1,
        "no record at or after t0 on an empty partition"
    );
    let found = admin
        .list_offsets(
            &[(tp2.clone(), OffsetSpec::Timestamp(t0 + 2))],
            IsolationLevel::ReadUncommitted,
        )
        .await
        .unwrap();
    assert_eq!(found[&tp2].offset, 2, "first record with timestamp >= t0+2");
    assert_eq!(found[&tp2].timestamp, Some(t0 + 2));
    let found = admin
        .list_offsets(
            &[(tp2.clone(), OffsetSpec::Timestamp(now_ms() + 60_000))],
            IsolationLevel::ReadUncommitted,
        )
        .await
        .unwrap();
    assert_eq!(found[&tp2].offset, -1, "nothing in the future");

    // Twenty more through the Java client.
    let lines: Vec<String> = (0..20).map(|i| format!("console-{i}")).collect();
    java_console_produce(bootstrap(), topic.clone(), lines).await;
    let latest = admin
        .list_offsets(&all(OffsetSpec::Latest), IsolationLevel::ReadUncommitted)
        .await
        .unwrap();
    let earliest = admin
        .list_offsets(&all(OffsetSpec::Earliest), IsolationLevel::ReadUncommitted)
        .await
        .unwrap();
    assert_eq!(offsets(&earliest), vec![0; PARTITIONS as usize]);
    let total: i64 = offsets(&latest).iter().sum();
    assert_eq!(total, 25, "latest offsets {:?}", offsets(&latest));
    assert!(latest[&tp2].offset >= 5);

    admin.delete_topics(&[&topic]).await.expect("delete");
}
