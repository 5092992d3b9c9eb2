//! Mode `watch`: the dashboard inside a private tmux server; CPU and memory only.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use coalscope::lab::Lab;

use crate::bench::{lab_names, Bench, Interrupted};
use crate::children::{Tmux, STOP_GRACE};
use crate::procfs::{loadavg, mb, proc_mem, proc_stat, same_process_alive};
use crate::report::{opt, Row};

impl Bench {
    /// Mode `watch`: the dashboard in a private tmux server.
    pub(crate) fn watch(&self, lab: &Lab) -> Result<Row> {
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
    pub(crate) fn find_coalscope(&self, pane: u32) -> Result<u32> {
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
}
