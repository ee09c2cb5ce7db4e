//! Resolving Kafka's jars from Maven Central into cached classpaths ([`KafkaDist`]),
//! and finding a suitable `java`.
//!
//! Kafka's binary tarball is not on Maven Central, so the harness writes two tiny
//! POMs (broker: `kafka_2.13`; tools: `kafka-tools`) and asks Maven's dependency
//! plugin for their classpaths. The POMs add the SLF4J→log4j binding that Kafka's
//! tarball ships but its POMs omit; without it the broker logs nothing.
//!
//! Cache layout, in `$JOSEFK_KAFKA_CACHE` (default `$HOME/.cache/josefk/kafka-<version>`):
//! `broker-<v>/{pom.xml,classpath.txt}`, `tools-for-<v>/{pom.xml,classpath.txt}`, the
//! log configs, and `.lock`. A cached classpath is reused only if its stored POM
//! equals the one this code would write and every jar still exists, so bumping a
//! pinned version here or wiping `~/.m2` re-resolves by itself.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::error::{HarnessError, Result};
use crate::toolchain::{check_maven, env_nonempty, find_java, strip_ansi};
use crate::DEFAULT_KAFKA_VERSION;

/// log4j 2 release matching what Kafka 4.4 itself uses (`kafka-server` POM).
const LOG4J2_VERSION: &str = "2.25.5";
/// Kafka 3.x and 4.x use the SLF4J 1.7 API; pinned so Jetty's 2.x (via
/// `connect-runtime` in the tools) cannot win and leave the binding unused.
const SLF4J_VERSION: &str = "1.7.36";
/// Pinned so the classpath does not depend on the Maven install's default plugin.
const BUILD_CLASSPATH: &str =
    "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:build-classpath";
/// Used for the tools when `kafka-tools:<version>` is not on Maven Central.
/// (When 4.4.0 appeared, `kafka_2.13` was published but `kafka-tools` was not.)
pub const TOOLS_FALLBACK_VERSION: &str = "4.3.1";

/// Which logging backend a Kafka line needs: 4.x uses log4j 2, 3.x log4j 1 (reload4j).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Logging {
    Log4j2,
    Reload4j,
}

impl Logging {
    fn for_version(version: &str) -> Logging {
        match version
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok())
        {
            Some(major) if major < 4 => Logging::Reload4j,
            _ => Logging::Log4j2,
        }
    }
}

/// Kafka's jars, resolved from Maven Central and cached on disk.
#[derive(Clone, Debug)]
pub struct KafkaDist {
    version: String,
    tools_version: String,
    cache_dir: PathBuf,
    broker_classpath: String,
    tools_classpath: String,
    logging: Logging,
    java: PathBuf,
}

impl KafkaDist {
    /// Resolves (or finds cached) the broker and tools classpaths for
    /// `$JOSEFK_KAFKA_VERSION`, default [`DEFAULT_KAFKA_VERSION`]. The first call
    /// for a version runs Maven; later ones only check the cache. Safe to call
    /// concurrently from several threads and processes (a lock file serialises
    /// resolution).
    pub fn provision() -> Result<KafkaDist> {
        KafkaDist::provision_version(&kafka_version())
    }

