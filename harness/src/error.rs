//! The harness's error type. Every message says what went wrong *and* what to do
//! about it, because these errors surface as test failures read by people who did
//! not write the harness.

use std::fmt;
use std::io;
use std::time::Duration;

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, HarnessError>;

/// Hint appended to errors about the local toolchain: a live test can always be
/// pointed at an existing broker instead.
const USE_EXISTING: &str =
    "or set KAFKA_BOOTSTRAP_SERVERS=host:port to use a broker you already run";

/// Everything that can go wrong while provisioning or running Kafka.
#[derive(Debug)]
#[non_exhaustive]
pub enum HarnessError {
    /// No usable `java` binary.
    JavaNotFound {
        /// What was tried and how it failed.
        detail: String,
    },
    /// `java` exists but is older than 17 (the Kafka broker needs 17+).
    JavaTooOld {
        /// The version line `java -version` printed.
        found: String,
    },
    /// `mvn` is needed to resolve jars and is missing.
    MavenNotFound {
        /// What was tried and how it failed.
        detail: String,
    },
    /// Maven ran but could not resolve the Kafka jars.
    Provision {
        /// The Kafka version being provisioned.
        version: String,
        /// Which classpath ("broker" or "tools").
        what: String,
        /// The end of Maven's output.
        detail: String,
    },
    /// A filesystem or process operation failed.
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// `kafka.tools.StorageTool format` failed for a node.
    Format {
        /// The node whose storage could not be formatted.
        node_id: i32,
        /// The tool's output.
        detail: String,
    },
    /// A broker exited while the harness waited for it to become ready.
    NodeExited {
        /// The node that exited.
        node_id: i32,
        /// Its exit status as text.
        status: String,
        /// The end of its logs.
        log_tail: String,
    },
    /// A broker did not become ready in time.
    StartTimeout {
        /// The node that was not ready.
        node_id: i32,
        /// How long the harness waited.
        waited: Duration,
        /// What was still missing (log line, TCP port).
        missing: String,
        /// The end of its logs.
        log_tail: String,
    },
    /// A node id that is not part of the cluster.
    UnknownNode {
        /// The id asked for.
        node_id: i32,
        /// The ids that exist.
        known: Vec<i32>,
    },
    /// An operation needed the node running (or stopped) and it was not.
    NodeState {
        /// The node.
        node_id: i32,
        /// What was expected.
        detail: String,
    },
    /// A Java tool ran longer than its timeout and was killed.
    ToolTimeout {
        /// The tool's main class.
        main_class: String,
        /// The timeout that elapsed.
        timeout: Duration,
        /// What it printed on stdout before it was killed.
        stdout: String,
        /// What it printed on stderr before it was killed.
        stderr: String,
    },
    /// A live test found no broker to use.
    NoBootstrapServers,
    /// The harness needs a Unix-like OS (signals, `sh`).
    Unsupported,
}

impl HarnessError {
    /// Wraps an [`io::Error`] with what the harness was doing.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        HarnessError::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::JavaNotFound { detail } => write!(
                f,
                "Java 17+ not found ({detail}): install openjdk-17 \
                 (`apt-get install -y openjdk-17-jdk-headless`) or set JAVA_HOME, {USE_EXISTING}"
            ),
            HarnessError::JavaTooOld { found } => write!(
                f,
                "Java 17+ is required to run Kafka, found `{found}`: install openjdk-17 and put it \
                 first on PATH or set JAVA_HOME, {USE_EXISTING}"
            ),
            HarnessError::MavenNotFound { detail } => write!(
                f,
                "Maven (`mvn`) not found ({detail}); it is needed once to download the Kafka jars: \
                 `apt-get install -y maven`, {USE_EXISTING}"
            ),
            HarnessError::Provision {
                version,
                what,
                detail,
            } => write!(
                f,
                "could not resolve the Kafka {version} {what} jars from Maven Central \
                 (check network access to Maven Central, or pick another version with \
                 JOSEFK_KAFKA_VERSION); Maven said:\n{detail}"
            ),
            HarnessError::Io { context, source } => write!(f, "{context}: {source}"),
            HarnessError::Format { node_id, detail } => write!(
                f,
                "formatting the storage of Kafka node {node_id} failed:\n{detail}"
            ),
            HarnessError::NodeExited {
                node_id,
                status,
                log_tail,
            } => write!(
                f,
                "Kafka node {node_id} exited during startup ({status}); \
                 set JOSEFK_KEEP_KAFKA_LOGS=1 to keep its logs. Log tail:\n{log_tail}"
            ),
            HarnessError::StartTimeout {
                node_id,
                waited,
                missing,
                log_tail,
            } => write!(
                f,
                "Kafka node {node_id} not ready after {}s ({missing}); the machine may be \
                 overloaded (JOSEFK_KAFKA_START_TIMEOUT_SECS raises the limit, \
                 JOSEFK_KEEP_KAFKA_LOGS=1 keeps the logs). Log tail:\n{log_tail}",
                waited.as_secs()
            ),
            HarnessError::UnknownNode { node_id, known } => {
                write!(
                    f,
                    "no Kafka node {node_id} in this cluster (nodes: {known:?})"
                )
            }
            HarnessError::NodeState { node_id, detail } => {
                write!(f, "Kafka node {node_id}: {detail}")
            }
            HarnessError::ToolTimeout {
                main_class,
                timeout,
                stdout,
                stderr,
            } => write!(
                f,
                "Java tool {main_class} still running after {}s and was killed.\n\
                 stdout:\n{stdout}\nstderr:\n{stderr}",
                timeout.as_secs_f32()
            ),
            HarnessError::NoBootstrapServers => write!(
                f,
                "this live test needs a Kafka broker: set KAFKA_BOOTSTRAP_SERVERS=host:port, \
                 or run the tests with `cargo run -p josefk-harness -- test`"
            ),
            HarnessError::Unsupported => {
                write!(f, "the Kafka harness needs Linux or macOS; {USE_EXISTING}")
            }
        }
    }
}

impl std::error::Error for HarnessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HarnessError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
