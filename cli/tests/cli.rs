//! Live tests of the `josefk` binary's data commands, run as a subprocess against a real Kafka
//! broker (`KAFKA_BOOTSTRAP_SERVERS`; `cargo run -p josefk-harness -- test --test cli` starts one):
//!
//! - produce → consume round trip: keys, headers (null values and duplicates), values holding
//!   every delimiter, checked record by record; transactional produce;
//! - interop with Java: CLI produce → Java's ConsoleConsumer, and Java's ConsoleProducer → CLI
//!   consume, same keys, headers and values;
//! - `copy`: output = input (none lost, none twice, partition and order kept), read back
//!   read_committed, also when the copier is SIGKILLed twice and restarted;
//! - `perf produce`: the acknowledged count equals the end-offset delta of the topic;
//! - a missing topic or partition fails at once.
//!
//! Groups, offsets, configs, properties and exit codes are in `cli_manage.rs`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;

#[test]
fn produce_then_consume_round_trips_keys_headers_and_delimiters() {
    let topic = unique("roundtrip");
    create_topic(&topic, 3);
    const N: usize = 300;
    // Records end with NUL, so values may hold newlines, tabs, and the key and header
    // delimiters (only the first `:` after the headers splits key from value).
    let mut input = Vec::new();
    let mut expected = Vec::new();
    for i in 0..N {
        let value = format!("v{i}:a,b=c\tline\nnext:{}", "x".repeat(i % 7));
        let record = format!("h:{i},dup:1,dup:2,nil\tk{i}:{value}\0");
        input.extend_from_slice(record.as_bytes());
        expected.push((
            Some(format!("k{i}")),
            Some(value),
            vec![
                ("s".to_owned(), Some("static".to_owned())),
                ("h".to_owned(), Some(i.to_string())),
                ("dup".to_owned(), Some("1".to_owned())),
                ("dup".to_owned(), Some("2".to_owned())),
                ("nil".to_owned(), None),
            ],
        ));
    }
    // One tombstone with a key, through --null-marker.
    input.extend_from_slice(b"\ttomb:NULL\0");
    expected.push((
        Some("tomb".to_owned()),
        None,
        vec![("s".to_owned(), Some("static".to_owned()))],
    ));
    ok(
        &[
            "produce",
            "-t",
            &topic,
            "-D",
            "\\0",
            "-K",
            ":",
            "--parse-headers",
            "-H",
            "s=static",
            "--null-marker",
            "NULL",
        ],
        &input,
    );
    let records = consume_json(&topic, &[]);
    assert_eq!(records.len(), N + 1, "record count");
    let mut got: Vec<Seen> = records.iter().map(seen).collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    // Same key, same partition: every record of a key is in one partition, offsets dense.
    let mut per_partition: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for r in &records {
        per_partition
            .entry(r["partition"].as_i64().unwrap())
            .or_default()
            .push(r["offset"].as_i64().unwrap());
    }
    for offsets in per_partition.values() {
        assert_eq!(*offsets, (0..offsets.len() as i64).collect::<Vec<_>>());
    }

    // A template, and a count that stops early.
    let out = ok(
        &[
            "consume",
            "-t",
            &topic,
            "-p",
            "0",
            "-c",
            "2",
            "-q",
            "-f",
            "%t|%p|%o|%K\\n",
        ],
        b"",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with(&format!("{topic}|0|0|")), "{out}");
    assert!(lines[1].starts_with(&format!("{topic}|0|1|")), "{out}");
}

#[test]
fn cli_produce_is_read_by_java_and_java_produce_is_read_by_the_cli() {
    let bootstrap = bootstrap();
    // CLI → Java ConsoleConsumer.
    let topic = unique("to-java");
    create_topic(&topic, 2);
    let input: String = (0..50)
        .map(|i| format!("h:{i}\tk{i}=value {i}\n"))
        .collect();
    ok(
        &["produce", "-t", &topic, "-K", "=", "--parse-headers"],
        input.as_bytes(),
    );
    let java = java_tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            &topic,
            "--from-beginning",
            "--max-messages",
            "50",
            "--timeout-ms",
            "30000",
            "--formatter-property",
            "print.key=true",
            "--formatter-property",
            "print.headers=true",
            "--formatter-property",
            "key.separator=|",
        ],
        None,
    );
    let got: BTreeSet<String> = java.lines().map(str::to_owned).collect();
    let want: BTreeSet<String> = (0..50).map(|i| format!("h:{i}|k{i}|value {i}")).collect();
    assert_eq!(got, want, "Java's view of what the CLI wrote");

    // Java ConsoleProducer → CLI.
    let topic = unique("from-java");
    create_topic(&topic, 2);
    // Java's console syntax: headers, a tab, then key and value.
    let lines: String = (0..50)
        .map(|i| format!("jh:{i},jx:y\tjk{i}=java value {i}\n"))
        .collect();
    java_tool(
        "org.apache.kafka.tools.ConsoleProducer",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            &topic,
            "--reader-property",
            "parse.key=true",
            "--reader-property",
            "key.separator==",
            "--reader-property",
            "parse.headers=true",
        ],
        Some(lines.as_bytes()),
    );
    let out = ok(
        &["consume", "-t", &topic, "-e", "-q", "-f", "%h|%k=%v\\n"],
        b"",
    );
    let got: BTreeSet<String> = out.lines().map(str::to_owned).collect();
    let want: BTreeSet<String> = (0..50)
        .map(|i| format!("jh={i},jx=y|jk{i}=java value {i}"))
        .collect();
    assert_eq!(got, want, "the CLI's view of what Java wrote");
}

