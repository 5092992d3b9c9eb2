//! Scrape-load benchmark (issue 19): `coalscope serve` on the 1,000-name scale lab, its probing
//! rate measured unscraped, then under 50 concurrent scrapers, then unscraped again (so that
//! drift shows), all in one run. Prints numbers, asserts nothing.
//!
//! ```text
//! CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 cargo build --release
//! CARGO_PROFILE_BENCH_LTO=false CARGO_PROFILE_BENCH_CODEGEN_UNITS=16 cargo bench --bench scrape_load
//! LOAD_PHASE_SECS=30 LOAD_SCRAPERS=20 cargo bench --bench scrape_load
//! ```
//! Knobs (environment, printed at the start): `LOAD_NAMES` (1000), `LOAD_GROUP` (names per
//! group, 10), `LOAD_SCRAPERS` (50: half `/metrics`, half `/api/snapshot`), `LOAD_PHASE_SECS`
//! (60), `LOAD_WARMUP_MAX_SECS` (900), `LOAD_ARGS` (extra arguments of `serve`, split on
//! spaces; default `--window 60s`, so that the store is full a minute after coverage is),
//! `LOAD_GZIP` (1: the scrapers send `Accept-Encoding: gzip`, as Prometheus does, and the
//! bytes counted are the compressed ones; 0: they do not), and `COALSCOPE_BIN` (default
//! target/release/coalscope).
//!
//! The lab runs in this process; `serve WATCHFILE --dns … --ca-file … --listen 127.0.0.1:PORT
//! LOAD_ARGS` runs as a child. Warm-up (the store full, steady state): two windows
//! (`LOAD_WINDOW_SECS`, 60, the window given in `LOAD_ARGS`) and `coalscope_pair_coverage_ratio`
//! within 0.02 of its value a window before. Then three phases of
//! `LOAD_PHASE_SECS` each: unscraped, scraped, unscraped. The probing rate of a phase is
//! `coalscope_requests_total` (and `_connections_total`) at its end minus at its start, over
//! its length (whole phases, from serve's own counters; two reads per phase). serve's CPU is
//! utime + stime from /proc/PID/stat over each phase.
//!
//! Scrapers: one thread each, each from its own source address (127.0.9.1, 127.0.9.2, …: the
//! exporter holds at most 32 connections per address), scraping back to back over ONE
//! keep-alive HTTP/1.1 connection (reopened only if the exporter closes it). Latency is from
//! writing the request to reading the last byte of the body (Content-Length). Per endpoint:
//! scrapes, errors, bytes, p50/p90/p99/max.

// A benchmark: a failed expectation ends the run where it happened, and it prints its
// numbers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]
// sysconf has no std API.
#![allow(unsafe_code)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "idle/exporter.rs"]
#[allow(dead_code)]
mod exporter;
#[path = "common/serve_child.rs"]
#[allow(dead_code)]
mod serve_child;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coalscope::lab::scale::ScaleOptions;
use coalscope::lab::{Lab, LabOptions};
use serve_child::{env_u64, procfs};

/// Latencies kept per scraper (a bound; a minute back to back is far below it).
const MAX_SAMPLES: usize = 2_000_000;
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The serve child: killed and reaped on drop.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one scraper did.
#[derive(Default)]
struct Scraped {
    micros: Vec<u32>,
    bytes: u64,
    errors: u64,
    last_error: Option<String>,
}

/// One GET over a keep-alive connection (asking for gzip when `gzip`): the body length.
fn scrape_once(
    conn: &mut BufReader<TcpStream>,
    addr: SocketAddr,
    path: &str,
    gzip: bool,
) -> Result<u64, String> {
    let coding = if gzip { "Accept-Encoding: gzip\r\n" } else { "" };
    write!(
        conn.get_mut(),
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{coding}\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut status = String::new();
    conn.read_line(&mut status).map_err(|e| format!("status: {e}"))?;
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("status {:?}", status.trim()));
    }
    let mut length = None;
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).map_err(|e| format!("head: {e}"))? == 0 {
            return Err("closed in the head".into());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<u64>().ok();
            }
        }
    }
    let length = length.ok_or("no Content-Length")?;
    let copied = std::io::copy(&mut conn.by_ref().take(length), &mut std::io::sink())
        .map_err(|e| format!("body: {e}"))?;
    if copied != length {
        return Err(format!("body {copied} of {length} bytes"));
    }
    Ok(length)
}

