//! Java client properties for the command line: `-F` files in Java `.properties` syntax, `-X
//! key=value` pairs, and the typed configs built from them. Keys only the Java client has (class
//! names for serializers, interceptors, ...) are refused with a message saying why, instead of
//! josefk's plain "unknown property".

use std::path::Path;

use josefk::consumer::ConsumerConfig;
use josefk::producer::ProducerConfig;
use josefk::ClientConfig;

use crate::args::Common;
use crate::exit::{CliError, CliResult};

/// Properties in the order they apply: file first, then `-X`, then the command's own options.
#[derive(Debug, Default, Clone)]
pub struct Properties {
    entries: Vec<(String, String)>,
}

impl Properties {
    /// `-F`, `-X` and `-b` of the common options, in that order of precedence (last wins).
    pub fn from_common(common: &Common) -> CliResult<Properties> {
        let mut props = Properties::default();
        if let Some(path) = &common.config_file {
            props.entries.extend(read_properties_file(path)?);
        }
        for pair in &common.properties {
            let (k, v) = split_pair(pair, "-X")?;
            props.set(k, v);
        }
        if let Some(servers) = &common.bootstrap {
            props.set("bootstrap.servers", servers);
        }
        Ok(props)
    }

    /// Adds (or overrides, since later entries win) a property.
    pub fn set(&mut self, key: &str, value: &str) {
        self.entries.push((key.to_owned(), value.to_owned()));
    }

    fn check_bootstrap(&self) -> CliResult {
        if self.entries.iter().any(|(k, _)| k == "bootstrap.servers") {
            Ok(())
        } else {
            Err(CliError::usage(
                "no broker given: pass -b HOST:PORT, set KAFKA_BOOTSTRAP_SERVERS, or put \
                 bootstrap.servers in the -F file",
            ))
        }
    }

    /// The client-level config (admin commands).
    pub fn client(&self) -> CliResult<ClientConfig> {
        self.check_bootstrap()?;
        let mut config = ClientConfig::default();
        self.apply(
            "this command",
            |r| r.client,
            |k, v| config.set(k, v).map(drop),
        )?;
        config.validate()?;
        Ok(config)
    }

    /// A producer config.
    pub fn producer(&self) -> CliResult<ProducerConfig> {
        self.check_bootstrap()?;
        let mut config = ProducerConfig::with_client(ClientConfig::default());
        self.apply("the producer", |r| r.producer, |k, v| config.set(k, v))?;
        config.validate()?;
        Ok(config)
    }

    /// A consumer config.
    pub fn consumer(&self) -> CliResult<ConsumerConfig> {
        self.check_bootstrap()?;
        let mut config = ConsumerConfig::with_client(ClientConfig::default());
        self.apply("the consumer", |r| r.consumer, |k, v| config.set(k, v))?;
        config.validate()?;
        Ok(config)
    }

    /// A consumer and a producer config from one property list (`copy`): each key goes to the
    /// side that knows it (client keys to both).
    pub fn consumer_and_producer(&self) -> CliResult<(ConsumerConfig, ProducerConfig)> {
        self.check_bootstrap()?;
        let mut consumer = ConsumerConfig::with_client(ClientConfig::default());
        let mut producer = ProducerConfig::with_client(ClientConfig::default());
        self.apply(
            "copy",
            |r| r.consumer || r.producer,
            |k, v| {
                let r = roles(k, v);
                if r.consumer {
                    consumer.set(k, v)?;
                }
                if r.producer {
                    producer.set(k, v)?;
                }
                Ok(())
            },
        )?;
        consumer.validate()?;
        producer.validate()?;
        Ok((consumer, producer))
    }

