//! Live tests of `josefk verifiable-producer`, `verifiable-consumer` and
//! `transactional-message-copier` against Kafka's Java tools of those names (kafka-tools 4.4), run
//! with the same arguments on the same broker (`cargo run -p josefk-harness -- test --test
//! verifiable`):
//!
//! - the JSON lines: the same set of event names, and each event's fields in the same order with
//!   the same JSON types (nested objects included);
//! - the data: the producer's acknowledged partitions and offsets read back by Java's console
//!   consumer (and each key in the partition Java's producer chose); the consumer's
//!   `records_consumed` totals and `record_data` equal Java's on records Java's
//!   VerifiableProducer wrote; the copier's output, read read_committed by Java's console
//!   consumer, equals its input (no loss, no duplicate, order kept), also with random aborts and
//!   in group mode, and its last line says `remaining` 0; SIGKILLed twice mid-copy and restarted,
//!   it still copies every record exactly once;
//! - SIGTERM (how the system tests stop them cleanly): the producer flushes and ends with
//!   `shutdown_complete` and `tool_data` (acked = acknowledged lines = records in the log), the
//!   consumer prints `shutdown_requested`, commits and closes;
//! - what josefk cannot do (an assignor it lacks, `--session-timeout` with the consumer
//!   protocol) is refused with the reason, before anything starts.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use common::*;

/// The JSON lines of a tool's stdout (Java's tools may print other lines; Kafka's system tests
/// skip those too).
fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The raw JSON lines (their text keeps the field order, which `Value` does not).
fn raw_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with('{')).collect()
}

