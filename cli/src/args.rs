//! The command line's grammar: every command and option, documented once here (clap derive turns
//! these doc comments into `--help`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// josefk: produce, consume, copy exactly once, and inspect topics, groups and offsets of an
/// Apache Kafka cluster.
///
/// Exit codes: 0 success; 1 runtime error (the broker refused, a record failed, I/O);
/// 2 usage error (bad arguments, unknown or invalid property); 3 no broker could be reached;
/// 4 `--count`/`--num-records` not reached before `--timeout-ms`; 130 interrupted (Ctrl-C);
/// 141 stdout closed (`| head`); 143 terminated (SIGTERM).
#[derive(Debug, Parser)]
#[command(name = "josefk", version, about, long_about = None, after_help = HELP_FOOTER)]
pub struct Cli {
    /// Connection and client settings shared by every command.
    #[command(flatten)]
    pub common: Common,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

const HELP_FOOTER: &str = "\
Exit codes: 0 ok, 1 runtime error, 2 usage error, 3 no broker reachable,
            4 count not reached before --timeout-ms, 130 interrupted (Ctrl-C),
            141 stdout closed, 143 terminated (SIGTERM).
Properties: -F FILE (Java .properties) is read first, then each -X key=value, then the
            command's own options; `josefk <command> --help` lists those.
Bootstrap:  -b beats -X bootstrap.servers, which beats the -F file's bootstrap.servers,
            which beats the KAFKA_BOOTSTRAP_SERVERS environment variable.";

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Common {
    /// Bootstrap servers, `host:port[,host:port...]` (`bootstrap.servers`). Without it,
    /// `-X bootstrap.servers`, then the `-F` file's, then the environment variable
    /// KAFKA_BOOTSTRAP_SERVERS.
    // Not clap's `env`: that would make the variable count as `-b` and beat `-X` and `-F`.
    #[arg(short = 'b', long = "bootstrap-server", global = true)]
    pub bootstrap: Option<String>,
    /// A Java client property, `key=value` (repeatable), e.g. `-X linger.ms=20`. Applied after
    /// `-F` and before the command's own options.
    #[arg(short = 'X', value_name = "KEY=VALUE", global = true)]
    pub properties: Vec<String>,
    /// A Java `.properties` file of client properties (`key=value` lines, `#` comments).
    #[arg(short = 'F', long = "config-file", value_name = "FILE", global = true)]
    pub config_file: Option<PathBuf>,
    /// No progress or summary lines on stderr (errors are still printed).
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write records read from stdin or a file, one per line (or per `--delimiter`).
    Produce(ProduceArgs),
    /// Read records and print them with a template or as JSON lines.
    Consume(ConsumeArgs),
    /// The cluster (id, controller, brokers) and every topic with its partitions.
    Metadata,
    /// List, describe, create or delete topics; add partitions; delete records.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Describe or change topic and broker configs.
    #[command(subcommand)]
    Configs(ConfigsCommand),
    /// List, describe or delete consumer groups; reset or delete their offsets.
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// A topic's earliest and latest offsets, or a group's committed offsets and lag.
    #[command(subcommand)]
    Offsets(OffsetsCommand),
    /// Copy a topic exactly once: a read_committed group consumer and a transactional producer
    /// that commits the consumer's offsets in each transaction.
    Copy(CopyArgs),
    /// Measure producing or consuming throughput and latency.
    #[command(subcommand)]
    Perf(PerfCommand),
    /// Kafka's VerifiableProducer: same arguments, same JSON lines (for Kafka's system tests).
    VerifiableProducer(crate::verifiable::producer::VerifiableProducerArgs),
    /// Kafka's VerifiableConsumer: same arguments, same JSON lines (for Kafka's system tests).
    VerifiableConsumer(crate::verifiable::consumer::VerifiableConsumerArgs),
    /// Kafka's TransactionalMessageCopier: same arguments, same JSON lines (for Kafka's system
    /// tests).
    TransactionalMessageCopier(crate::verifiable::copier::CopierArgs),
}

/// `produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// The topic to write to.
    #[arg(short = 't', long)]
    pub topic: String,
    /// Read records from this file instead of stdin.
    pub file: Option<PathBuf>,
    /// Write every record to this partition (default: the partitioner: murmur2 of the key,
    /// sticky for keyless records).
    #[arg(short = 'p', long)]
    pub partition: Option<i32>,
    /// The byte that ends a record (escapes: `\n`, `\t`, `\r`, `\0`, `\\`).
    #[arg(short = 'D', long, default_value = "\\n")]
    pub delimiter: String,
    /// Split each record into key and value at the first occurrence of this string
    /// (escapes as above); a record without it fails.
    #[arg(short = 'K', long = "key-delimiter")]
    pub key_delimiter: Option<String>,
    /// Each record starts with headers, ended by `--headers-delimiter`:
    /// `k1:v1,k2:v2<TAB>[key<key-delimiter>]value`. A header without `:` has a null value.
    #[arg(long)]
    pub parse_headers: bool,
    /// Ends the headers part of a record (with `--parse-headers`).
    #[arg(long, default_value = "\\t")]
    pub headers_delimiter: String,
    /// Separates headers (with `--parse-headers`).
    #[arg(long, default_value = ",")]
    pub headers_separator: String,
    /// Separates a header's key from its value (with `--parse-headers`).
    #[arg(long, default_value = ":")]
    pub headers_key_separator: String,
    /// A header added to every record, `key=value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// A key or value equal to this string is written as null (a null value is a tombstone).
    #[arg(long)]
    pub null_marker: Option<String>,
    /// `acks`: 0, 1 or all.
    #[arg(short = 'a', long)]
    pub acks: Option<String>,
    /// `compression.type`: none, gzip, snappy, lz4 or zstd.
    #[arg(short = 'z', long)]
    pub compression: Option<String>,
    /// `enable.idempotence`: true or false (default true, as Java's).
    #[arg(long)]
    pub idempotence: Option<bool>,
    /// Write in transactions with this `transactional.id`; with `--transaction-records`, one
    /// transaction per that many records, otherwise one for the whole input.
    #[arg(long)]
    pub transactional_id: Option<String>,
    /// Records per transaction (with `--transactional-id`).
    #[arg(long)]
    pub transaction_records: Option<u64>,
    /// The largest record accepted from the input, in bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub max_record_bytes: usize,
}

