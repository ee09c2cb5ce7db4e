//! Consumer settings: the Java consumer's property names and defaults (Kafka 4.x), for manual
//! assignment and for consumer groups of either protocol (`group.protocol`).
//!
//! Unknown keys are errors, as for every josefk config. Properties that do not apply to the
//! chosen group protocol are refused as Java refuses them (`session.timeout.ms`,
//! `heartbeat.interval.ms`, `partition.assignment.strategy` with `consumer`;
//! `group.remote.assignor` with `classic`).

use std::time::Duration;

use crate::config::{parse_bool, parse_ms, parse_num, ClientConfig};
use crate::error::{Error, Result};
use crate::record::IsolationLevel;
use crate::state::assignor::Assignor;
use crate::Guarantee;

/// `auto.offset.reset`: where a partition without a valid position starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AutoOffsetReset {
    /// The log start offset: everything still retained.
    Earliest,
    /// The log end (the last stable offset under `read_committed`): only new records. Java's
    /// default.
    #[default]
    Latest,
    /// No automatic reset: `poll` fails naming the partition until the application calls
    /// [`Consumer::seek`](crate::consumer::Consumer::seek).
    None,
}

/// When a group member's offsets are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CommitMode {
    /// Only when the application calls `commit` / `commit_offsets` (`enable.auto.commit=false`).
    Manual,
    /// Java's auto-commit (`enable.auto.commit=true`, the default): every
    /// `auto.commit.interval.ms`, `poll` starts committing the positions reached by the records
    /// the previous polls returned (in the background, as Java's auto-commit: the poll does not
    /// wait for the answer, and one commit is out at a time), and they are committed again,
    /// waited for, before partitions are revoked and on close. Records are committed after the
    /// application had them until the next poll: at-least-once when processing finishes before
    /// polling again.
    #[default]
    AutoAfterPoll,
    /// At-most-once: `poll` commits the positions past the records it is about to return *before*
    /// returning them. A crash while processing loses the unprocessed records; none is delivered
    /// twice. If the commit fails, `poll` returns the error and the records are delivered again by
    /// the next `poll` (they were never handed out). No Java property; set with
    /// [`ConsumerConfig::commit_mode`] or [`Guarantee::AtMostOnce`].
    BeforeProcessing,
}

/// `group.protocol`: how a subscribed consumer takes part in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup/Heartbeat; the group leader assigns partitions on the client side.
    /// Java's default.
    #[default]
    Classic,
    /// KIP-848: ConsumerGroupHeartbeat; the broker assigns partitions and rebalances
    /// incrementally, without stopping the members whose partitions do not move.
    Consumer,
}

