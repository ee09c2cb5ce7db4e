//! The consumer against a broker that misbehaves on purpose (issue #10): fetched data the position
//! cannot move past (a truncated or over-long batch, a CRC-corrupt batch, only records already
//! consumed), failing and empty fetches, and gzip batches that inflate far beyond their wire size.
//!
//! Each test asserts what the user gets (records, in order, none twice; or an error naming the
//! partition, the offset and what is wrong) and how many Fetch requests the broker saw over a
//! window of seconds: nothing may be asked more than a few times a second while nothing
//! progresses (Fetch, and the ListOffsets and OffsetCommit requests around it). Counts are bounds with wide margins (the machine is shared and loaded), derived
//! from the backoff: retry.backoff.ms 100 doubling to retry.backoff.max.ms 1000.

mod consumer_support;

use std::time::{Duration, Instant};

use bytes::Bytes;

use consumer_support::{
    concat, gzip_bomb_batch, plain_batch, poll_for, CommitAnswer, FetchAnswer, FetchCluster, TOPIC,
};

/// Kafka error codes the broker answers with.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const OFFSET_OUT_OF_RANGE: i16 = 1;

/// The window over which request rates are measured, and the most fetches allowed in it while
/// nothing progresses: with waits of 0.1, 0.2, 0.4, 0.8, then 1 s, about 6 go out in 3 s; a
/// client without backoff sends thousands.
const WINDOW: Duration = Duration::from_secs(3);
const MAX_FETCHES_IN_WINDOW: usize = 10;

fn value_of(r: &josefk::consumer::ConsumerRecord) -> String {
    String::from_utf8(r.value.clone().unwrap_or_default().to_vec()).unwrap()
}

/// Polls for up to `limit` until an error arrives; returns the records before it and the error.
async fn poll_until_error(
    consumer: &mut josefk::consumer::Consumer,
    limit: Duration,
) -> (Vec<josefk::consumer::ConsumerRecord>, String) {
    let (records, error) = poll_until_error_value(consumer, limit).await;
    (records, error.to_string())
}

/// As [`poll_until_error`], keeping the error itself.
async fn poll_until_error_value(
    consumer: &mut josefk::consumer::Consumer,
    limit: Duration,
) -> (Vec<josefk::consumer::ConsumerRecord>, josefk::Error) {
    let end = Instant::now() + limit;
    let mut records = Vec::new();
    while Instant::now() < end {
        match consumer.poll(Duration::from_millis(200)).await {
            Ok(batch) => records.extend(batch),
            Err(e) => return (records, e),
        }
    }
    panic!("no error within {limit:?}; got {} records", records.len());
}

/// A partition whose only data is a batch the position cannot get past: poll reports it after a
/// few backed-off tries, keeps fetching at most about once a second, and reads the batch once the
/// broker sends it whole.
async fn stalled_partition_is_reported_then_recovers(
    stalled_data: Bytes,
    whole: Bytes,
    expected: &[&str],
) {
    let cluster = FetchCluster::start(move |_| FetchAnswer::Records(stalled_data.clone())).await;
    let mut consumer = cluster.consumer(cluster.config(), 0).await;
    let started = Instant::now();
    let (records, error) = poll_until_error_value(&mut consumer, Duration::from_secs(20)).await;
    // A per-partition data problem: the consumer stays usable (polling again retries with
    // backoff; seeking past the offset skips it), so it is not fatal, and nothing was written.
    assert!(
        matches!(&error, josefk::Error::PartitionStalled { topic, partition: 0, offset: 0, .. } if topic == "t"),
        "{error:?}"
    );
    assert_eq!(error.class(), josefk::ErrorClass::Retriable, "{error}");
    assert!(!error.outcome_unknown());
    let error = error.to_string();
    assert!(records.is_empty(), "nothing readable was fetched");
    for needle in expected {
        assert!(error.contains(needle), "`{needle}` missing from: {error}");
    }
    let before_error = cluster.fetches().len();
    eprintln!(
        "reported after {before_error} fetches, {:?}: {error}",
        started.elapsed()
    );
    assert!(
        (4..=6).contains(&before_error),
        "reported after {before_error} fetches (4 expected)"
    );
    // Three backoffs (0.1 + 0.2 + 0.4 s, no jitter) separate those four fetches.
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "reported after {:?}",
        started.elapsed()
    );

    let since = Instant::now();
    let (records, errors) = poll_for(&mut consumer, WINDOW).await;
    let fetched = cluster.fetches_since(since);
    eprintln!("{}: {fetched} fetches in {WINDOW:?}", line!());
    assert!(records.is_empty());
    assert!(
        fetched <= MAX_FETCHES_IN_WINDOW,
        "{fetched} fetches in {WINDOW:?} while stalled"
    );
    assert!(!errors.is_empty(), "the stall keeps being reported");

    cluster.answer_with(move |_| FetchAnswer::Records(whole.clone()));
    let (records, errors) = poll_for(&mut consumer, WINDOW).await;
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4], "errors: {errors:?}");
    assert_eq!(value_of(&records[4]), "v4");
}