fn connect(from: IpAddr, addr: SocketAddr) -> Result<BufReader<TcpStream>, String> {
    // std cannot bind a source address before connecting: tokio's TcpSocket can.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let stream = rt
        .block_on(async {
            let s = tokio::net::TcpSocket::new_v4()?;
            s.bind(SocketAddr::new(from, 0))?;
            let stream = tokio::time::timeout(IO_TIMEOUT, s.connect(addr))
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect"))??;
            stream.into_std()
        })
        .map_err(|e| format!("connect from {from}: {e}"))?;
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(BufReader::with_capacity(256 * 1024, stream))
}

/// Scrape `path` back to back from `from` until `stop`.
fn scraper(from: IpAddr, addr: SocketAddr, path: &'static str, gzip: bool, stop: Arc<AtomicBool>) -> Scraped {
    let mut out = Scraped::default();
    let mut conn = None;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            match connect(from, addr) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    out.errors += 1;
                    out.last_error = Some(e);
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let started = Instant::now();
        match scrape_once(c, addr, path, gzip) {
            Ok(n) => {
                out.bytes += n;
                if out.micros.len() < MAX_SAMPLES {
                    out.micros
                        .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
                }
            }
            Err(e) => {
                out.errors += 1;
                out.last_error = Some(e);
                conn = None;
            }
        }
    }
    out
}

/// (requests, connections) from serve's counters.
fn counters(listen: SocketAddr) -> (f64, f64) {
    let text = exporter::http_get(listen, "/metrics").expect("/metrics");
    (
        exporter::metric(&text, "coalscope_requests_total").unwrap_or(0.0),
        exporter::metric(&text, "coalscope_connections_total").unwrap_or(0.0),
    )
}

/// One phase's facts.
struct Phase {
    name: &'static str,
    secs: f64,
    rps: f64,
    cps: f64,
    cpu_s: f64,
}

/// Run a phase of `secs`, with `scrapers` scraping (0: none): its facts and what they scraped.
fn phase(
    name: &'static str,
    listen: SocketAddr,
    pid: u32,
    secs: u64,
    scrapers: usize,
    gzip: bool,
) -> (Phase, Vec<(&'static str, Scraped)>) {
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..scrapers)
        .map(|i| {
            let path = if i % 2 == 0 { "/metrics" } else { "/api/snapshot" };
            let from = IpAddr::V4(Ipv4Addr::new(127, 0, 9, (i + 1) as u8));
            let stop = stop.clone();
            (
                path,
                std::thread::spawn(move || scraper(from, listen, path, gzip, stop)),
            )
        })
        .collect();
    let ticks = procfs::clock_ticks();
    let cpu0 = procfs::proc_stat(pid).expect("serve's stat").cpu_ticks;
    let (r0, c0) = counters(listen);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let (r1, c1) = counters(listen);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu1 = procfs::proc_stat(pid).expect("serve's stat").cpu_ticks;
    stop.store(true, Ordering::Relaxed);
    let scraped = threads
        .into_iter()
        .map(|(p, t)| (p, t.join().expect("scraper thread")))
        .collect();
    let facts = Phase {
        name,
        secs: elapsed,
        rps: (r1 - r0) / elapsed,
        cps: (c1 - c0) / elapsed,
        cpu_s: (cpu1 - cpu0) as f64 / ticks,
    };
    (facts, scraped)
}

fn quantile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1e3
}

fn print_latencies(scraped: Vec<(&'static str, Scraped)>, secs: f64) {
    println!(
        "\n{:<14} {:>8} {:>7} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8}",
        "endpoint", "scrapes", "per_s", "errors", "MiB", "p50_ms", "p90_ms", "p99_ms", "max_ms"
    );
    for path in ["/metrics", "/api/snapshot"] {
        let mut micros = Vec::new();
        let (mut bytes, mut errors, mut last) = (0, 0, None);
        for (_, s) in scraped.iter().filter(|(p, _)| *p == path) {
            micros.extend_from_slice(&s.micros);
            bytes += s.bytes;
            errors += s.errors;
            last = last.or(s.last_error.clone());
        }
        micros.sort_unstable();
        println!(
            "{path:<14} {:>8} {:>7.1} {errors:>7} {:>10.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            micros.len(),
            micros.len() as f64 / secs,
            bytes as f64 / (1024.0 * 1024.0),
            quantile(&micros, 0.5),
            quantile(&micros, 0.9),
            quantile(&micros, 0.99),
            quantile(&micros, 1.0),
        );
        if let Some(e) = last {
            println!("  last error on {path}: {e}");
        }
    }
}

fn start_serve(lab: &Lab, listen: SocketAddr, dir: &std::path::Path) -> Serve {
    let extra = std::env::var("LOAD_ARGS").unwrap_or_else(|_| "--window 60s".into());
    let mut cmd = Command::new(common::bench_bin());
    for (key, _) in std::env::vars() {
        if key.starts_with("COALSCOPE_") && key != "COALSCOPE_LOG" && key != "COALSCOPE_BIN" {
            cmd.env_remove(key);
        }
    }
    cmd.args(common::lab_args("serve", lab, &lab.watchfile))
        .args(["--listen", &listen.to_string()])
        .args(extra.split_whitespace())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("serve.stderr")).expect("stderr file"),
        ));
    println!("serve: {cmd:?}");
    Serve(cmd.spawn().expect("spawn coalscope serve"))
}

