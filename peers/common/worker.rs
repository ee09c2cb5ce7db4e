//! The worker protocol shared by `benches/produce_compare.rs` and the peer benches in `peers/`:
//! command-line arguments, payloads, latency percentiles, CPU clocks and the one result line a
//! worker prints. The flag, result-line and CPU helpers here are also the building blocks of the
//! other two protocols (`peers/rdkafka-txn/src/txn_proto.rs`,
//! `peers/rdkafka-consume/src/protocol.rs`), which are always included next to this file. Included with `#[path]` by each binary (the peers are separate crates outside
//! the workspace, so a shared library crate would drag them back into one build graph).
//!
//! A worker is run as `<binary> --bootstrap B --topic T --records N --size S --compression C
//! --linger-ms L --batch-size BS --buffer-memory M` and prints, last, one line
//! `PRODUCE_COMPARE_RESULT acked=.. failed=.. bytes=.. elapsed_s=.. p50_ms=.. p99_ms=.. cpu_s=..`
//! (see [`WorkerResult`]). Only broker-acknowledged records count as `acked`.
//!
//! Fixed-rate mode: with `--rate R` (records/s; absent or 0: as fast as possible) record `i` is
//! sent no earlier than `i / R` s after the first ([`due`]), and the result line ends with
//! ` p999_ms=..` (see [`p999_ms`]). Workers without the mode ignore the flag, so the bench only
//! asks the clients that have it.

// Each includer uses a different subset of this file.
#![allow(dead_code)]

use std::time::Duration;

/// The prefix of the result line, so the parent finds it among any log output.
pub const RESULT_PREFIX: &str = "PRODUCE_COMPARE_RESULT";

/// How many distinct payloads a worker cycles through. Large enough that a 16 KiB batch never
/// holds the same payload twice, so LZ4 sees data about as compressible as the Java tool's
/// per-record random letters, without paying for a random generator per record.
pub const PAYLOAD_POOL: usize = 1024;

/// What a worker is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerArgs {
    pub bootstrap: String,
    pub topic: String,
    pub records: u64,
    pub size: usize,
    pub compression: String,
    pub linger_ms: u64,
    pub batch_size: usize,
    pub buffer_memory: usize,
    /// Records per second in fixed-rate mode; 0 sends as fast as possible.
    pub rate: u64,
}

impl WorkerArgs {
    /// The arguments as a worker command line (without the binary or mode flag).
    pub fn to_args(&self) -> Vec<String> {
        let mut args = to_flags([
            ("--bootstrap", self.bootstrap.clone()),
            ("--topic", self.topic.clone()),
            ("--records", self.records.to_string()),
            ("--size", self.size.to_string()),
            ("--compression", self.compression.clone()),
            ("--linger-ms", self.linger_ms.to_string()),
            ("--batch-size", self.batch_size.to_string()),
            ("--buffer-memory", self.buffer_memory.to_string()),
        ]);
        if self.rate > 0 {
            args.extend(["--rate".to_string(), self.rate.to_string()]);
        }
        args
    }

    /// Parses what [`WorkerArgs::to_args`] wrote; every flag but `--rate` is required.
    pub fn parse(args: &[String]) -> Result<WorkerArgs, String> {
        let f = Flags(args);
        Ok(WorkerArgs {
            bootstrap: f.get("--bootstrap")?,
            topic: f.get("--topic")?,
            records: f.num("--records")?,
            size: f.num("--size")? as usize,
            compression: f.get("--compression")?,
            linger_ms: f.num("--linger-ms")?,
            batch_size: f.num("--batch-size")? as usize,
            buffer_memory: f.num("--buffer-memory")? as usize,
            rate: if args.iter().any(|a| a == "--rate") {
                f.num("--rate")?
            } else {
                0
            },
        })
    }
}

/// `--flag value` pairs as one command line.
pub fn to_flags<const N: usize>(pairs: [(&str, String); N]) -> Vec<String> {
    pairs
        .into_iter()
        .flat_map(|(k, v)| [k.to_string(), v])
        .collect()
}

/// A worker command line written by [`to_flags`]: each flag's value is the word after it.
pub struct Flags<'a>(pub &'a [String]);

impl Flags<'_> {
    /// The value of a required flag.
    pub fn get(&self, name: &str) -> Result<String, String> {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .cloned()
            .ok_or_else(|| format!("missing {name}"))
    }

    /// The value of a required flag, parsed.
    pub fn parsed<T: std::str::FromStr>(&self, name: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        self.get(name)?
            .parse::<T>()
            .map_err(|e| format!("{name}: {e}"))
    }

    /// The value of a required numeric flag.
    pub fn num(&self, name: &str) -> Result<u64, String> {
        self.parsed(name)
    }
}

/// The last line of `stdout` starting with `prefix`, read as `name=value` fields.
pub struct ResultLine<'a>(&'a str);

