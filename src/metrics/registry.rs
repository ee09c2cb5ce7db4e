//! The live cells every hook writes: relaxed atomics, grouped per client, node, topic and
//! partition. Hot paths touch only atomics they already hold (a connection task its node's cells,
//! the producer's sink the topic cells of a request's batches, looked up once per request); locks
//! are taken per request, per fetch or per poll, never per record.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::record::TopicPartition;

/// Count, sum and maximum of recorded values (Java's `Avg` and `Max` stats, kept since the client
/// started rather than over sample windows: a `metrics` exporter derives windows from totals).
#[derive(Debug, Default)]
pub(crate) struct StatCell {
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl StatCell {
    pub(crate) fn record(&self, value: u64) {
        self.count.fetch_add(1, Relaxed);
        self.sum.fetch_add(value, Relaxed);
        self.max.fetch_max(value, Relaxed);
    }

    /// `scale` turns the stored unit into the reported one (nanoseconds → milliseconds, say).
    pub(crate) fn read(&self, scale: f64) -> super::Stat {
        let count = self.count.load(Relaxed);
        let sum = self.sum.load(Relaxed) as f64 * scale;
        super::Stat {
            count,
            avg: if count == 0 { 0.0 } else { sum / count as f64 },
            max: self.max.load(Relaxed) as f64 * scale,
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }
}

/// Nanoseconds as a `u64` (saturating: a duration past 584 years is not a concern).
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Milliseconds per nanosecond, the scale of every latency `Stat`.
pub(crate) const NS_TO_MS: f64 = 1e-6;

/// One client's cells. Shared by its connections (through `ConnectionOptions`), its cluster view
/// and its role.
#[derive(Debug)]
pub(crate) struct Registry {
    pub(crate) client_id: String,
    /// `metrics.enabled`: off, the per-request hooks return at once and nothing is exported.
    pub(crate) enabled: bool,
    started: Instant,
    pub(crate) net: NetCells,
    pub(crate) producer: ProducerCells,
    pub(crate) consumer: ConsumerCells,
    /// Per role, recent (time, totals) samples for the `*-rate` values.
    rates: Mutex<HashMap<&'static str, Samples>>,
}

/// Counter totals as sampled, oldest first.
type Samples = VecDeque<(Instant, Vec<u64>)>;

/// How far back the `*-rate` values look (Java: `metrics.sample.window.ms` × `metrics.num.samples`
/// = 30 s × 2; josefk keeps samples for the last 30 s).
const RATE_WINDOW: Duration = Duration::from_secs(30);
/// Samples closer together than this replace each other, so frequent snapshots cost nothing.
const RATE_SAMPLE_EVERY: Duration = Duration::from_secs(1);

impl Registry {
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    pub(crate) fn new(client_id: &str, enabled: bool) -> Arc<Registry> {
        Arc::new(Registry {
            client_id: client_id.to_owned(),
            enabled,
            started: Instant::now(),
            net: NetCells::default(),
            producer: ProducerCells::default(),
            consumer: ConsumerCells::default(),
            rates: Mutex::new(HashMap::new()),
        })
    }

    /// Per-second rates of `totals` (counters that only grow) over the last [`RATE_WINDOW`],
    /// or since the client started when it is younger.
    pub(crate) fn rates(&self, role: &'static str, totals: Vec<u64>) -> Vec<f64> {
        self.rates_at(Instant::now(), role, totals)
    }

    /// [`Registry::rates`] at `now`.
    fn rates_at(&self, now: Instant, role: &'static str, totals: Vec<u64>) -> Vec<f64> {
        let mut all = self.rates.lock().expect("rates lock poisoned");
        let samples = all.entry(role).or_default();
        while samples.len() > 1 && now.duration_since(samples[1].0) >= RATE_WINDOW {
            samples.pop_front();
        }
        // The oldest sample kept is the newest one at least a window old (or younger, early
        // on): the rate covers about the last window, never the client's whole life.
        let (since, base) = match samples.front() {
            Some((at, base)) => (*at, base.clone()),
            None => (self.started, vec![0; totals.len()]),
        };
        let secs = now.duration_since(since).as_secs_f64();
        let rates = totals
            .iter()
            .zip(base.iter().chain(std::iter::repeat(&0)))
            .map(|(now, then)| match secs > 0.0 {
                true => now.saturating_sub(*then) as f64 / secs,
                false => 0.0,
            })
            .collect();
        let fresh = samples
            .back()
            .is_none_or(|(at, _)| now.duration_since(*at) >= RATE_SAMPLE_EVERY);
        if fresh {
            samples.push_back((now, totals));
        }
        rates
    }
}

/// Connections of one client (Java `<role>-metrics` connection values and
/// `<role>-node-metrics`).
#[derive(Debug, Default)]
pub(crate) struct NetCells {
    pub(crate) connection_count: AtomicI64,
    pub(crate) connection_creation_total: AtomicU64,
    pub(crate) connection_close_total: AtomicU64,
    pub(crate) failed_authentication_total: AtomicU64,
    pub(crate) successful_authentication_total: AtomicU64,
    pub(crate) successful_reauthentication_total: AtomicU64,
    pub(crate) reconnect_total: AtomicU64,
    nodes: Mutex<BTreeMap<i32, Arc<NodeCells>>>,
}

impl NetCells {
    /// The cells of `node_id` (`-1` for bootstrap connections, whose node is not known yet).
    pub(crate) fn node(&self, node_id: i32) -> Arc<NodeCells> {
        self.nodes
            .lock()
            .expect("node metrics lock poisoned")
            .entry(node_id)
            .or_default()
            .clone()
    }

    pub(crate) fn nodes(&self) -> Vec<(i32, Arc<NodeCells>)> {
        let nodes = self.nodes.lock().expect("node metrics lock poisoned");
        nodes.iter().map(|(id, n)| (*id, n.clone())).collect()
    }
}

/// One broker's requests, over every connection (lane) to it.
#[derive(Debug, Default)]
pub(crate) struct NodeCells {
    /// Request latency in nanoseconds, from the connection taking the request to its answer;
    /// its count is `request-total` for requests that get an answer.
    pub(crate) request_latency: StatCell,
    pub(crate) requests_sent: AtomicU64,
    pub(crate) requests_in_flight: AtomicI64,
    pub(crate) outgoing_bytes: AtomicU64,
    pub(crate) incoming_bytes: AtomicU64,
}

/// The producer's values (Java `producer-metrics`, `producer-topic-metrics`).
#[derive(Debug, Default)]
pub(crate) struct ProducerCells {
    topics: Mutex<HashMap<String, Arc<TopicCells>>>,
    /// Encoded (compressed) bytes per batch sent.
    pub(crate) batch_size: StatCell,
    /// Compressed / uncompressed size per batch, in parts per million.
    pub(crate) compression_rate: StatCell,
    pub(crate) records_per_request: StatCell,
    /// Milliseconds, as brokers report throttling.
    pub(crate) produce_throttle_time: StatCell,
    pub(crate) bufferpool_wait_ns: AtomicU64,
    pub(crate) txn_init: TimeTotal,
    pub(crate) txn_begin: TimeTotal,
    pub(crate) txn_send_offsets: TimeTotal,
    pub(crate) txn_commit: TimeTotal,
    pub(crate) txn_abort: TimeTotal,
}

impl ProducerCells {
    /// The cells of each named topic, under one lock (callers look up a request's topics at
    /// once).
    pub(crate) fn topics<'a>(&self, names: impl Iterator<Item = &'a str>) -> Vec<Arc<TopicCells>> {
        let mut topics = self.topics.lock().expect("topic metrics lock poisoned");
        names
            .map(|name| match topics.get(name) {
                Some(cells) => cells.clone(),
                None => topics.entry(name.to_owned()).or_default().clone(),
            })
            .collect()
    }

    pub(crate) fn all_topics(&self) -> Vec<(String, Arc<TopicCells>)> {
        let topics = self.topics.lock().expect("topic metrics lock poisoned");
        let mut all: Vec<_> = topics.iter().map(|(t, c)| (t.clone(), c.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// One topic's producer counters.
#[derive(Debug, Default)]
pub(crate) struct TopicCells {
    pub(crate) record_send_total: AtomicU64,
    pub(crate) byte_total: AtomicU64,
    pub(crate) record_error_total: AtomicU64,
    pub(crate) record_retry_total: AtomicU64,
}

/// Completed calls of one kind and the time they took.
#[derive(Debug, Default)]
pub(crate) struct TimeTotal {
    pub(crate) count: AtomicU64,
    pub(crate) ns: AtomicU64,
}

impl TimeTotal {
    pub(crate) fn record(&self, since: tokio::time::Instant) {
        self.count.fetch_add(1, Relaxed);
        self.ns.fetch_add(nanos(since.elapsed()), Relaxed);
    }
}

/// The consumer's values (Java `consumer-fetch-manager-metrics`, `consumer-coordinator-metrics`).
#[derive(Debug, Default)]
pub(crate) struct ConsumerCells {
    /// Nanoseconds per fetch that got an answer; its count is `fetch-total`.
    pub(crate) fetch_latency: StatCell,
    /// Record bytes per fetch answer.
    pub(crate) fetch_size: StatCell,
    /// Milliseconds, as brokers report throttling.
    pub(crate) fetch_throttle_time: StatCell,
    pub(crate) records_consumed_total: AtomicU64,
    pub(crate) bytes_consumed_total: AtomicU64,
    /// Nanoseconds per successful commit; its count is `commit-total`.
    pub(crate) commit_latency: StatCell,
    pub(crate) failed_commit_total: AtomicU64,
    /// Nanoseconds per completed rebalance; its count is `rebalance-total`.
    pub(crate) rebalance_latency: StatCell,
    pub(crate) failed_rebalance_total: AtomicU64,
    pub(crate) assigned_partitions: AtomicI64,
    /// Time in `poll` / (that + time since the previous poll started), per poll, in parts per
    /// million (Java `poll-idle-ratio`).
    pub(crate) poll_idle_ratio: StatCell,
    /// Nanoseconds between the starts of consecutive polls.
    pub(crate) time_between_poll: StatCell,
    /// When the last poll started: nanoseconds since the registry was made, plus one (0: none).
    last_poll_start: AtomicU64,
    /// Per assigned partition: its lag as last seen (log end, or last stable offset under
    /// read_committed, minus the position).
    lags: Mutex<BTreeMap<TopicPartition, i64>>,
}

impl ConsumerCells {
    /// A poll starts at `now` (`since` = when the client started); returns the time since the
    /// previous poll started (zero for the first), as Java's `recordPollStart`.
    pub(crate) fn poll_started(&self, since: Instant, now: Instant) -> Duration {
        let at = nanos(now.duration_since(since)).saturating_add(1);
        let last = self.last_poll_start.swap(at, Relaxed);
        if last == 0 {
            return Duration::ZERO;
        }
        let between = Duration::from_nanos(at.saturating_sub(last));
        self.time_between_poll.record(nanos(between));
        between
    }

    /// A poll that started `in_poll` ago ends; `between` is what [`Self::poll_started`] returned.
    pub(crate) fn poll_ended(&self, in_poll: Duration, between: Duration) {
        let whole = in_poll + between;
        let ratio_ppm = match whole.is_zero() {
            true => 1_000_000,
            false => (in_poll.as_secs_f64() / whole.as_secs_f64() * 1e6) as u64,
        };
        self.poll_idle_ratio.record(ratio_ppm.min(1_000_000));
    }

    pub(crate) fn set_lag(&self, tp: &TopicPartition, lag: i64) {
        let mut lags = self.lags.lock().expect("lag metrics lock poisoned");
        match lags.get_mut(tp) {
            Some(l) => *l = lag,
            None => {
                lags.insert(tp.clone(), lag);
            }
        }
    }

    /// The assignment changed: forget the lag of partitions no longer assigned.
    pub(crate) fn set_assignment<'a>(&self, assigned: impl Iterator<Item = &'a TopicPartition>) {
        let assigned: std::collections::BTreeSet<&TopicPartition> = assigned.collect();
        self.assigned_partitions
            .store(assigned.len() as i64, Relaxed);
        let mut lags = self.lags.lock().expect("lag metrics lock poisoned");
        lags.retain(|tp, _| assigned.contains(tp));
    }

    pub(crate) fn lags(&self) -> Vec<(TopicPartition, i64)> {
        let lags = self.lags.lock().expect("lag metrics lock poisoned");
        lags.iter().map(|(tp, l)| (tp.clone(), *l)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_keeps_count_mean_and_max_in_the_reported_unit() {
        let s = StatCell::default();
        assert_eq!(s.read(1.0), crate::metrics::Stat::default());
        for v in [2_000_000, 4_000_000, 9_000_000] {
            s.record(v);
        }
        let read = s.read(NS_TO_MS);
        assert_eq!(read.count, 3);
        assert!((read.avg - 5.0).abs() < 1e-9, "{read:?}");
        assert!((read.max - 9.0).abs() < 1e-9, "{read:?}");
    }

    #[test]
    fn lag_is_kept_only_for_assigned_partitions() {
        let c = ConsumerCells::default();
        let (a, b) = (TopicPartition::new("t", 0), TopicPartition::new("t", 1));
        c.set_lag(&a, 5);
        c.set_lag(&b, 7);
        c.set_lag(&a, 3);
        assert_eq!(c.lags(), vec![(a.clone(), 3), (b.clone(), 7)]);
        c.set_assignment([&b].into_iter());
        assert_eq!(c.lags(), vec![(b, 7)]);
        assert_eq!(c.assigned_partitions.load(Relaxed), 1);
    }

    #[test]
    fn poll_idle_ratio_is_time_in_poll_over_time_since_the_last_poll_started() {
        let c = ConsumerCells::default();
        let t0 = Instant::now();
        assert_eq!(c.poll_started(t0, t0), Duration::ZERO, "first poll");
        c.poll_ended(Duration::from_millis(10), Duration::ZERO);
        let between = c.poll_started(t0, t0 + Duration::from_millis(40));
        assert_eq!(between, Duration::from_millis(40));
        // 10 ms in poll after 40 ms since the previous poll started: 10 / 50.
        c.poll_ended(Duration::from_millis(10), between);
        let ratio = c.poll_idle_ratio.read(1e-6);
        assert_eq!(ratio.count, 2);
        assert!((ratio.avg - 0.6).abs() < 1e-6, "(1.0 + 0.2) / 2: {ratio:?}");
        let between = c.time_between_poll.read(NS_TO_MS);
        assert_eq!((between.count, between.max), (1, 40.0));
    }

    #[test]
    fn topic_cells_are_shared_per_name() {
        let p = ProducerCells::default();
        let first = p.topics(["a", "b", "a"].into_iter());
        assert!(Arc::ptr_eq(&first[0], &first[2]));
        first[0].record_send_total.fetch_add(2, Relaxed);
        let all = p.all_topics();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].1.record_send_total.load(Relaxed), 2);
    }

    #[test]
    fn rates_are_per_second_since_the_oldest_sample() {
        let r = Registry::new("c", true);
        // No sample yet: since the client started, so a positive rate for a positive total.
        let first = r.rates("producer", vec![100]);
        assert!(first[0] > 0.0);
        // Within the same second the first sample is the base: nothing grew, nothing counted.
        let again = r.rates("producer", vec![100]);
        assert_eq!(again, vec![0.0]);
        // Roles have separate windows.
        assert!(r.rates("consumer", vec![5])[0] > 0.0);
    }

    #[test]
    fn a_rate_covers_the_last_window_not_the_client_s_life() {
        let r = Registry::new("c", true);
        let start = r.started;
        // 300 records a second for 3 s, then none: sampled every 1.1 s (an exporter's second
        // and a little) for 44 s.
        let mut rate = Vec::new();
        for i in 1..=40u64 {
            let at = Duration::from_millis(1100 * i);
            let total = (300 * at.as_millis() as u64 / 1000).min(900);
            rate = r.rates_at(start + at, "producer", vec![total]);
            if i == 2 {
                assert!((rate[0] - 300.0).abs() < 1.0, "{rate:?}");
            }
        }
        assert_eq!(rate, vec![0.0], "nothing was sent in the last 30 s");
    }
}
