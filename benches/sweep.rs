//! Sweep benchmark: `coalscope check --rounds 1` over the scale lab, against two ceilings of a
//! minimal client (tokio + rustls + hyper h2, no DNS, no analysis, full handshakes without
//! resumption like coalscope) run against the same servers in the same run, and a cross-check
//! of that client with h2load. Prints numbers, asserts nothing.
//!
//! ```text
//! CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 cargo build --release
//! CARGO_PROFILE_BENCH_LTO=false CARGO_PROFILE_BENCH_CODEGEN_UNITS=16 cargo bench --bench sweep
//! SWEEP_N=1000 SWEEP_GROUP=20 SWEEP_CONCURRENCY=32 SWEEP_MAX_RPS=0 cargo bench --bench sweep
//! ```
//! Knobs (environment, printed at the start):
//! - `SWEEP_N`: the list sizes, comma-separated (`1000,10000`);
//! - `SWEEP_GROUP`: names per group (K): one value for every size, or one per `SWEEP_N` entry
//!   (`10,100`: groups of 10 at 1,000 names, of 100 at 10,000 names, as issue 15 measures);
//! - `SWEEP_CONCURRENCY`: connections in flight, coalscope's `--concurrency` and the ceiling
//!   client's (512);
//! - `SWEEP_MAX_RPS`: coalscope's `--max-rps` (1000000; 0 is unlimited, no rate limiter);
//! - `SWEEP_H2LOAD`: the h2load binary (default `h2load` on `PATH`; `off` skips the
//!   cross-check);
//! - `SWEEP_H3`: `off` skips the HTTP/3 runs (step 5);
//! - `COALSCOPE_BIN`: the coalscope binary (default target/release/coalscope).
//!
//! Per size N (groups of K), the lab runs in this process and each client runs as a child
//! process, so that wall time, CPU seconds (user + system) and peak RSS come from `wait4`'s
//! rusage of the client alone. Each is started through a launcher (this binary again, small and
//! fresh: `measure_fresh` in `common/minimal_client.rs`), because a child spawned straight from
//! this process would report this process's peak RSS as its own whenever its own is smaller
//! (before the launcher, the ceiling's "1.5–3 GB" at 10,000 names was this process's peak after
//! parsing coalscope's whole JSON report). Runs, in order:
//! 1. `coalscope check --rounds 1 --format json --max-rps R --concurrency C`; its connections
//!    and requests are read from the JSON summary (`summary.connections`, `summary.requests`),
//!    never assumed;
//! 2. the ceiling "minimal work": the minimal work of the job. Per name one fresh connection
//!    (SNI = the name) carrying the name, then every target it can coalesce (the other members
//!    of its group), 8 streams at a time; nothing else. N connections, N×K requests;
//! 3. the ceiling "same work": the same client making exactly the connections and requests
//!    coalscope reported. The first N connections carry the minimal work; the connections
//!    beyond N share the requests beyond N×K evenly, each for its name and then the other
//!    members of its group (one request each, for the name itself, when coalscope opened one
//!    direct connection per name). With fewer connections or requests than the minimal work,
//!    every connection gets an even share. When coalscope does no more than the minimal work,
//!    the two ceilings coincide; both are run and printed;
//! 4. the h2load cross-check, in the minimal work's shape on one address: the minimal client
//!    and `h2load -c C -n C×K -m 8 -t 1` (C = the concurrency, at most 1,000: the lab serves
//!    1,024 connections per address), each with C connections of K requests for one name, all
//!    at once; their requests per second side by side (h2load does not verify certificates).
//!
//! 5. **HTTP/3 beside HTTP/2**: the same layout served over HTTP/3 too (`ScaleOptions::h3`:
//!    an HTTPS record per name with alpn h2,h3), and three `check`s of it: one HTTP/2 round
//!    (`--rounds 1 --protocols h2`), two HTTP/2 rounds (`--rounds 2 --protocols h2`), and one
//!    round over both (`--rounds 1`: the HTTP/2 round, then one HTTP/3 connection per name
//!    carrying its group). The second HTTP/2 round costs the second run minus the first; the
//!    HTTP/3 round the third minus the first: the same connections and requests over each
//!    protocol, so their CPU and wall per connection compare an HTTP/3 probe with an HTTP/2
//!    one, everything else (DNS, analysis, the report) the same in both differences.
//!
//! The table per N: wall, CPU, peak RSS, connections, requests and failed requests of each
//! run; then coalscope's ratios against each ceiling (wall, CPU, and the work: connections and
//! requests).
//!
//! Connections are started in a random order (shuffled once per run). The ceiling client
//! builds each connection's request list when it starts it, and spawns each connection as a
//! task, so that handshakes spread over the runtime's workers.

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
use minimal_client::{
    client_config, launch_main, measure_fresh, run_conn, ConnJob, Usage, LAUNCH_ENV, STREAMS,
};

