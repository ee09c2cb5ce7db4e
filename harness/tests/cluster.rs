//! Live tests of the harness itself, against real Kafka JVMs.
//!
//! `single_node_lifecycle` runs with every `cargo test` (one cluster start). The
//! `#[ignore]`d ones are slower checks that were run by hand when the harness
//! changed: `cargo test -p josefk-harness -- --ignored --test-threads 1`.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use josefk_harness::{run_java_tool, send_signal, signals, ClusterSpec, KafkaCluster};

fn connects(addr: &str) -> bool {
    let addr: SocketAddr = addr.parse().unwrap();
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

/// Pids of processes whose command line mentions `needle` (Linux /proc).
fn pids_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

fn wait_until_gone(needle: &str, within: Duration) -> Vec<u32> {
    let deadline = Instant::now() + within;
    loop {
        let left = pids_mentioning(needle);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn single_node_lifecycle() {
    let t = Instant::now();
    let mut cluster = KafkaCluster::start(ClusterSpec::single()).unwrap();
    eprintln!("single node ready in {:.1}s", t.elapsed().as_secs_f32());
    assert_eq!(cluster.node_ids(), vec![1]);
    let addr = cluster.broker_address(1);
    assert_eq!(cluster.bootstrap_servers(), addr);
    assert!(addr.starts_with("127.0.0.1:"));
    assert!(connects(&addr));

    // The tools classpath works against this broker, and stdout carries only output.
    let t = Instant::now();
    let out = run_java_tool(
        cluster.dist(),
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--bootstrap-server",
            &addr,
            "--create",
            "--topic",
            "harness-t",
            "--partitions",
            "2",
        ],
        Duration::from_secs(60),
    )
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "Created topic harness-t.");
    eprintln!("TopicCommand ran in {:.1}s", t.elapsed().as_secs_f32());

    let t = Instant::now();
    cluster.stop_node(1).unwrap();
    assert!(!connects(&addr), "stopped node still accepts connections");
    cluster.start_node(1).unwrap();
    eprintln!("stopped and restarted in {:.1}s", t.elapsed().as_secs_f32());
    assert!(connects(&addr));

    assert!(
        cluster.start_node(1).is_err(),
        "starting a running node must fail"
    );
    // kill_node + start_node waits out the old registration (broker.session.timeout.ms,
    // 9 s), so it is exercised by the slower three-node test instead.

    let dir = cluster.data_dir().to_path_buf();
    let marker = format!("-Dkafka.logs.dir={}", dir.display());
    assert!(!pids_mentioning(&marker).is_empty());
    drop(cluster);
    assert_eq!(
        pids_mentioning(&marker),
        Vec::<u32>::new(),
        "JVM left after drop"
    );
    assert!(!dir.exists(), "{} not deleted", dir.display());
}

#[test]
#[ignore = "slow: three JVMs; run by hand with --ignored"]
fn three_nodes_with_transactions_v0() {
    let t = Instant::now();
    let cluster = KafkaCluster::start(ClusterSpec::three_nodes().transaction_version(0)).unwrap();
    eprintln!("three nodes ready in {:.1}s", t.elapsed().as_secs_f32());
    assert_eq!(cluster.node_ids(), vec![1, 2, 3]);
    let servers = cluster.bootstrap_servers();
    assert_eq!(servers.split(',').count(), 3);

    let tool = |class: &str, args: &[&str]| {
        let out = run_java_tool(cluster.dist(), class, args, Duration::from_secs(60)).unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let create = [
        "--bootstrap-server",
        &servers,
        "--create",
        "--topic",
        "rf3",
        "--partitions",
        "3",
        "--replication-factor",
        "3",
        "--config",
        "min.insync.replicas=2",
    ];
    tool("org.apache.kafka.tools.TopicCommand", &create);
    let describe = [
        "--bootstrap-server",
        &servers,
        "--describe",
        "--topic",
        "rf3",
    ];
    let described = tool("org.apache.kafka.tools.TopicCommand", &describe);
    assert_eq!(described.matches("Isr: ").count(), 3, "{described}");
    let features = tool(
        "org.apache.kafka.tools.FeatureCommand",
        &["--bootstrap-server", &servers, "describe"],
    );
    let line = features
        .lines()
        .find(|l| l.contains("Feature: transaction.version"))
        .unwrap_or_else(|| panic!("no transaction.version in:\n{features}"));
    assert!(line.contains("FinalizedVersionLevel: 0"), "{line}");

    let mut cluster = cluster;
    let t = Instant::now();
    cluster.kill_node(2).unwrap();
    assert!(!cluster.is_running(2).unwrap());
    assert!(!connects(&cluster.broker_address(2)));
    cluster.start_node(2).unwrap();
    eprintln!(
        "node 2 killed and back in {:.1}s",
        t.elapsed().as_secs_f32()
    );
    assert!(connects(&cluster.broker_address(2)));
    let t = Instant::now();
    drop(cluster);
    eprintln!("three nodes stopped in {:.1}s", t.elapsed().as_secs_f32());
}

#[test]
#[ignore = "slow: starts a broker in a child process; run by hand with --ignored"]
fn brokers_stop_when_the_owner_is_killed() {
    let mut owner = Command::new(env!("CARGO_BIN_EXE_josefk-harness"))
        .arg("start")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(owner.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:"),
        "{line}"
    );
    let needle = format!("josefk-kafka-{}-", owner.id());
    assert!(!pids_mentioning(&needle).is_empty());

    let t = Instant::now();
    send_signal(owner.id() as i32, signals::SIGKILL).unwrap();
    owner.wait().unwrap();
    let left = wait_until_gone(&needle, Duration::from_secs(15));
    assert!(
        left.is_empty(),
        "still running after owner SIGKILL: {left:?}"
    );
    eprintln!(
        "broker gone {:.1}s after its owner was SIGKILLed",
        t.elapsed().as_secs_f32()
    );
}
