//! Scaffolding shared by the compare benches (`produce_compare`, `consume_compare`,
//! `txn_compare`): the broker, the clients and their child processes (peers built on demand with
//! cargo or, for franz-go, `go build`), CPU measurement, `JOSEFK_BENCH_*` filters, topics and end
//! offsets, Java's ProducerPerformance, the table ratios and the rows of clients that did not run. Each bench
//! has `mod common;` (files in a subdirectory of `benches/` are not bench targets) next to
//! `#[path = "../peers/common/worker.rs"] mod worker;`, which this module uses.

// Each bench uses a different subset of this module.
#![allow(dead_code)]

pub mod machine;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use josefk::admin::NewTopic;
use josefk::admin::{Admin, OffsetSpec};
use josefk::{ClientConfig, IsolationLevel, TopicPartition};
use josefk_harness::{ClusterSpec, KafkaCluster, KafkaDist, Listener, TestCertificates};

use crate::worker;

/// Partitions of every bench topic (replication 1).
pub const PARTITIONS: i32 = 6;

/// A bench binary's `main`: the josefk worker when re-executed with `--josefk-worker`, else the
/// orchestrator (`cargo bench` passes `--bench`; anything else is ignored as well).
pub fn main(bench: &str, josefk_worker: fn(&[String]), orchestrate: fn() -> Result<(), String>) {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--josefk-worker") {
        josefk_worker(&argv[2..]);
        return;
    }
    if let Err(e) = orchestrate() {
        eprintln!("{bench}: {e}");
        std::process::exit(1);
    }
}

/// The worker payloads ([`worker::payload_pool`]) as `Bytes`.
pub fn payloads(size: usize) -> Vec<Bytes> {
    worker::payload_pool(size)
        .into_iter()
        .map(Bytes::from)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Environment.

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()?
        .trim()
        .replace('_', "")
        .parse()
        .ok()
}

pub fn env_list(name: &str) -> Option<Vec<String>> {
    let v = std::env::var(name).ok()?;
    let list: Vec<String> = v
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    (!list.is_empty()).then_some(list)
}

/// Whether a `JOSEFK_BENCH_*` filter (unset: everything) lets `name` through.
pub fn wants(list: &Option<Vec<String>>, name: &str) -> bool {
    list.as_ref().is_none_or(|l| l.iter().any(|x| x == name))
}

// ---------------------------------------------------------------------------------------------
// The broker and the clients.

/// The environment variable naming the pid of a broker given by `KAFKA_BOOTSTRAP_SERVERS` (the
/// pid `josefk-harness start` prints, or the broker JVM's), so its CPU can be read.
pub const BROKER_PID_ENV: &str = "JOSEFK_BENCH_BROKER_PID";

/// The broker: `KAFKA_BOOTSTRAP_SERVERS`, or a private single node kept alive while `cluster`
/// is.
pub struct Broker {
    pub bootstrap: String,
    pub dist: KafkaDist,
    pub cluster: Option<KafkaCluster>,
    /// Whose CPU (with its descendants') is the broker's: [`BROKER_PID_ENV`], else the private
    /// node's; `None` leaves the broker columns `-`.
    pub pid: Option<u32>,
    /// The SASL_SSL listener, when `JOSEFK_BENCH_SECURITY=sasl_ssl` (see [`SecureListener`]).
    pub secure: Option<SecureListener>,
}

