//! The faulted soak (issue 19): `coalscope serve` (the release binary, a child process) on the
//! 1,000-name scale lab for an hour while the lab changes under it: a server stopped and
//! started again every 10 minutes (each time another group's address), one DNS outage (longer
//! than the lab's 30 s TTL, shorter than TTL + `--dns-grace` when the binary has that option),
//! one certificate rotation (a group's wildcard newly issued, a day longer). Every window it
//! prints a markdown row: the child's RSS, open descriptors and CPU (utime + stime from
//! /proc/PID/stat, as % of one core over the window), cycles done; after each fault, whether
//! and when it became visible in `/metrics` and in `GET /api/events`, and how many events of it
//! the log held within 90 s of it ("no event log endpoint" when that route answers 404: then
//! the metrics alone). Throughout, a scraper asks for `/metrics` every 15 s as Prometheus
//! would (`COALSCOPE_SOAK_FAULTS_SCRAPE` seconds, 0 for none): a monitor is scraped from its
//! start, not only when something goes wrong (runs before 2026-12-04 16:00 scraped only in the
//! 90 s after each fault, so the exporter's encoding started at the first fault). Prints
//! numbers, asserts nothing.
//!
//! ```text
//! cargo bench --bench soak_faults                                   # the hour (the lead runs it)
//! COALSCOPE_SOAK_FAULTS_COMPRESSED=1 cargo bench --bench soak_faults # 5 minutes, faults every minute
//! COALSCOPE_SOAK_FAULTS_SECS=1800 COALSCOPE_SOAK_FAULTS_EVERY=300 COALSCOPE_SOAK_FAULTS_SAMPLE=30 \
//!   COALSCOPE_SOAK_FAULTS_NAMES=1000 COALSCOPE_SOAK_FAULTS_INTERVAL=10s cargo bench --bench soak_faults
//! ```
//! The child runs `serve WATCHFILE --listen 127.0.0.1:PORT --interval 10s --timeout 2s
//! --window 10m --dns LAB_DNS --ca-file LAB_CA` (another window with
//! `COALSCOPE_SOAK_FAULTS_WINDOW`; `--dns-grace 5m` added when `serve --help` lists it). The DNS outage starts half a period after the second restart and lasts 45 s;
//! the rotation comes half a period after the third restart; a stopped server stays down for
//! a sixth of the period (100 s in the hour, 10 s compressed).

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
#[path = "common/serve_child.rs"]
mod serve_child;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coalscope::lab::faults::Faults;
use coalscope::lab::scale::{ScaleOptions, SCALE_ZONE};
use coalscope::lab::{Lab, LabOptions};
use serve_child::{cpu_ticks, env_u64, get, json_number, sample};

/// How long the lab DNS stays silent: longer than its 30 s TTL, far shorter than the default
/// 5 minutes of `--dns-grace`.
const DNS_OUTAGE: Duration = Duration::from_secs(45);
/// How long after a fault its visibility is looked for (every 5 s).
const LOOK_FOR: Duration = Duration::from_secs(90);

/// The run's knobs.
struct Plan {
    secs: u64,
    every: u64,
    sample: u64,
    names: usize,
    interval: String,
    /// Seconds between two scrapes of `/metrics` (0: none but the fault checks').
    scrape: u64,
    /// `serve --window`.
    window: String,
}

impl Plan {
    fn from_env() -> Plan {
        let compressed = std::env::var("COALSCOPE_SOAK_FAULTS_COMPRESSED").is_ok_and(|v| v == "1");
        let (secs, every, sample) = if compressed {
            (300, 60, 15)
        } else {
            (3600, 600, 60)
        };
        Plan {
            secs: env_u64("COALSCOPE_SOAK_FAULTS_SECS", secs),
            every: env_u64("COALSCOPE_SOAK_FAULTS_EVERY", every).max(10),
            sample: env_u64("COALSCOPE_SOAK_FAULTS_SAMPLE", sample).max(1),
            names: env_u64("COALSCOPE_SOAK_FAULTS_NAMES", 1000) as usize,
            interval: std::env::var("COALSCOPE_SOAK_FAULTS_INTERVAL").unwrap_or_else(|_| "10s".into()),
            scrape: env_u64("COALSCOPE_SOAK_FAULTS_SCRAPE", 15),
            window: std::env::var("COALSCOPE_SOAK_FAULTS_WINDOW").unwrap_or_else(|_| "10m".into()),
        }
    }

