//! Idle benchmark: the CPU and memory of the live engine (`coalscope serve`, and `coalscope
//! watch` in a private tmux server) running with its default settings against the scale lab,
//! against the floor of a minimal client making the same TLS connections and requests per
//! second. Prints numbers, asserts nothing. Replaces the manual procedure of BENCHMARKS.md,
//! "idle and memory".
//!
//! ```text
//! cargo bench --bench idle                          # about 15 minutes
//! IDLE_N=200 IDLE_WARMUP_S=10 IDLE_MEASURE_S=20 IDLE_MEM_N=1000 IDLE_MEM_S=40 cargo bench --bench idle
//! IDLE_MODES=serve IDLE_ARGS="--interval 60s --max-rps 20" cargo bench --bench idle
//! ```
//! Knobs (environment, printed at the start): `IDLE_N` names (1000) in groups of `IDLE_GROUP`
//! (20); `IDLE_MODES` (`serve,watch,memory`); `IDLE_ARGS`, extra arguments of every
//! `coalscope` run, split on whitespace (none: default `--interval`, `--window`, `--max-rps`);
//! `IDLE_WARMUP_S` (60) then `IDLE_MEASURE_S` (120); `IDLE_MEM_N` (10000) names for `memory`,
//! sampled every `IDLE_MEM_SAMPLE_S` (10) for `IDLE_MEM_S` (300); `COALSCOPE_BIN` (default: the
//! binary cargo builds for the bench).
//!
//! The scale lab runs in this process (as in `sweep`); `coalscope` runs as a child, with every
//! other `COALSCOPE_*` variable but `COALSCOPE_LOG`/`COALSCOPE_LOG_FILE` removed. Modes:
//! - `serve`: `serve WATCHFILE --listen 127.0.0.1:PORT --dns … --ca-file … IDLE_ARGS`; after the
//!   warm-up, CPU (`/proc/PID/stat` utime+stime) over the measured period, VmRSS/VmHWM at its
//!   end, and from the exporter the connections and requests made in the period
//!   (`coalscope_connections_total`, `coalscope_requests_total` of `/metrics`), the coverage
//!   (`coalscope_pair_coverage_ratio`) and `full_rps` (`/api/status`).
//! - the floor, right after `serve`: this binary again (`IDLE_FLOOR_SPEC` set) as the minimal
//!   client of `sweep` (`common/minimal_client.rs`), opening as many connections and sending as
//!   many requests as `serve` did in its measured period, paced evenly over `IDLE_MEASURE_S`
//!   (connection k for name k mod N, SNI = the name, requests for the name then the other
//!   members of its group); no DNS, no analysis. CPU from `wait4`.
//! - `watch`: the dashboard inside `tmux -L coalscope-idle-PID` (200×50); CPU and memory only
//!   (`watch` has no HTTP API). Skipped when tmux is missing.
//! - `memory`: a second lab of `IDLE_MEM_N` names, `serve --window 2m IDLE_ARGS`; VmRSS, VmHWM,
//!   CPU and coverage every sample (the window is full after 2 minutes).
//!
//! Every child (serve, floor, the tmux server and the dashboard in it) is stopped when its mode
//! ends, on an error, on a panic (drop guards) and on SIGINT/SIGTERM.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "common/minimal_client.rs"]
#[allow(dead_code)]
mod minimal_client;

use std::fmt::Display;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use coalscope::lab::scale::ScaleOptions;
use coalscope::lab::{Lab, LabOptions};
use minimal_client::{client_config, run_conn, wait_rusage, ConnJob, Usage};

const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const HTTP_IO_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest HTTP answer read (the exporter's /metrics is capped by `--max-pairs`).
const HTTP_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Bound on one connection of the floor client (connect, handshake, every request).
const FLOOR_CONN_TIMEOUT: Duration = Duration::from_secs(15);
/// Time a child gets to end after SIGTERM (and the tmux processes after kill-server).
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The window of the memory mode, unless IDLE_ARGS sets one.
const MEM_WINDOW: &str = "2m";
/// Environment variable that turns this binary into the floor client.
const FLOOR_ENV: &str = "IDLE_FLOOR_SPEC";

// ---------------------------------------------------------------------------------------------
// Knobs

struct Knobs {
    n: usize,
    group: usize,
    modes: Vec<String>,
    args: Vec<String>,
    warmup: Duration,
    measure: Duration,
    mem_n: usize,
    mem_s: u64,
    mem_every: u64,
}

fn env_num<T: FromStr>(name: &str, default: T) -> Result<T>
where
    T::Err: Display,
{
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => Ok(default),
        Err(e) => bail!("{name}: {e}"),
        Ok(v) if v.trim().is_empty() => Ok(default),
        Ok(v) => v.trim().parse().map_err(|e| anyhow!("{name}={v:?}: {e}")),
    }
}

const MODES: [&str; 3] = ["serve", "watch", "memory"];

