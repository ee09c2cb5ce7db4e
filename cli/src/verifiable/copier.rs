//! `transactional-message-copier`: Java's `TransactionalMessageCopier`. Copies one input
//! partition (or, with `--group-mode`, the partitions the group gives it) to an output topic in
//! transactions of at most `--transaction-size` records, the consumer's positions committed in
//! each, until the input is copied up to its end as of the start (or of the last rebalance).
//! Prints a status line before every poll (`stage` `ProcessLoop`), after every rebalance
//! (`RebalanceComplete`) and at the end (`ShutdownComplete`), with `totalProcessed`, `consumed`
//! (since the last rebalance) and `remaining`, as kafka-tools 4.4 does.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use josefk::admin::{Admin, OffsetSpec};
use josefk::consumer::{Consumer, ConsumerRecord, RebalanceListener};
use josefk::producer::{ConsumerGroupMetadata, Producer};
use josefk::{ErrorClass, IsolationLevel, ProducerRecord, TopicPartition};

use super::Json;
use crate::exit::{CliError, CliResult};
use crate::props::Properties;
use crate::stop::Stop;

/// `transactional-message-copier`: the arguments of Java's `TransactionalMessageCopier`
/// (kafka-tools 4.4).
#[derive(Debug, Args)]
pub struct CopierArgs {
    /// Consume messages from this topic.
    #[arg(long)]
    pub input_topic: String,
    /// Consume messages from this partition of the input topic (ignored with --group-mode).
    #[arg(long)]
    pub input_partition: i32,
    /// Produce messages to this topic (each to its input partition's number).
    #[arg(long)]
    pub output_topic: String,
    /// Bootstrap servers, as Java's tool names them (`-b`/`--bootstrap-server` also work).
    #[arg(long, value_name = "HOST1:PORT1[,HOST2:PORT2[...]]")]
    pub broker_list: Option<String>,
    /// Copy at most this many messages; -1 copies up to the input's end as of the start.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub max_messages: i64,
    /// The consumer group that stores the consumer offsets (Java's default is the string "-1").
    #[arg(long, default_value = "-1", allow_hyphen_values = true)]
    pub consumer_group: String,
    /// Messages per transaction (`max.poll.records`).
    #[arg(long, default_value_t = 200)]
    pub transaction_size: u32,
    /// `transaction.timeout.ms`.
    #[arg(long, default_value_t = 60_000)]
    pub transaction_timeout: u64,
    /// `transactional.id` of the producer.
    #[arg(long)]
    pub transactional_id: String,
    /// Abort about one transaction in three (and copy its records again), for testing.
    #[arg(long)]
    pub enable_random_aborts: bool,
    /// Subscribe to the input topic as a member of --consumer-group instead of reading
    /// --input-partition alone.
    #[arg(long)]
    pub group_mode: bool,
    /// Commit offsets with the consumer's full group metadata (generation, member id), which
    /// fences zombies; otherwise with the group id alone.
    #[arg(long)]
    pub use_group_metadata: bool,
}

/// Partitions assigned since the main loop last looked (the listener runs inside `poll` and
/// cannot await; the loop computes what remains).
type Assigned = Arc<Mutex<Option<Vec<TopicPartition>>>>;

struct NoteAssignments(Assigned);

impl RebalanceListener for NoteAssignments {
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        if let Ok(mut a) = self.0.lock() {
            *a = Some(partitions.to_vec());
        }
    }
}

/// The counters every status line carries.
struct Status<'a> {
    transactional_id: &'a str,
    total: i64,
    consumed: i64,
    remaining: i64,
}

impl Status<'_> {
    fn emit(&self, stage: &str) {
        Json::object()
            .str("transactionalId", Some(self.transactional_id))
            .str("stage", Some(stage))
            .str("time", Some(&java_time()))
            .num("totalProcessed", self.total)
            .num("consumed", self.consumed)
            .num("remaining", self.remaining)
            .emit();
    }
}

