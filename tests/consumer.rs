//! Live tests of the consumer (manual assignment) against a real Kafka: reading back what josefk's
//! idempotent producer wrote, offset reset policies, seek, pause/resume, read_committed against
//! transactions written by Java's own producer (judged by Java's ConsoleConsumer), and bad input.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use josefk::admin::{Admin, NewTopic, OffsetSpec};
use josefk::consumer::{AutoOffsetReset, Consumer, ConsumerConfig, ConsumerRecord};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{IsolationLevel, ProducerRecord, TopicPartition};
use josefk_harness::KafkaDist;

async fn admin(bootstrap: &str) -> Admin {
    Admin::connect(common::config(bootstrap))
        .await
        .expect("admin")
}

fn consumer_config(bootstrap: &str, reset: AutoOffsetReset) -> ConsumerConfig {
    ConsumerConfig::with_client(common::config(bootstrap))
        .auto_offset_reset(reset)
        .fetch_max_wait(Duration::from_millis(200))
}

async fn consumer(bootstrap: &str, reset: AutoOffsetReset, tps: &[TopicPartition]) -> Consumer {
    let mut c = Consumer::connect(consumer_config(bootstrap, reset))
        .await
        .expect("consumer connects");
    c.assign(tps).await.expect("assign");
    c
}

fn tps(topic: &str, partitions: i32) -> Vec<TopicPartition> {
    (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect()
}

/// Polls until `n` records came, failing after `within`.
async fn poll_n(c: &mut Consumer, n: usize, within: Duration) -> Vec<ConsumerRecord> {
    let deadline = tokio::time::Instant::now() + within;
    let mut all = Vec::new();
    while all.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} records within {within:?}",
            all.len()
        );
        all.extend(c.poll(Duration::from_millis(500)).await.expect("poll"));
    }
    all
}

/// Polls for `wait` and returns whatever came.
async fn poll_for(c: &mut Consumer, wait: Duration) -> Vec<ConsumerRecord> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut all = Vec::new();
    while tokio::time::Instant::now() < deadline {
        all.extend(c.poll(Duration::from_millis(200)).await.expect("poll"));
    }
    all
}

async fn end_offsets(admin: &Admin, tps: &[TopicPartition], iso: IsolationLevel) -> Vec<i64> {
    let specs: Vec<_> = tps
        .iter()
        .map(|tp| (tp.clone(), OffsetSpec::Latest))
        .collect();
    let ends = admin.list_offsets(&specs, iso).await.expect("list offsets");
    tps.iter().map(|tp| ends[tp].offset).collect()
}

/// Writes `count` records `prefix-i` to one partition with josefk's producer.
async fn produce(bootstrap: &str, topic: &str, partition: i32, prefix: &str, count: usize) {
    let producer = Producer::connect(ProducerConfig::with_client(common::config(bootstrap)))
        .await
        .expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..count {
        let record = ProducerRecord::new(topic, format!("{prefix}-{i}")).partition(partition);
        deliveries.push(producer.send(record).await.expect("send"));
    }
    for d in deliveries {
        d.await.expect("delivered");
    }
    producer.close(Duration::from_secs(10)).await.unwrap();
}

fn offsets(records: &[ConsumerRecord], partition: i32) -> Vec<i64> {
    records
        .iter()
        .filter(|r| r.partition == partition)
        .map(|r| r.offset)
        .collect()
}

type Expected = (Option<Bytes>, Option<Bytes>, Vec<(String, Option<Bytes>)>);

