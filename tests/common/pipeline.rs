//! Helpers shared by the pipeline live tests (`tests/pipeline.rs`, `tests/pipeline_matrix.rs`):
//! input and output topics, copy transforms, progress waits on the group's committed offsets,
//! Java's read_committed console consumer as the judge, and copier processes
//! (`examples/pipeline_copy.rs`), input written by Java's VerifiableProducer, and a reader that
//! runs while the copy is under way.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use josefk::admin::{Admin, NewTopic, OffsetSpec};
use josefk::consumer::{AutoOffsetReset, Consumer, ConsumerConfig, ConsumerRecord};
use josefk::pipeline::PipelineConfig;
use josefk::producer::{Producer, ProducerConfig};
use josefk::{IsolationLevel, ProducerRecord, TopicPartition};
use josefk_harness::KafkaDist;

/// Longest wait for a copy to reach the end of its input (a loaded machine is slow).
pub const PROGRESS_TIMEOUT: Duration = Duration::from_secs(300);

pub struct Topics {
    pub input: String,
    pub output: String,
    pub partitions: i32,
}

/// Creates input and output topics with `partitions` partitions each (replication 1) and writes
/// `records` input records `record-<i>`, record i to partition i % partitions (so each
/// partition's values come in increasing i).
pub async fn setup(bootstrap: &str, tag: &str, partitions: i32, records: usize) -> Topics {
    setup_with(bootstrap, tag, Layout::simple(partitions), records).await
}

/// Partitions and replication of a test's input and output topics.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub input_partitions: i32,
    pub output_partitions: i32,
    pub replication: i16,
    /// `min.insync.replicas` of both topics.
    pub min_insync: u8,
}

impl Layout {
    pub fn simple(partitions: i32) -> Layout {
        Layout {
            input_partitions: partitions,
            output_partitions: partitions,
            replication: 1,
            min_insync: 1,
        }
    }
}

/// [`setup`] with any layout.
pub async fn setup_with(bootstrap: &str, tag: &str, layout: Layout, records: usize) -> Topics {
    let topics = create_topics(bootstrap, tag, layout).await;
    let partitions = layout.input_partitions;
    let producer = Producer::connect(ProducerConfig::with_client(super::config(bootstrap)))
        .await
        .unwrap();
    let mut acks = Vec::with_capacity(records);
    for i in 0..records {
        let p = (i % partitions as usize) as i32;
        let r = ProducerRecord::new(&topics.input, format!("record-{i}"))
            .key(format!("k{i}"))
            .partition(p);
        acks.push(producer.send(r).await.unwrap());
    }
    for a in acks {
        a.await.unwrap();
    }
    producer.close(Duration::from_secs(30)).await.unwrap();
    topics
}

/// [`setup_with`], the input written by Java's `VerifiableProducer` (as Kafka's
/// `transactions_test.py` seeds it): values `"0"` .. `"<records - 1>"` in that order, keys from
/// 100 repeating ones (partition by the Java client's key hash), `acks=all`, idempotent. Fails
/// unless the tool reports every record acknowledged.
pub async fn setup_with_java(bootstrap: &str, tag: &str, layout: Layout, records: usize) -> Topics {
    let topics = create_topics(bootstrap, tag, layout).await;
    let dist = KafkaDist::provision().expect("provision Kafka's tools");
    let max = records.to_string();
    let args = [
        "--bootstrap-server",
        bootstrap,
        "--topic",
        &topics.input,
        "--max-messages",
        &max,
        "--acks",
        "-1",
        "--repeating-keys",
        "100",
    ];
    let out = josefk_harness::run_java_tool(
        &dist,
        "org.apache.kafka.tools.VerifiableProducer",
        &args,
        Duration::from_secs(300),
    )
    .expect("VerifiableProducer");
    let printed = String::from_utf8_lossy(&out.stdout);
    let acked = printed
        .lines()
        .filter(|l| l.contains("\"producer_send_success\""))
        .count();
    assert!(
        out.status.success() && acked == records,
        "VerifiableProducer acknowledged {acked} of {records} ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    topics
}

async fn create_topics(bootstrap: &str, tag: &str, layout: Layout) -> Topics {
    let admin = Admin::connect(super::config(bootstrap)).await.unwrap();
    let topics = Topics {
        input: super::unique_topic(&format!("pipe-in-{tag}")),
        output: super::unique_topic(&format!("pipe-out-{tag}")),
        partitions: layout.input_partitions,
    };
    let isr = layout.min_insync.to_string();
    admin
        .create_topics(&[
            NewTopic::new(&topics.input, layout.input_partitions, layout.replication)
                .config("min.insync.replicas", isr.clone()),
            NewTopic::new(&topics.output, layout.output_partitions, layout.replication)
                .config("min.insync.replicas", isr),
        ])
        .await
        .unwrap();
    topics
}

pub fn copied(output: &str, r: &ConsumerRecord) -> ProducerRecord {
    let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default());
    ProducerRecord::new(output, format!("{value} (copied)")).partition(r.partition)
}

