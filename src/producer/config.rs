//! Producer settings: defaults and validation rules as the Java producer (Kafka 4.x) has them.
//!
//! The rules that tie settings together are the ones users trip over, so they are checked once, in
//! [`ProducerConfig::validate`], with messages naming the properties:
//!
//! - `transactional.id` implies idempotence; setting it with `enable.idempotence=false` is an error.
//! - Idempotence needs `acks=all`, `retries > 0` and `max.in.flight.requests.per.connection ≤ 5`
//!   (the broker remembers the last 5 batches per producer for de-duplication). When
//!   `enable.idempotence` was *not* set explicitly and another setting conflicts, idempotence is
//!   turned off instead, as the Java client does; when it *was* set explicitly, it is an error.
//!   `validate` does not change the config: the producer applies that rule when it connects.
//! - `delivery.timeout.ms ≥ linger.ms + request.timeout.ms`, so a batch gets at least one attempt.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::config::{parse_bool, parse_ms, parse_num, ClientConfig};
use crate::error::{Error, Result};

/// `acks`: how many replicas must have a batch before the broker answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Acks {
    /// `acks=0`: the broker does not answer. Nothing is retried; a record may be lost silently.
    None,
    /// `acks=1`: the leader has written it. Lost if the leader fails before followers copy it.
    Leader,
    /// `acks=all` (`-1`): every in-sync replica has it. Java's default since Kafka 3.0.
    All,
}

impl Acks {
    /// The wire value.
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// `compression.type`: how the producer compresses record batches. Consumers read every codec
/// whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compression {
    /// `none` (the default).
    #[default]
    None,
    /// `gzip`.
    Gzip,
    /// `snappy` (snappy-java's xerial framing, as the Java client writes it).
    Snappy,
    /// `lz4` (the LZ4 frame format).
    Lz4,
    /// `zstd` (josefk compresses at zstd's fastest level).
    Zstd,
}

