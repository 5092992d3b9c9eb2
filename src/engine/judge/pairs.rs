//! A pair's report: the verdict at each address where some client would coalesce, the pair's
//! verdict, its counts, and the explanation and fix.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::engine::judge::backends::{self, Blame};
use crate::engine::judge::confidence;
use crate::engine::judge::content::{self, AddressContent};
use crate::engine::judge::explain::{self, PairFacts, ServerKind};
use crate::engine::judge::impact::{self, AddressFate};
use crate::engine::judge::policy::PairPolicy;
use crate::engine::judge::verdict::{self, AddressEvidence, AddressJudgement, Refusal};
use crate::engine::probe::error::ProbeError;
use crate::engine::probe::h2::HttpAnswer;
use crate::engine::record::{Coalesced, HostRecord, Outcome};
use crate::engine::snapshot::cause::{Cause, ORIGIN_ROLE, TARGET_ROLE};
use crate::engine::snapshot::{
    Client, Coalesce, CoalesceRules, Impact, PairAddressReport, PairReport, Verdict,
};

use super::format::{addr_text, count_statuses, most_frequent};

/// One address of the pair, judged, with the evidence the judgement used.
struct Judged<'a> {
    judgement: AddressJudgement,
    /// Requests for the target on the origin's connections there.
    coalesced: Vec<&'a Outcome>,
    /// The target's direct answers used as reference.
    direct: Vec<&'a Outcome>,
    /// Some backends at the address refuse, others do not.
    blame: Option<Blame>,
    /// "ADDRESS: error" when the origin is down there now (`EndpointRecord::down`).
    down: Option<String>,
}

