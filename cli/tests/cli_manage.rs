//! Live tests of the `josefk` binary's management side, run as a subprocess against a real Kafka
//! broker (`cargo run -p josefk-harness -- test --test cli_manage` starts one): group consumes
//! commit what they printed (also on Ctrl-C, exit 130), offsets reset and deleted, records
//! deleted, partitions added, configs changed, Java `.properties` files, and the exit codes for
//! usage errors (2), an unreachable broker (3, in bounded time) and a count not reached in
//! time (4).

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_group_consume_commits_exactly_what_it_printed() {
    let topic = unique("group-consume");
    let group = unique("group");
    create_topic(&topic, 1);
    let input: String = (0..10).map(|i| format!("r{i}\n")).collect();
    ok(&["produce", "-t", &topic], input.as_bytes());
    let first = ok(
        &[
            "consume",
            "-t",
            &topic,
            "-g",
            &group,
            "-o",
            "beginning",
            "-c",
            "4",
            "-q",
        ],
        b"",
    );
    assert_eq!(first, "r0\nr1\nr2\nr3\n");
    let offsets = ok(&["offsets", "group", &group], b"");
    assert!(offsets.contains(&format!("{topic} 0 4 10 6")), "{offsets}");
    let rest = ok(&["consume", "-t", &topic, "-g", &group, "-e", "-q"], b"");
    assert_eq!(rest, "r4\nr5\nr6\nr7\nr8\nr9\n");
    let listed = ok(&["groups", "list"], b"");
    assert!(listed.contains(&format!("{group} state Empty")), "{listed}");
    ok(&["groups", "delete", &group], b"");
}

