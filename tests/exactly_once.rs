//! The exactly-once acceptance test: the `exactly_once` example copies 100,000 records while its
//! worker process is killed with SIGKILL and restarted with the same `transactional.id` three
//! times; the output must equal the input — no duplicate, no loss — as judged by an independent
//! reader, Java's `ConsoleConsumer` with `--isolation-level read_committed`.
//!
//! The test builds the example binary itself (`common::run_example`).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use josefk_harness::KafkaDist;

const RECORDS: usize = 100_000;

#[test]
fn copy_with_three_sigkills_has_no_duplicate_and_no_loss_by_javas_read_committed_reader() {
    let bootstrap = common::bootstrap();
    let records = RECORDS.to_string();
    let stdout = common::run_example("exactly_once", &["--records", &records, "--kills", "3"]);
    judge(&bootstrap, &stdout, RECORDS, 3);
}

/// The same on a KIP-848 `consumer` group: the transactional offset commits carry the member
/// epoch, and each restarted worker (a dynamic member) takes the partitions over when the broker
/// fences the killed one after its session timeout, which the broker sets (45 s by default, and
/// its minimum too). Each kill can cost one such wait (on the shared broker this test took
/// 50–108 s with two kills, three kills 92–158 s), so it runs with two kills and fewer records on
/// a private broker whose member session is 15 s (heartbeats every 2 s): the killed member is
/// still found dead by session expiry alone, only sooner. The classic test above has three kills.
#[test]
fn copy_on_a_consumer_protocol_group_with_two_sigkills_has_no_duplicate_and_no_loss() {
    // Fail, never skip, without a broker: the shared one must exist even for this test.
    let _ = common::bootstrap();
    let cluster = josefk_harness::KafkaCluster::start(
        josefk_harness::ClusterSpec::single()
            .broker_property("group.consumer.min.session.timeout.ms", "15000")
            .broker_property("group.consumer.session.timeout.ms", "15000")
            .broker_property("group.consumer.min.heartbeat.interval.ms", "2000")
            .broker_property("group.consumer.heartbeat.interval.ms", "2000"),
    )
    .unwrap_or_else(|e| panic!("cannot start a private Kafka broker: {e}"));
    let bootstrap = cluster.bootstrap_servers();
    let records = 30_000;
    let stdout = common::run_example_on(
        "exactly_once",
        &[
            "--records",
            &records.to_string(),
            "--kills",
            "2",
            "--group-protocol",
            "consumer",
        ],
        &bootstrap,
    );
    judge(&bootstrap, &stdout, records, 2);
}

/// Java's read_committed ConsoleConsumer reads the demo's output: exactly the copies of the
/// `records` input records, each once.
fn judge(bootstrap: &str, stdout: &str, records: usize, kills: usize) {
    let killed = stdout
        .lines()
        .filter(|l| l.starts_with("killed worker"))
        .count();
    assert_eq!(killed, kills, "times the worker was killed");
    let output_topic = stdout
        .lines()
        .find_map(|l| l.strip_prefix("output topic "))
        .expect("the example names its output topic")
        .trim()
        .to_owned();

    // The independent judge. One more message than expected is asked for, so the reader only
    // stops at its timeout, after having had the chance to see any extra record.
    let dist = KafkaDist::provision().expect("provision Kafka's tools");
    let args = [
        "--bootstrap-server",
        bootstrap,
        "--topic",
        &output_topic,
        "--from-beginning",
        "--isolation-level",
        "read_committed",
        "--max-messages",
        &(records + 1).to_string(),
        "--timeout-ms",
        "10000",
    ];
    let java = josefk_harness::run_java_tool(
        &dist,
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &args,
        Duration::from_secs(180),
    )
    .expect("ConsoleConsumer");
    let java_out = String::from_utf8_lossy(&java.stdout);
    let values: Vec<&str> = java_out.lines().filter(|l| !l.is_empty()).collect();
    let distinct: BTreeSet<&str> = values.iter().copied().collect();
    let expected: BTreeSet<String> = (0..records)
        .map(|i| format!("record-{i} (copied)"))
        .collect();
    let expected: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    let lost = expected.difference(&distinct).count();
    let unexpected = distinct.difference(&expected).count();
    assert_eq!(
        values.len() - distinct.len(),
        0,
        "duplicates in the committed output"
    );
    assert_eq!(lost, 0, "records missing from the committed output");
    assert_eq!(
        unexpected, 0,
        "records that are not copies of input records"
    );
    assert_eq!(values.len(), records);
}