/// Environment variable that turns this binary into the ceiling client.
const CEILING_ENV: &str = "SWEEP_CEILING";
/// Bound on one connection of the ceiling client (connect, handshake, every request).
const CONN_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections the scale lab serves per address (`lab/scale.rs`: 1,024), with a margin.
const LAB_CONNECTIONS_PER_ADDRESS: usize = 1000;

fn env_list(name: &str, default: &str) -> Vec<usize> {
    let list: Vec<usize> = std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|e| panic!("{name}: {s:?} is not a number: {e}"))
        })
        .collect();
    assert!(!list.is_empty(), "{name}: empty");
    list
}

fn env_one(name: &str, default: usize) -> usize {
    let list = env_list(name, &default.to_string());
    assert!(list.len() == 1, "{name}: one number expected");
    list[0]
}

/// Requests the minimal work makes: per name, its whole group (itself and every other member).
fn minimal_requests(layout: &ScaleOptions) -> usize {
    (0..layout.groups()).map(|g| layout.members(g).len().pow(2)).sum()
}

/// Share `c` of `total` split evenly over `of` parts.
fn share(c: usize, of: usize, total: usize) -> usize {
    (c + 1) * total / of - c * total / of
}

/// The ceiling client's connections: `conns` connections carrying `reqs` requests in all, in
/// the scale layout (see the module doc, "minimal work" and "same work").
struct Grid {
    layout: ScaleOptions,
    conns: usize,
    reqs: usize,
    minimal_reqs: usize,
}

impl Grid {
    fn new(layout: ScaleOptions, conns: usize, reqs: usize) -> Grid {
        Grid {
            layout,
            conns,
            reqs,
            minimal_reqs: minimal_requests(&layout),
        }
    }

    /// Connection `c`: its name's index and how many requests it carries.
    fn conn(&self, c: usize) -> (usize, usize) {
        let n = self.layout.names;
        let i = c % n;
        if self.conns < n || self.reqs < self.minimal_reqs {
            return (i, share(c, self.conns, self.reqs));
        }
        let (extra_conns, extra_reqs) = (self.conns - n, self.reqs - self.minimal_reqs);
        let group = self.layout.members(self.layout.group_of(i)).len();
        match (c < n, extra_conns) {
            // No connection beyond N: the base connections share the extra requests.
            (true, 0) => (i, group + share(c, n, extra_reqs)),
            (true, _) => (i, group),
            (false, _) => (i, share(c - n, extra_conns, extra_reqs)),
        }
    }

    /// Connection `c` as a job: SNI = its name; requests for the name, then the other members
    /// of its group in turn (wrapping around when it carries more than the group).
    fn job(&self, c: usize, names: &[String], port: u16) -> ConnJob {
        let (i, r) = self.conn(c);
        let g = self.layout.group_of(i);
        let members = self.layout.members(g);
        let (first, len) = (members.start, members.len());
        ConnJob {
            addr: SocketAddr::new(IpAddr::V4(self.layout.address(g)), port),
            sni: names[i].clone(),
            hosts: (0..r)
                .map(|x| names[first + (i - first + x) % len].clone())
                .collect(),
        }
    }
}