/// Keys of a JSON text in order of appearance, tagged with their depth, each kept once: the
/// field order of the object and of its nested objects.
fn key_order(text: &str) -> Vec<(usize, String)> {
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
fn types(v: &Value, path: &str, out: &mut BTreeMap<String, &'static str>) {
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

type Shape = (Vec<(usize, String)>, BTreeMap<String, &'static str>);

/// For each event kind (by `name_key`'s value), the shape of its first line.
fn shapes(stdout: &str, name_key: &str) -> BTreeMap<String, Shape> {
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

fn assert_same_shapes(java: &str, ours: &str, name_key: &str) {
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
fn josefk_tool(subcommand: &str, args: &[&str]) -> String {
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
fn java_read_partition(topic: &str, partition: i32, read_committed: bool) -> Vec<String> {
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

fn named<'a>(lines: &'a [Value], name: &str) -> Vec<&'a Value> {
    lines.iter().filter(|v| v["name"] == name).collect()
}

#[test]
fn verifiable_producer_prints_what_java_prints_and_its_acks_are_in_the_log() {
    let bootstrap = bootstrap();
    let (java_topic, our_topic) = (unique("vp-java"), unique("vp-josefk"));
    create_topic(&java_topic, 3);
    create_topic(&our_topic, 3);
    const N: usize = 300;
    let args = |topic: &str| -> Vec<String> {
        [
            "--topic",
            topic,
            "--max-messages",
            &N.to_string(),
            "--repeating-keys",
            "7",
            "--value-prefix",
            "5",
            "--acks",
            "-1",
            "--bootstrap-server",
            &bootstrap,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let java_args = args(&java_topic);
    let java_out = java_tool(
        "org.apache.kafka.tools.VerifiableProducer",
        &java_args.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    );
    let our_args = args(&our_topic);
    let our_out = josefk_tool(
        "verifiable-producer",
        &our_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_same_shapes(&java_out, &our_out, "name");

    let mut key_partition: Vec<BTreeMap<String, i64>> = Vec::new();
    for (who, out, topic) in [
        ("Java", &java_out, &java_topic),
        ("josefk", &our_out, &our_topic),
    ] {
        let lines = json_lines(out);
        let names: Vec<&str> = lines.iter().map(|v| v["name"].as_str().unwrap()).collect();
        assert_eq!(names.first(), Some(&"startup_complete"), "{who}");
        assert_eq!(
            names[names.len() - 2..],
            ["shutdown_complete", "tool_data"],
            "{who}"
        );
        let tool_data = lines.last().unwrap();
        assert_eq!(tool_data["sent"], N, "{who}");
        assert_eq!(tool_data["acked"], N, "{who}");
        assert_eq!(tool_data["target_throughput"], -1, "{who}");
        let acks = named(&lines, "producer_send_success");
        assert_eq!(acks.len(), N, "{who}: acknowledgements");
        let values: BTreeSet<&str> = acks.iter().map(|v| v["value"].as_str().unwrap()).collect();
        let want: BTreeSet<String> = (0..N).map(|i| format!("5.{i}")).collect();
        assert_eq!(
            values,
            want.iter().map(String::as_str).collect(),
            "{who}: values"
        );
        // Every acknowledged (partition, offset) holds that value in the log.
        let mut map = BTreeMap::new();
        for p in 0..3 {
            let mut acked: Vec<(i64, &str)> = acks
                .iter()
                .filter(|v| v["partition"] == p)
                .map(|v| (v["offset"].as_i64().unwrap(), v["value"].as_str().unwrap()))
                .collect();
            acked.sort();
            let offsets: Vec<i64> = acked.iter().map(|(o, _)| *o).collect();
            assert_eq!(
                offsets,
                (0..acked.len() as i64).collect::<Vec<_>>(),
                "{who}: partition {p}: dense offsets from 0"
            );
            let log = java_read_partition(topic, p, false);
            let acked_values: Vec<&str> = acked.iter().map(|(_, v)| *v).collect();
            assert_eq!(log, acked_values, "{who}: partition {p} read back by Java");
        }
        for v in &acks {
            map.insert(
                v["key"].as_str().unwrap().to_owned(),
                v["partition"].as_i64().unwrap(),
            );
        }
        assert_eq!(map.len(), 7, "{who}: keys 0..7");
        key_partition.push(map);
    }
    assert_eq!(
        key_partition[0], key_partition[1],
        "each key in the partition Java's producer chose"
    );
}

#[test]
fn verifiable_producer_reports_failed_sends_as_java_does() {
    let bootstrap = bootstrap();
    let (java_topic, our_topic) = (unique("vp-err-java"), unique("vp-err-josefk"));
    create_topic(&java_topic, 1);
    create_topic(&our_topic, 1);
    // Every record is larger than this (1 byte: Java counts the batch header in a record's size,
    // josefk does not), so each send fails and none is written.
    let config = std::env::temp_dir().join(format!("{}.properties", unique("vp-err")));
    std::fs::write(&config, "max.request.size=1\n").unwrap();
    let config = config.to_str().unwrap();
    let java_out = java_tool(
        "org.apache.kafka.tools.VerifiableProducer",
        &[
            "--topic",
            &java_topic,
            "--max-messages",
            "3",
            "--producer.config",
            config,
            "--bootstrap-server",
            &bootstrap,
        ],
        None,
    );
    let our_out = josefk_tool(
        "verifiable-producer",
        &[
            "--topic",
            &our_topic,
            "--max-messages",
            "3",
            "--producer.config",
            config,
            "--bootstrap-server",
            &bootstrap,
        ],
    );
    assert_same_shapes(&java_out, &our_out, "name");
    for (who, out, topic) in [
        ("Java", &java_out, &java_topic),
        ("josefk", &our_out, &our_topic),
    ] {
        let lines = json_lines(out);
        let errors = named(&lines, "producer_send_error");
        let values: Vec<&str> = errors
            .iter()
            .map(|v| v["value"].as_str().unwrap())
            .collect();
        assert_eq!(values, ["0", "1", "2"], "{who}");
        assert!(errors.iter().all(|v| v["topic"] == topic.as_str()), "{who}");
        assert!(named(&lines, "producer_send_success").is_empty(), "{who}");
        let tool_data = lines.last().unwrap();
        assert_eq!(
            (&tool_data["sent"], &tool_data["acked"]),
            (&3.into(), &0.into()),
            "{who}"
        );
        assert_eq!(end_offset_sum(topic), 0, "{who}: nothing written");
    }
}

#[test]
fn verifiable_consumer_prints_what_java_prints_and_consumes_the_same_records() {
    let bootstrap = bootstrap();
    let topic = unique("vc");
    create_topic(&topic, 3);
    const N: i64 = 500;
    java_tool(
        "org.apache.kafka.tools.VerifiableProducer",
        &[
            "--topic",
            &topic,
            "--max-messages",
            &N.to_string(),
            "--repeating-keys",
            "10",
            "--bootstrap-server",
            &bootstrap,
        ],
        None,
    );
    let (java_group, our_group) = (unique("vc-java"), unique("vc-josefk"));
    let args = |group: &str| -> Vec<String> {
        [
            "--topic",
            &topic,
            "--group-id",
            group,
            "--max-messages",
            &N.to_string(),
            "--verbose",
            "--bootstrap-server",
            &bootstrap,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let java_args = args(&java_group);
    let java_out = java_tool(
        "org.apache.kafka.tools.VerifiableConsumer",
        &java_args.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    );
    let our_args = args(&our_group);
    let our_out = josefk_tool(
        "verifiable-consumer",
        &our_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_same_shapes(&java_out, &our_out, "name");

    let mut seen = Vec::new();
    for (who, out) in [("Java", &java_out), ("josefk", &our_out)] {
        let lines = json_lines(out);
        assert_eq!(lines[0]["name"], "startup_complete", "{who}");
        // Java's shutdown hook prints `shutdown_requested` at exit, after `shutdown_complete`.
        let names: Vec<&str> = lines.iter().map(|v| v["name"].as_str().unwrap()).collect();
        assert_eq!(
            names[names.len() - 2..],
            ["shutdown_complete", "shutdown_requested"],
            "{who}"
        );
        let assigned: BTreeSet<i64> = named(&lines, "partitions_assigned")
            .iter()
            .flat_map(|v| v["partitions"].as_array().unwrap().clone())
            .map(|p| p["partition"].as_i64().unwrap())
            .collect();
        assert_eq!(assigned, BTreeSet::from([0, 1, 2]), "{who}: assigned");
        // records_consumed: per-partition counts add up to N and their offset ranges tile each
        // partition from 0 with no gap and no overlap.
        let mut next: BTreeMap<i64, i64> = BTreeMap::new();
        let mut total = 0;
        for v in named(&lines, "records_consumed") {
            for s in v["partitions"].as_array().unwrap() {
                let p = s["partition"].as_i64().unwrap();
                let (min, max) = (
                    s["minOffset"].as_i64().unwrap(),
                    s["maxOffset"].as_i64().unwrap(),
                );
                assert_eq!(min, *next.get(&p).unwrap_or(&0), "{who}: partition {p}");
                assert_eq!(s["count"].as_i64().unwrap(), max - min + 1, "{who}");
                next.insert(p, max + 1);
                total += s["count"].as_i64().unwrap();
            }
        }
        assert_eq!(total, N, "{who}: records consumed");
        // The last commit of each partition is its end.
        let mut committed: BTreeMap<i64, i64> = BTreeMap::new();
        for v in named(&lines, "offsets_committed") {
            assert_eq!(v["success"], true, "{who}: {v}");
            for o in v["offsets"].as_array().unwrap() {
                committed.insert(
                    o["partition"].as_i64().unwrap(),
                    o["offset"].as_i64().unwrap(),
                );
            }
        }
        assert_eq!(committed, next, "{who}: committed offsets");
        let records: BTreeSet<(i64, i64, String, String)> = named(&lines, "record_data")
            .iter()
            .map(|v| {
                (
                    v["partition"].as_i64().unwrap(),
                    v["offset"].as_i64().unwrap(),
                    v["key"].as_str().unwrap().to_owned(),
                    v["value"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(records.len() as i64, N, "{who}: distinct records");
        seen.push(records);
    }
    assert_eq!(
        seen[0], seen[1],
        "josefk consumed the records Java consumed"
    );
}

#[test]
fn transactional_message_copier_prints_what_java_prints_and_copies_exactly_once() {
    let bootstrap = bootstrap();
    let input = unique("tmc-in");
    create_topic(&input, 2);
    java_tool(
        "org.apache.kafka.tools.VerifiableProducer",
        &[
            "--topic",
            &input,
            "--max-messages",
            "600",
            "--repeating-keys",
            "10",
            "--bootstrap-server",
            &bootstrap,
        ],
        None,
    );
    let inputs: Vec<Vec<String>> = (0..2)
        .map(|p| java_read_partition(&input, p, true))
        .collect();
    assert_eq!(inputs[0].len() + inputs[1].len(), 600);
    assert!(!inputs[0].is_empty() && !inputs[1].is_empty());

    let run = |java: bool, output: &str, extra: &[&str]| -> String {
        create_topic(output, 2);
        let id = unique("tmc-txn");
        let group = unique("tmc-group");
        let mut args = vec![
            "--input-topic",
            &input,
            "--input-partition",
            "0",
            "--output-topic",
            output,
            "--broker-list",
            &bootstrap,
            "--transactional-id",
            &id,
            "--consumer-group",
            &group,
            "--transaction-size",
            "40",
        ];
        args.extend_from_slice(extra);
        if java {
            java_tool(
                "org.apache.kafka.tools.TransactionalMessageCopier",
                &args,
                None,
            )
        } else {
            josefk_tool("transactional-message-copier", &args)
        }
    };
    let java_output = unique("tmc-java");
    let java_out = run(true, &java_output, &["--use-group-metadata"]);
    let our_output = unique("tmc-josefk");
    let our_out = run(false, &our_output, &["--use-group-metadata"]);
    assert_same_shapes(&java_out, &our_out, "stage");
    let aborting_output = unique("tmc-josefk-aborts");
    let aborting_out = run(false, &aborting_output, &["--enable-random-aborts"]);
    let group_args = ["--group-mode", "--use-group-metadata"];
    let java_group_output = unique("tmc-java-group");
    let java_group_out = run(true, &java_group_output, &group_args);
    let group_output = unique("tmc-josefk-group");
    let group_out = run(false, &group_output, &group_args);
    // Group mode adds the `RebalanceComplete` line.
    assert_same_shapes(&java_group_out, &group_out, "stage");

    for (who, out, output, partitions) in [
        ("Java", &java_out, &java_output, 1),
        ("josefk", &our_out, &our_output, 1),
        (
            "josefk with random aborts",
            &aborting_out,
            &aborting_output,
            1,
        ),
        ("Java in group mode", &java_group_out, &java_group_output, 2),
        ("josefk in group mode", &group_out, &group_output, 2),
    ] {
        let lines = json_lines(out);
        let last = lines.last().unwrap();
        assert_eq!(last["stage"], "ShutdownComplete", "{who}");
        assert_eq!(last["remaining"], 0, "{who}: {last}");
        let copied: usize = inputs[..partitions].iter().map(Vec::len).sum();
        assert_eq!(last["totalProcessed"], copied, "{who}: {last}");
        for (p, want) in inputs[..partitions].iter().enumerate() {
            let got = java_read_partition(output, p as i32, true);
            assert_eq!(&got, want, "{who}: output partition {p} = input, in order");
        }
        if partitions == 1 {
            assert!(
                java_read_partition(output, 1, true).is_empty(),
                "{who}: only partition 0 copied"
            );
        }
    }
}

/// Starts `josefk ARGS`, reads its JSON lines until `ready` holds for the lines so far, sends
/// SIGTERM, and returns every line and whether it exited successfully. A guard kills it after
/// four minutes so a hang fails the test instead of blocking it.
fn run_until_then_sigterm(args: &[&str], ready: impl Fn(&[Value]) -> bool) -> (Vec<Value>, bool) {
    run_until_then_signal(args, ready, "-TERM")
}

fn run_until_then_signal(
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

#[test]
fn sigterm_stops_producer_and_consumer_as_javas_shutdown_hook_does() {
    let bootstrap = bootstrap();
    let topic = unique("term");
    create_topic(&topic, 2);
    // An endless producer, throttled, stopped once 50 sends are acknowledged.
    let (lines, ok) = run_until_then_sigterm(
        &[
            "verifiable-producer",
            "--topic",
            &topic,
            "--throughput",
            "200",
            "--bootstrap-server",
            &bootstrap,
        ],
        |lines| named(lines, "producer_send_success").len() >= 50,
    );
    assert!(ok, "exit status after SIGTERM");
    let names: Vec<&str> = lines.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names[names.len() - 2..], ["shutdown_complete", "tool_data"]);
    let acked = named(&lines, "producer_send_success").len() as i64;
    let tool_data = lines.last().unwrap();
    assert_eq!(tool_data["acked"], acked);
    assert_eq!(
        tool_data["sent"], acked,
        "every message sent was acknowledged"
    );
    assert_eq!(tool_data["target_throughput"], 200);
    assert_eq!(
        end_offset_sum(&topic),
        acked,
        "the log holds what was acknowledged"
    );

    // An endless consumer, stopped once it has consumed everything: it says it was asked to
    // stop, closes, and its commits cover every record.
    let group = unique("term-group");
    let consumed = |lines: &[Value]| -> i64 {
        named(lines, "records_consumed")
            .iter()
            .flat_map(|v| v["partitions"].as_array().unwrap().clone())
            .map(|p| p["count"].as_i64().unwrap())
            .sum()
    };
    let (lines, ok) = run_until_then_sigterm(
        &[
            "verifiable-consumer",
            "--topic",
            &topic,
            "--group-id",
            &group,
            "--bootstrap-server",
            &bootstrap,
        ],
        |lines| consumed(lines) >= acked && !named(lines, "offsets_committed").is_empty(),
    );
    assert!(ok, "exit status after SIGTERM");
    let names: Vec<&str> = lines.iter().map(|v| v["name"].as_str().unwrap()).collect();
    // Java's order: the hook's `shutdown_requested`, then closing (which revokes the partitions),
    // then `shutdown_complete`.
    let requested = names.iter().position(|n| *n == "shutdown_requested");
    let last_poll = names.iter().rposition(|n| *n == "records_consumed");
    assert!(requested > last_poll, "{names:?}");
    assert_eq!(names.last(), Some(&"shutdown_complete"), "{names:?}");
    assert_eq!(consumed(&lines), acked);
    assert_eq!(committed_sum(&group), acked, "commits cover every record");
}

#[test]
fn what_josefk_cannot_do_is_refused_with_the_reason() {
    // Refused before any connection: no broker needed at this address.
    for (args, needle) in [
        (
            vec![
                "verifiable-consumer",
                "--topic",
                "t",
                "--group-id",
                "g",
                "--assignment-strategy",
                "org.apache.kafka.clients.consumer.StickyAssignor",
            ],
            "assignor",
        ),
        (
            vec![
                "verifiable-consumer",
                "--topic",
                "t",
                "--group-id",
                "g",
                "--group-protocol",
                "consumer",
                "--session-timeout",
                "10000",
            ],
            "session.timeout.ms",
        ),
        (
            vec!["verifiable-producer", "--topic", "t", "--acks", "2"],
            "--acks",
        ),
    ] {
        let mut all = args.clone();
        all.extend_from_slice(&["--bootstrap-server", "127.0.0.1:1"]);
        let out = josefk(&all, b"", Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("startup_complete"),
            "{args:?}"
        );
    }
}

#[test]
fn acks_0_create_time_and_autocommit_behave_as_in_java() {
    let bootstrap = bootstrap();
    let topic = unique("variants");
    create_topic(&topic, 1);
    let producer_args = [
        "--topic",
        &topic,
        "--max-messages",
        "20",
        "--acks",
        "0",
        "--message-create-time",
        "1700000000000",
        "--bootstrap-server",
        &bootstrap,
    ];
    let java_out = java_tool(
        "org.apache.kafka.tools.VerifiableProducer",
        &producer_args,
        None,
    );
    let our_out = josefk_tool("verifiable-producer", &producer_args);
    assert_same_shapes(&java_out, &our_out, "name");
    for (who, out) in [("Java", &java_out), ("josefk", &our_out)] {
        let acks = named(&json_lines(out), "producer_send_success")
            .into_iter()
            .map(|v| v["offset"].as_i64().unwrap())
            .collect::<Vec<_>>();
        assert_eq!(acks, vec![-1; 20], "{who}: acks=0 has no offsets");
    }
    // Both runs' first record carries the create time given; later ones do not go back.
    let records = consume_json(&topic, &[]);
    assert_eq!(records.len(), 40);
    for run in records.chunks(20) {
        assert_eq!(run[0]["timestamp"], 1_700_000_000_000_i64);
        assert!(run
            .windows(2)
            .all(|w| w[0]["timestamp"].as_i64() <= w[1]["timestamp"].as_i64()));
    }

    // Auto-commit: no offsets_committed lines, in either.
    let consumer_args = |group: &str| -> Vec<String> {
        [
            "--topic",
            &topic,
            "--group-id",
            group,
            "--max-messages",
            "40",
            "--enable-autocommit",
            "--bootstrap-server",
            &bootstrap,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let java_args = consumer_args(&unique("auto-java"));
    let java_out = java_tool(
        "org.apache.kafka.tools.VerifiableConsumer",
        &java_args.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    );
    let our_args = consumer_args(&unique("auto-josefk"));
    let our_out = josefk_tool(
        "verifiable-consumer",
        &our_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_same_shapes(&java_out, &our_out, "name");
    for (who, out) in [("Java", &java_out), ("josefk", &our_out)] {
        let lines = json_lines(out);
        assert!(named(&lines, "offsets_committed").is_empty(), "{who}");
        let consumed: i64 = named(&lines, "records_consumed")
            .iter()
            .map(|v| v["count"].as_i64().unwrap())
            .sum();
        assert_eq!(consumed, 40, "{who}");
    }
}

#[test]
fn copier_killed_mid_copy_and_restarted_copies_exactly_once() {
    let bootstrap = bootstrap();
    let input = unique("tmc-kill-in");
    create_topic(&input, 1);
    java_tool(
        "org.apache.kafka.tools.VerifiableProducer",
        &[
            "--topic",
            &input,
            "--max-messages",
            "3000",
            "--bootstrap-server",
            &bootstrap,
        ],
        None,
    );
    let want = java_read_partition(&input, 0, true);
    assert_eq!(want.len(), 3000);
    let output = unique("tmc-kill-out");
    create_topic(&output, 1);
    let (id, group) = (unique("tmc-kill-txn"), unique("tmc-kill-group"));
    let args = [
        "transactional-message-copier",
        "--input-topic",
        &input,
        "--input-partition",
        "0",
        "--output-topic",
        &output,
        "--broker-list",
        &bootstrap,
        "--transactional-id",
        &id,
        "--consumer-group",
        &group,
        "--transaction-size",
        "10",
    ];
    // SIGKILL twice, each time after some transactions committed (and one maybe open).
    let mut copied_before = 0;
    for _ in 0..2 {
        let (lines, _) = run_until_then_signal(
            &args,
            |lines| {
                lines
                    .last()
                    .is_some_and(|v| v["totalProcessed"].as_i64().unwrap() >= 200)
            },
            "-KILL",
        );
        let last = lines.last().unwrap();
        assert_ne!(last["stage"], "ShutdownComplete", "killed, not finished");
        assert!(last["remaining"].as_i64().unwrap() > 0, "{last}");
        copied_before += last["totalProcessed"].as_i64().unwrap();
    }
    assert!(copied_before >= 400);
    // The restart resumes from the committed offsets and finishes.
    let out = josefk_tool(args[0], &args[1..]);
    let last = json_lines(&out).pop().unwrap();
    assert_eq!(last["stage"], "ShutdownComplete");
    assert_eq!(last["remaining"], 0, "{last}");
    let got = java_read_partition(&output, 0, true);
    assert_eq!(got.len(), want.len(), "no record lost or copied twice");
    assert_eq!(got, want, "output = input, in order");
}

#[test]
fn copier_in_group_mode_killed_and_restarted_copies_exactly_once() {
    let bootstrap = bootstrap();
    let input = unique("tmc-gkill-in");
    create_topic(&input, 2);
    java_tool(
        "org.apache.kafka.tools.VerifiableProducer",
        &[
            "--topic",
            &input,
            "--max-messages",
            "3000",
            "--repeating-keys",
            "10",
            "--bootstrap-server",
            &bootstrap,
        ],
        None,
    );
    let want: Vec<Vec<String>> = (0..2)
        .map(|p| java_read_partition(&input, p, true))
        .collect();
    let output = unique("tmc-gkill-out");
    create_topic(&output, 2);
    let (id, group) = (unique("tmc-gkill-txn"), unique("tmc-gkill-group"));
    let args = [
        "transactional-message-copier",
        "--input-topic",
        &input,
        "--input-partition",
        "0",
        "--output-topic",
        &output,
        "--broker-list",
        &bootstrap,
        "--transactional-id",
        &id,
        "--consumer-group",
        &group,
        "--transaction-size",
        "10",
        "--group-mode",
        "--use-group-metadata",
    ];
    let (lines, _) = run_until_then_signal(
        &args,
        |lines| {
            lines
                .last()
                .is_some_and(|v| v["totalProcessed"].as_i64().unwrap() >= 300)
        },
        "-KILL",
    );
    let copied = lines.last().unwrap()["totalProcessed"].as_i64().unwrap();
    // The restart joins once the killed member's session (10 s) expires, and copies the rest.
    let out = josefk_tool(args[0], &args[1..]);
    let lines = json_lines(&out);
    let rebalanced = lines
        .iter()
        .find(|v| v["stage"] == "RebalanceComplete")
        .unwrap();
    let left = rebalanced["remaining"].as_i64().unwrap();
    assert!(left <= 3000 - copied, "{rebalanced}: after {copied} copied");
    let last = lines.last().unwrap();
    assert_eq!(last["stage"], "ShutdownComplete");
    assert_eq!(last["remaining"], 0, "{last}");
    for (p, want) in want.iter().enumerate() {
        let got = java_read_partition(&output, p as i32, true);
        assert_eq!(
            &got, want,
            "partition {p}: output = input, none lost or twice"
        );
    }
}
