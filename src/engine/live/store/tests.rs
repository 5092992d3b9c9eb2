//! The store: reloads, bounds, pruning, DNS reuse, events, coverage, and the incremental
//! publish checked against full recomputation.

use std::net::IpAddr;

use super::*;
use crate::engine::judge::analysis;
use crate::engine::probe::dns::DnsFailure;
use crate::engine::probe::error::ProbeError;
use crate::engine::probe::h2::HttpAnswer;
use crate::engine::probe::tls::TlsInfo;
use crate::engine::record::{Coalesced, Outcome};
use crate::engine::snapshot::{
    EngineStatus, Event, EventKind, FindingKind, History, HostChange, LiveView, PairReport, Severity,
    Timestamp, ViewChanges,
};

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
        body_unbounded: false,
        page: None,
        server: None,
        elapsed: Duration::from_millis(1),
    })
}

/// Host 0's connection at 127.0.0.1 (its handshake `handshake`) got a 421 for host 1, which
/// answers 200 on its own connection there.
fn refused_at_127_0_0_1(handshake: Result<TlsInfo, ProbeError>) -> [JobResult; 2] {
    let addr: IpAddr = "127.0.0.1".parse().unwrap();
    [
        JobResult::Origin {
            host: 0,
            addr,
            handshake,
            own: None,
            coalesced: vec![(1, Coalesced::new(answer(421), None))],
            uncovered: vec![],
            requests: 1,
            signals: None,
        },
        JobResult::Direct {
            host: 1,
            addr,
            protocol: DirectProtocol::Negotiate,
            outcome: answer(200),
        },
    ]
}