#[test]
fn offsets_are_reset_and_deleted_records_deleted_partitions_added_configs_changed() {
    let topic = unique("manage");
    let group = unique("manage-group");
    create_topic(&topic, 2);
    let input: String = (0..10).map(|i| format!("r{i}\n")).collect();
    ok(
        &["produce", "-t", &topic, "-p", "0", "-q"],
        input.as_bytes(),
    );
    ok(&["produce", "-t", &topic, "-p", "1", "-q"], b"p1-0\n");

    let out = ok(
        &[
            "groups",
            "reset-offsets",
            &group,
            "-t",
            &topic,
            "-p",
            "0",
            "--to",
            "3",
        ],
        b"",
    );
    assert!(out.contains(&format!("{topic} 0 3")), "{out}");
    let offsets = ok(&["offsets", "group", &group], b"");
    assert!(offsets.contains(&format!("{topic} 0 3 10 7")), "{offsets}");
    let read = ok(&["consume", "-t", &topic, "-g", &group, "-e", "-q"], b"");
    assert_eq!(read, (3..10).map(|i| format!("r{i}\n")).collect::<String>());
    ok(
        &[
            "groups",
            "reset-offsets",
            &group,
            "-t",
            &topic,
            "--to",
            "earliest",
        ],
        b"",
    );
    let read = ok(&["consume", "-t", &topic, "-g", &group, "-e", "-q"], b"");
    let mut read: Vec<&str> = read.lines().collect();
    read.sort();
    let mut want: Vec<&str> = input.lines().chain(["p1-0"]).collect();
    want.sort();
    assert_eq!(read, want, "every partition reset to earliest");
    ok(&["groups", "delete-offsets", &group, "-t", &topic], b"");
    // The coordinator's periodic clean-up may remove the now offset-less group at any time.
    let offsets = group_offsets(&group);
    assert!(offsets.lines().count() <= 1, "only the header: {offsets}");

    let out = ok(
        &[
            "topics",
            "delete-records",
            &topic,
            "-p",
            "0",
            "--before",
            "4",
        ],
        b"",
    );
    assert!(out.lines().any(|l| l == "0 4"), "{out}");
    let ends = ok(&["offsets", "topic", &topic], b"");
    assert!(ends.lines().any(|l| l == "0 4 10"), "{ends}");
    assert!(ends.lines().any(|l| l == "1 0 1"), "{ends}");
    ok(&["topics", "add-partitions", &topic, "-p", "3"], b"");
    let ends = ok(&["offsets", "topic", &topic], b"");
    assert_eq!(ends.lines().count(), 4, "header and 3 partitions: {ends}");

    ok(
        &[
            "configs",
            "alter",
            "--topic",
            &topic,
            "--set",
            "retention.ms=5000000",
        ],
        b"",
    );
    // The change reaches the answering broker through the metadata log.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let configs = ok(&["configs", "describe", "--topic", &topic], b"");
        if configs.contains("retention.ms=5000000 source topic") {
            break;
        }
        assert!(Instant::now() < deadline, "{configs}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn ctrl_c_commits_what_was_printed_leaves_the_group_and_exits_130() {
    let bootstrap = bootstrap();
    let topic = unique("sigint");
    let group = unique("sigint-group");
    create_topic(&topic, 1);
    let input: String = (0..5).map(|i| format!("r{i}\n")).collect();
    ok(&["produce", "-t", &topic, "-q"], input.as_bytes());
    // No --count and no --exit-at-end: it reads until interrupted. A long session timeout, so a
    // member that did not leave would still be listed afterwards.
    let child = Command::new(JOSEFK)
        .args([
            "-b", &bootstrap, "-q", "consume", "-t", &topic, "-g", &group,
        ])
        .args(["-o", "beginning", "-X", "session.timeout.ms=45000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let offsets = group_offsets(&group);
        if offsets.contains(&format!("{topic} 0 5 5 0")) {
            break;
        }
        assert!(Instant::now() < deadline, "nothing committed: {offsets}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), input);
    let described = ok(&["groups", "describe", &group], b"");
    assert!(described.contains("state Empty"), "{described}");
    assert!(described.contains("members 0"), "{described}");
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    let cases: &[(&[&str], &str)] = &[
        (&["consume"], "--topic"),
        (&["nonsense"], "nonsense"),
        (
            &["-b", "h:1", "consume", "-t", "x", "-o", "soon"],
            "--offset",
        ),
        (
            &[
                "-b",
                "h:1",
                "-X",
                "key.serializer=org.Foo",
                "topics",
                "list",
            ],
            "`key.serializer` is not supported: josefk reads and writes keys and values as raw \
             bytes",
        ),
        (
            &["-b", "h:1", "-X", "no.such.property=1", "metadata"],
            "no.such.property",
        ),
        (&["-b", "h:1", "-X", "novalue", "metadata"], "KEY=VALUE"),
        (
            &[
                "-b",
                "h:1",
                "-F",
                "/nonexistent/josefk.properties",
                "metadata",
            ],
            "-F",
        ),
    ];
    for (args, mentions) in cases {
        let out = josefk(args, b"", Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(mentions),
            "{args:?} should mention {mentions}: {stderr}"
        );
    }
    let help = josefk(&["--help"], b"", Duration::from_secs(30));
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("Exit codes"));
}

#[test]
fn an_unreachable_broker_exits_3_in_bounded_time() {
    // A listener that never accepts: TCP connects (the kernel's backlog), but no broker answers
    // ApiVersions, so the connection set-up times out. Held open for the whole test, so no other
    // process can take the port meanwhile.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let out = josefk(
        &[
            "-b",
            &addr,
            "-X",
            "socket.connection.setup.timeout.ms=2000",
            "-X",
            "request.timeout.ms=3000",
            // The client asks again until this bound while no broker answers (Java's wait for
            // its first metadata); keep the test short.
            "-X",
            "default.api.timeout.ms=6000",
            "topics",
            "list",
        ],
        b"",
        Duration::from_secs(60),
    );
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    drop(silent);
}

#[test]
fn a_java_properties_file_configures_the_clients() {
    let bootstrap = bootstrap();
    let topic = unique("props-file");
    create_topic(&topic, 1);
    ok(&["produce", "-t", &topic, "-q"], b"a\nb\n");
    let dir = std::env::temp_dir().join(unique("props"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("client.properties");
    // A file shared with a producer: its producer key is noted and skipped by consume.
    std::fs::write(
        &file,
        format!(
            "# shared settings\nbootstrap.servers = {bootstrap}\nclient.id: cli-props\n\
             linger.ms=20\nrequest.timeout.ms \\\n  15000\n"
        ),
    )
    .unwrap();
    let out = Command::new(JOSEFK)
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .args(["-F", file.to_str().unwrap(), "consume", "-t", &topic, "-e"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nb\n");
    assert!(
        stderr.contains("`linger.ms` is a producer property; the consumer ignores it"),
        "{stderr}"
    );
    // A bad value in the file is a usage error naming the key.
    std::fs::write(
        &file,
        format!("bootstrap.servers={bootstrap}\nrequest.timeout.ms=soon\n"),
    )
    .unwrap();
    let out = Command::new(JOSEFK)
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .args(["-F", file.to_str().unwrap(), "topics", "list"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("request.timeout.ms"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_count_not_reached_before_the_timeout_exits_4_with_what_was_read() {
    let bootstrap = bootstrap();
    let topic = unique("short");
    create_topic(&topic, 1);
    ok(&["produce", "-t", &topic, "-q"], b"only\ntwo\n");
    let started = Instant::now();
    let out = josefk(
        &[
            "-b",
            &bootstrap,
            "consume",
            "-t",
            &topic,
            "-c",
            "5",
            "--timeout-ms",
            "3000",
        ],
        b"",
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "only\ntwo\n");
    assert!(stderr.contains("2 of 5"), "{stderr}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(30),
        "{took:?}"
    );
}

#[test]
fn a_negative_offset_reads_the_last_records_of_a_partition() {
    let topic = unique("last-n");
    create_topic(&topic, 2);
    let input: String = (0..10).map(|i| format!("r{i}\n")).collect();
    ok(
        &["produce", "-t", &topic, "-p", "0", "-q"],
        input.as_bytes(),
    );
    ok(&["produce", "-t", &topic, "-p", "1", "-q"], b"other\n");
    // As kcat users type it: `-o -3`, not `-o=-3`.
    for flag in ["-o", "--offset"] {
        let last = ok(
            &["consume", "-t", &topic, "-p", "0", flag, "-3", "-e", "-q"],
            b"",
        );
        assert_eq!(last, "r7\nr8\nr9\n", "{flag} -3");
    }
}

#[test]
fn the_environment_bootstrap_loses_to_x_and_to_the_properties_file() {
    let bootstrap = bootstrap();
    let topic = unique("env-bootstrap");
    create_topic(&topic, 1);
    // Nothing listens on port 1: were the variable used, the command would exit 3.
    let with_env = |args: &[&str]| {
        Command::new(JOSEFK)
            .env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
            .args(args)
            .output()
            .unwrap()
    };
    let x = format!("bootstrap.servers={bootstrap}");
    let out = with_env(&["-X", &x, "topics", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "-X lost to the variable: {stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&topic));
    let dir = std::env::temp_dir().join(unique("env-props"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("client.properties");
    std::fs::write(&file, format!("{x}\n")).unwrap();
    let out = with_env(&["-F", file.to_str().unwrap(), "topics", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "-F lost to the variable: {stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
    // Alone, the variable is used (and refused until the client's short bound here).
    let out = with_env(&["-X", "default.api.timeout.ms=2000", "topics", "list"]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn a_group_that_does_not_exist_is_an_error_naming_it() {
    let group = unique("no-such-group");
    for args in [
        &["groups", "describe", &group][..],
        &["offsets", "group", &group][..],
    ] {
        let bootstrap = bootstrap();
        let mut all = vec!["-b", &bootstrap];
        all.extend_from_slice(args);
        let out = josefk(&all, b"", Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("consumer group `{group}` does not exist")),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn reset_offsets_clamps_to_the_log_and_refuses_a_group_with_members() {
    let bootstrap = bootstrap();
    let topic = unique("clamp");
    let group = unique("clamp-group");
    create_topic(&topic, 2);
    let input: String = (0..10).map(|i| format!("r{i}\n")).collect();
    ok(
        &["produce", "-t", &topic, "-p", "0", "-q"],
        input.as_bytes(),
    );
    let reset = |to: &str| {
        let args = [
            "-b",
            &bootstrap,
            "groups",
            "reset-offsets",
            &group,
            "-t",
            &topic,
            "--to",
            to,
        ];
        josefk(&args, b"", Duration::from_secs(60))
    };
    // Partition 0 holds offsets 0..10, partition 1 is empty.
    let out = reset("999999");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "New offset (999999) is higher than latest offset for topic partition {topic}-0. \
             Value will be set to 10"
        )),
        "{stderr}"
    );
    let offsets = ok(&["offsets", "group", &group], b"");
    assert!(offsets.contains(&format!("{topic} 0 10 10 0")), "{offsets}");
    assert!(offsets.contains(&format!("{topic} 1 0 0 0")), "{offsets}");
    // A classic member holds the group (with nothing left to read, so it commits nothing new):
    // the reset is refused, nothing committed.
    let mut member = Command::new(JOSEFK)
        .args([
            "-b", &bootstrap, "-q", "consume", "-t", &topic, "-g", &group,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_group(&group, &["state Stable", "members 1"], &mut member);
    refused_while_active(&reset("earliest"), &group);
    stop(member);
    let offsets = ok(&["offsets", "group", &group], b"");
    assert!(offsets.contains(&format!("{topic} 0 10 10 0")), "{offsets}");

    ok(
        &[
            "topics",
            "delete-records",
            &topic,
            "-p",
            "0",
            "--before",
            "4",
        ],
        b"",
    );
    let out = reset("2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("New offset (2) is lower than earliest offset"),
        "{stderr}"
    );
    let offsets = ok(&["offsets", "group", &group], b"");
    assert!(offsets.contains(&format!("{topic} 0 4 10 6")), "{offsets}");
}

#[test]
fn a_kip848_group_is_described_with_its_members_and_cannot_be_reset_while_it_has_them() {
    let bootstrap = bootstrap();
    let topic = unique("kip848");
    let group = unique("kip848-group");
    create_topic(&topic, 2);
    let mut member = Command::new(JOSEFK)
        .args([
            "-b", &bootstrap, "-q", "consume", "-t", &topic, "-g", &group,
        ])
        .args([
            "-X",
            "group.protocol=consumer",
            "-X",
            "client.id=kip848-member",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let described = wait_for_group(
        &group,
        &[
            "state Stable",
            "members 1",
            "group-type consumer",
            &format!("assigned {topic}-0,{topic}-1 epoch"),
        ],
        &mut member,
    );
    let line = described
        .lines()
        .find(|l| l.starts_with("  member "))
        .unwrap_or_else(|| panic!("no member line: {described}"));
    assert!(line.contains("client-id kip848-member"), "{line}");
    assert!(line.contains(&format!("subscribed {topic}")), "{line}");
    let reset = josefk(
        &[
            "-b",
            &bootstrap,
            "groups",
            "reset-offsets",
            &group,
            "-t",
            &topic,
            "--to",
            "earliest",
        ],
        b"",
        Duration::from_secs(60),
    );
    refused_while_active(&reset, &group);
    stop(member);
    // Left: no members, still a `consumer` group.
    let described = ok(&["groups", "describe", &group], b"");
    assert!(described.contains("state Empty"), "{described}");
    assert!(described.contains("members 0"), "{described}");
    assert!(described.contains("group-type consumer"), "{described}");
}

/// A reset refused because `group` has members: exit 1 with Kafka's own message.
fn refused_while_active(out: &std::process::Output, group: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Assignments can only be reset if the group '{group}' is inactive, but the current \
             state is Stable."
        )),
        "{stderr}"
    );
}

/// Polls `groups describe GROUP` until it shows every one of `wanted`; the output.
fn wait_for_group(group: &str, wanted: &[&str], member: &mut std::process::Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let bootstrap = bootstrap();
        let out = josefk(
            &["-b", &bootstrap, "groups", "describe", group],
            b"",
            Duration::from_secs(60),
        );
        let described = String::from_utf8_lossy(&out.stdout).into_owned();
        if wanted.iter().all(|w| described.contains(w)) {
            return described;
        }
        if let Some(status) = member.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(member.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!("the member exited ({status}): {stderr}");
        }
        assert!(Instant::now() < deadline, "{wanted:?} not in: {described}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops a `consume -g` subprocess with Ctrl-C, so it leaves its group at once.
fn stop(member: std::process::Child) {
    let status = Command::new("kill")
        .args(["-INT", &member.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = member.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
