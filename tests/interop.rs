//! Interoperability with Kafka's own Java client, live against a real broker.
//!
//! What this file proves, for every codec (none, gzip, snappy, lz4, zstd):
//!
//! - josefk → Java: what josefk's `Producer` writes (keys, null keys, tombstones, empty values,
//!   non-ASCII UTF-8, headers in order with duplicate keys, empty and null header values) is read
//!   back by Java's `ConsoleConsumer` record for record, at the offsets josefk's delivery reports
//!   named, in send order per partition.
//! - Java → josefk: what Java's `ConsoleProducer` writes with each codec is decoded by josefk's
//!   raw Fetch + `RecordBatches` path identically, and Java's partitioner put every keyed record
//!   where josefk's murmur2 `partition_for_key` says it goes.
//! - read_committed: a Java consumer at `isolation.level=read_committed` sees every record of
//!   josefk's (non-transactional) idempotent producer, so josefk's batches are never mistaken
//!   for transactional ones and hold the last stable offset back.
//!
//! The Java side is the reference implementation, so any difference is a josefk bug (or a
//! documented limitation of the console tools, noted where it shapes the data).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use josefk::admin::{Admin, NewTopic, OffsetSpec};
use josefk::producer::partition_for_key;
use josefk::producer::{Producer, ProducerConfig};
use josefk::{Header, IsolationLevel, ProducerRecord, TopicPartition};
use josefk_harness::KafkaDist;

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
/// Records per codec: enough for several batches per partition with the JVM's defaults.
const PER_CODEC: usize = 200;
/// Partitions per topic: records are spread (by key), so per-partition order is checked.
const PARTITIONS: i32 = 2;

/// Both console tools show a null key, value or header value as this marker (`null.literal` for
/// the consumer, `null.marker` for the producer's reader), so null stays distinct from empty.
const NULL: &str = "<NULL>";
/// ConsoleConsumer's separator between headers (its default `,` could appear in data).
const HEADER_SEPARATOR: &str = "\u{1e}";

/// A record as both sides can show it: the console tools deal in UTF-8 text, so keys, values and
/// header values are strings; `None` is null.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    key: Option<String>,
    value: Option<String>,
    headers: Vec<(String, Option<String>)>,
}

/// Record `i` of the `codec` data set. It stays within what the console tools can carry: no tab,
/// newline or `,` (field and header separators of ConsoleProducer's reader), no `:` in header
/// keys (ConsoleProducer splits `key:value` at the first `:`; ConsoleConsumer prints it so), and
/// no literal [`NULL`]. Everything else is exercised: duplicate header keys in order, `:` inside a
/// header value, empty and null header values, non-ASCII UTF-8, null keys, a tombstone and an
/// empty value, and repetitive payloads so the codecs have something to compress.
fn sample(codec: &str, i: usize) -> Rec {
    let mut headers = vec![
        ("h".to_owned(), Some("a".to_owned())),
        ("h".to_owned(), Some("b".to_owned())),
        // The index, so a record can be identified even when its key and value are null.
        ("x".to_owned(), Some(i.to_string())),
        ("ключ".to_owned(), Some("значение ✓".to_owned())),
        ("e".to_owned(), Some(String::new())),
        ("c".to_owned(), Some("x:y".to_owned())),
    ];
    if i % 10 == 4 {
        headers.push(("n".to_owned(), None));
    }
    let key = (i % 50 != 25).then(|| format!("k{i}-ключ-{codec}"));
    let value = match i {
        7 => None,
        8 => Some(String::new()),
        _ => Some(format!(
            "{codec} #{i} naïve café 日本語 🚀 {}",
            "lorem ipsum ".repeat(i % 7)
        )),
    };
    Rec {
        key,
        value,
        headers,
    }
}

/// The index a [`sample`] record carries in its `x` header.
fn index_of(rec: &Rec) -> usize {
    rec.headers
        .iter()
        .find(|(k, _)| k == "x")
        .and_then(|(_, v)| v.as_deref())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("record without an index header: {rec:?}"))
}