impl Knobs {
    fn from_env() -> Result<Knobs> {
        let modes: Vec<String> = std::env::var("IDLE_MODES")
            .unwrap_or_else(|_| MODES.join(","))
            .split(',')
            .map(|m| m.trim().to_ascii_lowercase())
            .filter(|m| !m.is_empty())
            .collect();
        if let Some(bad) = modes.iter().find(|m| !MODES.contains(&m.as_str())) {
            bail!("IDLE_MODES: unknown mode {bad:?} (known: {})", MODES.join(", "));
        }
        let knobs = Knobs {
            n: env_num("IDLE_N", 1000)?,
            group: env_num("IDLE_GROUP", 20)?,
            modes,
            args: std::env::var("IDLE_ARGS")
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect(),
            warmup: Duration::from_secs(env_num("IDLE_WARMUP_S", 60)?),
            measure: Duration::from_secs(env_num("IDLE_MEASURE_S", 120)?),
            mem_n: env_num("IDLE_MEM_N", 10_000)?,
            mem_s: env_num("IDLE_MEM_S", 300)?,
            mem_every: env_num("IDLE_MEM_SAMPLE_S", 10)?,
        };
        if knobs.n == 0 || knobs.group == 0 || knobs.mem_n == 0 {
            bail!("IDLE_N, IDLE_GROUP and IDLE_MEM_N must be at least 1");
        }
        if knobs.measure.is_zero() || knobs.mem_s == 0 || knobs.mem_every == 0 {
            bail!("IDLE_MEASURE_S, IDLE_MEM_S and IDLE_MEM_SAMPLE_S must be at least 1");
        }
        Ok(knobs)
    }

    fn wants(&self, mode: &str) -> bool {
        self.modes.iter().any(|m| m == mode)
    }

    fn print(&self, bin: &Path) {
        println!("idle: knobs");
        println!("  IDLE_N            = {}", self.n);
        println!("  IDLE_GROUP        = {}", self.group);
        println!("  IDLE_MODES        = {}", self.modes.join(","));
        println!(
            "  IDLE_ARGS         = {}",
            if self.args.is_empty() {
                "(none: default --interval, --window, --max-rps)".to_string()
            } else {
                self.args.join(" ")
            }
        );
        println!("  IDLE_WARMUP_S     = {}", self.warmup.as_secs());
        println!("  IDLE_MEASURE_S    = {}", self.measure.as_secs());
        println!("  IDLE_MEM_N        = {}", self.mem_n);
        println!("  IDLE_MEM_S        = {}", self.mem_s);
        println!("  IDLE_MEM_SAMPLE_S = {}", self.mem_every);
        println!("  COALSCOPE_BIN     = {}", bin.display());
    }

    /// Whether IDLE_ARGS sets option `--name` (as `--name V` or `--name=V`).
    fn sets(&self, name: &str) -> bool {
        self.args
            .iter()
            .any(|a| a == name || a.strip_prefix(name).is_some_and(|r| r.starts_with('=')))
    }
}

// ---------------------------------------------------------------------------------------------
// /proc

/// CPU time (utime + stime, clock ticks), start time and state of `pid` (whole process).
#[derive(Debug, Clone, Copy)]
struct ProcStat {
    cpu_ticks: u64,
    start_time: u64,
    state: char,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15, starttime 22.
    let num = |field: usize| f.get(field - 3).and_then(|v| v.parse::<u64>().ok());
    Some(ProcStat {
        cpu_ticks: num(14)? + num(15)?,
        start_time: num(22)?,
        state: f.first()?.chars().next()?,
    })
}

/// Whether `pid` is still the process that started at `start_time`, and not a zombie.
fn same_process_alive(pid: u32, start_time: u64) -> bool {
    proc_stat(pid).is_some_and(|s| s.start_time == start_time && s.state != 'Z' && s.state != 'X')
}

/// VmRSS and VmHWM of `pid`, KiB.
fn proc_mem(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ---------------------------------------------------------------------------------------------
// Children

/// Remove every `COALSCOPE_*` variable but the log ones, so that the caller's environment does
/// not change the measured configuration.
fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if let Some(k) = key.to_str() {
            if k.starts_with("COALSCOPE_") && k != "COALSCOPE_LOG" && k != "COALSCOPE_LOG_FILE" {
                cmd.env_remove(k);
            }
        }
    }
}

/// A child process: killed (SIGKILL) and reaped when dropped, unless it has ended already.
/// Reaped with `wait4` only, so that its rusage is known.
struct Proc {
    name: &'static str,
    child: Child,
    started: Instant,
    usage: Option<Usage>,
    stderr: PathBuf,
}