/// The ceiling client's main (child process). `SWEEP_CEILING` is either
/// `grid N K port ca_file concurrency connections requests` (the scale layout, see `Grid`) or
/// `one port ca_file addr sni connections requests_each` (the cross-check: every connection to
/// one address, one SNI, all at once). Prints "connections answered failed seconds" (seconds:
/// from the first connection started to the last ended, by its own clock).
fn ceiling_main(spec: &str) {
    let p: Vec<&str> = spec.split_whitespace().collect();
    let num = |k: usize| -> usize {
        p.get(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{CEILING_ENV}: field {k} of {spec:?}"))
    };
    enum Mode {
        Grid(Grid, Vec<String>),
        One(IpAddr, String, usize),
    }
    let (mode, port, ca, concurrency, conns) = match p.first().copied() {
        Some("grid") => {
            let layout = ScaleOptions::new(num(1), num(2));
            let names = (0..layout.names).map(|i| layout.name(i)).collect();
            let grid = Grid::new(layout, num(6), num(7));
            let conns = grid.conns;
            (Mode::Grid(grid, names), num(3), p[4], num(5), conns)
        }
        Some("one") => {
            let addr: IpAddr = p[3].parse().expect("address");
            (
                Mode::One(addr, p[4].to_string(), num(6)),
                num(1),
                p[2],
                num(5),
                num(5),
            )
        }
        _ => panic!("{CEILING_ENV}: unknown mode in {spec:?}"),
    };
    let port = u16::try_from(port).expect("port");
    let ca = PathBuf::from(ca);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (ok, failed, secs) = rt.block_on(async move {
        use rand::seq::SliceRandom;
        let connector = tokio_rustls::TlsConnector::from(client_config(&ca));
        let mut order: Vec<u32> = (0..conns as u32).collect();
        order.shuffle(&mut rand::rng());
        let job = |c: usize| match &mode {
            Mode::Grid(grid, names) => grid.job(c, names, port),
            Mode::One(addr, sni, each) => ConnJob {
                addr: SocketAddr::new(*addr, port),
                sni: sni.clone(),
                hosts: vec![sni.clone(); *each],
            },
        };
        let start = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        let (mut ok, mut failed) = (0u64, 0u64);
        let mut add = |r: Result<(u64, u64), tokio::task::JoinError>| {
            let (a, f) = r.expect("connection task");
            ok += a;
            failed += f;
        };
        for c in order {
            if set.len() >= concurrency.max(1) {
                add(set.join_next().await.expect("a task"));
            }
            let job = job(c as usize);
            let total = job.hosts.len() as u64;
            let connector = connector.clone();
            set.spawn(async move {
                tokio::time::timeout(CONN_TIMEOUT, run_conn(job, connector, port))
                    .await
                    .unwrap_or((0, total))
            });
        }
        while let Some(r) = set.join_next().await {
            add(r);
        }
        (ok, failed, start.elapsed().as_secs_f64())
    });
    println!("{conns} {ok} {failed} {secs:.6}");
}

/// What a ceiling client child printed, and how it ran.
struct Ceiling {
    usage: Usage,
    connections: u64,
    answered: u64,
    failed: u64,
    /// Seconds by its own clock (without process start-up).
    secs: f64,
}

impl Ceiling {
    fn requests(&self) -> u64 {
        self.answered + self.failed
    }
}

fn run_ceiling(me: &Path, spec: String, out: &Path) -> Ceiling {
    let mut cmd = Command::new(me);
    cmd.env(CEILING_ENV, spec).env_remove("COALSCOPE_LOG");
    let usage = measure_fresh(me, cmd, out);
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let f: Vec<&str> = text.split_whitespace().collect();
    let int = |k: usize| f.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ceiling {
        usage,
        connections: int(0),
        answered: int(1),
        failed: int(2),
        secs: f.get(3).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN),
    }
}

