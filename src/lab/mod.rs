//! The embedded lab: loopback TLS HTTP/2 servers that reproduce the real-world coalescing
//! failure modes, a throwaway CA, and a DNS server on loopback answering the lab's names.

use std::net::SocketAddr;
use std::path::PathBuf;

/// How to start the lab.
#[derive(Debug, Clone, Default)]
pub struct LabOptions {
    /// Port every lab server listens on (on its own 127.0.0.x address); None = pick a free one.
    pub port: Option<u16>,
    /// Port of the lab's DNS server on 127.0.0.1; None = pick a free one.
    pub dns_port: Option<u16>,
    /// Directory for the CA, the watch-file and certificates; None = a new temporary directory
    /// removed when the lab is dropped.
    pub dir: Option<PathBuf>,
    /// Demo mode: some scenarios change their behaviour every minute or so.
    pub dynamic: bool,
}

/// What a lab pair is expected to be judged (used by tests and printed by `coalscope lab`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    pub origin: &'static str,
    pub target: &'static str,
    /// Contract verdict: "ok", "misdirected", "intermittent", "misrouted", "direct-broken",
    /// "not-coalescable", "error".
    pub verdict: &'static str,
    /// Contract reason for "not-coalescable".
    pub reason: Option<&'static str>,
}

/// A running lab. Dropping it stops every server.
pub struct Lab {
    /// The lab's DNS server (UDP and TCP) on loopback.
    pub dns: SocketAddr,
    /// PEM file of the lab CA, for `--ca-file`.
    pub ca_file: PathBuf,
    /// The watch-file listing every lab name.
    pub watchfile: PathBuf,
    /// The port every lab name is served on.
    pub port: u16,
}

impl Lab {
    pub async fn start(options: LabOptions) -> anyhow::Result<Lab> {
        let _ = options;
        todo!()
    }
}

/// Every ordered pair of the lab whose names share an address, plus the cert-only pairs,
/// with the verdict a correct engine must give (non-dynamic mode).
pub fn expectations() -> Vec<Expectation> {
    todo!()
}

impl Lab {
    /// Placeholder until the lab lands.
    pub fn describe(&self) -> String {
        todo!()
    }
    pub async fn shutdown(self) {
        todo!()
    }
}

/// Host findings the lab must produce: (host, finding kind).
pub fn expected_findings() -> Vec<(&'static str, &'static str)> {
    todo!()
}
