//! Live tests of the producer against a real Kafka: each delivery guarantee, ordering, keys and
//! headers, every codec, and bad input.
//!
//! What was written is checked by reading the partitions back with raw Fetch requests and
//! josefk's record-batch decoder, never with the producer's own bookkeeping.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use josefk::admin::{Admin, NewTopic};
use josefk::producer::partition_for_key;
use josefk::producer::{Acks, Producer, ProducerConfig};
use josefk::{ErrorClass, ProducerRecord};
use josefk_harness::ClusterSpec;

/// A record as read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Logged {
    offset: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(String, Option<Bytes>)>,
}

/// Every data record of `topic`'s partitions, in log order (see [`common::read_log`]).
async fn read_back(bootstrap: &str, topic: &str, partitions: i32) -> HashMap<i32, Vec<Logged>> {
    common::read_log(bootstrap, topic, partitions)
        .await
        .into_iter()
        .map(|(p, batches)| {
            let records = batches
                .into_iter()
                .flat_map(|b| b.records)
                .map(|r| Logged {
                    offset: r.offset,
                    key: r.key.clone(),
                    value: r.value.clone(),
                    headers: r
                        .headers
                        .iter()
                        .map(|h| (h.key_str().unwrap().to_owned(), h.value.clone()))
                        .collect(),
                })
                .collect();
            (p, records)
        })
        .collect()
}

async fn admin(bootstrap: &str) -> Admin {
    Admin::connect(common::config(bootstrap))
        .await
        .expect("admin")
}

fn producer_config(bootstrap: &str) -> ProducerConfig {
    ProducerConfig::with_client(common::config(bootstrap))
}

/// Values `prefix-0000`, `prefix-0001`, ...: parseable, so order and duplicates can be checked.
fn value(prefix: &str, i: usize) -> Bytes {
    Bytes::from(format!("{prefix}-{i:06}"))
}

