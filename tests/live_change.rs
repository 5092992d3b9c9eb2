//! The live engine keeps telling the truth while things change under it (issue 19), against
//! real servers on loopback: a DNS server that goes silent and comes back (stale, then
//! dns-error, then recovery, each an event), a name whose addresses move (pairs judged at the
//! new address), and a certificate rotated on a running TLS server (cert-changed, and a pair
//! the new certificate no longer covers becomes not-coalescable). Every wait is bounded; no
//! assertion is about time.

// Test code: a failed expectation is a failed test, said where it happened.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use coalscope::engine::live::{self, LiveOptions};
use coalscope::engine::probe::dns::{Dns, DnsConfig};
use coalscope::engine::prober::{ProbeOptions, Prober};
use coalscope::engine::snapshot::{
    Event, EventKind, FindingKind, HostChange, HostReport, LiveView, NotCoalescable, PairReport, Verdict,
};
use coalscope::testing::net::{
    a_record_ttl, dns_server_with, tls_server, DnsMode, Pki, ServerOptions, TestDns, TestServer, Validity,
};
use coalscope::watchlist;
use tokio::sync::watch;

use common::live::wait_for;

fn host<'a>(view: &'a LiveView, name: &str) -> &'a HostReport {
    view.report.hosts.iter().find(|h| h.host == name).unwrap()
}

fn pair<'a>(view: &'a LiveView, origin: &str, target: &str) -> Option<&'a PairReport> {
    view.report
        .pairs
        .iter()
        .find(|p| p.origin.starts_with(origin) && p.target.starts_with(target))
        .map(|p| &**p)
}

/// The pair is listed with a verdict from probes (not pending).
fn judged(view: &LiveView, origin: &str, target: &str) -> bool {
    pair(view, origin, target).is_some_and(|p| p.verdict != Verdict::Pending)
}

fn host_events<'a>(view: &'a LiveView, host: &'a str) -> impl Iterator<Item = &'a HostChange> + 'a {
    view.events.iter().filter_map(move |e| match e {
        Event::Host(h) if h.host.starts_with(host) => Some(&h.change),
        _ => None,
    })
}

fn has_event(view: &LiveView, host: &str, kind: EventKind) -> bool {
    host_events(view, host).any(|c| c.kind() == kind)
}

/// TLS servers on `ips`, all on one port (the names' pairs share it), serving `names`.
async fn servers(pki: &Pki, ips: &[&str], names: &[&str]) -> Vec<TestServer> {
    'again: loop {
        let (chain, key) = pki.leaf(names, Validity::Current);
        let first = tls_server(
            SocketAddr::new(ips[0].parse().unwrap(), 0),
            chain.clone(),
            key.clone_key(),
            ServerOptions::default(),
        )
        .await;
        let port = first.addr.port();
        let mut all = vec![first];
        for ip in &ips[1..] {
            let bind = SocketAddr::new(ip.parse().unwrap(), port);
            // The port may be taken at another loopback address: start again elsewhere.
            if std::net::TcpListener::bind(bind).is_err() {
                continue 'again;
            }
            all.push(tls_server(bind, chain.clone(), key.clone_key(), ServerOptions::default()).await);
        }
        return all;
    }
}

/// The engine on `names` at `port`, resolving through `dns`, with `--dns-grace` `grace`.
fn engine(
    pki: &Pki,
    dns: &TestDns,
    names: &[&str],
    port: u16,
    grace: Duration,
) -> (live::EngineHandle, watch::Receiver<Arc<LiveView>>) {
    let timeout = Duration::from_millis(500);
    let resolver = Dns::new(DnsConfig {
        nameservers: vec![dns.addr],
        overrides: vec![],
        timeout,
    })
    .unwrap();
    let prober = Arc::new(Prober::new(
        resolver,
        pki.settings(Duration::from_secs(2)),
        ProbeOptions {
            max_rps: 0,
            ..ProbeOptions::default()
        },
    ));
    let text: String = names.iter().map(|n| format!("{n}:{port}\n")).collect();
    let list = watchlist::parse("change.watch", text.as_bytes()).unwrap();
    let options = LiveOptions {
        interval: Duration::from_millis(500),
        window: Duration::from_secs(120),
        dns_grace: grace,
        jitter: 0.5,
        concurrency: 8,
        source: "change.watch".into(),
        publish_every: live::PUBLISH_EVERY,
        lab_phase: None,
        pending_by_index: false,
        h3: true,
    };
    let engine = live::spawn(prober, &list, options);
    let views = engine.views.clone();
    (engine, views)
}

/// Stops the engine even when the test fails half-way.
struct Running(Option<live::EngineHandle>);

