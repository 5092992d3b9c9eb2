//! What the last publish computed, kept for the next one: the host records and reports, and
//! per origin a row of slots, one per candidate target, holding what evaluating the pair gave
//! and the generations it was made from.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use crate::engine::judge::analysis::PairIndex;
use crate::engine::record::HostRecord;
use crate::engine::snapshot::{GroupReport, HostReport, PairReport, Verdict};

use super::samples::no_samples;

/// What the last publish computed, reused by the next one where its inputs did not change.
/// Indexed like `Store::hosts`.
#[derive(Default)]
pub(super) struct Cache {
    /// Everything is rebuilt at the next publish (a reload changed the indices).
    pub(super) stale: bool,
    /// Each host's samples shaped as a `check` record, and the host generation it shows.
    pub(super) records: Vec<HostRecord>,
    pub(super) record_gens: Vec<u64>,
    pub(super) hosts: Vec<Arc<HostReport>>,
    /// The view in which each host report was made, and until when (unix s) it holds.
    pub(super) host_seqs: Vec<u64>,
    pub(super) host_valid_until: Vec<i64>,
    pub(super) index: Option<PairIndex>,
    /// Per origin: its candidate targets (ascending, itself excluded) and what each pair gave.
    pub(super) rows: Vec<Vec<Slot>>,
    /// The origin's generation the row's linked targets were found at.
    pub(super) row_gens: Vec<u64>,
    pub(super) groups: Vec<GroupReport>,
    /// Listed pairs evaluated since events were last recorded.
    pub(super) unchecked: HashSet<(usize, usize)>,
}

pub(super) struct Slot {
    pub(super) target: usize,
    /// Generations of origin and target the evaluation used.
    pub(super) origin_gen: u64,
    pub(super) target_gen: u64,
    /// The pair's coalesced samples changed (or it was never evaluated).
    pub(super) dirty: bool,
    pub(super) eval: SlotEval,
    /// The view in which the report was made.
    pub(super) seq: u64,
    /// (when, got 421) of the pair's answered coalesced requests, for its sparkline.
    pub(super) samples: Arc<[(Instant, bool)]>,
}

pub(super) enum SlotEval {
    Skip,
    CertOnly,
    Listed {
        report: Arc<PairReport>,
        verdict: Verdict,
        link: bool,
    },
}

impl Cache {
    /// A cache that the next publish rebuilds whole.
    pub(super) fn stale() -> Cache {
        Cache {
            stale: true,
            ..Cache::default()
        }
    }
}

impl SlotEval {
    /// (listed, link, problem): what groups and the layout depend on.
    pub(super) fn shape(&self) -> (bool, bool, bool) {
        match self {
            SlotEval::Listed { verdict, link, .. } => (true, *link, verdict.is_problem()),
            _ => (false, false, false),
        }
    }
}

impl Slot {
    pub(super) fn new(target: usize) -> Slot {
        Slot {
            target,
            origin_gen: 0,
            target_gen: 0,
            dirty: true,
            eval: SlotEval::Skip,
            seq: 0,
            samples: no_samples(),
        }
    }
}