impl Broker {
    pub fn acquire() -> Result<Broker, String> {
        let sasl_ssl = sasl_ssl_wanted()?;
        let broker = match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
            Ok(_) if sasl_ssl => {
                return Err(format!(
                    "{SECURITY_ENV}=sasl_ssl needs the private broker (its listener, CA and \
                     SCRAM user are made at start): unset KAFKA_BOOTSTRAP_SERVERS"
                ))
            }
            Ok(s) if !s.trim().is_empty() => Broker {
                bootstrap: s.trim().to_string(),
                dist: KafkaDist::provision().map_err(|e| e.to_string())?,
                cluster: None,
                pid: None,
                secure: None,
            },
            _ => {
                println!("starting a private single-node Kafka broker (josefk-harness)...");
                let mut spec = ClusterSpec::single();
                let certs = if sasl_ssl {
                    let certs = TestCertificates::generate().map_err(|e| e.to_string())?;
                    spec = spec
                        .listener(
                            Listener::ssl(
                                SECURE_LISTENER,
                                &certs.path("broker.pem"),
                                &certs.path("ca.crt"),
                            )
                            .security_protocol("SASL_SSL")
                            .property("sasl.enabled.mechanisms", SCRAM_MECHANISM)
                            .property(
                                "scram-sha-512.sasl.jaas.config",
                                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                            ),
                        )
                        .scram_user(SCRAM_MECHANISM, SCRAM_USER, SCRAM_PASSWORD);
                    Some(certs)
                } else {
                    None
                };
                let cluster = KafkaCluster::start(spec).map_err(|e| e.to_string())?;
                let secure = certs.map(|certs| SecureListener {
                    bootstrap: cluster.listener_bootstrap(SECURE_LISTENER),
                    security: worker::Security {
                        protocol: "SASL_SSL".into(),
                        mechanism: SCRAM_MECHANISM.into(),
                        username: SCRAM_USER.into(),
                        password: SCRAM_PASSWORD.into(),
                        ca_pem: certs.path("ca.crt").display().to_string(),
                    },
                    _certs: certs,
                });
                Broker {
                    bootstrap: cluster.bootstrap_servers(),
                    dist: cluster.dist().clone(),
                    pid: cluster
                        .node_ids()
                        .first()
                        .and_then(|&id| cluster.node_pid(id)),
                    cluster: Some(cluster),
                    secure,
                }
            }
        };
        let mut broker = broker;
        // Only for a broker given by address: a variable left over from an earlier session must
        // not make the private node's columns time some other (possibly reused) pid.
        let reused = std::env::var("KAFKA_BOOTSTRAP_SERVERS").is_ok();
        if let (true, Ok(v)) = (reused, std::env::var(BROKER_PID_ENV)) {
            let pid: u32 = v
                .trim()
                .parse()
                .map_err(|_| format!("{BROKER_PID_ENV}={v}: not a pid"))?;
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return Err(format!("{BROKER_PID_ENV}={pid}: no such process"));
            }
            broker.pid = Some(pid);
        }
        match broker.pid {
            Some(pid) => println!("broker CPU: pid {pid} and its descendants"),
            None => println!(
                "broker CPU: unknown (set {BROKER_PID_ENV} for a broker given by \
                 KAFKA_BOOTSTRAP_SERVERS); its columns show `-`"
            ),
        }
        if let Some(s) = &broker.secure {
            println!(
                "SASL_SSL listener {} ({SCRAM_MECHANISM}, user {SCRAM_USER}, CA {})",
                s.bootstrap, s.security.ca_pem
            );
        }
        println!(
            "broker {} (Kafka {}), tools {}",
            broker.bootstrap,
            broker.dist.version(),
            broker.dist.tools_version()
        );
        Ok(broker)
    }
}

// ---------------------------------------------------------------------------------------------
// Security: `JOSEFK_BENCH_SECURITY=sasl_ssl` runs every client over SASL_SSL as well.

/// The environment variable that asks for the SASL_SSL rows.
pub const SECURITY_ENV: &str = "JOSEFK_BENCH_SECURITY";
const SECURE_LISTENER: &str = "SASLSSL";
const SCRAM_MECHANISM: &str = "SCRAM-SHA-512";
const SCRAM_USER: &str = "bench";
const SCRAM_PASSWORD: &str = "bench-Scram-512";

/// Whether [`SECURITY_ENV`] asks for SASL_SSL (`sasl_ssl`) or not (unset, empty, `plaintext`).
pub fn sasl_ssl_wanted() -> Result<bool, String> {
    match std::env::var(SECURITY_ENV).ok().as_deref().map(str::trim) {
        None | Some("") | Some("plaintext") => Ok(false),
        Some("sasl_ssl") => Ok(true),
        Some(other) => Err(format!(
            "{SECURITY_ENV}={other}: expected `sasl_ssl` or `plaintext`"
        )),
    }
}

/// The private broker's SASL_SSL listener: SCRAM-SHA-512 for one user made at format time, TLS
/// with a certificate from a CA made at start (the harness's test certificates, 127.0.0.1 and
/// localhost, so host names are checked).
pub struct SecureListener {
    pub bootstrap: String,
    /// What a worker is given in its environment ([`Broker::child_env`]).
    pub security: worker::Security,
    /// Keeps the certificate directory while the broker runs.
    _certs: TestCertificates,
}