impl Running {
    async fn stop(mut self) {
        if let Some(engine) = self.0.take() {
            assert!(engine.stop(Duration::from_secs(10)).await, "the engine stops");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(engine) = self.0.take() {
            let _ = engine.commands.try_send(live::EngineCommand::Quit);
        }
    }
}

/// What a test starts from: servers for alpha.test and beta.test on `ips` (one port), DNS
/// answering with the first of them (TTL `ttl`), the engine with `--dns-grace` `grace`,
/// and the first view in which alpha.test → beta.test is judged.
struct Started {
    pki: Pki,
    servers: Vec<TestServer>,
    dns: TestDns,
    running: Running,
    rx: watch::Receiver<Arc<LiveView>>,
    view: Arc<LiveView>,
}

async fn start(ips: &[&str], ttl: u32, grace: Duration) -> Started {
    let pki = Pki::new("live change CA");
    let servers = servers(&pki, ips, &["alpha.test", "beta.test"]).await;
    let port = servers[0].addr.port();
    let dns = dns_server_with(vec![
        a_record_ttl("alpha.test.", ips[0], ttl),
        a_record_ttl("beta.test.", ips[0], ttl),
    ])
    .await;
    let (engine, mut rx) = engine(&pki, &dns, &["alpha.test", "beta.test"], port, grace);
    let running = Running(Some(engine));
    let view = wait_for(&mut rx, "alpha.test → beta.test judged", |v| {
        judged(v, "alpha.test", "beta.test")
    })
    .await;
    Started {
        pki,
        servers,
        dns,
        running,
        rx,
        view,
    }
}

/// (a) The DNS server goes silent: the last good answer stays in use, marked stale (JSON,
/// finding, event) until TTL + grace; then dns-error (event); the server answers again: the
/// name recovers without a restart (event) and its pair is judged again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_outage_is_stale_then_an_error_then_recovers() {
    let Started {
        pki: _pki,
        servers: _servers,
        dns,
        running,
        mut rx,
        view: _view,
    } = start(&["127.0.0.61"], 1, Duration::from_secs(10)).await;

    dns.set_mode(DnsMode::Silent);
    let view = wait_for(&mut rx, "alpha.test stale", |v| {
        host(v, "alpha.test").dns.stale.is_some()
    })
    .await;
    let a = host(&view, "alpha.test");
    assert_eq!(a.addresses, vec!["127.0.0.61"], "the last good answer is kept");
    assert_eq!(a.dns.error, None);
    let stale = a.dns.stale.as_ref().unwrap();
    assert!(stale.error.contains("timed out"), "{stale:?}");
    assert!(stale.since <= stale.until, "{stale:?}");
    let json = serde_json::to_value(a).unwrap();
    assert_eq!(json["dns"]["stale"]["error"], stale.error.as_str());
    assert_eq!(json["dns"]["stale"]["until"], stale.until.to_string());
    let finding = a
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::DnsStale)
        .unwrap();
    assert!(
        finding.message.contains(&stale.until.to_string()),
        "{}",
        finding.message
    );
    assert!(
        has_event(&view, "alpha.test", EventKind::DnsStale),
        "{:?}",
        view.events
    );
    assert!(view.event_totals.get(EventKind::DnsStale) >= 1);
    // Probes go on against the kept address while it is stale.
    let shakes = |v: &LiveView| {
        host(v, "alpha.test")
            .endpoints
            .first()
            .map_or(0, |e| e.handshakes)
    };
    let stale_shakes = shakes(&view);
    let view = wait_for(&mut rx, "alpha.test stale and probed", |v| {
        host(v, "alpha.test").dns.stale.is_none() || shakes(v) > stale_shakes
    })
    .await;
    assert!(
        host(&view, "alpha.test").dns.stale.is_some(),
        "a handshake at the kept address while stale: {:?}",
        host(&view, "alpha.test")
    );

    let view = wait_for(&mut rx, "alpha.test dns-error", |v| {
        host(v, "alpha.test").dns.error.is_some()
    })
    .await;
    let a = host(&view, "alpha.test");
    assert!(a.dns.stale.is_none());
    assert!(a.addresses.is_empty());
    assert!(a.findings.iter().any(|f| f.kind == FindingKind::DnsError));
    assert!(
        has_event(&view, "alpha.test", EventKind::DnsFailed),
        "{:?}",
        view.events
    );
    assert!(pair(&view, "alpha.test", "beta.test").is_none_or(|p| p.verdict == Verdict::NotCoalescable));

    dns.set_mode(DnsMode::Answer);
    let view = wait_for(&mut rx, "alpha.test recovered and judged", |v| {
        has_event(v, "alpha.test", EventKind::DnsRecovered) && judged(v, "alpha.test", "beta.test")
    })
    .await;
    let a = host(&view, "alpha.test");
    assert_eq!((a.dns.error.as_ref(), a.dns.stale.as_ref()), (None, None));
    assert_eq!(a.addresses, vec!["127.0.0.61"]);
    assert_ne!(
        pair(&view, "alpha.test", "beta.test").unwrap().verdict,
        Verdict::NotCoalescable
    );
    // The order of the host's events: stale, failed, recovered.
    let kinds: Vec<EventKind> = host_events(&view, "alpha.test").map(HostChange::kind).collect();
    let first = |k| kinds.iter().position(|x| *x == k).unwrap();
    assert!(
        first(EventKind::DnsStale) < first(EventKind::DnsFailed),
        "{kinds:?}"
    );
    assert!(
        first(EventKind::DnsFailed) < first(EventKind::DnsRecovered),
        "{kinds:?}"
    );
    running.stop().await;
}

