//! The live engine's memory, and its only writer: timestamped samples per host, address and
//! pair, pruned to the `--window` and capped in count, so a monitor that runs for weeks stays
//! the same size (`samples`). Publishing turns the samples in the window into a `LiveView`
//! through the same judgement as `check`, incrementally (`publish`).

mod cache;
mod dns;
mod intern;
mod publish;
mod samples;

#[cfg(test)]
mod bench;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::probe::cert;
use crate::engine::probe::direct::DirectProtocol;
use crate::engine::probe::dns::DnsAnswer;
use crate::engine::probe::h3_control::ControlSeen;
use crate::engine::probe::signals::{OriginSet, ServerSignals};
use crate::engine::record::{Coalesced, EndpointRecord, H3Record, H3Result, HostRecord, JobResult};
use crate::engine::snapshot::{
    CertId, Event, EventTotals, HostChange, HostEvent, Protocol, Timestamp, Verdict,
};
use crate::watchlist::Entry;

use self::cache::Cache;
use self::samples::{push, recent, schedule, Expiry, LiveHost, PairSamples, Place, Shared};

pub use crate::engine::snapshot::HISTORY_BUCKETS;

pub use self::samples::MAX_SAMPLES;
/// `--dns-grace`'s default: how long after its TTL a last good DNS answer is used while
/// lookups fail (`dns.rs`).
pub const DEFAULT_DNS_GRACE: std::time::Duration = std::time::Duration::from_secs(300);
pub use crate::engine::snapshot::MAX_EVENTS;

pub struct Store {
    window: Duration,
    default_path: String,
    hosts: Vec<LiveHost>,
    /// "host:port" → index in `hosts` (lookups per job result must not scan the list).
    index: HashMap<String, usize>,
    /// (origin index, target index) in `hosts` → coalesced requests per origin address.
    coalesced: HashMap<(usize, usize), PairSamples>,
    /// The shared copies of what the samples hold (answers, pages, connections, errors).
    shared: Shared,
    /// Samples were dropped outside `prune` (a reload, a new DNS answer): sweep at the next.
    sweep_due: bool,
    /// When samples leave the window, so that pruning visits only the places that have some
    /// to drop.
    expiry: Expiry,
    events: VecDeque<Event>,
    /// `events` as the last view showed them (made again when they change).
    events_view: Arc<Vec<Event>>,
    /// Host events came since the last publish (`events_view` is made again).
    events_dirty: bool,
    /// Events recorded since the start, per kind.
    event_totals: EventTotals,
    /// How long after its TTL a last good DNS answer is used while lookups fail.
    dns_grace: std::time::Duration,
    last_verdicts: HashMap<(Arc<str>, Arc<str>), Verdict>,
    connections: u64,
    requests: u64,
    started: Instant,
    /// Change clock: every change takes the next value (host generations).
    clock: u64,
    /// Some host's address list changed since the last publish: the linked targets of every origin are found again.
    topology_changed: bool,
    /// Pairs whose coalesced samples changed since the last publish.
    dirty_pairs: HashSet<(usize, usize)>,
    cache: Cache,
    /// Pairs per verdict in the last view (capacity hints).
    bucket_sizes: [usize; Verdict::ALL.len()],
    /// Views published so far (the last view's `changes.seq`).
    seq: u64,
    /// The last view whose pair or host membership changed.
    layout_seq: u64,
    /// Views list the pending pairs without samples by index, not by report (`serve`).
    pending_by_index: bool,
    /// Test switch: rebuild everything at every publish (the reference for equivalence).
    #[cfg(test)]
    always_full: bool,
    /// Test counter: pair evaluations made by `publish`.
    #[cfg(test)]
    evaluations: usize,
}

