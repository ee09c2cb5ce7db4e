//! Child processes that cannot outlive the process that started them.
//!
//! Every JVM the harness starts (brokers, storage formatting, tools) runs under a
//! tiny `sh` wrapper in its own process group. The wrapper's stdin is a pipe whose
//! write end only the owning process holds and never writes to. The kernel closes
//! that end however the owner dies (panic, abort, SIGKILL), so a watcher in the
//! wrapper reads EOF, sends SIGTERM to the JVM and, after a grace period, SIGKILL
//! to the whole group. A pipe is used rather than polling the owner's PID because
//! PIDs get reused and a dead-but-unreaped owner still looks alive; it is used
//! rather than `PR_SET_PDEATHSIG` because that fires when the *thread* that
//! spawned the child exits, which happens all the time in a test binary.
//!
//! The wrapper also turns signals into actions on the JVM: SIGTERM/SIGINT/SIGHUP
//! are forwarded as SIGTERM (clean shutdown), SIGUSR1 becomes SIGKILL (hard kill).
//! It exits with the JVM's status (128+N if the JVM died of signal N) only after
//! reaping the JVM, so "wrapper exited" means "JVM gone, ports released".

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{HarnessError, Result};

/// The wrapper, run as `sh -c WRAPPER josefk-watch <grace-secs> <program> <args>...`.
/// `JOSEFK_JAVA_STDIN` optionally names a file to feed the JVM as its stdin.
const WRAPPER: &str = r#"grace=$1; shift
jpid= rpid=
# A SIGTERM that reaches the child between fork and exec hits the shell's inherited
# trap and is lost; sending it again a second later covers that window.
resend() { [ -z "$rpid" ] && { (sleep 1; kill -TERM "$jpid") >/dev/null 2>&1 & rpid=$!; }; }
# Traps first: a signal that arrives before the JVM exists is remembered, not fatal
# to the wrapper (which would orphan the JVM it was about to start).
trap 'term=1; trapped=1; [ -n "$jpid" ] && { kill -TERM "$jpid"; resend; } 2>/dev/null' TERM INT HUP
trap 'hard=1; trapped=1; [ -n "$jpid" ] && kill -KILL "$jpid" 2>/dev/null' USR1
exec 3<&0
"$@" <"${JOSEFK_JAVA_STDIN:-/dev/null}" 3<&- &
jpid=$!
# The program has its own copy of stderr; the shell's would only add job notices
# such as "Killed" to the program's output.
exec 2>/dev/null
if [ -n "$hard" ]; then kill -KILL "$jpid"; elif [ -n "$term" ]; then kill -TERM "$jpid"; resend; fi
(
  while read -r _; do :; done
  i=0
  while [ "$i" -le "$grace" ] && kill -TERM "$jpid" 2>/dev/null; do sleep 1; i=$((i + 1)); done
  kill -KILL -"$$" 2>/dev/null || kill -KILL "$jpid" 2>/dev/null
) <&3 >/dev/null 2>&1 &
wpid=$!
exec 3<&-
# A trap cuts `wait` short (status 128+signal); wait again until one completes
# without a trap. (bash answers 127 for a status it already reported: keep the old.)
rc=
while :; do
  trapped=
  wait "$jpid"; r=$?
  if [ "$r" -eq 127 ] && [ -n "$rc" ]; then break; fi
  rc=$r
  [ -z "$trapped" ] && break
done
# KILL, not TERM: a helper still inside fork would run the inherited trap instead.
kill -KILL "$wpid" $rpid 2>/dev/null
exit "$rc"
"#;

/// Seconds between SIGTERM and SIGKILL when the owner died. Kept short: nobody is
/// waiting for a clean shutdown any more, but a clean one keeps data dirs sane.
const ORPHAN_GRACE_SECS: u32 = 5;

/// How to start a watched process.
pub(crate) struct Launch {
    /// Program and arguments (usually `java ...`).
    pub program: PathBuf,
    /// Arguments for `program`.
    pub args: Vec<OsString>,
    /// File fed to the program's stdin; `/dev/null` when `None`.
    pub stdin_file: Option<PathBuf>,
    /// Where the program's stdout goes.
    pub stdout: Stdio,
    /// Where the program's stderr goes.
    pub stderr: Stdio,
    /// Human-readable name for error messages.
    pub label: String,
}

/// A JVM (or any program) started by the harness under its owner-death watcher.
///
/// Dropping it stops the program: SIGTERM, then SIGKILL after 10 seconds.
#[derive(Debug)]
pub struct JavaProcess {
    child: Child,
    /// Never written to; see the module docs. Dropped last, after the child is reaped.
    lifeline: Option<ChildStdin>,
    label: String,
    status: Option<ExitStatus>,
}

