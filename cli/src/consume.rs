//! `josefk consume`: reads assigned partitions (positioned by `--offset`) or, with `--group`, a
//! subscription, and prints each record with a template or as a JSON line.
//!
//! A group member commits exactly the records it printed (after each poll, and on exit), never
//! records a `--count` cut off, so a later run of the same group starts right after the last
//! record printed. Printed means written to stdout: a record still buffered when stdout's reader
//! went away is not committed. SIGINT and SIGTERM stop it the same clean way (commit, leave,
//! close; exit 130 or 143); a closed stdout too (exit 141).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::Duration;

use josefk::admin::{Admin, OffsetSpec};
use josefk::consumer::{Consumer, ConsumerRecord};
use josefk::{IsolationLevel, TopicPartition};
use tokio::time::Instant;

use crate::args::ConsumeArgs;
use crate::exit::{self, CliError, CliResult};
use crate::format::{write_json, Template};
use crate::output;
use crate::props::Properties;
use crate::stop::Stop;

/// Where reading starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The log start.
    Beginning,
    /// The log end.
    End,
    /// The group's committed offsets (else the end).
    Stored,
    /// An absolute offset.
    Offset(i64),
    /// This many records before the end.
    FromEnd(i64),
    /// The first record at or after this timestamp (ms).
    Timestamp(i64),
}

impl StartAt {
    /// Parses `--offset`.
    pub fn parse(s: &str) -> Result<StartAt, String> {
        let bad =
            || format!("--offset `{s}`: expected beginning, end, stored, N, -N or @TIMESTAMP_MS");
        Ok(match s {
            "beginning" | "earliest" => StartAt::Beginning,
            "end" | "latest" => StartAt::End,
            "stored" => StartAt::Stored,
            _ => {
                if let Some(ts) = s.strip_prefix('@') {
                    StartAt::Timestamp(ts.parse().map_err(|_| bad())?)
                } else if let Some(n) = s.strip_prefix('-') {
                    StartAt::FromEnd(n.parse().map_err(|_| bad())?)
                } else {
                    StartAt::Offset(s.parse().map_err(|_| bad())?)
                }
            }
        })
    }
}

/// How records are printed.
enum Output {
    Template(Template),
    Json,
}