    /// Applies every entry `wanted` by this role with `set`. A key only another role takes (a
    /// producer key in a shared `.properties` file given to `consume`) is skipped with a note on
    /// stderr, as Java's clients log unused keys; a key no role knows is a usage error.
    fn apply(
        &self,
        who: &str,
        wanted: impl Fn(Roles) -> bool,
        mut set: impl FnMut(&str, &str) -> josefk::Result<()>,
    ) -> CliResult {
        for (k, v) in &self.entries {
            reject_java_only(k)?;
            let r = roles(k, v);
            if wanted(r) {
                set(k, v)?;
            } else if r.producer || r.consumer {
                eprintln!(
                    "josefk: note: `{k}` is a {} property; {who} ignores it",
                    if r.producer { "producer" } else { "consumer" }
                );
            } else if k.starts_with("ssl.") || k.starts_with("sasl.") {
                return Err(CliError::usage(format!(
                    "property `{k}`: TLS and SASL settings are not supported by this josefk \
                     version"
                )));
            } else {
                return Err(CliError::usage(format!(
                    "unknown property `{k}`: not a client, producer or consumer property josefk \
                     knows"
                )));
            }
        }
        Ok(())
    }
}

/// Which configs know a key.
#[derive(Debug, Clone, Copy)]
struct Roles {
    client: bool,
    producer: bool,
    consumer: bool,
}

/// Probes each config type with the key (and its real value: a bad value still means the key is
/// known, and the error surfaces when the role applies it).
fn roles(key: &str, value: &str) -> Roles {
    let known = |r: josefk::Result<()>, unknown: &str| match r {
        Ok(()) => true,
        Err(e) => !e.to_string().contains(unknown),
    };
    let client = known(
        ClientConfig::default().set(key, value),
        "unknown client property",
    );
    Roles {
        client,
        producer: client
            || known(
                ProducerConfig::with_client(ClientConfig::default()).set(key, value),
                "unknown producer property",
            ),
        consumer: client
            || known(
                ConsumerConfig::with_client(ClientConfig::default()).set(key, value),
                "unknown consumer property",
            ),
    }
}

/// Java client keys that name Java classes or JVM-only machinery: josefk has no equivalent, and
/// silently ignoring them would hide that.
fn reject_java_only(key: &str) -> CliResult {
    let why = match key {
        "key.serializer" | "value.serializer" | "key.deserializer" | "value.deserializer" => {
            "josefk reads and writes keys and values as raw bytes; serializer classes are a Java \
             client setting, remove it"
        }
        "partitioner.class" => {
            "partitioner classes are Java code; josefk uses Kafka's default partitioner \
             (murmur2 of the key, sticky for keyless records); use --partition to pin one"
        }
        "interceptor.classes"
        | "metric.reporters"
        | "sasl.login.class"
        | "sasl.client.callback.handler.class"
        | "sasl.login.callback.handler.class"
        | "ssl.engine.factory.class"
        | "security.providers"
        | "config.providers" => "it names Java classes, which josefk cannot load; remove it",
        "metrics.recording.level"
        | "metrics.num.samples"
        | "metrics.sample.window.ms"
        | "auto.include.jmx.reporter" => "josefk has no JMX metrics; remove it",
        _ => return Ok(()),
    };
    Err(CliError::usage(format!(
        "property `{key}` is not supported: {why}"
    )))
}

fn split_pair<'a>(pair: &'a str, flag: &str) -> CliResult<(&'a str, &'a str)> {
    match pair.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim(), v)),
        _ => Err(CliError::usage(format!(
            "{flag} expects KEY=VALUE, got `{pair}`"
        ))),
    }
}

/// `key=value` pairs (e.g. `--config`) as owned pairs.
pub fn parse_pairs(pairs: &[String], flag: &str) -> CliResult<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|p| split_pair(p, flag).map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

fn read_properties_file(path: &Path) -> CliResult<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read -F {}: {e}", path.display())))?;
    parse_properties(&text).map_err(|e| CliError::usage(format!("-F {}: {e}", path.display())))
}

