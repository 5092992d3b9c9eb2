//! Mode `serve`: the exporter on the scale lab, CPU and memory over the measured period, and
//! what it did there (the load the floor replays).

use std::process::Stdio;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use coalscope::lab::Lab;

use crate::bench::{lab_names, show_cmd, Bench, ServeLoad};
use crate::children::Proc;
use crate::exporter::{facts_retry, free_port};
use crate::procfs::{loadavg, mb, proc_mem, proc_stat};
use crate::report::{opt, Row};

impl Bench {
    /// Mode `serve`: its row, and the load to replay for the floor.
    pub(crate) fn serve(&self, lab: &Lab) -> Result<(Row, ServeLoad)> {
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
}