/// The pair a.test:443 → b.test:443 of `v` and its sparkline's points.
fn ab_pair(v: &LiveView) -> (Arc<PairReport>, Vec<Option<f32>>) {
    let i = v
        .report
        .pairs
        .iter()
        .position(|p| &*p.origin == "a.test:443" && &*p.target == "b.test:443")
        .unwrap();
    (v.report.pairs[i].clone(), v.histories[i].points())
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
    for job in refused_at_127_0_0_1(Err(ProbeError::Tls("boom".into()))) {
        store.apply(&hosts, job, now);
    }
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
        cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
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
        own: Some(Box::new(Coalesced::new(answer(200), None))),
        coalesced: vec![(target, Coalesced::new(answer(200), None))],
        uncovered: vec![],
        requests: 2,
        signals: None,
    };
    // Cycle 1 probes a → b only; both handshakes are known.
    store.apply(&hosts, origin(0, 1), t0);
    store.apply(
        &hosts,
        JobResult::Origin {
            host: 1,
            addr,
            handshake: Ok(tls.clone()),
            own: Some(Box::new(Coalesced::new(answer(200), None))),
            coalesced: vec![],
            uncovered: vec![],
            requests: 1,
            signals: None,
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

/// `by_index` (pending pairs listed by index) lists what `full` (every pair by report) lists,
/// in the same order, with the same reports, and says the same around them.
fn assert_lists_the_same(full: &LiveView, by_index: &LiveView, context: &str) {
    assert!(full.pending.is_empty(), "{context}");
    let listed: Vec<Arc<PairReport>> = by_index
        .listed_pairs()
        .map(|p| by_index.listed_report(p).expect("a listed pair has a report"))
        .collect();
    assert_eq!(listed, full.report.pairs, "{context}: listed pairs");
    assert_eq!(by_index.listed_len(), full.report.pairs.len(), "{context}");
    let json = crate::report::json::view_to_json(by_index);
    assert_eq!(
        json,
        crate::report::json::to_json(&full.report),
        "{context}: JSON"
    );
    assert_eq!(by_index.report.summary, full.report.summary, "{context}");
    assert_eq!(by_index.report.groups, full.report.groups, "{context}");
    assert_eq!(by_index.events, full.events, "{context}");
    // Aligned with the pairs listed by report, which have the same sparklines.
    assert_eq!(by_index.histories.len(), by_index.report.pairs.len(), "{context}");
    let sparkline: HashMap<(&str, &str), &History> = full
        .report
        .pairs
        .iter()
        .zip(&full.histories)
        .map(|(p, h)| ((&*p.origin, &*p.target), h))
        .collect();
    for (p, h) in by_index.report.pairs.iter().zip(&by_index.histories) {
        assert_eq!(Some(&h), sparkline.get(&(&*p.origin, &*p.target)), "{context}");
    }
}

/// The view without what legitimately differs between two stores fed the same way: the
/// second the report was made at, and the publish bookkeeping.
fn comparable(mut v: LiveView) -> LiveView {
    v.report.generated_at = Timestamp::default();
    for e in Arc::make_mut(&mut v.events) {
        match e {
            Event::Verdict(v) => v.at = Timestamp::default(),
            Event::Host(h) => h.at = Timestamp::default(),
        }
    }
    v.changes = ViewChanges::default();
    v
}

/// Incremental publishing gives exactly what a full recomputation gives (and what
/// `analysis::analyse` gives over the same records), over random applies, prunes, DNS
/// changes and reloads, with and without events.
///
/// One piece: the three stores and the random steps that feed them are the test; each step's
/// checks sit right after the step that they check.
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
        // Lists the pending pairs without samples by index (as for `serve`).
        let mut idx = synth.store(window);
        idx.list_pending_by_index(true);
        idx.started = inc.started;
        let all = synth.entries();
        let mut listed: Vec<Entry> = all.clone();
        let mut hosts = inc.hosts_for_jobs();
        let mut now = Instant::now();
        let mut cycles = 0u64;
        let mut layouts = 0;
        let mut by_index = 0;
        let mut pending_reports = 0;
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
                    let over_h3 = rng.random_bool(0.25);
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
                        if over_h3 {
                            as_h3(job)
                        } else {
                            job
                        }
                    };
                    inc.apply(&hosts, make(), now);
                    full.apply(&hosts, make(), now);
                    idx.apply(&hosts, make(), now);
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
                    idx.apply(&hosts, make(), now);
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
                    idx.set_dns(&e.key(), answer.clone());
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
                    idx.set_entries(&listed);
                    for e in &listed {
                        let n = all.iter().position(|x| x == e).unwrap();
                        if inc.dns_fresh(&e.key(), Instant::now()) {
                            continue;
                        }
                        inc.set_dns(&e.key(), synth.dns(n));
                        full.set_dns(&e.key(), synth.dns(n));
                        idx.set_dns(&e.key(), synth.dns(n));
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
                let c = idx.publish(now, status.clone(), record);
                let b = full.publish(now, status, record);
                if let (Some(oldest), Some(cutoff)) = (inc.oldest_sample(), now.checked_sub(window)) {
                    assert!(
                        oldest >= cutoff,
                        "seed {seed} step {step}: a sample outlived the window"
                    );
                }
                assert!(inc
                    .coalesced
                    .values()
                    .all(|p| !p.queues.is_empty() || !p.h3.is_empty()));
                layouts += usize::from(a.changes.layout == a.changes.seq);
                assert_eq!(a.changes.pairs.len(), a.report.pairs.len());
                assert_eq!(c.changes.pairs.len(), c.report.pairs.len());
                assert_eq!(a.changes.hosts.len(), a.report.hosts.len());
                // What the scheduler relies on: problems come first, `is_listed` knows the list.
                let problem = |p: &Arc<PairReport>| p.verdict.is_problem();
                let problems = a.report.pairs.iter().filter(|p| problem(p)).count();
                assert!(a.report.pairs[..problems].iter().all(problem));
                let listed: HashSet<(&str, &str)> =
                    a.report.pairs.iter().map(|p| (&*p.origin, &*p.target)).collect();
                assert!(listed.iter().all(|(o, t)| inc.is_listed(o, t)));
                for e in a.events.iter().filter_map(Event::as_verdict) {
                    let expected = listed.contains(&(e.origin.as_str(), e.target.as_str()));
                    assert_eq!(inc.is_listed(&e.origin, &e.target), expected);
                }
                let mut fresh =
                    analysis::analyse(&inc.records(cycles), false, now.duration_since(inc.started));
                fresh.generated_at = Timestamp::default();
                // `--rounds` advice is for `check` only: the live engine has no rounds.
                fresh.summary.settle_rounds = None;
                let (a, b, c) = (comparable(a), comparable(b), comparable(c));
                assert_eq!(a.report, fresh, "seed {seed} step {step}: incremental vs analyse");
                assert_eq!(a, b, "seed {seed} step {step}: incremental vs full");
                assert_lists_the_same(&a, &c, &format!("seed {seed} step {step}"));
                by_index += c.pending.len();
                pending_reports += c.pending.runs().iter().filter(|r| r.len == 0).count();
            }
        }
        assert!(layouts > 2, "the layout changed only {layouts} times");
        assert!(by_index > 0, "no pair was ever listed by index");
        assert!(
            pending_reports > 0,
            "no pending pair with samples was listed among them"
        );
        let last = inc.publish(now, EngineStatus::default(), true);
        assert!(!last.report.pairs.is_empty());
    }
}

