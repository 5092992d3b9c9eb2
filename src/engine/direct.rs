//! Direct requests with reqwest: a fresh connection per request to one chosen address
//! (SNI = the host), used as the reference answer for a target, and an HTTP/1.1 request
//! that tells whether only HTTP/2 is affected when the HTTP/2 answers fail.

use std::net::IpAddr;

use crate::engine::error::ProbeError;
use crate::engine::h2::HttpAnswer;
use crate::engine::tls::TlsSettings;

/// Which protocol the direct request may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectProtocol {
    /// Offer h2 and http/1.1 by ALPN, as a browser would.
    Negotiate,
    /// HTTP/1.1 only.
    Http1Only,
}

/// GET https://`host`:`port``path` on a fresh connection to `addr`, SNI = `host`, without
/// following redirects, certificate errors ignored (they are reported elsewhere), bounded by
/// `settings.timeout` for connect and for the whole request. The body is read up to
/// `h2::BODY_CAP` and digested exactly as `h2::H2Connection::request` does.
pub async fn request(
    settings: &TlsSettings,
    host: &str,
    port: u16,
    path: &str,
    addr: IpAddr,
    protocol: DirectProtocol,
) -> Result<HttpAnswer, ProbeError> {
    let _ = (settings, host, port, path, addr, protocol);
    todo!()
}
