//! Live test: read_committed over a log where josefk's transactional producer and Java's
//! (`ProducerPerformance`) wrote interleaved committed and aborted transactions on several
//! partitions at the same time.
//!
//! The ground truth does not come from the consumer under test nor from the producers'
//! bookkeeping: the partitions are read raw ([`common::read_log`], read_uncommitted, every batch
//! including the control batches), and a transactional data batch of producer P counts as
//! committed if and only if the next control batch of P in that partition is a commit marker
//! (control record key `[version, type]`, type 1). The producers' intentions (which josefk
//! transactions were aborted, how many records Java committed) are checked against that truth
//! too, so a wrong judge cannot pass silently.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use josefk::admin::{Admin, NewTopic, OffsetSpec};
use josefk::consumer::{AutoOffsetReset, Consumer, ConsumerConfig, ConsumerRecord};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{IsolationLevel, ProducerRecord, TopicPartition};
use josefk_harness::KafkaDist;

const PARTITIONS: i32 = 3;
/// josefk transactions written while Java writes; every third (`t % 3 == 2`) is aborted, and one
/// more (committed) follows after the aborted Java transaction was killed.
const JOSEFK_TXNS: usize = 30;
/// Records per partition in each josefk transaction.
const PER_PARTITION: usize = 3;
/// Records Java's committing producer writes (in 50 ms transactions).
const JAVA_COMMITTED: usize = 4000;
/// Payload sizes that tell the two Java producers' records apart (josefk's values start `j-`,
/// Java's payloads are uppercase letters).
const JAVA_COMMITTED_SIZE: usize = 32;
const JAVA_ABORTED_SIZE: usize = 64;
/// How many records of the aborted Java transaction must be in the log before it is killed.
const JAVA_ABORTED_MIN: usize = 40;
const PERF: &str = "org.apache.kafka.tools.ProducerPerformance";

async fn admin(bootstrap: &str) -> Admin {
    Admin::connect(common::config(bootstrap))
        .await
        .expect("admin")
}

fn tps(topic: &str) -> Vec<TopicPartition> {
    (0..PARTITIONS)
        .map(|p| TopicPartition::new(topic, p))
        .collect()
}

async fn end_offsets(admin: &Admin, tps: &[TopicPartition], iso: IsolationLevel) -> Vec<i64> {
    let specs: Vec<_> = tps
        .iter()
        .map(|tp| (tp.clone(), OffsetSpec::Latest))
        .collect();
    let ends = admin.list_offsets(&specs, iso).await.expect("list offsets");
    tps.iter().map(|tp| ends[tp].offset).collect()
}

/// A transactional, keyless `ProducerPerformance` run.
struct JavaProducer {
    txn_id: String,
    records: usize,
    record_size: usize,
    /// Records per second.
    throughput: usize,
    /// `--transaction-duration-ms`: how long each transaction stays open before it commits.
    transaction_ms: u64,
    /// `transaction.timeout.ms`: when the coordinator aborts a transaction left open.
    transaction_timeout_ms: u64,
}

impl JavaProducer {
    /// The tool's arguments. A small `batch.size` makes Java's sticky partitioner (KIP-794) move
    /// to another partition every few records, so each Java transaction spans several
    /// partitions and interleaves with josefk's batches.
    fn args(&self, bootstrap: &str, topic: &str) -> Vec<String> {
        [
            "--topic".to_owned(),
            topic.to_owned(),
            "--num-records".to_owned(),
            self.records.to_string(),
            "--record-size".to_owned(),
            self.record_size.to_string(),
            "--throughput".to_owned(),
            self.throughput.to_string(),
            "--transactional-id".to_owned(),
            self.txn_id.clone(),
            "--transaction-duration-ms".to_owned(),
            self.transaction_ms.to_string(),
            "--producer-props".to_owned(),
            format!("bootstrap.servers={bootstrap}"),
            format!("transaction.timeout.ms={}", self.transaction_timeout_ms),
            "linger.ms=5".to_owned(),
            "batch.size=512".to_owned(),
        ]
        .into()
    }
}

/// Runs a Java tool to completion on the blocking pool and checks that it succeeded.
async fn java_tool(main_class: &'static str, args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let dist = KafkaDist::provision().expect("provision Kafka's tools");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = josefk_harness::run_java_tool(&dist, main_class, &args, Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("{main_class}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{main_class} {args:?} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    })
    .await
    .expect("tool task")
}

/// Who wrote a data record, told apart by its value (see the size constants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Writer {
    Josefk,
    JavaCommitting,
    JavaAborted,
}

