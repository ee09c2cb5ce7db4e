//! `verifiable-consumer`: Java's `VerifiableConsumer`. A group consumer of one topic that prints
//! its group events as JSON lines: `partitions_assigned`/`partitions_revoked` from the rebalance
//! listener, `records_consumed` per poll (count, and per partition count and offset range),
//! `record_data` per record with `--verbose`, `offsets_committed` after each manual commit, and
//! `shutdown_requested`/`shutdown_complete` around a clean stop (SIGTERM or `--max-messages`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use josefk::consumer::{Consumer, ConsumerRecord, RebalanceListener};
use josefk::TopicPartition;

use super::{text, Json};
use crate::exit::{CliError, CliResult};
use crate::props::Properties;
use crate::stop::Stop;

/// `verifiable-consumer`: the arguments of Java's `VerifiableConsumer` (kafka-tools 4.4).
#[derive(Debug, Args)]
pub struct VerifiableConsumerArgs {
    /// Consume messages from this topic.
    #[arg(long)]
    pub topic: String,
    /// `group.protocol`: classic or consumer.
    #[arg(long, default_value = "classic")]
    pub group_protocol: String,
    /// `group.remote.assignor` (consumer protocol only).
    #[arg(long)]
    pub group_remote_assignor: Option<String>,
    /// `group.id`.
    #[arg(long)]
    pub group_id: String,
    /// `group.instance.id` (static membership).
    #[arg(long)]
    pub group_instance_id: Option<String>,
    /// Consume this many messages, then stop; -1 consumes until SIGTERM.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub max_messages: i64,
    /// `session.timeout.ms` (classic protocol only; refused with the consumer protocol).
    #[arg(long, value_name = "TIMEOUT-MS")]
    pub session_timeout: Option<u64>,
    /// Print a `record_data` line per record.
    #[arg(long)]
    pub verbose: bool,
    /// `enable.auto.commit=true`; otherwise the offsets of each poll are committed after it.
    #[arg(long)]
    pub enable_autocommit: bool,
    /// How long closing may take, in ms.
    #[arg(long, value_name = "CLOSE-TIMEOUT-MS", default_value_t = 30_000)]
    pub close_timeout: u64,
    /// `auto.offset.reset`: earliest, latest or none.
    #[arg(long, default_value = "earliest")]
    pub reset_policy: String,
    /// `partition.assignment.strategy` (classic protocol only): Java's assignor class names
    /// that josefk implements (Range, RoundRobin, CooperativeSticky); others are refused.
    #[arg(
        long,
        default_value = "org.apache.kafka.clients.consumer.RangeAssignor"
    )]
    pub assignment_strategy: String,
    /// (Deprecated in Java, kept for its scripts) consumer properties file.
    #[arg(long = "consumer.config", value_name = "CONFIG-FILE")]
    pub consumer_config: Option<PathBuf>,
    /// Consumer properties file (the options above override it, as in Java).
    #[arg(long, value_name = "CONFIG-FILE")]
    pub command_config: Option<PathBuf>,
}

/// Prints the rebalance events; josefk calls it from inside `poll`, so its lines come in order
/// with the others.
struct PrintRebalances;

impl RebalanceListener for PrintRebalances {
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        partitions_event("partitions_assigned", partitions);
    }

    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        partitions_event("partitions_revoked", partitions);
    }
}

fn partitions_event(name: &str, partitions: &[TopicPartition]) {
    Json::event(name)
        .array(
            "partitions",
            partitions.iter().map(|tp| {
                Json::object()
                    .str("topic", Some(&tp.topic))
                    .num("partition", i64::from(tp.partition))
            }),
        )
        .emit();
}

