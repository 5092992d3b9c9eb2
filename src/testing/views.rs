//! Dashboard views made by the real engine, for the dashboard's snapshot and key tests and the
//! render benchmark:
//!
//! - [`lab_view`]: the embedded lab probed by the real prober for a few cycles, each cycle's
//!   results folded into the live store and published as the scheduler does; the view after
//!   the last cycle, with the verdict-change events the store made on the way;
//! - [`synthetic_view`]: `Synth`'s workload (the scale lab's shape) published through the same
//!   store, at any size.
//!
//! Only what changes from run to run is masked: the lab's random port (shown as
//! [`SHOWN_PORT`]), wall-clock times (the views show [`START`] and the session's own clock
//! from there), certificate dates (kept at their distance from the start, to the hour) and
//! fingerprints, DNS and handshake timings. The load balancer of the lab alternates backends
//! per accepted connection: its jobs go one at a time in a fixed order per cycle, so that
//! which backend each origin connection lands on is the same in every run.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use crate::engine::judge::verdict::wants_http1_check;
use crate::engine::live::planner::{address_peers, origin_index, Plan};
use crate::engine::live::store::Store;
use crate::engine::oneshot;
use crate::engine::probe::direct::DirectProtocol;
use crate::engine::prober::{ProbeOptions, Prober};
use crate::engine::record::{h3_advert, EndpointRecord, HostRecord, Job, JobResult};
use crate::engine::snapshot::{
    EngineStatus, Event, FindingKind, GroupReport, HostEvent, HostReport, LiveView, PairReport, Snapshot,
    Summary, Timestamp, Verdict, VerdictEvent,
};
use crate::lab::{self, Lab, LabOptions};
use crate::testing::synth::Synth;
use crate::watchlist;

/// The port the lab view's names show (the lab listens on a random free port).
pub const SHOWN_PORT: u16 = 8443;
/// The wall-clock time the views' session starts at (the watch-file load).
pub const START: &str = "2026-11-28T12:00:00Z";
const START_UNIX: i64 = 1_795_867_200;

/// The session's `--interval` and `--window`: one sparkline bucket (window / 30) per cycle.
pub const INTERVAL: Duration = Duration::from_secs(4);
pub const WINDOW: Duration = Duration::from_secs(120);
/// The lab view's `--timeout` (the CLI's default). Only the blackhole reaches it: a probe of
/// the others took under 0.5 s on a 2-core machine at load average 8.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Probe jobs in flight at once (but for the blackhole's, which only wait): few enough that
/// a handshake on a loaded 2-core machine stays far below `TIMEOUT`.
const CONCURRENCY: usize = 8;
/// When a cycle's view is published, after the cycle's results.
const SETTLE: Duration = Duration::from_secs(1);

/// Cycles of the lab view: the store records events from the second publish on (as the
/// scheduler does), and the balancer's pairs change verdict at the third.
pub const LAB_CYCLES: u64 = 6;

/// The balancer's jobs of each cycle (origin then direct of its first name, then of its
/// second, as listed), in the order they run. The balancer numbers the connections it
/// accepts from 0, four a cycle: an origin connection at an odd position lands on the strict
/// backend (421 for the other name), at an even one on the backend routing by Host: pay → cart is refused in cycles 0, 1 and 3, cart → pay in 2, 4 and 5. So pay → cart
/// is misdirected after two cycles and both pairs are intermittent from the third, at 50%.
const BALANCER_ORDER: [[usize; 4]; LAB_CYCLES as usize] = [
    [1, 0, 2, 3],
    [3, 0, 2, 1],
    [0, 2, 3, 1],
    [1, 0, 2, 3],
    [3, 2, 0, 1],
    [0, 1, 3, 2],
];

