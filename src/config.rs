//! Settings shared by every role (producer, consumer, admin): where the cluster is, how connections
//! behave, how requests time out and back off.
//!
//! [`ClientConfig`] is plain data with documented defaults, built either with typed setters or from
//! the Java client's property names (`bootstrap.servers`, `client.id`, `request.timeout.ms`, ...) so a
//! user can paste an existing `.properties` file. Unknown keys and bad values are a [`Error::Config`]
//! naming the key; nothing is silently ignored. Validation happens once, in [`ClientConfig::validate`].

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::security::sasl::TokenProviderHandle;
use crate::security::{
    OAuthBearerTokenProvider, Password, SaslConfig, SaslMechanism, SecurityProtocol, TlsConfig,
};

/// Connection and request settings for any josefk client.
///
/// Every field documents its default and the Java property it corresponds to.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// `bootstrap.servers`: `host:port` addresses tried in order to discover the cluster.
    /// Required; no default.
    pub bootstrap_servers: Vec<String>,
    /// `client.id`: sent with every request, shown in broker logs and quotas, and the metrics'
    /// `client-id` tag. Default empty: each client then gets its own, as Java's do:
    /// `producer-<n>` (`producer-<transactional.id>` for a transactional one),
    /// `consumer-<group.id>-<n>` (`consumer-<n>` without a group) and `adminclient-<n>`, `<n>`
    /// counting clients of that kind in the process from 1.
    pub client_id: String,
    /// `request.timeout.ms`: how long to wait for a response before the connection is closed and
    /// every request in flight on it fails with an unknown outcome. Default 30 s (Java's).
    pub request_timeout: Duration,
    /// `default.api.timeout.ms`: the overall bound on each [`crate::admin::Admin`] call, across
    /// its metadata and coordinator lookups, retries and waits (Java's admin `timeoutMs`
    /// default); past it the call fails with [`Error::Timeout`]. Each request within it is still
    /// bounded by `request.timeout.ms`. A consumer's own `default_api_timeout` replaces it for
    /// that consumer. Default 60 s (Java's).
    pub default_api_timeout: Duration,
    /// `socket.connection.setup.timeout.ms`: the whole connection set-up: TCP connect, TLS
    /// handshake, ApiVersions, SASL. Default 10 s (Java's).
    pub connection_setup_timeout: Duration,
    /// `reconnect.backoff.ms`: first wait before redialling a broker that failed. Default 50 ms.
    pub reconnect_backoff: Duration,
    /// `reconnect.backoff.max.ms`: cap of the exponential reconnect backoff. Default 1 s.
    pub reconnect_backoff_max: Duration,
    /// `retry.backoff.ms`: first wait before retrying a request that failed retriably. Default 100 ms.
    pub retry_backoff: Duration,
    /// `retry.backoff.max.ms`: cap of the exponential retry backoff. Default 1 s.
    pub retry_backoff_max: Duration,
    /// `metadata.max.age.ms`: metadata older than this is refreshed even without an error saying it
    /// is stale. Default 5 min.
    pub metadata_max_age: Duration,
    /// `receive.message.max.bytes` (librdkafka's name; Java has no equivalent): the largest response
    /// frame accepted from a broker. A larger length prefix closes the connection *before* any
    /// buffer is allocated for it, so a broken or hostile peer cannot make josefk allocate without
    /// bound. Default 100 MiB, above the default `fetch.max.bytes` (50 MiB).
    pub max_response_size: usize,
    /// `max.in.flight.requests.per.connection` for non-produce connections: how many requests may
    /// be pipelined on one connection before further ones wait. Default 100. (The producer has its
    /// own, Java-compatible limit of 5.)
    pub max_in_flight_per_connection: usize,
    /// `security.protocol`: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL. Default PLAINTEXT.
    pub security_protocol: SecurityProtocol,
    /// `ssl.*`: trust store, client certificate, host-name checks. Used when
    /// `security_protocol` is SSL or SASL_SSL.
    pub tls: TlsConfig,
    /// `sasl.*`: mechanism and credentials, used with SASL_PLAINTEXT and SASL_SSL.
    pub sasl: SaslConfig,
    /// `metrics.enabled` (josefk's; Java has no equivalent): keep the per-request metrics (request
    /// latency and bytes per broker, records and batches sent, fetches, lag) and publish them to
    /// the `metrics` facade once a second. Off, only connection, commit, rebalance and
    /// transaction counts are kept (see [`crate::metrics`]). Default true.
    pub metrics_enabled: bool,
    /// `enable.metrics.push` (Java's): push this client's metrics to the cluster when a broker
    /// holds a client-metrics subscription for it (KIP-714), at the subscription's interval and
    /// with its metric-name prefixes. Brokers without the telemetry APIs turn it off silently.
    /// Default true (Java's).
    pub metrics_push: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            bootstrap_servers: Vec::new(),
            client_id: String::new(),
            request_timeout: Duration::from_millis(30_000),
            default_api_timeout: Duration::from_millis(60_000),
            connection_setup_timeout: Duration::from_millis(10_000),
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_millis(1_000),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_millis(1_000),
            metadata_max_age: Duration::from_millis(300_000),
            max_response_size: 100 * 1024 * 1024,
            max_in_flight_per_connection: 100,
            security_protocol: SecurityProtocol::Plaintext,
            tls: TlsConfig::default(),
            sasl: SaslConfig::default(),
            metrics_enabled: true,
            metrics_push: true,
        }
    }
}

