//! Helpers shared by the `josefk` binary's live tests: where the broker is, unique names, running
//! the binary (with a hang guard) and Java's tools, and reading results back.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use josefk_harness::KafkaDist;
use serde_json::Value;

pub const JOSEFK: &str = env!("CARGO_BIN_EXE_josefk");

pub fn bootstrap() -> String {
    match josefk_harness::bootstrap_servers_from_env() {
        Ok(servers) => servers,
        Err(e) => panic!("{e}"),
    }
}

pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!(
        "josefk-cli-{prefix}-{}-{}-{ms}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `josefk ARGS` with `stdin`, killing it after `timeout`.
pub fn josefk(args: &[&str], stdin: &[u8], timeout: Duration) -> Output {
    let mut child = Command::new(JOSEFK)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run josefk");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = done_tx.send(());
        out
    });
    if done_rx.recv_timeout(timeout).is_err() {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        panic!("josefk {args:?} still running after {timeout:?}");
    }
    writer.join().unwrap();
    waiter.join().unwrap().expect("josefk output")
}

/// Runs `josefk -b BOOTSTRAP ARGS` and asserts success; returns stdout.
pub fn ok(args: &[&str], stdin: &[u8]) -> String {
    let bootstrap = bootstrap();
    let mut all = vec!["-b", &bootstrap];
    all.extend_from_slice(args);
    let out = josefk(&all, stdin, Duration::from_secs(180));
    assert!(
        out.status.success(),
        "josefk {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

pub fn create_topic(topic: &str, partitions: i32) {
    ok(
        &["topics", "create", topic, "-p", &partitions.to_string()],
        b"",
    );
}

/// Consumes `topic` to its end as JSON lines.
pub fn consume_json(topic: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["consume", "-t", topic, "-e", "-J", "-q"];
    args.extend_from_slice(extra);
    ok(&args, b"")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

pub fn java_tool(main_class: &str, args: &[&str], stdin: Option<&[u8]>) -> String {
    let dist = KafkaDist::provision().expect("provision Kafka's tools");
    let timeout = Duration::from_secs(120);
    let out = match stdin {
        Some(input) => {
            josefk_harness::run_java_tool_with_stdin(&dist, main_class, args, input, timeout)
        }
        None => josefk_harness::run_java_tool(&dist, main_class, args, timeout),
    }
    .unwrap_or_else(|e| panic!("{main_class}: {e}"));
    assert!(
        out.status.success(),
        "{main_class} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (key, value, headers) of a JSON line; header values `None` for JSON null.
pub type Seen = (
    Option<String>,
    Option<String>,
    Vec<(String, Option<String>)>,
);

pub fn seen(v: &Value) -> Seen {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let headers = v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["key"].as_str().unwrap().to_owned(), text(&h["value"])))
        .collect();
    (text(&v["key"]), text(&v["value"]), headers)
}

/// Sum of the latest offsets of `topic`, read with `josefk offsets topic`.
pub fn end_offset_sum(topic: &str) -> i64 {
    ok(&["offsets", "topic", topic], b"")
        .lines()
        .skip(1)
        .map(|l| l.split(' ').nth(2).unwrap().parse::<i64>().unwrap())
        .sum()
}

/// `josefk offsets group GROUP`'s table, or "" while the group does not exist (exit 1): a poll
/// may start before the group's first member has joined.
pub fn group_offsets(group: &str) -> String {
    let bootstrap = bootstrap();
    let out = josefk(
        &["-b", &bootstrap, "offsets", "group", group],
        b"",
        Duration::from_secs(180),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(1) && stderr.contains("does not exist") {
        return String::new();
    }
    assert!(out.status.success(), "offsets group {group}: {stderr}");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Sum of the committed offsets of `group` (0 before its first commit).
pub fn committed_sum(group: &str) -> i64 {
    group_offsets(group)
        .lines()
        .skip(1)
        .map(|l| l.split(' ').nth(2).unwrap().parse::<i64>().unwrap())
        .sum()
}
