//! The pairs a live view lists by index instead of by report: pairs waiting for their first
//! probe within the window (verdict `pending`, no samples). A big list has nearly a million
//! of them (10,000 names in groups of 100, at a budget that reaches a few thousand pairs per
//! window), each report a few hundred bytes that says what every such pair says; they are
//! made where they are read (`LiveView::listed_pairs`, `LiveView::listed_report`) from what
//! the engine judged them on, by the engine's `PairSource`.
//!
//! Views for `serve` list them this way; the dashboard's views list every pair in
//! `report.pairs` (then `LiveView::pending` is empty).

use std::fmt;
use std::sync::Arc;

use super::{LiveView, PairReport, Verdict};

/// Makes the report of a pair a view lists by index (the engine's store provides it, with
/// the host records the view was judged from).
pub trait PairSource: Send + Sync {
    /// The report of `origin → target` (indices into the view's `report.hosts`).
    fn report(&self, origin: u32, target: u32) -> Option<PairReport>;

    /// The index of the host "host:port" in the view's `report.hosts`.
    fn host_index(&self, key: &str) -> Option<u32>;
}

/// Pending pairs of one origin, in contract order: targets `first .. first + len`, or with
/// `len == 0` the pending pair `report.pairs[first]` (one with samples, listed by report),
/// so that the listing keeps the order of the pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingRun {
    pub origin: u32,
    pub first: u32,
    pub len: u32,
}

/// The pending pairs of a view listed by index (see the module doc).
#[derive(Clone, Default)]
pub struct PendingPairs {
    runs: Arc<[PendingRun]>,
    /// Pairs listed by index (the runs' lengths summed).
    len: usize,
    source: Option<Arc<dyn PairSource>>,
}

impl PendingPairs {
    pub fn new(runs: Vec<PendingRun>, source: Arc<dyn PairSource>) -> PendingPairs {
        PendingPairs {
            len: runs.iter().map(|r| r.len as usize).sum(),
            runs: Arc::from(runs),
            source: Some(source),
        }
    }

    /// Pairs listed by index.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn runs(&self) -> &[PendingRun] {
        &self.runs
    }

    /// The report of `origin → target`, made now.
    pub fn report(&self, origin: u32, target: u32) -> Option<PairReport> {
        self.source.as_ref()?.report(origin, target)
    }

    /// Is `origin → target` ("host:port" keys) listed by index?
    pub fn lists(&self, origin: &str, target: &str) -> bool {
        let Some(source) = self.source.as_ref() else {
            return false;
        };
        let (Some(o), Some(t)) = (source.host_index(origin), source.host_index(target)) else {
            return false;
        };
        let from = self.runs.partition_point(|r| r.origin < o);
        self.runs[from..]
            .iter()
            .take_while(|r| r.origin == o)
            .any(|r| r.first <= t && t - r.first < r.len)
    }
}

impl fmt::Debug for PendingPairs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingPairs")
            .field("len", &self.len)
            .field("runs", &self.runs.len())
            .finish()
    }
}

/// Equal when they list the same pairs with the same reports.
impl PartialEq for PendingPairs {
    fn eq(&self, other: &Self) -> bool {
        self.runs == other.runs
            && self.runs.iter().filter(|r| r.len > 0).all(|r| {
                (r.first..r.first + r.len).all(|t| self.report(r.origin, t) == other.report(r.origin, t))
            })
    }
}

/// A pair of a view's listing: a report of `report.pairs`, or a pair listed by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListedPair {
    /// `report.pairs[i]`.
    Report(usize),
    /// (origin, target): indices into `report.hosts`.
    Pending(u32, u32),
}

/// `LiveView::listed_pairs`.
pub struct ListedPairs<'a> {
    runs: &'a [PendingRun],
    /// The next of `report.pairs` to list: up to `split` before the runs; after them from
    /// `after` (past the pending pairs listed by report, which the runs named) up to `end`.
    next: usize,
    split: usize,
    after: usize,
    end: usize,
    past_runs: bool,
    /// Position in `runs` and in the current run.
    run: usize,
    offset: u32,
}

impl Iterator for ListedPairs<'_> {
    type Item = ListedPair;

    fn next(&mut self) -> Option<ListedPair> {
        if !self.past_runs {
            if self.next < self.split {
                self.next += 1;
                return Some(ListedPair::Report(self.next - 1));
            }
            while let Some(r) = self.runs.get(self.run) {
                if r.len == 0 {
                    self.run += 1;
                    return Some(ListedPair::Report(r.first as usize));
                }
                if self.offset < r.len {
                    self.offset += 1;
                    return Some(ListedPair::Pending(r.origin, r.first + self.offset - 1));
                }
                self.run += 1;
                self.offset = 0;
            }
            self.past_runs = true;
            self.next = self.after;
        }
        if self.next < self.end {
            self.next += 1;
            return Some(ListedPair::Report(self.next - 1));
        }
        None
    }
}

impl LiveView {
    /// Pairs listed: `report.pairs` and the pairs listed by index (`summary.pairs`).
    pub fn listed_len(&self) -> usize {
        self.report.pairs.len() + self.pending.len()
    }

    /// Every listed pair in the contract's order (the order of `report.pairs` of a view that
    /// lists every pair by report): the pending pairs listed by index fall in their place.
    pub fn listed_pairs(&self) -> ListedPairs<'_> {
        let pairs = &self.report.pairs;
        let runs = &self.pending.runs;
        let split = if runs.is_empty() {
            pairs.len()
        } else {
            pairs.partition_point(|p| p.verdict < Verdict::Pending)
        };
        ListedPairs {
            runs,
            next: 0,
            split,
            after: split + runs.iter().filter(|r| r.len == 0).count(),
            end: pairs.len(),
            past_runs: false,
            run: 0,
            offset: 0,
        }
    }

    /// The report of a listed pair (made now when it is listed by index).
    pub fn listed_report(&self, pair: ListedPair) -> Option<Arc<PairReport>> {
        match pair {
            ListedPair::Report(i) => self.report.pairs.get(i).cloned(),
            ListedPair::Pending(o, t) => self.pending.report(o, t).map(Arc::new),
        }
    }
}
