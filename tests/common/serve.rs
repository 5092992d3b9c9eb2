//! A `coalscope serve` process started by a test (`serve`, `vantage_e2e`): spawned with the
//! arguments given (no `COALSCOPE_*` settings of the environment that would change it), its
//! announced address read from stderr, the rest of stderr kept; killed on drop.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

pub struct ServeProcess {
    pub child: Child,
    /// Where it listens (as announced: "listening on http://ADDR", or https:// with TLS).
    pub addr: SocketAddr,
    /// Everything it wrote on stderr, once it exited.
    pub stderr: JoinHandle<String>,
}

/// Start `coalscope serve` with `args` (after `serve`); waits (bounded) for its address.
pub async fn spawn(args: &[String]) -> ServeProcess {
    spawn_with_env(args, &[]).await
}

/// [`spawn`] with environment variables set (e.g. `COALSCOPE_LOG` to read what it did).
pub async fn spawn_with_env(args: &[String], env: &[(&str, &str)]) -> ServeProcess {
    let mut child = Command::new(super::bin())
        .arg("serve")
        .envs(env.iter().copied())
        .args(args)
        .env_remove("COALSCOPE_DNS")
        .env_remove("COALSCOPE_RESOLVE")
        .env_remove("COALSCOPE_VANTAGE")
        .env_remove("COALSCOPE_MAX_PAIRS")
        .env_remove("COALSCOPE_LISTEN")
        .env_remove("COALSCOPE_WEB_CONFIG")
        .env_remove("COALSCOPE_MAX_CONNECTIONS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn coalscope serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut seen = String::new();
    let addr = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            seen.push_str(&line);
            seen.push('\n');
            let announced = line
                .split("listening on http://")
                .nth(1)
                .or_else(|| line.split("listening on https://").nth(1));
            if let Some(rest) = announced {
                let addr = rest.split_whitespace().next().unwrap_or("");
                return addr.parse::<SocketAddr>().expect("announced address");
            }
        }
        panic!("serve exited before listening:\n{seen}");
    })
    .await
    .expect("serve announces its address");
    // Keep draining stderr (so the process never blocks on a full pipe), and keep it.
    let stderr = tokio::spawn(async move {
        let mut rest = seen;
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push_str(&line);
            rest.push('\n');
        }
        rest
    });
    ServeProcess { child, addr, stderr }
}