impl Proc {
    /// Spawn `cmd` with stdin from /dev/null, stdout to `stdout`, stderr to `stderr`.
    fn spawn(name: &'static str, mut cmd: Command, stdout: Stdio, stderr: PathBuf) -> Result<Proc> {
        let err = std::fs::File::create(&stderr).with_context(|| format!("creating {}", stderr.display()))?;
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(Stdio::from(err));
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {name} ({:?})", cmd.get_program()))?;
        Ok(Proc {
            name,
            child,
            started: Instant::now(),
            usage: None,
            stderr,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its rusage when it has ended (reaping it now if needed).
    fn poll(&mut self) -> Result<Option<Usage>> {
        if self.usage.is_none() {
            self.usage = wait_rusage(self.pid() as libc::pid_t, false, self.started)
                .with_context(|| format!("wait4 on {}", self.name))?;
        }
        Ok(self.usage)
    }

    /// An error (with the end of its stderr) when it has ended.
    fn check_alive(&mut self) -> Result<()> {
        match self.poll()? {
            None => Ok(()),
            Some(u) => bail!(
                "{} (pid {}) ended early, exit {}; stderr:\n{}",
                self.name,
                self.pid(),
                u.status,
                self.stderr_tail()
            ),
        }
    }

    fn signal(&self, sig: libc::c_int) {
        if self.usage.is_none() {
            // SAFETY: the pid is our own child and not reaped yet, so it cannot be reused.
            unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
        }
    }

    /// SIGTERM, up to STOP_GRACE to end, then SIGKILL; its rusage over its whole life.
    fn stop(&mut self) -> Result<Usage> {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Some(u) = self.poll()? {
                return Ok(u);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.signal(libc::SIGKILL);
        self.usage = wait_rusage(self.pid() as libc::pid_t, true, self.started)
            .with_context(|| format!("wait4 on {}", self.name))?;
        self.usage
            .ok_or_else(|| anyhow!("wait4 on {}: no status", self.name))
    }

    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        if tail.is_empty() {
            "(empty)".into()
        } else {
            tail
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.usage.is_none() {
            self.signal(libc::SIGKILL);
            let _ = wait_rusage(self.pid() as libc::pid_t, true, self.started);
        }
    }
}

/// A private tmux server (`tmux -L SOCKET -f CONF`): killed when dropped, and every process
/// recorded in it (the server, the pane's process) killed if it outlives `kill-server`.
struct Tmux {
    socket: String,
    conf: PathBuf,
    /// (pid, start time) of the tmux server and of the pane's process, once known.
    tracked: Vec<(u32, u64)>,
    /// The server's socket, once known: tmux leaves it behind after kill-server.
    socket_path: Option<PathBuf>,
}

impl Tmux {
    fn command(&self) -> Command {
        let mut c = Command::new("tmux");
        clean_env(&mut c);
        c.env_remove("TMUX")
            .arg("-L")
            .arg(&self.socket)
            .arg("-f")
            .arg(&self.conf)
            .stdin(Stdio::null());
        c
    }

    /// Run one tmux command, its stdout.
    fn run(&self, args: &[&str]) -> Result<String> {
        let out = self
            .command()
            .args(args)
            .output()
            .with_context(|| format!("running tmux {}", args.first().unwrap_or(&"")))?;
        if !out.status.success() {
            bail!(
                "tmux {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn track(&mut self, pid: u32) {
        if let Some(s) = proc_stat(pid) {
            self.tracked.push((pid, s.start_time));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self
            .command()
            .arg("kill-server")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline && self.tracked.iter().any(|&(p, s)| same_process_alive(p, s)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        for &(pid, start) in &self.tracked {
            if same_process_alive(pid, start) {
                eprintln!("idle: pid {pid} outlived tmux kill-server: SIGKILL");
                // SAFETY: plain kill(2) of a process checked (by its start time) to be ours.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        }
        if let Some(path) = &self.socket_path {
            use std::os::unix::fs::FileTypeExt;
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The exporter

/// GET `path` over plain HTTP/1.0 with timeouts: the body of a 200 answer.
fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, HTTP_CONNECT_TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(HTTP_IO_TIMEOUT))?;
    s.set_write_timeout(Some(HTTP_IO_TIMEOUT))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n"
    )
    .with_context(|| format!("sending GET {path}"))?;
    let mut raw = Vec::new();
    s.take(HTTP_MAX_BYTES)
        .read_to_end(&mut raw)
        .with_context(|| format!("reading GET {path}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("GET {path}: no end of headers"))?;
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("GET {path}: {status}");
    }
    Ok(body.to_string())
}

/// Value of the sample `name` (optionally with labels) in a Prometheus/OpenMetrics text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let rest = if let Some(labels) = rest.strip_prefix('{') {
            &labels[labels.find('}')? + 1..]
        } else if rest.starts_with(' ') {
            rest
        } else {
            return None;
        };
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// What the exporter says about the engine.
#[derive(Debug, Default, Clone, Copy)]
struct Facts {
    connections: Option<f64>,
    requests: Option<f64>,
    coverage: Option<f64>,
    full_rps: Option<f64>,
    max_rps: Option<f64>,
    cycles: Option<f64>,
}

fn facts(listen: SocketAddr) -> Result<Facts> {
    let status = http_get(listen, "/api/status")?;
    let status: serde_json::Value = serde_json::from_str(&status).context("/api/status is not JSON")?;
    let metrics = http_get(listen, "/metrics")?;
    Ok(Facts {
        connections: metric(&metrics, "coalscope_connections_total"),
        requests: metric(&metrics, "coalscope_requests_total"),
        coverage: metric(&metrics, "coalscope_pair_coverage_ratio"),
        full_rps: status["full_rps"].as_f64(),
        max_rps: status["max_rps"].as_f64(),
        cycles: status["cycles"].as_f64(),
    })
}

/// `facts`, retried for a few seconds (the listener may not be up yet).
fn facts_retry(listen: SocketAddr) -> Result<Facts> {
    let mut last = None;
    for attempt in 0..5 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(1));
        }
        match facts(listen) {
            Ok(f) => return Ok(f),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| anyhow!("no attempt"))
        .context(format!("asking the exporter at {listen}")))
}

fn free_port() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a free port on 127.0.0.1")?;
    Ok(l.local_addr()?)
}

// ---------------------------------------------------------------------------------------------
// Results

/// One row of the summary table.
#[derive(Default)]
struct Row {
    mode: String,
    names: usize,
    cpu_s: Option<f64>,
    pct: Option<f64>,
    rss_kib: Option<u64>,
    hwm_kib: Option<u64>,
    conn_s: Option<f64>,
    req_s: Option<f64>,
    coverage: Option<f64>,
    full_rps: Option<f64>,
    note: String,
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map(|x| format!("{x:.decimals$}")).unwrap_or_else(|| "-".into())
}

fn print_table(rows: &[Row]) {
    println!("\nidle: summary");
    println!(
        "{:<8} {:>6} {:>8} {:>7} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9}  note",
        "mode", "names", "cpu_s", "%core", "rss_MB", "hwm_MB", "conn/s", "req/s", "coverage", "full_rps"
    );
    for r in rows {
        println!(
            "{:<8} {:>6} {:>8} {:>7} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9}  {}",
            r.mode,
            r.names,
            opt(r.cpu_s, 2),
            opt(r.pct, 2),
            opt(r.rss_kib.map(mb), 1),
            opt(r.hwm_kib.map(mb), 1),
            opt(r.conn_s, 2),
            opt(r.req_s, 1),
            opt(r.coverage, 3),
            opt(r.full_rps, 1),
            r.note
        );
    }
}

/// What `serve` did in its measured period (what the floor replays).
struct ServeLoad {
    connections: u64,
    requests: u64,
    cpu_s: f64,
}

// ---------------------------------------------------------------------------------------------
// The bench

#[derive(Debug)]
struct Interrupted;

impl Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted (SIGINT or SIGTERM)")
    }
}

impl std::error::Error for Interrupted {}

struct Bench {
    knobs: Knobs,
    bin: PathBuf,
    me: PathBuf,
    tmp: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    stop: tokio::sync::watch::Receiver<bool>,
    ticks: f64,
}

impl Bench {
    /// Sleep `d`, or fail with `Interrupted` on SIGINT/SIGTERM.
    fn pause(&self, d: Duration) -> Result<()> {
        let mut stop = self.stop.clone();
        self.rt.block_on(async move {
            tokio::select! {
                _ = tokio::time::sleep(d) => Ok(()),
                r = stop.wait_for(|s| *s) => match r {
                    Ok(_) => Err(anyhow::Error::new(Interrupted)),
                    // No signal handler: never interrupted.
                    Err(_) => {
                        tokio::time::sleep(d).await;
                        Ok(())
                    }
                },
            }
        })
    }

    /// Wait `d`, checking `alive` every second.
    fn hold(&self, d: Duration, alive: &mut dyn FnMut() -> Result<()>) -> Result<()> {
        let end = Instant::now() + d;
        loop {
            alive()?;
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            self.pause((end - now).min(Duration::from_secs(1)))?;
        }
    }

    fn start_lab(&self, names: usize) -> Result<(Lab, ScaleOptions)> {
        let layout = ScaleOptions::new(names, self.knobs.group);
        let started = Instant::now();
        let lab = self
            .rt
            .block_on(Lab::start(LabOptions {
                scale: Some(layout),
                ..Default::default()
            }))
            .with_context(|| format!("starting the scale lab of {names} names"))?;
        println!(
            "\nlab: {names} names, {} groups on {} addresses, port {}, DNS {}; started in {:.2} s",
            layout.groups(),
            layout.addresses(),
            lab.port,
            lab.dns,
            started.elapsed().as_secs_f64()
        );
        Ok((lab, layout))
    }

    /// `coalscope SUBCOMMAND WATCHFILE --dns … --ca-file …` (no extra arguments yet).
    fn coalscope(&self, sub: &str, lab: &Lab) -> Command {
        let mut c = Command::new(&self.bin);
        clean_env(&mut c);
        c.args(common::lab_args(sub, lab, &lab.watchfile));
        c
    }

    fn serve_cmd(&self, lab: &Lab, listen: SocketAddr, window: Option<&str>) -> Command {
        let mut c = self.coalscope("serve", lab);
        c.args(["--listen", &listen.to_string()]);
        if let Some(w) = window {
            c.args(["--window", w]);
        }
        c.args(&self.knobs.args);
        c
    }

    /// Mode `serve`: its row, and the load to replay for the floor.
    fn serve(&self, lab: &Lab) -> Result<(Row, ServeLoad)> {
        let k = &self.knobs;
        let listen = free_port()?;
        let cmd = self.serve_cmd(lab, listen, None);
        println!("\nserve: {}", show_cmd(&cmd));
        let mut serve = Proc::spawn("serve", cmd, Stdio::null(), self.tmp.path().join("serve.stderr"))?;
        let pid = serve.pid();
        println!("  pid {pid}, listen {listen}; warm-up {} s", k.warmup.as_secs());
        self.hold(k.warmup, &mut || serve.check_alive())?;
        // The exporter first, then /proc: the fetches stay out of the measured CPU.
        let f0 = facts_retry(listen).context("before the measured period")?;
        let s0 = proc_stat(pid).ok_or_else(|| anyhow!("/proc/{pid}/stat unreadable"))?;
        let t0 = Instant::now();
        let load0 = loadavg();
        self.hold(k.measure, &mut || serve.check_alive())?;
        let s1 = proc_stat(pid).ok_or_else(|| anyhow!("/proc/{pid}/stat unreadable"))?;
        let wall = t0.elapsed().as_secs_f64();
        let (rss, hwm) = proc_mem(pid).ok_or_else(|| anyhow!("/proc/{pid}/status unreadable"))?;
        let load1 = loadavg();
        let f1 = facts_retry(listen).context("after the measured period")?;
        let life = serve.stop()?;

        let cpu_s = (s1.cpu_ticks - s0.cpu_ticks) as f64 / self.ticks;
        let delta = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
        let conns = delta(f0.connections, f1.connections);
        let reqs = delta(f0.requests, f1.requests);
        println!(
            "  measured {wall:.1} s (load average {load0} → {load1}): cpu {cpu_s:.2} s = {:.2}% of a core; VmRSS {:.1} MB, VmHWM {:.1} MB",
            cpu_s / wall * 100.0,
            mb(rss),
            mb(hwm)
        );
        println!(
            "  engine in the period: {} connections ({}/s), {} requests ({}/s); coverage {}, full_rps {} (max_rps {}), cycles {} → {}",
            opt(conns, 0),
            opt(conns.map(|c| c / wall), 2),
            opt(reqs, 0),
            opt(reqs.map(|r| r / wall), 1),
            opt(f1.coverage, 3),
            opt(f1.full_rps, 1),
            opt(f1.max_rps, 0),
            opt(f0.cycles, 0),
            opt(f1.cycles, 0),
        );
        println!(
            "  whole life (wait4): cpu {:.2} s over {:.1} s, peak RSS {:.1} MB, exit {}",
            life.cpu.as_secs_f64(),
            life.wall.as_secs_f64(),
            life.max_rss_kb as f64 / 1024.0,
            life.status
        );
        let row = Row {
            mode: "serve".into(),
            names: lab_names(lab),
            cpu_s: Some(cpu_s),
            pct: Some(cpu_s / wall * 100.0),
            rss_kib: Some(rss),
            hwm_kib: Some(hwm),
            conn_s: conns.map(|c| c / wall),
            req_s: reqs.map(|r| r / wall),
            coverage: f1.coverage,
            full_rps: f1.full_rps,
            note: format!("{:.0} s after {} s warm-up", wall, k.warmup.as_secs()),
        };
        let load = ServeLoad {
            connections: conns.unwrap_or(0.0).max(0.0).round() as u64,
            requests: reqs.unwrap_or(0.0).max(0.0).round() as u64,
            cpu_s,
        };
        Ok((row, load))
    }

    /// The floor: the minimal client replaying `load` over IDLE_MEASURE_S.
    fn floor(&self, lab: &Lab, layout: ScaleOptions, load: &ServeLoad) -> Result<Row> {
        let secs = self.knobs.measure.as_secs_f64();
        let ca = lab
            .ca_file
            .to_str()
            .ok_or_else(|| anyhow!("CA path is not UTF-8"))?;
        let mut cmd = Command::new(&self.me);
        cmd.env(
            FLOOR_ENV,
            format!(
                "{} {} {} {} {} {secs} {ca}",
                layout.names, layout.group_size, lab.port, load.connections, load.requests
            ),
        );
        println!(
            "\nfloor: minimal client, {} connections and {} requests paced over {secs:.0} s",
            load.connections, load.requests
        );
        let out = self.tmp.path().join("floor.out");
        let file = std::fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?;
        let mut floor = Proc::spawn(
            "floor",
            cmd,
            Stdio::from(file),
            self.tmp.path().join("floor.stderr"),
        )?;
        let load0 = loadavg();
        let deadline = Instant::now() + self.knobs.measure + FLOOR_CONN_TIMEOUT + Duration::from_secs(30);
        let usage = loop {
            if let Some(u) = floor.poll()? {
                break u;
            }
            if Instant::now() > deadline {
                bail!("floor client still running after {:.0} s: killed", secs + 45.0);
            }
            self.pause(Duration::from_millis(100))?;
        };
        if usage.status != 0 {
            bail!(
                "floor client: exit {}; stderr:\n{}",
                usage.status,
                floor.stderr_tail()
            );
        }
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let c: Vec<u64> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        let (conns, ok, failed, lost) = match c[..] {
            [a, b, d, l, ..] => (a, b, d, l),
            _ => bail!("floor client: unexpected output {text:?}"),
        };
        let wall = usage.wall.as_secs_f64();
        let cpu_s = usage.cpu.as_secs_f64();
        println!(
            "  wall {wall:.1} s (load average {load0} → {}): cpu {cpu_s:.2} s = {:.2}% of a core; peak RSS {:.1} MB; {conns} connections, {ok} requests answered, {failed} failed, {lost} connection tasks lost",
            loadavg(),
            cpu_s / wall * 100.0,
            usage.max_rss_kb as f64 / 1024.0,
        );
        let ratio = load.cpu_s / cpu_s.max(1e-9);
        println!("  ratio serve/floor (CPU over the same period): {ratio:.2}×");
        Ok(Row {
            mode: "floor".into(),
            names: layout.names,
            cpu_s: Some(cpu_s),
            pct: Some(cpu_s / wall * 100.0),
            rss_kib: None,
            hwm_kib: Some(usage.max_rss_kb.max(0) as u64),
            conn_s: Some(conns as f64 / wall),
            req_s: Some((ok + failed) as f64 / wall),
            coverage: None,
            full_rps: None,
            note: format!("serve/floor {ratio:.2}×; {failed} requests failed"),
        })
    }

    /// Mode `watch`: the dashboard in a private tmux server.
    fn watch(&self, lab: &Lab) -> Result<Row> {
        let k = &self.knobs;
        let tmux_ok = Command::new("tmux")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !tmux_ok {
            println!("\nwatch: skipped (no tmux)");
            return Ok(Row {
                mode: "watch".into(),
                names: lab_names(lab),
                note: "skipped (no tmux)".into(),
                ..Default::default()
            });
        }
        let conf = self.tmp.path().join("tmux.conf");
        // A dead pane stays, so that an early exit can be read; no user configuration.
        std::fs::write(&conf, "set -g remain-on-exit on\nset -g history-limit 1000\n")
            .with_context(|| format!("writing {}", conf.display()))?;
        let mut tmux = Tmux {
            socket: format!("coalscope-idle-{}", std::process::id()),
            conf,
            tracked: Vec::new(),
            socket_path: None,
        };
        // Where tmux puts a `-L` socket; replaced by what the server says once it runs.
        let tmpdir = std::env::var_os("TMUX_TMPDIR").unwrap_or_else(|| "/tmp".into());
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        tmux.socket_path = Some(Path::new(&tmpdir).join(format!("tmux-{uid}")).join(&tmux.socket));
        let mut cmd = self.coalscope("watch", lab);
        cmd.args(&k.args);
        // Several arguments after `--`: tmux executes them directly, without a shell.
        let argv: Vec<String> = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        println!(
            "\nwatch: tmux -L {} new-session -d -x 200 -y 50 -- {}",
            tmux.socket,
            argv.join(" ")
        );
        let mut new = tmux.command();
        new.args(["new-session", "-d", "-s", "idle", "-x", "200", "-y", "50", "--"])
            .args(&argv);
        let out = new.output().context("running tmux new-session")?;
        if !out.status.success() {
            bail!(
                "tmux new-session failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let ids = tmux.run(&[
            "display-message",
            "-p",
            "-t",
            "idle",
            "#{pid} #{pane_pid} #{socket_path}",
        ])?;
        let mut ids = ids.trim_end_matches('\n').splitn(3, ' ');
        let (server, pane) = match (ids.next().map(str::parse), ids.next().map(str::parse)) {
            (Some(Ok(s)), Some(Ok(p))) => (s, p),
            _ => bail!("tmux display-message: unexpected output"),
        };
        if let Some(path) = ids.next().filter(|p| p.ends_with(&tmux.socket)) {
            tmux.socket_path = Some(PathBuf::from(path));
        }
        tmux.track(server);
        tmux.track(pane);
        let pid = match self.find_coalscope(pane) {
            Ok(pid) => pid,
            Err(e) if e.downcast_ref::<Interrupted>().is_some() => return Err(e),
            Err(e) => {
                let screen = tmux
                    .run(&["capture-pane", "-p", "-t", "idle"])
                    .unwrap_or_default();
                bail!("{e:#}; screen:\n{}", screen.trim_end())
            }
        };
        if pid != pane {
            tmux.track(pid);
        }
        let start = proc_stat(pid).map(|s| s.start_time).unwrap_or(0);
        println!(
            "  tmux server pid {server}, coalscope watch pid {pid}{}; warm-up {} s",
            if pid == pane {
                " (the pane's process)"
            } else {
                " (child of the pane's process)"
            },
            k.warmup.as_secs()
        );
        let mut alive = || -> Result<()> {
            if same_process_alive(pid, start) {
                return Ok(());
            }
            let screen = tmux
                .run(&["capture-pane", "-p", "-t", "idle"])
                .unwrap_or_default();
            bail!(
                "coalscope watch (pid {pid}) ended early; screen:\n{}",
                screen.trim_end()
            )
        };
        self.hold(k.warmup, &mut alive)?;
        let s0 = proc_stat(pid).ok_or_else(|| anyhow!("/proc/{pid}/stat unreadable"))?;
        let tm0 = proc_stat(server).map(|s| s.cpu_ticks);
        let t0 = Instant::now();
        let load0 = loadavg();
        self.hold(k.measure, &mut alive)?;
        let s1 = proc_stat(pid).ok_or_else(|| anyhow!("/proc/{pid}/stat unreadable"))?;
        let tm1 = proc_stat(server).map(|s| s.cpu_ticks);
        let wall = t0.elapsed().as_secs_f64();
        let (rss, hwm) = proc_mem(pid).ok_or_else(|| anyhow!("/proc/{pid}/status unreadable"))?;
        let screen = tmux
            .run(&["capture-pane", "-p", "-t", "idle"])
            .unwrap_or_default();
        let header = screen
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
        drop(tmux); // kill-server, and make sure both processes are gone.
        let gone = !same_process_alive(pid, start);
        let cpu_s = (s1.cpu_ticks - s0.cpu_ticks) as f64 / self.ticks;
        let tmux_cpu = match (tm0, tm1) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / self.ticks),
            _ => None,
        };
        println!(
            "  measured {wall:.1} s (load average {load0} → {}): cpu {cpu_s:.2} s = {:.2}% of a core; VmRSS {:.1} MB, VmHWM {:.1} MB",
            loadavg(),
            cpu_s / wall * 100.0,
            mb(rss),
            mb(hwm)
        );
        println!(
            "  tmux server meanwhile: cpu {} s; connections/requests: not available (watch has no HTTP API)",
            opt(tmux_cpu, 2)
        );
        println!("  screen, first line: {header}");
        println!(
            "  after kill-server: coalscope watch {}",
            if gone { "gone" } else { "STILL RUNNING" }
        );
        Ok(Row {
            mode: "watch".into(),
            names: lab_names(lab),
            cpu_s: Some(cpu_s),
            pct: Some(cpu_s / wall * 100.0),
            rss_kib: Some(rss),
            hwm_kib: Some(hwm),
            note: format!("tmux server cpu {} s", opt(tmux_cpu, 2)),
            ..Default::default()
        })
    }

    /// The coalscope process of the pane: the pane's process itself (exec'd directly), or a
    /// child of it (a shell); its exec may take a moment.
    fn find_coalscope(&self, pane: u32) -> Result<u32> {
        let want = std::fs::canonicalize(&self.bin).unwrap_or_else(|_| self.bin.clone());
        let is_bin = |pid: u32| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| {
                let exe = exe.to_string_lossy();
                Path::new(exe.trim_end_matches(" (deleted)")) == want
            })
        };
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            if is_bin(pane) {
                return Ok(pane);
            }
            let children =
                std::fs::read_to_string(format!("/proc/{pane}/task/{pane}/children")).unwrap_or_default();
            if let Some(c) = children
                .split_whitespace()
                .filter_map(|c| c.parse().ok())
                .find(|&c| is_bin(c))
            {
                return Ok(c);
            }
            if Instant::now() > deadline {
                bail!("no {} process in the tmux pane (pid {pane})", want.display());
            }
            self.pause(Duration::from_millis(100))?;
        }
    }

    /// Mode `memory`: serve on a big lab with a short window; the RSS curve.
    fn memory(&self, lab: &Lab) -> Result<Row> {
        let k = &self.knobs;
        let listen = free_port()?;
        let window = if k.sets("--window") {
            None
        } else {
            Some(MEM_WINDOW)
        };
        let cmd = self.serve_cmd(lab, listen, window);
        println!("\nmemory: {}", show_cmd(&cmd));
        let mut serve = Proc::spawn("serve", cmd, Stdio::null(), self.tmp.path().join("memory.stderr"))?;
        let pid = serve.pid();
        println!("  pid {pid}; sampling every {} s for {} s", k.mem_every, k.mem_s);
        println!(
            "  {:>6} {:>9} {:>9} {:>7} {:>9} {:>7}",
            "t_s", "rss_MB", "hwm_MB", "%core", "coverage", "cycles"
        );
        let t0 = Instant::now();
        let mut last = (0u64, 0.0f64);
        let mut rss_hwm = (0u64, 0u64);
        let mut coverage = None;
        let mut t = 0;
        while t < k.mem_s {
            let step = k.mem_every.min(k.mem_s - t);
            t += step;
            let due = t0 + Duration::from_secs(t);
            self.hold(due.saturating_duration_since(Instant::now()), &mut || {
                serve.check_alive()
            })?;
            let now = t0.elapsed().as_secs_f64();
            let s = proc_stat(pid).ok_or_else(|| anyhow!("/proc/{pid}/stat unreadable"))?;
            rss_hwm = proc_mem(pid).ok_or_else(|| anyhow!("/proc/{pid}/status unreadable"))?;
            let pct = (s.cpu_ticks - last.0) as f64 / self.ticks / (now - last.1).max(1e-9) * 100.0;
            last = (s.cpu_ticks, now);
            // After /proc, so that the answer's buffers are not in this sample's RSS.
            let f = facts(listen).ok();
            coverage = f.and_then(|f| f.coverage).or(coverage);
            println!(
                "  {t:>6} {:>9.1} {:>9.1} {:>7.2} {:>9} {:>7}",
                mb(rss_hwm.0),
                mb(rss_hwm.1),
                pct,
                opt(f.and_then(|f| f.coverage), 3),
                opt(f.and_then(|f| f.cycles), 0),
            );
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu_s = last.0 as f64 / self.ticks;
        let life = serve.stop()?;
        println!(
            "  final: VmRSS {:.1} MB, VmHWM {:.1} MB; cpu {cpu_s:.2} s over {wall:.0} s = {:.2}% of a core (start-up included); exit {}",
            mb(rss_hwm.0),
            mb(rss_hwm.1),
            cpu_s / wall.max(1e-9) * 100.0,
            life.status
        );
        Ok(Row {
            mode: "memory".into(),
            names: lab_names(lab),
            cpu_s: Some(cpu_s),
            pct: Some(cpu_s / wall.max(1e-9) * 100.0),
            rss_kib: Some(rss_hwm.0),
            hwm_kib: Some(rss_hwm.1),
            coverage,
            note: format!(
                "after {wall:.0} s, window {}",
                if window.is_some() {
                    MEM_WINDOW
                } else {
                    "from IDLE_ARGS"
                }
            ),
            ..Default::default()
        })
    }
}

