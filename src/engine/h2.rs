//! One HTTP/2 connection that carries requests for several authorities: hyper's HTTP/2
//! client driven over our own rustls stream (SNI = the origin, `:authority` = any name).

use std::net::SocketAddr;
use std::time::Duration;

use crate::engine::error::ProbeError;
use crate::engine::tls::{TlsInfo, TlsSettings};

/// Bytes of a body that are read and digested; the rest is never read.
pub const BODY_CAP: usize = 64 * 1024;

/// One HTTP answer, reduced to what verdicts compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    /// "HTTP/2" or "HTTP/1.1".
    pub version: String,
    /// The Content-Type header without parameters, lower-cased (e.g. "text/html").
    pub content_type: Option<String>,
    /// Hex SHA-256 of the first `BODY_CAP` bytes of the body.
    pub body_digest: String,
    /// Number of body bytes read (at most `BODY_CAP`).
    pub body_len: usize,
    /// The `Server` header, if any (untrusted text).
    pub server: Option<String>,
    /// Time from sending the request to the end of reading the (capped) body.
    pub elapsed: Duration,
}

/// An open HTTP/2 connection.
pub struct H2Connection {
    _private: (),
}

/// The result of opening a connection for an origin: the TLS facts are always there;
/// `conn` is None when the server did not negotiate h2 (then the caller reports `no-h2`).
pub struct Opened {
    pub tls: TlsInfo,
    pub conn: Option<H2Connection>,
}

/// Open a fresh TLS connection to `addr` with SNI = `sni`, ALPN h2 + http/1.1, and when h2 is
/// negotiated, an HTTP/2 client connection over it.
pub async fn open(settings: &TlsSettings, addr: SocketAddr, sni: &str) -> Result<Opened, ProbeError> {
    let _ = (settings, addr, sni);
    todo!()
}

impl H2Connection {
    /// GET `path` with `:authority` = `host` (plus `:port` when port != 443), bounded by
    /// `timeout` for the whole exchange (headers + capped body).
    pub async fn request(
        &mut self,
        host: &str,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> Result<HttpAnswer, ProbeError> {
        let _ = (host, port, path, timeout);
        todo!()
    }
}
