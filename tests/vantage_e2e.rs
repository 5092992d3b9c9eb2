//! The acceptance test of issue 18, part 2: one dashboard, two vantage points. Two real
//! `coalscope serve` processes watch the same two lab names, each through its own DNS server
//! on loopback: `fra1`'s gives both names the lab's strict address (the pair is coalesced
//! and refused: misdirected), `iad1`'s the address that routes by Host (ok). The real
//! `coalscope watch --from … --from …` in tmux shows both vantages, the pair's verdict from
//! each in its details, filters by vantage with `v`, and marks `iad1` stale once its serve
//! process is killed while `fra1`'s data goes on updating.

// Test code: a failed expectation is a failed test, said where it happened.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use coalscope::lab::{Lab, LabOptions};
use coalscope::testing::net::{a_record, dns_server_with, TestDns};
use common::tmux::{shell_quote, tmux_available, Tmux};

const MEDIA: &str = "media.multi.coalscope.test";
const CDN: &str = "cdn.multi.coalscope.test";
/// The lab's "multi" scenario serves both names on .17 (routes by Host) and .18 (strict: 421
/// for a name other than the connection's).
const BY_HOST: &str = "127.0.0.17";
const STRICT: &str = "127.0.0.18";

/// A `coalscope serve` this test started; killed (by its own handle) on drop.
struct Serve {
    process: common::serve::ServeProcess,
    addr: SocketAddr,
}

impl Serve {
    async fn start(lab: &Lab, watchfile: &Path, dns: &TestDns, vantage: &str) -> Serve {
        Serve::start_on(lab, watchfile, dns, vantage, "127.0.0.1:0").await
    }

    async fn start_on(lab: &Lab, watchfile: &Path, dns: &TestDns, vantage: &str, listen: &str) -> Serve {
        let args: Vec<String> = [
            &watchfile.display().to_string(),
            "--dns",
            &dns.addr.to_string(),
            "--ca-file",
            &lab.ca_file.display().to_string(),
            "--vantage",
            vantage,
            "--listen",
            listen,
        ]
        .iter()
        .chain(&[
            "--interval",
            "1s",
            "--window",
            "60s",
            "--timeout",
            "2s",
            "--max-rps",
            "0",
        ])
        .map(|a| a.to_string())
        .collect();
        let process = common::serve::spawn(&args).await;
        Serve {
            addr: process.addr,
            process,
        }
    }

    /// Stop it the hard way (SIGKILL to the process this test started), and reap it.
    async fn kill(&mut self) {
        self.process.child.start_kill().expect("kill serve");
        let _ = tokio::time::timeout(Duration::from_secs(10), self.process.child.wait()).await;
    }
}

/// The pair table's rows for the pair (either direction).
fn pair_rows(screen: &str) -> Vec<&str> {
    // Above the details and the event log, whose lines name pairs too ("cdn → media new → ok
    // iad1: …").
    screen
        .lines()
        .take_while(|l| !l.contains("Events ("))
        .filter(|l| l.contains("media → cdn") || l.contains("cdn → media"))
        .collect()
}

/// A row of the pairs table (focused: thick border) with this verdict.
fn says(row: &str, verdict: &str) -> bool {
    row.contains(&format!("┃{verdict} ")) || row.contains(&format!("│{verdict} "))
}

/// "iad1 stale 34s" in the header: 34.
fn stale_secs(screen: &str, vantage: &str) -> Option<u64> {
    let rest = screen.split(&format!("{vantage} stale ")).nth(1)?;
    rest.split('s').next()?.parse().ok()
}

/// "fra1 fresh 2s" in the header: 2.
fn fresh_secs(screen: &str, vantage: &str) -> Option<u64> {
    let rest = screen.split(&format!("{vantage} fresh ")).nth(1)?;
    rest.split('s').next()?.parse().ok()
}

