//! Deadlines from durations that users and brokers give. `Instant + Duration` panics when the
//! sum leaves the clock's range: `Duration::MAX` as a timeout ("no bound"), a broker granting a
//! session lifetime of `i64::MAX` ms. These saturate instead, at a point later than anything
//! that can matter and within what tokio's timer takes.

use std::time::Duration;

use tokio::time::Instant;

/// About 30 years, as tokio's own "far future".
pub(crate) const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `start + after`, saturating at about 30 years from `start`.
pub(crate) fn after(start: Instant, after: Duration) -> Instant {
    start + after.min(FAR)
}

/// `start + after` on the std clock (the IO-free state machines'), saturating likewise.
pub(crate) fn after_std(start: std::time::Instant, after: Duration) -> std::time::Instant {
    start + after.min(FAR)
}

/// `after` from now, saturating (see [`after`]).
pub(crate) fn from_now(after: Duration) -> Instant {
    self::after(Instant::now(), after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_saturate_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(after(now, Duration::MAX), now + FAR);
        assert_eq!(
            after(now, Duration::from_millis(i64::MAX as u64)),
            now + FAR
        );
        assert_eq!(
            after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert!(from_now(Duration::MAX) > now);
    }
}
