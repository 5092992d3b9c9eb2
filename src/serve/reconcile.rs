//! Monotonic counters from windowed counts.
//!
//! The engine's snapshot counts what happened within `--window` (and at most
//! `store::MAX_SAMPLES` samples per list): a pair's `probes` grows as probes land and shrinks
//! as old ones leave the window. Prometheus counters must never go down, so the exporter
//! keeps, per series key and counter, a model of the samples the window holds: when each
//! sample was first seen. At every update it first lets the samples it credited more than a
//! window ago leave (as the store prunes them), then compares with the windowed count: more
//! means new samples (added to the cumulative total), fewer means samples left earlier than
//! modelled (forgotten, the total stays).
//!
//! So a sample leaving the window in the same publish as a new one arrives is not lost: the
//! new one is credited when the model lets the old one go, a publish or so later. The total
//! never runs ahead of what the engine did; it lags when the engine drops samples that are
//! still in the window: a list at its sample cap (`--window` / `--interval` above
//! `store::MAX_SAMPLES`: then only about a cap's worth per window is credited; `serve` warns)
//! or a name removed and re-added by a reload within the window.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How much later than the store the model lets a sample leave the window. Samples are
/// credited when first seen (at most one publish, 250 ms, after the store stamped them), so
/// the model is already late; the slack only covers the exporter seeing a view a little after
/// it was published. Letting a sample go early would credit a phantom arrival; letting it go
/// much later than the next sample's prune would postpone credits.
pub const SLACK: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Default)]
struct Track {
    /// (when first seen, how many) of the samples believed to be in the window, oldest first.
    held: VecDeque<(Instant, u64)>,
    /// Sum of `held`.
    count: u64,
    /// Cumulative total, never decreasing.
    total: u64,
}

impl Track {
    fn update(&mut self, windowed: u64, now: Instant, cutoff: Option<Instant>) -> u64 {
        if let Some(cutoff) = cutoff {
            while let Some(&(at, n)) = self.held.front() {
                if at >= cutoff {
                    break;
                }
                self.held.pop_front();
                self.count -= n;
            }
        }
        if windowed > self.count {
            let new = windowed - self.count;
            self.held.push_back((now, new));
            self.count = windowed;
            self.total += new;
            return new;
        }
        // Samples left before the model expected (or were dropped): forget the oldest.
        let mut gone = self.count - windowed;
        while gone > 0 {
            let Some(front) = self.held.front_mut() else {
                break;
            };
            let n = front.1.min(gone);
            front.1 -= n;
            gone -= n;
            self.count -= n;
            if front.1 == 0 {
                self.held.pop_front();
            }
        }
        0
    }
}

#[derive(Debug, Clone)]
struct Entry<const N: usize> {
    tracks: [Track; N],
    /// When the key was last present.
    seen: Instant,
    /// The windowed counts of the last update.
    last: [u64; N],
    /// The key is in the caller's current view (see `update_present`): alive whatever `seen`.
    present: bool,
    /// The full pass that last saw the key present.
    pass: u64,
    /// Earliest first-seen time among the held samples (scheduled in `due`).
    due: Option<Instant>,
}

impl<const N: usize> Entry<N> {
    fn next_due(&self) -> Option<Instant> {
        self.tracks
            .iter()
            .filter_map(|t| t.held.front().map(|h| h.0))
            .min()
    }
}

/// Cumulative totals for `N` counters per key, fed with windowed counts.
///
/// A caller may feed every present key at every update and call `forget_stale` (keys absent
/// for long are forgotten), or, to work in proportion to what changed, feed only the changed
/// keys of a view whose key set did not change and call `refresh` for the others: a key's
/// model changes without new counts only when one of its held samples leaves the window, and
/// `refresh` replays exactly those keys with their last counts. The key set is established by
/// a full pass (`begin_pass`, `update` of every present key, `end_pass`).
#[derive(Debug, Clone)]
pub struct Reconciler<K: Ord, const N: usize> {
    window: Duration,
    /// Keys absent for longer than this are forgotten (their series are gone anyway).
    forget_after: Duration,
    entries: HashMap<K, Entry<N>>,
    /// (when the held samples of a key may start leaving the model, key), soonest first;
    /// entries whose time no longer matches the key's `due` are stale and skipped.
    due: BinaryHeap<Reverse<(Instant, K)>>,
    /// The last `forget_stale` or `end_pass` time: keys absent since before it by more than
    /// `forget_after` are forgotten, whether or not they were removed yet.
    last_pass: Option<Instant>,
    /// The current full pass (0: presence is not tracked).
    pass: u64,
}