/// Runs `consume`.
pub async fn run(args: ConsumeArgs, mut props: Properties, quiet: bool, stop: Stop) -> CliResult {
    let start = match &args.offset {
        Some(s) => StartAt::parse(s).map_err(CliError::usage)?,
        None if args.group.is_some() => StartAt::Stored,
        None => StartAt::Beginning,
    };
    let output = if args.json {
        Output::Json
    } else {
        Output::Template(Template::parse(&args.format, &args.null_marker).map_err(CliError::usage)?)
    };
    if args.read_committed {
        props.set("isolation.level", "read_committed");
    }
    if let Some(group) = &args.group {
        if !args.partitions.is_empty() {
            return Err(CliError::usage(
                "--partition and --group do not go together (a group assigns partitions)",
            ));
        }
        props.set("group.id", group);
        // Commits are made here, for exactly the records printed.
        props.set("enable.auto.commit", "false");
        props.set(
            "auto.offset.reset",
            match start {
                StartAt::Beginning => "earliest",
                StartAt::End | StartAt::Stored => "latest",
                _ => {
                    return Err(CliError::usage(
                        "with --group, --offset may only be beginning, end or stored \
                         (where the group has committed nothing)",
                    ))
                }
            },
        );
    } else if start == StartAt::Stored {
        return Err(CliError::usage("--offset stored needs --group"));
    }
    if !args.partitions.is_empty() && args.topics.len() != 1 {
        return Err(CliError::usage("--partition needs exactly one --topic"));
    }
    let config = props.consumer()?;
    let isolation = config.isolation_level;
    let admin = Admin::connect(config.client.clone()).await?;
    let topics: Vec<&str> = args.topics.iter().map(String::as_str).collect();
    let every_partition: Vec<TopicPartition> = admin
        .describe_topics(&topics)
        .await?
        .into_iter()
        .flat_map(|t| {
            t.partitions
                .into_iter()
                .map(move |p| TopicPartition::new(t.name.clone(), p.partition))
        })
        .collect();
    let mut consumer = Consumer::connect(config).await?;
    let grouped = args.group.is_some();
    if grouped {
        consumer.subscribe(&args.topics)?;
    } else {
        let chosen: Vec<TopicPartition> = if args.partitions.is_empty() {
            every_partition.clone()
        } else {
            args.partitions
                .iter()
                .map(|p| TopicPartition::new(&args.topics[0], *p))
                .collect()
        };
        for tp in &chosen {
            if !every_partition.contains(tp) {
                return Err(CliError::usage(format!("partition {tp} does not exist")));
            }
        }
        consumer.assign(&chosen).await?;
        position(&mut consumer, &admin, &chosen, start, isolation).await?;
    }
    let ends: HashMap<TopicPartition, i64> = if args.exit_at_end {
        let specs: Vec<_> = every_partition
            .iter()
            .map(|tp| (tp.clone(), OffsetSpec::Latest))
            .collect();
        admin
            .list_offsets(&specs, isolation)
            .await?
            .into_iter()
            .map(|(tp, o)| (tp, o.offset))
            .collect()
    } else {
        HashMap::new()
    };

    let deadline = args
        .timeout_ms
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    let mut out = Printer::default();
    let mut to_commit: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    stop.set_up_done();
    let mut progress = crate::progress::Progress::new("consume", quiet);
    let mut stopped = None;
    let outcome: CliResult = async {
        loop {
            if args.count.is_some_and(|c| out.printed >= c) {
                return Ok(());
            }
            if let Some(signal) = stop.requested() {
                stopped = Some(signal);
                return Ok(());
            }
            if args.exit_at_end && at_end(&mut consumer, &ends, grouped).await? {
                return Ok(());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let printed = out.printed;
                return match args.count {
                    Some(c) => Err(CliError {
                        code: exit::INCOMPLETE,
                        message: format!("timed out after {printed} of {c} records"),
                    }),
                    None if args.exit_at_end => Err(CliError {
                        code: exit::INCOMPLETE,
                        message: format!("timed out after {printed} records, before the end"),
                    }),
                    None => Ok(()),
                };
            }
            let records = tokio::select! {
                r = consumer.poll(Duration::from_millis(500)) => r?,
                // Records a poll returned after this are neither printed nor committed.
                signal = stop.wait() => {
                    stopped = Some(signal);
                    return Ok(());
                }
            };
            let mut bytes = 0u64;
            for r in &records {
                if args.count.is_some_and(|c| out.printed + out.buffered >= c) {
                    break;
                }
                print(&mut out.buffer, &output, r)?;
                out.add(r);
                bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
                if out.buffer.len() >= FLUSH_AT {
                    out.write(&mut to_commit)?;
                }
            }
            out.write(&mut to_commit)?;
            if grouped && !to_commit.is_empty() {
                let offsets: Vec<_> = std::mem::take(&mut to_commit).into_iter().collect();
                consumer.commit_offsets(&offsets).await?;
            }
            progress.tick(out.printed, bytes);
        }
    }
    .await;
    // Commit what was written and leave, even after an error (a closed stdout, say); the first
    // error is reported. Records whose write failed are not in `to_commit`.
    let cleanup: CliResult = async {
        if grouped && !to_commit.is_empty() {
            let offsets: Vec<_> = std::mem::take(&mut to_commit).into_iter().collect();
            consumer.commit_offsets(&offsets).await?;
        }
        consumer.close().await?;
        Ok(())
    }
    .await;
    let summary = crate::progress::records(out.printed);
    if outcome
        .as_ref()
        .is_err_and(|e| e.code == exit::OUTPUT_CLOSED)
    {
        progress.finish(&format!("{summary} (stdout was closed)"));
    }
    outcome?;
    cleanup?;
    progress.finish(&summary);
    match stopped {
        Some(signal) => Err(signal.error()),
        None => Ok(()),
    }
}

/// Records are written to stdout once this much is buffered, and at the end of each poll.
const FLUSH_AT: usize = 64 * 1024;