/// How a client connects in one run: the plaintext listener, or SASL_SSL with SCRAM-SHA-512.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    Plaintext,
    SaslSsl,
}

impl Wire {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Wire::Plaintext => "PLAINTEXT",
            Wire::SaslSsl => "SASL_SSL",
        }
    }
}

impl Broker {
    /// The ways clients connect in this run: PLAINTEXT, then SASL_SSL when the broker has it.
    pub fn wires(&self) -> Vec<Wire> {
        let mut wires = vec![Wire::Plaintext];
        if self.secure.is_some() {
            wires.push(Wire::SaslSsl);
        }
        wires
    }

    /// The bootstrap address of `wire`'s listener.
    pub fn bootstrap_for(&self, wire: Wire) -> &str {
        match (wire, &self.secure) {
            (Wire::SaslSsl, Some(s)) => &s.bootstrap,
            _ => &self.bootstrap,
        }
    }

    /// The environment a worker child gets for `wire` (empty for PLAINTEXT).
    pub fn child_env(&self, wire: Wire) -> Vec<(&'static str, String)> {
        match (wire, &self.secure) {
            (Wire::SaslSsl, Some(s)) => s.security.to_env(),
            _ => Vec::new(),
        }
    }

    /// The Java client properties for `wire`, one `key=value` line each (empty for PLAINTEXT).
    pub fn java_properties(&self, wire: Wire) -> String {
        match (wire, &self.secure) {
            (Wire::SaslSsl, Some(s)) => s
                .security
                .java_properties()
                .into_iter()
                .map(|(k, v)| format!("{k}={v}\n"))
                .collect(),
            _ => String::new(),
        }
    }
}

/// josefk's client settings for a worker: `bootstrap`, and SASL_SSL through the Java property
/// names (`security.protocol`, `sasl.jaas.config`, a PEM trust store) when the worker's
/// environment asks for it ([`worker::Security`]).
pub fn josefk_client(bootstrap: &str) -> ClientConfig {
    match worker::parse_or_exit("josefk worker", worker::Security::from_env()) {
        None => ClientConfig::new(bootstrap),
        Some(s) => {
            let mut props = s.java_properties();
            props.push(("bootstrap.servers".into(), bootstrap.into()));
            ClientConfig::from_properties(props.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .unwrap_or_else(|e| {
                    eprintln!("josefk worker: SASL_SSL settings: {e}");
                    std::process::exit(2)
                })
        }
    }
}

/// What every orchestrator starts with, in this order: the broker, the clients, a runtime and
/// an admin client on it.
pub struct Setup<J> {
    pub broker: Broker,
    pub clients: Vec<Client<J>>,
    /// Peers asked for that could not be built, shown as "not run" rows in every table.
    pub not_run: Vec<NotRun>,
    pub runtime: tokio::runtime::Runtime,
    pub admin: Admin,
}

/// Acquires the broker, picks the clients (see [`clients`]; `java` gets the broker's
/// distribution) and connects an admin client on a current-thread or multi-thread runtime.
pub fn setup<J>(
    peers: &[Peer],
    multi_thread: bool,
    java: impl FnOnce(&KafkaDist) -> Result<Option<J>, String>,
) -> Result<Setup<J>, String> {
    let broker = Broker::acquire()?;
    let (clients, not_run) = clients(peers, || java(&broker.dist))?;
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = builder.enable_all().build().map_err(|e| e.to_string())?;
    let admin = runtime
        .block_on(Admin::connect(ClientConfig::new(&broker.bootstrap)))
        .map_err(|e| format!("admin connect: {e}"))?;
    Ok(Setup {
        broker,
        clients,
        not_run,
        runtime,
        admin,
    })
}

/// One client of a bench; `J` is how the bench runs Java.
pub enum Client<J> {
    Josefk,
    Java(J),
    Peer { name: &'static str, binary: PathBuf },
}

impl<J> Client<J> {
    pub fn name(&self) -> &'static str {
        match self {
            Client::Josefk => "josefk",
            Client::Java(_) => "java",
            Client::Peer { name, .. } => name,
        }
    }
}

/// A peer client: a program outside the workspace, built on demand.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// Its name in tables and in `JOSEFK_BENCH_CLIENTS`.
    pub name: &'static str,
    /// The crate `peers/<program>/` (cargo) or the command `peers/franz-go/cmd/<program>` (Go).
    pub program: &'static str,
    pub toolchain: Toolchain,
}

