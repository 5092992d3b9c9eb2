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
use crate::engine::probe::page::PageSketch;
use crate::engine::probe::signals::ServerSignals;
use crate::engine::probe::tls::TlsInfo;
use crate::engine::record::{Coalesced, ConnId, ConnTraits, Outcome};
use crate::watchlist::Entry;

use super::intern::{Interner, MAX_INTERNED};

/// Samples kept per list at most, whatever the window.
pub const MAX_SAMPLES: usize = 512;

pub(super) type Timed<T> = VecDeque<(Instant, T)>;

pub(super) fn push<T>(q: &mut Timed<T>, at: Instant, item: T) {
    if q.len() >= MAX_SAMPLES {
        q.pop_front();
    }
    q.push_back((at, item));
}

/// A request's outcome as the store keeps it: the shared copy of what came back (see
/// `Shared::outcome`; its `elapsed` is zero) and the request's own timing.
#[derive(Debug, Clone)]
pub(super) struct Sample {
    outcome: Arc<Outcome>,
    /// The answer's `elapsed`, in microseconds (saturated).
    elapsed_us: u32,
}

impl Sample {
    /// The outcome as the probe returned it (for the judgement).
    pub(super) fn outcome(&self) -> Outcome {
        let mut o = (*self.outcome).clone();
        if let Ok(a) = &mut o {
            a.elapsed = Duration::from_micros(u64::from(self.elapsed_us));
        }
        o
    }

    /// The outcome without its timing (what the verdicts compare).
    pub(super) fn shared(&self) -> &Outcome {
        &self.outcome
    }
}

/// A coalesced request as the store keeps it: its sample and its connection's traits (shared).
#[derive(Debug, Clone)]
pub(super) struct CoalescedSample {
    pub(super) sample: Sample,
    conn: Option<Arc<ConnTraits>>,
    /// The connection it went on (answers on one connection are not compared as if apart).
    via: ConnId,
}

impl CoalescedSample {
    pub(super) fn coalesced(&self) -> Coalesced {
        Coalesced::on(self.sample.outcome(), self.conn.clone(), self.via)
    }
}

/// A handshake as the store keeps it: (connect, TLS) times in microseconds, or the shared
/// copy of its error.
pub(super) type Handshake = Result<(u32, u32), Arc<ProbeError>>;

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// The shared copies of what the samples in the window hold (see `intern`).
#[derive(Debug)]
pub(super) struct Shared {
    outcomes: Interner<Outcome>,
    pages: Interner<PageSketch>,
    conns: Interner<ConnTraits>,
    errors: Interner<ProbeError>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            outcomes: Interner::new(MAX_INTERNED),
            pages: Interner::new(MAX_INTERNED),
            conns: Interner::new(MAX_INTERNED),
            errors: Interner::new(MAX_INTERNED),
        }
    }
}

impl Shared {
    /// A request's outcome as a sample: its page sketch and the rest of what came back shared.
    pub(super) fn sample(&mut self, mut outcome: Outcome) -> Sample {
        let mut elapsed_us = 0;
        if let Ok(a) = &mut outcome {
            elapsed_us = micros(a.elapsed);
            a.elapsed = Duration::ZERO;
            if let Some(page) = a.page.take() {
                a.page = Some(self.pages.intern_arc(page));
            }
        }
        Sample {
            outcome: self.outcomes.intern(outcome),
            elapsed_us,
        }
    }

    pub(super) fn coalesced(&mut self, c: Coalesced) -> CoalescedSample {
        CoalescedSample {
            sample: self.sample(c.outcome),
            conn: c.conn.map(|t| self.conns.intern_arc(t)),
            via: c.via,
        }
    }

    pub(super) fn handshake(&mut self, h: Result<(Duration, Duration), ProbeError>) -> Handshake {
        match h {
            Ok((connect, tls)) => Ok((micros(connect), micros(tls))),
            Err(e) => Err(self.errors.intern(e)),
        }
    }

