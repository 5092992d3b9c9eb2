//! Monotonic counters from windowed counts.
//!
//! The engine's snapshot counts what happened within `--window` (and at most
//! `store::MAX_SAMPLES` samples per list): a pair's `probes` grows as probes land and shrinks
//! as old ones leave the window. Prometheus counters must never go down, so the exporter
//! keeps, per series key, the last windowed count it saw and a cumulative total, and adds
//! only growth: `total += max(0, now - last)`. A shrinking window lowers `last` (so that the
//! next growth counts again) but never the total.
//!
//! What this cannot see: a sample leaving the window in the same publish as a new one arrives
//! (the count stays equal), and growth while a list sits at its sample cap. Both make the
//! counter lag, never run ahead. A key absent for longer than the window had all its samples
//! pruned, so it starts again from a zero baseline when it comes back.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Entry<const N: usize> {
    /// Windowed counts at the last update.
    last: [u64; N],
    /// Cumulative totals, never decreasing.
    total: [u64; N],
    /// When the key was last present.
    seen: Instant,
}

/// Cumulative totals for `N` counters per key, fed with windowed counts.
#[derive(Debug, Clone)]
pub struct Reconciler<K, const N: usize> {
    window: Duration,
    /// Keys absent for longer than this are forgotten (their series are gone anyway).
    forget_after: Duration,
    entries: HashMap<K, Entry<N>>,
}

impl<K: Eq + Hash + Clone, const N: usize> Reconciler<K, N> {
    pub fn new(window: Duration) -> Self {
        Reconciler {
            window,
            forget_after: (window * 2).max(Duration::from_secs(15 * 60)),
            entries: HashMap::new(),
        }
    }

    /// Fold in the windowed counts of `key` seen at `now`; returns the growth added to the
    /// totals (what arrived since the last update, as far as can be told).
    pub fn update(&mut self, key: &K, counts: [u64; N], now: Instant) -> [u64; N] {
        let window = self.window;
        let entry = self.entries.entry(key.clone()).or_insert(Entry {
            last: [0; N],
            total: [0; N],
            seen: now,
        });
        if now.saturating_duration_since(entry.seen) > window {
            // Every sample counted before has left the window since.
            entry.last = [0; N];
        }
        let mut delta = [0; N];
        for i in 0..N {
            delta[i] = counts[i].saturating_sub(entry.last[i]);
            entry.total[i] += delta[i];
        }
        entry.last = counts;
        entry.seen = now;
        delta
    }

    /// The cumulative totals of `key` (zeros for an unknown key).
    pub fn totals(&self, key: &K) -> [u64; N] {
        self.entries.get(key).map(|e| e.total).unwrap_or([0; N])
    }

    /// Drop keys not seen for a long time, so memory follows the live list.
    pub fn forget_stale(&mut self, now: Instant) {
        let after = self.forget_after;
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.seen) <= after);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn growth_is_added_and_shrinking_never_decreases() {
        let t0 = Instant::now();
        let mut r: Reconciler<&str, 2> = Reconciler::new(secs(60));
        assert_eq!(r.update(&"a", [3, 1], t0), [3, 1]);
        assert_eq!(r.totals(&"a"), [3, 1]);
        // The window drops two old samples: totals stay.
        assert_eq!(r.update(&"a", [1, 0], t0 + secs(1)), [0, 0]);
        assert_eq!(r.totals(&"a"), [3, 1]);
        // New samples after the shrink count from the lower baseline.
        assert_eq!(r.update(&"a", [4, 2], t0 + secs(2)), [3, 2]);
        assert_eq!(r.totals(&"a"), [6, 3]);
        // No change, no growth.
        assert_eq!(r.update(&"a", [4, 2], t0 + secs(3)), [0, 0]);
        assert_eq!(r.totals(&"a"), [6, 3]);
    }

    #[test]
    fn totals_are_monotonic_over_any_sequence() {
        let t0 = Instant::now();
        let mut r: Reconciler<u8, 1> = Reconciler::new(secs(30));
        let seq = [5u64, 2, 9, 9, 0, 0, 7, 512, 512, 3, 1, 100];
        let mut prev = 0;
        for (i, c) in seq.iter().enumerate() {
            r.update(&1, [*c], t0 + secs(i as u64));
            let t = r.totals(&1)[0];
            assert!(t >= prev, "total went down at step {i}");
            prev = t;
        }
        // 5 + (9-2) + 7 + (512-7) + (100-1)
        assert_eq!(prev, 5 + 7 + 7 + 505 + 99);
    }

    #[test]
    fn keys_are_independent() {
        let t0 = Instant::now();
        let mut r: Reconciler<String, 1> = Reconciler::new(secs(60));
        r.update(&"x".to_string(), [2], t0);
        r.update(&"y".to_string(), [5], t0);
        r.update(&"x".to_string(), [3], t0 + secs(1));
        assert_eq!(r.totals(&"x".to_string()), [3]);
        assert_eq!(r.totals(&"y".to_string()), [5]);
        assert_eq!(r.totals(&"z".to_string()), [0]);
    }

    #[test]
    fn a_key_back_within_the_window_is_not_counted_twice() {
        let t0 = Instant::now();
        let mut r: Reconciler<&str, 1> = Reconciler::new(secs(60));
        r.update(&"p", [4], t0);
        // Absent for 30 s (e.g. the pair left the list briefly), back with the same samples.
        assert_eq!(r.update(&"p", [4], t0 + secs(30)), [0]);
        assert_eq!(r.totals(&"p"), [4]);
    }

    #[test]
    fn a_key_back_after_the_window_counts_from_zero() {
        let t0 = Instant::now();
        let mut r: Reconciler<&str, 1> = Reconciler::new(secs(60));
        r.update(&"p", [4], t0);
        // Gone for longer than the window: all its old samples were pruned, these are new.
        assert_eq!(r.update(&"p", [2], t0 + secs(120)), [2]);
        assert_eq!(r.totals(&"p"), [6]);
    }

    #[test]
    fn stale_keys_are_forgotten() {
        let t0 = Instant::now();
        let mut r: Reconciler<&str, 1> = Reconciler::new(secs(60));
        r.update(&"old", [1], t0);
        r.update(&"new", [1], t0 + secs(3600));
        r.forget_stale(t0 + secs(3600));
        assert_eq!(r.len(), 1);
        assert_eq!(r.totals(&"old"), [0]);
        assert_eq!(r.totals(&"new"), [1]);
    }
}