    /// Like [`KafkaDist::provision`] for an explicit Kafka version.
    pub fn provision_version(version: &str) -> Result<KafkaDist> {
        static MEMO: Mutex<Vec<KafkaDist>> = Mutex::new(Vec::new());
        let mut memo = MEMO.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dist) = memo.iter().find(|d| d.version == version) {
            return Ok(dist.clone());
        }
        let dist = provision_uncached(version)?;
        memo.push(dist.clone());
        Ok(dist)
    }

    /// The Kafka version of the broker.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The version of `kafka-tools` on the tools classpath; differs from
    /// [`KafkaDist::version`] when that release's tools are not on Maven Central
    /// (then it is [`TOOLS_FALLBACK_VERSION`]), or when `JOSEFK_KAFKA_TOOLS_VERSION` is set.
    pub fn tools_version(&self) -> &str {
        &self.tools_version
    }

    /// Classpath (`:`-separated jar paths) with `kafka_2.13` and a log4j binding:
    /// enough for `kafka.Kafka` and `kafka.tools.StorageTool`.
    pub fn broker_classpath(&self) -> &str {
        &self.broker_classpath
    }

    /// Classpath with `kafka-tools` (console/perf/verifiable clients, TopicCommand,
    /// FeatureCommand, ...) and a log4j binding.
    pub fn tools_classpath(&self) -> &str {
        &self.tools_classpath
    }

    /// The cache directory holding the POMs, classpaths and log configs.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// The `java` binary used for every JVM (from `JAVA_HOME` if set, else `PATH`).
    pub fn java(&self) -> &Path {
        &self.java
    }

    /// JVM flag pointing the logging backend at `config`.
    pub(crate) fn log_config_flag(&self, config: &Path) -> String {
        match self.logging {
            Logging::Log4j2 => format!("-Dlog4j2.configurationFile={}", config.display()),
            Logging::Reload4j => format!("-Dlog4j.configuration=file:{}", config.display()),
        }
    }

    /// Broker logging config: INFO to `${kafka.logs.dir}/server.log`, nothing on stdout.
    pub(crate) fn broker_log_config(&self) -> PathBuf {
        self.cache_dir.join(match self.logging {
            Logging::Log4j2 => "log4j2-broker.properties",
            Logging::Reload4j => "log4j-broker.properties",
        })
    }

    /// Tools logging config: WARN and above to stderr, so stdout carries only output.
    pub(crate) fn tools_log_config(&self) -> PathBuf {
        self.cache_dir.join(match self.logging {
            Logging::Log4j2 => "log4j2-tools.properties",
            Logging::Reload4j => "log4j-tools.properties",
        })
    }
}

/// The Kafka version to use: `$JOSEFK_KAFKA_VERSION` or [`DEFAULT_KAFKA_VERSION`].
pub fn kafka_version() -> String {
    env_nonempty("JOSEFK_KAFKA_VERSION").unwrap_or_else(|| DEFAULT_KAFKA_VERSION.to_string())
}

/// The cache directory for `version`: `$JOSEFK_KAFKA_CACHE` if set, else
/// `$HOME/.cache/josefk/kafka-<version>` (or under the temp dir without `HOME`).
pub fn cache_dir_for(version: &str) -> PathBuf {
    if let Some(dir) = env_nonempty("JOSEFK_KAFKA_CACHE") {
        return PathBuf::from(dir);
    }
    let base = env_nonempty("HOME")
        .map(|h| PathBuf::from(h).join(".cache"))
        .unwrap_or_else(std::env::temp_dir);
    base.join("josefk").join(format!("kafka-{version}"))
}