/// What the planner needs of a host's signals, as endpoint records carrying nothing else: the
/// ORIGIN sets its HTTP/2 and HTTP/3 connections received (the names they list are targets
/// of the host's connections, `planner::address_peers`) and the Alt-Svc alternatives (where
/// it serves HTTP/3, `record::h3_advert`). Empty for the hosts whose servers send neither
/// (most).
fn job_signals(h: &LiveHost) -> BTreeMap<std::net::IpAddr, Box<EndpointRecord>> {
    h.endpoints
        .iter()
        .filter_map(|(addr, ep)| {
            let signals = ep
                .signals
                .as_ref()
                .filter(|s| s.origin.is_some() || !s.alt_svc.is_empty())
                .map(|s| {
                    Box::new(ServerSignals {
                        origin: s.origin.clone(),
                        alt_svc: s.alt_svc.clone(),
                        alt_svc_clear: s.alt_svc_clear,
                        ..ServerSignals::default()
                    })
                });
            let h3 = ep.h3.as_ref().and_then(|h| h.origin.clone()).map(|origin| {
                Box::new(H3Record {
                    origin: Some(origin),
                    ..H3Record::default()
                })
            });
            if signals.is_none() && h3.is_none() {
                return None;
            }
            let record = EndpointRecord {
                signals,
                h3,
                ..EndpointRecord::default()
            };
            Some((*addr, Box::new(record)))
        })
        .collect()
}

/// Keep what a connection signalled as the endpoint's latest (when the job made an HTTP/2
/// connection); true when its ORIGIN set links or unlinks other names than before (the
/// set's counters do not: a flood counts differently on every connection).
fn take_signals(ep: &mut samples::LiveEndpoint, signals: Option<Box<ServerSignals>>) -> bool {
    if signals.is_none() {
        return false;
    }
    let origins = |s: &Option<Box<ServerSignals>>| {
        s.as_ref()
            .map(|s| s.origin.as_ref().map(|o| (o.origins.clone(), o.dropped > 0)))
    };
    let changed = origins(&ep.signals) != origins(&signals);
    ep.signals = signals;
    changed
}

/// The certificate at an address changed from `old` to `new` (both parsed: an unparsable one
/// is said by the host's findings, not as a rotation).
fn cert_change(
    old: Option<&Result<cert::CertSummary, cert::CertError>>,
    new: Option<&Result<cert::CertSummary, cert::CertError>>,
) -> Option<HostChange> {
    let (Some(Ok(old)), Some(Ok(new))) = (old, new) else {
        return None;
    };
    if old.sha256 == new.sha256 {
        return None;
    }
    let missing =
        |a: &[String], b: &[String]| a.iter().filter(|n| !b.contains(n)).cloned().collect::<Vec<_>>();
    let id = |c: &cert::CertSummary| CertId {
        sha256: c.sha256.clone(),
        not_after: Timestamp::from_unix(c.not_after),
    };
    Some(HostChange::CertChanged {
        old: id(old),
        new: id(new),
        sans_added: missing(&new.dns_sans, &old.dns_sans),
        sans_removed: missing(&old.dns_sans, &new.dns_sans),
    })
}

/// An HTTP/2 origin job's handshake, the host's own answer and the server's signals.
type OriginParts = (
    Result<crate::engine::probe::tls::TlsInfo, crate::engine::probe::error::ProbeError>,
    Option<Box<Coalesced>>,
    Option<Box<ServerSignals>>,
);

/// The endpoint of `hosts[i]` at `addr` (None: not one of its addresses any more), its host
/// stamped as changed at `gen` and scheduled for pruning from `at`.
fn touched<'h>(
    hosts: &'h mut [LiveHost],
    expiry: &mut Expiry,
    (i, addr): (usize, std::net::IpAddr),
    gen: u64,
    at: Instant,
) -> Option<&'h mut samples::LiveEndpoint> {
    let h = hosts.get_mut(i)?;
    let ep = h.endpoints.get_mut(&addr)?;
    h.gen = gen;
    h.pair_gen = gen;
    schedule(expiry, &mut h.due, at, Place::Host(i));
    Some(ep)
}