/// The same origin job over HTTP/3 (on UDP port 443).
fn as_h3(job: JobResult) -> JobResult {
    let JobResult::Origin {
        host,
        addr,
        handshake,
        own,
        coalesced,
        requests,
        ..
    } = job
    else {
        return job;
    };
    JobResult::OriginH3(Box::new(crate::engine::record::H3Result {
        host,
        addr,
        port: 443,
        handshake,
        own,
        coalesced,
        requests,
        control: crate::engine::probe::h3_control::ControlSeen::Unknown,
    }))
}

/// A pair clean over HTTP/2 and refused over HTTP/3 is misdirected, with both protocols'
/// rows and the explanation saying which; once the HTTP/3 samples leave the window (the host
/// stopped advertising it, say) the pair is judged over HTTP/2 alone again.
#[test]
fn a_pair_refused_over_http3_only_is_misdirected_over_http3() {
    use crate::engine::snapshot::Protocol;
    let pki = crate::testing::net::Pki::new("h3 CA");
    let window = Duration::from_secs(60);
    let mut store = Store::new(window, "/".into());
    store.set_entries(&[entry("a.test", 1), entry("b.test", 2)]);
    store.set_dns("a.test:443", dns("127.0.0.1"));
    store.set_dns("b.test:443", dns("127.0.0.1"));
    let hosts = store.hosts_for_jobs();
    let addr: IpAddr = "127.0.0.1".parse().unwrap();
    let origin = |coalesced: u16| JobResult::Origin {
        host: 0,
        addr,
        handshake: Ok(h2_handshake(&pki, &["a.test", "b.test"])),
        own: Some(Box::new(Coalesced::new(answer(200), None))),
        coalesced: vec![(1, Coalesced::new(answer(coalesced), None))],
        uncovered: vec![],
        requests: 2,
        signals: None,
    };
    let direct_b = || JobResult::Direct {
        host: 1,
        addr,
        protocol: DirectProtocol::Negotiate,
        outcome: answer(200),
    };
    let start = Instant::now();
    for k in 0..3 {
        let at = start + Duration::from_secs(k);
        store.apply(&hosts, origin(200), at);
        store.apply(&hosts, as_h3(origin(421)), at);
        store.apply(&hosts, direct_b(), at);
    }
    let view = store.publish(start + Duration::from_secs(3), EngineStatus::default(), true);
    let (pair, _) = ab_pair(&view);
    assert_eq!(pair.verdict, Verdict::Misdirected, "{}", pair.explanation);
    let rows: Vec<(Protocol, Verdict, u32)> = pair
        .protocols
        .iter()
        .map(|r| (r.protocol, r.verdict, r.probes))
        .collect();
    assert_eq!(
        rows,
        [
            (Protocol::H2, Verdict::Ok, 3),
            (Protocol::H3, Verdict::Misdirected, 3)
        ]
    );
    assert!(
        pair.explanation
            .starts_with("over HTTP/3 (misdirected; over HTTP/2: ok)"),
        "{}",
        pair.explanation
    );
    let h3 = store.records(1).hosts[0].endpoints[&addr]
        .h3
        .clone()
        .expect("the HTTP/3 side");
    assert_eq!((h3.port, h3.handshakes, h3.own.len()), (443, 3, 3));
    // HTTP/2 goes on alone: the HTTP/3 samples leave the window, and with them the verdict.
    let later = start + window + Duration::from_secs(10);
    store.apply(&hosts, origin(200), later);
    store.apply(&hosts, direct_b(), later);
    let view = store.publish(later, EngineStatus::default(), true);
    let (pair, _) = ab_pair(&view);
    assert_eq!(
        (pair.verdict, pair.protocols.len()),
        (Verdict::Ok, 0),
        "{}",
        pair.explanation
    );
    assert!(store.records(1).hosts[0].endpoints[&addr].h3.is_none());
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

/// An origin job of host 0 at 127.0.0.1 whose connection received an ORIGIN frame listing
/// `origins` (nothing else matters to the planner).
fn framed_origin_job(origins: &[&str]) -> JobResult {
    use crate::engine::probe::signals::{OriginSet, ServerSignals};
    JobResult::Origin {
        host: 0,
        addr: "127.0.0.1".parse().unwrap(),
        handshake: Err(ProbeError::Tls("not needed here".into())),
        own: None,
        coalesced: vec![],
        uncovered: vec![],
        requests: 1,
        signals: Some(Box::new(ServerSignals {
            origin: Some(OriginSet {
                origins: origins.iter().map(|o| o.to_string()).collect(),
                frames: 1,
                ..OriginSet::default()
            }),
            ..ServerSignals::default()
        })),
    }
}

/// The names an ORIGIN frame listed on a host's connection become that host's peers for the
/// planner (whatever DNS says), and only that host's; a later connection without the name
/// takes it back.
#[test]
fn origin_frame_lists_reach_the_planner() {
    use crate::engine::live::planner::{address_peers, origin_index, Plan};
    use crate::engine::prober::TargetPlan;
    let mut store = Store::new(Duration::from_secs(60), "/".into());
    store.set_entries(&[entry("a.o.test", 1), entry("b.o.test", 2)]);
    store.set_dns("a.o.test:443", dns("127.0.0.1"));
    store.set_dns("b.o.test:443", dns("127.0.0.2"));
    let hosts = store.hosts_for_jobs();
    assert_eq!(address_peers(&hosts), vec![Vec::<usize>::new(), vec![]]);
    let framed = framed_origin_job;
    store.apply(
        &hosts,
        framed(&["https://a.o.test", "https://b.o.test"]),
        Instant::now(),
    );
    let hosts = store.hosts_for_jobs();
    assert_eq!(address_peers(&hosts), vec![vec![1], vec![]]);
    // The prober's view of the same set, on the connection that received it.
    let plan = Plan {
        origins: Some(Arc::new(origin_index(&hosts))),
        ..Plan::default()
    };
    let set = hosts[0]
        .endpoints
        .values()
        .next()
        .unwrap()
        .signals
        .as_ref()
        .unwrap();
    assert_eq!(plan.listed(0, set.origin.as_ref().unwrap()), vec![1]);
    store.apply(&hosts, framed(&["https://a.o.test"]), Instant::now());
    assert_eq!(
        address_peers(&store.hosts_for_jobs()),
        vec![Vec::<usize>::new(), vec![]]
    );
}

/// A name an ORIGIN frame lists on another port is no peer: pairs across ports are never
/// judged, so probing it would only take a slot from a target that is.
#[test]
fn origin_frame_lists_on_another_port_are_no_peers() {
    use crate::engine::live::planner::address_peers;
    let mut store = Store::new(Duration::from_secs(60), "/".into());
    let other_port = Entry {
        port: 8443,
        ..entry("b.p.test", 2)
    };
    store.set_entries(&[entry("a.p.test", 1), other_port]);
    store.set_dns("a.p.test:443", dns("127.0.0.1"));
    store.set_dns("b.p.test:8443", dns("127.0.0.2"));
    let hosts = store.hosts_for_jobs();
    let result = framed_origin_job(&["https://b.p.test:8443"]);
    store.apply(&hosts, result, Instant::now());
    assert_eq!(
        address_peers(&store.hosts_for_jobs()),
        vec![Vec::<usize>::new(), vec![]]
    );
}

/// A host event's change, for the DNS tests.
fn host_changes(view: &LiveView) -> Vec<HostChange> {
    view.events
        .iter()
        .filter_map(|e| match e {
            Event::Host(h) => Some(h.change.clone()),
            Event::Verdict(_) => None,
        })
        .collect()
}

fn good(addr: &str, ttl: u32) -> DnsAnswer {
    DnsAnswer {
        ttl_s: Some(ttl),
        ..dns(addr)
    }
}

fn failed(error: &str, failure: DnsFailure) -> DnsAnswer {
    DnsAnswer {
        error: Some(error.into()),
        failure: Some(failure),
        ..Default::default()
    }
}

/// A failed lookup keeps the last good answer until TTL + grace (stale: JSON field, finding,
/// event), then the failure counts (dns-error, event); a good answer recovers (event), with
/// the address change said. The clock is injected. One piece: the states follow each other
/// on one store and one clock, and each step checks the last one's outcome.
#[test]
fn failed_lookups_keep_the_last_good_answer_until_ttl_plus_grace() {
    let mut store = Store::new(Duration::from_secs(600), "/".into());
    store.set_dns_grace(Duration::from_secs(60));
    store.set_entries(&[entry("a.test", 1)]);
    let (t0, u0) = (Instant::now(), Timestamp::from_unix(1_000_000));
    let at = |s: u64| {
        (
            t0 + Duration::from_secs(s),
            Timestamp::from_unix(u0.unix() + s as i64),
        )
    };
    let key = "a.test:443";
    store.set_dns_at(key, good("127.0.0.1", 10), t0, u0);
    let view = store.publish(t0, EngineStatus::default(), true);
    assert!(host_changes(&view).is_empty(), "the first answer is no change");
    assert!(store.dns_fresh(key, t0));

    // Past the TTL, the lookup times out: stale until 10 s + 60 s after the answer.
    let (t, u) = at(20);
    store.set_dns_at(key, failed("timed out after 5s", DnsFailure::Timeout), t, u);
    assert!(!store.dns_fresh(key, t), "stale answers are retried every cycle");
    let view = store.publish(t, EngineStatus::default(), true);
    let host = &view.report.hosts[0];
    assert_eq!(host.addresses, vec!["127.0.0.1"]);
    assert_eq!(host.dns.error, None);
    let stale = host.dns.stale.as_ref().expect("stale");
    assert_eq!(
        (stale.since, stale.until),
        (u, Timestamp::from_unix(u0.unix() + 70))
    );
    assert_eq!(stale.error, "timed out after 5s");
    let finding = host
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::DnsStale)
        .unwrap();
    assert_eq!(finding.severity, Severity::Warning);
    assert!(
        finding.message.contains("timed out after 5s"),
        "{}",
        finding.message
    );
    assert!(
        finding.message.contains("1970-01-12T13:47:50Z"),
        "{}",
        finding.message
    );
    let json = serde_json::to_value(&**host).unwrap();
    assert_eq!(json["dns"]["stale"]["until"], "1970-01-12T13:47:50Z");
    assert_eq!(
        host_changes(&view),
        vec![HostChange::DnsStale {
            error: "timed out after 5s".into(),
            until: stale.until
        }]
    );
    assert_eq!(view.event_totals.get(EventKind::DnsStale), 1);

    // Still within the grace: SERVFAIL now; stale, the same since, no second event.
    let (t, u) = at(50);
    store.set_dns_at(key, failed("SERVFAIL", DnsFailure::ServFail), t, u);
    let view = store.publish(t, EngineStatus::default(), true);
    let stale = view.report.hosts[0].dns.stale.clone().unwrap();
    assert_eq!((stale.since, stale.error.as_str()), (at(20).1, "SERVFAIL"));
    assert_eq!(host_changes(&view).len(), 1);

    // The grace is over: dns-error, the addresses gone.
    let (t, u) = at(71);
    store.set_dns_at(key, failed("SERVFAIL", DnsFailure::ServFail), t, u);
    let view = store.publish(t, EngineStatus::default(), true);
    let host = &view.report.hosts[0];
    assert_eq!(
        (host.dns.error.as_deref(), host.dns.stale.as_ref()),
        (Some("SERVFAIL"), None)
    );
    assert!(host.addresses.is_empty());
    assert!(host.findings.iter().any(|f| f.kind == FindingKind::DnsError));
    assert!(!host.findings.iter().any(|f| f.kind == FindingKind::DnsStale));
    assert_eq!(
        host_changes(&view)[1..],
        [HostChange::DnsFailed {
            error: "SERVFAIL".into()
        }]
    );

    // A good answer, at another address: recovered, and the change said.
    let (t, u) = at(90);
    store.set_dns_at(key, good("127.0.0.2", 10), t, u);
    let view = store.publish(t, EngineStatus::default(), true);
    assert_eq!(view.report.hosts[0].addresses, vec!["127.0.0.2"]);
    assert_eq!(
        host_changes(&view)[2..],
        [
            HostChange::DnsRecovered,
            HostChange::AddressesChanged {
                added: vec!["127.0.0.2".into()],
                removed: vec!["127.0.0.1".into()],
            }
        ]
    );
    let totals = EventKind::ALL.map(|k| view.event_totals.get(k));
    assert_eq!(totals, [0, 0, 1, 1, 1, 1]);
}

