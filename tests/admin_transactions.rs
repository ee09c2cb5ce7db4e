//! Live tests of the admin client's transaction calls (`list_transactions`,
//! `describe_transactions`, `describe_producers`, `abort_transaction`) against a real Kafka broker:
//! an operator finds a transaction left open by a transactional producer that was killed with
//! SIGKILL, and aborts it on its partition.
//!
//! The killed producer is this test binary run again as a child process (the ignored test
//! `open_transaction_child`, told what to do through an environment variable): it writes three
//! records to partition 0 inside a transaction, flushes, says so on stdout and waits to be killed.
//!
//! The broker comes from `KAFKA_BOOTSTRAP_SERVERS` (see `common::bootstrap`).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use josefk::admin::{
    AbortTransactionSpec, Admin, ListTransactionsOptions, NewTopic, OffsetSpec, TransactionState,
};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{ErrorCode, IsolationLevel, ProducerRecord, TopicPartition};

use common::*;

/// `transactional_id,topic` for the child process.
const CHILD_ENV: &str = "JOSEFK_ADMIN_TXN_CHILD";
/// The child's transaction timeout: long enough that the coordinator cannot abort the open
/// transaction while the test looks at it on a loaded machine.
const CHILD_TXN_TIMEOUT: Duration = Duration::from_secs(300);
/// Plain records written to partition 0 before the transaction, so it starts at this offset.
const PLAIN_RECORDS: i64 = 5;