/// Parses `java.util.Properties` text (what a Java client's `.properties` file holds) into
/// key/value pairs in file order: `key=value`, `key: value` or `key value`; `#` and `!` comment
/// lines; backslash continuations; the escapes `\t \n \r \f \uXXXX`. Later duplicates win
/// when applied in order, as in Java. For tools that route keys themselves (the `josefk` command
/// line splits one file between a consumer and a producer); the configs' `from_properties_str`
/// parse and apply in one step.
///
/// ```
/// let pairs = josefk::config::parse_properties("# a comment\nlinger.ms = 5\nacks:all\n")?;
/// assert_eq!(pairs, [("linger.ms".into(), "5".into()), ("acks".into(), "all".into())]);
/// # Ok::<(), josefk::Error>(())
/// ```
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>> {
    crate::properties::parse(text)
}

/// Whether `key` is a property only the Java client has (serializer, interceptor and other class
/// names, JMX metrics settings, settings of Java features josefk does not have such as
/// compression levels): the configs' `from_properties_str` skip these with one warning.
///
/// ```
/// assert!(josefk::config::is_java_only_property("key.serializer"));
/// assert!(!josefk::config::is_java_only_property("linger.ms"));
/// ```
pub fn is_java_only_property(key: &str) -> bool {
    crate::properties::JAVA_ONLY_KEYS.contains(&key)
}

impl ClientConfig {
    /// A config with defaults and the given bootstrap servers (comma-separated, as in
    /// `bootstrap.servers`).
    pub fn new(bootstrap_servers: &str) -> Self {
        ClientConfig {
            bootstrap_servers: split_list(bootstrap_servers),
            ..ClientConfig::default()
        }
    }

