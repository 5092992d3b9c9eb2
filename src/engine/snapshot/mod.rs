//! The results of the engine, shaped exactly as the JSON contract (`coalscope/1`): what
//! `check --format json` prints, what `/api/snapshot` will serve and what the table and the
//! dashboard draw. Fields beyond the contract are additions, never replacements.

pub mod cause;
mod event;
pub mod impact;
mod kinds;
mod live;
mod pending;
mod time;
mod vantage;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use self::event::{
    CertId, Event, EventRow, EventTotals, HostChange, HostEvent, VerdictEvent, MAX_EVENTS,
};
pub use self::kinds::{
    Client, CoalesceRule, Content, EventKind, FindingKind, ImpactClient, ImpactOutcome, NotCoalescable,
    Protocol, Severity, Verdict,
};
pub use self::live::{EngineStatus, History, LiveView, ViewChanges, HISTORY_BUCKETS};
pub use self::pending::{ListedPair, ListedPairs, PairSource, PendingPairs, PendingRun};
pub use self::time::Timestamp;
pub use self::vantage::{Health, Vantage, VantageData, Vantages};

pub const SCHEMA: &str = "coalscope/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub schema: String,
    pub generated_at: Timestamp,
    /// The vantage point that made the report (`serve --vantage NAME`); left out of the JSON
    /// when there is none (`check`, `serve` without `--vantage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vantage: Option<String>,
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
    /// The name's HTTPS records (RFC 9460), in priority order. Left out of the JSON when there
    /// are none (and always for `--resolve` overrides and IP literals, which ask no DNS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub https: Vec<HttpsRecordReport>,
    /// Why the HTTPS query failed (a timeout, SERVFAIL, REFUSED); it never fails the name.
    /// Left out of the JSON when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_error: Option<String>,
    /// The lookups fail for now and the addresses are the last good answer's, used until
    /// `until` (its TTL plus `--dns-grace`). Left out of the JSON when the answer is fresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<DnsStaleReport>,
}

/// A last good DNS answer kept while the lookups fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsStaleReport {
    /// The first failed lookup.
    pub since: Timestamp,
    /// Then the failure counts (`dns-error`) unless a good answer came.
    pub until: Timestamp,
    /// The latest lookup's error.
    pub error: String,
}

/// One HTTPS record (RFC 9460) as the DNS answered it; alpn ids and the target are the
/// server's text, unsanitised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpsRecordReport {
    /// SvcPriority: 0 = AliasMode (the target names the service), else ServiceMode.
    pub priority: u16,
    /// TargetName; "" when it is "." (the name itself).
    pub target: String,
    /// `alpn` ids as listed ("h3", "h2").
    pub alpn: Vec<String>,
    /// `no-default-alpn`: the implicit "http/1.1" does not apply.
    #[serde(default)]
    pub no_default_alpn: bool,
    pub port: Option<u16>,
    pub ipv4hint: Vec<String>,
    pub ipv6hint: Vec<String>,
    /// An `ech` parameter is present.
    pub ech: bool,
    pub ttl_s: u32,
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
    /// The origins listed by the ORIGIN frames (RFC 8336) of the latest connection, as
    /// received; None when no ORIGIN frame came (the origin set is unrestricted).
    #[serde(default)]
    pub origin_frame: Option<Vec<String>>,
    /// Alternative services advertised (Alt-Svc header or ALTSVC frame) on the latest
    /// connection.
    #[serde(default)]
    pub alt_svc: Vec<AltSvcReport>,
}

