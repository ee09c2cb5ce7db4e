//! Serves a producer's metrics as Prometheus text over HTTP: a small `metrics` recorder keeps the
//! values josefk publishes through the `metrics` facade, and a tokio HTTP responder renders them
//! at `/metrics` (`kafka_producer_metrics_record_send_total{client_id="…"} 1000`…).
//!
//! Any recorder works the same way (`metrics-exporter-prometheus`, StatsD, OpenTelemetry
//! bridges); this one is written out to show the facade names and tags josefk uses, with no
//! extra dependency.
//!
//! Run with `cargo run --example prometheus_metrics -- [--records N] [--listen ADDR]` (default
//! 1000 records, `127.0.0.1:0`: a free port, printed). It uses the broker named by
//! `KAFKA_BOOTSTRAP_SERVERS` if set; otherwise it starts a local one (Java 17 and Maven needed).
//! It produces the records, waits for their acknowledgements, prints `listening on
//! http://ADDR/metrics`, and serves until killed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use josefk::admin::{Admin, NewTopic};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{ClientConfig, ProducerRecord};
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut records = 1000usize;
    let mut listen = "127.0.0.1:0".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--records" => records = args.next().ok_or("--records N")?.parse()?,
            "--listen" => listen = args.next().ok_or("--listen ADDR")?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let values = Values::default();
    metrics::set_global_recorder(TextRecorder(values.clone()))
        .map_err(|_| "a metrics recorder is already installed")?;
    let (bootstrap, _local_broker) = josefk_harness::bootstrap_or_local_broker()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(&bootstrap, records, &listen, values))
}

async fn run(
    bootstrap: &str,
    records: usize,
    listen: &str,
    values: Values,
) -> Result<(), Box<dyn std::error::Error>> {
    let client = ClientConfig::new(bootstrap).client_id("prometheus-example");
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let topic = format!("prometheus-example-{stamp}");
    let admin = Admin::connect(client.clone()).await?;
    admin.create_topics(&[NewTopic::new(&topic, 3, 1)]).await?;

    let producer = Producer::connect(ProducerConfig::with_client(client)).await?;
    let mut acks = Vec::with_capacity(records);
    for i in 0..records {
        let record = ProducerRecord::new(&topic, format!("value-{i}")).key(format!("key-{i}"));
        acks.push(producer.send(record).await?);
    }
    for ack in acks {
        ack.await?;
    }
    // The producer publishes once a second by itself; publish now so the first scrape is current.
    producer.metrics().publish();
    println!("topic {topic}");
    println!("acknowledged {records} records");

    let listener = TcpListener::bind(listen).await?;
    println!("listening on http://{}/metrics", listener.local_addr()?);
    loop {
        let (mut socket, _) = listener.accept().await?;
        let values = values.clone();
        tokio::spawn(async move {
            // Read the request head (bounded); only its first line matters.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                    _ => return,
                }
            }
            let first = head.split(|b| *b == b'\r').next().unwrap_or_default();
            let (status, body) = if first.starts_with(b"GET /metrics ") {
                ("200 OK", values.render())
            } else {
                ("404 Not Found", "try /metrics\n".to_owned())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}

/// Counter or gauge, as registered.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Counter,
    Gauge,
}

/// A registered value: a counter's `u64`, or a gauge's `f64` bits.
type Cell = (Kind, Arc<AtomicU64>);

/// A histogram kept as a Prometheus summary without quantiles: how many values, their sum.
#[derive(Default)]
struct Summary(Mutex<(u64, f64)>);

impl HistogramFn for Summary {
    fn record(&self, value: f64) {
        let mut s = self.0.lock().unwrap();
        s.0 += 1;
        s.1 += value;
    }
}

/// Every registered value, by name and labels.
#[derive(Clone, Default)]
struct Values(
    Arc<Mutex<BTreeMap<Key, Cell>>>,
    Arc<Mutex<BTreeMap<Key, Arc<Summary>>>>,
);

impl Values {
    fn cell(&self, key: &Key, kind: Kind) -> Arc<AtomicU64> {
        let mut all = self.0.lock().unwrap();
        all.entry(key.clone())
            .or_insert_with(|| (kind, Arc::new(AtomicU64::new(0))))
            .1
            .clone()
    }

    fn summary(&self, key: &Key) -> Arc<Summary> {
        self.1
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default()
            .clone()
    }

    /// The Prometheus text format: names and label keys with `.` and `-` turned into `_`.
    fn render(&self) -> String {
        let all = self.0.lock().unwrap();
        let mut out = String::new();
        let mut typed = std::collections::HashSet::new();
        for (key, (kind, value)) in all.iter() {
            let name = sanitize(key.name());
            if typed.insert(name.clone()) {
                let kind = match kind {
                    Kind::Counter => "counter",
                    Kind::Gauge => "gauge",
                };
                let _ = writeln!(out, "# TYPE {name} {kind}");
            }
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}=\"{}\"", sanitize(l.key()), escape(l.value())))
                .collect();
            let raw = value.load(Ordering::Acquire);
            let value = match kind {
                Kind::Counter => raw.to_string(),
                Kind::Gauge => f64::from_bits(raw).to_string(),
            };
            let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
        }
        // Histograms (josefk's `kafka.request.latency`, ms) as summaries: `_count` and `_sum`.
        let summaries = self.1.lock().unwrap();
        for (key, summary) in summaries.iter() {
            let name = sanitize(key.name());
            if typed.insert(name.clone()) {
                let _ = writeln!(out, "# TYPE {name} summary");
            }
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}=\"{}\"", sanitize(l.key()), escape(l.value())))
                .collect();
            let (count, sum) = *summary.0.lock().unwrap();
            let _ = writeln!(out, "{name}_count{{{}}} {count}", labels.join(","));
            let _ = writeln!(out, "{name}_sum{{{}}} {sum}", labels.join(","));
        }
        out
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A `metrics` recorder keeping the last value of every counter and gauge, and the count and sum
/// of every histogram.
struct TextRecorder(Values);

impl Recorder for TextRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.0.cell(key, Kind::Counter))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.0.cell(key, Kind::Gauge))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.0.summary(key))
    }
}