/// The `summary` object of coalscope's JSON report, read as a stream: the report's other
/// members are skipped, never held (a whole report parsed at 10,000 names took gigabytes).
fn json_summary(path: &Path) -> serde_json::Value {
    #[derive(serde::Deserialize)]
    struct Report {
        #[serde(default)]
        summary: serde_json::Value,
    }
    std::fs::File::open(path)
        .ok()
        .and_then(|f| serde_json::from_reader::<_, Report>(std::io::BufReader::new(f)).ok())
        .map_or(serde_json::Value::Null, |r| r.summary)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// 1234567 → "1,234,567".
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (k, ch) in s.chars().enumerate() {
        if k > 0 && (s.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

/// One row of the per-N table.
fn row(what: &str, u: &Usage, conns: u64, reqs: u64, failed: &str) {
    println!(
        "  | {what:<22} | {:>8.2} | {:>8.2} | {:>11.1} | {:>11} | {:>11} | {failed:>6} |",
        secs(u.wall),
        secs(u.cpu),
        u.max_rss_kb as f64 / 1024.0,
        thousands(conns),
        thousands(reqs),
    );
}

fn ratio_row(what: &str, check: &Usage, ceiling: &Ceiling, conns: u64, reqs: u64) {
    println!(
        "  | {what:<22} | {:>8} | {:>8} | {:>11} | {:>11} | {:>11} | {:>6} |",
        ratio(secs(check.wall), secs(ceiling.usage.wall)),
        ratio(secs(check.cpu), secs(ceiling.usage.cpu)),
        "",
        ratio(conns as f64, ceiling.connections as f64),
        ratio(reqs as f64, ceiling.requests() as f64),
        "",
    );
}

/// Where h2load is: `SWEEP_H2LOAD` (`off` for none), else `h2load` on `PATH`.
fn h2load_path() -> Option<PathBuf> {
    match std::env::var("SWEEP_H2LOAD") {
        Ok(v) if v == "off" => None,
        Ok(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("h2load"))
                .find(|p| p.is_file())
        }),
    }
}

/// The cross-check in the minimal work's shape: `conns` connections × `k` requests for one
/// name on one address, all at once, by the minimal client and by h2load.
fn cross_check(h2load: &Path, me: &Path, lab: &Lab, layout: &ScaleOptions, conns: usize, tmp: &Path) {
    let k = layout.group_size;
    let addr = layout.address(0);
    let sni = layout.name(1.min(layout.names - 1));
    let total = conns * k;
    let mine = run_ceiling(
        me,
        format!(
            "one {} {} {addr} {sni} {conns} {k}",
            lab.port,
            lab.ca_file.display()
        ),
        &tmp.join("ceiling-one.txt"),
    );
    let out_h2 = tmp.join("h2load.txt");
    let mut cmd = Command::new(h2load);
    cmd.args(["-n", &total.to_string(), "-c", &conns.to_string()])
        .args(["-m", &STREAMS.to_string(), "-t", "1"])
        .arg(format!("--connect-to={addr}:{}", lab.port))
        .arg(format!("https://{sni}:{}/", lab.port));
    let h2 = measure_fresh(me, cmd, &out_h2);
    let text = std::fs::read_to_string(&out_h2).unwrap_or_default();
    let line = |p: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(p))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    // "finished in 150.12ms, 34093.33 req/s, 1.23MB/s"
    let finished = line("finished in");
    let h2_rps = finished
        .split(", ")
        .find_map(|part| part.strip_suffix(" req/s"))
        .and_then(|v| v.trim().parse::<f64>().ok());
    println!(
        "  h2load cross-check, the minimal work's shape on one address: {conns} connections × {k} requests for {sni} at {addr}, {STREAMS} streams each, all at once:"
    );
    println!(
        "    minimal client: {:>9.0} req/s (its own clock, {:.3} s; {:.0} req/s over the process's wall {:.3} s)  cpu {:.3} s  requests {} failed {}",
        mine.requests() as f64 / mine.secs,
        mine.secs,
        total as f64 / secs(mine.usage.wall),
        secs(mine.usage.wall),
        secs(mine.usage.cpu),
        thousands(mine.answered),
        mine.failed,
    );
    println!(
        "    h2load:         {:>9} req/s (its own report; {:.0} req/s over the process's wall {:.3} s)  cpu {:.3} s  exit {}  [{}]",
        h2_rps.map_or("?".to_string(), |r| format!("{r:.0}")),
        total as f64 / secs(h2.wall),
        secs(h2.wall),
        secs(h2.cpu),
        h2.status,
        line("requests:")
    );
}

/// One `check` of `lab` (`--format json --max-rps R --concurrency C` and `extra`): its usage,
/// and connections and requests from its JSON summary.
fn run_check(
    me: &Path,
    bin: &Path,
    lab: &Lab,
    extra: &[String],
    out: &Path,
) -> (Usage, u64, u64, serde_json::Value) {
    let mut cmd = Command::new(bin);
    cmd.args(common::lab_args("check", lab, &lab.watchfile))
        .args(extra)
        .env("COALSCOPE_LOG", "off");
    let usage = measure_fresh(me, cmd, out);
    let summary = json_summary(out);
    let conns = summary["connections"].as_u64().unwrap_or(0);
    let reqs = summary["requests"].as_u64().unwrap_or(0);
    (usage, conns, reqs, summary)
}