#[tokio::test]
async fn truncated_only_partition_is_reported_and_backs_off() {
    let whole = plain_batch(0, 5);
    let cut = whole.slice(..whole.len() - 10);
    let declares = format!("declares {} bytes", whole.len());
    let arrived = format!("only {} arrived", cut.len());
    stalled_partition_is_reported_then_recovers(
        cut,
        whole,
        &[
            "partition t-0",
            "at offset 0",
            "truncated batch",
            &declares,
            &arrived,
            "4 fetches since it last moved",
        ],
    )
    .await;
}

#[tokio::test]
async fn over_long_batch_is_reported_and_backs_off() {
    // The batch is intact but its length field claims 1 GiB.
    let whole = plain_batch(0, 5);
    let mut long = whole.to_vec();
    long[8..12].copy_from_slice(&(1i32 << 30).to_be_bytes());
    let declares = format!("declares {} bytes", (1usize << 30) + 12);
    stalled_partition_is_reported_then_recovers(
        Bytes::from(long),
        whole,
        &["partition t-0", "at offset 0", &declares],
    )
    .await;
}

#[tokio::test]
async fn resent_old_records_are_skipped_reported_and_back_off() {
    // The position is 10 but the broker keeps sending offsets 0..10.
    let old = concat(&[plain_batch(0, 5), plain_batch(5, 5)]);
    let cluster = FetchCluster::start(move |_| FetchAnswer::Records(old.clone())).await;
    let mut consumer = cluster.consumer(cluster.config(), 10).await;
    let (records, error) = poll_until_error(&mut consumer, Duration::from_secs(20)).await;
    assert!(
        records.is_empty(),
        "records before the position were handed out again"
    );
    for needle in [
        "partition t-0",
        "at offset 10",
        "only records before the position (2 batch(es) up to offset 9",
    ] {
        assert!(error.contains(needle), "`{needle}` missing from: {error}");
    }
    let since = Instant::now();
    let (records, _) = poll_for(&mut consumer, WINDOW).await;
    assert!(records.is_empty());
    let fetched = cluster.fetches_since(since);
    eprintln!("{}: {fetched} fetches in {WINDOW:?}", line!());
    assert!(
        fetched <= MAX_FETCHES_IN_WINDOW,
        "{fetched} fetches in {WINDOW:?}"
    );
    assert!(cluster.fetches().iter().all(|f| f.offset == 10));

    // Old records followed by new ones: only the new ones, once.
    cluster.answer_with(|f| {
        if f.offset == 10 {
            FetchAnswer::Records(concat(&[plain_batch(5, 5), plain_batch(10, 3)]))
        } else {
            FetchAnswer::EmptyAfterWait
        }
    });
    let (records, _) = poll_for(&mut consumer, WINDOW).await;
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![10, 11, 12]);
}

