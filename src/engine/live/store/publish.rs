//! Publishing: the samples in the window turned into a `LiveView` through the same judgement
//! as `check`, plus the sparklines and the verdict-change events.
//!
//! Publishing is incremental: every change to a host's samples or DNS answer stamps the host
//! with a new generation, every change to a pair's coalesced samples marks the pair, and a
//! publish rebuilds only the host records, host reports and pair reports whose inputs changed
//! (host reports also when a certificate's days-left count moves). Unchanged reports are
//! shared (`Arc`) with the previous view. What is left per publish for every pair is pointer
//! work: a few comparisons and reference counts. A reload rebuilds everything once.
//!
//! The phases, in order: `refresh_hosts` (records and reports), `note_pair_changes`,
//! `refresh_rows` (candidate targets per origin), `evaluate_pairs` (the pairs whose inputs
//! changed, gathered in contract order), `assemble` (groups, summary, the report),
//! `record_events` (verdict changes).
//!
//! Views for `serve` list the pending pairs without samples by index
//! (`Store::list_pending_by_index`): their reports are not kept, the view makes them when
//! read (`PendingSource`), from the host records they were judged on.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::engine::judge::analysis::{self, PairEval, PairIndex, Tally};
use crate::engine::judge::verdict::Refusal;
use crate::engine::record::{Coalesced, HostRecord};
use crate::engine::snapshot::{
    EngineStatus, Event, History, LiveView, PairReport, PairSource, PendingPairs, PendingRun, Snapshot,
    Timestamp, Verdict, VerdictEvent, ViewChanges, HISTORY_BUCKETS, SCHEMA,
};

use super::cache::{Cache, Kind, Listed, Slot};
use super::samples::{no_samples, PairSamples};
use super::{host_record, Store};

/// Capacity kept by the set of pairs evaluated between two event checks.
const UNCHECKED_KEPT: usize = 4096;

/// What one publish found changed beyond single reports.
#[derive(Default)]
struct Changed {
    /// The pair or host list (members or order) differs from the last view's.
    layout: bool,
    /// Some pair's listing, link or problem status changed: groups are made again.
    groups: bool,
}

/// The listed pairs of one publish, gathered by verdict, and what the summary and groups need.
struct Gathered {
    /// Per verdict (contract order): (report, sparkline, view of its last change).
    buckets: Vec<Vec<(Arc<PairReport>, History, u64)>>,
    /// The pending pairs in listing order, when they are listed by index: runs of pairs
    /// without a report, and (length 0) the place of a pending report in its bucket.
    runs: Vec<PendingRun>,
    by_index: bool,
    tally: Tally,
    /// (origin, target) of the pairs some client would coalesce: the edges of the groups.
    links: Vec<(usize, usize)>,
    /// Origins of the problem pairs.
    problem_origins: Vec<usize>,
}

impl Store {
    /// Analyse the window and publish: the view, with sparklines and new events.
    pub fn publish(&mut self, now: Instant, status: EngineStatus, record_events: bool) -> LiveView {
        self.prune(now);
        self.seq += 1;
        let unix = analysis::unix_now();
        #[cfg(test)]
        if self.always_full {
            self.cache.stale = true;
        }
        let mut changed = Changed::default();
        if self.cache.stale {
            self.reset_cache(&mut changed);
        }
        self.refresh_hosts(unix);
        self.note_pair_changes();
        self.refresh_rows(&mut changed);
        self.mark_dirty_pairs();
        let gathered = self.evaluate_pairs(now, &mut changed);
        let (report, histories, pair_seqs, pending) = self.assemble(gathered, &changed, &status, unix, now);
        let new_events = record_events && self.record_events(&report);
        if new_events || std::mem::take(&mut self.events_dirty) {
            self.events_view = Arc::new(self.events.iter().cloned().collect());
        }
        LiveView {
            changes: ViewChanges {
                seq: self.seq,
                layout: self.layout_seq,
                pairs: pair_seqs,
                hosts: self.cache.host_seqs.clone(),
            },
            report,
            histories,
            events: self.events_view.clone(),
            event_totals: self.event_totals,
            status,
            pending,
            vantages: None,
        }
    }

