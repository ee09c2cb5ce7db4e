//! Test harness for josefk: real Apache Kafka brokers (KRaft) for live tests,
//! examples and benches, run from jars resolved from Maven Central. Synchronous,
//! std only, and independent of josefk itself.
//!
//! * [`KafkaDist`] (`provision.rs`): resolves and caches the broker and tools classpaths.
//! * [`ClusterSpec`] (`config.rs`): what to start; renders `server.properties`.
//! * [`Listener`] (`config.rs`): extra SSL / SASL listeners; [`TestCertificates`] (`certs.rs`):
//!   a CA and certificates made with the `openssl` CLI for them.
//! * [`KafkaCluster`] (`cluster.rs`): formats, starts, bounces and stops nodes.
//! * [`run_java_tool`] and friends (`tools.rs`): Kafka's Java CLI tools.
//! * [`JavaProcess`] (`process.rs`): every JVM runs under a watcher that stops it
//!   when the owning process dies, even by SIGKILL, so no broker is ever left behind.
//! * `node.rs`: one node's JVM and log; `toolchain.rs`: finding `java` and `mvn`.
//! * `error.rs`: [`HarnessError`], whose messages say what to do.
//!
//! Everything listens on 127.0.0.1 only, on ports picked at start, so clusters
//! from tests running in parallel do not collide.
//!
//! A live test usually wants an existing broker when one is given and a clear
//! failure otherwise:
//!
//! ```no_run
//! let servers = josefk_harness::bootstrap_servers_from_env()?;
//! # Ok::<(), josefk_harness::HarnessError>(())
//! ```
//!
//! and a test that bounces brokers starts its own:
//!
//! ```no_run
//! use josefk_harness::{ClusterSpec, KafkaCluster};
//! let mut cluster = KafkaCluster::start(ClusterSpec::three_nodes().transaction_version(2))?;
//! let servers = cluster.bootstrap_servers();
//! cluster.kill_node(2)?;
//! cluster.start_node(2)?;
//! # Ok::<(), josefk_harness::HarnessError>(())
//! ```
//!
//! Environment: `KAFKA_BOOTSTRAP_SERVERS` (existing broker for live tests),
//! `JOSEFK_KAFKA_VERSION` (default [`DEFAULT_KAFKA_VERSION`]),
//! `JOSEFK_KAFKA_TOOLS_VERSION`, `JOSEFK_KAFKA_CACHE` (classpath cache dir),
//! `JOSEFK_KAFKA_START_TIMEOUT_SECS` (default 90), `JOSEFK_KEEP_KAFKA_LOGS=1`
//! (keep cluster dirs), `JAVA_HOME`.

#![deny(missing_docs)]

mod certs;
mod cluster;
mod config;
mod error;
mod node;
mod process;
mod provision;
mod toolchain;
mod tools;

pub use certs::{TestCertificates, STORE_PASSWORD};
pub use cluster::KafkaCluster;
pub use config::{ClusterSpec, Listener};
pub use error::{HarnessError, Result};
pub use process::{send_signal, signals, JavaProcess};
pub use provision::{cache_dir_for, kafka_version, KafkaDist, TOOLS_FALLBACK_VERSION};
pub use tools::{
    run_java_tool, run_java_tool_interactive, run_java_tool_with_stdin, spawn_java_tool,
};

/// The Kafka release used unless `JOSEFK_KAFKA_VERSION` says otherwise.
pub const DEFAULT_KAFKA_VERSION: &str = "4.4.0";

/// The broker an example or demo should use: `$KAFKA_BOOTSTRAP_SERVERS` if set, otherwise a
/// single-node broker started here (provisioned from Maven Central on first use). Keep the
/// returned cluster alive as long as the broker is needed; dropping it stops the broker.
pub fn bootstrap_or_local_broker() -> Result<(String, Option<KafkaCluster>)> {
    if let Ok(servers) = bootstrap_servers_from_env() {
        return Ok((servers, None));
    }
    eprintln!(
        "KAFKA_BOOTSTRAP_SERVERS not set: starting a local Kafka broker (the first run downloads \
         it from Maven Central)..."
    );
    let cluster = KafkaCluster::start(ClusterSpec::single())?;
    Ok((cluster.bootstrap_servers(), Some(cluster)))
}

/// The broker a live test should use: `$KAFKA_BOOTSTRAP_SERVERS` if set. Otherwise
/// an error saying how to get one, meant to fail the test rather than skip it
/// silently.
pub fn bootstrap_servers_from_env() -> Result<String> {
    match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => Err(HarnessError::NoBootstrapServers),
    }
}