/// The errors of the failed handshakes among `q`.
fn handshake_errors(q: &samples::Timed<samples::Handshake>) -> Vec<crate::engine::probe::error::ProbeError> {
    q.iter()
        .filter_map(|(_, r)| r.as_ref().err().map(|e| (**e).clone()))
        .collect()
}

/// A host's samples in the window, shaped as a `check` run's record.
fn host_record(h: &LiveHost) -> HostRecord {
    HostRecord {
        entry: h.entry.clone(),
        key: h.key.clone(),
        path: h.path.clone(),
        dns: h.dns.clone(),
        endpoints: h
            .endpoints
            .iter()
            .map(|(a, ep)| {
                let micros = |us: u32| Duration::from_micros(u64::from(us));
                let ok: Vec<(Duration, Duration)> = ep
                    .handshakes
                    .iter()
                    .filter_map(|(_, r)| r.as_ref().ok().map(|&(c, t)| (micros(c), micros(t))))
                    .collect();
                let record = EndpointRecord {
                    tls: ep.tls.clone(),
                    cert: ep.cert.clone(),
                    handshakes: ep.handshakes.len() as u32,
                    handshake_errors: handshake_errors(&ep.handshakes),
                    down: ep
                        .handshakes
                        .back()
                        .and_then(|(_, r)| r.as_ref().err())
                        .map(|e| (**e).clone()),
                    connect_times: ok.iter().map(|x| x.0).collect(),
                    tls_times: ok.iter().map(|x| x.1).collect(),
                    own: ep.own.iter().map(|(_, c)| c.coalesced()).collect(),
                    direct: recent(&ep.direct),
                    direct_http1: recent(&ep.direct_http1),
                    signals: ep.signals.clone(),
                    h3: ep.h3.as_ref().filter(|h3| !h3.handshakes.is_empty()).map(|h3| {
                        Box::new(H3Record {
                            port: h3.port,
                            handshakes: h3.handshakes.len() as u32,
                            handshake_errors: handshake_errors(&h3.handshakes),
                            own: h3.own.iter().map(|(_, c)| c.coalesced()).collect(),
                            origin: h3.origin.clone(),
                        })
                    }),
                };
                (*a, Box::new(record))
            })
            .collect(),
    }
}

impl Store {
    pub fn new(window: Duration, default_path: String) -> Store {
        Store {
            window,
            default_path,
            hosts: Vec::new(),
            index: HashMap::new(),
            coalesced: HashMap::new(),
            shared: Shared::default(),
            sweep_due: false,
            expiry: Expiry::new(),
            events: VecDeque::new(),
            events_view: Arc::default(),
            events_dirty: false,
            event_totals: EventTotals::default(),
            dns_grace: DEFAULT_DNS_GRACE,
            last_verdicts: HashMap::new(),
            connections: 0,
            requests: 0,
            started: Instant::now(),
            clock: 0,
            topology_changed: true,
            dirty_pairs: HashSet::new(),
            cache: Cache::stale(),
            bucket_sizes: [0; Verdict::ALL.len()],
            seq: 0,
            layout_seq: 0,
            pending_by_index: false,
            #[cfg(test)]
            always_full: false,
            #[cfg(test)]
            evaluations: 0,
        }
    }

