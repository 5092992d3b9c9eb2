//! Sweep benchmark: `coalscope check --rounds 1` over the scale lab, against the ceiling of a
//! minimal client (tokio + rustls + hyper h2, no analysis) making the same TLS handshakes and
//! requests with the same concurrency, against the same servers, in the same run; and once a
//! cross-check of that client with h2load on one address. Prints numbers, asserts nothing.
//!
//! ```text
//! cargo build --release && cargo bench --bench sweep
//! SWEEP_N=1000 SWEEP_GROUP=20 SWEEP_CONCURRENCY=32 cargo bench --bench sweep
//! ```
//! The lab runs in this process; `coalscope` (target/release/coalscope, or `COALSCOPE_BIN`) and
//! the ceiling client (this binary again, with `SWEEP_CEILING` set) run as child processes,
//! so that wall time, CPU seconds (user + system) and peak RSS come from `wait4`'s rusage of
//! the client alone.

// A benchmark: a failed expectation ends the run where it happened, and it prints its
// numbers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]
// Process accounting and signals (wait4, kill, sysconf, getuid) have no std API.
#![allow(unsafe_code)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "common/minimal_client.rs"]
#[allow(dead_code)]
mod minimal_client;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use coalscope::lab::scale::ScaleOptions;
use coalscope::lab::{Lab, LabOptions};
use futures::stream::{self, StreamExt};
use minimal_client::{client_config, measure, run_conn, ConnJob, STREAMS};

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// The ceiling's jobs for the scale layout, shaped as `check --rounds 1` works: per name, one
/// connection (SNI = name) requesting the name then every other member of its group, and one
/// direct connection with one request.
fn ceiling_jobs(layout: &ScaleOptions, port: u16) -> Vec<ConnJob> {
    let mut jobs = Vec::with_capacity(layout.names * 2);
    for i in 0..layout.names {
        let g = layout.group_of(i);
        let addr = SocketAddr::new(IpAddr::V4(layout.address(g)), port);
        let name = layout.name(i);
        let mut hosts = vec![name.clone()];
        hosts.extend(layout.members(g).filter(|&j| j != i).map(|j| layout.name(j)));
        jobs.push(ConnJob {
            addr,
            sni: name.clone(),
            hosts,
        });
        jobs.push(ConnJob {
            addr,
            sni: name.clone(),
            hosts: vec![name],
        });
    }
    jobs
}

/// The ceiling client's main (child process): `SWEEP_CEILING="N K port ca_file concurrency"`.
fn ceiling_main(spec: &str) {
    let parts: Vec<&str> = spec.split_whitespace().collect();
    let n: usize = parts[0].parse().expect("N");
    let k: usize = parts[1].parse().expect("K");
    let port: u16 = parts[2].parse().expect("port");
    let ca = PathBuf::from(parts[3]);
    let concurrency: usize = parts[4].parse().expect("concurrency");
    let single: Option<(IpAddr, String, usize, usize)> = parts.get(5).map(|_| {
        // Cross-check shape: C connections to one address, R requests each, one SNI.
        (
            parts[5].parse().expect("addr"),
            parts[6].to_string(),
            parts[7].parse().expect("conns"),
            parts[8].parse().expect("reqs"),
        )
    });
    let layout = ScaleOptions::new(n, k);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut jobs = match &single {
            None => ceiling_jobs(&layout, port),
            Some((addr, sni, conns, reqs)) => (0..*conns)
                .map(|_| ConnJob {
                    addr: SocketAddr::new(*addr, port),
                    sni: sni.clone(),
                    hosts: vec![sni.clone(); *reqs],
                })
                .collect(),
        };
        use rand::seq::SliceRandom;
        jobs.shuffle(&mut rand::rng());
        let connections = jobs.len();
        let connector = tokio_rustls::TlsConnector::from(client_config(&ca));
        let (ok, failed) = stream::iter(jobs)
            .map(|j| run_conn(j, connector.clone(), port))
            .buffer_unordered(concurrency)
            .fold((0u64, 0u64), |acc, x| async move { (acc.0 + x.0, acc.1 + x.1) })
            .await;
        println!("{connections} {ok} {failed}");
    });
}