#[tokio::test]
async fn crc_corrupt_batch_fails_poll_after_the_records_before_it_and_backs_off() {
    let mut bad = plain_batch(4, 3).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    let data = concat(&[plain_batch(0, 2), plain_batch(2, 2), Bytes::from(bad)]);
    let cluster = FetchCluster::start(move |f| {
        if f.offset == 0 {
            FetchAnswer::Records(data.clone())
        } else {
            // From the bad batch on, only the bad batch.
            FetchAnswer::Records(data.slice(data.len() - (plain_batch(4, 3).len())..))
        }
    })
    .await;
    let mut consumer = cluster.consumer(cluster.config(), 0).await;
    let (records, error) = poll_until_error(&mut consumer, Duration::from_secs(20)).await;
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(
        offsets,
        vec![0, 1, 2, 3],
        "records before the bad batch, once"
    );
    for needle in ["partition t-0", "offset 4", "CRC"] {
        assert!(error.contains(needle), "`{needle}` missing from: {error}");
    }
    let since = Instant::now();
    let (records, errors) = poll_for(&mut consumer, WINDOW).await;
    let fetched = cluster.fetches_since(since);
    eprintln!("{}: {fetched} fetches in {WINDOW:?}", line!());
    assert!(records.is_empty());
    assert!(
        fetched <= MAX_FETCHES_IN_WINDOW,
        "{fetched} fetches in {WINDOW:?}"
    );
    assert!(!errors.is_empty() && errors.iter().all(|e| e.contains("CRC")));
    assert!(errors.len() <= fetched + 1, "one error per fetch at most");
}

#[tokio::test]
async fn retriable_partition_errors_back_off_then_records_flow() {
    let cluster =
        FetchCluster::start(|_| FetchAnswer::PartitionError(NOT_LEADER_OR_FOLLOWER)).await;
    let mut consumer = cluster.consumer(cluster.config(), 0).await;
    let since = Instant::now();
    let (records, errors) = poll_for(&mut consumer, WINDOW).await;
    let fetched = cluster.fetches_since(since);
    eprintln!("{}: {fetched} fetches in {WINDOW:?}", line!());
    assert!(
        records.is_empty() && errors.is_empty(),
        "retried inside poll: {errors:?}"
    );
    assert!(
        (2..=MAX_FETCHES_IN_WINDOW).contains(&fetched),
        "{fetched} fetches in {WINDOW:?}"
    );
    cluster.answer_with(|f| {
        if f.offset == 0 {
            FetchAnswer::Records(plain_batch(0, 3))
        } else {
            FetchAnswer::EmptyAfterWait
        }
    });
    let (records, errors) = poll_for(&mut consumer, WINDOW).await;
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 1, 2], "errors: {errors:?}");
}

#[tokio::test]
async fn non_retriable_partition_error_is_reported_and_backs_off() {
    let cluster =
        FetchCluster::start(|_| FetchAnswer::PartitionError(TOPIC_AUTHORIZATION_FAILED)).await;
    let mut consumer = cluster.consumer(cluster.config(), 0).await;
    let (_, error) = poll_until_error(&mut consumer, Duration::from_secs(20)).await;
    assert!(error.contains("partition t-0"), "{error}");
    assert!(error.contains("TopicAuthorizationFailed"), "{error}");
    let since = Instant::now();
    let (_, errors) = poll_for(&mut consumer, WINDOW).await;
    let fetched = cluster.fetches_since(since);
    eprintln!("{}: {fetched} fetches in {WINDOW:?}", line!());
    assert!(
        fetched <= MAX_FETCHES_IN_WINDOW,
        "{fetched} fetches in {WINDOW:?}"
    );
    assert!(!errors.is_empty());
}

#[tokio::test]
async fn failed_fetches_back_off() {
    let cluster = FetchCluster::start(|_| FetchAnswer::Close).await;
    let mut consumer = cluster.consumer(cluster.config(), 0).await;
    let since = Instant::now();
    let (records, errors) = poll_for(&mut consumer, WINDOW).await;
    let fetched = cluster.fetches_since(since);
    eprintln!("{}: {fetched} fetches in {WINDOW:?}", line!());
    assert!(records.is_empty() && errors.is_empty(), "{errors:?}");
    assert!(
        (2..=MAX_FETCHES_IN_WINDOW).contains(&fetched),
        "{fetched} fetches in {WINDOW:?}"
    );
}

