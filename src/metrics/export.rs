//! Snapshots as flat, named values ([`Metric`]) and their publication through the `metrics`
//! facade: `kafka.<group>.<name>` with the Java client's group, name and tags.

use std::time::Duration;

use super::{
    AdminMetrics, ConsumerMetrics, NetworkMetrics, ProducerMetrics, Stat, TransactionMetrics,
};

/// How a value behaves, for exporters that distinguish them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricKind {
    /// Only grows (`*-total`); published with `Counter::absolute`.
    Counter,
    /// Goes up and down (averages, maxima, rates, current values); published with `Gauge::set`.
    Gauge,
}

/// One value with the Java client's group (JMX `type`), name and tags.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Metric {
    /// The Java metric group, e.g. `producer-metrics`, `consumer-fetch-manager-metrics`.
    pub group: &'static str,
    /// The Java metric name, e.g. `record-send-total`.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// The value.
    pub value: f64,
    /// Tags in the Java client's order: `client-id` first, then `node-id`, `topic`,
    /// `partition` as they apply.
    pub tags: Vec<(&'static str, String)>,
}

impl Metric {
    /// The name published through the `metrics` facade: `kafka.<group>.<name>`, e.g.
    /// `kafka.producer-metrics.record-send-total` (a Prometheus exporter writes
    /// `kafka_producer_metrics_record_send_total`).
    pub fn facade_name(&self) -> String {
        format!("kafka.{}.{}", self.group, self.name)
    }
}

/// Collects metrics of one group with shared tags.
struct Out<'a> {
    all: &'a mut Vec<Metric>,
    group: &'static str,
    tags: Vec<(&'static str, String)>,
}

impl Out<'_> {
    fn push(&mut self, name: &'static str, kind: MetricKind, value: f64) {
        self.all.push(Metric {
            group: self.group,
            name,
            kind,
            value,
            tags: self.tags.clone(),
        });
    }
    fn counter(&mut self, name: &'static str, value: u64) {
        self.push(name, MetricKind::Counter, value as f64);
    }
    fn gauge(&mut self, name: &'static str, value: f64) {
        self.push(name, MetricKind::Gauge, value);
    }
    fn stat(&mut self, avg: &'static str, max: Option<&'static str>, stat: Stat) {
        self.gauge(avg, stat.avg);
        if let Some(max) = max {
            self.gauge(max, stat.max);
        }
    }
}

fn group<'a>(
    all: &'a mut Vec<Metric>,
    group: &'static str,
    client_id: &str,
    more: &[(&'static str, String)],
) -> Out<'a> {
    let mut tags = vec![("client-id", client_id.to_owned())];
    tags.extend_from_slice(more);
    Out { all, group, tags }
}

fn network(all: &mut Vec<Metric>, role: &'static str, client_id: &str, net: &NetworkMetrics) {
    let (client_group, node_group) = match role {
        "producer" => ("producer-metrics", "producer-node-metrics"),
        "consumer" => ("consumer-metrics", "consumer-node-metrics"),
        _ => ("admin-client-metrics", "admin-client-node-metrics"),
    };
    let mut m = group(all, client_group, client_id, &[]);
    m.gauge("connection-count", net.connection_count as f64);
    m.counter("connection-creation-total", net.connection_creation_total);
    m.counter("connection-close-total", net.connection_close_total);
    m.counter(
        "failed-authentication-total",
        net.failed_authentication_total,
    );
    m.counter(
        "successful-authentication-total",
        net.successful_authentication_total,
    );
    m.counter(
        "successful-reauthentication-total",
        net.successful_reauthentication_total,
    );
    m.counter("reconnect-total", net.reconnect_total);
    m.gauge("requests-in-flight", net.requests_in_flight as f64);
    let total = |f: fn(&super::NodeMetrics) -> u64| net.nodes.iter().map(f).sum::<u64>();
    m.counter("request-total", total(|n| n.request_total));
    m.counter("outgoing-byte-total", total(|n| n.outgoing_byte_total));
    m.counter("incoming-byte-total", total(|n| n.incoming_byte_total));
    for node in &net.nodes {
        let tag = [("node-id", format!("node-{}", node.node_id))];
        let mut m = group(all, node_group, client_id, &tag);
        m.counter("request-total", node.request_total);
        m.stat(
            "request-latency-avg",
            Some("request-latency-max"),
            node.request_latency,
        );
        m.gauge("requests-in-flight", node.requests_in_flight as f64);
        m.counter("outgoing-byte-total", node.outgoing_byte_total);
        m.counter("incoming-byte-total", node.incoming_byte_total);
    }
}

