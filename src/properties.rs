//! Loading a Java client's `.properties` file: the text format of `java.util.Properties.load`,
//! and the keys only the Java client has (class names, JMX), which a file written for it carries
//! and josefk cannot honour.
//!
//! The role configs' `from_properties_str`/`from_properties_file` use this; their
//! `from_properties` (key-value pairs) stay strict.

use std::path::Path;

use crate::error::{Error, Result};

/// Java client keys josefk has no equivalent for: they name Java classes or JVM machinery, or
/// set a Java feature josefk does not have (compression levels, rebootstrap, JCA provider
/// names, the login-refresh and JWKS settings of Java's OAuth login module). A file written for
/// the Java client may carry them; loaded with `from_properties_str` they are skipped with one
/// warning naming them, as the Java client warns about keys it does not use.
pub(crate) const JAVA_ONLY_KEYS: &[&str] = &[
    "key.serializer",
    "value.serializer",
    "key.deserializer",
    "value.deserializer",
    "partitioner.class",
    "interceptor.classes",
    "metric.reporters",
    "metrics.num.samples",
    "metrics.sample.window.ms",
    "metrics.recording.level",
    "auto.include.jmx.reporter",
    "config.providers",
    "security.providers",
    "ssl.engine.factory.class",
    "sasl.login.class",
    "sasl.client.callback.handler.class",
    "sasl.kerberos.service.name",
    "sasl.kerberos.kinit.cmd",
    "sasl.kerberos.min.time.before.relogin",
    "sasl.kerberos.ticket.renew.jitter",
    "sasl.kerberos.ticket.renew.window.factor",
    "client.dns.lookup",
    "send.buffer.bytes",
    "receive.buffer.bytes",
    "connections.max.idle.ms",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "metadata.max.idle.ms",
    "metadata.recovery.strategy",
    "metadata.recovery.rebootstrap.trigger.ms",
    "partitioner.availability.timeout.ms",
    "partitioner.ignore.keys",
    "socket.connection.setup.timeout.max.ms",
    "ssl.cipher.suites",
    "ssl.provider",
    "ssl.keymanager.algorithm",
    "ssl.trustmanager.algorithm",
    "ssl.secure.random.implementation",
    "sasl.login.connect.timeout.ms",
    "sasl.login.read.timeout.ms",
    "sasl.login.refresh.buffer.seconds",
    "sasl.login.refresh.min.period.seconds",
    "sasl.login.refresh.window.factor",
    "sasl.login.refresh.window.jitter",
    "sasl.login.retry.backoff.ms",
    "sasl.login.retry.backoff.max.ms",
    "sasl.oauthbearer.clock.skew.seconds",
    "sasl.oauthbearer.expected.audience",
    "sasl.oauthbearer.expected.issuer",
    "sasl.oauthbearer.jwks.endpoint.url",
    "sasl.oauthbearer.jwks.endpoint.refresh.ms",
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
    "sasl.oauthbearer.scope.claim.name",
    "sasl.oauthbearer.sub.claim.name",
];

/// Reads a properties file (UTF-8; Java's own ISO-8859-1 files are the same for ASCII).
pub(crate) fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        Error::Config(format!(
            "cannot read properties file {}: {e}",
            path.display()
        ))
    })
}

/// Applies `text` with `set`, skipping the [`JAVA_ONLY_KEYS`] with one warning that names them.
/// `set` returns `Ok(false)` for a key it does not know (an error then names `who`).
pub(crate) fn apply(
    text: &str,
    who: &str,
    mut set: impl FnMut(&str, &str) -> Result<bool>,
) -> Result<()> {
    let mut ignored = Vec::new();
    for (key, value) in parse(text)? {
        if JAVA_ONLY_KEYS.contains(&key.as_str()) {
            ignored.push(key);
            continue;
        }
        if !set(&key, &value)? {
            return Err(Error::Config(format!("unknown {who} property `{key}`")));
        }
    }
    if !ignored.is_empty() {
        // Values are never logged: a Java-only key may still carry a secret.
        tracing::warn!(
            keys = %ignored.join(", "),
            "properties only the Java client has were ignored"
        );
    }
    Ok(())
}

/// Parses `java.util.Properties` text: `key=value`, `key: value` or `key value`; `#` and `!`
/// comment lines; a line ending in an odd number of backslashes continues on the next one (its
/// leading whitespace dropped); escapes `\t \n \r \f \uXXXX` and `\x` for any other `x`. Later
/// duplicates win when applied in order, as in Java.
pub(crate) fn parse(text: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, first)) = lines.next() {
        let line = first.trim_start_matches(is_blank);
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let mut logical = line.to_owned();
        while ends_in_escape(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start_matches(is_blank)),
                None => break,
            }
        }
        let (key, value) = split(&logical);
        let line_no = index + 1;
        out.push((unescape(key, line_no)?, unescape(value, line_no)?));
    }
    Ok(out)
}

/// Java's whitespace in properties files: space, tab and form feed.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