/// Wait for the steady state: two windows have passed and pair coverage has not moved by more
/// than 0.02 over the last window (it is 1, or the window's budget holds it below), or the
/// warm-up cap.
fn warm_up(listen: SocketAddr, window: u64) {
    let started = Instant::now();
    let cap = Duration::from_secs(env_u64("LOAD_WARMUP_MAX_SECS", 900));
    let window = Duration::from_secs(window);
    // (time, coverage) every 5 s: bounded by the cap.
    let mut seen: Vec<(Duration, f64)> = Vec::new();
    while started.elapsed() < cap {
        std::thread::sleep(Duration::from_secs(5));
        let Ok(text) = exporter::http_get(listen, "/metrics") else {
            continue;
        };
        let now = started.elapsed();
        let coverage = exporter::metric(&text, "coalscope_pair_coverage_ratio").unwrap_or(0.0);
        seen.push((now, coverage));
        let before = seen.iter().rev().find(|(t, _)| now.saturating_sub(*t) >= window);
        if let Some((_, then)) = before {
            if now >= 2 * window && (coverage - then).abs() <= 0.02 {
                println!(
                    "warm-up: steady after {:.0} s (pair coverage {coverage:.3}, {then:.3} a window before)",
                    now.as_secs_f64()
                );
                return;
            }
        }
    }
    println!(
        "warm-up: cap of {} s reached; coverage {:?}",
        cap.as_secs(),
        seen.last()
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("scrape_load: run with `cargo bench --bench scrape_load`");
        return;
    }
    let names = env_u64("LOAD_NAMES", 1000) as usize;
    let group = env_u64("LOAD_GROUP", 10) as usize;
    let scrapers = env_u64("LOAD_SCRAPERS", 50).clamp(1, 250) as usize;
    let gzip = env_u64("LOAD_GZIP", 1) != 0;
    let secs = env_u64("LOAD_PHASE_SECS", 60);
    let window = env_u64("LOAD_WINDOW_SECS", 60);
    println!("scrape_load: {names} names in groups of {group}, {scrapers} scrapers (Accept-Encoding: gzip {}), phases of {secs} s; load average {}", if gzip { "sent" } else { "not sent" }, procfs::loadavg());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let lab = rt
        .block_on(Lab::start(LabOptions {
            scale: Some(ScaleOptions::new(names, group)),
            ..Default::default()
        }))
        .expect("scale lab");
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = exporter::free_port().expect("free port");
    let serve = start_serve(&lab, listen, dir.path());
    let pid = serve.0.id();
    exporter::facts_retry(listen).expect("serve answers");
    warm_up(listen, window);

    let mut phases = Vec::new();
    for (name, n) in [("unscraped", 0), ("scraped", scrapers), ("unscraped again", 0)] {
        let (facts, scraped) = phase(name, listen, pid, secs, n, gzip);
        if n > 0 {
            print_latencies(scraped, facts.secs);
        }
        phases.push(facts);
    }
    println!(
        "\n{:<16} {:>7} {:>10} {:>10} {:>10} {:>9}",
        "phase", "secs", "req_per_s", "conn_per_s", "serve_cpu", "cpu_share"
    );
    for p in &phases {
        println!(
            "{:<16} {:>7.1} {:>10.1} {:>10.2} {:>9.1}s {:>8.0}%",
            p.name,
            p.secs,
            p.rps,
            p.cps,
            p.cpu_s,
            p.cpu_s / p.secs * 100.0
        );
    }
    let base = (phases[0].rps + phases[2].rps) / 2.0;
    println!(
        "rate ratio scraped / unscraped (mean of before and after): {:.3}; drift after / before: {:.3}; load average {}",
        phases[1].rps / base,
        phases[2].rps / phases[0].rps,
        procfs::loadavg()
    );
    if let Some((rss, hwm)) = procfs::proc_mem(pid) {
        println!(
            "serve memory: RSS {:.1} MB, peak {:.1} MB",
            procfs::mb(rss),
            procfs::mb(hwm)
        );
    }
    drop(serve);
    rt.block_on(lab.shutdown());
}