    /// List the pending pairs without samples by index in the views (`LiveView::pending`),
    /// their reports made when read, instead of in `report.pairs`: for readers that go
    /// through `LiveView::listed_pairs` (the exporter, `/api/snapshot`). A million such pairs
    /// cost a few hundred bytes each as reports, and nothing this way.
    pub fn list_pending_by_index(&mut self, yes: bool) {
        if self.pending_by_index != yes {
            self.pending_by_index = yes;
            self.cache.stale = true;
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Replace the watched list: unchanged names keep their history, removed names vanish,
    /// new names start empty. Returns the keys of the new names.
    pub fn set_entries(&mut self, entries: &[Entry]) -> Vec<String> {
        let old_keys: Vec<String> = self.hosts.iter().map(|h| h.entry.key()).collect();
        let mut old: HashMap<String, LiveHost> = self.hosts.drain(..).map(|h| (h.entry.key(), h)).collect();
        let mut added = Vec::new();
        let gen = self.tick();
        for e in entries {
            let path = e.path.clone().unwrap_or_else(|| self.default_path.clone());
            match old.remove(&e.key()) {
                Some(mut h) => {
                    h.entry = e.clone();
                    h.path = path;
                    h.gen = gen;
                    h.pair_gen = gen;
                    self.hosts.push(h);
                }
                None => {
                    added.push(e.key());
                    self.hosts.push(LiveHost {
                        key: e.key().into(),
                        entry: e.clone(),
                        path,
                        dns: DnsAnswer::default(),
                        dns_at: None,
                        good_addresses: None,
                        dns_lost: false,
                        endpoints: BTreeMap::new(),
                        due: None,
                        gen,
                        pair_gen: gen,
                    });
                }
            }
        }
        self.index = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.entry.key(), i))
            .collect();
        // The pairs' samples follow their names to the new indices; removed names' go.
        let keys = &self.index;
        self.coalesced = std::mem::take(&mut self.coalesced)
            .into_iter()
            .filter_map(|((o, t), q)| {
                let o = *keys.get(old_keys.get(o)?)?;
                let t = *keys.get(old_keys.get(t)?)?;
                Some(((o, t), q))
            })
            .collect();
        self.last_verdicts
            .retain(|(o, t), _| keys.contains_key(&**o) && keys.contains_key(&**t));
        // The prune schedule names places by index: made again.
        self.expiry.clear();
        for (i, h) in self.hosts.iter_mut().enumerate() {
            h.due = h.endpoints.values().filter_map(|ep| ep.queues_oldest()).min();
            if let Some(at) = h.due {
                self.expiry.push(Reverse((at, Place::Host(i))));
            }
        }
        for (&(o, t), pair) in self.coalesced.iter_mut() {
            pair.due = pair.oldest();
            if let Some(at) = pair.due {
                self.expiry.push(Reverse((at, Place::Pair(o, t))));
            }
        }
        self.dirty_pairs.clear();
        self.topology_changed = true;
        self.cache.stale = true;
        self.sweep_due = true;
        added
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.hosts.iter().map(|h| h.entry.clone()).collect()
    }

    /// The hosts as the scheduler needs them (entry, path, DNS), indexed for jobs.
    pub fn hosts_for_jobs(&self) -> Vec<HostRecord> {
        self.hosts
            .iter()
            .map(|h| HostRecord {
                entry: h.entry.clone(),
                key: h.key.clone(),
                path: h.path.clone(),
                dns: h.dns.clone(),
                endpoints: job_signals(h),
            })
            .collect()
    }