#[tokio::test]
async fn empty_fetches_answered_at_once_back_off_but_long_polls_do_not() {
    let cluster = FetchCluster::start(|_| FetchAnswer::EmptyAtOnce).await;
    let mut consumer = cluster.consumer(cluster.config(), 0).await;
    let since = Instant::now();
    let (records, errors) = poll_for(&mut consumer, WINDOW).await;
    let fetched = cluster.fetches_since(since);
    eprintln!("{}: {fetched} fetches in {WINDOW:?}", line!());
    assert!(records.is_empty() && errors.is_empty(), "{errors:?}");
    assert!(
        (2..=MAX_FETCHES_IN_WINDOW).contains(&fetched),
        "{fetched} fetches in {WINDOW:?}"
    );

    // A broker that holds each empty fetch for fetch.max.wait.ms (500 ms): the consumer asks
    // again as soon as each answer arrives, so about 6 fetches in 3 s; with client sleeps of up
    // to 1 s on top, it would be 2 or 3.
    cluster.answer_with(|_| FetchAnswer::EmptyAfterWait);
    let (_, _) = poll_for(&mut consumer, Duration::from_secs(2)).await;
    let since = Instant::now();
    let (_, errors) = poll_for(&mut consumer, WINDOW).await;
    let fetched = cluster.fetches_since(since);
    eprintln!("{}: {fetched} fetches in {WINDOW:?}", line!());
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        (4..=7).contains(&fetched),
        "{fetched} long polls in {WINDOW:?}"
    );
}

#[tokio::test]
async fn gzip_bombs_across_batches_are_handed_out_within_the_poll_budget() {
    // 12 batches of 8 MiB each (a few KiB each on the wire), 20 MiB per poll: at most 2 batches'
    // records per poll, all 12 records in order, none twice.
    const MIB: usize = 1 << 20;
    let batches: Vec<Bytes> = (0..12).map(|i| gzip_bomb_batch(i, 8 * MIB - 1)).collect();
    let wire: usize = batches.iter().map(Bytes::len).sum();
    assert!(wire < 2 * MIB, "{wire} bytes on the wire");
    let data = concat(&batches);
    let cluster = FetchCluster::start(move |f| {
        if f.offset == 0 {
            FetchAnswer::Records(data.clone())
        } else {
            FetchAnswer::EmptyAfterWait
        }
    })
    .await;
    let config = cluster.config().max_poll_decompressed_bytes(20 * MIB);
    let mut consumer = cluster.consumer(config, 0).await;
    let mut offsets = Vec::new();
    let end = Instant::now() + Duration::from_secs(60);
    while offsets.len() < 12 && Instant::now() < end {
        let records = consumer
            .poll(Duration::from_millis(500))
            .await
            .expect("poll");
        let held: usize = records
            .iter()
            .map(|r| r.value.as_ref().map_or(0, Bytes::len))
            .sum();
        assert!(held <= 20 * MIB, "one poll holds {held} bytes");
        offsets.extend(records.iter().map(|r| r.offset));
    }
    assert_eq!(offsets, (0..12).collect::<Vec<i64>>());
    assert_eq!(
        cluster.fetches().iter().filter(|f| f.offset == 0).count(),
        1
    );
}

#[tokio::test]
async fn a_batch_larger_than_the_poll_budget_is_an_error_naming_it() {
    const MIB: usize = 1 << 20;
    let data = concat(&[plain_batch(0, 2), gzip_bomb_batch(2, 8 * MIB - 1)]);
    let cluster = FetchCluster::start(move |_| FetchAnswer::Records(data.clone())).await;
    let config = cluster.config().max_poll_decompressed_bytes(4 * MIB);
    let mut consumer = cluster.consumer(config, 0).await;
    let (records, error) = poll_until_error(&mut consumer, Duration::from_secs(20)).await;
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 1]);
    for needle in [
        "batch at offset 2 of partition t-0",
        "gzip",
        "max.poll.decompressed.bytes",
        "4194304 bytes",
        "seek to offset 3",
    ] {
        assert!(error.contains(needle), "`{needle}` missing from: {error}");
    }
    // The consumer is not stuck: seeking past the batch goes on.
    let tp = josefk::TopicPartition::new(TOPIC, 0);
    consumer.seek(&tp, 3).unwrap();
    assert_eq!(consumer.position(&tp).await.unwrap(), 3);
}

