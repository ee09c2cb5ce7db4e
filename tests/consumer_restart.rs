//! A consumer group member across a broker crash, on a private single-node cluster: the broker is
//! SIGKILLed and restarted under a member that is consuming. Everything the broker forgot has to
//! be rebuilt by the client: connections, the group (the coordinator reloads it), and the fetch
//! session (a restarted broker answers the old session id with FETCH_SESSION_ID_NOT_FOUND).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use josefk::admin::{Admin, NewTopic, OffsetSpec};
use josefk::consumer::{AutoOffsetReset, CommitMode, Consumer, ConsumerConfig};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{IsolationLevel, ProducerRecord, TopicPartition};
use josefk_harness::ClusterSpec;
use tokio::time::Instant;

use common::PrivateCluster;

async fn produce(bootstrap: &str, topic: &str, prefix: &str, count: usize) {
    let producer = Producer::connect(ProducerConfig::with_client(common::config(bootstrap)))
        .await
        .expect("producer");
    let mut acks = Vec::new();
    for i in 0..count {
        let record = ProducerRecord::new(topic, format!("{prefix}-{i}")).key(format!("k{i}"));
        acks.push(producer.send(record).await.expect("send"));
    }
    for ack in acks {
        ack.await.expect("acknowledged");
    }
    producer.close(Duration::from_secs(30)).await.unwrap();
}

/// Polls (committing after each non-empty poll, retrying what a restart makes fail) until `n`
/// distinct values were read.
async fn read_and_commit(consumer: &mut Consumer, seen: &mut BTreeSet<String>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} records",
            seen.len()
        );
        match consumer.poll(Duration::from_millis(500)).await {
            Ok(records) => {
                for r in &records {
                    seen.insert(String::from_utf8_lossy(r.value.as_deref().unwrap()).into());
                }
                if !records.is_empty() {
                    if let Err(e) = consumer.commit().await {
                        eprintln!("commit failed ({e}); the records come again");
                    }
                }
            }
            Err(e) if e.is_retriable() => eprintln!("poll: {e} (retriable)"),
            Err(e) => panic!("poll: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_member_survives_a_broker_crash_and_restart() {
    let kafka = PrivateCluster::start(ClusterSpec::single()).await;
    let bootstrap = kafka.bootstrap_servers();
    let node = kafka.node_ids().await[0];
    let admin = Admin::connect(common::config(&bootstrap)).await.unwrap();
    let topic = common::unique_topic("restart");
    let group = format!("{topic}-g");
    admin
        .create_topics(&[NewTopic::new(&topic, 3, 1)])
        .await
        .unwrap();
    produce(&bootstrap, &topic, "before", 300).await;

    let config = ConsumerConfig::with_client(
        common::config(&bootstrap)
            .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500)),
    )
    .group_id(&group)
    .auto_offset_reset(AutoOffsetReset::Earliest)
    .commit_mode(CommitMode::Manual)
    .session_timeout(Duration::from_secs(10))
    .heartbeat_interval(Duration::from_millis(500))
    .fetch_max_wait(Duration::from_millis(100));
    let mut consumer = Consumer::connect(config).await.unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut seen = BTreeSet::new();
    read_and_commit(&mut consumer, &mut seen, 300).await;
    // One more (empty) poll: the fetch after the first is incremental within the session.
    assert!(consumer
        .poll(Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    let sessions_before = consumer.fetch_session_stats();
    assert!(
        sessions_before.incremental_requests > 0,
        "{sessions_before:?}"
    );

    kafka.kill_node(node).await;
    kafka.start_node(node).await;
    produce(&bootstrap, &topic, "after", 300).await;
    read_and_commit(&mut consumer, &mut seen, 600).await;
    let expected: BTreeSet<String> = (0..300)
        .flat_map(|i| [format!("before-{i}"), format!("after-{i}")])
        .collect();
    assert_eq!(seen, expected, "every record, before and after the crash");

    // The restarted broker knew nothing of the old fetch session: a new one was started.
    let sessions_after = consumer.fetch_session_stats();
    assert!(
        sessions_after.full_requests > sessions_before.full_requests,
        "{sessions_before:?} → {sessions_after:?}"
    );

    // The group's offsets survived the crash and reached the end.
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = consumer.commit().await {
        assert!(Instant::now() < deadline, "commit after restart: {e}");
        let _ = consumer.poll(Duration::from_millis(200)).await;
    }
    let partitions: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new(&topic, p)).collect();
    let specs: Vec<_> = partitions
        .iter()
        .map(|tp| (tp.clone(), OffsetSpec::Latest))
        .collect();
    let ends = admin
        .list_offsets(&specs, IsolationLevel::ReadUncommitted)
        .await
        .unwrap();
    for (tp, committed) in consumer.committed(&partitions).await.unwrap() {
        assert_eq!(committed, Some(ends[&tp].offset), "{tp}");
    }
    consumer.close().await.unwrap();
    drop(admin);
    kafka.shutdown().await;
}
