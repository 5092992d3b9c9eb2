//! The scheduler, the task at the heart of the live engine: every `--interval`, with jitter,
//! it re-resolves every name and probes every (origin, address) and (host, address) on fresh
//! connections, within the global concurrency, the per-address cap and the request budget.
//! It owns the store (the single writer) and publishes `Arc<LiveView>`s on a watch channel;
//! readers never lock engine state. User commands and watch-file reloads arrive on a bounded
//! channel. Started through `live::spawn`.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use rand::Rng;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::engine::judge::confidence;
use crate::engine::judge::verdict::{is_healthy_status, wants_http1_check};
use crate::engine::live::planner::{self, CyclePlan, PairState, Plan, Slot};
use crate::engine::live::planner::{address_peers, origin_index};
use crate::engine::live::store::Store;
use crate::engine::probe::direct::DirectProtocol;
use crate::engine::probe::dns::DnsAnswer;
use crate::engine::prober::Prober;
use crate::engine::record::{h3_advert, EndpointRecord, HostRecord, Job, JobResult};
use crate::engine::snapshot::{EngineStatus, Event, LiveView, PairReport, Timestamp, Verdict};
use crate::watchlist::watcher::{Reload, ReloadError};
use crate::watchlist::{Entry, WatchList};

/// How often the view is republished at most while results arrive, unless the options say
/// otherwise (the dashboard; `serve` publishes less often).
pub const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// A view is published at most once per this many times its own cost.
const PUBLISH_COST_SHARE: u32 = 20;
/// ... and at least this often while results arrive.
const PUBLISH_MAX_GAP: Duration = Duration::from_secs(5);
/// How often the publish gap is looked at: a gap is kept to within this, not to within a
/// whole tick of `publish_every` (a view then came up to twice the gap late).
const PUBLISH_TICK: Duration = Duration::from_millis(250);

/// When the next view goes out: at most once per `gap` while results arrive (the gap grows
/// with the view's own cost, between `every` and PUBLISH_MAX_GAP), and as soon as a cycle's
/// probes are all in (at most once per PUBLISH_COST_SHARE times the cost), so that what a
/// cycle found shows within the interval that found it.
struct Cadence {
    every: Duration,
    gap: Duration,
    cost: Duration,
    last: std::time::Instant,
    /// Something changed since the last view.
    dirty: bool,
    /// The cycle whose end was published already.
    ended: u64,
}

impl Cadence {
    fn new(every: Duration) -> Cadence {
        Cadence {
            every,
            gap: every,
            cost: Duration::ZERO,
            last: std::time::Instant::now()
                .checked_sub(PUBLISH_MAX_GAP)
                .unwrap_or_else(std::time::Instant::now),
            dirty: true,
            ended: 0,
        }
    }

    /// A view is due: the gap has passed, or `cycle_ended` (a cycle's last result) and the
    /// view's cost allows it.
    fn due(&self, cycle_ended: Option<u64>) -> bool {
        let elapsed = self.last.elapsed();
        let at_end =
            cycle_ended.is_some_and(|c| c != self.ended) && elapsed >= self.cost * PUBLISH_COST_SHARE;
        self.dirty && (elapsed >= self.gap || at_end)
    }

    fn published(&mut self, cost: Duration, cycle_ended: Option<u64>) {
        self.dirty = false;
        self.cost = cost;
        self.last = std::time::Instant::now();
        self.gap = (cost * PUBLISH_COST_SHARE).clamp(self.every, PUBLISH_MAX_GAP);
        if let Some(c) = cycle_ended {
            self.ended = c;
        }
    }
}

/// What the engine is asked to do.
#[derive(Debug)]
pub enum EngineCommand {
    /// Probe this host ("host:port") now, or every host.
    ProbeNow(Option<String>),
    SetPaused(bool),
    /// A new watch-file content (Ok) or why it could not be used (Err, naming file:line).
    Reload(Result<WatchList, ReloadError>),
    Quit,
}

impl From<Reload> for EngineCommand {
    fn from(reload: Reload) -> Self {
        EngineCommand::Reload(reload.0)
    }
}