fn to_producer_record(topic: &str, rec: &Rec) -> ProducerRecord {
    let mut record = ProducerRecord::new(topic, Vec::new());
    record.key = rec.key.clone().map(Into::into);
    record.value = rec.value.clone().map(Into::into);
    record.headers = rec
        .headers
        .iter()
        .map(|(k, v)| Header {
            key: k.clone(),
            value: v.clone().map(Into::into),
        })
        .collect();
    record
}

fn nullable(field: &str) -> Option<String> {
    (field != NULL).then(|| field.to_owned())
}

fn or_null(field: &Option<String>) -> &str {
    field.as_deref().unwrap_or(NULL)
}

async fn admin(bootstrap: &str) -> Admin {
    Admin::connect(common::config(bootstrap))
        .await
        .expect("admin")
}

/// Creates one fresh topic per name, all with [`PARTITIONS`] partitions.
async fn create_topics(admin: &Admin, names: &[String]) {
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|t| NewTopic::new(t, PARTITIONS, 1))
        .collect();
    admin.create_topics(&topics).await.expect("create topics");
}

/// Runs a Java tool on the blocking pool (it starts a JVM and waits for it) and fails the test
/// if it times out or exits non-zero.
async fn java_tool(main_class: &'static str, args: Vec<String>, stdin: Option<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let dist = KafkaDist::provision().expect("provision Kafka's tools");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let timeout = Duration::from_secs(90);
        let out = match &stdin {
            Some(input) => josefk_harness::run_java_tool_with_stdin(
                &dist,
                main_class,
                &args,
                input.as_bytes(),
                timeout,
            ),
            None => josefk_harness::run_java_tool(&dist, main_class, &args, timeout),
        }
        .unwrap_or_else(|e| panic!("{main_class}: {e}"));
        let stdout = String::from_utf8(out.stdout).expect("tool output is UTF-8");
        assert!(
            out.status.success(),
            "{main_class} {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    })
    .await
    .expect("tool task panicked")
}

/// A record as Java's ConsoleConsumer printed it.
#[derive(Debug)]
struct Consumed {
    partition: i32,
    offset: i64,
    rec: Rec,
}

/// Reads `topic` from the beginning with Java's ConsoleConsumer until `expected` records came (or
/// nothing came for 20 s), printing partition, offset, headers, key and value, and parses them.
async fn console_consume(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    isolation: &str,
) -> Vec<Consumed> {
    let mut args: Vec<String> = [
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--from-beginning",
        "--isolation-level",
        isolation,
        "--max-messages",
        &expected.to_string(),
        "--timeout-ms",
        "20000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for property in [
        "print.partition=true".to_owned(),
        "print.offset=true".to_owned(),
        "print.headers=true".to_owned(),
        "print.key=true".to_owned(),
        "print.value=true".to_owned(),
        "key.separator=\t".to_owned(),
        format!("headers.separator={HEADER_SEPARATOR}"),
        format!("null.literal={NULL}"),
    ] {
        args.push("--formatter-property".to_owned());
        args.push(property);
    }
    let stdout = java_tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        args,
        None,
    )
    .await;
    stdout.lines().map(parse_console_line).collect()
}

