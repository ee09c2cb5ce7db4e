//! A first look: connect, create a topic, print what the cluster says about
//! itself and the topic, produce 10,000 keyed records with the idempotent producer, and check the
//! log holds exactly what the broker acknowledged.
//!
//! Run with `cargo run --example quickstart`. It uses the broker named by `KAFKA_BOOTSTRAP_SERVERS`
//! if set; otherwise it provisions Apache Kafka from Maven Central (Java 17 and Maven needed),
//! starts a single-node KRaft broker on loopback, and stops it at the end.
//!
//! The main demo is `examples/exactly_once.rs`.

use std::time::{SystemTime, UNIX_EPOCH};

use josefk::admin::{Admin, NewTopic, OffsetSpec};
use josefk::producer::{Compression, Producer, ProducerConfig};
use josefk::{ClientConfig, IsolationLevel, ProducerRecord, TopicPartition};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Keep the broker (if we start one) alive until the end of main; dropping it stops it.
    let (bootstrap, _local_broker) = josefk_harness::bootstrap_or_local_broker()?;
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

    const RECORDS: usize = 10_000;
    let producer =
        Producer::connect(ProducerConfig::new(bootstrap).compression(Compression::Lz4)).await?;
    let started = std::time::Instant::now();
    let mut deliveries = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let record = ProducerRecord::new(&topic, format!("event {i}"))
            .key(format!("user-{}", i % 100))
            .header("source", "quickstart");
        deliveries.push(producer.send(record).await?);
    }
    let mut acknowledged = 0;
    for delivery in deliveries {
        delivery.await?;
        acknowledged += 1;
    }
    producer.close(std::time::Duration::from_secs(10)).await?;
    println!(
        "produced {acknowledged} records (idempotent, lz4) in {:.2?}",
        started.elapsed()
    );

    let specs: Vec<_> = (0..3)
        .map(|p| (TopicPartition::new(&topic, p), OffsetSpec::Latest))
        .collect();
    let ends = admin
        .list_offsets(&specs, IsolationLevel::ReadCommitted)
        .await?;
    let mut rows: Vec<_> = ends.into_iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut in_log = 0;
    for (tp, offset) in &rows {
        println!("  {tp} end offset {}", offset.offset);
        in_log += offset.offset;
    }
    // A fresh topic written only by this producer: its end offsets count every record written.
    println!(
        "records acknowledged {acknowledged}, records in the log {in_log}: duplicates {}, lost {}",
        (in_log - acknowledged as i64).max(0),
        (acknowledged as i64 - in_log).max(0)
    );
    if in_log != acknowledged as i64 {
        return Err(josefk::Error::InvalidState(
            "the log does not hold exactly the acknowledged records".into(),
        ));
    }

    admin.delete_topics(&[&topic]).await?;
    println!("deleted topic {topic}");
    Ok(())
}