/// Runs `transactional-message-copier`.
pub async fn run(args: CopierArgs, mut props: Properties, stop: Stop) -> CliResult {
    if let Some(brokers) = &args.broker_list {
        props.set("bootstrap.servers", brokers);
    }
    if args.transaction_size == 0 {
        return Err(CliError::usage("--transaction-size must be at least 1"));
    }
    // The Java tool's settings, on both sides.
    props.set("transactional.id", &args.transactional_id);
    // Small batches: several in-flight requests per transaction, as Java's tool wants.
    props.set("batch.size", "512");
    props.set("max.in.flight.requests.per.connection", "5");
    props.set(
        "transaction.timeout.ms",
        &args.transaction_timeout.to_string(),
    );
    props.set("group.id", &args.consumer_group);
    props.set("isolation.level", "read_committed");
    props.set("max.poll.records", &args.transaction_size.to_string());
    props.set("enable.auto.commit", "false");
    props.set("session.timeout.ms", "10000");
    props.set("max.poll.interval.ms", "180000");
    props.set("heartbeat.interval.ms", "3000");
    props.set("auto.offset.reset", "earliest");
    let (consumer_config, producer_config) = props.consumer_and_producer()?;
    let admin = Admin::connect(consumer_config.client.clone()).await?;
    let mut consumer = Consumer::connect(consumer_config).await?;
    let producer = Producer::connect(producer_config).await?;

    let mut status = Status {
        transactional_id: &args.transactional_id,
        total: 0,
        consumed: 0,
        remaining: if args.max_messages == -1 {
            i64::MAX
        } else {
            args.max_messages
        },
    };
    let assigned: Assigned = Arc::default();
    if args.group_mode {
        consumer.set_rebalance_listener(NoteAssignments(assigned.clone()));
        consumer.subscribe(&[&args.input_topic])?;
    } else {
        let tp = TopicPartition::new(args.input_topic.clone(), args.input_partition);
        consumer.assign(std::slice::from_ref(&tp)).await?;
        // A restarted copier must resume at the group's committed offset, or it copies again
        // what an earlier run committed (`assign` with a group.id would look it up at the first
        // poll; it is read here so that `remaining` counts from it). Before that,
        // `init_transactions` aborts what a killed predecessor with this transactional.id left
        // open, so its offsets stop being unstable.
        producer.init_transactions().await?;
        if let Some((_, Some(offset))) = committed(&consumer, std::slice::from_ref(&tp))
            .await?
            .into_iter()
            .next()
        {
            consumer.seek(&tp, offset)?;
        }
        let left = remaining(&mut consumer, &admin, std::slice::from_ref(&tp)).await?;
        status.remaining = status.remaining.min(left);
    }
    if args.group_mode {
        producer.init_transactions().await?;
    }

    stop.set_up_done();
    let mut random = Random::seeded();
    let outcome: CliResult = async {
        while stop.requested().is_none() && status.remaining > 0 {
            status.emit("ProcessLoop");
            let records = tokio::select! {
                r = consumer.poll(Duration::from_millis(200)) => r?,
                _ = stop.wait() => break,
            };
            let newly = assigned.lock().ok().and_then(|mut a| a.take());
            if let Some(partitions) = newly {
                // Java's onPartitionsAssigned: what is left is the backlog of these partitions.
                status.remaining = remaining(&mut consumer, &admin, &partitions).await?
                    + fetched_from(&records, &partitions);
                status.consumed = 0;
                status.emit("RebalanceComplete");
            }
            if records.is_empty() {
                continue;
            }
            let n = records.len() as i64;
            producer.begin_transaction()?;
            let abort_on_purpose = args.enable_random_aborts && random.one_in_three();
            match copy(&producer, &mut consumer, &records, &args, abort_on_purpose).await {
                Ok(true) => {
                    status.remaining -= n;
                    status.consumed += n;
                    status.total += n;
                }
                Ok(false) => abort_and_rewind(&producer, &mut consumer).await?,
                Err(e) if e.class() == ErrorClass::Fatal => {
                    return Err(CliError::runtime(format!(
                        "the transactional.id {} cannot go on (claimed by another process or \
                         fatal): {e}",
                        args.transactional_id
                    )));
                }
                Err(_) => abort_and_rewind(&producer, &mut consumer).await?,
            }
        }
        Ok(())
    }
    .await;
    let producer_closed = producer.close(Duration::from_secs(30)).await;
    let consumer_closed = consumer.close().await;
    // Java's shutdown hook prints this whether the copy finished or was stopped.
    status.emit("ShutdownComplete");
    outcome?;
    producer_closed?;
    consumer_closed?;
    Ok(())
}

