//! Mode `memory`: `serve` on a big lab with a short window, sampled: the RSS curve.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use coalscope::lab::Lab;

use crate::bench::{lab_names, show_cmd, Bench};
use crate::children::Proc;
use crate::exporter::{facts, free_port};
use crate::procfs::{mb, proc_mem, proc_stat};
use crate::report::{opt, Row};

/// The window of the memory mode, unless IDLE_ARGS sets one.
pub(crate) const MEM_WINDOW: &str = "2m";

impl Bench {
    /// Mode `memory`: serve on a big lab with a short window; the RSS curve.
    pub(crate) fn memory(&self, lab: &Lab) -> Result<Row> {
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