/// `consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// The topics to read (repeatable; one with `--partition`).
    #[arg(short = 't', long = "topic", required = true)]
    pub topics: Vec<String>,
    /// Read as a member of this consumer group (subscribe); offsets are committed.
    #[arg(short = 'g', long)]
    pub group: Option<String>,
    /// Read only these partitions (repeatable or comma-separated); without a group only.
    #[arg(short = 'p', long = "partition", value_delimiter = ',')]
    pub partitions: Vec<i32>,
    /// Where to start: `beginning`, `end`, `stored` (the group's committed offsets, else
    /// `end`), an offset `N`, `-N` (N records before the end), or `@MS` (the first record at or
    /// after MS milliseconds since the epoch). With a group, only `beginning`/`end`/`stored`
    /// (where the group has committed nothing). Default: `beginning` without a group,
    /// `stored` with one.
    // `-o -10`, as kcat users type it, not `-o=-10`.
    #[arg(short = 'o', long, allow_negative_numbers = true)]
    pub offset: Option<String>,
    /// Stop after this many records.
    #[arg(short = 'c', long)]
    pub count: Option<u64>,
    /// Stop at the end of every partition, as it was when reading started.
    #[arg(short = 'e', long)]
    pub exit_at_end: bool,
    /// Give up after this long (exit code 4 if `--count` was given and not reached).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Read only committed transactions (`isolation.level=read_committed`).
    #[arg(long)]
    pub read_committed: bool,
    /// Output template: %t topic, %p partition, %o offset, %k key, %v value, %h headers
    /// (`k=v,k2=v2`), %T timestamp (ms), %K key length, %S value length, %% a percent sign;
    /// escapes `\n`, `\t`, `\r`, `\0`, `\\`. A null key or value prints as nothing (or `--null-marker`).
    #[arg(short = 'f', long, default_value = "%v\\n", conflicts_with = "json")]
    pub format: String,
    /// Print one JSON object per record: topic, partition, offset, timestamp, key, value,
    /// headers (keys and values as UTF-8 strings, lossily; null stays null).
    #[arg(short = 'J', long)]
    pub json: bool,
    /// What a null key or value prints as with `--format`.
    #[arg(long, default_value = "")]
    pub null_marker: String,
}