fn transactions(m: &mut Out<'_>, t: &TransactionMetrics) {
    let calls = [
        ("txn-init-total", "txn-init-time-ns-total", t.init),
        ("txn-begin-total", "txn-begin-time-ns-total", t.begin),
        (
            "txn-send-offsets-total",
            "txn-send-offsets-time-ns-total",
            t.send_offsets,
        ),
        ("txn-commit-total", "txn-commit-time-ns-total", t.commit),
        ("txn-abort-total", "txn-abort-time-ns-total", t.abort),
    ];
    for (count, time, calls) in calls {
        m.counter(count, calls.total);
        m.counter(time, calls.time_ns_total);
    }
}

impl ProducerMetrics {
    /// This snapshot as flat metrics with the Java client's names and tags.
    pub fn to_metrics(&self) -> Vec<Metric> {
        let mut all = Vec::new();
        let mut m = group(&mut all, "producer-metrics", &self.client_id, &[]);
        m.counter("record-send-total", self.record_send_total);
        m.gauge("record-send-rate", self.record_send_rate);
        m.counter("byte-total", self.byte_total);
        m.gauge("byte-rate", self.byte_rate);
        m.counter("record-error-total", self.record_error_total);
        m.counter("record-retry-total", self.record_retry_total);
        m.stat("batch-size-avg", Some("batch-size-max"), self.batch_size);
        m.stat("compression-rate-avg", None, self.compression_rate);
        m.stat(
            "records-per-request-avg",
            Some("records-per-request-max"),
            self.records_per_request,
        );
        m.stat(
            "produce-throttle-time-avg",
            Some("produce-throttle-time-max"),
            self.produce_throttle_time,
        );
        m.gauge("buffer-total-bytes", self.buffer_total_bytes as f64);
        m.gauge("buffer-available-bytes", self.buffer_available_bytes as f64);
        m.counter(
            "bufferpool-wait-time-ns-total",
            self.bufferpool_wait_time_ns_total,
        );
        transactions(&mut m, &self.transactions);
        for t in &self.topics {
            let tag = [("topic", t.topic.clone())];
            let mut m = group(&mut all, "producer-topic-metrics", &self.client_id, &tag);
            m.counter("record-send-total", t.record_send_total);
            m.counter("byte-total", t.byte_total);
            m.counter("record-error-total", t.record_error_total);
            m.counter("record-retry-total", t.record_retry_total);
        }
        network(&mut all, "producer", &self.client_id, &self.network);
        all
    }

    /// Publishes [`Self::to_metrics`] through the `metrics` facade now (the producer also does
    /// this once a second by itself).
    pub fn publish(&self) {
        publish(&self.to_metrics());
    }
}

impl ConsumerMetrics {
    /// This snapshot as flat metrics with the Java client's names and tags.
    pub fn to_metrics(&self) -> Vec<Metric> {
        let mut all = Vec::new();
        let id = &self.client_id;
        let mut m = group(&mut all, "consumer-fetch-manager-metrics", id, &[]);
        m.counter("records-consumed-total", self.records_consumed_total);
        m.gauge("records-consumed-rate", self.records_consumed_rate);
        m.counter("bytes-consumed-total", self.bytes_consumed_total);
        m.gauge("bytes-consumed-rate", self.bytes_consumed_rate);
        m.counter("fetch-total", self.fetch_total);
        m.gauge("fetch-rate", self.fetch_rate);
        m.stat(
            "fetch-latency-avg",
            Some("fetch-latency-max"),
            self.fetch_latency,
        );
        m.stat("fetch-size-avg", Some("fetch-size-max"), self.fetch_size);
        m.stat(
            "fetch-throttle-time-avg",
            Some("fetch-throttle-time-max"),
            self.fetch_throttle_time,
        );
        m.gauge("records-lag-max", self.records_lag_max as f64);
        for p in &self.partitions {
            let tags = [
                ("topic", p.partition.topic.clone()),
                ("partition", p.partition.partition.to_string()),
            ];
            let mut m = group(&mut all, "consumer-fetch-manager-metrics", id, &tags);
            m.gauge("records-lag", p.records_lag as f64);
        }
        let mut m = group(&mut all, "consumer-metrics", id, &[]);
        m.stat("poll-idle-ratio-avg", None, self.poll_idle_ratio);
        m.stat(
            "time-between-poll-avg",
            Some("time-between-poll-max"),
            self.time_between_poll,
        );
        let mut m = group(&mut all, "consumer-coordinator-metrics", id, &[]);
        m.counter("commit-total", self.commit_total);
        m.stat(
            "commit-latency-avg",
            Some("commit-latency-max"),
            self.commit_latency,
        );
        m.counter("failed-commit-total", self.failed_commit_total);
        m.counter("rebalance-total", self.rebalance_total);
        m.stat(
            "rebalance-latency-avg",
            Some("rebalance-latency-max"),
            self.rebalance_latency,
        );
        m.counter("failed-rebalance-total", self.failed_rebalance_total);
        m.gauge("assigned-partitions", self.assigned_partitions as f64);
        network(&mut all, "consumer", id, &self.network);
        all
    }