/// The lab view (built once per process, on a runtime of its own: the first call takes about
/// ten seconds, most of them waiting for the blackhole's timeouts).
pub fn lab_view() -> LiveView {
    static VIEW: OnceLock<LiveView> = OnceLock::new();
    VIEW.get_or_init(|| {
        on_own_runtime(async {
            build_lab_view()
                .await
                .unwrap_or_else(|e| panic!("the lab view: {e:#}"))
        })
    })
    .clone()
}

/// Start the embedded lab, probe it for [`LAB_CYCLES`] cycles, stop it; the last view, masked.
pub async fn build_lab_view() -> anyhow::Result<LiveView> {
    let lab = Lab::start(LabOptions::default()).await?;
    // On an error or a panic, dropping `lab` stops its servers; here they are also awaited.
    let view = probe_lab(&lab).await;
    lab.shutdown().await;
    view
}

/// Probe the lab for every cycle (the jobs of all cycles at once, but the balancer's one at a
/// time), then fold each cycle's results into the live store and publish, as the scheduler
/// does when a cycle ends.
async fn probe_lab(lab: &Lab) -> anyhow::Result<LiveView> {
    let list = watchlist::load(&lab.watchfile)?;
    let prober = crate::testing::lab::prober(
        lab,
        TIMEOUT,
        ProbeOptions {
            timeout: TIMEOUT,
            concurrency: CONCURRENCY,
            max_rps: 0,
            // The blackhole's jobs of every cycle at once.
            per_address: 4 * LAB_CYCLES as usize,
            ..ProbeOptions::default()
        },
    );
    let mut store = Store::new(WINDOW, prober.options.default_path.clone());
    store.set_entries(&list.entries);
    for h in oneshot::resolve_all(&prober, &list.entries).await {
        store.set_dns(&h.key, h.dns);
    }
    let hosts = store.hosts_for_jobs();
    // As the scheduler plans: the names an ORIGIN frame lists ride on the connection too.
    let plan = Plan {
        peers: address_peers(&hosts),
        origins: Some(std::sync::Arc::new(origin_index(&hosts))),
        ..Plan::default()
    };
    // Every (host, address): an origin connection and a direct request, each cycle, and an
    // HTTP/3 origin connection where the name's HTTPS record advertises h3 (the scheduler's
    // twin of the HTTP/2 one).
    let no_signals = EndpointRecord::default();
    let cycle: Vec<Job> = hosts
        .iter()
        .enumerate()
        .flat_map(|(i, h)| {
            let h3 = h3_advert(h, &no_signals);
            h.dns.addresses.iter().flat_map(move |&a| {
                [Job::Origin(i, a), Job::Direct(i, a, DirectProtocol::Negotiate)]
                    .into_iter()
                    .chain(h3.map(|port| Job::OriginH3(i, a, port)))
            })
        })
        .collect();
    let lanes = Lanes::of(&hosts, &cycle)?;
    let results = run_cycles(&prober, &hosts, &plan, &cycle, &lanes).await;

    let full: usize = hosts
        .iter()
        .zip(&plan.peers)
        .map(|(h, c)| h.dns.addresses.len() * (2 + c.len()))
        .sum();
    let status = EngineStatus {
        source: "lab.watch".into(),
        hosts: list.entries.len(),
        last_reload: Some(Timestamp::from_unix(START_UNIX)),
        interval_s: INTERVAL.as_secs_f64(),
        window_s: WINDOW.as_secs_f64(),
        max_rps: prober.options.max_rps,
        full_rps: full as f64 / INTERVAL.as_secs_f64(),
        ..EngineStatus::default()
    };
    let mut session = Session::new(store, status);
    let mut view = LiveView::default();
    for (c, cycle_results) in results.into_iter().enumerate() {
        let total = cycle_results.iter().map(Vec::len).sum();
        let at = session.at(c as u64);
        for r in cycle_results.into_iter().flatten() {
            session.store.apply(&hosts, r, at);
        }
        session.status.cycle_done = total;
        session.status.cycle_total = total;
        view = session.publish(c as u64);
    }
    Ok(session.mask(view, Some(lab.port)))
}