    /// Builds a config from Java-style properties. Unknown keys are an error.
    pub fn from_properties<'a, I>(props: I) -> Result<Self>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut config = ClientConfig::default();
        for (key, value) in props {
            config.set(key, value)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Builds a config from the text of a Java client `.properties` file holding client-level
    /// keys (`bootstrap.servers`, `security.protocol`, `ssl.*`, `sasl.*`, ...); for a producer's or
    /// consumer's file use `ProducerConfig::from_properties_str` or
    /// `ConsumerConfig::from_properties_str`.
    ///
    /// The text is read as `java.util.Properties` reads it (`key=value`, `key: value`, `#`/`!`
    /// comments, backslash continuations and escapes). Keys only the Java client has (serializer,
    /// interceptor and other class names, JMX metrics settings: see the crate's README) are
    /// skipped with one `tracing` warning naming them; any other key josefk does not know, and
    /// any bad value, is an [`Error::Config`] naming it.
    ///
    /// ```
    /// let config = josefk::ClientConfig::from_properties_str(
    ///     r#"
    /// bootstrap.servers=k1:9093,k2:9093
    /// security.protocol=SASL_SSL
    /// sasl.mechanism=SCRAM-SHA-512
    /// sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
    ///     username="app" password="secret";
    /// ! Java-only: skipped with one warning.
    /// metric.reporters=com.example.Reporter
    /// "#,
    /// )?;
    /// assert_eq!(config.bootstrap_servers, ["k1:9093", "k2:9093"]);
    /// assert_eq!(config.security_protocol, josefk::SecurityProtocol::SaslSsl);
    /// # Ok::<(), josefk::Error>(())
    /// ```
    pub fn from_properties_str(text: &str) -> Result<Self> {
        let mut config = ClientConfig::default();
        crate::properties::apply(text, "client", |k, v| config.set_if_known(k, v))?;
        config.validate()?;
        Ok(config)
    }

    /// [`ClientConfig::from_properties_str`] on the contents of the file at `path`.
    pub fn from_properties_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::from_properties_str(&crate::properties::read_file(path.as_ref())?)
    }