/// `topics`.
#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Every topic's name, one per line.
    List {
        /// Include internal topics (`__consumer_offsets`, ...).
        #[arg(long)]
        all: bool,
    },
    /// Partitions, leaders, replicas and in-sync replicas of topics.
    Describe {
        /// The topics.
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Create a topic; returns once every partition's leader serves it.
    Create {
        /// The topic.
        topic: String,
        /// Number of partitions.
        #[arg(short = 'p', long, default_value_t = 1)]
        partitions: i32,
        /// Replication factor.
        #[arg(short = 'r', long, default_value_t = 1)]
        replication_factor: i16,
        /// A topic config, `key=value` (repeatable), e.g. `--config cleanup.policy=compact`.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// Delete topics.
    Delete {
        /// The topics.
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Add partitions to a topic.
    AddPartitions {
        /// The topic.
        topic: String,
        /// The new total number of partitions (more than now).
        #[arg(short = 'p', long)]
        partitions: i32,
    },
    /// Delete the records before an offset (moves the log start offset).
    DeleteRecords {
        /// The topic.
        topic: String,
        /// Only these partitions (repeatable or comma-separated; default: every partition).
        #[arg(short = 'p', long = "partition", value_delimiter = ',')]
        partitions: Vec<i32>,
        /// Delete the records before this offset; `end` deletes every record.
        #[arg(long)]
        before: String,
    },
}

/// `configs`.
#[derive(Debug, Subcommand)]
pub enum ConfigsCommand {
    /// Every config of a topic or broker: key, value, source (topic, dynamic-broker,
    /// static-broker, default, ...). Secret values are never shown.
    Describe(ConfigTarget),
    /// Set and delete configs of a topic or broker; others are left as they are.
    Alter {
        /// Which topic or broker.
        #[command(flatten)]
        target: ConfigTarget,
        /// Set a config, `key=value` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Delete a config, back to its default (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
}

/// A topic or a broker, for `configs`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ConfigTarget {
    /// A topic.
    #[arg(long)]
    pub topic: Option<String>,
    /// A broker, by node id.
    #[arg(long)]
    pub broker: Option<i32>,
}

/// `groups`.
#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Every group: id, state, protocol type.
    List,
    /// Groups' state, assignor and members with their assigned partitions.
    Describe {
        /// The groups.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Delete groups that have no members, with their committed offsets.
    Delete {
        /// The groups.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Set a group's committed offsets for a topic (the group must have no members).
    ResetOffsets {
        /// The group.
        group: String,
        /// The topic.
        #[arg(short = 't', long)]
        topic: String,
        /// Only these partitions (repeatable or comma-separated; default: every partition).
        #[arg(short = 'p', long = "partition", value_delimiter = ',')]
        partitions: Vec<i32>,
        /// Where to: `earliest`, `latest`, an offset `N`, or `@MS` (the first record at or after
        /// MS milliseconds since the epoch; the end where there is none).
        #[arg(long)]
        to: String,
    },
    /// Delete a group's committed offsets for a topic (no member may be consuming it).
    DeleteOffsets {
        /// The group.
        group: String,
        /// The topic.
        #[arg(short = 't', long)]
        topic: String,
        /// Only these partitions (repeatable or comma-separated; default: every partition).
        #[arg(short = 'p', long = "partition", value_delimiter = ',')]
        partitions: Vec<i32>,
    },
}

/// `offsets`.
#[derive(Debug, Subcommand)]
pub enum OffsetsCommand {
    /// Earliest and latest offset of each partition of a topic.
    Topic {
        /// The topic.
        topic: String,
        /// Latest = the last stable offset (what read_committed readers can reach).
        #[arg(long)]
        read_committed: bool,
    },
    /// A group's committed offset, the latest offset and the lag of each partition it committed.
    Group {
        /// The group.
        group: String,
    },
}

/// `copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The topic to read.
    #[arg(long)]
    pub from: String,
    /// The topic to write (same partition as the source record; it needs at least as many
    /// partitions).
    #[arg(long)]
    pub to: String,
    /// The consumer group whose committed offsets say how far the copy got.
    #[arg(short = 'g', long)]
    pub group: String,
    /// The producer's `transactional.id` (default `<group>-copier`). A restarted copy with the
    /// same id fences the previous one and aborts its open transaction.
    #[arg(long)]
    pub transactional_id: Option<String>,
    /// Stop once every source partition is copied up to its end (meant for a single copier).
    #[arg(short = 'e', long)]
    pub exit_at_end: bool,
    /// Give up after this long.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
}

/// `perf`.
#[derive(Debug, Subcommand)]
pub enum PerfCommand {
    /// Produce generated records; report rate and acknowledgement latency percentiles.
    Produce(PerfProduceArgs),
    /// Consume a topic from the beginning; report rate.
    Consume(PerfConsumeArgs),
}

/// `perf produce`.
#[derive(Debug, Args)]
pub struct PerfProduceArgs {
    /// The topic to write to.
    #[arg(short = 't', long)]
    pub topic: String,
    /// How many records.
    #[arg(short = 'n', long)]
    pub num_records: u64,
    /// Value size in bytes.
    #[arg(short = 's', long, default_value_t = 100)]
    pub record_size: usize,
    /// Records per second at most (default: as fast as possible).
    #[arg(long)]
    pub throughput: Option<u64>,
    /// `acks`: 0, 1 or all.
    #[arg(short = 'a', long)]
    pub acks: Option<String>,
    /// `compression.type`.
    #[arg(short = 'z', long)]
    pub compression: Option<String>,
}

/// `perf consume`.
#[derive(Debug, Args)]
pub struct PerfConsumeArgs {
    /// The topic to read.
    #[arg(short = 't', long)]
    pub topic: String,
    /// Stop after this many records.
    #[arg(short = 'n', long)]
    pub num_records: u64,
    /// Read only committed transactions.
    #[arg(long)]
    pub read_committed: bool,
    /// Give up after this long (exit code 4).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Give up when no record has come for this long, in ms (exit code 4): the topic holds fewer
    /// records than `--num-records` (Kafka's `ConsumerPerformance --timeout`).
    #[arg(long = "timeout", value_name = "MS", default_value_t = 10_000)]
    pub idle_timeout: u64,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_grammar_is_consistent() {
        // Duplicate short flags, bad defaults and the like, for every subcommand.
        super::Cli::command().debug_assert();
    }
}
