//! What each candidate name is: its addresses (the engine's DNS, so `--dns` and `--resolve`
//! apply) and the certificate it serves at each of its first addresses (a TLS handshake with
//! SNI = the name, as `check` opens it; nothing is requested). Bounded: `concurrency` names at
//! once, [`PER_ADDRESS`] handshakes at once per address, [`ADDRESSES_PROBED`] addresses per
//! name, each step within the engine's timeout.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::sync::Semaphore;

use crate::engine::probe::cert::{self, CertSummary};
use crate::engine::probe::dns::Dns;
use crate::engine::probe::tls::{self, TlsSettings};

/// Addresses of one name whose certificate is read.
pub const ADDRESSES_PROBED: usize = 4;

/// Handshakes in flight at once to one address (the prober's per-address courtesy).
pub const PER_ADDRESS: usize = 8;

/// The certificate a name serves at one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub summary: CertSummary,
    /// Why the chain does not verify (expired, unknown issuer, …), untrusted text.
    pub chain_error: Option<String>,
    /// The protocol the server chose (`h2`, `http/1.1`), None when it chose none.
    pub alpn: Option<String>,
}

/// One candidate name, probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// Normalised, as in a watch-file.
    pub host: String,
    pub port: u16,
    /// Sorted; empty when the name did not resolve.
    pub addresses: Vec<IpAddr>,
    pub dns_error: Option<String>,
    /// One per probed address, in `addresses` order: the certificate or why none was read.
    pub served: Vec<(IpAddr, Result<Served, String>)>,
}

impl Probed {
    /// The certificate the name serves at the first address that gave one.
    pub fn first_cert(&self) -> Option<&Served> {
        self.served.iter().find_map(|(_, s)| s.as_ref().ok())
    }

    /// Why no certificate was read, when none was (the first address's reason).
    pub fn cert_error(&self) -> Option<&str> {
        if self.first_cert().is_some() {
            return None;
        }
        self.served
            .iter()
            .find_map(|(_, s)| s.as_ref().err().map(String::as_str))
    }
}

/// Resolve and read the certificates of `names` (host, port), `concurrency` names at a time;
/// the answers come back in the order of `names`.
pub async fn probe_names(
    dns: &Dns,
    tls: &TlsSettings,
    names: &[(String, u16)],
    concurrency: usize,
) -> Vec<Probed> {
    let limits = Limits::default();
    futures::stream::iter(names)
        .map(|(host, port)| probe_one(dns, tls, &limits, host, *port))
        .buffered(concurrency.max(1))
        .collect()
        .await
}

#[derive(Default)]
struct Limits(Mutex<HashMap<IpAddr, Arc<Semaphore>>>);

impl Limits {
    fn of(&self, addr: IpAddr) -> Arc<Semaphore> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(addr)
            .or_insert_with(|| Arc::new(Semaphore::new(PER_ADDRESS)))
            .clone()
    }
}

async fn probe_one(dns: &Dns, tls: &TlsSettings, limits: &Limits, host: &str, port: u16) -> Probed {
    let answer = dns.resolve(host, port).await;
    let mut addresses = answer.addresses;
    addresses.sort();
    addresses.dedup();
    let mut served = Vec::new();
    for &addr in addresses.iter().take(ADDRESSES_PROBED) {
        let semaphore = limits.of(addr);
        let _permit = semaphore.acquire().await;
        served.push((addr, certificate(tls, SocketAddr::new(addr, port), host).await));
    }
    Probed {
        host: host.to_string(),
        port,
        dns_error: answer.error.filter(|_| addresses.is_empty()),
        addresses,
        served,
    }
}

async fn certificate(settings: &TlsSettings, addr: SocketAddr, host: &str) -> Result<Served, String> {
    let (stream, info) = tls::connect(settings, addr, host, tls::ALPN_H2_H1)
        .await
        .map_err(|e| e.to_string())?;
    drop(stream);
    let leaf = info.chain.first().ok_or("the server sent no certificate")?;
    let summary = cert::parse_leaf(leaf).map_err(|e| e.to_string())?;
    Ok(Served {
        summary,
        chain_error: info.chain_error,
        alpn: info.alpn,
    })
}