/// Printed records waiting in `buffer` until written to stdout: only records whose bytes stdout
/// took (written and flushed) count as printed and may be committed, so a reader that went
/// away (`| head`, `| true`) does not have records committed that it never received.
#[derive(Default)]
struct Printer {
    buffer: Vec<u8>,
    /// The next offset of each partition with records in `buffer`.
    offsets: BTreeMap<TopicPartition, i64>,
    buffered: u64,
    printed: u64,
}

impl Printer {
    fn add(&mut self, r: &ConsumerRecord) {
        self.offsets.insert(r.topic_partition(), r.offset + 1);
        self.buffered += 1;
    }

    /// Writes and flushes the buffer; its records then join `to_commit`. On failure they are
    /// dropped, not committed.
    fn write(&mut self, to_commit: &mut BTreeMap<TopicPartition, i64>) -> CliResult {
        if self.buffered == 0 && self.buffer.is_empty() {
            return Ok(());
        }
        let mut stdout = std::io::stdout().lock();
        let written = stdout.write_all(&self.buffer).and_then(|()| stdout.flush());
        self.buffer.clear();
        let offsets = std::mem::take(&mut self.offsets);
        let count = std::mem::take(&mut self.buffered);
        written.map_err(output::from_io)?;
        to_commit.extend(offsets);
        self.printed += count;
        Ok(())
    }
}

fn print(out: &mut Vec<u8>, output: &Output, r: &ConsumerRecord) -> CliResult {
    match output {
        Output::Template(t) => t.write(out, r),
        Output::Json => write_json(out, r),
    }
    .map_err(|e| CliError::runtime(format!("formatting a record: {e}")))
}

/// Whether every assigned partition's position reached the end it had at the start. A group
/// member with nothing assigned yet is not at the end.
async fn at_end(
    consumer: &mut Consumer,
    ends: &HashMap<TopicPartition, i64>,
    grouped: bool,
) -> CliResult<bool> {
    let assigned = consumer.assignment();
    if grouped && assigned.is_empty() {
        return Ok(false);
    }
    for tp in &assigned {
        let end = ends.get(tp).copied().unwrap_or(0);
        if consumer.position(tp).await? < end {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Positions manually assigned partitions per `--offset`.
async fn position(
    consumer: &mut Consumer,
    admin: &Admin,
    partitions: &[TopicPartition],
    start: StartAt,
    isolation: IsolationLevel,
) -> CliResult {
    let lookup = |spec: OffsetSpec| {
        let specs: Vec<_> = partitions.iter().map(|tp| (tp.clone(), spec)).collect();
        async move { admin.list_offsets(&specs, isolation).await }
    };
    match start {
        StartAt::Beginning => consumer.seek_to_beginning(partitions).await?,
        StartAt::End => consumer.seek_to_end(partitions).await?,
        StartAt::Stored => unreachable!("refused without a group"),
        StartAt::Offset(n) => {
            for tp in partitions {
                consumer.seek(tp, n)?;
            }
        }
        StartAt::FromEnd(n) => {
            let earliest = lookup(OffsetSpec::Earliest).await?;
            let latest = lookup(OffsetSpec::Latest).await?;
            for tp in partitions {
                let offset = (latest[tp].offset - n).max(earliest[tp].offset);
                consumer.seek(tp, offset)?;
            }
        }
        StartAt::Timestamp(ms) => {
            let found = lookup(OffsetSpec::Timestamp(ms)).await?;
            let latest = lookup(OffsetSpec::Latest).await?;
            for tp in partitions {
                // No record at or after the timestamp: start at the end.
                let offset = match found[tp].offset {
                    o if o >= 0 => o,
                    _ => latest[tp].offset,
                };
                consumer.seek(tp, offset)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_specs() {
        assert_eq!(StartAt::parse("beginning"), Ok(StartAt::Beginning));
        assert_eq!(StartAt::parse("42"), Ok(StartAt::Offset(42)));
        assert_eq!(StartAt::parse("-5"), Ok(StartAt::FromEnd(5)));
        assert_eq!(
            StartAt::parse("@1700000000000"),
            Ok(StartAt::Timestamp(1_700_000_000_000))
        );
        assert!(StartAt::parse("soon").is_err());
    }
}
