//! Client metrics: counters, gauges and latency statistics kept on the hot paths with relaxed
//! atomics (no lock or allocation per record), read two ways:
//!
//! - a typed snapshot: [`Producer::metrics`](crate::producer::Producer::metrics),
//!   [`Consumer::metrics`](crate::consumer::Consumer::metrics),
//!   [`Admin::metrics`](crate::admin::Admin::metrics);
//! - the [`metrics`](https://docs.rs/metrics) facade: every client publishes its values once a
//!   second to whatever recorder the application installed (Prometheus, StatsD, OpenTelemetry…),
//!   and [`ProducerMetrics::publish`] (etc.) does it on demand. The once-a-second export adds
//!   each counter's growth since its last export, so clients sharing a `client.id` add up and a
//!   client created again under an id counts on from the series' value; `publish` sets absolute
//!   values (a recorder keeps the largest), for one client per id. Gauges are set as they are;
//!   a gauge the client stops reporting (a revoked partition's `records-lag`, all of them once
//!   the client is closed and dropped) is set to 0 once, since a recorder cannot forget a series.
//!
//! Names and tags are the Java client's (`record-send-total`, `request-latency-avg`,
//! `records-lag-max`…, tags `client-id`, `node-id`, `topic`, `partition`); the table in
//! ARCHITECTURE.md ("Metrics") lists each with its facade name. Averages and maxima are kept since
//! the client started (Java's are over 30-second windows); `*-rate` values are per second over the
//! last 30 s. A facade exporter derives windows from the `*-total` counters.
//!
//! ```no_run
//! # async fn demo() -> josefk::Result<()> {
//! use josefk::producer::{Producer, ProducerConfig};
//! use josefk::ProducerRecord;
//!
//! let producer = Producer::connect(ProducerConfig::new("127.0.0.1:9092")).await?;
//! producer.send(ProducerRecord::new("events", "hello")).await?.await?;
//! let m = producer.metrics();
//! println!("sent {} records, request latency avg {:.1} ms", m.record_send_total,
//!          m.network.nodes.iter().map(|n| n.request_latency.avg).fold(0.0, f64::max));
//! # Ok(()) }
//! ```

mod export;
pub(crate) mod otlp;
pub(crate) mod registry;

pub(crate) use export::spawn_exporter;
pub use export::{Metric, MetricKind};

use crate::record::TopicPartition;

/// The live metric cells of one client, shared by its connections, its cluster view and its role.
/// Opaque: read it through a role's `metrics()` snapshot. A default value belongs to no client
/// (for connections set up by hand). Not part of the public API: public (hidden) only under the
/// `unstable-internals` feature, because the internal connection options carry it.
#[cfg(feature = "unstable-internals")]
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct ClientMetrics(pub(crate) std::sync::Arc<registry::Registry>);

/// The live metric cells of one client (see the `unstable-internals` definition).
#[cfg(not(feature = "unstable-internals"))]
#[derive(Debug, Clone)]
pub(crate) struct ClientMetrics(pub(crate) std::sync::Arc<registry::Registry>);

impl ClientMetrics {
    pub(crate) fn new(client_id: &str, enabled: bool) -> ClientMetrics {
        ClientMetrics(registry::Registry::new(client_id, enabled))
    }
}

impl Default for ClientMetrics {
    fn default() -> Self {
        ClientMetrics::new("", true)
    }
}

/// Count, average and maximum of a recorded value (Java's `-avg` and `-max` pairs), since the
/// client started. Latencies are in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct Stat {
    /// How many values were recorded.
    pub count: u64,
    /// Their mean (0 when none).
    pub avg: f64,
    /// The largest (0 when none).
    pub max: f64,
}

/// Connection values of one client (Java `<role>-metrics` and `<role>-node-metrics`).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct NetworkMetrics {
    /// `connection-count`: connections open now.
    pub connection_count: i64,
    /// `connection-creation-total`: connections set up (TCP, TLS, ApiVersions, SASL all passed).
    pub connection_creation_total: u64,
    /// `connection-close-total`: connections ended (closed, broken or timed out).
    pub connection_close_total: u64,
    /// `failed-authentication-total`: SASL logins the broker refused.
    pub failed_authentication_total: u64,
    /// `successful-authentication-total`: SASL logins accepted (0 without SASL).
    pub successful_authentication_total: u64,
    /// `successful-reauthentication-total`: SASL sessions renewed on open connections (KIP-368).
    pub successful_reauthentication_total: u64,
    /// `reconnect-total` (josefk): connections that replaced a dead one to the same broker.
    pub reconnect_total: u64,
    /// `requests-in-flight`: requests written or queued for writing that await their answer,
    /// over every broker.
    pub requests_in_flight: i64,
    /// Per broker (`node-id`; `-1` for bootstrap connections).
    pub nodes: Vec<NodeMetrics>,
}

