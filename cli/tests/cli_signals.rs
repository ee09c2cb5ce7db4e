//! Live tests of how the `josefk` binary stops, run as a subprocess against a real Kafka broker
//! (`KAFKA_BOOTSTRAP_SERVERS`):
//!
//! - SIGINT to `produce` delivers every line it read (exit 130); with `--transactional-id` the
//!   open transaction is aborted at once, so read_committed readers are not held up;
//! - SIGINT and SIGTERM to a busy group `consume` and to `copy`: exit 130 / 143, the group is
//!   left (no members), and the committed offsets are exactly what was written (consume: the lines
//!   the test read; copy: the records in the output);
//! - a closed stdout stops `consume` (nothing committed that was not written) and `perf produce`
//!   quietly with 141, without a panic;
//! - `perf consume --timeout` ends a run that asks for more records than the topic holds (4);
//! - a signal during set-up (a listener that never answers) ends the command at once.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use josefk::admin::{Admin, OffsetSpec};
use josefk::{ClientConfig, IsolationLevel, TopicPartition};

use common::*;

/// A `josefk -b BOOTSTRAP ARGS` child with piped stdio, killed by a guard after `limit` so a hang
/// fails the test instead of blocking it.
struct Running {
    child: Child,
    done: Option<mpsc::Sender<()>>,
    guard: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start(args: &[&str], limit: Duration) -> Running {
        Running::start_at(&bootstrap(), args, limit)
    }

    fn start_at(bootstrap: &str, args: &[&str], limit: Duration) -> Running {
        let child = Command::new(JOSEFK)
            .arg("-b")
            .arg(bootstrap)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run josefk");
        let pid = child.id().to_string();
        let (done, done_rx) = mpsc::channel::<()>();
        let guard = std::thread::spawn(move || {
            // Disconnected: the test saw the exit (or failed); only a timeout means a hang.
            if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(limit) {
                let _ = Command::new("kill").args(["-9", &pid]).status();
            }
        });
        Running {
            child,
            done: Some(done),
            guard: Some(guard),
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal}");
    }