fn provision_uncached(version: &str) -> Result<KafkaDist> {
    let java = find_java()?;
    let logging = Logging::for_version(version);
    let cache_dir = cache_dir_for(version);
    fs::create_dir_all(&cache_dir)
        .map_err(|e| HarnessError::io(format!("creating {}", cache_dir.display()), e))?;
    write_log_configs(&cache_dir, logging)?;

    let broker_key = format!("broker-{version}");
    let broker_pom = render_pom("kafka_2.13", version, logging);
    let tools_key = format!("tools-for-{version}");
    let tools_override = env_nonempty("JOSEFK_KAFKA_TOOLS_VERSION");
    let mut tools_candidates = vec![tools_override
        .clone()
        .unwrap_or_else(|| version.to_string())];
    if tools_override.is_none() && logging == Logging::Log4j2 && version != TOOLS_FALLBACK_VERSION {
        tools_candidates.push(TOOLS_FALLBACK_VERSION.to_string());
    }
    let tools_poms: Vec<(String, String)> = tools_candidates
        .iter()
        .map(|v| (v.clone(), render_pom("kafka-tools", v, logging)))
        .collect();

    let cached = |dir: &Path| -> Option<(String, String, String)> {
        let broker = cached_classpath(&dir.join(&broker_key), &broker_pom)?;
        tools_poms.iter().find_map(|(tv, pom)| {
            let tools = cached_classpath(&dir.join(&tools_key), pom)?;
            Some((broker.clone(), tools, tv.clone()))
        })
    };

    let (broker_classpath, tools_classpath, tools_version) = match cached(&cache_dir) {
        Some(found) => found,
        None => {
            let lock_path = cache_dir.join(".lock");
            let lock = File::create(&lock_path)
                .map_err(|e| HarnessError::io(format!("creating {}", lock_path.display()), e))?;
            lock.lock()
                .map_err(|e| HarnessError::io(format!("locking {}", lock_path.display()), e))?;
            // Another process may have resolved while this one waited for the lock.
            match cached(&cache_dir) {
                Some(found) => found,
                None => {
                    check_maven()?;
                    let broker = cached_classpath(&cache_dir.join(&broker_key), &broker_pom)
                        .map(Ok)
                        .unwrap_or_else(|| {
                            resolve(&cache_dir.join(&broker_key), &broker_pom).map_err(|out| {
                                HarnessError::Provision {
                                    version: version.to_string(),
                                    what: "broker (kafka_2.13)".into(),
                                    detail: out,
                                }
                            })
                        })?;
                    let (tools, tv) = resolve_tools(&cache_dir.join(&tools_key), &tools_poms)?;
                    (broker, tools, tv)
                }
            }
            // The lock is released when `lock` is dropped here.
        }
    };

    Ok(KafkaDist {
        version: version.to_string(),
        tools_version,
        cache_dir,
        broker_classpath,
        tools_classpath,
        logging,
        java,
    })
}

/// Tries each candidate tools version in order, moving on only when Maven says
/// the `kafka-tools` artifact itself does not exist.
fn resolve_tools(dir: &Path, candidates: &[(String, String)]) -> Result<(String, String)> {
    let mut last = String::new();
    for (i, (tools_version, pom)) in candidates.iter().enumerate() {
        match resolve(dir, pom) {
            Ok(cp) => {
                if i > 0 {
                    eprintln!(
                        "josefk-harness: kafka-tools {} is not on Maven Central; using kafka-tools {tools_version} for the Java tools",
                        candidates[0].0
                    );
                }
                return Ok((cp, tools_version.clone()));
            }
            Err(out) if is_missing_kafka_artifact(&out, tools_version) => last = out,
            Err(out) => {
                return Err(HarnessError::Provision {
                    version: tools_version.clone(),
                    what: "tools (kafka-tools)".into(),
                    detail: out,
                })
            }
        }
    }
    Err(HarnessError::Provision {
        version: candidates[0].0.clone(),
        what: "tools (kafka-tools)".into(),
        detail: last,
    })
}

/// Whether Maven's output says some `org.apache.kafka` artifact of `version` does
/// not exist (first attempt: "Could not find artifact"; later, from Maven's
/// negative cache: "Failure to find" or "was not found in ... during a previous
/// attempt", depending on the Maven version). Any Kafka artifact counts, not only
/// `kafka-tools`: a release can be half-published (e.g. `connect-runtime` missing).
fn is_missing_kafka_artifact(maven_output: &str, version: &str) -> bool {
    let suffix = format!(":{version} ");
    maven_output.lines().any(|l| {
        [
            "Could not find artifact",
            "Failure to find",
            "was not found in",
        ]
        .iter()
        .any(|phrase| l.contains(phrase))
            && l.split("org.apache.kafka:").skip(1).any(|rest| {
                let coordinate = rest.split_whitespace().next().unwrap_or("");
                format!("{coordinate} ").ends_with(&suffix)
            })
    })
}

