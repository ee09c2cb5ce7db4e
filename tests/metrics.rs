//! Live tests of the client metrics against a real Kafka: each value is checked against what the
//! test made happen (records acknowledged and refused, records produced and not yet read,
//! commits made, rebalances completed, transactional calls made).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::members::*;
use josefk::admin::{Admin, NewTopic};
use josefk::consumer::Assignor;
use josefk::consumer::{CommitMode, Consumer, ConsumerConfig, RebalanceListener};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{ProducerRecord, TopicPartition};
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_sent_are_the_records_acknowledged_plus_the_refused() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("metrics-send");
    let admin = Admin::connect(common::config(&bootstrap)).await.unwrap();
    let mut new = NewTopic::new(&topic, 3, 1);
    // Small enough that one record below can be refused by the broker (not by the client).
    new.configs
        .push(("max.message.bytes".into(), "4000".into()));
    admin.create_topics(&[new]).await.unwrap();

    let producer = Producer::connect(
        ProducerConfig::with_client(common::config(&bootstrap).client_id("metrics-producer"))
            .linger(Duration::from_millis(5))
            .batch_size(1500),
    )
    .await
    .unwrap();
    let sent = 600;
    let mut acks = Vec::new();
    for i in 0..sent {
        let record = ProducerRecord::new(&topic, vec![b'v'; 100]).key(format!("k{i}"));
        acks.push(producer.send(record).await.unwrap());
    }
    let mut acked = 0;
    for ack in acks {
        ack.await.unwrap();
        acked += 1;
    }
    // One record the broker refuses (MESSAGE_TOO_LARGE on a one-record batch: not retried).
    let big = ProducerRecord::new(&topic, vec![b'x'; 5000]).partition(0);
    let refused = producer.send(big).await.unwrap().await;
    assert!(
        refused.is_err(),
        "the broker refuses a record over max.message.bytes"
    );

    let m = producer.metrics();
    assert_eq!(m.client_id, "metrics-producer");
    assert_eq!(acked, sent);
    // Each record is sent once, and again for each retry (none expected on one healthy broker,
    // but a loaded machine may time a request out).
    let sends = acked + 1 + m.record_retry_total;
    assert_eq!(m.record_send_total, sends, "{m:#?}");
    assert_eq!(m.record_error_total, 1, "{m:#?}");
    let t = m.topics.iter().find(|t| t.topic == topic).expect("topic");
    assert_eq!((t.record_send_total, t.record_error_total), (sends, 1));
    // Every record was in some request and some batch.
    let per_request = m.records_per_request;
    assert!(per_request.count >= 1 && per_request.max >= 1.0);
    assert!(
        (per_request.avg * per_request.count as f64 - sends as f64).abs() < 0.5,
        "{per_request:?}"
    );
    assert!(
        m.batch_size.count >= 3,
        "three partitions: at least three batches"
    );
    assert!(
        m.byte_total >= acked * 100 && m.byte_total == t.byte_total,
        "{m:#?}"
    );
    assert_eq!(m.compression_rate.avg, 1.0, "no compression");
    assert!(
        m.batch_size.max >= 5000.0,
        "the refused record's batch was sent too"
    );
    assert_eq!(
        m.buffer_available_bytes, m.buffer_total_bytes,
        "nothing queued"
    );
    assert_eq!(m.transactions.commit.total, 0);
    // Connections: at least bootstrap + one produce connection; requests were answered.
    let net = &m.network;
    assert!(net.connection_count >= 2, "{net:#?}");
    assert!(net.connection_creation_total >= net.connection_count as u64);
    assert_eq!(net.requests_in_flight, 0, "everything was answered");
    let answered: u64 = net.nodes.iter().map(|n| n.request_latency.count).sum();
    let requests: u64 = net.nodes.iter().map(|n| n.request_total).sum();
    if m.record_retry_total == 0 {
        assert_eq!(
            answered, requests,
            "acks=all: every request sent got its answer"
        );
    } else {
        assert!(answered <= requests);
    }
    let produce_node = net
        .nodes
        .iter()
        .find(|n| n.node_id >= 0)
        .expect("a broker node");
    assert!(produce_node.request_latency.max >= produce_node.request_latency.avg);
    assert!(produce_node.outgoing_byte_total >= acked * 100);

    // The facade view carries the same values under the Java names and tags.
    let flat = m.to_metrics();
    let find = |group: &str, name: &str, tag: Option<(&str, &str)>| {
        flat.iter()
            .find(|x| {
                x.group == group
                    && x.name == name
                    && tag.is_none_or(|(k, v)| x.tags.iter().any(|(tk, tv)| *tk == k && tv == v))
            })
            .unwrap_or_else(|| panic!("{group}/{name} missing"))
            .value
    };
    assert_eq!(
        find("producer-metrics", "record-send-total", None),
        sends as f64
    );
    assert_eq!(
        find(
            "producer-topic-metrics",
            "record-error-total",
            Some(("topic", &topic))
        ),
        1.0
    );
    assert!(flat
        .iter()
        .all(|x| x.tags[0] == ("client-id", "metrics-producer".to_owned())));
    producer.close(Duration::from_secs(30)).await.unwrap();
    let after = producer.metrics().network;
    assert_eq!(after.connection_count, 0, "close closes every connection");
    assert_eq!(
        after.connection_close_total,
        after.connection_creation_total
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_disabled_keep_only_the_connection_counts() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("metrics-off");
    create_topic(&bootstrap, &topic, 1).await;
    let producer = Producer::connect(ProducerConfig::with_client(
        common::config(&bootstrap).metrics(false),
    ))
    .await
    .unwrap();
    for i in 0..20 {
        let record = ProducerRecord::new(&topic, format!("v{i}"));
        producer.send(record).await.unwrap().await.unwrap();
    }
    let m = producer.metrics();
    assert_eq!(m.record_send_total, 0, "{m:#?}");
    assert!(m.topics.is_empty() && m.batch_size.count == 0);
    assert!(m.network.nodes.is_empty(), "no per-request cells: {m:#?}");
    assert!(m.network.connection_creation_total >= 2);
    producer.close(Duration::from_secs(30)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lag_is_what_was_produced_and_not_yet_read() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("metrics-lag");
    create_topic(&bootstrap, &topic, 1).await;
    let tp = TopicPartition::new(&topic, 0);

    let mut c = Consumer::connect(
        ConsumerConfig::with_client(common::config(&bootstrap))
            .fetch_max_wait(Duration::from_millis(100))
            .max_poll_records(7),
    )
    .await
    .unwrap();
    c.assign(std::slice::from_ref(&tp)).await.unwrap();
    assert_eq!(c.metrics().assigned_partitions, 1);
    c.seek_to_end(std::slice::from_ref(&tp)).await.unwrap();
    // An empty poll learns the log end: nothing unread.
    c.poll(Duration::from_millis(500)).await.unwrap();
    let mut polls = 1;
    let lag_of = |c: &Consumer| {
        let m = c.metrics();
        let lag = m
            .partitions
            .iter()
            .find(|p| p.partition == tp)
            .map(|p| p.records_lag);
        (lag, m.records_lag_max)
    };
    assert_eq!(lag_of(&c), (Some(0), 0));

    let unread = 50;
    produce(&bootstrap, &topic, "lag", unread).await;
    let mut read = 0;
    let deadline = Instant::now() + WAIT;
    while read < unread {
        assert!(Instant::now() < deadline, "read {read} of {unread}");
        let got = c.poll(Duration::from_secs(1)).await.unwrap().len();
        polls += 1;
        if got == 0 {
            continue;
        }
        read += got;
        // What was produced and not yet handed out, after each poll.
        let left = (unread - read) as i64;
        assert_eq!(lag_of(&c), (Some(left), left), "after reading {read}");
    }
    let m = c.metrics();
    assert_eq!(m.records_consumed_total, unread as u64);
    assert!(m.fetch_total >= 2 && m.fetch_latency.count == m.fetch_total);
    assert!(m.bytes_consumed_total > 0 && m.fetch_size.max > 0.0);
    assert_eq!(m.commit_total, 0, "no group, no commits");
    assert_eq!(m.poll_idle_ratio.count, polls, "one ratio per poll");
    assert!(
        m.poll_idle_ratio.avg > 0.0 && m.poll_idle_ratio.max <= 1.0,
        "{m:#?}"
    );
    assert_eq!(m.time_between_poll.count, polls - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commits_counted_are_the_commits_made() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("metrics-commit");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 1).await;
    produce(&bootstrap, &topic, "c", 30).await;

    let mut c = subscribed(&bootstrap, &group, CommitMode::Manual, &topic).await;
    let records = poll_n(&mut c, 30).await;
    let tp = TopicPartition::new(&topic, 0);
    let commits = [10, 20, records.last().unwrap().offset + 1];
    for offset in commits {
        c.commit_offsets(&[(tp.clone(), offset)]).await.unwrap();
    }
    c.commit().await.unwrap();
    let m = c.metrics();
    assert_eq!(m.commit_total, commits.len() as u64 + 1, "{m:#?}");
    assert_eq!(m.commit_latency.count, m.commit_total);
    assert!(m.commit_latency.max > 0.0 && m.commit_latency.max >= m.commit_latency.avg);
    assert_eq!(m.failed_commit_total, 0);
    assert_eq!(m.records_consumed_total, 30);
    assert_eq!(m.rebalance_total, 1, "one join");
    c.close().await.unwrap();
}

/// Counts completed assignments (one per rebalance this member completes).
struct Assignments(Arc<AtomicUsize>);

impl RebalanceListener for Assignments {
    fn on_partitions_assigned(&mut self, _: &[TopicPartition]) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forced_rebalance_is_counted() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("metrics-rebalance");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 2).await;
    let config = || group_config(&bootstrap, &group, vec![Assignor::Range]);

    let assigned = Arc::new(AtomicUsize::new(0));
    let mut a = Consumer::connect(config()).await.unwrap();
    a.set_rebalance_listener(Assignments(assigned.clone()));
    a.subscribe(&[&topic]).unwrap();
    let deadline = Instant::now() + WAIT;
    while a.assignment().len() != 2 {
        assert!(
            Instant::now() < deadline,
            "first member never got both partitions"
        );
        a.poll(Duration::from_millis(200)).await.unwrap();
    }
    let m = a.metrics();
    assert_eq!(m.rebalance_total, 1);
    assert_eq!(m.assigned_partitions, 2);
    assert!(m.rebalance_latency.max > 0.0);

    // A second member joins: the first must rebalance and give up one partition.
    let mut b = Consumer::connect(config()).await.unwrap();
    b.subscribe(&[&topic]).unwrap();
    let second = tokio::spawn(async move {
        let deadline = Instant::now() + WAIT;
        while b.assignment().len() != 1 {
            assert!(
                Instant::now() < deadline,
                "second member never got a partition"
            );
            b.poll(Duration::from_millis(200)).await.unwrap();
        }
        b
    });
    let deadline = Instant::now() + WAIT;
    while a.assignment().len() != 1 {
        assert!(Instant::now() < deadline, "first member never rebalanced");
        a.poll(Duration::from_millis(200)).await.unwrap();
    }
    let b = second.await.unwrap();
    let m = a.metrics();
    assert!(m.rebalance_total >= 2, "{m:#?}");
    assert_eq!(
        m.rebalance_total,
        assigned.load(Ordering::SeqCst) as u64,
        "one count per completed rebalance"
    );
    assert_eq!(m.rebalance_latency.count, m.rebalance_total);
    assert_eq!(m.assigned_partitions, 1);
    assert_eq!(m.failed_rebalance_total, 0);
    assert_eq!(b.metrics().rebalance_total, 1);
    b.close().await.unwrap();
    a.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transactional_calls_are_counted_and_timed() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("metrics-txn");
    create_topic(&bootstrap, &topic, 1).await;
    let producer = Producer::connect(
        ProducerConfig::with_client(common::config(&bootstrap))
            .transactional_id(format!("{topic}-tx")),
    )
    .await
    .unwrap();
    producer.init_transactions().await.unwrap();
    for commit in [true, false, true] {
        producer.begin_transaction().unwrap();
        let mut acks = Vec::new();
        for i in 0..10 {
            let record = ProducerRecord::new(&topic, format!("v{i}"));
            acks.push(producer.send(record).await.unwrap());
        }
        if commit {
            producer.commit_transaction().await.unwrap();
        } else {
            for ack in acks.drain(..) {
                ack.await.unwrap();
            }
            producer.abort_transaction().await.unwrap();
        }
    }
    let t = producer.metrics().transactions;
    assert_eq!(
        (t.init.total, t.begin.total, t.commit.total, t.abort.total),
        (1, 3, 2, 1),
        "{t:#?}"
    );
    assert_eq!(t.send_offsets.total, 0);
    assert!(t.init.time_ns_total > 0 && t.commit.time_ns_total > 0 && t.abort.time_ns_total > 0);
    // A transactional Produce may be answered CONCURRENT_TRANSACTIONS right after a commit and
    // resent: every send counts (as in Java), so sent = written + resent.
    let m = producer.metrics();
    assert_eq!(m.record_send_total, 30 + m.record_retry_total, "{m:#?}");
    assert_eq!(m.record_error_total, 0);
    producer.close(Duration::from_secs(30)).await.unwrap();
}