/// One broker's requests (Java `<role>-node-metrics`, tag `node-id`).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct NodeMetrics {
    /// The broker's node id; `-1` for bootstrap connections (node not known yet).
    pub node_id: i32,
    /// `request-total`: requests sent.
    pub request_total: u64,
    /// `request-latency-avg`/`-max` (ms): from the connection taking a request to its answer;
    /// `count` is the number of answers.
    pub request_latency: Stat,
    /// `requests-in-flight` (josefk, per node): requests awaiting their answer now.
    pub requests_in_flight: i64,
    /// `outgoing-byte-total`: request bytes written.
    pub outgoing_byte_total: u64,
    /// `incoming-byte-total`: response bytes read.
    pub incoming_byte_total: u64,
}

/// A producer's values (Java `producer-metrics`, `producer-topic-metrics`).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ProducerMetrics {
    /// `client-id`.
    pub client_id: String,
    /// `record-send-total`: records sent in produce requests (a retried record counts per send).
    pub record_send_total: u64,
    /// `record-send-rate`: records sent per second.
    pub record_send_rate: f64,
    /// `byte-total` (over topics): batch bytes sent, as encoded (compressed).
    pub byte_total: u64,
    /// `byte-rate`: batch bytes sent per second.
    pub byte_rate: f64,
    /// `record-error-total`: records that failed (refused, expired, given up).
    pub record_error_total: u64,
    /// `record-retry-total`: records put back for another send.
    pub record_retry_total: u64,
    /// `batch-size-avg`/`-max`: encoded bytes per batch sent.
    pub batch_size: Stat,
    /// `compression-rate-avg`: encoded / uncompressed size per batch (1.0 without compression).
    pub compression_rate: Stat,
    /// `records-per-request-avg`/`-max`.
    pub records_per_request: Stat,
    /// `produce-throttle-time-avg`/`-max` (ms), as brokers reported.
    pub produce_throttle_time: Stat,
    /// `buffer-total-bytes`: `buffer.memory`.
    pub buffer_total_bytes: u64,
    /// `buffer-available-bytes`: `buffer.memory` not held by queued records.
    pub buffer_available_bytes: u64,
    /// `bufferpool-wait-time-ns-total`: time `send` spent waiting for buffer memory.
    pub bufferpool_wait_time_ns_total: u64,
    /// Per topic (`producer-topic-metrics`).
    pub topics: Vec<TopicMetrics>,
    /// Transactional calls (all zero without `transactional.id`).
    pub transactions: TransactionMetrics,
    /// Connections.
    pub network: NetworkMetrics,
}

/// One topic's producer values (Java `producer-topic-metrics`, tag `topic`).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TopicMetrics {
    /// The topic.
    pub topic: String,
    /// `record-send-total`.
    pub record_send_total: u64,
    /// `byte-total`.
    pub byte_total: u64,
    /// `record-error-total`.
    pub record_error_total: u64,
    /// `record-retry-total`.
    pub record_retry_total: u64,
}

/// Completed transactional calls and the time they took (Java `txn-*-time-ns-total`; the counts
/// are josefk's).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TransactionMetrics {
    /// `init_transactions`.
    pub init: TxnCalls,
    /// `begin_transaction`.
    pub begin: TxnCalls,
    /// `send_offsets_to_transaction`.
    pub send_offsets: TxnCalls,
    /// `commit_transaction`.
    pub commit: TxnCalls,
    /// `abort_transaction`.
    pub abort: TxnCalls,
}

/// Successful calls of one transactional kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TxnCalls {
    /// `txn-<call>-total`: calls that succeeded.
    pub total: u64,
    /// `txn-<call>-time-ns-total`: nanoseconds they took, in all.
    pub time_ns_total: u64,
}

