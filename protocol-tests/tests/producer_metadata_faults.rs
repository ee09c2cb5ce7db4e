//! The producer against Metadata answers a real broker gives only mid-creation or when faulty: a
//! topic listed without an error and with no partitions has nowhere to put a record, so `send`
//! waits for it as for an unknown topic (refreshing until `max.block.ms`) and then fails the same
//! way, queueing nothing, asking no partitioner about zero partitions, and never panicking.
//!
//! The cluster is the producer fault tests' scripted one-node cluster ([`producer_support`]).

mod producer_support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use josefk::producer::{Partitioner, Producer};
use josefk::{ApiKey, Error, ErrorClass, ProducerRecord};

use producer_support::*;

/// A partitioner that remembers every partition count it was asked with.
#[derive(Debug, Default)]
struct Recording(Mutex<Vec<i32>>);

impl Partitioner for Recording {
    fn partition(&self, _: &str, _: Option<&[u8]>, _: Option<&[u8]>, n: i32) -> Option<i32> {
        self.0.lock().unwrap().push(n);
        Some(0)
    }
}

/// How `send` fails when metadata never makes the topic usable within `max.block.ms`.
fn is_metadata_wait_failure(e: &Error) -> bool {
    matches!(
        e,
        Error::Broker {
            api: ApiKey::Metadata,
            class: ErrorClass::Retriable,
            ..
        } | Error::Timeout {
            api: Some(ApiKey::Metadata),
            ..
        }
    )
}

#[tokio::test]
async fn a_topic_listed_with_no_partitions_is_waited_for_like_an_unknown_one_and_nothing_is_queued()
{
    let cluster = Cluster::start(|_, _| None).await;
    let mut config = cluster.config();
    let max_block = Duration::from_secs(1);
    config.max_block = max_block;
    let producer = within(Producer::connect(config)).await.expect("connect");
    let metadata_requests = || {
        cluster
            .log()
            .iter()
            .filter(|(_, r)| *r == Req::Metadata)
            .count()
    };
    let recording = Recording::default();
    // The first send to the topic finds it in no metadata yet; the later ones find it listed.
    let cases = [
        ("unknown topic", "not-there", None, None),
        ("keyless", EMPTY_TOPIC, None, None),
        ("keyed", EMPTY_TOPIC, Some("k"), None),
        ("keyless again", EMPTY_TOPIC, None, None),
        ("explicit partition 0", EMPTY_TOPIC, None, Some(0)),
        ("custom partitioner", EMPTY_TOPIC, Some("k"), None),
    ];
    for (what, topic, key, partition) in cases {
        let mut record = ProducerRecord::new(topic, "v");
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        let asked_before = metadata_requests();
        let started = Instant::now();
        let sent = if what == "custom partitioner" {
            within(producer.send_with(record, &recording)).await
        } else {
            within(producer.send(record)).await
        };
        let error = sent.expect_err(what);
        let waited = started.elapsed();
        assert!(is_metadata_wait_failure(&error), "{what}: {error:?}");
        assert!(
            !error.outcome_unknown(),
            "{what}: nothing was queued: {error}"
        );
        // It waited for metadata (not a fail-fast refusal) and no longer than it may.
        assert!(
            waited >= max_block / 2 && waited <= max_block + SLACK,
            "{what}: failed after {waited:?}"
        );
        assert!(
            metadata_requests() - asked_before >= 2,
            "{what}: metadata was refreshed while waiting"
        );
    }
    assert!(
        recording.0.lock().unwrap().is_empty(),
        "a partitioner is never asked about a topic with no partitions: {:?}",
        recording.0.lock().unwrap()
    );
    assert!(cluster.produced().is_empty(), "{:?}", cluster.produced());
    let record = producer.send(ProducerRecord::new(TOPIC, "after")).await;
    within(record.expect("queued")).await.expect("delivered");
}

