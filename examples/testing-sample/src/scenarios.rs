//! Test scenarios written once and run against both the mock cluster and a real Kafka: each takes
//! `bootstrap.servers` (and, for the exactly-once copy, a way to disturb the cluster) and fails
//! with a message saying what was wrong.
//!
//! Every name is unique per run, so the scenarios can share one long-lived broker.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use josefk::admin::{Admin, NewTopic, OffsetSpec};
use josefk::consumer::{AutoOffsetReset, Consumer, ConsumerConfig, ConsumerRecord};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{ClientConfig, Guarantee, IsolationLevel, ProducerRecord, TopicPartition};

use super::{Copier, COPIED};

/// What a scenario returns: `Err` says what went wrong.
pub type Outcome = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// How long any scenario may take before it is reported as stuck.
const SCENARIO_DEADLINE: Duration = Duration::from_secs(180);

/// Fails the scenario with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+).into());
        }
    };
}

/// A name no other scenario or earlier run uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("sample-{prefix}-{}-{n}-{millis}", std::process::id())
}

/// Client settings for the scenarios: generous timeouts, as the machine may be loaded.
pub fn client(bootstrap: &str) -> ClientConfig {
    ClientConfig::new(bootstrap)
        .client_id("josefk-sample")
        .request_timeout(Duration::from_secs(30))
}

async fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) -> Outcome {
    let admin = Admin::connect(client(bootstrap)).await?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(*name, *partitions, 1))
        .collect();
    admin.create_topics(&new).await?;
    Ok(())
}

fn partitions(topic: &str, n: i32) -> Vec<TopicPartition> {
    (0..n).map(|p| TopicPartition::new(topic, p)).collect()
}

fn text(bytes: Option<&[u8]>) -> String {
    String::from_utf8_lossy(bytes.unwrap_or_default()).into_owned()
}

/// Reads every record of `topic` from the beginning up to its end under `isolation`.
pub async fn read_all(
    bootstrap: &str,
    topic: &str,
    n: i32,
    isolation: IsolationLevel,
) -> Result<Vec<ConsumerRecord>, Box<dyn std::error::Error + Send + Sync>> {
    let config = ConsumerConfig::with_client(client(bootstrap))
        .isolation_level(isolation)
        .auto_offset_reset(AutoOffsetReset::Earliest);
    let mut reader = Consumer::connect(config).await?;
    let all = partitions(topic, n);
    reader.assign(&all).await?;
    let admin = Admin::connect(client(bootstrap)).await?;
    let specs: Vec<_> = all
        .iter()
        .map(|tp| (tp.clone(), OffsetSpec::Latest))
        .collect();
    let ends = admin.list_offsets(&specs, isolation).await?;
    let started = Instant::now();
    let mut out = Vec::new();
    loop {
        let mut at_end = true;
        for tp in &all {
            at_end &= reader.position(tp).await? >= ends[tp].offset;
        }
        if at_end {
            return Ok(out);
        }
        ensure!(
            started.elapsed() < SCENARIO_DEADLINE,
            "reading {topic} did not reach its end offsets {ends:?}"
        );
        out.extend(reader.poll(Duration::from_millis(300)).await?);
    }
}

/// Keyed records to 3 partitions with the idempotent producer; a plain consumer reads them all
/// back, each partition in order, keys, values and headers intact.
pub async fn produce_consume(bootstrap: &str) -> Outcome {
    let topic = unique("plain");
    create_topics(bootstrap, &[(&topic, 3)]).await?;
    let producer = Producer::connect(
        ProducerConfig::with_client(client(bootstrap)).guarantee(Guarantee::ExactlyOnce),
    )
    .await?;
    let mut acks = Vec::new();
    for i in 0..300 {
        let record = ProducerRecord::new(&topic, format!("value-{i}"))
            .key(format!("key-{i}"))
            .partition(i % 3)
            .header("n", i.to_string());
        acks.push(producer.send(record).await?);
    }
    for (i, ack) in acks.into_iter().enumerate() {
        let meta = ack.await?;
        ensure!(
            meta.partition.partition == (i % 3) as i32 && meta.offset == Some((i / 3) as i64),
            "record {i} acknowledged at {:?}@{:?}",
            meta.partition,
            meta.offset
        );
    }
    producer.close(Duration::from_secs(30)).await?;

    let records = read_all(bootstrap, &topic, 3, IsolationLevel::ReadUncommitted).await?;
    ensure!(
        records.len() == 300,
        "read {} records, wrote 300",
        records.len()
    );
    for r in &records {
        let i = (r.offset * 3 + i64::from(r.partition)) as usize;
        ensure!(
            text(r.value.as_deref()) == format!("value-{i}")
                && text(r.key.as_deref()) == format!("key-{i}")
                && r.headers.last("n").flatten().as_deref() == Some(i.to_string().as_bytes()),
            "partition {} offset {} holds key {:?} value {:?}",
            r.partition,
            r.offset,
            text(r.key.as_deref()),
            text(r.value.as_deref())
        );
    }
    Ok(())
}