/// Consumer settings. Every field documents its default and Java property.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ConsumerConfig {
    /// Connection settings (`bootstrap.servers`, `client.id`, `request.timeout.ms`, ...).
    pub client: ClientConfig,
    /// `isolation.level`: `read_uncommitted` (default) or `read_committed`.
    pub isolation_level: IsolationLevel,
    /// `auto.offset.reset`: `earliest`, `latest` (default) or `none`.
    pub auto_offset_reset: AutoOffsetReset,
    /// `fetch.min.bytes`: the broker holds a fetch until this much data is available (or
    /// `fetch.max.wait.ms` passes). Default 1.
    pub fetch_min_bytes: usize,
    /// `fetch.max.wait.ms`: how long the broker may hold a fetch waiting for `fetch.min.bytes`.
    /// Default 500 ms. Fetch requests get this on top of `request.timeout.ms`.
    pub fetch_max_wait: Duration,
    /// `max.partition.fetch.bytes`: data per partition per fetch (a larger first batch is still
    /// returned whole, KIP-74). Default 1 MiB.
    pub max_partition_fetch_bytes: usize,
    /// `fetch.max.bytes`: data per fetch response (same KIP-74 exception). Default 50 MiB. Must not
    /// exceed `receive.message.max.bytes`.
    pub fetch_max_bytes: usize,
    /// `max.poll.records`: most records one `poll` returns. Default 500.
    pub max_poll_records: usize,
    /// `max.poll.decompressed.bytes` (josefk's own; Java has no equivalent): the most bytes the
    /// compressed batches behind one `poll`'s records may decompress to. Records keep their
    /// batch's decompressed buffer alive, so this bounds the memory one poll's records pin beyond
    /// the fetched bytes themselves (which `fetch.max.bytes` bounds). A poll stops before a batch
    /// that does not fit beside what it already returns; a single batch larger than this fails
    /// `poll` naming its partition and offset. `fetch.max.bytes` is not reused because it counts
    /// wire bytes and a larger first batch is still returned (KIP-74). Default 128 MiB.
    pub max_poll_decompressed_bytes: usize,
    /// `check.crcs`: verify each fetched batch's CRC-32C. Default true.
    pub check_crcs: bool,
    /// `client.rack`: sent with fetches (v11+), so that a broker with a rack-aware
    /// `replica.selector.class` can point this consumer at a replica in its rack, which it then
    /// fetches from until `metadata.max.age.ms` has passed or that replica errs (KIP-392, as
    /// Java); also given to the group's rack-aware assignors. Default empty.
    pub client_rack: String,
    /// `default.api.timeout.ms`: bound on the metadata and offset lookups of `assign`,
    /// `position`, `seek_to_beginning`/`seek_to_end` and those `poll` starts in the background,
    /// and on offset commits; it replaces [`crate::ClientConfig::default_api_timeout`] for this
    /// consumer. Default 60 s.
    pub default_api_timeout: Duration,
    /// `group.id`: the consumer group, needed for `subscribe` and offset commits. Default none.
    pub group_id: Option<String>,
    /// `group.instance.id`: makes this member static (KIP-345): a restart within
    /// `session.timeout.ms` gets the same partitions back without a rebalance. Default none.
    pub group_instance_id: Option<String>,
    /// `enable.auto.commit` (default true) and the josefk-only before-processing mode; see
    /// [`CommitMode`]. Ignored without `group.id`.
    pub commit_mode: CommitMode,
    /// `auto.commit.interval.ms`: the auto-commit period. Default 5 s.
    pub auto_commit_interval: Duration,
    /// `session.timeout.ms`: how long the coordinator waits for a heartbeat before removing the
    /// member. Default 45 s (the broker bounds it with `group.min/max.session.timeout.ms`).
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms`: the heartbeat period. Default 3 s; must be below the session
    /// timeout.
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms`: the longest time between polls before the member leaves the group;
    /// also the rebalance timeout sent in JoinGroup. Default 300 s.
    pub max_poll_interval: Duration,
    /// `partition.assignment.strategy`: assignors in preference order: `range`, `roundrobin`,
    /// `cooperative-sticky` (Java class names are accepted too). Default `range,
    /// cooperative-sticky`, Java's default, which rebalances eagerly until every member offers
    /// `cooperative-sticky` alone.
    pub partition_assignment_strategy: Vec<Assignor>,
    /// `group.protocol`: `classic` (default) or `consumer` (KIP-848). With `consumer`, the broker
    /// decides the heartbeat interval and the session timeout, so `session.timeout.ms`,
    /// `heartbeat.interval.ms` and `partition.assignment.strategy` must be left at their defaults
    /// (Java refuses them when set).
    pub group_protocol: GroupProtocol,
    /// `group.remote.assignor`: the broker-side assignor of a `consumer` group (`uniform`,
    /// `range`); default none (the broker's first configured one). Only with
    /// `group.protocol=consumer`.
    pub group_remote_assignor: Option<String>,
}

impl ConsumerConfig {
    /// Defaults with the given bootstrap servers.
    pub fn new(bootstrap_servers: &str) -> Self {
        ConsumerConfig::with_client(ClientConfig::new(bootstrap_servers))
    }