/// Requests logged at or after `since`.
fn count_since(log: &[Instant], since: Instant) -> usize {
    log.iter().filter(|at| **at >= since).count()
}

#[tokio::test]
async fn commit_answers_that_leave_the_partition_out_are_retried_after_backoff() {
    let cluster = FetchCluster::start(|_| FetchAnswer::EmptyAfterWait).await;
    cluster.answer_commits_with(CommitAnswer::LeaveOut);
    let mut config = cluster
        .config()
        .group_id("g")
        .commit_mode(josefk::consumer::CommitMode::Manual)
        .default_api_timeout(Duration::from_secs(3));
    config.client = config
        .client
        .retry_backoff(Duration::from_millis(500), Duration::from_millis(500));
    let mut consumer = cluster.consumer(config, 0).await;
    let tp = josefk::TopicPartition::new(TOPIC, 0);
    let error = consumer
        .commit_offsets(&[(tp.clone(), 5)])
        .await
        .expect_err("never confirmed");
    assert!(
        matches!(
            error,
            josefk::Error::Timeout {
                outcome_unknown: true,
                ..
            }
        ),
        "{error:?}"
    );
    // One try, then one every 0.5 s (with jitter) for 3 s: about 7; without the backoff, one per
    // round trip.
    let commits = cluster.commits().len();
    eprintln!("{commits} OffsetCommit requests in 3 s");
    assert!(
        (2..=12).contains(&commits),
        "{commits} OffsetCommit requests"
    );

    cluster.answer_commits_with(CommitAnswer::Commit);
    consumer.commit_offsets(&[(tp, 5)]).await.expect("commit");
}

#[tokio::test]
async fn list_offsets_answering_minus_one_is_retried_after_backoff_and_never_fetched_from() {
    let cluster = FetchCluster::start(|f| {
        if f.offset < 0 {
            FetchAnswer::PartitionError(OFFSET_OUT_OF_RANGE)
        } else if f.offset == 0 {
            FetchAnswer::Records(plain_batch(0, 3))
        } else {
            FetchAnswer::EmptyAfterWait
        }
    })
    .await;
    cluster.list_offsets_answer(-1);
    let config = cluster.config().default_api_timeout(Duration::from_secs(2));
    let mut consumer = cluster.consumer_without_position(config).await;
    let tp = josefk::TopicPartition::new(TOPIC, 0);

    // position() asks with backoff until default.api.timeout.ms, then gives up.
    let error = consumer.position(&tp).await.expect_err("no offset known");
    assert!(matches!(error, josefk::Error::Timeout { .. }), "{error:?}");
    let asked = cluster.list_offsets().len();
    eprintln!("position: {asked} ListOffsets in 2 s");
    assert!(
        (2..=MAX_FETCHES_IN_WINDOW).contains(&asked),
        "{asked} ListOffsets"
    );

    let since = Instant::now();
    let (records, errors) = poll_for(&mut consumer, WINDOW).await;
    let asked = count_since(&cluster.list_offsets(), since);
    eprintln!("{}: {asked} ListOffsets in {WINDOW:?}", line!());
    assert!(records.is_empty() && errors.is_empty(), "{errors:?}");
    assert!(
        (1..=MAX_FETCHES_IN_WINDOW).contains(&asked),
        "{asked} ListOffsets in {WINDOW:?}"
    );
    assert!(
        cluster.fetches().is_empty(),
        "fetched from an offset the broker never gave: {:?}",
        cluster.fetches()
    );

    cluster.list_offsets_answer(0);
    let (records, errors) = poll_for(&mut consumer, WINDOW).await;
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 1, 2], "errors: {errors:?}");
}