fn lab_names(lab: &Lab) -> usize {
    lab.scale().map(|s| s.names).unwrap_or(0)
}

fn show_cmd(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A mode's result into the table: its row, or its failure as a row (and `ok` false). An
/// interruption (SIGINT/SIGTERM) ends the whole run instead.
fn record(rows: &mut Vec<Row>, ok: &mut bool, mode: &str, names: usize, result: Result<Row>) -> Result<()> {
    match result {
        Ok(row) => rows.push(row),
        Err(e) if interrupted(&e) => return Err(e),
        Err(e) => {
            *ok = false;
            rows.push(failed_row(mode, names, &e));
        }
    }
    Ok(())
}

fn interrupted(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Interrupted>().is_some()
}

/// A failed mode: its row says why.
fn failed_row(mode: &str, names: usize, e: &anyhow::Error) -> Row {
    println!("{mode}: FAILED: {e:#}");
    Row {
        mode: mode.into(),
        names,
        note: format!(
            "failed: {}",
            e.to_string()
                .lines()
                .next()
                .unwrap_or("")
                .trim_end_matches("; stderr:")
                .trim_end_matches("; screen:")
        ),
        ..Default::default()
    }
}

fn run() -> Result<bool> {
    let knobs = Knobs::from_env()?;
    let bin = common::bench_bin();
    knobs.print(&bin);
    if !bin.exists() {
        bail!(
            "{} missing: build it (`cargo build --release`) or set COALSCOPE_BIN",
            bin.display()
        );
    }
    println!(
        "idle: {} cores, load average {}, CLK_TCK {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        loadavg(),
        clock_ticks()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    rt.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
        else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        let _ = stop_tx.send(true);
        // Keep the sender: waiters must see `true`, not a closed channel.
        std::future::pending::<()>().await;
    });
    let bench = Bench {
        bin,
        me: std::env::current_exe().context("current exe")?,
        tmp: tempfile::Builder::new()
            .prefix("coalscope-idle-")
            .tempdir()
            .context("temporary directory")?,
        rt,
        stop,
        ticks: clock_ticks(),
        knobs,
    };
    let k = &bench.knobs;
    let mut rows = Vec::new();
    let mut ok = true;

    if k.wants("serve") || k.wants("watch") {
        let (lab, layout) = bench.start_lab(k.n)?;
        if k.wants("serve") {
            match bench.serve(&lab) {
                Ok((row, load)) => {
                    rows.push(row);
                    if load.connections == 0 {
                        println!("\nfloor: skipped (serve made no connections in the measured period)");
                        rows.push(Row {
                            mode: "floor".into(),
                            names: layout.names,
                            note: "skipped: no connections to replay".into(),
                            ..Default::default()
                        });
                    } else {
                        let floor = bench.floor(&lab, layout, &load);
                        record(&mut rows, &mut ok, "floor", layout.names, floor)?;
                    }
                }
                Err(e) if interrupted(&e) => return Err(e),
                Err(e) => {
                    ok = false;
                    rows.push(failed_row("serve", layout.names, &e));
                }
            }
        }
        if k.wants("watch") {
            record(&mut rows, &mut ok, "watch", layout.names, bench.watch(&lab))?;
        }
        bench.rt.block_on(lab.shutdown());
    }
    if k.wants("memory") {
        let (lab, layout) = bench.start_lab(k.mem_n)?;
        record(&mut rows, &mut ok, "memory", layout.names, bench.memory(&lab))?;
        bench.rt.block_on(lab.shutdown());
    }
    print_table(&rows);
    Ok(ok)
}

