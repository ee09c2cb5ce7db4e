//! Live tests of [`josefk::pipeline`]: exactly-once copies judged by Java's `read_committed`
//! `ConsoleConsumer` (output = input: no duplicate, no loss, each input partition's order kept),
//! on both transaction protocols: the shared broker (KIP-890 v2) and a private single-node
//! cluster formatted with `transaction.version=0` (v1).
//!
//! - two pipeline instances in one group: the second joins mid-copy and leaves again
//!   (rebalances while transactions are open);
//! - a dead-letter topic written inside the same transactions, and the `Fail` policy;
//! - a transform that stalls past `transaction.timeout.ms` once: the coordinator aborts the
//!   transaction and the pipeline recovers (v1: by replacing its fenced producer);
//! - another producer taking the `transactional.id`: a fatal error that says "fenced";
//! - copier processes (`examples/pipeline_copy.rs`) killed with SIGKILL and restarted.

mod common;

use common::pipeline::*;

use std::collections::BTreeSet;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use josefk::admin::{Admin, NewTopic};
use josefk::consumer::ConsumerRecord;
use josefk::pipeline::{Pipeline, PipelineStats, TransformErrorPolicy};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{Error, TopicPartition};
use josefk_harness::ClusterSpec;

// ---- scenarios, each run on either protocol ----

/// Two instances in one group; the second joins after a quarter of the copy and leaves
/// (gracefully) at half; the first finishes.
async fn two_instances(bootstrap: &str, tag: &str) {
    const RECORDS: usize = 20_000;
    let topics = setup(bootstrap, tag, 4, RECORDS).await;
    let group = common::unique_topic(&format!("pipe-group-{tag}"));
    let watcher = watcher(bootstrap, &group).await;
    // A little work per record, so the copy lasts long enough for the joins and leaves to land
    // while transactions are open.
    let slow_copy = {
        let output = topics.output.clone();
        move |r: ConsumerRecord| {
            let out = copied(&output, &r);
            async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok::<_, std::convert::Infallible>(vec![out])
            }
        }
    };
    let start = |tid: &str| {
        // Transactions span several polls, so joins and leaves land inside open ones.
        let config = pipeline_config(bootstrap, &group, tid, &topics.input)
            .commit_interval(Duration::from_secs(2))
            .commit_records(4_000);
        let transform = slow_copy.clone();
        async move {
            let pipeline = Pipeline::connect(config).await.unwrap();
            let shutdown = pipeline.shutdown_handle();
            (shutdown, tokio::spawn(pipeline.run(transform)))
        }
    };
    let (stop_a, a) = start(&format!("{group}-a")).await;
    wait_for_progress(&watcher, &topics, RECORDS / 4, || a.is_finished()).await;
    let (stop_b, b) = start(&format!("{group}-b")).await;
    wait_for_progress(&watcher, &topics, RECORDS / 2, || {
        a.is_finished() || b.is_finished()
    })
    .await;
    stop_b.shutdown();
    let stats_b = b.await.unwrap().expect("instance b");
    wait_for_progress(&watcher, &topics, RECORDS, || a.is_finished()).await;
    stop_a.shutdown();
    let stats_a = a.await.unwrap().expect("instance a");
    eprintln!("[{tag}] instance a: {stats_a:?}\n[{tag}] instance b: {stats_b:?}");
    assert_eq!(
        stats_a.records_in + stats_b.records_in,
        RECORDS as u64,
        "committed input records, counted by the pipelines"
    );
    let out = java_read_committed(bootstrap, &topics.output, RECORDS).await;
    assert_exactly(tag, &out, &all(RECORDS));
}

