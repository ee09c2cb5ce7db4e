//! Live tests of a group member's offset commits against a real Kafka, counted: at-least-once
//! (killed after processing, before committing → redelivered), at-most-once (committed before
//! processing, killed mid-batch → exactly the unprocessed rest skipped), auto-commit, commits of
//! manually assigned partitions, and the `Stream` API with `commit_async`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::members::*;
use josefk::consumer::{CommitMode, Consumer};
use josefk::TopicPartition;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_least_once_redelivers_what_a_killed_consumer_had_not_committed() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("alo");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 1).await;
    produce(&bootstrap, &topic, "a", 1000).await;

    // Process 300 records, commit, process 200 more, get killed before committing them.
    let mut c = subscribed(&bootstrap, &group, CommitMode::Manual, &topic).await;
    let first = poll_n(&mut c, 300).await;
    let committed_at = first[299].offset + 1;
    c.commit_offsets(&[(TopicPartition::new(&topic, 0), committed_at)])
        .await
        .unwrap();
    let processed_uncommitted: Vec<i64> =
        poll_n(&mut c, 200).await.iter().map(|r| r.offset).collect();
    drop(c); // killed: no commit, no LeaveGroup

    let mut c = subscribed(&bootstrap, &group, CommitMode::Manual, &topic).await;
    let rest = poll_n(&mut c, 1000 - committed_at as usize).await;
    let redelivered: Vec<i64> = rest
        .iter()
        .map(|r| r.offset)
        .filter(|o| processed_uncommitted.contains(o))
        .collect();
    assert_eq!(
        rest[0].offset, committed_at,
        "restarts at the committed offset"
    );
    assert_eq!(
        redelivered.len(),
        processed_uncommitted.len(),
        "every processed-but-uncommitted record comes again"
    );
    let all: BTreeSet<i64> = first.iter().chain(&rest).map(|r| r.offset).collect();
    assert_eq!(all.len(), 1000, "nothing lost");
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_once_skips_exactly_what_a_killed_consumer_had_not_processed() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("amo");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 1).await;
    produce(&bootstrap, &topic, "a", 1000).await;

    let mut c = subscribed(&bootstrap, &group, CommitMode::BeforeProcessing, &topic).await;
    // Process whole polls until at least 400 records, then take one more poll and process only
    // 10 of its records before being killed.
    let mut processed: Vec<i64> = Vec::new();
    while processed.len() < 400 {
        processed.extend(poll_n(&mut c, 1).await.iter().map(|r| r.offset));
    }
    let last_batch = poll_n(&mut c, 1).await;
    let batch_len = last_batch.len();
    assert!(batch_len > 10, "a poll returned {batch_len} records");
    processed.extend(last_batch.iter().take(10).map(|r| r.offset));
    let unprocessed = batch_len - 10;
    drop(c);

    let mut c = subscribed(&bootstrap, &group, CommitMode::BeforeProcessing, &topic).await;
    let resume_at = last_batch.last().unwrap().offset + 1;
    let rest = poll_n(&mut c, 1000 - resume_at as usize).await;
    assert_eq!(
        rest[0].offset, resume_at,
        "resumes after the whole last batch"
    );
    processed.extend(rest.iter().map(|r| r.offset));
    let distinct: BTreeSet<i64> = processed.iter().copied().collect();
    assert_eq!(distinct.len(), processed.len(), "no record processed twice");
    assert_eq!(
        processed.len(),
        1000 - unprocessed,
        "exactly the unprocessed rest of the killed consumer's last batch is skipped"
    );
    c.close().await.unwrap();
}