/// One Alt-Svc alternative (RFC 7838).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AltSvcReport {
    /// ALPN id: "h3", "h2", …
    pub protocol: String,
    /// Alternative host; null = the same host.
    pub host: Option<String>,
    pub port: u16,
    pub max_age_s: Option<u32>,
    /// "header" or "frame".
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertReport {
    /// dNSName SANs as in the certificate.
    pub sans: Vec<String>,
    pub ip_sans: Vec<String>,
    pub subject: String,
    pub issuer: String,
    /// `""` when no certificate could be read.
    #[serde(with = "time::empty_if_none")]
    pub not_before: Option<Timestamp>,
    #[serde(with = "time::empty_if_none")]
    pub not_after: Option<Timestamp>,
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
    pub kind: FindingKind,
    pub severity: Severity,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Coalesce {
    pub chrome: bool,
    pub firefox: bool,
    /// Which rule decided, per client (absent in snapshots from before the rules were named).
    #[serde(default)]
    pub rules: CoalesceRules,
}

/// The rule that decided `Coalesce::chrome` and `Coalesce::firefox`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoalesceRules {
    pub chrome: CoalesceRule,
    pub firefox: CoalesceRule,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairReport {
    /// "host:port" (shared with the other reports naming the host).
    pub origin: Arc<str>,
    pub target: Arc<str>,
    pub verdict: Verdict,
    /// Why no client would coalesce (verdict `not-coalescable` only).
    pub reason: Option<NotCoalescable>,
    pub shared_addresses: Vec<String>,
    pub cert_covers: bool,
    pub coalesce: Coalesce,
    /// Requests for the target made on connections opened for the origin.
    pub probes: u32,
    /// Share of those that got 421 (0 when nothing was probed).
    pub rate_421: f64,
    /// Share of the requests the server responded to (an answer or a refusal) that were
    /// refused in any way clients retry elsewhere (421, reset, GOAWAY), over every address,
    /// with its 95% interval (None when nothing was answered).
    #[serde(default)]
    pub refusal_rate: Option<RateInterval>,
    pub addresses: Vec<PairAddressReport>,
    /// One line saying what was seen (shared between pairs that say the same).
    pub explanation: Arc<str>,
    /// What to change, when something is wrong.
    pub fix: Option<Arc<str>>,
    /// Why the probe could not finish (verdict `error`).
    pub error: Option<String>,
    /// What each client does on this pair and what its users get, worst outcome first.
    #[serde(default)]
    pub impact: Vec<Impact>,
    /// What the pair shows beyond its verdict (an ORIGIN frame listing a refused target, or
    /// leaving out one served fine). Left out of the JSON when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// The pair judged over each protocol, when it was probed over HTTP/3 too (HTTP/2 first);
    /// `verdict` is then the worst of them. The pair's other counts (`probes`, `rate_421`,
    /// `refusal_rate`, `addresses`) stay HTTP/2's, or are HTTP/3's when HTTP/2 carried no
    /// request for the target. Left out of the JSON when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<ProtocolReport>,
    /// Why it is a problem, shared with the pairs of the same cause (problem and error
    /// verdicts). Not in the JSON, whose pairs carry their own texts.
    #[serde(skip)]
    pub cause: Option<Arc<cause::Cause>>,
}

impl PairReport {
    /// The protocol row whose verdict is the pair's, when it was probed over both (HTTP/2's
    /// when both agree): whose counts explain the verdict to a reader (the pair's own counts
    /// are HTTP/2's).
    pub fn deciding_protocol(&self) -> Option<&ProtocolReport> {
        self.protocols.iter().find(|r| r.verdict == self.verdict)
    }
}

/// A pair judged over one protocol: requests for the target on connections opened for the
/// origin over that protocol only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolReport {
    pub protocol: Protocol,
    pub verdict: Verdict,
    /// Which clients would put the target on the origin's connections over this protocol
    /// (over HTTP/3 Chromium follows the HTTP/3 ORIGIN frame). Absent in snapshots from before.
    #[serde(default)]
    pub coalesce: Coalesce,
    pub probes: u32,
    pub rate_421: f64,
    pub refusal_rate: Option<RateInterval>,
    pub explanation: Arc<str>,
    pub error: Option<String>,
    pub addresses: Vec<PairAddressReport>,
}

/// One client's fate on a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Impact {
    pub client: ImpactClient,
    /// The client would put the target on the origin's connection.
    pub coalesces: bool,
    pub outcome: ImpactOutcome,
}

/// A rate measured over `n` trials, with its 95% Wilson score interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateInterval {
    pub rate: f64,
    pub low: f64,
    pub high: f64,
    pub n: u32,
}

