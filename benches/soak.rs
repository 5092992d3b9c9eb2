//! Soak benchmark: `coalscope serve` against the hostile lab (tests/hostile/) and the embedded
//! lab at a 200 ms interval, sampling the server's resident memory (VmRSS) and open file
//! descriptors every 10 s, and printing the curve. Prints numbers, asserts nothing; a
//! monitor that runs for weeks must show neither growing after the first minute.
//!
//! ```text
//! cargo bench --bench soak                                  # 10 minutes
//! COALSCOPE_SOAK_SECS=240 cargo bench --bench soak          # 4 minutes
//! COALSCOPE_SOAK_SAMPLE_SECS=5 COALSCOPE_SOAK_RPS=0 COALSCOPE_SOAK_WINDOW=5m cargo bench --bench soak
//! ```
//! The labs run in this process; `coalscope` (the release binary cargo builds for the bench,
//! or `COALSCOPE_BIN`) runs as a child with `serve WATCHFILE --listen 127.0.0.1:PORT
//! --interval 200ms --timeout 1s --window 60s --dns … --ca-file … --resolve …` (the window is
//! 60 s so that the store is full after the first minute; `COALSCOPE_SOAK_WINDOW` changes it). Each sample also fetches
//! `/api/status` (cycles done, time to answer) so that a stalled engine or a dead HTTP
//! listener shows in the curve.

// A benchmark: a failed expectation ends the run where it happened, and it prints its
// numbers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/hostile/mod.rs"]
#[allow(dead_code)]
mod hostile;
#[path = "common/serve_child.rs"]
mod serve_child;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coalscope::lab::{Lab, LabOptions};
use serve_child::{env_u64, get, json_number, sample};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test --benches` run passes nothing: only
    // soak when asked to benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!("soak: run with `cargo bench --bench soak`");
        return;
    }
    let secs = env_u64("COALSCOPE_SOAK_SECS", 600);
    let every = Duration::from_secs(env_u64("COALSCOPE_SOAK_SAMPLE_SECS", 10).max(1));
    let rps = env_u64("COALSCOPE_SOAK_RPS", 200);
    // The store keeps samples for `--window` (capped at 512 per list): the curve may rise
    // until the window is full, and must be flat after it.
    let window = std::env::var("COALSCOPE_SOAK_WINDOW").unwrap_or_else(|_| "60s".into());

    let hostile = hostile::HostileLab::start().await;
    let healthy = Lab::start(LabOptions::default()).await.expect("lab starts");
    let lab_lines = std::fs::read_to_string(&healthy.watchfile).expect("lab watch-file");
    let watch = hostile.watchfile("soak.watch", &[], &lab_lines);
    let ca = hostile.ca_file(healthy.ca_pem());
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr")
    };
    let stderr_path = hostile.dir.path().join("serve.stderr");
    let mut cmd = Command::new(common::bench_bin());
    cmd.arg("serve")
        .arg(&watch)
        .args(["--listen", &listen.to_string()])
        .args(["--interval", "200ms", "--timeout", "1s"])
        .args(["--dns", &hostile.dns.addr.to_string()])
        .arg("--ca-file")
        .arg(&ca)
        .args(["--max-rps", &rps.to_string()])
        .args(["--window", &window]);
    for r in healthy.resolve_args() {
        cmd.args(["--resolve", &r]);
    }
    cmd.env_remove("COALSCOPE_DNS")
        .env_remove("COALSCOPE_RESOLVE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(&stderr_path).expect("stderr file"),
        ));
    let mut child = cmd.spawn().expect("spawn coalscope serve");
    let pid = child.id();
    println!(
        "soak: coalscope serve (pid {pid}) on {} hosts ({} hostile), interval 200ms, timeout 1s, max-rps {rps}, window {window}, for {secs} s; sample every {} s",
        hostile.hosts.len() + lab_lines.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).count(),
        hostile.hosts.len(),
        every.as_secs()
    );
    println!(
        "{:>6} {:>10} {:>5} {:>8} {:>10} {:>12}",
        "t_s", "rss_kib", "fds", "cycles", "status_ms", "metrics_kib"
    );

    let started = Instant::now();
    let mut curve: Vec<(u64, u64, usize)> = Vec::new();
    let mut next = started;
    loop {
        let t = started.elapsed().as_secs();
        if let Ok(Some(status)) = child.try_wait() {
            println!("soak: coalscope serve exited early: {status}");
            break;
        }
        let Some((rss, fds)) = sample(pid) else {
            println!("soak: /proc/{pid} is gone");
            break;
        };
        let (cycles, status_ms) = match tokio::task::spawn_blocking(move || get(listen, "/api/status")).await
        {
            Ok(Ok((_, body, took))) => (
                json_number(&body, "cycles").map(|c| c as u64),
                Some(took.as_secs_f64() * 1e3),
            ),
            _ => (None, None),
        };
        let metrics_kib = match tokio::task::spawn_blocking(move || get(listen, "/metrics")).await {
            Ok(Ok((_, body, _))) => Some(body.len() / 1024),
            _ => None,
        };
        let show = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        println!(
            "{t:>6} {rss:>10} {fds:>5} {:>8} {:>10} {:>12}",
            show(cycles.map(|c| c.to_string())),
            show(status_ms.map(|m| format!("{m:.1}"))),
            show(metrics_kib.map(|k| k.to_string())),
        );
        curve.push((t, rss, fds));
        if started.elapsed() >= Duration::from_secs(secs) {
            break;
        }
        next += every;
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
    }
    let _ = child.kill();
    let _ = child.wait();

    // After the first minute: first, last, min and max.
    let settled: Vec<&(u64, u64, usize)> = curve.iter().filter(|(t, _, _)| *t >= 60).collect();
    if let (Some(first), Some(last)) = (settled.first(), settled.last()) {
        let rss_max = settled.iter().map(|s| s.1).max().unwrap_or(0);
        let rss_min = settled.iter().map(|s| s.1).min().unwrap_or(0);
        let fd_max = settled.iter().map(|s| s.2).max().unwrap_or(0);
        let fd_min = settled.iter().map(|s| s.2).min().unwrap_or(0);
        println!(
            "after 60 s: rss {} → {} KiB (min {rss_min}, max {rss_max}, {:+.1}%), fds {} → {} (min {fd_min}, max {fd_max})",
            first.1,
            last.1,
            (last.1 as f64 - first.1 as f64) / first.1 as f64 * 100.0,
            first.2,
            last.2
        );
    } else {
        println!("(run longer than 60 s for the settled numbers)");
    }
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let panics = stderr.matches("panicked").count();
    println!(
        "stderr: {} lines, {panics} panics{}",
        stderr.lines().count(),
        if panics > 0 {
            format!("\n{stderr}")
        } else {
            String::new()
        }
    );
    healthy.shutdown().await;
}
