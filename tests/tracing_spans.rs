//! Live: the `debug` spans of the public calls, on the OpenTelemetry messaging conventions — one
//! `send` per record naming its topic, `poll` spans whose `messaging.batch.message_count` add up
//! to what was read, `commit` as a settle operation, and a span per admin call.
//!
//! A capturing layer records every span this test's thread opens (the calls run on the test's
//! current-thread runtime, so the thread's default subscriber sees them).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use josefk::admin::{Admin, NewTopic};
use josefk::consumer::{AutoOffsetReset, CommitMode, Consumer, ConsumerConfig};
use josefk::producer::{Producer, ProducerConfig};
use josefk::ProducerRecord;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

const RECORDS: usize = 40;

/// One span as opened, with its fields as finally recorded.
#[derive(Debug, Clone, Default)]
struct Seen {
    name: String,
    fields: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<(u64, Seen)>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut seen = Seen {
            name: attrs.metadata().name().to_owned(),
            ..Seen::default()
        };
        attrs.record(&mut Fields(&mut seen.fields));
        self.0.lock().unwrap().push((id.into_u64(), seen));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        // Ids are reused once a span closes: the latest span with the id is the live one.
        if let Some((_, seen)) = spans.iter_mut().rev().find(|(i, _)| *i == id.into_u64()) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }
}

#[tokio::test]
async fn public_calls_open_messaging_spans() {
    let bootstrap = common::bootstrap();
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(
        capture
            .clone()
            .with_filter(tracing_subscriber::filter::LevelFilter::DEBUG),
    );
    let _guard = tracing::subscriber::set_default(subscriber);

    let topic = common::unique_topic("spans");
    let admin = Admin::connect(common::config(&bootstrap)).await.unwrap();
    admin
        .create_topics(&[NewTopic::new(&topic, 2, 1)])
        .await
        .unwrap();

    let producer = Producer::connect(ProducerConfig::with_client(common::config(&bootstrap)))
        .await
        .unwrap();
    let mut acks = Vec::new();
    for i in 0..RECORDS {
        acks.push(
            producer
                .send(ProducerRecord::new(&topic, format!("v{i}")))
                .await
                .unwrap(),
        );
    }
    for ack in acks {
        ack.await.unwrap();
    }
    producer.close(Duration::from_secs(10)).await.unwrap();

    let group = format!("{topic}-g");
    let mut consumer = Consumer::connect(
        ConsumerConfig::with_client(common::config(&bootstrap))
            .group_id(&group)
            .commit_mode(CommitMode::Manual)
            .auto_offset_reset(AutoOffsetReset::Earliest),
    )
    .await
    .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut read = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while read < RECORDS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "read {read} of {RECORDS}"
        );
        read += consumer
            .poll(Duration::from_millis(500))
            .await
            .unwrap()
            .len();
    }
    assert_eq!(read, RECORDS);
    consumer.commit().await.unwrap();
    consumer.close().await.unwrap();

    let spans: Vec<Seen> = capture
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(_, s)| s.clone())
        .collect();
    let named = |name: &'static str| spans.iter().filter(move |s| s.name == name);

    let sends: Vec<&Seen> = named("send").collect();
    assert_eq!(sends.len(), RECORDS, "one send span per record");
    for s in &sends {
        assert_eq!(s.fields["messaging.system"], "kafka");
        assert_eq!(s.fields["messaging.operation.type"], "send");
        assert_eq!(s.fields["messaging.destination.name"], topic);
    }

    let polled: usize = named("poll")
        .map(|s| {
            assert_eq!(s.fields["messaging.operation.type"], "receive");
            assert_eq!(s.fields["messaging.consumer.group.name"], group);
            s.fields
                .get("messaging.batch.message_count")
                .map_or(0, |n| n.parse::<usize>().unwrap())
        })
        .sum();
    assert_eq!(
        polled, RECORDS,
        "the polls' message counts add up to what was read"
    );

    let commits: Vec<&Seen> = named("commit").collect();
    assert_eq!(commits.len(), 1, "{commits:?}");
    assert_eq!(commits[0].fields["messaging.operation.type"], "settle");

    assert_eq!(named("kafka.admin.create_topics").count(), 1);
}
