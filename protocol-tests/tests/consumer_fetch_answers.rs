//! The consumer against Fetch answers a faulty broker gives (found by a review against Java's
//! fetcher): data for a partition it did not ask for, UNKNOWN_SERVER_ERROR on its partition, a
//! partition-level refusal. (Follower fetching: consumer_follower_fetch.rs.)
//!
//! Counts of Fetch requests are bounds with wide margins over a window of seconds (the machine
//! is shared and loaded), derived from the backoff: retry.backoff.ms 100 doubling to
//! retry.backoff.max.ms 1000.

mod consumer_support;

use std::time::{Duration, Instant};

use consumer_support::{plain_batch, poll_for, FetchAnswer, FetchCluster};

const UNKNOWN_SERVER_ERROR: i16 = -1;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;

/// As in consumer_faults.rs: about 6 fetches go out in 3 s while backing off; a spin, thousands.
const WINDOW: Duration = Duration::from_secs(3);
const MAX_FETCHES_IN_WINDOW: usize = 10;

/// A broker answering every fetch of `t-0` at once with records of `t-1` (a fetch session that
/// ignores what it was asked): the data is dropped, and since `t-0` got no answer the fetches back
/// off instead of spinning on useless round trips.
#[tokio::test]
async fn data_for_a_partition_not_asked_for_is_no_progress() {
    let cluster = FetchCluster::start(|_| FetchAnswer::UnaskedPartition(plain_batch(0, 5))).await;
    let mut consumer = cluster.consumer(cluster.config(), 0).await;
    let since = Instant::now();
    let (records, errors) = poll_for(&mut consumer, WINDOW).await;
    let fetched = cluster.fetches_since(since);
    eprintln!("{}: {fetched} fetches in {WINDOW:?}", line!());
    assert!(
        records.is_empty(),
        "{} records of t-1 handed out",
        records.len()
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        consumer.metrics().bytes_consumed_total,
        0,
        "dropped data is not consumed bytes"
    );
    assert!(
        fetched <= MAX_FETCHES_IN_WINDOW,
        "{fetched} fetches in {WINDOW:?}"
    );
}

/// UNKNOWN_SERVER_ERROR on the partition, twice, then its records: Java logs it and fetches
/// again; so does josefk, and `poll` never fails (the error was Fatal-class, "close the client").
#[tokio::test]
async fn unknown_server_error_on_a_partition_is_retried_not_reported() {
    let cluster = FetchCluster::start(|seen| {
        if seen.nth < 2 {
            FetchAnswer::PartitionError(UNKNOWN_SERVER_ERROR)
        } else if seen.offset == 0 {
            FetchAnswer::Records(plain_batch(0, 3))
        } else {
            FetchAnswer::EmptyAfterWait
        }
    })
    .await;
    let mut consumer = cluster.consumer(cluster.config(), 0).await;
    let (records, errors) = poll_for(&mut consumer, WINDOW).await;
    assert!(errors.is_empty(), "{errors:?}");
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 1, 2]);
}

/// A denied topic is reported from `poll` as that partition's refusal: the consumer stays usable
/// (its class is not Fatal, which tells the user to close the client).
#[tokio::test]
async fn a_partition_refusal_leaves_the_consumer_usable() {
    let cluster = FetchCluster::start(|seen| {
        if seen.nth < 1 {
            FetchAnswer::PartitionError(TOPIC_AUTHORIZATION_FAILED)
        } else if seen.offset == 0 {
            FetchAnswer::Records(plain_batch(0, 2))
        } else {
            FetchAnswer::EmptyAfterWait
        }
    })
    .await;
    let mut consumer = cluster.consumer(cluster.config(), 0).await;
    let end = Instant::now() + Duration::from_secs(20);
    let error = loop {
        assert!(Instant::now() < end, "no error reported");
        match consumer.poll(Duration::from_millis(200)).await {
            Ok(records) => assert!(records.is_empty()),
            Err(e) => break e,
        }
    };
    assert_eq!(
        error.kafka_code(),
        Some(josefk::ErrorCode::TopicAuthorizationFailed),
        "{error}"
    );
    assert_eq!(error.class(), josefk::ErrorClass::Rejected, "{error}");
    let (records, errors) = poll_for(&mut consumer, WINDOW).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(records.len(), 2, "the same consumer reads on");
}