/// What builds a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toolchain {
    Cargo,
    Go,
}

impl Peer {
    /// A Rust peer, the crate `peers/<dir>/`.
    pub const fn cargo(name: &'static str, dir: &'static str) -> Peer {
        Peer {
            name,
            program: dir,
            toolchain: Toolchain::Cargo,
        }
    }

    /// A command of the Go module `peers/franz-go/`.
    pub const fn go(name: &'static str, command: &'static str) -> Peer {
        Peer {
            name,
            program: command,
            toolchain: Toolchain::Go,
        }
    }

    /// Builds the peer (a no-op or near one when up to date) and returns its binary.
    pub fn build(&self) -> Result<PathBuf, String> {
        match self.toolchain {
            Toolchain::Cargo => build_peer(self.program),
            Toolchain::Go => build_go_peer(self.program),
        }
    }
}

/// A client that was asked for but could not run, and why.
#[derive(Debug, Clone)]
pub struct NotRun {
    pub name: &'static str,
    pub why: String,
}

/// Prints the "not run" rows of a table (nothing when every client ran).
pub fn print_not_run(not_run: &[NotRun]) {
    let rows = not_run_rows(not_run);
    if !rows.is_empty() {
        println!("{}", &rows[1..]);
    }
}

/// The "not run" rows of a table, each starting with a newline (empty when every client ran).
pub fn not_run_rows(not_run: &[NotRun]) -> String {
    not_run
        .iter()
        .map(|n| {
            // The first two lines: a build failure's headline and the tool's first complaint.
            let why: Vec<&str> = n
                .why
                .lines()
                .filter(|l| !l.trim().is_empty())
                .take(2)
                .collect();
            let why: String = why.join(" ").chars().take(160).collect();
            format!("\n  {:8} not run ({why})", n.name)
        })
        .collect()
}

/// The clients `JOSEFK_BENCH_CLIENTS` asks for, in its order (unset: josefk, java, the `peers`,
/// built on demand), and the peers that could not be built. The order is the run order: the first
/// client meets the broker right after its warm-up, when it costs the most per record, so
/// rotating the list between runs spreads that. `java` says how Java runs, or `None` (having
/// said why) to skip it; every peer skipped says why.
pub fn clients<J>(
    peers: &[Peer],
    java: impl FnOnce() -> Result<Option<J>, String>,
) -> Result<(Vec<Client<J>>, Vec<NotRun>), String> {
    let wanted = env_list("JOSEFK_BENCH_CLIENTS");
    let mut clients = Vec::new();
    let mut not_run = Vec::new();
    if wants(&wanted, "josefk") {
        clients.push(Client::Josefk);
    }
    if wants(&wanted, "java") {
        if let Some(j) = java()? {
            clients.push(Client::Java(j));
        }
    }
    for peer in peers {
        let name = peer.name;
        if !wants(&wanted, name) {
            continue;
        }
        match peer.build() {
            Ok(binary) => clients.push(Client::Peer { name, binary }),
            Err(why) => {
                println!("SKIPPING {name}: {why}");
                not_run.push(NotRun { name, why });
            }
        }
    }
    if let Some(order) = &wanted {
        clients.sort_by_key(|c| order.iter().position(|w| w == c.name()));
    }
    Ok((clients, not_run))
}

/// What a Java tool prints for `--help` (stdout then stderr), to tell its flags apart.
pub fn java_help(dist: &KafkaDist, class: &str) -> Result<String, String> {
    let help = josefk_harness::run_java_tool(dist, class, &["--help"], secs(120))
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&help.stdout),
        String::from_utf8_lossy(&help.stderr)
    ))
}

/// Builds a peer with cargo (a no-op when up to date) and returns its binary.
pub fn build_peer(dir: &str) -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join(dir);
    let target = root.join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("building peers/{dir} (release)...");
    let out = Command::new(cargo)
        .args(["build", "--release", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("`cargo build` failed:\n{}", tail(&out.stderr, 15)));
    }
    Ok(target.join("release").join(dir))
}

