//! When to fetch again after a fetch that made no progress, so that a partition or leader that
//! keeps answering with nothing usable is asked at most a few times a second, and when such a
//! partition's stall becomes an error for the user.
//!
//! A fetch "makes no progress" when it fails, answers with a partition error, returns data the
//! position cannot move past (a truncated or over-long batch, only records already consumed, only
//! data past the last stable offset, a corrupt batch), or comes back empty in less than half of
//! `fetch.max.wait.ms` (a healthy broker holds an empty fetch that long, so a quick empty answer
//! is the broker not waiting; half, so that a broker timer firing a little early is no fault). Each such fetch doubles the wait before the next one, from
//! `retry.backoff.ms` up to `retry.backoff.max.ms` (Java's `ExponentialBackoff` without jitter,
//! librdkafka's `fetch.error.backoff.ms`); any progress starts over. A healthy empty long poll is
//! progress for this purpose: the consumer fetches again at once and the broker does the waiting.

use std::time::Duration;

use tokio::time::Instant;

/// Fetches since the position last moved that returned data it could not move past, before
/// `poll` reports the stall as an error; every further one is reported too, until the position
/// moves or is changed by `seek`. A broker can legitimately cut a partition's only batch at the response size
/// limit once or twice (it then returns it first, whole, KIP-74), so one such answer is not an
/// error.
pub(super) const STALLS_BEFORE_ERROR: u32 = 4;

/// Consecutive fetches without progress of one partition, or to one leader, and when to fetch
/// again.
#[derive(Debug, Default, Clone)]
pub(super) struct FetchRetry {
    failures: u32,
    /// Of those, the ones that returned data the position could not move past. Counted apart so
    /// that a leader move (a few NOT_LEADER_OR_FOLLOWER answers) followed by one legitimately cut
    /// batch is not an error.
    stalls: u32,
    not_before: Option<Instant>,
}

impl FetchRetry {
    /// Whether a fetch may be sent at `now`.
    pub(super) fn ready(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|at| at <= now)
    }

    /// When a fetch may be sent again, if it is backing off.
    pub(super) fn not_before(&self) -> Option<Instant> {
        self.not_before
    }

    /// Records a fetch without progress at `now`; returns how many there were in a row.
    pub(super) fn failed(&mut self, now: Instant, initial: Duration, max: Duration) -> u32 {
        self.failures = self.failures.saturating_add(1);
        self.not_before = Some(crate::clock::after(now, delay(self.failures, initial, max)));
        self.failures
    }

    /// Records a fetch whose data the position could not move past; returns how many of those
    /// there were since the last progress.
    pub(super) fn stalled(&mut self, now: Instant, initial: Duration, max: Duration) -> u32 {
        self.failed(now, initial, max);
        self.stalls = self.stalls.saturating_add(1);
        self.stalls
    }

    /// Records progress: the next fetch goes out at once.
    pub(super) fn succeeded(&mut self) {
        self.failures = 0;
        self.stalls = 0;
        self.not_before = None;
    }
}

/// The wait after the `failures`-th fetch in a row without progress: `initial`, doubling, at most
/// `max`.
fn delay(failures: u32, initial: Duration, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    initial.saturating_mul(1 << doublings).min(max.max(initial))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_to_the_cap_and_progress_resets_them() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        let now = Instant::now();
        let mut retry = FetchRetry::default();
        assert!(retry.ready(now));
        let mut waits = Vec::new();
        for n in 1..=6 {
            assert_eq!(retry.failed(now, initial, max), n);
            assert!(!retry.ready(now));
            waits.push(retry.not_before().unwrap() - now);
        }
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1000, 1000]);
        assert!(retry.ready(now + Duration::from_secs(1)));
        retry.succeeded();
        assert!(retry.ready(now));
        assert_eq!(retry.failed(now, initial, max), 1);
        // Stalls are counted apart from other failures, and back off like them.
        assert_eq!(retry.stalled(now, initial, max), 1);
        assert_eq!(retry.not_before().unwrap() - now, 2 * initial);
        assert_eq!(retry.stalled(now, initial, max), 2);
        retry.succeeded();
        assert_eq!(retry.stalled(now, initial, max), 1);
        // A cap below the first wait does not shorten it.
        let mut retry = FetchRetry::default();
        retry.failed(now, initial, Duration::from_millis(10));
        assert_eq!(retry.not_before().unwrap() - now, initial);
    }
}
