//! The project's main demo, for now: connect, create a topic, print what the cluster says about
//! itself and the topic.
//!
//! Run with `cargo run --example quickstart`. It uses the broker named by `KAFKA_BOOTSTRAP_SERVERS`
//! if set; otherwise it provisions Apache Kafka from Maven Central (Java 17 and Maven needed),
//! starts a single-node KRaft broker on loopback, and stops it at the end.
//!
//! This becomes the exactly-once demo (consume → transform → produce → commit) as the producer,
//! transactions and consumer land.

use std::time::{SystemTime, UNIX_EPOCH};

use josefk::admin::{Admin, NewTopic, OffsetSpec};
use josefk::{ClientConfig, IsolationLevel, TopicPartition};
use josefk_harness::{ClusterSpec, KafkaCluster};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Keep the broker (if we start one) alive until the end of main; dropping it stops it.
    let (bootstrap, _local_broker) = match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(servers) if !servers.trim().is_empty() => (servers, None),
        _ => {
            eprintln!("KAFKA_BOOTSTRAP_SERVERS not set: starting a local Kafka broker (first run downloads it from Maven Central)...");
            let cluster = KafkaCluster::start(ClusterSpec::single())?;
            (cluster.bootstrap_servers(), Some(cluster))
        }
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(&bootstrap))?;
    Ok(())
}

async fn run(bootstrap: &str) -> josefk::Result<()> {
    let admin = Admin::connect(ClientConfig::new(bootstrap).client_id("josefk-quickstart")).await?;

    let cluster = admin.describe_cluster().await?;
    println!(
        "cluster {} (controller {:?})",
        cluster.cluster_id.as_deref().unwrap_or("?"),
        cluster.controller_id
    );
    for broker in &cluster.brokers {
        println!("  broker {} at {}", broker.node_id, broker.address());
    }

    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let topic = format!("josefk-quickstart-{stamp}");
    admin
        .create_topics(&[NewTopic::new(&topic, 3, 1).config("retention.ms", "600000")])
        .await?;
    println!("created topic {topic}");

    for description in admin.describe_topics(&[&topic]).await? {
        for p in &description.partitions {
            println!(
                "  partition {} leader {:?} epoch {} replicas {:?} isr {:?}",
                p.partition, p.leader, p.leader_epoch, p.replicas, p.isr
            );
        }
    }

    let specs: Vec<_> = (0..3)
        .flat_map(|p| {
            [
                (TopicPartition::new(&topic, p), OffsetSpec::Earliest),
                (TopicPartition::new(&topic, p), OffsetSpec::Latest),
            ]
        })
        .collect();
    // Two lookups because one request holds one spec per partition.
    for spec in [OffsetSpec::Earliest, OffsetSpec::Latest] {
        let wanted: Vec<_> = specs.iter().filter(|(_, s)| *s == spec).cloned().collect();
        let offsets = admin
            .list_offsets(&wanted, IsolationLevel::ReadCommitted)
            .await?;
        let mut rows: Vec<_> = offsets.into_iter().collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        for (tp, offset) in rows {
            println!("  {tp} {spec:?} offset {}", offset.offset);
        }
    }

    admin.delete_topics(&[&topic]).await?;
    println!("deleted topic {topic}");
    Ok(())
}