pub fn pipeline_config(bootstrap: &str, group: &str, tid: &str, input: &str) -> PipelineConfig {
    PipelineConfig::new(super::config(bootstrap), group, tid, &[input])
        .commit_interval(Duration::from_millis(100))
        .commit_records(500)
        .consumer(|c| c.auto_offset_reset(AutoOffsetReset::Earliest))
}

/// The sum of the group's committed offsets on `input`.
pub async fn committed(watcher: &Consumer, topics: &Topics) -> i64 {
    let all: Vec<TopicPartition> = (0..topics.partitions)
        .map(|p| TopicPartition::new(&topics.input, p))
        .collect();
    match watcher.committed(&all).await {
        Ok(offsets) => offsets.iter().filter_map(|(_, o)| *o).sum(),
        Err(e) => {
            // E.g. offsets of a killed copier's open transaction (require_stable waits for it).
            eprintln!("committed offsets not known yet: {e}");
            0
        }
    }
}

/// Waits until the group has committed at least `target` input records, failing at once if
/// `ended` says the pipeline stopped.
pub async fn wait_for_progress(
    watcher: &Consumer,
    topics: &Topics,
    target: usize,
    ended: impl Fn() -> bool,
) {
    let started = Instant::now();
    loop {
        if committed(watcher, topics).await >= target as i64 {
            return;
        }
        assert!(
            !ended(),
            "the pipeline stopped before committing {target} records"
        );
        assert!(
            started.elapsed() < PROGRESS_TIMEOUT,
            "the group committed {} of {target} records in {PROGRESS_TIMEOUT:?}",
            committed(watcher, topics).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn watcher(bootstrap: &str, group: &str) -> Consumer {
    Consumer::connect(ConsumerConfig::with_client(super::config(bootstrap)).group_id(group))
        .await
        .unwrap()
}

/// Value of the record [`java_read_committed`] appends to every partition it judges.
const END_MARK: &str = "josefk-test: end of the output";

/// Reads `topic` with Java's ConsoleConsumer in `read_committed`: (partition, value) in the order
/// printed (each partition's records in offset order). Call it once the copy has stopped (no
/// transaction left open).
///
/// The judge must see any record beyond the `expected` ones. So that it need not wait out a
/// timeout for one, every partition first gets an end mark, written outside any transaction:
/// its last record, which read_committed shows only after every transaction before it ended.
/// The tool asks for `expected` records plus the marks, and so stops when it has read every
/// partition to its mark; a record too many makes the count run out before some mark, and the
/// records read then hold a duplicate or an unexpected one, which [`assert_exactly`] reports. A
/// read that ended by its timeout must still have reached every mark (else a transaction was
/// left open and the records behind it were never judged). The marks are not returned.
pub async fn java_read_committed(
    bootstrap: &str,
    topic: &str,
    expected: usize,
) -> Vec<(i32, String)> {
    let partitions = mark_the_end(bootstrap, topic).await;
    let dist = KafkaDist::provision().expect("provision Kafka's tools");
    let max = expected + partitions.len();
    let args: Vec<String> = [
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--from-beginning",
        "--isolation-level",
        "read_committed",
        "--formatter-property",
        "print.partition=true",
        "--max-messages",
        &max.to_string(),
        // Only a lost record (or a transaction left open) lets the read end this way.
        "--timeout-ms",
        "10000",
    ]
    .map(str::to_owned)
    .to_vec();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        josefk_harness::run_java_tool(
            &dist,
            "org.apache.kafka.tools.consumer.ConsoleConsumer",
            &args,
            Duration::from_secs(180),
        )
    })
    .await
    .expect("the judge's thread")
    .expect("ConsoleConsumer");
    let printed: Vec<(i32, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        // Only records: the tool may print notices on stdout too.
        .filter(|l| l.starts_with("Partition:"))
        .map(|l| {
            let (partition, value) = l.split_once('\t').unwrap_or_else(|| panic!("line {l:?}"));
            let partition = partition
                .strip_prefix("Partition:")
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("line {l:?}"));
            (partition, value.to_owned())
        })
        .collect();
    let read = printed.len();
    let marked: BTreeSet<i32> = printed
        .iter()
        .filter(|(_, v)| v == END_MARK)
        .map(|(p, _)| *p)
        .collect();
    let records: Vec<(i32, String)> = printed.into_iter().filter(|(_, v)| v != END_MARK).collect();
    eprintln!(
        "judge of {topic}: {} records, end marks of partitions {marked:?} of {partitions:?}",
        records.len()
    );
    if read < max {
        assert_eq!(
            marked, partitions,
            "the read_committed judge of {topic} stopped at its timeout before the end of every \
             partition: a transaction left open?"
        );
    }
    records
}

/// Appends [`END_MARK`] to every partition of `topic` (a plain producer, `acks=all`); returns the
/// partitions.
async fn mark_the_end(bootstrap: &str, topic: &str) -> BTreeSet<i32> {
    let admin = Admin::connect(super::config(bootstrap)).await.unwrap();
    let partitions: BTreeSet<i32> = admin.describe_topics(&[topic]).await.unwrap()[0]
        .partitions
        .iter()
        .map(|p| p.partition)
        .collect();
    let producer = Producer::connect(ProducerConfig::with_client(super::config(bootstrap)))
        .await
        .unwrap();
    let mut acks = Vec::new();
    for &p in &partitions {
        let mark = ProducerRecord::new(topic, END_MARK).partition(p);
        acks.push(producer.send(mark).await.unwrap());
    }
    for a in acks {
        a.await.expect("the end mark is written");
    }
    producer.close(Duration::from_secs(30)).await.unwrap();
    partitions
}

/// Asserts the committed output is exactly `expected` (input indexes), each once, and that each
/// partition's copies come in input order.
pub fn assert_exactly(label: &str, out: &[(i32, String)], expected: &BTreeSet<usize>) {
    assert_exactly_ordered(label, out, expected, true)
}

/// [`assert_exactly`], checking the per-partition order only when `check_order` (an output
/// partition fed from several input partitions interleaves them).
pub fn assert_exactly_ordered(
    label: &str,
    out: &[(i32, String)],
    expected: &BTreeSet<usize>,
    check_order: bool,
) {
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    let mut last: BTreeMap<i32, usize> = BTreeMap::new();
    let mut out_of_order = 0;
    for (p, v) in out {
        // `record-<i>` from josefk's input writer, `<i>` from Java's VerifiableProducer.
        let i: usize = v
            .strip_suffix(" (copied)")
            .map(|v| v.strip_prefix("record-").unwrap_or(v))
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("{label}: unexpected output value {v:?}"));
        *seen.entry(i).or_default() += 1;
        if last.insert(*p, i).is_some_and(|prev| prev >= i) {
            out_of_order += 1;
        }
    }
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    let lost = expected.iter().filter(|i| !seen.contains_key(i)).count();
    let unexpected = seen.keys().filter(|i| !expected.contains(i)).count();
    eprintln!(
        "{label}: records expected {}, out {}, duplicates {duplicates}, lost {lost}, \
         unexpected {unexpected}, out of order {out_of_order}",
        expected.len(),
        out.len()
    );
    assert_eq!(duplicates, 0, "{label}: duplicates");
    assert_eq!(lost, 0, "{label}: lost");
    assert_eq!(unexpected, 0, "{label}: unexpected");
    if check_order {
        assert_eq!(out_of_order, 0, "{label}: out of order");
    }
}