/// Two members of one group share 4 partitions (2 each, none twice), and between them read every
/// record exactly once; the committed offsets reach the end.
pub async fn group_shares_partitions(bootstrap: &str) -> Outcome {
    let topic = unique("group");
    let group = unique("group-g");
    create_topics(bootstrap, &[(&topic, 4)]).await?;
    let producer = Producer::connect(ProducerConfig::with_client(client(bootstrap))).await?;
    for i in 0..200 {
        let record = ProducerRecord::new(&topic, format!("v{i}")).partition(i % 4);
        drop(producer.send(record).await?);
    }
    producer.flush().await?;
    producer.close(Duration::from_secs(30)).await?;

    let member = || {
        ConsumerConfig::with_client(client(bootstrap))
            .group_id(&group)
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .session_timeout(Duration::from_secs(20))
            .max_poll_interval(Duration::from_secs(60))
    };
    let mut a = Consumer::connect(member()).await?;
    a.subscribe(&[&topic])?;
    let mut seen: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    // The first member alone gets everything.
    let started = Instant::now();
    while a.assignment().len() != 4 {
        ensure!(
            started.elapsed() < SCENARIO_DEADLINE,
            "member a never got the 4 partitions"
        );
        for r in a.poll(Duration::from_millis(200)).await? {
            *seen.entry((r.partition, r.offset)).or_default() += 1;
        }
    }
    a.commit().await?;
    let mut b = Consumer::connect(member()).await?;
    b.subscribe(&[&topic])?;
    let started = Instant::now();
    loop {
        let shared = a.assignment().len() == 2 && b.assignment().len() == 2;
        if shared && seen.len() == 200 {
            break;
        }
        ensure!(
            started.elapsed() < SCENARIO_DEADLINE,
            "after {:?}: a has {:?}, b has {:?}, {} distinct records read",
            started.elapsed(),
            a.assignment(),
            b.assignment(),
            seen.len()
        );
        for (i, m) in [&mut a, &mut b].into_iter().enumerate() {
            let records = m.poll(Duration::from_millis(200)).await?;
            let own = m.assignment();
            for r in records {
                *seen.entry((r.partition, r.offset)).or_default() += 1;
                if shared {
                    ensure!(
                        own.contains(&r.topic_partition()),
                        "member {i} read partition {} it does not own ({own:?})",
                        r.partition
                    );
                }
            }
            m.commit().await?;
        }
    }
    let mut union: Vec<i32> = a.assignment().iter().map(|tp| tp.partition).collect();
    union.extend(b.assignment().iter().map(|tp| tp.partition));
    union.sort_unstable();
    ensure!(
        union == [0, 1, 2, 3],
        "assignments overlap or miss: {union:?}"
    );
    let twice: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    ensure!(twice.is_empty(), "records read twice: {twice:?}");
    let committed = a.committed(&partitions(&topic, 4)).await?;
    for (tp, offset) in committed {
        ensure!(
            offset == Some(50),
            "{tp:?} committed at {offset:?}, expected 50"
        );
    }
    a.close().await?;
    b.close().await?;
    Ok(())
}

/// Three transactions: committed, aborted, committed. read_committed sees the 10 committed
/// records in order; read_uncommitted sees all 15.
pub async fn read_committed_skips_aborted(bootstrap: &str) -> Outcome {
    let topic = unique("txn");
    create_topics(bootstrap, &[(&topic, 1)]).await?;
    let producer = Producer::connect(
        ProducerConfig::with_client(client(bootstrap))
            .guarantee(Guarantee::ExactlyOnce)
            .transactional_id(unique("txn-id")),
    )
    .await?;
    producer.init_transactions().await?;
    for (t, commit) in [(0, true), (1, false), (2, true)] {
        producer.begin_transaction()?;
        for i in 0..5 {
            drop(
                producer
                    .send(ProducerRecord::new(&topic, format!("t{t}-{i}")))
                    .await?,
            );
        }
        if commit {
            producer.commit_transaction().await?;
        } else {
            producer.flush().await?;
            producer.abort_transaction().await?;
        }
    }
    producer.close(Duration::from_secs(30)).await?;

    let committed: Vec<String> = read_all(bootstrap, &topic, 1, IsolationLevel::ReadCommitted)
        .await?
        .iter()
        .map(|r| text(r.value.as_deref()))
        .collect();
    let expected: Vec<String> = ["t0", "t2"]
        .iter()
        .flat_map(|t| (0..5).map(move |i| format!("{t}-{i}")))
        .collect();
    ensure!(committed == expected, "read_committed read {committed:?}");
    let all = read_all(bootstrap, &topic, 1, IsolationLevel::ReadUncommitted).await?;
    ensure!(
        all.len() == 15,
        "read_uncommitted read {} records, expected 15 (aborted ones included)",
        all.len()
    );
    Ok(())
}

/// The names of one exactly-once copy run, for the disruption.
#[derive(Debug, Clone)]
pub struct EosNames {
    /// Input topic.
    pub input: String,
    /// Output topic.
    pub output: String,
    /// The copier's consumer group.
    pub group: String,
    /// The copier's `transactional.id`.
    pub transactional_id: String,
}

/// Records the exactly-once scenario copies.
pub const EOS_RECORDS: usize = 300;
const EOS_PARTITIONS: i32 = 3;

