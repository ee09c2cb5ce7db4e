//! Exponential backoff with jitter, as a pure value: no clock, no sleeping.
//!
//! Mirrors the Java client's `ExponentialBackoff` (multiplier 2, jitter ±20 %): the n-th wait is
//! `min(initial * 2^n, max)` scaled by a random factor in `[0.8, 1.2]`. The random source is a small
//! xorshift generator seeded by the caller, so tests are deterministic and no RNG crate is needed.

use std::time::Duration;

/// Successive waits between attempts of one operation. Call [`Backoff::next_delay`] after each
/// failure and [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempts: u32,
    rng: u64,
}

impl Backoff {
    /// A backoff from `initial` doubling up to `max`, jittered by `seed`'s random sequence.
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            attempts: 0,
            // xorshift must not start at zero.
            rng: seed | 1,
        }
    }

    /// The wait before the next attempt; each call doubles the base wait until it reaches the cap.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.attempts.min(30);
        self.attempts = self.attempts.saturating_add(1);
        let base = self
            .initial
            .saturating_mul(1u32 << exp)
            .min(self.max)
            // A `retry.backoff.max.ms` near `Duration::MAX` would overflow the jitter below.
            .min(crate::clock::FAR)
            .as_secs_f64();
        // Jitter spreads clients that failed together so they do not retry in lock-step.
        let jitter = 0.8 + 0.4 * self.next_unit();
        Duration::from_secs_f64(base * jitter)
    }

    /// How many delays were handed out since the last reset.
    #[cfg(test)]
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Starts over from the initial wait.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// A uniform number in `[0, 1)`.
    fn next_unit(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_until_the_cap_within_jitter_bounds() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000), 42);
        let expected_base = [100u64, 200, 400, 800, 1000, 1000];
        for base in expected_base {
            let d = b.next_delay().as_secs_f64() * 1000.0;
            let base = base as f64;
            assert!(
                d >= base * 0.8 - 1e-6 && d <= base * 1.2 + 1e-6,
                "{d} not within 20% of {base}"
            );
        }
        assert_eq!(b.attempts(), 6);
        b.reset();
        let d = b.next_delay();
        assert!(d <= Duration::from_millis(120));
    }

    #[test]
    fn same_seed_same_sequence_and_jitter_varies() {
        let mut a = Backoff::new(Duration::from_millis(50), Duration::from_secs(1), 7);
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_secs(1), 7);
        let xs: Vec<_> = (0..8).map(|_| a.next_delay()).collect();
        let ys: Vec<_> = (0..8).map(|_| b.next_delay()).collect();
        assert_eq!(xs, ys);
        let mut capped = Backoff::new(Duration::from_secs(1), Duration::from_secs(1), 9);
        let cs: Vec<_> = (0..8).map(|_| capped.next_delay()).collect();
        assert!(cs.windows(2).any(|w| w[0] != w[1]), "no jitter: {cs:?}");
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_secs(5), 3);
        for _ in 0..100 {
            assert!(b.next_delay() <= Duration::from_secs(6));
        }
    }
}