#[test]
fn copy_writes_every_record_once_in_order_read_committed() {
    let from = unique("copy-in");
    let to = unique("copy-out");
    let group = unique("copy-group");
    create_topic(&from, 3);
    create_topic(&to, 3);
    const N: usize = 3000;
    // Written to partitions the key does not hash to, so a copy that re-partitioned by key
    // would show.
    for p in 0..3 {
        let input: String = (0..N)
            .filter(|i| i % 3 == p)
            .map(|i| format!("k{i}:r{i}\n"))
            .collect();
        let partition = p.to_string();
        ok(
            &["produce", "-t", &from, "-K", ":", "-p", &partition],
            input.as_bytes(),
        );
    }
    let source = consume_json(&from, &[]);
    assert_eq!(source.len(), N);
    ok(
        &[
            "copy",
            "--from",
            &from,
            "--to",
            &to,
            "-g",
            &group,
            "-e",
            "--timeout-ms",
            "150000",
            "-X",
            "max.poll.records=200",
        ],
        b"",
    );
    let copied = consume_json(&to, &["--read-committed"]);
    let values: Vec<&str> = copied
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    let distinct: BTreeSet<&str> = values.iter().copied().collect();
    assert_eq!(values.len(), N, "records out");
    assert_eq!(distinct.len(), N, "duplicates: {}", N - distinct.len());
    let want: BTreeSet<String> = (0..N).map(|i| format!("r{i}")).collect();
    let got: BTreeSet<String> = distinct.iter().map(|s| s.to_string()).collect();
    assert_eq!(got, want, "lost or unexpected records");
    // Each partition's copy holds the same keys and values in the same order.
    let by_partition = |records: &[Value]| {
        let mut m: BTreeMap<i64, Vec<(String, String)>> = BTreeMap::new();
        for r in records {
            m.entry(r["partition"].as_i64().unwrap())
                .or_default()
                .push((
                    r["key"].as_str().unwrap().to_owned(),
                    r["value"].as_str().unwrap().to_owned(),
                ));
        }
        m
    };
    assert_eq!(by_partition(&copied), by_partition(&source));
    // The group's committed offsets reached the end of the input, lag 0.
    let offsets = ok(&["offsets", "group", &group], b"");
    let mut lag_rows = 0;
    for line in offsets.lines().skip(1) {
        let cols: Vec<&str> = line.split(' ').collect();
        assert_eq!(cols[0], from, "{offsets}");
        assert_eq!(cols[4], "0", "lag: {offsets}");
        lag_rows += 1;
    }
    assert_eq!(lag_rows, 3, "{offsets}");
}