/// Every 100th record is poison: under `DeadLetter` it goes to the DLQ topic in the same
/// transaction, with its origin and the error in headers.
async fn dead_letters(bootstrap: &str, tag: &str) {
    const RECORDS: usize = 2_000;
    let topics = setup(bootstrap, tag, 2, RECORDS).await;
    let dlq = common::unique_topic(&format!("pipe-dlq-{tag}"));
    let admin = Admin::connect(common::config(bootstrap)).await.unwrap();
    admin
        .create_topics(&[NewTopic::new(&dlq, 1, 1)])
        .await
        .unwrap();
    let group = common::unique_topic(&format!("pipe-group-{tag}"));
    let poison = |i: usize| i % 100 == 7;
    let output = topics.output.clone();
    let transform = move |r: ConsumerRecord| {
        let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
        let i: usize = value["record-".len()..].parse().unwrap();
        let out = copied(&output, &r);
        async move {
            if poison(i) {
                return Err(format!("cannot copy {value}"));
            }
            Ok(vec![out])
        }
    };
    let config = pipeline_config(bootstrap, &group, &format!("{group}-1"), &topics.input)
        .on_transform_error(TransformErrorPolicy::DeadLetter(dlq.clone()));
    let pipeline = Pipeline::connect(config).await.unwrap();
    let stop = pipeline.shutdown_handle();
    let run = tokio::spawn(pipeline.run(transform));
    let watcher = watcher(bootstrap, &group).await;
    wait_for_progress(&watcher, &topics, RECORDS, || run.is_finished()).await;
    stop.shutdown();
    let stats = run.await.unwrap().expect("pipeline");
    eprintln!("[{tag}] {stats:?}");
    let poisoned: BTreeSet<usize> = (0..RECORDS).filter(|&i| poison(i)).collect();
    assert_eq!(stats.dead_letters, poisoned.len() as u64);
    let healthy: BTreeSet<usize> = all(RECORDS).difference(&poisoned).copied().collect();
    let out = java_read_committed(bootstrap, &topics.output, healthy.len()).await;
    assert_exactly(tag, &out, &healthy);
    // The dead letters, read_committed, with their headers.
    let letters = read_committed(bootstrap, &dlq).await;
    let mut found = BTreeSet::new();
    for r in &letters {
        let header = |k: &str| {
            r.headers
                .iter()
                .find(|h| h.key == k.as_bytes())
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_else(|| panic!("dead letter without {k}"))
        };
        let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
        let i: usize = value["record-".len()..].parse().unwrap();
        assert_eq!(header("josefk.dlq.error"), format!("cannot copy {value}"));
        assert_eq!(header("josefk.dlq.topic"), topics.input);
        assert_eq!(header("josefk.dlq.partition"), (i % 2).to_string());
        assert_eq!(
            header("josefk.dlq.offset"),
            (i / 2).to_string(),
            "record i is at offset i / 2 of partition i % 2"
        );
        assert!(found.insert(i), "dead letter {i} twice");
    }
    assert_eq!(found, poisoned);
}

/// Under `Fail`, the poison record stops the pipeline with `Error::Transform` naming it, and
/// nothing after the last commit is visible.
async fn fail_policy(bootstrap: &str, tag: &str) {
    const RECORDS: usize = 1_000;
    const POISON: usize = 600;
    let topics = setup(bootstrap, tag, 1, RECORDS).await;
    let group = common::unique_topic(&format!("pipe-group-{tag}"));
    let output = topics.output.clone();
    let transform = move |r: ConsumerRecord| {
        let poisoned = r.value.as_deref() == Some(format!("record-{POISON}").as_bytes());
        let out = copied(&output, &r);
        async move {
            if poisoned {
                return Err("poison");
            }
            Ok(vec![out])
        }
    };
    let config = pipeline_config(bootstrap, &group, &format!("{group}-1"), &topics.input);
    let pipeline = Pipeline::connect(config).await.unwrap();
    let e = pipeline
        .run(transform)
        .await
        .expect_err("the poison stops it");
    match &e {
        Error::Transform {
            topic,
            partition,
            offset,
            source,
        } => {
            assert_eq!(
                (topic.as_str(), *partition, *offset),
                (topics.input.as_str(), 0, POISON as i64)
            );
            assert_eq!(source.to_string(), "poison");
        }
        other => panic!("expected Error::Transform, got {other:?}"),
    }
    let watcher = watcher(bootstrap, &group).await;
    let done = committed(&watcher, &topics).await as usize;
    assert!(done <= POISON, "committed past the poison: {done}");
    let out = java_read_committed(bootstrap, &topics.output, done).await;
    assert_exactly(tag, &out, &(0..done).collect());
}