/// A partition that lost its leader makes every sender pass ask for metadata; with Metadata
/// answers slow (1 s here) those asks once piled up as concurrent requests (each task alive up to
/// three request timeouts). Now one refresh runs at a time: never more than one request in flight.
#[tokio::test]
async fn refreshes_for_a_leaderless_partition_run_one_at_a_time() {
    let cluster = Cluster::start(|req, model| match req {
        // Refused until the end: the partition's leader is gone.
        Req::Produce(_) => {
            model.leader = -1;
            model.metadata_delay = Some(Duration::from_secs(1));
            Some(produce_refusal(NOT_LEADER_OR_FOLLOWER))
        }
        _ => None,
    })
    .await;
    let mut config = cluster.config();
    config.delivery_timeout = Duration::from_secs(4);
    let producer = within(Producer::connect(config)).await.expect("connect");
    let record = producer
        .send(ProducerRecord::new(TOPIC, "nowhere"))
        .await
        .expect("queued");
    let mut most = 0;
    let watch_until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < watch_until {
        most = most.max(producer.metrics().network.requests_in_flight);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Refreshes after the leader was lost (each answer takes 1 s): the task kept going.
    let metadata_requests = metadata_requests_after_the_first_produce(&cluster);
    assert!(
        metadata_requests >= 2,
        "it did look again: {metadata_requests}"
    );
    assert!(
        most <= 2,
        "requests in flight at most: {most} (one Metadata, one Produce)"
    );
    assert!(within(record).await.is_err(), "no leader came back");
    within(producer.close(Duration::from_secs(1))).await.ok();
}

/// A topic whose partition has no leader yet is known, and that is all `send` waits for (Java's
/// `waitOnMetadata` waits for the partition count only): the record is queued at once and goes
/// out when a leader appears, here after `max.block.ms` has long passed. Waiting for every leader
/// failed the send with LEADER_NOT_AVAILABLE instead.
#[tokio::test]
async fn a_record_for_a_partition_without_a_leader_is_queued_not_refused() {
    let cluster = Cluster::start(|_, _| None).await;
    cluster.script.model.lock().unwrap().leader = -1;
    let mut config = cluster.config();
    config.max_block = Duration::from_millis(500);
    let producer = within(Producer::connect(config)).await.expect("connect");
    let record = within(producer.send(ProducerRecord::new(TOPIC, "later")))
        .await
        .expect("queued though no leader is known yet");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        cluster.produced().is_empty(),
        "nothing sent without a leader"
    );
    cluster.script.model.lock().unwrap().leader = 1;
    let metadata = within(record)
        .await
        .expect("delivered once the leader appeared");
    assert_eq!(metadata.offset, Some(0));
    assert_eq!(cluster.produced().len(), 1);
    within(producer.close(Duration::from_secs(1))).await.ok();
}

/// While a partition stays leaderless the background refresh is asked for on every sender pass,
/// and each round wakes the sender: rounds are spaced by the retry backoff (50 ms doubling to
/// 200 ms here), not run back to back at the broker's answer rate.
#[tokio::test]
async fn refresh_rounds_for_a_leaderless_partition_are_spaced_by_the_backoff() {
    let cluster = Cluster::start(|req, model| match req {
        Req::Produce(_) => {
            model.leader = -1;
            Some(produce_refusal(NOT_LEADER_OR_FOLLOWER))
        }
        _ => None,
    })
    .await;
    let mut config = cluster.config();
    config.delivery_timeout = Duration::from_secs(5);
    let producer = within(Producer::connect(config)).await.expect("connect");
    let record = producer
        .send(ProducerRecord::new(TOPIC, "nowhere"))
        .await
        .expect("queued");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metadata_requests = metadata_requests_after_the_first_produce(&cluster);
    // About 2 s / 200 ms; unpaced, the answers came back to back (thousands).
    assert!(
        (2..=40).contains(&metadata_requests),
        "{metadata_requests} Metadata requests in 2 s"
    );
    assert!(within(record).await.is_err(), "no leader came back");
    within(producer.close(Duration::from_secs(1))).await.ok();
}

/// Metadata requests the broker saw from the first Produce on (the refreshes the lost leader
/// caused, not connect's or the first send's lookup).
fn metadata_requests_after_the_first_produce(cluster: &Cluster) -> usize {
    let log = cluster.log();
    let first_produce = log
        .iter()
        .position(|(_, r)| matches!(r, Req::Produce(_)))
        .expect("a Produce was sent");
    log[first_produce..]
        .iter()
        .filter(|(_, r)| *r == Req::Metadata)
        .count()
}
