//! The floor: this binary again as the minimal client (`floor_client`), replaying what `serve`
//! did in its measured period.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use coalscope::lab::scale::ScaleOptions;
use coalscope::lab::Lab;

use crate::bench::{Bench, ServeLoad};
use crate::children::Proc;
use crate::floor_client::{FLOOR_CONN_TIMEOUT, FLOOR_ENV};
use crate::procfs::loadavg;
use crate::report::Row;

impl Bench {
    /// The floor: the minimal client replaying `load` over IDLE_MEASURE_S.
    pub(crate) fn floor(&self, lab: &Lab, layout: ScaleOptions, load: &ServeLoad) -> Result<Row> {
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
}