    /// The faults, by second: (when, what).
    fn schedule(&self) -> Vec<(u64, Fault)> {
        let mut out = Vec::new();
        let down = Duration::from_secs((self.every / 6).max(5));
        let mut k = 1;
        while k * self.every < self.secs {
            out.push((
                k * self.every,
                Fault::Restart {
                    group: k as usize,
                    down,
                },
            ));
            k += 1;
        }
        out.push((2 * self.every + self.every / 2, Fault::DnsOutage));
        out.push((3 * self.every + self.every / 2, Fault::Rotate { group: 3 }));
        out.retain(|(t, _)| *t < self.secs);
        out.sort_by_key(|(t, _)| *t);
        out
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Restart { group: usize, down: Duration },
    DnsOutage,
    Rotate { group: usize },
}

/// What serve shows of the run so far.
struct Seen {
    /// When it was looked at (RFC 3339, seconds: as the events' `at`).
    at: String,
    metrics: String,
    /// None: no event log endpoint (404) or no answer.
    events: Option<serde_json::Value>,
    events_status: String,
}

async fn look(listen: SocketAddr) -> Seen {
    let at = serde_json::to_value(coalscope::engine::snapshot::Timestamp::now())
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let metrics = tokio::task::spawn_blocking(move || get(listen, "/metrics"))
        .await
        .ok()
        .and_then(Result::ok)
        .map(|(_, body, _)| body)
        .unwrap_or_default();
    let answer = tokio::task::spawn_blocking(move || get(listen, "/api/events"))
        .await
        .ok()
        .and_then(Result::ok);
    let (events_status, events) = match answer {
        Some((status, body, _)) if status.contains(" 200") => (status, serde_json::from_str(&body).ok()),
        Some((status, _, _)) => (status, None),
        None => ("no answer".into(), None),
    };
    Seen {
        at,
        metrics,
        events,
        events_status,
    }
}

/// The value of the first series of `metrics` whose line starts with `prefix`.
fn metric(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Series of `metrics` whose line contains every one of `parts` and whose value is not 0.
fn nonzero_series(metrics: &str, parts: &[&str]) -> usize {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && parts.iter().all(|p| l.contains(p)))
        .filter(|l| l.rsplit(' ').next().is_some_and(|v| v != "0"))
        .count()
}

/// The sum of the series of `metrics` whose line contains every one of `parts`.
fn sum_series(metrics: &str, parts: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// Events at or after `since` (RFC 3339) of kind `kind` whose host, origin or message
/// contains `needle`. By time, not by position: the log is bounded, and once full it keeps its
/// length while new events push old ones out.
fn events_of(seen: &Seen, since: &str, kind: &str, needle: &str) -> Option<usize> {
    let events = seen.events.as_ref()?["events"].as_array()?;
    Some(
        events
            .iter()
            .filter(|e| e["at"].as_str().is_some_and(|at| at >= since))
            .filter(|e| e["kind"] == kind)
            .filter(|e| {
                ["host", "origin", "target", "message"]
                    .iter()
                    .any(|k| e[*k].as_str().is_some_and(|s| s.contains(needle)))
            })
            .count(),
    )
}

/// Whether the fault shows: (in the metrics, how many events of it the log holds), from what
/// serve shows now.
fn visible(fault: Fault, base: &Seen, now: &Seen) -> (bool, Option<usize>) {
    let since = base.at.as_str();
    match fault {
        Fault::Restart { group, .. } => {
            // The group's failed handshakes grew, or a pair of it is judged `error`.
            let g = format!(".g{group:03}.");
            let failed = ["coalscope_endpoint_handshake_errors_total{", g.as_str()];
            let errors = nonzero_series(
                &now.metrics,
                &["coalscope_pair_verdict{", &g, "verdict=\"error\""],
            );
            let grew = sum_series(&now.metrics, &failed) > sum_series(&base.metrics, &failed);
            (grew || errors > 0, events_of(now, since, "verdict", &g))
        }
        Fault::DnsOutage => {
            let key = "coalscope_events_total{kind=\"dns-stale\"}";
            let grew = match (metric(&base.metrics, key), metric(&now.metrics, key)) {
                (Some(a), Some(b)) => b > a,
                _ => nonzero_series(&now.metrics, &["coalscope_dns_stale{"]) > 0,
            };
            (grew, events_of(now, since, "dns-stale", SCALE_ZONE))
        }
        Fault::Rotate { group } => {
            let g = format!(".g{group:03}.");
            let key = "coalscope_events_total{kind=\"cert-changed\"}";
            let grew = match (metric(&base.metrics, key), metric(&now.metrics, key)) {
                (Some(a), Some(b)) => b > a,
                // No event counter: the expiry gauge of a name of the group moved.
                _ => {
                    let expiry = |m: &str| {
                        m.lines()
                            .find(|l| {
                                l.starts_with("coalscope_cert_expiry_timestamp_seconds{") && l.contains(&g)
                            })
                            .map(str::to_string)
                    };
                    expiry(&base.metrics) != expiry(&now.metrics)
                }
            };
            (grew, events_of(now, since, "cert-changed", &g))
        }
    }
}

/// Set `fault` on the lab (a restart waits its down time, then starts the server again).
async fn apply(fault: Fault, faults: &Faults, layout: &ScaleOptions, port: u16) -> String {
    match fault {
        Fault::Restart { group, down } => {
            let addr = SocketAddr::from((layout.address(group % layout.addresses()), port));
            faults.stop(addr).await.expect("stop");
            let faults = faults.clone();
            tokio::spawn(async move {
                tokio::time::sleep(down).await;
                if let Err(e) = faults.start(addr).await {
                    println!("soak_faults: restarting {addr}: {e}");
                }
            });
            format!("server {addr} stopped for {} s", down.as_secs())
        }
        Fault::DnsOutage => {
            faults.set_dns_silent(true);
            let faults = faults.clone();
            tokio::spawn(async move {
                tokio::time::sleep(DNS_OUTAGE).await;
                faults.set_dns_silent(false);
            });
            format!("lab DNS silent for {} s", DNS_OUTAGE.as_secs())
        }
        Fault::Rotate { group } => match faults.rotate_group(group % layout.groups(), &[]) {
            Ok(r) => format!("certificate of {} rotated", r.group),
            Err(e) => format!("rotation failed: {e}"),
        },
    }
}

/// Scrape `/metrics` every `every` seconds, as Prometheus would, until aborted; each scrape's
/// outcome and latency go to the shared counts printed at the end (`SCRAPES`).
async fn scrape(listen: SocketAddr, every: u64) {
    let mut tick = tokio::time::interval(Duration::from_secs(every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let answer = tokio::task::spawn_blocking(move || get(listen, "/metrics")).await;
        let ok = matches!(&answer, Ok(Ok((status, _, _))) if status.contains(" 200"));
        let mut s = SCRAPES.lock().unwrap_or_else(|p| p.into_inner());
        s.0 += 1;
        if !ok {
            s.1 += 1;
        }
        if let Ok(Ok((_, _, took))) = answer {
            s.2 = s.2.max(took);
        }
    }
}

/// Scrapes of `/metrics` by `scrape`: (made, failed, slowest).
static SCRAPES: std::sync::Mutex<(u64, u64, Duration)> = std::sync::Mutex::new((0, 0, Duration::ZERO));

/// Look for `fault` for LOOK_FOR and print when it showed and how many events of it the log
/// held at the end (runs beside the sampling).
async fn report_visibility(fault: Fault, what: String, listen: SocketAddr, base: Seen) {
    let started = Instant::now();
    let mut in_metrics = None;
    let mut in_events = None;
    let mut count = 0;
    let mut endpoint = true;
    while started.elapsed() < LOOK_FOR {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let now = look(listen).await;
        let (m, e) = visible(fault, &base, &now);
        endpoint = !now.events_status.contains(" 404");
        if m && in_metrics.is_none() {
            in_metrics = Some(started.elapsed().as_secs());
        }
        if let Some(n) = e.filter(|n| *n > 0) {
            in_events.get_or_insert(started.elapsed().as_secs());
            count = count.max(n);
        }
    }
    let say = |v: Option<u64>| {
        v.map_or_else(
            || format!("not within {} s", LOOK_FOR.as_secs()),
            |s| format!("after {s} s"),
        )
    };
    let events = if endpoint {
        format!(
            "{} ({count} events of it within {} s)",
            say(in_events),
            LOOK_FOR.as_secs()
        )
    } else {
        "no event log endpoint".to_string()
    };
    println!(
        "> fault: {what}: metrics {}; /api/events {events}",
        say(in_metrics)
    );
}

/// `serve`'s command line: the lab, the listen address, and `--dns-grace` when it has it.
fn serve_command(lab: &Lab, plan: &Plan, listen: SocketAddr, stderr: std::fs::File) -> Command {
    let help = Command::new(common::bench_bin())
        .args(["serve", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut cmd = Command::new(common::bench_bin());
    cmd.arg("serve")
        .arg(&lab.watchfile)
        .args(["--listen", &listen.to_string()])
        .args([
            "--interval",
            &plan.interval,
            "--timeout",
            "2s",
            "--window",
            &plan.window,
        ])
        .args(["--dns", &lab.dns.to_string()])
        .arg("--ca-file")
        .arg(&lab.ca_file);
    if help.contains("--dns-grace") {
        cmd.args(["--dns-grace", "5m"]);
    }
    cmd.env_remove("COALSCOPE_DNS")
        .env_remove("COALSCOPE_RESOLVE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr));
    cmd
}

/// Kills the child on every way out.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("soak_faults: run with `cargo bench --bench soak_faults`");
        return;
    }
    let plan = Plan::from_env();
    let layout = ScaleOptions::new(plan.names, 20);
    let lab = Lab::start(LabOptions {
        scale: Some(layout),
        ..LabOptions::default()
    })
    .await
    .expect("scale lab");
    let faults = lab.faults();
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr")
    };
    let stderr_path = lab.dir().join("serve.stderr");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let child = Child(
        serve_command(&lab, &plan, listen, stderr)
            .spawn()
            .expect("spawn coalscope serve"),
    );
    let pid = child.0.id();
    // SAFETY: sysconf reads a constant of the system; no memory is handed over.
    #[allow(unsafe_code)]
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    println!(
        "soak_faults: coalscope serve (pid {pid}) on {} names ({} groups of 20), interval {}, window {}, for {} s; faults every {} s; a row every {} s; /metrics scraped every {} s\n",
        plan.names,
        layout.groups(),
        plan.interval,
        plan.window,
        plan.secs,
        plan.every,
        plan.sample,
        plan.scrape
    );
    let scraper = (plan.scrape > 0).then(|| tokio::spawn(scrape(listen, plan.scrape)));
    println!("| t (s) | RSS (MiB) | fds | CPU (% of one core) | cycles | faults set in the window |");
    println!("|---:|---:|---:|---:|---:|---|");
    let schedule = plan.schedule();
    let started = Instant::now();
    let mut next_fault = 0;
    let mut last_ticks = cpu_ticks(pid).unwrap_or(0);
    let mut last_at = Instant::now();
    let mut next_row = plan.sample;
    let mut in_window: Vec<String> = Vec::new();
    loop {
        let t = started.elapsed().as_secs();
        if t >= plan.secs {
            break;
        }
        while next_fault < schedule.len() && schedule[next_fault].0 <= t {
            let fault = schedule[next_fault].1;
            let base = look(listen).await;
            let what = apply(fault, &faults, &layout, lab.port).await;
            in_window.push(format!("{what} at {t} s"));
            tokio::spawn(report_visibility(fault, what, listen, base));
            next_fault += 1;
        }
        if t >= next_row {
            let Some((rss, fds)) = sample(pid) else {
                println!("soak_faults: /proc/{pid} is gone");
                break;
            };
            let ticks = cpu_ticks(pid).unwrap_or(last_ticks);
            let cpu = (ticks - last_ticks) as f64 / ticks_per_s / last_at.elapsed().as_secs_f64() * 100.0;
            (last_ticks, last_at) = (ticks, Instant::now());
            let cycles = tokio::task::spawn_blocking(move || get(listen, "/api/status"))
                .await
                .ok()
                .and_then(Result::ok)
                .and_then(|(_, body, _)| json_number(&body, "cycles"))
                .map_or_else(|| "-".to_string(), |c| format!("{c:.0}"));
            println!(
                "| {t} | {:.1} | {fds} | {cpu:.1} | {cycles} | {} |",
                rss as f64 / 1024.0,
                in_window.join("; ")
            );
            in_window.clear();
            next_row += plan.sample;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Some(scraper) = scraper {
        scraper.abort();
    }
    drop(child);
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let (made, failed, slowest) = *SCRAPES.lock().unwrap_or_else(|p| p.into_inner());
    println!(
        "\nscrapes of /metrics every {} s: {made} made, {failed} failed, the slowest {:.0} ms",
        plan.scrape,
        slowest.as_secs_f64() * 1000.0
    );
    println!(
        "stderr of serve: {} lines, {} panics",
        stderr.lines().count(),
        stderr.matches("panicked").count()
    );
    lab.shutdown().await;
}