    /// Fold a job result in; `hosts` is the list the job's indices refer to.
    pub fn apply(&mut self, hosts: &[HostRecord], result: JobResult, at: Instant) {
        self.connections += 1;
        let gen = self.tick();
        let index = &self.index;
        let index_of = |i: usize| hosts.get(i).and_then(|h| index.get(&h.entry.key()).copied());
        // Targets as indices of this store's list (a reload may have moved or dropped them).
        let targets = |coalesced: Vec<(usize, Coalesced)>| -> Vec<(usize, Coalesced)> {
            coalesced
                .into_iter()
                .filter_map(|(t, c)| Some((index_of(t)?, c)))
                .collect()
        };
        match result {
            JobResult::Origin {
                host,
                addr,
                handshake,
                own,
                coalesced,
                requests,
                signals,
                ..
            } => {
                self.requests += requests;
                let Some(origin) = index_of(host) else { return };
                let coalesced = targets(coalesced);
                self.push_coalesced(origin, addr, coalesced, Protocol::H2, at);
                self.apply_origin(origin, addr, (handshake, own, signals), gen, at);
            }
            JobResult::Direct {
                host,
                addr,
                protocol,
                outcome,
            } => {
                self.requests += 1;
                let Some(i) = index_of(host) else { return };
                let Some(ep) = touched(&mut self.hosts, &mut self.expiry, (i, addr), gen, at) else {
                    return;
                };
                let sample = self.shared.sample(outcome);
                match protocol {
                    DirectProtocol::Negotiate => push(&mut ep.direct, at, sample),
                    DirectProtocol::Http1Only => push(&mut ep.direct_http1, at, sample),
                }
            }
            JobResult::OriginH3(r) => {
                let H3Result {
                    host,
                    addr,
                    port,
                    handshake,
                    own,
                    coalesced,
                    requests,
                    control,
                } = *r;
                self.requests += requests;
                let Some(origin) = index_of(host) else { return };
                let coalesced = targets(coalesced);
                self.push_coalesced(origin, addr, coalesced, Protocol::H3, at);
                let Some(ep) = touched(&mut self.hosts, &mut self.expiry, (origin, addr), gen, at) else {
                    return;
                };
                let h3 = ep.h3.get_or_insert_with(Box::default);
                h3.port = port;
                // A control stream not read yet says nothing: the last set read stays.
                if let ControlSeen::Read(origin_set) = control {
                    let names = |o: &Option<OriginSet>| o.as_ref().map(|o| o.origins.clone());
                    self.topology_changed |= names(&h3.origin) != names(&origin_set);
                    h3.origin = origin_set;
                }
                let times = handshake.map(|tls| (tls.connect_time, tls.handshake_time));
                push(&mut h3.handshakes, at, self.shared.handshake(times));
                if let Some(o) = own {
                    push(&mut h3.own, at, self.shared.coalesced(*o));
                }
            }
        }
    }

    /// What an HTTP/2 origin connection of `hosts[origin]` at `addr` brought besides its
    /// coalesced requests: the handshake (a new certificate is an event), the host's own
    /// answer, the server's signals.
    fn apply_origin(
        &mut self,
        origin: usize,
        addr: std::net::IpAddr,
        (handshake, own, signals): OriginParts,
        gen: u64,
        at: Instant,
    ) {
        let Some(ep) = touched(&mut self.hosts, &mut self.expiry, (origin, addr), gen, at) else {
            return;
        };
        let mut rotated = None;
        match handshake {
            Ok(tls) => {
                let times = self.shared.handshake(Ok((tls.connect_time, tls.handshake_time)));
                push(&mut ep.handshakes, at, times);
                let cert = tls.chain.first().map(|der| cert::parse_leaf(der));
                rotated = cert_change(ep.cert.as_ref(), cert.as_ref());
                ep.cert = cert;
                ep.tls = Some(tls);
            }
            Err(e) => push(&mut ep.handshakes, at, self.shared.handshake(Err(e))),
        }
        if let Some(o) = own {
            push(&mut ep.own, at, self.shared.coalesced(*o));
        }
        self.topology_changed |= take_signals(ep, signals);
        if let Some(change) = rotated {
            self.host_event(origin, Some(addr), change, Timestamp::now());
        }
    }

    /// Keep the coalesced requests an origin connection at `addr` carried over `protocol`,
    /// each as (target index in `hosts`, request).
    fn push_coalesced(
        &mut self,
        origin: usize,
        addr: std::net::IpAddr,
        coalesced: Vec<(usize, Coalesced)>,
        protocol: Protocol,
        at: Instant,
    ) {
        for (target, sample) in coalesced {
            let pair = self.coalesced.entry((origin, target)).or_default();
            let queues = match protocol {
                Protocol::H2 => &mut pair.queues,
                Protocol::H3 => &mut pair.h3,
            };
            push(queues.entry(addr).or_default(), at, self.shared.coalesced(sample));
            schedule(&mut self.expiry, &mut pair.due, at, Place::Pair(origin, target));
            self.dirty_pairs.insert((origin, target));
        }
    }

