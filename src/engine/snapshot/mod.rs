//! The results of the engine, shaped exactly as the JSON contract (`coalscope/1`): what
//! `check --format json` prints, what `/api/snapshot` will serve and what the table and the
//! dashboard draw. Fields beyond the contract are additions, never replacements.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "coalscope/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub schema: String,
    pub generated_at: String,
    /// Shared between successive live views while unchanged (serialised as plain objects).
    pub hosts: Vec<Arc<HostReport>>,
    pub pairs: Vec<Arc<PairReport>>,
    pub groups: Vec<GroupReport>,
    pub summary: Summary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostReport {
    pub host: String,
    pub port: u16,
    /// Path requested on this host.
    pub path: String,
    /// Line of the watch-file.
    pub line: usize,
    pub addresses: Vec<String>,
    pub dns: DnsReport,
    pub endpoints: Vec<EndpointReport>,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsReport {
    pub cnames: Vec<String>,
    pub ttl_s: Option<u32>,
    pub error: Option<String>,
    /// The addresses came from `--resolve` (or the host is an IP literal).
    pub overridden: bool,
    pub elapsed_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointReport {
    pub address: String,
    pub alpn: Option<String>,
    pub tls_version: Option<String>,
    pub cert: Option<CertReport>,
    pub direct: DirectReport,
    /// Why connections for this host to this address failed, when none succeeded.
    pub error: Option<String>,
    /// Handshakes made for this host at this address (SNI = host), and how many failed.
    pub handshakes: u32,
    pub handshake_errors: u32,
    /// Median phase timings over the handshakes, milliseconds.
    pub connect_ms: Option<f64>,
    pub tls_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertReport {
    /// dNSName SANs as in the certificate.
    pub sans: Vec<String>,
    pub ip_sans: Vec<String>,
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    /// The chain verifies against the web roots and `--ca-file`, within its validity period.
    pub trusted: bool,
    pub covers_host: bool,
    /// The SAN that covers the host, if any.
    pub covering_san: Option<String>,
    /// Why the chain is not trusted ("expired", "unknown issuer", …), or a parse error.
    pub error: Option<String>,
    pub chain_len: usize,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectReport {
    /// The most frequent status of the direct requests (None when none got an answer).
    pub status: Option<u16>,
    /// The last error of a direct request, if any failed.
    pub error: Option<String>,
    pub statuses: BTreeMap<String, u32>,
    pub errors: u32,
    /// HTTP version of the direct answers ("HTTP/2", "HTTP/1.1").
    pub version: Option<String>,
    /// Statuses of the HTTP/1.1 request made when the HTTP/2 answers failed.
    pub http1_statuses: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: String,
    /// "error", "warning" or "info".
    pub severity: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coalesce {
    pub chrome: bool,
    pub firefox: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairReport {
    /// "host:port" (shared with the other reports naming the host).
    pub origin: Arc<str>,
    pub target: Arc<str>,
    pub verdict: String,
    pub reason: Option<String>,
    pub shared_addresses: Vec<String>,
    pub cert_covers: bool,
    pub coalesce: Coalesce,
    /// Requests for the target made on connections opened for the origin.
    pub probes: u32,
    /// Share of those that got 421 (0 when nothing was probed).
    pub rate_421: f64,
    pub addresses: Vec<PairAddressReport>,
    /// One line saying what was seen (shared between pairs that say the same).
    pub explanation: Arc<str>,
    /// What to change, when something is wrong.
    pub fix: Option<Arc<str>>,
    /// Why the probe could not finish (verdict `error`).
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairAddressReport {
    pub address: String,
    pub verdict: String,
    pub probes: u32,
    pub statuses: BTreeMap<String, u32>,
    pub direct_statuses: BTreeMap<String, u32>,
    /// Coalesced requests that failed without an answer.
    pub errors: u32,
    pub misrouted: u32,
    /// Which clients would put the target on the origin's connection at this address.
    pub clients: Vec<String>,
    /// The target's page changes between direct answers (bodies are not compared).
    pub dynamic: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupReport {
    pub id: u32,
    pub members: Vec<String>,
    pub problems: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub hosts: u32,
    pub pairs: u32,
    pub problems: u32,
    pub cert_only_pairs: u32,
    pub connections: u64,
    pub requests: u64,
    pub rounds: u32,
    pub duration_s: f64,
    /// Number of listed pairs per verdict.
    pub verdicts: BTreeMap<String, u32>,
    /// Host findings of severity error.
    pub host_errors: u32,
    /// Share of the pairs some client would coalesce that were probed within the window
    /// (1 when there are none). Below 1 when the request budget cannot cover every pair.
    pub coverage: f64,
}

impl Snapshot {
    /// Exit status of `check`: 1 when a pair has a problem verdict or a host has an error.
    pub fn has_problems(&self) -> bool {
        self.summary.problems > 0 || self.summary.host_errors > 0
    }
}

/// What the live dashboard draws: the contract snapshot (rates over the window) plus the
/// live state around it. Published as `Arc<LiveView>` on a `tokio::sync::watch` channel; the
/// UI never touches engine state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveView {
    pub report: Snapshot,
    /// Per pair, aligned with `report.pairs`: the 421 rate per time bucket over the window,
    /// oldest first (see `History::points`).
    pub histories: Vec<History>,
    /// Verdict changes, oldest first, bounded (shared between views while unchanged).
    pub events: Arc<Vec<VerdictEvent>>,
    pub status: EngineStatus,
    /// What changed since earlier views, for readers that fold views in incrementally (the
    /// exporter). All zero (and empty) in views not made by the engine's store.
    pub changes: ViewChanges,
}

/// Publish sequence numbers of a view and of its parts: a reader that has folded in the view
/// numbered `n` needs to look again only at the parts changed after `n`, as long as the
/// layout did not change after `n` either.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewChanges {
    /// This view's number (from 1; 0: unknown, fold everything in).
    pub seq: u64,
    /// The last view whose pair or host list (members or order) differed from its predecessor.
    pub layout: u64,
    /// Per pair of `report.pairs`: the view in which this report last changed.
    pub pairs: Vec<u64>,
    /// Per host of `report.hosts`: the view in which this report last changed.
    pub hosts: Vec<u64>,
}

/// Buckets of a sparkline over the window.
pub const HISTORY_BUCKETS: usize = 30;

/// A pair's sparkline: the 421 rate per time bucket over the window, oldest first; None
/// where no probe landed in the bucket. The live engine hands out the samples and computes
/// the points only when asked (the dashboard draws the visible rows only).
#[derive(Debug, Clone)]
pub struct History(HistoryData);

#[derive(Debug, Clone)]
enum HistoryData {
    Points(Arc<[Option<f32>]>),
    Samples {
        /// (when, got 421) of the answered coalesced requests of the pair.
        samples: Arc<[(Instant, bool)]>,
        /// (now, bucket width): the same for every pair of a view, so shared.
        clock: Arc<(Instant, Duration)>,
    },
}

impl History {
    /// Answered samples bucketed by age at `clock.0`, `clock.1` wide, `HISTORY_BUCKETS` points
    /// (see `History::clock`).
    pub fn from_samples(samples: Arc<[(Instant, bool)]>, clock: &Arc<(Instant, Duration)>) -> History {
        History(HistoryData::Samples {
            samples,
            clock: clock.clone(),
        })
    }

    /// The (now, bucket width) shared by the histories of one view.
    pub fn clock(now: Instant, bucket: Duration) -> Arc<(Instant, Duration)> {
        Arc::new((now, bucket.max(Duration::from_nanos(1))))
    }

    pub fn points(&self) -> Vec<Option<f32>> {
        match &self.0 {
            HistoryData::Points(p) => p.to_vec(),
            HistoryData::Samples { samples, clock } => {
                let (now, bucket) = &**clock;
                let mut answered = [0u32; HISTORY_BUCKETS];
                let mut refused = [0u32; HISTORY_BUCKETS];
                for (at, was_421) in samples.iter() {
                    let age = now.saturating_duration_since(*at);
                    let from_end = (age.as_nanos() / bucket.as_nanos()) as usize;
                    if from_end >= HISTORY_BUCKETS {
                        continue;
                    }
                    let i = HISTORY_BUCKETS - 1 - from_end;
                    answered[i] += 1;
                    refused[i] += u32::from(*was_421);
                }
                (0..HISTORY_BUCKETS)
                    .map(|i| (answered[i] > 0).then(|| refused[i] as f32 / answered[i] as f32))
                    .collect()
            }
        }
    }
}

impl Default for History {
    fn default() -> Self {
        History(HistoryData::Points(Arc::from(Vec::new())))
    }
}

impl From<Vec<Option<f32>>> for History {
    fn from(points: Vec<Option<f32>>) -> Self {
        History(HistoryData::Points(Arc::from(points)))
    }
}

/// Histories are equal when they draw the same points.
impl PartialEq for History {
    fn eq(&self, other: &Self) -> bool {
        self.points() == other.points()
    }
}

/// A pair whose verdict changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictEvent {
    /// RFC 3339 UTC.
    pub at: String,
    pub origin: String,
    pub target: String,
    /// Verdict before (None when the pair is new).
    pub from: Option<String>,
    pub to: String,
    /// The pair's explanation at the time of the change.
    pub message: String,
}

/// The engine's own state, for the header.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineStatus {
    /// The watch-file path (or "embedded lab").
    pub source: String,
    pub hosts: usize,
    /// Probe jobs finished / planned in the current cycle of `--interval`.
    pub cycle_done: usize,
    pub cycle_total: usize,
    /// Cycles completed since the start.
    pub cycles: u64,
    /// RFC 3339 time of the last successful watch-file load.
    pub last_reload: Option<String>,
    /// Why the last reload failed (names file:line); the last good list stays in use.
    pub reload_error: Option<String>,
    pub paused: bool,
    pub interval_s: f64,
    pub window_s: f64,
    /// What the demo lab is doing right now, when running on it.
    pub lab_phase: Option<String>,
    /// `--max-rps` (0: no limit).
    #[serde(default)]
    pub max_rps: u32,
    /// Requests per second that probing every pair of the list every cycle would take; above
    /// `max_rps`, each cycle probes part of the pairs (see `summary.coverage`).
    #[serde(default)]
    pub full_rps: f64,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            schema: SCHEMA.into(),
            generated_at: String::new(),
            hosts: vec![],
            pairs: vec![],
            groups: vec![],
            summary: Summary {
                hosts: 0,
                pairs: 0,
                problems: 0,
                cert_only_pairs: 0,
                connections: 0,
                requests: 0,
                rounds: 0,
                duration_s: 0.0,
                verdicts: BTreeMap::new(),
                host_errors: 0,
                coverage: 1.0,
            },
        }
    }
}