/// (b) Both names move to another address: `addresses-changed` names what was added and
/// removed, and the pair is judged at the new address only (the old address's samples no
/// longer count: clients no longer go there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_addresses_are_an_event_and_pairs_are_judged_at_the_new_one() {
    let Started {
        pki: _pki,
        servers,
        dns,
        running,
        mut rx,
        view,
    } = start(&["127.0.0.63", "127.0.0.64"], 1, Duration::from_secs(60)).await;
    let at: Vec<&str> = pair(&view, "alpha.test", "beta.test")
        .unwrap()
        .addresses
        .iter()
        .map(|a| a.address.as_str())
        .collect();
    assert_eq!(at, vec!["127.0.0.63"]);

    dns.set_records(vec![
        a_record_ttl("alpha.test.", "127.0.0.64", 1),
        a_record_ttl("beta.test.", "127.0.0.64", 1),
    ]);
    let view = wait_for(&mut rx, "the pair judged at the new address", |v| {
        pair(v, "alpha.test", "beta.test").is_some_and(|p| {
            p.verdict != Verdict::Pending
                && p.addresses.iter().map(|a| a.address.as_str()).eq(["127.0.0.64"])
                && p.addresses[0].probes > 0
        }) && has_event(v, "beta.test", EventKind::AddressesChanged)
    })
    .await;
    let moved = host_events(&view, "alpha.test")
        .find(|c| c.kind() == EventKind::AddressesChanged)
        .unwrap();
    assert_eq!(
        moved,
        &HostChange::AddressesChanged {
            added: vec!["127.0.0.64".into()],
            removed: vec!["127.0.0.63".into()],
        }
    );
    let a = host(&view, "alpha.test");
    assert_eq!(a.addresses, vec!["127.0.0.64"]);
    let endpoints: Vec<&str> = a.endpoints.iter().map(|e| e.address.as_str()).collect();
    assert_eq!(endpoints, vec!["127.0.0.64"], "the old address is forgotten");
    // The new address's server saw the engine's connections.
    assert!(servers[1].accepted.load(std::sync::atomic::Ordering::SeqCst) > 0);
    running.stop().await;
}

/// (c) The certificate is rotated on the running server (new SANs, new expiry):
/// `cert-changed` with both fingerprints, and the pair whose target the new certificate no
/// longer covers becomes not-coalescable (cert-not-covering) from the next handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_an_event_and_its_coverage_is_used() {
    let Started {
        pki,
        servers,
        dns: _dns,
        running,
        mut rx,
        view,
    } = start(&["127.0.0.65"], 60, Duration::from_secs(60)).await;
    assert_ne!(
        pair(&view, "alpha.test", "beta.test").unwrap().verdict,
        Verdict::NotCoalescable
    );
    let old = host(&view, "alpha.test").endpoints[0].cert.clone().unwrap();

    // Only a.test now (b.test gets its own), valid for 30 days instead of 90.
    let now = time::OffsetDateTime::now_utc();
    let until = now + time::Duration::days(30);
    let validity = Validity::Between(now - time::Duration::days(1), until);
    let (chain, key) = pki.leaf(&["alpha.test", "gamma.test"], validity);
    servers[0].cert.set(chain, key);

    let view = wait_for(&mut rx, "cert-changed and a → b not coalescable", |v| {
        has_event(v, "alpha.test", EventKind::CertChanged)
            && pair(v, "alpha.test", "beta.test").is_some_and(|p| p.verdict == Verdict::NotCoalescable)
    })
    .await;
    let Some(HostChange::CertChanged {
        old: was,
        new,
        sans_added,
        sans_removed,
    }) = host_events(&view, "alpha.test").find(|c| c.kind() == EventKind::CertChanged)
    else {
        unreachable!()
    };
    assert_eq!(was.sha256, old.sha256);
    assert_ne!(new.sha256, old.sha256);
    assert_eq!(new.not_after.unix(), until.unix_timestamp());
    assert_ne!(was.not_after, new.not_after);
    assert_eq!(sans_added, &vec!["gamma.test".to_string()]);
    assert_eq!(sans_removed, &vec!["beta.test".to_string()]);
    let row = serde_json::to_value(
        view.events
            .iter()
            .rev()
            .find(|e| e.kind() == EventKind::CertChanged)
            .unwrap()
            .row(),
    )
    .unwrap();
    assert_eq!(row["kind"], "cert-changed");
    assert_eq!(row["address"], "127.0.0.65");
    let p = pair(&view, "alpha.test", "beta.test").unwrap();
    assert_eq!(p.reason, Some(NotCoalescable::CertNotCovering), "{p:?}");
    let a = host(&view, "alpha.test");
    assert_eq!(a.endpoints[0].cert.as_ref().unwrap().sha256, new.sha256);
    running.stop().await;
}