fn index_of(v: &Bytes) -> usize {
    std::str::from_utf8(v)
        .unwrap()
        .rsplit('-')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotent_producer_writes_each_record_once_in_send_order_with_keys_and_headers() {
    let bootstrap = common::bootstrap();
    let admin = admin(&bootstrap).await;
    let topic = common::unique_topic("idem");
    admin
        .create_topics(&[NewTopic::new(&topic, 3, 1)])
        .await
        .unwrap();
    let producer = Producer::connect(producer_config(&bootstrap))
        .await
        .unwrap();
    const N: usize = 3000;
    let mut deliveries = Vec::with_capacity(N);
    for i in 0..N {
        let key = format!("key-{}", i % 17);
        let record = ProducerRecord::new(&topic, value("v", i))
            .key(key)
            .header("trace", format!("t{i}"))
            .header("trace", "dup")
            .header("empty", "");
        deliveries.push(producer.send(record).await.unwrap());
    }
    let mut acked = Vec::new();
    for d in deliveries {
        acked.push(d.await.expect("delivered"));
    }
    producer.close(Duration::from_secs(10)).await.unwrap();

    let log = read_back(&bootstrap, &topic, 3).await;
    let total: usize = log.values().map(Vec::len).sum();
    assert_eq!(total, N, "every record exactly once");
    for (p, records) in &log {
        let indexes: Vec<usize> = records
            .iter()
            .map(|r| index_of(r.value.as_ref().unwrap()))
            .collect();
        let mut sorted = indexes.clone();
        sorted.sort_unstable();
        assert_eq!(indexes, sorted, "partition {p} holds records in send order");
        for r in records {
            let i = index_of(r.value.as_ref().unwrap());
            let key = format!("key-{}", i % 17);
            assert_eq!(r.key.as_deref(), Some(key.as_bytes()));
            // Same key → same partition as the Java client computes.
            assert_eq!(
                *p,
                partition_for_key(key.as_bytes(), 3),
                "murmur2 partition of {key}"
            );
            assert_eq!(
                r.headers,
                vec![
                    ("trace".to_owned(), Some(Bytes::from(format!("t{i}")))),
                    ("trace".to_owned(), Some(Bytes::from_static(b"dup"))),
                    ("empty".to_owned(), Some(Bytes::new())),
                ]
            );
        }
    }
    // The delivery reports agree with the log.
    for (i, meta) in acked.iter().enumerate() {
        let logged = &log[&meta.partition];
        let at = logged
            .iter()
            .find(|r| Some(r.offset) == meta.offset)
            .expect("reported offset exists");
        assert_eq!(at.value.as_ref(), Some(&value("v", i)));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_codec_round_trips_through_the_broker() {
    let bootstrap = common::bootstrap();
    let admin = admin(&bootstrap).await;
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = common::unique_topic(&format!("codec-{codec}"));
        admin
            .create_topics(&[NewTopic::new(&topic, 1, 1)])
            .await
            .unwrap();
        let producer = Producer::connect(
            producer_config(&bootstrap)
                .compression(codec.parse().expect("codec"))
                .delivery_timeout(Duration::from_secs(20)),
        )
        .await
        .unwrap();
        let mut deliveries = Vec::new();
        for i in 0..500 {
            let record = ProducerRecord::new(&topic, value(&"payload".repeat(20), i))
                .key(format!("k{i}"))
                .header("codec", codec);
            deliveries.push(producer.send(record).await.unwrap());
        }
        for d in deliveries {
            d.await.unwrap_or_else(|e| panic!("{codec}: {e}"));
        }
        producer.close(Duration::from_secs(10)).await.unwrap();
        let log = read_back(&bootstrap, &topic, 1).await;
        let values: Vec<Bytes> = log[&0].iter().map(|r| r.value.clone().unwrap()).collect();
        let expected: Vec<Bytes> = (0..500).map(|i| value(&"payload".repeat(20), i)).collect();
        assert_eq!(values, expected, "{codec}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn acks_zero_reports_no_offsets_and_never_more_than_was_sent() {
    let bootstrap = common::bootstrap();
    let admin = admin(&bootstrap).await;
    let topic = common::unique_topic("acks0");
    admin
        .create_topics(&[NewTopic::new(&topic, 2, 1)])
        .await
        .unwrap();
    let producer = Producer::connect(producer_config(&bootstrap).acks(Acks::None))
        .await
        .unwrap();
    let mut deliveries = Vec::new();
    for i in 0..1000 {
        deliveries.push(
            producer
                .send(ProducerRecord::new(&topic, value("z", i)))
                .await
                .unwrap(),
        );
    }
    for d in deliveries {
        // At-most-once: "delivered" only means written to the socket; no offset is known.
        assert_eq!(d.await.unwrap().offset, None);
    }
    producer.close(Duration::from_secs(10)).await.unwrap();
    let log = read_back(&bootstrap, &topic, 2).await;
    let values: Vec<usize> = log
        .values()
        .flatten()
        .map(|r| index_of(r.value.as_ref().unwrap()))
        .collect();
    let mut unique = values.clone();
    unique.sort_unstable();
    unique.dedup();
    // What acks=0 guarantees: no duplicates (nothing is retried) and nothing invented. What it
    // does not: that every record arrived (on a healthy local broker they all do).
    assert_eq!(unique.len(), values.len(), "no duplicates without retries");
    assert!(values.len() <= 1000);
    assert!(values.iter().all(|&i| i < 1000));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_fails_at_the_call_and_loses_nothing_else() {
    let bootstrap = common::bootstrap();
    let admin = admin(&bootstrap).await;
    let topic = common::unique_topic("bad");
    admin
        .create_topics(&[NewTopic::new(&topic, 1, 1).config("max.message.bytes", "2000")])
        .await
        .unwrap();
    let mut config = producer_config(&bootstrap).linger(Duration::from_millis(200));
    config.max_block = Duration::from_secs(2);
    let producer = Producer::connect(config).await.unwrap();

    let ok_before = producer
        .send(ProducerRecord::new(&topic, value("ok", 0)))
        .await
        .unwrap();
    // Over max.request.size (1 MiB): refused by send itself.
    let e = producer
        .send(ProducerRecord::new(&topic, vec![0u8; 2 * 1024 * 1024]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("max.request.size"), "{e}");
    // Over the topic's max.message.bytes, between two small records in the same batch: the broker
    // refuses the batch, which is split until the record is alone; only it fails.
    too_large_record_fails_alone(&producer, &topic, 1).await;
    // An unknown topic (the harness broker has auto-create off): a clear error within max.block.ms.
    let e = producer
        .send(ProducerRecord::new(common::unique_topic("missing"), "x"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("UnknownTopicOrPartition"), "{e}");
    // A partition that does not exist.
    let e = producer
        .send(ProducerRecord::new(&topic, "x").partition(7))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("partition 7"), "{e}");
    let ok_after = producer
        .send(ProducerRecord::new(&topic, value("ok", 3)))
        .await
        .unwrap();
    assert!(ok_before.await.is_ok());
    assert!(ok_after.await.is_ok());
    producer.close(Duration::from_secs(10)).await.unwrap();
    let log = read_back(&bootstrap, &topic, 1).await;
    let values: Vec<Bytes> = log[&0].iter().map(|r| r.value.clone().unwrap()).collect();
    assert_eq!(
        values,
        vec![
            value("ok", 0),
            value("ok", 1),
            value("ok", 2),
            value("ok", 3)
        ]
    );

    // Invalid configurations are refused before connecting.
    let conflicting = producer_config(&bootstrap)
        .idempotence(true)
        .acks(Acks::Leader);
    assert!(conflicting.validate().is_err());
    let e = Producer::connect(conflicting).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Fatal);
    assert!(e.to_string().contains("acks"), "{e}");
    let e = producer_config(&bootstrap)
        .set("compression.type", "brotli")
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Fatal);
    assert!(e.to_string().contains("compression.type"), "{e}");
}

/// Sends `ok-{first}`, a 5,000-byte record (over the topic's `max.message.bytes=2000`) and
/// `ok-{first+1}` without awaiting in between, so they share a batch (linger is long enough).
/// The broker refuses that batch with MESSAGE_TOO_LARGE; it is split (Java
/// `Sender.completeBatch`) until the big record is alone, which alone fails, naming its size.
async fn too_large_record_fails_alone(producer: &Producer, topic: &str, first: usize) {
    let before = producer
        .send(ProducerRecord::new(topic, value("ok", first)))
        .await
        .unwrap();
    let too_big = producer
        .send(ProducerRecord::new(topic, vec![1u8; 5000]))
        .await
        .unwrap();
    let after = producer
        .send(ProducerRecord::new(topic, value("ok", first + 1)))
        .await
        .unwrap();
    let e = too_big.await.unwrap_err();
    assert_eq!(
        e.kafka_code(),
        Some(josefk::ErrorCode::MessageTooLarge),
        "{e}"
    );
    assert!(e.to_string().contains("bytes"), "{e}");
    assert!(e.to_string().contains("max.message.bytes"), "{e}");
    let before = before.await.unwrap();
    let after = after.await.unwrap();
    assert_eq!(after.offset.unwrap(), before.offset.unwrap() + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_idempotent_producer_also_fails_only_the_too_large_record() {
    let bootstrap = common::bootstrap();
    let admin = admin(&bootstrap).await;
    let topic = common::unique_topic("too-large");
    admin
        .create_topics(&[NewTopic::new(&topic, 1, 1).config("max.message.bytes", "2000")])
        .await
        .unwrap();
    let config = producer_config(&bootstrap)
        .idempotence(false)
        .linger(Duration::from_millis(200));
    let producer = Producer::connect(config).await.unwrap();
    too_large_record_fails_alone(&producer, &topic, 0).await;
    producer.close(Duration::from_secs(10)).await.unwrap();
    let log = read_back(&bootstrap, &topic, 1).await;
    let values: Vec<Bytes> = log[&0].iter().map(|r| r.value.clone().unwrap()).collect();
    assert_eq!(values, vec![value("ok", 0), value("ok", 1)]);
}

/// Sends `n` records at a steady pace while the broker is killed (SIGKILL, so requests in flight
/// may have been appended without an answer) and restarted; returns the indexes the producer
/// reported delivered.
async fn produce_through_a_restart(
    cluster: &common::PrivateCluster,
    config: ProducerConfig,
    topic: &str,
    n: usize,
) -> Vec<usize> {
    let producer = Producer::connect(config).await.unwrap();
    let node = cluster.node_ids().await[0];
    let bouncer = {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            cluster.kill_node(node).await;
            cluster.start_node(node).await;
        })
    };
    let mut in_flight = std::collections::VecDeque::new();
    let mut delivered = Vec::new();
    for i in 0..n {
        in_flight.push_back((
            i,
            producer
                .send(ProducerRecord::new(topic, value("r", i)))
                .await
                .unwrap(),
        ));
        if i % 50 == 49 {
            // Paced so the kill lands mid-stream rather than after the last send.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        while in_flight.len() > 500 {
            let (i, d) = in_flight.pop_front().unwrap();
            if d.await.is_ok() {
                delivered.push(i);
            }
        }
    }
    for (i, d) in in_flight {
        if d.await.is_ok() {
            delivered.push(i);
        }
    }
    bouncer.await.unwrap();
    producer.close(Duration::from_secs(30)).await.unwrap();
    delivered
}

#[tokio::test(flavor = "multi_thread")]
async fn through_a_broker_restart_at_least_once_may_duplicate_and_idempotence_does_not() {
    let cluster = common::PrivateCluster::start(ClusterSpec::single()).await;
    let bootstrap = cluster.bootstrap_servers();
    let admin = admin(&bootstrap).await;
    const N: usize = 20_000;
    for idempotent in [false, true] {
        let topic = common::unique_topic(if idempotent {
            "restart-idem"
        } else {
            "restart-alo"
        });
        admin
            .create_topics(&[NewTopic::new(&topic, 2, 1)])
            .await
            .unwrap();
        let mut config = producer_config(&bootstrap).idempotence(idempotent);
        config.client.request_timeout = Duration::from_secs(10);
        config.delivery_timeout = Duration::from_secs(90);
        let delivered = produce_through_a_restart(&cluster, config, &topic, N).await;
        let log = read_back(&bootstrap, &topic, 2).await;
        let mut counts: HashMap<usize, usize> = HashMap::new();
        for r in log.values().flatten() {
            *counts
                .entry(index_of(r.value.as_ref().unwrap()))
                .or_default() += 1;
        }
        // Both guarantees: every acknowledged record is in the log.
        for i in &delivered {
            assert!(
                counts.contains_key(i),
                "acknowledged record {i} missing (idempotent={idempotent})"
            );
        }
        let duplicates: usize = counts.values().map(|c| c - 1).sum();
        eprintln!(
            "idempotent={idempotent}: {} delivered, {} in log, {duplicates} duplicates",
            delivered.len(),
            counts.len()
        );
        if idempotent {
            assert_eq!(duplicates, 0, "the idempotent producer never duplicates");
            assert_eq!(
                delivered.len(),
                N,
                "every record delivered within the delivery timeout"
            );
            for (p, records) in &log {
                let order: Vec<usize> = records
                    .iter()
                    .map(|r| index_of(r.value.as_ref().unwrap()))
                    .collect();
                let mut sorted = order.clone();
                sorted.sort_unstable();
                assert_eq!(order, sorted, "partition {p} in send order");
            }
        }
    }
}
