//! One node's process and files: launching the broker JVM, spotting readiness in
//! its log, plus the helpers cluster start needs (cluster ids, stale-dir sweeping).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use crate::config::NodeLayout;
use crate::error::{HarnessError, Result};
use crate::process::{send_signal, tail_file, JavaProcess, Launch};
use crate::provision::KafkaDist;

/// Logged by `KafkaRaftServer` once the broker is registered and unfenced.
const STARTED: &[u8] = b"Kafka Server started";

/// One KRaft node: where it lives and, while running, its JVM.
#[derive(Debug)]
pub(crate) struct Node {
    pub layout: NodeLayout,
    pub process: Option<JavaProcess>,
}

impl Node {
    /// Starts the broker JVM; returns the offset in `server.log` where this run's
    /// lines begin, so readiness is not fooled by a previous run's lines.
    pub fn launch(&mut self, dist: &KafkaDist) -> Result<u64> {
        let dir = &self.layout.dir;
        let log_offset = fs::metadata(dir.join("server.log")).map_or(0, |m| m.len());
        let stdout_path = dir.join("stdout.log");
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stdout_path)
            .map_err(|e| HarnessError::io(format!("opening {}", stdout_path.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| HarnessError::io("duplicating a file handle", e))?;
        let args = vec![
            "-Xms256m".into(),
            "-Xmx1g".into(),
            "-XX:+UseG1GC".into(),
            "-Djava.awt.headless=true".into(),
            "-Djosefk.harness=1".into(),
            dist.log_config_flag(&dist.broker_log_config()).into(),
            format!("-Dkafka.logs.dir={}", dir.display()).into(),
            "-cp".into(),
            self.classpath(dist),
            "kafka.Kafka".into(),
            dir.join("server.properties").into_os_string(),
        ];
        self.process = Some(JavaProcess::spawn(Launch {
            program: dist.java().to_path_buf(),
            args,
            stdin_file: None,
            stdout: Stdio::from(out),
            stderr: Stdio::from(err),
            label: format!("Kafka node {}", self.layout.id),
        })?);
        Ok(log_offset)
    }

    /// The broker classpath and the spec's extra entries.
    fn classpath(&self, dist: &KafkaDist) -> std::ffi::OsString {
        let mut classpath = std::ffi::OsString::from(dist.broker_classpath());
        for entry in &self.layout.extra_classpath {
            classpath.push(":");
            classpath.push(entry);
        }
        classpath
    }

    /// The end of its broker log and JVM output, for error messages.
    pub fn log_tail(&self) -> String {
        let dir = &self.layout.dir;
        format!(
            "{}{}",
            tail_file(&dir.join("server.log"), 40),
            tail_file(&dir.join("stdout.log"), 15)
        )
    }
}

/// Incremental search for [`STARTED`] in a growing log file.
pub(crate) struct LogScan {
    pos: u64,
    carry: Vec<u8>,
    found: bool,
}

impl LogScan {
    pub fn new(pos: u64) -> Self {
        LogScan {
            pos,
            carry: Vec::new(),
            found: false,
        }
    }

    /// Reads what was appended since the last call; true once the line was seen.
    pub fn seen(&mut self, path: &Path) -> bool {
        if self.found {
            return true;
        }
        let Ok(mut file) = File::open(path) else {
            return false;
        };
        let mut buf = Vec::new();
        if file.seek(SeekFrom::Start(self.pos)).is_err() || file.read_to_end(&mut buf).is_err() {
            return false;
        }
        self.pos += buf.len() as u64;
        self.carry.extend_from_slice(&buf);
        self.found = self.carry.windows(STARTED.len()).any(|w| w == STARTED);
        // Keep just enough to match a line split across two reads.
        let keep = self.carry.len().saturating_sub(STARTED.len());
        self.carry.drain(..keep);
        self.found
    }
}

/// Whether a start failed because a picked port was taken before the broker bound it.
pub(crate) fn is_port_clash(e: &HarnessError) -> bool {
    match e {
        HarnessError::NodeExited { log_tail, .. } => {
            log_tail.contains("Address already in use") || log_tail.contains("BindException")
        }
        _ => false,
    }
}

/// A random 16-byte id in the URL-safe, unpadded base64 Kafka uses. Generated here
/// instead of with `StorageTool random-uuid` to save a JVM start per cluster.
pub(crate) fn random_cluster_id() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    static SALT: AtomicUsize = AtomicUsize::new(0);
    let mut bytes = [0u8; 16];
    for half in bytes.chunks_mut(8) {
        // RandomState is seeded from OS randomness; mixing in time and a counter
        // guards against a platform where it is not.
        let mut h = RandomState::new().build_hasher();
        h.write_u128(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        h.write_usize(SALT.fetch_add(1, Ordering::Relaxed));
        h.write_u32(std::process::id());
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    // The first character comes from the top 6 bits; keeping them below 62 rules out a leading
    // `-` or `_`, so the id never looks like a command-line option to any tool.
    bytes[0] &= 0x7f;
    base64url(&bytes)
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Deletes `josefk-kafka-<pid>-*` and `josefk-certs-<pid>-*` temp dirs left by processes that died without
/// dropping their cluster (their nodes were stopped by the watcher, but nobody
/// deleted the data). Dirs touched in the last minute are left alone.
pub(crate) fn sweep_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        // Cluster dirs, and certificate dirs (`TestCertificates`) held in a static by a test
        // binary, which is never dropped.
        let Some(rest) = name.to_str().and_then(|n| {
            n.strip_prefix("josefk-kafka-")
                .or_else(|| n.strip_prefix("josefk-certs-"))
        }) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let owner_dead = matches!(send_signal(pid, 0), Err(e) if e.raw_os_error() == Some(3));
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(60));
        if owner_dead && old {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_are_22_url_safe_chars() {
        let a = random_cluster_id();
        let b = random_cluster_id();
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        for _ in 0..2000 {
            let id = random_cluster_id();
            assert!(
                id.as_bytes()[0].is_ascii_alphanumeric(),
                "{id} starts like an option"
            );
        }
    }

    #[test]
    fn base64url_matches_known_values() {
        assert_eq!(base64url(b"Man"), "TWFu");
        assert_eq!(base64url(b"Ma"), "TWE");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn log_scan_finds_a_line_split_across_reads() {
        let path = std::env::temp_dir().join(format!("josefk-logscan-{}", std::process::id()));
        fs::write(&path, "old run: Kafka Server started\n").unwrap();
        let mut scan = LogScan::new(fs::metadata(&path).unwrap().len());
        assert!(!scan.seen(&path));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut f, b"[x] INFO Kafka Ser").unwrap();
        assert!(!scan.seen(&path));
        std::io::Write::write_all(&mut f, b"ver started (kafka)\n").unwrap();
        assert!(scan.seen(&path));
        fs::remove_file(&path).unwrap();
    }
}