    /// Start from nothing: every record, report and pair is made (and so checked for events)
    /// again.
    fn reset_cache(&mut self, changed: &mut Changed) {
        let n = self.hosts.len();
        self.cache = Cache {
            records: self.hosts.iter().map(|h| Arc::new(host_record(h))).collect(),
            record_gens: self.hosts.iter().map(|h| h.gen).collect(),
            rows: (0..n).map(|_| Vec::new()).collect(),
            row_gens: vec![0; n],
            pair_gens: self.hosts.iter().map(|h| h.pair_gen).collect(),
            pair_changed: vec![0; n],
            ..Cache::default()
        };
        self.topology_changed = true;
        changed.layout = true;
        changed.groups = true;
    }

    /// Host records and reports whose host changed (reports also when a day passed).
    fn refresh_hosts(&mut self, unix: i64) {
        let (seq, n) = (self.seq, self.hosts.len());
        let cache = &mut self.cache;
        let mut rebuilt = vec![false; n];
        for (i, h) in self.hosts.iter().enumerate() {
            if cache.record_gens[i] != h.gen {
                cache.records[i] = Arc::new(host_record(h));
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
            return;
        }
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

    /// Stamp the hosts whose pair inputs changed since the last publish with this one: their
    /// pairs evaluated before it are evaluated again.
    fn note_pair_changes(&mut self) {
        let cache = &mut self.cache;
        for (i, h) in self.hosts.iter().enumerate() {
            if cache.pair_gens[i] != h.pair_gen {
                cache.pair_gens[i] = h.pair_gen;
                cache.pair_changed[i] = self.seq;
            }
        }
    }

    /// Linked targets: all again when an address list changed, else the changed origins'.
    /// A row keeps the slots of the targets it still has.
    fn refresh_rows(&mut self, changed: &mut Changed) {
        let cache = &mut self.cache;
        if self.topology_changed || cache.index.is_none() {
            cache.index = Some(PairIndex::new(&cache.records));
            cache.row_gens.iter_mut().for_each(|g| *g = u64::MAX);
            changed.layout = true;
            self.topology_changed = false;
        }
        let Some(index) = cache.index.as_ref() else {
            return;
        };
        for a in 0..self.hosts.len() {
            if cache.row_gens[a] == self.hosts[a].pair_gen {
                continue;
            }
            cache.row_gens[a] = self.hosts[a].pair_gen;
            let targets = index.linked_targets(&cache.records, a);
            let old = std::mem::take(&mut cache.rows[a]);
            let mut old = old.into_iter().peekable();
            let mut row = Vec::with_capacity(targets.len());
            let mut gone = |slot: Slot| {
                if slot.shape() != (false, false, false) {
                    changed.layout = true;
                    changed.groups = true;
                }
            };
            for b in targets.into_iter().filter(|&b| b != a) {
                while let Some(slot) = old.next_if(|s| s.target() < b) {
                    gone(slot);
                }
                match old.next_if(|s| s.target() == b) {
                    Some(slot) => row.push(slot),
                    None => row.push(Slot::new(b)),
                }
            }
            old.for_each(&mut gone);
            cache.rows[a] = row;
        }
    }

    /// The pairs whose coalesced samples changed since the last publish are evaluated again.
    fn mark_dirty_pairs(&mut self) {
        for (a, b) in self.dirty_pairs.drain() {
            if let Some(row) = self.cache.rows.get_mut(a) {
                if let Ok(k) = row.binary_search_by_key(&b, |s| s.target()) {
                    row[k].dirty = true;
                }
            }
        }
    }

    /// Evaluate the pairs whose inputs changed; gather all in contract order.
    fn evaluate_pairs(&mut self, now: Instant, changed: &mut Changed) -> Gathered {
        let mut gathered = Gathered {
            buckets: self
                .bucket_sizes
                .iter()
                .map(|&n| Vec::with_capacity(n + n / 8))
                .collect(),
            runs: Vec::new(),
            by_index: self.pending_by_index,
            tally: Tally::default(),
            links: Vec::new(),
            problem_origins: Vec::new(),
        };
        let bucket_width = (self.window / HISTORY_BUCKETS as u32).max(Duration::from_millis(1));
        let clock = History::clock(now, bucket_width);
        for a in 0..self.hosts.len() {
            let origin_changed = self.cache.pair_changed[a];
            for k in 0..self.cache.rows[a].len() {
                let slot = &self.cache.rows[a][k];
                let stale = slot.evaluated < origin_changed.max(self.cache.pair_changed[slot.target()]);
                if slot.dirty || stale {
                    self.evaluate_slot(a, k, changed);
                }
                let slot = &self.cache.rows[a][k];
                gathered.add(a, slot, &clock);
            }
        }
        for (size, bucket) in self.bucket_sizes.iter_mut().zip(&gathered.buckets) {
            *size = bucket.len();
        }
        gathered
    }

    /// Evaluate the pair of `rows[a][k]` again.
    fn evaluate_slot(&mut self, a: usize, k: usize, changed: &mut Changed) {
        #[cfg(test)]
        {
            self.evaluations += 1;
        }
        let b = self.cache.rows[a][k].target();
        let eval = self.judge_pair(a, b);
        let queues = self.coalesced.get(&(a, b));
        let by_index = self.pending_by_index;
        let seq = self.seq;
        let slot = &mut self.cache.rows[a][k];
        let (before, was_by_index) = (slot.shape(), slot.kind == Kind::Pending);
        match eval {
            PairEval::Skip | PairEval::CertOnly => {
                slot.kind = match eval {
                    PairEval::CertOnly => Kind::CertOnly,
                    _ => Kind::Skip,
                };
                slot.link = false;
                slot.listed = None;
            }
            PairEval::Listed { link, verdict, .. }
                if by_index && verdict == Verdict::Pending && queues.is_none() =>
            {
                slot.kind = Kind::Pending;
                slot.link = link;
                slot.listed = None;
            }
            PairEval::Listed {
                report,
                verdict,
                link,
                cert_only: _,
            } => {
                slot.kind = Kind::Listed;
                slot.link = link;
                let samples = queues.map(answered_samples).unwrap_or_else(no_samples);
                match &mut slot.listed {
                    // An equal report keeps its identity (readers skip it).
                    Some(l) if *l.report == *report => l.samples = samples,
                    _ => {
                        // Waiting for a probe is not a verdict (see `record_events`).
                        if verdict != Verdict::Pending {
                            self.cache.unchecked.insert((a, b));
                        }
                        slot.listed = Some(Box::new(Listed {
                            report: Arc::from(report),
                            verdict,
                            seq,
                            samples,
                        }));
                    }
                }
            }
        }
        let after = slot.shape();
        if before != after {
            changed.groups = true;
            changed.layout |= before.0 != after.0;
        }
        // A pair moving between the reports and the pairs listed by index changes the list.
        changed.layout |= was_by_index != (slot.kind == Kind::Pending);
        slot.evaluated = seq;
        slot.dirty = false;
    }

    /// Judge `a → b` from the records and the pair's samples as this publish has them.
    fn judge_pair(&self, a: usize, b: usize) -> PairEval {
        // The pair's samples as the judgement reads them (made for this evaluation only), per
        // protocol.
        type Queues =
            std::collections::BTreeMap<IpAddr, super::samples::Timed<super::samples::CoalescedSample>>;
        let taken = |queues: fn(&PairSamples) -> &Queues| -> Vec<(IpAddr, Vec<Coalesced>)> {
            self.coalesced
                .get(&(a, b))
                .map(|p| {
                    queues(p)
                        .iter()
                        .map(|(addr, q)| (*addr, q.iter().map(|(_, s)| s.coalesced()).collect()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (h2, h3) = (taken(|p| &p.queues), taken(|p| &p.h3));
        fn at(samples: &[(IpAddr, Vec<Coalesced>)], addr: IpAddr) -> Vec<&Coalesced> {
            samples
                .iter()
                .find(|(x, _)| *x == addr)
                .map(|(_, q)| q.iter().collect())
                .unwrap_or_default()
        }
        let lookup = |addr: IpAddr| at(&h2, addr);
        let lookup_h3 = |addr: IpAddr| at(&h3, addr);
        // The other hosts at an address as this publish knows them: a pair is evaluated again
        // when its own samples change, so a neighbour's newer page shows at the pair's next
        // probe, not at once.
        let (records, index) = (&self.cache.records, self.cache.index.as_ref());
        let port = records[a].entry.port;
        let neighbours = |addr: IpAddr| index.map(|i| i.hosts_at(records, addr, port)).unwrap_or_default();
        // Probed over HTTP/3 at some address: judged over both protocols (as in `analyse`).
        let over_h3 = records[a].endpoints.values().any(|ep| ep.h3.is_some());
        let requests = (
            &lookup as analysis::Requests,
            over_h3.then_some(&lookup_h3 as analysis::Requests),
        );
        analysis::evaluate_pair(&records[a], &records[b], requests, &neighbours, false)
    }

    /// Groups (when they changed), the summary and the contract report, with the sparklines
    /// and change numbers aligned with its pairs.
    fn assemble(
        &mut self,
        gathered: Gathered,
        changed: &Changed,
        status: &EngineStatus,
        unix: i64,
        now: Instant,
    ) -> (Snapshot, Vec<History>, Vec<u64>, PendingPairs) {
        let Gathered {
            buckets,
            mut runs,
            by_index: _,
            tally,
            links,
            problem_origins,
        } = gathered;
        // The pending reports' places in their bucket become places in the list.
        let before_pending: usize = buckets[..Verdict::Pending as usize].iter().map(Vec::len).sum();
        for r in runs.iter_mut().filter(|r| r.len == 0) {
            r.first += before_pending as u32;
        }
        if changed.groups {
            let keys: Vec<String> = self.hosts.iter().map(|h| h.entry.key()).collect();
            self.cache.groups = analysis::groups(&keys, &links, &problem_origins);
        }
        if changed.layout {
            self.layout_seq = self.seq;
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
            &self.cache.hosts,
            &tally,
            (self.connections, self.requests, rounds),
            now.duration_since(self.started),
        );
        let report = Snapshot {
            schema: SCHEMA.into(),
            generated_at: Timestamp::from_unix(unix),
            vantage: None,
            hosts: self.cache.hosts.clone(),
            pairs,
            groups: self.cache.groups.clone(),
            summary,
        };
        let pending = if runs.is_empty() {
            PendingPairs::default()
        } else {
            let records: Arc<[Arc<HostRecord>]> = Arc::from(self.cache.records.as_slice());
            let source = PendingSource {
                records,
                index: OnceLock::new(),
            };
            PendingPairs::new(runs, Arc::new(source))
        };
        (report, histories, pair_seqs, pending)
    }

    /// Verdict changes, in the order of the report, among the pairs evaluated since the last
    /// publish that recorded events (the others kept their verdict). True when some were new.
    fn record_events(&mut self, report: &Snapshot) -> bool {
        let cache = &mut self.cache;
        if cache.unchecked.is_empty() {
            return false;
        }
        let mut check: Vec<(Verdict, usize, usize, Arc<PairReport>)> = Vec::new();
        for (a, b) in cache.unchecked.drain() {
            let Some(row) = cache.rows.get(a) else { continue };
            let Ok(k) = row.binary_search_by_key(&b, |s| s.target()) else {
                continue;
            };
            // Waiting for a probe is not a verdict: the last one stands (and is not kept for
            // each of the many pairs a big list leaves pending).
            match (row[k].kind, &row[k].listed) {
                (Kind::Listed, Some(l)) if l.verdict != Verdict::Pending => {
                    check.push((l.verdict, a, b, l.report.clone()));
                }
                _ => {}
            }
        }
        // The first publish evaluates every pair: its table is not kept for the few after.
        cache.unchecked.shrink_to(UNCHECKED_KEPT);
        check.sort_unstable_by_key(|(v, a, b, _)| (*v, *a, *b));
        let mut new_events = false;
        for (_, _, _, p) in check {
            let key = (p.origin.clone(), p.target.clone());
            let previous = self.last_verdicts.get(&key).copied();
            if previous == Some(p.verdict) {
                continue;
            }
            if previous.is_some() || p.verdict.is_problem() {
                new_events = true;
                self.push_event(Event::Verdict(VerdictEvent {
                    at: report.generated_at,
                    origin: p.origin.to_string(),
                    target: p.target.to_string(),
                    from: previous,
                    to: p.verdict,
                    message: p.explanation.to_string(),
                }));
            }
            self.last_verdicts.insert(key, p.verdict);
        }
        new_events
    }

    /// Is `origin → target` a pair of the last published view?
    pub fn is_listed(&self, origin: &str, target: &str) -> bool {
        let (Some(&a), Some(&b)) = (self.index.get(origin), self.index.get(target)) else {
            return false;
        };
        let Some(row) = self.cache.rows.get(a) else {
            return false;
        };
        row.binary_search_by_key(&b, |s| s.target())
            .is_ok_and(|k| row[k].shape().0)
    }
}

impl Gathered {
    /// Count a pair's slot in the summary and groups and, when listed, put it in its bucket
    /// (or its run).
    fn add(&mut self, origin: usize, slot: &Slot, clock: &Arc<(Instant, Duration)>) {
        if slot.link {
            self.links.push((origin, slot.target()));
        }
        match (slot.kind, &slot.listed) {
            (Kind::CertOnly, _) => self.tally.cert_only += 1,
            (Kind::Pending, _) => {
                self.tally.add_unprobed_pending(slot.target());
                let (origin, target) = (origin as u32, slot.target);
                match self.runs.last_mut() {
                    Some(r) if r.len > 0 && r.origin == origin && r.first + r.len == target => r.len += 1,
                    _ => self.runs.push(PendingRun {
                        origin,
                        first: target,
                        len: 1,
                    }),
                }
            }
            (Kind::Listed, Some(l)) => {
                if l.verdict.is_problem() {
                    self.problem_origins.push(origin);
                }
                self.tally.add(l.verdict, &l.report, slot.target());
                let bucket = &mut self.buckets[l.verdict as usize];
                if self.by_index && l.verdict == Verdict::Pending {
                    self.runs.push(PendingRun {
                        origin: origin as u32,
                        first: bucket.len() as u32,
                        len: 0,
                    });
                }
                bucket.push((
                    l.report.clone(),
                    History::from_samples(l.samples.clone(), clock),
                    l.seq,
                ));
            }
            (Kind::Skip | Kind::Listed, _) => {}
        }
    }
}

/// The host records one publish judged from: the reports of its pending pairs listed by
/// index are made from them, exactly as the publish would have made them.
struct PendingSource {
    records: Arc<[Arc<HostRecord>]>,
    /// "host:port" → index, made when first asked.
    index: OnceLock<HashMap<Arc<str>, u32>>,
}

impl PairSource for PendingSource {
    fn host_index(&self, key: &str) -> Option<u32> {
        let index = self.index.get_or_init(|| {
            self.records
                .iter()
                .enumerate()
                .map(|(i, r)| (r.key.clone(), i as u32))
                .collect()
        });
        index.get(key).copied()
    }

    fn report(&self, origin: u32, target: u32) -> Option<PairReport> {
        let a = self.records.get(origin as usize)?;
        let b = self.records.get(target as usize)?;
        let none = |_: IpAddr| -> Vec<&Coalesced> { Vec::new() };
        let nobody = |_: IpAddr| -> Vec<&HostRecord> { Vec::new() };
        match analysis::evaluate_pair(a, b, (&none, None), &nobody, false) {
            PairEval::Listed { report, .. } => Some(*report),
            PairEval::Skip | PairEval::CertOnly => None,
        }
    }
}

/// (when, refused) of the coalesced requests of a pair the server responded to (an answer or a
/// refusal: 421, a reset or GOAWAY clients retry), for its sparkline.
fn answered_samples(pair: &PairSamples) -> Arc<[(Instant, bool)]> {
    pair.all()
        .filter_map(
            |(at, c)| match (c.sample.shared(), Refusal::of(c.sample.shared())) {
                (_, Some(_)) => Some((*at, true)),
                (Ok(_), None) => Some((*at, false)),
                (Err(_), None) => None,
            },
        )
        .collect()
}
