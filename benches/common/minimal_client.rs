//! The minimal client the benches compare coalscope against (tokio + rustls + hyper h2, no
//! analysis: full handshakes without resumption, like coalscope), and `wait4` measurement of a
//! child process. Included with `#[path]` by `sweep.rs` (the ceiling) and `idle.rs` (the
//! floor); each uses part of it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;

/// Streams in flight at once on one connection (as coalscope's origin probe).
pub const STREAMS: usize = 8;

/// What `wait4` says about a child that ended.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub wall: Duration,
    /// User + system CPU time.
    pub cpu: Duration,
    /// Peak resident set size (KiB).
    pub max_rss_kb: i64,
    /// Exit code, or -1 when killed by a signal.
    pub status: i32,
}

/// Reap child `pid` with `wait4`: Ok(None) when `block` is false and it has not ended yet.
/// `started` is when it was spawned (for the wall time). The caller must not reap `pid`
/// elsewhere (std's `Child::wait` would not return its rusage).
pub fn wait_rusage(pid: libc::pid_t, block: bool, started: Instant) -> std::io::Result<Option<Usage>> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten by wait4.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if block { 0 } else { libc::WNOHANG };
    let r = loop {
        // SAFETY: pid is the caller's own child, not reaped elsewhere.
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut ru) };
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break r;
    };
    if r == -1 {
        return Err(std::io::Error::last_os_error());
    }
    if r == 0 {
        return Ok(None);
    }
    let wall = started.elapsed();
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    Ok(Some(Usage {
        wall,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        max_rss_kb: ru.ru_maxrss,
        status: if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        },
    }))
}

/// Run `cmd` with stdout to `out`, wait with `wait4`: wall, CPU, peak RSS of the child.
/// The child is reaped by `wait4` itself (std's `wait` would not return its rusage).
///
/// The peak RSS is at least this process's own peak: see `measure_fresh`.
#[allow(clippy::zombie_processes)]
pub fn measure(mut cmd: Command, out: &Path) -> Usage {
    let file = std::fs::File::create(out).expect("output file");
    cmd.stdout(Stdio::from(file)).stderr(Stdio::inherit());
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    match wait_rusage(pid, true, start) {
        Ok(Some(usage)) => usage,
        _ => panic!("wait4 failed"),
    }
}

/// Environment variable that turns a bench binary into the launcher of `measure_fresh`: the
/// file its child's usage goes to.
pub const LAUNCH_ENV: &str = "COALSCOPE_BENCH_LAUNCH";

/// `measure`, through a launcher: `me` (this bench binary) run again with `LAUNCH_ENV` set
/// spawns `cmd` and reports its usage, which this returns.
///
/// Why: on Linux a process's `ru_maxrss` starts at the peak RSS of the memory map that its
/// `exec` replaced, and std spawns with `posix_spawn` (vfork: the child runs on its parent's
/// memory map until it execs). So a child spawned by a large process reports that process's
/// peak RSS as its own if its own is smaller (`/bin/true` spawned by a process that once
/// touched 800 MB reports 833 MB). The launcher is a fresh, small process: its children report
/// their own peak, or the launcher's few MB.
pub fn measure_fresh(me: &Path, cmd: Command, out: &Path) -> Usage {
    let usage_file = out.with_extension("usage");
    let _ = std::fs::remove_file(&usage_file);
    let mut launcher = Command::new(me);
    launcher.arg(cmd.get_program()).args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => launcher.env(key, v),
            None => launcher.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        launcher.current_dir(dir);
    }
    launcher.env(LAUNCH_ENV, &usage_file);
    let own = measure(launcher, out);
    let text = std::fs::read_to_string(&usage_file)
        .unwrap_or_else(|e| panic!("launcher (exit {}): {}: {e}", own.status, usage_file.display()));
    let f: Vec<i64> = text.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    let [wall_ns, cpu_ns, max_rss_kb, status] = f[..] else {
        panic!("launcher: unexpected usage {text:?}");
    };
    let _ = std::fs::remove_file(&usage_file);
    Usage {
        wall: Duration::from_nanos(wall_ns as u64),
        cpu: Duration::from_nanos(cpu_ns as u64),
        max_rss_kb,
        status: status as i32,
    }
}

/// The launcher's main (`LAUNCH_ENV` set to `usage_file`): run the command in its arguments
/// (stdio inherited), wait with `wait4`, write "wall_ns cpu_ns max_rss_kb status" to
/// `usage_file`. The child is reaped by `wait4` itself.
#[allow(clippy::zombie_processes)]
pub fn launch_main(usage_file: &std::ffi::OsStr) {
    let mut args = std::env::args_os().skip(1);
    let program = args.next().expect("launcher: no program");
    let mut cmd = Command::new(program);
    cmd.args(args).env_remove(LAUNCH_ENV);
    let start = Instant::now();
    let child = cmd.spawn().expect("launcher: spawn");
    let usage = match wait_rusage(child.id() as libc::pid_t, true, start) {
        Ok(Some(usage)) => usage,
        _ => panic!("launcher: wait4 failed"),
    };
    std::fs::write(
        usage_file,
        format!(
            "{} {} {} {}\n",
            usage.wall.as_nanos(),
            usage.cpu.as_nanos(),
            usage.max_rss_kb,
            usage.status
        ),
    )
    .expect("launcher: usage file");
}

/// One connection of the minimal client: where, with which SNI, which hosts to request.
pub struct ConnJob {
    pub addr: SocketAddr,
    pub sni: String,
    pub hosts: Vec<String>,
}

/// TLS configuration of the minimal client: the lab CA only, ALPN h2, no resumption.
pub fn client_config(ca_file: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca_file).expect("CA file");
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.expect("CA cert")).expect("CA cert");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    // Like coalscope: a full handshake (with the certificate) on every connection.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// One connection: connect, handshake, then the requests, STREAMS in flight at once (the next
/// one starts as soon as one is answered, as `h2load -m STREAMS` does). Returns (requests
/// answered, failures).
pub async fn run_conn(job: ConnJob, connector: tokio_rustls::TlsConnector, port: u16) -> (u64, u64) {
    use futures::StreamExt;
    let ConnJob { addr, sni, hosts } = job;
    let total = hosts.len() as u64;
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
        let _ = tcp.set_nodelay(true);
        let sni = ServerName::try_from(sni).ok()?;
        let tls = connector.connect(sni, tcp).await.ok()?;
        let (mut send, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(
            TokioExecutor::new(),
            TokioIo::new(tls),
        )
        .await
        .ok()?;
        tokio::spawn(conn);
        send.ready().await.ok()?;
        let ok = futures::stream::iter(hosts)
            .map(|h| {
                let req = http::Request::get(format!("https://{h}:{port}/"))
                    .body(Empty::<Bytes>::new())
                    .expect("request");
                let fut = send.send_request(req);
                async move {
                    let resp = fut.await.ok()?;
                    resp.into_body().collect().await.ok().map(|_| ())
                }
            })
            .buffer_unordered(STREAMS)
            .fold(0u64, |ok, answer| async move { ok + u64::from(answer.is_some()) })
            .await;
        Some(ok)
    };
    match attempt.await {
        Some(ok) => (ok, total - ok),
        None => (0, total),
    }
}
