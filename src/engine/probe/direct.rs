//! Direct requests: a fresh connection per request to one chosen address (SNI = the host),
//! used as the reference answer for a target, and an HTTP/1.1 request that tells whether only
//! HTTP/2 is affected when the HTTP/2 answers fail.
//!
//! The connection is opened and driven here (rustls + hyper's connection API), not by a
//! pooling client such as reqwest, so that it is closed the moment the answer is read or the
//! timeout hits, whatever the server did: a pooled client's background task can outlive the
//! request (e.g. a request queued for a stream slot under SETTINGS_MAX_CONCURRENT_STREAMS = 0
//! is never given up, and its socket stays open for good). One request, one answer, no retry,
//! no redirect followed; the body is read up to `h2::BODY_CAP`, headers up to small caps.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;
use http::header::{ACCEPT, HOST, USER_AGENT};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::task::JoinHandle;

use crate::engine::probe::error::{within, Phase, ProbeError};
use crate::engine::probe::h2::{self, HttpAnswer};
use crate::engine::probe::tls::{self, TlsSettings};

/// Which protocol the direct request may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectProtocol {
    /// Offer h2 and http/1.1 by ALPN, as a browser would.
    Negotiate,
    /// HTTP/1.1 only.
    Http1Only,
}

const ALPN_H1: &[&[u8]] = &[b"http/1.1"];

/// Most header lines, and bytes of the response head, accepted over HTTP/1.1 (HTTP/2 has
/// `SETTINGS_MAX_HEADER_LIST_SIZE`, see `h2`).
const H1_MAX_HEADERS: usize = 128;
const H1_MAX_BUF: usize = 128 * 1024;

