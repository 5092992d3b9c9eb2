//! The continuous engine against the embedded lab: views are published while probing goes
//! on, a misdirected pair shows up, a reload changes the list while unchanged names keep
//! their history, a broken reload keeps the last good list, and Quit stops it.

// Test code: a failed expectation is a failed test, said where it happened.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use coalscope::engine::live::{self, EngineCommand, LiveOptions};
use coalscope::engine::prober::ProbeOptions;
use coalscope::engine::snapshot::{LiveView, Verdict};
use coalscope::lab::{Lab, LabOptions};
use coalscope::testing;
use coalscope::watchlist::{self, watcher::ReloadError};
use tokio::sync::watch;

use common::live::wait_for;

/// Quit ends the engine task: the handle sees it return, and the view channel closes.
async fn assert_stops_on_quit(engine: live::EngineHandle, mut views: watch::Receiver<Arc<LiveView>>) {
    let alive = engine.alive();
    assert!(
        engine.stop(Duration::from_secs(10)).await,
        "the engine returns on Quit"
    );
    assert!(!alive.load(std::sync::atomic::Ordering::Relaxed));
    // Views published before Quit may still be unseen; then the channel reports it closed.
    tokio::time::timeout(Duration::from_secs(5), async {
        while views.changed().await.is_ok() {}
    })
    .await
    .expect("the view channel closes after Quit");
}

fn verdict(view: &LiveView, origin: &str, target: &str) -> Option<Verdict> {
    view.report
        .pairs
        .iter()
        .find(|p| p.origin.starts_with(origin) && p.target.starts_with(target))
        .map(|p| p.verdict)
}

/// A prober for the lab: its DNS and CA, a 1 s timeout, no request budget.
fn lab_prober(lab: &Lab) -> Arc<coalscope::engine::prober::Prober> {
    Arc::new(testing::lab::prober(
        lab,
        Duration::from_secs(1),
        ProbeOptions {
            max_rps: 0,
            ..ProbeOptions::default()
        },
    ))
}

/// Fast cycles (every 500 ms) over a minute's window, HTTP/3 probed where advertised.
fn lab_options(source: &str) -> LiveOptions {
    LiveOptions {
        interval: Duration::from_millis(500),
        window: Duration::from_secs(60),
        jitter: 0.5,
        concurrency: 8,
        source: source.into(),
        publish_every: live::PUBLISH_EVERY,
        lab_phase: None,
        pending_by_index: false,
        h3: true,
        dns_grace: live::store::DEFAULT_DNS_GRACE,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_engine_probes_reloads_and_quits() {
    let lab = Lab::start(LabOptions::default()).await.unwrap();
    let text = std::fs::read_to_string(&lab.watchfile).unwrap();
    let list = watchlist::parse("lab.watch", text.as_bytes()).unwrap();
    let options = LiveOptions {
        interval: Duration::from_millis(700),
        concurrency: 32,
        ..lab_options("lab.watch")
    };
    let engine = live::spawn(lab_prober(&lab), &list, options);
    let (tx, mut view_rx) = (engine.commands.clone(), engine.views.clone());

    let view = wait_for(&mut view_rx, "shop → admin misdirected", |v| {
        verdict(v, "shop.nginx", "admin.nginx") == Some(Verdict::Misdirected)
    })
    .await;
    assert_eq!(view.status.hosts, list.entries.len());
    assert_eq!(view.histories.len(), view.report.pairs.len());

    // Keep the nginx pair, drop everything else, add the caddy pair.
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(".nginx.") || l.contains(".caddy."))
        .collect();
    let reduced = watchlist::parse("lab.watch", kept.join("\n").as_bytes()).unwrap();
    tx.send(EngineCommand::Reload(Ok(reduced))).await.unwrap();
    let view = wait_for(&mut view_rx, "the reduced list with caddy judged", |v| {
        v.status.hosts == 4 && verdict(v, "api.caddy", "www.caddy") == Some(Verdict::Misdirected)
    })
    .await;
    assert!(view
        .report
        .pairs
        .iter()
        .all(|p| p.origin.contains(".nginx.") || p.origin.contains(".caddy.")));
    // The nginx pair kept its samples across the reload.
    let shop = view
        .report
        .pairs
        .iter()
        .find(|p| p.origin.starts_with("shop.nginx"))
        .unwrap();
    assert!(shop.probes >= 1);
    assert!(view.status.reload_error.is_none());

    // A broken edit keeps the last good list and says so.
    tx.send(EngineCommand::Reload(Err(ReloadError::Gone {
        file: "lab.watch".into(),
    })))
    .await
    .unwrap();
    let view = wait_for(&mut view_rx, "the reload error", |v| {
        v.status.reload_error.is_some()
    })
    .await;
    assert_eq!(
        view.status.reload_error.as_deref(),
        Some("lab.watch: the file is gone; keeping the last good list")
    );
    assert_eq!(view.status.hosts, 4);

    // Events record verdict changes with timestamps.
    assert!(
        view.events
            .iter()
            .filter_map(|e| e.as_verdict())
            .any(|e| e.to == Verdict::Misdirected && e.at.unix() > 0),
        "{:?}",
        view.events
    );

    assert_stops_on_quit(engine, view_rx).await;
    lab.shutdown().await;
}

/// The live engine probes HTTP/3 where a host advertises it (the lab's `quic` scenario: clean
/// over HTTP/2, Alt-Svc h3 on its answers, 421 for coalesced requests over HTTP/3): the pair is
/// misdirected with both protocols' rows; with HTTP/3 turned off (`--protocols h2`) the same
/// pair is ok and has no HTTP/3 row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_engine_judges_pairs_over_http3_where_advertised() {
    use coalscope::engine::snapshot::Protocol;
    let lab = Lab::start(LabOptions::default()).await.unwrap();
    let text = std::fs::read_to_string(&lab.watchfile).unwrap();
    let kept: Vec<&str> = text.lines().filter(|l| l.contains(".quic.")).collect();
    assert_eq!(kept.len(), 2, "the lab's quic scenario: {kept:?}");
    let list = watchlist::parse("quic.watch", kept.join("\n").as_bytes()).unwrap();
    for h3 in [true, false] {
        let options = LiveOptions {
            h3,
            ..lab_options("quic.watch")
        };
        let engine = live::spawn(lab_prober(&lab), &list, options);
        let mut view_rx = engine.views.clone();
        let rows = |v: &LiveView| -> Vec<(Protocol, Verdict)> {
            v.report
                .pairs
                .iter()
                .find(|p| p.origin.starts_with("www.quic") && p.target.starts_with("api.quic"))
                .map(|p| p.protocols.iter().map(|r| (r.protocol, r.verdict)).collect())
                .unwrap_or_default()
        };
        let view = if h3 {
            wait_for(&mut view_rx, "www → api misdirected over HTTP/3 only", |v| {
                rows(v) == [(Protocol::H2, Verdict::Ok), (Protocol::H3, Verdict::Misdirected)]
            })
            .await
        } else {
            // A few cycles in, with every pair probed over HTTP/2 a few times.
            wait_for(&mut view_rx, "www → api ok over HTTP/2", |v| {
                v.status.cycles >= 3 && verdict(v, "www.quic", "api.quic") == Some(Verdict::Ok)
            })
            .await
        };
        let pair = view
            .report
            .pairs
            .iter()
            .find(|p| p.origin.starts_with("www.quic") && p.target.starts_with("api.quic"))
            .unwrap();
        if h3 {
            assert_eq!(pair.verdict, Verdict::Misdirected);
            assert!(
                pair.explanation
                    .starts_with("over HTTP/3 (misdirected; over HTTP/2: ok)"),
                "{}",
                pair.explanation
            );
            assert!(pair.protocols[1].probes >= 1);
        } else {
            assert!(rows(&view).is_empty(), "{:?}", rows(&view));
        }
        assert_stops_on_quit(engine, view_rx).await;
    }
    lab.shutdown().await;
}