/// The cached classpath in `dir` if it was resolved from exactly `pom` and all its jars exist.
fn cached_classpath(dir: &Path, pom: &str) -> Option<String> {
    if fs::read_to_string(dir.join("pom.xml")).ok()? != pom {
        return None;
    }
    let cp = fs::read_to_string(dir.join("classpath.txt")).ok()?;
    let jars = parse_classpath(&cp);
    if jars.is_empty() || !jars.iter().all(|j| j.is_file()) {
        return None;
    }
    Some(jars_to_classpath(&jars))
}

/// Runs Maven on `pom` in `dir` and stores the classpath. Err carries Maven's output tail.
fn resolve(dir: &Path, pom: &str) -> std::result::Result<String, String> {
    let io_err = |what: &str, e: std::io::Error| format!("{what} in {}: {e}", dir.display());
    fs::create_dir_all(dir).map_err(|e| io_err("creating dir", e))?;
    let _ = fs::remove_file(dir.join("pom.xml"));
    fs::write(dir.join("pom.write"), pom).map_err(|e| io_err("writing pom", e))?;
    let out_file = dir.join("classpath.tmp");
    eprintln!(
        "josefk-harness: resolving jars with Maven in {} (first use only)...",
        dir.display()
    );
    let output = Command::new("mvn")
        .current_dir(dir)
        .args([
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-f",
            "pom.write",
            BUILD_CLASSPATH,
        ])
        .arg("-Dmdep.includeScope=runtime")
        .arg(format!("-Dmdep.outputFile={}", out_file.display()))
        .output()
        .map_err(|e| io_err("running mvn", e))?;
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        let text = strip_ansi(&text);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(25)..].join("\n");
        return Err(format!("mvn exited with {}:\n{tail}", output.status));
    }
    let cp = fs::read_to_string(&out_file).map_err(|e| io_err("reading classpath", e))?;
    let jars = parse_classpath(&cp);
    if jars.is_empty() {
        return Err(format!(
            "Maven produced an empty classpath in {}",
            out_file.display()
        ));
    }
    // pom.xml is written last and renamed into place: its presence marks a complete entry.
    fs::rename(&out_file, dir.join("classpath.txt")).map_err(|e| io_err("storing classpath", e))?;
    fs::rename(dir.join("pom.write"), dir.join("pom.xml")).map_err(|e| io_err("storing pom", e))?;
    Ok(jars_to_classpath(&jars))
}

/// Splits a Maven `build-classpath` output into jar paths.
pub(crate) fn parse_classpath(text: &str) -> Vec<PathBuf> {
    text.trim()
        .split(':')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect()
}

fn jars_to_classpath(jars: &[PathBuf]) -> String {
    let parts: Vec<String> = jars.iter().map(|j| j.display().to_string()).collect();
    parts.join(":")
}

/// The POM whose dependency tree is the classpath for `artifact` (`kafka_2.13` or `kafka-tools`).
pub(crate) fn render_pom(artifact: &str, version: &str, logging: Logging) -> String {
    let dep = |g: &str, a: &str, v: &str| {
        format!(
            "    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>\n"
        )
    };
    let mut deps = dep("org.apache.kafka", artifact, version);
    match logging {
        Logging::Log4j2 => {
            for a in ["log4j-slf4j-impl", "log4j-core", "log4j-api"] {
                deps.push_str(&dep("org.apache.logging.log4j", a, LOG4J2_VERSION));
            }
        }
        Logging::Reload4j => deps.push_str(&dep("org.slf4j", "slf4j-reload4j", SLF4J_VERSION)),
    }
    deps.push_str(&dep("org.slf4j", "slf4j-api", SLF4J_VERSION));
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!-- Written by josefk-harness; only used to compute a classpath. -->\n\
         <project xmlns=\"http://maven.apache.org/POM/4.0.0\">\n\
         \x20 <modelVersion>4.0.0</modelVersion>\n\
         \x20 <groupId>josefk.harness</groupId>\n\
         \x20 <artifactId>{artifact}-classpath</artifactId>\n\
         \x20 <version>{version}</version>\n\
         \x20 <packaging>pom</packaging>\n\
         \x20 <dependencies>\n{deps}  </dependencies>\n\
         </project>\n"
    )
}

