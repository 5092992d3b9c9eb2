//! The floor client (this binary, run as a child with `IDLE_FLOOR_SPEC` set): the minimal
//! client of `sweep` opening the connections and sending the requests `serve` did.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use coalscope::lab::scale::ScaleOptions;

use crate::minimal_client::{client_config, run_conn, ConnJob};

/// Bound on one connection of the floor client (connect, handshake, every request).
pub(crate) const FLOOR_CONN_TIMEOUT: Duration = Duration::from_secs(15);
/// Environment variable that turns this binary into the floor client.
pub(crate) const FLOOR_ENV: &str = "IDLE_FLOOR_SPEC";

/// Connection `k` of the floor: name `k mod N` (SNI), `requests` requests for the name then
/// the other members of its group, in turn.
pub(crate) fn floor_job(layout: &ScaleOptions, port: u16, k: u64, requests: u64) -> ConnJob {
    let i = (k % layout.names as u64) as usize;
    let g = layout.group_of(i);
    let members = layout.members(g);
    let (first, len) = (members.start, members.len());
    let hosts = (0..requests as usize)
        .map(|r| layout.name(first + (i - first + r) % len))
        .collect();
    ConnJob {
        addr: SocketAddr::new(IpAddr::V4(layout.address(g)), port),
        sni: layout.name(i),
        hosts,
    }
}

/// `IDLE_FLOOR_SPEC="N K port connections requests seconds ca_file"`: open `connections`
/// connections evenly over `seconds`, `requests` requests in all spread evenly over them.
/// Prints "connections answered failed lost" (lost: connection tasks that panicked).
pub(crate) fn floor_main(spec: &str) -> Result<()> {
    let parts: Vec<&str> = spec.splitn(7, ' ').collect();
    let [n, k, port, conns, reqs, secs, ca] = parts[..] else {
        bail!("{FLOOR_ENV}: expected 7 fields, got {spec:?}");
    };
    let field = |name: &str, v: &str| -> Result<u64> {
        v.parse().map_err(|e| anyhow!("{FLOOR_ENV} {name}={v:?}: {e}"))
    };
    let layout = ScaleOptions::new(field("N", n)? as usize, field("K", k)? as usize);
    let port = u16::try_from(field("port", port)?)?;
    let conns = field("connections", conns)?;
    let reqs = field("requests", reqs)?;
    let secs: f64 = secs
        .parse()
        .map_err(|e| anyhow!("{FLOOR_ENV} seconds={secs:?}: {e}"))?;
    let ca = PathBuf::from(ca);
    if !ca.exists() {
        bail!("{FLOOR_ENV}: CA file {} missing", ca.display());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let (ok, failed, lost) = rt.block_on(async move {
        let connector = tokio_rustls::TlsConnector::from(client_config(&ca));
        let start = tokio::time::Instant::now();
        let mut set = tokio::task::JoinSet::new();
        // (answered, failed, tasks lost to a panic)
        let mut tally = (0u64, 0u64, 0u64);
        let add = |tally: &mut (u64, u64, u64), r: Result<(u64, u64), tokio::task::JoinError>| match r {
            Ok((a, f)) => {
                tally.0 += a;
                tally.1 += f;
            }
            Err(_) => tally.2 += 1,
        };
        for c in 0..conns {
            // Requests of connection c: an even share of the total.
            let r = (c + 1) * reqs / conns - c * reqs / conns;
            let job = floor_job(&layout, port, c, r);
            tokio::time::sleep_until(start + Duration::from_secs_f64(secs * c as f64 / conns as f64)).await;
            let connector = connector.clone();
            set.spawn(async move {
                match tokio::time::timeout(FLOOR_CONN_TIMEOUT, run_conn(job, connector, port)).await {
                    Ok(x) => x,
                    Err(_) => (0, r),
                }
            });
            while let Some(done) = set.try_join_next() {
                add(&mut tally, done);
            }
        }
        // Every task ends within FLOOR_CONN_TIMEOUT of its start.
        while let Some(done) = set.join_next().await {
            add(&mut tally, done);
        }
        tally
    });
    println!("{conns} {ok} {failed} {lost}");
    Ok(())
}