/// How each address's jobs run: the lab says which names never answer (their jobs only wait
/// for the timeout: all at once) and which pairs are intermittent (the balancer: one job at a
/// time, in `BALANCER_ORDER`); the others at most `CONCURRENCY` at once. Indices into a
/// cycle's jobs.
struct Lanes {
    balancer: Vec<usize>,
    silent: Vec<usize>,
    busy: Vec<usize>,
}

impl Lanes {
    fn of(hosts: &[HostRecord], cycle: &[Job]) -> anyhow::Result<Lanes> {
        let addresses_of = |names: &HashSet<&str>| -> HashSet<IpAddr> {
            hosts
                .iter()
                .filter(|h| names.contains(h.entry.host.as_str()))
                .flat_map(|h| h.dns.addresses.iter().copied())
                .collect()
        };
        let silent = addresses_of(
            &lab::expected_findings()
                .into_iter()
                .filter(|(_, kind)| *kind == FindingKind::Unreachable)
                .map(|(name, _)| name)
                .collect(),
        );
        let balanced = addresses_of(
            &lab::expectations()
                .into_iter()
                .filter(|e| e.verdict == Verdict::Intermittent)
                .flat_map(|e| [e.origin, e.target])
                .collect(),
        );
        let mut lanes = Lanes {
            balancer: Vec::new(),
            silent: Vec::new(),
            busy: Vec::new(),
        };
        for (j, job) in cycle.iter().enumerate() {
            match job.addr() {
                a if balanced.contains(&a) => lanes.balancer.push(j),
                a if silent.contains(&a) => lanes.silent.push(j),
                _ => lanes.busy.push(j),
            }
        }
        anyhow::ensure!(
            lanes.balancer.len() == 4,
            "the lab's balancer: expected 2 names on one address, got jobs {:?}",
            lanes.balancer
        );
        Ok(lanes)
    }
}

/// Every cycle's jobs, each lane as it must run. Results per (cycle, job): the job's, then its
/// HTTP/1.1 fallback's if it had one.
async fn run_cycles(
    prober: &Prober,
    hosts: &[HostRecord],
    plan: &Plan,
    cycle: &[Job],
    lanes: &Lanes,
) -> Vec<Vec<Vec<JobResult>>> {
    let run = |c: u64, j: usize| {
        let job = cycle[j];
        async move { (c, j, run_job(prober, hosts, plan, job).await) }
    };
    let every_cycle = |jobs: &[usize]| -> Vec<(u64, usize)> {
        (0..LAB_CYCLES)
            .flat_map(|c| jobs.iter().map(move |&j| (c, j)))
            .collect()
    };
    let busy_jobs = stream::iter(every_cycle(&lanes.busy))
        .map(|(c, j)| run(c, j))
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>();
    let silent_jobs =
        futures::future::join_all(every_cycle(&lanes.silent).into_iter().map(|(c, j)| run(c, j)));
    let balancer_jobs = async {
        let mut out = Vec::new();
        for (c, order) in BALANCER_ORDER.iter().enumerate() {
            for &k in order {
                out.push(run(c as u64, lanes.balancer[k]).await);
            }
        }
        out
    };
    let (busy, silent, balanced) = futures::join!(busy_jobs, silent_jobs, balancer_jobs);
    let mut results: Vec<Vec<Vec<JobResult>>> = (0..LAB_CYCLES)
        .map(|_| (0..cycle.len()).map(|_| Vec::new()).collect())
        .collect();
    for (c, j, r) in busy.into_iter().chain(silent).chain(balanced) {
        results[c as usize][j] = r;
    }
    results
}