    /// Publishes [`Self::to_metrics`] through the `metrics` facade now (the consumer also does
    /// this once a second by itself).
    pub fn publish(&self) {
        publish(&self.to_metrics());
    }
}

impl AdminMetrics {
    /// This snapshot as flat metrics with the Java client's names and tags.
    pub fn to_metrics(&self) -> Vec<Metric> {
        let mut all = Vec::new();
        network(&mut all, "admin", &self.client_id, &self.network);
        all
    }

    /// Publishes [`Self::to_metrics`] through the `metrics` facade now (the admin client also
    /// does this once a second by itself).
    pub fn publish(&self) {
        publish(&self.to_metrics());
    }
}

/// Writes `metrics` to the installed `metrics` recorder (a no-op without one), counters as
/// absolute values (see [`Exported`] for the exporter's own way).
fn publish(metrics: &[Metric]) {
    for m in metrics {
        let labels = labels(m);
        match m.kind {
            MetricKind::Counter => {
                ::metrics::counter!(m.facade_name(), labels).absolute(m.value as u64)
            }
            MetricKind::Gauge => ::metrics::gauge!(m.facade_name(), labels).set(m.value),
        }
    }
}

fn labels(m: &Metric) -> Vec<::metrics::Label> {
    m.tags
        .iter()
        .map(|(k, v)| ::metrics::Label::new(*k, v.clone()))
        .collect()
}

/// What one client's exporter has published: its counters go out as increments since the last
/// publish. A recorder keeps one series per name and labels, and `absolute` keeps the largest
/// value it was given, so two clients with the same `client.id` hid each other's counts, and a
/// client created again under an id stayed frozen at its predecessor's total until it passed it.
/// As increments, clients sharing a series add up and a new client's counts add on.
///
/// Gauges a client stops reporting (a revoked partition's `records-lag`, everything once the
/// client is closed) are set to 0 once: a recorder cannot forget a series, and would otherwise
/// show the last value for ever (Java removes such metrics).
#[derive(Default)]
struct Exported {
    counters: std::collections::HashMap<Series, u64>,
    gauges: std::collections::HashSet<Series>,
}