/// The share of 421s among the HTTP answers at every address (0 when none answered).
fn rate_421(judged: &[Judged<'_>]) -> f64 {
    let answered: usize = judged.iter().map(|j| j.judgement.answered).sum();
    let misdirected: usize = judged.iter().map(|j| j.judgement.misdirected).sum();
    if answered == 0 {
        0.0
    } else {
        misdirected as f64 / answered as f64
    }
}

/// The report of `origin → target`; `coalesced(addr)` are the requests for the target on the
/// origin's connections at `addr`, `neighbours(addr)` the watched hosts there (whose pages a
/// coalesced answer may turn out to be).
pub(super) fn pair_report<'c, 'n>(
    ha: &'n HostRecord,
    hb: &'n HostRecord,
    coalesced: &dyn Fn(IpAddr) -> Vec<&'c Coalesced>,
    neighbours: &dyn Fn(IpAddr) -> Vec<&'n HostRecord>,
    policy: &PairPolicy,
) -> PairReport {
    let dynamic = verdict::looks_dynamic(
        hb.endpoints
            .values()
            .flat_map(|ep| ep.references())
            .filter_map(|o| o.as_ref().ok()),
    );
    let (addresses, judged) = judge_addresses((ha, hb), coalesced, neighbours, policy, dynamic);
    // The first coalesced request that got no answer, for the `error` verdict.
    let coalesced_error = judged.iter().find_map(|j| j.judgement.first_error.as_ref());
    let (verdict, error) = pair_verdict(ha, policy, &judged, coalesced_error);
    let probes: u32 = addresses.iter().map(|x| x.probes).sum();
    let rate_421 = rate_421(&judged);
    let reason = if verdict == Verdict::NotCoalescable {
        policy.reason
    } else {
        None
    };
    // A pair waiting for its first probe says what every such pair says (one shared copy);
    // the evidence is gathered only for pairs with a verdict.
    // Said for problem pairs only: on the others every client is unaffected, which the verdict
    // says already (and 190,000 ok pairs would carry five entries each).
    let impact = if verdict.is_problem() && verdict != Verdict::DirectBroken {
        impact::impact(verdict, &address_fates(&addresses, &judged))
    } else {
        Vec::new()
    };
    let (explanation, fix, cause) = if verdict == Verdict::Pending {
        let (why, fix) = pending_texts();
        (why, fix, None)
    } else {
        let facts = PairFacts {
            verdict,
            reason,
            error: error.clone(),
            ..pair_facts(ha, hb, &addresses, &judged, verdict)
        };
        let (why, fix) = explain::explain(&facts);
        let fix = fix.map(|f| impact::lead_fix(&impact, verdict, f));
        let cause = (verdict.is_problem() || verdict == Verdict::Error)
            .then(|| cause_of(&facts, &impact))
            .flatten();
        (Arc::from(why), fix.map(Arc::from), cause)
    };
    let findings = super::signals::pair_findings((&ha.entry.host, hb), policy, verdict, &addresses);
    PairReport {
        origin: ha.key.clone(),
        target: hb.key.clone(),
        verdict,
        reason,
        shared_addresses: policy.shared.iter().map(addr_text).collect(),
        cert_covers: policy.cert_covers,
        coalesce: coalesce_of(policy),
        probes,
        rate_421: (rate_421 * 1e4).round() / 1e4,
        refusal_rate: confidence::wilson(
            judged.iter().map(|j| j.judgement.refused() as u32).sum(),
            judged.iter().map(|j| j.judgement.responded as u32).sum(),
        ),
        addresses,
        explanation,
        fix,
        error,
        impact,
        findings,
        protocols: Vec::new(),
        cause,
    }
}

/// The pair's cause: its explanation and fix said of "the origin" and "the target".
fn cause_of(facts: &PairFacts<'_>, impact: &[Impact]) -> Option<Arc<Cause>> {
    // The origin's own page ("looked like the origin's page") is named as the origin is.
    let looked_like = facts.looked_like.as_ref().map(|site| {
        let host = site.rsplit_once(':').map_or(site.as_str(), |(host, _)| host);
        if host == facts.origin {
            ORIGIN_ROLE.to_string()
        } else {
            site.clone()
        }
    });
    let roles = PairFacts {
        origin: ORIGIN_ROLE,
        target: TARGET_ROLE,
        looked_like,
        ..facts.clone()
    };
    let (why, fix) = explain::explain(&roles);
    let fix = impact::lead_fix(impact, facts.verdict, fix?);
    Some(Arc::new(Cause {
        server: facts.server,
        why: Arc::from(why),
        fix: Arc::from(fix),
    }))
}

/// Whether each client pools the pair, and by which rule.
fn coalesce_of(policy: &PairPolicy) -> Coalesce {
    Coalesce {
        chrome: policy.chrome,
        firefox: policy.firefox,
        rules: CoalesceRules {
            chrome: policy.chrome_rule,
            firefox: policy.firefox_rule,
        },
    }
}

/// Per judged address, who pools there, its verdict, and how the server refused there.
fn address_fates(addresses: &[PairAddressReport], judged: &[Judged<'_>]) -> Vec<AddressFate> {
    addresses
        .iter()
        .zip(judged)
        .map(|(a, j)| AddressFate {
            verdict: a.verdict,
            chrome: a.clients.contains(&Client::Chrome),
            firefox: a.clients.contains(&Client::Firefox),
            refusal: impact::Refusal::of(&j.judgement.refusals),
        })
        .collect()
}

/// Judge every address of the origin where some client would coalesce the target.
fn judge_addresses<'a, 'c: 'a, 'n: 'a>(
    (ha, hb): (&'n HostRecord, &'n HostRecord),
    coalesced: &dyn Fn(IpAddr) -> Vec<&'c Coalesced>,
    neighbours: &dyn Fn(IpAddr) -> Vec<&'n HostRecord>,
    policy: &PairPolicy,
    dynamic: bool,
) -> (Vec<PairAddressReport>, Vec<Judged<'a>>) {
    // Sized exactly: a pair's report keeps this list for as long as it is listed.
    let coalescing = policy.coalescing_addrs();
    let mut addresses = Vec::with_capacity(coalescing.len());
    let mut judged = Vec::with_capacity(coalescing.len());
    for addr in coalescing {
        let samples = coalesced(addr);
        let backends = backends::backends(&samples);
        let coalesced: Vec<&'a Outcome> = samples.iter().map(|s| &s.outcome).collect();
        let direct: Vec<&'n Outcome> = hb.references_at(&addr);
        let AddressContent {
            per_answer,
            content,
            looked_like,
        } = content::address_content(&samples, &direct, ha, hb, addr, neighbours);
        let mut j = verdict::judge_address(AddressEvidence {
            coalesced: &coalesced,
            direct: &direct,
            dynamic,
            content: &per_answer,
        });
        // The origin is down here now: what the window's samples say is history, and no
        // client gets a connection to coalesce on (`EndpointRecord::down`).
        let down = ha.endpoints.get(&addr).and_then(|ep| ep.down.as_ref());
        if let Some(e) = down.filter(|_| j.verdict != Verdict::Pending) {
            j.verdict = Verdict::Error;
            j.first_error = Some(e.clone());
        }
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
            content,
            looked_like,
            refusals: j.refusals.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
            refusal_rate: confidence::wilson(j.refused() as u32, j.responded as u32),
            backends: backends.iter().map(backends::report).collect(),
        });
        judged.push(Judged {
            down: down.map(|e| format!("{}: {e}", addr_text(&addr))),
            judgement: j,
            coalesced,
            direct,
            blame: backends::blame(&addr_text(&addr), &backends),
        });
    }
    (addresses, judged)
}