/// Whether the line ends in an odd number of backslashes (a continuation).
fn ends_in_escape(line: &str) -> bool {
    line.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Splits a logical line at the first unescaped `=`, `:` or blank (blanks around one separator
/// belong to neither side). Escapes are kept for [`unescape`].
fn split(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => return (&line[..i], line[i + 1..].trim_start_matches(is_blank)),
            c if is_blank(c) => {
                let rest = line[i..].trim_start_matches(is_blank);
                let rest = rest
                    .strip_prefix(['=', ':'])
                    .map_or(rest, |r| r.trim_start_matches(is_blank));
                return (&line[..i], rest);
            }
            _ => {}
        }
    }
    (line, "")
}

/// Resolves backslash escapes.
fn unescape(text: &str, line_no: usize) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32)
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "properties line {line_no}: malformed \\uXXXX escape `\\u{hex}`"
                        ))
                    })?;
                out.push(code);
            }
            Some(other) => out.push(other),
            // A lone trailing backslash (the file's last line continued into nothing).
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap()
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn separators_comments_and_blank_lines() {
        let text = "# a comment\n! another\n\n  a=1\nb: 2\nc 3\nd = 4 \ne:=5\nf\n\tg\t=\t7";
        assert_eq!(
            pairs(text),
            vec![
                kv("a", "1"),
                kv("b", "2"),
                kv("c", "3"),
                kv("d", "4 "),
                kv("e", "=5"),
                kv("f", ""),
                kv("g", "7"),
            ]
        );
    }

    #[test]
    fn continuations_drop_the_next_lines_leading_blanks() {
        let text = "list = a,\\\n       b,\\\n       c\nnext=x\r\nodd=ends\\\\\nlast=y";
        assert_eq!(
            pairs(text),
            vec![
                kv("list", "a,b,c"),
                kv("next", "x"),
                kv("odd", "ends\\"),
                kv("last", "y"),
            ]
        );
        // A comment line does not continue.
        assert_eq!(pairs("# c \\\nk=v"), vec![kv("k", "v")]);
    }

    #[test]
    fn escapes_in_keys_and_values() {
        let text = "a\\=b\\ c=x\\ty\\u00e9\\z\nsasl.jaas.config=m required user\\=\"u\";";
        assert_eq!(
            pairs(text),
            vec![
                kv("a=b c", "x\tyéz"),
                kv("sasl.jaas.config", "m required user=\"u\";"),
            ]
        );
        let e = parse("k=\\u12").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        assert!(parse("k=\\uzzzz").is_err());
    }

    #[test]
    fn java_only_keys_are_skipped_and_others_stay_strict() {
        let mut seen = Vec::new();
        let text = "key.serializer=org.apache.kafka.common.serialization.StringSerializer\n\
                    interceptor.classes=com.example.Audit\nclient.id=me";
        apply(text, "client", |k, v| {
            seen.push((k.to_owned(), v.to_owned()));
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen, vec![kv("client.id", "me")]);
        let e = apply("nonsense=1", "producer", |_, _| Ok(false)).unwrap_err();
        assert!(e
            .to_string()
            .contains("unknown producer property `nonsense`"));
    }

    /// Java 3.x/4.x settings of features josefk lacks, as a tuned Java file carries them: they
    /// load (skipped with the warning), and the booleans in it parse in any letter case.
    #[test]
    fn java_settings_josefk_lacks_load_and_booleans_ignore_case() {
        let text = "bootstrap.servers=k:9092\ncompression.type=zstd\ncompression.zstd.level=3\n\
                    partitioner.ignore.keys=false\nmetadata.max.idle.ms=300000\n\
                    socket.connection.setup.timeout.max.ms=30000\n\
                    metadata.recovery.strategy=rebootstrap\nssl.cipher.suites=\n\
                    sasl.login.refresh.buffer.seconds=300\nenable.idempotence=FALSE\n";
        let p = crate::producer::ProducerConfig::from_properties_str(text).unwrap();
        assert!(!p.enable_idempotence);
        let text = "bootstrap.servers=k:9092\nallow.auto.create.topics=false\n\
                    exclude.internal.topics=true\nenable.auto.commit=False\n";
        let c = crate::consumer::ConsumerConfig::from_properties_str(text).unwrap();
        assert_eq!(c.commit_mode, crate::consumer::CommitMode::Manual);
        // Settings josefk honours only one way: the other value is refused, not dropped.
        for (line, named) in [
            (
                "allow.auto.create.topics=TRUE",
                "allow.auto.create.topics=true",
            ),
            (
                "exclude.internal.topics=false",
                "exclude.internal.topics=false",
            ),
        ] {
            let text = format!("bootstrap.servers=k:9092\n{line}\n");
            let e = crate::consumer::ConsumerConfig::from_properties_str(&text).unwrap_err();
            assert!(e.to_string().contains(named), "{e}");
        }
        assert!(crate::producer::ProducerConfig::from_properties_str(
            "bootstrap.servers=k:9092\nenable.idempotence=yes\n"
        )
        .is_err());
    }

    /// A producer.properties as a Java application ships it: serializers, an interceptor, JMX
    /// settings, SASL_SSL with SCRAM, a continued line.
    const PRODUCER_FILE: &str = "\
# Kafka producer for the orders service
bootstrap.servers=broker1:9093,\\
                  broker2:9093
key.serializer=org.apache.kafka.common.serialization.StringSerializer
value.serializer=org.apache.kafka.common.serialization.ByteArraySerializer
interceptor.classes=com.example.AuditInterceptor
metrics.recording.level=INFO
acks=all
compression.type=lz4
linger.ms: 20
transactional.id=orders-copier-1
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\
    username=\"orders\" password=\"s3cret\";
ssl.endpoint.identification.algorithm=https
";

    #[test]
    fn a_java_producer_file_loads_with_its_java_only_keys_skipped() {
        use crate::producer::{Acks, Compression, ProducerConfig};
        use crate::security::{SaslMechanism, SecurityProtocol};
        let c = ProducerConfig::from_properties_str(PRODUCER_FILE).unwrap();
        assert_eq!(c.client.bootstrap_servers, ["broker1:9093", "broker2:9093"]);
        assert_eq!(c.acks, Acks::All);
        assert_eq!(c.compression, Compression::Lz4);
        assert_eq!(c.linger, std::time::Duration::from_millis(20));
        assert_eq!(c.transactional_id.as_deref(), Some("orders-copier-1"));
        assert_eq!(c.client.security_protocol, SecurityProtocol::SaslSsl);
        assert_eq!(c.client.sasl.mechanism, Some(SaslMechanism::ScramSha512));
        // The strict pair loader still refuses the Java-only keys.
        let e = ProducerConfig::from_properties(
            parse(PRODUCER_FILE)
                .unwrap()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .unwrap_err();
        assert!(e.to_string().contains("key.serializer"), "{e}");
    }

    #[test]
    fn a_java_consumer_file_loads_and_unknown_keys_stay_errors() {
        use crate::consumer::ConsumerConfig;
        let text = "bootstrap.servers=b:9092\ngroup.id=orders\nenable.auto.commit=false\n\
                    key.deserializer=org.apache.kafka.common.serialization.StringDeserializer\n\
                    value.deserializer=org.apache.kafka.common.serialization.StringDeserializer\n\
                    isolation.level=read_committed\nauto.offset.reset=earliest\n";
        let c = ConsumerConfig::from_properties_str(text).unwrap();
        assert_eq!(c.group_id.as_deref(), Some("orders"));
        assert_eq!(c.isolation_level, crate::IsolationLevel::ReadCommitted);
        let e =
            ConsumerConfig::from_properties_str("bootstrap.servers=b:1\nfetch.typo=1").unwrap_err();
        assert!(e.to_string().contains("fetch.typo"), "{e}");
        let e = crate::ClientConfig::from_properties_str("bootstrap.servers=b:1\nacks=all")
            .unwrap_err();
        assert!(
            e.to_string().contains("unknown client property `acks`"),
            "{e}"
        );
    }

    #[test]
    fn a_file_that_cannot_be_read_is_a_config_error_naming_it() {
        let e = crate::ClientConfig::from_properties_file("/nonexistent/josefk.properties")
            .unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent/josefk.properties"),
            "{e}"
        );
        let path =
            std::env::temp_dir().join(format!("josefk-props-{}.properties", std::process::id()));
        std::fs::write(&path, "bootstrap.servers = h:1\nclient.id : from-file\n").unwrap();
        let c = crate::ClientConfig::from_properties_file(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(c.client_id, "from-file");
    }

    /// The skip list must hold only keys josefk does not honour: a key on it that a config
    /// accepted would be silently dropped from a file.
    #[test]
    fn no_java_only_key_is_one_josefk_implements() {
        use crate::consumer::ConsumerConfig;
        use crate::producer::ProducerConfig;
        for key in JAVA_ONLY_KEYS {
            let p = ProducerConfig::new("h:1").set(key, "x").unwrap_err();
            assert!(
                p.to_string().contains("unknown producer property"),
                "{key}: {p}"
            );
            let c = ConsumerConfig::new("h:1").set(key, "x").unwrap_err();
            assert!(
                c.to_string().contains("unknown consumer property"),
                "{key}: {c}"
            );
        }
    }

    #[test]
    fn one_warning_names_the_skipped_keys_and_never_their_values() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buf {
            type Writer = Buf;
            fn make_writer(&'a self) -> Buf {
                self.clone()
            }
        }
        let buf = Buf::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buf.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            crate::producer::ProducerConfig::from_properties_str(PRODUCER_FILE).unwrap();
        });
        let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warnings.len(), 1, "{log}");
        for key in [
            "key.serializer",
            "value.serializer",
            "interceptor.classes",
            "metrics.recording.level",
        ] {
            assert!(warnings[0].contains(key), "{key}: {log}");
        }
        assert!(
            !log.contains("AuditInterceptor") && !log.contains("s3cret"),
            "{log}"
        );
    }
}