    /// Record a host event (bounded log, totals per kind).
    fn host_event(
        &mut self,
        host: usize,
        address: Option<std::net::IpAddr>,
        change: HostChange,
        at: Timestamp,
    ) {
        let Some(h) = self.hosts.get(host) else { return };
        let event = Event::Host(HostEvent {
            at,
            host: h.key.to_string(),
            address: address.map(|a| a.to_string()),
            change,
        });
        self.push_event(event);
        self.events_dirty = true;
    }

    /// Add to the bounded log, counting it.
    fn push_event(&mut self, event: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.event_totals.add(event.kind());
        self.events.push_back(event);
    }

    /// Drop every sample older than the window (visiting only the places that have some),
    /// and the shared copies no sample uses any more.
    pub fn prune(&mut self, now: Instant) {
        if self.prune_samples(now) || std::mem::take(&mut self.sweep_due) {
            self.shared.sweep();
        }
    }

    /// `prune` without the sweep; true when some samples were dropped.
    fn prune_samples(&mut self, now: Instant) -> bool {
        let Some(cutoff) = now.checked_sub(self.window) else {
            return false;
        };
        let gen = self.clock + 1;
        let mut any = false;
        while self.expiry.peek().is_some_and(|Reverse((at, _))| *at < cutoff) {
            let Some(Reverse((at, place))) = self.expiry.pop() else {
                break;
            };
            match place {
                Place::Host(i) => {
                    let Some(h) = self.hosts.get_mut(i).filter(|h| h.due == Some(at)) else {
                        continue;
                    };
                    let mut dropped = false;
                    for ep in h.endpoints.values_mut() {
                        dropped |= ep.prune(cutoff);
                    }
                    if dropped {
                        h.gen = gen;
                        h.pair_gen = gen;
                        self.clock = gen;
                        any = true;
                    }
                    h.due = h.endpoints.values().filter_map(|ep| ep.queues_oldest()).min();
                    if let Some(next) = h.due {
                        self.expiry.push(Reverse((next, place)));
                    }
                }
                Place::Pair(o, t) => {
                    let Some(pair) = self.coalesced.get_mut(&(o, t)).filter(|p| p.due == Some(at)) else {
                        continue;
                    };
                    if pair.prune(cutoff) {
                        self.dirty_pairs.insert((o, t));
                        any = true;
                    }
                    let due = pair.oldest();
                    pair.due = due;
                    match due {
                        Some(next) => self.expiry.push(Reverse((next, place))),
                        None => {
                            self.coalesced.remove(&(o, t));
                        }
                    }
                }
            }
        }
        any
    }

    /// The samples in the window, shaped as a `check` run's records (the tests compare the
    /// incremental publish with `analyse` over these).
    #[cfg(test)]
    pub fn records(&self, cycles: u64) -> crate::engine::record::Records {
        use crate::engine::record::Records;
        let (mut coalesced, mut coalesced_h3) = (HashMap::new(), HashMap::new());
        for ((o, t), pair) in &self.coalesced {
            for (a, q) in &pair.queues {
                coalesced.insert((*o, *t, *a), q.iter().map(|(_, s)| s.coalesced()).collect());
            }
            for (a, q) in &pair.h3 {
                coalesced_h3.insert((*o, *t, *a), q.iter().map(|(_, s)| s.coalesced()).collect());
            }
        }
        Records {
            hosts: self.hosts.iter().map(host_record).collect(),
            coalesced,
            connections: self.connections,
            requests: self.requests,
            rounds: cycles.min(u32::MAX as u64) as u32,
            pages: Default::default(),
            coalesced_h3,
        }
    }

    /// The oldest sample anywhere, by a full scan (tests check the prune schedule with it).
    #[cfg(test)]
    fn oldest_sample(&self) -> Option<Instant> {
        let hosts = self
            .hosts
            .iter()
            .flat_map(|h| h.endpoints.values())
            .filter_map(|ep| ep.queues_oldest());
        let pairs = self.coalesced.values().filter_map(PairSamples::oldest);
        hosts.chain(pairs).min()
    }
}
