//! Live test of KIP-714 client metrics push: a private broker runs a telemetry plugin
//! (`tests/fixtures/TelemetryCapture.java`, compiled here with `javac` against the broker's jars)
//! that decodes every pushed payload with Kafka's own OTLP classes and writes it to a file; a
//! client-metrics subscription asks every second for the producer's `record.*` and `topic.*`
//! metrics and the consumer's records consumed. Each client's pushes must carry only those, with
//! the record counts it sent or read, and end with one terminating push on close.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::PrivateCluster;
use josefk::admin::{Admin, ConfigChange, ConfigResource, NewTopic};
use josefk::consumer::{AutoOffsetReset, Consumer, ConsumerConfig};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{ProducerRecord, TopicPartition};
use josefk_harness::{ClusterSpec, KafkaDist};
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(60);
/// The subscription's `metrics`: a few prefixes, so that most metrics are left out.
const PREFIXES: &str = "org.apache.kafka.producer.record.,org.apache.kafka.producer.topic.,\
                        org.apache.kafka.consumer.fetch.manager.records.consumed.total";

/// Compiles the capture plugin into a fresh directory; returns it.
fn compile_plugin() -> PathBuf {
    let dist = KafkaDist::provision().expect("provision Kafka");
    let dir = std::env::temp_dir().join(format!("josefk-telemetry-plugin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let javac = dist.java().with_file_name("javac");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/TelemetryCapture.java");
    let out = Command::new(&javac)
        .arg("-cp")
        .arg(dist.broker_classpath())
        .arg("-d")
        .arg(&dir)
        .arg(&source)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", javac.display()));
    assert!(
        out.status.success(),
        "javac failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// One push as the plugin wrote it.
#[derive(Debug, Default)]
struct Push {
    /// The client instance id the broker assigned.
    instance: String,
    terminating: bool,
    /// (name, kind, temporality, value, attributes).
    points: Vec<(String, String, u32, f64, String)>,
}

fn read_pushes(file: &Path) -> Vec<Push> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut pushes: Vec<Push> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let field = |key: &str| {
            words
                .iter()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {line}"))
                .to_owned()
        };
        match words[0] {
            "push" => pushes.push(Push {
                instance: words[1].to_owned(),
                terminating: field("terminating=") == "true",
                points: Vec::new(),
            }),
            "metric" => pushes.last_mut().expect("metric after push").points.push((
                words[1].to_owned(),
                words[2].to_owned(),
                field("temporality=").parse().unwrap(),
                field("value=").parse().unwrap(),
                field("attrs="),
            )),
            _ => panic!("the plugin could not decode a payload: {line}"),
        }
    }
    pushes
}

/// The value of counter `name` (with `attrs`) over `pushes`: the last value when cumulative,
/// the sum of the deltas when delta.
fn counter(pushes: &[Push], name: &str, attrs: &str) -> Option<f64> {
    let points: Vec<_> = pushes
        .iter()
        .flat_map(|p| &p.points)
        .filter(|(n, _, _, _, a)| n == name && a == attrs)
        .collect();
    let last = points.last()?;
    assert_eq!(last.1, "sum", "{name} is a sum");
    Some(match last.2 {
        1 => points.iter().map(|p| p.3).sum(),
        2 => last.3,
        other => panic!("temporality {other} for {name}"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn producer_pushes_the_subscribed_metrics_and_terminates_on_close() {
    let plugin = tokio::task::spawn_blocking(compile_plugin).await.unwrap();
    let capture = plugin.join("capture.txt");
    let spec = ClusterSpec::single()
        .broker_classpath(&plugin)
        .broker_property("metric.reporters", "TelemetryCapture")
        .broker_property(
            "josefk.telemetry.capture.file",
            capture.to_str().expect("utf-8 temp path"),
        );
    let cluster = PrivateCluster::start(spec).await;
    let bootstrap = cluster.bootstrap_servers();

    let topic = common::unique_topic("telemetry");
    let admin = Admin::connect(common::config(&bootstrap).metrics_push(false))
        .await
        .unwrap();
    admin
        .create_topics(&[NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    let subscription = ConfigResource::ClientMetrics("josefk-producer-metrics".into());
    admin
        .alter_configs(
            &subscription,
            &[
                ConfigChange::Set("metrics".into(), PREFIXES.into()),
                ConfigChange::Set("interval.ms".into(), "1000".into()),
            ],
        )
        .await
        .unwrap();
    // The broker serves the subscription once it has applied it.
    let deadline = Instant::now() + WAIT;
    loop {
        let entries = admin.describe_configs(&subscription).await.unwrap();
        if entries.iter().any(|e| {
            e.name == "metrics"
                && e.value.as_deref().map(|v| v.replace(' ', "")) == Some(PREFIXES.to_owned())
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "subscription not applied");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let producer = Producer::connect(ProducerConfig::with_client(
        common::config(&bootstrap).client_id("telemetry-producer"),
    ))
    .await
    .unwrap();
    let sent = 50;
    let mut acks = Vec::new();
    for i in 0..sent {
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

    // Pushes come every second; wait for one that counts every record.
    let name = "org.apache.kafka.producer.record.send.total";
    let deadline = Instant::now() + WAIT;
    loop {
        let pushes = read_pushes(&capture);
        if counter(&pushes, name, "") == Some(sent as f64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no push counted {sent} records: {pushes:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    producer.close(Duration::from_secs(30)).await.unwrap();
    let pushes = read_pushes(&capture);
    let last = pushes.last().expect("pushes");
    assert!(
        last.terminating,
        "close ends with a terminating push: {pushes:?}"
    );
    assert_eq!(
        pushes.iter().filter(|p| p.terminating).count(),
        1,
        "one terminating push"
    );
    // Only what the subscription asks for (the producer has ~50 metrics; batch size, node
    // latency and the like are not asked for).
    let prefixes: Vec<&str> = PREFIXES.split(',').collect();
    for (name, ..) in pushes.iter().flat_map(|p| &p.points) {
        assert!(
            prefixes.iter().any(|p| name.starts_with(p)),
            "{name} was not subscribed"
        );
    }
    // Values match what was sent, overall and per topic (attributes in the KIP's snake case).
    assert_eq!(counter(&pushes, name, ""), Some(sent as f64));
    assert_eq!(
        counter(
            &pushes,
            "org.apache.kafka.producer.topic.record.send.total",
            &format!("topic={topic}")
        ),
        Some(sent as f64)
    );
    assert_eq!(
        counter(&pushes, "org.apache.kafka.producer.record.error.total", ""),
        Some(0.0)
    );
    // Nothing is pushed after the terminating push.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(read_pushes(&capture).len(), pushes.len());
    let producer_instance = last.instance.clone();

    // A consumer reads the records back: its own instance, its own counts.
    let mut consumer = Consumer::connect(
        ConsumerConfig::with_client(common::config(&bootstrap).client_id("telemetry-consumer"))
            .auto_offset_reset(AutoOffsetReset::Earliest),
    )
    .await
    .unwrap();
    consumer
        .assign(&[TopicPartition::new(&topic, 0)])
        .await
        .unwrap();
    let mut read = 0;
    let deadline = Instant::now() + WAIT;
    while read < sent {
        assert!(Instant::now() < deadline, "read {read} of {sent}");
        read += consumer
            .poll(Duration::from_millis(500))
            .await
            .unwrap()
            .len();
    }
    let consumed = "org.apache.kafka.consumer.fetch.manager.records.consumed.total";
    let of_consumer = |all: Vec<Push>| -> Vec<Push> {
        all.into_iter()
            .filter(|p| p.instance != producer_instance)
            .collect()
    };
    let deadline = Instant::now() + WAIT;
    loop {
        let pushes = of_consumer(read_pushes(&capture));
        if counter(&pushes, consumed, "") == Some(sent as f64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no consumer push counted {sent} records: {pushes:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    consumer.close().await.unwrap();
    let pushes = of_consumer(read_pushes(&capture));
    assert!(pushes.last().unwrap().terminating, "{pushes:?}");
    assert_eq!(pushes.iter().filter(|p| p.terminating).count(), 1);
    for p in &pushes {
        for (name, ..) in &p.points {
            assert_eq!(name, consumed, "only the consumer's subscribed metric");
        }
    }
    assert_eq!(counter(&pushes, consumed, ""), Some(sent as f64));
    cluster.shutdown().await;
}
