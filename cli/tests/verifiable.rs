//! Live tests of `josefk verifiable-producer` and `verifiable-consumer` against Kafka's Java tools
//! of those names (kafka-tools 4.4), run with the same arguments on the same broker (`cargo run
//! -p josefk-harness -- test --test verifiable --test verifiable_copier`; the copier's are in
//! `verifiable_copier.rs`):
//!
//! - the JSON lines: the same set of event names, and each event's fields in the same order with
//!   the same JSON types (nested objects included);
//! - the data: the producer's acknowledged partitions and offsets read back by Java's console
//!   consumer (and each key in the partition Java's producer chose); failed sends reported as
//!   Java reports them; the consumer's `records_consumed` totals, commits and `record_data` equal
//!   Java's on records Java's VerifiableProducer wrote; acks=0, create time, auto-commit;
//! - SIGTERM (how the system tests stop them cleanly): the producer flushes and ends with
//!   `shutdown_complete` and `tool_data` (acked = acknowledged lines = records in the log), the
//!   consumer prints `shutdown_requested`, commits and closes;
//! - what josefk cannot do (an assignor it lacks, `--session-timeout` with the consumer
//!   protocol) is refused with the reason, before anything starts.

mod common;
mod verifiable_common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use common::*;
use verifiable_common::*;

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

    // Both topics' partitions as Java reads them back, the reads side by side.
    let reads: Vec<(&str, i32)> = [&java_topic, &our_topic]
        .iter()
        .flat_map(|t| (0..3).map(move |p| (t.as_str(), p)))
        .collect();
    let mut read_back: BTreeMap<(&str, i32), Vec<String>> = reads
        .iter()
        .copied()
        .zip(java_read_partitions(&reads, false))
        .collect();

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
            let log = read_back.remove(&(topic.as_str(), p)).unwrap();
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