    /// Drop the shared copies no sample refers to any more (outcomes first: they hold pages).
    pub(super) fn sweep(&mut self) {
        self.outcomes.sweep();
        self.pages.sweep();
        self.conns.sweep();
        self.errors.sweep();
    }

    /// (outcomes, pages, connection traits, errors) shared now.
    #[cfg(test)]
    pub(super) fn sizes(&self) -> [usize; 4] {
        [
            self.outcomes.len(),
            self.pages.len(),
            self.conns.len(),
            self.errors.len(),
        ]
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

/// The outcomes of a queue's samples, oldest first (for the judgement).
pub(super) fn recent(q: &Timed<Sample>) -> Vec<Outcome> {
    q.iter().map(|(_, s)| s.outcome()).collect()
}

#[derive(Debug, Default)]
pub(super) struct LiveEndpoint {
    /// The latest successful handshake (certificates get renewed: the latest is the truth).
    pub(super) tls: Option<TlsInfo>,
    pub(super) cert: Option<Result<CertSummary, CertError>>,
    pub(super) handshakes: Timed<Handshake>,
    pub(super) own: Timed<CoalescedSample>,
    pub(super) direct: Timed<Sample>,
    pub(super) direct_http1: Timed<Sample>,
    /// What the server sent besides answers on the latest HTTP/2 connection (ORIGIN set,
    /// Alt-Svc): the latest is the truth, like the certificate.
    pub(super) signals: Option<Box<ServerSignals>>,
    /// The HTTP/3 connections for the host here (None: never one; the host does not
    /// advertise HTTP/3, or it is turned off).
    pub(super) h3: Option<Box<LiveH3>>,
}

/// The HTTP/3 side of an endpoint: the UDP port last probed, the QUIC handshakes and the
/// host's own answers over them.
#[derive(Debug, Default)]
pub(super) struct LiveH3 {
    pub(super) port: u16,
    pub(super) handshakes: Timed<Handshake>,
    pub(super) own: Timed<CoalescedSample>,
    /// The ORIGIN set of the latest HTTP/3 connection whose control stream was read (the
    /// latest is the truth, as over HTTP/2).
    pub(super) origin: Option<crate::engine::probe::signals::OriginSet>,
}

#[derive(Debug)]
pub(super) struct LiveHost {
    pub(super) entry: Entry,
    /// `entry.key()`, shared by the records and reports naming the host.
    pub(super) key: Arc<str>,
    pub(super) path: String,
    pub(super) dns: DnsAnswer,
    /// When `dns` was received (None: never resolved); a stale answer keeps its time.
    pub(super) dns_at: Option<Instant>,
    /// The addresses of the last good answer (None: none yet), to say what a new one changed.
    pub(super) good_addresses: Option<Vec<IpAddr>>,
    /// A good answer was lost to a failure (`dns-failed`): the next good one is a recovery.
    pub(super) dns_lost: bool,
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

/// Coalesced requests of one ordered pair, per origin address: on the origin's HTTP/2
/// connections (`queues`) and on its HTTP/3 ones (`h3`).
#[derive(Debug, Default)]
pub(super) struct PairSamples {
    pub(super) queues: BTreeMap<IpAddr, Timed<CoalescedSample>>,
    pub(super) h3: BTreeMap<IpAddr, Timed<CoalescedSample>>,
    /// The oldest sample time (scheduled in `Store::expiry`).
    pub(super) due: Option<Instant>,
}

impl PairSamples {
    /// The oldest sample time, over both protocols.
    pub(super) fn oldest(&self) -> Option<Instant> {
        oldest(self.queues.values().chain(self.h3.values()))
    }

    /// Drop the samples before `cutoff` (and the addresses left without any); true when some
    /// were dropped.
    pub(super) fn prune(&mut self, cutoff: Instant) -> bool {
        let mut dropped = false;
        for queues in [&mut self.queues, &mut self.h3] {
            queues.retain(|_, q| {
                dropped |= prune(q, cutoff);
                !q.is_empty()
            });
        }
        dropped
    }

    /// Every sample, both protocols.
    pub(super) fn all(&self) -> impl Iterator<Item = &(Instant, CoalescedSample)> {
        self.queues.values().chain(self.h3.values()).flatten()
    }
}

impl LiveEndpoint {
    pub(super) fn queues_oldest(&self) -> Option<Instant> {
        let h3 = self
            .h3
            .as_ref()
            .and_then(|h| oldest([&h.own]).into_iter().chain(oldest([&h.handshakes])).min());
        [
            oldest([&self.handshakes]),
            oldest([&self.own]),
            oldest([&self.direct, &self.direct_http1]),
            h3,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Drop the samples before `cutoff`; true when some were dropped.
    pub(super) fn prune(&mut self, cutoff: Instant) -> bool {
        let mut dropped = prune(&mut self.handshakes, cutoff);
        dropped |= prune(&mut self.own, cutoff);
        dropped |= prune(&mut self.direct, cutoff);
        dropped |= prune(&mut self.direct_http1, cutoff);
        if let Some(h3) = &mut self.h3 {
            dropped |= prune(&mut h3.handshakes, cutoff);
            dropped |= prune(&mut h3.own, cutoff);
        }
        dropped
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
    use crate::testing::synth::answer;

    fn page(s: &Sample) -> Arc<PageSketch> {
        s.shared().as_ref().unwrap().page.clone().unwrap()
    }

    #[test]
    fn equal_answers_share_one_copy_and_keep_their_own_timing() {
        let mut shared = Shared::default();
        let mut slow = answer(200, "the same page");
        if let Ok(a) = &mut slow {
            a.elapsed = Duration::from_millis(250);
        }
        let a = shared.sample(answer(200, "the same page"));
        let b = shared.sample(slow.clone());
        let c = shared.sample(answer(200, "another page"));
        assert!(Arc::ptr_eq(&a.outcome, &b.outcome));
        assert!(Arc::ptr_eq(&page(&a), &page(&b)));
        assert!(!Arc::ptr_eq(&page(&b), &page(&c)));
        assert_eq!(*page(&c), PageSketch::of(b"another page"));
        // The judgement gets back what the probe returned.
        assert_eq!(b.outcome(), slow);
        assert_eq!(a.outcome(), answer(200, "the same page"));
        // A page is shared even when the rest of the answer differs.
        let mut other_server = answer(200, "the same page");
        if let Ok(x) = &mut other_server {
            x.server = Some("Apache".into());
        }
        let d = shared.sample(other_server);
        assert!(!Arc::ptr_eq(&a.outcome, &d.outcome));
        assert!(Arc::ptr_eq(&page(&a), &page(&d)));
        assert_eq!(shared.sizes(), [3, 2, 0, 0]);
    }

    #[test]
    fn shared_copies_live_as_long_as_their_samples() {
        let mut shared = Shared::default();
        let mut q: Timed<Sample> = VecDeque::new();
        let start = Instant::now();
        for i in 0..4u64 {
            let s = shared.sample(answer(200, &format!("page {}", i % 2)));
            push(&mut q, start + Duration::from_secs(i), s);
        }
        let e = shared.handshake(Err(ProbeError::Tls("boom".into())));
        assert_eq!(shared.sizes(), [2, 2, 0, 1]);
        // The two oldest leave the window: both pages are still used by the newer two.
        prune(&mut q, start + Duration::from_secs(2));
        shared.sweep();
        assert_eq!(shared.sizes(), [2, 2, 0, 1]);
        prune(&mut q, start + Duration::from_secs(3));
        drop(e);
        shared.sweep();
        assert_eq!(shared.sizes(), [1, 1, 0, 0]);
        assert_eq!(recent(&q), vec![answer(200, "page 1")]);
        q.clear();
        shared.sweep();
        assert_eq!(shared.sizes(), [0, 0, 0, 0]);
    }
}
