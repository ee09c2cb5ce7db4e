//! What a cluster looks like: [`ClusterSpec`] (the builder tests use), port picking,
//! and rendering of each node's `server.properties` and the logging configs.
//! Everything here is pure except port picking, so it is unit-tested directly.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default readiness timeout per cluster start; generous because CI machines have
/// two cores shared by the build, three JVMs and the tests.
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(90);

/// What cluster to start: node count, storage features and extra broker settings.
///
/// Every node is a combined broker+controller on 127.0.0.1 with a static voter set.
/// Defaults tuned for tests (see [`ClusterSpec::single`]):
/// `auto.create.topics.enable=false` (tests must create their topics explicitly, so a
/// typo fails instead of silently creating a topic), `num.partitions=1`,
/// `group.initial.rebalance.delay.ms=0`, 3 partitions for `__consumer_offsets` and
/// `__transaction_state`, and timed-out transactions aborted within about a second.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    nodes: usize,
    features: Vec<(String, u16)>,
    broker_properties: Vec<(String, String)>,
    start_timeout: Duration,
    kafka_version: Option<String>,
    listeners: Vec<Listener>,
    scram_users: Vec<(String, String, String)>,
    extra_classpath: Vec<PathBuf>,
}

/// Escapes a value for a double-quoted JAAS option.
fn jaas_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// An extra listener on every node, on its own port on 127.0.0.1, beside the PLAINTEXT one
/// (which stays first, is used between brokers, and is what
/// [`crate::KafkaCluster::bootstrap_servers`] returns) and the controller's.
///
/// Its properties are written as `listener.name.<name lower-cased>.<key>=<value>`, so a SASL
/// listener is the same shape: `Listener::new("SASLPLAIN", "SASL_PLAINTEXT")
/// .property("sasl.enabled.mechanisms", "PLAIN")`.
#[derive(Clone, Debug)]
pub struct Listener {
    name: String,
    security_protocol: String,
    properties: Vec<(String, String)>,
}

impl Listener {
    /// A listener called `name` (letters, digits, `_`; upper-cased) speaking `security_protocol`
    /// (`SSL`, `SASL_PLAINTEXT`, `SASL_SSL`, `PLAINTEXT`).
    pub fn new(name: &str, security_protocol: &str) -> Self {
        Listener {
            name: name.to_ascii_uppercase(),
            security_protocol: security_protocol.to_string(),
            properties: Vec::new(),
        }
    }

    /// An SSL listener serving the PEM key store `keystore_pem` (key, certificate, chain in one
    /// file) and trusting the CAs in `truststore_pem` (used when clients present certificates).
    pub fn ssl(name: &str, keystore_pem: &Path, truststore_pem: &Path) -> Self {
        Listener::new(name, "SSL")
            .property("ssl.keystore.type", "PEM")
            .property("ssl.keystore.location", &keystore_pem.display().to_string())
            .property("ssl.truststore.type", "PEM")
            .property(
                "ssl.truststore.location",
                &truststore_pem.display().to_string(),
            )
    }

    /// [`Listener::ssl`] that requires a client certificate signed by a trusted CA
    /// (`ssl.client.auth=required`).
    pub fn mtls(name: &str, keystore_pem: &Path, truststore_pem: &Path) -> Self {
        Listener::ssl(name, keystore_pem, truststore_pem).property("ssl.client.auth", "required")
    }

    /// A SASL_PLAINTEXT listener with PLAIN, knowing `users` (name, password) through its JAAS
    /// line (`user_<name>="<password>"`).
    pub fn sasl_plain(name: &str, users: &[(&str, &str)]) -> Self {
        let mut jaas =
            String::from("org.apache.kafka.common.security.plain.PlainLoginModule required");
        for (user, password) in users {
            jaas.push_str(&format!(" user_{user}=\"{}\"", jaas_escape(password)));
        }
        jaas.push(';');
        Listener::new(name, "SASL_PLAINTEXT")
            .property("sasl.enabled.mechanisms", "PLAIN")
            .property("plain.sasl.jaas.config", &jaas)
    }

    /// A SASL_PLAINTEXT listener with SCRAM-SHA-256 and SCRAM-SHA-512; users come from
    /// [`ClusterSpec::scram_user`] (stored in the cluster metadata at format time).
    pub fn sasl_scram(name: &str) -> Self {
        let jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
        Listener::new(name, "SASL_PLAINTEXT")
            .property("sasl.enabled.mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512")
            .property("scram-sha-256.sasl.jaas.config", jaas)
            .property("scram-sha-512.sasl.jaas.config", jaas)
    }