pub fn all(records: usize) -> BTreeSet<usize> {
    (0..records).collect()
}

/// Every record of `topic` up to its end, read_committed.
pub async fn read_committed(bootstrap: &str, topic: &str) -> Vec<ConsumerRecord> {
    let admin = Admin::connect(super::config(bootstrap)).await.unwrap();
    let tps: Vec<TopicPartition> = admin.describe_topics(&[topic]).await.unwrap()[0]
        .partitions
        .iter()
        .map(|p| TopicPartition::new(topic, p.partition))
        .collect();
    let specs: Vec<_> = tps
        .iter()
        .map(|tp| (tp.clone(), OffsetSpec::Latest))
        .collect();
    let ends = admin
        .list_offsets(&specs, IsolationLevel::ReadCommitted)
        .await
        .unwrap();
    let mut reader = Consumer::connect(
        ConsumerConfig::with_client(super::config(bootstrap))
            .isolation_level(IsolationLevel::ReadCommitted)
            .auto_offset_reset(AutoOffsetReset::Earliest),
    )
    .await
    .unwrap();
    reader.assign(&tps).await.unwrap();
    let mut out = Vec::new();
    let started = Instant::now();
    loop {
        let mut done = true;
        for tp in &tps {
            done &= reader.position(tp).await.unwrap() >= ends[tp].offset;
        }
        if done {
            return out;
        }
        assert!(started.elapsed() < PROGRESS_TIMEOUT, "reading {topic}");
        out.extend(reader.poll(Duration::from_millis(500)).await.unwrap());
    }
}

