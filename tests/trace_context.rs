//! Live test of W3C trace-context propagation through record headers: a producer given a context
//! source stamps `traceparent` on records without one, keeps a record's own, and a producer
//! without one adds nothing; the consumer reads each back. The context source runs inside
//! `Producer::send`'s span.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::members::create_topic;
use josefk::consumer::{AutoOffsetReset, Consumer, ConsumerConfig};
use josefk::producer::{Partitioner, Producer, ProducerConfig};
use josefk::trace_context::TraceParent;
use josefk::{ProducerRecord, TopicPartition};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn traceparent_travels_from_producer_to_consumer_only_when_asked() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("traceparent");
    create_topic(&bootstrap, &topic, 1).await;
    let current =
        TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";

    let traced = Producer::connect(
        ProducerConfig::with_client(common::config(&bootstrap))
            .trace_context(move || Some(current)),
    )
    .await
    .unwrap();
    let plain = Producer::connect(ProducerConfig::with_client(common::config(&bootstrap)))
        .await
        .unwrap();
    let send = |p: &Producer, r: ProducerRecord| {
        let p = p.clone();
        async move { p.send(r).await.unwrap().await.unwrap() }
    };
    send(&traced, ProducerRecord::new(&topic, "stamped")).await;
    send(
        &traced,
        ProducerRecord::new(&topic, "own").header("traceparent", own),
    )
    .await;
    send(&plain, ProducerRecord::new(&topic, "plain")).await;

    let mut c = Consumer::connect(
        ConsumerConfig::with_client(common::config(&bootstrap))
            .auto_offset_reset(AutoOffsetReset::Earliest),
    )
    .await
    .unwrap();
    c.assign(&[TopicPartition::new(&topic, 0)]).await.unwrap();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while records.len() < 3 {
        assert!(Instant::now() < deadline, "read {} of 3", records.len());
        records.extend(c.poll(Duration::from_secs(1)).await.unwrap());
    }
    let value = |i: usize| records[i].value.as_deref().unwrap().to_vec();
    assert_eq!(
        (value(0), value(1), value(2)),
        (b"stamped".to_vec(), b"own".to_vec(), b"plain".to_vec())
    );
    assert_eq!(records[0].trace_parent(), Some(current));
    assert_eq!(records[0].headers.to_vec().len(), 1, "one header added");
    assert_eq!(
        records[1].trace_parent().map(|t| t.to_string()).as_deref(),
        Some(own),
        "the record's own context is kept"
    );
    assert_eq!(records[1].headers.to_vec().len(), 1, "not stamped twice");
    assert_eq!(records[2].trace_parent(), None);
    assert!(records[2].headers.to_vec().is_empty(), "off by default");
    traced.close(Duration::from_secs(30)).await.unwrap();
    plain.close(Duration::from_secs(30)).await.unwrap();
}

/// The context source runs while the `send` span (OpenTelemetry messaging fields) is current, so
/// a `traceparent` taken from the current span names the send: on the common path and while a
/// record waits for its topic's metadata, once per record; and for `send_with` too.
#[tokio::test]
async fn the_context_source_runs_inside_the_send_span() {
    let bootstrap = common::bootstrap();
    let known = common::unique_topic("send-span-known");
    let later = common::unique_topic("send-span-later");
    create_topic(&bootstrap, &known, 1).await;
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(std::io::sink)
        .finish();
    // This test runs on one thread (current-thread runtime): every `send` is polled here.
    let _default = tracing::subscriber::set_default(subscriber);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record_seen = seen.clone();
    let producer = Producer::connect(
        ProducerConfig::with_client(common::config(&bootstrap)).trace_context(move || {
            let span = tracing::Span::current();
            let described = span.metadata().map(|m| {
                let fields: Vec<&str> = m.fields().iter().map(|f| f.name()).collect();
                format!("{} {}", m.name(), fields.join(","))
            });
            record_seen
                .lock()
                .unwrap()
                .push(described.unwrap_or_default());
            None
        }),
    )
    .await
    .unwrap();
    // The first send to a topic waits for its metadata; the second takes the common path.
    for value in ["a", "b"] {
        let delivery = producer.send(ProducerRecord::new(&known, value)).await;
        delivery.unwrap().await.unwrap();
    }
    // Created after the producer last asked for metadata: this send waits for the topic too.
    create_topic(&bootstrap, &later, 1).await;
    let delivery = producer.send(ProducerRecord::new(&later, "c")).await;
    delivery.unwrap().await.unwrap();
    // A custom partitioner's send has the same span.
    let delivery = producer
        .send_with(ProducerRecord::new(&known, "d"), &LastPartition)
        .await;
    assert_eq!(delivery.unwrap().await.unwrap().partition, 0);
    producer.close(Duration::from_secs(30)).await.unwrap();

    let span = "send messaging.system,messaging.operation.type,messaging.destination.name";
    // Once per record, however long it waited.
    assert_eq!(*seen.lock().unwrap(), vec![span.to_string(); 4]);
}

/// Picks a topic's last partition.
#[derive(Debug)]
struct LastPartition;

impl Partitioner for LastPartition {
    fn partition(&self, _: &str, _: Option<&[u8]>, _: Option<&[u8]>, n: i32) -> Option<i32> {
        Some(n - 1)
    }
}