#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub interval: Duration,
    pub window: Duration,
    /// How long after its TTL a last good DNS answer is used while lookups fail.
    pub dns_grace: Duration,
    /// Share of the interval over which a cycle's jobs are spread at random (0..1).
    pub jitter: f64,
    /// Connections in flight at once, across all hosts.
    pub concurrency: usize,
    /// Shown in the header: the watch-file path, or "embedded lab".
    pub source: String,
    /// Shortest time between two published views while results arrive (`PUBLISH_EVERY` for
    /// the dashboard). Each publish costs analysis, so readers that need no 4 Hz refresh
    /// (metrics) ask for less.
    pub publish_every: Duration,
    /// What the demo lab is doing right now, shown in the header.
    pub lab_phase: Option<LabPhase>,
    /// The views list the pending pairs without samples by index (`LiveView::pending`), for
    /// readers that list pairs through `LiveView::listed_pairs` (`serve`); the dashboard's
    /// views have every pair in `report.pairs`.
    pub pending_by_index: bool,
    /// Probe HTTP/3 too where a host advertises it (`--protocols`): an HTTP/3 connection
    /// beside each HTTP/2 origin connection the planner chooses there.
    pub h3: bool,
}

/// Tells what the demo lab is doing right now (asked at every publish).
#[derive(Clone)]
pub struct LabPhase(pub Arc<dyn Fn() -> String + Send + Sync>);

impl std::fmt::Debug for LabPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LabPhase(..)")
    }
}

type JobKey = (String, IpAddr, u8);

enum Done {
    /// DNS answers of a batch; `spread` when the batch starts a cycle.
    Dns(Vec<(String, DnsAnswer)>, bool),
    /// A job's result, with the cycle it was planned in.
    Job(JobKey, u64, Arc<Vec<HostRecord>>, Box<JobResult>),
}

type Pending = Pin<Box<dyn std::future::Future<Output = Done> + Send>>;

fn job_key(hosts: &[HostRecord], job: &Job) -> JobKey {
    match *job {
        Job::Origin(h, a) => (hosts[h].entry.key(), a, 0),
        Job::Direct(h, a, DirectProtocol::Negotiate) => (hosts[h].entry.key(), a, 1),
        Job::Direct(h, a, DirectProtocol::Http1Only) => (hosts[h].entry.key(), a, 2),
        Job::OriginH3(h, a, _) => (hosts[h].entry.key(), a, 3),
    }
}

/// The engine task. Returns when `EngineCommand::Quit` arrives or every command sender is gone.
pub struct Scheduler {
    prober: Arc<Prober>,
    options: LiveOptions,
    store: Store,
    status: EngineStatus,
    pending: FuturesUnordered<Pending>,
    in_flight: HashSet<JobKey>,
    /// (host, address) pairs that already had an HTTP/1.1 fallback in this cycle.
    http1_done: HashSet<(String, IpAddr)>,
    permits: Arc<Semaphore>,
    /// Hosts to probe at once when their DNS answer arrives (new names, `r`).
    urgent: HashSet<String>,
    resolving: bool,
    /// The next DNS batch starts a cycle: spread its probes over the interval.
    cycle_pending: bool,
    /// What the planner knows of each pair, by hashed (origin, target) keys: compact enough
    /// for a million pairs.
    pair_states: HashMap<(u64, u64), PairState>,
    /// When a connection for (host id, address) last went out as an origin with all the
    /// targets it could carry.
    last_origin: HashMap<(u64, IpAddr), Instant>,
    /// Origin connections of this cycle cut short by the end of the budget: they keep their
    /// age, so they go first next cycle.
    partial: HashSet<(u64, IpAddr)>,
    /// The last healthy direct answer of (host id, address).
    last_direct_ok: HashMap<(u64, IpAddr), Instant>,
    /// (host id, address) whose last origin connection brought no answer for the host itself
    /// (no handshake, no HTTP/2, a failed request): it gets a direct request until one of its
    /// own answers or direct ones is healthy. Every other host's reference is the first answer
    /// of its origin connections.
    needs_direct: HashSet<(u64, IpAddr)>,
    /// When each host (id) was last requested as a coalesced target, on any origin's connection.
    target_last: HashMap<u64, Instant>,
    /// Requests the current cycle may still plan (None: no `--max-rps`).
    budget_left: Option<usize>,
    /// The current cycle's number: results of jobs planned earlier are not counted in it.
    cycle_id: u64,
    /// When an origin connection last went to each place (address and port): the planner
    /// reaches the least recently reached first (`planner::select_cycle`, step 7).
    last_place: HashMap<SocketAddr, Instant>,
    /// When an HTTP/3 connection for (host id, address) last went out: under a tight budget
    /// the oldest go first (`h3_twins`).
    last_h3: HashMap<(u64, IpAddr), Instant>,
}

