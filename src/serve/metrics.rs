//! The Prometheus side of `serve`: every published `LiveView` is folded into exporter state
//! (monotonic counters through the reconciler, phase histograms, which pairs are exported),
//! and each scrape encodes that state with `prometheus-client`, as the Prometheus text format
//! or OpenMetrics.
//!
//! Names follow Prometheus conventions (`coalscope_…_total` for counters, `_seconds` for
//! times, `_timestamp_seconds` for instants). Pair series use the contract's strings:
//! `origin` and `target` are "host:port", `address` a plain IP; host series use `host` in the
//! same "host:port" form so they join with pair series. Every series carries `vantage` when
//! `--vantage` is given (a constant label of the registry).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::engine::snapshot::{
    EndpointReport, EngineStatus, EventKind, EventTotals, ListedPair, LiveView, PairReport, Snapshot,
    Timestamp, Verdict,
};
use crate::serve::conns::ConnStats;
use crate::serve::reconcile::Reconciler;

/// Content type of the Prometheus text format (0.0.4).
pub const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// Content type of OpenMetrics text 1.0.0.
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the phase-duration buckets, seconds.
const PHASE_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Observations added per endpoint and update at most (a burst after a long pause).
const MAX_OBSERVATIONS_PER_UPDATE: u64 = 64;

/// Phases whose durations are exported.
pub const PHASES: [&str; 3] = ["dns", "connect", "tls"];

static SECONDS: Unit = Unit::Seconds;

/// Which text format a scrape gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Prometheus,
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => PROMETHEUS_TEXT,
            Format::OpenMetrics => OPENMETRICS_TEXT,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExporterOptions {
    pub vantage: Option<String>,
    /// Pairs exported at most (problem pairs first).
    pub max_pairs: usize,
    /// The engine's `--window` (how long windowed samples live).
    pub window: Duration,
}

/// Pair-address counters (probes, 421s, errors, misrouted answers, refusals), keyed by (origin, target,
/// address); the names are the reports' shared `Arc<str>`s, not copies.
type PairKey = (Arc<str>, Arc<str>, String);
/// Endpoint counters: handshakes, failed handshakes.
type EndpointKey = (String, String);

#[derive(Debug)]
struct State {
    view: Arc<LiveView>,
    /// A real view has arrived (the engine published at least once).
    have_view: bool,
    pairs: Reconciler<PairKey, 5>,
    endpoints: Reconciler<EndpointKey, 2>,
    /// Monotonic guards for counters the engine keeps cumulative already.
    connections: u64,
    requests: u64,
    cycles: u64,
    /// Events recorded since the engine started, per kind (monotonic guard).
    events: EventTotals,
    /// Last DNS lookup time seen per host (a new value means a new lookup).
    dns_seen: HashMap<String, f64>,
    /// The exported pairs (of `view.listed_pairs`), in export order.
    exported: Vec<ListedPair>,
    dropped: usize,
    /// `changes.seq` of the last view folded in (0: none, or one without numbers).
    seq: u64,
    /// When the last view was folded in.
    last_update: Option<Instant>,
}

#[derive(Debug)]
struct Shared {
    options: ExporterOptions,
    state: Mutex<State>,
    /// Views folded in so far: what an encoding of the state is current for.
    updates: std::sync::atomic::AtomicU64,
    /// dns, connect, tls (as in `PHASES`).
    phases: [Histogram; 3],
    /// The exporter's own connections (kept by `serve::conns`).
    conns: Arc<ConnStats>,
}

/// Exporter state plus the registry that encodes it.
#[derive(Debug, Clone)]
pub struct Exporter {
    shared: Arc<Shared>,
    registry: Arc<Registry>,
}

