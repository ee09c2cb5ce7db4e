//! Fetch pipelining (issue #9): when a poll hands out the last records buffered for a partition,
//! the consumer has already asked the broker for the next data, so the broker's round trip overlaps
//! the caller's handling of those records. Without it the next Fetch left only on the following
//! poll, and every fetch round trip was waited for in full — over TLS, where the broker encrypts
//! each response, that made josefk's consume wall time grow several times more than its CPU.
//!
//! The check is on what the broker saw, not on timing: after the poll that drained the buffer the
//! test stops polling, and the second Fetch must still arrive (within a generous limit).

mod consumer_support;

use std::time::{Duration, Instant};

use consumer_support::{plain_batch, FetchAnswer, FetchCluster};

/// Records the broker returns per Fetch.
const PER_FETCH: usize = 100;
/// max.poll.records: one Fetch's records take this many polls.
const PER_POLL: usize = 10;

#[tokio::test]
async fn the_next_fetch_is_sent_before_the_buffer_runs_dry() {
    let cluster =
        FetchCluster::start(|seen| FetchAnswer::Records(plain_batch(seen.offset, PER_FETCH))).await;
    let config = cluster.config().max_poll_records(PER_POLL);
    let mut consumer = cluster.consumer(config, 0).await;

    let mut offsets = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while offsets.len() < PER_FETCH {
        assert!(Instant::now() < end, "only {} records", offsets.len());
        let records = consumer.poll(Duration::from_secs(5)).await.unwrap();
        assert!(
            records.len() <= PER_POLL,
            "{} records in one poll",
            records.len()
        );
        offsets.extend(records.iter().map(|r| r.offset));
    }
    assert_eq!(offsets, (0..PER_FETCH as i64).collect::<Vec<_>>());

    // No poll from here on: the Fetch for offset 100 went out with the poll that returned 90..99.
    let end = Instant::now() + Duration::from_secs(20);
    while cluster.fetches().len() < 2 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fetches = cluster.fetches();
    let asked: Vec<i64> = fetches.iter().map(|f| f.offset).collect();
    assert_eq!(
        asked,
        [0, PER_FETCH as i64],
        "the consumer must ask for offset {PER_FETCH} while its caller still handles the \
         records before it (fetch offsets the broker saw: {asked:?})"
    );

    // The prefetched records come next, once each and in order.
    let mut next = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while next.len() < PER_FETCH {
        assert!(Instant::now() < end, "only {} more records", next.len());
        let records = consumer.poll(Duration::from_secs(5)).await.unwrap();
        next.extend(records.iter().map(|r| r.offset));
    }
    assert_eq!(
        next,
        (PER_FETCH as i64..2 * PER_FETCH as i64).collect::<Vec<_>>()
    );
}