#[tokio::test]
async fn a_reset_offset_the_fetch_calls_out_of_range_is_asked_again_after_backoff() {
    // ListOffsets answers 0; every Fetch from 0 answers OFFSET_OUT_OF_RANGE.
    let cluster = FetchCluster::start(|_| FetchAnswer::PartitionError(OFFSET_OUT_OF_RANGE)).await;
    let mut consumer = cluster.consumer_without_position(cluster.config()).await;
    let since = Instant::now();
    let (records, errors) = poll_for(&mut consumer, WINDOW).await;
    let asked = count_since(&cluster.list_offsets(), since);
    let fetched = cluster.fetches_since(since);
    eprintln!(
        "{}: {asked} ListOffsets, {fetched} fetches in {WINDOW:?}",
        line!()
    );
    assert!(records.is_empty() && errors.is_empty(), "{errors:?}");
    assert!(
        (2..=MAX_FETCHES_IN_WINDOW).contains(&asked),
        "{asked} ListOffsets"
    );
    assert!(
        (2..=MAX_FETCHES_IN_WINDOW).contains(&fetched),
        "{fetched} fetches"
    );

    cluster.answer_with(|f| {
        if f.offset == 0 {
            FetchAnswer::Records(plain_batch(0, 3))
        } else {
            FetchAnswer::EmptyAfterWait
        }
    });
    let (records, errors) = poll_for(&mut consumer, WINDOW).await;
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 1, 2], "errors: {errors:?}");
}

/// A position that falls out of range for a reason of its own (a seek past the end here;
/// retention in real life) is reset at once, as Java does: only a reset whose own answer is out
/// of range waits `retry.backoff.ms` (30 s here, far past the poll) before asking again.
#[tokio::test]
async fn a_position_out_of_range_is_reset_at_once() {
    let cluster = FetchCluster::start(|f| {
        if f.offset == 0 {
            FetchAnswer::Records(plain_batch(0, 3))
        } else if f.offset == 100 {
            FetchAnswer::PartitionError(OFFSET_OUT_OF_RANGE)
        } else {
            FetchAnswer::EmptyAfterWait
        }
    })
    .await;
    let mut config = cluster.config();
    config.client = config
        .client
        .retry_backoff(Duration::from_secs(30), Duration::from_secs(30));
    let mut consumer = cluster.consumer(config, 100).await;
    let (records, errors) = poll_for(&mut consumer, WINDOW).await;
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 1, 2], "errors: {errors:?}");
}

/// `seek_to_beginning` on a broker that answers ListOffsets with -1 (no offset known): asked
/// again after the backoff until `default.api.timeout.ms`, then a timeout naming ListOffsets;
/// the position stays where it was (no seek to -1, no "negative offset" error).
#[tokio::test]
async fn seek_to_beginning_answered_minus_one_asks_again_then_times_out() {
    let cluster = FetchCluster::start(|_| FetchAnswer::EmptyAfterWait).await;
    cluster.list_offsets_answer(-1);
    let config = cluster.config().default_api_timeout(Duration::from_secs(2));
    let mut consumer = cluster.consumer(config, 5).await;
    let tp = josefk::TopicPartition::new(TOPIC, 0);

    let error = consumer
        .seek_to_beginning(std::slice::from_ref(&tp))
        .await
        .expect_err("no offset known");
    assert!(
        matches!(
            error,
            josefk::Error::Timeout {
                api: Some(josefk::error::ApiKey::ListOffsets),
                ..
            }
        ),
        "{error:?}"
    );
    let asked = cluster.list_offsets().len();
    eprintln!("seek_to_beginning: {asked} ListOffsets in 2 s");
    assert!(
        (2..=MAX_FETCHES_IN_WINDOW).contains(&asked),
        "{asked} ListOffsets"
    );
    assert_eq!(consumer.position(&tp).await.unwrap(), 5);

    cluster.list_offsets_answer(3);
    consumer
        .seek_to_beginning(std::slice::from_ref(&tp))
        .await
        .expect("seek");
    assert_eq!(consumer.position(&tp).await.unwrap(), 3);
}
