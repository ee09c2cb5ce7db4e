//! `josefk copy`: an exactly-once topic copy. A read_committed group consumer and a transactional
//! producer; each poll's records are written, with the consumer's next offsets, in one
//! transaction (`send_offsets_to_transaction`). On an abortable error the transaction is aborted
//! and the consumer rewound to the committed offsets, so nothing is lost or written twice; a
//! fatal one (fenced by a newer copier with the same `transactional.id`) stops the copy.
//! SIGINT and SIGTERM stop it between transactions: close, leave the group, exit 130 or 143.

use std::collections::BTreeMap;
use std::time::Duration;

use josefk::admin::{Admin, OffsetSpec};
use josefk::consumer::{Consumer, ConsumerRecord};
use josefk::producer::Producer;
use josefk::{ErrorClass, Guarantee, IsolationLevel, ProducerRecord, TopicPartition};
use tokio::time::Instant;

use crate::args::CopyArgs;
use crate::exit::{self, CliError, CliResult};
use crate::output::diagln;
use crate::progress::{records, Progress};
use crate::props::Properties;
use crate::stop::Stop;

/// Runs `copy`.
pub async fn run(args: CopyArgs, mut props: Properties, quiet: bool, stop: Stop) -> CliResult {
    let transactional_id = args
        .transactional_id
        .clone()
        .unwrap_or_else(|| format!("{}-copier", args.group));
    // Set before the configs are validated: `group.instance.id` from -X needs the group.
    props.set("group.id", &args.group);
    props.set("auto.offset.reset", "earliest");
    props.set("transactional.id", &transactional_id);
    let (consumer_config, producer_config) = props.consumer_and_producer()?;
    let consumer_config = consumer_config.guarantee(Guarantee::ExactlyOnce);
    let producer_config = producer_config.guarantee(Guarantee::ExactlyOnce);

    let admin = Admin::connect(consumer_config.client.clone()).await?;
    let described = admin.describe_topics(&[&args.from, &args.to]).await?;
    let (source, target) = (&described[0], &described[1]);
    if target.partitions.len() < source.partitions.len() {
        return Err(CliError::usage(format!(
            "`{}` has {} partitions, fewer than `{}`'s {}: records keep their partition",
            args.to,
            target.partitions.len(),
            args.from,
            source.partitions.len()
        )));
    }
    let source_partitions = source.partitions.len();

    let mut consumer = Consumer::connect(consumer_config).await?;
    consumer.subscribe(&[&args.from])?;
    let producer = Producer::connect(producer_config).await?;
    producer.init_transactions().await?;

    let deadline = args
        .timeout_ms
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    stop.set_up_done();
    let mut progress = Progress::new("copy", quiet);
    let mut copied: u64 = 0;
    let mut aborted: u64 = 0;
    let mut stopped = None;
    let outcome: CliResult = async {
        loop {
            // Checked between transactions: one under way is committed (or aborted) first.
            if let Some(signal) = stop.requested() {
                stopped = Some(signal);
                return Ok(());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                if args.exit_at_end {
                    return Err(CliError {
                        code: exit::INCOMPLETE,
                        message: format!("timed out after copying {copied} records"),
                    });
                }
                return Ok(());
            }
            let records = tokio::select! {
                r = consumer.poll(Duration::from_millis(500)) => r?,
                // Records a poll returned after this are not copied; the next run reads them.
                signal = stop.wait() => {
                    stopped = Some(signal);
                    return Ok(());
                }
            };
            if records.is_empty() {
                if args.exit_at_end
                    && copied_everything(&mut consumer, &admin, source_partitions).await?
                {
                    return Ok(());
                }
                continue;
            }
            producer.begin_transaction()?;
            match copy_in_transaction(&producer, &consumer, &records, &args.to).await {
                Ok(()) => copied += records.len() as u64,
                Err(e) if e.class() == ErrorClass::Fatal => return Err(e.into()),
                Err(e) => {
                    if !quiet {
                        diagln!(
                            "copy: transaction aborted ({e}); rewinding to the committed offsets"
                        );
                    }
                    aborted += 1;
                    producer.abort_transaction().await?;
                    consumer.rewind_to_committed()?;
                }
            }
            progress.tick(copied, 0);
        }
    }
    .await;
    // Both are closed even after an error; the first error is reported.
    let producer_closed = producer.close(Duration::from_secs(30)).await;
    let consumer_closed = consumer.close().await;
    outcome?;
    producer_closed?;
    consumer_closed?;
    progress.finish(&format!(
        "{} copied from `{}` to `{}` ({aborted} transaction{} aborted and retried)",
        records(copied),
        args.from,
        args.to,
        if aborted == 1 { "" } else { "s" }
    ));
    match stopped {
        Some(signal) => Err(signal.error()),
        None => Ok(()),
    }
}

/// Writes `records` and the consumer's next offsets, then commits.
async fn copy_in_transaction(
    producer: &Producer,
    consumer: &Consumer,
    records: &[ConsumerRecord],
    to: &str,
) -> josefk::Result<()> {
    let mut next: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    for r in records {
        let out = ProducerRecord {
            topic: to.to_owned(),
            partition: Some(r.partition),
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.to_vec(),
            timestamp: Some(r.timestamp),
        };
        // commit_transaction fails if any record of the transaction failed.
        drop(producer.send(out).await?);
        next.insert(r.topic_partition(), r.offset + 1);
    }
    let offsets: Vec<_> = next.into_iter().map(|(tp, o)| (tp, o, None)).collect();
    let group = consumer
        .group_metadata()
        .expect("the copy consumer has a group.id");
    producer
        .send_offsets_to_transaction(&offsets, &group)
        .await?;
    producer.commit_transaction().await
}

/// Whether this copier owns every source partition and is at the end (the last stable offset) of
/// each.
async fn copied_everything(
    consumer: &mut Consumer,
    admin: &Admin,
    source_partitions: usize,
) -> CliResult<bool> {
    let assigned = consumer.assignment();
    if assigned.len() != source_partitions {
        return Ok(false);
    }
    let specs: Vec<_> = assigned
        .iter()
        .map(|tp| (tp.clone(), OffsetSpec::Latest))
        .collect();
    let ends = admin
        .list_offsets(&specs, IsolationLevel::ReadCommitted)
        .await?;
    for tp in &assigned {
        if consumer.position(tp).await? < ends[tp].offset {
            return Ok(false);
        }
    }
    Ok(true)
}
