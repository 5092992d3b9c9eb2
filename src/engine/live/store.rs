//! The live engine's memory, and its only writer: timestamped samples per host, address and
//! pair, pruned to the `--window` and capped in count, so a monitor that runs for weeks stays
//! the same size. Publishing turns the samples in the window into a `LiveView` through the
//! same analysis as `check`, plus the sparklines and the verdict-change events.
//!
//! Publishing is incremental: every change to a host's samples or DNS answer stamps the host
//! with a new generation, every change to a pair's coalesced samples marks the pair, and a
//! publish rebuilds only the host records, host reports and pair reports whose inputs changed
//! (host reports also when a certificate's days-left count moves). Unchanged reports are
//! shared (`Arc`) with the previous view. What is left per publish for every pair is pointer
//! work: a few comparisons and reference counts. A reload rebuilds everything once.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::judge::analysis::{self, PairEval, PairIndex, Tally};
use crate::engine::probe::cert::{self, CertError, CertSummary};
use crate::engine::probe::direct::DirectProtocol;
use crate::engine::probe::dns::DnsAnswer;
use crate::engine::probe::error::ProbeError;
use crate::engine::probe::tls::TlsInfo;
use crate::engine::record::{EndpointRecord, HostRecord, JobResult, Outcome, Records};
use crate::engine::snapshot::Verdict;
use crate::engine::snapshot::{
    EngineStatus, GroupReport, History, HostReport, LiveView, PairReport, Snapshot, Timestamp, VerdictEvent,
    ViewChanges, SCHEMA,
};
use crate::watchlist::Entry;

pub use crate::engine::snapshot::HISTORY_BUCKETS;

/// Samples kept per list at most, whatever the window.
pub const MAX_SAMPLES: usize = 512;
/// Verdict-change events kept.
pub const MAX_EVENTS: usize = 500;

type Timed<T> = VecDeque<(Instant, T)>;

fn push<T>(q: &mut Timed<T>, at: Instant, item: T) {
    if q.len() >= MAX_SAMPLES {
        q.pop_front();
    }
    q.push_back((at, item));
}

/// Drops the samples before `cutoff`; true when some were dropped.
fn prune<T>(q: &mut Timed<T>, cutoff: Instant) -> bool {
    let before = q.len();
    while q.front().is_some_and(|(t, _)| *t < cutoff) {
        q.pop_front();
    }
    q.len() != before
}

/// The oldest sample time among `queues`.
fn oldest<'a, T: 'a>(queues: impl IntoIterator<Item = &'a Timed<T>>) -> Option<Instant> {
    queues.into_iter().filter_map(|q| q.front().map(|x| x.0)).min()
}

/// Where samples live, for the prune schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Host(usize),
    Pair(usize, usize),
}

/// Samples leave the window in time order: (the oldest sample of a place, the place),
/// soonest first. An entry is current while it matches the place's `due`.
type Expiry = BinaryHeap<Reverse<(Instant, Place)>>;

/// A sample stamped `at` was added to `place`: make sure it is scheduled.
fn schedule(expiry: &mut Expiry, due: &mut Option<Instant>, at: Instant, place: Place) {
    if due.is_none_or(|d| at < d) {
        *due = Some(at);
        expiry.push(Reverse((at, place)));
    }
}

fn recent<T: Clone>(q: &Timed<T>) -> Vec<T> {
    q.iter().map(|(_, x)| x.clone()).collect()
}

#[derive(Debug, Default)]
struct LiveEndpoint {
    /// The latest successful handshake (certificates get renewed: the latest is the truth).
    tls: Option<TlsInfo>,
    cert: Option<Result<CertSummary, CertError>>,
    handshakes: Timed<Result<(Duration, Duration), ProbeError>>,
    own: Timed<Outcome>,
    direct: Timed<Outcome>,
    direct_http1: Timed<Outcome>,
}

#[derive(Debug)]
struct LiveHost {
    entry: Entry,
    /// `entry.key()`, shared by the records and reports naming the host.
    key: Arc<str>,
    path: String,
    dns: DnsAnswer,
    /// When `dns` was received (None: never resolved).
    dns_at: Option<Instant>,
    endpoints: BTreeMap<IpAddr, Box<LiveEndpoint>>,
    /// The oldest sample time of the endpoints (scheduled in `Store::expiry`).
    due: Option<Instant>,
    /// The store's change clock at the last change of anything the analysis reads of this
    /// host (samples, DNS answer).
    gen: u64,
    /// The same, for what the pair analysis reads (samples, addresses): a DNS answer that
    /// only refreshes TTL and lookup time leaves the host's pairs alone (at 10,000 names,
    /// re-evaluating every pair at each TTL expiry cost a second of CPU a minute).
    pair_gen: u64,
}

/// Coalesced requests of one ordered pair, per origin address.
#[derive(Debug, Default)]
struct PairSamples {
    queues: BTreeMap<IpAddr, Timed<Outcome>>,
    /// The oldest sample time (scheduled in `Store::expiry`).
    due: Option<Instant>,
}