/// Kills the example process however the test ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_prometheus_example_serves_what_its_producer_sent() {
    use std::io::BufRead;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let bootstrap = common::bootstrap();
    let binary = common::example_binary("prometheus_metrics");
    let records = 1234;
    let child = std::process::Command::new(binary)
        .args(["--records", &records.to_string()])
        .env("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the prometheus_metrics example");
    let mut child = Killed(child);
    let stdout = child.0.stdout.take().expect("piped stdout");
    // The example prints its topic, then its address once every record is acknowledged.
    let lines = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.expect("example output");
            let done = line.starts_with("listening on ");
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    });
    let lines = tokio::time::timeout(Duration::from_secs(300), lines)
        .await
        .expect("the example never started listening")
        .unwrap();
    let topic = lines
        .iter()
        .find_map(|l| l.strip_prefix("topic "))
        .unwrap_or_else(|| panic!("no topic line in {lines:?}"))
        .to_owned();
    assert!(
        lines.contains(&format!("acknowledged {records} records")),
        "{lines:?}"
    );
    let url = lines
        .last()
        .unwrap()
        .strip_prefix("listening on http://")
        .unwrap();
    let addr = url.strip_suffix("/metrics").unwrap();

    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, socket.read_to_string(&mut response))
        .await
        .expect("the example answers")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    let value = |series: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{series} missing from:\n{body}"))
            .parse()
            .unwrap()
    };
    let id = "client_id=\"prometheus-example\"";
    // Sends count resends too (none expected, but a loaded machine may time a request out).
    let retried = value(&format!(
        "kafka_producer_metrics_record_retry_total{{{id}}}"
    ));
    assert_eq!(
        value(&format!("kafka_producer_metrics_record_send_total{{{id}}}")),
        records as f64 + retried
    );
    assert_eq!(
        value(&format!(
            "kafka_producer_topic_metrics_record_send_total{{{id},topic=\"{topic}\"}}"
        )),
        records as f64 + retried
    );
    assert_eq!(
        value(&format!(
            "kafka_producer_metrics_record_error_total{{{id}}}"
        )),
        0.0
    );
    assert!(body.contains("# TYPE kafka_producer_metrics_record_send_total counter"));
    assert!(body.contains("# TYPE kafka_producer_node_metrics_request_latency_avg gauge"));
    let latency = body
        .lines()
        .find(|l| {
            l.starts_with("kafka_producer_node_metrics_request_latency_avg{")
                && !l.contains("node_id=\"node--1\"")
        })
        .unwrap_or_else(|| panic!("no broker latency in:\n{body}"));
    let ms: f64 = latency.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(ms > 0.0, "{latency}");
    // The admin client the example used exports too, under its own group.
    assert!(
        value(&format!(
            "kafka_admin_client_metrics_connection_creation_total{{{id}}}"
        )) >= 1.0
    );
    // Request latency as a histogram too (a summary here): per broker, at least the answers
    // the producer counted (the admin client's, same client id, add to it), with a positive sum.
    assert!(body.contains("# TYPE kafka_request_latency summary"));
    let node = latency
        .split("node_id=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    let labels = format!("{{{id},node_id=\"{node}\"}}");
    let answered = value(&format!(
        "kafka_producer_node_metrics_request_total{labels}"
    ));
    assert!(answered >= 1.0);
    assert!(value(&format!("kafka_request_latency_count{labels}")) >= answered);
    assert!(value(&format!("kafka_request_latency_sum{labels}")) > 0.0);
}

/// A span's name and its fields as text.
type LoggedSpan = (String, BTreeMap<String, String>);

/// Records every span's name and fields (as recorded at creation and later).
#[derive(Clone, Default)]
struct SpanLog(Arc<std::sync::Mutex<Vec<LoggedSpan>>>);

/// Field values as text.
struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S> tracing_subscriber::Layer<S> for SpanLog
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut log = self.0.lock().unwrap();
        log.push((attrs.metadata().name().to_owned(), fields));
        let index = log.len() - 1;
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(index);
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let Some(index) = span.extensions().get::<usize>().copied() else {
            return;
        };
        let mut log = self.0.lock().unwrap();
        values.record(&mut Fields(&mut log[index].1));
    }
}