impl<K: Eq + Hash + Clone + Ord, const N: usize> Reconciler<K, N> {
    pub fn new(window: Duration) -> Self {
        Reconciler {
            window,
            forget_after: (window * 2).max(Duration::from_secs(15 * 60)),
            entries: HashMap::new(),
            due: BinaryHeap::new(),
            last_pass: None,
            pass: 0,
        }
    }

    /// Is this entry forgotten (absent for longer than `forget_after` at the last pass)?
    fn forgotten(&self, e: &Entry<N>) -> bool {
        !e.present
            && self
                .last_pass
                .is_some_and(|p| p.saturating_duration_since(e.seen) > self.forget_after)
    }

    /// Fold in the windowed counts of `key` seen at `now`; returns what was added to the
    /// totals (the samples that arrived since the last update, as far as can be told).
    pub fn update(&mut self, key: &K, counts: [u64; N], now: Instant) -> [u64; N] {
        let cutoff = now.checked_sub(self.window + SLACK);
        let forgotten = self.entries.get(key).is_some_and(|e| self.forgotten(e));
        if forgotten {
            self.entries.remove(key);
        }
        // A key that never counted anything has nothing to model: an entry made now would
        // hold zeros (a big list has a million pairs waiting for their first probe).
        if counts == [0; N] && !self.entries.contains_key(key) {
            return [0; N];
        }
        let pass = self.pass;
        let entry = self.entries.entry(key.clone()).or_insert_with(|| Entry {
            tracks: std::array::from_fn(|_| Track::default()),
            seen: now,
            last: [0; N],
            present: false,
            pass: 0,
            due: None,
        });
        entry.seen = now;
        entry.last = counts;
        if pass > 0 {
            entry.present = true;
            entry.pass = pass;
        }
        let mut delta = [0; N];
        for (i, track) in entry.tracks.iter_mut().enumerate() {
            delta[i] = track.update(counts[i], now, cutoff);
        }
        let due = entry.next_due();
        if due != entry.due {
            entry.due = due;
            if let Some(at) = due {
                self.due.push(Reverse((at, key.clone())));
                self.compact_due();
            }
        }
        delta
    }

    /// Keep the prune schedule in proportion to the keys: every change of a key's earliest
    /// sample schedules it again and leaves the old entry stale until `refresh` pops it, and
    /// full passes call no `refresh` (after a fault every view can be one, for minutes): with
    /// stale entries past twice the keys, the schedule is made again from the keys' current
    /// times (amortised: at least as many pushes as keys come between two rebuilds).
    fn compact_due(&mut self) {
        if self.due.len() <= 2 * self.entries.len() + 64 {
            return;
        }
        self.due = self
            .entries
            .iter()
            .filter_map(|(k, e)| e.due.map(|at| Reverse((at, k.clone()))))
            .collect();
    }

    /// Replay the present keys whose held samples leave the model by `now` with their last
    /// counts (exactly what an `update` with unchanged counts would do); returns the keys
    /// that got credits and the credits.
    pub fn refresh(&mut self, now: Instant) -> Vec<(K, [u64; N])> {
        let mut out = Vec::new();
        let Some(cutoff) = now.checked_sub(self.window + SLACK) else {
            return out;
        };
        while self.due.peek().is_some_and(|Reverse((at, _))| *at < cutoff) {
            let Some(Reverse((at, key))) = self.due.pop() else {
                break;
            };
            let Some(e) = self.entries.get(&key) else { continue };
            if e.due != Some(at) || !e.present {
                continue;
            }
            let last = e.last;
            let delta = self.update(&key, last, now);
            if delta.iter().any(|&d| d > 0) {
                out.push((key, delta));
            }
        }
        out
    }

    /// Start a full pass: every present key is updated before `end_pass`.
    pub fn begin_pass(&mut self) {
        self.pass += 1;
    }

