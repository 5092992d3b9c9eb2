//! Faults in flight (issue 19): the live engine, in process, against real lab servers on
//! loopback while they change under it. (a) A watched server stopped and started again: its
//! hosts show the outage (connections refused, failed handshakes) and its pairs are judged
//! `error` (the address is down now) with a verdict event each, cycles go on completing, the
//! verdicts and handshakes come back within two cycles of the restart, history from before
//! the outage is kept, and no socket is left over. (c) The watch-file deleted, replaced by a
//! directory, by a link loop (unreadable even for root), made unreadable (only when not root:
//! root reads through chmod 000): the last good list is kept, the status says why, and the
//! file is picked up when it is back.
//!
//! The tests of this file run one at a time (`SERIAL`): (a) counts the process's open file
//! descriptors, which a test running beside it would change.

// Test code: a failed expectation is a failed test, said where it happened.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use coalscope::engine::live::{self, LiveOptions};
use coalscope::engine::prober::ProbeOptions;
use coalscope::engine::snapshot::{Event, LiveView, Verdict};
use coalscope::lab::scale::ScaleOptions;
use coalscope::lab::{Lab, LabOptions};
use coalscope::testing;
use coalscope::watchlist::{self, watcher};
use tokio::sync::{watch, Mutex};

mod common;

use common::is_root;
use common::live::wait_for;

static SERIAL: Mutex<()> = Mutex::const_new(());

/// The engine's interval in these tests.
const INTERVAL: Duration = Duration::from_secs(1);

/// Open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// Open sockets of this process, each counted once however many descriptors it has. The
/// before/after comparison counts sockets only: the other test of this file builds its runtime
/// (an epoll, an eventfd, and a descriptor more on tokio's signal socket, which every runtime
/// duplicates) while it waits for `SERIAL`, which may be after this one counted (CI saw 4 more
/// descriptors, none of them a new socket; then one more on an old socket).
fn open_sockets() -> usize {
    sockets_of(&fd_targets())
}

fn sockets_of(targets: &[String]) -> usize {
    targets
        .iter()
        .filter(|t| t.starts_with("socket:"))
        .collect::<HashSet<_>>()
        .len()
}

/// What the open descriptors are ("socket:[123]", "anon_inode:[eventpoll]", paths), for a
/// failure message.
fn fd_targets() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut targets: Vec<String> = dir
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|t| t.display().to_string())
        .collect();
    targets.sort();
    targets
}

fn scale_lab_options(layout: ScaleOptions) -> LabOptions {
    LabOptions {
        scale: Some(layout),
        ..LabOptions::default()
    }
}

fn engine_for(lab: &Lab, list: &watchlist::WatchList, source: &str) -> live::EngineHandle {
    let prober = Arc::new(testing::lab::prober(
        lab,
        Duration::from_secs(1),
        ProbeOptions {
            max_rps: 0,
            ..ProbeOptions::default()
        },
    ));
    let options = LiveOptions {
        interval: INTERVAL,
        window: Duration::from_secs(120),
        jitter: 0.5,
        concurrency: 8,
        source: source.into(),
        publish_every: live::PUBLISH_EVERY,
        lab_phase: None,
        pending_by_index: false,
        h3: true,
        dns_grace: live::store::DEFAULT_DNS_GRACE,
    };
    live::spawn(prober, list, options)
}

