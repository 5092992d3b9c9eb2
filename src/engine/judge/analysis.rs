//! From raw probe records to the contract's snapshot: which pairs there are (`PairIndex`),
//! how each is judged (`evaluate_pair`, with `pairs`), the host reports (`hosts`), the groups
//! (`groups`) and the summary. `analyse` does it all for `check`; the live store calls the
//! pieces itself, incrementally.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::judge::confidence;
use crate::engine::judge::policy::{self, EndpointFacts, OriginFrame, PairPolicy, TargetFacts};
use crate::engine::probe::cert;
use crate::engine::record::{Coalesced, HostRecord, Records};
use crate::engine::snapshot::{
    HostReport, PairReport, Protocol, Severity, Snapshot, Summary, Timestamp, Verdict, SCHEMA,
};

pub(crate) use super::groups::groups;
pub(crate) use super::hosts::{host_report, host_report_valid_until};
use super::pairs::pair_report;
use super::protocols;

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
        // Probed over HTTP/3 at some address: its pairs are judged over both protocols.
        let over_h3 = records.hosts[a].endpoints.values().any(|ep| ep.h3.is_some());
        for b in index.linked_targets(&records.hosts, a) {
            if a == b {
                continue;
            }
            let coalesced = |addr: IpAddr| requests_at(&records.coalesced, (a, b, addr));
            let coalesced_h3 = |addr: IpAddr| requests_at(&records.coalesced_h3, (a, b, addr));
            let neighbours = |addr: IpAddr| index.hosts_at(&records.hosts, addr, records.hosts[a].entry.port);
            match evaluate_pair(
                &records.hosts[a],
                &records.hosts[b],
                (&coalesced, over_h3.then_some(&coalesced_h3 as _)),
                &neighbours,
                all_pairs,
            ) {
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
                    tally.add(verdict, &report, b);
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
    let mut summary = summary(
        &hosts,
        &tally,
        (records.connections, records.requests, records.rounds),
        elapsed,
    );
    summary.settle_rounds = settle_rounds(&tally, records.rounds);
    Snapshot {
        schema: SCHEMA.into(),
        generated_at: Timestamp::from_unix(now),
        vantage: None,
        hosts,
        pairs,
        groups,
        summary,
    }
}

/// The requests for a pair's target at each address of the origin (over one protocol).
pub(crate) type Requests<'f, 'c> = &'f dyn Fn(IpAddr) -> Vec<&'c Coalesced>;

/// The requests of `map` for (origin, target, address).
fn requests_at(
    map: &HashMap<(usize, usize, IpAddr), Vec<Coalesced>>,
    key: (usize, usize, IpAddr),
) -> Vec<&Coalesced> {
    map.get(&key).map(|v| v.iter().collect()).unwrap_or_default()
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
/// the origin's HTTP/2 connections at `addr`, `coalesced_h3(addr)` on its HTTP/3 ones (None:
/// the origin was not probed over HTTP/3); `neighbours(addr)` the watched hosts at `addr` (see
/// `PairIndex::hosts_at`), whose pages a coalesced answer is compared with.
pub(crate) fn evaluate_pair<'c, 'n>(
    ha: &'n HostRecord,
    hb: &'n HostRecord,
    (coalesced, coalesced_h3): (Requests<'_, 'c>, Option<Requests<'_, 'c>>),
    neighbours: &dyn Fn(IpAddr) -> Vec<&'n HostRecord>,
    all_pairs: bool,
) -> PairEval {
    if ha.entry.port != hb.entry.port || ha.dns.addresses.is_empty() || hb.dns.addresses.is_empty() {
        return PairEval::Skip;
    }
    let (addrs_a, addrs_b, target) = (&ha.dns.addresses, &hb.dns.addresses, target_facts(hb));
    let policy = policy::evaluate(addrs_a, addrs_b, &endpoint_facts(ha, hb), target);
    // Over HTTP/3 the clients decide on the HTTP/3 connections' facts (their ORIGIN frames).
    let policy_h3 = coalesced_h3.map(|requests| {
        let facts = endpoint_facts_h3(ha, hb);
        (
            requests,
            policy::evaluate_over(Protocol::H3, addrs_a, addrs_b, &facts, target),
        )
    });
    let mut cert_only = false;
    // A pair only an ORIGIN frame links is a real pair (a client pools it), not cert-only.
    let linked = |p: &PairPolicy| !p.shared.is_empty() || p.origin_frame_only();
    if !linked(&policy) && !policy_h3.as_ref().is_some_and(|(_, p)| linked(p)) {
        if !policy.cert_covers {
            return PairEval::Skip;
        }
        if !all_pairs {
            return PairEval::CertOnly;
        }
        cert_only = true;
    }
    let mut report = Box::new(pair_report(ha, hb, coalesced, neighbours, &policy));
    let mut link = policy.chrome || policy.firefox;
    if let Some((coalesced_h3, policy_h3)) = policy_h3 {
        let over_h3 = pair_report(ha, hb, coalesced_h3, neighbours, &policy_h3);
        let h3_only = !linked(&policy) && linked(&policy_h3);
        if over_h3.probes > 0 {
            link |= policy_h3.chrome || policy_h3.firefox;
            protocols::combine(&mut report, over_h3);
        } else if h3_only {
            // Linked over HTTP/3 only and not probed there yet: waiting, as over HTTP/3.
            link |= policy_h3.chrome || policy_h3.firefox;
            report = Box::new(over_h3);
        }
    }
    PairEval::Listed {
        verdict: report.verdict,
        link,
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
    /// Pairs whose probes cannot yet tell a flaky backend from a consistent one.
    pub inconclusive: u32,
    /// Over the inconclusive addresses, the most answers needed to settle them, as a multiple
    /// of the answers they have (rounds scale by it).
    pub settle_factor: f64,
    /// Per host index: 0 no coalescable pair has it as target, 1 some does but none was
    /// probed, 2 some was probed.
    pub targets: Vec<u8>,
}

impl Tally {
    /// `add` for a `pending` pair without samples, without its report (what `add` reads of
    /// such a report is always the same: coalescable, not probed, no address judged).
    pub fn add_unprobed_pending(&mut self, target: usize) {
        self.pairs += 1;
        self.verdicts[Verdict::Pending as usize] += 1;
        self.coalescable += 1;
        self.target(target, false);
    }

    /// Host `target` is the target of a coalescable pair, probed or not.
    fn target(&mut self, target: usize, probed: bool) {
        if self.targets.len() <= target {
            self.targets.resize(target + 1, 0);
        }
        let t = &mut self.targets[target];
        *t = (*t).max(if probed { 2 } else { 1 });
    }

    /// Count a listed pair whose target is host `target`.
    pub fn add(&mut self, verdict: Verdict, p: &PairReport, target: usize) {
        self.pairs += 1;
        self.verdicts[verdict as usize] += 1;
        if p.coalesce.chrome || p.coalesce.firefox || verdict == Verdict::Pending {
            self.coalescable += 1;
            self.probed += u32::from(p.probes > 0);
            self.target(target, p.probes > 0);
        }
        let mut inconclusive = false;
        for x in p.addresses.iter().filter(|x| x.verdict == verdict) {
            let Some(rate) = x.refusal_rate else { continue };
            let refused: u32 = x.refusals.values().sum();
            if let Some(needed) = confidence::probes_to_settle(verdict, refused, rate.n) {
                inconclusive = true;
                self.settle_factor = self.settle_factor.max(f64::from(needed) / f64::from(rate.n));
            }
        }
        self.inconclusive += u32::from(inconclusive);
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
        target_coverage: target_coverage(tally),
        inconclusive: tally.inconclusive,
        // `check` only (`analyse`): the live engine has no rounds to raise.
        settle_rounds: None,
    }
}

/// The `--rounds` that would settle every inconclusive pair of a `check` of `rounds` rounds
/// (None without inconclusive pairs).
fn settle_rounds(tally: &Tally, rounds: u32) -> Option<u32> {
    if tally.inconclusive == 0 || rounds == 0 {
        return None;
    }
    let wanted = (tally.settle_factor * f64::from(rounds) - 1e-9).ceil();
    Some((wanted as u32).max(rounds + 1))
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
    pub(crate) fn new<H: Borrow<HostRecord>>(hosts: &[H]) -> PairIndex {
        let mut index = PairIndex {
            by_addr: HashMap::new(),
            by_name: HashMap::new(),
            by_parent: HashMap::new(),
        };
        for (i, h) in hosts.iter().enumerate() {
            let h: &HostRecord = h.borrow();
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

    /// The hosts at `addr` on `port`, in watch-file order, at most as many as the content
    /// comparison looks at (`content::MAX_OTHER_SITES`, plus the pair's own two).
    pub(crate) fn hosts_at<'h, H: Borrow<HostRecord>>(
        &self,
        hosts: &'h [H],
        addr: IpAddr,
        port: u16,
    ) -> Vec<&'h HostRecord> {
        self.by_addr
            .get(&(addr, port))
            .into_iter()
            .flatten()
            .filter_map(|&i| hosts.get(i).map(Borrow::borrow))
            .take(super::content::MAX_OTHER_SITES + 2)
            .collect()
    }

    /// The targets linked to `a` by an address or a certificate name, ascending (the order pairs
    /// are listed in).
    pub(crate) fn linked_targets<H: Borrow<HostRecord>>(&self, hosts: &[H], a: usize) -> Vec<usize> {
        let h: &HostRecord = hosts[a].borrow();
        let mut out: Vec<usize> = Vec::new();
        for addr in &h.dns.addresses {
            out.extend(self.by_addr.get(&(*addr, h.entry.port)).into_iter().flatten());
        }
        for ep in h.endpoints.values() {
            let Some(c) = ep.leaf() else { continue };
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

/// The share of the hosts that some coalescable pair has as target which were probed as a
/// target at least once (by any origin).
fn target_coverage(tally: &Tally) -> f64 {
    let wanted = tally.targets.iter().filter(|&&t| t > 0).count();
    if wanted == 0 {
        return 1.0;
    }
    let probed = tally.targets.iter().filter(|&&t| t == 2).count();
    ((probed as f64 / wanted as f64) * 1e4).round() / 1e4
}

pub(crate) fn unix_now() -> i64 {
    Timestamp::now().unix()
}

/// Facts of the origin's endpoints (handshakes that succeeded) seen from `target`.
fn endpoint_facts(origin: &HostRecord, target: &HostRecord) -> Vec<EndpointFacts> {
    let (host, port) = (&target.entry.host, target.entry.port);
    origin
        .endpoints
        .iter()
        .filter_map(|(addr, ep)| {
            let tls = ep.tls.as_ref()?;
            let leaf = ep.leaf();
            let origin_frame = match ep.signals.as_ref().and_then(|s| s.origin_lists(host, port)) {
                None => OriginFrame::Absent,
                Some(true) => OriginFrame::Lists,
                Some(false) => OriginFrame::Excludes,
            };
            Some(EndpointFacts {
                addr: *addr,
                h2: tls.alpn.as_deref() == Some("h2"),
                cert_trusted: tls.chain_error.is_none() && leaf.is_some(),
                covers_target: leaf.is_some_and(|c| cert::covering_san(c, host).is_some()),
                origin_frame,
            })
        })
        .collect()
}

/// `endpoint_facts` for the origin's HTTP/3 connections: at the addresses where one was made
/// (a QUIC handshake succeeded), the certificate facts of the address (the same server) and
/// what the HTTP/3 ORIGIN frame says; an ORIGIN set cut short lists nothing for sure.
fn endpoint_facts_h3(origin: &HostRecord, target: &HostRecord) -> Vec<EndpointFacts> {
    let (host, port) = (&target.entry.host, target.entry.port);
    let by_h2 = endpoint_facts(origin, target);
    by_h2
        .into_iter()
        .filter_map(|mut f| {
            let h3 = origin.endpoints.get(&f.addr)?.h3.as_deref()?;
            if h3.handshakes as usize <= h3.handshake_errors.len() {
                return None;
            }
            f.h2 = true;
            f.origin_frame = match &h3.origin {
                None => OriginFrame::Absent,
                Some(set) if set.lists(host, port) => OriginFrame::Lists,
                Some(set) if set.dropped > 0 => OriginFrame::Absent,
                Some(_) => OriginFrame::Excludes,
            };
            Some(f)
        })
        .collect()
}

/// What the target's DNS answer says beyond its addresses: ServiceMode HTTPS records for the
/// name itself, none offering h2.
fn target_facts(target: &HostRecord) -> TargetFacts {
    let mut service = target
        .dns
        .https
        .iter()
        .filter(|r| {
            r.is_service() && (r.target.is_empty() || r.target.eq_ignore_ascii_case(&target.entry.host))
        })
        .peekable();
    TargetFacts {
        https_without_h2: service.peek().is_some() && service.all(|r| !r.offers_h2()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::judge::content;
    use crate::engine::probe::cert::CertSummary;
    use crate::engine::probe::dns::DnsAnswer;
    use crate::engine::probe::error::ProbeError;
    use crate::engine::probe::tls::TlsInfo;
    use crate::engine::record::{EndpointRecord, Outcome};
    use crate::engine::snapshot::{Client, FindingKind};
    use crate::testing::synth::answer;

    fn sample(outcome: Outcome) -> Coalesced {
        Coalesced::new(outcome, None)
    }
    use crate::watchlist::Entry;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
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
                cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
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
        r.coalesced.insert(
            (0, 1, ip("192.0.2.1")),
            vec![sample(answer(421, "")), sample(answer(421, ""))],
        );
        r.coalesced.insert(
            (1, 0, ip("192.0.2.1")),
            vec![sample(answer(200, "A")), sample(answer(200, "A"))],
        );
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
        let at = &ab.addresses[0];
        assert_eq!(at.refusals, BTreeMap::from([("421".to_string(), 2)]));
        let rate = at.refusal_rate.unwrap();
        assert_eq!((rate.rate, rate.n), (1.0, 2));
        // 2 of 2 refused, 0 of 2 refused: neither rules out one of two backends doing the
        // other thing; 4 answers each would (one per round: 4 rounds).
        assert_eq!((s.summary.inconclusive, s.summary.settle_rounds), (2, Some(4)));
    }

    #[test]
    fn another_hosts_page_is_misrouted_and_named_a_page_varying_by_connection_is_not() {
        let all = ["a.test", "b.test", "c.test"];
        let page = |site: &str, sni: &str| {
            let text: Vec<String> = (0..40).map(|i| format!("{site}{i}")).collect();
            format!("<title>{site}</title> {} reached as {sni}", text.join(" "))
        };
        let at = "192.0.2.1";
        let h = |name: &str, line: usize, site: &str| {
            let direct = vec![answer(200, &page(site, name)), answer(200, &page(site, name))];
            host(name, line, &[at], vec![(at, endpoint(&all, "h2", true, direct))])
        };
        let mut r = Records {
            hosts: vec![
                h("a.test", 1, "shop"),
                h("b.test", 2, "blog"),
                h("c.test", 3, "wiki"),
            ],
            rounds: 2,
            ..Default::default()
        };
        // a → b: c's page (a default site behind the address); b → a: a's page, printing the
        // connection's name; a → c: c's own page.
        r.coalesced.insert(
            (0, 1, ip(at)),
            vec![sample(answer(200, &page("wiki", "c.test"))); 2],
        );
        r.coalesced.insert(
            (1, 0, ip(at)),
            vec![sample(answer(200, &page("shop", "b.test"))); 2],
        );
        r.coalesced.insert(
            (0, 2, ip(at)),
            vec![sample(answer(200, &page("wiki", "c.test"))); 2],
        );
        let s = analyse(&r, false, Duration::ZERO);
        let judged = |o: &str, t: &str| {
            let p = pair(&s, o, t);
            let a = &p.addresses[0];
            (p.verdict, a.content, a.looked_like.clone(), a.misrouted)
        };
        use crate::engine::snapshot::Content;
        assert_eq!(
            judged("a.test", "b.test"),
            (
                Verdict::Misrouted,
                Some(Content::OtherSite),
                Some("c.test:443".into()),
                2
            )
        );
        assert!(pair(&s, "a.test", "b.test")
            .explanation
            .contains("looked like c.test's page"));
        assert_eq!(
            judged("b.test", "a.test"),
            (Verdict::Ok, Some(Content::Similar), None, 0)
        );
        assert!(pair(&s, "b.test", "a.test")
            .explanation
            .contains("page differs by connection"));
        assert_eq!(
            judged("a.test", "c.test"),
            (Verdict::Ok, Some(Content::Same), None, 0)
        );
    }

    /// The origin's own answer went on the coalesced requests' very connection: a page that
    /// prints the client port shares it with the coalesced answer. That must not make the
    /// coalesced page look like the origin's (a false "misrouted"): the origin is compared by
    /// its answers on other connections (direct, or its own on another connection) only.
    #[test]
    fn the_origins_answer_on_the_same_connection_is_no_evidence() {
        let page = |host: &str, sni: &str, port: u16| format!("host={host} sni={sni} port={port}\n");
        let on = |c: u64, o: Outcome| Coalesced::on(o, None, crate::engine::record::ConnId(c));
        // With and without a direct answer of the origin: neither is on connection 7.
        for direct in [vec![], vec![answer(200, &page("a.test", "a.test", 40001))]] {
            let mut r = echo_records(direct, vec![on(7, answer(200, &page("a.test", "a.test", 51234)))]);
            r.coalesced.insert(
                (0, 1, ip("192.0.2.1")),
                vec![on(7, answer(200, &page("b.test", "a.test", 51234)))],
            );
            let s = analyse(&r, false, Duration::ZERO);
            let p = pair(&s, "a.test", "b.test");
            use crate::engine::snapshot::Content;
            assert_eq!(
                (p.verdict, p.addresses[0].content),
                (Verdict::Ok, Some(Content::Similar)),
                "{}",
                p.explanation
            );
            // The biased answer on the same connection does look like the origin's page (it
            // shares the port): without a direct answer, `check` asks the origin directly.
            let samples = &r.coalesced[&(0, 1, ip("192.0.2.1"))];
            let target: Vec<&Outcome> = r.hosts[1]
                .endpoints
                .values()
                .flat_map(|e| e.references())
                .collect();
            let wanted = content::wants_origin_reference(samples, &target, &r.hosts[0], ip("192.0.2.1"));
            assert_eq!(wanted, r.hosts[0].endpoints.values().all(|e| e.direct.is_empty()));
        }
    }

    /// An SNI router serves the origin's page for every name on its connection: the origin's
    /// own answer on another connection is the evidence, no direct connection needed.
    #[test]
    fn the_origins_answer_on_another_connection_shows_the_wrong_site() {
        let page = |host: &str, port: u16| {
            let text: Vec<String> = (0..30).map(|i| format!("{host}-word{i}")).collect();
            format!("<title>{host}</title> {} port={port}\n", text.join(" "))
        };
        let on = |c: u64, o: Outcome| Coalesced::on(o, None, crate::engine::record::ConnId(c));
        let own = vec![
            on(7, answer(200, &page("a.test", 51234))),
            on(8, answer(200, &page("a.test", 51300))),
        ];
        let mut r = echo_records(vec![], own);
        r.coalesced.insert(
            (0, 1, ip("192.0.2.1")),
            vec![on(7, answer(200, &page("a.test", 51234)))],
        );
        let s = analyse(&r, false, Duration::ZERO);
        let p = pair(&s, "a.test", "b.test");
        use crate::engine::snapshot::Content;
        assert_eq!(
            (p.verdict, p.addresses[0].content),
            (Verdict::Misrouted, Some(Content::OtherSite)),
            "{}",
            p.explanation
        );
        // Only the answer on the same connection: not enough, and `check` is told to ask the
        // origin directly.
        let mut r = echo_records(vec![], vec![on(7, answer(200, &page("a.test", 51234)))]);
        let sample = on(7, answer(200, &page("a.test", 51234)));
        r.coalesced.insert((0, 1, ip("192.0.2.1")), vec![sample.clone()]);
        let s = analyse(&r, false, Duration::ZERO);
        assert_eq!(pair(&s, "a.test", "b.test").verdict, Verdict::Ok);
        let target: Vec<&Outcome> = r.hosts[1]
            .endpoints
            .values()
            .flat_map(|e| e.references())
            .collect();
        assert!(content::wants_origin_reference(
            &[sample],
            &target,
            &r.hosts[0],
            ip("192.0.2.1")
        ));
    }

    /// a.test and b.test at one address, one certificate: the origin's direct and own answers
    /// as given; the target's two own answers print its name and a port.
    fn echo_records(direct: Vec<Outcome>, own: Vec<Coalesced>) -> Records {
        let both = ["a.test", "b.test"];
        let at = "192.0.2.1";
        let mut ea = endpoint(&both, "h2", true, direct);
        ea.own = own;
        let mut eb = endpoint(&both, "h2", true, vec![]);
        eb.own = [40003, 40004]
            .map(|port| {
                Coalesced::new(
                    answer(200, &format!("host=b.test sni=b.test port={port}\n")),
                    None,
                )
            })
            .into();
        Records {
            hosts: vec![
                host("a.test", 1, &[at], vec![(at, ea)]),
                host("b.test", 2, &[at], vec![(at, eb)]),
            ],
            rounds: 1,
            ..Default::default()
        }
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
            .insert((0, 1, ip("192.0.2.1")), vec![sample(answer(200, "B"))]);
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

    /// One piece: eleven hosts' records, each made to show one finding or reason, then what
    /// the analysis says of each, in the same order.
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