impl Exporter {
    pub fn new(options: ExporterOptions) -> Exporter {
        let labels: Vec<(Cow<'static, str>, Cow<'static, str>)> = options
            .vantage
            .iter()
            .map(|v| (Cow::Borrowed("vantage"), Cow::Owned(v.clone())))
            .collect();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                view: Arc::new(LiveView::default()),
                have_view: false,
                pairs: Reconciler::new(options.window),
                endpoints: Reconciler::new(options.window),
                connections: 0,
                requests: 0,
                cycles: 0,
                events: EventTotals::default(),
                dns_seen: HashMap::new(),
                exported: Vec::new(),
                dropped: 0,
                seq: 0,
                last_update: None,
            }),
            updates: std::sync::atomic::AtomicU64::new(0),
            phases: std::array::from_fn(|_| Histogram::new(PHASE_BUCKETS)),
            conns: Arc::default(),
            options,
        });
        let mut registry = Registry::with_prefix_and_labels("coalscope", labels.into_iter());
        registry.register_collector(Box::new(SnapshotCollector(shared.clone())));
        Exporter {
            shared,
            registry: Arc::new(registry),
        }
    }

    /// Fold a newly published view in. Views made by the engine's store number what changed:
    /// while the pair and host lists stay the same, only the changed pairs and hosts are
    /// folded in, plus the keys whose windowed samples leave the reconciler's model now (which
    /// is what folding in every key would change). Anything else gets a full pass.
    pub fn update(&self, view: Arc<LiveView>, now: Instant) {
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *st;
        let report = &view.report;
        let since = st.seq;
        // Some(n): fold in only what changed after view n; None: a full pass.
        let changed_after = folds_incrementally(&view, since).then_some(since);
        if changed_after.is_none() {
            st.pairs.begin_pass();
            st.endpoints.begin_pass();
        }
        let pairs_changed = fold_pairs(st, &view, changed_after, now);
        self.fold_hosts(st, &view, changed_after, now);
        match changed_after {
            Some(_) => self.refresh_unchanged(st, report, now),
            None => end_full_pass(st, &view, now),
        }
        st.connections = st.connections.max(report.summary.connections);
        st.requests = st.requests.max(report.summary.requests);
        st.cycles = st.cycles.max(view.status.cycles);
        st.events.keep_max(&view.event_totals);
        if pairs_changed {
            st.exported = export_order(&view, self.shared.options.max_pairs);
        }
        st.dropped = view.listed_len() - st.exported.len();
        st.seq = view.changes.seq;
        st.last_update = Some(now);
        st.view = view.clone();
        st.have_view = true;
        self.shared
            .updates
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Views folded in so far: the exposition changes only when this does.
    pub fn updates(&self) -> u64 {
        self.shared.updates.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Fold in the hosts changed after view `changed_after` (every host when None): their
    /// endpoints' handshake counters, and a DNS lookup time not seen before.
    fn fold_hosts(&self, st: &mut State, view: &LiveView, changed_after: Option<u64>, now: Instant) {
        let report = &view.report;
        for (i, h) in report.hosts.iter().enumerate() {
            if changed_after.is_some_and(|since| view.changes.hosts[i] <= since) {
                continue;
            }
            let host = format!("{}:{}", h.host, h.port);
            for ep in &h.endpoints {
                let key = (host.clone(), ep.address.clone());
                let delta = st.endpoints.update(
                    &key,
                    [u64::from(ep.handshakes), u64::from(ep.handshake_errors)],
                    now,
                );
                self.observe_handshakes(ep, delta);
            }
            let fresh_lookup = !h.dns.overridden
                && h.dns.error.is_none()
                && h.dns.elapsed_ms > 0.0
                && st.dns_seen.get(&host) != Some(&h.dns.elapsed_ms);
            if fresh_lookup {
                self.shared.phases[0].observe(h.dns.elapsed_ms / 1000.0);
                st.dns_seen.insert(host, h.dns.elapsed_ms);
            }
        }
    }

    /// End an incremental pass: unchanged keys whose held samples leave the window now are
    /// credited as a full pass would credit them.
    fn refresh_unchanged(&self, st: &mut State, report: &Snapshot, now: Instant) {
        st.pairs.refresh(now);
        let credited = st.endpoints.refresh(now);
        if !credited.is_empty() {
            let by_key: HashMap<(String, String), &EndpointReport> = report
                .hosts
                .iter()
                .flat_map(|h| {
                    let host = format!("{}:{}", h.host, h.port);
                    h.endpoints
                        .iter()
                        .map(move |ep| ((host.clone(), ep.address.clone()), ep))
                })
                .collect();
            for (key, delta) in credited {
                if let Some(ep) = by_key.get(&key) {
                    self.observe_handshakes(ep, delta);
                }
            }
        }
        st.pairs.note_pass(now);
        st.endpoints.note_pass(now);
    }

    /// The snapshot carries the median phase times over the window, not each handshake's:
    /// every new successful handshake is observed at the median.
    fn observe_handshakes(&self, ep: &EndpointReport, [shakes, errors]: [u64; 2]) {
        let ok = shakes.saturating_sub(errors).min(MAX_OBSERVATIONS_PER_UPDATE);
        for _ in 0..ok {
            if let Some(ms) = ep.connect_ms {
                self.shared.phases[1].observe(ms / 1000.0);
            }
            if let Some(ms) = ep.tls_ms {
                self.shared.phases[2].observe(ms / 1000.0);
            }
        }
    }

    /// The latest view (None before the engine published anything).
    pub fn view(&self) -> Option<Arc<LiveView>> {
        let st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        st.have_view.then(|| st.view.clone())
    }

    /// (exported, dropped) pairs.
    pub fn pair_counts(&self) -> (usize, usize) {
        let st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        (st.exported.len(), st.dropped)
    }

    /// Where the exporter's HTTP server counts its connections.
    pub fn conn_stats(&self) -> Arc<ConnStats> {
        self.shared.conns.clone()
    }

    pub fn vantage(&self) -> Option<&str> {
        self.shared.options.vantage.as_deref()
    }

    /// The exposition in `format`.
    pub fn encode(&self, format: Format) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String fails only if an encoder reports an error, which ours do not.
        let result = match format {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            }
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &self.registry),
        };
        if let Err(e) = result {
            tracing::error!("encoding metrics failed: {e}");
        }
        out
    }
}

/// Whether `view` can be folded in from its parts changed after view `since` alone: the
/// exporter has folded in an earlier view of the same store, and the pair and host lists
/// have not changed since.
fn folds_incrementally(view: &LiveView, since: u64) -> bool {
    let changes = &view.changes;
    since > 0
        && changes.seq > since
        && changes.layout <= since
        && changes.pairs.len() == view.report.pairs.len()
        && changes.hosts.len() == view.report.hosts.len()
}

/// Fold in the pairs changed after view `changed_after` (every pair when None); true when
/// that may change which pairs are exported (any pair folded in, or a full pass).
fn fold_pairs(st: &mut State, view: &LiveView, changed_after: Option<u64>, now: Instant) -> bool {
    let mut changed = changed_after.is_none();
    for (i, p) in view.report.pairs.iter().enumerate() {
        if changed_after.is_some_and(|since| view.changes.pairs[i] <= since) {
            continue;
        }
        changed = true;
        for a in &p.addresses {
            let key = (p.origin.clone(), p.target.clone(), a.address.clone());
            let counts = [
                u64::from(a.probes),
                u64::from(a.statuses.get("421").copied().unwrap_or(0)),
                u64::from(a.errors),
                u64::from(a.misrouted),
                u64::from(a.refusals.values().sum::<u32>()),
            ];
            st.pairs.update(&key, counts, now);
        }
    }
    changed
}

/// End a full pass: forget the DNS times of hosts no longer listed, and let the reconcilers
/// retire the keys the pass did not see. A pair the view now lists by index has no samples
/// left: its model lets them go (as a zero count would), and it is forgotten unless probed
/// again within `Reconciler`'s forget time.
fn end_full_pass(st: &mut State, view: &LiveView, now: Instant) {
    let report = &view.report;
    let hosts: std::collections::HashSet<String> = report
        .hosts
        .iter()
        .map(|h| format!("{}:{}", h.host, h.port))
        .collect();
    st.dns_seen.retain(|k, _| hosts.contains(k));
    let pending = &view.pending;
    st.pairs
        .end_pass_emptied(st.last_update, now, |(o, t, _)| pending.lists(o, t));
    st.endpoints.end_pass(st.last_update, now);
}

/// Pairs to export: problem verdicts first (worst first, in contract order), then the rest in
/// the report's order, at most `max`.
fn export_order(view: &LiveView, max: usize) -> Vec<ListedPair> {
    if !view.pending.runs().is_empty() {
        // The engine lists pairs in this order already, with the pending pairs listed by
        // index in their place.
        return view.listed_pairs().take(max).collect();
    }
    let pairs = &view.report.pairs;
    let rank = |i: usize| {
        let v = pairs[i].verdict;
        (!v.is_problem(), v)
    };
    // The engine lists pairs in this order already.
    if (1..pairs.len()).all(|i| rank(i - 1) <= rank(i)) {
        return (0..pairs.len().min(max)).map(ListedPair::Report).collect();
    }
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by_key(|&i| (rank(i), i));
    order.truncate(max);
    order.into_iter().map(ListedPair::Report).collect()
}