/// The child process: begins a transaction, writes to partition 0, flushes, prints `OPEN` and
/// waits to be killed. Not a test of its own; run only by `a_killed_producers_open_transaction_is_found`.
#[tokio::test]
#[ignore = "helper process of a_killed_producers_open_transaction_is_found"]
async fn open_transaction_child() {
    let spec = std::env::var(CHILD_ENV).expect("run only as the child of the admin test");
    let (tid, topic) = spec.split_once(',').expect("transactional_id,topic");
    let mut config = ProducerConfig::with_client(config(&bootstrap())).transactional_id(tid);
    config.transaction_timeout = CHILD_TXN_TIMEOUT;
    config.max_block = Duration::from_secs(60);
    let producer = Producer::connect(config).await.expect("connect");
    producer.init_transactions().await.expect("init");
    producer.begin_transaction().expect("begin");
    let mut pending = Vec::new();
    for i in 0..3 {
        let record = ProducerRecord::new(topic, Bytes::from(format!("open-{i}"))).partition(0);
        pending.push(producer.send(record).await.expect("send"));
    }
    producer.flush().await.expect("flush");
    println!("OPEN");
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

#[tokio::test]
async fn a_killed_producers_open_transaction_is_found() {
    let bootstrap = bootstrap();
    let admin = Admin::connect(config(&bootstrap)).await.expect("admin");
    let topic = unique_topic("admin-txn");
    admin
        .create_topics(&[NewTopic::new(&topic, 2, 1)])
        .await
        .expect("create topic");
    let tid = unique_topic("admin-txn-tid");
    let p0 = TopicPartition::new(&topic, 0);
    let p1 = TopicPartition::new(&topic, 1);

    // Plain (idempotent, not transactional) records first: the transaction starts after them.
    let plain = Producer::connect(ProducerConfig::with_client(config(&bootstrap)))
        .await
        .expect("plain producer");
    for i in 0..PLAIN_RECORDS {
        let record = ProducerRecord::new(&topic, Bytes::from(format!("plain-{i}"))).partition(0);
        plain
            .send(record)
            .await
            .expect("send")
            .await
            .expect("plain record delivered");
    }
    plain.close(Duration::from_secs(30)).await.expect("close");

    let started_ms = now_ms();
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "open_transaction_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_ENV, format!("{tid},{topic}"))
        .env("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the child producer");
    let stdout = child.stdout.take().expect("child stdout");
    let opened = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(|l| l.ok())
            .any(|l| l.trim() == "OPEN")
    });
    let opened = tokio::time::timeout(Duration::from_secs(120), opened)
        .await
        .expect("the child opened a transaction within 120 s")
        .unwrap();
    assert!(opened, "the child exited without opening a transaction");
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");

    // Listed, in every listing whose filters it matches, and only in those.
    let all = admin
        .list_transactions(&ListTransactionsOptions::new())
        .await
        .expect("list transactions");
    let listed: Vec<_> = all.iter().filter(|t| t.transactional_id == tid).collect();
    assert_eq!(listed.len(), 1, "{all:?}");
    let listing = listed[0].clone();
    assert_eq!(listing.state, TransactionState::Ongoing, "{listing:?}");
    assert!(listing.producer_id >= 0, "{listing:?}");
    let ongoing = admin
        .list_transactions(&ListTransactionsOptions::new().state(TransactionState::Ongoing))
        .await
        .expect("list ongoing");
    assert!(
        ongoing.iter().any(|t| t.transactional_id == tid),
        "{ongoing:?}"
    );
    assert!(
        ongoing.iter().all(|t| t.state == TransactionState::Ongoing),
        "{ongoing:?}"
    );
    let committed = admin
        .list_transactions(&ListTransactionsOptions::new().state(TransactionState::CompleteCommit))
        .await
        .expect("list committed");
    assert!(
        !committed.iter().any(|t| t.transactional_id == tid),
        "{committed:?}"
    );
    let by_producer = admin
        .list_transactions(&ListTransactionsOptions::new().producer_id(listing.producer_id))
        .await
        .expect("list by producer id");
    assert_eq!(by_producer, vec![listing.clone()]);
    let long_running = admin
        .list_transactions(
            &ListTransactionsOptions::new().running_longer_than(Duration::from_secs(3600)),
        )
        .await
        .expect("list by duration");
    assert!(
        !long_running.iter().any(|t| t.transactional_id == tid),
        "{long_running:?}"
    );
    let by_pattern = admin
        .list_transactions(
            &ListTransactionsOptions::new().transactional_id_pattern(format!("{tid}.*")),
        )
        .await
        .expect("list by pattern");
    assert_eq!(by_pattern, vec![listing.clone()]);

    // Described by its coordinator: the partition it wrote to, its timeout and start time.
    let described = admin
        .describe_transactions(&[tid.as_str()])
        .await
        .expect("describe transactions");
    assert_eq!(described.len(), 1);
    let d = &described[0];
    assert_eq!(d.transactional_id, tid);
    assert_eq!(d.state, TransactionState::Ongoing, "{d:?}");
    assert_eq!(d.producer_id, listing.producer_id);
    assert!(d.producer_epoch >= 0, "{d:?}");
    assert_eq!(d.transaction_timeout, CHILD_TXN_TIMEOUT);
    assert_eq!(d.partitions, vec![p0.clone()], "{d:?}");
    let start = d
        .transaction_start_time_ms
        .expect("an open transaction has a start time");
    assert!(
        start >= started_ms && start <= now_ms(),
        "{start} vs {started_ms}"
    );
    assert_eq!(d.coordinator, listing.coordinator);

    // The partition leader holds the open transaction from the first transactional record.
    let producers = admin
        .describe_producers(&[p0.clone(), p1.clone()])
        .await
        .expect("describe producers");
    let open: Vec<_> = producers[&p0]
        .iter()
        .filter(|p| p.producer_id == listing.producer_id)
        .collect();
    assert_eq!(open.len(), 1, "{producers:?}");
    assert_eq!(
        open[0].current_transaction_start_offset,
        Some(PLAIN_RECORDS),
        "{producers:?}"
    );
    assert_eq!(
        i64::from(open[0].producer_epoch),
        i64::from(d.producer_epoch)
    );
    assert_eq!(open[0].last_sequence, 2, "three records, sequences 0..=2");
    // The plain producer is tracked too, with no transaction.
    assert!(
        producers[&p0]
            .iter()
            .any(|p| p.producer_id != listing.producer_id
                && p.current_transaction_start_offset.is_none()
                && p.last_sequence == PLAIN_RECORDS as i32 - 1),
        "{producers:?}"
    );
    assert!(producers[&p1].is_empty(), "{producers:?}");

    // The operator's way out: abort it on the partition (WriteTxnMarkers to the leader). The
    // last stable offset moves to the end of the log, so read_committed readers go on.
    let spec = AbortTransactionSpec::for_producer(p0.clone(), open[0]).expect("spec");
    admin
        .abort_transaction(&spec)
        .await
        .expect("abort on the partition");
    let after = admin
        .describe_producers(std::slice::from_ref(&p0))
        .await
        .expect("describe producers after the abort");
    assert!(
        after[&p0]
            .iter()
            .all(|p| p.current_transaction_start_offset.is_none()),
        "{after:?}"
    );
    let spec_list = [(p0.clone(), OffsetSpec::Latest)];
    let stable = admin
        .list_offsets(&spec_list, IsolationLevel::ReadCommitted)
        .await
        .expect("last stable offset")[&p0]
        .offset;
    let end = admin
        .list_offsets(&spec_list, IsolationLevel::ReadUncommitted)
        .await
        .expect("high watermark")[&p0]
        .offset;
    // 5 plain records, 3 transactional ones, the abort marker.
    assert_eq!((stable, end), (PLAIN_RECORDS + 4, PLAIN_RECORDS + 4));
    let log = read_log(&bootstrap, &topic, 1).await;
    let marker = log[&0].last().expect("batches");
    assert!(marker.control, "{marker:?}");
    assert_eq!(marker.control_type, Some(0), "an abort marker: {marker:?}");
    assert_eq!(marker.producer_id, listing.producer_id);

    // A new producer with the same transactional.id ends it at the coordinator too: no
    // partition holds it, and the coordinator no longer lists it as Ongoing.
    let mut config = ProducerConfig::with_client(config(&bootstrap)).transactional_id(&tid);
    config.max_block = Duration::from_secs(60);
    let successor = Producer::connect(config).await.expect("successor");
    successor
        .init_transactions()
        .await
        .expect("init fences and aborts");
    let after = admin
        .describe_producers(std::slice::from_ref(&p0))
        .await
        .expect("describe producers after the abort");
    assert!(
        after[&p0]
            .iter()
            .all(|p| p.current_transaction_start_offset.is_none()),
        "{after:?}"
    );
    let d = admin
        .describe_transactions(&[tid.as_str()])
        .await
        .expect("describe after the abort");
    assert_ne!(d[0].state, TransactionState::Ongoing, "{d:?}");
    assert!(d[0].partitions.is_empty(), "{d:?}");
    successor
        .close(Duration::from_secs(30))
        .await
        .expect("close");
}

#[tokio::test]
async fn an_unknown_transactional_id_is_named_in_the_error() {
    let admin = Admin::connect(config(&bootstrap())).await.expect("admin");
    let tid = unique_topic("admin-txn-none");
    let e = admin
        .describe_transactions(&[tid.as_str()])
        .await
        .expect_err("no such transactional id");
    assert_eq!(
        e.kafka_code(),
        Some(ErrorCode::TransactionalIdNotFound),
        "{e}"
    );
    assert!(e.to_string().contains(&tid), "{e}");
}