/// A consumer's values (Java `consumer-fetch-manager-metrics`, `consumer-coordinator-metrics`).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ConsumerMetrics {
    /// `client-id`.
    pub client_id: String,
    /// `records-consumed-total`: records returned by `poll`.
    pub records_consumed_total: u64,
    /// `records-consumed-rate`: per second.
    pub records_consumed_rate: f64,
    /// `bytes-consumed-total`: record bytes fetched.
    pub bytes_consumed_total: u64,
    /// `bytes-consumed-rate`: per second.
    pub bytes_consumed_rate: f64,
    /// `fetch-total`: fetches answered.
    pub fetch_total: u64,
    /// `fetch-rate`: per second.
    pub fetch_rate: f64,
    /// `fetch-latency-avg`/`-max` (ms).
    pub fetch_latency: Stat,
    /// `fetch-size-avg`/`-max`: record bytes per fetch answer.
    pub fetch_size: Stat,
    /// `fetch-throttle-time-avg`/`-max` (ms), as brokers reported.
    pub fetch_throttle_time: Stat,
    /// `records-lag-max`: the largest lag over assigned partitions (0 when none is known).
    pub records_lag_max: i64,
    /// `records-lag` per assigned partition whose log end is known.
    pub partitions: Vec<PartitionLag>,
    /// `commit-total`: commits that succeeded.
    pub commit_total: u64,
    /// `commit-latency-avg`/`-max` (ms) of successful commits.
    pub commit_latency: Stat,
    /// `failed-commit-total` (josefk).
    pub failed_commit_total: u64,
    /// `rebalance-total`: rebalances this member completed.
    pub rebalance_total: u64,
    /// `rebalance-latency-avg`/`-max` (ms): from starting to join to having the assignment.
    pub rebalance_latency: Stat,
    /// `failed-rebalance-total`.
    pub failed_rebalance_total: u64,
    /// `assigned-partitions`.
    pub assigned_partitions: i64,
    /// `poll-idle-ratio-avg`: per `poll`, its time over that plus the time since the previous
    /// `poll` started (Java's formula); near 1 when the application waits on the consumer, near 0
    /// when the consumer waits on the application. Not counted for [`Consumer::stream`].
    ///
    /// [`Consumer::stream`]: crate::consumer::Consumer::stream
    pub poll_idle_ratio: Stat,
    /// `time-between-poll-avg`/`-max` (ms): between the starts of consecutive polls.
    pub time_between_poll: Stat,
    /// Connections.
    pub network: NetworkMetrics,
}

/// One partition's lag (Java `records-lag`, tags `topic`, `partition`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionLag {
    /// The partition.
    pub partition: TopicPartition,
    /// Log end offset (last stable offset under read_committed) minus the position, as of the
    /// last fetch answer or `poll`.
    pub records_lag: i64,
}

/// An admin client's values (Java `admin-client-metrics`).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AdminMetrics {
    /// `client-id`.
    pub client_id: String,
    /// Connections.
    pub network: NetworkMetrics,
}

impl NetworkMetrics {
    pub(crate) fn read(registry: &registry::Registry) -> NetworkMetrics {
        use std::sync::atomic::Ordering::Relaxed;
        let net = &registry.net;
        let nodes: Vec<NodeMetrics> = net
            .nodes()
            .into_iter()
            .map(|(node_id, n)| NodeMetrics {
                node_id,
                request_total: n.requests_sent.load(Relaxed),
                request_latency: n.request_latency.read(registry::NS_TO_MS),
                requests_in_flight: n.requests_in_flight.load(Relaxed),
                outgoing_byte_total: n.outgoing_bytes.load(Relaxed),
                incoming_byte_total: n.incoming_bytes.load(Relaxed),
            })
            .collect();
        NetworkMetrics {
            connection_count: net.connection_count.load(Relaxed),
            connection_creation_total: net.connection_creation_total.load(Relaxed),
            connection_close_total: net.connection_close_total.load(Relaxed),
            failed_authentication_total: net.failed_authentication_total.load(Relaxed),
            successful_authentication_total: net.successful_authentication_total.load(Relaxed),
            successful_reauthentication_total: net.successful_reauthentication_total.load(Relaxed),
            reconnect_total: net.reconnect_total.load(Relaxed),
            requests_in_flight: nodes.iter().map(|n| n.requests_in_flight).sum(),
            nodes,
        }
    }
}