#[derive(Debug)]
struct SnapshotCollector(Arc<Shared>);

type Labels = Vec<(&'static str, String)>;

fn bool_value(b: bool) -> i64 {
    i64::from(b)
}

/// One gauge family; nothing is written when it has no series.
fn gauge<V: prometheus_client::encoding::EncodeGaugeValue + fmt::Debug>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: Vec<(Labels, V)>,
) -> fmt::Result {
    if series.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, v) in series {
        ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One counter family; nothing is written when it has no series.
fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, series: Vec<(Labels, u64)>) -> fmt::Result {
    if series.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in series {
        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn one<V>(v: V) -> Vec<(Labels, V)> {
    vec![(Vec::new(), v)]
}

impl Collector for SnapshotCollector {
    /// The families in exposition order: build, watch-file and engine, summary, the exported
    /// pairs, hosts and their endpoints, phase durations.
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let shared = &self.0;
        let st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        encode_build(&mut enc)?;
        encode_watchfile(&mut enc, &st.view.status)?;
        encode_engine(&mut enc, &st)?;
        encode_exporter(&mut enc, &shared.conns)?;
        encode_summary(&mut enc, &st.view.report)?;
        encode_export_cap(&mut enc, &st, shared.options.max_pairs)?;
        let owned = exported_pairs(&st);
        let pairs: Vec<&PairReport> = owned.iter().map(|p| &**p).collect();
        encode_pair_counters(&mut enc, &st, &pairs)?;
        encode_pair_states(&mut enc, &pairs)?;
        encode_pair_signals(&mut enc, &pairs)?;
        encode_hosts(&mut enc, HostSeries::collect(&st))?;
        encode_phases(&mut enc, &shared.phases)
    }
}

fn encode_build(enc: &mut DescriptorEncoder) -> fmt::Result {
    let info = Info::new(vec![
        ("version", env!("CARGO_PKG_VERSION").to_string()),
        ("schema", crate::engine::snapshot::SCHEMA.to_string()),
    ]);
    info.encode(enc.encode_descriptor("build", "coalscope build information.", None, MetricType::Info)?)
}

fn encode_watchfile(enc: &mut DescriptorEncoder, status: &EngineStatus) -> fmt::Result {
    gauge(
        enc,
        "watchfile_reload_success",
        "Whether the last watch-file load succeeded (0: the last good list stays in use).",
        None,
        one(bool_value(status.reload_error.is_none())),
    )?;
    let last_reload = status.last_reload.map(Timestamp::unix);
    gauge(
        enc,
        "watchfile_last_reload_success_timestamp",
        "When the watch-file was last loaded successfully.",
        Some(&SECONDS),
        last_reload.map(|t| one(t as f64)).unwrap_or_default(),
    )
}

fn encode_engine(enc: &mut DescriptorEncoder, st: &State) -> fmt::Result {
    let status = &st.view.status;
    counter(
        enc,
        "engine_cycles",
        "Probe cycles of --interval completed.",
        one(st.cycles),
    )?;
    gauge(
        enc,
        "engine_paused",
        "Whether probing is paused.",
        None,
        one(bool_value(status.paused)),
    )?;
    gauge(
        enc,
        "engine_interval",
        "Time between probe rounds of one host.",
        Some(&SECONDS),
        one(status.interval_s),
    )?;
    gauge(
        enc,
        "engine_window",
        "Time window that rates and verdicts are computed over.",
        Some(&SECONDS),
        one(status.window_s),
    )?;
    counter(
        enc,
        "connections",
        "Connections opened by the engine.",
        one(st.connections),
    )?;
    counter(enc, "requests", "Requests sent by the engine.", one(st.requests))?;
    counter(
        enc,
        "events",
        "Events the engine recorded (verdict changes, certificate and address changes, DNS trouble), by kind.",
        EventKind::ALL
            .iter()
            .map(|k| (vec![("kind", k.to_string())], st.events.get(*k)))
            .collect(),
    )?;
    gauge(
        enc,
        "snapshot_timestamp",
        "When the exported snapshot was computed.",
        Some(&SECONDS),
        one(st.view.report.generated_at.unix() as f64),
    )
}

/// The exporter's own connections (as of the encoding: the exposition is made again with each
/// view folded in).
fn encode_exporter(enc: &mut DescriptorEncoder, conns: &ConnStats) -> fmt::Result {
    gauge(
        enc,
        "serve_connections",
        "Connections open to this exporter (at most --max-connections).",
        None,
        one(conns.open() as f64),
    )?;
    counter(
        enc,
        "serve_connections_closed_for_room",
        "Idle connections this exporter closed to admit a new one (--max-connections was full).",
        one(conns.closed_for_room()),
    )
}

fn encode_summary(enc: &mut DescriptorEncoder, report: &Snapshot) -> fmt::Result {
    let s = &report.summary;
    gauge(enc, "hosts", "Hosts watched.", None, one(i64::from(s.hosts)))?;
    gauge(
        enc,
        "pairs",
        "Ordered pairs of watched names that share an address.",
        None,
        one(i64::from(s.pairs)),
    )?;
    gauge(
        enc,
        "problems",
        "Pairs whose verdict is misdirected, misrouted, intermittent or direct-broken.",
        None,
        one(i64::from(s.problems)),
    )?;
    gauge(
        enc,
        "host_errors",
        "Host findings of severity error.",
        None,
        one(i64::from(s.host_errors)),
    )?;
    gauge(
        enc,
        "cert_only_pairs",
        "Pairs linked only by the certificate (no shared address).",
        None,
        one(i64::from(s.cert_only_pairs)),
    )?;
    gauge(
        enc,
        "pair_coverage_ratio",
        "Share of the coalescable pairs probed within the window (below 1 when the request budget cannot cover every pair).",
        None,
        one(s.coverage),
    )?;
    gauge(
        enc,
        "target_coverage_ratio",
        "Share of the hosts some coalescable pair has as target that were tried as a target (from at least one origin) within the window; the planner covers targets first when the budget cannot cover every pair.",
        None,
        one(s.target_coverage),
    )?;
    gauge(
        enc,
        "pairs_by_verdict",
        "Pairs per verdict (all pairs, exported or not).",
        None,
        Verdict::ALL
            .iter()
            .map(|v| {
                let n = s.verdicts.get(v).copied().unwrap_or(0);
                (vec![("verdict", v.as_str().to_string())], i64::from(n))
            })
            .collect(),
    )
}

/// How many pairs have per-pair series, how many were left out, and the cap.
fn encode_export_cap(enc: &mut DescriptorEncoder, st: &State, max_pairs: usize) -> fmt::Result {
    gauge(
        enc,
        "pairs_exported",
        "Pairs with per-pair series in this exposition.",
        None,
        one(st.exported.len() as i64),
    )?;
    gauge(
        enc,
        "pairs_dropped",
        "Pairs left out of the per-pair series by --max-pairs (problem pairs are kept first).",
        None,
        one(st.dropped as i64),
    )?;
    gauge(
        enc,
        "pairs_max",
        "The --max-pairs cap on exported pairs.",
        None,
        one(max_pairs as i64),
    )
}

/// The pairs that get per-pair series, in export order (the reports of pending pairs listed
/// by index are made now).
fn exported_pairs(st: &State) -> Vec<Arc<PairReport>> {
    st.exported
        .iter()
        .filter_map(|&p| st.view.listed_report(p))
        .collect()
}

fn pair_labels(p: &PairReport) -> Labels {
    vec![("origin", p.origin.to_string()), ("target", p.target.to_string())]
}

/// The per-address counters of the exported pairs, from the reconciler's totals.
fn encode_pair_counters(enc: &mut DescriptorEncoder, st: &State, pairs: &[&PairReport]) -> fmt::Result {
    let mut per_address: [Vec<(Labels, u64)>; 5] = Default::default();
    for p in pairs {
        for a in &p.addresses {
            let key = (p.origin.clone(), p.target.clone(), a.address.clone());
            let totals = st.pairs.totals(&key);
            let mut labels = pair_labels(p);
            labels.push(("address", a.address.clone()));
            for (i, series) in per_address.iter_mut().enumerate() {
                series.push((labels.clone(), totals[i]));
            }
        }
    }
    let [probes, misdirected, errors, misrouted, refused] = per_address;
    counter(
        enc,
        "pair_probes",
        "Requests for the target sent on connections opened for the origin, at the origin's address.",
        probes,
    )?;
    counter(
        enc,
        "pair_misdirected",
        "Of those requests, the ones answered 421 Misdirected Request.",
        misdirected,
    )?;
    counter(
        enc,
        "pair_refused",
        "Of those requests, the ones refused in a way clients retry elsewhere: 421, a stream reset with HTTP_1_1_REQUIRED or REFUSED_STREAM, a GOAWAY that left them unprocessed.",
        refused,
    )?;
    counter(
        enc,
        "pair_misrouted",
        "Of those requests, the ones answered differently from the direct request, other than 421.",
        misrouted,
    )?;
    counter(
        enc,
        "pair_errors",
        "Of those requests, the ones that failed without an answer and were not refused.",
        errors,
    )
}

/// What the exported pairs are now: verdict, coalescing per client, certificate, 421 share.
fn encode_pair_states(enc: &mut DescriptorEncoder, pairs: &[&PairReport]) -> fmt::Result {
    gauge(
        enc,
        "pair_verdict",
        "The pair's verdict as a state set: 1 for the current verdict, 0 for the others.",
        None,
        pairs
            .iter()
            .flat_map(|p| {
                Verdict::ALL.iter().map(move |v| {
                    let mut labels = pair_labels(p);
                    labels.push(("verdict", v.as_str().to_string()));
                    (labels, bool_value(p.verdict == *v))
                })
            })
            .collect(),
    )?;
    gauge(
        enc,
        "pair_coalesce",
        "Whether the client's policy would put the target on the origin's connection.",
        None,
        pairs
            .iter()
            .flat_map(|p| {
                [("chrome", p.coalesce.chrome), ("firefox", p.coalesce.firefox)]
                    .into_iter()
                    .map(move |(client, yes)| {
                        let mut labels = pair_labels(p);
                        labels.push(("client", client.to_string()));
                        (labels, bool_value(yes))
                    })
            })
            .collect(),
    )?;
    gauge(
        enc,
        "pair_cert_covers",
        "Whether the certificate served for the origin covers the target.",
        None,
        pairs
            .iter()
            .map(|p| (pair_labels(p), bool_value(p.cert_covers)))
            .collect(),
    )?;
    gauge(
        enc,
        "pair_misdirected_ratio",
        "Share of the pair's coalesced requests within the window answered 421.",
        None,
        pairs.iter().map(|p| (pair_labels(p), p.rate_421)).collect(),
    )?;
    gauge(
        enc,
        "pair_refused_ratio",
        "Share of the pair's coalesced requests within the window that the server responded to and refused (421, a reset with HTTP_1_1_REQUIRED or REFUSED_STREAM, an unprocessed GOAWAY).",
        None,
        pairs
            .iter()
            .map(|p| (pair_labels(p), p.refusal_rate.map_or(0.0, |r| r.rate)))
            .collect(),
    )?;
    encode_pair_protocols(enc, pairs)
}

/// The exported pairs probed over both HTTP/2 and HTTP/3 (the origin advertises HTTP/3): each
/// protocol's verdict, requests and refusal share, by a `protocol` label. Of the pair's own
/// series above, `pair_verdict` is the worse protocol's and `pair_coalesce` says who
/// coalesces over either; the counters and ratios are HTTP/2's (HTTP/3's when HTTP/2 carried
/// no request for the target).
fn encode_pair_protocols(enc: &mut DescriptorEncoder, pairs: &[&PairReport]) -> fmt::Result {
    let rows = || {
        pairs.iter().flat_map(|p| {
            p.protocols.iter().map(move |r| {
                let mut labels = pair_labels(p);
                labels.push(("protocol", r.protocol.as_str().to_string()));
                (labels, r)
            })
        })
    };
    gauge(
        enc,
        "pair_protocol_verdict",
        "The pair's verdict over one protocol (h2, h3), for the pairs probed over both, as a state set: 1 for the protocol's current verdict, 0 for the others. coalscope_pair_verdict is the worse of the two.",
        None,
        rows()
            .flat_map(|(labels, r)| {
                Verdict::ALL.iter().map(move |v| {
                    let mut labels = labels.clone();
                    labels.push(("verdict", v.as_str().to_string()));
                    (labels, bool_value(r.verdict == *v))
                })
            })
            .collect(),
    )?;
    gauge(
        enc,
        "pair_protocol_probes",
        "Requests for the target on connections opened for the origin over one protocol (h2, h3), within the window, for the pairs probed over both.",
        None,
        rows().map(|(labels, r)| (labels, i64::from(r.probes))).collect(),
    )?;
    gauge(
        enc,
        "pair_protocol_refused_ratio",
        "Share of the pair's coalesced requests over one protocol (h2, h3) within the window that the server refused, for the pairs probed over both.",
        None,
        rows()
            .map(|(labels, r)| (labels, r.refusal_rate.map_or(0.0, |x| x.rate)))
            .collect(),
    )
}

/// The signal-related pair families: the rule that decided each client's policy, and the pair
/// findings (an ORIGIN frame listing a refused target, or leaving out a served one).
fn encode_pair_signals(enc: &mut DescriptorEncoder, pairs: &[&PairReport]) -> fmt::Result {
    gauge(
        enc,
        "pair_coalesce_rule",
        "The rule that decided the client's policy (1 per client): ip-match, address-overlap, origin-frame, origin-frame-excludes, https-record-no-h2, or the obstacle.",
        None,
        pairs
            .iter()
            .flat_map(|p| {
                let rules = p.coalesce.rules;
                [("chrome", rules.chrome), ("firefox", rules.firefox)]
                    .into_iter()
                    .map(move |(client, rule)| {
                        let mut labels = pair_labels(p);
                        labels.push(("client", client.to_string()));
                        labels.push(("rule", rule.to_string()));
                        (labels, 1i64)
                    })
            })
            .collect(),
    )?;
    gauge(
        enc,
        "pair_finding",
        "A finding about the pair (1 while it holds), by kind and severity: an ORIGIN frame listing a refused target, or leaving out a served one.",
        None,
        pairs
            .iter()
            .flat_map(|p| {
                p.findings.iter().map(move |f| {
                    let mut labels = pair_labels(p);
                    labels.push(("kind", f.kind.to_string()));
                    labels.push(("severity", f.severity.to_string()));
                    (labels, 1i64)
                })
            })
            .collect(),
    )
}

/// The series of the host and endpoint families, gathered in one walk over the hosts.
#[derive(Default)]
struct HostSeries {
    addresses: Vec<(Labels, i64)>,
    findings: Vec<(Labels, i64)>,
    expiry: Vec<(Labels, f64)>,
    trusted: Vec<(Labels, i64)>,
    covers: Vec<(Labels, i64)>,
    shakes: Vec<(Labels, u64)>,
    shake_errors: Vec<(Labels, u64)>,
    origin_frame: Vec<(Labels, i64)>,
    alt_svc: Vec<(Labels, i64)>,
    https: Vec<(Labels, i64)>,
    dns_stale: Vec<(Labels, i64)>,
}

impl HostSeries {
    /// Hosts in report order, and each host's endpoints in its order, as the families list
    /// their series.
    fn collect(st: &State) -> HostSeries {
        let mut s = HostSeries::default();
        for h in &st.view.report.hosts {
            let host = format!("{}:{}", h.host, h.port);
            s.addresses
                .push((vec![("host", host.clone())], h.addresses.len() as i64));
            s.dns_stale
                .push((vec![("host", host.clone())], bool_value(h.dns.stale.is_some())));
            for f in &h.findings {
                s.findings.push((
                    vec![
                        ("host", host.clone()),
                        ("kind", f.kind.to_string()),
                        ("severity", f.severity.to_string()),
                    ],
                    1i64,
                ));
            }
            for ep in &h.endpoints {
                s.add_endpoint(st, &host, ep);
            }
            for r in &h.dns.https {
                s.https.push((
                    vec![
                        ("host", host.clone()),
                        ("priority", r.priority.to_string()),
                        ("alpn", r.alpn.join(",")),
                    ],
                    1,
                ));
            }
        }
        s
    }

    /// The endpoint's handshake totals and, when it served a certificate, its certificate's.
    fn add_endpoint(&mut self, st: &State, host: &str, ep: &EndpointReport) {
        let labels: Labels = vec![("host", host.to_string()), ("address", ep.address.clone())];
        let totals = st.endpoints.totals(&(host.to_string(), ep.address.clone()));
        self.shakes.push((labels.clone(), totals[0]));
        self.shake_errors.push((labels.clone(), totals[1]));
        if let Some(origins) = &ep.origin_frame {
            self.origin_frame.push((labels.clone(), origins.len() as i64));
        }
        for a in &ep.alt_svc {
            let mut l = labels.clone();
            l.push(("protocol", a.protocol.clone()));
            l.push(("port", a.port.to_string()));
            l.push(("source", a.source.clone()));
            self.alt_svc.push((l, 1));
        }
        if let Some(c) = &ep.cert {
            if let Some(t) = c.not_after {
                self.expiry.push((labels.clone(), t.unix() as f64));
            }
            self.trusted.push((labels.clone(), bool_value(c.trusted)));
            self.covers.push((labels, bool_value(c.covers_host)));
        }
    }
}

fn encode_hosts(enc: &mut DescriptorEncoder, series: HostSeries) -> fmt::Result {
    let HostSeries {
        addresses,
        findings,
        expiry,
        trusted,
        covers,
        shakes,
        shake_errors,
        origin_frame,
        alt_svc,
        https,
        dns_stale,
    } = series;
    gauge(
        enc,
        "host_addresses",
        "Addresses the host's name resolves to.",
        None,
        addresses,
    )?;
    gauge(
        enc,
        "dns_stale",
        "Whether the host's addresses are a last good DNS answer kept while lookups fail (until TTL + --dns-grace).",
        None,
        dns_stale,
    )?;
    gauge(
        enc,
        "host_finding",
        "A finding about the host (1 while it holds), by kind and severity.",
        None,
        findings,
    )?;
    gauge(
        enc,
        "cert_expiry_timestamp",
        "When the certificate served for the host at the address expires (notAfter).",
        Some(&SECONDS),
        expiry,
    )?;
    gauge(
        enc,
        "cert_trusted",
        "Whether that certificate's chain verifies against the trust anchors.",
        None,
        trusted,
    )?;
    gauge(
        enc,
        "cert_covers_host",
        "Whether that certificate covers the host's name.",
        None,
        covers,
    )?;
    counter(
        enc,
        "endpoint_handshakes",
        "TLS handshakes made for the host at the address.",
        shakes,
    )?;
    counter(
        enc,
        "endpoint_handshake_errors",
        "Of those handshakes, the ones that failed.",
        shake_errors,
    )?;
    encode_host_signals(enc, origin_frame, alt_svc, https)
}

/// What the hosts' servers and DNS signal: ORIGIN sets, Alt-Svc alternatives, HTTPS records.
fn encode_host_signals(
    enc: &mut DescriptorEncoder,
    origin_frame: Vec<(Labels, i64)>,
    alt_svc: Vec<(Labels, i64)>,
    https: Vec<(Labels, i64)>,
) -> fmt::Result {
    gauge(
        enc,
        "endpoint_origin_frame_origins",
        "Origins the ORIGIN frames of the latest connection listed (present only when an ORIGIN frame came).",
        None,
        origin_frame,
    )?;
    gauge(
        enc,
        "endpoint_alt_svc",
        "An alternative service advertised on the latest connection (Alt-Svc header or ALTSVC frame), by protocol, port and source.",
        None,
        alt_svc,
    )?;
    gauge(
        enc,
        "host_https_record",
        "An HTTPS DNS record (RFC 9460) of the host, by priority (0: AliasMode) and alpn list.",
        None,
        https,
    )
}

fn encode_phases(enc: &mut DescriptorEncoder, phases: &[Histogram; 3]) -> fmt::Result {
    let mut m = enc.encode_descriptor(
        "probe_phase_duration",
        "Durations of the probe phases: DNS lookup, TCP connect and TLS handshake.",
        Some(&SECONDS),
        MetricType::Histogram,
    )?;
    for (phase, h) in PHASES.iter().zip(phases) {
        let labels: Labels = vec![("phase", phase.to_string())];
        h.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::snapshot::{
        CertReport, Client, Coalesce, DirectReport, DnsReport, EndpointReport, HostReport, PairAddressReport,
        PairReport, RateInterval,
    };
    use std::collections::BTreeMap;

    fn pair(origin: &str, target: &str, verdict: Verdict, probes: u32, n421: u32) -> PairReport {
        let mut statuses = BTreeMap::new();
        if n421 > 0 {
            statuses.insert("421".to_string(), n421);
        }
        if probes > n421 {
            statuses.insert("200".to_string(), probes - n421);
        }
        PairReport {
            origin: origin.into(),
            target: target.into(),
            verdict,
            reason: None,
            shared_addresses: vec!["127.0.0.1".into()],
            cert_covers: true,
            coalesce: Coalesce {
                chrome: true,
                firefox: false,
                rules: Default::default(),
            },
            probes,
            rate_421: if probes > 0 {
                f64::from(n421) / f64::from(probes)
            } else {
                0.0
            },
            refusal_rate: (probes > 0).then(|| RateInterval {
                rate: f64::from(n421) / f64::from(probes),
                low: 0.0,
                high: 1.0,
                n: probes,
            }),
            addresses: vec![PairAddressReport {
                address: "127.0.0.1".into(),
                verdict,
                probes,
                statuses,
                direct_statuses: BTreeMap::new(),
                errors: 0,
                misrouted: 0,
                clients: vec![Client::Chrome],
                dynamic: false,
                content: None,
                looked_like: None,
                refusals: BTreeMap::new(),
                refusal_rate: None,
                backends: vec![],
            }],
            explanation: Arc::from(""),
            fix: None,
            error: None,
            impact: vec![],
            findings: vec![],
            protocols: vec![],
            cause: None,
        }
    }

    fn host(name: &str) -> HostReport {
        HostReport {
            host: name.into(),
            port: 443,
            path: "/".into(),
            line: 1,
            addresses: vec!["127.0.0.1".into()],
            dns: DnsReport {
                cnames: vec![],
                ttl_s: Some(60),
                error: None,
                overridden: false,
                elapsed_ms: 1.5,
                https: vec![],
                https_error: None,
                stale: None,
            },
            endpoints: vec![EndpointReport {
                address: "127.0.0.1".into(),
                alpn: Some("h2".into()),
                tls_version: Some("TLSv1.3".into()),
                cert: Some(CertReport {
                    sans: vec![name.into()],
                    ip_sans: vec![],
                    subject: String::new(),
                    issuer: String::new(),
                    not_before: Timestamp::parse("2026-01-01T00:00:00Z"),
                    not_after: Timestamp::parse("2027-01-01T00:00:00Z"),
                    trusted: true,
                    covers_host: true,
                    covering_san: Some(name.into()),
                    error: None,
                    chain_len: 1,
                    sha256: String::new(),
                }),
                direct: DirectReport {
                    status: Some(200),
                    error: None,
                    statuses: BTreeMap::new(),
                    errors: 0,
                    version: None,
                    http1_statuses: BTreeMap::new(),
                },
                error: None,
                handshakes: 2,
                handshake_errors: 0,
                connect_ms: Some(1.0),
                tls_ms: Some(3.0),
                origin_frame: None,
                alt_svc: vec![],
            }],
            findings: vec![],
        }
    }

    fn view(pairs: Vec<PairReport>) -> Arc<LiveView> {
        let mut v = LiveView::default();
        v.report.generated_at = Timestamp::parse("2026-11-28T02:00:00Z").expect("a time");
        v.report.hosts = vec![Arc::new(host("a.example")), Arc::new(host("b.example"))];
        v.report.summary.pairs = pairs.len() as u32;
        v.report.pairs = pairs.into_iter().map(Arc::new).collect();
        Arc::new(v)
    }

    fn exporter(max_pairs: usize, vantage: Option<&str>) -> Exporter {
        Exporter::new(ExporterOptions {
            vantage: vantage.map(String::from),
            max_pairs,
            window: Duration::from_secs(60),
        })
    }

    fn sample(text: &str, prefix: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// A pair probed over HTTP/2 and HTTP/3 has each protocol's verdict, requests and refusal
    /// share under a `protocol` label; a pair probed over HTTP/2 only has none of them.
    #[test]
    fn pairs_probed_over_both_protocols_have_series_per_protocol() {
        use crate::engine::snapshot::{Protocol, ProtocolReport};
        let row = |protocol, r: &PairReport| ProtocolReport {
            protocol,
            coalesce: r.coalesce.clone(),
            verdict: r.verdict,
            probes: r.probes,
            rate_421: r.rate_421,
            refusal_rate: r.refusal_rate,
            explanation: r.explanation.clone(),
            error: None,
            addresses: r.addresses.clone(),
        };
        let h2 = pair("a.example:443", "b.example:443", Verdict::Ok, 4, 0);
        let h3 = pair("a.example:443", "b.example:443", Verdict::Misdirected, 2, 2);
        let mut both = PairReport {
            verdict: Verdict::Misdirected,
            ..h2.clone()
        };
        both.protocols = vec![row(Protocol::H2, &h2), row(Protocol::H3, &h3)];
        let h2_only = pair("b.example:443", "a.example:443", Verdict::Ok, 4, 0);
        let e = exporter(10, None);
        e.update(view(vec![both, h2_only]), Instant::now());
        let text = e.encode(Format::Prometheus);
        let key = |protocol: &str| {
            format!(r#"{{origin="a.example:443",target="b.example:443",protocol="{protocol}""#)
        };
        for (protocol, verdict) in [("h2", "ok"), ("h3", "misdirected")] {
            let series = format!(
                "coalscope_pair_protocol_verdict{},verdict=\"{verdict}\"}} 1",
                key(protocol)
            );
            assert!(text.contains(&series), "{series} in {text}");
        }
        assert_eq!(
            sample(&text, &format!("coalscope_pair_protocol_probes{}}}", key("h3"))),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                &format!("coalscope_pair_protocol_refused_ratio{}}}", key("h3"))
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                &format!("coalscope_pair_protocol_refused_ratio{}}}", key("h2"))
            ),
            Some(0.0)
        );
        assert!(
            !text.contains(r#"coalscope_pair_protocol_verdict{origin="b.example:443""#),
            "{text}"
        );
    }

    #[test]
    fn counters_follow_growth_and_never_go_down() {
        let e = exporter(10, None);
        let t0 = Instant::now();
        e.update(
            view(vec![pair(
                "a.example:443",
                "b.example:443",
                Verdict::Misdirected,
                3,
                3,
            )]),
            t0,
        );
        e.update(
            view(vec![pair(
                "a.example:443",
                "b.example:443",
                Verdict::Misdirected,
                1,
                1,
            )]),
            t0 + Duration::from_secs(1),
        );
        e.update(
            view(vec![pair(
                "a.example:443",
                "b.example:443",
                Verdict::Misdirected,
                2,
                2,
            )]),
            t0 + Duration::from_secs(2),
        );
        let text = e.encode(Format::Prometheus);
        let key = r#"{origin="a.example:443",target="b.example:443",address="127.0.0.1"}"#;
        assert_eq!(
            sample(&text, &format!("coalscope_pair_probes_total{key}")),
            Some(4.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, &format!("coalscope_pair_misdirected_total{key}")),
            Some(4.0)
        );
        let pair_key = r#"{origin="a.example:443",target="b.example:443"}"#;
        assert_eq!(
            sample(&text, &format!("coalscope_pair_refused_ratio{pair_key}")),
            Some(1.0),
            "{text}"
        );
        assert!(text.contains(
            r#"coalscope_pair_verdict{origin="a.example:443",target="b.example:443",verdict="misdirected"} 1"#
        ));
        assert!(text.contains(
            r#"coalscope_pair_verdict{origin="a.example:443",target="b.example:443",verdict="ok"} 0"#
        ));
        assert!(text.contains(
            r#"coalscope_pair_coalesce{origin="a.example:443",target="b.example:443",client="firefox"} 0"#
        ));
        assert!(text.contains(
            r#"coalscope_cert_expiry_timestamp_seconds{host="a.example:443",address="127.0.0.1"} 1798761600"#
        ), "{text}");
        // Two handshakes per host at 1 ms / 3 ms medians; one DNS lookup each.
        assert!(
            text.contains(r#"coalscope_probe_phase_duration_seconds_count{phase="connect"} 4"#),
            "{text}"
        );
        assert!(text.contains(r#"coalscope_probe_phase_duration_seconds_count{phase="dns"} 2"#));
        assert!(text.contains("# TYPE coalscope_pair_probes_total counter"));
    }

    /// `host(name)` whose DNS answer is a stale one.
    fn stale_host(name: &str) -> HostReport {
        let mut h = host(name);
        h.dns.stale = Some(crate::engine::snapshot::DnsStaleReport {
            since: Timestamp::from_unix(0),
            until: Timestamp::from_unix(60),
            error: "SERVFAIL".into(),
        });
        h
    }

    /// Events count per kind over the process life (every kind from 0, never down); a host
    /// whose answer is stale is 1 in `coalscope_dns_stale`, the others 0.
    #[test]
    fn events_and_stale_dns_are_exported() {
        let e = exporter(10, None);
        e.update(view(vec![]), Instant::now());
        let text = e.encode(Format::Prometheus);
        for kind in EventKind::ALL {
            let line = format!("coalscope_events_total{{kind=\"{kind}\"}} 0");
            assert!(text.contains(&line), "{line} in {text}");
        }
        assert!(
            text.contains(r#"coalscope_dns_stale{host="a.example:443"} 0"#),
            "{text}"
        );
        let mut v = (*view(vec![])).clone();
        v.report.hosts[0] = Arc::new(stale_host("a.example"));
        v.event_totals.add(EventKind::DnsStale);
        v.event_totals.add(EventKind::Verdict);
        v.event_totals.add(EventKind::Verdict);
        e.update(Arc::new(v), Instant::now());
        // A view with lower totals (a restarted store) does not take the counter down.
        e.update(view(vec![]), Instant::now());
        let text = e.encode(Format::Prometheus);
        assert!(
            text.contains(r#"coalscope_events_total{kind="verdict"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"coalscope_events_total{kind="dns-stale"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"coalscope_dns_stale{host="a.example:443"} 0"#),
            "{text}"
        );
        let mut v = (*view(vec![])).clone();
        v.report.hosts[1] = Arc::new(stale_host("b.example"));
        e.update(Arc::new(v), Instant::now());
        let text = e.encode(Format::Prometheus);
        assert!(
            text.contains(r#"coalscope_dns_stale{host="b.example:443"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn the_cap_keeps_problem_pairs_and_says_so() {
        let e = exporter(1, Some("fra1"));
        let pairs = vec![
            pair("a.example:443", "b.example:443", Verdict::Ok, 3, 0),
            pair("b.example:443", "a.example:443", Verdict::Misdirected, 3, 3),
        ];
        e.update(view(pairs), Instant::now());
        assert_eq!(e.pair_counts(), (1, 1));
        let text = e.encode(Format::Prometheus);
        assert!(
            text.contains(r#"coalscope_pairs_dropped{vantage="fra1"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"coalscope_pairs_exported{vantage="fra1"} 1"#));
        assert!(text.contains(r#"origin="b.example:443""#));
        assert!(!text.contains(r#"origin="a.example:443""#));
        // Every sample line carries the vantage.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.contains(r#"vantage="fra1""#), "{line}");
        }
    }

    #[test]
    fn openmetrics_ends_with_eof_and_types_info() {
        let e = exporter(10, None);
        e.update(view(vec![]), Instant::now());
        let text = e.encode(Format::OpenMetrics);
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("# TYPE coalscope_build info"));
        assert!(text.contains("# UNIT coalscope_cert_expiry_timestamp_seconds seconds"));
        let plain = e.encode(Format::Prometheus);
        assert!(!plain.contains("# EOF"));
        assert!(plain.contains("# TYPE coalscope_build_info gauge"));
    }

    /// Views that list the pending pairs by index (`serve`'s) expose exactly what views with
    /// every pair in `report.pairs` expose, over views of two stores fed the same way: the
    /// same pairs exported (pending ones included, their reports made), the same series.
    /// (Within `Reconciler`'s forget time: past it, a pair back to pending without samples
    /// forgets its totals, as a pair that leaves the list does.)
    #[test]
    fn views_listing_pending_pairs_by_index_expose_the_same() {
        use crate::engine::snapshot::EngineStatus;
        use crate::testing::synth::Synth;
        use rand::{Rng, SeedableRng};
        for seed in 0..3u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let synth = Synth::new(36, 6);
            let window = Duration::from_secs(60);
            let (mut plain, mut by_index) = (synth.store(window), synth.store(window));
            by_index.list_pending_by_index(true);
            let entries = synth.entries();
            let hosts = plain.hosts_for_jobs();
            let (a, b) = (exporter(40, None), exporter(40, None));
            let mut now = std::time::Instant::now();
            let mut listed_by_index = 0;
            for step in 0..250u64 {
                let n = rng.random_range(0..entries.len());
                match rng.random_range(0..10) {
                    0..=3 => {
                        let round = rng.random_range(0..6);
                        plain.apply(&hosts, synth.origin(n, round), now);
                        by_index.apply(&hosts, synth.origin(n, round), now);
                    }
                    4..=6 => {
                        plain.apply(&hosts, synth.direct(n), now);
                        by_index.apply(&hosts, synth.direct(n), now);
                    }
                    _ => now += Duration::from_millis(rng.random_range(0..4000)),
                }
                if rng.random_bool(0.3) {
                    let status = EngineStatus {
                        cycles: step / 40,
                        ..Default::default()
                    };
                    let (va, vb) = (
                        plain.publish(now, status.clone(), true),
                        by_index.publish(now, status, true),
                    );
                    listed_by_index += vb.pending.len();
                    a.update(Arc::new(va), now);
                    b.update(Arc::new(vb), now);
                    assert_eq!(a.pair_counts(), b.pair_counts(), "seed {seed} step {step}");
                    for format in [Format::Prometheus, Format::OpenMetrics] {
                        // The two stores publish a moment apart: the wall-clock second may differ.
                        let clockless = |t: String| -> String {
                            t.lines()
                                .filter(|l| !l.starts_with("coalscope_snapshot_timestamp_seconds"))
                                .collect::<Vec<_>>()
                                .join("\n")
                        };
                        let (x, y) = (clockless(a.encode(format)), clockless(b.encode(format)));
                        let only = |p: &str, q: &str| -> Vec<String> {
                            p.lines()
                                .filter(|l| !q.lines().any(|m| m == *l))
                                .map(String::from)
                                .collect()
                        };
                        assert!(
                            x == y,
                            "seed {seed} step {step}: only with every pair by report: {:?}; only by index: {:?}",
                            only(&x, &y),
                            only(&y, &x)
                        );
                    }
                }
            }
            assert!(listed_by_index > 0);
        }
    }

    /// Folding in only what changed exposes exactly what folding in everything exposes, over
    /// views of a real store: probes, verdict changes, windows passing, DNS changes, reloads,
    /// and views the exporter never sees.
    #[test]
    fn incremental_updates_expose_what_full_updates_expose() {
        use crate::engine::snapshot::{EngineStatus, ViewChanges};
        use crate::testing::synth::Synth;
        use rand::{Rng, SeedableRng};
        for seed in 0..4u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let synth = Synth::new(36, 6);
            let window = Duration::from_secs(60);
            let mut store = synth.store(window);
            let entries = synth.entries();
            let mut hosts = store.hosts_for_jobs();
            let options = |window| ExporterOptions {
                vantage: None,
                max_pairs: 50,
                window,
            };
            let (inc, full) = (Exporter::new(options(window)), Exporter::new(options(window)));
            let mut now = std::time::Instant::now();
            let mut incremental_views = 0;
            for step in 0..400u64 {
                match rng.random_range(0..100) {
                    0..=49 => {
                        let i = rng.random_range(0..hosts.len());
                        let n = entries
                            .iter()
                            .position(|e| e.key() == hosts[i].entry.key())
                            .unwrap();
                        if hosts.len() == entries.len() {
                            store.apply(&hosts, synth.origin(n, rng.random_range(0..6)), now);
                        }
                        store.apply(&hosts, synth.direct(n), now);
                    }
                    50..=54 => {
                        let e = &entries[rng.random_range(0..entries.len())];
                        store.set_dns(&e.key(), synth.dns(rng.random_range(0..entries.len())));
                    }
                    55..=57 => {
                        let listed: Vec<_> =
                            entries.iter().filter(|_| rng.random_bool(0.9)).cloned().collect();
                        store.set_entries(&listed);
                        for e in &listed {
                            let n = entries.iter().position(|x| x == e).unwrap();
                            store.set_dns(&e.key(), synth.dns(n));
                        }
                        hosts = store.hosts_for_jobs();
                    }
                    58..=59 => now += Duration::from_secs(rng.random_range(30..1200)),
                    _ => now += Duration::from_millis(rng.random_range(0..4000)),
                }
                if hosts.len() != entries.len() && rng.random_bool(0.05) {
                    store.set_entries(&entries);
                    for (n, e) in entries.iter().enumerate() {
                        store.set_dns(&e.key(), synth.dns(n));
                    }
                    hosts = store.hosts_for_jobs();
                }
                if rng.random_bool(0.4) {
                    let status = EngineStatus {
                        cycles: step / 40,
                        ..Default::default()
                    };
                    let view = store.publish(now, status, true);
                    // Some views are never seen (the watch channel keeps the latest only).
                    if rng.random_bool(0.2) {
                        continue;
                    }
                    let seen = now + Duration::from_millis(rng.random_range(0..3));
                    let mut plain = view.clone();
                    plain.changes = ViewChanges::default();
                    incremental_views += usize::from(view.changes.layout < view.changes.seq);
                    inc.update(Arc::new(view), seen);
                    full.update(Arc::new(plain), seen);
                    for format in [Format::Prometheus, Format::OpenMetrics] {
                        assert_eq!(inc.encode(format), full.encode(format), "seed {seed} step {step}");
                    }
                }
            }
            assert!(incremental_views > 20, "{incremental_views}");
        }
    }
}
