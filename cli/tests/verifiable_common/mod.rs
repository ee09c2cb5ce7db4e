//! Helpers of the verifiable tools' live tests (`verifiable.rs`, `verifiable_copier.rs`): the
//! JSON lines a tool printed, their shape (event names, field order and types) compared with the
//! Java tool's, running josefk's modes (also until a signal) and reading partitions with Java's
//! console consumer.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// The JSON lines of a tool's stdout (Java's tools may print other lines; Kafka's system tests
/// skip those too).
pub fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The raw JSON lines (their text keeps the field order, which `Value` does not).
pub fn raw_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with('{')).collect()
}

/// Keys of a JSON text in order of appearance, tagged with their depth, each kept once: the
/// field order of the object and of its nested objects.
pub fn key_order(text: &str) -> Vec<(usize, String)> {
    let mut keys = Vec::new();
    // Open containers: true for an object.
    let mut stack: Vec<bool> = Vec::new();
    let (mut in_string, mut escaped, mut expecting_key, mut is_key) = (false, false, false, false);
    let mut current = String::new();
    for c in text.chars() {
        if in_string {
            if escaped {
                escaped = false;
                current.push(c);
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
                let depth = stack.len();
                if is_key && !keys.iter().any(|(d, k)| *d == depth && *k == current) {
                    keys.push((depth, current.clone()));
                }
            } else {
                current.push(c);
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                is_key = expecting_key;
                expecting_key = false;
                current.clear();
            }
            '{' => {
                stack.push(true);
                expecting_key = true;
            }
            '[' => stack.push(false),
            '}' | ']' => {
                stack.pop();
            }
            ',' => expecting_key = stack.last() == Some(&true),
            _ => {}
        }
    }
    keys
}

/// Each field's JSON type by path (arrays described by their first element).
pub fn types(v: &Value, path: &str, out: &mut BTreeMap<String, &'static str>) {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    out.insert(path.to_owned(), kind);
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                types(x, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(xs) => {
            if let Some(first) = xs.first() {
                types(first, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

pub type Shape = (Vec<(usize, String)>, BTreeMap<String, &'static str>);

/// For each event kind (by `name_key`'s value), the shape of its first line.
pub fn shapes(stdout: &str, name_key: &str) -> BTreeMap<String, Shape> {
    let mut out = BTreeMap::new();
    for raw in raw_lines(stdout) {
        let v: Value = serde_json::from_str(raw).unwrap();
        let name = v[name_key].as_str().unwrap_or("?").to_owned();
        out.entry(name).or_insert_with(|| {
            let mut t = BTreeMap::new();
            types(&v, "", &mut t);
            (key_order(raw), t)
        });
    }
    out
}

pub fn assert_same_shapes(java: &str, ours: &str, name_key: &str) {
    let (java, ours) = (shapes(java, name_key), shapes(ours, name_key));
    assert_eq!(
        java.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>(),
        "event names: Java's, then josefk's"
    );
    for (name, shape) in &java {
        assert_eq!(&ours[name], shape, "`{name}`: josefk's shape, then Java's");
    }
}

/// Runs `josefk SUBCOMMAND ARGS` (the Java tool's arguments as they are) and returns stdout.
pub fn josefk_tool(subcommand: &str, args: &[&str]) -> String {
    let mut all = vec![subcommand];
    all.extend_from_slice(args);
    let out = josefk(&all, b"", Duration::from_secs(240));
    assert!(
        out.status.success(),
        "josefk {subcommand} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Values of one partition in offset order, read by Java's console consumer.
pub fn java_read_partition(topic: &str, partition: i32, read_committed: bool) -> Vec<String> {
    let bootstrap = bootstrap();
    let p = partition.to_string();
    let mut args = vec![
        "--bootstrap-server",
        &bootstrap,
        "--topic",
        topic,
        "--partition",
        &p,
        "--offset",
        "earliest",
        "--timeout-ms",
        "10000",
    ];
    if read_committed {
        args.extend_from_slice(&["--isolation-level", "read_committed"]);
    }
    java_tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &args,
        None,
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// [`java_read_partition`] of each (topic, partition), in that order. The reads run side by side,
/// a few at a time: each ends only after 10 s without a record (so that an extra record has its
/// chance to show), which one after another cost 10 s apiece of CI's time budget.
pub fn java_read_partitions(reads: &[(&str, i32)], read_committed: bool) -> Vec<Vec<String>> {
    // Bounded: every read is a JVM start (seconds of CPU) on a 2-core machine.
    const AT_ONCE: usize = 6;
    let mut out = Vec::with_capacity(reads.len());
    for batch in reads.chunks(AT_ONCE) {
        std::thread::scope(|s| {
            let running: Vec<_> = batch
                .iter()
                .map(|&(topic, p)| s.spawn(move || java_read_partition(topic, p, read_committed)))
                .collect();
            for r in running {
                out.push(r.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
            }
        });
    }
    out
}

pub fn named<'a>(lines: &'a [Value], name: &str) -> Vec<&'a Value> {
    lines.iter().filter(|v| v["name"] == name).collect()
}

/// Starts `josefk ARGS`, reads its JSON lines until `ready` holds for the lines so far, sends
/// SIGTERM, and returns every line and whether it exited successfully. A guard kills it after
/// four minutes so a hang fails the test instead of blocking it.
pub fn run_until_then_sigterm(
    args: &[&str],
    ready: impl Fn(&[Value]) -> bool,
) -> (Vec<Value>, bool) {
    run_until_then_signal(args, ready, "-TERM")
}

pub fn run_until_then_signal(
    args: &[&str],
    ready: impl Fn(&[Value]) -> bool,
    signal: &str,
) -> (Vec<Value>, bool) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(JOSEFK)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run josefk");
    let pid = child.id().to_string();
    let guard_pid = pid.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        if done_rx.recv_timeout(Duration::from_secs(240)).is_err() {
            let _ = Command::new("kill").args(["-9", &guard_pid]).status();
            panic!("josefk still running after 240 s");
        }
    });
    let mut lines = Vec::new();
    let mut signalled = false;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if !line.starts_with('{') {
            continue;
        }
        lines.push(serde_json::from_str::<Value>(&line).unwrap());
        if !signalled && ready(&lines) {
            signalled = true;
            let _ = Command::new("kill").args([signal, &pid]).status();
        }
    }
    let status = child.wait().unwrap();
    let _ = done_tx.send(());
    guard.join().unwrap();
    assert!(
        signalled,
        "josefk {args:?} ended before it was ready: {lines:?}"
    );
    (lines, status.success())
}
