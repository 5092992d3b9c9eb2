//! The live engine's views: the contract snapshot over the window plus what the dashboard and
//! the exporter need around it (sparklines, verdict-change events, the engine's own state,
//! and what changed since earlier views).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Event, EventTotals, PendingPairs, Snapshot, Timestamp, Vantages};

/// What the live dashboard draws: the contract snapshot (rates over the window) plus the
/// live state around it. Published as `Arc<LiveView>` on a `tokio::sync::watch` channel; the
/// UI never touches engine state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveView {
    pub report: Snapshot,
    /// Per pair, aligned with `report.pairs`: the refusal rate (421s, resets) per time bucket over the window,
    /// oldest first (see `History::points`).
    pub histories: Vec<History>,
    /// Verdict changes and host events (certificates, addresses, DNS trouble), oldest first,
    /// bounded (shared between views while unchanged).
    pub events: Arc<Vec<Event>>,
    /// Events recorded since the engine started, per kind (the log above keeps the last
    /// ones only).
    pub event_totals: EventTotals,
    pub status: EngineStatus,
    /// What changed since earlier views, for readers that fold views in incrementally (the
    /// exporter). All zero (and empty) in views not made by the engine's store.
    pub changes: ViewChanges,
    /// The pending pairs listed by index, not in `report.pairs` (views for `serve`; empty in
    /// the dashboard's). `listed_pairs` lists both in the contract's order.
    pub pending: PendingPairs,
    /// The vantage points of a merged view (`watch --from URL`); None in a single engine's.
    pub vantages: Option<Vantages>,
}

/// Publish sequence numbers of a view and of its parts: a reader that has folded in the view
/// numbered `n` needs to look again only at the parts changed after `n`, as long as the
/// layout did not change after `n` either.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewChanges {
    /// This view's number (from 1; 0: unknown, fold everything in).
    pub seq: u64,
    /// The last view whose pair or host list (members or order) differed from its predecessor.
    pub layout: u64,
    /// Per pair of `report.pairs`: the view in which this report last changed.
    pub pairs: Vec<u64>,
    /// Per host of `report.hosts`: the view in which this report last changed.
    pub hosts: Vec<u64>,
}

/// Buckets of a sparkline over the window.
pub const HISTORY_BUCKETS: usize = 30;

/// A pair's sparkline: the refusal rate (421s, resets) per time bucket over the window, oldest first; None
/// where no probe landed in the bucket. The live engine hands out the samples and computes
/// the points only when asked (the dashboard draws the visible rows only).
#[derive(Debug, Clone)]
pub struct History(HistoryData);

#[derive(Debug, Clone)]
enum HistoryData {
    Points(Arc<[Option<f32>]>),
    Samples {
        /// (when, got 421) of the answered coalesced requests of the pair.
        samples: Arc<[(Instant, bool)]>,
        /// (now, bucket width): the same for every pair of a view, so shared.
        clock: Arc<(Instant, Duration)>,
    },
}

impl History {
    /// Answered samples bucketed by age at `clock.0`, `clock.1` wide, `HISTORY_BUCKETS` points
    /// (see `History::clock`).
    pub fn from_samples(samples: Arc<[(Instant, bool)]>, clock: &Arc<(Instant, Duration)>) -> History {
        History(HistoryData::Samples {
            samples,
            clock: clock.clone(),
        })
    }

    /// The (now, bucket width) shared by the histories of one view.
    pub fn clock(now: Instant, bucket: Duration) -> Arc<(Instant, Duration)> {
        Arc::new((now, bucket.max(Duration::from_nanos(1))))
    }

    pub fn points(&self) -> Vec<Option<f32>> {
        match &self.0 {
            HistoryData::Points(p) => p.to_vec(),
            HistoryData::Samples { samples, clock } => {
                let (now, bucket) = &**clock;
                let mut answered = [0u32; HISTORY_BUCKETS];
                let mut refused = [0u32; HISTORY_BUCKETS];
                for (at, was_refused) in samples.iter() {
                    let age = now.saturating_duration_since(*at);
                    let from_end = (age.as_nanos() / bucket.as_nanos()) as usize;
                    if from_end >= HISTORY_BUCKETS {
                        continue;
                    }
                    let i = HISTORY_BUCKETS - 1 - from_end;
                    answered[i] += 1;
                    refused[i] += u32::from(*was_refused);
                }
                (0..HISTORY_BUCKETS)
                    .map(|i| (answered[i] > 0).then(|| refused[i] as f32 / answered[i] as f32))
                    .collect()
            }
        }
    }
}

impl Default for History {
    fn default() -> Self {
        History(HistoryData::Points(Arc::from(Vec::new())))
    }
}

impl From<Vec<Option<f32>>> for History {
    fn from(points: Vec<Option<f32>>) -> Self {
        History(HistoryData::Points(Arc::from(points)))
    }
}

/// Histories are equal when they draw the same points.
impl PartialEq for History {
    fn eq(&self, other: &Self) -> bool {
        self.points() == other.points()
    }
}

/// The engine's own state, for the header.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineStatus {
    /// The watch-file path (or "embedded lab").
    pub source: String,
    pub hosts: usize,
    /// Probe jobs finished / planned in the current cycle of `--interval`.
    pub cycle_done: usize,
    pub cycle_total: usize,
    /// Cycles completed since the start.
    pub cycles: u64,
    /// The last successful watch-file load.
    pub last_reload: Option<Timestamp>,
    /// Why the last reload failed (names file:line); the last good list stays in use.
    pub reload_error: Option<String>,
    pub paused: bool,
    pub interval_s: f64,
    pub window_s: f64,
    /// What the demo lab is doing right now, when running on it.
    pub lab_phase: Option<String>,
    /// `--max-rps` (0: no limit).
    #[serde(default)]
    pub max_rps: u32,
    /// Requests per second that probing every pair of the list every cycle would take; above
    /// `max_rps`, each cycle probes part of the pairs (see `summary.coverage`).
    #[serde(default)]
    pub full_rps: f64,
}
