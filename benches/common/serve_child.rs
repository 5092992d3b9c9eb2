//! What the soak benchmarks read of a `coalscope serve` child: its memory, descriptors and CPU
//! time from /proc, and its HTTP answers over a plain HTTP/1.0 connection (bounded). Included
//! with `#[path]` by `soak.rs`, `soak_faults.rs` and `scrape_load.rs`; /proc is read by
//! `idle/procfs.rs`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[path = "../idle/procfs.rs"]
#[allow(dead_code, unsafe_code)]
pub mod procfs;

/// VmRSS in KiB and the number of open descriptors of `pid`.
pub fn sample(pid: u32) -> Option<(u64, usize)> {
    let (rss, _peak) = procfs::proc_mem(pid)?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, fds))
}

/// utime + stime of `pid` in clock ticks.
#[allow(dead_code)]
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    procfs::proc_stat(pid).map(|s| s.cpu_ticks)
}

/// GET `path` over a plain HTTP/1.0 connection: (status line, body, time).
pub fn get(addr: SocketAddr, path: &str) -> Result<(String, String, Duration), String> {
    let started = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.take(64 * 1024 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Ok((
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
        started.elapsed(),
    ))
}

pub fn json_number(body: &str, key: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v[key].as_f64()
}