/// One job, then (as the scheduler does) an HTTP/1.1 request when a direct answer failed.
async fn run_job(prober: &Prober, hosts: &[HostRecord], plan: &Plan, job: Job) -> Vec<JobResult> {
    let result = prober.run_job(job, hosts, plan).await;
    let fallback = match (&result, job) {
        (JobResult::Direct { outcome, .. }, Job::Direct(h, a, DirectProtocol::Negotiate))
            if wants_http1_check(outcome) =>
        {
            Some(Job::Direct(h, a, DirectProtocol::Http1Only))
        }
        _ => None,
    };
    let mut out = vec![result];
    if let Some(job) = fallback {
        out.push(prober.run_job(job, hosts, &Plan::default()).await);
    }
    out
}

/// A view of `names` synthetic names in groups of `group` (`Synth`): two rounds of every
/// origin and direct probe, each published as a cycle's end. The second round refuses some
/// more targets (intermittent pairs), and its publish records the problem pairs as events
/// (capped at the store's `MAX_EVENTS`).
pub fn synthetic_view(names: usize, group: usize) -> LiveView {
    let synth = Synth::new(names, group);
    let store = synth.store(WINDOW);
    let hosts = store.hosts_for_jobs();
    let status = EngineStatus {
        source: "scale.watch".into(),
        hosts: names,
        last_reload: Some(Timestamp::from_unix(START_UNIX)),
        interval_s: INTERVAL.as_secs_f64(),
        window_s: WINDOW.as_secs_f64(),
        cycle_done: 2 * names,
        cycle_total: 2 * names,
        full_rps: (names * (2 + group.saturating_sub(1))) as f64 / INTERVAL.as_secs_f64(),
        ..EngineStatus::default()
    };
    let mut session = Session::new(store, status);
    let mut view = LiveView::default();
    for round in 0..2 {
        let at = session.at(round);
        synth.round(&mut session.store, &hosts, round, at);
        view = session.publish(round);
    }
    session.mask(view, None)
}

/// Run `f` to completion on a runtime of its own, in a thread of its own (so that callers
/// inside a runtime can use it too).
fn on_own_runtime<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(f)
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// The live store published as the scheduler publishes it, on a clock of its own: cycle `c`'s
/// results are stamped `c` intervals after the start, and the views show that clock from
/// [`START`].
struct Session {
    store: Store,
    status: EngineStatus,
    /// The instant and the wall-clock time (unix s) the session starts at.
    base: Instant,
    wall_base: i64,
    /// The shown time (unix s) of the last publish, and of each event of its view.
    shown_now: i64,
    event_times: Vec<i64>,
    events: Arc<Vec<Event>>,
}

impl Session {
    fn new(store: Store, status: EngineStatus) -> Session {
        Session {
            store,
            status,
            base: Instant::now(),
            wall_base: Timestamp::now().unix(),
            shown_now: START_UNIX,
            event_times: Vec::new(),
            events: Arc::default(),
        }
    }

    /// When cycle `c`'s results arrive.
    fn at(&self, c: u64) -> Instant {
        self.base + INTERVAL * c as u32
    }

    /// The view after cycle `c`. The scheduler counts a cycle done when the next one starts,
    /// and records verdict changes once one is done: not in the first cycle's views.
    fn publish(&mut self, c: u64) -> LiveView {
        let now = self.at(c) + SETTLE;
        self.status.cycles = c;
        let view = self.store.publish(now, self.status.clone(), c > 0);
        self.shown_now = START_UNIX + now.duration_since(self.base).as_secs() as i64;
        // The store keeps the latest events: those new in this view are the ones after the
        // longest tail of the previous list that starts this one.
        let (old, new) = (&self.events, &view.events);
        let kept = (0..=old.len().min(new.len()))
            .rev()
            .find(|&m| old[old.len() - m..] == new[..m])
            .unwrap_or(0);
        let mut times = self.event_times[self.event_times.len() - kept..].to_vec();
        times.resize(new.len(), self.shown_now);
        self.event_times = times;
        self.events = view.events.clone();
        view
    }

