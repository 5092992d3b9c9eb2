//! What the exporter of `coalscope serve` says: `/api/status` and `/metrics` over plain HTTP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

pub(crate) const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const HTTP_IO_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest HTTP answer read (the exporter's /metrics is capped by `--max-pairs`).
pub(crate) const HTTP_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// GET `path` over plain HTTP/1.0 with timeouts: the body of a 200 answer.
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, HTTP_CONNECT_TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(HTTP_IO_TIMEOUT))?;
    s.set_write_timeout(Some(HTTP_IO_TIMEOUT))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n"
    )
    .with_context(|| format!("sending GET {path}"))?;
    let mut raw = Vec::new();
    s.take(HTTP_MAX_BYTES)
        .read_to_end(&mut raw)
        .with_context(|| format!("reading GET {path}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("GET {path}: no end of headers"))?;
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("GET {path}: {status}");
    }
    Ok(body.to_string())
}

/// Value of the sample `name` (optionally with labels) in a Prometheus/OpenMetrics text.
pub(crate) fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let rest = if let Some(labels) = rest.strip_prefix('{') {
            &labels[labels.find('}')? + 1..]
        } else if rest.starts_with(' ') {
            rest
        } else {
            return None;
        };
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// What the exporter says about the engine.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Facts {
    pub(crate) connections: Option<f64>,
    pub(crate) requests: Option<f64>,
    pub(crate) coverage: Option<f64>,
    pub(crate) full_rps: Option<f64>,
    pub(crate) max_rps: Option<f64>,
    pub(crate) cycles: Option<f64>,
}

pub(crate) fn facts(listen: SocketAddr) -> Result<Facts> {
    let status = http_get(listen, "/api/status")?;
    let status: serde_json::Value = serde_json::from_str(&status).context("/api/status is not JSON")?;
    let metrics = http_get(listen, "/metrics")?;
    Ok(Facts {
        connections: metric(&metrics, "coalscope_connections_total"),
        requests: metric(&metrics, "coalscope_requests_total"),
        coverage: metric(&metrics, "coalscope_pair_coverage_ratio"),
        full_rps: status["full_rps"].as_f64(),
        max_rps: status["max_rps"].as_f64(),
        cycles: status["cycles"].as_f64(),
    })
}

/// `facts`, retried for a few seconds (the listener may not be up yet).
pub(crate) fn facts_retry(listen: SocketAddr) -> Result<Facts> {
    let mut last = None;
    for attempt in 0..5 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(1));
        }
        match facts(listen) {
            Ok(f) => return Ok(f),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| anyhow!("no attempt"))
        .context(format!("asking the exporter at {listen}")))
}

pub(crate) fn free_port() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a free port on 127.0.0.1")?;
    Ok(l.local_addr()?)
}