/// Writes `records` and the consumer's positions in the open transaction; commits it, or (a
/// random abort) leaves it for the caller to abort. `Ok(true)` when committed.
async fn copy(
    producer: &Producer,
    consumer: &mut Consumer,
    records: &[ConsumerRecord],
    args: &CopierArgs,
    abort_on_purpose: bool,
) -> josefk::Result<bool> {
    for r in records {
        // Java copies partition, key and value (not headers or timestamp).
        let out = ProducerRecord {
            topic: args.output_topic.clone(),
            partition: Some(r.partition),
            key: r.key.clone(),
            value: r.value.clone(),
            headers: Vec::new(),
            timestamp: None,
        };
        drop(producer.send(out).await?);
    }
    let mut offsets = Vec::new();
    for tp in consumer.assignment() {
        let position = consumer.position(&tp).await?;
        offsets.push((tp, position, None));
    }
    let group = if args.use_group_metadata {
        consumer
            .group_metadata()
            .unwrap_or_else(|| ConsumerGroupMetadata::new(args.consumer_group.clone()))
    } else {
        ConsumerGroupMetadata::new(args.consumer_group.clone())
    };
    producer
        .send_offsets_to_transaction(&offsets, &group)
        .await?;
    if abort_on_purpose {
        return Ok(false);
    }
    producer.commit_transaction().await?;
    Ok(true)
}

/// The committed offsets of `partitions`, retried while the broker says they are not yet stable
/// (a transaction holding offsets for them is still being completed), up to a minute.
async fn committed(
    consumer: &Consumer,
    partitions: &[TopicPartition],
) -> josefk::Result<Vec<(TopicPartition, Option<i64>)>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match consumer.committed(partitions).await {
            Err(e) if e.is_retriable() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// Java's `abortTransactionAndResetPosition`: abort, then every assigned partition back to its
/// committed offset (or its beginning when none).
async fn abort_and_rewind(producer: &Producer, consumer: &mut Consumer) -> CliResult {
    producer.abort_transaction().await?;
    let assignment = consumer.assignment();
    let mut uncommitted = Vec::new();
    for (tp, offset) in committed(consumer, &assignment).await? {
        match offset {
            Some(o) => consumer.seek(&tp, o)?,
            None => uncommitted.push(tp),
        }
    }
    if !uncommitted.is_empty() {
        consumer.seek_to_beginning(&uncommitted).await?;
    }
    Ok(())
}

/// Java's `messagesRemaining` summed over `partitions`: the read_committed end offset minus the
/// consumer's position.
async fn remaining(
    consumer: &mut Consumer,
    admin: &Admin,
    partitions: &[TopicPartition],
) -> CliResult<i64> {
    if partitions.is_empty() {
        return Ok(0);
    }
    let specs: Vec<_> = partitions
        .iter()
        .map(|tp| (tp.clone(), OffsetSpec::Latest))
        .collect();
    let ends = admin
        .list_offsets(&specs, IsolationLevel::ReadCommitted)
        .await?;
    let mut left = 0;
    for tp in partitions {
        let position = consumer.position(tp).await?;
        if let Some(end) = ends.get(tp) {
            left += (end.offset - position).max(0);
        }
    }
    Ok(left)
}

/// Records of `partitions` this poll already returned: Java measures what remains before the
/// poll that rebalanced fetches anything, josefk only after, so they are added back.
fn fetched_from(records: &[ConsumerRecord], partitions: &[TopicPartition]) -> i64 {
    records
        .iter()
        .filter(|r| partitions.contains(&r.topic_partition()))
        .count() as i64
}

/// `yyyy/MM/dd HH:mm:ss:SSS` in UTC, the format of Java's status lines.
fn java_time() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}:{:03}",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's method).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// xorshift64*: the random aborts need no more than a fair-ish coin.
struct Random(u64);

impl Random {
    fn seeded() -> Random {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Random(nanos ^ u64::from(std::process::id()) | 1)
    }

    fn one_in_three(&mut self) -> bool {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D).is_multiple_of(3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