#[tokio::test(flavor = "multi_thread")]
async fn reads_back_exactly_what_the_idempotent_producer_wrote_in_partition_order() {
    let bootstrap = common::bootstrap();
    let admin = admin(&bootstrap).await;
    let topic = common::unique_topic("cons-all");
    admin
        .create_topics(&[NewTopic::new(&topic, 3, 1)])
        .await
        .unwrap();
    let producer = Producer::connect(ProducerConfig::with_client(common::config(&bootstrap)))
        .await
        .unwrap();
    const N: usize = 1500;
    let mut deliveries = Vec::new();
    let mut sent = Vec::new();
    for i in 0..N {
        let key = Bytes::from(format!("key-{}", i % 13));
        let value = Bytes::from(format!("value-{i:05}"));
        let record = ProducerRecord::new(&topic, value.clone())
            .key(key.clone())
            .header("trace", format!("t{i}"))
            .header("trace", "dup")
            .header("empty", "");
        deliveries.push(producer.send(record).await.unwrap());
        let headers = vec![
            ("trace".to_owned(), Some(Bytes::from(format!("t{i}")))),
            ("trace".to_owned(), Some(Bytes::from_static(b"dup"))),
            ("empty".to_owned(), Some(Bytes::new())),
        ];
        sent.push((Some(key), Some(value), headers));
    }
    // Expected content of each partition, by offset, from the producer's delivery reports.
    let mut expected: BTreeMap<i32, BTreeMap<i64, Expected>> = BTreeMap::new();
    for (d, content) in deliveries.into_iter().zip(sent) {
        let md = d.await.expect("delivered");
        let offset = md.offset.expect("idempotent acks=all reports offsets");
        expected
            .entry(md.partition)
            .or_default()
            .insert(offset, content);
    }
    producer.close(Duration::from_secs(10)).await.unwrap();

    let all = tps(&topic, 3);
    let mut c = consumer(&bootstrap, AutoOffsetReset::Earliest, &all).await;
    let started = std::time::Instant::now();
    let records = poll_n(&mut c, N, Duration::from_secs(20)).await;
    assert_eq!(records.len(), N, "no record twice");
    for p in 0..3 {
        let got: Vec<&ConsumerRecord> = records.iter().filter(|r| r.partition == p).collect();
        let want = expected.remove(&p).unwrap_or_default();
        assert_eq!(got.len(), want.len(), "partition {p} record count");
        for (r, (offset, (key, value, headers))) in got.iter().zip(want) {
            assert_eq!(r.offset, offset, "partition {p} in offset order");
            assert_eq!(&*r.topic, topic.as_str());
            assert_eq!(r.key, key, "{p}@{offset} key");
            assert_eq!(r.value, value, "{p}@{offset} value");
            let got_headers: Vec<(String, Option<Bytes>)> = r
                .headers
                .iter()
                .map(|h| (h.key_str().unwrap().to_owned(), h.value))
                .collect();
            assert_eq!(got_headers, headers, "{p}@{offset} headers in order");
            assert!(r.timestamp > 0);
        }
    }
    eprintln!("consumed {N} records in {:?}", started.elapsed());
    let ends = end_offsets(&admin, &all, IsolationLevel::ReadUncommitted).await;
    for (tp, end) in all.iter().zip(ends) {
        assert_eq!(c.position(tp).await.unwrap(), end, "{tp} position at end");
    }
    assert!(poll_for(&mut c, Duration::from_millis(600))
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_policies_seek_and_pause_resume() {
    let bootstrap = common::bootstrap();
    let admin = admin(&bootstrap).await;
    let topic = common::unique_topic("cons-reset");
    admin
        .create_topics(&[NewTopic::new(&topic, 2, 1)])
        .await
        .unwrap();
    produce(&bootstrap, &topic, 0, "a", 10).await;
    produce(&bootstrap, &topic, 1, "b", 10).await;
    let both = tps(&topic, 2);
    let (p0, p1) = (both[0].clone(), both[1].clone());

    // latest: starts at the end, sees only what comes after.
    let mut latest = consumer(
        &bootstrap,
        AutoOffsetReset::Latest,
        std::slice::from_ref(&p0),
    )
    .await;
    assert_eq!(latest.position(&p0).await.unwrap(), 10);
    assert!(latest
        .poll(Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    produce(&bootstrap, &topic, 0, "late", 5).await;
    let late = poll_n(&mut latest, 5, Duration::from_secs(10)).await;
    assert_eq!(offsets(&late, 0), (10..15).collect::<Vec<_>>());
    assert_eq!(late[0].value.as_deref(), Some(&b"late-0"[..]));

    // earliest: starts at the log start.
    let mut earliest = consumer(
        &bootstrap,
        AutoOffsetReset::Earliest,
        std::slice::from_ref(&p0),
    )
    .await;
    assert_eq!(earliest.position(&p0).await.unwrap(), 0);
    let got = poll_n(&mut earliest, 15, Duration::from_secs(10)).await;
    assert_eq!(offsets(&got, 0), (0..15).collect::<Vec<_>>());
    // seek to the middle re-reads from there.
    earliest.seek(&p0, 7).unwrap();
    let got = poll_n(&mut earliest, 8, Duration::from_secs(10)).await;
    assert_eq!(offsets(&got, 0), (7..15).collect::<Vec<_>>());
    // seek beyond the end: OFFSET_OUT_OF_RANGE resets per policy (earliest).
    earliest.seek(&p0, 1_000).unwrap();
    let got = poll_n(&mut earliest, 15, Duration::from_secs(10)).await;
    assert_eq!(offsets(&got, 0)[0], 0, "reset to the log start");

    // none: a clear error naming the partition until the application seeks.
    let mut none = consumer(&bootstrap, AutoOffsetReset::None, std::slice::from_ref(&p0)).await;
    let e = none.poll(Duration::from_millis(300)).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains(&p0.to_string()), "{text}");
    assert!(text.contains("auto.offset.reset"), "{text}");
    assert!(none.position(&p0).await.is_err());
    none.seek(&p0, 12).unwrap();
    let got = poll_n(&mut none, 3, Duration::from_secs(10)).await;
    assert_eq!(offsets(&got, 0), vec![12, 13, 14]);
    none.seek(&p0, 1_000).unwrap();
    let e = poll_for_error(&mut none).await;
    let text = e.to_string();
    assert!(
        text.contains("out of range") && text.contains(&p0.to_string()),
        "{text}"
    );

    // pause stops a partition's delivery; resume restarts it.
    let mut c = consumer(&bootstrap, AutoOffsetReset::Earliest, &both).await;
    c.pause(std::slice::from_ref(&p1)).unwrap();
    assert_eq!(c.paused(), vec![p1.clone()]);
    let got = poll_n(&mut c, 15, Duration::from_secs(10)).await;
    assert_eq!(offsets(&got, 0), (0..15).collect::<Vec<_>>());
    assert!(offsets(&got, 1).is_empty(), "paused partition delivered");
    assert!(poll_for(&mut c, Duration::from_millis(800))
        .await
        .is_empty());
    assert_eq!(c.position(&p1).await.unwrap(), 0);
    c.resume(std::slice::from_ref(&p1)).unwrap();
    let got = poll_n(&mut c, 10, Duration::from_secs(10)).await;
    assert_eq!(offsets(&got, 1), (0..10).collect::<Vec<_>>());
}

async fn poll_for_error(c: &mut Consumer) -> josefk::Error {
    for _ in 0..20 {
        match c.poll(Duration::from_millis(300)).await {
            Err(e) => return e,
            Ok(records) => assert!(records.is_empty(), "records from an invalid position"),
        }
    }
    panic!("no error from polling an out-of-range position under auto.offset.reset=none");
}

/// Runs a Java tool on the blocking pool; returns stdout (the exit status is checked if `check`).
async fn java_tool(main_class: &'static str, args: Vec<String>, check: bool) -> String {
    tokio::task::spawn_blocking(move || {
        let dist = KafkaDist::provision().expect("provision Kafka's tools");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = josefk_harness::run_java_tool(&dist, main_class, &args, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{main_class}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            !check || out.status.success(),
            "{main_class} {args:?} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    })
    .await
    .expect("tool task")
}

fn perf_args(
    bootstrap: &str,
    topic: &str,
    txn_id: &str,
    records: usize,
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = [
        "--topic",
        topic,
        "--num-records",
        &records.to_string(),
        "--record-size",
        "32",
        "--transactional-id",
        txn_id,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push("--producer-props".into());
    args.push(format!("bootstrap.servers={bootstrap}"));
    args.push("transaction.timeout.ms=3000".into());
    args.push("linger.ms=5".into());
    args
}

#[tokio::test(flavor = "multi_thread")]
async fn read_committed_delivers_only_committed_records_as_java_does() {
    let bootstrap = common::bootstrap();
    let admin = admin(&bootstrap).await;
    let topic = common::unique_topic("cons-txn");
    admin
        .create_topics(&[NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    let tp = TopicPartition::new(&topic, 0);
    const COMMITTED: usize = 200;
    let perf = "org.apache.kafka.tools.ProducerPerformance";

    // 1. Committed transactions of 50 ms each.
    let args = perf_args(
        &bootstrap,
        &topic,
        &format!("{topic}-c1"),
        COMMITTED,
        &["--throughput", "-1", "--transaction-duration-ms", "50"],
    );
    java_tool(perf, args, true).await;
    let committed_end = end_offsets(
        &admin,
        std::slice::from_ref(&tp),
        IsolationLevel::ReadUncommitted,
    )
    .await[0];

    // 2. One long transaction, killed while open: the coordinator aborts it after
    //    transaction.timeout.ms (3 s).
    let args = perf_args(
        &bootstrap,
        &topic,
        &format!("{topic}-a"),
        1_000_000,
        &["--throughput", "400", "--transaction-duration-ms", "600000"],
    );
    let mut aborted = tokio::task::spawn_blocking(move || {
        let dist = KafkaDist::provision().expect("provision Kafka's tools");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        josefk_harness::spawn_java_tool(&dist, perf, &args).expect("spawn ProducerPerformance")
    })
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let end = end_offsets(
            &admin,
            std::slice::from_ref(&tp),
            IsolationLevel::ReadUncommitted,
        )
        .await[0];
        if end >= committed_end + 100 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no transactional data written"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::task::spawn_blocking(move || aborted.kill().expect("kill"))
        .await
        .unwrap();

    // 3. More committed data after the aborted transaction (held back by the LSO until the abort).
    let args = perf_args(
        &bootstrap,
        &topic,
        &format!("{topic}-c2"),
        COMMITTED,
        &["--throughput", "-1", "--transaction-duration-ms", "50"],
    );
    java_tool(perf, args, true).await;

    // Wait until the open transaction was aborted: the LSO reaches the high watermark.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let end = loop {
        let hw = end_offsets(
            &admin,
            std::slice::from_ref(&tp),
            IsolationLevel::ReadUncommitted,
        )
        .await[0];
        let lso = end_offsets(
            &admin,
            std::slice::from_ref(&tp),
            IsolationLevel::ReadCommitted,
        )
        .await[0];
        if lso == hw {
            break hw;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "transaction never aborted"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    // The independent view of the log: every data record and the producer that wrote it.
    let log = common::read_log(&bootstrap, &topic, 1).await;
    let batches = &log[&0];
    let mut pids: Vec<i64> = Vec::new();
    for b in batches.iter().filter(|b| !b.control) {
        if !pids.contains(&b.producer_id) {
            pids.push(b.producer_id);
        }
    }
    assert_eq!(pids.len(), 3, "three transactional producers: {pids:?}");
    let aborted_pid = pids[1];
    let data: Vec<(i64, i64)> = batches
        .iter()
        .filter(|b| !b.control)
        .flat_map(|b| b.records.iter().map(move |r| (r.offset, b.producer_id)))
        .collect();
    let committed: BTreeSet<i64> = data
        .iter()
        .filter(|(_, pid)| *pid != aborted_pid)
        .map(|(o, _)| *o)
        .collect();
    let all_data: BTreeSet<i64> = data.iter().map(|(o, _)| *o).collect();
    assert_eq!(committed.len(), 2 * COMMITTED);
    assert!(all_data.len() > committed.len() + 50, "aborted data exists");

    // read_committed: exactly the committed records, no control records, position at the end.
    let mut rc = Consumer::connect(
        consumer_config(&bootstrap, AutoOffsetReset::Earliest)
            .isolation_level(IsolationLevel::ReadCommitted),
    )
    .await
    .unwrap();
    rc.assign(std::slice::from_ref(&tp)).await.unwrap();
    let got = poll_n(&mut rc, committed.len(), Duration::from_secs(20)).await;
    let got_offsets: BTreeSet<i64> = got.iter().map(|r| r.offset).collect();
    assert_eq!(got.len(), got_offsets.len(), "no duplicates");
    assert_eq!(
        got_offsets, committed,
        "read_committed delivers committed data only"
    );
    assert!(poll_for(&mut rc, Duration::from_millis(600))
        .await
        .is_empty());
    assert_eq!(
        rc.position(&tp).await.unwrap(),
        end,
        "position past the final marker"
    );

    // read_uncommitted: every data record (aborted ones included), never a control record.
    let mut ru = consumer(
        &bootstrap,
        AutoOffsetReset::Earliest,
        std::slice::from_ref(&tp),
    )
    .await;
    let got = poll_n(&mut ru, all_data.len(), Duration::from_secs(20)).await;
    let got_offsets: BTreeSet<i64> = got.iter().map(|r| r.offset).collect();
    assert_eq!(got_offsets, all_data);
    assert!(poll_for(&mut ru, Duration::from_millis(600))
        .await
        .is_empty());

    // The independent judge: Java's ConsoleConsumer in read_committed sees the same records.
    let args: Vec<String> = [
        "--bootstrap-server",
        &bootstrap,
        "--topic",
        &topic,
        "--from-beginning",
        "--isolation-level",
        "read_committed",
        "--max-messages",
        &(committed.len() + 1).to_string(),
        "--timeout-ms",
        "5000",
        "--formatter-property",
        "print.offset=true",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let stdout = java_tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        args,
        false,
    )
    .await;
    let java: BTreeSet<i64> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Offset:"))
        .map(|l| l.split('\t').next().unwrap().parse().expect("offset"))
        .collect();
    assert_eq!(java, committed, "Java's read_committed view");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_a_clear_error() {
    let bootstrap = common::bootstrap();
    let admin = admin(&bootstrap).await;
    let topic = common::unique_topic("cons-bad");
    admin
        .create_topics(&[NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();

    let mut c = Consumer::connect(
        consumer_config(&bootstrap, AutoOffsetReset::Earliest)
            .default_api_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    let missing = common::unique_topic("cons-missing");
    let e = c
        .assign(&[TopicPartition::new(&missing, 0)])
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains(&missing), "{text}");
    assert!(text.contains("UnknownTopicOrPartition"), "{text}");
    assert!(c.assignment().is_empty());

    let e = c
        .assign(&[TopicPartition::new(&topic, 5)])
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!("{topic}-5")) && text.contains("1 partitions"),
        "{text}"
    );

    let e = c.seek(&TopicPartition::new(&topic, 0), 3).unwrap_err();
    assert!(e.to_string().contains("not assigned"), "{e}");

    let e = ConsumerConfig::from_properties([
        ("bootstrap.servers", &*bootstrap),
        ("group.protocol", "next"),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("classic or consumer"), "{e}");
    // Group operations without `group.id` name what is missing.
    let e = c.subscribe(&[&topic]).unwrap_err();
    assert!(e.to_string().contains("group.id"), "{e}");
    let e = c.commit().await.unwrap_err();
    assert!(e.to_string().contains("group.id"), "{e}");
    let e = ConsumerConfig::from_properties([
        ("bootstrap.servers", &*bootstrap),
        ("isolation.level", "read_dirty"),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("isolation.level"), "{e}");
    let e = Consumer::connect(
        consumer_config(&bootstrap, AutoOffsetReset::Earliest).max_poll_records(0),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("max.poll.records"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_sessions_write_only_partitions_that_moved() {
    let bootstrap = common::bootstrap();
    let admin = admin(&bootstrap).await;
    let topic = common::unique_topic("cons-session");
    admin
        .create_topics(&[NewTopic::new(&topic, 6, 1)])
        .await
        .unwrap();
    produce(&bootstrap, &topic, 0, "first", 50).await;
    let all = tps(&topic, 6);
    let mut c = consumer(&bootstrap, AutoOffsetReset::Earliest, &all).await;
    let first = poll_n(&mut c, 50, Duration::from_secs(20)).await;
    produce(&bootstrap, &topic, 0, "second", 50).await;
    let second = poll_n(&mut c, 50, Duration::from_secs(20)).await;
    let offsets: Vec<i64> = first.iter().chain(&second).map(|r| r.offset).collect();
    assert_eq!(
        offsets,
        (0..100).collect::<Vec<i64>>(),
        "every record once, in order"
    );
    assert!(first.iter().chain(&second).all(|r| r.partition == 0));

    // The broker created a session and later fetches were incremental: the five empty
    // partitions rode along implicitly instead of being written into every request.
    let stats = c.fetch_session_stats();
    assert!(stats.incremental_requests > 0, "{stats:?}");
    assert!(stats.partitions_implicit >= 5, "{stats:?}");
    assert!(
        stats.partitions_sent < 6 * (stats.full_requests + stats.incremental_requests),
        "{stats:?}"
    );
    eprintln!("{stats:?}");
}
