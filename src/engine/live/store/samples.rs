//! The store's samples: timestamped queues per host address and per pair, bounded in count
//! (`MAX_SAMPLES`) and pruned to the window on a schedule (`Expiry`: the oldest sample of each
//! place, soonest first), so that pruning visits only the places that have some to drop.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::probe::cert::{CertError, CertSummary};
use crate::engine::probe::dns::DnsAnswer;
use crate::engine::probe::error::ProbeError;
use crate::engine::probe::tls::TlsInfo;
use crate::engine::record::{Coalesced, Outcome};
use crate::watchlist::Entry;

/// Samples kept per list at most, whatever the window.
pub const MAX_SAMPLES: usize = 512;

pub(super) type Timed<T> = VecDeque<(Instant, T)>;

pub(super) fn push<T>(q: &mut Timed<T>, at: Instant, item: T) {
    if q.len() >= MAX_SAMPLES {
        q.pop_front();
    }
    q.push_back((at, item));
}

/// Push an outcome, sharing its page sketch with a recent answer's when they are equal: a page
/// that does not change costs one sketch per queue, not one per sample.
pub(super) fn push_outcome(q: &mut Timed<Outcome>, at: Instant, mut item: Outcome) {
    share_page(q.iter().rev().take(4).map(|(_, o)| o), &mut item);
    push(q, at, item);
}

/// `push_outcome` for a coalesced request (its outcome and its connection's traits).
pub(super) fn push_coalesced(q: &mut Timed<Coalesced>, at: Instant, mut item: Coalesced) {
    share_page(q.iter().rev().take(4).map(|(_, c)| &c.outcome), &mut item.outcome);
    push(q, at, item);
}

/// Point `item`'s page sketch at an equal one among `recent`, if there is one.
fn share_page<'a>(recent: impl Iterator<Item = &'a Outcome>, item: &mut Outcome) {
    let Ok(answer) = item else { return };
    let Some(mine) = &answer.page else { return };
    let same = recent
        .filter_map(|o| o.as_ref().ok()?.page.as_ref())
        .find(|p| **p == *mine)
        .cloned();
    if let Some(same) = same {
        answer.page = Some(same);
    }
}

/// Drops the samples before `cutoff`; true when some were dropped.
pub(super) fn prune<T>(q: &mut Timed<T>, cutoff: Instant) -> bool {
    let before = q.len();
    while q.front().is_some_and(|(t, _)| *t < cutoff) {
        q.pop_front();
    }
    q.len() != before
}

/// The oldest sample time among `queues`.
pub(super) fn oldest<'a, T: 'a>(queues: impl IntoIterator<Item = &'a Timed<T>>) -> Option<Instant> {
    queues.into_iter().filter_map(|q| q.front().map(|x| x.0)).min()
}

/// Where samples live, for the prune schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Place {
    Host(usize),
    Pair(usize, usize),
}

/// Samples leave the window in time order: (the oldest sample of a place, the place),
/// soonest first. An entry is current while it matches the place's `due`.
pub(super) type Expiry = BinaryHeap<Reverse<(Instant, Place)>>;

/// A sample stamped `at` was added to `place`: make sure it is scheduled.
pub(super) fn schedule(expiry: &mut Expiry, due: &mut Option<Instant>, at: Instant, place: Place) {
    if due.is_none_or(|d| at < d) {
        *due = Some(at);
        expiry.push(Reverse((at, place)));
    }
}

pub(super) fn recent<T: Clone>(q: &Timed<T>) -> Vec<T> {
    q.iter().map(|(_, x)| x.clone()).collect()
}

#[derive(Debug, Default)]
pub(super) struct LiveEndpoint {
    /// The latest successful handshake (certificates get renewed: the latest is the truth).
    pub(super) tls: Option<TlsInfo>,
    pub(super) cert: Option<Result<CertSummary, CertError>>,
    pub(super) handshakes: Timed<Result<(Duration, Duration), ProbeError>>,
    pub(super) own: Timed<Coalesced>,
    pub(super) direct: Timed<Outcome>,
    pub(super) direct_http1: Timed<Outcome>,
}

#[derive(Debug)]
pub(super) struct LiveHost {
    pub(super) entry: Entry,
    /// `entry.key()`, shared by the records and reports naming the host.
    pub(super) key: Arc<str>,
    pub(super) path: String,
    pub(super) dns: DnsAnswer,
    /// When `dns` was received (None: never resolved).
    pub(super) dns_at: Option<Instant>,
    pub(super) endpoints: BTreeMap<IpAddr, Box<LiveEndpoint>>,
    /// The oldest sample time of the endpoints (scheduled in `Store::expiry`).
    pub(super) due: Option<Instant>,
    /// The store's change clock at the last change of anything the analysis reads of this
    /// host (samples, DNS answer).
    pub(super) gen: u64,
    /// The same, for what the pair analysis reads (samples, addresses): a DNS answer that
    /// only refreshes TTL and lookup time leaves the host's pairs alone (at 10,000 names,
    /// re-evaluating every pair at each TTL expiry cost a second of CPU a minute).
    pub(super) pair_gen: u64,
}

/// Coalesced requests of one ordered pair, per origin address.
#[derive(Debug, Default)]
pub(super) struct PairSamples {
    pub(super) queues: BTreeMap<IpAddr, Timed<Coalesced>>,
    /// The oldest sample time (scheduled in `Store::expiry`).
    pub(super) due: Option<Instant>,
}

impl LiveEndpoint {
    pub(super) fn queues_oldest(&self) -> Option<Instant> {
        [
            oldest([&self.handshakes]),
            oldest([&self.own]),
            oldest([&self.direct, &self.direct_http1]),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// The samples of a pair never coalesced: one shared empty list (most pairs of a big list
/// have none, and an `Arc` of nothing still costs an allocation each).
pub(super) fn no_samples() -> Arc<[(Instant, bool)]> {
    static EMPTY: std::sync::LazyLock<Arc<[(Instant, bool)]>> =
        std::sync::LazyLock::new(|| Arc::from(Vec::new()));
    EMPTY.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::probe::page::PageSketch;
    use crate::testing::synth::answer;

    #[test]
    fn equal_pages_share_one_sketch() {
        let mut q: Timed<Outcome> = VecDeque::new();
        let at = Instant::now();
        push_outcome(&mut q, at, answer(200, "the same page"));
        push_outcome(&mut q, at, answer(200, "the same page"));
        push_outcome(&mut q, at, answer(200, "another page"));
        let page = |i: usize| -> Arc<PageSketch> { q[i].1.as_ref().unwrap().page.clone().unwrap() };
        assert!(Arc::ptr_eq(&page(0), &page(1)));
        assert!(!Arc::ptr_eq(&page(1), &page(2)));
        assert_eq!(*page(2), PageSketch::of(b"another page"));
    }
}