    /// End a full pass made at `now`: keys present before and not updated in it left the view
    /// after the previous pass (`previous`, when they were last seen present).
    pub fn end_pass(&mut self, previous: Option<Instant>, now: Instant) {
        self.end_pass_emptied(previous, now, |_| false);
    }

    /// `end_pass`, where the keys that left and that `emptied` names have no samples in the
    /// window any more (the caller knows they are still listed, with counts of zero): their
    /// model lets their samples go at once, as an update with zero counts would, and they are
    /// forgotten `forget_after` from now unless they come back.
    pub fn end_pass_emptied(
        &mut self,
        previous: Option<Instant>,
        now: Instant,
        emptied: impl Fn(&K) -> bool,
    ) {
        let pass = self.pass;
        let cutoff = now.checked_sub(self.window + SLACK);
        for (key, e) in self.entries.iter_mut() {
            if e.present && e.pass != pass {
                e.present = false;
                if emptied(key) {
                    for track in e.tracks.iter_mut() {
                        track.update(0, now, cutoff);
                    }
                    e.last = [0; N];
                    e.seen = now;
                    e.due = None;
                } else if let Some(p) = previous {
                    e.seen = p;
                }
            }
        }
        self.forget_stale(now);
    }

    /// Note an incremental pass at `now` (for forgetting keys that are absent).
    pub fn note_pass(&mut self, now: Instant) {
        self.last_pass = Some(now);
    }

    /// The cumulative totals of `key` (zeros for an unknown or forgotten key).
    pub fn totals(&self, key: &K) -> [u64; N] {
        self.entries
            .get(key)
            .filter(|e| !self.forgotten(e))
            .map(|e| std::array::from_fn(|i| e.tracks[i].total))
            .unwrap_or([0; N])
    }

