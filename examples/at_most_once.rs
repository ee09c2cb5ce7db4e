//! At-most-once telemetry: metrics that are worth nothing once stale, where a lost sample is
//! acceptable and a double-counted one is not.
//!
//! ```text
//! cargo run --example at_most_once
//! ```
//!
//! It uses the broker named by `KAFKA_BOOTSTRAP_SERVERS`, or provisions Apache Kafka and starts a
//! local single-node broker. Then:
//!
//! 1. a producer with [`Guarantee::AtMostOnce`] (`acks=0`, no retries, no idempotence) writes
//!    `METRICS` samples to a fresh topic: each is sent once and never acknowledged by the broker;
//! 2. consumer A, a group member with [`Guarantee::AtMostOnce`] (the offsets of a `poll`'s records
//!    are committed *before* `poll` returns them), polls one batch and crashes before processing
//!    it (it is dropped without `close`, as a killed process would be);
//! 3. consumer B joins the same group, resumes from the committed offsets, and processes the rest.
//!
//! The summary counts samples sent, received, duplicates and lost; the program exits non-zero if
//! any sample was received twice or the group's committed offsets are not the topic's end.
//!
//! What the guarantee covers: no sample is delivered to processing twice, by the producer (it never
//! retries) or by the consumer (a record's offset is committed before it is handed out, so a
//! restart never goes back to it). What it does not cover: delivery. A sample can be lost by the
//! producer (`acks=0`: a broker that drops the connection or refuses the write reports nothing) and
//! by the consumer (A's crashed batch is committed and never processed by anyone). The loss is
//! counted, not treated as a failure.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use josefk::admin::{Admin, NewTopic, OffsetSpec};
use josefk::consumer::{AutoOffsetReset, Consumer, ConsumerConfig};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{ClientConfig, Guarantee, IsolationLevel, ProducerRecord, TopicPartition};

const METRICS: usize = 5_000;
const PARTITIONS: i32 = 3;
/// Consumer A's one poll: the batch its crash loses.
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
        .guarantee(Guarantee::AtMostOnce)
        // A new group has nothing committed: start from the first sample.
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .max_poll_records(max_poll_records)
        // A short session so the crashed member's partitions move to B within seconds.
        .session_timeout(Duration::from_secs(6))
        .heartbeat_interval(Duration::from_millis(500))
}

async fn run(bootstrap: &str) -> josefk::Result<bool> {
    let admin = Admin::connect(ClientConfig::new(bootstrap)).await?;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let topic = format!("josefk-at-most-once-{stamp}");
    let group = format!("{topic}-dashboard");
    admin
        .create_topics(&[NewTopic::new(&topic, PARTITIONS, 1).config("retention.ms", "600000")])
        .await?;
    println!("topic {topic}, group {group}");

    // acks=0: the delivery future resolves once the request is written to the socket; there is no
    // offset to report and no error from the broker to retry on.
    let producer =
        Producer::connect(ProducerConfig::new(bootstrap).guarantee(Guarantee::AtMostOnce)).await?;
    let mut deliveries = Vec::with_capacity(METRICS);
    for i in 0..METRICS {
        let sample = format!("cpu.load host-{} {}.{:02}", i % 7, i % 4, i % 100);
        let record = ProducerRecord::new(&topic, sample)
            .key(format!("host-{}", i % 7))
            .header("metric.id", i.to_string());
        deliveries.push(producer.send(record).await?);
    }
    let mut sent: usize = 0;
    for delivery in deliveries {
        // An error here means the sample never left: it is simply lost (no retry, by design).
        if delivery.await.is_ok() {
            sent += 1;
        }
    }
    producer.close(Duration::from_secs(10)).await?;

    // `received[id]` counts how often sample `id` reached processing.
    let mut received: BTreeMap<usize, usize> = BTreeMap::new();

    // Consumer A: one poll, then a crash before processing. Its batch was committed inside `poll`.
    let mut a = Consumer::connect(consumer_config(bootstrap, &group, CRASH_BATCH)).await?;
    a.subscribe(&[&topic])?;
    let mut crashed_batch = Vec::new();
    while crashed_batch.is_empty() {
        crashed_batch = a.poll(Duration::from_secs(1)).await?;
    }
    drop(a);
    println!(
        "consumer A polled {} samples and crashed before processing them",
        crashed_batch.len()
    );

    // Consumer B takes over from the committed offsets: past A's batch.
    let mut b = Consumer::connect(consumer_config(bootstrap, &group, 500)).await?;
    b.subscribe(&[&topic])?;
    let mut idle_since = tokio::time::Instant::now();
    let expected_by_b = sent.saturating_sub(crashed_batch.len());
    // Stop when B has everything it can get, or after 15 s without a record (loss is allowed, so
    // waiting for `sent` samples could wait forever).
    while received.values().sum::<usize>() < expected_by_b
        && idle_since.elapsed() < Duration::from_secs(15)
    {
        let records = b.poll(Duration::from_millis(500)).await?;
        if !records.is_empty() {
            idle_since = tokio::time::Instant::now();
        }
        for record in records {
            // "Processing": count the sample by its id.
            let id = record
                .headers
                .iter()
                .find(|h| &h.key[..] == b"metric.id")
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok())
                .unwrap_or(usize::MAX);
            *received.entry(id).or_default() += 1;
        }
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

    let processed = received.len();
    let duplicates: usize = received.values().map(|n| n - 1).sum();
    let lost_by_crash = crashed_batch.len();
    println!(
        "sent {sent}, in the log {in_log}, lost by the producer {}",
        (sent as i64 - in_log).max(0)
    );
    println!(
        "processed {processed}, duplicates {duplicates}, lost by consumer A's crash {lost_by_crash}, \
         lost in total {} (allowed: at most once)",
        METRICS - processed
    );
    println!("committed offsets at the log end: {committed_at_end}");
    admin.delete_topics(&[&topic]).await?;
    let ok = duplicates == 0 && committed_at_end && processed + lost_by_crash == in_log as usize;
    println!("check: {}", if ok { "OK" } else { "FAILED" });
    Ok(ok)
}