/// The pair's verdict, and for `error` what went wrong. Not coalescable: the policy's reason,
/// or the origin's failed handshake, or nothing yet (pending). Coalescable: the worst address
/// verdict, where "nothing requested because the origin's handshake failed" is an error.
fn pair_verdict(
    ha: &HostRecord,
    policy: &PairPolicy,
    judged: &[Judged<'_>],
    coalesced_error: Option<&ProbeError>,
) -> (Verdict, Option<String>) {
    let origin_error = || {
        ha.endpoints
            .iter()
            .filter(|(x, _)| policy.shared.contains(x) || policy.reason.is_none())
            .find_map(|(x, ep)| ep.handshake_errors.last().map(|e| format!("{x}: {e}")))
    };
    if !(policy.chrome || policy.firefox) {
        return match (policy.reason, origin_error()) {
            (Some(_), _) => (Verdict::NotCoalescable, None),
            (None, Some(e)) => (Verdict::Error, Some(e)),
            // No handshake with the origin within the window, failed or not: the live planner
            // has not reached it yet.
            (None, None) if ha.endpoints.values().all(|ep| ep.handshakes == 0) => (Verdict::Pending, None),
            (None, None) => (Verdict::Error, Some(format!("no TLS connection to {}", ha.key))),
        };
    }
    let v = Verdict::worst(judged.iter().map(|j| j.judgement.verdict)).unwrap_or(Verdict::Error);
    match v {
        // An origin down now is what the pair shows first: the window's other errors are
        // older.
        Verdict::Error => (
            v,
            judged
                .iter()
                .find_map(|j| j.down.clone())
                .or_else(|| coalesced_error.map(ProbeError::to_string))
                .or_else(origin_error),
        ),
        // Nothing requested at an address because the origin's handshake failed there is an
        // error, not a wait.
        Verdict::Pending => match origin_error() {
            Some(e) => (Verdict::Error, Some(e)),
            None => (v, None),
        },
        _ => (v, None),
    }
}

/// The evidence for the explanation of a pair judged `verdict`: which addresses, what the
/// failing and the direct answers said, and who the server is.
fn pair_facts<'a>(
    ha: &'a HostRecord,
    hb: &'a HostRecord,
    addresses: &[PairAddressReport],
    judged: &[Judged<'_>],
    verdict: Verdict,
) -> PairFacts<'a> {
    let failing: Vec<&HttpAnswer> = judged
        .iter()
        .filter(|j| j.judgement.verdict == verdict)
        .flat_map(|j| j.coalesced.iter().filter_map(|o| o.as_ref().ok()))
        .filter(|x| x.status == 421 || verdict == Verdict::Misrouted)
        .collect();
    let direct_all: Vec<&Outcome> = judged.iter().flat_map(|j| j.direct.iter().copied()).collect();
    let direct_statuses = count_statuses(direct_all.iter().copied());
    let http1 = hb.endpoints.values().flat_map(|ep| ep.direct_http1.iter());
    let addresses_judged = |v: Verdict| {
        addresses
            .iter()
            .filter(|x| x.verdict == v)
            .map(|x| x.address.clone())
            .collect()
    };
    let judged_here = |x: &&PairAddressReport| x.verdict == verdict;
    PairFacts {
        origin: &ha.entry.host,
        target: &hb.entry.host,
        // What the pages at the addresses judged `verdict` were (the furthest of them).
        content: addresses
            .iter()
            .filter(judged_here)
            .filter_map(|x| x.content)
            .max(),
        looked_like: addresses
            .iter()
            .filter(judged_here)
            .find_map(|x| x.looked_like.clone()),
        dynamic: addresses.iter().any(|x| x.dynamic),
        verdict,
        reason: None,
        bad_addresses: addresses_judged(verdict),
        good_addresses: addresses_judged(Verdict::Ok),
        probes: addresses.iter().map(|x| x.probes).sum(),
        refused: judged.iter().map(|j| j.judgement.refused() as u32).sum(),
        refusals: refusals_at(judged, verdict),
        blame: judged
            .iter()
            .filter(|j| j.judgement.verdict == verdict)
            .find_map(|j| j.blame.clone()),
        misrouted: judged.iter().map(|j| j.judgement.misrouted as u32).sum(),
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
        cert_error: ha
            .endpoints
            .values()
            .find_map(|ep| ep.tls.as_ref().and_then(|t| t.chain_error.clone())),
        error: None,
    }
}

/// The refusals by kind at the addresses judged `verdict`.
fn refusals_at(judged: &[Judged<'_>], verdict: Verdict) -> BTreeMap<Refusal, u32> {
    let mut all = BTreeMap::new();
    for j in judged.iter().filter(|j| j.judgement.verdict == verdict) {
        for (r, n) in &j.judgement.refusals {
            *all.entry(*r).or_default() += n;
        }
    }
    all
}

/// The explanation and fix of a pending pair, one copy for all of them.
fn pending_texts() -> (Arc<str>, Option<Arc<str>>) {
    static TEXTS: std::sync::LazyLock<(Arc<str>, Arc<str>)> =
        std::sync::LazyLock::new(|| (Arc::from(explain::PENDING_WHY), Arc::from(explain::PENDING_FIX)));
    (TEXTS.0.clone(), Some(TEXTS.1.clone()))
}