impl LiveEndpoint {
    fn queues_oldest(&self) -> Option<Instant> {
        [
            oldest([&self.handshakes]),
            oldest([&self.own, &self.direct, &self.direct_http1]),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

pub struct Store {
    window: Duration,
    default_path: String,
    hosts: Vec<LiveHost>,
    /// "host:port" → index in `hosts` (lookups per job result must not scan the list).
    index: HashMap<String, usize>,
    /// (origin index, target index) in `hosts` → coalesced requests per origin address.
    coalesced: HashMap<(usize, usize), PairSamples>,
    /// When samples leave the window, so that pruning visits only the places that have some
    /// to drop.
    expiry: Expiry,
    events: VecDeque<VerdictEvent>,
    /// `events` as the last view showed them (made again when they change).
    events_view: Arc<Vec<VerdictEvent>>,
    last_verdicts: HashMap<(Arc<str>, Arc<str>), Verdict>,
    connections: u64,
    requests: u64,
    started: Instant,
    /// Change clock: every change takes the next value (host generations).
    clock: u64,
    /// Some host's address list changed since the last publish: pair candidates are redone.
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
    /// Test switch: rebuild everything at every publish (the reference for equivalence).
    #[cfg(test)]
    always_full: bool,
    /// Test counter: pair evaluations made by `publish`.
    #[cfg(test)]
    evaluations: usize,
}

/// What the last publish computed, reused by the next one where its inputs did not change.
/// Indexed like `Store::hosts`.
#[derive(Default)]
struct Cache {
    /// Everything is rebuilt at the next publish (a reload changed the indices).
    stale: bool,
    /// Each host's samples shaped as a `check` record, and the host generation it shows.
    records: Vec<HostRecord>,
    record_gens: Vec<u64>,
    hosts: Vec<Arc<HostReport>>,
    /// The view in which each host report was made, and until when (unix s) it holds.
    host_seqs: Vec<u64>,
    host_valid_until: Vec<i64>,
    index: Option<PairIndex>,
    /// Per origin: its candidate targets (ascending, itself excluded) and what each pair gave.
    rows: Vec<Vec<Slot>>,
    /// The origin's generation the row's candidates were computed at.
    row_gens: Vec<u64>,
    groups: Vec<GroupReport>,
    /// Listed pairs evaluated since events were last recorded.
    unchecked: HashSet<(usize, usize)>,
}

struct Slot {
    target: usize,
    /// Generations of origin and target the evaluation used.
    origin_gen: u64,
    target_gen: u64,
    /// The pair's coalesced samples changed (or it was never evaluated).
    dirty: bool,
    eval: SlotEval,
    /// The view in which the report was made.
    seq: u64,
    /// (when, got 421) of the pair's answered coalesced requests, for its sparkline.
    samples: Arc<[(Instant, bool)]>,
}

enum SlotEval {
    Skip,
    CertOnly,
    Listed {
        report: Arc<PairReport>,
        verdict: Verdict,
        link: bool,
    },
}

impl SlotEval {
    /// (listed, link, problem): what groups and the layout depend on.
    fn shape(&self) -> (bool, bool, bool) {
        match self {
            SlotEval::Listed { verdict, link, .. } => (true, *link, verdict.is_problem()),
            _ => (false, false, false),
        }
    }
}

impl Slot {
    fn new(target: usize) -> Slot {
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

/// The samples of a pair never coalesced: one shared empty list (most pairs of a big list
/// have none, and an `Arc` of nothing still costs an allocation each).
fn no_samples() -> Arc<[(Instant, bool)]> {
    static EMPTY: std::sync::LazyLock<Arc<[(Instant, bool)]>> =
        std::sync::LazyLock::new(|| Arc::from(Vec::new()));
    EMPTY.clone()
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
                let ok: Vec<(Duration, Duration)> = ep
                    .handshakes
                    .iter()
                    .filter_map(|(_, r)| r.as_ref().ok().copied())
                    .collect();
                let record = EndpointRecord {
                    tls: ep.tls.clone(),
                    cert: ep.cert.clone(),
                    handshakes: ep.handshakes.len() as u32,
                    handshake_errors: ep
                        .handshakes
                        .iter()
                        .filter_map(|(_, r)| r.as_ref().err().cloned())
                        .collect(),
                    connect_times: ok.iter().map(|x| x.0).collect(),
                    tls_times: ok.iter().map(|x| x.1).collect(),
                    own: recent(&ep.own),
                    direct: recent(&ep.direct),
                    direct_http1: recent(&ep.direct_http1),
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
            expiry: Expiry::new(),
            events: VecDeque::new(),
            events_view: Arc::default(),
            last_verdicts: HashMap::new(),
            connections: 0,
            requests: 0,
            started: Instant::now(),
            clock: 0,
            topology_changed: true,
            dirty_pairs: HashSet::new(),
            cache: Cache {
                stale: true,
                ..Cache::default()
            },
            bucket_sizes: [0; Verdict::ALL.len()],
            seq: 0,
            layout_seq: 0,
            #[cfg(test)]
            always_full: false,
            #[cfg(test)]
            evaluations: 0,
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
            pair.due = oldest(pair.queues.values());
            if let Some(at) = pair.due {
                self.expiry.push(Reverse((at, Place::Pair(o, t))));
            }
        }
        self.dirty_pairs.clear();
        self.topology_changed = true;
        self.cache.stale = true;
        added
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.hosts.iter().map(|h| h.entry.clone()).collect()
    }

    /// A new DNS answer for a host: addresses it no longer has are forgotten.
    pub fn set_dns(&mut self, key: &str, answer: DnsAnswer) {
        let gen = self.tick();
        let Some(h) = self.index.get(key).and_then(|&i| self.hosts.get_mut(i)) else {
            return;
        };
        let moved = h.dns.addresses != answer.addresses;
        if moved {
            self.topology_changed = true;
        }
        h.endpoints.retain(|a, _| answer.addresses.contains(a));
        for a in &answer.addresses {
            h.endpoints.entry(*a).or_default();
        }
        h.dns = answer;
        h.dns_at = Some(Instant::now());
        h.gen = gen;
        if moved {
            h.pair_gen = gen;
        }
    }

    /// Is the DNS answer of `key` still good at `now`? Answers are reused within their TTL
    /// (overrides and IP literals forever); failures are retried every time.
    pub fn dns_fresh(&self, key: &str, now: Instant) -> bool {
        let Some(h) = self.index.get(key).and_then(|&i| self.hosts.get(i)) else {
            return false;
        };
        match (h.dns_at, &h.dns.error) {
            (Some(at), None) => match h.dns.ttl_s {
                Some(ttl) => now.saturating_duration_since(at) < Duration::from_secs(u64::from(ttl)),
                None => h.dns.overridden,
            },
            _ => false,
        }
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
                endpoints: BTreeMap::new(),
            })
            .collect()
    }

    /// Fold a job result in; `hosts` is the list the job's indices refer to.
    pub fn apply(&mut self, hosts: &[HostRecord], result: JobResult, at: Instant) {
        self.connections += 1;
        let gen = self.tick();
        let index = &self.index;
        let index_of = |i: usize| hosts.get(i).and_then(|h| index.get(&h.entry.key()).copied());
        match result {
            JobResult::Origin {
                host,
                addr,
                handshake,
                own,
                coalesced,
                requests,
            } => {
                self.requests += requests;
                let Some(origin) = index_of(host) else { return };
                for (t, outcome) in coalesced {
                    if let Some(target) = index_of(t) {
                        let pair = self.coalesced.entry((origin, target)).or_default();
                        push(pair.queues.entry(addr).or_default(), at, outcome);
                        schedule(&mut self.expiry, &mut pair.due, at, Place::Pair(origin, target));
                        self.dirty_pairs.insert((origin, target));
                    }
                }
                let Some(h) = self.hosts.get_mut(origin) else {
                    return;
                };
                let Some(ep) = h.endpoints.get_mut(&addr) else {
                    return;
                };
                h.gen = gen;
                h.pair_gen = gen;
                schedule(&mut self.expiry, &mut h.due, at, Place::Host(origin));
                match handshake {
                    Ok(tls) => {
                        push(&mut ep.handshakes, at, Ok((tls.connect_time, tls.handshake_time)));
                        ep.cert = tls.chain.first().map(|der| cert::parse_leaf(der));
                        ep.tls = Some(tls);
                    }
                    Err(e) => push(&mut ep.handshakes, at, Err(e)),
                }
                if let Some(o) = own {
                    push(&mut ep.own, at, o);
                }
            }
            JobResult::Direct {
                host,
                addr,
                protocol,
                outcome,
            } => {
                self.requests += 1;
                let Some(i) = index_of(host) else { return };
                let Some(h) = self.hosts.get_mut(i) else { return };
                let Some(ep) = h.endpoints.get_mut(&addr) else {
                    return;
                };
                h.gen = gen;
                h.pair_gen = gen;
                schedule(&mut self.expiry, &mut h.due, at, Place::Host(i));
                match protocol {
                    DirectProtocol::Negotiate => push(&mut ep.direct, at, outcome),
                    DirectProtocol::Http1Only => push(&mut ep.direct_http1, at, outcome),
                }
            }
        }
    }

    /// Drop every sample older than the window (visiting only the places that have some).
    pub fn prune(&mut self, now: Instant) {
        let Some(cutoff) = now.checked_sub(self.window) else {
            return;
        };
        let gen = self.clock + 1;
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
                        dropped |= prune(&mut ep.handshakes, cutoff);
                        dropped |= prune(&mut ep.own, cutoff);
                        dropped |= prune(&mut ep.direct, cutoff);
                        dropped |= prune(&mut ep.direct_http1, cutoff);
                    }
                    if dropped {
                        h.gen = gen;
                        h.pair_gen = gen;
                        self.clock = gen;
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
                    let mut dropped = false;
                    pair.queues.retain(|_, q| {
                        dropped |= prune(q, cutoff);
                        !q.is_empty()
                    });
                    if dropped {
                        self.dirty_pairs.insert((o, t));
                    }
                    let due = oldest(pair.queues.values());
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
    }

    /// The samples in the window, shaped as a `check` run's records.
    pub fn records(&self, cycles: u64) -> Records {
        let mut coalesced = HashMap::new();
        for ((o, t), pair) in &self.coalesced {
            for (a, q) in &pair.queues {
                coalesced.insert((*o, *t, *a), recent(q));
            }
        }
        Records {
            hosts: self.hosts.iter().map(host_record).collect(),
            coalesced,
            connections: self.connections,
            requests: self.requests,
            rounds: cycles.min(u32::MAX as u64) as u32,
        }
    }

    /// Is `origin → target` a pair of the last published view?
    pub fn is_listed(&self, origin: &str, target: &str) -> bool {
        let (Some(&a), Some(&b)) = (self.index.get(origin), self.index.get(target)) else {
            return false;
        };
        let Some(row) = self.cache.rows.get(a) else {
            return false;
        };
        row.binary_search_by_key(&b, |s| s.target)
            .is_ok_and(|k| matches!(row[k].eval, SlotEval::Listed { .. }))
    }

    /// The oldest sample anywhere, by a full scan (tests check the prune schedule with it).
    #[cfg(test)]
    fn oldest_sample(&self) -> Option<Instant> {
        let hosts = self
            .hosts
            .iter()
            .flat_map(|h| h.endpoints.values())
            .filter_map(|ep| ep.queues_oldest());
        let pairs = self.coalesced.values().filter_map(|p| oldest(p.queues.values()));
        hosts.chain(pairs).min()
    }

    /// Analyse the window and publish: the view, with sparklines and new events.
    pub fn publish(&mut self, now: Instant, status: EngineStatus, record_events: bool) -> LiveView {
        self.prune(now);
        self.seq += 1;
        let seq = self.seq;
        let unix = analysis::unix_now();
        let n = self.hosts.len();
        #[cfg(test)]
        if self.always_full {
            self.cache.stale = true;
        }
        let mut layout_changed = false;
        let mut groups_changed = false;
        if self.cache.stale {
            // Everything is evaluated (and so checked for events) again.
            self.cache = Cache {
                records: self.hosts.iter().map(host_record).collect(),
                record_gens: self.hosts.iter().map(|h| h.gen).collect(),
                rows: (0..n).map(|_| Vec::new()).collect(),
                row_gens: vec![0; n],
                ..Cache::default()
            };
            self.topology_changed = true;
            layout_changed = true;
            groups_changed = true;
        }
        let cache = &mut self.cache;

        // Host records and reports whose host changed (reports also when a day passed).
        let mut rebuilt = vec![false; n];
        for (i, h) in self.hosts.iter().enumerate() {
            if cache.record_gens[i] != h.gen {
                cache.records[i] = host_record(h);
                cache.record_gens[i] = h.gen;
                rebuilt[i] = true;
            }
        }
        if cache.hosts.len() != n {
            cache.hosts = cache
                .records
                .iter()
                .map(|r| Arc::new(analysis::host_report(r, unix)))
                .collect();
            cache.host_seqs = vec![seq; n];
            cache.host_valid_until = cache
                .records
                .iter()
                .map(|r| analysis::host_report_valid_until(r, unix))
                .collect();
        } else {
            for (i, &rebuilt) in rebuilt.iter().enumerate() {
                if rebuilt || unix >= cache.host_valid_until[i] {
                    let report = analysis::host_report(&cache.records[i], unix);
                    if *cache.hosts[i] != report {
                        cache.hosts[i] = Arc::new(report);
                        cache.host_seqs[i] = seq;
                    }
                    cache.host_valid_until[i] = analysis::host_report_valid_until(&cache.records[i], unix);
                }
            }
        }

        // Candidate targets: all again when an address list changed, else the changed origins'.
        if self.topology_changed || cache.index.is_none() {
            cache.index = Some(PairIndex::new(&cache.records));
            cache.row_gens.iter_mut().for_each(|g| *g = u64::MAX);
            layout_changed = true;
            self.topology_changed = false;
        }
        let index = cache.index.as_ref().expect("index built above");
        for a in 0..n {
            if cache.row_gens[a] == self.hosts[a].pair_gen {
                continue;
            }
            cache.row_gens[a] = self.hosts[a].pair_gen;
            let targets = index.candidates(&cache.records, a);
            let old = std::mem::take(&mut cache.rows[a]);
            let mut old = old.into_iter().peekable();
            let mut row = Vec::with_capacity(targets.len());
            for b in targets.into_iter().filter(|&b| b != a) {
                while old.peek().is_some_and(|s| s.target < b) {
                    let gone = old.next().expect("peeked");
                    if gone.eval.shape() != (false, false, false) {
                        layout_changed = true;
                        groups_changed = true;
                    }
                }
                match old.next_if(|s| s.target == b) {
                    Some(slot) => row.push(slot),
                    None => row.push(Slot::new(b)),
                }
            }
            for gone in old {
                if gone.eval.shape() != (false, false, false) {
                    layout_changed = true;
                    groups_changed = true;
                }
            }
            cache.rows[a] = row;
        }
        for (a, b) in self.dirty_pairs.drain() {
            if let Some(row) = cache.rows.get_mut(a) {
                if let Ok(k) = row.binary_search_by_key(&b, |s| s.target) {
                    row[k].dirty = true;
                }
            }
        }

        // Evaluate the pairs whose inputs changed; gather all in contract order.
        let mut buckets: Vec<Vec<(Arc<PairReport>, History, u64)>> = self
            .bucket_sizes
            .iter()
            .map(|&n| Vec::with_capacity(n + n / 8))
            .collect();
        let bucket_width = (self.window / HISTORY_BUCKETS as u32).max(Duration::from_millis(1));
        let clock = History::clock(now, bucket_width);
        let mut tally = Tally::default();
        let mut links = Vec::new();
        let mut problem_origins = Vec::new();
        for a in 0..n {
            let origin_gen = self.hosts[a].pair_gen;
            for slot in cache.rows[a].iter_mut() {
                let b = slot.target;
                let target_gen = self.hosts[b].pair_gen;
                if slot.dirty || slot.origin_gen != origin_gen || slot.target_gen != target_gen {
                    #[cfg(test)]
                    {
                        self.evaluations += 1;
                    }
                    let queues = self.coalesced.get(&(a, b));
                    let lookup = |addr: IpAddr| -> Vec<&Outcome> {
                        queues
                            .and_then(|p| p.queues.get(&addr))
                            .map(|q| q.iter().map(|(_, o)| o).collect())
                            .unwrap_or_default()
                    };
                    let eval =
                        match analysis::evaluate_pair(&cache.records[a], &cache.records[b], &lookup, false) {
                            PairEval::Skip => SlotEval::Skip,
                            PairEval::CertOnly => SlotEval::CertOnly,
                            PairEval::Listed {
                                report,
                                verdict,
                                link,
                                cert_only: _,
                            } => {
                                // An equal report keeps its identity (readers skip it).
                                let kept = match &slot.eval {
                                    SlotEval::Listed { report: old, .. } if **old == *report => {
                                        Some(old.clone())
                                    }
                                    _ => None,
                                };
                                let report = match kept {
                                    Some(old) => old,
                                    None => {
                                        slot.seq = seq;
                                        cache.unchecked.insert((a, b));
                                        Arc::from(report)
                                    }
                                };
                                SlotEval::Listed {
                                    report,
                                    verdict,
                                    link,
                                }
                            }
                        };
                    let (before, after) = (slot.eval.shape(), eval.shape());
                    if before != after {
                        groups_changed = true;
                        layout_changed |= before.0 != after.0;
                    }
                    slot.eval = eval;
                    slot.samples = queues
                        .map(|p| {
                            p.queues
                                .values()
                                .flat_map(|q| q.iter())
                                .filter_map(|(at, o)| o.as_ref().ok().map(|x| (*at, x.status == 421)))
                                .collect()
                        })
                        .unwrap_or_else(no_samples);
                    slot.origin_gen = origin_gen;
                    slot.target_gen = target_gen;
                    slot.dirty = false;
                }
                match &slot.eval {
                    SlotEval::Skip => {}
                    SlotEval::CertOnly => tally.cert_only += 1,
                    SlotEval::Listed {
                        report,
                        verdict,
                        link,
                    } => {
                        if *link {
                            links.push((a, b));
                        }
                        if verdict.is_problem() {
                            problem_origins.push(a);
                        }
                        tally.add(*verdict, report);
                        buckets[*verdict as usize].push((
                            report.clone(),
                            History::from_samples(slot.samples.clone(), &clock),
                            slot.seq,
                        ));
                    }
                }
            }
        }
        for (size, bucket) in self.bucket_sizes.iter_mut().zip(&buckets) {
            *size = bucket.len();
        }
        if groups_changed {
            let keys: Vec<String> = self.hosts.iter().map(|h| h.entry.key()).collect();
            cache.groups = analysis::groups(&keys, &links, &problem_origins);
        }
        if layout_changed {
            self.layout_seq = seq;
        }
        let mut pairs = Vec::with_capacity(tally.pairs as usize);
        let mut histories = Vec::with_capacity(tally.pairs as usize);
        let mut pair_seqs = Vec::with_capacity(tally.pairs as usize);
        for bucket in buckets {
            for (p, h, s) in bucket {
                pairs.push(p);
                histories.push(h);
                pair_seqs.push(s);
            }
        }
        let rounds = status.cycles.min(u32::MAX as u64) as u32;
        let summary = analysis::summary(
            &cache.hosts,
            &tally,
            (self.connections, self.requests, rounds),
            now.duration_since(self.started),
        );
        let report = Snapshot {
            schema: SCHEMA.into(),
            generated_at: Timestamp::from_unix(unix),
            hosts: cache.hosts.clone(),
            pairs,
            groups: cache.groups.clone(),
            summary,
        };

        // Verdict changes, in the order of the report, among the pairs evaluated since the
        // last publish that recorded events (the others kept their verdict).
        let mut new_events = false;
        if record_events && !cache.unchecked.is_empty() {
            let mut check: Vec<(Verdict, usize, usize, Arc<PairReport>)> = Vec::new();
            for (a, b) in cache.unchecked.drain() {
                let Some(row) = cache.rows.get(a) else { continue };
                let Ok(k) = row.binary_search_by_key(&b, |s| s.target) else {
                    continue;
                };
                // Waiting for a probe is not a verdict: the last one stands (and is not kept
                // for each of the many pairs a big list leaves pending).
                match &row[k].eval {
                    SlotEval::Listed { report, verdict, .. } if *verdict != Verdict::Pending => {
                        check.push((*verdict, a, b, report.clone()));
                    }
                    _ => {}
                }
            }
            check.sort_unstable_by_key(|(v, a, b, _)| (*v, *a, *b));
            for (_, _, _, p) in check {
                let key = (p.origin.clone(), p.target.clone());
                let previous = self.last_verdicts.get(&key).copied();
                if previous != Some(p.verdict) {
                    let worth_telling = previous.is_some() || p.verdict.is_problem();
                    if worth_telling {
                        if self.events.len() >= MAX_EVENTS {
                            self.events.pop_front();
                        }
                        new_events = true;
                        self.events.push_back(VerdictEvent {
                            at: report.generated_at,
                            origin: p.origin.to_string(),
                            target: p.target.to_string(),
                            from: previous,
                            to: p.verdict,
                            message: p.explanation.to_string(),
                        });
                    }
                    self.last_verdicts.insert(key, p.verdict);
                }
            }
        }
        LiveView {
            changes: ViewChanges {
                seq,
                layout: self.layout_seq,
                pairs: pair_seqs,
                hosts: cache.host_seqs.clone(),
            },
            report,
            histories,
            events: {
                if new_events {
                    self.events_view = Arc::new(self.events.iter().cloned().collect());
                }
                self.events_view.clone()
            },
            status,
        }
    }
}

#[cfg(test)]
#[path = "store_bench.rs"]
pub(crate) mod bench;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::probe::h2::HttpAnswer;

    fn entry(host: &str, line: usize) -> Entry {
        Entry {
            host: host.into(),
            port: 443,
            path: None,
            line,
        }
    }

    fn answer(status: u16) -> Outcome {
        Ok(HttpAnswer {
            status,
            version: "HTTP/2".into(),
            content_type: Some("text/html".into()),
            body_digest: "d".into(),
            body_len: 1,
            server: None,
            elapsed: Duration::from_millis(1),
        })
    }

    fn dns(addr: &str) -> DnsAnswer {
        DnsAnswer {
            addresses: vec![addr.parse().unwrap()],
            ..Default::default()
        }
    }

    #[test]
    fn reload_keeps_unchanged_history_and_drops_removed_names() {
        let mut store = Store::new(Duration::from_secs(60), "/".into());
        assert_eq!(
            store.set_entries(&[entry("a.test", 1), entry("b.test", 2)]),
            vec!["a.test:443", "b.test:443"]
        );
        store.set_dns("a.test:443", dns("127.0.0.1"));
        store.set_dns("b.test:443", dns("127.0.0.1"));
        let hosts = store.hosts_for_jobs();
        let now = Instant::now();
        store.apply(
            &hosts,
            JobResult::Origin {
                host: 0,
                addr: "127.0.0.1".parse().unwrap(),
                handshake: Err(ProbeError::Tls("boom".into())),
                own: None,
                coalesced: vec![(1, answer(421))],
                requests: 1,
            },
            now,
        );
        store.apply(
            &hosts,
            JobResult::Direct {
                host: 1,
                addr: "127.0.0.1".parse().unwrap(),
                protocol: DirectProtocol::Negotiate,
                outcome: answer(200),
            },
            now,
        );
        // c is new, a and b stay: their samples survive the reload.
        let added = store.set_entries(&[entry("b.test", 1), entry("a.test", 2), entry("c.test", 3)]);
        assert_eq!(added, vec!["c.test:443"]);
        let r = store.records(1);
        assert_eq!(r.hosts[0].entry.host, "b.test");
        assert_eq!(r.hosts[0].endpoints.values().next().unwrap().direct.len(), 1);
        assert_eq!(
            r.coalesced
                .get(&(1, 0, "127.0.0.1".parse().unwrap()))
                .map(|v| v.len()),
            Some(1)
        );
        // b removed: the pair's samples go with it.
        store.set_entries(&[entry("a.test", 1)]);
        assert!(store.records(1).coalesced.is_empty());
    }

    #[test]
    fn samples_are_bounded_and_pruned_to_the_window() {
        let mut store = Store::new(Duration::from_secs(10), "/".into());
        store.set_entries(&[entry("a.test", 1)]);
        store.set_dns("a.test:443", dns("127.0.0.1"));
        let hosts = store.hosts_for_jobs();
        let start = Instant::now();
        for i in 0..(MAX_SAMPLES as u64 + 100) {
            store.apply(
                &hosts,
                JobResult::Direct {
                    host: 0,
                    addr: "127.0.0.1".parse().unwrap(),
                    protocol: DirectProtocol::Negotiate,
                    outcome: answer(200),
                },
                start + Duration::from_millis(i),
            );
        }
        assert_eq!(
            store.records(1).hosts[0]
                .endpoints
                .values()
                .next()
                .unwrap()
                .direct
                .len(),
            MAX_SAMPLES
        );
        store.prune(start + Duration::from_secs(3600));
        assert!(store.records(1).hosts[0]
            .endpoints
            .values()
            .next()
            .unwrap()
            .direct
            .is_empty());
    }

    #[test]
    fn dns_answers_are_reused_within_their_ttl() {
        let mut store = Store::new(Duration::from_secs(60), "/".into());
        store.set_entries(&[entry("a.test", 1), entry("b.test", 2), entry("c.test", 3)]);
        let now = Instant::now();
        assert!(!store.dns_fresh("a.test:443", now), "never resolved");
        store.set_dns(
            "a.test:443",
            DnsAnswer {
                ttl_s: Some(30),
                ..dns("127.0.0.1")
            },
        );
        assert!(store.dns_fresh("a.test:443", Instant::now()));
        assert!(!store.dns_fresh("a.test:443", Instant::now() + Duration::from_secs(31)));
        store.set_dns(
            "b.test:443",
            DnsAnswer {
                error: Some("SERVFAIL".into()),
                ..Default::default()
            },
        );
        assert!(
            !store.dns_fresh("b.test:443", Instant::now()),
            "failures are retried"
        );
        store.set_dns(
            "c.test:443",
            DnsAnswer {
                overridden: true,
                ..dns("127.0.0.1")
            },
        );
        assert!(store.dns_fresh("c.test:443", Instant::now() + Duration::from_secs(86_400)));
    }

    #[test]
    fn verdict_changes_become_events() {
        let mut store = Store::new(Duration::from_secs(60), "/".into());
        store.set_entries(&[entry("a.test", 1), entry("b.test", 2)]);
        store.set_dns("a.test:443", dns("127.0.0.1"));
        store.set_dns("b.test:443", dns("127.0.0.1"));
        let view = store.publish(Instant::now(), EngineStatus::default(), true);
        // Without a handshake the pair is an error, which is not worth an event on its own.
        assert_eq!(view.report.pairs.len(), 2);
        assert!(view.events.is_empty(), "{:?}", view.events);
        assert_eq!(view.histories.len(), 2);
        assert!(view.histories[0].points().iter().all(|x| x.is_none()));
    }

    /// Coverage in the live view is the share of coalescable pairs probed within the window:
    /// pairs probed in earlier cycles still count while their samples are in the window, and
    /// stop counting once they fall out of it.
    #[test]
    fn coverage_is_computed_over_the_window() {
        use crate::testing::net::{Pki, Validity};
        let pki = Pki::new("coverage test CA");
        let (chain, _) = pki.leaf(&["*.w.test"], Validity::Current);
        let tls = TlsInfo {
            alpn: Some("h2".into()),
            version: "TLSv1.3".into(),
            chain,
            chain_error: None,
            connect_time: Duration::from_millis(1),
            handshake_time: Duration::from_millis(1),
        };
        let mut store = Store::new(Duration::from_secs(60), "/".into());
        store.set_entries(&[entry("a.w.test", 1), entry("b.w.test", 2)]);
        store.set_dns("a.w.test:443", dns("127.0.0.1"));
        store.set_dns("b.w.test:443", dns("127.0.0.1"));
        let hosts = store.hosts_for_jobs();
        let addr: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        let origin = |host: usize, target: usize| JobResult::Origin {
            host,
            addr,
            handshake: Ok(tls.clone()),
            own: Some(answer(200)),
            coalesced: vec![(target, answer(200))],
            requests: 2,
        };
        // Cycle 1 probes a → b only; both handshakes are known.
        store.apply(&hosts, origin(0, 1), t0);
        store.apply(
            &hosts,
            JobResult::Origin {
                host: 1,
                addr,
                handshake: Ok(tls.clone()),
                own: Some(answer(200)),
                coalesced: vec![],
                requests: 1,
            },
            t0,
        );
        let v = store.publish(t0 + Duration::from_secs(1), EngineStatus::default(), false);
        assert_eq!(v.report.summary.coverage, 0.5, "{:?}", v.report.summary);
        // Cycle 2, 30 s later, probes b → a only: a → b from cycle 1 is still in the window.
        store.apply(&hosts, origin(1, 0), t0 + Duration::from_secs(30));
        let v = store.publish(t0 + Duration::from_secs(31), EngineStatus::default(), false);
        assert_eq!(v.report.summary.coverage, 1.0, "{:?}", v.report.summary);
        // 70 s: a → b (t0) fell out of the 60 s window, b → a (t0 + 30 s) did not.
        let v = store.publish(t0 + Duration::from_secs(70), EngineStatus::default(), false);
        assert_eq!(v.report.summary.coverage, 0.5, "{:?}", v.report.summary);
    }

    /// The view without what legitimately differs between two stores fed the same way: the
    /// second the report was made at, and the publish bookkeeping.
    fn comparable(mut v: LiveView) -> LiveView {
        v.report.generated_at = Timestamp::default();
        for e in Arc::make_mut(&mut v.events) {
            e.at = Timestamp::default();
        }
        v.changes = ViewChanges::default();
        v
    }

    /// Incremental publishing gives exactly what a full recomputation gives (and what
    /// `analysis::analyse` gives over the same records), over random applies, prunes, DNS
    /// changes and reloads, with and without events.
    #[test]
    fn incremental_publish_equals_full_recomputation() {
        use crate::testing::synth::{answer, Synth};
        use rand::{Rng, SeedableRng};
        for seed in 0..6u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let synth = Synth::new(48, 6);
            let window = Duration::from_secs(90);
            let mut inc = synth.store(window);
            let mut full = synth.store(window);
            full.always_full = true;
            full.started = inc.started;
            let all = synth.entries();
            let mut listed: Vec<Entry> = all.clone();
            let mut hosts = inc.hosts_for_jobs();
            let mut now = Instant::now();
            let mut cycles = 0u64;
            let mut layouts = 0;
            for step in 0..300u64 {
                match rng.random_range(0..100) {
                    0..=39 => {
                        let i = rng.random_range(0..hosts.len().max(1));
                        let key = hosts.get(i).map(|h| h.entry.key()).unwrap_or_default();
                        let Some(n) = all.iter().position(|e| e.key() == key) else {
                            continue;
                        };
                        let round = rng.random_range(0..6);
                        let failed = rng.random_bool(0.1);
                        let make = || {
                            let mut job = synth.origin(n, round);
                            if let JobResult::Origin {
                                host,
                                coalesced,
                                addr,
                                handshake,
                                ..
                            } = &mut job
                            {
                                // Job indices refer to the current hosts list.
                                *host = i;
                                *addr = hosts[i].dns.addresses.first().copied().unwrap_or(*addr);
                                coalesced.retain_mut(|(t, _)| {
                                    let tk = all[*t].key();
                                    match hosts.iter().position(|h| h.entry.key() == tk) {
                                        Some(p) => {
                                            *t = p;
                                            true
                                        }
                                        None => false,
                                    }
                                });
                                if failed {
                                    *handshake = Err(ProbeError::Tls("handshake timed out".into()));
                                }
                            }
                            job
                        };
                        inc.apply(&hosts, make(), now);
                        full.apply(&hosts, make(), now);
                    }
                    40..=64 => {
                        let i = rng.random_range(0..hosts.len().max(1));
                        let Some(addr) = hosts.get(i).and_then(|h| h.dns.addresses.first().copied()) else {
                            continue;
                        };
                        let kind = rng.random_range(0..4);
                        let protocol = if rng.random_bool(0.2) {
                            DirectProtocol::Http1Only
                        } else {
                            DirectProtocol::Negotiate
                        };
                        let make = || JobResult::Direct {
                            host: i,
                            addr,
                            protocol,
                            outcome: match kind {
                                0 => Err(ProbeError::Http("stream reset".into())),
                                1 => answer(421, ""),
                                2 => answer(503, "down"),
                                _ => answer(200, &format!("page {i}")),
                            },
                        };
                        inc.apply(&hosts, make(), now);
                        full.apply(&hosts, make(), now);
                    }
                    65..=72 => {
                        // Move a name to another group's address, break it, or restore it.
                        let e = &listed[rng.random_range(0..listed.len())];
                        let n = all.iter().position(|x| x == e).unwrap();
                        let answer = match rng.random_range(0..3) {
                            0 => synth.dns(rng.random_range(0..all.len())),
                            1 => DnsAnswer {
                                error: Some("SERVFAIL".into()),
                                ..Default::default()
                            },
                            _ => synth.dns(n),
                        };
                        inc.set_dns(&e.key(), answer.clone());
                        full.set_dns(&e.key(), answer);
                        if rng.random_bool(0.5) {
                            hosts = inc.hosts_for_jobs();
                        }
                    }
                    73..=76 => {
                        // A reload: some names go, some come back, the order changes.
                        listed = all.iter().filter(|_| rng.random_bool(0.85)).cloned().collect();
                        if listed.is_empty() {
                            listed.push(all[0].clone());
                        }
                        if rng.random_bool(0.3) {
                            listed.reverse();
                        }
                        inc.set_entries(&listed);
                        full.set_entries(&listed);
                        for e in &listed {
                            let n = all.iter().position(|x| x == e).unwrap();
                            if inc.dns_fresh(&e.key(), Instant::now()) {
                                continue;
                            }
                            inc.set_dns(&e.key(), synth.dns(n));
                            full.set_dns(&e.key(), synth.dns(n));
                        }
                        hosts = inc.hosts_for_jobs();
                    }
                    77..=84 => now += Duration::from_secs(rng.random_range(1..40)),
                    85..=87 => cycles += 1,
                    _ => {}
                }
                if rng.random_bool(0.3) || step == 299 {
                    now += Duration::from_millis(rng.random_range(0..2000));
                    let status = EngineStatus {
                        cycles,
                        ..Default::default()
                    };
                    let record = cycles > 0;
                    let a = inc.publish(now, status.clone(), record);
                    let b = full.publish(now, status, record);
                    if let (Some(oldest), Some(cutoff)) = (inc.oldest_sample(), now.checked_sub(window)) {
                        assert!(
                            oldest >= cutoff,
                            "seed {seed} step {step}: a sample outlived the window"
                        );
                    }
                    assert!(inc.coalesced.values().all(|p| !p.queues.is_empty()));
                    layouts += usize::from(a.changes.layout == a.changes.seq);
                    assert_eq!(a.changes.pairs.len(), a.report.pairs.len());
                    assert_eq!(a.changes.hosts.len(), a.report.hosts.len());
                    // What the scheduler relies on: problems come first, `is_listed` knows the list.
                    let problem = |p: &Arc<PairReport>| p.verdict.is_problem();
                    let problems = a.report.pairs.iter().filter(|p| problem(p)).count();
                    assert!(a.report.pairs[..problems].iter().all(problem));
                    let listed: HashSet<(&str, &str)> =
                        a.report.pairs.iter().map(|p| (&*p.origin, &*p.target)).collect();
                    assert!(listed.iter().all(|(o, t)| inc.is_listed(o, t)));
                    for e in a.events.iter() {
                        let expected = listed.contains(&(e.origin.as_str(), e.target.as_str()));
                        assert_eq!(inc.is_listed(&e.origin, &e.target), expected);
                    }
                    let mut fresh =
                        analysis::analyse(&inc.records(cycles), false, now.duration_since(inc.started));
                    fresh.generated_at = Timestamp::default();
                    let (a, b) = (comparable(a), comparable(b));
                    assert_eq!(a.report, fresh, "seed {seed} step {step}: incremental vs analyse");
                    assert_eq!(a, b, "seed {seed} step {step}: incremental vs full");
                }
            }
            assert!(layouts > 2, "the layout changed only {layouts} times");
            let last = inc.publish(now, EngineStatus::default(), true);
            assert!(!last.report.pairs.is_empty());
        }
    }