#[test]
fn a_copy_killed_twice_and_restarted_still_copies_every_record_once() {
    let bootstrap = bootstrap();
    let from = unique("kill-in");
    let to = unique("kill-out");
    let group = unique("kill-group");
    create_topic(&from, 3);
    create_topic(&to, 3);
    const N: i64 = 30_000;
    let input: String = (0..N).map(|i| format!("k{i}:r{i}\n")).collect();
    ok(&["produce", "-t", &from, "-K", ":", "-q"], input.as_bytes());
    let copy_args = |exit_at_end: bool| {
        let mut args: Vec<String> = [
            "-b",
            &bootstrap,
            "-q",
            "copy",
            "--from",
            &from,
            "--to",
            &to,
            "-g",
            &group,
            // Small transactions, so a kill lands inside one; a static member, so the restarted
            // copier takes the dead one's place at once.
            "-X",
            "max.poll.records=100",
            "-X",
            "group.instance.id=copier",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if exit_at_end {
            args.extend(["-e", "--timeout-ms", "150000"].map(String::from));
        }
        args
    };
    for kill in 1..=2 {
        let mut child = Command::new(JOSEFK)
            .args(copy_args(false))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start copy");
        let target = N * kill / 3;
        let deadline = Instant::now() + Duration::from_secs(120);
        while committed_sum(&group) < target {
            assert!(
                Instant::now() < deadline,
                "copy made no progress to {target}"
            );
            assert!(child.try_wait().unwrap().is_none(), "copy exited early");
            std::thread::sleep(Duration::from_millis(100));
        }
        child.kill().unwrap(); // SIGKILL: a transaction is likely open
        child.wait().unwrap();
    }
    let args = copy_args(true);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = josefk(&args, b"", Duration::from_secs(180));
    assert!(
        out.status.success(),
        "last copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let copied = consume_json(&to, &["--read-committed"]);
    let values: Vec<&str> = copied
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    let distinct: BTreeSet<&str> = values.iter().copied().collect();
    assert_eq!(values.len() - distinct.len(), 0, "duplicates");
    assert_eq!(distinct.len() as i64, N, "records out");
    for i in [0, N / 2, N - 1] {
        assert!(distinct.contains(format!("r{i}").as_str()), "r{i} lost");
    }
    // Per partition, the source order.
    let mut last: BTreeMap<i64, i64> = BTreeMap::new();
    for r in &copied {
        let n: i64 = r["value"].as_str().unwrap()[1..].parse().unwrap();
        let p = r["partition"].as_i64().unwrap();
        if let Some(prev) = last.insert(p, n) {
            assert!(prev < n, "partition {p}: r{prev} before r{n}");
        }
    }
}

#[test]
fn perf_produce_acknowledges_exactly_what_the_topic_grew_by() {
    let topic = unique("perf");
    create_topic(&topic, 2);
    ok(&["produce", "-t", &topic], b"before-1\nbefore-2\n");
    let before = end_offset_sum(&topic);
    assert_eq!(before, 2);
    let out = ok(
        &[
            "perf", "produce", "-t", &topic, "-n", "20000", "-s", "64", "-q",
        ],
        b"",
    );
    let fields: BTreeMap<&str, &str> = out
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let acked: i64 = fields["records_acked"].parse().unwrap();
    assert_eq!(fields["records_failed"], "0", "{out}");
    assert_eq!(acked, 20_000, "{out}");
    assert_eq!(end_offset_sum(&topic) - before, acked, "{out}");
    let p50: f64 = fields["latency_ms_p50"].parse().unwrap();
    let p99: f64 = fields["latency_ms_p99"].parse().unwrap();
    let max: f64 = fields["latency_ms_max"].parse().unwrap();
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{out}");

    let out = ok(&["perf", "consume", "-t", &topic, "-n", "20002", "-q"], b"");
    assert!(out.starts_with("records=20002 "), "{out}");
}

#[test]
fn transactional_produce_commits_every_transaction() {
    let topic = unique("txn-produce");
    create_topic(&topic, 1);
    let input: String = (0..35).map(|i| format!("t{i}\n")).collect();
    let txn_id = unique("txn-id");
    ok(
        &[
            "produce",
            "-t",
            &topic,
            "-q",
            "--transactional-id",
            &txn_id,
            "--transaction-records",
            "10",
        ],
        input.as_bytes(),
    );
    let read = ok(
        &["consume", "-t", &topic, "-e", "-q", "--read-committed"],
        b"",
    );
    assert_eq!(read, input);
    // 35 records and one commit marker per transaction: 10 + 10 + 10 + 5.
    let ends = ok(&["offsets", "topic", &topic, "--read-committed"], b"");
    assert!(ends.lines().any(|l| l == "0 0 39"), "{ends}");
}

#[test]
fn producing_to_a_missing_topic_or_partition_fails_at_once() {
    let bootstrap = bootstrap();
    let missing = unique("missing");
    let started = Instant::now();
    let out = josefk(
        &["-b", &bootstrap, "produce", "-t", &missing],
        b"x\n",
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&missing), "{stderr}");
    // Not the producer's max.block.ms (60 s) wait for metadata.
    assert!(started.elapsed() < Duration::from_secs(30));
    let topic = unique("two-partitions");
    create_topic(&topic, 2);
    let out = josefk(
        &["-b", &bootstrap, "produce", "-t", &topic, "-p", "2"],
        b"x\n",
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no partition 2"), "{stderr}");
}