/// Aborts the connection task (and so closes the socket) when dropped.
struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// GET https://`host`:`port``path` on a fresh connection to `addr`, SNI = `host`, without
/// following redirects, certificate errors ignored (they are reported elsewhere). Connect,
/// TLS handshake and the request (headers + capped body) are each bounded by
/// `settings.timeout`. The body is read up to `h2::BODY_CAP` and digested exactly as
/// `h2::H2Connection::request` does.
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
    let (stream, info) = tls::connect(settings, SocketAddr::new(addr, port), host, alpn).await?;
    if info.alpn.as_deref() == Some("h2") {
        // Dropped at the end of this function: the socket closes with it.
        let conn = h2::handshake(stream, host, port, timeout).await?;
        return conn.request(host, port, path, timeout).await;
    }
    let started = Instant::now();
    let _closer = tls::SocketCloser::new(&stream);
    let exchange = async {
        let mut builder = hyper::client::conn::http1::Builder::new();
        builder.max_headers(H1_MAX_HEADERS).max_buf_size(H1_MAX_BUF);
        let (mut sender, connection) = builder
            .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| h2::http_error(&e))?;
        let _driver = Driver(tokio::spawn(async move {
            // Errors surface on the request.
            let _ = connection.await;
        }));
        let request = http::Request::get(h2::normalize_path(path))
            .header(HOST, h2::authority(host, port))
            .header(USER_AGENT, h2::user_agent())
            .header(ACCEPT, "*/*")
            .body(Empty::<Bytes>::new())
            .map_err(|e| ProbeError::Http(format!("invalid request: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| h2::http_error(&e))?;
        h2::read_answer(response, "HTTP/1.1", started)
            .await
            .map_err(|e| h2::http_error(&e))
    };
    within(Phase::Request, timeout, exchange).await?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::net::{
        local, no_hang, raw_server, refused_addr, sha256_hex, simple_server, tls_server, Pki, RawBehaviour,
        ServerOptions, Validity,
    };
    use std::time::Duration;

    const T: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn the_chosen_address_is_used_with_sni_and_h2() {
        let pki = Pki::new("test CA");
        let first = simple_server(&pki, &["a.test"], Validity::Current).await;
        let port = first.addr.port();
        // Same port on another loopback address: only the address tells them apart.
        let (chain, key) = pki.leaf(&["a.test"], Validity::Current);
        let second = tls_server(local(2, port), chain, key, ServerOptions::default()).await;
        let settings = pki.settings(T);

        let answer = request(
            &settings,
            "a.test",
            port,
            "/p",
            local(2, 0).ip(),
            DirectProtocol::Negotiate,
        )
        .await
        .expect("request");
        assert_eq!(answer.status, 200);
        assert_eq!(answer.version, "HTTP/2");
        assert_eq!(answer.body_digest, sha256_hex(b"site=a.test sni=a.test path=/p"));
        assert_eq!(answer.content_type.as_deref(), Some("text/plain"));
        assert_eq!(answer.server.as_deref(), Some("testsrv/1"));
        assert!(first.seen().is_empty());
        let seen = second.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].sni.as_deref(), Some("a.test"));
        assert_eq!(seen[0].authority, format!("a.test:{port}"));

        let answer = request(
            &settings,
            "a.test",
            port,
            "/p",
            local(1, 0).ip(),
            DirectProtocol::Negotiate,
        )
        .await
        .expect("request");
        assert_eq!(answer.status, 200);
        assert_eq!(first.seen().len(), 1);
        assert_eq!(second.seen().len(), 1);
    }

    #[tokio::test]
    async fn http1_only_and_fresh_connections() {
        let pki = Pki::new("test CA");
        let server = simple_server(&pki, &["a.test"], Validity::Current).await;
        let settings = pki.settings(T);
        let ip = server.addr.ip();
        let port = server.addr.port();
        let answer = request(&settings, "a.test", port, "/", ip, DirectProtocol::Http1Only)
            .await
            .expect("request");
        assert_eq!(answer.version, "HTTP/1.1");
        assert_eq!(server.seen()[0].version, http::Version::HTTP_11);
        let again = request(&settings, "a.test", port, "/", ip, DirectProtocol::Http1Only)
            .await
            .expect("request");
        assert_eq!(again.body_digest, answer.body_digest);
        assert_eq!(server.accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(server.wait_closed(2, T * 3).await, "no connection kept open");
    }

    #[tokio::test]
    async fn same_digest_as_the_h2_probe_and_capped_body() {
        let pki = Pki::new("test CA");
        let server = simple_server(&pki, &["a.test"], Validity::Current).await;
        let settings = pki.settings(T);
        let (ip, port) = (server.addr.ip(), server.addr.port());
        let conn = crate::engine::probe::h2::open(&settings, server.addr, "a.test")
            .await
            .expect("open")
            .conn
            .expect("h2");
        for path in ["/", "/big"] {
            let via_h2 = conn.request("a.test", port, path, T).await.expect("h2");
            for protocol in [DirectProtocol::Negotiate, DirectProtocol::Http1Only] {
                let direct = request(&settings, "a.test", port, path, ip, protocol)
                    .await
                    .expect("direct");
                assert_eq!(direct.body_digest, via_h2.body_digest, "{path} {protocol:?}");
                assert_eq!(direct.body_len, via_h2.body_len);
                assert_eq!(direct.content_type, via_h2.content_type);
            }
        }
        // A body read past the cap would never end: the request would time out (after T) and
        // this `expect` fail. No wall-clock bound needed.
        let endless = request(
            &settings,
            "a.test",
            port,
            "/endless",
            ip,
            DirectProtocol::Http1Only,
        )
        .await
        .expect("endless");
        assert_eq!(endless.body_len, crate::engine::probe::h2::BODY_CAP);
    }

    #[tokio::test]
    async fn redirects_are_not_followed_and_bad_certificates_are_ignored() {
        let pki = Pki::new("test CA");
        let server = simple_server(&pki, &["a.test"], Validity::Expired).await;
        let settings = TlsSettings::new(None, T).expect("settings");
        let answer = request(
            &settings,
            "a.test",
            server.addr.port(),
            "/redirect",
            server.addr.ip(),
            DirectProtocol::Negotiate,
        )
        .await
        .expect("request");
        assert_eq!(answer.status, 302);
        assert_eq!(server.seen().len(), 1);
    }

    #[tokio::test]
    async fn failures_name_their_phase() {
        let short = Duration::from_millis(500);
        let settings = TlsSettings::new(None, short).expect("settings");
        let go = |addr: SocketAddr, path: &'static str| {
            let settings = settings.clone();
            async move {
                request(
                    &settings,
                    "a.test",
                    addr.port(),
                    path,
                    addr.ip(),
                    DirectProtocol::Negotiate,
                )
                .await
                .err()
            }
        };
        let refused = refused_addr().await;
        assert_eq!(
            go(refused, "/").await,
            Some(ProbeError::Connect("connection refused".into()))
        );

        let garbage = raw_server(RawBehaviour::Garbage).await;
        assert_eq!(
            go(garbage.addr, "/").await,
            Some(ProbeError::Tls("received garbage (not TLS)".into()))
        );
        let closer = raw_server(RawBehaviour::Close).await;
        assert_eq!(
            go(closer.addr, "/").await,
            Some(ProbeError::Tls("handshake closed by peer".into()))
        );

        // The request phase's own timer ends it (the error says which, and after how long);
        // real sockets, so the clock is real: the bound only catches a timer that never fires.
        let pki = Pki::new("test CA");
        let server = simple_server(&pki, &["a.test"], Validity::Current).await;
        assert_eq!(
            no_hang("a request to /hang", go(server.addr, "/hang")).await,
            Some(ProbeError::Timeout {
                phase: Phase::Request,
                after: short
            })
        );
    }

    /// On tokio's paused clock (the peer never sends a byte, so only the probe's timers move
    /// time): a silent server costs exactly one phase's timeout, however loaded the machine.
    #[tokio::test(start_paused = true)]
    async fn a_silent_server_costs_one_timeout() {
        let short = Duration::from_millis(500);
        let settings = TlsSettings::new(None, short).expect("settings");
        let silent = raw_server(RawBehaviour::Silent).await;
        let started = tokio::time::Instant::now();
        let err = request(
            &settings,
            "a.test",
            silent.addr.port(),
            "/",
            silent.addr.ip(),
            DirectProtocol::Negotiate,
        )
        .await
        .err();
        assert!(matches!(err, Some(ProbeError::Timeout { .. })), "{err:?}");
        assert_eq!(started.elapsed(), short);
    }
}