impl Compression {
    /// The `compression.type` name: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub fn name(self) -> &'static str {
        self.codec().name()
    }

    /// The codec the record-batch encoder uses.
    pub(crate) fn codec(self) -> crate::protocol::Compression {
        use crate::protocol::Compression as Codec;
        match self {
            Compression::None => Codec::None,
            Compression::Gzip => Codec::Gzip,
            Compression::Snappy => Codec::Snappy,
            Compression::Lz4 => Codec::Lz4,
            Compression::Zstd => Codec::Zstd,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = Error;

    /// Parses a `compression.type` value (`none`, `gzip`, `snappy`, `lz4`, `zstd`, any case).
    fn from_str(s: &str) -> Result<Self> {
        [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ]
        .into_iter()
        .find(|c| c.name().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| {
            Error::Config(format!(
                "`compression.type` must be none, gzip, snappy, lz4 or zstd, got `{s}`"
            ))
        })
    }
}

/// Producer settings. Every field documents its default and Java property.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// Connection settings (`bootstrap.servers`, `client.id`, `request.timeout.ms`, ...).
    pub client: ClientConfig,
    /// `acks`. Default `all`.
    pub acks: Acks,
    /// `enable.idempotence`. Default true (see the module docs for when it turns itself off).
    pub enable_idempotence: bool,
    /// Whether `enable.idempotence` was set explicitly (conflicts are then errors).
    idempotence_explicit: bool,
    /// `retries`. Default `i32::MAX`: retries are bounded by `delivery.timeout.ms` instead.
    pub retries: u32,
    /// `delivery.timeout.ms`: upper bound from `send` to success or failure, retries included.
    /// Default 120 s.
    pub delivery_timeout: Duration,
    /// `linger.ms`: how long a batch waits for more records. Default 5 ms (Kafka 4.0, KIP-1030).
    pub linger: Duration,
    /// `batch.size`: bytes per partition batch. Default 16384.
    pub batch_size: usize,
    /// `buffer.memory`: bytes of records waiting to be sent before `send` waits. Default 32 MiB.
    pub buffer_memory: usize,
    /// `max.block.ms`: how long `send` may wait for buffer memory or metadata. Default 60 s.
    pub max_block: Duration,
    /// `max.request.size`: largest record (and Produce request). Default 1 MiB.
    pub max_request_size: usize,
    /// `max.in.flight.requests.per.connection`: Produce requests in flight per broker. Default 5.
    pub max_in_flight: usize,
    /// `compression.type`. Default `none`.
    pub compression: Compression,
    /// `partitioner.adaptive.partitioning.enable`: when the sticky partitioner of keyless records
    /// (records with a key or a partition are not affected) moves on after about `batch.size`
    /// bytes, it favours partitions with fewer batches waiting, so partitions of a slow broker
    /// get fewer records (KIP-794). Default true.
    pub adaptive_partitioning: bool,
    /// `transactional.id`. Default none.
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms`: the coordinator aborts a transaction open longer. Default 60 s.
    pub transaction_timeout: Duration,
    /// W3C trace context propagation (josefk's; no Java property): when set, `send` asks it for
    /// the current context and adds a `traceparent` header to each record that has none. Default
    /// none (no header added).
    pub trace_context: Option<crate::trace_context::TraceContext>,
}

impl ProducerConfig {
    /// Defaults with the given bootstrap servers.
    pub fn new(bootstrap_servers: &str) -> Self {
        ProducerConfig::with_client(ClientConfig::new(bootstrap_servers))
    }

    /// Defaults over a client config.
    pub fn with_client(client: ClientConfig) -> Self {
        ProducerConfig {
            client,
            acks: Acks::All,
            enable_idempotence: true,
            idempotence_explicit: false,
            retries: i32::MAX as u32,
            delivery_timeout: Duration::from_millis(120_000),
            linger: Duration::from_millis(5),
            batch_size: 16_384,
            buffer_memory: 32 * 1024 * 1024,
            max_block: Duration::from_millis(60_000),
            max_request_size: 1024 * 1024,
            max_in_flight: 5,
            compression: Compression::None,
            adaptive_partitioning: true,
            transactional_id: None,
            transaction_timeout: Duration::from_millis(60_000),
            trace_context: None,
        }
    }

    /// Builds a config from Java producer properties. Unknown keys are an error.
    pub fn from_properties<'a, I>(props: I) -> Result<Self>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut config = ProducerConfig::with_client(ClientConfig::default());
        for (key, value) in props {
            config.set(key, value)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Builds a config from the text of a Java producer's `.properties` file (client-level keys
    /// included).
    ///
    /// The text is read as `java.util.Properties` reads it (`key=value`, `key: value`, `#`/`!`
    /// comments, backslash continuations and escapes). Keys only the Java client has (serializer,
    /// interceptor and other class names, JMX metrics settings: see the crate's README) are
    /// skipped with one `tracing` warning naming them; any other key josefk does not know, and
    /// any bad value, is an [`Error::Config`] naming it.
    pub fn from_properties_str(text: &str) -> Result<Self> {
        let mut config = ProducerConfig::with_client(ClientConfig::default());
        crate::properties::apply(text, "producer", |k, v| config.set(k, v).map(|()| true))?;
        config.validate()?;
        Ok(config)
    }

    /// [`ProducerConfig::from_properties_str`] on the contents of the file at `path`.
    pub fn from_properties_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::from_properties_str(&crate::properties::read_file(path.as_ref())?)
    }

    /// Sets one Java producer property (client-level ones included).
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "acks" => {
                self.acks = match value.trim() {
                    "0" => Acks::None,
                    "1" => Acks::Leader,
                    "all" | "-1" => Acks::All,
                    _ => {
                        return Err(Error::Config(format!(
                            "`acks` must be 0, 1, all or -1, got `{value}`"
                        )))
                    }
                }
            }
            "enable.idempotence" => {
                self.enable_idempotence = parse_bool(key, value)?;
                self.idempotence_explicit = true;
            }
            // Shared with the client config's key, but for the producer it bounds Produce requests.
            "max.in.flight.requests.per.connection" => self.max_in_flight = parse_num(key, value)?,
            "retries" => self.retries = parse_num(key, value)?,
            "delivery.timeout.ms" => self.delivery_timeout = parse_ms(key, value)?,
            "linger.ms" => self.linger = parse_ms(key, value)?,
            "batch.size" => self.batch_size = parse_num(key, value)?,
            "buffer.memory" => self.buffer_memory = parse_num(key, value)?,
            "max.block.ms" => self.max_block = parse_ms(key, value)?,
            "max.request.size" => self.max_request_size = parse_num(key, value)?,
            "compression.type" => self.compression = value.parse()?,
            "partitioner.adaptive.partitioning.enable" => {
                self.adaptive_partitioning = parse_bool(key, value)?
            }
            "transactional.id" => {
                self.transactional_id = Some(value.to_owned()).filter(|v| !v.is_empty())
            }
            "transaction.timeout.ms" => self.transaction_timeout = parse_ms(key, value)?,
            _ => {
                if !self.client.set_if_known(key, value)? {
                    return Err(Error::Config(format!("unknown producer property `{key}`")));
                }
            }
        }
        Ok(())
    }

    /// Sets `acks`.
    pub fn acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        self
    }

    /// Sets `enable.idempotence` explicitly.
    pub fn idempotence(mut self, enabled: bool) -> Self {
        self.enable_idempotence = enabled;
        self.idempotence_explicit = true;
        self
    }

    /// Sets `linger.ms`.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Sets `batch.size`.
    pub fn batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes;
        self
    }

    /// Sets `delivery.timeout.ms`.
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    /// Sets `retries` (0 turns retries off, and with them the default idempotence).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Sets `buffer.memory`.
    pub fn buffer_memory(mut self, bytes: usize) -> Self {
        self.buffer_memory = bytes;
        self
    }

    /// Sets `max.block.ms`.
    pub fn max_block(mut self, timeout: Duration) -> Self {
        self.max_block = timeout;
        self
    }

    /// Sets `max.request.size`.
    pub fn max_request_size(mut self, bytes: usize) -> Self {
        self.max_request_size = bytes;
        self
    }

    /// Sets `max.in.flight.requests.per.connection` (above 5 turns the default idempotence off).
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.max_in_flight = requests;
        self
    }

    /// Sets `partitioner.adaptive.partitioning.enable`.
    pub fn adaptive_partitioning(mut self, enabled: bool) -> Self {
        self.adaptive_partitioning = enabled;
        self
    }

    /// Sets `transaction.timeout.ms`.
    pub fn transaction_timeout(mut self, timeout: Duration) -> Self {
        self.transaction_timeout = timeout;
        self
    }

    /// Sets `compression.type` (`set("compression.type", "lz4")` takes the Java name).
    pub fn compression(mut self, codec: Compression) -> Self {
        self.compression = codec;
        self
    }

    /// Configures the producer side of a delivery guarantee; every setting can still be changed
    /// afterwards.
    ///
    /// - [`Guarantee::AtMostOnce`](crate::Guarantee::AtMostOnce): `acks=0`, `retries=0`,
    ///   idempotence off.
    /// - [`Guarantee::AtLeastOnce`](crate::Guarantee::AtLeastOnce): `acks=all`, retries within
    ///   `delivery.timeout.ms`, idempotence on as by default (Java's default too: it costs nothing
    ///   and removes the duplicates retries would write; like the default, it turns itself off if
    ///   a later setting conflicts). What is "at least once" is the consumer side: a crash between
    ///   processing and committing delivers records again.
    /// - [`Guarantee::ExactlyOnce`](crate::Guarantee::ExactlyOnce): `acks=all`, retries,
    ///   idempotence on; set a `transactional.id` to write atomically across partitions and commit
    ///   a consumer's offsets in the transaction.
    pub fn guarantee(mut self, guarantee: crate::Guarantee) -> Self {
        use crate::Guarantee;
        match guarantee {
            Guarantee::AtMostOnce => {
                self.acks = Acks::None;
                self.retries = 0;
                self.enable_idempotence = false;
            }
            Guarantee::AtLeastOnce => {
                self.acks = Acks::All;
                self.retries = i32::MAX as u32;
                self.enable_idempotence = true;
                self.idempotence_explicit = false;
                return self;
            }
            Guarantee::ExactlyOnce => {
                self.acks = Acks::All;
                self.retries = i32::MAX as u32;
                self.enable_idempotence = true;
            }
        }
        self.idempotence_explicit = true;
        self
    }

    /// Propagates W3C trace context: `current` is asked at each `send` and its answer becomes the
    /// record's `traceparent` header (unless the record has one). See [`crate::trace_context`].
    pub fn trace_context(
        mut self,
        current: impl Fn() -> Option<crate::trace_context::TraceParent> + Send + Sync + 'static,
    ) -> Self {
        self.trace_context = Some(crate::trace_context::TraceContext::new(current));
        self
    }

    /// Sets `transactional.id` (which implies idempotence).
    pub fn transactional_id(mut self, id: impl Into<String>) -> Self {
        self.transactional_id = Some(id.into());
        self
    }

    /// Checks every rule (see the module docs). The config is not changed: where idempotence
    /// turns itself off, the producer does that when it connects.
    pub fn validate(&self) -> Result<()> {
        self.effective_idempotence().map(|_| ())
    }

    /// This config with idempotence resolved (see the module docs), for the producer to use.
    pub(crate) fn resolved(mut self) -> Result<ProducerConfig> {
        self.enable_idempotence = self.effective_idempotence()?;
        Ok(self)
    }

    /// Checks every rule and says whether the producer will be idempotent.
    fn effective_idempotence(&self) -> Result<bool> {
        self.client.validate()?;
        let mut idempotent = self.enable_idempotence;
        let conflicts: Vec<&str> = [
            (self.acks != Acks::All, "`acks` must be `all`"),
            (self.retries == 0, "`retries` must be greater than 0"),
            (
                self.max_in_flight > 5,
                "`max.in.flight.requests.per.connection` must be at most 5",
            ),
        ]
        .into_iter()
        .filter_map(|(bad, why)| bad.then_some(why))
        .collect();
        if self.transactional_id.is_some() {
            if self.idempotence_explicit && !self.enable_idempotence {
                return Err(Error::Config(
                    "`transactional.id` requires `enable.idempotence=true`".into(),
                ));
            }
            if !conflicts.is_empty() {
                return Err(Error::Config(format!(
                    "a transactional producer is idempotent, so {}",
                    conflicts.join(" and ")
                )));
            }
            idempotent = true;
        } else if self.enable_idempotence && !conflicts.is_empty() {
            if self.idempotence_explicit {
                return Err(Error::Config(format!(
                    "`enable.idempotence=true` requires that {}",
                    conflicts.join(" and ")
                )));
            }
            idempotent = false;
        }
        if self.max_in_flight == 0 {
            return Err(Error::Config(
                "`max.in.flight.requests.per.connection` must be at least 1".into(),
            ));
        }
        for (key, value) in [
            ("delivery.timeout.ms", self.delivery_timeout),
            ("transaction.timeout.ms", self.transaction_timeout),
        ] {
            crate::config::check_int_ms(key, value)?;
        }
        if self.delivery_timeout < self.linger.saturating_add(self.client.request_timeout) {
            return Err(Error::Config(
                "`delivery.timeout.ms` must be at least `linger.ms` + `request.timeout.ms`".into(),
            ));
        }
        if self.batch_size == 0 || self.max_request_size == 0 {
            return Err(Error::Config(
                "`batch.size` and `max.request.size` must be greater than 0".into(),
            ));
        }
        if self.buffer_memory < self.max_request_size {
            return Err(Error::Config(
                "`buffer.memory` must be at least `max.request.size`".into(),
            ));
        }
        Ok(idempotent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(extra: &[(&'static str, &'static str)]) -> Result<ProducerConfig> {
        let mut all = vec![("bootstrap.servers", "h:1")];
        all.extend_from_slice(extra);
        ProducerConfig::from_properties(all)
    }

    #[test]
    fn java_defaults() {
        let c = props(&[]).unwrap();
        assert_eq!(c.acks, Acks::All);
        assert!(c.enable_idempotence);
        assert_eq!(c.linger, Duration::from_millis(5));
        assert_eq!(c.batch_size, 16_384);
        assert_eq!(c.max_in_flight, 5);
        assert_eq!(c.delivery_timeout, Duration::from_secs(120));
        assert!(c.adaptive_partitioning);
        let c = props(&[("partitioner.adaptive.partitioning.enable", "false")]).unwrap();
        assert!(!c.adaptive_partitioning);
    }

    #[test]
    fn builders_set_what_the_java_keys_set() {
        let built = ProducerConfig::new("h:1")
            .retries(3)
            .buffer_memory(1 << 26)
            .max_block(Duration::from_secs(7))
            .max_request_size(1 << 21)
            .max_in_flight(2)
            .adaptive_partitioning(false)
            .transaction_timeout(Duration::from_secs(9));
        let keyed = props(&[
            ("retries", "3"),
            ("buffer.memory", "67108864"),
            ("max.block.ms", "7000"),
            ("max.request.size", "2097152"),
            ("max.in.flight.requests.per.connection", "2"),
            ("partitioner.adaptive.partitioning.enable", "false"),
            ("transaction.timeout.ms", "9000"),
        ])
        .unwrap();
        assert_eq!(format!("{built:?}"), format!("{keyed:?}"));
        let off = ProducerConfig::new("h:1").retries(0).resolved().unwrap();
        assert!(
            !off.enable_idempotence,
            "no retries, so no default idempotence"
        );
    }

    #[test]
    fn implicit_idempotence_yields_to_conflicting_settings_when_the_producer_resolves_it() {
        let c = props(&[("acks", "1")]).unwrap();
        c.validate().unwrap();
        assert!(c.enable_idempotence, "validate leaves the config as set");
        assert!(!c.resolved().unwrap().enable_idempotence);
        let c = props(&[("max.in.flight.requests.per.connection", "10")]).unwrap();
        assert!(!c.clone().resolved().unwrap().enable_idempotence);
        assert_eq!(c.max_in_flight, 10);
    }

    #[test]
    fn compression_is_typed_and_the_java_name_still_works_through_set() {
        let c = ProducerConfig::new("h:1").compression(Compression::Lz4);
        assert_eq!(c.compression, Compression::Lz4);
        let c = props(&[("compression.type", "ZSTD")]).unwrap();
        assert_eq!(c.compression, Compression::Zstd);
        assert_eq!(c.compression.to_string(), "zstd");
        let mut c = ProducerConfig::new("h:1");
        let e = c.set("compression.type", "brotli").unwrap_err();
        assert!(e.to_string().contains("compression.type"), "{e}");
        assert_eq!(
            c.compression,
            Compression::None,
            "a refused value changes nothing"
        );
    }

    #[test]
    fn explicit_idempotence_with_conflicts_is_an_error_naming_them() {
        let e = props(&[("enable.idempotence", "true"), ("acks", "0")]).unwrap_err();
        assert!(e.to_string().contains("`acks` must be `all`"), "{e}");
        let e = props(&[("transactional.id", "t"), ("retries", "0")]).unwrap_err();
        assert!(e.to_string().contains("`retries`"), "{e}");
        let e = props(&[("transactional.id", "t"), ("enable.idempotence", "false")]).unwrap_err();
        assert!(
            e.to_string().contains("requires `enable.idempotence=true`"),
            "{e}"
        );
        let c = props(&[("transactional.id", "t")]).unwrap();
        assert!(c.enable_idempotence);
    }

    #[test]
    fn bad_values_and_unknown_keys_are_named() {
        for (k, v, needle) in [
            ("acks", "2", "`acks`"),
            ("compression.type", "brotli", "brotli"),
            ("linger.ms", "-1", "linger.ms"),
            ("nonsense", "1", "`nonsense`"),
            ("enable.idempotence", "yes", "enable.idempotence"),
        ] {
            let e = props(&[(k, v)]).unwrap_err();
            assert!(e.to_string().contains(needle), "{k}={v}: {e}");
        }
        let e = props(&[("delivery.timeout.ms", "1000")]).unwrap_err();
        assert!(e.to_string().contains("delivery.timeout.ms"), "{e}");
    }

    #[test]
    fn guarantees_set_acks_retries_and_idempotence() {
        let c = ProducerConfig::new("h:1").guarantee(crate::Guarantee::AtMostOnce);
        let c = c.resolved().unwrap();
        assert_eq!(
            (c.acks, c.retries, c.enable_idempotence),
            (Acks::None, 0, false)
        );
        let c = ProducerConfig::new("h:1").guarantee(crate::Guarantee::AtLeastOnce);
        let c = c.resolved().unwrap();
        assert_eq!(c.acks, Acks::All);
        assert!(
            c.enable_idempotence,
            "at-least-once keeps Java's idempotent default"
        );
        // Like the default, it yields to a later conflicting setting rather than failing.
        let c = ProducerConfig::new("h:1")
            .guarantee(crate::Guarantee::AtLeastOnce)
            .acks(Acks::Leader);
        assert!(!c.resolved().unwrap().enable_idempotence);
        let c = ProducerConfig::new("h:1")
            .guarantee(crate::Guarantee::ExactlyOnce)
            .transactional_id("t");
        let c = c.resolved().unwrap();
        assert!(c.enable_idempotence);
        assert_eq!(c.acks, Acks::All);
    }
}
