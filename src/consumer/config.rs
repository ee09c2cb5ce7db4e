//! Consumer settings: the Java consumer's property names and defaults (Kafka 4.x), for manual
//! partition assignment.
//!
//! Consumer groups are not available yet. Rather than accept group settings and silently ignore
//! them (a user would believe offsets are committed when they are not), every group property
//! (`group.id`, `enable.auto.commit`, `session.timeout.ms`, ...) is rejected with an error saying
//! so. Unknown keys are errors too, as for every josefk config.

use std::time::Duration;

use crate::config::{parse_bool, parse_ms, parse_num, ClientConfig};
use crate::error::{Error, Result};
use crate::record::IsolationLevel;

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

/// Group-management properties: rejected until josefk has consumer groups.
const GROUP_PROPERTIES: &[&str] = &[
    "group.id",
    "group.instance.id",
    "group.protocol",
    "group.remote.assignor",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "partition.assignment.strategy",
    "exclude.internal.topics",
    "allow.auto.create.topics",
];

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
    /// `check.crcs`: verify each fetched batch's CRC-32C. Default true.
    pub check_crcs: bool,
    /// `client.rack`: sent with fetches (v11+) for rack-aware brokers; josefk still fetches from the
    /// leader only (no follower fetching yet). Default empty.
    pub client_rack: String,
    /// `default.api.timeout.ms`: bound on the metadata and offset lookups of `assign` and
    /// `position`. Default 60 s.
    pub default_api_timeout: Duration,
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
            check_crcs: true,
            client_rack: String::new(),
            default_api_timeout: Duration::from_millis(60_000),
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
            "check.crcs" => self.check_crcs = parse_bool(key, value)?,
            "client.rack" => self.client_rack = value.trim().to_owned(),
            "default.api.timeout.ms" => self.default_api_timeout = parse_ms(key, value)?,
            _ if GROUP_PROPERTIES.contains(&key) => {
                return Err(Error::Config(format!(
                    "`{key}`: consumer groups are not available yet in josefk; assign partitions \
                     with `Consumer::assign` and track offsets in the application"
                )))
            }
            _ => {
                if !self.client.set(key, value)? {
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
        Ok(())
    }
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
        assert!(c.check_crcs);
    }

    #[test]
    fn java_properties_map_onto_fields() {
        let c = props(&[
            ("isolation.level", "read_committed"),
            ("auto.offset.reset", "earliest"),
            ("fetch.max.wait.ms", "100"),
            ("max.poll.records", "7"),
            ("check.crcs", "false"),
            ("client.rack", "r1"),
            ("client.id", "c"),
        ])
        .unwrap();
        assert_eq!(c.isolation_level, IsolationLevel::ReadCommitted);
        assert_eq!(c.auto_offset_reset, AutoOffsetReset::Earliest);
        assert_eq!(c.fetch_max_wait, Duration::from_millis(100));
        assert_eq!(c.max_poll_records, 7);
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
    fn group_settings_are_rejected_as_not_available_yet() {
        for key in ["group.id", "enable.auto.commit", "session.timeout.ms"] {
            let e = props(&[(key, "x")]).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(key), "{text}");
            assert!(
                text.contains("consumer groups are not available yet"),
                "{text}"
            );
        }
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
            ("nonsense", "1", "`nonsense`"),
        ] {
            let e = props(&[(k, v)]).unwrap_err();
            assert!(e.to_string().contains(needle), "{k}={v}: {e}");
        }
        assert!(ConsumerConfig::from_properties([]).is_err());
    }
}