/// NXDOMAIN is definitive: the last answer is not kept (dns-failed at once); the grace is
/// only for outages.
#[test]
fn nxdomain_is_not_an_outage() {
    let mut store = Store::new(Duration::from_secs(600), "/".into());
    store.set_entries(&[entry("a.test", 1)]);
    let t0 = Instant::now();
    store.set_dns_at("a.test:443", good("127.0.0.1", 10), t0, Timestamp::from_unix(0));
    let t = t0 + Duration::from_secs(11);
    store.set_dns_at(
        "a.test:443",
        failed("NXDOMAIN", DnsFailure::NxDomain),
        t,
        Timestamp::from_unix(11),
    );
    let view = store.publish(t, EngineStatus::default(), true);
    assert_eq!(view.report.hosts[0].dns.error.as_deref(), Some("NXDOMAIN"));
    assert!(view.report.hosts[0].dns.stale.is_none());
    assert_eq!(
        host_changes(&view),
        vec![HostChange::DnsFailed {
            error: "NXDOMAIN".into()
        }]
    );
    // A name that never answered has no answer to lose: no event for its failures.
    store.set_entries(&[entry("a.test", 1), entry("b.test", 2)]);
    store.set_dns_at(
        "b.test:443",
        failed("SERVFAIL", DnsFailure::ServFail),
        t,
        Timestamp::from_unix(11),
    );
    let view = store.publish(t, EngineStatus::default(), true);
    assert_eq!(host_changes(&view).len(), 1);
    assert!(view.report.hosts[1].dns.stale.is_none());
}