/// The next item of a stream (no futures-util needed).
async fn next_item<S: futures_core::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stream_yields_records_one_at_a_time_and_commit_async_lands() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("stream");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 1).await;
    produce(&bootstrap, &topic, "a", 100).await;

    let mut c = subscribed(&bootstrap, &group, CommitMode::Manual, &topic).await;
    let mut offsets = Vec::new();
    {
        let mut stream = c.stream();
        while offsets.len() < 30 {
            let record = next_item(&mut stream)
                .await
                .expect("endless")
                .expect("record");
            offsets.push(record.offset);
            if offsets.len() == 10 {
                // Between items the consumer is reachable through the stream.
                let consumer = stream.consumer().expect("idle between items");
                consumer.commit().await.expect("commit while streaming");
                let tp = TopicPartition::new(&topic, 0);
                assert_eq!(
                    consumer.committed(std::slice::from_ref(&tp)).await.unwrap(),
                    vec![(tp, Some(10))],
                    "the commit covers exactly the records the stream yielded"
                );
            }
        }
    } // dropped between items: nothing it took is lost, nothing is skipped
    let tp = TopicPartition::new(&topic, 0);
    assert_eq!(c.position(&tp).await.unwrap(), 30);
    let rest = poll_n(&mut c, 70).await;
    offsets.extend(rest.iter().map(|r| r.offset));
    assert_eq!(offsets, (0..100).collect::<Vec<i64>>());

    c.commit_offsets_async(&[(tp.clone(), 90)])
        .unwrap()
        .await
        .expect("async commit of given offsets");
    assert_eq!(
        c.committed(std::slice::from_ref(&tp)).await.unwrap(),
        vec![(tp.clone(), Some(90))]
    );
    c.commit_async().unwrap().await.expect("async commit");
    assert_eq!(
        c.committed(std::slice::from_ref(&tp)).await.unwrap(),
        vec![(tp, Some(100))]
    );
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auto_commit_commits_what_earlier_polls_returned_and_on_close() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("autocommit");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 1).await;
    produce(&bootstrap, &topic, "a", 300).await;
    let tp = TopicPartition::new(&topic, 0);

    let config = single_partition_config(&bootstrap, &group, CommitMode::AutoAfterPoll)
        .auto_commit_interval(Duration::from_millis(100));
    let mut c = Consumer::connect(config).await.unwrap();
    c.subscribe(&[&topic]).unwrap();
    let first = poll_n(&mut c, 100).await;
    let reached = first.last().unwrap().offset + 1;
    tokio::time::sleep(Duration::from_millis(150)).await;
    // This poll commits what the earlier ones returned (processed by now), not what it returns.
    // The commit runs in the background, as Java's auto-commit does: it lands after the poll,
    // and never past what the earlier polls returned.
    let more = c.poll(Duration::from_secs(5)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let committed = c.committed(std::slice::from_ref(&tp)).await.unwrap()[0].1;
        assert!(
            committed.is_none_or(|o| o <= reached),
            "committed {committed:?} beyond what earlier polls returned ({reached})"
        );
        if committed == Some(reached) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "auto-commit of {reached} never landed (committed {committed:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let end = more.last().map_or(reached, |r| r.offset + 1);
    c.close().await.unwrap();
    let c = Consumer::connect(single_partition_config(
        &bootstrap,
        &group,
        CommitMode::Manual,
    ))
    .await
    .unwrap();
    assert_eq!(
        c.committed(std::slice::from_ref(&tp)).await.unwrap(),
        vec![(tp, Some(end))],
        "close commits the positions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manually_assigned_partitions_are_auto_committed_with_a_group_id() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("assign-commit");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 1).await;
    produce(&bootstrap, &topic, "a", 150).await;
    let tp = TopicPartition::new(&topic, 0);
    let config = single_partition_config(&bootstrap, &group, CommitMode::AutoAfterPoll);
    let mut c = Consumer::connect(config.clone()).await.unwrap();
    c.assign(std::slice::from_ref(&tp)).await.unwrap();
    let got = poll_n(&mut c, 150).await;
    assert_eq!(got.len(), 150);
    c.close().await.unwrap();
    let c = Consumer::connect(config).await.unwrap();
    assert_eq!(
        c.committed(std::slice::from_ref(&tp)).await.unwrap(),
        vec![(tp, Some(150))]
    );
}

/// With a `group.id`, a manually assigned partition starts at the group's committed offset (as
/// Java's consumer does), not per `auto.offset.reset`; a seek before the first poll wins over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manual_assignment_with_a_group_id_starts_at_the_committed_offset() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("assign-resume");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 1).await;
    produce(&bootstrap, &topic, "a", 100).await;
    let tp = TopicPartition::new(&topic, 0);
    let config = single_partition_config(&bootstrap, &group, CommitMode::Manual);

    let mut c = Consumer::connect(config.clone()).await.unwrap();
    c.assign(std::slice::from_ref(&tp)).await.unwrap();
    c.commit_offsets(&[(tp.clone(), 37)]).await.unwrap();
    c.close().await.unwrap();

    let mut resumed = Consumer::connect(config.clone()).await.unwrap();
    resumed.assign(std::slice::from_ref(&tp)).await.unwrap();
    let rest = poll_n(&mut resumed, 63).await;
    let offsets: Vec<i64> = rest.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (37..100).collect::<Vec<i64>>());
    resumed.close().await.unwrap();

    let mut rewound = Consumer::connect(config).await.unwrap();
    rewound.assign(std::slice::from_ref(&tp)).await.unwrap();
    rewound
        .seek_to_beginning(std::slice::from_ref(&tp))
        .await
        .unwrap();
    let all = poll_n(&mut rewound, 100).await;
    assert_eq!(all.first().map(|r| r.offset), Some(0));
    assert_eq!(all.len(), 100);
    rewound.close().await.unwrap();
}
