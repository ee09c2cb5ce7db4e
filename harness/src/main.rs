//! `josefk-harness` command line: provision Kafka, run the test suite (or any
//! command) against a fresh broker, keep a cluster up for manual work, or run a
//! Kafka Java tool. `cargo run -p josefk-harness -- help` lists the commands.

use std::process::{Command, ExitCode, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use josefk_harness::{
    run_java_tool_interactive, send_signal, signals, ClusterSpec, HarnessError, KafkaCluster,
    KafkaDist,
};

const USAGE: &str = "\
usage: cargo run -p josefk-harness -- <command>

commands:
  provision                 resolve the Kafka jars from Maven Central (cached) and print where
  test [ARGS...]            run `cargo test --workspace ARGS...` against a fresh single-node
                            broker (or KAFKA_BOOTSTRAP_SERVERS if set); exits with cargo's status.
                            Without a target selection (-p, --test, ...) it runs in two steps
                            on the same broker: the workspace without protocol-tests (so josefk's
                            tests build against its public API alone), then protocol-tests
  run [--] CMD [ARGS...]    the same for any command (examples, benches)
  start [--nodes N] [--transaction-version V] [--broker-property KEY=VALUE]...
                            start a cluster, print KAFKA_BOOTSTRAP_SERVERS=..., run until Ctrl-C
  tool MAIN_CLASS [ARGS...] run a Kafka Java tool, e.g.
                            tool org.apache.kafka.tools.TopicCommand --bootstrap-server H:P --list

environment: JOSEFK_KAFKA_VERSION (default 4.4.0), JOSEFK_KAFKA_CACHE, JOSEFK_KEEP_KAFKA_LOGS=1,
             JOSEFK_KAFKA_START_TIMEOUT_SECS, KAFKA_BOOTSTRAP_SERVERS, JAVA_HOME";

/// Set by the signal handler; polled by the main loops.
static SIGNALLED: AtomicI32 = AtomicI32::new(0);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match cmd.as_str() {
        "provision" => provision(),
        "test" => with_broker(test_commands(rest)),
        "run" => {
            let rest = rest.strip_prefix(&["--".to_string()]).unwrap_or(rest);
            match rest.split_first() {
                Some((program, args)) => {
                    let mut command = Command::new(program);
                    command.args(args);
                    with_broker(vec![command])
                }
                None => usage_error("run needs a command"),
            }
        }
        "start" => start(rest),
        "tool" => match rest.split_first() {
            Some((main_class, args)) => tool(main_class, args),
            None => usage_error("tool needs a main class"),
        },
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(0)
        }
        other => usage_error(&format!("unknown command `{other}`")),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("josefk-harness: error: {e}");
            ExitCode::from(1)
        }
    }
}

fn usage_error(msg: &str) -> Result<u8, HarnessError> {
    eprintln!("josefk-harness: {msg}\n\n{USAGE}");
    Ok(2)
}

fn provision() -> Result<u8, HarnessError> {
    let t = Instant::now();
    let dist = KafkaDist::provision()?;
    println!("kafka_version={}", dist.version());
    println!("tools_version={}", dist.tools_version());
    println!("cache_dir={}", dist.cache_dir().display());
    println!("java={}", dist.java().display());
    eprintln!(
        "josefk-harness: provisioned in {:.1}s",
        t.elapsed().as_secs_f32()
    );
    Ok(0)
}

/// Runs `command` with `KAFKA_BOOTSTRAP_SERVERS` pointing at a broker: the one in the
/// environment if set, else a fresh single node that is stopped afterwards.
/// The cargo runs behind `test`. protocol-tests turns on josefk's hidden `unstable-internals`
/// feature; built in the same cargo run, josefk's own tests would see the internals too (features
/// are unified), so a whole-suite run builds them apart: josefk's tests, examples and benches
/// against the public API alone, then protocol-tests. A run that selects targets itself is passed
/// through unchanged.
fn test_commands(args: &[String]) -> Vec<Command> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let selects = args.iter().take_while(|a| *a != "--").any(|a| {
        let flag = a.split('=').next().unwrap_or(a);
        matches!(
            flag,
            "-p" | "--package"
                | "--exclude"
                | "--test"
                | "--tests"
                | "--lib"
                | "--doc"
                | "--bench"
                | "--benches"
                | "--example"
                | "--examples"
                | "--bin"
                | "--bins"
                | "--all-targets"
        )
    });
    let step = |selection: &[&str]| {
        let mut command = Command::new(&cargo);
        command.arg("test").args(selection).args(args);
        command
    };
    if selects {
        vec![step(&["--workspace"])]
    } else {
        vec![
            step(&["--workspace", "--exclude", "protocol-tests"]),
            step(&["-p", "protocol-tests"]),
        ]
    }
}

