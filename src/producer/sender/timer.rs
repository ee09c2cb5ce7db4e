//! The sender's precise wake-up for linger deadlines: one small thread per producer that sleeps
//! on a condition variable until the deadline the sender armed, then wakes the sender.
//!
//! Why not tokio's timer alone: its wheel counts whole milliseconds and its driver computes the
//! park time from the current millisecond rounded down, so a sleep ends between 0 and 2 ms after
//! its deadline (measured at 10k records/s, linger 5 ms: a batch that asked for 4.5 ms went after
//! 5.4-5.6 ms, 1-2 % after 6.5 ms). `linger.ms` is an upper bound on the wait (Java), and those
//! late milliseconds are the ack latency tail of every batch that lingers. A condition variable's
//! timed wait ends within tens of microseconds of its deadline. The sender still arms its tokio
//! sleep as well, so a missing thread only costs precision.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The armed deadline, and whether the thread should end.
#[derive(Default)]
struct Armed {
    at: Option<Instant>,
    stop: bool,
}

#[derive(Default)]
struct Inner {
    armed: Mutex<Armed>,
    changed: Condvar,
    /// Timed waits begun, so a test can re-arm while the thread sleeps towards a deadline.
    #[cfg(test)]
    timed_waits: std::sync::atomic::AtomicUsize,
}

/// Handle to the timer thread; dropping it ends the thread.
pub(super) struct PreciseTimer {
    inner: Arc<Inner>,
}

/// Deadlines this close are the same one re-armed from a later clock reading.
const SAME_DEADLINE: Duration = Duration::from_micros(50);

/// The thread sleeps and notifies; it needs no more stack than that.
const STACK: usize = 64 * 1024;

impl PreciseTimer {
    /// Starts the thread, which notifies `wake` at each armed deadline and ends when the handle
    /// is dropped (the sender task holds it, so also when that task is dropped unfinished). The
    /// thread holds only `wake`, never the producer's state, so nothing of the producer is ever
    /// dropped on it. `None` if no thread could be started.
    pub(super) fn start(wake: Arc<Notify>) -> Option<Self> {
        let inner = Arc::new(Inner::default());
        let thread_inner = inner.clone();
        std::thread::Builder::new()
            .name("josefk-linger".into())
            .stack_size(STACK)
            .spawn(move || run(&thread_inner, &wake))
            .ok()?;
        Some(PreciseTimer { inner })
    }

    /// Wakes the sender once `after` has passed, replacing the deadline armed before; `None`
    /// disarms.
    ///
    /// The thread is woken only when the new deadline comes sooner than the one it sleeps
    /// towards: a later or no deadline is seen when that sleep ends. The sender re-arms on every
    /// pass (a request sent or answered, a batch opened), mostly with the deadline it already
    /// armed, so this keeps most passes free of a thread wake-up.
    pub(super) fn arm(&self, after: Option<Duration>) {
        let at = after.map(|d| crate::clock::after_std(Instant::now(), d));
        let mut armed = lock(&self.inner.armed);
        let sooner = match (at, armed.at) {
            (Some(new), Some(old)) => new + SAME_DEADLINE < old,
            (Some(_), None) => true,
            (None, _) => false,
        };
        armed.at = at;
        if sooner {
            self.inner.changed.notify_one();
        }
    }
}

impl Drop for PreciseTimer {
    fn drop(&mut self) {
        lock(&self.inner.armed).stop = true;
        self.inner.changed.notify_one();
    }
}

/// Nothing panics while holding the lock, so a poisoned one holds consistent data.
fn lock(armed: &Mutex<Armed>) -> MutexGuard<'_, Armed> {
    armed.lock().unwrap_or_else(PoisonError::into_inner)
}

fn run(inner: &Inner, wake: &Notify) {
    let mut armed = lock(&inner.armed);
    loop {
        if armed.stop {
            return;
        }
        match armed.at {
            None => {
                armed = inner
                    .changed
                    .wait(armed)
                    .unwrap_or_else(PoisonError::into_inner)
            }
            Some(at) => {
                let now = Instant::now();
                if now < at {
                    #[cfg(test)]
                    inner
                        .timed_waits
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    armed = inner
                        .changed
                        .wait_timeout(armed, at - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    continue;
                }
                armed.at = None;
                drop(armed);
                wake.notify_one();
                armed = lock(&inner.armed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generous: the machine running the tests may be loaded.
    const PATIENCE: Duration = Duration::from_secs(30);

    fn start(wake: &Arc<Notify>) -> PreciseTimer {
        PreciseTimer::start(wake.clone()).expect("timer thread")
    }

    /// Waits until `done` holds, failing with `what` after [`PATIENCE`].
    async fn eventually(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn wakes_once_the_deadline_has_passed_and_not_before() {
        let wake = Arc::new(Notify::new());
        let timer = start(&wake);
        let armed_at = Instant::now();
        timer.arm(Some(Duration::from_millis(30)));
        tokio::time::timeout(PATIENCE, wake.notified())
            .await
            .expect("woken");
        assert!(armed_at.elapsed() >= Duration::from_millis(30));
    }

    #[tokio::test]
    async fn a_sooner_deadline_replaces_a_later_one() {
        let wake = Arc::new(Notify::new());
        let timer = start(&wake);
        timer.arm(Some(Duration::from_secs(3600)));
        let timed_waits = || {
            timer
                .inner
                .timed_waits
                .load(std::sync::atomic::Ordering::SeqCst)
        };
        eventually("the thread never slept", || timed_waits() > 0).await;
        timer.arm(Some(Duration::from_millis(10)));
        tokio::time::timeout(PATIENCE, wake.notified())
            .await
            .expect("woken at the sooner deadline, not in an hour");
    }

    #[tokio::test]
    async fn a_later_deadline_replaces_a_sooner_one() {
        let wake = Arc::new(Notify::new());
        let timer = start(&wake);
        // The first deadline is far enough off that the re-arm, the next statement, comes before
        // it even on a loaded machine; had it fired, its permit would end the wait below early.
        timer.arm(Some(Duration::from_millis(500)));
        let rearmed_at = Instant::now();
        timer.arm(Some(Duration::from_millis(1000)));
        tokio::time::timeout(PATIENCE, wake.notified())
            .await
            .expect("woken");
        assert!(rearmed_at.elapsed() >= Duration::from_millis(1000));
    }

    #[tokio::test]
    async fn dropping_the_handle_ends_the_thread() {
        let wake = Arc::new(Notify::new());
        let timer = start(&wake);
        timer.arm(Some(Duration::from_secs(3600)));
        let inner = timer.inner.clone();
        drop(timer);
        // The thread holds a reference to `inner` while it runs.
        eventually("the thread did not end", || Arc::strong_count(&inner) == 1).await;
    }

    #[tokio::test]
    async fn the_thread_lets_go_of_the_notify_when_the_handle_is_dropped() {
        let wake = Arc::new(Notify::new());
        let timer = start(&wake);
        timer.arm(Some(Duration::from_millis(1)));
        tokio::time::timeout(PATIENCE, wake.notified())
            .await
            .expect("woken");
        assert_eq!(Arc::strong_count(&wake), 2, "the thread holds the notify");
        drop(timer);
        eventually("the thread kept the notify", || {
            Arc::strong_count(&wake) == 1
        })
        .await;
    }
}
