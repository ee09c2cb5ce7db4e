//! `josefk perf produce|consume`: throughput, and for producing the latency from `send` to
//! acknowledgement of every record (percentiles from a log-linear histogram: bounded memory,
//! ≤ 1.6% relative error). Progress on stderr; the result on stdout as one line of `key=value`
//! pairs, for scripts.

use std::time::Duration;

use bytes::Bytes;
use josefk::consumer::Consumer;
use josefk::producer::{DeliveryFuture, Producer};
use josefk::{ProducerRecord, TopicPartition};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::args::{PerfConsumeArgs, PerfProduceArgs};
use crate::exit::{self, CliError, CliResult};
use crate::output::outln;
use crate::progress::{records, Progress};
use crate::props::Properties;
use crate::stop::Stop;

/// Acknowledgements awaited at once, at most.
const MAX_OUTSTANDING: usize = 100_000;

/// Latencies in microseconds: exact below 128 µs, then 64 buckets per power of two.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum_us: u128,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; 128 + 57 * 64],
            total: 0,
            sum_us: 0,
            max_us: 0,
        }
    }
}

impl Histogram {
    fn index(us: u64) -> usize {
        if us < 128 {
            return us as usize;
        }
        let exp = 63 - us.leading_zeros() as usize; // ≥ 7
        let sub = ((us >> (exp - 6)) - 64) as usize;
        128 + (exp - 7) * 64 + sub
    }

    fn lower_bound(index: usize) -> u64 {
        if index < 128 {
            return index as u64;
        }
        let exp = (index - 128) / 64 + 7;
        let sub = ((index - 128) % 64) as u64;
        (64 + sub) << (exp - 6)
    }

    /// Adds one latency.
    pub fn record(&mut self, latency: Duration) {
        let us = latency.as_micros().min(u64::MAX as u128) as u64;
        self.counts[Self::index(us)] += 1;
        self.total += 1;
        self.sum_us += us as u128;
        self.max_us = self.max_us.max(us);
    }

    /// The latency at quantile `q` (0..=1), in ms.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::lower_bound(i).min(self.max_us) as f64 / 1000.0;
            }
        }
        self.max_us as f64 / 1000.0
    }

    /// The mean, in ms.
    pub fn mean_ms(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        self.sum_us as f64 / self.total as f64 / 1000.0
    }
}

/// Runs `perf produce`.
pub async fn produce(
    args: PerfProduceArgs,
    mut props: Properties,
    quiet: bool,
    stop: Stop,
) -> CliResult {
    if let Some(acks) = &args.acks {
        props.set("acks", acks);
    }
    if let Some(codec) = &args.compression {
        props.set("compression.type", codec);
    }
    if args.throughput == Some(0) {
        return Err(CliError::usage("--throughput must be at least 1"));
    }
    let config = props.producer()?;
    crate::produce::check_topic(&config.client, &args.topic, None).await?;
    let producer = Producer::connect(config).await?;
    // Printable bytes that compress about as well as typical text payloads.
    let value = Bytes::from(
        (0..args.record_size)
            .map(|i| b'a' + ((i * 7 + i / 13) % 26) as u8)
            .collect::<Vec<u8>>(),
    );
    // One collector awaits the deliveries in send order (as the benchmarks' workers do): a
    // spawned task per record cost as much CPU as producing it. The bounded channel is the
    // window of acknowledgements awaited at once.
    let (pending, mut deliveries) = mpsc::channel::<(Instant, DeliveryFuture)>(MAX_OUTSTANDING);
    let collector = tokio::spawn(async move {
        let mut histogram = Histogram::default();
        let mut failed = (0u64, None::<String>);
        while let Some((sent_at, delivery)) = deliveries.recv().await {
            match delivery.await {
                Ok(_) => histogram.record(sent_at.elapsed()),
                Err(e) => {
                    failed.0 += 1;
                    failed.1.get_or_insert_with(|| e.to_string());
                }
            }
        }
        (histogram, failed)
    });
    stop.set_up_done();
    let mut progress = Progress::new("perf produce", quiet);
    let started = Instant::now();
    let mut send_error = None;
    for sent in 0..args.num_records {
        // A stop ends sending; what was sent is awaited and reported.
        if stop.requested().is_some() {
            break;
        }
        if let Some(rate) = args.throughput {
            let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = stop.wait() => break,
            }
        }
        let sent_at = Instant::now();
        let delivery = match producer
            .send(ProducerRecord::new(&args.topic, value.clone()))
            .await
        {
            Ok(d) => d,
            Err(e) => {
                send_error = Some(e);
                break;
            }
        };
        if pending.send((sent_at, delivery)).await.is_err() {
            break; // The collector only stops when this side closes the channel.
        }
        progress.tick(sent + 1, (sent + 1) * args.record_size as u64);
    }
    // Every acknowledgement is in once the collector has drained the closed channel.
    drop(pending);
    let (h, (failures, first_failure)) = collector
        .await
        .map_err(|e| CliError::runtime(format!("the acknowledgement collector failed: {e}")))?;
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    producer.close(Duration::from_secs(30)).await?;
    let acked = h.total;
    outln!(
        "records_acked={acked} records_failed={failures} elapsed_s={elapsed:.3} \
         records_per_s={:.0} mb_per_s={:.3} latency_ms_avg={:.3} latency_ms_p50={:.3} \
         latency_ms_p95={:.3} latency_ms_p99={:.3} latency_ms_p999={:.3} latency_ms_max={:.3}",
        acked as f64 / elapsed,
        (acked * args.record_size as u64) as f64 / elapsed / 1e6,
        h.mean_ms(),
        h.quantile_ms(0.5),
        h.quantile_ms(0.95),
        h.quantile_ms(0.99),
        h.quantile_ms(0.999),
        h.max_us as f64 / 1000.0
    )?;
    if let Some(e) = send_error {
        return Err(e.into());
    }
    if let Some(e) = first_failure {
        return Err(CliError::runtime(format!(
            "{} failed; the first: {e}",
            records(failures)
        )));
    }
    stop.check()
}

