//! `poll` keeps its timeout while a broker leaves the consumer's own requests unanswered: the
//! ListOffsets of `auto.offset.reset`, the OffsetFetch that gives a group's partitions their
//! positions, and an auto-commit. Each is held by the scripted broker until the test releases it;
//! meanwhile short polls must keep returning (before the fix the first one waited for the answer,
//! up to `default.api.timeout.ms`), and the request must not be sent again by every poll; once
//! answered, records flow from the position it gave.
//!
//! No timing is asserted: the polls returning at all while the request is held (within an outer
//! bound far below `default.api.timeout.ms`) is the outcome, and requests are counted.

mod consumer_support;

use std::time::Duration;

use josefk::consumer::{CommitMode, Consumer};
use kafka_protocol::messages::ApiKey;

use consumer_support::{plain_batch, FetchAnswer, FetchCluster};

/// Polls `n` times with a short timeout, all of which must return without records and without
/// error; panics if they take longer than `limit` in all (a poll held by the unanswered request).
async fn short_empty_polls(consumer: &mut Consumer, n: usize, limit: Duration) {
    let polls = async {
        for i in 0..n {
            let got = consumer.poll(Duration::from_millis(20)).await;
            match got {
                Ok(records) => assert!(records.is_empty(), "poll {i}: records before the answer"),
                Err(e) => panic!("poll {i}: {e}"),
            }
        }
    };
    tokio::time::timeout(limit, polls)
        .await
        .unwrap_or_else(|_| panic!("{n} polls of 20 ms did not return within {limit:?}"));
}

/// Polls until records come (within `limit`); returns their offsets.
async fn first_records(consumer: &mut Consumer, limit: Duration) -> Vec<i64> {
    let polls = async {
        loop {
            let records = consumer
                .poll(Duration::from_millis(100))
                .await
                .expect("poll");
            if !records.is_empty() {
                return records.iter().map(|r| r.offset).collect::<Vec<i64>>();
            }
        }
    };
    tokio::time::timeout(limit, polls)
        .await
        .expect("records after the answer")
}

/// Group `g`, manual commits, and a request timeout beyond the tests' bounds, so that a held
/// request stays the same one.
fn manual_group_config(cluster: &FetchCluster) -> josefk::consumer::ConsumerConfig {
    let mut config = cluster
        .config()
        .group_id("g")
        .commit_mode(CommitMode::Manual);
    config.client = config.client.request_timeout(Duration::from_secs(60));
    config
}

/// Serves 5 records from any offset asked.
fn records_anywhere(f: &consumer_support::FetchSeen) -> FetchAnswer {
    if f.offset < 0 {
        FetchAnswer::EmptyAtOnce
    } else {
        FetchAnswer::Records(plain_batch(f.offset, 5))
    }
}

#[tokio::test]
async fn polls_return_while_the_reset_list_offsets_is_unanswered() {
    let cluster = FetchCluster::start(records_anywhere).await;
    cluster.list_offsets_answer(7);
    cluster.hold(ApiKey::ListOffsets);
    // A request timeout beyond the test's bounds: the held request stays the same one.
    let mut config = cluster.config();
    config.client = config.client.request_timeout(Duration::from_secs(60));
    let mut consumer = cluster.consumer_without_position(config).await;

    short_empty_polls(&mut consumer, 10, Duration::from_secs(20)).await;
    assert_eq!(cluster.list_offsets().len(), 1, "the lookup is asked once");
    assert!(cluster.fetches().is_empty(), "fetched without a position");

    cluster.release();
    let offsets = first_records(&mut consumer, Duration::from_secs(20)).await;
    assert_eq!(offsets, vec![7, 8, 9, 10, 11]);
    assert_eq!(cluster.list_offsets().len(), 1);
}

#[tokio::test]
async fn polls_return_while_the_committed_offset_fetch_is_unanswered() {
    let cluster = FetchCluster::start(records_anywhere).await;
    cluster.committed_answer(42);
    cluster.hold(ApiKey::OffsetFetch);
    let mut consumer = cluster
        .consumer_without_position(manual_group_config(&cluster))
        .await;

    short_empty_polls(&mut consumer, 10, Duration::from_secs(20)).await;
    assert_eq!(
        cluster.offset_fetches().len(),
        1,
        "the lookup is asked once"
    );
    assert!(
        cluster.list_offsets().is_empty(),
        "reset before the committed offset came"
    );
    assert!(cluster.fetches().is_empty(), "fetched without a position");

    cluster.release();
    let offsets = first_records(&mut consumer, Duration::from_secs(20)).await;
    assert_eq!(offsets, vec![42, 43, 44, 45, 46]);
    assert_eq!(cluster.offset_fetches().len(), 1);
}

/// A partition assigned again while its committed-offset lookup is out: the answer (asked
/// before the new assignment, so possibly older than a commit made meanwhile) is not used, and
/// the position comes from a lookup asked after it.
#[tokio::test]
async fn a_committed_offset_asked_before_a_rewind_is_asked_again() {
    let cluster = FetchCluster::start(records_anywhere).await;
    cluster.committed_answer(42);
    cluster.hold(ApiKey::OffsetFetch);
    let mut consumer = cluster
        .consumer_without_position(manual_group_config(&cluster))
        .await;
    short_empty_polls(&mut consumer, 3, Duration::from_secs(20)).await;
    assert_eq!(cluster.offset_fetches().len(), 1);

    // What an exactly-once application does after an abort; the group's offset moved meanwhile.
    consumer.rewind_to_committed().expect("rewind");
    cluster.committed_answer(60);
    cluster.release();
    let offsets = first_records(&mut consumer, Duration::from_secs(20)).await;
    assert_eq!(offsets, vec![60, 61, 62, 63, 64]);
    assert_eq!(cluster.offset_fetches().len(), 2);
}