/// Cycles the outage lasts: the minute is 60 intervals; by default a few, enough for
/// the outage to be probed in several cycles and the test to stay short
/// (`COALSCOPE_FAULT_OUTAGE_CYCLES=60` gives the minute).
fn outage_cycles() -> u64 {
    std::env::var("COALSCOPE_FAULT_OUTAGE_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// The verdicts of the pairs whose origin is in group `group` (by origin and target).
fn group_verdicts(view: &LiveView, group: &str) -> Vec<(Arc<str>, Arc<str>, Verdict)> {
    let mut out: Vec<_> = view
        .report
        .pairs
        .iter()
        .filter(|p| p.origin.contains(group))
        .map(|p| (p.origin.clone(), p.target.clone(), p.verdict))
        .collect();
    out.sort();
    out
}

/// What a host of a group shows of its connections in the window: refused (a direct request
/// could not connect), its failed and its completed handshakes.
struct HostSeen {
    refused: bool,
    failed: u32,
    completed: u32,
}

fn group_hosts(view: &LiveView, group: &str) -> Vec<HostSeen> {
    view.report
        .hosts
        .iter()
        .filter(|h| h.host.contains(group))
        .flat_map(|h| h.endpoints.iter())
        .map(|ep| HostSeen {
            refused: ep
                .direct
                .error
                .as_deref()
                .is_some_and(|e| e.contains("connection refused")),
            failed: ep.handshake_errors,
            completed: ep.handshakes.saturating_sub(ep.handshake_errors),
        })
        .collect()
}

fn judged(view: &LiveView, pairs: usize) -> bool {
    let s = &view.report.summary;
    s.pairs as usize == pairs
        && s.coverage == 1.0
        && s.verdicts.get(&Verdict::Pending).copied().unwrap_or(0) == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_and_started_again_shows_the_outage_and_recovers() {
    let _serial = SERIAL.lock().await;
    let targets_at_start = fd_targets();
    let sockets_at_start = sockets_of(&targets_at_start);
    // Two groups of five names, each group at its own address.
    let layout = ScaleOptions::new(10, 5);
    let lab = Lab::start(scale_lab_options(layout)).await.unwrap();
    let faults = lab.faults();
    let text = std::fs::read_to_string(&lab.watchfile).unwrap();
    let list = watchlist::parse("scale.watch", text.as_bytes()).unwrap();
    let engine = engine_for(&lab, &list, "scale.watch");
    let mut views = engine.views.clone();
    let (pairs, _) = layout.expected_pairs();

    // After the first cycle: its verdicts are the baseline events are recorded against (the
    // first cycle's own are not events).
    let before = wait_for(&mut views, "every pair judged", |v| {
        judged(v, pairs) && v.status.cycles >= 1
    })
    .await;
    let healthy = group_verdicts(&before, ".g000.");
    let other = group_verdicts(&before, ".g001.");
    assert_eq!(healthy.len(), 20);
    assert!(
        healthy.iter().all(|(_, _, v)| *v != Verdict::Error),
        "{healthy:?}"
    );
    let fds_running = open_fds();

    // The outage: group 0's address refuses connections for several cycles.
    let addr = SocketAddr::from((layout.address(0), lab.port));
    faults.stop(addr).await.unwrap();
    let stopped_at = before.status.cycles;
    // The outage shows where the engine sees it now: each host of the group has its
    // connections refused (the endpoint's direct error, its failed handshakes counted), and
    // each of its pairs is an `error` saying so, whatever the window's earlier samples said.
    let during = wait_for(&mut views, "group 0's hosts refused and its pairs errors", |v| {
        let failing = group_hosts(v, ".g000.");
        failing.len() == 5
            && failing.iter().all(|h| h.refused && h.failed > 0)
            && group_verdicts(v, ".g000.")
                .iter()
                .all(|(_, _, v)| *v == Verdict::Error)
    })
    .await;
    assert!(
        group_hosts(&during, ".g001.").iter().all(|h| !h.refused),
        "the other group's hosts are served"
    );
    for p in during.report.pairs.iter().filter(|p| p.origin.contains(".g000.")) {
        let error = p.error.as_deref().unwrap_or_default();
        assert!(
            error.contains("connection refused") && error.starts_with(&layout.address(0).to_string()),
            "{} → {}: {error:?}",
            p.origin,
            p.target
        );
        assert!(p.probes > 0, "the samples from before the outage are kept");
    }
    // Each pair's move is an event (the log keeps far more than these 20).
    let moved: HashSet<(String, String)> = during
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Verdict(v) if v.to == Verdict::Error && v.origin.contains(".g000.") => {
                Some((v.origin.clone(), v.target.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(moved.len(), healthy.len(), "{moved:?}");
    // No probe task stuck: cycles go on completing during the outage, and the other group
    // is judged as before.
    let until = stopped_at + outage_cycles();
    let late = wait_for(&mut views, "cycles completing during the outage", |v| {
        v.status.cycles >= until
    })
    .await;
    assert_eq!(
        group_verdicts(&late, ".g001."),
        other,
        "the other group is untouched"
    );
    let fds_outage = open_fds();
    let failed_during: Vec<u32> = group_hosts(&late, ".g000.").iter().map(|h| h.failed).collect();
    let completed_during: Vec<u32> = group_hosts(&late, ".g000.").iter().map(|h| h.completed).collect();

    // Back: every host of the group completes handshakes again, its verdicts are those of
    // before, and its pairs carry their samples from before the outage.
    faults.start(addr).await.unwrap();
    let restarted_at = late.status.cycles;
    let after = wait_for(&mut views, "group 0's hosts and verdicts back", |v| {
        let hosts = group_hosts(v, ".g000.");
        hosts.len() == 5
            && hosts.iter().zip(&completed_during).all(|(h, d)| h.completed > *d)
            && group_verdicts(v, ".g000.") == healthy
    })
    .await;
    // One interval: the cycle running at the restart may have probed the address before it
    // came back; the next one finds it serving (counted in cycles, not seconds).
    assert!(
        after.status.cycles <= restarted_at + 2,
        "served again at cycle {} after the restart at cycle {restarted_at}",
        after.status.cycles
    );
    let failed_after: Vec<u32> = group_hosts(&after, ".g000.").iter().map(|h| h.failed).collect();
    assert!(
        failed_after.iter().zip(&failed_during).all(|(a, d)| a >= d),
        "the failures of the outage stay in the window: {failed_during:?} then {failed_after:?}"
    );
    assert_eq!(group_verdicts(&after, ".g000."), healthy);
    for p in after.report.pairs.iter().filter(|p| p.origin.contains(".g000.")) {
        let old = before
            .report
            .pairs
            .iter()
            .find(|q| q.origin == p.origin && q.target == p.target)
            .unwrap();
        assert!(
            p.probes >= old.probes,
            "{} → {}: {} then {}",
            p.origin,
            p.target,
            old.probes,
            p.probes
        );
    }

    // No socket left over: the connections of a cycle close with it (at most `concurrency`
    // are open at a sampling instant, hence the tolerance while running), and once the engine
    // and the lab are gone the process has what it had before them.
    assert!(
        fds_outage <= fds_running + 8,
        "fds {fds_running} running, {fds_outage} after {} cycles of outage",
        outage_cycles()
    );
    assert!(engine.stop(Duration::from_secs(10)).await, "the engine stops");
    drop(views);
    lab.shutdown().await;
    let mut sockets_end = open_sockets();
    for _ in 0..50 {
        if sockets_end <= sockets_at_start {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        sockets_end = open_sockets();
    }
    assert!(
        sockets_end <= sockets_at_start,
        "sockets {sockets_at_start} before the lab, {sockets_end} after (fds running {fds_running}, \
         outage {fds_outage}); before: {targets_at_start:?}; after: {:?}",
        fd_targets()
    );
}

/// The reload error once it names `what`, with the list it kept.
async fn wait_reload_error(views: &mut watch::Receiver<Arc<LiveView>>, what: &str, hosts: usize) {
    let view = wait_for(views, what, |v| {
        v.status.reload_error.as_deref().is_some_and(|e| e.contains(what))
    })
    .await;
    let error = view.status.reload_error.as_deref().unwrap_or_default();
    assert!(
        error.contains("faults.watch") && error.contains("keeping the last good list"),
        "{error}"
    );
    assert_eq!(view.status.hosts, hosts, "the last good list is kept");
}

async fn wait_hosts(views: &mut watch::Receiver<Arc<LiveView>>, hosts: usize) {
    wait_for(views, &format!("{hosts} hosts and no reload error"), |v| {
        v.status.hosts == hosts && v.status.reload_error.is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_file_gone_a_directory_or_unreadable_keeps_the_last_good_list() {
    let _serial = SERIAL.lock().await;
    let layout = ScaleOptions::new(10, 5);
    let lab = Lab::start(scale_lab_options(layout)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("faults.watch");
    let text = std::fs::read_to_string(&lab.watchfile).unwrap();
    std::fs::write(&file, &text).unwrap();
    let list = watchlist::parse("faults.watch", text.as_bytes()).unwrap();
    let engine = engine_for(&lab, &list, "faults.watch");
    let _watch = watcher::spawn(&file, engine.commands.clone()).unwrap();
    let mut views = engine.views.clone();
    wait_hosts(&mut views, 10).await;
    let five: String = text
        .lines()
        .filter(|l| l.contains(".g000."))
        .map(|l| format!("{l}\n"))
        .collect();

    // Deleted, then recreated with another list.
    std::fs::remove_file(&file).unwrap();
    wait_reload_error(&mut views, "the file is gone", 10).await;
    std::fs::write(&file, &five).unwrap();
    wait_hosts(&mut views, 5).await;

    // Replaced by a directory: the watcher survives and reads the file once it is back.
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    wait_reload_error(&mut views, "a directory", 5).await;
    std::fs::remove_dir(&file).unwrap();
    std::fs::write(&file, &text).unwrap();
    wait_hosts(&mut views, 10).await;

    // Unreadable for anyone, root included: a link to itself (ELOOP).
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&file, &file).unwrap();
    wait_reload_error(&mut views, "symbolic links", 10).await;
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, &five).unwrap();
    wait_hosts(&mut views, 5).await;

    // chmod 000: root reads through it (CI runs as root), so only for other users.
    if !is_root() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
        wait_reload_error(&mut views, "ermission denied", 5).await;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&file, &text).unwrap();
        wait_hosts(&mut views, 10).await;
    } else {
        eprintln!("running as root: the chmod 000 case is skipped (root reads through it)");
    }

    let status = views.borrow().status.clone();
    assert!(status.last_reload.is_some(), "{status:?}");
    assert!(engine.stop(Duration::from_secs(10)).await);
    lab.shutdown().await;
}
