//! From raw probe records to the contract's snapshot: host findings, pair policies and
//! verdicts, coalescing groups and the summary.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::judge::explain::{self, PairFacts, ServerKind};
use crate::engine::judge::policy::{self, EndpointFacts, PairPolicy};
use crate::engine::judge::verdict::{self, AddressEvidence};
use crate::engine::probe::cert::{self, CertSummary};
use crate::engine::probe::error::ProbeError;
use crate::engine::record::{EndpointRecord, HostRecord, Outcome, Records};
use crate::engine::snapshot::*;

/// Certificates expiring within this many days get a warning.
const EXPIRY_WARNING_DAYS: i64 = 14;

pub fn analyse(records: &Records, all_pairs: bool, elapsed: Duration) -> Snapshot {
    let now = unix_now();
    let hosts: Vec<Arc<HostReport>> = records
        .hosts
        .iter()
        .map(|h| Arc::new(host_report(h, now)))
        .collect();
    let mut listed: Vec<(Verdict, Arc<PairReport>)> = Vec::new();
    let mut tally = Tally::default();
    let mut links: Vec<(usize, usize)> = Vec::new();
    let mut problem_origins: Vec<usize> = Vec::new();
    let index = PairIndex::new(&records.hosts);
    for a in 0..records.hosts.len() {
        for b in index.candidates(&records.hosts, a) {
            if a == b {
                continue;
            }
            let coalesced = |addr: IpAddr| {
                records
                    .coalesced
                    .get(&(a, b, addr))
                    .map(|v| v.iter().collect())
                    .unwrap_or_default()
            };
            match evaluate_pair(&records.hosts[a], &records.hosts[b], &coalesced, all_pairs) {
                PairEval::Skip => {}
                PairEval::CertOnly => tally.cert_only += 1,
                PairEval::Listed {
                    report,
                    verdict,
                    link,
                    cert_only,
                } => {
                    tally.cert_only += u32::from(cert_only);
                    if link {
                        links.push((a, b));
                    }
                    if verdict.is_problem() {
                        problem_origins.push(a);
                    }
                    tally.add(verdict, &report);
                    listed.push((verdict, Arc::from(report)));
                }
            }
        }
    }
    // Problems first, then by origin/target in watch-file order (pairs are built in that order).
    listed.sort_by_key(|(v, _)| *v);
    let pairs: Vec<Arc<PairReport>> = listed.into_iter().map(|(_, p)| p).collect();
    let keys: Vec<String> = records.hosts.iter().map(|h| h.entry.key()).collect();
    let groups = groups(&keys, &links, &problem_origins);
    let summary = summary(
        &hosts,
        &tally,
        (records.connections, records.requests, records.rounds),
        elapsed,
    );
    Snapshot {
        schema: SCHEMA.into(),
        generated_at: Timestamp::from_unix(now),
        hosts,
        pairs,
        groups,
        summary,
    }
}

/// What one ordered pair (origin ≠ target) contributes to a snapshot.
pub(crate) enum PairEval {
    /// Not a pair: no shared address and no certificate of the origin naming the target.
    Skip,
    /// Linked by the certificate only: counted, not listed.
    CertOnly,
    Listed {
        report: Box<PairReport>,
        verdict: Verdict,
        /// Some client would coalesce (an edge of the groups).
        link: bool,
        /// Counted as cert-only too (listed with `--all-pairs`).
        cert_only: bool,
    },
}

/// Evaluate the pair `origin → target`; `coalesced(addr)` are the requests for the target on
/// the origin's connections at `addr`.
pub(crate) fn evaluate_pair<'c>(
    ha: &HostRecord,
    hb: &HostRecord,
    coalesced: &dyn Fn(IpAddr) -> Vec<&'c Outcome>,
    all_pairs: bool,
) -> PairEval {
    if ha.entry.port != hb.entry.port || ha.dns.addresses.is_empty() || hb.dns.addresses.is_empty() {
        return PairEval::Skip;
    }
    let policy = policy::evaluate(
        &ha.dns.addresses,
        &hb.dns.addresses,
        &endpoint_facts(ha, &hb.entry.host),
    );
    let mut cert_only = false;
    if policy.shared.is_empty() {
        if !policy.cert_covers {
            return PairEval::Skip;
        }
        if !all_pairs {
            return PairEval::CertOnly;
        }
        cert_only = true;
    }
    let report = Box::new(pair_report(ha, hb, coalesced, &policy));
    PairEval::Listed {
        verdict: report.verdict,
        link: policy.chrome || policy.firefox,
        cert_only,
        report,
    }
}

/// Counts over the listed pairs, for the summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Tally {
    pub pairs: u32,
    pub verdicts: [u32; Verdict::ALL.len()],
    pub cert_only: u32,
    /// Pairs some client would coalesce, and how many of those were probed.
    pub coalescable: u32,
    pub probed: u32,
}

impl Tally {
    pub fn add(&mut self, verdict: Verdict, p: &PairReport) {
        self.pairs += 1;
        self.verdicts[verdict as usize] += 1;
        if p.coalesce.chrome || p.coalesce.firefox || verdict == Verdict::Pending {
            self.coalescable += 1;
            self.probed += u32::from(p.probes > 0);
        }
    }
}

