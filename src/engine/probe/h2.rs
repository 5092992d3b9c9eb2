//! One HTTP/2 connection that carries requests for several authorities: hyper's HTTP/2
//! client driven over our own rustls stream (SNI = the origin, `:authority` = any name).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderMap, ACCEPT, ALT_SVC, CONTENT_TYPE, SERVER, USER_AGENT};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use crate::engine::probe::altsvc::parse_alt_svc;
use crate::engine::probe::error::{within, H2Reason, Phase, ProbeError};
use crate::engine::probe::frames::{self, FrameReader, SharedCapture};
use crate::engine::probe::page::{PageSketch, Sketcher};
use crate::engine::probe::signals::{AltSvcSource, ServerSignals};
use crate::engine::probe::tls::{self, TlsInfo, TlsSettings};

/// Bytes of a body that are read and digested; the rest is never read.
pub const BODY_CAP: usize = 64 * 1024;

/// Largest header block accepted from a server (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE).
const MAX_HEADER_LIST_SIZE: u32 = 64 * 1024;
/// Flow-control windows: a capped body fits in one stream window, a few in the connection's.
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 1024 * 1024;
/// Longest `Server` header value kept.
const SERVER_HEADER_CAP: usize = 256;
/// `Alt-Svc` header lines read per answer (each bounded by `altsvc::MAX_VALUE`).
const MAX_ALT_SVC_LINES: usize = 8;

/// One HTTP answer, reduced to what verdicts compare.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    /// Cut at `BODY_CAP` while more was coming, with no declared length: a body that may never
    /// end (a page over the cap with a Content-Length is only large).
    pub body_unbounded: bool,
    /// The similarity fingerprint of those bytes, for 2xx answers (the body is not kept).
    pub page: Option<Arc<PageSketch>>,
    /// The `Server` header, if any (untrusted text).
    pub server: Option<String>,
    /// Time from sending the request to the end of reading the (capped) body.
    pub elapsed: Duration,
}

/// An open HTTP/2 connection. Dropping it closes the socket.
pub struct H2Connection {
    sender: SendRequest<Empty<Bytes>>,
    /// Drives the connection. Aborted on drop.
    driver: JoinHandle<()>,
    /// Shuts the socket down on drop: hyper runs the socket's I/O in a task of its own,
    /// which aborting `driver` does not always end.
    _closer: tls::SocketCloser,
    /// What the frame reader under hyper captured (ORIGIN, ALTSVC, anomalies).
    capture: SharedCapture,
    /// The connection's own origin: the SNI name (lower-case, no trailing dot) and port.
    own: (String, u16),
    /// Alt-Svc headers of answers for the own origin, and whether the connection's first
    /// request (stream 1) was for the own origin (None before the first request).
    answers: std::sync::Mutex<AnswerSignals>,
}

