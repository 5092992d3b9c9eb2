//! One HTTP/2 connection that carries requests for several authorities: hyper's HTTP/2
//! client driven over our own rustls stream (SNI = the origin, `:authority` = any name).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderMap, ACCEPT, CONTENT_TYPE, SERVER, USER_AGENT};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use crate::engine::error::{Phase, ProbeError};
use crate::engine::tls::{self, TlsInfo, TlsSettings};

/// Bytes of a body that are read and digested; the rest is never read.
pub const BODY_CAP: usize = 64 * 1024;

/// Largest header block accepted from a server (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE).
const MAX_HEADER_LIST_SIZE: u32 = 64 * 1024;
/// Flow-control windows: a capped body fits in one stream window, a few in the connection's.
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 1024 * 1024;
/// Longest `Server` header value kept.
const SERVER_HEADER_CAP: usize = 256;

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

/// An open HTTP/2 connection. Dropping it closes the socket.
pub struct H2Connection {
    sender: SendRequest<Empty<Bytes>>,
    /// Drives the connection; owns the socket. Aborted on drop.
    driver: JoinHandle<()>,
}

impl Drop for H2Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// The result of opening a connection for an origin: the TLS facts are always there;
/// `conn` is None when the server did not negotiate h2 (then the caller reports `no-h2`).
pub struct Opened {
    pub tls: TlsInfo,
    pub conn: Option<H2Connection>,
}

/// Open a fresh TLS connection to `addr` with SNI = `sni`, ALPN h2 + http/1.1, and when h2 is
/// negotiated, an HTTP/2 client connection over it.
pub async fn open(
    settings: &TlsSettings,
    addr: SocketAddr,
    sni: &str,
) -> Result<Opened, ProbeError> {
    let (stream, tls) = tls::connect(settings, addr, sni, tls::ALPN_H2_H1).await?;
    if tls.alpn.as_deref() != Some("h2") {
        return Ok(Opened { tls, conn: None });
    }
    let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_reset_streams(64)
        .max_send_buf_size(64 * 1024);
    let (sender, connection) = tokio::time::timeout(
        settings.timeout,
        builder.handshake::<_, Empty<Bytes>>(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| ProbeError::Timeout {
        phase: Phase::Request,
        after: settings.timeout,
    })?
    .map_err(|e| ProbeError::Http(format!("h2 handshake: {}", http_error_message(&e))))?;
    let driver = tokio::spawn(async move {
        // Errors surface on the requests; nothing to do with them here.
        let _ = connection.await;
    });
    Ok(Opened {
        tls,
        conn: Some(H2Connection { sender, driver }),
    })
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
        let uri = format!("https://{}{}", authority(host, port), normalize_path(path));
        let request = http::Request::get(uri)
            .header(USER_AGENT, user_agent())
            .header(ACCEPT, "*/*")
            .body(Empty::<Bytes>::new())
            .map_err(|e| ProbeError::Http(format!("invalid request: {e}")))?;
        let started = Instant::now();
        let exchange = async {
            self.sender
                .ready()
                .await
                .map_err(|e| ProbeError::Http(http_error_message(&e)))?;
            let response = self
                .sender
                .send_request(request)
                .await
                .map_err(|e| ProbeError::Http(http_error_message(&e)))?;
            read_answer(response, "HTTP/2", started)
                .await
                .map_err(|e| ProbeError::Http(http_error_message(&e)))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ProbeError::Timeout {
                phase: Phase::Request,
                after: timeout,
            })?
    }

    /// True when the connection can no longer carry requests (GOAWAY, closed, error).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed() || self.driver.is_finished()
    }
}

/// `host` or `host:port` (port != 443), IPv6 literals in brackets.
pub(crate) fn authority(host: &str, port: u16) -> String {
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    if port == 443 {
        host
    } else {
        format!("{host}:{port}")
    }
}

pub(crate) fn normalize_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

pub(crate) fn user_agent() -> &'static str {
    concat!("coalscope/", env!("CARGO_PKG_VERSION"))
}

