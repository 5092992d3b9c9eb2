//! What the last publish computed, kept for the next one: the host records and reports, and
//! per origin a row of slots, one per candidate target, holding what evaluating the pair gave
//! and when it was evaluated.
//!
//! A big list has about a million candidate pairs, nearly all waiting for their first probe,
//! so a slot is small (24 bytes): what every pair needs is inline, the report and sparkline of
//! a listed pair are boxed, and a pair waiting for its first probe keeps no report at all when
//! the views list such pairs by index (`Store::list_pending_by_index`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use crate::engine::judge::analysis::PairIndex;
use crate::engine::record::HostRecord;
use crate::engine::snapshot::{GroupReport, HostReport, PairReport, Verdict};

/// What the last publish computed, reused by the next one where its inputs did not change.
/// Indexed like `Store::hosts`.
#[derive(Default)]
pub(super) struct Cache {
    /// Everything is rebuilt at the next publish (a reload changed the indices).
    pub(super) stale: bool,
    /// Each host's samples shaped as a `check` record, and the host generation it shows.
    /// Shared with the views that list pending pairs by index (they make those reports).
    pub(super) records: Vec<Arc<HostRecord>>,
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
    /// Per host: the `pair_gen` last seen, and the publish that saw it change (a pair
    /// evaluated before that publish is evaluated again).
    pub(super) pair_gens: Vec<u64>,
    pub(super) pair_changed: Vec<u64>,
    pub(super) groups: Vec<GroupReport>,
    /// Listed pairs evaluated since events were last recorded.
    pub(super) unchecked: HashSet<(usize, usize)>,
}

/// What evaluating a pair gave, as groups and the layout see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Not a pair.
    Skip,
    /// Linked by the certificate only: counted, not listed.
    CertOnly,
    /// Listed as `pending` without samples, by index (no report kept: it is made when read).
    Pending,
    /// Listed with its report (`Slot::listed`).
    Listed,
}

pub(super) struct Slot {
    /// The report and sparkline of a `Kind::Listed` pair.
    pub(super) listed: Option<Box<Listed>>,
    /// The publish that evaluated the pair (0: never).
    pub(super) evaluated: u64,
    pub(super) target: u32,
    pub(super) kind: Kind,
    /// Some client would coalesce (an edge of the groups).
    pub(super) link: bool,
    /// The pair's coalesced samples changed (or it was never evaluated).
    pub(super) dirty: bool,
}

pub(super) struct Listed {
    pub(super) report: Arc<PairReport>,
    pub(super) verdict: Verdict,
    /// The view in which the report was made.
    pub(super) seq: u64,
    /// (when, refused) of the pair's answered coalesced requests, for its sparkline.
    pub(super) samples: Arc<[(Instant, bool)]>,
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

impl Slot {
    pub(super) fn new(target: usize) -> Slot {
        Slot {
            listed: None,
            evaluated: 0,
            target: target as u32,
            kind: Kind::Skip,
            link: false,
            dirty: true,
        }
    }

    pub(super) fn target(&self) -> usize {
        self.target as usize
    }

    /// The verdict of a listed pair.
    pub(super) fn verdict(&self) -> Option<Verdict> {
        match self.kind {
            Kind::Pending => Some(Verdict::Pending),
            Kind::Listed => self.listed.as_ref().map(|l| l.verdict),
            Kind::Skip | Kind::CertOnly => None,
        }
    }

    /// (listed, link, problem): what groups and the layout depend on.
    pub(super) fn shape(&self) -> (bool, bool, bool) {
        match self.verdict() {
            Some(v) => (true, self.link, v.is_problem()),
            None => (false, false, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_small() {
        // A million of them at 10,000 names in groups of 100.
        assert!(
            std::mem::size_of::<Slot>() <= 24,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }
}