/// Parses Java `.properties` text: `#`/`!` comments, `key=value`, `key: value` or `key value`,
/// lines continued with a trailing backslash, and the escapes `\t \n \r \f \\ \uXXXX`.
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut logical = String::new();
    let mut first_line = 0;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if logical.is_empty() {
            if trimmed.is_empty() || trimmed.starts_with(['#', '!']) {
                continue;
            }
            first_line = number + 1;
        }
        logical.push_str(trimmed);
        // An odd number of trailing backslashes continues the line.
        let trailing = logical.chars().rev().take_while(|c| *c == '\\').count();
        if trailing % 2 == 1 {
            logical.pop();
            continue;
        }
        out.push(entry(&std::mem::take(&mut logical), first_line)?);
    }
    if !logical.is_empty() {
        out.push(entry(&logical, first_line)?);
    }
    Ok(out)
}

fn entry(logical: &str, line: usize) -> Result<(String, String), String> {
    let (key, value) = split_property(logical);
    let key = unescape(key).map_err(|e| format!("line {line}: {e}"))?;
    let value = unescape(value).map_err(|e| format!("line {line}: {e}"))?;
    Ok((key, value))
}

/// Splits at the first unescaped `=`, `:` or whitespace (and the separators after it).
fn split_property(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' | b':' | b' ' | b'\t' => break,
            _ => i += 1,
        }
    }
    let i = i.min(bytes.len());
    let key = &line[..i];
    let mut rest = line[i..].trim_start_matches([' ', '\t']);
    if let Some(r) = rest.strip_prefix(['=', ':']) {
        rest = r.trim_start_matches([' ', '\t']);
    }
    (key, rest)
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
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
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("bad escape `\\u{hex}`"))?;
                out.push(code);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_properties_syntax() {
        let text = "# comment\n! also\n\nbootstrap.servers = a:1,\\\n    b:2\nclient.id:svc\n\
                    linger.ms 20\nkey\\=x=v\\u0041\n";
        let props = parse_properties(text).unwrap();
        assert_eq!(
            props,
            vec![
                ("bootstrap.servers".into(), "a:1,b:2".into()),
                ("client.id".into(), "svc".into()),
                ("linger.ms".into(), "20".into()),
                ("key=x".into(), "vA".into()),
            ]
        );
    }

    #[test]
    fn java_only_keys_get_a_reason() {
        let mut props = Properties::default();
        props.set("bootstrap.servers", "h:1");
        props.set("key.serializer", "org.apache.kafka...StringSerializer");
        let e = props.producer().unwrap_err();
        assert_eq!(e.code, crate::exit::USAGE);
        assert!(e.message.contains("key.serializer"), "{e}");
        assert!(e.message.contains("raw bytes"), "{e}");
    }

    #[test]
    fn unknown_keys_are_usage_errors_and_copy_splits_keys_by_side() {
        let mut props = Properties::default();
        props.set("bootstrap.servers", "h:1");
        props.set("no.such.key", "1");
        assert_eq!(props.consumer().unwrap_err().code, crate::exit::USAGE);
        // A producer key given to the consumer is skipped, not an error.
        let mut props = Properties::default();
        props.set("bootstrap.servers", "h:1");
        props.set("linger.ms", "7");
        assert!(props.consumer().is_ok());
        assert!(props.client().is_ok());
        props.set("max.poll.records", "bad");
        assert_eq!(props.consumer().unwrap_err().code, crate::exit::USAGE);
        let mut props = Properties::default();
        props.set("bootstrap.servers", "h:1");
        props.set("linger.ms", "7");
        props.set("max.poll.records", "9");
        props.set("client.id", "both");
        let (c, p) = props.consumer_and_producer().unwrap();
        assert_eq!(c.max_poll_records, 9);
        assert_eq!(p.linger, std::time::Duration::from_millis(7));
        assert_eq!(
            (c.client.client_id.as_str(), p.client.client_id.as_str()),
            ("both", "both")
        );
        props.set("no.such.key", "1");
        assert_eq!(
            props.consumer_and_producer().unwrap_err().code,
            crate::exit::USAGE
        );
    }
}