/// The exactly-once copy loop under faults: the copier runs; a third of the way through,
/// `disrupt` disturbs the cluster (a coordinator move, dropped connections, a broker restart);
/// two thirds through, the copier crashes inside an open transaction and a new one with the same
/// `transactional.id` takes over. The output must hold every input record exactly once, in each
/// partition's order, the aborted records must be invisible to read_committed, and the group's
/// committed offsets must be the input's end offsets.
pub async fn exactly_once_copy<F, Fut>(bootstrap: &str, mut disrupt: F) -> Outcome
where
    F: FnMut(EosNames) -> Fut,
    Fut: Future<Output = ()>,
{
    let names = EosNames {
        input: unique("eos-in"),
        output: unique("eos-out"),
        group: unique("eos-group"),
        transactional_id: unique("eos-txn"),
    };
    create_topics(
        bootstrap,
        &[
            (&names.input, EOS_PARTITIONS),
            (&names.output, EOS_PARTITIONS),
        ],
    )
    .await?;
    let producer = Producer::connect(
        ProducerConfig::with_client(client(bootstrap)).guarantee(Guarantee::ExactlyOnce),
    )
    .await?;
    for i in 0..EOS_RECORDS {
        let record = ProducerRecord::new(&names.input, format!("record-{i}"))
            .key(format!("k{i}"))
            .partition((i % EOS_PARTITIONS as usize) as i32);
        drop(producer.send(record).await?);
    }
    producer.flush().await?;
    producer.close(Duration::from_secs(30)).await?;

    let start = || {
        Copier::start(
            client(bootstrap),
            &names.input,
            &names.output,
            &names.group,
            &names.transactional_id,
        )
    };
    let mut copier = start().await?;
    let mut copied = 0;
    let mut disrupted = false;
    let mut crashed_records = None;
    let started = Instant::now();
    while copied < EOS_RECORDS {
        ensure!(
            started.elapsed() < SCENARIO_DEADLINE,
            "copied {copied} of {EOS_RECORDS} records before the deadline"
        );
        if !disrupted && copied >= EOS_RECORDS / 3 {
            disrupted = true;
            disrupt(names.clone()).await;
        }
        if crashed_records.is_none() && copied >= 2 * EOS_RECORDS / 3 {
            crashed_records = Some(copier.crash_mid_transaction(Duration::from_secs(2)).await?);
            copier = start().await?;
            continue;
        }
        copied += copier.step(Duration::from_millis(300)).await?;
    }
    copier.close().await?;
    ensure!(
        copied == EOS_RECORDS,
        "committed {copied} copies of {EOS_RECORDS} records"
    );
    let crashed = crashed_records.unwrap_or(0);
    ensure!(crashed > 0, "the crash left no open transaction behind");

    let out = read_all(
        bootstrap,
        &names.output,
        EOS_PARTITIONS,
        IsolationLevel::ReadCommitted,
    )
    .await?;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut last_source: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &out {
        let value = text(r.value.as_deref());
        let source = value.strip_suffix(COPIED).unwrap_or(&value).to_owned();
        let i: usize = source
            .strip_prefix("record-")
            .and_then(|n| n.parse().ok())
            .ok_or(format!("unexpected output record {value:?}"))?;
        ensure!(
            text(r.key.as_deref()) == format!("k{i}"),
            "{value:?} has key {:?}",
            text(r.key.as_deref())
        );
        ensure!(
            r.partition == (i % EOS_PARTITIONS as usize) as i32,
            "{value:?} landed in partition {}",
            r.partition
        );
        let offset: i64 = r
            .headers
            .last("source.offset")
            .flatten()
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok())
            .ok_or(format!("{value:?} has no source.offset header"))?;
        if let Some(previous) = last_source.insert(r.partition, offset) {
            ensure!(
                previous < offset,
                "partition {} out of order at {value:?}",
                r.partition
            );
        }
        *seen.entry(source).or_default() += 1;
    }
    let duplicates: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    ensure!(
        duplicates.is_empty(),
        "duplicated in the output: {duplicates:?}"
    );
    ensure!(
        seen.len() == EOS_RECORDS,
        "{} of {EOS_RECORDS} input records reached the output",
        seen.len()
    );
    let everything = read_all(
        bootstrap,
        &names.output,
        EOS_PARTITIONS,
        IsolationLevel::ReadUncommitted,
    )
    .await?;
    ensure!(
        everything.len() == EOS_RECORDS + crashed,
        "read_uncommitted read {} records, expected {EOS_RECORDS} committed + {crashed} aborted",
        everything.len()
    );
    let watcher =
        Consumer::connect(ConsumerConfig::with_client(client(bootstrap)).group_id(&names.group))
            .await?;
    for (tp, offset) in watcher
        .committed(&partitions(&names.input, EOS_PARTITIONS))
        .await?
    {
        let expected = (EOS_RECORDS / EOS_PARTITIONS as usize) as i64;
        ensure!(
            offset == Some(expected),
            "{tp:?} committed at {offset:?}, expected {expected}"
        );
    }
    Ok(())
}