/// A facade series: its name and tags.
type Series = (String, Vec<(&'static str, String)>);

impl Exported {
    fn publish(&mut self, metrics: Vec<Metric>) {
        let mut gauges = std::collections::HashSet::new();
        for m in metrics {
            let labels = labels(&m);
            match m.kind {
                MetricKind::Counter => {
                    let name = m.facade_name();
                    let value = m.value as u64;
                    let last = self.counters.entry((name.clone(), m.tags)).or_insert(0);
                    // Totals only grow; a smaller one (a reset) counts from zero.
                    let delta = value.checked_sub(*last).unwrap_or(value);
                    *last = value;
                    if delta > 0 {
                        ::metrics::counter!(name, labels).increment(delta);
                    }
                }
                MetricKind::Gauge => {
                    let name = m.facade_name();
                    ::metrics::gauge!(name.clone(), labels).set(m.value);
                    gauges.insert((name, m.tags));
                }
            }
        }
        let gone = std::mem::replace(&mut self.gauges, gauges);
        Self::zero(gone.into_iter().filter(|g| !self.gauges.contains(g)));
    }

    /// The client is gone: its gauges read 0 from now on.
    fn close(&mut self) {
        Self::zero(std::mem::take(&mut self.gauges).into_iter());
    }

    fn zero(series: impl Iterator<Item = Series>) {
        for (name, tags) in series {
            let labels: Vec<::metrics::Label> = tags
                .into_iter()
                .map(|(k, v)| ::metrics::Label::new(k, v))
                .collect();
            ::metrics::gauge!(name, labels).set(0.0);
        }
    }
}

/// How often each client publishes to the facade.
const EXPORT_EVERY: Duration = Duration::from_secs(1);

/// Publishes `snapshot()` every [`EXPORT_EVERY`] until it returns `None` (the client is gone);
/// nothing when `enabled` (`metrics.enabled`) is false.
pub(crate) fn spawn_exporter(
    enabled: bool,
    snapshot: impl Fn() -> Option<Vec<Metric>> + Send + 'static,
) {
    if !enabled {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EXPORT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut exported = Exported::default();
        loop {
            tick.tick().await;
            match snapshot() {
                Some(metrics) => exported.publish(metrics),
                None => {
                    exported.close();
                    break;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    /// A recorder keeping counters as `metrics-util`'s and the Prometheus exporter's do: one
    /// `AtomicU64` per series (`increment` adds, `absolute` keeps the larger).
    #[derive(Default)]
    struct Counters(Mutex<std::collections::HashMap<String, Arc<AtomicU64>>>);

    /// Gauges by name and label values, as `f64` bits (the `metrics` crate's `AtomicU64` gauge).
    fn gauge_key(key: &Key) -> String {
        let values: Vec<&str> = key.labels().map(|l| l.value()).collect();
        format!("{}{values:?}", key.name())
    }

    impl Recorder for Counters {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let mut all = self.0.lock().unwrap();
            Counter::from_arc(all.entry(key.name().to_owned()).or_default().clone())
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            let mut all = self.0.lock().unwrap();
            Gauge::from_arc(all.entry(gauge_key(key)).or_default().clone())
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    fn sent(total: u64) -> Vec<Metric> {
        vec![Metric {
            group: "producer-metrics",
            name: "record-send-total",
            kind: MetricKind::Counter,
            value: total as f64,
            tags: vec![("client-id", "josefk".into())],
        }]
    }

    #[test]
    fn clients_sharing_a_client_id_add_up_and_a_new_one_counts_on() {
        let recorder = Counters::default();
        let read = |r: &Counters| {
            r.0.lock().unwrap()["kafka.producer-metrics.record-send-total"].load(Ordering::SeqCst)
        };
        ::metrics::with_local_recorder(&recorder, || {
            let (mut a, mut b) = (Exported::default(), Exported::default());
            a.publish(sent(50));
            b.publish(sent(5));
            assert_eq!(read(&recorder), 55, "both clients counted");
            a.publish(sent(60));
            a.publish(sent(60));
            assert_eq!(read(&recorder), 65);
            // Both gone, a new client under the same id sends 20.
            let mut c = Exported::default();
            c.publish(sent(20));
            assert_eq!(read(&recorder), 85, "not frozen at the old total");
        });
    }

    fn lag(partition: i32, value: f64) -> Metric {
        Metric {
            group: "consumer-fetch-manager-metrics",
            name: "records-lag",
            kind: MetricKind::Gauge,
            value,
            tags: vec![
                ("client-id", "c".into()),
                ("topic", "t".into()),
                ("partition", partition.to_string()),
            ],
        }
    }

    #[test]
    fn gauges_no_longer_reported_read_zero() {
        let recorder = Counters::default();
        let read = |r: &Counters, p: i32| {
            let key =
                format!("kafka.consumer-fetch-manager-metrics.records-lag[\"c\", \"t\", \"{p}\"]");
            f64::from_bits(r.0.lock().unwrap()[&key].load(Ordering::SeqCst))
        };
        ::metrics::with_local_recorder(&recorder, || {
            let mut e = Exported::default();
            e.publish(vec![lag(0, 7.0), lag(1, 9.0)]);
            assert_eq!((read(&recorder, 0), read(&recorder, 1)), (7.0, 9.0));
            // Partition 1 revoked: its lag is no longer reported.
            e.publish(vec![lag(0, 5.0)]);
            assert_eq!((read(&recorder, 0), read(&recorder, 1)), (5.0, 0.0));
            // The client is gone.
            e.close();
            assert_eq!(read(&recorder, 0), 0.0);
        });
    }
}