/// Parses `Partition:P\tOffset:O\tHEADERS\tKEY\tVALUE`, where HEADERS is `NO_HEADERS` or
/// `k:v` pairs joined by [`HEADER_SEPARATOR`] (split at the first `:`, as header keys hold none).
fn parse_console_line(line: &str) -> Consumed {
    let mut fields = line.splitn(5, '\t');
    let mut next = |what: &str| {
        fields
            .next()
            .unwrap_or_else(|| panic!("no {what} in ConsoleConsumer line {line:?}"))
    };
    let partition = next("partition")
        .strip_prefix("Partition:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("bad partition in {line:?}"));
    let offset = next("offset")
        .strip_prefix("Offset:")
        .and_then(|o| o.parse().ok())
        .unwrap_or_else(|| panic!("bad offset in {line:?}"));
    let headers = match next("headers") {
        "NO_HEADERS" => Vec::new(),
        all => all
            .split(HEADER_SEPARATOR)
            .map(|h| {
                let (k, v) = h
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header {h:?} in {line:?}"));
                (k.to_owned(), nullable(v))
            })
            .collect(),
    };
    let key = nullable(next("key"));
    let value = nullable(next("value"));
    Consumed {
        partition,
        offset,
        rec: Rec {
            key,
            value,
            headers,
        },
    }
}

/// Header fields of one batch, as read from the log.
#[derive(Debug, Clone, Copy)]
struct BatchSeen {
    compression: common::raw::RawCodec,
    producer_id: i64,
    transactional: bool,
}

/// Every data record of `topic` with its offset, per partition in log order, plus the header of
/// every data batch (read with [`common::read_log`]).
async fn read_back(
    bootstrap: &str,
    topic: &str,
) -> (BTreeMap<i32, Vec<(i64, Rec)>>, Vec<BatchSeen>) {
    let text = |b: &bytes::Bytes| String::from_utf8(b.to_vec()).expect("Java wrote UTF-8 text");
    let mut log = BTreeMap::new();
    let mut batches = Vec::new();
    for (p, logged) in common::read_log(bootstrap, topic, PARTITIONS).await {
        let mut records = Vec::new();
        for batch in logged.into_iter().filter(|b| !b.control) {
            if batch.whole {
                batches.push(BatchSeen {
                    compression: batch.compression,
                    producer_id: batch.producer_id,
                    transactional: batch.transactional,
                });
            }
            for r in batch.records {
                let headers = r
                    .headers
                    .iter()
                    .map(|h| {
                        let key = h.key_str().expect("header key is UTF-8").to_owned();
                        (key, h.value.as_ref().map(text))
                    })
                    .collect();
                records.push((
                    r.offset,
                    Rec {
                        key: r.key.as_ref().map(text),
                        value: r.value.as_ref().map(text),
                        headers,
                    },
                ));
            }
        }
        log.insert(p, records);
    }
    (log, batches)
}

/// Sends `records` with a josefk producer configured by `config` and returns, per partition, the
/// records with the offsets their delivery reports named, in send order.
async fn josefk_produce(
    config: ProducerConfig,
    topic: &str,
    records: &[Rec],
) -> BTreeMap<i32, Vec<(i64, Rec)>> {
    let producer = Producer::connect(config).await.expect("producer");
    let mut deliveries = Vec::with_capacity(records.len());
    for (i, rec) in records.iter().enumerate() {
        deliveries.push(
            producer
                .send(to_producer_record(topic, rec))
                .await
                .expect("send"),
        );
        // A flush now and then: several produce requests and batches, not one.
        if i % 64 == 63 {
            producer.flush().await.expect("flush");
        }
    }
    let mut sent: BTreeMap<i32, Vec<(i64, Rec)>> = BTreeMap::new();
    for (d, rec) in deliveries.into_iter().zip(records) {
        let meta = d.await.unwrap_or_else(|e| panic!("{topic}: delivery: {e}"));
        let offset = meta.offset.expect("acks=all reports the offset");
        sent.entry(meta.partition)
            .or_default()
            .push((offset, rec.clone()));
    }
    producer
        .close(Duration::from_secs(10))
        .await
        .expect("close");
    for (p, records) in &sent {
        assert!(
            records.windows(2).all(|w| w[0].0 < w[1].0),
            "{topic}-{p}: delivery offsets follow send order"
        );
    }
    sent
}

/// Asserts that ConsoleConsumer's output is exactly `sent`: the same records at the same offsets,
/// in offset order within each partition, nothing missing and nothing extra.
fn assert_consumed_as_sent(
    what: &str,
    consumed: &[Consumed],
    sent: &BTreeMap<i32, Vec<(i64, Rec)>>,
) {
    let total: usize = sent.values().map(Vec::len).sum();
    assert_eq!(
        consumed.len(),
        total,
        "{what}: ConsoleConsumer record count"
    );
    let mut by_partition: BTreeMap<i32, Vec<(i64, Rec)>> = BTreeMap::new();
    for c in consumed {
        by_partition
            .entry(c.partition)
            .or_default()
            .push((c.offset, c.rec.clone()));
    }
    for (p, expected) in sent {
        let got = by_partition.remove(p).unwrap_or_default();
        assert_eq!(got.len(), expected.len(), "{what}: partition {p} count");
        for (g, e) in got.iter().zip(expected) {
            assert_eq!(g, e, "{what}: partition {p}, Java (left) vs josefk (right)");
        }
    }
    assert!(
        by_partition.is_empty(),
        "{what}: records on unexpected partitions: {by_partition:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn josefk_records_read_identically_by_java_console_consumer_for_every_codec() {
    let bootstrap = common::bootstrap();
    let admin = admin(&bootstrap).await;
    let topics: Vec<String> = CODECS
        .iter()
        .map(|c| common::unique_topic(&format!("interop-to-java-{c}")))
        .collect();
    create_topics(&admin, &topics).await;

    // Produce every codec first, then start the JVMs together: they dominate the run time.
    let mut sent_by_codec = Vec::new();
    for (codec, topic) in CODECS.iter().zip(&topics) {
        let records: Vec<Rec> = (0..PER_CODEC)
            .map(|i| {
                let mut rec = sample(codec, i);
                // A record without headers (ConsoleConsumer prints NO_HEADERS). Only here:
                // ConsoleProducer cannot write one when it parses headers.
                if i == 3 {
                    rec.headers.clear();
                }
                rec
            })
            .collect();
        let config = ProducerConfig::with_client(common::config(&bootstrap))
            .compression(codec.parse().expect("codec"))
            .linger(Duration::from_millis(5));
        let sent = josefk_produce(config, topic, &records).await;
        assert_eq!(
            sent.len(),
            PARTITIONS as usize,
            "{codec}: both partitions used"
        );

        // The batches really are in this codec: the broker keeps the producer's compression
        // (topic compression.type=producer), so Java is decoding josefk's compressed bytes.
        let (log, batches) = read_back(&bootstrap, topic).await;
        assert_eq!(log, sent, "{codec}: josefk reads back what it sent");
        let expected = common::raw::RawCodec::from_name(codec);
        assert!(
            batches.iter().all(|b| b.compression == expected),
            "{codec}: batch codecs {batches:?}"
        );
        assert!(
            batches.len() > PARTITIONS as usize,
            "{codec}: several batches per topic, got {}",
            batches.len()
        );
        sent_by_codec.push(sent);
    }

    let consumers: Vec<_> = topics
        .iter()
        .map(|topic| {
            let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
            tokio::spawn(async move {
                console_consume(&bootstrap, &topic, PER_CODEC, "read_uncommitted").await
            })
        })
        .collect();
    for ((codec, consumer), sent) in CODECS.iter().zip(consumers).zip(&sent_by_codec) {
        let consumed = consumer.await.expect("consumer task");
        assert_consumed_as_sent(&format!("josefk {codec} → Java"), &consumed, sent);
    }
}

/// One ConsoleProducer input line for `rec`, in its reader's default layout with
/// `parse.headers=true parse.key=true`: `h1:v1,h2:v2\tkey\tvalue`.
fn console_producer_line(rec: &Rec) -> String {
    let headers: Vec<String> = rec
        .headers
        .iter()
        .map(|(k, v)| format!("{k}:{}", or_null(v)))
        .collect();
    format!(
        "{}\t{}\t{}",
        headers.join(","),
        or_null(&rec.key),
        or_null(&rec.value)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn java_console_producer_records_decode_identically_in_josefk_for_every_codec() {
    let bootstrap = common::bootstrap();
    let admin = admin(&bootstrap).await;
    let topics: Vec<String> = CODECS
        .iter()
        .map(|c| common::unique_topic(&format!("interop-from-java-{c}")))
        .collect();
    create_topics(&admin, &topics).await;

    let inputs: Vec<Vec<Rec>> = CODECS
        .iter()
        .map(|codec| (0..PER_CODEC).map(|i| sample(codec, i)).collect())
        .collect();
    // One JVM per codec, all at once. ConsoleProducer batches lines for up to its linger (1 s by
    // default), so each batch holds many records and the codec has real work to do.
    let producers: Vec<_> = CODECS
        .iter()
        .zip(&topics)
        .zip(&inputs)
        .map(|((codec, topic), records)| {
            let mut stdin: String = records
                .iter()
                .map(console_producer_line)
                .collect::<Vec<_>>()
                .join("\n");
            stdin.push('\n');
            let args: Vec<String> = [
                "--bootstrap-server",
                &bootstrap,
                "--topic",
                topic,
                "--compression-codec",
                codec,
                "--command-property",
                "acks=all",
                // Its defaults (3 retries, 1.5 s request timeout) could drop a line while ten
                // JVMs share the machine; a lost line would fail the count below, not hide.
                "--message-send-max-retries",
                "1000000",
                "--request-timeout-ms",
                "30000",
                "--reader-property",
                "parse.key=true",
                "--reader-property",
                "parse.headers=true",
                "--reader-property",
                &format!("null.marker={NULL}"),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            tokio::spawn(java_tool(
                "org.apache.kafka.tools.ConsoleProducer",
                args,
                Some(stdin),
            ))
        })
        .collect();
    for p in producers {
        p.await.expect("producer task");
    }

    for ((codec, topic), records) in CODECS.iter().zip(&topics).zip(&inputs) {
        let (log, batches) = read_back(&bootstrap, topic).await;
        let expected = common::raw::RawCodec::from_name(codec);
        assert!(
            batches.iter().all(|b| b.compression == expected),
            "{codec}: Java wrote batches in another codec: {batches:?}"
        );
        // Java's producer is idempotent by default; its batches carry a producer id.
        assert!(batches
            .iter()
            .all(|b| b.producer_id >= 0 && !b.transactional));
        let mut seen = BTreeSet::new();
        for (p, logged) in &log {
            let mut last = None;
            for (offset, rec) in logged {
                let i = index_of(rec);
                assert_eq!(
                    rec, &records[i],
                    "{codec}: {topic}-{p} offset {offset}: josefk decoded (left) vs Java's input (right)"
                );
                assert!(seen.insert(i), "{codec}: record {i} twice");
                // ConsoleProducer sends lines in order, and one partition keeps that order.
                assert!(last < Some(i), "{codec}: {topic}-{p}: {i} after {last:?}");
                last = Some(i);
                // Java's default partitioner and josefk's agree on where a key goes.
                if let Some(key) = &rec.key {
                    assert_eq!(
                        *p,
                        partition_for_key(key.as_bytes(), PARTITIONS),
                        "{codec}: Java put key {key:?} on partition {p}"
                    );
                }
            }
        }
        assert_eq!(seen.len(), PER_CODEC, "{codec}: every line became a record");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn java_read_committed_consumer_sees_all_of_josefks_idempotent_records() {
    let bootstrap = common::bootstrap();
    let admin = admin(&bootstrap).await;
    let topic = common::unique_topic("interop-read-committed");
    create_topics(&admin, std::slice::from_ref(&topic)).await;

    let records: Vec<Rec> = (0..300).map(|i| sample("lz4", i)).collect();
    let config = ProducerConfig::with_client(common::config(&bootstrap))
        .idempotence(true)
        .compression(josefk::producer::Compression::Lz4);
    let sent = josefk_produce(config, &topic, &records).await;

    // What the log holds: idempotent (a producer id) but not transactional batches.
    let (log, batches) = read_back(&bootstrap, &topic).await;
    assert_eq!(log, sent);
    assert!(
        batches
            .iter()
            .all(|b| b.producer_id >= 0 && !b.transactional),
        "idempotent, non-transactional batches: {batches:?}"
    );
    // The broker agrees: no open transaction holds the last stable offset below the high
    // watermark, so a read_committed reader may read everything.
    for p in 0..PARTITIONS {
        let tp = TopicPartition::new(&topic, p);
        let spec = [(tp.clone(), OffsetSpec::Latest)];
        let hw = admin
            .list_offsets(&spec, IsolationLevel::ReadUncommitted)
            .await
            .unwrap()[&tp]
            .offset;
        let lso = admin
            .list_offsets(&spec, IsolationLevel::ReadCommitted)
            .await
            .unwrap()[&tp]
            .offset;
        assert_eq!(lso, hw, "{tp}: last stable offset");
    }

    let consumed = console_consume(&bootstrap, &topic, records.len(), "read_committed").await;
    assert_consumed_as_sent("josefk idempotent → Java read_committed", &consumed, &sent);
}
