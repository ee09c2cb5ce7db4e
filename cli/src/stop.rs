//! The one stop listener of the process: SIGINT (Ctrl-C) and SIGTERM (`timeout`, `docker stop`,
//! systemd) are caught from the start of `main` to the end, and kept, so a loop that checks
//! [`Stop::requested`] or selects on [`Stop::wait`] sees a signal that arrived while it was busy
//! elsewhere. (A `tokio::signal::ctrl_c()` made inside a `select!` on each pass misses every
//! signal arriving outside that await: once tokio has installed its handler the default action,
//! ending the process, is gone.)
//!
//! The first signal asks for a clean stop: stop reading, deliver or commit what was done, leave
//! the group, close. A second one ends the process at once, for a clean stop stuck on a broker
//! that no longer answers.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::exit::{self, CliError};
use crate::output::diagln;

/// Which signal asked for the stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT, Ctrl-C.
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl Signal {
    /// The exit code after stopping for it: the shell's 128 + signal number.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => exit::INTERRUPTED,
            Signal::Terminate => exit::TERMINATED,
        }
    }

    /// The error a command stopped by this signal returns (printed by nobody).
    pub fn error(self) -> CliError {
        CliError {
            code: self.exit_code(),
            message: match self {
                Signal::Interrupt => "interrupted".into(),
                Signal::Terminate => "terminated".into(),
            },
        }
    }

    fn from_u8(v: u8) -> Option<Signal> {
        match v {
            1 => Some(Signal::Interrupt),
            2 => Some(Signal::Terminate),
            _ => None,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Signal::Interrupt => 1,
            Signal::Terminate => 2,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// 0 until the first signal, then [`Signal::as_u8`] of it.
    signal: AtomicU8,
    /// Set by the command once its set-up (connecting, looking up topics, joining a
    /// transaction's producer) is over and its own clean stop takes over.
    set_up: AtomicBool,
    notify: Notify,
}

/// A handle on the process's stop listener; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    inner: Arc<Inner>,
}

impl Stop {
    /// Installs the SIGINT and SIGTERM handlers and starts listening. Call once, inside the
    /// runtime, before any work: the handlers are in place when this returns.
    pub fn install() -> Stop {
        let stop = Stop::default();
        let listener = stop.clone();
        match Handlers::install() {
            Ok(mut handlers) => {
                tokio::spawn(async move {
                    let first = handlers.next().await;
                    listener.trigger(first);
                    let second = handlers.next().await;
                    // The clean stop is stuck (a broker that does not answer, say): the user
                    // asked twice.
                    diagln!("josefk: second signal, exiting without closing");
                    std::process::exit(i32::from(second.exit_code()));
                });
            }
            Err(e) => diagln!("josefk: cannot catch SIGINT/SIGTERM ({e}); they end the process"),
        }
        stop
    }

    /// Records a stop as the signal handler does (the first one wins).
    pub fn trigger(&self, signal: Signal) {
        let _ = self.inner.signal.compare_exchange(
            0,
            signal.as_u8(),
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        self.inner.notify.notify_waiters();
    }

    /// The signal that asked for a stop, if one did.
    pub fn requested(&self) -> Option<Signal> {
        Signal::from_u8(self.inner.signal.load(Ordering::SeqCst))
    }

    /// Resolves when a stop is asked for (at once if it already was). Cancel-safe: select on it
    /// as often as needed.
    pub async fn wait(&self) -> Signal {
        loop {
            // Created before the check: `notify_waiters` wakes every `Notified` that exists,
            // polled or not, so a signal between the check and the await is not missed.
            let notified = self.inner.notify.notified();
            if let Some(signal) = self.requested() {
                return signal;
            }
            notified.await;
        }
    }

    /// Marks the command's set-up as over: from here a signal is the command's to handle.
    pub fn set_up_done(&self) {
        self.inner.set_up.store(true, Ordering::SeqCst);
    }

    /// Resolves with a signal that arrives while the command is still setting up; pends for
    /// ever once [`Stop::set_up_done`] was called. Set-up writes nothing a stop must settle, so
    /// the caller drops it: Ctrl-C does not wait out a connect to a cluster that does not answer
    /// (`connect` keeps asking for `default.api.timeout.ms`, 60 s).
    pub async fn during_set_up(&self) -> Signal {
        let signal = self.wait().await;
        if self.inner.set_up.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        signal
    }

    /// `Err` with the signal's exit code if a stop was asked for.
    pub fn check(&self) -> Result<(), CliError> {
        match self.requested() {
            Some(signal) => Err(signal.error()),
            None => Ok(()),
        }
    }
}

#[cfg(unix)]
struct Handlers {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Handlers {
    fn install() -> std::io::Result<Handlers> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Handlers {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.interrupt.recv() => Signal::Interrupt,
            _ = self.terminate.recv() => Signal::Terminate,
        }
    }
}

#[cfg(not(unix))]
struct Handlers;

#[cfg(not(unix))]
impl Handlers {
    fn install() -> std::io::Result<Handlers> {
        Ok(Handlers)
    }

    async fn next(&mut self) -> Signal {
        match tokio::signal::ctrl_c().await {
            Ok(()) => Signal::Interrupt,
            Err(_) => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_before_the_wait_is_kept_and_the_first_signal_wins() {
        let stop = Stop::default();
        assert_eq!(stop.requested(), None);
        assert!(stop.check().is_ok());
        stop.trigger(Signal::Terminate);
        stop.trigger(Signal::Interrupt);
        assert_eq!(stop.wait().await, Signal::Terminate);
        assert_eq!(stop.wait().await, Signal::Terminate);
        assert_eq!(stop.check().unwrap_err().code, exit::TERMINATED);
    }

    #[tokio::test]
    async fn a_waiter_is_woken() {
        let stop = Stop::default();
        let waiter = tokio::spawn({
            let stop = stop.clone();
            async move { stop.wait().await }
        });
        tokio::task::yield_now().await;
        stop.trigger(Signal::Interrupt);
        assert_eq!(waiter.await.unwrap(), Signal::Interrupt);
    }
}