// One thread: the connection tasks run where the test's subscriber is the default.
#[tokio::test(flavor = "current_thread")]
async fn every_broker_request_has_a_span_with_api_node_and_correlation_id() {
    use tracing_subscriber::layer::SubscriberExt;
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("metrics-spans");
    let log = SpanLog::default();
    let subscriber = tracing_subscriber::registry()
        .with(log.clone())
        .with(tracing_subscriber::filter::Targets::new().with_default(tracing::Level::DEBUG));
    let _guard = tracing::subscriber::set_default(subscriber);
    create_topic(&bootstrap, &topic, 1).await;
    let producer = Producer::connect(ProducerConfig::with_client(common::config(&bootstrap)))
        .await
        .unwrap();
    producer
        .send(ProducerRecord::new(&topic, "v"))
        .await
        .unwrap()
        .await
        .unwrap();
    producer.close(Duration::from_secs(30)).await.unwrap();

    let log = log.0.lock().unwrap();
    let requests: Vec<&BTreeMap<String, String>> = log
        .iter()
        .filter(|(name, _)| name == "kafka.request")
        .map(|(_, fields)| fields)
        .collect();
    let of = |api: &str| {
        requests
            .iter()
            .filter(|f| f.get("api").map(String::as_str) == Some(api))
            .collect::<Vec<_>>()
    };
    for api in ["CreateTopics", "Metadata", "InitProducerId", "Produce"] {
        let spans = of(api);
        assert!(!spans.is_empty(), "no {api} span in {requests:#?}");
        for f in spans {
            assert_eq!(f.get("messaging.system").map(String::as_str), Some("kafka"));
            let id: i32 = f["correlation_id"]
                .parse()
                .expect("correlation id recorded");
            assert!(id > 0, "{f:?}");
            assert!(f.contains_key("version") && f.contains_key("node"), "{f:?}");
            assert!(!f.contains_key("error"), "{f:?}");
        }
    }
    let produce = of("Produce")[0];
    assert_ne!(produce["node"], "-1", "produce goes to a broker by id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kip848_reconciliation_is_counted_as_a_rebalance() {
    use josefk::consumer::GroupProtocol;
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("metrics-kip848");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 3).await;
    let assigned = Arc::new(AtomicUsize::new(0));
    let mut c = Consumer::connect(
        ConsumerConfig::with_client(common::config(&bootstrap))
            .group_id(&group)
            .group_protocol(GroupProtocol::Consumer)
            .commit_mode(CommitMode::Manual),
    )
    .await
    .unwrap();
    c.set_rebalance_listener(Assignments(assigned.clone()));
    c.subscribe(&[&topic]).unwrap();
    let deadline = Instant::now() + WAIT;
    while c.assignment().len() != 3 {
        assert!(Instant::now() < deadline, "never got the three partitions");
        c.poll(Duration::from_millis(200)).await.unwrap();
    }
    let m = c.metrics();
    assert!(m.rebalance_total >= 1, "{m:#?}");
    assert_eq!(m.rebalance_total, assigned.load(Ordering::SeqCst) as u64);
    assert_eq!(m.assigned_partitions, 3);
    c.close().await.unwrap();
}
