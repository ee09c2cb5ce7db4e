//! A dead-letter queue: records that keep failing are retried a bounded number of times, then set
//! aside with the reason, while healthy records keep flowing.
//!
//! ```text
//! cargo run --example dead_letter_queue                 # deletes its topics at the end
//! cargo run --example dead_letter_queue -- --keep-topics
//! ```
//!
//! It uses the broker named by `KAFKA_BOOTSTRAP_SERVERS`, or provisions Apache Kafka and starts a
//! local single-node broker. It writes `ORDERS` orders to `<base>-orders`: every 50th is "poison"
//! (always fails processing) and every 50th "flaky" (fails its first attempt only).
//!
//! Design: retries go through a **retry topic**, not an in-process loop, so a failing record never
//! blocks its partition (the records behind it are processed at once) and a pending retry survives a
//! crash (it is a record in Kafka, not state in memory). One group member subscribes to the input
//! topic and to `<base>-orders-retry`; for each record:
//!
//! - processing succeeds → the result goes to `<base>-orders-processed`;
//! - it fails and the record's `josefk.retry.count` header (absent = 0) is below `MAX_RETRIES` →
//!   the record is re-produced to the retry topic with the count plus one;
//! - it fails at `MAX_RETRIES` → the record goes to `<base>-orders-dlq` with `josefk.retry.count` =
//!   `MAX_RETRIES`, `josefk.error`, and `josefk.origin.topic`/`.partition`/`.offset` naming where
//!   it first entered the input topic, and the consumer moves on.
//!
//! Every outgoing record keeps the original key, value and headers, and carries the origin headers
//! (set from the input record, copied along retries). Offsets are committed only after every
//! outcome of a poll (output, retry or DLQ record) was acknowledged by the broker: at-least-once.
//! A crash between the acknowledgements and the commit makes the next member redo those records,
//! so an outcome can then be written twice; the idempotent producer (josefk's default) only rules
//! out duplicates from its own retries. Exactly once needs a transaction (see `exactly_once`).
//!
//! It prints the counts and exits non-zero unless the output holds every healthy order, the DLQ
//! every poison one (each once), and the group's committed offsets are the end of both inputs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use josefk::admin::{Admin, NewTopic, OffsetSpec};
use josefk::consumer::{AutoOffsetReset, CommitMode, Consumer, ConsumerConfig, ConsumerRecord};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{ClientConfig, Header, IsolationLevel, ProducerRecord, TopicPartition};

const ORDERS: usize = 1_000;
const PARTITIONS: i32 = 3;
/// Attempts per record: the first one plus `MAX_RETRIES` through the retry topic.
const MAX_RETRIES: u32 = 3;
const RETRY_COUNT: &str = "josefk.retry.count";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keep_topics = std::env::args().any(|a| a == "--keep-topics");
    // Keep the broker (if we start one) alive until the end of main; dropping it stops it.
    let (bootstrap, _local_broker) = josefk_harness::bootstrap_or_local_broker()?;
    let runtime = tokio::runtime::Runtime::new()?;
    if !runtime.block_on(run(&bootstrap, keep_topics))? {
        std::process::exit(1);
    }
    Ok(())
}

/// The business logic: poison orders always fail, flaky ones fail their first attempt.
fn process(value: &str, retry_count: u32) -> Result<String, String> {
    if value.contains("poison") {
        return Err(format!("cannot parse order `{value}`"));
    }
    if value.contains("flaky") && retry_count == 0 {
        return Err("pricing service timed out".into());
    }
    Ok(format!("processed {value}"))
}

fn header(record: &ConsumerRecord, key: &str) -> Option<bytes::Bytes> {
    record
        .headers
        .iter()
        .find(|h| h.key == key.as_bytes())
        .and_then(|h| h.value)
}

/// The record's outcome, routed by the rules in the module docs.
fn route(record: &ConsumerRecord, topics: &Topics) -> (ProducerRecord, Route) {
    let retry_count: u32 = header(record, RETRY_COUNT)
        .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok())
        .unwrap_or(0);
    let value = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).into_owned();
    // The application's own headers travel with the record; josefk.* ones are rewritten below.
    let mut headers: Vec<Header> = record
        .headers
        .to_vec()
        .into_iter()
        .filter(|h| !h.key.starts_with("josefk."))
        .collect();
    // Origin: this record's own coordinates if it comes from the input, else what it carries.
    let origin = [
        ("josefk.origin.topic", record.topic.to_string()),
        ("josefk.origin.partition", record.partition.to_string()),
        ("josefk.origin.offset", record.offset.to_string()),
    ];
    for (key, own) in origin {
        let value = match header(record, key) {
            Some(carried) if *record.topic != *topics.input => carried,
            _ => own.into(),
        };
        headers.push(text_header(key, value));
    }
    let (topic, value, route) = match process(&value, retry_count) {
        Ok(result) => (&topics.output, result.into(), Route::Output),
        Err(error) => {
            headers.push(text_header("josefk.error", error));
            let (topic, count, route) = if retry_count < MAX_RETRIES {
                (&topics.retry, retry_count + 1, Route::Retry)
            } else {
                (&topics.dlq, retry_count, Route::Dlq)
            };
            headers.push(text_header(RETRY_COUNT, count.to_string()));
            (topic, value.into(), route)
        }
    };
    let out = ProducerRecord {
        topic: topic.clone(),
        partition: None,
        key: record.key.clone(),
        value: Some(value),
        headers,
        timestamp: None,
    };
    (out, route)
}