    /// `view` with what changes from run to run masked (see the module documentation).
    fn mask(&self, view: LiveView, port: Option<u16>) -> LiveView {
        let masker = Masker {
            port: port.map(|p| format!(":{p}")),
            wall_base: self.wall_base,
        };
        let mut texts = HashMap::new();
        let report = Snapshot {
            vantage: None,
            generated_at: Timestamp::from_unix(self.shown_now),
            hosts: view.report.hosts.iter().map(|h| masker.host(h)).collect(),
            pairs: view
                .report
                .pairs
                .iter()
                .map(|p| masker.pair(p, &mut texts))
                .collect(),
            groups: view
                .report
                .groups
                .iter()
                .map(|g| GroupReport {
                    members: g.members.iter().map(|m| masker.text(m).into_owned()).collect(),
                    ..g.clone()
                })
                .collect(),
            summary: Summary {
                duration_s: (self.shown_now - START_UNIX) as f64,
                ..view.report.summary.clone()
            },
            schema: view.report.schema.clone(),
        };
        let events = view
            .events
            .iter()
            .zip(&self.event_times)
            .map(|(e, &at)| match e {
                Event::Verdict(e) => Event::Verdict(VerdictEvent {
                    at: Timestamp::from_unix(at),
                    origin: masker.text(&e.origin).into_owned(),
                    target: masker.text(&e.target).into_owned(),
                    from: e.from,
                    to: e.to,
                    message: masker.text(&e.message).into_owned(),
                }),
                Event::Host(e) => Event::Host(HostEvent {
                    at: Timestamp::from_unix(at),
                    host: masker.text(&e.host).into_owned(),
                    ..e.clone()
                }),
            })
            .collect::<Vec<_>>();
        LiveView {
            report,
            events: Arc::new(events),
            ..view
        }
    }
}

/// Rewrites the run-dependent values of reports and strings.
struct Masker {
    /// ":port" of the lab, shown as ":SHOWN_PORT".
    port: Option<String>,
    /// Wall-clock unix time of the session's start, shown as `START`.
    wall_base: i64,
}

impl Masker {
    /// A host report, every field masked (through its JSON form).
    fn host(&self, h: &Arc<HostReport>) -> Arc<HostReport> {
        let mut v = serde_json::to_value(&**h).expect("a host report serialises");
        self.value(&mut v, "");
        Arc::new(serde_json::from_value(v).expect("a masked host report"))
    }

    /// A pair report with its names and texts masked; the same `Arc` when nothing changed
    /// (the other fields are verdicts, statuses and addresses). `texts` keeps the reports'
    /// shared strings shared.
    fn pair(&self, p: &Arc<PairReport>, texts: &mut HashMap<*const u8, Arc<str>>) -> Arc<PairReport> {
        let mut shared = |s: &Arc<str>| -> Arc<str> {
            texts
                .entry(s.as_ptr())
                .or_insert_with(|| match self.text(s) {
                    Cow::Borrowed(_) => s.clone(),
                    Cow::Owned(masked) => masked.into(),
                })
                .clone()
        };
        let origin = shared(&p.origin);
        let target = shared(&p.target);
        let explanation = shared(&p.explanation);
        let fix = p.fix.as_ref().map(&mut shared);
        let error = p.error.as_deref().map(|e| self.text(e).into_owned());
        // The site a page looked like is a "host:port" too.
        let mut addresses = p.addresses.clone();
        for a in &mut addresses {
            a.looked_like = a.looked_like.as_deref().map(|s| self.text(s).into_owned());
        }
        let same = |a: &Arc<str>, b: &Arc<str>| Arc::ptr_eq(a, b);
        if same(&origin, &p.origin)
            && same(&target, &p.target)
            && same(&explanation, &p.explanation)
            && fix.iter().zip(&p.fix).all(|(a, b)| same(a, b))
            && error == p.error
            && addresses == p.addresses
        {
            return p.clone();
        }
        Arc::new(PairReport {
            origin,
            target,
            explanation,
            fix,
            error,
            addresses,
            ..(**p).clone()
        })
    }

