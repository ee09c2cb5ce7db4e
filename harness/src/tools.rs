//! Running Kafka's Java tools (`kafka-tools` main classes) on the tools classpath:
//! to capture their output ([`run_java_tool`]) or as long-running processes a test
//! can signal ([`spawn_java_tool`]).

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::error::{HarnessError, Result};
use crate::process::{JavaProcess, Launch};
use crate::provision::KafkaDist;

/// Runs `main_class` (e.g. `org.apache.kafka.tools.TopicCommand`) with `args` on the
/// tools classpath and returns its stdout, stderr and exit status. Logging goes to
/// stderr at WARN and above, so stdout holds only the tool's own output. A tool
/// still running after `timeout` is killed and reported as
/// [`HarnessError::ToolTimeout`], with what it printed so far. A non-zero exit is
/// *not* an error: check `output.status`.
pub fn run_java_tool(
    dist: &KafkaDist,
    main_class: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<Output> {
    run(dist, main_class, args, None, timeout)
}

/// Like [`run_java_tool`], feeding `stdin` to the tool (e.g. records for
/// `org.apache.kafka.tools.ConsoleProducer`, one per line).
pub fn run_java_tool_with_stdin(
    dist: &KafkaDist,
    main_class: &str,
    args: &[&str],
    stdin: &[u8],
    timeout: Duration,
) -> Result<Output> {
    let file = StdinFile::new(stdin)?;
    run(dist, main_class, args, Some(file.0.clone()), timeout)
}

/// Starts `main_class` with `args` on the tools classpath and returns at once, with
/// stdout and stderr piped (take them with [`JavaProcess::take_stdout`] and read
/// them, or the tool blocks when the pipe fills). For tools a test bounces, like
/// `TransactionalMessageCopier` or `VerifiableProducer`: [`JavaProcess::terminate`]
/// is SIGTERM, [`JavaProcess::kill`] is SIGKILL. It stops when dropped, and when
/// this process dies.
pub fn spawn_java_tool(dist: &KafkaDist, main_class: &str, args: &[&str]) -> Result<JavaProcess> {
    JavaProcess::spawn(tool_launch(
        dist,
        main_class,
        args,
        None,
        Stdio::piped(),
        Stdio::piped(),
    ))
}

/// Runs a tool with this process's stdin, stdout and stderr (for people at a
/// terminal) and waits for it without a timeout.
pub fn run_java_tool_interactive(
    dist: &KafkaDist,
    main_class: &str,
    args: &[&str],
) -> Result<std::process::ExitStatus> {
    // The watcher owns the wrapper's stdin, so this process's stdin is handed to
    // the JVM by path (Linux); elsewhere the tool gets no stdin.
    let stdin = PathBuf::from(format!("/proc/{}/fd/0", std::process::id()));
    let stdin = stdin.exists().then_some(stdin);
    let launch = tool_launch(
        dist,
        main_class,
        args,
        stdin,
        Stdio::inherit(),
        Stdio::inherit(),
    );
    JavaProcess::spawn(launch)?.wait()
}

fn tool_launch(
    dist: &KafkaDist,
    main_class: &str,
    args: &[&str],
    stdin_file: Option<PathBuf>,
    stdout: Stdio,
    stderr: Stdio,
) -> Launch {
    let mut java_args: Vec<OsString> = vec![
        // The heap the kafka-*.sh scripts give console and perf tools.
        "-Xmx512m".into(),
        "-Djava.awt.headless=true".into(),
        "-Djosefk.harness=1".into(),
        dist.log_config_flag(&dist.tools_log_config()).into(),
        "-cp".into(),
        dist.tools_classpath().into(),
        main_class.into(),
    ];
    java_args.extend(args.iter().map(OsString::from));
    Launch {
        program: dist.java().to_path_buf(),
        args: java_args,
        stdin_file,
        stdout,
        stderr,
        label: format!("Java tool {main_class}"),
    }
}

fn run(
    dist: &KafkaDist,
    main_class: &str,
    args: &[&str],
    stdin_file: Option<PathBuf>,
    timeout: Duration,
) -> Result<Output> {
    let launch = tool_launch(
        dist,
        main_class,
        args,
        stdin_file,
        Stdio::piped(),
        Stdio::piped(),
    );
    let mut process = JavaProcess::spawn(launch)?;
    // Drain both pipes concurrently so a chatty tool never blocks on a full pipe.
    let stdout = drain(process.take_stdout());
    let stderr = drain(process.take_stderr());
    let status = process.wait_timeout(timeout)?;
    let status = match status {
        Some(status) => status,
        None => {
            process.kill()?;
            process.wait()?;
            return Err(HarnessError::ToolTimeout {
                main_class: main_class.to_string(),
                timeout,
                stdout: String::from_utf8_lossy(&join(stdout)).into_owned(),
                stderr: String::from_utf8_lossy(&join(stderr)).into_owned(),
            });
        }
    };
    Ok(Output {
        status,
        stdout: join(stdout),
        stderr: join(stderr),
    })
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> Option<JoinHandle<Vec<u8>>> {
    pipe.map(|mut r| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    })
}

fn join(handle: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    handle.and_then(|h| h.join().ok()).unwrap_or_default()
}

/// A temp file holding a tool's stdin, deleted on drop.
struct StdinFile(PathBuf);

impl StdinFile {
    fn new(data: &[u8]) -> Result<StdinFile> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "josefk-stdin-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, data)
            .map_err(|e| HarnessError::io(format!("writing {}", path.display()), e))?;
        Ok(StdinFile(path))
    }
}

impl Drop for StdinFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