#[tokio::test]
async fn polls_hand_out_records_while_an_auto_commit_is_unanswered() {
    let cluster = FetchCluster::start(records_anywhere).await;
    let mut config = cluster
        .config()
        .group_id("g")
        .commit_mode(CommitMode::AutoAfterPoll)
        .auto_commit_interval(Duration::from_millis(1));
    config.client = config.client.request_timeout(Duration::from_secs(60));
    let mut consumer = cluster.consumer(config, 0).await;
    cluster.hold(ApiKey::OffsetCommit);

    let mut next = 0;
    let polls = async {
        while next < 100 {
            for record in consumer
                .poll(Duration::from_millis(20))
                .await
                .expect("poll")
            {
                assert_eq!(record.offset, next, "in order, none twice");
                next += 1;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), polls)
        .await
        .expect("records handed out while the auto-commit waits for its answer");
    assert_eq!(
        cluster.commits().len(),
        1,
        "one auto-commit at a time, however many intervals passed"
    );

    cluster.release();
    // A commit now waits for the auto-commit first, so it cannot be overtaken by it.
    tokio::time::timeout(Duration::from_secs(20), consumer.commit())
        .await
        .expect("commit after the auto-commit's answer")
        .expect("commit");
    assert_eq!(cluster.commits().len(), 2);
}

/// `close` is bounded as Java's: at most 30 s and no longer than `request.timeout.ms` (1 s
/// here), even while its last auto-commit is unanswered (a commit alone may retry until
/// `default.api.timeout.ms`, 60 s here).
#[tokio::test]
async fn close_returns_by_its_bound_while_the_last_commit_is_unanswered() {
    let cluster = FetchCluster::start(records_anywhere).await;
    let mut config = cluster
        .config()
        .group_id("g")
        .commit_mode(CommitMode::AutoAfterPoll)
        .auto_commit_interval(Duration::from_secs(3600))
        .default_api_timeout(Duration::from_secs(60));
    config.client = config.client.request_timeout(Duration::from_secs(1));
    let mut consumer = cluster.consumer(config, 0).await;
    let offsets = first_records(&mut consumer, Duration::from_secs(20)).await;
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    cluster.hold(ApiKey::OffsetCommit);

    let closed = tokio::time::timeout(Duration::from_secs(20), consumer.close())
        .await
        .expect("close ended by its own bound");
    match closed {
        Err(josefk::Error::Timeout {
            after,
            outcome_unknown: true,
            ..
        }) => assert_eq!(after, Duration::from_secs(1)),
        other => panic!("expected close to time out after 1 s, got {other:?}"),
    }
    assert!(!cluster.commits().is_empty(), "the last commit was sent");
}

/// A lookup that failed (here: ListOffsets unanswered past `default.api.timeout.ms`) is reported
/// once, and the next `position` starts a new one after the backoff instead of sleeping out its
/// whole timeout.
#[tokio::test]
async fn position_after_a_failed_lookup_asks_again_after_the_backoff() {
    let cluster = FetchCluster::start(records_anywhere).await;
    cluster.list_offsets_answer(7);
    cluster.hold(ApiKey::ListOffsets);
    let config = cluster.config().default_api_timeout(Duration::from_secs(1));
    let mut consumer = cluster.consumer_without_position(config).await;
    let tp = josefk::TopicPartition::new(consumer_support::TOPIC, 0);

    let first = tokio::time::timeout(Duration::from_secs(20), consumer.position(&tp))
        .await
        .expect("position ends by its timeout");
    assert!(
        matches!(first, Err(josefk::Error::Timeout { .. })),
        "{first:?}"
    );
    cluster.release();
    let second = tokio::time::timeout(Duration::from_secs(20), consumer.position(&tp))
        .await
        .expect("position ends by its timeout");
    assert_eq!(second.expect("asked again, answered"), 7);
}

/// Auto-commits keep going while every poll is served from the buffer (3,000 records fetched at
/// once, one handed out per poll): a finished auto-commit is taken in by the next poll, not only
/// by one that finds nothing buffered. Before, one auto-commit went out in 2,000 polls.
#[tokio::test]
async fn auto_commits_keep_coming_while_polls_are_served_from_the_buffer() {
    let cluster = FetchCluster::start(|f| {
        if f.offset < 0 {
            FetchAnswer::EmptyAtOnce
        } else {
            FetchAnswer::Records(plain_batch(f.offset, 3000))
        }
    })
    .await;
    let mut config = cluster
        .config()
        .group_id("g")
        .commit_mode(CommitMode::AutoAfterPoll)
        .max_poll_records(1)
        .auto_commit_interval(Duration::from_millis(1));
    config.client = config.client.request_timeout(Duration::from_secs(60));
    let mut consumer = cluster.consumer(config, 0).await;
    let mut next = 0;
    while next < 2000 {
        for record in consumer
            .poll(Duration::from_millis(200))
            .await
            .expect("poll")
        {
            assert_eq!(record.offset, next, "in order, none twice");
            next += 1;
        }
        if next % 100 == 0 {
            // Time for the commits to be answered.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let commits = cluster.commits().len();
    assert!(commits > 5, "only {commits} auto-commits in 2,000 polls");
}