/// A successful h2 handshake that served a leaf of `pki` for `names`.
fn h2_handshake(pki: &crate::testing::net::Pki, names: &[&str]) -> TlsInfo {
    let (chain, _) = pki.leaf(names, crate::testing::net::Validity::Current);
    TlsInfo {
        alpn: Some("h2".into()),
        version: "TLSv1.3".into(),
        cipher: None,
        chain,
        chain_error: None,
        connect_time: Duration::from_millis(1),
        handshake_time: Duration::from_millis(1),
    }
}

/// A rotated certificate at an address is a `cert-changed` event with both fingerprints,
/// expiries and the SANs added and removed; the same certificate again is none.
#[test]
fn a_new_certificate_is_an_event() {
    let pki = crate::testing::net::Pki::new("rotation CA");
    let mut store = Store::new(Duration::from_secs(600), "/".into());
    store.set_entries(&[entry("a.test", 1)]);
    store.set_dns("a.test:443", dns("127.0.0.1"));
    let hosts = store.hosts_for_jobs();
    let addr: IpAddr = "127.0.0.1".parse().unwrap();
    let mut handshake = |names: &[&str]| {
        let result = JobResult::Origin {
            host: 0,
            addr,
            handshake: Ok(h2_handshake(&pki, names)),
            own: None,
            coalesced: vec![],
            uncovered: vec![],
            requests: 1,
            signals: None,
        };
        store.apply(&hosts, result, Instant::now());
        store.publish(Instant::now(), EngineStatus::default(), true)
    };
    handshake(&["a.test", "b.test"]);
    let view = handshake(&["a.test", "c.test"]);
    let changes = host_changes(&view);
    let [HostChange::CertChanged {
        old,
        new,
        sans_added,
        sans_removed,
    }] = &changes[..]
    else {
        panic!("{changes:?}");
    };
    assert_ne!(old.sha256, new.sha256);
    assert_eq!(old.sha256.len(), 64);
    assert_eq!(
        (sans_added.clone(), sans_removed.clone()),
        (vec!["c.test".to_string()], vec!["b.test".to_string()])
    );
    let Event::Host(e) = view.events.last().unwrap() else {
        panic!()
    };
    assert_eq!(
        (e.host.as_str(), e.address.as_deref()),
        ("a.test:443", Some("127.0.0.1"))
    );
    assert_eq!(view.event_totals.get(EventKind::CertChanged), 1);
}