/// The transform stalls once for longer than `transaction.timeout.ms`: the coordinator aborts
/// that transaction, and the pipeline recovers by itself.
async fn stalled_transform(bootstrap: &str, tag: &str, v1: bool) -> PipelineStats {
    const RECORDS: usize = 3_000;
    // One partition and one long transaction: the records before the stalled one are sent
    // before it stalls, so the coordinator knows the transaction and times it out (a
    // transaction that has sent nothing exists only in the client).
    let topics = setup(bootstrap, tag, 1, RECORDS).await;
    let group = common::unique_topic(&format!("pipe-group-{tag}"));
    let stalled = Arc::new(AtomicBool::new(false));
    let output = topics.output.clone();
    let transform = move |r: ConsumerRecord| {
        let stall = r.value.as_deref() == Some(b"record-1001".as_slice())
            && !stalled.swap(true, Ordering::SeqCst);
        let out = copied(&output, &r);
        async move {
            if stall {
                // transaction.timeout.ms (5 s) + the broker's abort check (1 s) + slack.
                tokio::time::sleep(Duration::from_secs(9)).await;
            }
            Ok::<_, std::convert::Infallible>(vec![out])
        }
    };
    let config = pipeline_config(bootstrap, &group, &format!("{group}-1"), &topics.input)
        .commit_interval(Duration::from_secs(4))
        .commit_records(RECORDS * 2)
        .producer(|mut p| {
            p.transaction_timeout = Duration::from_secs(5);
            p
        });
    let pipeline = Pipeline::connect(config).await.unwrap();
    let stop = pipeline.shutdown_handle();
    let run = tokio::spawn(pipeline.run(transform));
    let watcher = watcher(bootstrap, &group).await;
    wait_for_progress(&watcher, &topics, RECORDS, || run.is_finished()).await;
    stop.shutdown();
    let stats = run.await.unwrap().expect("the pipeline recovered");
    eprintln!("[{tag}] {stats:?}");
    assert!(stats.transactions_aborted >= 1, "{stats:?}");
    if v1 {
        assert!(
            stats.producers_recreated >= 1,
            "v1 cannot abort in place after the coordinator's timeout: {stats:?}"
        );
    }
    let out = java_read_committed(bootstrap, &topics.output, RECORDS).await;
    assert_exactly(tag, &out, &all(RECORDS));
    stats
}

/// Another producer takes the pipeline's `transactional.id`: the pipeline stops with a fatal
/// error that says it was fenced, and what it committed before stays exactly once.
async fn fenced(bootstrap: &str, tag: &str) {
    const RECORDS: usize = 20_000;
    let topics = setup(bootstrap, tag, 2, RECORDS).await;
    let group = common::unique_topic(&format!("pipe-group-{tag}"));
    let tid = format!("{group}-1");
    let output = topics.output.clone();
    let transform = move |r: ConsumerRecord| {
        let out = copied(&output, &r);
        async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<_, std::convert::Infallible>(vec![out])
        }
    };
    let config = pipeline_config(bootstrap, &group, &tid, &topics.input);
    let pipeline = Pipeline::connect(config).await.unwrap();
    let run = tokio::spawn(pipeline.run(transform));
    let watcher = watcher(bootstrap, &group).await;
    wait_for_progress(&watcher, &topics, RECORDS / 10, || run.is_finished()).await;
    let usurper = Producer::connect(
        ProducerConfig::with_client(common::config(bootstrap)).transactional_id(&tid),
    )
    .await
    .unwrap();
    usurper
        .init_transactions()
        .await
        .expect("the second producer takes over");
    let e = tokio::time::timeout(PROGRESS_TIMEOUT, run)
        .await
        .expect("the pipeline stops")
        .unwrap()
        .expect_err("fenced");
    eprintln!("[{tag}] {e}");
    assert_eq!(e.class(), josefk::ErrorClass::Fatal, "{e}");
    assert!(e.to_string().contains("fenced"), "{e}");
    usurper.close(Duration::from_secs(5)).await.unwrap();
    // Record i is at offset i / 2 of partition i % 2: the committed inputs are those below
    // their partition's committed offset.
    let all: Vec<TopicPartition> = (0..2)
        .map(|p| TopicPartition::new(&topics.input, p))
        .collect();
    let offsets: Vec<i64> = watcher
        .committed(&all)
        .await
        .unwrap()
        .iter()
        .map(|(_, o)| o.unwrap_or(0))
        .collect();
    let expected: BTreeSet<usize> = (0..RECORDS)
        .filter(|i| ((i / 2) as i64) < offsets[i % 2])
        .collect();
    assert!(
        expected.len() < RECORDS,
        "the copy was not finished when it was fenced"
    );
    let out = java_read_committed(bootstrap, &topics.output, expected.len()).await;
    assert_exactly(tag, &out, &expected);
}