    /// Waits for the exit; returns the status and stderr.
    fn finish(mut self) -> (ExitStatus, String) {
        drop(self.child.stdin.take());
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        let status = self.child.wait().expect("wait for josefk");
        drop(self.done.take());
        if let Some(guard) = self.guard.take() {
            guard.join().unwrap();
        }
        assert!(!stderr.contains("panicked"), "josefk panicked:\n{stderr}");
        (status, stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that failed before `finish` leaves no josefk behind.
        if self.done.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

async fn admin() -> Admin {
    Admin::connect(ClientConfig::new(&bootstrap()))
        .await
        .expect("admin connect")
}

/// The members of `group` as the coordinator describes it.
fn group_members(group: &str) -> usize {
    runtime().block_on(async {
        let described = admin().await.describe_groups(&[group]).await.unwrap();
        described[0].members.len()
    })
}

/// The latest offset of partition 0 of `topic` at `isolation`.
fn end_offset(topic: &str, isolation: IsolationLevel) -> i64 {
    runtime().block_on(async {
        let tp = TopicPartition::new(topic, 0);
        let listed = admin()
            .await
            .list_offsets(&[(tp.clone(), OffsetSpec::Latest)], isolation)
            .await
            .unwrap();
        listed[&tp].offset
    })
}

/// `n` records of about `size` bytes, one per line.
fn fill(topic: &str, n: usize, size: usize) {
    let mut input = Vec::new();
    for i in 0..n {
        input.extend_from_slice(format!("{i:06}-{}\n", "x".repeat(size)).as_bytes());
    }
    ok(&["produce", "-t", topic, "-q"], &input);
}

#[test]
fn sigint_to_produce_delivers_every_line_it_read() {
    let topic = unique("sig-produce");
    create_topic(&topic, 1);
    // A long linger: without a flush at the stop the records would still be waiting.
    let mut run = Running::start(
        &["produce", "-t", &topic, "-X", "linger.ms=30000"],
        Duration::from_secs(60),
    );
    let mut stdin = run.child.stdin.take().unwrap();
    const N: i64 = 7;
    for i in 0..N {
        writeln!(stdin, "line-{i}").unwrap();
    }
    stdin.flush().unwrap();
    // The input stays open: the producer has read the lines but its input has not ended.
    std::thread::sleep(Duration::from_secs(2));
    run.signal("-INT");
    let (status, stderr) = run.finish();
    drop(stdin);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert_eq!(end_offset(&topic, IsolationLevel::ReadUncommitted), N);
    assert!(stderr.contains("7 records acknowledged"), "{stderr}");
}

#[test]
fn sigint_to_transactional_produce_aborts_the_open_transaction() {
    let topic = unique("sig-produce-txn");
    create_topic(&topic, 1);
    let id = unique("sig-produce-txn-id");
    let mut run = Running::start(
        &[
            "produce",
            "-t",
            &topic,
            "--transactional-id",
            &id,
            "-X",
            "transaction.timeout.ms=60000",
        ],
        Duration::from_secs(60),
    );
    let mut stdin = run.child.stdin.take().unwrap();
    for i in 0..5 {
        writeln!(stdin, "line-{i}").unwrap();
    }
    stdin.flush().unwrap();
    // The records reach the partition inside the open transaction.
    let written = Instant::now();
    while end_offset(&topic, IsolationLevel::ReadUncommitted) < 5 {
        assert!(
            written.elapsed() < Duration::from_secs(20),
            "records not written"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(end_offset(&topic, IsolationLevel::ReadCommitted), 0);
    run.signal("-INT");
    let (status, stderr) = run.finish();
    drop(stdin);
    assert_eq!(status.code(), Some(130), "{stderr}");
    // Aborted, not left open for transaction.timeout.ms: the last stable offset is the end at
    // once (the abort marker included), and read_committed sees none of the records.
    let stopped = Instant::now();
    loop {
        let committed = end_offset(&topic, IsolationLevel::ReadCommitted);
        let end = end_offset(&topic, IsolationLevel::ReadUncommitted);
        if committed == end {
            assert_eq!(end, 6, "5 records and the abort marker");
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "the transaction is still open: last stable offset {committed}, end {end}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let seen = consume_json(&topic, &["--read-committed"]);
    assert!(seen.is_empty(), "{seen:?}");
}

/// Starts a group `consume` of a topic bigger than a pipe holds, reads a few lines, sends
/// `signal` while it is blocked writing, then reads the rest: it must exit with `code`, leave
/// the group, and have committed exactly the lines read.
fn stop_busy_consume(signal: &str, code: i32) {
    let topic = unique("sig-consume");
    create_topic(&topic, 1);
    const N: usize = 2000;
    fill(&topic, N, 1000);
    let group = unique("sig-consume-group");
    let mut run = Running::start(
        &[
            "consume",
            "-t",
            &topic,
            "-g",
            &group,
            "-o",
            "beginning",
            "-f",
            "%v\n",
        ],
        Duration::from_secs(90),
    );
    let mut lines = BufReader::new(run.child.stdout.take().unwrap()).lines();
    let mut read = 0;
    for line in lines.by_ref().take(10) {
        line.unwrap();
        read += 1;
    }
    assert_eq!(read, 10, "consume printed too little");
    run.signal(signal);
    for line in lines {
        line.unwrap();
        read += 1;
    }
    let (status, stderr) = run.finish();
    assert_eq!(status.code(), Some(code), "{stderr}");
    assert_eq!(group_members(&group), 0, "the group was not left");
    assert_eq!(
        committed_sum(&group),
        read as i64,
        "committed != lines read"
    );
}

#[test]
fn sigint_to_a_busy_group_consume_commits_what_was_read_and_leaves() {
    stop_busy_consume("-INT", 130);
}

#[test]
fn sigterm_to_a_busy_group_consume_commits_what_was_read_and_leaves() {
    stop_busy_consume("-TERM", 143);
}

/// Starts a `copy -e` of a topic big enough to take many transactions, sends `signal` once the
/// output has records, and checks the exit code, that the group was left, and that the
/// committed offset is exactly what the output holds.
fn stop_busy_copy(signal: &str, code: i32) {
    let from = unique("sig-copy-in");
    let to = unique("sig-copy-out");
    create_topic(&from, 1);
    create_topic(&to, 1);
    const N: usize = 30_000;
    fill(&from, N, 100);
    let group = unique("sig-copy-group");
    let run = Running::start(
        &[
            "copy",
            "--from",
            &from,
            "--to",
            &to,
            "-g",
            &group,
            "-e",
            "-X",
            "max.poll.records=100",
        ],
        Duration::from_secs(120),
    );
    let started = Instant::now();
    while end_offset(&to, IsolationLevel::ReadCommitted) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing copied"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    run.signal(signal);
    let (status, stderr) = run.finish();
    assert_eq!(status.code(), Some(code), "{stderr}");
    assert_eq!(group_members(&group), 0, "the group was not left");
    let copied = consume_json(&to, &["--read-committed"]).len() as i64;
    assert!(
        copied < N as i64,
        "the copy ran to its end: the signal was lost"
    );
    assert_eq!(committed_sum(&group), copied, "committed != copied");
}

#[test]
fn sigint_to_a_busy_copy_stops_it_between_transactions() {
    stop_busy_copy("-INT", 130);
}

#[test]
fn sigterm_to_a_busy_copy_stops_it_between_transactions() {
    stop_busy_copy("-TERM", 143);
}

#[test]
fn consume_to_a_closed_stdout_commits_nothing_and_exits_141() {
    let topic = unique("closed-consume");
    create_topic(&topic, 1);
    fill(&topic, 500, 10);
    let group = unique("closed-consume-group");
    let mut run = Running::start(
        &["consume", "-t", &topic, "-g", &group, "-o", "beginning"],
        Duration::from_secs(60),
    );
    // Closed before josefk has connected, so before its first write.
    drop(run.child.stdout.take());
    let (status, stderr) = run.finish();
    assert_eq!(status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("error"), "141 is quiet: {stderr}");
    assert_eq!(
        committed_sum(&group),
        0,
        "records nobody received were committed"
    );
    assert_eq!(group_members(&group), 0, "the group was not left");
}

#[test]
fn perf_produce_to_a_closed_stdout_exits_141_without_a_panic() {
    let topic = unique("closed-perf");
    create_topic(&topic, 1);
    let mut run = Running::start(
        &["perf", "produce", "-t", &topic, "-n", "5"],
        Duration::from_secs(60),
    );
    drop(run.child.stdout.take());
    let (status, stderr) = run.finish();
    assert_eq!(status.code(), Some(141), "{stderr}");
    // The records were produced; only the result line had nowhere to go.
    assert_eq!(end_offset(&topic, IsolationLevel::ReadUncommitted), 5);
}

#[test]
fn perf_consume_gives_up_when_no_record_comes_for_timeout() {
    let topic = unique("perf-idle");
    create_topic(&topic, 1);
    fill(&topic, 10, 10);
    let started = Instant::now();
    let run = Running::start(
        &[
            "perf",
            "consume",
            "-t",
            &topic,
            "-n",
            "300000",
            "--timeout",
            "2000",
        ],
        Duration::from_secs(60),
    );
    let mut run = run;
    let mut stdout = String::new();
    run.child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let (status, stderr) = run.finish();
    assert_eq!(status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("--timeout"), "{stderr}");
    assert!(stdout.starts_with("records=10 "), "{stdout}");
    // A generous guard, not a timing assertion: it ended by itself, well before the kill.
    assert!(started.elapsed() < Duration::from_secs(45));
}

#[test]
fn sigterm_to_verifiable_producer_ends_a_send_waiting_for_a_missing_topic() {
    // The broker does not create topics on a producer's metadata request here, so the first
    // send waits for metadata up to max.block.ms (60 s by default).
    let topic = unique("vp-missing");
    let mut run = Running::start(
        &[
            "verifiable-producer",
            "--topic",
            &topic,
            "--max-messages",
            "5",
        ],
        Duration::from_secs(120),
    );
    let mut lines = BufReader::new(run.child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("startup_complete"), "{first}");
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    run.signal("-TERM");
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let (status, stderr) = run.finish();
    // Generous: the point is not waiting out max.block.ms.
    assert!(
        signalled.elapsed() < Duration::from_secs(30),
        "took {:?} after SIGTERM",
        signalled.elapsed()
    );
    assert!(status.success(), "{status}: {stderr}");
    let names: Vec<&str> = rest
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            match v["name"].as_str().unwrap() {
                "producer_send_error" => "producer_send_error",
                "shutdown_complete" => "shutdown_complete",
                "tool_data" => "tool_data",
                other => panic!("unexpected {other}"),
            }
        })
        .collect();
    assert_eq!(
        names,
        ["producer_send_error", "shutdown_complete", "tool_data"]
    );
    assert!(rest[2].contains(r#""sent":1,"acked":0"#), "{}", rest[2]);
}

/// A signal while the command is still connecting, to a "cluster" that accepts connections and
/// never answers: the set-up is abandoned at once with the signal's code, not waited out for
/// `default.api.timeout.ms` (60 s; the guard kills the child at 20 s, so waiting fails the test).
#[test]
fn a_signal_during_set_up_ends_the_command_at_once() {
    for (args, signal, code) in [
        (&["consume", "-t", "t", "-g", "g"][..], "-INT", 130),
        (&["produce", "-t", "t"][..], "-TERM", 143),
        (
            &["verifiable-consumer", "--topic", "t", "--group-id", "g"][..],
            "-INT",
            130,
        ),
    ] {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = silent.local_addr().unwrap().to_string();
        let run = Running::start_at(&address, args, Duration::from_secs(20));
        // Its first connection means the stop listener is installed (it is, before any work).
        let (_held, _) = silent.accept().unwrap();
        run.signal(signal);
        let (status, stderr) = run.finish();
        assert_eq!(status.code(), Some(code), "{args:?}: {status}: {stderr}");
    }
}
