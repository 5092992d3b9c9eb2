//! A private tmux server for the tests that drive the real dashboard in a real terminal
//! (`tui_e2e`, `vantage_e2e`): start a session, read the screen, send keys, wait (bounded)
//! for what should show; the server is killed on drop, also when the test fails.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The private tmux server; killed on drop, also when the test fails.
pub struct Tmux {
    pub socket: String,
    /// The server's socket file, removed on drop (tmux leaves it behind).
    pub path: Option<std::path::PathBuf>,
}

impl Tmux {
    /// A new server on the private socket `socket`, with one session "t" of 120×40 running
    /// `script` (`sh -c`).
    pub fn start(socket: String, script: &str) -> Tmux {
        let mut tmux = Tmux { socket, path: None };
        let out = tmux.cmd(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "120",
            "-y",
            "40",
            "sh",
            "-c",
            script,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        tmux.path = Some(tmux.query("#{socket_path}").into());
        tmux
    }

    pub fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux")
    }

    pub fn capture(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    pub fn query(&self, format: &str) -> String {
        let out = self.cmd(&["display-message", "-p", "-t", "t", format]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        let out = self.cmd(&args);
        assert!(out.status.success(), "send-keys: {out:?}");
    }

    /// Poll the screen (bounded) until `ok` holds.
    pub async fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait(what, ok, false).await
    }

    /// [`wait_for`](Self::wait_for) a screen that also stays the same over two captures 200 ms
    /// apart: one the dashboard finished drawing (a capture can land in the middle of a
    /// frame's writes), for assertions on whole lines and for printing.
    pub async fn wait_steady(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait(what, ok, true).await
    }

    async fn wait(&self, what: &str, ok: impl Fn(&str) -> bool, steady: bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        loop {
            let screen = self.capture();
            if ok(&screen) && (!steady || screen == last) {
                return screen;
            }
            last = screen.clone();
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; the screen:\n{screen}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}
