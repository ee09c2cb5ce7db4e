//! Live tests against a private three-node KRaft cluster (every node a broker and a controller):
//! josefk's cluster view, replica placement, and leader failover.
//!
//! One test, one cluster (starting three JVMs costs 15–20 s), in stages:
//! 1. `describe_cluster` (from Metadata) and a raw DescribeCluster both list the three brokers at
//!    the addresses the harness gave them, none fenced.
//! 2. A topic with replication factor 3 gets 3 replicas per partition, on the three brokers, with
//!    the leader among them and all replicas in sync.
//! 3. Ten records go to partition 0 with acks=all; its leader is SIGKILLed. After metadata
//!    refreshes, partition 0 has another leader with a higher leader epoch, the old leader is out
//!    of the ISR, produce and ListOffsets through josefk succeed against the new leader, and no
//!    acknowledged record was lost (new records continue at offset 10; a fetch returns all).
//! 4. The old leader restarts and rejoins: three brokers again, and it is back in the ISR.
//! 5. A consumer group loses its coordinator: a member has read and committed 300 records, the
//!    group coordinator's broker is SIGKILLed, 300 more records are written; the member finds
//!    the new coordinator, reads all 300 (nothing lost) and commits them there.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use josefk::admin::{Admin, NewTopic, OffsetSpec};
use josefk::consumer::{AutoOffsetReset, CommitMode, Consumer, ConsumerConfig};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{IsolationLevel, ProducerRecord, TopicPartition};
use josefk_harness::ClusterSpec;
use tokio::time::Instant;

use common::*;
use kafka_protocol::messages::DescribeClusterRequest;