impl<'a> ResultLine<'a> {
    pub fn find(stdout: &'a str, prefix: &str) -> Option<ResultLine<'a>> {
        stdout
            .lines()
            .rev()
            .find(|l| l.starts_with(prefix))
            .map(ResultLine)
    }

    /// The value of field `name` as a number.
    pub fn field(&self, name: &str) -> Option<f64> {
        self.0
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))?
            .parse()
            .ok()
    }
}

/// A worker's parsed command line, or its message on stderr and exit code 2.
pub fn parse_or_exit<T>(who: &str, parsed: Result<T, String>) -> T {
    parsed.unwrap_or_else(|e| {
        eprintln!("{who}: {e}");
        std::process::exit(2)
    })
}

/// Runs `work` and returns its result with this process's own user+sys CPU seconds, process
/// start to the end of `work` (so whatever `work` drops, e.g. its runtime, is included).
pub fn with_own_cpu<R>(work: impl FnOnce() -> R) -> (R, f64) {
    let ticks = clock_ticks();
    let result = work();
    (result, cpu_seconds(ticks).0)
}

/// [`PAYLOAD_POOL`] payloads of `size` random uppercase ASCII letters, the alphabet Java's
/// ProducerPerformance uses, from a fixed-seed xorshift so every run sends the same bytes.
pub fn payload_pool(size: usize) -> Vec<Vec<u8>> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..PAYLOAD_POOL)
        .map(|_| {
            (0..size)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    b'A' + (state % 26) as u8
                })
                .collect()
        })
        .collect()
}

/// Ack latencies in microseconds, one per acknowledged record.
#[derive(Debug, Default)]
pub struct Latencies(pub Vec<u32>);

impl Latencies {
    pub fn with_capacity(n: usize) -> Self {
        Latencies(Vec::with_capacity(n))
    }

    pub fn record(&mut self, d: Duration) {
        self.0.push(d.as_micros().min(u32::MAX as u128) as u32);
    }

    /// `(p50, p99)` in milliseconds, taken as Java's tool does: `sorted[(int)(p * n)]`.
    pub fn p50_p99_ms(&mut self) -> (f64, f64) {
        if self.0.is_empty() {
            return (f64::NAN, f64::NAN);
        }
        self.0.sort_unstable();
        let at = |p: f64| {
            let i = ((p * self.0.len() as f64) as usize).min(self.0.len() - 1);
            self.0[i] as f64 / 1000.0
        };
        (at(0.5), at(0.99))
    }

    /// The `p` quantile in milliseconds, taken as [`Latencies::p50_p99_ms`] does.
    pub fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        self.0.sort_unstable();
        let i = ((p * self.0.len() as f64) as usize).min(self.0.len() - 1);
        self.0[i] as f64 / 1000.0
    }
}

/// When record `i` of a fixed-rate run at `rate` records/s is due, as an offset from the
/// first send. The schedule is open-loop: a client that falls behind sends the overdue records
/// at once rather than shifting the rest, so a stall shows in its latencies.
pub fn due(i: u64, rate: u64) -> Duration {
    Duration::from_secs_f64(i as f64 / rate.max(1) as f64)
}

/// The ` p999_ms=..` field a fixed-rate worker appends to its result line.
pub fn p999_field(p999_ms: f64) -> String {
    format!(" p999_ms={p999_ms:.3}")
}

/// The 99.9th percentile ack latency from a fixed-rate worker's result line, if it has one.
pub fn p999_ms(stdout: &str) -> Option<f64> {
    ResultLine::find(stdout, RESULT_PREFIX)?.field("p999_ms")
}

/// Clock ticks per second of `/proc/*/stat` times (USER_HZ). 100 on every Linux this runs on;
/// `getconf CLK_TCK` confirms when available.
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// `(user+sys of this process, user+sys of its waited-for children)` in seconds, from
/// `/proc/self/stat` (fields 14-17). The children's part is what `getrusage(RUSAGE_CHILDREN)`
/// reports, read without a libc dependency.
pub fn cpu_seconds(ticks: f64) -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; fields after it follow the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0.0);
    // After ')': index 0 is field 3 (state), so fields 14..=17 are indices 11..=14.
    ((at(11) + at(12)) / ticks, (at(13) + at(14)) / ticks)
}

/// What a worker reports.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerResult {
    /// Records the broker acknowledged.
    pub acked: u64,
    /// Records whose delivery failed (or could not be queued).
    pub failed: u64,
    /// Payload bytes of acknowledged records.
    pub bytes: u64,
    /// From the first send until the last acknowledgement.
    pub elapsed_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The worker's own user+sys, process start to exit (connect included).
    pub cpu_s: f64,
}

impl WorkerResult {
    pub fn line(&self) -> String {
        format!(
            "{RESULT_PREFIX} acked={} failed={} bytes={} elapsed_s={:.6} p50_ms={:.3} p99_ms={:.3} cpu_s={:.3}",
            self.acked, self.failed, self.bytes, self.elapsed_s, self.p50_ms, self.p99_ms, self.cpu_s
        )
    }