// ---------------------------------------------------------------------------------------------
// The floor client (child process)

/// Connection `k` of the floor: name `k mod N` (SNI), `requests` requests for the name then
/// the other members of its group, in turn.
fn floor_job(layout: &ScaleOptions, port: u16, k: u64, requests: u64) -> ConnJob {
    let i = (k % layout.names as u64) as usize;
    let g = layout.group_of(i);
    let members = layout.members(g);
    let (first, len) = (members.start, members.len());
    let hosts = (0..requests as usize)
        .map(|r| layout.name(first + (i - first + r) % len))
        .collect();
    ConnJob {
        addr: SocketAddr::new(IpAddr::V4(layout.address(g)), port),
        sni: layout.name(i),
        hosts,
    }
}

/// `IDLE_FLOOR_SPEC="N K port connections requests seconds ca_file"`: open `connections`
/// connections evenly over `seconds`, `requests` requests in all spread evenly over them.
/// Prints "connections answered failed lost" (lost: connection tasks that panicked).
fn floor_main(spec: &str) -> Result<()> {
    let parts: Vec<&str> = spec.splitn(7, ' ').collect();
    let [n, k, port, conns, reqs, secs, ca] = parts[..] else {
        bail!("{FLOOR_ENV}: expected 7 fields, got {spec:?}");
    };
    let field = |name: &str, v: &str| -> Result<u64> {
        v.parse().map_err(|e| anyhow!("{FLOOR_ENV} {name}={v:?}: {e}"))
    };
    let layout = ScaleOptions::new(field("N", n)? as usize, field("K", k)? as usize);
    let port = u16::try_from(field("port", port)?)?;
    let conns = field("connections", conns)?;
    let reqs = field("requests", reqs)?;
    let secs: f64 = secs
        .parse()
        .map_err(|e| anyhow!("{FLOOR_ENV} seconds={secs:?}: {e}"))?;
    let ca = PathBuf::from(ca);
    if !ca.exists() {
        bail!("{FLOOR_ENV}: CA file {} missing", ca.display());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let (ok, failed, lost) = rt.block_on(async move {
        let connector = tokio_rustls::TlsConnector::from(client_config(&ca));
        let start = tokio::time::Instant::now();
        let mut set = tokio::task::JoinSet::new();
        // (answered, failed, tasks lost to a panic)
        let mut tally = (0u64, 0u64, 0u64);
        let add = |tally: &mut (u64, u64, u64), r: Result<(u64, u64), tokio::task::JoinError>| match r {
            Ok((a, f)) => {
                tally.0 += a;
                tally.1 += f;
            }
            Err(_) => tally.2 += 1,
        };
        for c in 0..conns {
            // Requests of connection c: an even share of the total.
            let r = (c + 1) * reqs / conns - c * reqs / conns;
            let job = floor_job(&layout, port, c, r);
            tokio::time::sleep_until(start + Duration::from_secs_f64(secs * c as f64 / conns as f64)).await;
            let connector = connector.clone();
            set.spawn(async move {
                match tokio::time::timeout(FLOOR_CONN_TIMEOUT, run_conn(job, connector, port)).await {
                    Ok(x) => x,
                    Err(_) => (0, r),
                }
            });
            while let Some(done) = set.try_join_next() {
                add(&mut tally, done);
            }
        }
        // Every task ends within FLOOR_CONN_TIMEOUT of its start.
        while let Some(done) = set.join_next().await {
            add(&mut tally, done);
        }
        tally
    });
    println!("{conns} {ok} {failed} {lost}");
    Ok(())
}

fn main() -> std::process::ExitCode {
    use std::process::ExitCode;
    if let Ok(spec) = std::env::var(FLOOR_ENV) {
        return match floor_main(&spec) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("idle floor: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    // `cargo bench` passes `--bench`; a plain `cargo test --benches` run passes nothing: only
    // measure when asked to benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!("idle: run with `cargo bench --bench idle`");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            println!("idle: some modes failed (see above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("idle: {e:#}");
            ExitCode::FAILURE
        }
    }
}