/// The connections at one address that share what tells backends apart, and how they fared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendReport {
    /// SHA-256 of the leaf certificate the connections were served (hex).
    pub cert_sha256: String,
    /// The `Server` header of the answers on those connections (untrusted text).
    pub server: Option<String>,
    pub tls_version: Option<String>,
    pub cipher: Option<String>,
    pub alpn: Option<String>,
    /// Requests for the target on those connections, and how many were refused.
    pub probes: u32,
    pub refused: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairAddressReport {
    pub address: String,
    pub verdict: Verdict,
    pub probes: u32,
    pub statuses: BTreeMap<String, u32>,
    pub direct_statuses: BTreeMap<String, u32>,
    /// Coalesced requests that failed without an answer.
    pub errors: u32,
    pub misrouted: u32,
    /// Which clients would put the target on the origin's connection at this address.
    pub clients: Vec<Client>,
    /// The target's page changes between direct answers.
    pub dynamic: bool,
    /// How the coalesced pages compare with the target's own (the furthest of them); None
    /// when no coalesced 2xx answer was compared.
    #[serde(default)]
    pub content: Option<Content>,
    /// "host:port" of the site whose page came back instead (content `other-site`).
    #[serde(default)]
    pub looked_like: Option<String>,
    /// Refused requests by kind: "421", "reset HTTP_1_1_REQUIRED", "reset REFUSED_STREAM",
    /// "goaway NO_ERROR"…
    #[serde(default)]
    pub refusals: BTreeMap<String, u32>,
    /// Share of the answered requests that were refused, with its 95% interval (None when
    /// nothing was answered).
    #[serde(default)]
    pub refusal_rate: Option<RateInterval>,
    /// The distinct backends seen at this address, when there were several.
    #[serde(default)]
    pub backends: Vec<BackendReport>,
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
    /// Number of listed pairs per verdict (written in the order of the verdicts' names).
    #[serde(serialize_with = "by_name")]
    pub verdicts: BTreeMap<Verdict, u32>,
    /// Host findings of severity error.
    pub host_errors: u32,
    /// Share of the pairs some client would coalesce that were probed within the window
    /// (1 when there are none). Below 1 when the request budget cannot cover every pair.
    pub coverage: f64,
    /// Share of the hosts that some such pair has as target which were tried as a target
    /// (from at least one origin) within the window: what the planner covers first when the
    /// budget cannot cover every pair. 1 when there are none.
    #[serde(default = "one")]
    pub target_coverage: f64,
    /// Pairs judged `ok` or `misdirected` on too few probes to tell a flaky backend from a
    /// consistent one (more rounds would tell).
    #[serde(default)]
    pub inconclusive: u32,
    /// The `check --rounds` that would settle them (None when nothing is inconclusive, and in
    /// the live engine, which has no rounds).
    #[serde(default)]
    pub settle_rounds: Option<u32>,
}

/// The default of a share that older documents did not carry.
fn one() -> f64 {
    1.0
}

impl Snapshot {
    /// Exit status of `check`: 1 when a pair has a problem verdict or a host has an error.
    pub fn has_problems(&self) -> bool {
        self.summary.problems > 0 || self.summary.host_errors > 0
    }
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            schema: SCHEMA.into(),
            generated_at: Timestamp::default(),
            vantage: None,
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
                target_coverage: 1.0,
                inconclusive: 0,
                settle_rounds: None,
            },
        }
    }
}

/// A map keyed by verdict, written in the alphabetical order of the verdicts' names (as the
/// contract has always written it).
fn by_name<S: serde::Serializer>(counts: &BTreeMap<Verdict, u32>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut sorted: Vec<(&'static str, u32)> = counts.iter().map(|(v, n)| (v.as_str(), *n)).collect();
    sorted.sort_unstable();
    let mut map = s.serialize_map(Some(sorted.len()))?;
    for (name, n) in sorted {
        map.serialize_entry(name, &n)?;
    }
    map.end()
}