/// Two copier processes; three times one of them is killed with SIGKILL (no commit, no leave,
/// a transaction left open) and restarted with the same `transactional.id`.
async fn sigkilled_copiers(bootstrap: &str, tag: &str) {
    const RECORDS: usize = 30_000;
    const KILLS: usize = 3;
    let topics = setup(bootstrap, tag, 4, RECORDS).await;
    let group = common::unique_topic(&format!("pipe-group-{tag}"));
    let watcher = watcher(bootstrap, &group).await;
    let tids = [format!("{group}-c0"), format!("{group}-c1")];
    let mut copiers: Vec<Child> = tids
        .iter()
        .map(|tid| spawn_copier(bootstrap, &topics, &group, tid, &[]))
        .collect();
    for kill in 0..KILLS {
        wait_for_progress(
            &watcher,
            &topics,
            RECORDS * (kill + 1) / (KILLS + 1),
            || false,
        )
        .await;
        let victim = kill % 2;
        copiers[victim].kill().expect("SIGKILL");
        copiers[victim].wait().unwrap();
        eprintln!(
            "[{tag}] killed copier {victim} at {} committed",
            committed(&watcher, &topics).await
        );
        copiers[victim] = spawn_copier(bootstrap, &topics, &group, &tids[victim], &[]);
    }
    wait_for_progress(&watcher, &topics, RECORDS, || false).await;
    for mut c in copiers {
        drop(c.stdin.take());
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "a copier failed: {}", out.status);
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!("[{tag}] copier: {}", stdout.trim());
    }
    let out = java_read_committed(bootstrap, &topics.output, RECORDS).await;
    assert_exactly(tag, &out, &all(RECORDS));
}

// ---- transactions v2: the shared broker ----