    /// A SASL_PLAINTEXT listener with OAUTHBEARER and Kafka's default, unsecured token validator
    /// (accepts any unsigned JWS with `sub` and a future `exp`; tests and development only).
    pub fn sasl_oauthbearer_unsecured(name: &str) -> Self {
        Listener::new(name, "SASL_PLAINTEXT")
            .property("sasl.enabled.mechanisms", "OAUTHBEARER")
            .property(
                "oauthbearer.sasl.jaas.config",
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
                 unsecuredLoginStringClaim_sub=\"broker\";",
            )
    }

    /// Replaces the listener's security protocol (e.g. `SASL_SSL` for a SASL listener that
    /// also gets the `ssl.*` properties of [`Listener::ssl`]).
    pub fn security_protocol(mut self, security_protocol: &str) -> Self {
        self.security_protocol = security_protocol.to_string();
        self
    }

    /// Sets `listener.name.<name>.<key>` (replacing an earlier value).
    pub fn property(mut self, key: &str, value: &str) -> Self {
        self.properties.retain(|(k, _)| k != key);
        self.properties.push((key.to_string(), value.to_string()));
        self
    }

    /// The listener's name (upper case).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl ClusterSpec {
    /// One combined broker+controller; internal topics with replication factor 1.
    pub fn single() -> Self {
        ClusterSpec::nodes(1)
    }

    /// Three combined broker+controller nodes (ids 1, 2, 3) in a static quorum;
    /// internal topics with replication factor 3 and `transaction.state.log.min.isr=2`.
    pub fn three_nodes() -> Self {
        ClusterSpec::nodes(3)
    }

    /// `count` combined nodes (ids `1..=count`). Internal topics get replication
    /// factor `min(count, 3)`, and min ISR 2 when that factor is 3, else 1.
    pub fn nodes(count: usize) -> Self {
        let start_timeout = std::env::var("JOSEFK_KAFKA_START_TIMEOUT_SECS")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_START_TIMEOUT);
        ClusterSpec {
            nodes: count.max(1),
            features: Vec::new(),
            broker_properties: Vec::new(),
            start_timeout,
            kafka_version: None,
            listeners: Vec::new(),
            scram_users: Vec::new(),
            extra_classpath: Vec::new(),
        }
    }

    /// Adds a listener on every node (see [`Listener`]); one with the same name is replaced.
    pub fn listener(mut self, listener: Listener) -> Self {
        self.listeners.retain(|l| l.name != listener.name);
        self.listeners.push(listener);
        self
    }

    pub(crate) fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// Turns on Kafka's StandardAuthorizer with no access where no ACL allows it
    /// (`allow.everyone.if.no.acl.found=false`). `User:ANONYMOUS` is always a super user: the
    /// PLAINTEXT and controller listeners authenticate nobody, and brokers talk over them. Add
    /// ACLs with `org.apache.kafka.tools.AclCommand` (see [`crate::run_java_tool`]) against
    /// [`crate::KafkaCluster::bootstrap_servers`].
    pub fn authorizer(self, super_users: &[&str]) -> Self {
        let mut supers = vec!["User:ANONYMOUS".to_string()];
        supers.extend(super_users.iter().map(|u| format!("User:{u}")));
        self.broker_property(
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        )
        .broker_property("allow.everyone.if.no.acl.found", "false")
        .broker_property("super.users", &supers.join(";"))
    }

    /// Creates a SCRAM user at format time (`kafka-storage format --add-scram`), for
    /// `mechanism` `SCRAM-SHA-256` or `SCRAM-SHA-512` (call once per mechanism).
    pub fn scram_user(mut self, mechanism: &str, name: &str, password: &str) -> Self {
        self.scram_users.push((
            mechanism.to_string(),
            name.to_string(),
            password.to_string(),
        ));
        self
    }

    /// The `--add-scram` arguments for storage format.
    pub(crate) fn scram_format_args(&self) -> Vec<String> {
        self.scram_users
            .iter()
            .flat_map(|(mechanism, name, password)| {
                [
                    "--add-scram".to_string(),
                    format!("{mechanism}=[name={name},password={password}]"),
                ]
            })
            .collect()
    }

    /// Formats storage with `--feature transaction.version=v`: 0 is the pre-KIP-890
    /// protocol, 2 (the default of a fresh 4.x cluster) is transactions v2.
    pub fn transaction_version(self, v: u8) -> Self {
        self.feature("transaction.version", u16::from(v))
    }

    /// Formats storage with `--feature name=level` (e.g. `group.version=0`).
    pub fn feature(mut self, name: &str, level: u16) -> Self {
        self.features.retain(|(n, _)| n != name);
        self.features.push((name.to_string(), level));
        self
    }

    /// Adds a `server.properties` line for every node, replacing a harness default
    /// with the same key. `{node_id}` in the value becomes each node's id (e.g.
    /// `broker.rack=rack-{node_id}`).
    pub fn broker_property(mut self, key: &str, value: &str) -> Self {
        self.broker_properties.retain(|(k, _)| k != key);
        self.broker_properties
            .push((key.to_string(), value.to_string()));
        self
    }

    /// Appends a directory or jar to every broker's classpath (a test's plugin, e.g. a
    /// `metric.reporters` class compiled at test time).
    pub fn broker_classpath(mut self, entry: impl Into<PathBuf>) -> Self {
        self.extra_classpath.push(entry.into());
        self
    }

    pub(crate) fn extra_classpath(&self) -> &[PathBuf] {
        &self.extra_classpath
    }

    /// How long [`crate::KafkaCluster::start`] waits for every node (default 90 s,
    /// or `$JOSEFK_KAFKA_START_TIMEOUT_SECS`).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Runs this Kafka version instead of `$JOSEFK_KAFKA_VERSION` / the default.
    pub fn kafka_version(mut self, version: &str) -> Self {
        self.kafka_version = Some(version.to_string());
        self
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes
    }

    pub(crate) fn features(&self) -> &[(String, u16)] {
        &self.features
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.start_timeout
    }

    pub(crate) fn version_override(&self) -> Option<&str> {
        self.kafka_version.as_deref()
    }
}