fn text_header(key: &str, value: impl Into<bytes::Bytes>) -> Header {
    Header {
        key: key.to_owned(),
        value: Some(value.into()),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Output,
    Retry,
    Dlq,
}

struct Topics {
    input: String,
    retry: String,
    output: String,
    dlq: String,
}

async fn run(bootstrap: &str, keep_topics: bool) -> josefk::Result<bool> {
    let admin = Admin::connect(ClientConfig::new(bootstrap)).await?;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let base = format!("josefk-dlq-{stamp}-orders");
    let topics = Topics {
        input: base.clone(),
        retry: format!("{base}-retry"),
        output: format!("{base}-processed"),
        dlq: format!("{base}-dlq"),
    };
    let group = format!("{base}-worker");
    let all = [&topics.input, &topics.retry, &topics.output, &topics.dlq];
    let new: Vec<NewTopic> = all
        .iter()
        .map(|t| NewTopic::new(*t, PARTITIONS, 1).config("retention.ms", "3600000"))
        .collect();
    admin.create_topics(&new).await?;
    for (what, name) in ["input", "retry", "output", "dlq"].iter().zip(all) {
        println!("{what} topic {name}");
    }
    println!("group {group}");

    // The idempotent producer (the default): a retried produce never writes an outcome twice.
    let producer = Producer::connect(ProducerConfig::new(bootstrap)).await?;
    let kind = |i: usize| match i % 50 {
        7 => "poison",
        23 => "flaky",
        _ => "ok",
    };
    let count = |k: &str| (0..ORDERS).filter(|i| kind(*i) == k).count() as i64;
    let (poison, flaky) = (count("poison"), count("flaky"));
    let healthy = ORDERS as i64 - poison;
    let mut acks = Vec::new();
    for i in 0..ORDERS {
        let kind = kind(i);
        let record = ProducerRecord::new(&topics.input, format!("order-{i} {kind}"))
            .key(format!("customer-{}", i % 40))
            .header("order.id", i.to_string());
        acks.push(producer.send(record).await?);
    }
    for ack in acks {
        ack.await?;
    }
    println!(
        "produced {ORDERS} orders: {healthy} healthy ({flaky} of them flaky), {poison} poison"
    );

    let config = ConsumerConfig::new(bootstrap)
        .group_id(&group)
        .commit_mode(CommitMode::Manual)
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100));
    let mut consumer = Consumer::connect(config).await?;
    consumer.subscribe(&[&topics.input, &topics.retry])?;
    let (mut outputs, mut retries, mut dead) = (0, 0, 0);
    let mut idle_since = tokio::time::Instant::now();
    while (outputs < healthy || dead < poison) && idle_since.elapsed() < Duration::from_secs(60) {
        let records = consumer.poll(Duration::from_millis(500)).await?;
        if records.is_empty() {
            continue;
        }
        idle_since = tokio::time::Instant::now();
        let mut pending = Vec::with_capacity(records.len());
        for record in &records {
            let (out, route) = route(record, &topics);
            pending.push((producer.send(out).await?, route));
        }
        // The outcome of every record of this poll is durable before its offset is committed;
        // an error returns before the commit, so these records are processed again.
        for (ack, route) in pending {
            ack.await?;
            match route {
                Route::Output => outputs += 1,
                Route::Retry => retries += 1,
                Route::Dlq => dead += 1,
            }
        }
        consumer.commit().await?;
    }

    let inputs: Vec<TopicPartition> = [&topics.input, &topics.retry]
        .iter()
        .flat_map(|t| (0..PARTITIONS).map(|p| TopicPartition::new(*t, p)))
        .collect();
    let committed = consumer.committed(&inputs).await?;
    consumer.close().await?;
    producer.close(Duration::from_secs(10)).await?;
    let specs: Vec<_> = all
        .iter()
        .flat_map(|t| (0..PARTITIONS).map(|p| (TopicPartition::new(*t, p), OffsetSpec::Latest)))
        .collect();
    let ends = admin
        .list_offsets(&specs, IsolationLevel::ReadUncommitted)
        .await?;
    let in_log = |topic: &str| -> i64 {
        ends.iter()
            .filter(|(tp, _)| tp.topic == topic)
            .map(|(_, o)| o.offset)
            .sum()
    };
    let committed_at_end = committed.iter().all(|(tp, c)| *c == Some(ends[tp].offset));
    let (in_output, in_dlq) = (in_log(&topics.output), in_log(&topics.dlq));
    println!(
        "outcomes acknowledged: output {outputs}, retries {retries}, dlq {dead} \
         (max {MAX_RETRIES} retries)"
    );
    println!(
        "in the logs: output {in_output} (expected {healthy}), dlq {in_dlq} (expected {poison}), \
         retry {}",
        in_log(&topics.retry)
    );
    println!("committed offsets at the end of input and retry topics: {committed_at_end}");
    if keep_topics {
        println!("topics kept");
    } else {
        let names: Vec<&str> = all.iter().map(|t| t.as_str()).collect();
        admin.delete_topics(&names).await?;
    }
    let ok = in_output == healthy && in_dlq == poison && committed_at_end;
    println!("check: {}", if ok { "OK" } else { "FAILED" });
    Ok(ok)
}
