//! Direct requests with reqwest: a fresh connection per request to one chosen address
//! (SNI = the host), used as the reference answer for a target, and an HTTP/1.1 request
//! that tells whether only HTTP/2 is affected when the HTTP/2 answers fail.

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
        // One request, one answer: reqwest's default retries a refused stream or a GOAWAY on
        // a new connection, which would hide exactly what a probe is meant to see.
        .retry(reqwest::retry::never())
        // Bounds on what a server may make us buffer: HTTP/1.1 header lines (hyper also caps
        // the head at about 400 KiB) and the HTTP/2 header list.
        .http1_max_headers(128)
        .pool_max_idle_per_host(0)
        // Both bounds are `timeout`; the connect bound (TCP + TLS in reqwest) is a hair shorter
        // so that a stalled connect or handshake is reported as such, not as a request timeout.
        .connect_timeout(timeout.saturating_sub(timeout / 20))
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
    // Find the deepest io::Error and rustls::Error among the causes.
    let mut rustls_error = None;
    let mut io_error = None;
    for cause in h2::causes(e) {
        if let Some(r) = cause.downcast_ref::<rustls::Error>() {
            rustls_error = Some(r);
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            io_error = Some(io);
        }
    }
    let timed_out = e.is_timeout() || io_error.is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
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
            if io.kind() == std::io::ErrorKind::UnexpectedEof || io.kind() == std::io::ErrorKind::InvalidData
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testsupport::{
        local, raw_server, refused_addr, sha256_hex, simple_server, tls_server, Pki, RawBehaviour,
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
        let conn = crate::engine::h2::open(&settings, server.addr, "a.test")
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
        let started = std::time::Instant::now();
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
        assert_eq!(endless.body_len, crate::engine::h2::BODY_CAP);
        assert!(started.elapsed() < T);
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

        let silent = raw_server(RawBehaviour::Silent).await;
        let started = Instant::now();
        let err = go(silent.addr, "/").await;
        assert!(matches!(err, Some(ProbeError::Timeout { .. })), "{err:?}");
        assert!(started.elapsed() < short * 3, "{:?}", started.elapsed());

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

        let pki = Pki::new("test CA");
        let server = simple_server(&pki, &["a.test"], Validity::Current).await;
        let started = Instant::now();
        assert_eq!(
            go(server.addr, "/hang").await,
            Some(ProbeError::Timeout {
                phase: Phase::Request,
                after: short
            })
        );
        assert!(started.elapsed() < short * 3, "{:?}", started.elapsed());
    }
}