    /// Defaults over a client config.
    pub fn with_client(client: ClientConfig) -> Self {
        ConsumerConfig {
            client,
            isolation_level: IsolationLevel::ReadUncommitted,
            auto_offset_reset: AutoOffsetReset::Latest,
            fetch_min_bytes: 1,
            fetch_max_wait: Duration::from_millis(500),
            max_partition_fetch_bytes: 1024 * 1024,
            fetch_max_bytes: 50 * 1024 * 1024,
            max_poll_records: 500,
            max_poll_decompressed_bytes: 128 * 1024 * 1024,
            check_crcs: true,
            client_rack: String::new(),
            default_api_timeout: Duration::from_millis(60_000),
            group_id: None,
            group_instance_id: None,
            commit_mode: CommitMode::AutoAfterPoll,
            auto_commit_interval: Duration::from_millis(5_000),
            session_timeout: Duration::from_millis(45_000),
            heartbeat_interval: Duration::from_millis(3_000),
            max_poll_interval: Duration::from_millis(300_000),
            partition_assignment_strategy: vec![Assignor::Range, Assignor::CooperativeSticky],
            group_protocol: GroupProtocol::Classic,
            group_remote_assignor: None,
        }
    }

    /// Builds a config from Java consumer properties and validates it. Unknown keys, and group
    /// properties, are errors.
    pub fn from_properties<'a, I>(props: I) -> Result<Self>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut config = ConsumerConfig::with_client(ClientConfig::default());
        for (key, value) in props {
            config.set(key, value)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Builds a config from the text of a Java consumer's `.properties` file (client-level keys
    /// included).
    ///
    /// The text is read as `java.util.Properties` reads it (`key=value`, `key: value`, `#`/`!`
    /// comments, backslash continuations and escapes). Keys only the Java client has (serializer,
    /// interceptor and other class names, JMX metrics settings: see the crate's README) are
    /// skipped with one `tracing` warning naming them; any other key josefk does not know, and
    /// any bad value, is an [`Error::Config`] naming it.
    pub fn from_properties_str(text: &str) -> Result<Self> {
        let mut config = ConsumerConfig::with_client(ClientConfig::default());
        crate::properties::apply(text, "consumer", |k, v| config.set(k, v).map(|()| true))?;
        config.validate()?;
        Ok(config)
    }

    /// [`ConsumerConfig::from_properties_str`] on the contents of the file at `path`.
    pub fn from_properties_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::from_properties_str(&crate::properties::read_file(path.as_ref())?)
    }