/// Polls `f` every 200 ms until it returns `Ok`, or panics after `within` with the last reason.
async fn wait_until<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match f().await {
            Ok(t) => return t,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not within {within:?}; last: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_replicate_and_fail_over_to_a_new_leader() {
    let started = Instant::now();
    // A killed broker is fenced (and its partitions moved) once its session expires: 9 s by
    // default, shortened so failover takes a few seconds.
    let kafka = PrivateCluster::start(
        ClusterSpec::three_nodes()
            // Stage 2b: one rack per node, and leaders that point consumers at their rack's
            // replica (KIP-392).
            .broker_property("broker.rack", "rack-{node_id}")
            .broker_property(
                "replica.selector.class",
                "org.apache.kafka.common.replica.RackAwareReplicaSelector",
            )
            .broker_property("broker.session.timeout.ms", "4000")
            .broker_property("broker.heartbeat.interval.ms", "500"),
    )
    .await;
    eprintln!("three-node cluster up in {:?}", started.elapsed());
    let ids = kafka.node_ids().await;
    assert_eq!(ids.len(), 3);
    let config = config(&kafka.bootstrap_servers())
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500));
    let admin = Admin::connect(config).await.expect("connect");

    // 1. Three brokers, where the harness put them.
    let cluster = admin.describe_cluster().await.expect("describe cluster");
    let seen: Vec<i32> = cluster.brokers.iter().map(|b| b.node_id).collect();
    assert_eq!(
        seen, ids,
        "describe_cluster lists every node, ordered by id"
    );
    for b in &cluster.brokers {
        assert_eq!(b.address(), kafka.broker_address(b.node_id).await);
    }
    assert!(ids.contains(&cluster.controller_id.expect("a controller id")));
    let conn = RawCluster::new(&kafka.bootstrap_servers()).any().await;
    let raw = conn
        .send(&DescribeClusterRequest::default())
        .await
        .expect("DescribeCluster");
    assert_eq!(raw.error_code, 0);
    assert_eq!(Some(raw.cluster_id.to_string()), cluster.cluster_id);
    let raw_ids: BTreeSet<i32> = raw.brokers.iter().map(|b| b.broker_id.0).collect();
    assert_eq!(raw_ids, ids.iter().copied().collect());
    assert!(
        raw.brokers.iter().all(|b| !b.is_fenced),
        "{:?}",
        raw.brokers
    );

    // 2. Replication factor 3: every partition on every broker, all in sync.
    let topic = unique_topic("rf3");
    admin
        .create_topics(&[NewTopic::new(&topic, 3, 3)])
        .await
        .expect("create topic");
    let described = wait_until("all replicas in sync", Duration::from_secs(30), || {
        let admin = admin.clone();
        let topic = topic.clone();
        async move {
            let t = admin
                .describe_topics(&[&topic])
                .await
                .map_err(|e| e.to_string())?
                .remove(0);
            if t.partitions.iter().all(|p| p.isr.len() == 3) {
                Ok(t)
            } else {
                Err(format!("{:?}", t.partitions))
            }
        }
    })
    .await;
    assert_eq!(described.partitions.len(), 3);
    for p in &described.partitions {
        let replicas: BTreeSet<i32> = p.replicas.iter().copied().collect();
        assert_eq!(p.replicas.len(), 3, "partition {}", p.partition);
        assert_eq!(
            replicas,
            ids.iter().copied().collect(),
            "partition {}",
            p.partition
        );
        assert!(replicas.contains(&p.leader.expect("a leader")));
        assert_eq!(p.isr.iter().copied().collect::<BTreeSet<_>>(), replicas);
    }

    reads_from_the_replica_in_its_rack(&kafka, &admin).await;

    // 3. Ten acknowledged records on partition 0, then its leader dies.
    let tp0 = TopicPartition::new(&topic, 0);
    let before = described.partitions[0].clone();
    let old_leader = before.leader.unwrap();
    let conn = RawCluster::new(&kafka.bootstrap_servers())
        .node(old_leader)
        .await;
    assert_eq!(
        produce(&conn, &topic, 0, &records("before", 10, now_ms())).await,
        0
    );

    kafka.kill_node(old_leader).await;
    let killed = Instant::now();
    let after = wait_until(
        "partition 0 has a new leader",
        Duration::from_secs(60),
        || {
            let admin = admin.clone();
            let topic = topic.clone();
            async move {
                let p = admin
                    .describe_topics(&[&topic])
                    .await
                    .map_err(|e| e.to_string())?
                    .remove(0)
                    .partitions
                    .into_iter()
                    .find(|p| p.partition == 0)
                    .ok_or("partition 0 missing")?;
                match p.leader {
                    Some(l) if l != old_leader => Ok(p),
                    _ => Err(format!("{p:?}")),
                }
            }
        },
    )
    .await;
    eprintln!(
        "new leader {:?} (epoch {} -> {}) after {:?}",
        after.leader,
        before.leader_epoch,
        after.leader_epoch,
        killed.elapsed()
    );
    let new_leader = after.leader.unwrap();
    assert!(ids.contains(&new_leader));
    assert!(
        after.leader_epoch > before.leader_epoch,
        "leader epoch must increase: {} -> {}",
        before.leader_epoch,
        after.leader_epoch
    );
    assert!(!after.isr.contains(&old_leader), "ISR {:?}", after.isr);
    assert_eq!(after.replicas.len(), 3, "replica assignment is unchanged");

    // Requests succeed against the new leader, and nothing acknowledged was lost.
    let conn = RawCluster::new(&kafka.bootstrap_servers())
        .node(new_leader)
        .await;
    assert_eq!(
        produce(&conn, &topic, 0, &records("after", 5, now_ms())).await,
        10,
        "the ten acknowledged records survived the failover"
    );
    let latest = admin
        .list_offsets(
            &[(tp0.clone(), OffsetSpec::Latest)],
            IsolationLevel::ReadUncommitted,
        )
        .await
        .expect("list offsets after failover");
    assert_eq!(latest[&tp0].offset, 15);
    let fetch = conn
        .send(&fetch_request(&topic, 0, 0, 500))
        .await
        .expect("fetch from the new leader");
    assert_eq!(fetch_partition_error(&fetch), 0);
    let raw = fetch.responses[0].partitions[0].records.clone().unwrap();
    let values: Vec<String> = raw::batches(raw)
        .unwrap()
        .into_iter()
        .flat_map(|b| b.records)
        .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
        .collect();
    let expected: Vec<String> = (0..10)
        .map(|i| format!("before-{i}"))
        .chain((0..5).map(|i| format!("after-{i}")))
        .collect();
    assert_eq!(values, expected);

    // 4. The old leader comes back and catches up.
    kafka.start_node(old_leader).await;
    wait_until(
        "old leader back in the ISR",
        Duration::from_secs(60),
        || {
            let admin = admin.clone();
            let topic = topic.clone();
            async move {
                let brokers = admin
                    .describe_cluster()
                    .await
                    .map_err(|e| e.to_string())?
                    .brokers;
                let t = admin
                    .describe_topics(&[&topic])
                    .await
                    .map_err(|e| e.to_string())?
                    .remove(0);
                if brokers.len() == 3 && t.partitions[0].isr.contains(&old_leader) {
                    Ok(())
                } else {
                    Err(format!("{} brokers, {:?}", brokers.len(), t.partitions[0]))
                }
            }
        },
    )
    .await;
    group_survives_losing_its_coordinator(&kafka, &admin).await;
    eprintln!("whole three-node scenario took {:?}", started.elapsed());
    // Close josefk's connections first, so the brokers' shutdown is not logged as lost connections.
    drop(admin);
    kafka.shutdown().await;
}

async fn produce_values(bootstrap: &str, topic: &str, prefix: &str, count: usize) {
    let producer = Producer::connect(ProducerConfig::with_client(config(bootstrap)))
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

/// Polls until `n` more records came; returns their values.
async fn poll_values(consumer: &mut Consumer, n: usize, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} records",
            out.len()
        );
        match consumer.poll(Duration::from_millis(500)).await {
            Ok(records) => out.extend(records.iter().map(|r| {
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()
            })),
            Err(e) if e.is_retriable() => eprintln!("poll: {e} (retriable)"),
            Err(e) => panic!("poll: {e}"),
        }
    }
    out
}