/// The lab, a directory with the watch-file of the two names (`multi.watch`), and the DNS
/// servers of `fra1` (both names on the strict address) and `iad1` (both on the one that
/// routes by Host).
async fn setup() -> (Lab, tempfile::TempDir, TestDns, TestDns) {
    let lab = Lab::start(LabOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let watchfile = dir.path().join("multi.watch");
    std::fs::write(&watchfile, format!("{MEDIA}:{p}\n{CDN}:{p}\n", p = lab.port)).unwrap();
    let name = |n: &str| format!("{n}.");
    let fra_dns = dns_server_with(vec![a_record(&name(MEDIA), STRICT), a_record(&name(CDN), STRICT)]).await;
    let iad_dns = dns_server_with(vec![
        a_record(&name(MEDIA), BY_HOST),
        a_record(&name(CDN), BY_HOST),
    ])
    .await;
    (lab, dir, fra_dns, iad_dns)
}

fn tmux_or_skip(what: &str) -> bool {
    let missing: &[&str] = if tmux_available() { &[] } else { &["tmux"] };
    common::interop_available(what, missing, "apt-get install -y --no-install-recommends tmux")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_vantages_in_one_dashboard_and_a_stale_one_marked() {
    if !tmux_or_skip("vantage_e2e") {
        return;
    }
    let (lab, dir, fra_dns, iad_dns) = setup().await;
    let watchfile = dir.path().join("multi.watch");
    let fra = Serve::start(&lab, &watchfile, &fra_dns, "fra1").await;
    let mut iad = Serve::start(&lab, &watchfile, &iad_dns, "iad1").await;

    let script = format!(
        "env -u COALSCOPE_INTERVAL -u COALSCOPE_TIMEOUT -u COALSCOPE_FROM -u NO_COLOR {bin} watch --from http://{fra} --from http://{iad} --timeout 2s; echo EXITED $?; sleep 600",
        bin = shell_quote(Path::new(env!("CARGO_BIN_EXE_coalscope"))),
        fra = fra.addr,
        iad = iad.addr,
    );
    let tmux = Tmux::start(format!("coalscope-vantage-{}", std::process::id()), &script);

    // Both vantages answer: the header names them, the vantage column shows both, and (the
    // pairs pane focused, its first row — a problem first — in the details) the pair's verdict
    // from each vantage.
    tmux.wait_for("both vantages fresh", |s| {
        s.contains("fra1 fresh") && s.contains("iad1 fresh")
    })
    .await;
    tmux.keys(&["Tab"]);
    let screen = tmux
        .wait_steady("the pair seen from both vantages", |s| {
            let rows = pair_rows(s);
            rows.iter().any(|r| says(r, "misdirected") && r.contains("fra1"))
                && rows.iter().any(|r| says(r, "ok") && r.contains("iad1"))
                && s.contains("fra1: misdirected")
                && s.contains("iad1: ok")
        })
        .await;
    println!("the two-vantage dashboard:\n{screen}");
    assert!(screen.contains("Details · pair from fra1"), "{screen}");

    // `v`: fra1 only, then iad1 only, then all again.
    tmux.keys(&["v"]);
    let screen = tmux
        .wait_for("fra1 only", |s| s.contains("showing vantage fra1"))
        .await;
    let rows = pair_rows(&screen);
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r.contains("fra1")),
        "{screen}"
    );
    tmux.keys(&["v"]);
    let screen = tmux
        .wait_for("iad1 only", |s| s.contains("showing vantage iad1"))
        .await;
    let rows = pair_rows(&screen);
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r.contains("iad1") && says(r, "ok")),
        "{screen}"
    );
    tmux.keys(&["v"]);
    tmux.wait_for("all vantages", |s| s.contains("showing all vantages"))
        .await;

    // iad1's serve process dies: iad1 is marked stale with its error, its last data stays
    // (marked "~"), and fra1's goes on updating: long after iad1's last answer, fra1's is
    // within the stale bound (3 fetch intervals: 6 s).
    iad.kill().await;
    let screen = tmux
        .wait_steady("iad1 stale for 12 s, fra1 fresh", |s| {
            stale_secs(s, "iad1").is_some_and(|n| n >= 12) && fresh_secs(s, "fra1").is_some_and(|n| n <= 6)
        })
        .await;
    println!("iad1 stopped:\n{screen}");
    assert!(
        screen.contains("onnection refused") || screen.contains("error sending request"),
        "the last error is shown:\n{screen}"
    );
    assert!(
        pair_rows(&screen).iter().any(|r| r.contains("~iad1")),
        "iad1's last data stays, marked:\n{screen}"
    );
    assert!(screen.contains("iad1 (stale"), "{screen}");

    // A serve answering at iad1's address again: iad1 returns (fresh, its rows unmarked).
    let again = Serve::start_on(&lab, &watchfile, &iad_dns, "iad1", &iad.addr.to_string()).await;
    let screen = tmux
        .wait_for("iad1 back", |s| {
            s.contains("iad1 fresh") && !pair_rows(s).iter().any(|r| r.contains("~iad1"))
        })
        .await;
    assert!(screen.contains("fra1 fresh"), "{screen}");

    tmux.keys(&["q"]);
    let screen = tmux.wait_for("the exit", |s| s.contains("EXITED")).await;
    assert!(screen.contains("EXITED 0"), "{screen}");
    drop(tmux);
    drop((fra, iad, again));
    lab.shutdown().await;
}

/// Local probing and a remote vantage mixed: `watch WATCHFILE --from URL` probes here (as
/// `local`, through fra1's DNS) and shows iad1's serve beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_probing_and_a_remote_vantage_mixed() {
    if !tmux_or_skip("vantage_e2e (mixed)") {
        return;
    }
    let (lab, dir, fra_dns, iad_dns) = setup().await;
    let watchfile = dir.path().join("multi.watch");
    let iad = Serve::start(&lab, &watchfile, &iad_dns, "iad1").await;
    let script = format!(
        "env -u COALSCOPE_DNS -u COALSCOPE_RESOLVE -u COALSCOPE_INTERVAL -u COALSCOPE_FROM -u NO_COLOR {bin} watch {wf} --dns {dns} --ca-file {ca} --interval 1s --timeout 2s --max-rps 0 --from http://{iad}; echo EXITED $?; sleep 600",
        bin = shell_quote(Path::new(env!("CARGO_BIN_EXE_coalscope"))),
        wf = shell_quote(&watchfile),
        dns = fra_dns.addr,
        ca = shell_quote(&lab.ca_file),
        iad = iad.addr,
    );
    let tmux = Tmux::start(format!("coalscope-mixed-{}", std::process::id()), &script);
    tmux.keys(&["Tab"]);
    let screen = tmux
        .wait_steady("local and iad1 side by side", |s| {
            let rows = pair_rows(s);
            s.contains("vantages local probing · iad1 fresh")
                && rows.iter().any(|r| says(r, "misdirected") && r.contains("local"))
                && rows.iter().any(|r| says(r, "ok") && r.contains("iad1"))
                && s.contains("local: misdirected, iad1: ok")
        })
        .await;
    println!("local probing beside iad1:\n{screen}");
    tmux.keys(&["q"]);
    let screen = tmux.wait_for("the exit", |s| s.contains("EXITED")).await;
    assert!(screen.contains("EXITED 0"), "{screen}");
    drop(tmux);
    drop(iad);
    lab.shutdown().await;
}