/// Where one node lives and listens.
#[derive(Clone, Debug)]
pub(crate) struct NodeLayout {
    pub id: i32,
    pub port: u16,
    pub controller_port: u16,
    /// One port per [`ClusterSpec::listener`], in the spec's order.
    pub listener_ports: Vec<u16>,
    pub dir: PathBuf,
    /// Appended to the broker classpath ([`ClusterSpec::broker_classpath`]).
    pub extra_classpath: Vec<PathBuf>,
}

impl NodeLayout {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
}

/// The `server.properties` of `me` in a cluster made of `all`.
pub(crate) fn server_properties(spec: &ClusterSpec, all: &[NodeLayout], me: &NodeLayout) -> String {
    let rf = all.len().min(3);
    let min_isr = if rf >= 3 { 2 } else { 1 };
    let voters: Vec<String> = all
        .iter()
        .map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller_port))
        .collect();
    let mut listeners = vec![
        format!("PLAINTEXT://127.0.0.1:{}", me.port),
        format!("CONTROLLER://127.0.0.1:{}", me.controller_port),
    ];
    let mut advertised = vec![format!("PLAINTEXT://127.0.0.1:{}", me.port)];
    let mut protocols = vec![
        "CONTROLLER:PLAINTEXT".to_string(),
        "PLAINTEXT:PLAINTEXT".to_string(),
    ];
    for (listener, port) in spec.listeners.iter().zip(&me.listener_ports) {
        listeners.push(format!("{}://127.0.0.1:{port}", listener.name));
        advertised.push(format!("{}://127.0.0.1:{port}", listener.name));
        protocols.push(format!("{}:{}", listener.name, listener.security_protocol));
    }
    let mut props: Vec<(String, String)> = [
        ("process.roles", "broker,controller".to_string()),
        ("node.id", me.id.to_string()),
        ("controller.quorum.voters", voters.join(",")),
        ("listeners", listeners.join(",")),
        ("advertised.listeners", advertised.join(",")),
        ("controller.listener.names", "CONTROLLER".into()),
        ("inter.broker.listener.name", "PLAINTEXT".into()),
        ("listener.security.protocol.map", protocols.join(",")),
        ("log.dirs", me.data_dir().display().to_string()),
        ("num.partitions", "1".into()),
        ("auto.create.topics.enable", "false".into()),
        ("offsets.topic.replication.factor", rf.to_string()),
        ("offsets.topic.num.partitions", "3".into()),
        ("transaction.state.log.replication.factor", rf.to_string()),
        ("transaction.state.log.min.isr", min_isr.to_string()),
        ("transaction.state.log.num.partitions", "3".into()),
        (
            "share.coordinator.state.topic.replication.factor",
            rf.to_string(),
        ),
        ("share.coordinator.state.topic.min.isr", min_isr.to_string()),
        ("group.initial.rebalance.delay.ms", "0".into()),
        (
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            "1000".into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for listener in &spec.listeners {
        let prefix = format!("listener.name.{}.", listener.name.to_ascii_lowercase());
        for (key, value) in &listener.properties {
            props.push((format!("{prefix}{key}"), value.clone()));
        }
    }
    for (key, value) in &spec.broker_properties {
        let value = value.replace("{node_id}", &me.id.to_string());
        match props.iter_mut().find(|(k, _)| k == key) {
            Some(existing) => existing.1 = value,
            None => props.push((key.clone(), value)),
        }
    }
    let mut out = String::from("# Written by josefk-harness.\n");
    for (k, v) in props {
        out.push_str(&escape_property(&k, true));
        out.push('=');
        out.push_str(&escape_property(&v, false));
        out.push('\n');
    }
    out
}

/// Escapes text for a `java.util.Properties` file.
fn escape_property(text: &str, is_key: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '=' | ':' | '#' | '!' if is_key => {
                out.push('\\');
                out.push(c);
            }
            ' ' if is_key || i == 0 => out.push_str("\\ "),
            _ => out.push(c),
        }
    }
    out
}

