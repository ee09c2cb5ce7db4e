//! `verifiable-producer`: Java's `VerifiableProducer`. Writes the increasing integers `0, 1, ...`
//! (optionally `PREFIX.n`, optionally keyed `0..REPEATING-KEYS`) and prints one JSON line per
//! acknowledgement (`producer_send_success` with the partition and offset) or failure
//! (`producer_send_error`), so a test can tell which records the cluster acknowledged. It stops
//! after `--max-messages` or at SIGTERM, then prints `shutdown_complete` and `tool_data` (sent,
//! acked, throughput), as Java's shutdown hook does.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use josefk::producer::{DeliveryFuture, Producer};
use josefk::ProducerRecord;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{now_ms, Json};
use crate::exit::CliResult;
use crate::props::Properties;
use crate::stop::Stop;

/// `verifiable-producer`: the arguments of Java's `VerifiableProducer` (kafka-tools 4.4).
#[derive(Debug, Args)]
pub struct VerifiableProducerArgs {
    /// Produce messages to this topic.
    #[arg(long)]
    pub topic: String,
    /// Produce this many messages; -1 produces until SIGTERM.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub max_messages: i64,
    /// If >= 0, at most about this many messages per second (0: one message, then wait).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub throughput: i64,
    /// `acks` for every message: 0, 1 or -1 (all).
    #[arg(long, default_value = "-1", allow_hyphen_values = true,
          value_parser = ["0", "1", "-1"])]
    pub acks: String,
    /// (Deprecated in Java, kept for its scripts) producer properties file.
    #[arg(long = "producer.config", value_name = "CONFIG-FILE")]
    pub producer_config: Option<PathBuf>,
    /// Producer properties file (overrides the options above, as in Java).
    #[arg(long, value_name = "CONFIG-FILE")]
    pub command_config: Option<PathBuf>,
    /// Timestamp of the first message, ms since the epoch (later ones advance as Java's do);
    /// -1: the producer's clock.
    #[arg(long = "message-create-time", default_value_t = -1, allow_hyphen_values = true)]
    pub create_time: i64,
    /// Each value is `VALUE-PREFIX.n` instead of `n`.
    #[arg(long)]
    pub value_prefix: Option<i32>,
    /// Keys cycle `0, 1, ..., REPEATING-KEYS - 1` (default: no key).
    #[arg(long)]
    pub repeating_keys: Option<i32>,
}