/// A request budget far below the list's needs (60 names in wildcard groups of 20: 1,140
/// pairs, 1,200 requests for a full cycle, 200 allowed): each cycle probes part of the pairs
/// on few connections, unprobed pairs are `pending` (never `error` or `direct-broken`), the
/// header says what a full cycle would need, and within a few cycles every pair is judged as
/// the lab's layout says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tight_budget_covers_the_list_over_cycles() {
    use coalscope::lab::scale::ScaleOptions;
    let layout = ScaleOptions::new(60, 20);
    let lab = Lab::start(LabOptions {
        scale: Some(layout),
        ..Default::default()
    })
    .await
    .unwrap();
    let text = std::fs::read_to_string(&lab.watchfile).unwrap();
    let list = watchlist::parse("scale.watch", text.as_bytes()).unwrap();
    let max_rps = 200;
    let prober = Arc::new(testing::lab::prober(
        &lab,
        Duration::from_secs(2),
        ProbeOptions {
            max_rps,
            ..ProbeOptions::default()
        },
    ));
    let options = LiveOptions {
        interval: Duration::from_secs(1),
        window: Duration::from_secs(120),
        jitter: 0.5,
        concurrency: 32,
        source: "scale.watch".into(),
        publish_every: live::PUBLISH_EVERY,
        lab_phase: None,
        pending_by_index: false,
        h3: true,
        dns_grace: live::store::DEFAULT_DNS_GRACE,
    };
    let engine = live::spawn(prober, &list, options);
    let mut view_rx = engine.views.clone();

    let (pairs, bad) = layout.expected_pairs();
    let count = |v: &LiveView, verdict: Verdict| {
        v.report.summary.verdicts.get(&verdict).copied().unwrap_or(0) as usize
    };
    let mut saw_pending = false;
    let view = wait_for(&mut view_rx, "every pair judged", |v| {
        // Nothing in the lab is broken: a pair not probed yet must never look like it.
        assert_eq!(count(v, Verdict::DirectBroken), 0, "{:?}", v.report.summary);
        assert_eq!(count(v, Verdict::Error), 0, "{:?}", v.report.summary);
        if v.report.summary.pairs as usize == pairs && count(v, Verdict::Pending) > 0 {
            saw_pending = true;
            assert!(v.report.summary.coverage < 1.0, "{:?}", v.report.summary);
        }
        count(v, Verdict::Misdirected) == bad && count(v, Verdict::Ok) == pairs - bad
    })
    .await;
    assert_stops_on_quit(engine, view_rx).await;
    lab.shutdown().await;

    assert!(saw_pending, "some views showed the pairs not reached yet");
    let s = &view.report.summary;
    assert_eq!(s.coverage, 1.0, "{s:?}");
    // 60 hosts × (origin + 19 targets) per second: each origin connection's first answer is
    // its host's direct answer.
    assert_eq!(view.status.full_rps, 1200.0);
    assert_eq!(s.target_coverage, 1.0, "{s:?}");
    assert_eq!(view.status.max_rps, max_rps);
    let cycles = view.status.cycles + 1;
    assert!(
        s.requests <= u64::from(max_rps) * cycles,
        "{} requests in {cycles} cycles",
        s.requests
    );
    // A full cycle opens 60 connections (one per host); under this budget each connection
    // carries its whole group, or the targets no connection tried yet, so fewer are opened.
    assert!(
        s.connections < 60 * cycles,
        "{} connections in {cycles} cycles",
        s.connections
    );
}
