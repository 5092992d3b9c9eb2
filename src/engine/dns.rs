//! Name resolution with hickory-resolver: A and AAAA, the CNAME chain, TTLs; custom
//! nameservers (UDP with TCP fallback on truncation) and `--resolve` overrides.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// A fixed answer for a name, like curl's `--resolve HOST[:PORT]:ADDR[,ADDR…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOverride {
    /// Normalised host (lower-case A-labels, no trailing dot).
    pub host: String,
    /// None: applies to every port.
    pub port: Option<u16>,
    pub addrs: Vec<IpAddr>,
}

impl std::str::FromStr for ResolveOverride {
    type Err = String;
    /// Parses `HOST[:PORT]:ADDR[,ADDR…]`; IPv6 addresses may be bracketed (`[::1]`).
    fn from_str(s: &str) -> Result<Self, String> {
        let _ = s;
        todo!()
    }
}

#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Nameservers to ask instead of the system's resolv.conf; empty = system config.
    pub nameservers: Vec<SocketAddr>,
    pub overrides: Vec<ResolveOverride>,
    /// Bound on each query.
    pub timeout: Duration,
}

/// What resolving one name gave.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsAnswer {
    /// Sorted (IPv4 first, then IPv6) and without duplicates.
    pub addresses: Vec<IpAddr>,
    /// The CNAME chain followed from the name, in order (names without trailing dot).
    pub cnames: Vec<String>,
    /// Smallest TTL seen in the answer, None for overrides and IP literals.
    pub ttl_s: Option<u32>,
    /// "NXDOMAIN", "SERVFAIL", "timed out after 5s", "no A/AAAA records", ...; None on success.
    pub error: Option<String>,
    /// The answer came from a `--resolve` override (or the host is an IP literal).
    pub overridden: bool,
    /// Time the lookup took.
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DnsSetupError {
    #[error("cannot read the system resolver configuration: {0}")]
    System(String),
}

pub struct Dns {
    _private: (),
}

impl Dns {
    pub fn new(config: DnsConfig) -> Result<Self, DnsSetupError> {
        let _ = config;
        todo!()
    }

    /// Resolve `host` for `port`: an override when one matches (port-specific first), the
    /// address itself for an IP literal, else A and AAAA queries. Never fails: problems are
    /// in `DnsAnswer::error`.
    pub async fn resolve(&self, host: &str, port: u16) -> DnsAnswer {
        let _ = (host, port);
        todo!()
    }
}