/// A copier process of `examples/pipeline_copy.rs`; dropping its stdin stops it gracefully.
/// `extra` comes first, so its flags win over the defaults here (the example reads a flag's
/// first occurrence).
pub fn spawn_copier(
    bootstrap: &str,
    topics: &Topics,
    group: &str,
    tid: &str,
    extra: &[&str],
) -> Child {
    Command::new(super::example_binary("pipeline_copy"))
        .args(extra)
        .args(["--bootstrap", bootstrap, "--input", &topics.input])
        .args(["--output", &topics.output, "--group", group])
        .args(["--transactional-id", tid, "--commit-records", "500"])
        // About 1 ms of work per record, so the kills land while the copy is under way.
        .args(["--record-delay-ms", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the pipeline_copy example")
}

/// A `read_committed` reader of every partition of `topic` that runs while the copy is under way
/// (brokers and copiers bounce under it) and, once `stop` is set, reads on to the topic's
/// read_committed end and returns (partition, value) in the order read. Errors of a poll are
/// logged and polled through: a bounced broker must not end it.
pub fn concurrent_reader(
    bootstrap: &str,
    topic: &str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(i32, String)>> {
    use std::sync::atomic::Ordering;
    let bootstrap = bootstrap.to_owned();
    let topic = topic.to_owned();
    tokio::spawn(async move {
        let admin = Admin::connect(super::config(&bootstrap)).await.unwrap();
        let tps: Vec<TopicPartition> = admin.describe_topics(&[&topic]).await.unwrap()[0]
            .partitions
            .iter()
            .map(|p| TopicPartition::new(&topic, p.partition))
            .collect();
        let mut reader = Consumer::connect(
            ConsumerConfig::with_client(super::config(&bootstrap))
                .isolation_level(IsolationLevel::ReadCommitted)
                .auto_offset_reset(AutoOffsetReset::Earliest),
        )
        .await
        .unwrap();
        reader.assign(&tps).await.unwrap();
        let mut out = Vec::new();
        let mut ends: Option<(Instant, std::collections::HashMap<TopicPartition, i64>)> = None;
        loop {
            if ends.is_none() && stop.load(Ordering::Relaxed) {
                let specs: Vec<_> = tps
                    .iter()
                    .map(|tp| (tp.clone(), OffsetSpec::Latest))
                    .collect();
                match admin
                    .list_offsets(&specs, IsolationLevel::ReadCommitted)
                    .await
                {
                    Ok(e) => {
                        let e = e.into_iter().map(|(tp, o)| (tp, o.offset)).collect();
                        ends = Some((Instant::now(), e));
                    }
                    Err(e) => eprintln!("concurrent reader: end offsets not known yet: {e}"),
                }
            }
            if let Some((since, end)) = &ends {
                let mut done = true;
                for tp in &tps {
                    done &= reader.position(tp).await.is_ok_and(|p| p >= end[tp]);
                }
                if done {
                    return out;
                }
                assert!(
                    since.elapsed() < PROGRESS_TIMEOUT,
                    "concurrent reader of {topic}"
                );
            }
            match reader.poll(Duration::from_millis(500)).await {
                Ok(records) => out.extend(records.into_iter().map(|r| {
                    let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default());
                    (r.partition, value.into_owned())
                })),
                Err(e) => {
                    eprintln!("concurrent reader: poll: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    })
}
