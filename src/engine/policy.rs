//! Would a real browser put a request for B on a connection opened for A? Pure functions.
//!
//! Chromium pools by IP: a request for B reuses A's connection at address X when B's own DNS
//! answer contains X (same port), A's certificate is valid and covers B, and h2 was
//! negotiated. Firefox coalesces when the two DNS answers overlap at all (then A's connection
//! at any of A's addresses is used), with the same certificate and h2 conditions.

use std::net::IpAddr;

/// Why no client would coalesce a pair. The string forms are the contract's `reason`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NotCoalescable {
    NoSharedAddress,
    CertNotCovering,
    NoH2,
    CertInvalid,
}

impl NotCoalescable {
    pub fn as_str(self) -> &'static str {
        match self {
            NotCoalescable::NoSharedAddress => "no-shared-address",
            NotCoalescable::CertNotCovering => "cert-not-covering",
            NotCoalescable::NoH2 => "no-h2",
            NotCoalescable::CertInvalid => "cert-invalid",
        }
    }
}

/// What the handshake of a connection opened for the origin A at `addr` (SNI = A) showed,
/// seen from a target B. Only addresses where the handshake succeeded have facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointFacts {
    pub addr: IpAddr,
    /// ALPN negotiated h2.
    pub h2: bool,
    /// The chain verifies (roots + --ca-file) and is within its validity period.
    pub cert_trusted: bool,
    /// A's certificate at this address covers B (RFC 9525 rules).
    pub covers_target: bool,
}

/// The policies' answer for one ordered pair A → B.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PairPolicy {
    /// Addresses in both A's and B's DNS answers, sorted.
    pub shared: Vec<IpAddr>,
    /// Some certificate served for A covers B.
    pub cert_covers: bool,
    pub chrome: bool,
    pub firefox: bool,
    /// Set when neither client would coalesce *and* the facts say why. None when a client
    /// would coalesce, or when no handshake to A succeeded at a relevant address (the facts
    /// are missing: the caller reports an error, not a reason).
    pub reason: Option<NotCoalescable>,
    /// Addresses X of A where Chromium would put B on A's connection.
    pub chrome_addrs: Vec<IpAddr>,
    /// Addresses X of A where Firefox would put B on A's connection.
    pub firefox_addrs: Vec<IpAddr>,
}

impl PairPolicy {
    /// Addresses of A where some client would coalesce B (union, sorted).
    pub fn coalescing_addrs(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.chrome_addrs.iter().chain(&self.firefox_addrs).copied().collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Evaluate both clients for A → B, from the two DNS answers and the facts of A's endpoints.
pub fn evaluate(origin_addrs: &[IpAddr], target_addrs: &[IpAddr], origin_endpoints: &[EndpointFacts]) -> PairPolicy {
    let _ = (origin_addrs, target_addrs, origin_endpoints);
    todo!()
}