impl ProducerMetrics {
    /// Everything but the buffer values, which the producer adds from its accumulator.
    pub(crate) fn read(registry: &registry::Registry) -> ProducerMetrics {
        use std::sync::atomic::Ordering::Relaxed;
        let p = &registry.producer;
        let topics: Vec<TopicMetrics> = p
            .all_topics()
            .into_iter()
            .map(|(topic, c)| TopicMetrics {
                topic,
                record_send_total: c.record_send_total.load(Relaxed),
                byte_total: c.byte_total.load(Relaxed),
                record_error_total: c.record_error_total.load(Relaxed),
                record_retry_total: c.record_retry_total.load(Relaxed),
            })
            .collect();
        let sum = |f: fn(&TopicMetrics) -> u64| topics.iter().map(f).sum::<u64>();
        let record_send_total = sum(|t| t.record_send_total);
        let byte_total = sum(|t| t.byte_total);
        let rates = registry.rates("producer", vec![record_send_total, byte_total]);
        let calls = |t: &registry::TimeTotal| TxnCalls {
            total: t.count.load(Relaxed),
            time_ns_total: t.ns.load(Relaxed),
        };
        ProducerMetrics {
            client_id: registry.client_id.clone(),
            record_send_total,
            record_send_rate: rates[0],
            byte_total,
            byte_rate: rates[1],
            record_error_total: sum(|t| t.record_error_total),
            record_retry_total: sum(|t| t.record_retry_total),
            batch_size: p.batch_size.read(1.0),
            compression_rate: p.compression_rate.read(1e-6),
            records_per_request: p.records_per_request.read(1.0),
            produce_throttle_time: p.produce_throttle_time.read(1.0),
            buffer_total_bytes: 0,
            buffer_available_bytes: 0,
            bufferpool_wait_time_ns_total: p.bufferpool_wait_ns.load(Relaxed),
            transactions: TransactionMetrics {
                init: calls(&p.txn_init),
                begin: calls(&p.txn_begin),
                send_offsets: calls(&p.txn_send_offsets),
                commit: calls(&p.txn_commit),
                abort: calls(&p.txn_abort),
            },
            topics,
            network: NetworkMetrics::read(registry),
        }
    }
}

impl ConsumerMetrics {
    pub(crate) fn read(registry: &registry::Registry) -> ConsumerMetrics {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &registry.consumer;
        let partitions: Vec<PartitionLag> = c
            .lags()
            .into_iter()
            .map(|(partition, records_lag)| PartitionLag {
                partition,
                records_lag,
            })
            .collect();
        let records_consumed_total = c.records_consumed_total.load(Relaxed);
        let bytes_consumed_total = c.bytes_consumed_total.load(Relaxed);
        let fetch_total = c.fetch_latency.count();
        let rates = registry.rates(
            "consumer",
            vec![records_consumed_total, bytes_consumed_total, fetch_total],
        );
        ConsumerMetrics {
            client_id: registry.client_id.clone(),
            records_consumed_total,
            records_consumed_rate: rates[0],
            bytes_consumed_total,
            bytes_consumed_rate: rates[1],
            fetch_total,
            fetch_rate: rates[2],
            fetch_latency: c.fetch_latency.read(registry::NS_TO_MS),
            fetch_size: c.fetch_size.read(1.0),
            fetch_throttle_time: c.fetch_throttle_time.read(1.0),
            records_lag_max: partitions.iter().map(|p| p.records_lag).max().unwrap_or(0),
            partitions,
            commit_total: c.commit_latency.count(),
            commit_latency: c.commit_latency.read(registry::NS_TO_MS),
            failed_commit_total: c.failed_commit_total.load(Relaxed),
            rebalance_total: c.rebalance_latency.count(),
            rebalance_latency: c.rebalance_latency.read(registry::NS_TO_MS),
            failed_rebalance_total: c.failed_rebalance_total.load(Relaxed),
            assigned_partitions: c.assigned_partitions.load(Relaxed),
            poll_idle_ratio: c.poll_idle_ratio.read(1e-6),
            time_between_poll: c.time_between_poll.read(registry::NS_TO_MS),
            network: NetworkMetrics::read(registry),
        }
    }
}

impl AdminMetrics {
    pub(crate) fn read(registry: &registry::Registry) -> AdminMetrics {
        AdminMetrics {
            client_id: registry.client_id.clone(),
            network: NetworkMetrics::read(registry),
        }
    }
}