/// Stage 2b (see the module docs): a consumer in a follower's rack reads every record. The
/// leader answers its fetches with no records and that follower as preferred read replica, so
/// the records can only have come from the follower.
async fn reads_from_the_replica_in_its_rack(kafka: &PrivateCluster, admin: &Admin) {
    let bootstrap = kafka.bootstrap_servers();
    let topic = unique_topic("rack");
    admin
        .create_topics(&[NewTopic::new(&topic, 1, 3)])
        .await
        .expect("create topic");
    let partition = wait_until("replicas in sync", Duration::from_secs(30), || {
        let admin = admin.clone();
        let topic = topic.clone();
        async move {
            let mut t = admin
                .describe_topics(&[&topic])
                .await
                .map_err(|e| e.to_string())?
                .remove(0);
            let p = t.partitions.remove(0);
            match p.leader {
                Some(_) if p.isr.len() == 3 => Ok(p),
                _ => Err(format!("{p:?}")),
            }
        }
    })
    .await;
    let leader = partition.leader.unwrap();
    let follower = *partition.replicas.iter().find(|r| **r != leader).unwrap();
    produce_values(&bootstrap, &topic, "rack", 50).await;
    let mut config = ConsumerConfig::with_client(config(&bootstrap));
    config.client_rack = format!("rack-{follower}");
    let mut consumer = Consumer::connect(config).await.expect("consumer");
    let tp = TopicPartition::new(&topic, 0);
    consumer.assign(std::slice::from_ref(&tp)).await.unwrap();
    consumer.seek(&tp, 0).unwrap();
    let values = poll_values(&mut consumer, 50, Duration::from_secs(60)).await;
    let expected: Vec<String> = (0..50).map(|i| format!("rack-{i}")).collect();
    assert_eq!(
        values, expected,
        "leader {leader}, read from rack-{follower}'s replica"
    );
    consumer.close().await.unwrap();
}

/// Stage 5 (see the module docs).
async fn group_survives_losing_its_coordinator(kafka: &PrivateCluster, admin: &Admin) {
    let bootstrap = kafka.bootstrap_servers();
    let topic = unique_topic("group-failover");
    let group = format!("{topic}-g");
    admin
        .create_topics(&[NewTopic::new(&topic, 3, 3)])
        .await
        .expect("create topic");
    produce_values(&bootstrap, &topic, "before", 300).await;
    let consumer_config = ConsumerConfig::with_client(
        config(&bootstrap).reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500)),
    )
    .group_id(&group)
    .auto_offset_reset(AutoOffsetReset::Earliest)
    .commit_mode(CommitMode::Manual)
    .session_timeout(Duration::from_secs(10))
    .heartbeat_interval(Duration::from_millis(500));
    let mut consumer = Consumer::connect(consumer_config).await.expect("consumer");
    consumer.subscribe(&[&topic]).unwrap();
    let mut seen = poll_values(&mut consumer, 300, Duration::from_secs(60)).await;
    consumer.commit().await.expect("commit before the failure");

    let coordinator = admin
        .describe_groups(&[&group])
        .await
        .expect("group coordinator")[0]
        .coordinator;
    eprintln!("killing group coordinator {coordinator}");
    kafka.kill_node(coordinator).await;
    produce_values(&bootstrap, &topic, "after", 300).await;
    seen.extend(poll_values(&mut consumer, 300, Duration::from_secs(90)).await);
    // At-least-once: a member removed during the failover would read its uncommitted records
    // again, so duplicates are reported, not refused.
    let distinct: BTreeSet<&String> = seen.iter().collect();
    eprintln!("read {} records, {} distinct", seen.len(), distinct.len());
    let expected: BTreeSet<String> = (0..300)
        .flat_map(|i| [format!("before-{i}"), format!("after-{i}")])
        .collect();
    assert_eq!(distinct, expected.iter().collect(), "nothing lost");

    // The commit goes to the new coordinator, and a fresh lookup sees it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match consumer.commit().await {
            Ok(()) => break,
            Err(e) => {
                assert!(Instant::now() < deadline, "commit after failover: {e}");
                eprintln!("commit after failover: {e}; polling to rejoin");
                let _ = consumer.poll(Duration::from_millis(200)).await;
            }
        }
    }
    let new_coordinator = admin
        .describe_groups(&[&group])
        .await
        .expect("new group coordinator")[0]
        .coordinator;
    assert_ne!(new_coordinator, coordinator);
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
        assert_eq!(
            committed,
            Some(ends[&tp].offset),
            "{tp} committed at its end"
        );
    }
    consumer.close().await.unwrap();
    kafka.start_node(coordinator).await;
}
