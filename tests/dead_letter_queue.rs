//! Live test of the `dead_letter_queue` example: it runs the example binary against the shared
//! broker (with `--keep-topics`), then judges the topics it leaves with an independent reader
//! (raw Fetch requests and josefk's batch decoder, [`common::read_log`]), not with the example's
//! own counts:
//!
//! - every poison input record is in the DLQ exactly once, with `josefk.retry.count` = 3, its
//!   origin topic/partition/offset, its key, value and headers, and an error;
//! - it went through the retry topic once per retry count 1..=3, and each flaky record once;
//! - every healthy input record is in the output exactly once, processed, naming its origin;
//! - nothing else is in the output or the DLQ;
//! - the group's committed offsets are the end offsets of the input and retry topics.
//!
//! The test builds the example binary itself (into its own target directory and profile) and
//! runs it with `KAFKA_BOOTSTRAP_SERVERS` set.

mod common;

use common::raw::RawRecord as Record;

use std::collections::BTreeMap;

use josefk::admin::{Admin, OffsetSpec};
use josefk::consumer::{Consumer, ConsumerConfig};
use josefk::{IsolationLevel, TopicPartition};

/// The example's retry bound (`MAX_RETRIES` there; its summary line repeats it and is checked).
const MAX_RETRIES: u32 = 3;
/// The example's partitions per topic.
const PARTITIONS: i32 = 3;

fn text(bytes: Option<&[u8]>) -> String {
    String::from_utf8_lossy(bytes.unwrap_or_default()).into_owned()
}

/// The value of header `key` (the last one if repeated), as text.
fn header(record: &Record, key: &str) -> Option<String> {
    record
        .headers
        .iter()
        .filter(|h| h.key == key.as_bytes())
        .last()
        .map(|h| text(h.value.as_deref()))
}

/// Every record of `topic`, with its partition, in log order per partition.
async fn records(bootstrap: &str, topic: &str) -> Vec<(i32, Record)> {
    common::read_log(bootstrap, topic, PARTITIONS)
        .await
        .into_iter()
        .flat_map(|(p, batches)| {
            batches
                .into_iter()
                .flat_map(|b| b.records)
                .map(move |r| (p, r))
        })
        .collect()
}

/// The input record `record` names in its origin headers, checking they name the input topic.
fn origin<'a>(
    record: &Record,
    input_topic: &str,
    input: &'a BTreeMap<(i32, i64), Record>,
    seen_in: &str,
) -> &'a Record {
    assert_eq!(
        header(record, "josefk.origin.topic").as_deref(),
        Some(input_topic),
        "{seen_in} record at offset {} names the wrong origin topic",
        record.offset
    );
    let partition: i32 = header(record, "josefk.origin.partition")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "{seen_in} record {} lacks an origin partition",
                record.offset
            )
        });
    let offset: i64 = header(record, "josefk.origin.offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{seen_in} record {} lacks an origin offset", record.offset));
    let original = input.get(&(partition, offset)).unwrap_or_else(|| {
        panic!("{seen_in} record names origin {input_topic}-{partition}@{offset}, not in the input")
    });
    assert_eq!(
        record.key, original.key,
        "{seen_in} record keeps the original key"
    );
    assert_eq!(
        header(record, "order.id"),
        header(original, "order.id"),
        "{seen_in} record keeps the application's headers"
    );
    original
}