#[tokio::test(flavor = "multi_thread")]
async fn v2_two_instances_copy_exactly_once_through_rebalances() {
    two_instances(&common::bootstrap(), "v2-two").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_dead_letters_are_written_in_the_same_transactions() {
    dead_letters(&common::bootstrap(), "v2-dlq").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_fail_policy_stops_at_the_failed_record_with_nothing_after_the_last_commit() {
    fail_policy(&common::bootstrap(), "v2-fail").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_transform_stalled_past_the_transaction_timeout_recovers() {
    stalled_transform(&common::bootstrap(), "v2-stall", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_another_producer_with_the_same_transactional_id_stops_the_pipeline_as_fenced() {
    fenced(&common::bootstrap(), "v2-fenced").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_sigkilled_copier_processes_restart_with_output_equal_to_input() {
    sigkilled_copiers(&common::bootstrap(), "v2-kill").await;
}

// ---- limits and misconfigurations, shared broker: short ----

/// Input and output topics of one partition each, the input holding `values` in that order.
async fn small_topics(bootstrap: &str, tag: &str, values: &[Vec<u8>]) -> Topics {
    let topics = setup(bootstrap, tag, 1, 0).await;
    let producer = Producer::connect(ProducerConfig::with_client(common::config(bootstrap)))
        .await
        .unwrap();
    for v in values {
        let r = josefk::ProducerRecord::new(&topics.input, v.clone()).partition(0);
        producer.send(r).await.unwrap().await.unwrap();
    }
    producer.close(Duration::from_secs(10)).await.unwrap();
    topics
}

/// `max_in_flight_partitions(usize::MAX)` means "no limit", and the pipeline commits.
#[tokio::test(flavor = "multi_thread")]
async fn v2_unbounded_max_in_flight_partitions_commits() {
    const RECORDS: usize = 20;
    let bootstrap = common::bootstrap();
    let topics = setup(&bootstrap, "v2-inflight", 2, RECORDS).await;
    let group = common::unique_topic("pipe-group-v2-inflight");
    let config = pipeline_config(&bootstrap, &group, &format!("{group}-1"), &topics.input)
        .max_in_flight_partitions(usize::MAX);
    let pipeline = Pipeline::connect(config).await.unwrap();
    let stop = pipeline.shutdown_handle();
    let output = topics.output.clone();
    let run = tokio::spawn(pipeline.run(move |r: ConsumerRecord| {
        let out = copied(&output, &r);
        async move { Ok::<_, std::convert::Infallible>(vec![out]) }
    }));
    let watcher = watcher(&bootstrap, &group).await;
    let progress = wait_for_progress(&watcher, &topics, RECORDS, || run.is_finished());
    tokio::time::timeout(Duration::from_secs(60), progress)
        .await
        .expect("the pipeline commits");
    stop.shutdown();
    let stats = run.await.unwrap().expect("pipeline");
    assert_eq!(stats.records_in, RECORDS as u64, "{stats:?}");
}

/// Under `DeadLetter`, an input record with an output the producer refuses (over
/// `max.request.size`) has none of its outputs written, only its dead letter; an input record too
/// large for a dead letter is dead-lettered without its value, and the pipeline goes on.
#[tokio::test(flavor = "multi_thread")]
async fn v2_dead_letters_keep_a_record_all_or_nothing_and_drop_oversized_values() {
    const MAX_REQUEST: usize = 100_000;
    let bootstrap = common::bootstrap();
    let huge = vec![b'h'; 150_000];
    let values = [
        b"record-0".to_vec(),
        b"split".to_vec(),
        huge,
        b"record-3".to_vec(),
    ];
    let topics = small_topics(&bootstrap, "v2-dlq-sizes", &values).await;
    let dlq = common::unique_topic("pipe-dlq-v2-sizes");
    let admin = Admin::connect(common::config(&bootstrap)).await.unwrap();
    admin
        .create_topics(&[NewTopic::new(&dlq, 1, 1)])
        .await
        .unwrap();
    let group = common::unique_topic("pipe-group-v2-dlq-sizes");
    let config = pipeline_config(&bootstrap, &group, &format!("{group}-1"), &topics.input)
        .on_transform_error(TransformErrorPolicy::DeadLetter(dlq.clone()))
        .producer(|p| p.max_request_size(MAX_REQUEST));
    let pipeline = Pipeline::connect(config).await.unwrap();
    let stop = pipeline.shutdown_handle();
    let output = topics.output.clone();
    let run = tokio::spawn(pipeline.run(move |r: ConsumerRecord| {
        let value = r.value.clone().unwrap_or_default();
        let out = copied(&output, &r);
        let too_big = josefk::ProducerRecord::new(&output, vec![b'x'; 2 * MAX_REQUEST]);
        async move {
            match &value[..] {
                b"split" => Ok(vec![out, too_big]),
                v if v.len() > 1_000 => Err("too big to transform"),
                _ => Ok(vec![out]),
            }
        }
    }));
    let watcher = watcher(&bootstrap, &group).await;
    let progress = wait_for_progress(&watcher, &topics, values.len(), || run.is_finished());
    tokio::time::timeout(Duration::from_secs(60), progress)
        .await
        .expect("the pipeline commits every input record");
    stop.shutdown();
    let stats = run.await.unwrap().expect("pipeline");
    assert_eq!((stats.records_out, stats.dead_letters), (2, 2), "{stats:?}");
    let out: Vec<String> = read_committed(&bootstrap, &topics.output)
        .await
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(
        out,
        ["record-0 (copied)", "record-3 (copied)"],
        "no part of `split`"
    );
    let letters = read_committed(&bootstrap, &dlq).await;
    let header = |r: &ConsumerRecord, k: &str| {
        r.headers
            .iter()
            .find(|h| h.key == k.as_bytes())
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    };
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0].value.as_deref(), Some(b"split".as_slice()));
    let error = header(&letters[0], "josefk.dlq.error").unwrap();
    assert!(error.contains("max.request.size"), "{error}");
    assert_eq!(header(&letters[0], "josefk.dlq.value-dropped"), None);
    assert_eq!(letters[1].value, None, "the value was dropped");
    assert_eq!(header(&letters[1], "josefk.dlq.offset").unwrap(), "2");
    let dropped = header(&letters[1], "josefk.dlq.value-dropped").unwrap();
    assert!(dropped.contains("150000 bytes"), "{dropped}");
    assert_eq!(
        header(&letters[1], "josefk.dlq.error").unwrap(),
        "too big to transform"
    );
}

/// An output or dead-letter topic that does not exist stops the pipeline after one
/// `max.block.ms`, with a non-retriable error naming it.
#[tokio::test(flavor = "multi_thread")]
async fn v2_a_missing_output_or_dead_letter_topic_stops_the_pipeline_at_once() {
    let bootstrap = common::bootstrap();
    let topics = small_topics(&bootstrap, "v2-missing", &[b"record-0".to_vec()]).await;
    let missing = common::unique_topic("pipe-missing-v2");
    for dead_letter in [false, true] {
        let group = common::unique_topic("pipe-group-v2-missing");
        let mut config = pipeline_config(&bootstrap, &group, &format!("{group}-1"), &topics.input)
            .producer(|p| p.max_block(Duration::from_secs(1)));
        if dead_letter {
            config = config.on_transform_error(TransformErrorPolicy::DeadLetter(missing.clone()));
        }
        let pipeline = Pipeline::connect(config).await.unwrap();
        let target = missing.clone();
        let run = pipeline.run(move |_: ConsumerRecord| {
            let out = josefk::ProducerRecord::new(&target, "x");
            async move {
                match dead_letter {
                    true => Err("to the dead-letter topic"),
                    false => Ok(vec![out]),
                }
            }
        });
        let e = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("the pipeline stops")
            .expect_err("the topic is missing");
        eprintln!("[v2-missing] {e}");
        assert_eq!(e.class(), josefk::ErrorClass::Rejected, "{e}");
        assert_eq!(
            e.kafka_code(),
            Some(josefk::error::ErrorCode::UnknownTopicOrPartition)
        );
        assert!(e.to_string().contains(&missing), "{e}");
    }
}

// ---- transactions v1: a private broker with transaction.version=0 ----

#[tokio::test(flavor = "multi_thread")]
async fn v1_copy_rebalances_stall_sigkills_dead_letters_and_fencing_on_a_private_broker() {
    // Fail, never skip, without a broker: the shared one must exist even for this test.
    let _ = common::bootstrap();
    let cluster = common::PrivateCluster::start(ClusterSpec::single().transaction_version(0)).await;
    let bootstrap = cluster.bootstrap_servers();
    let result = tokio::spawn(async move {
        let version = common::RawCluster::new(&bootstrap)
            .any()
            .await
            .finalized_feature("transaction.version")
            .await
            .expect("ApiVersions")
            .unwrap_or(0);
        assert_eq!(version, 0, "the private broker runs the v1 protocol");
        two_instances(&bootstrap, "v1-two").await;
        stalled_transform(&bootstrap, "v1-stall", true).await;
        sigkilled_copiers(&bootstrap, "v1-kill").await;
        dead_letters(&bootstrap, "v1-dlq").await;
        fenced(&bootstrap, "v1-fenced").await;
    })
    .await;
    cluster.shutdown().await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}
