//! rustls client connections with SNI + ALPN that capture the whole chain. Verification
//! against web roots + `--ca-file` is computed *separately* and reported, never enforced, so
//! that an expired or untrusted certificate is still inspected. Resumption is disabled: a
//! resumed TLS 1.3 handshake carries no certificate.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::engine::error::ProbeError;

/// Trust anchors and timeouts shared by every probe. Cheap to clone.
#[derive(Clone)]
pub struct TlsSettings {
    /// Web roots plus the certificates of `--ca-file`.
    pub roots: Arc<rustls::RootCertStore>,
    /// Bound on the TCP connect and, separately, on the TLS handshake.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("{path}: {message}")]
    CaFile { path: String, message: String },
}

impl TlsSettings {
    /// Web roots (webpki-roots) plus every certificate in the PEM file `ca_file`.
    /// A file that cannot be read or holds no certificate is an error naming the path.
    pub fn new(ca_file: Option<&Path>, timeout: Duration) -> Result<Self, TlsSetupError> {
        let _ = (ca_file, timeout);
        todo!()
    }
}

/// What one TLS handshake showed.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// Negotiated ALPN protocol ("h2", "http/1.1"), None when the server chose none.
    pub alpn: Option<String>,
    /// "TLSv1.3" or "TLSv1.2".
    pub version: String,
    /// The chain as the server sent it, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// None when the chain verifies against the roots and is within its validity period,
    /// *ignoring the host name* (name coverage is decided by `engine::cert`). Otherwise a
    /// short reason: "expired", "not yet valid", "unknown issuer", "bad signature", ...
    pub chain_error: Option<String>,
    /// Time to establish TCP.
    pub connect_time: Duration,
    /// Time of the TLS handshake after TCP.
    pub handshake_time: Duration,
}

/// ALPN offers.
pub const ALPN_H2_H1: &[&[u8]] = &[b"h2", b"http/1.1"];

/// A rustls client config that accepts any certificate (recording happens after the
/// handshake), offers `alpn`, and never resumes sessions.
pub fn client_config(alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let _ = alpn;
    todo!()
}

/// TCP connect to `addr` (bounded by `settings.timeout`), then a TLS handshake with
/// SNI = `sni` (bounded by `settings.timeout`) offering `alpn`. Returns the stream and what
/// the handshake showed, including the chain verification result for `sni`'s chain.
/// `sni` may be an IP literal, in which case no SNI is sent.
pub async fn connect(
    settings: &TlsSettings,
    addr: SocketAddr,
    sni: &str,
    alpn: &[&[u8]],
) -> Result<(TlsStream<TcpStream>, TlsInfo), ProbeError> {
    let _ = (settings, addr, sni, alpn);
    todo!()
}