/// Builds a command of the Go module `peers/franz-go` with `go build` into this bench's target
/// directory (`<target>/tmp/franz-go/<command>`; Go's build cache makes a rebuild cheap) and
/// returns the binary. Go is `$GO`, else `go` on the PATH, else `/usr/local/go/bin/go`; without
/// one the peer is skipped. The module's dependencies come from Go's module cache or proxy.
pub fn build_go_peer(command: &str) -> Result<PathBuf, String> {
    let module = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join("franz-go");
    let binary = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("franz-go")
        .join(command);
    let go = go_toolchain().ok_or_else(|| {
        "no Go toolchain (set GO, or put go on the PATH; Go 1.26 or later)".to_string()
    })?;
    println!("building peers/franz-go/cmd/{command} (go build)...");
    let out = Command::new(&go)
        .current_dir(&module)
        .args(["build", "-buildvcs=false", "-o"])
        .arg(&binary)
        .arg(format!("./cmd/{command}"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", go.display()))?;
    if !out.status.success() {
        return Err(format!("`go build` failed:\n{}", tail(&out.stderr, 15)));
    }
    Ok(binary)
}

/// The first Go toolchain that answers `go version`.
fn go_toolchain() -> Option<PathBuf> {
    let from_env = std::env::var_os("GO").map(PathBuf::from);
    from_env
        .into_iter()
        .chain(["go", "/usr/local/go/bin/go"].map(PathBuf::from))
        .find(|go| {
            Command::new(go)
                .arg("version")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// The last `n` lines of a process's output.
pub fn tail(output: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(output);
    let tail: Vec<&str> = text.lines().rev().take(n).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    tail.join("\n")
}

/// This binary re-executed as the josefk worker: `(executable, argv)`.
pub fn josefk_command(args: Vec<String>) -> Result<(PathBuf, Vec<String>), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut argv = vec!["--josefk-worker".to_string()];
    argv.extend(args);
    Ok((exe, argv))
}

/// Runs a worker binary to completion and parses its result line; its stderr passes through.
pub fn run_worker<R>(
    exe: &Path,
    argv: &[String],
    parse: fn(&str) -> Option<R>,
) -> Result<R, String> {
    run_worker_env(exe, argv, &[], parse)
}

/// [`run_worker`] with more variables in the child's environment ([`Broker::child_env`]).
pub fn run_worker_env<R>(
    exe: &Path,
    argv: &[String],
    env: &[(&'static str, String)],
    parse: fn(&str) -> Option<R>,
) -> Result<R, String> {
    let mut cmd = Command::new(exe);
    cmd.args(argv)
        .envs(env.iter().cloned())
        .stderr(Stdio::inherit());
    let out = run_child(&mut cmd, secs(900))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    parse(&stdout).ok_or_else(|| format!("no result line (exit {}); stdout: {stdout}", out.status))
}

// ---------------------------------------------------------------------------------------------
// Child processes: CPU and peak RSS.

/// What the children run inside one [`children_usage`] call cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// user+sys seconds of the children (and their waited-for descendants), from
    /// RUSAGE_CHILDREN deltas.
    pub cpu_s: f64,
    /// The largest peak RSS (KiB) of any child reaped by [`run_child`] meanwhile; 0 if none.
    pub peak_rss_kib: u64,
    /// What the broker and the whole machine spent meanwhile ([`Broker::usage`] only).
    pub spent: Option<machine::Spent>,
}

impl Usage {
    /// The broker's CPU seconds per million `records` (a table cell, `-` when unknown).
    pub fn broker_s_per_m(&self, records: u64) -> String {
        self.spent.map_or("-".into(), |s| s.broker_s_per_m(records))
    }

    /// The machine's busy percent, 100 = every CPU busy (a table cell).
    pub fn busy_pct(&self) -> String {
        self.spent.map_or("-".into(), |s| s.busy_pct())
    }

    /// The machine's percent busy with neither client nor broker (a table cell).
    pub fn other_pct(&self) -> String {
        self.spent.map_or("-".into(), |s| s.other_pct(self.cpu_s))
    }

    /// Peak RSS in MiB, `-` when nothing was measured (as a table cell).
    pub fn rss_mib(&self) -> String {
        if self.peak_rss_kib == 0 {
            "-".into()
        } else {
            format!("{:.1}", self.peak_rss_kib as f64 / 1024.0)
        }
    }
}

thread_local! {
    /// The largest `ru_maxrss` of the children [`run_child`] reaped on this thread since the
    /// last [`children_usage`] began.
    static PEAK_RSS_KIB: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Runs `run` (child processes started with [`run_child`]) and returns its result with the
/// user+sys CPU of the children waited for meanwhile (RUSAGE_CHILDREN deltas from
/// `/proc/self/stat`) and the largest peak RSS among them.
///
/// Peak RSS is each child's own `ru_maxrss` from `wait4`: the kernel's high-water mark of that
/// process (and of any descendants it reaped), exact to the page and taken when it is reaped, so
/// nothing is missed between samples. `getrusage(RUSAGE_CHILDREN).ru_maxrss` would not do: it
/// is the largest child ever reaped by this process, so a small client after a large one (a JVM)
/// would be reported as the large one. `/proc/<pid>/status` VmHWM is per process but can only
/// be sampled while the child lives, so its last growth before exit could be missed.
pub fn children_usage<R>(ticks: f64, run: impl FnOnce() -> R) -> (R, Usage) {
    PEAK_RSS_KIB.with(|p| p.set(0));
    let (result, cpu_s) = children_cpu(ticks, run);
    let peak_rss_kib = PEAK_RSS_KIB.with(|p| p.get());
    (
        result,
        Usage {
            cpu_s,
            peak_rss_kib,
            spent: None,
        },
    )
}

impl Broker {
    /// [`children_usage`] with what the broker and the machine spent meanwhile
    /// ([`machine::Spent`] in [`Usage::spent`]).
    pub fn usage<R>(&self, ticks: f64, run: impl FnOnce() -> R) -> (R, Usage) {
        let before = machine::Snapshot::take(self.pid);
        let (result, mut usage) = children_usage(ticks, run);
        usage.spent = Some(machine::Snapshot::take(self.pid).since(&before, ticks));
        (result, usage)
    }
}

/// The legend of the columns [`Usage::broker_s_per_m`], [`Usage::busy_pct`] and
/// [`Usage::other_pct`] fill, for under a table.
pub const MACHINE_LEGEND: &str = "broker s/M = the broker process's CPU s per million records \
     while the client ran; busy % = the whole machine's busy CPU over that time, 100 = every \
     core busy; other % = the part of it neither client nor broker (other processes, this \
     orchestrator); all over the client process's life, start-up included";

/// Runs `cmd` to its exit with stdin from /dev/null and stdout piped (stderr as `cmd` says;
/// piped streams are drained concurrently, so a chatty child never blocks) and returns its
/// output. The child is reaped with `wait4`, whose `ru_maxrss` goes to [`children_usage`]. Past
/// `timeout` the child is killed and this is an error.
pub fn run_child(cmd: &mut Command, timeout: Duration) -> Result<std::process::Output, String> {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;

    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        pipe.map(|mut r| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                buf
            })
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let pid = child.id() as libc::pid_t;
    let deadline = Instant::now() + timeout;
    let mut killed = false;
    let (status, rusage) = loop {
        let mut status: libc::c_int = 0;
        // SAFETY: a zeroed rusage is a valid value of this plain C struct.
        let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our child, not yet reaped (only this loop reaps it); both pointers
        // are to live locals of the right types.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut rusage) };
        if r == pid {
            break (status, rusage);
        }
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("wait4: {e}"));
            }
        } else if !killed && Instant::now() > deadline {
            // Not reaped yet, so the pid is still this child's.
            let _ = child.kill();
            killed = true;
        }
        // Polling costs the parent a little CPU, which no measurement counts (its own CPU is
        // not a child's); the workers time themselves, so the 5 ms granularity is not in them.
        std::thread::sleep(Duration::from_millis(5));
    };
    // Linux reports ru_maxrss in KiB.
    let rss = rusage.ru_maxrss.max(0) as u64;
    PEAK_RSS_KIB.with(|p| p.set(p.get().max(rss)));
    let join = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    let out = std::process::Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: join(stdout),
        stderr: join(stderr),
    };
    if killed {
        return Err(format!(
            "{:?} killed after {timeout:?}; stderr tail:\n{}",
            cmd.get_program(),
            tail(&out.stderr, 20)
        ));
    }
    Ok(out)
}

/// Runs a Java tool (`main_class` on the tools classpath, with the heap the kafka-*.sh scripts
/// give perf tools) as a direct child of this process, so [`run_child`] can reap the JVM itself
/// and read its peak RSS (the harness runs tools under a shell wrapper it reaps itself).
/// Logging is WARN and above to stderr, so stdout carries only the tool's output.
pub fn run_java_tool(
    dist: &KafkaDist,
    main_class: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<std::process::Output, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let log4j2 = dir.join("bench-log4j2-tools.properties");
    let reload4j = dir.join("bench-log4j-tools.properties");
    std::fs::write(
        &log4j2,
        "status = error\nappender.err.type = Console\nappender.err.name = STDERR\n\
         appender.err.target = SYSTEM_ERR\nappender.err.layout.type = PatternLayout\n\
         appender.err.layout.pattern = [%d] %p %m (%c)%n\nrootLogger.level = warn\n\
         rootLogger.appenderRef.err.ref = STDERR\n",
    )
    .and_then(|()| {
        std::fs::write(
            &reload4j,
            "log4j.rootLogger=WARN, stderr\nlog4j.appender.stderr=org.apache.log4j.ConsoleAppender\n\
             log4j.appender.stderr.Target=System.err\n\
             log4j.appender.stderr.layout=org.apache.log4j.PatternLayout\n\
             log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n\n",
        )
    })
    .map_err(|e| format!("writing log config in {}: {e}", dir.display()))?;
    let mut cmd = Command::new(dist.java());
    cmd.arg("-Xmx512m")
        .arg("-Djava.awt.headless=true")
        .arg(format!("-Dlog4j2.configurationFile={}", log4j2.display()))
        .arg(format!("-Dlog4j.configuration=file:{}", reload4j.display()))
        .arg("-cp")
        .arg(dist.tools_classpath())
        .arg(main_class)
        .args(args)
        .stderr(Stdio::piped());
    run_child(&mut cmd, timeout)
}

/// Runs `run` (a child process) and returns its result with the user+sys CPU of the children
/// waited for meanwhile (RUSAGE_CHILDREN deltas from `/proc/self/stat`).
pub fn children_cpu<R>(ticks: f64, run: impl FnOnce() -> R) -> (R, f64) {
    let before = worker::cpu_seconds(ticks).1;
    let result = run();
    (result, worker::cpu_seconds(ticks).1 - before)
}

/// Records a client's start-up cost (its 1-record run's CPU) once, printing it as `what`.
pub fn record_baseline(
    baseline: &mut HashMap<&'static str, f64>,
    name: &'static str,
    what: &str,
    run: impl FnOnce() -> Result<f64, String>,
) {
    if baseline.contains_key(name) {
        return;
    }
    match run() {
        Ok(cpu_s) => {
            println!("  {name:8} {what}: {cpu_s:.2} s CPU");
            baseline.insert(name, cpu_s);
        }
        Err(e) => println!("  {name:8} 1-record run failed: {e}"),
    }
}

/// A client's CPU seconds net of its 1-record run.
pub fn net_cpu(baseline: &HashMap<&str, f64>, name: &str, cpu_s: f64) -> f64 {
    cpu_s - baseline.get(name).copied().unwrap_or(0.0)
}

/// The two josefk-versus-this-row ratios, `{:.2}`, of a peer's row (`ratios(josefk, row)`);
/// `-` for josefk's own row, or when josefk has no row.
pub fn josefk_ratios<T>(
    rows: &[(&'static str, T)],
    name: &str,
    row: &T,
    ratios: impl Fn(&T, &T) -> (f64, f64),
) -> (String, String) {
    match rows.iter().find(|(n, _)| *n == "josefk") {
        Some((_, j)) if name != "josefk" => {
            let (a, b) = ratios(j, row);
            (format!("{a:.2}"), format!("{b:.2}"))
        }
        _ => ("-".into(), "-".into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Java's ProducerPerformance.

pub const PRODUCER_PERF_CLASS: &str = "org.apache.kafka.tools.ProducerPerformance";

/// One ProducerPerformance run with the producer settings every client gets.
pub struct ProducerPerf<'a> {
    pub bootstrap: &'a str,
    pub topic: &'a str,
    pub records: u64,
    pub size: usize,
    pub linger_ms: u64,
    pub batch_size: usize,
    pub buffer_memory: usize,
    /// `compression.type`, if set.
    pub compression: Option<&'a str>,
    /// `--throughput`: records/s the tool paces itself to; `None` is as fast as it can.
    pub throughput: Option<u64>,
    /// More flags, before `--bootstrap-server`.
    pub extra: Vec<&'a str>,
    /// Whether the tool knows `--bootstrap-server`.
    pub bootstrap_flag: bool,
}

impl ProducerPerf<'_> {
    /// Runs the tool and hands the numbers of its final summary line (`N records sent, R
    /// records/sec (M MB/sec), A ms avg latency, X ms max latency, P50 ms 50th, P95 ms 95th, P99
    /// ms 99th, P999 ms 99.9th.`) to `parse`.
    pub fn run<R>(
        &self,
        dist: &KafkaDist,
        parse: impl FnOnce(&[f64]) -> Option<R>,
    ) -> Result<R, String> {
        let records = self.records.to_string();
        let size = self.size.to_string();
        let throughput = self.throughput.map_or("-1".to_string(), |t| t.to_string());
        let mut props = vec![
            "acks=all".to_string(),
            "enable.idempotence=true".to_string(),
            format!("linger.ms={}", self.linger_ms),
            format!("batch.size={}", self.batch_size),
            format!("buffer.memory={}", self.buffer_memory),
        ];
        if let Some(c) = self.compression {
            props.push(format!("compression.type={c}"));
        }
        props.push(format!("bootstrap.servers={}", self.bootstrap));
        let mut argv: Vec<&str> = vec![
            "--topic",
            self.topic,
            "--num-records",
            &records,
            "--record-size",
            &size,
            "--throughput",
            &throughput,
        ];
        argv.extend(&self.extra);
        if self.bootstrap_flag {
            argv.extend(["--bootstrap-server", self.bootstrap]);
        }
        argv.push("--producer-props");
        // With --bootstrap-server the property is redundant but harmless; without it, required.
        argv.extend(props.iter().map(String::as_str));
        let out = run_java_tool(dist, PRODUCER_PERF_CLASS, &argv, secs(900))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout
            .lines()
            .rev()
            .find(|l| l.contains("records sent") && l.contains("99th"))
            .and_then(|line| {
                let nums: Vec<f64> = line
                    .split([',', '(', ')'])
                    .filter_map(|part| part.split_whitespace().next()?.parse().ok())
                    .collect();
                parse(&nums)
            })
            .ok_or_else(|| {
                format!(
                    "no summary line (exit {}); stdout: {stdout}; stderr: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            })
    }
}

// ---------------------------------------------------------------------------------------------
// Topics and end offsets.

pub fn partitions(topic: &str) -> Vec<TopicPartition> {
    (0..PARTITIONS)
        .map(|p| TopicPartition::new(topic, p))
        .collect()
}

/// Creates a [`PARTITIONS`]-partition topic and waits until it answers ListOffsets.
pub async fn create_topic(admin: &Admin, topic: &str) -> Result<(), String> {
    admin
        .create_topics(&[NewTopic::new(topic, PARTITIONS, 1)])
        .await
        .map_err(|e| format!("create topic {topic}: {e}"))?;
    // Leaders may take a moment; ListOffsets answering for all partitions means they are there.
    let deadline = Instant::now() + secs(30);
    loop {
        match end_offsets(admin, topic).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Per-partition end offsets: the high watermark (read_uncommitted) or the last stable offset
/// (read_committed).
pub async fn offsets(
    admin: &Admin,
    topic: &str,
    isolation: IsolationLevel,
) -> Result<HashMap<TopicPartition, i64>, String> {
    let specs: Vec<_> = partitions(topic)
        .into_iter()
        .map(|tp| (tp, OffsetSpec::Latest))
        .collect();
    let got = admin
        .list_offsets(&specs, isolation)
        .await
        .map_err(|e| format!("list offsets of {topic}: {e}"))?;
    if got.len() != PARTITIONS as usize {
        return Err(format!(
            "list offsets of {topic}: {} partitions answered",
            got.len()
        ));
    }
    Ok(got.into_iter().map(|(tp, o)| (tp, o.offset)).collect())
}

/// The sum of the topic's partitions' high watermarks.
pub async fn end_offsets(admin: &Admin, topic: &str) -> Result<i64, String> {
    Ok(offsets(admin, topic, IsolationLevel::ReadUncommitted)
        .await?
        .values()
        .sum())
}