fn write_log_configs(dir: &Path, logging: Logging) -> Result<()> {
    let (broker, tools) = match logging {
        Logging::Log4j2 => (
            ("log4j2-broker.properties", crate::config::LOG4J2_BROKER),
            ("log4j2-tools.properties", crate::config::LOG4J2_TOOLS),
        ),
        Logging::Reload4j => (
            ("log4j-broker.properties", crate::config::LOG4J1_BROKER),
            ("log4j-tools.properties", crate::config::LOG4J1_TOOLS),
        ),
    };
    for (name, text) in [broker, tools] {
        let path = dir.join(name);
        if fs::read_to_string(&path).ok().as_deref() == Some(text) {
            continue;
        }
        // Unique temp name + rename: concurrent writers never expose a half file.
        let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
        fs::write(&tmp, text)
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|e| HarnessError::io(format!("writing {}", path.display()), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_classpaths() {
        let jars = parse_classpath("/a/x.jar:/b/y.jar:\n");
        assert_eq!(
            jars,
            vec![PathBuf::from("/a/x.jar"), PathBuf::from("/b/y.jar")]
        );
        assert!(parse_classpath("  \n").is_empty());
    }

    #[test]
    fn poms_carry_the_logging_binding() {
        let pom = render_pom("kafka_2.13", "4.4.0", Logging::Log4j2);
        assert!(pom.contains("<artifactId>kafka_2.13</artifactId><version>4.4.0</version>"));
        assert!(pom.contains("log4j-slf4j-impl"));
        assert!(pom.contains("<artifactId>slf4j-api</artifactId><version>1.7.36</version>"));
        let old = render_pom("kafka-tools", "3.9.2", Logging::Reload4j);
        assert!(old.contains("slf4j-reload4j") && !old.contains("log4j-core"));
        assert_eq!(Logging::for_version("3.9.2"), Logging::Reload4j);
        assert_eq!(Logging::for_version("4.4.0"), Logging::Log4j2);
    }

    #[test]
    fn recognises_missing_artifacts() {
        let first = "[ERROR] Failed to execute goal on project x: Could not resolve dependencies for project x:tools:pom:0: Could not find artifact org.apache.kafka:kafka-tools:jar:4.4.0 in central";
        let cached = "[ERROR] ... Failure to find org.apache.kafka:kafka-tools:jar:4.4.0 in https://repo was cached";
        assert!(is_missing_kafka_artifact(first, "4.4.0"));
        assert!(is_missing_kafka_artifact(cached, "4.4.0"));
        let cached_387 = "[ERROR] Failed to execute goal on project kafka-tools-classpath: Could not resolve dependencies for project josefk.harness:kafka-tools-classpath:pom:4.4.0: org.apache.kafka:kafka-tools:jar:4.4.0 was not found in https://repo.maven.apache.org/maven2 during a previous attempt.";
        assert!(is_missing_kafka_artifact(cached_387, "4.4.0"));
        let transfer =
            "Could not transfer artifact org.apache.kafka:kafka-tools:jar:4.4.0 from central";
        assert!(!is_missing_kafka_artifact(transfer, "4.4.0"));
        assert!(!is_missing_kafka_artifact(first, "4.3.1"));
        let log4j =
            "Could not find artifact org.apache.logging.log4j:log4j-core:jar:4.4.0 in central";
        assert!(!is_missing_kafka_artifact(log4j, "4.4.0"));
    }
}