impl Scheduler {
    pub fn new(prober: Arc<Prober>, list: &WatchList, options: LiveOptions) -> Scheduler {
        let mut store = Store::new(options.window, prober.options.default_path.clone());
        store.set_dns_grace(options.dns_grace);
        store.list_pending_by_index(options.pending_by_index);
        store.set_entries(&list.entries);
        let status = EngineStatus {
            source: options.source.clone(),
            hosts: list.entries.len(),
            last_reload: Some(Timestamp::now()),
            interval_s: options.interval.as_secs_f64(),
            max_rps: prober.options.max_rps,
            window_s: options.window.as_secs_f64(),
            ..EngineStatus::default()
        };
        Scheduler {
            permits: Arc::new(Semaphore::new(options.concurrency.max(1))),
            prober,
            options,
            store,
            status,
            pending: FuturesUnordered::new(),
            in_flight: HashSet::new(),
            http1_done: HashSet::new(),
            urgent: HashSet::new(),
            resolving: false,
            cycle_pending: false,
            pair_states: HashMap::new(),
            last_origin: HashMap::new(),
            partial: HashSet::new(),
            last_direct_ok: HashMap::new(),
            needs_direct: HashSet::new(),
            target_last: HashMap::new(),
            budget_left: None,
            cycle_id: 0,
            last_place: HashMap::new(),
            last_h3: HashMap::new(),
        }
    }

    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<EngineCommand>,
        views: watch::Sender<Arc<LiveView>>,
    ) {
        let mut next_cycle = tokio::time::Instant::now();
        let publish_every = self
            .options
            .publish_every
            .clamp(Duration::from_millis(10), PUBLISH_MAX_GAP);
        let mut publish = tokio::time::interval(publish_every.min(PUBLISH_TICK));
        publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cadence = Cadence::new(publish_every);
        let mut trim = super::trim::Trim::new();
        loop {
            let mut ended = None;
            tokio::select! {
                _ = tokio::time::sleep_until(next_cycle), if !self.status.paused => {
                    self.start_cycle();
                    next_cycle = tokio::time::Instant::now() + self.options.interval;
                }
                Some(done) = self.pending.next(), if !self.pending.is_empty() => {
                    self.finish(done);
                    cadence.dirty = true;
                    ended = self.cycle_ended();
                    if !cadence.due(ended) {
                        continue;
                    }
                }
                command = commands.recv() => {
                    match command {
                        None | Some(EngineCommand::Quit) => break,
                        Some(c) => self.command(c),
                    }
                    cadence.dirty = true;
                    continue;
                }
                _ = publish.tick() => {}
            }
            // Publishing analyses the whole window: at thousands of names it costs tens of
            // milliseconds, so the gap between views grows with that cost (`Cadence`).
            if cadence.due(ended) {
                let started = std::time::Instant::now();
                let view = self.view();
                cadence.published(started.elapsed(), ended);
                if views.send(Arc::new(view)).is_err() {
                    break;
                }
                // The view before this one is gone now (unless a reader holds it).
                if ended.is_some() {
                    trim.after_publish(Instant::now());
                }
            }
        }
    }

    /// The current cycle, when its last planned result just came in (nothing left in flight
    /// for it, no lookup pending).
    fn cycle_ended(&self) -> Option<u64> {
        let s = &self.status;
        (s.cycle_total > 0 && s.cycle_done >= s.cycle_total && !self.resolving && self.urgent.is_empty())
            .then_some(self.cycle_id)
    }

    fn view(&mut self) -> LiveView {
        self.status.hosts = self.store.entries().len();
        self.status.lab_phase = self.options.lab_phase.as_ref().map(|f| (f.0)());
        let record_events = self.status.cycles > 0;
        let view = self
            .store
            .publish(Instant::now(), self.status.clone(), record_events);
        // Problem pairs whose verdict is not settled yet (too few probes to tell a flaky
        // backend from a consistent one, or flickering) and listed pairs that just changed
        // are probed again first; a settled problem is probed again as its age comes. The
        // store lists problem pairs first, so only those are looked at (not every pair).
        for s in self.pair_states.values_mut() {
            s.urgent = false;
        }
        let problems = view
            .report
            .pairs
            .iter()
            .take_while(|p| p.verdict.is_problem())
            .filter(|p| unsettled(p))
            .map(|p| (&*p.origin, &*p.target));
        let recent = view
            .events
            .iter()
            .rev()
            .take(64)
            .filter_map(Event::as_verdict)
            .map(|e| (e.origin.as_str(), e.target.as_str()))
            .filter(|(o, t)| self.store.is_listed(o, t));
        for (o, t) in problems.chain(recent) {
            self.pair_states.entry((key_id(o), key_id(t))).or_default().urgent = true;
        }
        view
    }

    fn command(&mut self, c: EngineCommand) {
        match c {
            EngineCommand::ProbeNow(Some(key)) => {
                self.urgent.insert(key);
                self.resolve();
            }
            EngineCommand::ProbeNow(None) => {
                self.urgent.extend(self.store.entries().iter().map(Entry::key));
                self.resolve();
            }
            EngineCommand::SetPaused(p) => self.status.paused = p,
            EngineCommand::Reload(Ok(list)) => {
                let added = self.store.set_entries(&list.entries);
                let ids: HashSet<u64> = list.entries.iter().map(|e| key_id(&e.key())).collect();
                self.pair_states
                    .retain(|(o, t), _| ids.contains(o) && ids.contains(t));
                self.last_origin.retain(|(h, _), _| ids.contains(h));
                self.last_direct_ok.retain(|(h, _), _| ids.contains(h));
                self.needs_direct.retain(|(h, _)| ids.contains(h));
                self.target_last.retain(|h, _| ids.contains(h));
                self.status.last_reload = Some(Timestamp::now());
                self.status.reload_error = None;
                if !added.is_empty() {
                    self.urgent.extend(added);
                    self.resolve();
                }
            }
            EngineCommand::Reload(Err(e)) => self.status.reload_error = Some(e.to_string()),
            EngineCommand::Quit => {}
        }
    }

    fn start_cycle(&mut self) {
        if self.status.cycle_total > 0 {
            self.status.cycles += 1;
        }
        self.status.cycle_done = 0;
        self.status.cycle_total = 0;
        self.cycle_id += 1;
        self.http1_done.clear();
        let max_rps = self.prober.options.max_rps;
        self.budget_left = (max_rps > 0)
            .then(|| (f64::from(max_rps) * self.options.interval.as_secs_f64()).floor() as usize);
        // Forgotten after two windows (an address a name no longer has): such a connection
        // then simply counts as never made, which only makes it go first.
        let horizon = self.options.window * 2;
        let now = Instant::now();
        self.last_origin
            .retain(|_, at| now.saturating_duration_since(*at) < horizon);
        self.last_direct_ok
            .retain(|_, at| now.saturating_duration_since(*at) < horizon);
        self.target_last
            .retain(|_, at| now.saturating_duration_since(*at) < horizon);
        self.last_place
            .retain(|_, at| now.saturating_duration_since(*at) < horizon);
        self.last_h3
            .retain(|_, at| now.saturating_duration_since(*at) < horizon);
        let recent = |at: Option<Instant>| at.is_some_and(|at| now.saturating_duration_since(at) < horizon);
        self.pair_states
            .retain(|_, s| s.urgent || recent(s.last_probe) || recent(s.uncovered));
        self.partial.clear();
        // DNS answers are reused within their TTL: those hosts are probed at once, the others
        // when their new answer arrives.
        let now = Instant::now();
        let (fresh, stale): (Vec<String>, Vec<String>) = self
            .store
            .entries()
            .iter()
            .map(Entry::key)
            .partition(|k| self.store.dns_fresh(k, now));
        if !fresh.is_empty() {
            self.schedule(&fresh.into_iter().collect(), true);
        }
        if !stale.is_empty() {
            self.urgent.extend(stale);
            self.cycle_pending = true;
            self.resolve();
        }
    }

    /// Resolve the hosts waiting in `urgent` (one lookup batch at a time).
    fn resolve(&mut self) {
        if self.resolving || self.urgent.is_empty() {
            return;
        }
        self.resolving = true;
        let entries: Vec<Entry> = self
            .store
            .entries()
            .into_iter()
            .filter(|e| self.urgent.contains(&e.key()))
            .collect();
        let dns = self.prober.dns.clone();
        let concurrency = self.options.concurrency.max(1);
        let spread = std::mem::take(&mut self.cycle_pending);
        self.pending.push(Box::pin(async move {
            let answers = futures::stream::iter(entries)
                .map(|e| {
                    let dns = dns.clone();
                    async move { (e.key(), dns.resolve(&e.host, e.port).await) }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            Done::Dns(answers, spread)
        }));
    }

    fn finish(&mut self, done: Done) {
        match done {
            Done::Dns(answers, spread) => {
                self.resolving = false;
                let keys: HashSet<String> = answers.iter().map(|(k, _)| k.clone()).collect();
                for (key, answer) in answers {
                    self.store.set_dns(&key, answer);
                }
                self.urgent.retain(|k| !keys.contains(k));
                self.schedule(&keys, spread);
                // Names that became urgent while this batch was resolving.
                self.resolve();
            }
            Done::Job(key, cycle, hosts, result) => {
                self.in_flight.remove(&key);
                if cycle == self.cycle_id {
                    self.status.cycle_done += 1;
                }
                let fallback = match result.as_ref() {
                    JobResult::Direct {
                        host,
                        addr,
                        protocol: DirectProtocol::Negotiate,
                        outcome,
                    } => wants_http1_check(outcome).then_some(Job::Direct(
                        *host,
                        *addr,
                        DirectProtocol::Http1Only,
                    )),
                    _ => None,
                };
                self.remember(&hosts, &result);
                self.store.apply(&hosts, *result, Instant::now());
                if let Some(job) = fallback {
                    let (k, a, _) = job_key(&hosts, &job);
                    if self.http1_done.insert((k, a)) {
                        // Fallback requests are direct: no plan needed.
                        self.spawn(hosts, Arc::new(Plan::default()), job, Duration::ZERO);
                    }
                }
            }
        }
    }

    /// What the planner keeps of a job's result: when each connection, target and pair was
    /// last probed, which targets an origin's certificate does not cover, which hosts need a
    /// direct request because their own connections brought no answer.
    fn remember(&mut self, hosts: &[HostRecord], result: &JobResult) {
        let now = Instant::now();
        match result {
            JobResult::Origin {
                host,
                addr,
                own,
                coalesced,
                uncovered,
                ..
            } => {
                let origin = key_id(&hosts[*host].entry.key());
                let id = (origin, *addr);
                if !self.partial.remove(&id) {
                    self.last_origin.insert(id, now);
                }
                match own {
                    Some(o) if o.outcome.is_ok() => {
                        self.needs_direct.remove(&id);
                        if o.outcome.as_ref().is_ok_and(|a| is_healthy_status(a.status)) {
                            self.last_direct_ok.insert(id, now);
                        }
                    }
                    _ => {
                        self.needs_direct.insert(id);
                    }
                }
                for (b, _) in coalesced {
                    let target = key_id(&hosts[*b].entry.key());
                    self.pair_states.entry((origin, target)).or_default().last_probe = Some(now);
                    self.target_last.insert(target, now);
                }
                for b in uncovered {
                    let target = key_id(&hosts[*b].entry.key());
                    self.pair_states.entry((origin, target)).or_default().uncovered = Some(now);
                }
            }
            JobResult::Direct {
                host,
                addr,
                protocol: DirectProtocol::Negotiate,
                outcome,
            } => {
                let id = (key_id(&hosts[*host].entry.key()), *addr);
                if outcome.as_ref().is_ok_and(|a| is_healthy_status(a.status)) {
                    self.last_direct_ok.insert(id, now);
                    self.needs_direct.remove(&id);
                } else {
                    // A failing reference is asked again next cycle.
                    self.last_direct_ok.remove(&id);
                }
            }
            JobResult::OriginH3(r) => {
                self.last_h3
                    .insert((key_id(&hosts[r.host].entry.key()), r.addr), now);
            }
            JobResult::Direct { .. } => {}
        }
    }

    /// Plan the jobs of `keys`, spread at random over the jitter share of the interval (a new
    /// order every time, so that a balancer alternating per connection is sampled fairly).
    /// A cycle's jobs are chosen within what is left of its request budget
    /// (`planner::select_cycle`); probes asked for now (new names, `r`) all go out, paced only
    /// by the rate limiter.
    fn schedule(&mut self, keys: &HashSet<String>, spread_out: bool) {
        let hosts = Arc::new(self.store.hosts_for_jobs());
        let spread = if spread_out {
            self.options.interval.mul_f64(self.options.jitter.clamp(0.0, 1.0))
        } else {
            Duration::ZERO
        };
        let peers = address_peers(&hosts);
        let ids: Vec<u64> = hosts.iter().map(|h| key_id(&h.entry.key())).collect();
        let CycleJobs {
            jobs,
            slots,
            untried,
            urgent,
            h3,
        } = self.jobs_of(&hosts, keys, &peers, &ids);
        let budget = if spread_out { self.budget_left } else { None };
        if spread_out {
            // Every host of the list, not only `keys`: an origin connection with all its peers
            // per (host, address).
            let full: usize = hosts
                .iter()
                .zip(&peers)
                .map(|(h, c)| h.dns.addresses.len() * (1 + c.len()))
                .sum();
            self.status.full_rps = full as f64 / self.options.interval.as_secs_f64().max(0.001);
        }
        // HTTP/3 connections go beside the HTTP/2 ones chosen, from a share of the budget.
        let h3_reserve = planner::h3_reserve(&slots, &h3, budget);
        let cycle = planner::select_cycle(
            &slots,
            &untried,
            &urgent,
            budget.map(|b| b - h3_reserve.unwrap_or(0)),
            Instant::now(),
            self.direct_reuse(),
        );
        let twins = self.h3_twins(&jobs, &cycle, &h3, h3_reserve, &ids);
        if spread_out {
            if let Some(left) = self.budget_left.as_mut() {
                *left = left.saturating_sub(cycle.requests + twins.1);
            }
        }
        let mut plan = Plan {
            peers,
            origins: Some(Arc::new(origin_index(&hosts))),
            ..Plan::default()
        };
        if cycle.tight {
            self.limit_plan(&mut plan, &jobs, &slots, &cycle, &ids);
        }
        plan.per_origin_h3 = twins.2;
        let plan = Arc::new(plan);
        let mut rng = rand::rng();
        // A probe asked for now goes out now; a cycle's probes are spread.
        let chosen = jobs.into_iter().zip(cycle.chosen).filter(|(_, c)| c.is_some());
        for job in chosen.map(|(job, _)| job).chain(twins.0) {
            let delay = spread.mul_f64(rng.random::<f64>());
            self.spawn(hosts.clone(), plan.clone(), job, delay);
        }
    }

    /// The HTTP/3 connections of a cycle: one beside each chosen HTTP/2 origin connection
    /// whose host advertises HTTP/3 there (`h3[i]`: the UDP port of job `i`), carrying as many
    /// targets; with a reserve (a budget), the ones whose last HTTP/3 connection is oldest
    /// first while it lasts, the last one that fits with fewer targets. Returns the jobs, the
    /// requests they make at most, and under a budget each one's target limit.
    fn h3_twins(
        &self,
        jobs: &[Job],
        cycle: &CyclePlan,
        h3: &[Option<u16>],
        reserve: Option<usize>,
        ids: &[u64],
    ) -> (Vec<Job>, usize, HashMap<(usize, IpAddr), usize>) {
        let twins: Vec<(Job, Option<Instant>, usize)> = jobs
            .iter()
            .zip(&cycle.chosen)
            .zip(h3)
            .filter_map(|((job, chosen), port)| match (job, chosen, port) {
                (Job::Origin(i, addr), Some(targets), Some(port)) => {
                    let last = self.last_h3.get(&(ids[*i], *addr)).copied();
                    Some((Job::OriginH3(*i, *addr, *port), last, *targets))
                }
                _ => None,
            })
            .collect();
        let wanted: Vec<(Option<Instant>, usize)> = twins.iter().map(|t| (t.1, t.2)).collect();
        let (fitted, spent) = planner::fit_h3(&wanted, reserve);
        let mut out = Vec::new();
        let mut limits = HashMap::new();
        for (k, targets) in fitted {
            let job = twins[k].0;
            if let (Job::OriginH3(i, addr, _), Some(_)) = (job, reserve) {
                limits.insert((i, addr), targets);
            }
            out.push(job);
        }
        (out, spent, limits)
    }

    /// The jobs for the hosts of `keys` (an origin job per address, and a direct one where the
    /// host's own connections brought no answer), the slot each takes in the planner's choice,
    /// and per slot the targets it could try that no connection tried within the window.
    fn jobs_of(
        &self,
        hosts: &[HostRecord],
        keys: &HashSet<String>,
        peers: &[Vec<usize>],
        ids: &[u64],
    ) -> CycleJobs {
        let now = Instant::now();
        let (window, interval) = (self.options.window, self.options.interval);
        let untried_target =
            |t: usize| planner::target_due(self.target_last.get(&ids[t]).copied(), now, window, interval);
        let mut jobs = Vec::new();
        let mut slots = Vec::new();
        let mut untried = Vec::new();
        let mut urgent = Vec::new();
        let mut h3 = Vec::new();
        // Where the host serves HTTP/3 at `addr` (an Alt-Svc seen there, else its HTTPS
        // record), when HTTP/3 is probed.
        let no_signals = EndpointRecord::default();
        let h3_port = |h: &HostRecord, addr: &IpAddr| {
            let ep = h.endpoints.get(addr).map_or(&no_signals, |ep| ep);
            self.options.h3.then(|| h3_advert(h, ep)).flatten()
        };
        for (i, h) in hosts.iter().enumerate() {
            if !keys.contains(&h.entry.key()) {
                continue;
            }
            // One look at each pair's state: untried targets it covers, urgent pairs.
            let (mut open, mut again) = (Vec::new(), Vec::new());
            for &t in &peers[i] {
                let state = self.pair_states.get(&(ids[i], ids[t]));
                if state.is_none_or(|s| s.uncovered.is_none()) && untried_target(t) {
                    open.push(t);
                }
                if state.is_some_and(|s| s.urgent) {
                    again.push(t);
                }
            }
            for &addr in &h.dns.addresses {
                jobs.push(Job::Origin(i, addr));
                let place = SocketAddr::new(addr, h.entry.port);
                slots.push(Slot::Origin {
                    demand: peers[i].len(),
                    last: self.last_origin.get(&(ids[i], addr)).copied(),
                    urgent: again.len(),
                    place,
                    place_last: self.last_place.get(&place).copied(),
                });
                untried.push(open.clone());
                urgent.push(again.clone());
                h3.push(h3_port(h, &addr));
                if self.needs_direct.contains(&(ids[i], addr)) {
                    jobs.push(Job::Direct(i, addr, DirectProtocol::Negotiate));
                    slots.push(Slot::Direct {
                        last_ok: self.last_direct_ok.get(&(ids[i], addr)).copied(),
                    });
                    untried.push(Vec::new());
                    urgent.push(Vec::new());
                    h3.push(None);
                }
            }
        }
        CycleJobs {
            jobs,
            slots,
            untried,
            urgent,
            h3,
        }
    }

    /// Under a tight budget: the targets each chosen origin connection may carry, what the
    /// planner knows of each pair (to choose them), and which connections are cut short (they
    /// keep their age, so they go first next cycle).
    fn limit_plan(&mut self, plan: &mut Plan, jobs: &[Job], slots: &[Slot], cycle: &CyclePlan, ids: &[u64]) {
        for (((job, chosen), slot), assigned) in
            jobs.iter().zip(&cycle.chosen).zip(slots).zip(&cycle.assigned)
        {
            if let (Job::Origin(i, addr), Some(limit), Slot::Origin { demand, .. }) = (job, chosen, slot) {
                plan.per_origin.insert((*i, *addr), *limit);
                if !assigned.is_empty() {
                    plan.assigned.insert((*i, *addr), assigned.clone());
                }
                if *limit < (*demand).min(planner::MAX_TARGETS_PER_CONNECTION) {
                    self.partial.insert((ids[*i], *addr));
                }
            }
        }
        for (a, targets) in plan.peers.iter().enumerate() {
            for &b in targets {
                if let Some(s) = self.pair_states.get(&(ids[a], ids[b])) {
                    plan.state.insert((a, b), *s);
                }
            }
        }
    }

    /// How long a healthy direct answer is reused as the reference when the budget is tight:
    /// long enough to save requests, short enough that a fresh one lands before the old one
    /// leaves the window (a cycle's jobs are spread over up to one interval).
    fn direct_reuse(&self) -> Duration {
        self.options.window.saturating_sub(self.options.interval * 3)
    }

    fn spawn(&mut self, hosts: Arc<Vec<HostRecord>>, plan: Arc<Plan>, job: Job, delay: Duration) {
        let key = job_key(&hosts, &job);
        // A job still running from the last cycle (a slow host) is not doubled.
        if !self.in_flight.insert(key.clone()) {
            return;
        }
        self.status.cycle_total += 1;
        if let Job::Origin(i, addr) = job {
            if let Some(h) = hosts.get(i) {
                self.last_place
                    .insert(SocketAddr::new(addr, h.entry.port), Instant::now());
            }
        }
        let cycle = self.cycle_id;
        let prober = self.prober.clone();
        let permits = self.permits.clone();
        self.pending.push(Box::pin(async move {
            tokio::time::sleep(delay).await;
            let _permit = permits.acquire_owned().await;
            let result = prober.run_job(job, &hosts, plan.as_ref()).await;
            Done::Job(key, cycle, hosts, Box::new(result))
        }));
    }
}

/// The jobs a cycle could run and, per job, its slot in the planner's choice and (origins) the
/// targets it could try that no connection tried within the window, and those to probe again
/// first.
struct CycleJobs {
    jobs: Vec<Job>,
    slots: Vec<Slot>,
    untried: Vec<Vec<usize>>,
    urgent: Vec<Vec<usize>>,
    /// Per job: the UDP port of the HTTP/3 connection to open beside it (origin jobs of hosts
    /// that advertise HTTP/3 there), else None.
    h3: Vec<Option<u16>>,
}

/// A problem pair whose verdict more probes may still change: intermittent (its rate is
/// what matters), or an address whose refusals are too few to rule out the other verdict
/// (`confidence::inconclusive`).
fn unsettled(p: &PairReport) -> bool {
    p.verdict == Verdict::Intermittent
        || p.addresses.iter().any(|x| {
            let refused: u32 = x.refusals.values().sum();
            x.refusal_rate
                .is_some_and(|r| confidence::inconclusive(x.verdict, refused, r.n))
        })
}

/// A compact, stable id for a "host:port" key.
fn key_id(key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}