    /// Drop keys not seen for a long time, so memory follows the live list.
    pub fn forget_stale(&mut self, now: Instant) {
        let after = self.forget_after;
        self.last_pass = Some(now);
        self.entries
            .retain(|_, e| e.present || now.saturating_duration_since(e.seen) <= after);
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

    /// Fed by full passes only (every view a new layout, as for a while after a fault), with
    /// a sample arriving and one leaving at every update, the prune schedule stays bounded by
    /// the keys: the entries no refresh pops are dropped once they are stale.
    #[test]
    fn the_prune_schedule_stays_bounded_without_refreshes() {
        let t0 = Instant::now();
        let window = secs(60);
        let mut r: Reconciler<u32, 1> = Reconciler::new(window);
        let keys = 50u32;
        for step in 0..2_000u64 {
            let now = t0 + Duration::from_millis(step * 500);
            r.begin_pass();
            for k in 0..keys {
                // Windowed count: one new sample per update, the window holding 120.
                r.update(&k, [step.min(120) + 1], now);
            }
            r.end_pass(Some(now), now);
        }
        assert!(
            r.due.len() <= 2 * keys as usize + 64,
            "{} scheduled for {keys} keys",
            r.due.len()
        );
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
    fn keys_that_never_counted_take_no_entry() {
        let t0 = Instant::now();
        let mut r: Reconciler<&str, 2> = Reconciler::new(secs(60));
        r.begin_pass();
        assert_eq!(r.update(&"idle", [0, 0], t0), [0, 0]);
        assert_eq!(r.update(&"busy", [2, 0], t0), [2, 0]);
        r.end_pass(None, t0);
        assert_eq!(r.len(), 1);
        assert_eq!(r.totals(&"idle"), [0, 0]);
        // A counted key keeps its entry (and totals) when its count falls to zero.
        assert_eq!(r.update(&"busy", [0, 0], t0 + secs(1)), [0, 0]);
        assert_eq!(r.totals(&"busy"), [2, 0]);
        assert_eq!(r.len(), 1);
        // The idle key's first count is credited like any new key's.
        assert_eq!(r.update(&"idle", [1, 1], t0 + secs(2)), [1, 1]);
        assert_eq!(r.totals(&"idle"), [1, 1]);
    }

    #[test]
    fn a_key_emptied_lets_its_samples_go_at_once_and_is_forgotten_later() {
        let t0 = Instant::now();
        let mut r: Reconciler<&str, 1> = Reconciler::new(secs(60));
        r.begin_pass();
        r.update(&"p", [3], t0);
        r.update(&"q", [3], t0);
        r.end_pass(None, t0);
        // Both leave the view; p is still listed without samples, q is gone.
        r.begin_pass();
        r.end_pass_emptied(Some(t0), t0 + secs(10), |k| *k == "p");
        assert_eq!((r.totals(&"p"), r.totals(&"q")), ([3], [3]));
        // Back 20 s later with one new sample each: p's is counted, q's old three are
        // believed still in the window (q may have kept them), so one is not new.
        r.begin_pass();
        assert_eq!(r.update(&"p", [1], t0 + secs(30)), [1]);
        assert_eq!(r.update(&"q", [1], t0 + secs(30)), [0]);
        r.end_pass(Some(t0 + secs(10)), t0 + secs(30));
        assert_eq!((r.totals(&"p"), r.totals(&"q")), ([4], [3]));
        // An emptied key that never comes back is forgotten after `forget_after`.
        r.begin_pass();
        r.update(&"q", [1], t0 + secs(40));
        r.end_pass_emptied(Some(t0 + secs(30)), t0 + secs(40), |_| true);
        assert_eq!(r.len(), 2);
        r.forget_stale(t0 + secs(40) + r.forget_after + secs(1));
        assert_eq!(r.len(), 1, "p is forgotten, q is present");
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

    /// A store like the engine's: samples stamped when applied, pruned to the window at
    /// every publish (every 250 ms), at most `cap` kept. Returns (arrivals, reconciled total,
    /// totals were monotonic).
    fn simulate(interval_ms: u64, window_s: u64, cap: usize, seconds: u64, seed: u64) -> (u64, u64, bool) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let t0 = Instant::now();
        let window = secs(window_s);
        let mut r: Reconciler<u8, 1> = Reconciler::new(window);
        let mut store: VecDeque<Instant> = VecDeque::new();
        // Arrivals: one per interval, at a random point of its first 80 %.
        let mut arrivals: Vec<Duration> = (0..seconds * 1000 / interval_ms)
            .map(|k| {
                Duration::from_millis(k * interval_ms)
                    + Duration::from_micros(rng.random_range(0..interval_ms * 800))
            })
            .collect();
        arrivals.sort();
        let mut next = 0;
        let mut last = 0;
        let mut monotonic = true;
        // Run on a quiet tail of a window and more so that every late credit lands.
        let end = Duration::from_secs(seconds + window_s + 3);
        let mut publish = Duration::ZERO;
        while publish < end {
            publish += Duration::from_millis(250);
            while next < arrivals.len() && arrivals[next] <= publish {
                if store.len() >= cap {
                    store.pop_front();
                }
                store.push_back(t0 + arrivals[next]);
                next += 1;
            }
            let now = t0 + publish;
            while store.front().is_some_and(|&a| a < now - window) {
                store.pop_front();
            }
            // The exporter sees the view a little after the publish.
            let seen = now + Duration::from_micros(rng.random_range(0..5_000));
            r.update(&0, [store.len() as u64], seen);
            let total = r.totals(&0)[0];
            monotonic &= total >= last;
            last = total;
        }
        (arrivals.len() as u64, last, monotonic)
    }

    #[test]
    fn a_steady_window_counts_every_arrival() {
        // Probing every second: arrivals and prunes often fall in the same publish.
        for seed in 0..5 {
            let (arrived, total, monotonic) = simulate(1000, 10, 512, 120, seed);
            assert!(monotonic);
            assert_eq!(total, arrived, "seed {seed}");
        }
        // Faster than the publish grid resolves: a few credits may be lost, never invented.
        for seed in 0..3 {
            let (arrived, total, monotonic) = simulate(300, 20, 512, 90, seed);
            assert!(monotonic);
            assert!(
                total <= arrived && total * 100 >= arrived * 98,
                "{total} of {arrived}"
            );
        }
    }

    #[test]
    fn a_capped_list_lags_but_never_runs_ahead() {
        // 100 samples would fit the window; the store keeps 20.
        let (arrived, total, monotonic) = simulate(100, 10, 20, 60, 3);
        assert!(monotonic);
        assert!(total <= arrived, "{total} > {arrived}");
        assert!(total >= 20 * 6, "only {total} of {arrived}");
    }
}
