//! Process control: the children of the bench (`coalscope`, the floor client, a private tmux
//! server), each stopped when its guard drops, also on an error or a panic.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::minimal_client::{wait_rusage, Usage};
use crate::procfs::{proc_stat, same_process_alive};

/// Time a child gets to end after SIGTERM (and the tmux processes after kill-server).
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);

/// Remove every `COALSCOPE_*` variable but the log ones, so that the caller's environment does
/// not change the measured configuration.
pub(crate) fn clean_env(cmd: &mut Command) {
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
pub(crate) struct Proc {
    pub(crate) name: &'static str,
    pub(crate) child: Child,
    pub(crate) started: Instant,
    pub(crate) usage: Option<Usage>,
    pub(crate) stderr: PathBuf,
}

impl Proc {
    /// Spawn `cmd` with stdin from /dev/null, stdout to `stdout`, stderr to `stderr`.
    pub(crate) fn spawn(
        name: &'static str,
        mut cmd: Command,
        stdout: Stdio,
        stderr: PathBuf,
    ) -> Result<Proc> {
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

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its rusage when it has ended (reaping it now if needed).
    pub(crate) fn poll(&mut self) -> Result<Option<Usage>> {
        if self.usage.is_none() {
            self.usage = wait_rusage(self.pid() as libc::pid_t, false, self.started)
                .with_context(|| format!("wait4 on {}", self.name))?;
        }
        Ok(self.usage)
    }

    /// An error (with the end of its stderr) when it has ended.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
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

    pub(crate) fn signal(&self, sig: libc::c_int) {
        if self.usage.is_none() {
            // SAFETY: the pid is our own child and not reaped yet, so it cannot be reused.
            unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
        }
    }

    /// SIGTERM, up to STOP_GRACE to end, then SIGKILL; its rusage over its whole life.
    pub(crate) fn stop(&mut self) -> Result<Usage> {
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

    pub(crate) fn stderr_tail(&self) -> String {
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
pub(crate) struct Tmux {
    pub(crate) socket: String,
    pub(crate) conf: PathBuf,
    /// (pid, start time) of the tmux server and of the pane's process, once known.
    pub(crate) tracked: Vec<(u32, u64)>,
    /// The server's socket, once known: tmux leaves it behind after kill-server.
    pub(crate) socket_path: Option<PathBuf>,
}

impl Tmux {
    pub(crate) fn command(&self) -> Command {
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
    pub(crate) fn run(&self, args: &[&str]) -> Result<String> {
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

    pub(crate) fn track(&mut self, pid: u32) {
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
