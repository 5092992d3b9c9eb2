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
//!
//! The files: `main.rs` (run the modes, the table), `knobs.rs` (environment), `bench.rs` (the
//! bench and the commands pointed at the lab), `modes/` (serve, floor, watch, memory),
//! `children.rs` (process control: child and tmux guards), `procfs.rs` and `exporter.rs`
//! (measurement: /proc, the exporter's /api/status and /metrics), `report.rs` (the table),
//! `floor_client.rs` (the floor's child process), `../common/minimal_client.rs` (shared with
//! `sweep`) and `../../tests/common/` (the binary, the lab's arguments).

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

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../common/minimal_client.rs"]
#[allow(dead_code)]
mod minimal_client;

mod bench;
mod children;
mod exporter;
mod floor_client;
mod knobs;
mod modes;
mod procfs;
mod report;

use anyhow::{bail, Context, Result};

use bench::{Bench, Interrupted};
use floor_client::{floor_main, FLOOR_ENV};
use knobs::Knobs;
use procfs::{clock_ticks, loadavg};
use report::{print_table, Row};

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