    /// Finds and parses the result line in a worker's stdout.
    pub fn parse(stdout: &str) -> Option<WorkerResult> {
        let line = ResultLine::find(stdout, RESULT_PREFIX)?;
        let field = |name: &str| line.field(name);
        Some(WorkerResult {
            acked: field("acked")? as u64,
            failed: field("failed")? as u64,
            bytes: field("bytes")? as u64,
            elapsed_s: field("elapsed_s")?,
            p50_ms: field("p50_ms")?,
            p99_ms: field("p99_ms")?,
            cpu_s: field("cpu_s")?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Security (the SASL_SSL rows of the compare benches).

/// `SASL_SSL` when set; unset (or empty) means PLAINTEXT and every other variable is ignored.
pub const ENV_SECURITY_PROTOCOL: &str = "JOSEFK_WORKER_SECURITY_PROTOCOL";
/// The SASL mechanism (`SCRAM-SHA-512`).
pub const ENV_SASL_MECHANISM: &str = "JOSEFK_WORKER_SASL_MECHANISM";
pub const ENV_SASL_USERNAME: &str = "JOSEFK_WORKER_SASL_USERNAME";
pub const ENV_SASL_PASSWORD: &str = "JOSEFK_WORKER_SASL_PASSWORD";
/// A PEM file with the CA that signed the broker's certificate.
pub const ENV_SSL_CA_PEM: &str = "JOSEFK_WORKER_SSL_CA_PEM";

/// How a worker secures its connections, read from its environment: the benches set it in the
/// child's environment rather than on the command line, so every worker protocol (produce,
/// consume, transactions) and every language's worker reads it the same way without a new flag,
/// and the password is not visible in `ps`. `peers/franz-go/internal/worker/security.go` reads
/// the same variables.
#[derive(Clone, PartialEq, Eq)]
pub struct Security {
    /// `SASL_SSL` (the only protocol the benches ask for).
    pub protocol: String,
    /// `SCRAM-SHA-512` or `SCRAM-SHA-256`.
    pub mechanism: String,
    pub username: String,
    pub password: String,
    pub ca_pem: String,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("protocol", &self.protocol)
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("ca_pem", &self.ca_pem)
            .finish()
    }
}

impl Security {
    /// The settings in this process's environment; `Ok(None)` for PLAINTEXT. A protocol other
    /// than `SASL_SSL`, or a missing variable, is an error (a worker must not silently fall back
    /// to plaintext and be measured as if it were secured).
    pub fn from_env() -> Result<Option<Security>, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let Some(protocol) = var(ENV_SECURITY_PROTOCOL) else {
            return Ok(None);
        };
        if protocol != "SASL_SSL" {
            return Err(format!(
                "{ENV_SECURITY_PROTOCOL}={protocol}: only SASL_SSL is supported"
            ));
        }
        let need = |name: &str| var(name).ok_or_else(|| format!("{name} is not set"));
        Ok(Some(Security {
            protocol,
            mechanism: need(ENV_SASL_MECHANISM)?,
            username: need(ENV_SASL_USERNAME)?,
            password: need(ENV_SASL_PASSWORD)?,
            ca_pem: need(ENV_SSL_CA_PEM)?,
        }))
    }

    /// The environment a child worker needs for these settings.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        vec![
            (ENV_SECURITY_PROTOCOL, self.protocol.clone()),
            (ENV_SASL_MECHANISM, self.mechanism.clone()),
            (ENV_SASL_USERNAME, self.username.clone()),
            (ENV_SASL_PASSWORD, self.password.clone()),
            (ENV_SSL_CA_PEM, self.ca_pem.clone()),
        ]
    }

    /// The Java client properties (also librdkafka's, but for the three noted in
    /// [`Security::librdkafka`]).
    pub fn java_properties(&self) -> Vec<(String, String)> {
        let module = "org.apache.kafka.common.security.scram.ScramLoginModule";
        vec![
            ("security.protocol".into(), self.protocol.clone()),
            ("sasl.mechanism".into(), self.mechanism.clone()),
            (
                "sasl.jaas.config".into(),
                format!(
                    "{module} required username=\"{}\" password=\"{}\";",
                    self.username, self.password
                ),
            ),
            ("ssl.truststore.type".into(), "PEM".into()),
            ("ssl.truststore.location".into(), self.ca_pem.clone()),
        ]
    }

    /// librdkafka's properties: `sasl.mechanisms`, `sasl.username`/`.password` and
    /// `ssl.ca.location` where Java has a JAAS line and a trust store.
    pub fn librdkafka(&self) -> Vec<(&'static str, String)> {
        vec![
            ("security.protocol", self.protocol.clone()),
            ("sasl.mechanisms", self.mechanism.clone()),
            ("sasl.username", self.username.clone()),
            ("sasl.password", self.password.clone()),
            ("ssl.ca.location", self.ca_pem.clone()),
        ]
    }
}