impl JavaProcess {
    /// Starts `launch` under the wrapper in a new process group.
    pub(crate) fn spawn(launch: Launch) -> Result<JavaProcess> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WRAPPER)
            .arg("josefk-watch")
            .arg(ORPHAN_GRACE_SECS.to_string())
            .arg(&launch.program)
            .args(&launch.args)
            .stdin(Stdio::piped())
            .stdout(launch.stdout)
            .stderr(launch.stderr);
        if let Some(file) = &launch.stdin_file {
            cmd.env("JOSEFK_JAVA_STDIN", file);
        }
        sys::new_process_group(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| HarnessError::io(format!("starting {} under sh", launch.label), e))?;
        let lifeline = child.stdin.take();
        Ok(JavaProcess {
            child,
            lifeline,
            label: launch.label,
            status: None,
        })
    }

    /// PID of the wrapper, which is also the process-group id of the JVM.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the JVM to shut down cleanly (SIGTERM runs its shutdown hooks).
    /// Returns at once; see [`JavaProcess::wait_timeout`].
    pub fn terminate(&mut self) -> Result<()> {
        self.signal(sys::SIGTERM)
    }

    /// Kills the JVM with SIGKILL (no shutdown hooks: a crash, as far as Kafka
    /// can tell). Returns at once; see [`JavaProcess::wait`].
    pub fn kill(&mut self) -> Result<()> {
        self.signal(sys::SIGUSR1)
    }

    /// Whether it has exited, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .map_err(|e| HarnessError::io(format!("waiting for {}", self.label), e))?;
            self.release_watcher();
        }
        Ok(self.status)
    }

    /// Waits for it to exit. The status is the JVM's exit code, or 128+N when the
    /// JVM died of signal N (143 after SIGTERM, 137 after SIGKILL).
    pub fn wait(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = self
            .child
            .wait()
            .map_err(|e| HarnessError::io(format!("waiting for {}", self.label), e))?;
        self.status = Some(status);
        self.release_watcher();
        Ok(status)
    }

    /// Once the wrapper has exited (so the JVM is reaped), closing the lifeline lets
    /// the watcher exit at once instead of lingering with a stale JVM pid.
    fn release_watcher(&mut self) {
        if self.status.is_some() {
            self.lifeline.take();
        }
    }

    /// Waits at most `timeout` for it to exit; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Freezes the wrapper, its watcher and the JVM (SIGSTOP to the process group): the broker
    /// keeps its sockets open but answers nothing, as a long GC pause or a hung host would.
    pub fn pause(&mut self) -> Result<()> {
        self.signal_group(sys::SIGSTOP)
    }

    /// Undoes [`JavaProcess::pause`] (SIGCONT to the process group).
    pub fn resume(&mut self) -> Result<()> {
        self.signal_group(sys::SIGCONT)
    }

    fn signal_group(&mut self, sig: i32) -> Result<()> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        // The group id is the wrapper's pid (new_process_group).
        match sys::send(-(self.child.id() as i32), sig) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(sys::ESRCH) => Ok(()),
            Err(e) => Err(HarnessError::io(format!("signalling {}", self.label), e)),
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL the whole process group and wait.
    pub fn stop(&mut self, grace: Duration) -> Result<ExitStatus> {
        // A paused process cannot act on SIGTERM.
        let _ = self.resume();
        self.terminate()?;
        if let Some(status) = self.wait_timeout(grace)? {
            return Ok(status);
        }
        self.kill_group();
        self.wait()
    }

    /// Takes the pipe to its stdout, if it was spawned with a piped stdout.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Takes the pipe to its stderr, if it was spawned with a piped stderr.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// Last resort: SIGKILL to the wrapper, watcher and JVM at once.
    pub(crate) fn kill_group(&mut self) {
        if self.status.is_none() {
            // The group id is the wrapper's pid (new_process_group). Errors mean it is gone.
            let _ = sys::send(-(self.child.id() as i32), sys::SIGKILL);
        }
    }

    fn signal(&mut self, sig: i32) -> Result<()> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        match sys::send(self.child.id() as i32, sig) {
            Ok(()) => Ok(()),
            // Exited between try_wait and kill: the goal is reached.
            Err(e) if e.raw_os_error() == Some(sys::ESRCH) => Ok(()),
            Err(e) => Err(HarnessError::io(format!("signalling {}", self.label), e)),
        }
    }
}

impl Drop for JavaProcess {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.stop(Duration::from_secs(10));
        }
        // Only now let the watcher see EOF: the JVM is already reaped.
        self.lifeline.take();
    }
}

