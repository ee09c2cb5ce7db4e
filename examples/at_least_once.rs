//! At-least-once order processing: every order must be processed; processing one twice is
//! tolerable (the processing is idempotent downstream, or duplicates are filtered by id).
//!
//! ```text
//! cargo run --example at_least_once
//! ```
//!
//! It uses the broker named by `KAFKA_BOOTSTRAP_SERVERS`, or provisions Apache Kafka and starts a
//! local single-node broker. Then:
//!
//! 1. a producer with [`Guarantee::AtLeastOnce`] (`acks=all`, retries within
//!    `delivery.timeout.ms`) writes `ORDERS` orders and awaits every acknowledgement: an order
//!    counts as sent only once the broker has it on all in-sync replicas;
//! 2. consumer A, a group member with manual commits ([`CommitMode::Manual`]), processes one poll's
//!    orders and crashes before committing them (dropped without `close`, as a killed process);
//! 3. consumer B joins the same group, resumes from the committed offsets, and processes the rest,
//!    calling `commit()` after each poll's orders are processed.
//!
//! The summary counts orders sent, processed, duplicates and lost; the program exits non-zero if
//! an order was lost, if more orders were duplicated than A processed without committing, or if
//! the group's committed offsets are not the topic's end.
//!
//! What the guarantee covers: nothing acknowledged is lost. The producer retries until the broker
//! acknowledges; the consumer commits an offset only after the records before it were processed,
//! so a crash can only leave processed-but-uncommitted records behind, never
//! committed-but-unprocessed ones. What it does not cover: duplicates. A's crash between
//! processing and committing makes B process A's orders again from the last committed offset. (The
//! producer stays idempotent, as by default, so its retries after a lost connection write no
//! second copy; only the consumer side can duplicate.)

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use josefk::admin::{Admin, NewTopic, OffsetSpec};
use josefk::consumer::{AutoOffsetReset, CommitMode, Consumer, ConsumerConfig, ConsumerRecord};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{ClientConfig, Guarantee, IsolationLevel, ProducerRecord, TopicPartition};

const ORDERS: usize = 5_000;
const PARTITIONS: i32 = 3;
/// Consumer A's one poll: processed, never committed.
const CRASH_BATCH: usize = 200;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Keep the broker (if we start one) alive until the end of main; dropping it stops it.
    let (bootstrap, _local_broker) = josefk_harness::bootstrap_or_local_broker()?;
    let runtime = tokio::runtime::Runtime::new()?;
    if !runtime.block_on(run(&bootstrap))? {
        std::process::exit(1);
    }
    Ok(())
}

fn consumer_config(bootstrap: &str, group: &str, max_poll_records: usize) -> ConsumerConfig {
    ConsumerConfig::new(bootstrap)
        .group_id(group)
        .guarantee(Guarantee::AtLeastOnce)
        // Guarantee::AtLeastOnce defaults to Java's auto-commit at the next poll; committing by
        // hand right after processing narrows the window of records a crash makes us redo.
        .commit_mode(CommitMode::Manual)
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .max_poll_records(max_poll_records)
        // A short session so the crashed member's partitions move to B within seconds.
        .session_timeout(Duration::from_secs(6))
        .heartbeat_interval(Duration::from_millis(500))
}

/// "Processing" an order: count it by its id.
fn process(record: &ConsumerRecord, processed: &mut BTreeMap<usize, usize>) {
    let id = record
        .value
        .as_deref()
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.strip_prefix("order-")?.split(' ').next()?.parse().ok())
        .unwrap_or(usize::MAX);
    *processed.entry(id).or_default() += 1;
}

async fn run(bootstrap: &str) -> josefk::Result<bool> {
    let admin = Admin::connect(ClientConfig::new(bootstrap)).await?;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let topic = format!("josefk-at-least-once-{stamp}");
    let group = format!("{topic}-billing");
    admin
        .create_topics(&[NewTopic::new(&topic, PARTITIONS, 1).config("retention.ms", "600000")])
        .await?;
    println!("topic {topic}, group {group}");

    let producer =
        Producer::connect(ProducerConfig::new(bootstrap).guarantee(Guarantee::AtLeastOnce)).await?;
    let mut deliveries = Vec::with_capacity(ORDERS);
    for i in 0..ORDERS {
        let order = format!("order-{i} customer-{} amount {}", i % 50, 10 + i % 90);
        let record = ProducerRecord::new(&topic, order).key(format!("customer-{}", i % 50));
        deliveries.push(producer.send(record).await?);
    }
    // Every order must be acknowledged: a failed delivery (after josefk's retries) is an error.
    for delivery in deliveries {
        delivery.await?;
    }
    let sent = ORDERS;
    producer.close(Duration::from_secs(10)).await?;

    let mut processed: BTreeMap<usize, usize> = BTreeMap::new();

    // Consumer A: process one poll, crash before `commit`.
    let mut a = Consumer::connect(consumer_config(bootstrap, &group, CRASH_BATCH)).await?;
    a.subscribe(&[&topic])?;
    let mut uncommitted = 0;
    while uncommitted == 0 {
        let records = a.poll(Duration::from_secs(1)).await?;
        for record in &records {
            process(record, &mut processed);
        }
        uncommitted = records.len();
    }
    drop(a);
    println!("consumer A processed {uncommitted} orders and crashed before committing them");

    // Consumer B resumes from the committed offsets: nothing was committed, so from the start.
    let mut b = Consumer::connect(consumer_config(bootstrap, &group, 500)).await?;
    b.subscribe(&[&topic])?;
    let mut idle_since = tokio::time::Instant::now();
    // Stop once every order was processed, or after 30 s without a record (then orders are lost
    // and the check below fails).
    while processed.len() < sent && idle_since.elapsed() < Duration::from_secs(30) {
        let records = b.poll(Duration::from_millis(500)).await?;
        if records.is_empty() {
            continue;
        }
        idle_since = tokio::time::Instant::now();
        for record in &records {
            process(record, &mut processed);
        }
        // Only now, with every record of this poll processed, move the group's offsets past them.
        b.commit().await?;
    }

    let partitions: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(&topic, p))
        .collect();
    let committed = b.committed(&partitions).await?;
    b.close().await?;
    let specs: Vec<_> = partitions
        .iter()
        .map(|tp| (tp.clone(), OffsetSpec::Latest))
        .collect();
    let ends = admin
        .list_offsets(&specs, IsolationLevel::ReadUncommitted)
        .await?;
    let in_log: i64 = ends.values().map(|o| o.offset).sum();
    let committed_at_end = committed.iter().all(|(tp, c)| *c == Some(ends[tp].offset));

    let lost = (0..sent).filter(|id| !processed.contains_key(id)).count();
    let duplicates: usize = processed.values().map(|n| n - 1).sum();
    let unknown = processed.keys().filter(|id| **id >= sent).count();
    println!(
        "sent {sent} (all acknowledged), in the log {in_log}, written twice by producer retries {}",
        (in_log - sent as i64).max(0)
    );
    println!(
        "processed {} distinct orders, lost {lost}, duplicates {duplicates} \
         (A's uncommitted batch: {uncommitted}; allowed: at least once)",
        processed.len()
    );
    println!("committed offsets at the log end: {committed_at_end}");
    admin.delete_topics(&[&topic]).await?;
    let ok = lost == 0
        && unknown == 0
        // Redelivered: A's uncommitted batch, plus any order a producer retry wrote twice.
        && duplicates <= uncommitted + (in_log - sent as i64).max(0) as usize
        && committed_at_end;
    println!("check: {}", if ok { "OK" } else { "FAILED" });
    Ok(ok)
}