    /// Sets one Java consumer property (client-level ones included).
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "isolation.level" => {
                self.isolation_level = match value.trim() {
                    "read_uncommitted" => IsolationLevel::ReadUncommitted,
                    "read_committed" => IsolationLevel::ReadCommitted,
                    _ => {
                        return Err(Error::Config(format!(
                    "`isolation.level` must be read_uncommitted or read_committed, got `{value}`"
                )))
                    }
                }
            }
            "auto.offset.reset" => {
                self.auto_offset_reset = match value.trim() {
                    "earliest" => AutoOffsetReset::Earliest,
                    "latest" => AutoOffsetReset::Latest,
                    "none" => AutoOffsetReset::None,
                    _ => {
                        return Err(Error::Config(format!(
                            "`auto.offset.reset` must be earliest, latest or none, got `{value}`"
                        )))
                    }
                }
            }
            "fetch.min.bytes" => self.fetch_min_bytes = parse_num(key, value)?,
            "fetch.max.wait.ms" => self.fetch_max_wait = parse_ms(key, value)?,
            "max.partition.fetch.bytes" => self.max_partition_fetch_bytes = parse_num(key, value)?,
            "fetch.max.bytes" => self.fetch_max_bytes = parse_num(key, value)?,
            "max.poll.records" => self.max_poll_records = parse_num(key, value)?,
            "max.poll.decompressed.bytes" => {
                self.max_poll_decompressed_bytes = parse_num(key, value)?
            }
            "check.crcs" => self.check_crcs = parse_bool(key, value)?,
            "client.rack" => self.client_rack = value.trim().to_owned(),
            "default.api.timeout.ms" => self.default_api_timeout = parse_ms(key, value)?,
            "group.id" => self.group_id = non_empty(value),
            "group.instance.id" => self.group_instance_id = non_empty(value),
            "enable.auto.commit" => {
                self.commit_mode = if parse_bool(key, value)? {
                    CommitMode::AutoAfterPoll
                } else {
                    CommitMode::Manual
                }
            }
            "auto.commit.interval.ms" => self.auto_commit_interval = parse_ms(key, value)?,
            "session.timeout.ms" => self.session_timeout = parse_ms(key, value)?,
            "heartbeat.interval.ms" => self.heartbeat_interval = parse_ms(key, value)?,
            "max.poll.interval.ms" => self.max_poll_interval = parse_ms(key, value)?,
            "partition.assignment.strategy" => {
                self.partition_assignment_strategy = parse_assignors(value)?
            }
            "group.protocol" => {
                let v = value.trim();
                self.group_protocol = if v.eq_ignore_ascii_case("classic") {
                    GroupProtocol::Classic
                } else if v.eq_ignore_ascii_case("consumer") {
                    GroupProtocol::Consumer
                } else {
                    return Err(Error::Config(format!(
                        "`group.protocol` must be classic or consumer, got `{value}`"
                    )));
                }
            }
            "group.remote.assignor" => self.group_remote_assignor = non_empty(value),
            // Java settings with one value josefk always behaves as: that value is accepted, the
            // other is refused, so a file asking for the other behaviour is not silently ignored.
            "allow.auto.create.topics" => {
                if parse_bool(key, value)? {
                    return Err(Error::Config(
                        "`allow.auto.create.topics=true` is not supported: josefk's consumer \
                         never asks the broker to create a topic (create it first, or set false)"
                            .into(),
                    ));
                }
            }
            "exclude.internal.topics" => {
                if !parse_bool(key, value)? {
                    return Err(Error::Config(
                        "`exclude.internal.topics=false` is not supported: josefk's pattern \
                         subscriptions never select internal topics (subscribe to them by name)"
                            .into(),
                    ));
                }
            }
            _ => {
                if !self.client.set_if_known(key, value)? {
                    return Err(Error::Config(format!("unknown consumer property `{key}`")));
                }
            }
        }
        Ok(())
    }

    /// Sets `isolation.level`.
    pub fn isolation_level(mut self, level: IsolationLevel) -> Self {
        self.isolation_level = level;
        self
    }

    /// Sets `auto.offset.reset`.
    pub fn auto_offset_reset(mut self, reset: AutoOffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }

    /// Sets `fetch.max.wait.ms`.
    pub fn fetch_max_wait(mut self, wait: Duration) -> Self {
        self.fetch_max_wait = wait;
        self
    }

    /// Sets `fetch.min.bytes`.
    pub fn fetch_min_bytes(mut self, bytes: usize) -> Self {
        self.fetch_min_bytes = bytes;
        self
    }

    /// Sets `max.partition.fetch.bytes`.
    pub fn max_partition_fetch_bytes(mut self, bytes: usize) -> Self {
        self.max_partition_fetch_bytes = bytes;
        self
    }

    /// Sets `fetch.max.bytes`.
    pub fn fetch_max_bytes(mut self, bytes: usize) -> Self {
        self.fetch_max_bytes = bytes;
        self
    }

    /// Sets `max.poll.records`.
    pub fn max_poll_records(mut self, records: usize) -> Self {
        self.max_poll_records = records;
        self
    }

    /// Sets `max.poll.decompressed.bytes`.
    pub fn max_poll_decompressed_bytes(mut self, bytes: usize) -> Self {
        self.max_poll_decompressed_bytes = bytes;
        self
    }

    /// Sets `check.crcs`.
    pub fn check_crcs(mut self, check: bool) -> Self {
        self.check_crcs = check;
        self
    }

    /// Sets `default.api.timeout.ms`.
    pub fn default_api_timeout(mut self, timeout: Duration) -> Self {
        self.default_api_timeout = timeout;
        self
    }

    /// Sets `group.id`.
    pub fn group_id(mut self, group: impl Into<String>) -> Self {
        self.group_id = Some(group.into());
        self
    }

    /// Sets `group.instance.id` (static membership).
    pub fn group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }

    /// Sets when offsets are committed.
    pub fn commit_mode(mut self, mode: CommitMode) -> Self {
        self.commit_mode = mode;
        self
    }

    /// Sets `session.timeout.ms`.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// Sets `heartbeat.interval.ms`.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Sets `max.poll.interval.ms`.
    pub fn max_poll_interval(mut self, interval: Duration) -> Self {
        self.max_poll_interval = interval;
        self
    }

    /// Sets `auto.commit.interval.ms`.
    pub fn auto_commit_interval(mut self, interval: Duration) -> Self {
        self.auto_commit_interval = interval;
        self
    }

    /// Sets `group.protocol`. With [`GroupProtocol::Consumer`] the broker assigns partitions
    /// (KIP-848); the consumer is used the same way.
    ///
    /// ```no_run
    /// # async fn demo() -> josefk::Result<()> {
    /// use std::time::Duration;
    /// use josefk::consumer::{Consumer, ConsumerConfig, GroupProtocol};
    ///
    /// let config = ConsumerConfig::new("127.0.0.1:9092")
    ///     .group_id("billing")
    ///     .group_protocol(GroupProtocol::Consumer)
    ///     .group_remote_assignor("uniform");
    /// let mut consumer = Consumer::connect(config).await?;
    /// consumer.subscribe(&["events"])?;
    /// let records = consumer.poll(Duration::from_millis(500)).await?;
    /// # let _ = records; Ok(()) }
    /// ```
    pub fn group_protocol(mut self, protocol: GroupProtocol) -> Self {
        self.group_protocol = protocol;
        self
    }

    /// Sets `group.remote.assignor` (`consumer` groups only).
    pub fn group_remote_assignor(mut self, assignor: impl Into<String>) -> Self {
        self.group_remote_assignor = Some(assignor.into());
        self
    }

    /// Sets `partition.assignment.strategy`.
    pub fn partition_assignment_strategy(mut self, assignors: Vec<Assignor>) -> Self {
        self.partition_assignment_strategy = assignors;
        self
    }

    /// Configures the consumer side of a delivery guarantee; every setting can still be changed
    /// afterwards.
    ///
    /// - [`Guarantee::AtMostOnce`]: offsets committed before processing
    ///   ([`CommitMode::BeforeProcessing`]).
    /// - [`Guarantee::AtLeastOnce`]: offsets committed after processing: Java's auto-commit at the
    ///   next poll ([`CommitMode::AutoAfterPoll`]); call `commit` after processing for a tighter
    ///   window.
    /// - [`Guarantee::ExactlyOnce`]: `isolation.level=read_committed` and no consumer commits
    ///   ([`CommitMode::Manual`]): offsets go through the producer's transaction with
    ///   `send_offsets_to_transaction`.
    pub fn guarantee(mut self, guarantee: Guarantee) -> Self {
        match guarantee {
            Guarantee::AtMostOnce => {
                self.commit_mode = CommitMode::BeforeProcessing;
            }
            Guarantee::AtLeastOnce => {
                self.commit_mode = CommitMode::AutoAfterPoll;
            }
            Guarantee::ExactlyOnce => {
                self.commit_mode = CommitMode::Manual;
                self.isolation_level = IsolationLevel::ReadCommitted;
            }
        }
        self
    }

    /// Checks every rule, naming the properties involved.
    pub fn validate(&self) -> Result<()> {
        self.client.validate()?;
        let wire_max = i32::MAX as usize;
        for (key, value) in [
            ("fetch.max.bytes", self.fetch_max_bytes),
            ("max.partition.fetch.bytes", self.max_partition_fetch_bytes),
            ("max.poll.records", self.max_poll_records),
        ] {
            if value == 0 {
                return Err(Error::Config(format!("`{key}` must be greater than 0")));
            }
            if value > wire_max {
                return Err(Error::Config(format!(
                    "`{key}` must be at most {wire_max}, got {value}"
                )));
            }
        }
        if self.max_poll_decompressed_bytes == 0 {
            return Err(Error::Config(
                "`max.poll.decompressed.bytes` must be greater than 0".into(),
            ));
        }
        if self.fetch_min_bytes > wire_max {
            return Err(Error::Config(format!(
                "`fetch.min.bytes` must be at most {wire_max}"
            )));
        }
        if self.fetch_max_wait.as_millis() > i32::MAX as u128 {
            return Err(Error::Config(format!(
                "`fetch.max.wait.ms` must be at most {} ms",
                i32::MAX
            )));
        }
        if self.fetch_max_bytes > self.client.max_response_size {
            return Err(Error::Config(format!(
                "`fetch.max.bytes` ({}) must not exceed `receive.message.max.bytes` ({}), or \
                 full fetch responses would be refused",
                self.fetch_max_bytes, self.client.max_response_size
            )));
        }
        if self.default_api_timeout.is_zero() {
            return Err(Error::Config(
                "`default.api.timeout.ms` must be greater than 0".into(),
            ));
        }
        self.validate_group()
    }

    fn validate_group(&self) -> Result<()> {
        for (key, value) in [
            ("session.timeout.ms", self.session_timeout),
            ("heartbeat.interval.ms", self.heartbeat_interval),
            ("max.poll.interval.ms", self.max_poll_interval),
            ("auto.commit.interval.ms", self.auto_commit_interval),
        ] {
            if value.is_zero() || value.as_millis() > i32::MAX as u128 {
                return Err(Error::Config(format!(
                    "`{key}` must be between 1 and {} ms, got {value:?}",
                    i32::MAX
                )));
            }
        }
        if self.heartbeat_interval >= self.session_timeout {
            return Err(Error::Config(format!(
                "`heartbeat.interval.ms` ({:?}) must be lower than `session.timeout.ms` ({:?})",
                self.heartbeat_interval, self.session_timeout
            )));
        }
        if self.partition_assignment_strategy.is_empty() {
            return Err(Error::Config(
                "`partition.assignment.strategy` must name at least one assignor".into(),
            ));
        }
        if self.group_instance_id.is_some() && self.group_id.is_none() {
            return Err(Error::Config("`group.instance.id` needs `group.id`".into()));
        }
        self.validate_group_protocol()
    }

    /// Java's rule: with `group.id`, properties of the other protocol cannot be set. josefk
    /// cannot tell a property set to its default from one left alone, so only values that differ
    /// from the default are refused.
    fn validate_group_protocol(&self) -> Result<()> {
        if self.group_id.is_none() {
            return Ok(());
        }
        let defaults = ConsumerConfig::with_client(ClientConfig::default());
        let mut refused = Vec::new();
        match self.group_protocol {
            GroupProtocol::Classic => {
                if self.group_remote_assignor.is_some() {
                    refused.push("group.remote.assignor");
                }
            }
            GroupProtocol::Consumer => {
                if self.partition_assignment_strategy != defaults.partition_assignment_strategy {
                    refused.push("partition.assignment.strategy");
                }
                if self.heartbeat_interval != defaults.heartbeat_interval {
                    refused.push("heartbeat.interval.ms");
                }
                if self.session_timeout != defaults.session_timeout {
                    refused.push("session.timeout.ms");
                }
            }
        }
        if refused.is_empty() {
            return Ok(());
        }
        let protocol = match self.group_protocol {
            GroupProtocol::Classic => "classic",
            GroupProtocol::Consumer => "consumer (the broker decides them)",
        };
        Err(Error::Config(format!(
            "{} cannot be set when group.protocol={protocol}",
            refused.join(", ")
        )))
    }
}