/// Reads the status, headers and at most `BODY_CAP` bytes of the body of `response` (the rest
/// is never read: dropping the body resets the stream or closes the connection) into an
/// `HttpAnswer`. Shared by the HTTP/2 and the direct (reqwest) probes so that their answers
/// compare byte for byte.
pub(crate) async fn read_answer<B>(
    response: http::Response<B>,
    version: &str,
    started: Instant,
) -> Result<HttpAnswer, B::Error>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    let (parts, mut body) = response.into_parts();
    let mut hasher = Sha256::new();
    let mut body_len = 0usize;
    while body_len < BODY_CAP {
        let Some(frame) = body.frame().await else {
            break;
        };
        if let Ok(data) = frame?.into_data() {
            let take = data.len().min(BODY_CAP - body_len);
            hasher.update(&data[..take]);
            body_len += take;
        }
    }
    drop(body);
    Ok(HttpAnswer {
        status: parts.status.as_u16(),
        version: version.to_string(),
        content_type: content_type(&parts.headers),
        body_digest: hex::encode(hasher.finalize()),
        body_len,
        server: server_header(&parts.headers),
        elapsed: started.elapsed(),
    })
}

/// "Text/HTML; charset=utf-8" → "text/html".
fn content_type(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(CONTENT_TYPE)?;
    let text = String::from_utf8_lossy(raw.as_bytes());
    let media = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    (!media.is_empty()).then_some(media)
}

fn server_header(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(SERVER)?;
    let text = String::from_utf8_lossy(raw.as_bytes());
    let mut text = text.trim().to_string();
    if text.len() > SERVER_HEADER_CAP {
        let mut cut = SERVER_HEADER_CAP;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Some(text)
}

/// HTTP/2 error codes, as printed by the h2 crate's `Reason` Debug.
const H2_REASONS: &[&str] = &[
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "INTERNAL_ERROR",
    "FLOW_CONTROL_ERROR",
    "SETTINGS_TIMEOUT",
    "STREAM_CLOSED",
    "FRAME_SIZE_ERROR",
    "REFUSED_STREAM",
    "CANCEL",
    "COMPRESSION_ERROR",
    "CONNECT_ERROR",
    "ENHANCE_YOUR_CALM",
    "INADEQUATE_SECURITY",
    "HTTP_1_1_REQUIRED",
];

/// Short text for an HTTP-level error (hyper's, or reqwest's which wraps hyper's):
/// "stream reset: REFUSED_STREAM", "connection closed (GOAWAY)", "connection reset", ...
pub(crate) fn http_error_message(error: &(dyn std::error::Error + 'static)) -> String {
    // The h2 crate is not a direct dependency, so its error is recognised by its Debug
    // text, e.g. `Error { kind: Reset(StreamId(1), REFUSED_STREAM, Remote) }`.
    let mut current = Some(error);
    let mut innermost = error.to_string();
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(text) = io.get_ref().and_then(|inner| h2_message(inner)) {
                return text;
            }
            return tls::io_message(io);
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_parse_too_large() {
                return "response headers too large".into();
            }
            if h.is_incomplete_message() {
                return "connection closed before the response was complete".into();
            }
            if h.is_parse() {
                return "malformed response".into();
            }
            if h.is_canceled() {
                return "request canceled (connection closed)".into();
            }
        }
        if let Some(text) = h2_message(e) {
            return text;
        }
        innermost = e.to_string();
        current = e.source();
    }
    if error
        .downcast_ref::<hyper::Error>()
        .is_some_and(|h| h.is_closed())
    {
        return "connection closed".into();
    }
    innermost
}

/// Recognises an h2 crate error by its Display ("stream error received: ...") and names
/// the HTTP/2 error code from its Debug.
fn h2_message(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let display = e.to_string();
    let is_h2 = ["stream error", "connection error", "protocol error"]
        .iter()
        .any(|p| display.starts_with(p));
    if !is_h2 {
        return None;
    }
    let debug = format!("{e:?}");
    let reason = H2_REASONS.iter().find(|r| debug.contains(*r))?;
    if debug.contains("GoAway(") {
        if *reason == "NO_ERROR" {
            Some("connection closed (GOAWAY)".into())
        } else {
            Some(format!("connection closed (GOAWAY {reason})"))
        }
    } else if debug.contains("Reset(") {
        Some(format!("stream reset: {reason}"))
    } else if debug.contains("Reason(") {
        Some(format!("protocol error: {reason}"))
    } else {
        None
    }
}