/// After a name moves, its pairs are judged at the new addresses only: what the origin's
/// connections got at the old address no longer counts in the verdict (clients no longer go
/// there), but the sparkline keeps showing it until it leaves the window.
#[test]
fn samples_at_a_forgotten_address_leave_the_verdict_not_the_history() {
    let mut store = Store::new(Duration::from_secs(600), "/".into());
    store.set_entries(&[entry("a.test", 1), entry("b.test", 2)]);
    store.set_dns("a.test:443", dns("127.0.0.1"));
    store.set_dns("b.test:443", dns("127.0.0.1"));
    let hosts = store.hosts_for_jobs();
    let now = Instant::now();
    let pki = crate::testing::net::Pki::new("move CA");
    for job in refused_at_127_0_0_1(Ok(h2_handshake(&pki, &["a.test", "b.test"]))) {
        store.apply(&hosts, job, now);
    }
    let view = store.publish(now, EngineStatus::default(), true);
    let (before, history) = ab_pair(&view);
    assert_eq!(before.addresses.len(), 1);
    assert_eq!(
        (before.addresses[0].address.as_str(), before.addresses[0].probes),
        ("127.0.0.1", 1)
    );
    assert!(history.iter().any(Option::is_some));

    store.set_dns("a.test:443", dns("127.0.0.2"));
    store.set_dns("b.test:443", dns("127.0.0.2"));
    let view = store.publish(now, EngineStatus::default(), true);
    let (after, history) = ab_pair(&view);
    // Nothing is known at the new address yet (no handshake there): no address is judged,
    // and the 421 the old one gave is no longer a verdict.
    assert!(
        after.addresses.iter().all(|a| a.address != "127.0.0.1"),
        "{after:?}"
    );
    assert!(before.verdict.is_problem(), "{before:?}");
    assert!(!after.verdict.is_problem(), "{after:?}");
    assert_eq!(
        history.iter().flatten().count(),
        1,
        "the old sample stays in the sparkline"
    );
    let moved = host_changes(&view);
    assert_eq!(moved.len(), 2, "{moved:?}");
}