/// Step 5: an HTTP/3 round beside a second HTTP/2 round, on the layout served over both.
fn h3_beside_h2(
    rt: &tokio::runtime::Runtime,
    me: &Path,
    bin: &Path,
    layout: ScaleOptions,
    common_args: &[String],
    tmp: &Path,
) {
    let layout = ScaleOptions { h3: true, ..layout };
    let lab = rt
        .block_on(Lab::start(LabOptions {
            scale: Some(layout),
            ..Default::default()
        }))
        .expect("scale lab over HTTP/3");
    let n = layout.names;
    let runs = [
        ("check, 1 round h2", "1", "h2"),
        ("check, 2 rounds h2", "2", "h2"),
        ("check, 1 round h2+h3", "1", "h2,h3"),
    ];
    let mut results = Vec::new();
    println!("  HTTP/3 beside HTTP/2 (the layout served over both; HTTPS records advertise h3):");
    println!(
        "  | {:<22} | {:>8} | {:>8} | {:>11} | {:>11} | {:>11} | {:>6} |",
        "run", "wall s", "CPU s", "peak RSS MB", "connections", "requests", "pairs"
    );
    println!(
        "  |{:-<24}|{:->10}|{:->10}|{:->13}|{:->13}|{:->13}|{:->8}|",
        "", "", "", "", "", "", ""
    );
    for (what, rounds, protocols) in runs {
        let mut extra = common_args.to_vec();
        extra.extend([
            "--rounds".into(),
            rounds.into(),
            "--protocols".into(),
            protocols.into(),
        ]);
        let (usage, conns, reqs, summary) = run_check(
            me,
            bin,
            &lab,
            &extra,
            &tmp.join(format!("h3-{n}-{rounds}-{protocols}.json")),
        );
        row(what, &usage, conns, reqs, &summary["pairs"].to_string());
        results.push((usage, conns, reqs, summary));
    }
    rt.block_on(lab.shutdown());
    let (one, two, both) = (&results[0], &results[1], &results[2]);
    let marginal = |what: &str, more: &(Usage, u64, u64, serde_json::Value)| {
        let conns = more.1.saturating_sub(one.1);
        let reqs = more.2.saturating_sub(one.2);
        let cpu = secs(more.0.cpu) - secs(one.0.cpu);
        let wall = secs(more.0.wall) - secs(one.0.wall);
        let per = |x: f64| {
            if conns > 0 {
                x * 1000.0 / conns as f64
            } else {
                f64::NAN
            }
        };
        println!(
            "  {what}: {} connections, {} requests more: CPU {cpu:+.2} s ({:.3} ms a connection), wall {wall:+.2} s ({:.3} ms a connection)",
            thousands(conns),
            thousands(reqs),
            per(cpu),
            per(wall)
        );
        (per(cpu), per(wall))
    };
    let (h2_cpu, h2_wall) = marginal("a second HTTP/2 round", two);
    let (h3_cpu, h3_wall) = marginal("an HTTP/3 round       ", both);
    println!(
        "  an HTTP/3 probe / an HTTP/2 probe: CPU {}, wall {}",
        ratio(h3_cpu, h2_cpu),
        ratio(h3_wall, h2_wall)
    );
    let verdicts = |r: &(Usage, u64, u64, serde_json::Value)| r.3["verdicts"].to_string();
    if verdicts(one) != verdicts(both) {
        println!(
            "  the verdicts differ: h2 only {}, h2+h3 {}",
            verdicts(one),
            verdicts(both)
        );
    }
}