/// What the answers on a connection said besides their bodies.
#[derive(Default)]
struct AnswerSignals {
    first_is_own: Option<bool>,
    headers: ServerSignals,
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
pub async fn open(settings: &TlsSettings, addr: SocketAddr, sni: &str) -> Result<Opened, ProbeError> {
    let (stream, tls) = tls::connect(settings, addr, sni, tls::ALPN_H2_H1).await?;
    if tls.alpn.as_deref() != Some("h2") {
        return Ok(Opened { tls, conn: None });
    }
    let conn = handshake(stream, sni, addr.port(), settings.timeout).await?;
    Ok(Opened {
        tls,
        conn: Some(conn),
    })
}

/// The HTTP/2 client handshake over a TLS stream to `host:port` (the SNI name) that
/// negotiated h2, bounded by `timeout`. A `FrameReader` sits between the stream and hyper to
/// read the frames hyper drops (ORIGIN, ALTSVC).
pub(crate) async fn handshake(
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<H2Connection, ProbeError> {
    let closer = tls::SocketCloser::new(&stream);
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let (stream, capture) = FrameReader::new(stream, &host, port);
    let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        // The reader's idea of an oversized frame is the limit the client advertises.
        .max_frame_size(frames::MAX_FRAME_SIZE)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_reset_streams(64)
        .max_send_buf_size(64 * 1024);
    let (sender, connection) = within(
        Phase::Request,
        timeout,
        builder.handshake::<_, Empty<Bytes>>(TokioIo::new(stream)),
    )
    .await?
    .map_err(|e| ProbeError::Http(format!("h2 handshake: {}", http_error_message(&e))))?;
    // The connection task is ours: aborting it (on drop) closes the socket whatever state
    // the connection is in, e.g. a request waiting forever for a stream slot under
    // SETTINGS_MAX_CONCURRENT_STREAMS = 0, which hyper's own task would never give up.
    let driver = tokio::spawn(async move {
        // Errors surface on the requests; nothing to do with them here.
        let _ = connection.await;
    });
    Ok(H2Connection {
        sender,
        driver,
        _closer: closer,
        capture,
        own: (host, port),
        answers: Default::default(),
    })
}

impl H2Connection {
    /// GET `path` with `:authority` = `host` (plus `:port` when port != 443), bounded by
    /// `timeout` for the whole exchange (headers + capped body). Several requests may run at
    /// once on one connection (HTTP/2 streams; hyper waits for the server's stream limit).
    pub async fn request(
        &self,
        host: &str,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> Result<HttpAnswer, ProbeError> {
        let request = get_request(host, port, path, Empty::<Bytes>::new())?;
        let started = Instant::now();
        let mut sender = self.sender.clone();
        let own = host
            .strip_suffix('.')
            .unwrap_or(host)
            .eq_ignore_ascii_case(&self.own.0)
            && port == self.own.1;
        let exchange = async {
            sender.ready().await.map_err(|e| http_error(&e))?;
            let response = {
                // Held while the request is handed to hyper, which passes requests to h2 in
                // that order, and h2 numbers streams in the order it opens them: the first
                // request handed over is stream 1.
                let mut answers = self.answers();
                answers.first_is_own.get_or_insert(own);
                sender.send_request(request)
            };
            let response = response.await.map_err(|e| http_error(&e))?;
            if own {
                self.note_alt_svc(response.headers());
            }
            read_answer(response, "HTTP/2", started)
                .await
                .map_err(|e| http_error(&e))
        };
        within(Phase::Request, timeout, exchange).await?
    }

    /// True when the connection can no longer carry requests (GOAWAY, closed, error).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed() || self.driver.is_finished()
    }

    /// What the server signalled on this connection so far: its ORIGIN frames, the Alt-Svc
    /// alternatives for the connection's own origin (ALTSVC frames, then the `Alt-Svc`
    /// headers of the answers for it) and the anomalies of its frames. A snapshot.
    pub fn signals(&self) -> ServerSignals {
        let captured = self.capture.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let answers = self.answers();
        let mut signals = captured.signals;
        if answers.first_is_own == Some(true) {
            for alt in captured.first_stream_alt_svc {
                signals.add_alt_svc(alt);
            }
        }
        signals.alt_svc_clear |= answers.headers.alt_svc_clear;
        for alt in &answers.headers.alt_svc {
            signals.add_alt_svc(alt.clone());
        }
        signals
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, AnswerSignals> {
        // A poisoned lock only means a holder panicked; the data is whole.
        self.answers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keep the alternatives of the `Alt-Svc` headers of an answer for the own origin.
    fn note_alt_svc(&self, headers: &HeaderMap) {
        let mut values = headers.get_all(ALT_SVC).iter().take(MAX_ALT_SVC_LINES).peekable();
        if values.peek().is_none() {
            return;
        }
        let mut answers = self.answers();
        for value in values {
            let parsed = parse_alt_svc(value.as_bytes(), AltSvcSource::Header);
            answers.headers.alt_svc_clear |= parsed.clear;
            for alt in parsed.services {
                answers.headers.add_alt_svc(alt);
            }
        }
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

/// The probe's GET of `path` for `host:port` (any protocol's request carries the same
/// headers), with `body` (an empty one of the protocol's type).
pub(crate) fn get_request<B>(
    host: &str,
    port: u16,
    path: &str,
    body: B,
) -> Result<http::Request<B>, ProbeError> {
    let uri = format!("https://{}{}", authority(host, port), normalize_path(path));
    http::Request::get(uri)
        .header(USER_AGENT, user_agent())
        .header(ACCEPT, "*/*")
        .body(body)
        .map_err(|e| ProbeError::Http(format!("invalid request: {e}")))
}

pub(crate) fn user_agent() -> &'static str {
    concat!("coalscope/", env!("CARGO_PKG_VERSION"))
}

/// Reads the status, headers and at most `BODY_CAP` bytes of the body of `response` (the rest
/// is never read: dropping the body resets the stream or closes the connection) into an
/// `HttpAnswer`. Shared by the HTTP/2 and the direct (HTTP/1.1) probes so that their answers
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
    let mut capped = CappedBody::default();
    while !capped.is_full() {
        let Some(frame) = body.frame().await else {
            break;
        };
        if let Ok(data) = frame?.into_data() {
            capped.feed(&data);
        }
    }
    let more = !body.is_end_stream();
    drop(body);
    Ok(capped.answer(parts.status, &parts.headers, version, more, started))
}

/// A body as it is read, up to `BODY_CAP` bytes: their digest, page sketch and count. Shared by
/// every protocol's probe so that their answers compare byte for byte.
pub(crate) struct CappedBody {
    hasher: Sha256,
    sketcher: Sketcher,
    len: usize,
}

impl Default for CappedBody {
    fn default() -> Self {
        CappedBody {
            hasher: Sha256::new(),
            sketcher: Sketcher::new(),
            len: 0,
        }
    }
}

impl CappedBody {
    /// True once `BODY_CAP` bytes were read: the rest is not read.
    pub(crate) fn is_full(&self) -> bool {
        self.len >= BODY_CAP
    }

    /// Take as much of `data` as the cap leaves room for.
    pub(crate) fn feed(&mut self, data: &[u8]) {
        let take = data.len().min(BODY_CAP - self.len);
        self.hasher.update(&data[..take]);
        self.sketcher.update(&data[..take]);
        self.len += take;
    }

    /// The answer: `more` says whether the body had not ended where reading stopped.
    pub(crate) fn answer(
        self,
        status: http::StatusCode,
        headers: &HeaderMap,
        version: &str,
        more: bool,
        started: Instant,
    ) -> HttpAnswer {
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        let body_unbounded = self.is_full() && declared.is_none() && more;
        HttpAnswer {
            status: status.as_u16(),
            version: version.to_string(),
            content_type: content_type(headers),
            body_digest: hex::encode(self.hasher.finalize()),
            body_len: self.len,
            body_unbounded,
            page: status.is_success().then(|| Arc::new(self.sketcher.finish())),
            server: server_header(headers),
            elapsed: started.elapsed(),
        }
    }
}

/// "Text/HTML; charset=utf-8" → "text/html".
fn content_type(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(CONTENT_TYPE)?;
    let text = String::from_utf8_lossy(raw.as_bytes());
    let media = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
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

/// Short text for an HTTP-level error (hyper's, or anything that wraps hyper's):
/// "stream reset: REFUSED_STREAM", "connection closed (GOAWAY)", "connection reset", ...
pub(crate) fn http_error_message(error: &(dyn std::error::Error + 'static)) -> String {
    http_error(error).detail()
}

/// The probe error for an HTTP-level error (hyper's, or anything that wraps hyper's): a
/// stream reset or GOAWAY keeps its HTTP/2 code, anything else is said in a short text.
pub(crate) fn http_error(error: &(dyn std::error::Error + 'static)) -> ProbeError {
    let text = |t: String| ProbeError::Http(t);
    // The h2 crate is not a direct dependency, so its error is recognised by its Debug
    // text, e.g. `Error { kind: Reset(StreamId(1), REFUSED_STREAM, Remote) }`.
    let mut innermost = error.to_string();
    let mut outer_io = None;
    for e in causes(error) {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.get_ref().is_none() {
                return text(tls::io_message(io));
            }
            // Look further inside (an h2 error, a TLS error) before settling for this one.
            outer_io.get_or_insert(io);
            continue;
        }
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            let io = std::io::Error::new(std::io::ErrorKind::InvalidData, r.clone());
            return text(format!("tls: {}", tls::tls_io_message(&io)));
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_parse_too_large() {
                return text("response headers too large".into());
            }
            if h.is_incomplete_message() {
                return text("connection closed before the response was complete".into());
            }
            if h.is_parse() {
                return text("malformed response".into());
            }
            if h.is_canceled() {
                return text("request canceled (connection closed)".into());
            }
        }
        if let Some(h2) = h2_error(e) {
            return h2;
        }
        innermost = e.to_string();
    }
    if let Some(io) = outer_io {
        return text(tls::io_message(io));
    }
    if error
        .downcast_ref::<hyper::Error>()
        .is_some_and(|h| h.is_closed())
    {
        return text("connection closed".into());
    }
    text(innermost)
}

/// `error` and its causes, outermost first. Unlike `Error::source`, this also steps into the
/// error an `io::Error` wraps (its `source()` skips that error and returns *its* source).
pub(crate) fn causes<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut chain = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        if chain.len() >= 32 {
            break;
        }
        chain.push(e);
        current = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    chain
}

/// Recognises an h2 crate error by its Display ("stream error received: ...") and reads
/// the HTTP/2 error code and the initiator from its Debug (the h2 crate is not a direct
/// dependency, so its types cannot be named).
fn h2_error(e: &(dyn std::error::Error + 'static)) -> Option<ProbeError> {
    let display = e.to_string();
    let is_h2 = ["stream error", "connection error", "protocol error"]
        .iter()
        .any(|p| display.starts_with(p));
    if !is_h2 {
        return None;
    }
    let debug = format!("{e:?}");
    let name = H2Reason::NAMES.iter().find(|r| debug.contains(*r))?;
    let reason = H2Reason::from_name(name)?;
    // The initiator: the server (Remote), or hyper/h2 on our side (Library, User), e.g. for
    // an oversized or malformed response.
    let by_client = debug.contains("Library)") || debug.contains("User)");
    if debug.contains("GoAway(") {
        Some(ProbeError::GoAway { reason, by_client })
    } else if debug.contains("Reset(") {
        Some(ProbeError::Reset { reason, by_client })
    } else if debug.contains("Reason(") {
        Some(ProbeError::Http(format!("protocol error: {reason}")))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::probe::signals::{AltService, FrameAnomaly};
    use crate::testing::net::{
        local, no_hang, sha256_hex, signalling_server, simple_server, tls_server, Pki, ServerOptions,
        Signals, Validity,
    };

    const T: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn one_connection_carries_two_authorities() {
        let pki = Pki::new("test CA");
        let server = simple_server(&pki, &["a.test", "b.test"], Validity::Current).await;
        let port = server.addr.port();
        let opened = open(&pki.settings(T), server.addr, "a.test").await.expect("open");
        assert_eq!(opened.tls.alpn.as_deref(), Some("h2"));
        let conn = opened.conn.expect("h2 negotiated");

        let a = conn.request("a.test", port, "/", T).await.expect("a");
        let b = conn.request("b.test", port, "/x?y=1", T).await.expect("b");
        assert_eq!(a.status, 200);
        assert_eq!(b.status, 200);
        assert_eq!(a.version, "HTTP/2");
        assert_eq!(a.content_type.as_deref(), Some("text/plain"));
        assert_eq!(a.server.as_deref(), Some("testsrv/1"));
        let body_b = b"site=b.test sni=a.test path=/x";
        assert_eq!(b.body_digest, sha256_hex(body_b));
        assert_eq!(b.body_len, body_b.len());
        assert_ne!(a.body_digest, b.body_digest);

        let seen = server.seen();
        assert_eq!(seen.len(), 2);
        for s in &seen {
            assert_eq!(s.sni.as_deref(), Some("a.test"));
            assert_eq!(s.connection, 1, "both requests on the first connection");
            assert_eq!(s.version, http::Version::HTTP_2);
        }
        assert_eq!(seen[0].authority, format!("a.test:{port}"));
        assert_eq!(seen[1].authority, format!("b.test:{port}"));
        assert_eq!(seen[1].path, "/x");
        assert_eq!(server.accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(!conn.is_closed());
    }

    #[tokio::test]
    async fn misdirected_request_gets_421() {
        let pki = Pki::new("test CA");
        let names = ["a.test", "misdirected.test"];
        let server = simple_server(&pki, &names, Validity::Current).await;
        let port = server.addr.port();
        let settings = pki.settings(T);
        let conn = open(&settings, server.addr, "a.test")
            .await
            .expect("open")
            .conn
            .expect("h2");
        let answer = conn
            .request("misdirected.test", port, "/", T)
            .await
            .expect("request");
        assert_eq!(answer.status, 421);
        let own = open(&settings, server.addr, "misdirected.test")
            .await
            .expect("open")
            .conn
            .expect("h2");
        let answer = own
            .request("misdirected.test", port, "/", T)
            .await
            .expect("request");
        assert_eq!(answer.status, 200);
    }

    #[tokio::test]
    async fn http1_only_server_gives_no_connection() {
        let pki = Pki::new("test CA");
        let (chain, key) = pki.leaf(&["a.test"], Validity::Current);
        let options = ServerOptions {
            alpn: vec![b"http/1.1".to_vec()],
            tls12_only: false,
        };
        let server = tls_server(local(1, 0), chain, key, options).await;
        let opened = open(&pki.settings(T), server.addr, "a.test").await.expect("open");
        assert!(opened.conn.is_none());
        assert_eq!(opened.tls.alpn.as_deref(), Some("http/1.1"));
        assert_eq!(opened.tls.chain.len(), 2);
        assert!(server.wait_closed(1, T * 3).await, "the TLS connection is closed");
    }

    #[tokio::test]
    async fn body_is_capped_and_endless_bodies_end() {
        let pki = Pki::new("test CA");
        let server = simple_server(&pki, &["a.test"], Validity::Current).await;
        let port = server.addr.port();
        let conn = open(&pki.settings(T), server.addr, "a.test")
            .await
            .expect("open")
            .conn
            .expect("h2");

        let big = conn.request("a.test", port, "/big", T).await.expect("big");
        assert_eq!(big.body_len, BODY_CAP);
        assert_eq!(big.body_digest, sha256_hex(&vec![b'b'; BODY_CAP]));

        // A body read past the cap would never end: the request would time out (after T) and
        // this `expect` fail. No wall-clock bound needed.
        let endless = conn
            .request("a.test", port, "/endless", T)
            .await
            .expect("endless");
        assert_eq!(endless.body_len, BODY_CAP);

        // Only the streams were dropped: the connection still works.
        let after = conn.request("a.test", port, "/", T).await.expect("after");
        assert_eq!(after.status, 200);
        assert_eq!(server.accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn stream_errors_are_named_and_leave_the_connection_usable() {
        let pki = Pki::new("test CA");
        let server = simple_server(&pki, &["a.test"], Validity::Current).await;
        let port = server.addr.port();
        let conn = open(&pki.settings(T), server.addr, "a.test")
            .await
            .expect("open")
            .conn
            .expect("h2");
        let err = conn.request("a.test", port, "/fail", T).await.err();
        assert_eq!(
            err,
            Some(ProbeError::Reset {
                reason: H2Reason(0x2),
                by_client: false
            })
        );
        let err = err.map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("http: stream reset: INTERNAL_ERROR"));
        let err = conn.request("a.test", port, "/hugeheaders", T).await.err();
        assert_eq!(
            err,
            Some(ProbeError::Reset {
                reason: H2Reason(0x1),
                by_client: true
            })
        );
        let err = err.map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("http: stream reset by client: PROTOCOL_ERROR")
        );
        let ok = conn.request("a.test", port, "/", T).await.expect("still usable");
        assert_eq!(ok.status, 200);
    }

    #[tokio::test]
    async fn goaway_closes_the_connection_for_new_requests() {
        let pki = Pki::new("test CA");
        let server = simple_server(&pki, &["a.test"], Validity::Current).await;
        let port = server.addr.port();
        let conn = open(&pki.settings(T), server.addr, "a.test")
            .await
            .expect("open")
            .conn
            .expect("h2");
        let bye = conn.request("a.test", port, "/goaway", T).await.expect("goaway");
        assert_eq!(bye.status, 200);
        assert!(server.wait_closed(1, T * 3).await);
        let err = conn.request("a.test", port, "/", T).await.err();
        assert_eq!(err, Some(ProbeError::Http("connection closed".into())));
        assert!(conn.is_closed());
    }

    #[tokio::test]
    async fn request_timeout() {
        let pki = Pki::new("test CA");
        let server = simple_server(&pki, &["a.test"], Validity::Current).await;
        let conn = open(&pki.settings(T), server.addr, "a.test")
            .await
            .expect("open")
            .conn
            .expect("h2");
        // The request's own timer ends it (the error says which, and after how long); real
        // sockets, so the clock is real: the bound only catches a timer that never fires.
        let short = Duration::from_millis(300);
        let err = no_hang(
            "a request to /hang",
            conn.request("a.test", server.addr.port(), "/hang", short),
        )
        .await
        .err();
        assert_eq!(
            err,
            Some(ProbeError::Timeout {
                phase: Phase::Request,
                after: short
            })
        );
    }

    #[tokio::test]
    async fn dropping_the_connection_closes_the_socket() {
        let pki = Pki::new("test CA");
        let server = simple_server(&pki, &["a.test"], Validity::Current).await;
        let conn = open(&pki.settings(T), server.addr, "a.test")
            .await
            .expect("open")
            .conn
            .expect("h2");
        conn.request("a.test", server.addr.port(), "/", T)
            .await
            .expect("request");
        assert_eq!(server.closed.load(std::sync::atomic::Ordering::SeqCst), 0);
        drop(conn);
        assert!(server.wait_closed(1, T * 3).await, "server saw EOF");
    }

    #[tokio::test]
    async fn server_gone_is_an_http_error() {
        let pki = Pki::new("test CA");
        let server = simple_server(&pki, &["a.test"], Validity::Current).await;
        let port = server.addr.port();
        let conn = open(&pki.settings(T), server.addr, "a.test")
            .await
            .expect("open")
            .conn
            .expect("h2");
        drop(server);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let err = conn.request("a.test", port, "/", T).await.err();
        match err {
            Some(ProbeError::Http(text)) => assert!(text.contains("closed"), "{text}"),
            other => panic!("expected an http error, got {other:?}"),
        }
        assert!(conn.is_closed());
    }

    /// A free port on 127.0.0.1 (for a server whose frames must name its own origin).
    fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind(local(1, 0)).expect("bind");
        listener.local_addr().expect("addr").port()
    }

    fn alt(protocol: &str, host: Option<&str>, port: u16, max_age: u32, source: AltSvcSource) -> AltService {
        AltService {
            protocol: protocol.into(),
            host: host.map(str::to_string),
            port,
            max_age: Some(max_age),
            source,
        }
    }

    /// A hyper server that sends ORIGIN and ALTSVC frames after its SETTINGS and an Alt-Svc
    /// header on every answer.
    async fn server_with_signals(pki: &Pki, port: u16) -> crate::testing::net::TestServer {
        use crate::lab::frames::{altsvc_frame, origin_frame, raw_frame};
        let own = format!("https://a.test:{port}");
        let frames = vec![
            origin_frame(&["https://b.test", "https://C.test:8443", "ftp://x.test"]),
            raw_frame(frames::ORIGIN, 0, 3, b"\x00\x0ehttps://d.test"),
            altsvc_frame(&own, "h2=\"alt.a.test:8443\"; ma=60", 0),
            altsvc_frame("https://b.test", "h3=\":1\"", 0),
        ];
        let signals = Signals {
            frames,
            alt_svc: Some("h3=\":443\"; ma=86400"),
        };
        let (chain, key) = pki.leaf(&["a.test", "b.test"], Validity::Current);
        signalling_server(local(1, port), chain, key, ServerOptions::default(), signals).await
    }

    #[tokio::test]
    async fn origin_and_altsvc_frames_and_alt_svc_headers_are_read() {
        let pki = Pki::new("test CA");
        let port = free_port();
        let server = server_with_signals(&pki, port).await;
        let conn = open(&pki.settings(T), server.addr, "a.test")
            .await
            .expect("open")
            .conn
            .expect("h2");
        // hyper is unbothered by the frames it does not know.
        let a = conn.request("a.test", port, "/", T).await.expect("a");
        let b = conn.request("b.test", port, "/", T).await.expect("b");
        assert_eq!((a.status, b.status), (200, 200));
        let signals = conn.signals();
        let set = signals.origin.clone().expect("an origin set");
        assert_eq!(set.origins, ["https://b.test", "https://c.test:8443"]);
        assert_eq!((set.frames, set.invalid), (1, 1));
        assert!(set.lists("b.test", 443));
        assert_eq!(
            signals.alt_svc,
            [
                alt("h2", Some("alt.a.test"), 8443, 60, AltSvcSource::Frame),
                alt("h3", None, 443, 86400, AltSvcSource::Header),
            ],
            "the frame for b.test and b.test's answer's header are not a.test's"
        );
        assert!(signals.offers_h3());
        assert_eq!(signals.anomalies, [FrameAnomaly::OriginOnStream(3)]);
    }

    #[tokio::test]
    async fn a_plain_server_signals_nothing() {
        let pki = Pki::new("test CA");
        let server = simple_server(&pki, &["a.test"], Validity::Current).await;
        let conn = open(&pki.settings(T), server.addr, "a.test")
            .await
            .expect("open")
            .conn
            .expect("h2");
        conn.request("a.test", server.addr.port(), "/", T)
            .await
            .expect("a");
        assert_eq!(conn.signals(), ServerSignals::default());
    }

    #[tokio::test]
    async fn the_prober_records_the_first_connections_signals() {
        use crate::engine::live::planner::{address_peers, Plan};
        use crate::engine::probe::dns::{Dns, DnsConfig, ResolveOverride};
        use crate::engine::prober::{ProbeOptions, Prober};
        use crate::engine::record::{Job, Records};
        use crate::watchlist::Entry;

        let pki = Pki::new("test CA");
        let port = free_port();
        let _server = server_with_signals(&pki, port).await;
        let ip = local(1, 0).ip();
        let overrides = ["a.test", "b.test"]
            .map(|host| ResolveOverride {
                host: host.into(),
                port: None,
                addrs: vec![ip],
            })
            .to_vec();
        // Overrides only: no query leaves the machine.
        let dns = Dns::new(DnsConfig {
            nameservers: vec![local(1, 9)],
            overrides,
            timeout: T,
        })
        .expect("dns");
        let prober = Prober::new(dns, pki.settings(T), ProbeOptions::default());
        let entries: Vec<Entry> = ["a.test", "b.test"]
            .iter()
            .enumerate()
            .map(|(line, host)| Entry {
                host: host.to_string(),
                port,
                path: None,
                line,
            })
            .collect();
        let mut records = Records {
            hosts: crate::engine::oneshot::resolve_all(&prober, &entries).await,
            ..Default::default()
        };
        let plan = Plan {
            peers: address_peers(&records.hosts),
            ..Plan::default()
        };
        let result = prober.run_job(Job::Origin(0, ip), &records.hosts, &plan).await;
        records.apply(result);
        let ep = &records.hosts[0].endpoints[&ip];
        assert_eq!(ep.own.len(), 1);
        let signals = ep.signals.as_deref().expect("signals recorded");
        let set = signals.origin.as_ref().expect("origin set");
        assert_eq!(set.origins, ["https://b.test", "https://c.test:8443"]);
        assert_eq!(signals.alt_svc.len(), 2);
    }

    #[test]
    fn authorities() {
        assert_eq!(authority("a.test", 443), "a.test");
        assert_eq!(authority("a.test", 8443), "a.test:8443");
        assert_eq!(authority("::1", 443), "[::1]");
        assert_eq!(authority("::1", 8443), "[::1]:8443");
        assert_eq!(authority("[::1]", 8443), "[::1]:8443");
        assert_eq!(normalize_path("x"), "/x");
        assert_eq!(normalize_path("/x"), "/x");
    }

    #[test]
    fn header_extraction() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, "Text/HTML ; charset=utf-8".parse().unwrap());
        headers.insert(SERVER, "x".repeat(1000).parse().unwrap());
        assert_eq!(content_type(&headers).as_deref(), Some("text/html"));
        assert_eq!(server_header(&headers).map(|s| s.len()), Some(SERVER_HEADER_CAP));
        headers.insert(CONTENT_TYPE, ";".parse().unwrap());
        assert_eq!(content_type(&headers), None);
    }
}
