//! Stale marking: is a vantage answering, and since when? Pure, the clock given.

use std::time::{Duration, Instant};

use crate::engine::snapshot::Health;

/// What a fetcher knows of its requests so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempts {
    /// When it first asked.
    pub started: Instant,
    /// Its last answer, when there was one.
    pub last_ok: Option<Instant>,
    /// Why the last request failed (None: it answered, or nothing finished yet).
    pub error: Option<String>,
    /// Requests that failed in a row.
    pub failures: u32,
}

impl Attempts {
    pub fn new(started: Instant) -> Attempts {
        Attempts {
            started,
            last_ok: None,
            error: None,
            failures: 0,
        }
    }

    pub fn answered(&mut self, at: Instant) {
        self.last_ok = Some(at);
        self.error = None;
        self.failures = 0;
    }

    pub fn failed(&mut self, error: String) {
        self.error = Some(error);
        self.failures = self.failures.saturating_add(1);
    }
}

/// The health at `now`: stale when the last request failed, or when nothing was answered
/// within `stale_after` (of the last answer, or of the start).
pub fn health(a: &Attempts, now: Instant, stale_after: Duration) -> Health {
    let age = now.saturating_duration_since(a.last_ok.unwrap_or(a.started));
    Health {
        age,
        answered: a.last_ok.is_some(),
        error: a.error.clone(),
        stale: a.error.is_some() || age > stale_after,
    }
}

/// The wait before the next request: the interval while answering; doubled per failure in a
/// row, up to `MAX_BACKOFF` (never below the interval).
pub fn next_delay(interval: Duration, failures: u32) -> Duration {
    let doubled = interval.saturating_mul(1u32 << failures.min(16));
    doubled.min(MAX_BACKOFF.max(interval))
}

/// Longest wait between two requests to a vantage that does not answer.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vantage_goes_stale_when_it_fails_or_falls_silent_and_returns_when_it_answers() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let bound = s(6);
        let mut a = Attempts::new(t0);
        // Waiting for the first answer: not stale within the bound, stale past it.
        let h = health(&a, t0 + s(2), bound);
        assert_eq!((h.answered, h.stale, h.age), (false, false, s(2)));
        assert!(health(&a, t0 + s(7), bound).stale);
        a.answered(t0 + s(3));
        let h = health(&a, t0 + s(5), bound);
        assert_eq!((h.answered, h.stale, h.age, h.error), (true, false, s(2), None));
        // A failure marks it at once, its age counted from the last answer.
        a.failed("connection refused".into());
        let h = health(&a, t0 + s(37), bound);
        assert_eq!((h.stale, h.age), (true, s(34)));
        assert_eq!(h.error.as_deref(), Some("connection refused"));
        // Silent (no error, but no answer within the bound) is stale too.
        a.answered(t0 + s(40));
        assert!(!health(&a, t0 + s(46), bound).stale);
        assert!(health(&a, t0 + s(47), bound).stale);
        assert_eq!(a.failures, 0);
    }

    #[test]
    fn back_off_doubles_up_to_the_bound() {
        let i = Duration::from_secs(2);
        let delays: Vec<u64> = (0..6).map(|f| next_delay(i, f).as_secs()).collect();
        assert_eq!(delays, vec![2, 4, 8, 15, 15, 15]);
        // An interval above the bound is kept.
        assert_eq!(next_delay(Duration::from_secs(30), 3), Duration::from_secs(30));
        assert_eq!(next_delay(i, u32::MAX), MAX_BACKOFF);
    }
}
