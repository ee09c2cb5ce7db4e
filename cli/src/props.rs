//! Java client properties for the command line: `-F` files in Java `.properties` syntax (the
//! library's parser), `-X key=value` pairs, and the typed configs built from them, each key routed
//! to the roles that know it. Keys only the Java client has (class names for serializers,
//! interceptors, ...) are skipped with a note when they come from a `-F` file (written for a Java
//! client, it should load unchanged) and refused with the reason when typed with `-X`.

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
    /// Where the config files' entries end: a tool's config file read later goes here, so the
    /// command line's `-X` and `-b` still win over it (Java's tools set `--bootstrap-server`
    /// over their config files too).
    files_end: usize,
}

impl Properties {
    /// KAFKA_BOOTSTRAP_SERVERS, then `-F`, `-X` and `-b` of the common options, in that order
    /// of precedence (last wins).
    pub fn from_common(common: &Common) -> CliResult<Properties> {
        Properties::from_common_and_env(common, std::env::var("KAFKA_BOOTSTRAP_SERVERS").ok())
    }

    /// [`Properties::from_common`] with the environment's bootstrap servers given: the variable
    /// is a default for the shell session, so anything written on the command line or in the
    /// `-F` file for this run wins over it.
    fn from_common_and_env(
        common: &Common,
        env_bootstrap: Option<String>,
    ) -> CliResult<Properties> {
        let mut props = Properties::default();
        if let Some(servers) = env_bootstrap.filter(|s| !s.trim().is_empty()) {
            props.set("bootstrap.servers", &servers);
        }
        if let Some(path) = &common.config_file {
            props.entries.extend(read_properties_file(path)?);
        }
        props.files_end = props.entries.len();
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

    /// Appends the properties of the verifiable tools' `--producer.config`/`--consumer.config`
    /// and `--command-config` files (Java refuses both at once; so does this).
    pub fn extend_from_args_file(
        &mut self,
        deprecated: Option<&Path>,
        command_config: Option<&Path>,
    ) -> CliResult {
        match (deprecated, command_config) {
            (Some(_), Some(_)) => Err(CliError::usage(
                "the tool's config file option and --command-config are mutually exclusive",
            )),
            (Some(path), None) | (None, Some(path)) => {
                let file = read_properties_file(path)?;
                let n = file.len();
                self.entries.splice(self.files_end..self.files_end, file);
                self.files_end += n;
                Ok(())
            }
            (None, None) => Ok(()),
        }
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
        // Only the start is echoed: the rest of a malformed pair may be a secret.
        _ => {
            let start: String = pair
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != ':')
                .take(60)
                .collect();
            let cut = if start.len() < pair.len() { "…" } else { "" };
            Err(CliError::usage(format!(
                "{flag} expects KEY=VALUE, got `{start}{cut}`"
            )))
        }
    }
}

/// `key=value` pairs (e.g. `--config`) as owned pairs.
pub fn parse_pairs(pairs: &[String], flag: &str) -> CliResult<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|p| split_pair(p, flag).map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

/// A Java `.properties` file (the library's parser). Keys only the Java client has are skipped
/// with one note naming them, as the library's `from_properties_file` does: a file written for a
/// Java client should load unchanged. (Given with `-X`, such a key is refused with the reason.)
fn read_properties_file(path: &Path) -> CliResult<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read -F {}: {e}", path.display())))?;
    let pairs = josefk::config::parse_properties(&text)
        .map_err(|e| CliError::usage(format!("-F {}: {e}", path.display())))?;
    let (skipped, kept): (Vec<_>, Vec<_>) = pairs
        .into_iter()
        .partition(|(k, _)| josefk::config::is_java_only_property(k));
    if !skipped.is_empty() {
        let keys: Vec<&str> = skipped.iter().map(|(k, _)| k.as_str()).collect();
        eprintln!(
            "josefk: note: -F {}: ignored properties only the Java client has: {}",
            path.display(),
            keys.join(", ")
        );
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_java_properties_file_loads_with_its_java_only_keys_skipped() {
        let path = std::env::temp_dir().join(format!("josefk-cli-props-{}", std::process::id()));
        std::fs::write(
            &path,
            "# written for a Java producer\nbootstrap.servers = a:1,\\\n    b:2\n\
             key.serializer=org.apache.kafka.common.serialization.StringSerializer\n\
             linger.ms 20\n",
        )
        .unwrap();
        let pairs = read_properties_file(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("bootstrap.servers".into(), "a:1,b:2".into()),
                ("linger.ms".into(), "20".into()),
            ]
        );
        let props = Properties {
            entries: pairs,
            files_end: 0,
        };
        assert_eq!(
            props.producer().unwrap().linger,
            std::time::Duration::from_millis(20)
        );
    }

    #[test]
    fn bootstrap_servers_precedence_is_b_then_x_then_file_then_environment() {
        let path = std::env::temp_dir().join(format!("josefk-cli-boot-{}", std::process::id()));
        std::fs::write(&path, "bootstrap.servers=file:1\n").unwrap();
        let servers = |b: Option<&str>, x: Option<&str>, file: bool, env: Option<&str>| {
            let common = Common {
                bootstrap: b.map(str::to_owned),
                properties: x
                    .map(|x| vec![format!("bootstrap.servers={x}")])
                    .unwrap_or_default(),
                config_file: file.then(|| path.clone()),
                quiet: false,
            };
            let props = Properties::from_common_and_env(&common, env.map(str::to_owned));
            props.unwrap().client().unwrap().bootstrap_servers.join(",")
        };
        assert_eq!(servers(None, None, false, Some("env:1")), "env:1");
        assert_eq!(servers(None, None, true, Some("env:1")), "file:1");
        assert_eq!(servers(None, Some("x:1"), true, Some("env:1")), "x:1");
        assert_eq!(
            servers(Some("b:1"), Some("x:1"), true, Some("env:1")),
            "b:1"
        );
        // A verifiable tool's --command-config is read after the common options, yet `-b` and
        // `-X` still win over it.
        let common = Common {
            bootstrap: Some("b:1".into()),
            properties: vec!["client.id=x".into()],
            config_file: None,
            quiet: false,
        };
        let mut props = Properties::from_common_and_env(&common, None).unwrap();
        std::fs::write(&path, "bootstrap.servers=file:1\nclient.id=file\nacks=1\n").unwrap();
        props.extend_from_args_file(None, Some(&path)).unwrap();
        let client = props.client().unwrap();
        assert_eq!(client.bootstrap_servers.join(","), "b:1");
        assert_eq!(client.client_id, "x");
        assert!(props.entries.contains(&("acks".into(), "1".into())));
        std::fs::remove_file(&path).unwrap();
        let common = Common {
            bootstrap: None,
            properties: Vec::new(),
            config_file: None,
            quiet: false,
        };
        let none = Properties::from_common_and_env(&common, Some(" ".into())).unwrap();
        assert_eq!(none.client().unwrap_err().code, crate::exit::USAGE);
    }

    #[test]
    fn a_malformed_pair_is_echoed_only_up_to_its_first_space() {
        let pair = r#"sasl.jaas.config: PlainLoginModule required password:"hunter2""#;
        let e = split_pair(pair, "-X").unwrap_err();
        assert_eq!(e.code, crate::exit::USAGE);
        assert!(e.message.contains("`sasl.jaas.config…`"), "{e}");
        assert!(!e.message.contains("hunter2"), "{e}");
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