/// An origin that stops answering: its pair is judged `error` at once (the address is down
/// now, whatever the window's older samples said), which is a verdict event; the samples stay
/// in the sparkline; the first good handshake after it judges the pair from the window again.
/// One piece: the outage is one story, before, during and after, on one store.
#[test]
fn an_origin_down_now_is_an_error_until_it_is_back() {
    let mut store = Store::new(Duration::from_secs(600), "/".into());
    store.set_entries(&[entry("a.test", 1), entry("b.test", 2)]);
    store.set_dns("a.test:443", dns("127.0.0.1"));
    store.set_dns("b.test:443", dns("127.0.0.1"));
    let hosts = store.hosts_for_jobs();
    let addr: IpAddr = "127.0.0.1".parse().unwrap();
    let pki = crate::testing::net::Pki::new("outage CA");
    let up = |store: &mut Store, at: Instant| {
        let origin = JobResult::Origin {
            host: 0,
            addr,
            handshake: Ok(h2_handshake(&pki, &["a.test", "b.test"])),
            own: None,
            coalesced: vec![(1, Coalesced::new(answer(200), None))],
            uncovered: vec![],
            requests: 1,
            signals: None,
        };
        let direct = JobResult::Direct {
            host: 1,
            addr,
            protocol: DirectProtocol::Negotiate,
            outcome: answer(200),
        };
        store.apply(&hosts, origin, at);
        store.apply(&hosts, direct, at);
    };
    let t0 = Instant::now();
    up(&mut store, t0);
    up(&mut store, t0 + Duration::from_secs(10));
    let view = store.publish(t0 + Duration::from_secs(10), EngineStatus::default(), true);
    assert_eq!(ab_pair(&view).0.verdict, Verdict::Ok);

    let refused = JobResult::Origin {
        host: 0,
        addr,
        handshake: Err(ProbeError::Connect("connection refused".into())),
        own: None,
        coalesced: vec![],
        uncovered: vec![],
        requests: 0,
        signals: None,
    };
    store.apply(&hosts, refused, t0 + Duration::from_secs(20));
    let view = store.publish(t0 + Duration::from_secs(20), EngineStatus::default(), true);
    let (down, history) = ab_pair(&view);
    assert_eq!(down.verdict, Verdict::Error, "{down:?}");
    assert_eq!(down.addresses[0].verdict, Verdict::Error);
    assert_eq!(
        down.error.as_deref(),
        Some("127.0.0.1: connect: connection refused")
    );
    assert!(
        down.explanation.contains("connection refused"),
        "{}",
        down.explanation
    );
    assert_eq!(down.addresses[0].probes, 2, "the window's samples are kept");
    assert_eq!(history.iter().flatten().count(), 2, "and stay in the sparkline");
    assert!(
        view.events.iter().any(|e| matches!(
            e,
            Event::Verdict(v) if v.from == Some(Verdict::Ok) && v.to == Verdict::Error
        )),
        "{:?}",
        view.events
    );

    up(&mut store, t0 + Duration::from_secs(30));
    let view = store.publish(t0 + Duration::from_secs(30), EngineStatus::default(), true);
    let (back, _) = ab_pair(&view);
    assert_eq!(back.verdict, Verdict::Ok, "{back:?}");
    assert_eq!(back.addresses[0].probes, 3);
}