fn main() {
    if let Some(usage_file) = std::env::var_os(LAUNCH_ENV) {
        launch_main(&usage_file);
        return;
    }
    if let Ok(spec) = std::env::var(CEILING_ENV) {
        ceiling_main(&spec);
        return;
    }
    // `cargo bench` passes `--bench`; nothing else is understood.
    let sizes = env_list("SWEEP_N", "1000,10000");
    let groups = env_list("SWEEP_GROUP", "10,100");
    assert!(
        groups.len() == 1 || groups.len() == sizes.len(),
        "SWEEP_GROUP: one group size, or one per SWEEP_N entry ({} sizes, {} group sizes)",
        sizes.len(),
        groups.len()
    );
    let concurrency = env_one("SWEEP_CONCURRENCY", 512).max(1);
    let max_rps = env_one("SWEEP_MAX_RPS", 1_000_000);
    let bin = common::bench_bin();
    assert!(
        bin.exists(),
        "{} missing: run `cargo build --release` first (or set COALSCOPE_BIN)",
        bin.display()
    );
    let h2load = h2load_path();
    let me = std::env::current_exe().expect("current exe");
    let tmp = std::env::temp_dir().join(format!("coalscope-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("tmp dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("sweep: knobs");
    println!("  SWEEP_N           = {sizes:?}");
    println!("  SWEEP_GROUP       = {groups:?}");
    println!("  SWEEP_CONCURRENCY = {concurrency}");
    println!("  SWEEP_MAX_RPS     = {max_rps}");
    println!(
        "  SWEEP_H2LOAD      = {}",
        h2load
            .as_ref()
            .map_or("none (no cross-check)".into(), |p| p.display().to_string())
    );
    let h3 = std::env::var("SWEEP_H3").map_or(true, |v| v != "off");
    println!("  SWEEP_H3          = {}", if h3 { "on" } else { "off" });
    println!("  COALSCOPE_BIN     = {}", bin.display());
    println!(
        "  {} cores, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (index, &n) in sizes.iter().enumerate() {
        let group = groups[if groups.len() == 1 { 0 } else { index }];
        let layout = ScaleOptions::new(n, group);
        let started = Instant::now();
        let lab = rt
            .block_on(Lab::start(LabOptions {
                scale: Some(layout),
                ..Default::default()
            }))
            .expect("scale lab");
        println!(
            "\nN = {n}, K = {group}: {} groups on {} addresses; lab started in {:.2} s",
            layout.groups(),
            layout.addresses(),
            secs(started.elapsed())
        );

        // 1. coalscope check --rounds 1.
        let out = tmp.join(format!("check-{n}.json"));
        let common_args = [
            "--format".to_string(),
            "json".into(),
            "--max-rps".into(),
            max_rps.to_string(),
            "--concurrency".into(),
            concurrency.to_string(),
        ];
        let mut extra = vec!["--rounds".to_string(), "1".into()];
        extra.extend(common_args.iter().cloned());
        let (check, conns, reqs, summary) = run_check(&me, &bin, &lab, &extra, &out);
        let json_mb = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
        let (pairs, bad) = layout.expected_pairs();
        println!(
            "  check {}: exit {}; pairs {} (expected {pairs}), misdirected {} (expected {bad}), coverage {}, host errors {}, JSON {json_mb:.1} MB",
            extra.join(" "),
            check.status,
            summary["pairs"],
            summary["verdicts"]["misdirected"],
            summary["coverage"],
            summary["host_errors"],
        );

        // 2. and 3. The ceilings.
        let spec = |c: u64, r: u64| {
            format!(
                "grid {n} {group} {} {} {concurrency} {c} {r}",
                lab.port,
                lab.ca_file.display()
            )
        };
        let minimal = run_ceiling(
            &me,
            spec(n as u64, minimal_requests(&layout) as u64),
            &tmp.join(format!("minimal-{n}.txt")),
        );
        let same = (conns > 0 && reqs > 0)
            .then(|| run_ceiling(&me, spec(conns, reqs), &tmp.join(format!("same-{n}.txt"))));

        println!(
            "  | {:<22} | {:>8} | {:>8} | {:>11} | {:>11} | {:>11} | {:>6} |",
            "run", "wall s", "CPU s", "peak RSS MB", "connections", "requests", "failed"
        );
        println!(
            "  |{:-<24}|{:->10}|{:->10}|{:->13}|{:->13}|{:->13}|{:->8}|",
            "", "", "", "", "", "", ""
        );
        row("coalscope check", &check, conns, reqs, "");
        let ceiling_row = |what: &str, c: &Ceiling| {
            row(what, &c.usage, c.connections, c.requests(), &c.failed.to_string());
        };
        ceiling_row("ceiling: minimal work", &minimal);
        match &same {
            Some(same) => ceiling_row("ceiling: same work", same),
            None => println!(
                "  | ceiling: same work     | not run: coalscope reported no connections or requests"
            ),
        }
        ratio_row("check / minimal work", &check, &minimal, conns, reqs);
        if let Some(same) = &same {
            ratio_row("check / same work", &check, same, conns, reqs);
        }
        for (what, c) in [("minimal work", Some(&minimal)), ("same work", same.as_ref())] {
            if let Some(c) = c {
                if c.usage.status != 0 || c.failed > 0 {
                    println!(
                        "  ceiling {what}: exit {}, {} requests failed: its numbers are not a ceiling",
                        c.usage.status, c.failed
                    );
                }
            }
        }

        // 4. The h2load cross-check.
        if let Some(h2load) = &h2load {
            let c = concurrency.min(LAB_CONNECTIONS_PER_ADDRESS);
            cross_check(h2load, &me, &lab, &layout, c, &tmp);
        }
        rt.block_on(lab.shutdown());

        // 5. HTTP/3 beside HTTP/2.
        if h3 {
            h3_beside_h2(&rt, &me, &bin, layout, &common_args, &tmp);
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