#[tokio::test]
async fn poison_records_reach_the_dlq_once_after_the_retries_and_healthy_ones_the_output_once() {
    let bootstrap = common::bootstrap();
    let stdout = common::run_example("dead_letter_queue", &["--keep-topics"]);
    assert!(
        stdout.contains(&format!("(max {MAX_RETRIES} retries)")),
        "the example's retry bound is not the one this test checks"
    );
    let named = |what: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(what))
            .unwrap_or_else(|| panic!("the example names its {what}"))
            .trim()
            .to_owned()
    };
    let (input_topic, retry_topic) = (named("input topic "), named("retry topic "));
    let (output_topic, dlq_topic) = (named("output topic "), named("dlq topic "));
    let group = named("group ");

    let admin = Admin::connect(common::config(&bootstrap)).await.unwrap();
    let input: BTreeMap<(i32, i64), Record> = records(&bootstrap, &input_topic)
        .await
        .into_iter()
        .map(|(p, r)| ((p, r.offset), r))
        .collect();
    let is_poison = |r: &Record| text(r.value.as_deref()).contains("poison");
    let poison_count = input.values().filter(|r| is_poison(r)).count();
    let flaky_count = input
        .values()
        .filter(|r| text(r.value.as_deref()).contains("flaky"))
        .count();
    assert!(
        poison_count > 0 && flaky_count > 0 && input.len() > poison_count + flaky_count,
        "the input mixes poison, flaky and healthy records"
    );

    // The DLQ: each poison record once, after MAX_RETRIES retries, with its origin and an error.
    let mut in_dlq: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for (_, r) in records(&bootstrap, &dlq_topic).await {
        let original = origin(&r, &input_topic, &input, "DLQ");
        assert!(is_poison(original), "only poison records reach the DLQ");
        assert_eq!(r.value, original.value, "the DLQ keeps the original value");
        assert_eq!(
            header(&r, "josefk.retry.count"),
            Some(MAX_RETRIES.to_string()),
            "DLQ retry count"
        );
        let error = header(&r, "josefk.error").unwrap_or_default();
        assert!(error.contains("cannot parse order"), "DLQ error: {error:?}");
        let key = (
            header(&r, "josefk.origin.partition")
                .unwrap()
                .parse()
                .unwrap(),
            header(&r, "josefk.origin.offset").unwrap().parse().unwrap(),
        );
        *in_dlq.entry(key).or_default() += 1;
    }
    for (at, r) in input.iter().filter(|(_, r)| is_poison(r)) {
        assert_eq!(
            in_dlq.get(at),
            Some(&1),
            "poison record {at:?} {r:?} in the DLQ"
        );
    }
    assert_eq!(in_dlq.len(), poison_count);

    // The retry topic: poison records at counts 1..=MAX_RETRIES, flaky ones at count 1, once each.
    let mut retried: BTreeMap<(i32, i64), Vec<u32>> = BTreeMap::new();
    for (_, r) in records(&bootstrap, &retry_topic).await {
        origin(&r, &input_topic, &input, "retry");
        let count = header(&r, "josefk.retry.count").unwrap().parse().unwrap();
        let key = (
            header(&r, "josefk.origin.partition")
                .unwrap()
                .parse()
                .unwrap(),
            header(&r, "josefk.origin.offset").unwrap().parse().unwrap(),
        );
        retried.entry(key).or_default().push(count);
    }
    for (at, r) in &input {
        let mut counts = retried.remove(at).unwrap_or_default();
        counts.sort_unstable();
        let expected: Vec<u32> = if is_poison(r) {
            (1..=MAX_RETRIES).collect()
        } else if text(r.value.as_deref()).contains("flaky") {
            vec![1]
        } else {
            vec![]
        };
        assert_eq!(counts, expected, "retries of {at:?} {r:?}");
    }
    assert!(retried.is_empty(), "retries of records not in the input");

    // The output: every healthy record once, processed.
    let mut in_output: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for (_, r) in records(&bootstrap, &output_topic).await {
        let original = origin(&r, &input_topic, &input, "output");
        assert!(!is_poison(original), "a poison record reached the output");
        assert_eq!(
            text(r.value.as_deref()),
            format!("processed {}", text(original.value.as_deref()))
        );
        let key = (
            header(&r, "josefk.origin.partition")
                .unwrap()
                .parse()
                .unwrap(),
            header(&r, "josefk.origin.offset").unwrap().parse().unwrap(),
        );
        *in_output.entry(key).or_default() += 1;
    }
    for (at, r) in input.iter().filter(|(_, r)| !is_poison(r)) {
        assert_eq!(
            in_output.get(at),
            Some(&1),
            "healthy record {at:?} {r:?} in the output"
        );
    }
    assert_eq!(in_output.len(), input.len() - poison_count);

    // The group committed exactly up to the end of what it consumed.
    let consumed: Vec<TopicPartition> = [&input_topic, &retry_topic]
        .iter()
        .flat_map(|t| (0..PARTITIONS).map(|p| TopicPartition::new(t.as_str(), p)))
        .collect();
    let specs: Vec<_> = consumed
        .iter()
        .map(|tp| (tp.clone(), OffsetSpec::Latest))
        .collect();
    let ends = admin
        .list_offsets(&specs, IsolationLevel::ReadUncommitted)
        .await
        .unwrap();
    let reader = Consumer::connect(
        ConsumerConfig::with_client(common::config(&bootstrap)).group_id(group.as_str()),
    )
    .await
    .unwrap();
    for (tp, committed) in reader.committed(&consumed).await.unwrap() {
        assert_eq!(
            committed,
            Some(ends[&tp].offset),
            "{tp}: committed offset vs end"
        );
    }
    assert_eq!(
        ends.iter()
            .filter(|(tp, _)| tp.topic == input_topic)
            .map(|(_, o)| o.offset)
            .sum::<i64>(),
        input.len() as i64
    );

    admin
        .delete_topics(&[&input_topic, &retry_topic, &output_topic, &dlq_topic])
        .await
        .unwrap();
}