/// Runs `perf consume`: every partition of the topic from the beginning.
pub async fn consume(
    args: PerfConsumeArgs,
    mut props: Properties,
    quiet: bool,
    stop: Stop,
) -> CliResult {
    if args.read_committed {
        props.set("isolation.level", "read_committed");
    }
    let config = props.consumer()?;
    let admin = josefk::admin::Admin::connect(config.client.clone()).await?;
    let partitions: Vec<TopicPartition> = admin
        .describe_topics(&[&args.topic])
        .await?
        .remove(0)
        .partitions
        .iter()
        .map(|p| TopicPartition::new(&args.topic, p.partition))
        .collect();
    let mut consumer = Consumer::connect(config).await?;
    consumer.assign(&partitions).await?;
    consumer.seek_to_beginning(&partitions).await?;
    let deadline = args
        .timeout_ms
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    stop.set_up_done();
    let mut progress = Progress::new("perf consume", quiet);
    let started = Instant::now();
    let (mut count, mut bytes) = (0u64, 0u64);
    let idle_limit = Duration::from_millis(args.idle_timeout);
    let mut last_record = Instant::now();
    let mut stopped = None;
    let mut incomplete = None;
    while count < args.num_records {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            incomplete = Some(format!(
                "timed out after {count} of {} records (--timeout-ms)",
                args.num_records
            ));
            break;
        }
        if last_record.elapsed() >= idle_limit {
            incomplete = Some(format!(
                "no record for {} ms (--timeout) after {count} of {} records: the topic holds \
                 fewer",
                args.idle_timeout, args.num_records
            ));
            break;
        }
        let polled = tokio::select! {
            r = consumer.poll(Duration::from_millis(500)) => r?,
            signal = stop.wait() => {
                stopped = Some(signal);
                break;
            }
        };
        if !polled.is_empty() {
            last_record = Instant::now();
        }
        for r in polled {
            count += 1;
            bytes += r.key.as_ref().map_or(0, |k| k.len() as u64)
                + r.value.as_ref().map_or(0, |v| v.len() as u64);
        }
        progress.tick(count, bytes);
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let _ = consumer.close().await;
    // The result so far is printed also when the run stopped early, as Kafka's tool does.
    outln!(
        "records={count} bytes={bytes} elapsed_s={elapsed:.3} records_per_s={:.0} mb_per_s={:.3}",
        count as f64 / elapsed,
        bytes as f64 / elapsed / 1e6
    )?;
    if let Some(message) = incomplete {
        return Err(CliError {
            code: exit::INCOMPLETE,
            message,
        });
    }
    match stopped {
        Some(signal) => Err(signal.error()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_within_two_percent() {
        let mut h = Histogram::default();
        for us in 1..=100_000u64 {
            h.record(Duration::from_micros(us));
        }
        for (q, want) in [(0.5, 50.0), (0.95, 95.0), (0.99, 99.0)] {
            let got = h.quantile_ms(q);
            assert!((got - want).abs() / want < 0.02, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.max_us, 100_000);
        assert!((h.mean_ms() - 50.0).abs() < 0.01);
        // The largest latency still has a bucket.
        h.record(Duration::from_secs(u64::MAX / 2_000_000));
    }
}