    fn value(&self, v: &mut serde_json::Value, key: &str) {
        use serde_json::Value;
        match v {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    self.value(v, k);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v, key)),
            Value::String(s) => {
                *s = match key {
                    "sha256" => "5a".repeat(32),
                    _ => self.text(s).into_owned(),
                }
            }
            Value::Number(n) => {
                let port = self.port.as_deref().map(|p| &p[1..]);
                let fixed = match key {
                    "elapsed_ms" => Some(Value::from(1.5)),
                    "connect_ms" => Some(Value::from(0.4)),
                    "tls_ms" => Some(Value::from(2.1)),
                    "port" if port.is_some_and(|p| n.to_string() == p) => Some(Value::from(SHOWN_PORT)),
                    _ => None,
                };
                if let Some(x) = fixed {
                    *v = x;
                }
            }
            _ => {}
        }
    }

    /// `s` with ":port" shown as ":SHOWN_PORT" and every RFC 3339 time moved from the real
    /// start to `START`, to the hour (certificates are made "a day ago" and "for 90 days"
    /// when the lab starts, seconds before the session).
    fn text<'a>(&self, s: &'a str) -> Cow<'a, str> {
        let s = match &self.port {
            Some(needle) if s.contains(needle.as_str()) => Cow::Owned(replace_port(s, needle)),
            _ => Cow::Borrowed(s),
        };
        if find_time(&s).is_none() {
            return s;
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = &*s;
        while let Some((before, time, after)) = find_time(rest) {
            out.push_str(before);
            let hours = (time - self.wall_base) as f64 / 3600.0;
            out.push_str(&Timestamp::from_unix(START_UNIX + hours.round() as i64 * 3600).to_string());
            rest = after;
        }
        out.push_str(rest);
        Cow::Owned(out)
    }
}

/// `s` with every `needle` (":port") not followed by a digit written ":SHOWN_PORT".
fn replace_port(s: &str, needle: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(needle) {
        let end = i + needle.len();
        out.push_str(&rest[..i]);
        if rest[end..].starts_with(|c: char| c.is_ascii_digit()) {
            out.push_str(needle);
        } else {
            out.push_str(&format!(":{SHOWN_PORT}"));
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The first "YYYY-MM-DDTHH:MM:SSZ" in `s`: (text before, unix time, text after).
fn find_time(s: &str) -> Option<(&str, i64, &str)> {
    const LEN: usize = "2026-11-28T12:00:00Z".len();
    let b = s.as_bytes();
    if !b.contains(&b'Z') {
        return None;
    }
    (0..b.len().saturating_sub(LEN - 1)).find_map(|i| {
        let t = &b[i..i + LEN];
        let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
        let shape = digits.iter().all(|&k| t[k].is_ascii_digit())
            && t[4] == b'-'
            && t[7] == b'-'
            && t[10] == b'T'
            && t[13] == b':'
            && t[16] == b':'
            && t[19] == b'Z';
        if !shape {
            return None;
        }
        let unix = Timestamp::parse(&s[i..i + LEN])?.unix();
        Some((&s[..i], unix, &s[i + LEN..]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_and_move() {
        let (before, unix, after) = find_time("not after 2026-11-28T12:00:00Z)").unwrap();
        assert_eq!((before, unix, after), ("not after ", START_UNIX, ")"));
        assert_eq!(Timestamp::from_unix(START_UNIX).to_string(), START);
        let m = Masker {
            port: Some(":33495".into()),
            wall_base: START_UNIX + 1000,
        };
        // A day before the real start, seconds off: a day before START.
        assert_eq!(
            m.text("a.test:33495 b.test:334950 2026-11-27T12:16:30Z"),
            "a.test:8443 b.test:334950 2026-11-27T12:00:00Z"
        );
    }
}