fn writer_of(value: &[u8]) -> Writer {
    if value.starts_with(b"j-") {
        Writer::Josefk
    } else if value.len() == JAVA_COMMITTED_SIZE {
        Writer::JavaCommitting
    } else if value.len() == JAVA_ABORTED_SIZE {
        Writer::JavaAborted
    } else {
        panic!("a record nobody in this test wrote: {value:?}")
    }
}

/// One data record of the log and its fate, as the markers decide it.
#[derive(Clone, Debug)]
struct Data {
    offset: i64,
    producer_id: i64,
    writer: Writer,
    value: Bytes,
    committed: bool,
}

/// The log of one partition, judged: data records in offset order, control offsets, and facts
/// about how the producers' transactions interleave.
#[derive(Debug, Default)]
struct Judged {
    data: Vec<Data>,
    control: BTreeSet<i64>,
    /// Producer ids of the data batches in log order, consecutive repeats collapsed.
    batch_owners: Vec<i64>,
    /// Committed data records of one producer that lie inside another producer's aborted
    /// transaction (between its first data record and its abort marker), counted by
    /// (writer of the aborted transaction, writer of the committed record).
    committed_inside_aborted: BTreeMap<(Writer, Writer), usize>,
}

/// Judges one partition's raw log: a transactional data batch is committed iff the next control
/// batch of its producer is a commit marker.
fn judge(batches: &[common::LoggedBatch]) -> Judged {
    let mut judged = Judged::default();
    // Per producer: indexes into `judged.data` of its undecided records, and the offset its
    // open transaction started at.
    let mut open: HashMap<i64, (Vec<usize>, i64)> = HashMap::new();
    // (producer id, its writer, first offset, abort marker offset) of every aborted transaction.
    let mut aborted_spans: Vec<(i64, Writer, i64, i64)> = Vec::new();
    for b in batches {
        if b.control {
            judged.control.insert(b.base_offset);
            let commit = match b.control_type {
                Some(1) => true,
                Some(0) => false,
                other => panic!("unexpected control type {other:?} at {}", b.base_offset),
            };
            if let Some((pending, start)) = open.remove(&b.producer_id) {
                for &i in &pending {
                    judged.data[i].committed = commit;
                }
                if !commit {
                    let writer = judged.data[pending[0]].writer;
                    aborted_spans.push((b.producer_id, writer, start, b.base_offset));
                }
            }
            continue;
        }
        if judged.batch_owners.last() != Some(&b.producer_id) {
            judged.batch_owners.push(b.producer_id);
        }
        for r in &b.records {
            let value = r.value.clone().expect("every record here has a value");
            let i = judged.data.len();
            judged.data.push(Data {
                offset: r.offset,
                producer_id: b.producer_id,
                writer: writer_of(&value),
                value,
                committed: !b.transactional,
            });
            if b.transactional {
                open.entry(b.producer_id)
                    .or_insert_with(|| (Vec::new(), r.offset))
                    .0
                    .push(i);
            }
        }
    }
    assert!(
        open.is_empty(),
        "transactions still open after the LSO reached the high watermark: {:?}",
        open.keys()
    );
    for d in judged.data.iter().filter(|d| d.committed) {
        for &(pid, writer, start, end) in &aborted_spans {
            if pid != d.producer_id && start < d.offset && d.offset < end {
                *judged
                    .committed_inside_aborted
                    .entry((writer, d.writer))
                    .or_default() += 1;
            }
        }
    }
    judged
}

/// Polls until every partition's position reached `ends`, then a little longer to catch extras.
async fn read_to(c: &mut Consumer, tps: &[TopicPartition], ends: &[i64]) -> Vec<ConsumerRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut all = Vec::new();
    loop {
        all.extend(c.poll(Duration::from_millis(300)).await.expect("poll"));
        let mut done = true;
        for (tp, end) in tps.iter().zip(ends) {
            if c.position(tp).await.expect("position") < *end {
                done = false;
            }
        }
        if done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "positions did not reach {ends:?} within 60 s ({} records so far)",
            all.len()
        );
    }
    for _ in 0..3 {
        all.extend(c.poll(Duration::from_millis(200)).await.expect("poll"));
    }
    all
}

/// What a consumer delivered, per partition, in delivery order.
fn by_partition(records: &[ConsumerRecord]) -> BTreeMap<i32, Vec<(i64, Option<Bytes>)>> {
    let mut out: BTreeMap<i32, Vec<(i64, Option<Bytes>)>> = BTreeMap::new();
    for r in records {
        out.entry(r.partition)
            .or_default()
            .push((r.offset, r.value.clone()));
    }
    out
}