/// Runs `verifiable-producer`.
pub async fn run(args: VerifiableProducerArgs, mut props: Properties, stop: Stop) -> CliResult {
    // Java's order: its own settings first, then the file (which may override them).
    props.set("acks", &args.acks);
    // As Java's tool: no retries, so each failure is reported, not hidden by a retry (this turns
    // the default idempotence off, as in Java).
    props.set("retries", "0");
    if args.producer_config.is_some() {
        // Java prints this on stdout too (not JSON; the system tests skip such lines).
        // Ignored if stdout is closed, as Java's `System.out` does.
        let _ = crate::output::outln!(
            "Option --producer.config has been deprecated and will be removed in a future \
             version. Use --command-config instead."
        );
    }
    props.extend_from_args_file(
        args.producer_config.as_deref(),
        args.command_config.as_deref(),
    )?;
    if let Some(k) = args.repeating_keys.filter(|k| *k <= 0) {
        return Err(crate::exit::CliError::usage(format!(
            "--repeating-keys must be at least 1, got {k}"
        )));
    }
    let producer = Producer::connect(props.producer()?).await?;
    let start_ms = now_ms();
    let started = Instant::now();
    let acked = Arc::new(AtomicI64::new(0));

    // One collector awaits acknowledgements in send order and prints them; the channel bounds
    // how far sending runs ahead of printing.
    let (tx, rx) = mpsc::channel::<Pending>(16 * 1024);
    let collector = tokio::spawn(collect(rx, args.topic.clone(), acked.clone()));

    stop.set_up_done();
    Json::event("startup_complete").emit();
    let max = if args.max_messages < 0 {
        i64::MAX
    } else {
        args.max_messages
    };
    let mut create_time = (args.create_time != -1).then_some(args.create_time);
    let mut key_counter = 0i32;
    let mut sent: i64 = 0;
    for i in 0..max {
        if stop.requested().is_some() {
            break;
        }
        let key = args.repeating_keys.map(|n| {
            let k = key_counter;
            key_counter = if k + 1 == n { 0 } else { k + 1 };
            k.to_string()
        });
        let value = match args.value_prefix {
            Some(p) => format!("{p}.{i}"),
            None => i.to_string(),
        };
        let timestamp = create_time;
        if let Some(t) = create_time.as_mut() {
            // Java adds the time since start to the running create time after each message.
            *t += now_ms() - start_ms;
        }
        let record = ProducerRecord {
            topic: args.topic.clone(),
            partition: None,
            key: key.clone().map(Bytes::from),
            value: Some(Bytes::from(value.clone())),
            headers: Vec::new(),
            timestamp,
        };
        sent += 1;
        // Counted as sent before the send, as in Java. A send still waiting (for the metadata of
        // a topic that does not exist, for buffer room) when the stop comes fails at once: Java's
        // shutdown hook closes the producer, which wakes such a send with "Producer closed while
        // send in progress", so the tool ends promptly instead of waiting out `max.block.ms`.
        let delivery = tokio::select! {
            biased;
            d = producer.send(record) => d,
            _ = stop.wait() => Err(josefk::Error::Closed),
        };
        let pending = Pending {
            key,
            value,
            delivery,
        };
        if tx.send(pending).await.is_err() {
            break;
        }
        throttle(args.throughput, i + 1, started, &stop).await;
    }
    drop(tx);
    // Java's close(): every record sent is acknowledged or failed (and printed) first.
    let _ = producer.flush().await;
    let _ = collector.await;
    let closed = producer.close(Duration::from_secs(30)).await;
    Json::event("shutdown_complete").emit();
    let acked = acked.load(Ordering::SeqCst);
    let elapsed_ms = (now_ms() - start_ms).max(1) as f64;
    Json::event("tool_data")
        .num("sent", sent)
        .num("acked", acked)
        .num("target_throughput", args.throughput)
        .float("avg_throughput", 1000.0 * acked as f64 / elapsed_ms)
        .emit();
    closed?;
    Ok(())
}

/// A sent message waiting for its acknowledgement.
struct Pending {
    key: Option<String>,
    value: String,
    delivery: josefk::Result<DeliveryFuture>,
}

async fn collect(mut rx: mpsc::Receiver<Pending>, topic: String, acked: Arc<AtomicI64>) {
    while let Some(p) = rx.recv().await {
        let outcome = match p.delivery {
            Ok(delivery) => delivery.await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(meta) => {
                acked.fetch_add(1, Ordering::SeqCst);
                Json::event("producer_send_success")
                    .str("key", p.key.as_deref())
                    .str("value", Some(&p.value))
                    // Jackson's order for this event (the offset before topic and partition).
                    // acks=0: no offset; Java reports -1.
                    .num("offset", meta.offset.unwrap_or(-1))
                    .str("topic", Some(&meta.topic))
                    .num("partition", i64::from(meta.partition))
                    .emit();
            }
            // Jackson's order for this event: the topic first.
            Err(e) => Json::event("producer_send_error")
                .str("topic", Some(&topic))
                .str("key", p.key.as_deref())
                .str("value", Some(&p.value))
                .str("exception", Some(&error_class(&e)))
                .str("message", Some(&e.to_string()))
                .emit(),
        }
    }
}

/// The `exception` field: Java prints the exception's class (`class org.apache...Exception`);
/// josefk has one error type, so the field names it and its class (retriable, abortable, ...).
pub fn error_class(e: &josefk::Error) -> String {
    format!("class josefk::Error ({:?})", e.class())
}

/// Java's `ThroughputThrottler`: after `sent` messages, wait until `sent / throughput` seconds
/// have passed since the start; a throughput of 0 sends nothing more until stopped.
async fn throttle(throughput: i64, sent: i64, started: Instant, stop: &Stop) {
    if throughput < 0 {
        return;
    }
    if throughput == 0 {
        stop.wait().await;
        return;
    }
    let due = started + Duration::from_secs_f64(sent as f64 / throughput as f64);
    if due > Instant::now() {
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = stop.wait() => {}
        }
    }
}