    /// A 40-name synthetic store (4 groups of 10) after one probed round, the round's start and
    /// its first view.
    fn probed_store() -> (
        crate::testing::synth::Synth,
        Store,
        Vec<HostRecord>,
        Instant,
        LiveView,
    ) {
        let synth = crate::testing::synth::Synth::new(40, 10);
        let mut store = synth.store(Duration::from_secs(300));
        let hosts = store.hosts_for_jobs();
        let t0 = Instant::now();
        synth.round(&mut store, &hosts, 0, t0);
        let v1 = store.publish(t0 + Duration::from_secs(1), EngineStatus::default(), true);
        (synth, store, hosts, t0, v1)
    }

    /// Every pair report of `b` is the very one of `a` (shared, not rebuilt).
    fn shares_pair_reports(a: &LiveView, b: &LiveView) -> bool {
        a.report.pairs.len() == b.report.pairs.len()
            && a.report
                .pairs
                .iter()
                .zip(&b.report.pairs)
                .all(|(x, y)| Arc::ptr_eq(x, y))
    }

    /// A view that changed nothing shares its reports with the previous one, and numbers
    /// what changed.
    #[test]
    fn unchanged_reports_are_shared_between_views() {
        let (synth, mut store, hosts, t0, v1) = probed_store();
        let v2 = store.publish(t0 + Duration::from_secs(2), EngineStatus::default(), true);
        assert_eq!(v1.report.pairs.len(), 4 * 10 * 9);
        assert!(shares_pair_reports(&v1, &v2));
        assert!(v1
            .report
            .hosts
            .iter()
            .zip(&v2.report.hosts)
            .all(|(a, b)| Arc::ptr_eq(a, b)));
        assert_eq!((v2.changes.seq, v2.changes.layout), (2, 1));
        assert!(v2.changes.pairs.iter().all(|&s| s == 1));
        // One new direct answer for host 3 changes host 3 and the pairs towards it only.
        store.apply(&hosts, synth.direct(3), t0 + Duration::from_secs(2));
        let v3 = store.publish(t0 + Duration::from_secs(3), EngineStatus::default(), true);
        let changed: Vec<(&str, &str)> = v3
            .report
            .pairs
            .iter()
            .zip(&v3.changes.pairs)
            .filter(|(_, &s)| s == 3)
            .map(|(p, _)| (&*p.origin, &*p.target))
            .collect();
        assert_eq!(changed.len(), 9, "{changed:?}");
        assert!(changed.iter().all(|(_, t)| t.starts_with("t00003.")));
        assert_eq!(v3.changes.hosts.iter().filter(|&&s| s == 3).count(), 1);
        assert_eq!(v3.changes.layout, 1);
    }