/// Reads the last `max_lines` lines of a (possibly large) log file, for error
/// messages. Missing files give a short note instead of an error.
pub(crate) fn tail_file(path: &Path, max_lines: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    const MAX_BYTES: u64 = 32 * 1024;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return format!("({}: {e})", path.display()),
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(MAX_BYTES);
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut buf).is_err() {
        return format!("({}: unreadable)", path.display());
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(max_lines);
    let mut out = format!(
        "--- {} (last {} lines) ---\n",
        path.display(),
        lines.len() - skip
    );
    for line in &lines[skip..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Sends a signal to a process (or, with a negative pid, a process group).
/// Public for callers that manage their own children the same way, e.g. the binary.
pub fn send_signal(pid: i32, signal: i32) -> io::Result<()> {
    sys::send(pid, signal)
}

/// Signal numbers for [`send_signal`].
pub mod signals {
    pub use super::sys::{SIGINT, SIGKILL, SIGTERM};
}

#[cfg(unix)]
mod sys {
    use std::io;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    extern "C" {
        // From the C library std already links; declared here to stay dependency-free.
        fn kill(pid: i32, sig: i32) -> i32;
    }

    /// Interrupt (Ctrl-C).
    pub const SIGINT: i32 = 2;
    /// Uncatchable kill.
    pub const SIGKILL: i32 = 9;
    /// Polite termination.
    pub const SIGTERM: i32 = 15;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub const SIGUSR1: i32 = 10;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub const SIGSTOP: i32 = 19;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub const SIGSTOP: i32 = 17;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub const SIGCONT: i32 = 18;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub const SIGCONT: i32 = 19;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub const SIGUSR1: i32 = 30;
    pub const ESRCH: i32 = 3;

    pub fn send(pid: i32, sig: i32) -> io::Result<()> {
        // SAFETY: kill(2) has no memory-safety preconditions.
        if unsafe { kill(pid, sig) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    pub fn new_process_group(cmd: &mut Command) {
        // Own group: a Ctrl-C meant for `cargo test` must not reach the brokers
        // before the harness has a chance to stop them in order.
        cmd.process_group(0);
    }
}

#[cfg(not(unix))]
mod sys {
    use std::io;
    use std::process::Command;

    /// Interrupt (Ctrl-C).
    pub const SIGINT: i32 = 2;
    /// Uncatchable kill.
    pub const SIGKILL: i32 = 9;
    /// Polite termination.
    pub const SIGTERM: i32 = 15;
    pub const SIGUSR1: i32 = 10;
    pub const SIGSTOP: i32 = 19;
    pub const SIGCONT: i32 = 18;
    pub const ESRCH: i32 = 3;

    pub fn send(_pid: i32, _sig: i32) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "signals need a Unix-like OS",
        ))
    }

    pub fn new_process_group(_cmd: &mut Command) {}
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sleeper(secs: &str) -> JavaProcess {
        JavaProcess::spawn(Launch {
            program: "sleep".into(),
            args: vec![secs.into()],
            stdin_file: None,
            stdout: Stdio::null(),
            stderr: Stdio::null(),
            label: "sleep".into(),
        })
        .unwrap()
    }

    fn alive(pid: u32) -> bool {
        send_signal(pid as i32, 0).is_ok()
    }

    /// Pids of processes whose command line contains `needle`.
    fn pids_running(needle: &str) -> Vec<u32> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(needle) {
                found.push(pid);
            }
        }
        found
    }

    #[test]
    fn terminate_and_kill_report_the_programs_fate() {
        let mut p = sleeper("300");
        thread::sleep(Duration::from_millis(300)); // let the wrapper start the program
        p.terminate().unwrap();
        assert_eq!(p.wait().unwrap().code(), Some(143));
        let mut p = sleeper("300");
        thread::sleep(Duration::from_millis(300));
        p.kill().unwrap();
        assert_eq!(p.wait().unwrap().code(), Some(137));
    }

    #[test]
    fn signals_right_after_spawn_leave_nothing_behind() {
        for (i, hard) in [false, true, false, true].into_iter().enumerate() {
            let arg = format!("300.{}{i}", std::process::id());
            let mut p = sleeper(&arg);
            if hard {
                p.kill().unwrap();
            } else {
                p.terminate().unwrap();
            }
            p.wait().unwrap();
            thread::sleep(Duration::from_millis(100));
            if cfg!(target_os = "linux") {
                let left = pids_running(&arg);
                let info: Vec<String> = left
                    .iter()
                    .map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default())
                    .collect();
                assert!(left.is_empty(), "hard={hard} left: {info:?}");
            }
        }
    }

    #[test]
    fn owner_death_stops_the_program() {
        let mut p = sleeper("300");
        // Closing the lifeline is exactly what the kernel does when the owner dies.
        p.lifeline.take();
        let status = p.wait_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(status.and_then(|s| s.code()), Some(143), "{status:?}");
        assert!(!alive(p.pid()));
    }
}
