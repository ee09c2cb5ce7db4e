//! When a transaction's first Produce may leave after the previous transaction ended (KIP-890
//! transaction protocol v2).
//!
//! EndTxn v5 is answered once the coordinator has logged PREPARE_COMMIT/PREPARE_ABORT, before the
//! markers are on the partitions. A Produce of the next transaction that reaches a leader in that
//! window makes the leader's implicit AddPartitionsToTxn meet CONCURRENT_TRANSACTIONS, and the
//! leader holds the Produce for its retry backoff (`add.partitions.to.txn.retry.backoff.ms`,
//! 20 ms by default) before trying again. On loopback the window is about a millisecond, so a
//! client that begins the next transaction at once pays ~20 ms for most small transactions, while
//! one that waits a little pays almost nothing.
//!
//! How long the window is depends on the cluster (replication, disks, network), so it is learned,
//! not fixed: a first Produce sent soon after the end whose answer took as long as a broker hold
//! (far longer than Produce answers usually take) adds half a millisecond to the pause; every first
//! Produce answered promptly shortens it by 1/32, so the pause tracks the shortest one that works.
//! The increase is additive, not doubling, because on a loaded machine some answers are slow for
//! other reasons: a doubling pause was pushed to its cap by such noise in a benchmark run, while an
//! additive one settles near `16 ms × (share of slow answers)`.
//! Only a first Produce sent within the pause after an EndTxn answer waits, and at most the
//! pause: a transaction that starts later, or its later requests, never wait.

use std::time::{Duration, Instant};

/// An answer shorter than this is not a hold (the broker holds for 20 ms by default).
const HOLD_FLOOR: Duration = Duration::from_millis(16);
/// The pause never exceeds the broker's default hold: waiting longer cannot gain anything.
const MAX_PAUSE: Duration = Duration::from_millis(20);
/// What each hold adds to the pause.
const STEP: Duration = Duration::from_micros(500);
/// A pause below this is dropped to zero.
const MIN_PAUSE: Duration = Duration::from_micros(50);
/// A first Produce sent this long after the end cannot meet the markers (it is beyond any
/// pause, so it tells nothing about the window).
const RACE_WINDOW: Duration = Duration::from_millis(25);

/// The learned pause and the state of the current transaction's first Produce.
#[derive(Debug, Default)]
pub struct MarkerPacing {
    pause: Duration,
    /// When the previous transaction's EndTxn was answered, until the next first Produce leaves.
    ended_at: Option<Instant>,
    /// The first Produce of the transaction, once sent: how long after the end it left.
    first_sent: Option<FirstProduce>,
    /// Moving average of Produce answer times not classed as holds.
    typical: Option<Duration>,
}

#[derive(Debug, Clone, Copy)]
struct FirstProduce {
    /// Identifies the request (the sender's choice, e.g. the first batch's id).
    token: u64,
    since_end: Duration,
}

impl MarkerPacing {
    /// A fresh pacer: no pause until a hold is seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// The pause currently applied after an end.
    pub fn pause(&self) -> Duration {
        self.pause
    }

    /// EndTxn (commit or abort) was answered at `now`: the next first Produce may be paced.
    pub fn on_transaction_ended(&mut self, now: Instant) {
        self.ended_at = Some(now);
        self.first_sent = None;
    }

    /// When a first Produce wanting to leave at `now` may leave, if it must wait.
    pub fn hold_until(&self, now: Instant) -> Option<Instant> {
        let at = self.ended_at? + self.pause;
        (at > now).then_some(at)
    }

    /// A Produce request identified by `token` left at `now`. Returns whether it is the first of
    /// its transaction since an end (the one whose answer teaches the pause).
    pub fn on_produce_sent(&mut self, token: u64, now: Instant) -> bool {
        let Some(ended_at) = self.ended_at.take() else {
            return false;
        };
        self.first_sent = Some(FirstProduce {
            token,
            since_end: now.saturating_duration_since(ended_at),
        });
        true
    }