    /// Sets one Java client property (`bootstrap.servers`, `ssl.*`, `sasl.*`, ...), as the role
    /// configs' `set` does for theirs. An unknown key or a bad value is an [`Error::Config`]
    /// naming it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        if self.set_if_known(key, value)? {
            Ok(())
        } else {
            Err(Error::Config(format!("unknown client property `{key}`")))
        }
    }

    /// [`ClientConfig::set`], but `Ok(false)` for a key that is not a client-level property (so
    /// role configs can try their own keys).
    pub(crate) fn set_if_known(&mut self, key: &str, value: &str) -> Result<bool> {
        match key {
            "bootstrap.servers" => self.bootstrap_servers = split_list(value),
            "client.id" => self.client_id = value.to_owned(),
            "request.timeout.ms" => self.request_timeout = parse_ms(key, value)?,
            "default.api.timeout.ms" => self.default_api_timeout = parse_ms(key, value)?,
            "socket.connection.setup.timeout.ms" => {
                self.connection_setup_timeout = parse_ms(key, value)?
            }
            "reconnect.backoff.ms" => self.reconnect_backoff = parse_ms(key, value)?,
            "reconnect.backoff.max.ms" => self.reconnect_backoff_max = parse_ms(key, value)?,
            "retry.backoff.ms" => self.retry_backoff = parse_ms(key, value)?,
            "retry.backoff.max.ms" => self.retry_backoff_max = parse_ms(key, value)?,
            "metadata.max.age.ms" => self.metadata_max_age = parse_ms(key, value)?,
            "receive.message.max.bytes" => self.max_response_size = parse_num(key, value)?,
            "max.in.flight.requests.per.connection" => {
                self.max_in_flight_per_connection = parse_num(key, value)?
            }
            "security.protocol" => self.security_protocol = value.parse()?,
            "metrics.enabled" => self.metrics_enabled = parse_bool(key, value)?,
            "enable.metrics.push" => self.metrics_push = parse_bool(key, value)?,
            _ if key.starts_with("ssl.") => return self.tls.set(key, value),
            _ if key.starts_with("sasl.") => return self.sasl.set(key, value),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Sets `metrics.enabled` (see [`ClientConfig::metrics_enabled`]).
    pub fn metrics(mut self, enabled: bool) -> Self {
        self.metrics_enabled = enabled;
        self
    }

    /// Sets `enable.metrics.push` (see [`ClientConfig::metrics_push`]).
    pub fn metrics_push(mut self, enabled: bool) -> Self {
        self.metrics_push = enabled;
        self
    }

    /// Sets `client.id`.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// Sets `request.timeout.ms`.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets `default.api.timeout.ms`: the overall bound on each admin call.
    pub fn default_api_timeout(mut self, timeout: Duration) -> Self {
        self.default_api_timeout = timeout;
        self
    }

    /// Sets `socket.connection.setup.timeout.ms`.
    pub fn connection_setup_timeout(mut self, timeout: Duration) -> Self {
        self.connection_setup_timeout = timeout;
        self
    }

    /// Sets `reconnect.backoff.ms` and `reconnect.backoff.max.ms`.
    pub fn reconnect_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.reconnect_backoff = first;
        self.reconnect_backoff_max = max;
        self
    }

    /// Sets `retry.backoff.ms` and `retry.backoff.max.ms`.
    pub fn retry_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.retry_backoff = first;
        self.retry_backoff_max = max;
        self
    }

    /// Sets `metadata.max.age.ms`.
    pub fn metadata_max_age(mut self, age: Duration) -> Self {
        self.metadata_max_age = age;
        self
    }

    /// Sets the largest response frame accepted (`receive.message.max.bytes`).
    pub fn max_response_size(mut self, bytes: usize) -> Self {
        self.max_response_size = bytes;
        self
    }

    /// Sets how many requests may be pipelined on one non-produce connection.
    pub fn max_in_flight_per_connection(mut self, n: usize) -> Self {
        self.max_in_flight_per_connection = n;
        self
    }

    /// Sets `security.protocol`.
    pub fn security_protocol(mut self, protocol: SecurityProtocol) -> Self {
        self.security_protocol = protocol;
        self
    }

    /// Sets the TLS settings (`ssl.*`); `security.protocol` must be SSL or SASL_SSL for them to
    /// apply.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// Authenticates with SASL/PLAIN as `username` (also set `security.protocol`).
    pub fn sasl_plain(
        mut self,
        username: impl Into<String>,
        password: impl Into<Password>,
    ) -> Self {
        self.sasl.mechanism = Some(SaslMechanism::Plain);
        self.sasl.username = Some(username.into());
        self.sasl.password = Some(password.into());
        self
    }

    /// Authenticates with SCRAM-SHA-256 or SCRAM-SHA-512 (`mechanism`) as `username`.
    pub fn sasl_scram(
        mut self,
        mechanism: SaslMechanism,
        username: impl Into<String>,
        password: impl Into<Password>,
    ) -> Self {
        self.sasl.mechanism = Some(mechanism);
        self.sasl.username = Some(username.into());
        self.sasl.password = Some(password.into());
        self
    }

    /// Authenticates with OAUTHBEARER, taking tokens from `provider`.
    pub fn sasl_oauthbearer_provider(
        mut self,
        provider: Arc<dyn OAuthBearerTokenProvider>,
    ) -> Self {
        self.sasl.mechanism = Some(SaslMechanism::OAuthBearer);
        self.sasl.oauthbearer.provider = Some(TokenProviderHandle(provider));
        self
    }

    /// Authenticates with OAUTHBEARER using unsecured JWS tokens for `subject` (development and
    /// tests only: the broker must use the unsecured validator).
    pub fn sasl_oauthbearer_unsecured(mut self, subject: impl Into<String>) -> Self {
        self.sasl.mechanism = Some(SaslMechanism::OAuthBearer);
        self.sasl.oauthbearer.unsecured_subject = Some(subject.into());
        self
    }

    /// Authenticates with OAUTHBEARER using tokens from an OIDC token endpoint
    /// (client-credentials grant, KIP-768).
    pub fn sasl_oauthbearer_client_credentials(
        mut self,
        token_endpoint_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<Password>,
        scope: Option<&str>,
    ) -> Self {
        self.sasl.mechanism = Some(SaslMechanism::OAuthBearer);
        let o = &mut self.sasl.oauthbearer;
        o.token_endpoint_url = Some(token_endpoint_url.into());
        o.client_id = Some(client_id.into());
        o.client_secret = Some(client_secret.into());
        o.scope = scope.map(str::to_owned);
        self
    }

    /// Checks every rule at once; called by every client constructor.
    pub fn validate(&self) -> Result<()> {
        if self.bootstrap_servers.is_empty() {
            return Err(Error::Config(
                "`bootstrap.servers` is required (for example `127.0.0.1:9092`)".into(),
            ));
        }
        for addr in &self.bootstrap_servers {
            match addr.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
                _ => {
                    return Err(Error::Config(format!(
                        "`bootstrap.servers` entry `{addr}` is not `host:port`"
                    )))
                }
            }
        }
        for (key, value) in [
            ("request.timeout.ms", self.request_timeout),
            ("default.api.timeout.ms", self.default_api_timeout),
            (
                "socket.connection.setup.timeout.ms",
                self.connection_setup_timeout,
            ),
        ] {
            if value.is_zero() {
                return Err(Error::Config(format!("`{key}` must be greater than 0")));
            }
        }
        // Java's int settings (its long ones, e.g. `max.block.ms`, may be anything: deadlines
        // saturate).
        for (key, value) in [
            ("request.timeout.ms", self.request_timeout),
            ("default.api.timeout.ms", self.default_api_timeout),
        ] {
            check_int_ms(key, value)?;
        }
        if self.reconnect_backoff > self.reconnect_backoff_max {
            return Err(Error::Config(
                "`reconnect.backoff.ms` must not exceed `reconnect.backoff.max.ms`".into(),
            ));
        }
        if self.retry_backoff > self.retry_backoff_max {
            return Err(Error::Config(
                "`retry.backoff.ms` must not exceed `retry.backoff.max.ms`".into(),
            ));
        }
        if self.max_response_size < 1024 {
            return Err(Error::Config(
                "`receive.message.max.bytes` must be at least 1024".into(),
            ));
        }
        if self.security_protocol.uses_sasl() {
            self.sasl.login()?;
        }
        if self.security_protocol.uses_tls() {
            #[cfg(not(feature = "tls"))]
            return Err(crate::net::connection::tls_not_built());
            #[cfg(feature = "tls")]
            self.tls.validate()?;
        }
        if self.max_in_flight_per_connection == 0 {
            return Err(Error::Config(
                "`max.in.flight.requests.per.connection` must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Gives `client` its default `client.id` when none was set: `<kind>-<n>`, `n` counting the
/// clients of that kind in this process from 1 (Java's `producer-1`, `adminclient-1`), with the
/// group in between for a consumer (`consumer-<group>-<n>`), or `<kind>-<name>` when `name` is
/// given (a transactional producer).
pub(crate) fn default_client_id(
    client: &mut ClientConfig,
    kind: ClientKind,
    name: Option<&str>,
    group: Option<&str>,
) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQUENCES: [AtomicU64; 3] = [AtomicU64::new(1), AtomicU64::new(1), AtomicU64::new(1)];
    if !client.client_id.is_empty() {
        return;
    }
    let (prefix, sequence) = match kind {
        ClientKind::Producer => ("producer", &SEQUENCES[0]),
        ClientKind::Consumer => ("consumer", &SEQUENCES[1]),
        ClientKind::Admin => ("adminclient", &SEQUENCES[2]),
    };
    let n = || sequence.fetch_add(1, Ordering::Relaxed);
    client.client_id = match (name, group) {
        (Some(name), _) => format!("{prefix}-{name}"),
        (None, Some(group)) => format!("{prefix}-{group}-{}", n()),
        (None, None) => format!("{prefix}-{}", n()),
    };
}

/// The kinds of client, for their default `client.id`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ClientKind {
    Producer,
    Consumer,
    Admin,
}

/// A Java `int` milliseconds setting: at most `i32::MAX` ms (about 24.8 days), as Java's
/// `ConfigDef` requires; several go on the wire as an `int32`.
pub(crate) fn check_int_ms(key: &str, value: Duration) -> Result<()> {
    if value.as_millis() > i32::MAX as u128 {
        return Err(Error::Config(format!(
            "`{key}` must be at most {} ms, got {value:?}",
            i32::MAX
        )));
    }
    Ok(())
}

/// Splits a comma-separated property value, trimming blanks.
pub(crate) fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses a `*.ms` property.
pub(crate) fn parse_ms(key: &str, value: &str) -> Result<Duration> {
    parse_num::<u64>(key, value).map(Duration::from_millis)
}

/// Parses a non-negative integer property.
pub(crate) fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T> {
    value.trim().parse::<T>().map_err(|_| {
        Error::Config(format!(
            "`{key}` must be a non-negative integer, got `{value}`"
        ))
    })
}

/// Parses a `true`/`false` property, in any letter case as Java's `ConfigDef` does.
pub(crate) fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim() {
        v if v.eq_ignore_ascii_case("true") => Ok(true),
        v if v.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(Error::Config(format!(
            "`{key}` must be `true` or `false`, got `{value}`"
        ))),
    }
}