/// Picks `count` distinct free TCP ports on 127.0.0.1 by binding port 0. All
/// listeners are held until every port is chosen, so the ports are distinct; they
/// are then released for the broker. Another process can grab one in between,
/// which cluster start detects (bind failure in the log) and retries.
pub(crate) fn pick_free_ports(count: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// log4j 2 config for brokers: INFO to `server.log` in the node dir, nothing on stdout.
/// The shutdown hook is off so the broker's own shutdown messages still get logged.
pub(crate) const LOG4J2_BROKER: &str = "\
# Written by josefk-harness: broker logs go to ${kafka.logs.dir}/server.log only.
status = warn
name = josefk-broker
shutdownHook = disable
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
";

/// log4j 2 config for tools: WARN+ to stderr so stdout carries only the tool's output.
pub(crate) const LOG4J2_TOOLS: &str = "\
# Written by josefk-harness: tools log WARN and above to stderr; stdout stays clean.
status = warn
name = josefk-tools
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
";

/// log4j 1 (reload4j) equivalent of [`LOG4J2_BROKER`], for Kafka 3.x.
pub(crate) const LOG4J1_BROKER: &str = "\
# Written by josefk-harness: broker logs go to ${kafka.logs.dir}/server.log only.
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${kafka.logs.dir}/server.log
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
";

/// log4j 1 (reload4j) equivalent of [`LOG4J2_TOOLS`], for Kafka 3.x.
pub(crate) const LOG4J1_TOOLS: &str = "\
# Written by josefk-harness: tools log WARN and above to stderr; stdout stays clean.
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
";

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(n: usize) -> Vec<NodeLayout> {
        (1..=n as i32)
            .map(|id| NodeLayout {
                id,
                port: 9000 + 2 * id as u16,
                controller_port: 9001 + 2 * id as u16,
                listener_ports: vec![9100 + id as u16],
                dir: PathBuf::from(format!("/tmp/c/node-{id}")),
                extra_classpath: Vec::new(),
            })
            .collect()
    }

    fn value<'a>(props: &'a str, key: &str) -> Option<&'a str> {
        props
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }

    #[test]
    fn single_node_properties() {
        let nodes = layout(1);
        let p = server_properties(&ClusterSpec::single(), &nodes, &nodes[0]);
        assert_eq!(value(&p, "node.id"), Some("1"));
        assert_eq!(
            value(&p, "controller.quorum.voters"),
            Some("1@127.0.0.1:9003")
        );
        assert_eq!(
            value(&p, "listeners"),
            Some("PLAINTEXT://127.0.0.1:9002,CONTROLLER://127.0.0.1:9003")
        );
        assert_eq!(
            value(&p, "advertised.listeners"),
            Some("PLAINTEXT://127.0.0.1:9002")
        );
        assert_eq!(value(&p, "log.dirs"), Some("/tmp/c/node-1/data"));
        assert_eq!(value(&p, "offsets.topic.replication.factor"), Some("1"));
        assert_eq!(value(&p, "transaction.state.log.min.isr"), Some("1"));
        assert_eq!(
            value(&p, "share.coordinator.state.topic.min.isr"),
            Some("1")
        );
        assert_eq!(value(&p, "auto.create.topics.enable"), Some("false"));
        assert_eq!(value(&p, "group.initial.rebalance.delay.ms"), Some("0"));
    }

    #[test]
    fn three_node_properties_share_the_voter_set() {
        let nodes = layout(3);
        let spec = ClusterSpec::three_nodes();
        let p2 = server_properties(&spec, &nodes, &nodes[1]);
        assert_eq!(value(&p2, "node.id"), Some("2"));
        assert_eq!(
            value(&p2, "controller.quorum.voters"),
            Some("1@127.0.0.1:9003,2@127.0.0.1:9005,3@127.0.0.1:9007")
        );
        assert_eq!(
            value(&p2, "transaction.state.log.replication.factor"),
            Some("3")
        );
        assert_eq!(value(&p2, "transaction.state.log.min.isr"), Some("2"));
    }

    #[test]
    fn broker_properties_override_or_append() {
        let nodes = layout(1);
        let spec = ClusterSpec::single()
            .broker_property("num.partitions", "4")
            .broker_property("log.retention.ms", "1000")
            .broker_property("num.partitions", "5");
        let p = server_properties(&spec, &nodes, &nodes[0]);
        assert_eq!(value(&p, "num.partitions"), Some("5"));
        assert_eq!(
            p.lines()
                .filter(|l| l.starts_with("num.partitions="))
                .count(),
            1
        );
        assert_eq!(value(&p, "log.retention.ms"), Some("1000"));
        let nodes = layout(3);
        let spec = ClusterSpec::three_nodes().broker_property("broker.rack", "rack-{node_id}");
        for n in &nodes {
            let p = server_properties(&spec, &nodes, n);
            assert_eq!(
                value(&p, "broker.rack"),
                Some(format!("rack-{}", n.id).as_str())
            );
        }
    }

    #[test]
    fn extra_listeners_get_a_port_a_protocol_and_prefixed_properties() {
        let nodes = layout(1);
        let spec = ClusterSpec::single()
            .listener(Listener::new("sslpem", "SSL").property("ssl.keystore.type", "PEM"));
        let p = server_properties(&spec, &nodes, &nodes[0]);
        assert_eq!(
            value(&p, "listeners"),
            Some("PLAINTEXT://127.0.0.1:9002,CONTROLLER://127.0.0.1:9003,SSLPEM://127.0.0.1:9101")
        );
        assert_eq!(
            value(&p, "advertised.listeners"),
            Some("PLAINTEXT://127.0.0.1:9002,SSLPEM://127.0.0.1:9101")
        );
        assert_eq!(
            value(&p, "listener.security.protocol.map"),
            Some("CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSLPEM:SSL")
        );
        assert_eq!(
            value(&p, "listener.name.sslpem.ssl.keystore.type"),
            Some("PEM")
        );
    }

    #[test]
    fn sasl_listeners_and_scram_users() {
        let nodes = layout(1);
        let spec = ClusterSpec::single()
            .listener(Listener::sasl_plain("saslplain", &[("alice", "a\"b")]))
            .scram_user("SCRAM-SHA-512", "alice", "alice-secret");
        let p = server_properties(&spec, &nodes, &nodes[0]);
        assert_eq!(
            value(&p, "listener.name.saslplain.sasl.enabled.mechanisms"),
            Some("PLAIN")
        );
        assert_eq!(
            value(&p, "listener.name.saslplain.plain.sasl.jaas.config"),
            Some(
                "org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"a\\\\\"b\";"
            )
        );
        let p = server_properties(
            &ClusterSpec::single().authorizer(&["admin"]),
            &nodes,
            &nodes[0],
        );
        assert_eq!(value(&p, "super.users"), Some("User:ANONYMOUS;User:admin"));
        assert_eq!(value(&p, "allow.everyone.if.no.acl.found"), Some("false"));
        assert_eq!(
            spec.scram_format_args(),
            vec![
                "--add-scram".to_string(),
                "SCRAM-SHA-512=[name=alice,password=alice-secret]".to_string()
            ]
        );
    }

    #[test]
    fn features_are_deduplicated() {
        let spec = ClusterSpec::single()
            .transaction_version(2)
            .transaction_version(0);
        assert_eq!(spec.features(), &[("transaction.version".to_string(), 0)]);
    }

    #[test]
    fn escapes_property_text() {
        assert_eq!(escape_property("a:b=c", true), "a\\:b\\=c");
        assert_eq!(escape_property("C:\\x y", false), "C:\\\\x y");
        assert_eq!(escape_property(" lead", false), "\\ lead");
    }

    #[test]
    fn picks_distinct_loopback_ports() {
        let ports = pick_free_ports(6).unwrap();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 6);
        assert!(ports.iter().all(|&p| p > 0));
        // Released: each one can be bound again right away.
        for p in ports {
            drop(TcpListener::bind(("127.0.0.1", p)).unwrap());
        }
    }
}