fn josefk_value(t: usize, p: i32, i: usize) -> String {
    format!("j-{t}-{p}-{i}")
}

/// One josefk transaction over every partition: `PER_PARTITION` records each, paced so that
/// other producers' batches land between josefk's; commits unless `t % 3 == 2`.
async fn josefk_transaction(producer: &Producer, topic: &str, t: usize, pace: Duration) {
    producer.begin_transaction().expect("begin");
    let mut deliveries = Vec::new();
    for i in 0..PER_PARTITION {
        for p in 0..PARTITIONS {
            let record = ProducerRecord::new(topic, josefk_value(t, p, i)).partition(p);
            deliveries.push(producer.send(record).await.expect("send"));
            tokio::time::sleep(pace).await;
        }
    }
    if t % 3 == 2 {
        // In the log before the abort, so the abort is what hides them.
        producer.flush().await.expect("flush");
        producer.abort_transaction().await.expect("abort");
    } else {
        producer.commit_transaction().await.expect("commit");
        for d in deliveries {
            d.await.expect("delivered");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn read_committed_over_interleaved_josefk_and_java_transactions() {
    let bootstrap = common::bootstrap();
    let admin = admin(&bootstrap).await;
    let topic = common::unique_topic("rc-mixed");
    admin
        .create_topics(&[NewTopic::new(&topic, PARTITIONS, 1)])
        .await
        .unwrap();
    let all_tps = tps(&topic);

    let mut config = ProducerConfig::with_client(common::config(&bootstrap))
        .transactional_id(common::unique_topic("rc-mixed-tid"));
    config.max_block = Duration::from_secs(30);
    let producer = Producer::connect(config).await.expect("producer");
    producer.init_transactions().await.expect("init");

    // (b) Java, committing: 50 ms transactions over ~8 s.
    let committing = tokio::spawn(java_tool(
        PERF,
        JavaProducer {
            txn_id: format!("{topic}-java-c"),
            records: JAVA_COMMITTED,
            record_size: JAVA_COMMITTED_SIZE,
            throughput: 500,
            transaction_ms: 50,
            transaction_timeout_ms: 3_000,
        }
        .args(&bootstrap, &topic),
    ));
    // (c) Java, one long transaction that is killed while open: the coordinator aborts it
    //     after its transaction.timeout.ms (10 s, so it is surely still open while josefk's
    //     first transactions are written, however the two JVMs' start-ups are skewed).
    let args = JavaProducer {
        txn_id: format!("{topic}-java-a"),
        records: 1_000_000,
        record_size: JAVA_ABORTED_SIZE,
        throughput: 200,
        transaction_ms: 600_000,
        transaction_timeout_ms: 10_000,
    }
    .args(&bootstrap, &topic);
    let mut aborting = Some(
        tokio::task::spawn_blocking(move || {
            let dist = KafkaDist::provision().expect("provision Kafka's tools");
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            josefk_harness::spawn_java_tool(&dist, PERF, &args).expect("spawn ProducerPerformance")
        })
        .await
        .unwrap(),
    );

    // (a) josefk: starts once both Java producers are writing, so josefk's transactions overlap
    //     Java's committed ones and the open (to be aborted) Java transaction.
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let josefk_done = Arc::new(AtomicUsize::new(0));
    let mut josefk = {
        let producer = producer.clone();
        let topic = topic.clone();
        let done = josefk_done.clone();
        tokio::spawn(async move {
            go_rx.await.expect("go");
            for t in 0..JOSEFK_TXNS {
                josefk_transaction(&producer, &topic, t, Duration::from_millis(15)).await;
                done.fetch_add(1, Ordering::SeqCst);
            }
        })
    };

    // Watch the raw log: start josefk when both Java producers' data shows up; kill the aborted
    // Java producer once it has written a few dozen records and josefk has finished two
    // transactions (which therefore lie inside the Java transaction).
    let mut go_tx = Some(go_tx);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while go_tx.is_some() || aborting.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Java producers did not write within 90 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        if josefk.is_finished() && josefk_done.load(Ordering::SeqCst) < JOSEFK_TXNS {
            (&mut josefk).await.expect("josefk transactions");
        }
        let log = common::read_log(&bootstrap, &topic, PARTITIONS).await;
        let mut count: HashMap<Writer, usize> = HashMap::new();
        for r in log.values().flatten().flat_map(|b| &b.records) {
            *count
                .entry(writer_of(r.value.as_deref().unwrap_or_default()))
                .or_default() += 1;
        }
        if count.contains_key(&Writer::JavaCommitting) && count.contains_key(&Writer::JavaAborted) {
            if let Some(go) = go_tx.take() {
                let _ = go.send(());
            }
        }
        if josefk_done.load(Ordering::SeqCst) >= 2
            && count
                .get(&Writer::JavaAborted)
                .is_some_and(|&n| n >= JAVA_ABORTED_MIN)
        {
            if let Some(mut process) = aborting.take() {
                tokio::task::spawn_blocking(move || {
                    process.kill().expect("kill");
                    let _ = process.wait();
                })
                .await
                .unwrap();
            }
        }
    }
    josefk.await.expect("josefk transactions");
    let java_stdout = committing.await.expect("Java committing producer");
    eprintln!(
        "Java committing producer: {}",
        java_stdout.lines().last().unwrap_or_default()
    );
    // One more josefk transaction, committed after the killed Java transaction (held back by the
    // LSO until the coordinator aborts that one).
    josefk_transaction(&producer, &topic, JOSEFK_TXNS, Duration::ZERO).await;
    producer.close(Duration::from_secs(10)).await.unwrap();

    // Wait until the killed transaction was aborted: the LSO reaches the high watermark.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let ends = loop {
        let hw = end_offsets(&admin, &all_tps, IsolationLevel::ReadUncommitted).await;
        let lso = end_offsets(&admin, &all_tps, IsolationLevel::ReadCommitted).await;
        if lso == hw {
            break hw;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a transaction stays open: hw {hw:?}, lso {lso:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    // The ground truth, from the raw log and the markers.
    let log = common::read_log(&bootstrap, &topic, PARTITIONS).await;
    let judged: BTreeMap<i32, Judged> = log.iter().map(|(p, b)| (*p, judge(b))).collect();

    // The producers' identities and intentions, checked against the markers' verdicts.
    let mut pids: BTreeMap<Writer, BTreeSet<i64>> = BTreeMap::new();
    let mut tally: BTreeMap<(Writer, bool), usize> = BTreeMap::new();
    for d in judged.values().flat_map(|j| &j.data) {
        pids.entry(d.writer).or_default().insert(d.producer_id);
        *tally.entry((d.writer, d.committed)).or_default() += 1;
    }
    eprintln!("producer ids: {pids:?}");
    eprintln!("data records (writer, committed) -> count: {tally:?}");
    for p in 0..PARTITIONS {
        let j = &judged[&p];
        let committed = j.data.iter().filter(|d| d.committed).count();
        eprintln!(
            "partition {p}: end {}, {} data records ({committed} committed, {} aborted), {} markers, \
             {} producer alternations, committed records inside another producer's aborted \
             transaction (aborting writer, committed writer): {:?}",
            ends[p as usize],
            j.data.len(),
            j.data.len() - committed,
            j.control.len(),
            j.batch_owners.len().saturating_sub(1),
            j.committed_inside_aborted,
        );
    }
    for (writer, ids) in &pids {
        assert_eq!(
            ids.len(),
            1,
            "{writer:?} wrote with one producer id: {ids:?}"
        );
    }
    assert_eq!(pids.len(), 3, "three producers wrote: {pids:?}");
    let pid_of = |w: Writer| *pids[&w].iter().next().unwrap();
    // josefk: exactly what it sent, aborted iff its transaction was aborted.
    let mut josefk_committed = BTreeSet::new();
    let mut josefk_aborted = BTreeSet::new();
    for t in 0..=JOSEFK_TXNS {
        for p in 0..PARTITIONS {
            for i in 0..PER_PARTITION {
                let v = josefk_value(t, p, i);
                if t % 3 == 2 {
                    josefk_aborted.insert(v);
                } else {
                    josefk_committed.insert(v);
                }
            }
        }
    }
    let values = |writer: Writer, committed: bool| -> BTreeSet<String> {
        judged
            .values()
            .flat_map(|j| &j.data)
            .filter(|d| d.writer == writer && d.committed == committed)
            .map(|d| String::from_utf8(d.value.to_vec()).unwrap())
            .collect()
    };
    assert_eq!(
        values(Writer::Josefk, true),
        josefk_committed,
        "the markers commit exactly josefk's committed transactions"
    );
    assert_eq!(
        values(Writer::Josefk, false),
        josefk_aborted,
        "the markers abort exactly josefk's aborted transactions"
    );
    assert_eq!(
        tally.get(&(Writer::JavaCommitting, true)).copied(),
        Some(JAVA_COMMITTED),
        "every record of Java's committing producer is committed"
    );
    assert_eq!(tally.get(&(Writer::JavaCommitting, false)), None);
    assert_eq!(tally.get(&(Writer::JavaAborted, true)), None);
    assert!(
        tally
            .get(&(Writer::JavaAborted, false))
            .is_some_and(|&n| n >= JAVA_ABORTED_MIN),
        "the killed Java transaction left aborted data"
    );
    // The log really interleaves: in some partition josefk's and Java's batches alternate, and
    // committed data sits inside another producer's aborted transaction.
    let (josefk_pid, java_pid) = (pid_of(Writer::Josefk), pid_of(Writer::JavaCommitting));
    assert!(
        judged.values().any(|j| {
            let seq: Vec<i64> = j
                .batch_owners
                .iter()
                .copied()
                .filter(|pid| *pid == josefk_pid || *pid == java_pid)
                .fold(Vec::new(), |mut acc, pid| {
                    if acc.last() != Some(&pid) {
                        acc.push(pid);
                    }
                    acc
                });
            seq.len() >= 3
        }),
        "josefk's and Java's batches alternate in some partition"
    );
    // ...and committed data of one lies inside an aborted transaction of the other, both ways,
    // so the consumer must filter by producer id, not by offset range.
    for (aborting, committing) in [
        (Writer::Josefk, Writer::JavaCommitting),
        (Writer::JavaAborted, Writer::Josefk),
    ] {
        assert!(
            judged.values().any(|j| j
                .committed_inside_aborted
                .contains_key(&(aborting, committing))),
            "committed {committing:?} data inside an aborted {aborting:?} transaction"
        );
    }

    // read_committed: exactly the committed data records, in offset order, no control records.
    let mut rc = Consumer::connect(
        ConsumerConfig::with_client(common::config(&bootstrap))
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .fetch_max_wait(Duration::from_millis(200))
            .isolation_level(IsolationLevel::ReadCommitted),
    )
    .await
    .unwrap();
    rc.assign(&all_tps).await.unwrap();
    let got = by_partition(&read_to(&mut rc, &all_tps, &ends).await);
    for p in 0..PARTITIONS {
        let j = &judged[&p];
        let want: Vec<(i64, Option<Bytes>)> = j
            .data
            .iter()
            .filter(|d| d.committed)
            .map(|d| (d.offset, Some(d.value.clone())))
            .collect();
        let got = got.get(&p).cloned().unwrap_or_default();
        assert!(
            got.iter().all(|(o, _)| !j.control.contains(o)),
            "partition {p}: read_committed delivered a control record"
        );
        assert!(
            got.iter().all(|(_, v)| {
                let v = v.as_deref().unwrap_or_default();
                !josefk_aborted.contains(std::str::from_utf8(v).unwrap_or(""))
            }),
            "partition {p}: read_committed delivered a record of an aborted josefk transaction"
        );
        assert_eq!(
            got.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
            want.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
            "partition {p}: read_committed delivers exactly the committed offsets, in order"
        );
        assert_eq!(got, want, "partition {p}: read_committed values");
        assert_eq!(
            rc.position(&all_tps[p as usize]).await.unwrap(),
            ends[p as usize],
            "partition {p}: position past the final marker"
        );
    }

    // read_uncommitted: every data record, aborted ones included, never a control record.
    let mut ru = Consumer::connect(
        ConsumerConfig::with_client(common::config(&bootstrap))
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .fetch_max_wait(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    ru.assign(&all_tps).await.unwrap();
    let got = by_partition(&read_to(&mut ru, &all_tps, &ends).await);
    for p in 0..PARTITIONS {
        let j = &judged[&p];
        let want: Vec<(i64, Option<Bytes>)> = j
            .data
            .iter()
            .map(|d| (d.offset, Some(d.value.clone())))
            .collect();
        let got = got.get(&p).cloned().unwrap_or_default();
        assert!(
            got.iter().all(|(o, _)| !j.control.contains(o)),
            "partition {p}: read_uncommitted delivered a control record"
        );
        assert_eq!(
            got.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
            want.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
            "partition {p}: read_uncommitted delivers every data offset, in order"
        );
        assert_eq!(got, want, "partition {p}: read_uncommitted values");
    }
}