    /// A DNS answer that only refreshes the TTL (same addresses) changes the host's report but
    /// re-evaluates none of its pairs; new addresses re-evaluate them.
    #[test]
    fn dns_refresh_with_the_same_addresses_leaves_pairs_alone() {
        let (_, mut store, _, t0, v1) = probed_store();
        let key = format!("{}:{}", v1.report.hosts[3].host, v1.report.hosts[3].port);
        let mut refreshed = store.hosts[3].dns.clone();
        refreshed.ttl_s = Some(refreshed.ttl_s.unwrap_or(0) + 17);
        let before = store.evaluations;
        store.set_dns(&key, refreshed.clone());
        let v2 = store.publish(t0 + Duration::from_secs(2), EngineStatus::default(), true);
        assert_eq!(store.evaluations, before, "no pair re-evaluated");
        assert_eq!(
            v2.report.hosts[3].dns.ttl_s, refreshed.ttl_s,
            "the host report shows the new TTL"
        );
        assert!(shares_pair_reports(&v1, &v2));
        // Moving to another address is a change: the host's pairs are evaluated again.
        let mut moved = refreshed;
        moved.addresses = vec!["127.0.9.9".parse().unwrap()];
        store.set_dns(&key, moved);
        store.publish(t0 + Duration::from_secs(3), EngineStatus::default(), true);
        assert!(
            store.evaluations > before,
            "no evaluation after the address changed"
        );
    }
}