/// Runs `verifiable-consumer`.
pub async fn run(args: VerifiableConsumerArgs, mut props: Properties, stop: Stop) -> CliResult {
    // Java's order: the file first, then the tool's options over it.
    if args.consumer_config.is_some() {
        // Java prints this on stdout too (not JSON; the system tests skip such lines).
        // Ignored if stdout is closed, as Java's `System.out` does.
        let _ = crate::output::outln!(
            "Option --consumer.config has been deprecated and will be removed in a future \
             version. Use --command-config instead."
        );
    }
    props.extend_from_args_file(
        args.consumer_config.as_deref(),
        args.command_config.as_deref(),
    )?;
    props.set("group.protocol", &args.group_protocol);
    if args.group_protocol.eq_ignore_ascii_case("consumer") {
        if let Some(a) = &args.group_remote_assignor {
            props.set("group.remote.assignor", a);
        }
    } else {
        props.set("partition.assignment.strategy", &args.assignment_strategy);
    }
    if let Some(ms) = args.session_timeout {
        props.set("session.timeout.ms", &ms.to_string());
    }
    props.set("group.id", &args.group_id);
    if let Some(id) = &args.group_instance_id {
        props.set("group.instance.id", id);
    }
    props.set(
        "enable.auto.commit",
        if args.enable_autocommit {
            "true"
        } else {
            "false"
        },
    );
    props.set("auto.offset.reset", &args.reset_policy);
    let config = props.consumer()?;

    let mut consumer = Consumer::connect(config).await?;
    consumer.set_rebalance_listener(PrintRebalances);
    stop.set_up_done();
    Json::event("startup_complete").emit();
    consumer.subscribe(&[&args.topic])?;

    let limit = (args.max_messages >= 0).then_some(args.max_messages);
    let mut consumed: i64 = 0;
    let mut signalled = false;
    let outcome: CliResult = async {
        while limit.is_none_or(|max| consumed < max) {
            let records = tokio::select! {
                r = consumer.poll(Duration::from_millis(1000)) => r?,
                _ = stop.wait() => {
                    Json::event("shutdown_requested").emit();
                    signalled = true;
                    return Ok(());
                }
            };
            // Java polls with an unbounded timeout: an empty poll prints nothing.
            if records.is_empty() {
                continue;
            }
            let offsets = on_records(&records, limit, &mut consumed, args.verbose);
            if !args.enable_autocommit {
                let result = consumer.commit_offsets(&offsets).await;
                offsets_committed(&offsets, result.as_ref().err());
                if let Err(e) = result {
                    // A fenced static member cannot go on (Java rethrows it); others are reported
                    // and consuming continues, as Java's commitSync callback does.
                    if e.class() == josefk::ErrorClass::Fatal {
                        return Err(e.into());
                    }
                }
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = &outcome {
        crate::output::diagln!(
            "josefk: verifiable-consumer: error during processing, stopping: {e}"
        );
    }
    let closed =
        tokio::time::timeout(Duration::from_millis(args.close_timeout), consumer.close()).await;
    Json::event("shutdown_complete").emit();
    if !signalled {
        // Java's shutdown hook runs at every exit, also after --max-messages, and prints this
        // last.
        Json::event("shutdown_requested").emit();
    }
    outcome?;
    match closed {
        Ok(r) => r.map_err(CliError::from),
        Err(_) => Err(CliError::runtime(format!(
            "closing the consumer took longer than --close-timeout {} ms",
            args.close_timeout
        ))),
    }
}

/// Java's `onRecordsReceived`: prints `record_data` (verbose) and `records_consumed`, and returns
/// the offsets to commit (each partition's last record + 1), records past `--max-messages` left
/// out.
fn on_records(
    records: &[ConsumerRecord],
    limit: Option<i64>,
    consumed: &mut i64,
    verbose: bool,
) -> Vec<(TopicPartition, i64)> {
    // Partitions in the order their first record came, each with its records in offset order.
    let mut by_partition: Vec<(TopicPartition, Vec<&ConsumerRecord>)> = Vec::new();
    for r in records {
        let tp = r.topic_partition();
        match by_partition.iter_mut().find(|(p, _)| *p == tp) {
            Some((_, rs)) => rs.push(r),
            None => by_partition.push((tp, vec![r])),
        }
    }
    let mut offsets = Vec::new();
    let mut summaries = Vec::new();
    for (tp, mut rs) in by_partition {
        if let Some(max) = limit {
            let room = (max - *consumed).max(0) as usize;
            rs.truncate(room);
        }
        let (Some(first), Some(last)) = (rs.first(), rs.last()) else {
            continue;
        };
        offsets.push((tp.clone(), last.offset + 1));
        summaries.push(
            Json::object()
                .str("topic", Some(&tp.topic))
                .num("partition", i64::from(tp.partition))
                .num("count", rs.len() as i64)
                .num("minOffset", first.offset)
                .num("maxOffset", last.offset),
        );
        if verbose {
            for r in &rs {
                Json::event("record_data")
                    .str("key", text(r.key.as_deref()).as_deref())
                    .str("value", text(r.value.as_deref()).as_deref())
                    .str("topic", Some(&r.topic))
                    .num("partition", i64::from(r.partition))
                    .num("offset", r.offset)
                    .emit();
            }
        }
        *consumed += rs.len() as i64;
        if limit.is_some_and(|max| *consumed >= max) {
            break;
        }
    }
    Json::event("records_consumed")
        .num("count", records.len() as i64)
        .array("partitions", summaries)
        .emit();
    offsets
}

/// Java's `OffsetsCommitted`: `error` only when the commit failed.
fn offsets_committed(offsets: &[(TopicPartition, i64)], error: Option<&josefk::Error>) {
    let mut line = Json::event("offsets_committed").array(
        "offsets",
        offsets.iter().map(|(tp, offset)| {
            Json::object()
                .str("topic", Some(&tp.topic))
                .num("partition", i64::from(tp.partition))
                .num("offset", *offset)
        }),
    );
    if let Some(e) = error {
        line = line.str("error", Some(&e.to_string()));
    }
    line.bool("success", error.is_none()).emit();
}