fn non_empty(value: &str) -> Option<String> {
    let v = value.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

/// Assignor names or Java class names, comma separated.
fn parse_assignors(value: &str) -> Result<Vec<Assignor>> {
    let mut out = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let short = match name.rsplit('.').next().unwrap_or(name) {
            "RangeAssignor" => "range",
            "RoundRobinAssignor" => "roundrobin",
            "CooperativeStickyAssignor" => "cooperative-sticky",
            other => other,
        };
        let assignor = Assignor::from_name(short).ok_or_else(|| {
            Error::Config(format!(
                "`partition.assignment.strategy`: unknown assignor `{name}` (josefk has range, \
                 roundrobin and cooperative-sticky)"
            ))
        })?;
        if !out.contains(&assignor) {
            out.push(assignor);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(extra: &[(&'static str, &'static str)]) -> Result<ConsumerConfig> {
        let mut all = vec![("bootstrap.servers", "h:1")];
        all.extend_from_slice(extra);
        ConsumerConfig::from_properties(all)
    }

    #[test]
    fn java_defaults() {
        let c = props(&[]).unwrap();
        assert_eq!(c.isolation_level, IsolationLevel::ReadUncommitted);
        assert_eq!(c.auto_offset_reset, AutoOffsetReset::Latest);
        assert_eq!(c.fetch_min_bytes, 1);
        assert_eq!(c.fetch_max_wait, Duration::from_millis(500));
        assert_eq!(c.max_partition_fetch_bytes, 1 << 20);
        assert_eq!(c.fetch_max_bytes, 50 << 20);
        assert_eq!(c.max_poll_records, 500);
        assert_eq!(c.max_poll_decompressed_bytes, 128 << 20);
        assert!(c.check_crcs);
    }

    #[test]
    fn java_properties_map_onto_fields() {
        let c = props(&[
            ("isolation.level", "read_committed"),
            ("auto.offset.reset", "earliest"),
            ("fetch.max.wait.ms", "100"),
            ("max.poll.records", "7"),
            ("max.poll.decompressed.bytes", "1048576"),
            ("check.crcs", "false"),
            ("client.rack", "r1"),
            ("client.id", "c"),
        ])
        .unwrap();
        assert_eq!(c.isolation_level, IsolationLevel::ReadCommitted);
        assert_eq!(c.auto_offset_reset, AutoOffsetReset::Earliest);
        assert_eq!(c.fetch_max_wait, Duration::from_millis(100));
        assert_eq!(c.max_poll_records, 7);
        assert_eq!(c.max_poll_decompressed_bytes, 1 << 20);
        assert!(!c.check_crcs);
        assert_eq!(c.client_rack, "r1");
        assert_eq!(c.client.client_id, "c");
        assert_eq!(
            props(&[("auto.offset.reset", "none")])
                .unwrap()
                .auto_offset_reset,
            AutoOffsetReset::None
        );
    }

    #[test]
    fn group_properties_map_onto_fields() {
        let c = props(&[]).unwrap();
        assert_eq!(c.group_id, None);
        assert_eq!(c.commit_mode, CommitMode::AutoAfterPoll);
        assert_eq!(c.session_timeout, Duration::from_secs(45));
        assert_eq!(c.heartbeat_interval, Duration::from_secs(3));
        assert_eq!(c.max_poll_interval, Duration::from_secs(300));
        assert_eq!(c.auto_commit_interval, Duration::from_secs(5));
        assert_eq!(
            c.partition_assignment_strategy,
            vec![Assignor::Range, Assignor::CooperativeSticky]
        );
        let c = props(&[
            ("group.id", "g"),
            ("group.instance.id", "i-1"),
            ("enable.auto.commit", "false"),
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "1000"),
            ("group.protocol", "classic"),
            (
                "partition.assignment.strategy",
                "org.apache.kafka.clients.consumer.CooperativeStickyAssignor, roundrobin",
            ),
        ])
        .unwrap();
        assert_eq!(c.group_id.as_deref(), Some("g"));
        assert_eq!(c.group_instance_id.as_deref(), Some("i-1"));
        assert_eq!(c.commit_mode, CommitMode::Manual);
        assert_eq!(c.session_timeout, Duration::from_secs(6));
        assert_eq!(
            c.partition_assignment_strategy,
            vec![Assignor::CooperativeSticky, Assignor::RoundRobin]
        );
    }

    #[test]
    fn guarantees_configure_commits_and_isolation() {
        let c = ConsumerConfig::new("h:1").guarantee(Guarantee::ExactlyOnce);
        assert_eq!(c.isolation_level, IsolationLevel::ReadCommitted);
        assert_eq!(c.commit_mode, CommitMode::Manual);
        let c = ConsumerConfig::new("h:1").guarantee(Guarantee::AtMostOnce);
        assert_eq!(c.commit_mode, CommitMode::BeforeProcessing);
        let c = ConsumerConfig::new("h:1").guarantee(Guarantee::AtLeastOnce);
        assert_eq!(c.commit_mode, CommitMode::AutoAfterPoll);
    }

    #[test]
    fn unsupported_group_settings_are_refused_with_the_reason() {
        for (k, v, needle) in [
            ("group.protocol", "next", "classic or consumer"),
            (
                "partition.assignment.strategy",
                "sticky",
                "unknown assignor",
            ),
            (
                "heartbeat.interval.ms",
                "50000",
                "lower than `session.timeout.ms`",
            ),
            ("group.instance.id", "x", "needs `group.id`"),
        ] {
            let e = props(&[(k, v)]).unwrap_err();
            assert!(e.to_string().contains(needle), "{k}={v}: {e}");
        }
    }

    #[test]
    fn settings_of_the_other_group_protocol_are_refused_as_java_does() {
        let c = props(&[
            ("group.id", "g"),
            ("group.protocol", "CONSUMER"),
            ("group.remote.assignor", "range"),
        ])
        .unwrap();
        assert_eq!(c.group_protocol, GroupProtocol::Consumer);
        assert_eq!(c.group_remote_assignor.as_deref(), Some("range"));
        for (k, v) in [
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "1000"),
            ("partition.assignment.strategy", "roundrobin"),
        ] {
            let e =
                props(&[("group.id", "g"), ("group.protocol", "consumer"), (k, v)]).unwrap_err();
            assert!(
                e.to_string().contains(&format!("{k} cannot be set")),
                "{k}: {e}"
            );
        }
        let e = props(&[("group.id", "g"), ("group.remote.assignor", "uniform")]).unwrap_err();
        assert!(
            e.to_string()
                .contains("group.remote.assignor cannot be set when group.protocol=classic"),
            "{e}"
        );
        // Without a group nothing is refused.
        props(&[
            ("group.protocol", "consumer"),
            ("session.timeout.ms", "10000"),
        ])
        .unwrap();
    }

    #[test]
    fn bad_values_and_unknown_keys_are_named() {
        for (k, v, needle) in [
            ("isolation.level", "read_dirty", "`isolation.level`"),
            ("auto.offset.reset", "smallest", "`auto.offset.reset`"),
            ("max.poll.records", "0", "`max.poll.records`"),
            ("fetch.max.bytes", "-5", "`fetch.max.bytes`"),
            ("fetch.max.bytes", "200000000", "receive.message.max.bytes"),
            ("check.crcs", "maybe", "check.crcs"),
            (
                "max.poll.decompressed.bytes",
                "0",
                "max.poll.decompressed.bytes",
            ),
            ("nonsense", "1", "`nonsense`"),
        ] {
            let e = props(&[(k, v)]).unwrap_err();
            assert!(e.to_string().contains(needle), "{k}={v}: {e}");
        }
        assert!(ConsumerConfig::from_properties([]).is_err());
    }
}