/// Runs `commands` one after another against one broker (started here unless
/// KAFKA_BOOTSTRAP_SERVERS is set); every command runs, and the first failure's status is the
/// result.
fn with_broker(commands: Vec<Command>) -> Result<u8, HarnessError> {
    install_signal_handlers();
    let cluster = match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(servers) if !servers.trim().is_empty() => {
            eprintln!("josefk-harness: using existing broker KAFKA_BOOTSTRAP_SERVERS={servers}");
            None
        }
        _ => {
            let t = Instant::now();
            let cluster = KafkaCluster::start(ClusterSpec::single())?;
            let dist = cluster.dist();
            eprintln!(
                "josefk-harness: Kafka {} (tools {}) single node started in {:.1}s: KAFKA_BOOTSTRAP_SERVERS={}",
                dist.version(),
                dist.tools_version(),
                t.elapsed().as_secs_f32(),
                cluster.bootstrap_servers()
            );
            Some(cluster)
        }
    };
    let mut result = 0;
    for mut command in commands {
        if let Some(cluster) = &cluster {
            command.env("KAFKA_BOOTSTRAP_SERVERS", cluster.bootstrap_servers());
        }
        let code = run_child(command)?;
        if result == 0 {
            result = code;
        }
        if SIGNALLED.load(Ordering::SeqCst) != 0 {
            break;
        }
    }
    drop(cluster);
    Ok(result)
}

/// Runs one command to its end, passing a SIGTERM this process gets on to it.
fn run_child(mut command: Command) -> Result<u8, HarnessError> {
    let mut child = command.spawn().map_err(|e| HarnessError::Io {
        context: format!("running {command:?}"),
        source: e,
    })?;
    let mut forwarded = false;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| HarnessError::Io {
            context: "waiting for the command".into(),
            source: e,
        })? {
            break status;
        }
        let sig = SIGNALLED.load(Ordering::SeqCst);
        if sig != 0 && !forwarded {
            // Ctrl-C already reached the child through the terminal's process group;
            // a SIGTERM sent to this process alone did not, so pass it on.
            let _ = send_signal(child.id() as i32, sig);
            forwarded = true;
        }
        thread::sleep(Duration::from_millis(50));
    };
    Ok(exit_code(status))
}

fn start(args: &[String]) -> Result<u8, HarnessError> {
    let mut nodes = 1;
    let mut transaction_version = None;
    let mut properties = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let Some(value) = it.next() else {
            return usage_error(&format!("{flag} needs a value"));
        };
        match flag.as_str() {
            "--nodes" => match value.parse::<usize>() {
                Ok(n) if n >= 1 => nodes = n,
                _ => return usage_error("--nodes needs a number >= 1"),
            },
            "--transaction-version" => match value.parse::<u8>() {
                Ok(v) => transaction_version = Some(v),
                Err(_) => return usage_error("--transaction-version needs a number"),
            },
            "--broker-property" => match value.split_once('=') {
                Some((k, v)) => properties.push((k.to_string(), v.to_string())),
                None => return usage_error("--broker-property needs KEY=VALUE"),
            },
            other => return usage_error(&format!("unknown option {other}")),
        }
    }
    let mut spec = ClusterSpec::nodes(nodes);
    if let Some(v) = transaction_version {
        spec = spec.transaction_version(v);
    }
    for (k, v) in &properties {
        spec = spec.broker_property(k, v);
    }
    install_signal_handlers();
    let t = Instant::now();
    let mut cluster = KafkaCluster::start(spec)?;
    let dist = cluster.dist();
    eprintln!(
        "josefk-harness: Kafka {} (tools {}), {} node(s) ready in {:.1}s, data in {}; Ctrl-C stops it",
        dist.version(),
        dist.tools_version(),
        cluster.node_ids().len(),
        t.elapsed().as_secs_f32(),
        cluster.data_dir().display()
    );
    println!("KAFKA_BOOTSTRAP_SERVERS={}", cluster.bootstrap_servers());
    // The compare benches read a reused broker's CPU from this pid (JOSEFK_BENCH_BROKER_PID).
    for id in cluster.node_ids() {
        if let Some(pid) = cluster.node_pid(id) {
            eprintln!("josefk-harness: node {id} pid {pid} (the JVM's parent; JOSEFK_BENCH_BROKER_PID={pid})");
        }
    }
    let mut reported = Vec::new();
    while SIGNALLED.load(Ordering::SeqCst) == 0 {
        thread::sleep(Duration::from_millis(200));
        for id in cluster.node_ids() {
            if !reported.contains(&id) && !cluster.is_running(id)? {
                eprintln!(
                    "josefk-harness: node {id} exited unexpectedly; see {}",
                    cluster.node_log(id)?.display()
                );
                reported.push(id);
            }
        }
    }
    eprintln!("josefk-harness: stopping");
    drop(cluster);
    Ok(0)
}

fn tool(main_class: &str, args: &[String]) -> Result<u8, HarnessError> {
    install_signal_handlers();
    let dist = KafkaDist::provision()?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let status = run_java_tool_interactive(&dist, main_class, &args)?;
    Ok(exit_code(status))
}

/// The process exit code mirroring `status` (128+N for death by signal N, as shells do).
fn exit_code(status: ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return code.clamp(0, 255) as u8;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return (128 + sig).clamp(0, 255) as u8;
        }
    }
    1
}

#[cfg(unix)]
fn install_signal_handlers() {
    extern "C" {
        fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    }
    extern "C" fn on_signal(sig: i32) {
        // Only an atomic store: the one thing that is async-signal-safe here.
        SIGNALLED.store(sig, Ordering::SeqCst);
    }
    // SAFETY: installs a handler that only stores to an atomic.
    unsafe {
        signal(signals::SIGINT, on_signal);
        signal(signals::SIGTERM, on_signal);
    }
}

#[cfg(not(unix))]
fn install_signal_handlers() {
    let _ = signals::SIGINT;
}