    /// The Produce request `token` sent at `sent_at` was answered at `now` (any answer).
    pub fn on_produce_answered(&mut self, token: u64, sent_at: Instant, now: Instant) {
        let took = now.saturating_duration_since(sent_at);
        let racing = self
            .first_sent
            .filter(|f| f.token == token)
            .inspect(|_| self.first_sent = None)
            .is_some_and(|f| f.since_end <= RACE_WINDOW);
        // Only a first Produce sent right after an end can be held for the markers; every
        // other answer shows how long answers take here.
        let mut ordinary = !racing;
        if racing {
            let hold_threshold = HOLD_FLOOR.max(self.typical.unwrap_or_default() * 3);
            if took >= hold_threshold {
                self.pause = (self.pause + STEP).min(MAX_PAUSE);
            } else {
                ordinary = true;
                self.pause -= self.pause / 32;
                if self.pause < MIN_PAUSE {
                    self.pause = Duration::ZERO;
                }
            }
        }
        if ordinary {
            self.typical = Some(match self.typical {
                None => took,
                Some(t) => t - t / 8 + took / 8,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// One transaction: ended at `t`, first Produce sent `gap` later (or when the pacer lets
    /// it), answered after `took`. Returns when it was sent.
    fn transaction(p: &mut MarkerPacing, t: Instant, gap: Duration, took: Duration) -> Instant {
        p.on_transaction_ended(t);
        let want = t + gap;
        let sent = p.hold_until(want).unwrap_or(want);
        assert!(p.on_produce_sent(1, sent));
        p.on_produce_answered(1, sent, sent + took);
        sent
    }

    #[test]
    fn no_pause_until_a_hold_is_seen() {
        let mut p = MarkerPacing::new();
        let t = Instant::now();
        for i in 0..10 {
            let start = t + ms(10 * i);
            assert_eq!(transaction(&mut p, start, Duration::ZERO, ms(1)), start);
        }
        assert_eq!(p.pause(), Duration::ZERO);
    }

    #[test]
    fn each_hold_right_after_the_end_lengthens_the_pause_up_to_the_broker_hold() {
        let mut p = MarkerPacing::new();
        let t = Instant::now();
        transaction(&mut p, t, Duration::ZERO, ms(21));
        assert_eq!(p.pause(), STEP);
        // The next first Produce waits for the pause.
        p.on_transaction_ended(t + ms(100));
        assert_eq!(p.hold_until(t + ms(100)), Some(t + ms(100) + STEP));
        transaction(&mut p, t + ms(200), Duration::ZERO, ms(21));
        assert_eq!(p.pause(), STEP * 2);
        for i in 0..100 {
            transaction(&mut p, t + ms(300 + 100 * i), Duration::ZERO, ms(41));
        }
        assert_eq!(p.pause(), MAX_PAUSE);
    }

    #[test]
    fn prompt_answers_shorten_the_pause_down_to_nothing() {
        let mut p = MarkerPacing::new();
        let t = Instant::now();
        transaction(&mut p, t, Duration::ZERO, ms(21));
        transaction(&mut p, t + ms(100), Duration::ZERO, ms(21));
        let before = p.pause();
        transaction(&mut p, t + ms(200), Duration::ZERO, ms(1));
        assert!(p.pause() < before);
        for i in 0..400 {
            transaction(&mut p, t + ms(300 + 10 * i), Duration::ZERO, ms(1));
        }
        assert_eq!(p.pause(), Duration::ZERO);
    }

    #[test]
    fn only_the_first_produce_soon_after_an_end_waits_or_teaches() {
        let mut p = MarkerPacing::new();
        let t = Instant::now();
        transaction(&mut p, t, Duration::ZERO, ms(21));
        let pause = p.pause();
        // A transaction that starts well after the end does not wait.
        p.on_transaction_ended(t + ms(100));
        assert_eq!(p.hold_until(t + ms(150)), None);
        // Its first Produce, slow as it may be, is outside the race window: no lesson.
        assert!(p.on_produce_sent(7, t + ms(150)));
        p.on_produce_answered(7, t + ms(150), t + ms(200));
        assert_eq!(p.pause(), pause);
        // Later Produce requests of the transaction are not first ones and never wait.
        assert!(!p.on_produce_sent(8, t + ms(151)));
        assert_eq!(p.hold_until(t + ms(151)), None);
    }

    #[test]
    fn occasional_slow_answers_keep_the_pause_short() {
        let mut p = MarkerPacing::new();
        let t = Instant::now();
        // No marker window at all, but one answer in ten is slow for other reasons.
        for i in 0..2000 {
            let took = if i % 10 == 0 { ms(30) } else { ms(1) };
            transaction(&mut p, t + ms(100 * i), Duration::ZERO, took);
        }
        assert!(p.pause() < ms(3), "pause {:?}", p.pause());
    }

    #[test]
    fn a_slow_broker_is_not_mistaken_for_a_hold() {
        let mut p = MarkerPacing::new();
        let t = Instant::now();
        // Produce answers usually take 30 ms here: 40 ms is ordinary, not a hold.
        for i in 0..20 {
            transaction(&mut p, t + ms(100 * i), ms(50), ms(30));
        }
        transaction(&mut p, t + ms(5000), Duration::ZERO, ms(40));
        assert_eq!(p.pause(), Duration::ZERO);
        transaction(&mut p, t + ms(6000), Duration::ZERO, ms(120));
        assert_eq!(p.pause(), STEP);
    }

    #[test]
    fn an_answer_to_another_request_teaches_nothing_about_the_first() {
        let mut p = MarkerPacing::new();
        let t = Instant::now();
        p.on_transaction_ended(t);
        assert!(p.on_produce_sent(1, t));
        // Another request's prompt answer neither counts as the first one's nor ends it.
        p.on_produce_answered(2, t, t + ms(1));
        assert_eq!(p.pause(), Duration::ZERO);
        p.on_produce_answered(1, t, t + ms(30));
        assert_eq!(p.pause(), STEP);
    }
}