/// The delivery guarantee of one data flow, set on both ends with
/// [`ProducerConfig::guarantee`](crate::producer::ProducerConfig::guarantee) and
/// [`ConsumerConfig::guarantee`](crate::consumer::ConsumerConfig::guarantee). Each single setting
/// stays overridable afterwards.
///
/// | | producer | consumer |
/// |---|---|---|
/// | `AtMostOnce` | acks=0, no retries | commits before processing |
/// | `AtLeastOnce` | acks=all, retries within `delivery.timeout.ms`, idempotent (the default) | commits after processing |
/// | `ExactlyOnce` | acks=all, idempotent; transactions with a `transactional.id` | read_committed; offsets committed in the producer's transaction |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Guarantee {
    /// Nothing is delivered twice; records may be lost (telemetry, metrics).
    AtMostOnce,
    /// Nothing is lost; records may be delivered twice after a failure (most workloads).
    AtLeastOnce,
    /// Nothing is lost or delivered twice within Kafka: consume, process and produce in one
    /// transaction.
    ExactlyOnce,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_properties_map_onto_fields() {
        let c = ClientConfig::from_properties([
            ("bootstrap.servers", "a:1, b:2"),
            ("client.id", "svc"),
            ("request.timeout.ms", "1500"),
            ("default.api.timeout.ms", "2500"),
            ("retry.backoff.ms", "10"),
            ("retry.backoff.max.ms", "20"),
            ("receive.message.max.bytes", "2048"),
            ("metrics.enabled", "false"),
            ("enable.metrics.push", "false"),
        ])
        .unwrap();
        assert!(!c.metrics_enabled);
        assert!(ClientConfig::default().metrics_enabled);
        assert!(!c.metrics_push);
        assert!(ClientConfig::default().metrics_push, "Java's default");
        assert_eq!(c.bootstrap_servers, vec!["a:1", "b:2"]);
        assert_eq!(c.client_id, "svc");
        assert_eq!(c.request_timeout, Duration::from_millis(1500));
        assert_eq!(c.default_api_timeout, Duration::from_millis(2500));
        assert_eq!(
            ClientConfig::default().default_api_timeout,
            Duration::from_secs(60),
            "Java's default"
        );
        assert_eq!(c.retry_backoff_max, Duration::from_millis(20));
        assert_eq!(c.max_response_size, 2048);
    }

    #[test]
    fn unknown_or_invalid_properties_are_named_in_the_error() {
        let e = ClientConfig::from_properties([("bootstrap.servers", "a:1"), ("bogus", "1")])
            .unwrap_err();
        assert!(e.to_string().contains("`bogus`"), "{e}");
        let e = ClientConfig::from_properties([
            ("bootstrap.servers", "a:1"),
            ("request.timeout.ms", "soon"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("request.timeout.ms"), "{e}");
        assert!(e.to_string().contains("soon"), "{e}");
        // `set` has the role configs' signature: an unknown key is an error, not `Ok(false)`.
        let mut c = ClientConfig::default();
        let e = c.set("bogus", "1").unwrap_err();
        assert!(
            e.to_string().contains("unknown client property `bogus`"),
            "{e}"
        );
        c.set("ssl.endpoint.identification.algorithm", "").unwrap();
        c.set("client.id", "me").unwrap();
        assert_eq!(c.client_id, "me");
    }

    #[test]
    fn sasl_keys_are_taken_and_debug_never_shows_secrets() {
        let c = ClientConfig::from_properties([
            ("bootstrap.servers", "a:1"),
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "SCRAM-SHA-256"),
            (
                "sasl.jaas.config",
                r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="pa55-w0rd";"#,
            ),
            ("sasl.oauthbearer.client.credentials.client.secret", "cl1ent-s3cret"),
        ])
        .unwrap();
        assert_eq!(c.sasl.username.as_deref(), Some("alice"));
        let typed = ClientConfig::new("a:1")
            .security_protocol(SecurityProtocol::SaslPlaintext)
            .sasl_plain("bob", "b0b-secret");
        typed.validate().unwrap();
        let shown = format!("{c:?} {typed:?}");
        for secret in ["pa55-w0rd", "cl1ent-s3cret", "b0b-secret"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // SASL_PLAINTEXT without a mechanism is refused when the client is built.
        let e = ClientConfig::new("a:1")
            .security_protocol(SecurityProtocol::SaslPlaintext)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("sasl.mechanism"), "{e}");
    }

    #[test]
    fn ssl_properties_are_accepted_and_sasl_ssl_needs_a_mechanism() {
        let c = ClientConfig::from_properties([
            ("bootstrap.servers", "a:1"),
            ("security.protocol", "SSL"),
            ("ssl.truststore.type", "PKCS12"),
            ("ssl.truststore.location", "/etc/ca.p12"),
            ("ssl.truststore.password", "pw"),
        ])
        .unwrap();
        assert_eq!(c.security_protocol, SecurityProtocol::Ssl);
        assert_eq!(
            c.tls.truststore_location.as_deref(),
            Some(std::path::Path::new("/etc/ca.p12"))
        );
        let e = ClientConfig::from_properties([("bootstrap.servers", "a:1"), ("ssl.bogus", "x")])
            .unwrap_err();
        assert!(e.to_string().contains("`ssl.bogus`"), "{e}");
        let e = ClientConfig::from_properties([
            ("bootstrap.servers", "a:1"),
            ("security.protocol", "SASL_SSL"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("SASL_SSL"), "{e}");
    }

    #[test]
    fn validate_rejects_missing_or_malformed_bootstrap_and_zero_timeouts() {
        assert!(ClientConfig::default().validate().is_err());
        assert!(ClientConfig::new("nohost").validate().is_err());
        assert!(ClientConfig::new("h:99999").validate().is_err());
        assert!(ClientConfig::new("h:9092").validate().is_ok());
        let zero = ClientConfig::new("h:1").request_timeout(Duration::ZERO);
        assert!(zero.validate().is_err());
        let zero = ClientConfig::new("h:1").default_api_timeout(Duration::ZERO);
        assert!(zero.validate().is_err());
        let inverted =
            ClientConfig::new("h:1").retry_backoff(Duration::from_secs(2), Duration::from_secs(1));
        assert!(inverted.validate().is_err());
    }
}
