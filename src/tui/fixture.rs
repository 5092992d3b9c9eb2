//! Deterministic `LiveView`s built in code, for the dashboard's snapshot tests and the render
//! benchmark: a small lab-like view with every verdict, and synthetic views of any size.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::engine::snapshot::{
    CertReport, Coalesce, DirectReport, DnsReport, EndpointReport, EngineStatus, Finding, GroupReport,
    History, HostReport, LiveView, PairAddressReport, PairReport, Snapshot, Summary, VerdictEvent, SCHEMA,
};
use crate::engine::snapshot::{FindingKind, Severity, Timestamp, Verdict};

const AT: &str = "2026-11-28T12:00:00Z";

/// A contract word as its type (fixture input is spelled as in the JSON).
fn word<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_json::from_value(serde_json::Value::String(text.into())).expect("a contract word")
}

fn is_problem(verdict: &str) -> bool {
    word::<Verdict>(verdict).is_problem()
}

fn statuses(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// A host with one address, its certificate SANs, and an h2 (or `alpn`) endpoint.
pub fn host(name: &str, port: u16, line: usize, address: &str, sans: &[&str], alpn: &str) -> HostReport {
    let covering = sans
        .iter()
        .find(|s| {
            **s == name
                || s.strip_prefix("*.")
                    .is_some_and(|base| name.split_once('.').is_some_and(|(_, rest)| rest == base))
        })
        .map(|s| s.to_string());
    HostReport {
        host: name.into(),
        port,
        path: "/".into(),
        line,
        addresses: vec![address.into()],
        dns: DnsReport {
            cnames: vec![],
            ttl_s: Some(30),
            error: None,
            overridden: false,
            elapsed_ms: 1.5,
        },
        endpoints: vec![EndpointReport {
            address: address.into(),
            alpn: Some(alpn.into()),
            tls_version: Some("TLSv1.3".into()),
            cert: Some(CertReport {
                sans: sans.iter().map(|s| s.to_string()).collect(),
                ip_sans: vec![],
                subject: format!("O=coalscope lab, CN={}", sans.first().copied().unwrap_or(name)),
                issuer: "O=coalscope lab, CN=coalscope lab CA".into(),
                not_before: Timestamp::parse("2026-11-27T12:00:00Z"),
                not_after: Timestamp::parse("2027-02-26T12:00:00Z"),
                trusted: true,
                covers_host: covering.is_some(),
                covering_san: covering,
                error: None,
                chain_len: 1,
                sha256: "00".repeat(32),
            }),
            direct: DirectReport {
                status: Some(200),
                error: None,
                statuses: statuses(&[("200", 6)]),
                errors: 0,
                version: Some(if alpn == "h2" { "HTTP/2" } else { "HTTP/1.1" }.into()),
                http1_statuses: BTreeMap::new(),
            },
            error: None,
            handshakes: 6,
            handshake_errors: 0,
            connect_ms: Some(0.4),
            tls_ms: Some(2.1),
        }],
        findings: vec![],
    }
}

/// A pair between two hosts (keys "host:port") at one shared address.
pub fn pair(origin: &str, target: &str, verdict: &str, rate: f64, probes: u32, address: &str) -> PairReport {
    let coalescable = verdict != "not-coalescable";
    let hits = (rate * probes as f64).round() as u32;
    let (coalesced, misrouted) = match verdict {
        "misrouted" => (statuses(&[("404", probes)]), probes),
        _ if hits > 0 => (statuses(&[("421", hits), ("200", probes - hits)]), 0),
        _ if probes > 0 => (statuses(&[("200", probes)]), 0),
        _ => (BTreeMap::new(), 0),
    };
    let coalesced: BTreeMap<String, u32> = coalesced.into_iter().filter(|(_, v)| *v > 0).collect();
    let direct = if verdict == "direct-broken" {
        statuses(&[("502", probes.max(1))])
    } else {
        statuses(&[("200", probes.max(1) * 2)])
    };
    let target_host = target.rsplit_once(':').map_or(target, |(h, _)| h);
    let origin_host = origin.rsplit_once(':').map_or(origin, |(h, _)| h);
    let explanation = match verdict {
        "misdirected" => format!("every request for {target_host} on a connection opened for {origin_host} at {address} got 421 Misdirected Request; directly {target_host} answers 200"),
        "intermittent" => format!("{:.0}% of the requests for {target_host} on connections opened for {origin_host} at {address} got 421", rate * 100.0),
        "misrouted" => format!("on a connection opened for {origin_host}, {target_host} answers 404; directly it answers 200"),
        "direct-broken" => format!("directly {target_host} already answers 502: coalescing is not the cause"),
        "ok" => format!("{target_host} answers the same on {origin_host}'s connection as directly"),
        _ => "no client would put these names on one connection".into(),
    };
    let fix = is_problem(verdict).then(|| {
        format!("serve {target_host} from the server block that answers {origin_host}, or give {target_host} a certificate without {origin_host}")
    });
    PairReport {
        origin: origin.into(),
        target: target.into(),
        verdict: word(verdict),
        reason: (!coalescable).then(|| word("no-h2")),
        shared_addresses: vec![address.into()],
        cert_covers: true,
        coalesce: Coalesce {
            chrome: coalescable,
            firefox: coalescable,
        },
        probes,
        rate_421: rate,
        addresses: vec![PairAddressReport {
            address: address.into(),
            verdict: word(verdict),
            probes,
            statuses: coalesced,
            direct_statuses: direct,
            errors: 0,
            misrouted,
            clients: if coalescable {
                vec![word("chrome"), word("firefox")]
            } else {
                vec![]
            },
            dynamic: false,
        }],
        explanation: explanation.into(),
        fix: fix.map(Into::into),
        error: None,
    }
}

/// Histories of 421 rates: `buckets` values per pair, deterministic from the pair's rate.
fn history(rate: f64, seed: usize, buckets: usize) -> Vec<Option<f32>> {
    (0..buckets)
        .map(|b| {
            if (b + seed) % 11 == 3 {
                None
            } else if rate > 0.0 && rate < 1.0 {
                Some((((b * 7 + seed * 3) % 10) as f32 / 9.0).min(1.0))
            } else {
                Some(rate as f32)
            }
        })
        .collect()
}

fn summarise(hosts: Vec<HostReport>, pairs: Vec<PairReport>, groups: Vec<GroupReport>) -> Snapshot {
    let mut verdicts = BTreeMap::new();
    for p in &pairs {
        *verdicts.entry(p.verdict).or_insert(0) += 1;
    }
    let host_errors = hosts
        .iter()
        .flat_map(|h| &h.findings)
        .filter(|f| f.severity == Severity::Error)
        .count() as u32;
    Snapshot {
        schema: SCHEMA.into(),
        generated_at: word(AT),
        summary: Summary {
            hosts: hosts.len() as u32,
            pairs: pairs.len() as u32,
            problems: pairs.iter().filter(|p| p.verdict.is_problem()).count() as u32,
            cert_only_pairs: 0,
            connections: 120,
            requests: 480,
            rounds: 7,
            duration_s: 21.0,
            verdicts,
            host_errors,
            coverage: 1.0,
        },
        hosts: hosts.into_iter().map(Arc::new).collect(),
        pairs: pairs.into_iter().map(Arc::new).collect(),
        groups,
    }
}

fn status(source: &str, hosts: usize) -> EngineStatus {
    EngineStatus {
        max_rps: 50,
        full_rps: 12.0,
        source: source.into(),
        hosts,
        cycle_done: 12,
        cycle_total: 40,
        cycles: 7,
        last_reload: Some(word(AT)),
        reload_error: None,
        paused: false,
        interval_s: 3.0,
        window_s: 120.0,
        lab_phase: None,
    }
}

/// A lab-like view: five groups with every verdict, two hosts that coalesce with nothing
/// (one with hostile strings from the network), events.
pub fn lab_view() -> LiveView {
    let z = "lab.test";
    let k = |n: &str| format!("{n}.{z}:8443");
    let mut hosts = Vec::new();
    let mut line = 1;
    let mut add = |name: &str, addr: &str, sans: &[&str], alpn: &str| {
        line += 1;
        hosts.push(host(&format!("{name}.{z}"), 8443, line, addr, sans, alpn));
    };
    add("www.good", "127.0.0.10", &["*.good.lab.test"], "h2");
    add("api.good", "127.0.0.10", &["*.good.lab.test"], "h2");
    add("live.good", "127.0.0.10", &["*.good.lab.test"], "h2");
    add(
        "shop.nginx",
        "127.0.0.11",
        &["shop.nginx.lab.test", "admin.nginx.lab.test"],
        "h2",
    );
    add(
        "admin.nginx",
        "127.0.0.11",
        &["shop.nginx.lab.test", "admin.nginx.lab.test"],
        "h2",
    );
    add("grpc.envoy", "127.0.0.14", &["*.envoy.lab.test"], "h2");
    add("web.envoy", "127.0.0.14", &["*.envoy.lab.test"], "h2");
    add("pay.lb", "127.0.0.16", &["*.lb.lab.test"], "h2");
    add("cart.lb", "127.0.0.16", &["*.lb.lab.test"], "h2");
    add("status.broken", "127.0.0.19", &["*.broken.lab.test"], "h2");
    add("app.broken", "127.0.0.19", &["*.broken.lab.test"], "h2");
    add("legacy.h1", "127.0.0.17", &["*.h1.lab.test"], "http/1.1");
    add("old.h1", "127.0.0.17", &["*.h1.lab.test"], "http/1.1");
    // Hostile strings from the network must reach the screen defanged.
    {
        let legacy = &mut hosts[11];
        legacy.dns.cnames = vec!["edge\u{202e}moc.evil.test".into()];
        let ep = &mut legacy.endpoints[0];
        ep.direct.error = Some("server said \u{1b}[2J\u{1b}[31mHACKED\u{7}".into());
        ep.direct.errors = 1;
        legacy.findings.push(Finding {
            kind: FindingKind::NoH2,
            severity: Severity::Warning,
            message: "the server offers only http/1.1: no client coalesces on it".into(),
        });
    }
    {
        let broken = &mut hosts[9];
        broken.findings.push(Finding {
            kind: FindingKind::HttpError,
            severity: Severity::Error,
            message: "direct requests answer 502 Bad Gateway".into(),
        });
        broken.endpoints[0].direct.statuses = statuses(&[("502", 6)]);
        broken.endpoints[0].direct.status = Some(502);
    }
    let pairs = vec![
        pair(
            &k("shop.nginx"),
            &k("admin.nginx"),
            "misdirected",
            1.0,
            6,
            "127.0.0.11",
        ),
        pair(
            &k("grpc.envoy"),
            &k("web.envoy"),
            "misrouted",
            0.0,
            6,
            "127.0.0.14",
        ),
        pair(
            &k("web.envoy"),
            &k("grpc.envoy"),
            "misrouted",
            0.0,
            6,
            "127.0.0.14",
        ),
        pair(&k("cart.lb"), &k("pay.lb"), "intermittent", 0.5, 8, "127.0.0.16"),
        pair(
            &k("status.broken"),
            &k("app.broken"),
            "direct-broken",
            0.0,
            6,
            "127.0.0.19",
        ),
        pair(&k("www.good"), &k("api.good"), "ok", 0.0, 6, "127.0.0.10"),
        pair(&k("www.good"), &k("live.good"), "ok", 0.0, 6, "127.0.0.10"),
        pair(&k("api.good"), &k("www.good"), "ok", 0.0, 6, "127.0.0.10"),
        pair(&k("api.good"), &k("live.good"), "ok", 0.0, 6, "127.0.0.10"),
        pair(&k("live.good"), &k("www.good"), "ok", 0.0, 6, "127.0.0.10"),
        pair(&k("live.good"), &k("api.good"), "ok", 0.0, 6, "127.0.0.10"),
        pair(&k("admin.nginx"), &k("shop.nginx"), "ok", 0.0, 6, "127.0.0.11"),
        pair(&k("pay.lb"), &k("cart.lb"), "ok", 0.0, 8, "127.0.0.16"),
        pair(&k("app.broken"), &k("status.broken"), "ok", 0.0, 6, "127.0.0.19"),
        pair(
            &k("legacy.h1"),
            &k("old.h1"),
            "not-coalescable",
            0.0,
            0,
            "127.0.0.17",
        ),
        pair(
            &k("old.h1"),
            &k("legacy.h1"),
            "not-coalescable",
            0.0,
            0,
            "127.0.0.17",
        ),
    ];
    let group = |id: u32, names: &[&str]| GroupReport {
        id,
        members: names.iter().map(|n| k(n)).collect(),
        problems: 0,
    };
    let mut groups = vec![
        group(1, &["www.good", "api.good", "live.good"]),
        group(2, &["shop.nginx", "admin.nginx"]),
        group(3, &["grpc.envoy", "web.envoy"]),
        group(4, &["pay.lb", "cart.lb"]),
        group(5, &["status.broken", "app.broken"]),
    ];
    for g in &mut groups {
        g.problems = pairs
            .iter()
            .filter(|p| g.members.iter().any(|m| **m == *p.origin) && p.verdict.is_problem())
            .count() as u32;
    }
    let histories = pairs
        .iter()
        .enumerate()
        .map(|(i, p)| History::from(history(p.rate_421, i, 40)))
        .collect();
    let events = vec![
        event(
            "2026-11-28T11:58:10Z",
            &k("shop.nginx"),
            &k("admin.nginx"),
            None,
            "misdirected",
        ),
        event(
            "2026-11-28T11:58:11Z",
            &k("grpc.envoy"),
            &k("web.envoy"),
            None,
            "misrouted",
        ),
        event(
            "2026-11-28T11:59:02Z",
            &k("cart.lb"),
            &k("pay.lb"),
            Some("ok"),
            "intermittent",
        ),
        event(
            "2026-11-28T11:59:40Z",
            &k("status.broken"),
            &k("app.broken"),
            Some("ok"),
            "direct-broken",
        ),
    ];
    let report = summarise(hosts, pairs, groups);
    let mut status = status("lab.watch", report.hosts.len());
    status.lab_phase = Some("phase 2/4: cart.lb answers 421 half of the time".into());
    LiveView {
        report,
        histories,
        events: Arc::new(events),
        status,
        ..LiveView::default()
    }
}

fn event(at: &str, origin: &str, target: &str, from: Option<&str>, to: &str) -> VerdictEvent {
    VerdictEvent {
        at: word(at),
        origin: origin.into(),
        target: target.into(),
        from: from.map(word),
        to: word(to),
        message: format!("now {to}"),
    }
}

/// `names` hosts in groups of `group_size` sharing a wildcard certificate and an address;
/// every ordered pair inside a group is listed; a few are problems.
pub fn synthetic_view(names: usize, group_size: usize) -> LiveView {
    let group_size = group_size.max(2);
    let mut hosts = Vec::with_capacity(names);
    let mut pairs = Vec::new();
    let mut groups = Vec::new();
    let mut histories = Vec::new();
    let groups_n = names.div_ceil(group_size);
    for g in 0..groups_n {
        let base = format!("g{g}.example.test");
        let wildcard = format!("*.{base}");
        let address = format!("10.{}.{}.1", g / 250, g % 250);
        let first = hosts.len();
        for i in 0..group_size.min(names - first) {
            hosts.push(host(
                &format!("h{i}.{base}"),
                443,
                first + i + 1,
                &address,
                &[&wildcard],
                "h2",
            ));
        }
        let members: Vec<String> = hosts[first..]
            .iter()
            .map(|h| format!("{}:{}", h.host, h.port))
            .collect();
        let mut problems = 0;
        for (a, origin) in members.iter().enumerate() {
            for (b, target) in members.iter().enumerate() {
                if a == b {
                    continue;
                }
                let (verdict, rate) = match (g % 7, a, b) {
                    (0, 0, 1) => ("misdirected", 1.0),
                    (3, 1, 0) => ("intermittent", 0.4),
                    (5, 2, _) => ("misrouted", 0.0),
                    _ => ("ok", 0.0),
                };
                if is_problem(verdict) {
                    problems += 1;
                }
                histories.push(history(rate, pairs.len(), 30));
                pairs.push(pair(origin, target, verdict, rate, 4, &address));
            }
        }
        if members.len() > 1 {
            groups.push(GroupReport {
                id: groups.len() as u32 + 1,
                members,
                problems,
            });
        }
    }
    // Problems first, as the engine lists them.
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by_key(|&i| !pairs[i].verdict.is_problem());
    let pairs: Vec<PairReport> = order.iter().map(|&i| pairs[i].clone()).collect();
    let histories: Vec<History> = order
        .iter()
        .map(|&i| History::from(histories[i].clone()))
        .collect();
    let report = summarise(hosts, pairs, groups);
    let status = status("synthetic.watch", report.hosts.len());
    LiveView {
        report,
        histories,
        events: (0..50)
            .map(|i| {
                event(
                    &format!("2026-11-28T11:{:02}:00Z", i % 60),
                    &format!("h0.g{i}.example.test:443"),
                    &format!("h1.g{i}.example.test:443"),
                    Some("ok"),
                    "misdirected",
                )
            })
            .collect::<Vec<_>>()
            .into(),
        status,
        ..LiveView::default()
    }
}