fn json_summary(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&text)
        .map(|v| v["summary"].clone())
        .unwrap_or(serde_json::Value::Null)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn main() {
    if let Ok(spec) = std::env::var("SWEEP_CEILING") {
        ceiling_main(&spec);
        return;
    }
    // `cargo bench` passes `--bench`; nothing else is understood.
    let sizes = env_list("SWEEP_N", "1000,10000");
    let group = env_list("SWEEP_GROUP", "20").first().copied().unwrap_or(20);
    let concurrency = env_list("SWEEP_CONCURRENCY", "32").first().copied().unwrap_or(32);
    let bin = common::bench_bin();
    assert!(
        bin.exists(),
        "{} missing: run `cargo build --release` first (or set COALSCOPE_BIN)",
        bin.display()
    );
    let me = std::env::current_exe().expect("current exe");
    let tmp = std::env::temp_dir().join(format!("coalscope-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("tmp dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "sweep: group size {group}, concurrency {concurrency}, coalscope {}",
        bin.display()
    );
    let mut cross_checked = false;
    for n in sizes {
        let layout = ScaleOptions::new(n, group);
        let started = Instant::now();
        let lab = rt
            .block_on(Lab::start(LabOptions {
                scale: Some(layout),
                ..Default::default()
            }))
            .expect("scale lab");
        let lab_start = started.elapsed();
        println!(
            "\nN = {n}: {} groups on {} addresses; lab started in {:.2} s",
            layout.groups(),
            layout.addresses(),
            secs(lab_start)
        );

        // 1. coalscope check --rounds 1.
        let out = tmp.join(format!("check-{n}.json"));
        let mut cmd = Command::new(&bin);
        cmd.args(common::lab_args("check", &lab, &lab.watchfile))
            .args(["--rounds", "1", "--format", "json", "--max-rps", "0"])
            .args(["--concurrency", &concurrency.to_string()])
            .env("COALSCOPE_LOG", "off");
        let check = measure(cmd, &out);
        let summary = json_summary(&out);
        let conns = summary["connections"].as_u64().unwrap_or(0);
        let reqs = summary["requests"].as_u64().unwrap_or(0);
        let json_mb = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
        println!(
            "  check:   wall {:7.2} s  cpu {:7.2} s  peak RSS {:6.1} MB  exit {}  connections {conns}  requests {reqs}  pairs {}  misdirected {}  coverage {}  json {:.1} MB",
            secs(check.wall),
            secs(check.cpu),
            check.max_rss_kb as f64 / 1024.0,
            check.status,
            summary["pairs"],
            summary["verdicts"]["misdirected"],
            summary["coverage"],
            json_mb,
        );
        let (pairs, bad) = layout.expected_pairs();
        println!("           expected pairs {pairs}, misdirected {bad}");

        // 2. The ceiling: the same handshakes and requests, no analysis.
        let out_c = tmp.join(format!("ceiling-{n}.txt"));
        let mut cmd = Command::new(&me);
        cmd.env(
            "SWEEP_CEILING",
            format!("{n} {group} {} {} {concurrency}", lab.port, lab.ca_file.display()),
        );
        let ceiling = measure(cmd, &out_c);
        let counts = std::fs::read_to_string(&out_c).unwrap_or_default();
        let c: Vec<u64> = counts.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        println!(
            "  ceiling: wall {:7.2} s  cpu {:7.2} s  peak RSS {:6.1} MB  exit {}  connections {}  requests {} (failed {})",
            secs(ceiling.wall),
            secs(ceiling.cpu),
            ceiling.max_rss_kb as f64 / 1024.0,
            ceiling.status,
            c.first().copied().unwrap_or(0),
            c.get(1).copied().unwrap_or(0),
            c.get(2).copied().unwrap_or(0),
        );
        println!(
            "  ratio check/ceiling: wall {:.2}×  cpu {:.2}×  (target: wall ≤ 2×)",
            secs(check.wall) / secs(ceiling.wall).max(1e-9),
            secs(check.cpu) / secs(ceiling.cpu).max(1e-9)
        );

        // 3. Once: the ceiling client against h2load on one address, same shape.
        if !cross_checked && Path::new("/usr/bin/h2load").exists() {
            cross_checked = true;
            let conns = 256usize;
            let per = 1 + group; // own + group-1 targets + a direct-like request
            let addr = layout.address(0);
            let sni = layout.name(1);
            let out_h = tmp.join("ceiling-one.txt");
            let mut cmd = Command::new(&me);
            cmd.env(
                "SWEEP_CEILING",
                format!(
                    "{n} {group} {} {} {conns} {addr} {sni} {conns} {per}",
                    lab.port,
                    lab.ca_file.display()
                ),
            );
            let mine = measure(cmd, &out_h);
            let out_h2 = tmp.join("h2load.txt");
            let mut cmd = Command::new("/usr/bin/h2load");
            cmd.args(["-n", &(conns * per).to_string(), "-c", &conns.to_string()])
                .args(["-m", &STREAMS.to_string(), "-t", "1"])
                .arg(format!("--connect-to={addr}:{}", lab.port))
                .arg(format!("https://{sni}:{}/", lab.port));
            let h2 = measure(cmd, &out_h2);
            let text = std::fs::read_to_string(&out_h2).unwrap_or_default();
            let line = |p: &str| {
                text.lines()
                    .find(|l| l.trim_start().starts_with(p))
                    .unwrap_or("")
                    .trim()
                    .to_string()
            };
            println!(
                "  cross-check, {conns} connections × {per} requests to {addr} (SNI {sni}), all at once:"
            );
            println!(
                "    ceiling client: wall {:.3} s  cpu {:.3} s  ({:.0} req/s)",
                secs(mine.wall),
                secs(mine.cpu),
                (conns * per) as f64 / secs(mine.wall)
            );
            println!(
                "    h2load:         wall {:.3} s  cpu {:.3} s  exit {}  [{}] [{}]",
                secs(h2.wall),
                secs(h2.cpu),
                h2.status,
                line("finished in"),
                line("requests:")
            );
        }
        rt.block_on(lab.shutdown());
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
