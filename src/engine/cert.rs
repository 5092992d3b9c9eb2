//! Certificates with x509-parser: SANs, validity, and name coverage by RFC 9525 / browser
//! rules: DNS SANs only (no CN fallback), a wildcard only as the whole left-most label and
//! matching exactly one label, case-insensitive A-label comparison, trailing dots ignored,
//! IP addresses only against iPAddress SANs.

use std::net::IpAddr;

/// What coalscope needs to know of a leaf certificate. Strings are exactly as in the
/// certificate (untrusted: sanitise before drawing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// Subject DN in RFC 4514 form.
    pub subject: String,
    /// Issuer DN in RFC 4514 form.
    pub issuer: String,
    /// dNSName SANs, in certificate order.
    pub dns_sans: Vec<String>,
    /// iPAddress SANs, in certificate order.
    pub ip_sans: Vec<IpAddr>,
    /// Validity, seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// Serial number in lower-case hex.
    pub serial: String,
    /// SHA-256 of the DER, lower-case hex.
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate: {0}")]
pub struct CertError(pub String);

/// Parse a DER leaf certificate. Garbage is an error, never a panic.
pub fn parse_leaf(der: &[u8]) -> Result<CertSummary, CertError> {
    let _ = der;
    todo!()
}

/// Does the SAN pattern `san` (a dNSName, possibly a wildcard) match `host`?
/// Both are compared as lower-case A-labels without trailing dot.
pub fn name_matches(san: &str, host: &str) -> bool {
    let _ = (san, host);
    todo!()
}

/// The SAN that covers `host` (the dNSName as written, or the IP SAN formatted), if any.
/// An IP literal `host` is matched only against iPAddress SANs.
pub fn covering_san(cert: &CertSummary, host: &str) -> Option<String> {
    let _ = (cert, host);
    todo!()
}

/// RFC 3339 UTC, seconds precision: "2027-01-01T00:00:00Z".
pub fn format_unix(secs: i64) -> String {
    let _ = secs;
    todo!()
}