/// The summary of a snapshot; `counters` are (connections, requests, rounds).
pub(crate) fn summary(
    hosts: &[Arc<HostReport>],
    tally: &Tally,
    counters: (u64, u64, u32),
    elapsed: Duration,
) -> Summary {
    let verdicts: BTreeMap<Verdict, u32> = Verdict::ALL
        .iter()
        .filter(|v| tally.verdicts[**v as usize] > 0)
        .map(|v| (*v, tally.verdicts[*v as usize]))
        .collect();
    Summary {
        hosts: hosts.len() as u32,
        pairs: tally.pairs,
        problems: Verdict::ALL
            .iter()
            .filter(|v| v.is_problem())
            .map(|v| tally.verdicts[*v as usize])
            .sum(),
        cert_only_pairs: tally.cert_only,
        connections: counters.0,
        requests: counters.1,
        rounds: counters.2,
        duration_s: (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        verdicts,
        host_errors: hosts
            .iter()
            .flat_map(|h| &h.findings)
            .filter(|f| f.severity == Severity::Error)
            .count() as u32,
        coverage: coverage(tally),
    }
}

/// Which targets can form a listed pair with an origin, without looking at all n² pairs: the
/// hosts sharing an address and port with it, and the hosts one of its certificates names
/// (exactly, or under a wildcard). A superset of the pairs `analyse` keeps.
pub(crate) struct PairIndex {
    by_addr: HashMap<(IpAddr, u16), Vec<usize>>,
    /// Lower-case name without a trailing dot → hosts.
    by_name: HashMap<String, Vec<usize>>,
    /// Lower-case parent domain (the name minus its first label) → hosts.
    by_parent: HashMap<String, Vec<usize>>,
}

impl PairIndex {
    pub(crate) fn new(hosts: &[HostRecord]) -> PairIndex {
        let mut index = PairIndex {
            by_addr: HashMap::new(),
            by_name: HashMap::new(),
            by_parent: HashMap::new(),
        };
        for (i, h) in hosts.iter().enumerate() {
            for a in &h.dns.addresses {
                index.by_addr.entry((*a, h.entry.port)).or_default().push(i);
            }
            let name = normal_name(&h.entry.host);
            if let Some((_, parent)) = name.split_once('.') {
                index.by_parent.entry(parent.to_string()).or_default().push(i);
            }
            index.by_name.entry(name).or_default().push(i);
        }
        index
    }

    /// Candidate targets of `a`, ascending (the order pairs are listed in).
    pub(crate) fn candidates(&self, hosts: &[HostRecord], a: usize) -> Vec<usize> {
        let h = &hosts[a];
        let mut out: Vec<usize> = Vec::new();
        for addr in &h.dns.addresses {
            out.extend(self.by_addr.get(&(*addr, h.entry.port)).into_iter().flatten());
        }
        for ep in h.endpoints.values() {
            let Some(c) = parsed_cert(ep) else { continue };
            for san in &c.dns_sans {
                let san = normal_name(san);
                let found = match san.strip_prefix("*.") {
                    Some(parent) => self.by_parent.get(parent),
                    None => self.by_name.get(&san),
                };
                out.extend(found.into_iter().flatten());
            }
            for ip in &c.ip_sans {
                for form in [ip.to_string(), format!("[{ip}]")] {
                    out.extend(self.by_name.get(&form).into_iter().flatten());
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

fn normal_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The share of the pairs that can be probed which were: coalescable pairs, and pairs still
/// waiting for a first connection to their origin (`pending`).
fn coverage(tally: &Tally) -> f64 {
    if tally.coalescable == 0 {
        return 1.0;
    }
    ((tally.probed as f64 / tally.coalescable as f64) * 1e4).round() / 1e4
}

pub(crate) fn unix_now() -> i64 {
    Timestamp::now().unix()
}

/// The contract's address text: a plain IP (IPv6 without brackets).
fn addr_text(a: &IpAddr) -> String {
    a.to_string()
}

fn parsed_cert(ep: &EndpointRecord) -> Option<&CertSummary> {
    ep.cert.as_ref().and_then(|c| c.as_ref().ok())
}

/// Facts of the origin's endpoints (handshakes that succeeded) seen from `target`.
fn endpoint_facts(origin: &HostRecord, target: &str) -> Vec<EndpointFacts> {
    origin
        .endpoints
        .iter()
        .filter_map(|(addr, ep)| {
            let tls = ep.tls.as_ref()?;
            let leaf = parsed_cert(ep);
            Some(EndpointFacts {
                addr: *addr,
                h2: tls.alpn.as_deref() == Some("h2"),
                cert_trusted: tls.chain_error.is_none() && leaf.is_some(),
                covers_target: leaf.is_some_and(|c| cert::covering_san(c, target).is_some()),
            })
        })
        .collect()
}

fn count_statuses<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> BTreeMap<String, u32> {
    let mut m = BTreeMap::new();
    for a in outcomes.into_iter().flatten() {
        *m.entry(a.status.to_string()).or_default() += 1;
    }
    m
}

fn most_frequent(statuses: &BTreeMap<String, u32>) -> Option<u16> {
    statuses
        .iter()
        .max_by_key(|(_, n)| **n)
        .and_then(|(s, _)| s.parse().ok())
}

fn median_ms(v: &[Duration]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort();
    Some((v[v.len() / 2].as_secs_f64() * 1e5).round() / 100.0)
}

pub(crate) fn host_report(h: &HostRecord, now: i64) -> HostReport {
    let mut findings = Vec::new();
    let finding = |kind: FindingKind, severity: Severity, message: String| Finding {
        kind,
        severity,
        message,
    };
    if let Some(e) = &h.dns.error {
        findings.push(finding(
            FindingKind::DnsError,
            Severity::Error,
            format!("DNS lookup of {} failed: {e}", h.entry.host),
        ));
    }
    let mut endpoints = Vec::with_capacity(h.endpoints.len());
    let mut unreachable = Vec::new();
    let mut refused = Vec::new();
    for (addr, ep) in &h.endpoints {
        let a = addr_text(addr);
        // Every direct answer a 421: the server refuses the name on its own connection.
        let mut answered = ep.direct.iter().filter_map(|o| o.as_ref().ok()).peekable();
        if answered.peek().is_some() && answered.all(|x| x.status == 421) {
            refused.push(a.clone());
        }
        let cert = ep.tls.as_ref().map(|tls| cert_report(&h.entry.host, ep, tls));
        if let Some(tls) = &ep.tls {
            if tls.alpn.as_deref() != Some("h2") {
                findings.push(finding(
                    FindingKind::NoH2,
                    Severity::Warning,
                    format!(
                        "{a} negotiated {} instead of h2: browsers never coalesce onto this host's connections",
                        tls.alpn.as_deref().unwrap_or("no ALPN protocol")
                    ),
                ));
            }
        }
        if let Some(c) = &cert {
            // Only a certificate that could be read can fail to cover the name (an unreadable or
            // missing one is `cert-invalid`).
            if !c.covers_host && parsed_cert(ep).is_some() {
                findings.push(finding(
                    FindingKind::SniMismatch,
                    Severity::Error,
                    format!(
                        "the certificate served at {a} for SNI {} does not cover it (SANs: {})",
                        h.entry.host,
                        summarise_sans(&c.sans)
                    ),
                ));
            }
            if let Some(e) = &c.error {
                findings.push(finding(
                    FindingKind::CertInvalid,
                    Severity::Error,
                    format!(
                        "the certificate served at {a} is not valid: {e} (issuer {}, not after {})",
                        c.issuer,
                        c.not_after.map(|t| t.to_string()).unwrap_or_default()
                    ),
                ));
            } else if let Some(leaf) = parsed_cert(ep) {
                let days = (leaf.not_after - now) / 86_400;
                if days < EXPIRY_WARNING_DAYS {
                    findings.push(finding(
                        FindingKind::CertExpiring,
                        Severity::Warning,
                        format!(
                            "the certificate served at {a} expires in {days} days ({})",
                            Timestamp::from_unix(leaf.not_after)
                        ),
                    ));
                }
            }
        } else {
            let err = ep
                .handshake_errors
                .last()
                .map_or_else(|| "not probed".to_string(), ProbeError::to_string);
            unreachable.push(format!("{a} ({err})"));
        }
        let statuses = count_statuses(&ep.direct);
        let http1_statuses = count_statuses(&ep.direct_http1);
        let direct_errors: Vec<&ProbeError> = ep.direct.iter().filter_map(|o| o.as_ref().err()).collect();
        endpoints.push(EndpointReport {
            address: a,
            alpn: ep.tls.as_ref().and_then(|t| t.alpn.clone()),
            tls_version: ep.tls.as_ref().map(|t| t.version.clone()),
            cert,
            direct: DirectReport {
                status: most_frequent(&statuses),
                error: direct_errors.last().map(|e| e.to_string()),
                statuses,
                errors: direct_errors.len() as u32,
                version: ep
                    .direct
                    .iter()
                    .rev()
                    .find_map(|o| o.as_ref().ok())
                    .map(|a| a.version.clone()),
                http1_statuses,
            },
            error: if ep.tls.is_none() {
                ep.handshake_errors.last().map(ProbeError::to_string)
            } else {
                None
            },
            handshakes: ep.handshakes,
            handshake_errors: ep.handshake_errors.len() as u32,
            connect_ms: median_ms(&ep.connect_times),
            tls_ms: median_ms(&ep.tls_times),
        });
    }
    if !refused.is_empty() {
        findings.push(finding(
            FindingKind::DirectMisdirected,
            Severity::Error,
            format!(
                "every direct request for {host} at {} got 421 Misdirected Request on a connection opened for {host} itself (SNI = Host): \
                 the server refuses the name even without coalescing, e.g. an SNI≠Host rule that compares a Host header carrying :port, or no site for this name",
                first_of(&refused),
                host = h.entry.host
            ),
        ));
    }
    if !unreachable.is_empty() {
        let severity = if unreachable.len() == h.endpoints.len() {
            Severity::Error
        } else {
            Severity::Warning
        };
        findings.push(finding(
            FindingKind::Unreachable,
            severity,
            format!(
                "no TLS connection for {} to {}",
                h.entry.host,
                first_of(&unreachable)
            ),
        ));
    }
    if let Some(f) = http_error_finding(h) {
        findings.push(f);
    }
    if h.dns.dropped > 0 {
        findings.push(finding(
            FindingKind::AddressesCapped,
            Severity::Warning,
            format!(
                "{} has {} addresses; only the first {} are probed",
                h.entry.host,
                h.dns.addresses.len() + h.dns.dropped,
                h.dns.addresses.len()
            ),
        ));
    }
    HostReport {
        host: h.entry.host.clone(),
        port: h.entry.port,
        path: h.path.clone(),
        line: h.entry.line,
        addresses: h.dns.addresses.iter().map(addr_text).collect(),
        dns: DnsReport {
            cnames: h.dns.cnames.clone(),
            ttl_s: h.dns.ttl_s,
            error: h.dns.error.clone(),
            overridden: h.dns.overridden,
            elapsed_ms: (h.dns.elapsed.as_secs_f64() * 1e5).round() / 100.0,
        },
        endpoints,
        findings,
    }
}

/// Until when (unix seconds, exclusive) `host_report(h, now)` stays what it is at `now`: its
/// only part that moves with time is the days a certificate has left.
pub(crate) fn host_report_valid_until(h: &HostRecord, now: i64) -> i64 {
    h.endpoints
        .values()
        .filter_map(|ep| parsed_cert(ep))
        .map(|leaf| next_day_change(leaf.not_after, now))
        .min()
        .unwrap_or(i64::MAX)
}

/// The first second after `now` at which the whole days left before `not_after` (as
/// `host_report` counts them, capped at the warning threshold) differ from those at `now`.
fn next_day_change(not_after: i64, now: i64) -> i64 {
    let q = (not_after - now) / 86_400;
    if q >= EXPIRY_WARNING_DAYS {
        not_after - EXPIRY_WARNING_DAYS * 86_400 + 1
    } else if q >= 1 {
        not_after - q * 86_400 + 1
    } else {
        not_after + (q.abs() + 1) * 86_400
    }
}

/// Items shown in one finding message; the rest are counted ("and N more").
const LISTED: usize = 5;

/// The first `LISTED` items joined, then "and N more".
fn first_of(items: &[String]) -> String {
    let mut s = items.iter().take(LISTED).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > LISTED {
        s.push_str(&format!(" and {} more", items.len() - LISTED));
    }
    s
}

/// `http-error`: direct requests that got no HTTP answer at all (reset, GOAWAY, timeout, a
/// malformed response) at the addresses where the TLS handshake worked (where it did not,
/// `unreachable` says so already). Error when every such request failed, warning when some.
fn http_error_finding(h: &HostRecord) -> Option<Finding> {
    let reached = h.endpoints.iter().filter(|(_, ep)| ep.tls.is_some());
    let mut total = 0usize;
    let mut failed = 0usize;
    let mut examples = Vec::new();
    for (addr, ep) in reached {
        total += ep.direct.len();
        let errors: Vec<&ProbeError> = ep.direct.iter().filter_map(|o| o.as_ref().err()).collect();
        failed += errors.len();
        if let Some(e) = errors.last() {
            examples.push(format!("{} ({e})", addr_text(addr)));
        }
    }
    if failed == 0 {
        return None;
    }
    let severity = if failed == total {
        Severity::Error
    } else {
        Severity::Warning
    };
    Some(Finding {
        kind: FindingKind::HttpError,
        severity,
        message: format!(
            "{failed} of {total} direct requests to {} got no HTTP answer: {}",
            h.entry.host,
            first_of(&examples)
        ),
    })
}

fn summarise_sans(sans: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = sans.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if sans.len() > SHOWN {
        s.push_str(&format!(" and {} more", sans.len() - SHOWN));
    }
    if s.is_empty() {
        s.push_str("none");
    }
    s
}

fn cert_report(host: &str, ep: &EndpointRecord, tls: &crate::engine::probe::tls::TlsInfo) -> CertReport {
    match &ep.cert {
        Some(Ok(c)) => {
            let covering = cert::covering_san(c, host);
            CertReport {
                sans: c.dns_sans.clone(),
                ip_sans: c.ip_sans.iter().map(addr_text).collect(),
                subject: c.subject.clone(),
                issuer: c.issuer.clone(),
                not_before: Some(Timestamp::from_unix(c.not_before)),
                not_after: Some(Timestamp::from_unix(c.not_after)),
                trusted: tls.chain_error.is_none(),
                covers_host: covering.is_some(),
                covering_san: covering,
                error: tls.chain_error.clone(),
                chain_len: tls.chain.len(),
                sha256: c.sha256.clone(),
            }
        }
        Some(Err(e)) => CertReport {
            sans: vec![],
            ip_sans: vec![],
            subject: String::new(),
            issuer: String::new(),
            not_before: None,
            not_after: None,
            trusted: false,
            covers_host: false,
            covering_san: None,
            error: Some(e.to_string()),
            chain_len: tls.chain.len(),
            sha256: String::new(),
        },
        None => CertReport {
            sans: vec![],
            ip_sans: vec![],
            subject: String::new(),
            issuer: String::new(),
            not_before: None,
            not_after: None,
            trusted: false,
            covers_host: false,
            covering_san: None,
            error: Some("certificate: the server sent no certificate".into()),
            chain_len: 0,
            sha256: String::new(),
        },
    }
}

/// Direct answers for the target: at `addr` when the target resolves to it, else at all its
/// addresses. Its own-connection answers (the first request of its origin probes) count as
/// direct answers too.
fn direct_reference<'a>(target: &'a HostRecord, addr: &IpAddr) -> Vec<&'a Outcome> {
    let pick = |ep: &'a EndpointRecord| ep.direct.iter().chain(&ep.own);
    match target.endpoints.get(addr) {
        Some(ep) => pick(ep).collect(),
        None => target.endpoints.values().flat_map(|ep| pick(ep)).collect(),
    }
}

fn pair_report<'c>(
    ha: &HostRecord,
    hb: &HostRecord,
    coalesced: &dyn Fn(IpAddr) -> Vec<&'c Outcome>,
    policy: &PairPolicy,
) -> PairReport {
    let (origin, target) = (ha.key.clone(), hb.key.clone());
    let dynamic = verdict::looks_dynamic(
        hb.endpoints
            .values()
            .flat_map(|ep| ep.direct.iter().chain(&ep.own))
            .filter_map(|o| o.as_ref().ok()),
    );
    let mut addresses = Vec::new();
    let mut judgements = Vec::new();
    for addr in policy.coalescing_addrs() {
        let coalesced = coalesced(addr);
        let direct = direct_reference(hb, &addr);
        let j = verdict::judge_address(AddressEvidence {
            coalesced: &coalesced,
            direct: &direct,
            dynamic,
        });
        let mut clients = Vec::new();
        if policy.chrome_addrs.contains(&addr) {
            clients.push(Client::Chrome);
        }
        if policy.firefox_addrs.contains(&addr) {
            clients.push(Client::Firefox);
        }
        addresses.push(PairAddressReport {
            address: addr_text(&addr),
            verdict: j.verdict,
            probes: coalesced.len() as u32,
            statuses: count_statuses(coalesced.iter().copied()),
            direct_statuses: count_statuses(direct.iter().copied()),
            errors: j.errors as u32,
            misrouted: j.misrouted as u32,
            clients,
            dynamic,
        });
        judgements.push((addr, j, coalesced, direct));
    }
    let coalescable = policy.chrome || policy.firefox;
    // The first coalesced request that got no answer, for the `error` verdict.
    let coalesced_error = judgements.iter().find_map(|(_, j, _, _)| j.first_error.as_ref());
    let origin_error = || {
        ha.endpoints
            .iter()
            .filter(|(x, _)| policy.shared.contains(x) || policy.reason.is_none())
            .find_map(|(x, ep)| ep.handshake_errors.last().map(|e| format!("{x}: {e}")))
    };
    let (verdict, error) = if !coalescable {
        match (policy.reason, origin_error()) {
            (Some(_), _) => (Verdict::NotCoalescable, None),
            (None, Some(e)) => (Verdict::Error, Some(e)),
            // No handshake with the origin within the window, failed or not: the live planner
            // has not reached it yet.
            (None, None) if ha.endpoints.values().all(|ep| ep.handshakes == 0) => (Verdict::Pending, None),
            (None, None) => (Verdict::Error, Some(format!("no TLS connection to {origin}"))),
        }
    } else {
        let v = Verdict::worst(judgements.iter().map(|(_, j, _, _)| j.verdict)).unwrap_or(Verdict::Error);
        let err = coalesced_error.map(ProbeError::to_string);
        match v {
            Verdict::Error => (v, err.or_else(origin_error)),
            // Nothing requested at an address because the origin's handshake failed there is
            // an error, not a wait.
            Verdict::Pending => match origin_error() {
                Some(e) => (Verdict::Error, Some(e)),
                None => (v, None),
            },
            _ => (v, None),
        }
    };
    let probes: u32 = addresses.iter().map(|x| x.probes).sum();
    let answered: usize = judgements.iter().map(|(_, j, _, _)| j.answered).sum();
    let misdirected: usize = judgements.iter().map(|(_, j, _, _)| j.misdirected).sum();
    let misrouted: usize = judgements.iter().map(|(_, j, _, _)| j.misrouted).sum();
    let rate_421 = if answered == 0 {
        0.0
    } else {
        misdirected as f64 / answered as f64
    };

    let reason = if verdict == Verdict::NotCoalescable {
        policy.reason
    } else {
        None
    };
    // A pair waiting for its first probe says what every such pair says (one shared copy);
    // the evidence is gathered only for pairs with a verdict.
    let (explanation, fix) = if verdict == Verdict::Pending {
        pending_texts()
    } else {
        // Evidence for the explanation: the Server header of the failing answers, the statuses.
        let failing: Vec<&crate::engine::probe::h2::HttpAnswer> = judgements
            .iter()
            .filter(|(_, j, _, _)| j.verdict == verdict)
            .flat_map(|(_, _, c, _)| c.iter().filter_map(|o| o.as_ref().ok()))
            .filter(|x| x.status == 421 || verdict == Verdict::Misrouted)
            .collect();
        let direct_all: Vec<&Outcome> = judgements
            .iter()
            .flat_map(|(_, _, _, d)| d.iter().copied())
            .collect();
        let direct_statuses = count_statuses(direct_all.iter().copied());
        let http1 = hb.endpoints.values().flat_map(|ep| ep.direct_http1.iter());
        let cert_error = ha
            .endpoints
            .values()
            .find_map(|ep| ep.tls.as_ref().and_then(|t| t.chain_error.clone()));
        let facts = PairFacts {
            origin: &ha.entry.host,
            target: &hb.entry.host,
            verdict,
            reason,
            bad_addresses: addresses
                .iter()
                .filter(|x| x.verdict == verdict)
                .map(|x| x.address.clone())
                .collect(),
            good_addresses: addresses
                .iter()
                .filter(|x| x.verdict == Verdict::Ok)
                .map(|x| x.address.clone())
                .collect(),
            probes,
            misdirected: misdirected as u32,
            misrouted: misrouted as u32,
            misrouted_status: failing.iter().find(|x| x.status != 421).map(|x| x.status),
            direct_status: most_frequent(&direct_statuses),
            direct_error: direct_all
                .iter()
                .find_map(|o| o.as_ref().err().map(ProbeError::to_string)),
            http1_status: most_frequent(&count_statuses(http1)),
            // No failing answer (e.g. the streams were reset): the direct answers say who it is.
            server: failing
                .iter()
                .map(|x| ServerKind::from_header(x.server.as_deref()))
                .next()
                .or_else(|| {
                    direct_all
                        .iter()
                        .filter_map(|o| o.as_ref().ok())
                        .map(|x| ServerKind::from_header(x.server.as_deref()))
                        .find(|k| *k != ServerKind::Unknown)
                })
                .unwrap_or(ServerKind::Unknown),
            cert_error,
            refused_with: coalesced_error.and_then(ProbeError::refused_by_server),
            error: error.clone(),
        };
        let (why, fix) = explain::explain(&facts);
        (Arc::from(why), fix.map(Arc::from))
    };
    PairReport {
        origin,
        target,
        verdict,
        reason,
        shared_addresses: policy.shared.iter().map(addr_text).collect(),
        cert_covers: policy.cert_covers,
        coalesce: Coalesce {
            chrome: policy.chrome,
            firefox: policy.firefox,
        },
        probes,
        rate_421: (rate_421 * 1e4).round() / 1e4,
        addresses,
        explanation,
        fix,
        error,
    }
}

/// The explanation and fix of a pending pair, one copy for all of them.
fn pending_texts() -> (Arc<str>, Option<Arc<str>>) {
    static TEXTS: std::sync::LazyLock<(Arc<str>, Arc<str>)> =
        std::sync::LazyLock::new(|| (Arc::from(explain::PENDING_WHY), Arc::from(explain::PENDING_FIX)));
    (TEXTS.0.clone(), Some(TEXTS.1.clone()))
}

/// Connected components of "some client would coalesce", in watch-file order; `keys` are the
/// hosts' "host:port", `problem_origins` the origin of every problem pair.
pub(crate) fn groups(
    keys: &[String],
    links: &[(usize, usize)],
    problem_origins: &[usize],
) -> Vec<GroupReport> {
    let n = keys.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for &(a, b) in links {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra != rb {
            parent[ra.max(rb)] = ra.min(rb);
        }
    }
    let mut members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        let r = find(&mut parent, i);
        members.entry(r).or_default().push(i);
    }
    // By key, as a pair names its origin (the last host wins if a key is listed twice).
    let group_of: HashMap<&str, usize> = (0..n).map(|i| (keys[i].as_str(), find(&mut parent, i))).collect();
    let mut problems_of: HashMap<usize, u32> = HashMap::new();
    for &a in problem_origins {
        if let Some(&root) = group_of.get(keys[a].as_str()) {
            *problems_of.entry(root).or_default() += 1;
        }
    }
    let mut out = Vec::new();
    for (root, m) in members.into_iter().filter(|(_, m)| m.len() > 1) {
        let problems = problems_of.get(&root).copied().unwrap_or(0);
        out.push(GroupReport {
            id: out.len() as u32 + 1,
            members: m.iter().map(|&i| keys[i].clone()).collect(),
            problems,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::probe::dns::DnsAnswer;
    use crate::engine::probe::h2::HttpAnswer;
    use crate::engine::probe::tls::TlsInfo;
    use crate::watchlist::Entry;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn answer(status: u16, body: &str) -> Outcome {
        Ok(HttpAnswer {
            status,
            version: "HTTP/2".into(),
            content_type: Some("text/html".into()),
            body_digest: body.into(),
            body_len: body.len(),
            server: Some("nginx".into()),
            elapsed: Duration::from_millis(1),
        })
    }

    fn cert(sans: &[&str]) -> CertSummary {
        CertSummary {
            subject: "CN=test".into(),
            issuer: "CN=test CA".into(),
            dns_sans: sans.iter().map(|s| s.to_string()).collect(),
            ip_sans: vec![],
            not_before: 0,
            not_after: unix_now() + 90 * 86_400,
            serial: "01".into(),
            sha256: "00".into(),
        }
    }

    /// An endpoint whose handshake succeeded with `sans`, ALPN `alpn`, trusted or not.
    fn endpoint(sans: &[&str], alpn: &str, trusted: bool, direct: Vec<Outcome>) -> EndpointRecord {
        EndpointRecord {
            tls: Some(TlsInfo {
                alpn: Some(alpn.into()),
                version: "TLSv1.3".into(),
                chain: vec![],
                chain_error: (!trusted).then(|| "unknown issuer".to_string()),
                connect_time: Duration::from_millis(1),
                handshake_time: Duration::from_millis(2),
            }),
            cert: Some(Ok(cert(sans))),
            handshakes: 1,
            direct,
            ..Default::default()
        }
    }

    fn host(name: &str, line: usize, addrs: &[&str], eps: Vec<(&str, EndpointRecord)>) -> HostRecord {
        HostRecord {
            key: format!("{name}:443").into(),
            entry: Entry {
                host: name.into(),
                port: 443,
                path: None,
                line,
            },
            path: "/".into(),
            dns: DnsAnswer {
                addresses: addrs.iter().map(|a| ip(a)).collect(),
                ..Default::default()
            },
            endpoints: eps.into_iter().map(|(a, e)| (ip(a), Box::new(e))).collect(),
        }
    }

    fn pair<'a>(s: &'a Snapshot, o: &str, t: &str) -> &'a PairReport {
        s.pairs
            .iter()
            .find(|p| *p.origin == *format!("{o}:443") && *p.target == *format!("{t}:443"))
            .unwrap()
    }

    #[test]
    fn day_changes_are_found_exactly() {
        let days = |na: i64, now: i64| {
            let d = (na - now) / 86_400;
            d.min(EXPIRY_WARNING_DAYS)
        };
        let na = 2_000_000_000;
        for now in (na - 20 * 86_400..na + 5 * 86_400).step_by(4_999) {
            let next = next_day_change(na, now);
            assert!(next > now);
            assert_eq!(days(na, next - 1), days(na, now), "now {now}");
            assert_ne!(days(na, next), days(na, now), "now {now}");
        }
    }

    #[test]
    fn misdirected_one_way_ok_the_other_one_group() {
        let both = ["a.test", "b.test"];
        let mut r = Records {
            hosts: vec![
                host(
                    "a.test",
                    1,
                    &["192.0.2.1"],
                    vec![("192.0.2.1", endpoint(&both, "h2", true, vec![answer(200, "A")]))],
                ),
                host(
                    "b.test",
                    2,
                    &["192.0.2.1"],
                    vec![("192.0.2.1", endpoint(&both, "h2", true, vec![answer(200, "B")]))],
                ),
            ],
            rounds: 2,
            ..Default::default()
        };
        r.coalesced
            .insert((0, 1, ip("192.0.2.1")), vec![answer(421, ""), answer(421, "")]);
        r.coalesced
            .insert((1, 0, ip("192.0.2.1")), vec![answer(200, "A"), answer(200, "A")]);
        let s = analyse(&r, false, Duration::ZERO);
        let ab = pair(&s, "a.test", "b.test");
        assert_eq!(
            (ab.verdict.as_str(), ab.probes, ab.rate_421),
            ("misdirected", 2, 1.0)
        );
        assert!(ab.fix.as_deref().unwrap().contains("ssl_verify_client"));
        assert_eq!(pair(&s, "b.test", "a.test").verdict.as_str(), "ok");
        assert_eq!(s.pairs[0].verdict.as_str(), "misdirected", "problems first");
        assert_eq!(s.groups.len(), 1);
        assert_eq!((s.groups[0].members.len(), s.groups[0].problems), (2, 1));
        assert_eq!((s.summary.problems, s.summary.host_errors), (1, 0));
        assert!(s.has_problems());
    }

    #[test]
    fn firefox_only_pair_is_probed_at_the_origin_address_where_the_cert_covers() {
        // A at X and Y, B only at Y. At Y the origin's certificate does not cover B; at X it
        // does. Chromium needs the connection at an address of B (Y): no. Firefox uses A's
        // connection at X once the answers overlap: yes.
        let mut r = Records {
            hosts: vec![
                host(
                    "a.test",
                    1,
                    &["192.0.2.1", "192.0.2.2"],
                    vec![
                        (
                            "192.0.2.1",
                            endpoint(&["a.test", "b.test"], "h2", true, vec![answer(200, "A")]),
                        ),
                        (
                            "192.0.2.2",
                            endpoint(&["a.test"], "h2", true, vec![answer(200, "A")]),
                        ),
                    ],
                ),
                host(
                    "b.test",
                    2,
                    &["192.0.2.2"],
                    vec![(
                        "192.0.2.2",
                        endpoint(&["b.test"], "h2", true, vec![answer(200, "B")]),
                    )],
                ),
            ],
            ..Default::default()
        };
        r.coalesced
            .insert((0, 1, ip("192.0.2.1")), vec![answer(200, "B")]);
        let s = analyse(&r, false, Duration::ZERO);
        let ab = pair(&s, "a.test", "b.test");
        assert_eq!((ab.coalesce.chrome, ab.coalesce.firefox), (false, true));
        assert_eq!(ab.verdict.as_str(), "ok");
        assert_eq!(ab.addresses.len(), 1);
        assert_eq!(ab.addresses[0].address, "192.0.2.1");
        assert_eq!(ab.addresses[0].clients, [Client::Firefox]);
        // Firefox's reference for B at an address B does not resolve to: B's other answers.
        assert_eq!(ab.addresses[0].direct_statuses.get("200"), Some(&1));
        let ba = pair(&s, "b.test", "a.test");
        assert_eq!(
            (ba.verdict.as_str(), ba.reason.map(|r| r.as_str())),
            ("not-coalescable", Some("cert-not-covering"))
        );
    }

    #[test]
    fn findings_reasons_and_cert_only_pairs() {
        let wildcard = ["*.geo.test"];
        let r = Records {
            hosts: vec![
                host(
                    "east.geo.test",
                    1,
                    &["192.0.2.10"],
                    vec![("192.0.2.10", endpoint(&wildcard, "h2", true, vec![]))],
                ),
                host(
                    "west.geo.test",
                    2,
                    &["192.0.2.11"],
                    vec![("192.0.2.11", endpoint(&wildcard, "h2", true, vec![]))],
                ),
                host(
                    "h1.test",
                    3,
                    &["192.0.2.20"],
                    vec![(
                        "192.0.2.20",
                        endpoint(&["h1.test", "h1b.test"], "http/1.1", true, vec![]),
                    )],
                ),
                host(
                    "h1b.test",
                    4,
                    &["192.0.2.20"],
                    vec![(
                        "192.0.2.20",
                        endpoint(&["h1.test", "h1b.test"], "http/1.1", true, vec![]),
                    )],
                ),
                host(
                    "bad.test",
                    5,
                    &["192.0.2.30"],
                    vec![(
                        "192.0.2.30",
                        endpoint(&["bad.test", "worse.test"], "h2", false, vec![]),
                    )],
                ),
                host(
                    "worse.test",
                    6,
                    &["192.0.2.30"],
                    vec![("192.0.2.30", endpoint(&["other.test"], "h2", true, vec![]))],
                ),
                HostRecord {
                    dns: DnsAnswer {
                        error: Some("NXDOMAIN".into()),
                        ..Default::default()
                    },
                    ..host("ghost.test", 7, &[], vec![])
                },
                host(
                    "dead.test",
                    8,
                    &["192.0.2.40"],
                    vec![(
                        "192.0.2.40",
                        EndpointRecord {
                            handshakes: 1,
                            handshake_errors: vec![ProbeError::Timeout {
                                phase: crate::engine::probe::error::Phase::Tls,
                                after: Duration::from_secs(1),
                            }],
                            ..Default::default()
                        },
                    )],
                ),
                host("dead2.test", 9, &["192.0.2.40"], vec![]),
                host(
                    "refused.test",
                    10,
                    &["192.0.2.50"],
                    vec![(
                        "192.0.2.50",
                        endpoint(
                            &["refused.test"],
                            "h2",
                            true,
                            vec![answer(421, "no"), answer(421, "no")],
                        ),
                    )],
                ),
                host(
                    "sometimes.test",
                    11,
                    &["192.0.2.51"],
                    vec![(
                        "192.0.2.51",
                        endpoint(
                            &["sometimes.test"],
                            "h2",
                            true,
                            vec![answer(421, "no"), answer(200, "yes")],
                        ),
                    )],
                ),
            ],
            ..Default::default()
        };
        let s = analyse(&r, false, Duration::ZERO);
        assert_eq!(s.summary.cert_only_pairs, 2);
        assert!(
            !s.pairs.iter().any(|p| p.origin.starts_with("east")),
            "cert-only pairs only with --all-pairs"
        );
        let reason = |o: &str, t: &str| pair(&s, o, t).reason.map(|r| r.as_str());
        assert_eq!(reason("h1.test", "h1b.test"), Some("no-h2"));
        assert_eq!(reason("bad.test", "worse.test"), Some("cert-invalid"));
        assert_eq!(reason("worse.test", "bad.test"), Some("cert-not-covering"));
        let dead = pair(&s, "dead.test", "dead2.test");
        assert_eq!(dead.verdict.as_str(), "error");
        assert!(dead.error.as_deref().unwrap().contains("timed out"), "{dead:?}");
        let kinds = |h: &str| -> Vec<String> {
            s.hosts
                .iter()
                .find(|x| x.host == h)
                .unwrap()
                .findings
                .iter()
                .map(|f| f.kind.to_string())
                .collect()
        };
        assert_eq!(kinds("ghost.test"), ["dns-error"]);
        assert_eq!(kinds("h1.test"), ["no-h2"]);
        assert_eq!(kinds("bad.test"), ["cert-invalid"]);
        assert_eq!(kinds("worse.test"), ["sni-mismatch"]);
        assert_eq!(kinds("dead.test"), ["unreachable"]);
        assert_eq!(kinds("refused.test"), ["direct-misdirected"]);
        assert!(kinds("sometimes.test").is_empty());
        assert!(s.groups.is_empty());

        let all = analyse(&r, true, Duration::ZERO);
        let east = pair(&all, "east.geo.test", "west.geo.test");
        assert_eq!(
            (east.verdict.as_str(), east.reason.map(|r| r.as_str())),
            ("not-coalescable", Some("no-shared-address"))
        );
        assert!(east.cert_covers);
    }

    fn kinds_of(s: &Snapshot, h: &str) -> Vec<(String, String)> {
        s.hosts
            .iter()
            .find(|x| x.host == h)
            .unwrap()
            .findings
            .iter()
            .map(|f| (f.kind.to_string(), f.severity.to_string()))
            .collect()
    }

    #[test]
    fn failed_direct_requests_are_an_http_error() {
        let reset: Outcome = Err(ProbeError::Reset {
            reason: crate::engine::probe::error::H2Reason::REFUSED_STREAM,
            by_client: false,
        });
        let r = Records {
            hosts: vec![
                host(
                    "all.test",
                    1,
                    &["192.0.2.1"],
                    vec![(
                        "192.0.2.1",
                        endpoint(&["all.test"], "h2", true, vec![reset.clone(), reset.clone()]),
                    )],
                ),
                host(
                    "some.test",
                    2,
                    &["192.0.2.2"],
                    vec![(
                        "192.0.2.2",
                        endpoint(&["some.test"], "h2", true, vec![answer(200, "x"), reset.clone()]),
                    )],
                ),
                host(
                    "fine.test",
                    3,
                    &["192.0.2.3"],
                    vec![(
                        "192.0.2.3",
                        endpoint(&["fine.test"], "h2", true, vec![answer(503, "x")]),
                    )],
                ),
            ],
            ..Default::default()
        };
        let s = analyse(&r, false, Duration::ZERO);
        assert_eq!(
            kinds_of(&s, "all.test"),
            [("http-error".to_string(), "error".to_string())]
        );
        assert_eq!(
            kinds_of(&s, "some.test"),
            [("http-error".to_string(), "warning".to_string())]
        );
        assert!(kinds_of(&s, "fine.test").is_empty(), "a 503 is an answer");
        let all = &s.hosts[0].findings[0].message;
        assert!(all.contains("2 of 2") && all.contains("REFUSED_STREAM"), "{all}");
        assert!(s.has_problems());
    }

    #[test]
    fn long_address_lists_are_cut_and_capped_answers_said() {
        let addrs: Vec<String> = (0..64).map(|i| format!("10.0.0.{i}")).collect();
        let refs: Vec<&str> = addrs.iter().map(String::as_str).collect();
        let dead = |_: &str| EndpointRecord {
            handshakes: 1,
            handshake_errors: vec![ProbeError::Connect("connection refused".into())],
            ..Default::default()
        };
        let mut h = host(
            "wide.test",
            1,
            &refs,
            refs.iter().map(|a| (*a, dead(a))).collect(),
        );
        h.dns.dropped = 436;
        let r = Records {
            hosts: vec![h],
            ..Default::default()
        };
        let s = analyse(&r, false, Duration::ZERO);
        let f = &s.hosts[0].findings;
        let unreachable = f.iter().find(|f| f.kind == FindingKind::Unreachable).unwrap();
        assert!(
            unreachable.message.ends_with("and 59 more"),
            "{}",
            unreachable.message
        );
        assert!(unreachable
            .message
            .contains("10.0.0.4 (connect: connection refused)"));
        assert!(
            !unreachable.message.contains("10.0.0.5 "),
            "{}",
            unreachable.message
        );
        let capped = f.iter().find(|f| f.kind == FindingKind::AddressesCapped).unwrap();
        assert_eq!(capped.severity, Severity::Warning);
        assert!(
            capped.message.contains("500 addresses") && capped.message.contains("first 64"),
            "{}",
            capped.message
        );
        assert!(
            !f.iter().any(|f| f.kind == FindingKind::HttpError),
            "unreachable says it already"
        );
    }
}
