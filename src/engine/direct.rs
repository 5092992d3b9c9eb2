//! Direct requests with reqwest: a fresh connection per request to one chosen address
//! (SNI = the host), used as the reference answer for a target, and an HTTP/1.1 request
//! that tells whether only HTTP/2 is affected when the HTTP/2 answers fail.

use std::error::Error as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::engine::error::{Phase, ProbeError};
use crate::engine::h2::{self, HttpAnswer};
use crate::engine::tls::{self, TlsSettings};

/// Which protocol the direct request may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectProtocol {
    /// Offer h2 and http/1.1 by ALPN, as a browser would.
    Negotiate,
    /// HTTP/1.1 only.
    Http1Only,
}

const ALPN_H1: &[&[u8]] = &[b"http/1.1"];

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
    let timeout = settings.timeout;
    let alpn = match protocol {
        DirectProtocol::Negotiate => tls::ALPN_H2_H1,
        DirectProtocol::Http1Only => ALPN_H1,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls::client_config(alpn).as_ref().clone())
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(h2::user_agent())
        .http2_max_header_list_size(64 * 1024)
        .resolve(host, SocketAddr::new(addr, port));
    if protocol == DirectProtocol::Http1Only {
        builder = builder.http1_only();
    }
    let client = builder
        .build()
        .map_err(|e| ProbeError::Http(format!("client setup: {e}")))?;
    let url = format!(
        "https://{}:{}{}",
        h2::authority(host, 443),
        port,
        h2::normalize_path(path)
    );

    let started = Instant::now();
    let exchange = async {
        let response = client
            .get(&url)
            .header(reqwest::header::ACCEPT, "*/*")
            .send()
            .await
            .map_err(|e| map_error(&e, timeout))?;
        let version = if response.version() == http::Version::HTTP_2 {
            "HTTP/2"
        } else {
            "HTTP/1.1"
        };
        let response: http::Response<reqwest::Body> = response.into();
        h2::read_answer(response, version, started)
            .await
            .map_err(|e| map_error(&e, timeout))
    };
    // reqwest enforces `timeout`; this is only a safety net against anything that does not.
    let safety = timeout * 2 + std::time::Duration::from_secs(1);
    tokio::time::timeout(safety, exchange)
        .await
        .map_err(|_| ProbeError::Timeout {
            phase: Phase::Request,
            after: timeout,
        })?
}

/// Maps a reqwest error to the phase it happened in.
fn map_error(e: &reqwest::Error, timeout: std::time::Duration) -> ProbeError {
    // Find the deepest io::Error and rustls::Error in the chain.
    let mut rustls_error = None;
    let mut io_error = None;
    let mut current: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(err) = current {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            rustls_error = Some(r);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            io_error = Some(io);
            if let Some(r) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                rustls_error = Some(r);
            }
        }
        current = err.source();
    }
    let timed_out =
        e.is_timeout() || io_error.is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
    if e.is_connect() {
        if timed_out {
            return ProbeError::Timeout {
                phase: Phase::Connect,
                after: timeout,
            };
        }
        if let Some(r) = rustls_error {
            let io = std::io::Error::new(std::io::ErrorKind::InvalidData, r.clone());
            return ProbeError::Tls(tls::tls_io_message(&io));
        }
        if let Some(io) = io_error {
            // An EOF during connect is the TLS handshake being closed by the peer.
            if io.kind() == std::io::ErrorKind::UnexpectedEof
                || io.kind() == std::io::ErrorKind::InvalidData
            {
                return ProbeError::Tls(tls::tls_io_message(io));
            }
            return ProbeError::Connect(tls::io_message(io));
        }
        return ProbeError::Connect(h2::http_error_message(e));
    }
    if timed_out {
        return ProbeError::Timeout {
            phase: Phase::Request,
            after: timeout,
        };
    }
    ProbeError::Http(h2::http_error_message(e))
}
