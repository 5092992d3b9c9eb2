//! The HTTP/3 prober (issue 17, step 1) against real QUIC servers on loopback (quinn + h3, the
//! test PKI): one connection opened for a name carries a request for another, as browsers
//! coalesce over HTTP/3 (RFC 9114 §3.3); the chain is captured and verified as over HTTP/2;
//! a reset keeps its HTTP/3 code; an endless body is cut at the cap. The ways QUIC can go
//! silent or wrong: `tests/h3_hostile.rs`.

// Test code: a failed expectation is a failed test, said where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coalscope::engine::probe::error::{H3Code, ProbeError};
use coalscope::engine::probe::h2::BODY_CAP;
use coalscope::engine::probe::h3;
use coalscope::engine::probe::h3_control::ControlSeen;
use coalscope::testing::h3::{h3_server, H3Reply, H3Rule, H3Seen};
use coalscope::testing::net::{no_hang, Pki, Validity};

/// The probes' timeout here.
const T: Duration = Duration::from_secs(1);
/// Slack for a loaded 2-core machine on top of a bound (a hang detector, not a speed target).
const SLACK: Duration = Duration::from_secs(5);

fn loopback(last: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 17, last], 0))
}

/// Caddy's `strict_sni_host`: a request whose `:authority` is not the SNI gets 421.
fn strict() -> H3Rule {
    Arc::new(|sni, authority| {
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        if sni == Some(host) {
            H3Reply::Answer(200, format!("site {host}"))
        } else {
            H3Reply::Answer(421, String::new())
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_for_one_name_carries_a_request_for_another() {
    let pki = Pki::new("h3 probe");
    let (chain, key) = pki.leaf(&["www.h3.test", "api.h3.test"], Validity::Current);
    let server = h3_server(loopback(1), chain.clone(), key, strict()).await;
    let settings = pki.settings(T);
    let port = server.addr.port();
    let opened = no_hang("h3 open", h3::open(&settings, server.addr, "www.h3.test"))
        .await
        .expect("h3 handshake");
    assert_eq!(opened.tls.alpn.as_deref(), Some(h3::ALPN_H3));
    assert_eq!(opened.tls.version, "TLSv1.3");
    assert_eq!(opened.tls.chain, chain, "the whole chain, leaf first");
    assert_eq!(opened.tls.chain_error, None, "it verifies against the test CA");
    let own = opened
        .conn
        .request("www.h3.test", port, "/", T)
        .await
        .expect("own");
    assert_eq!((own.status, own.version.as_str()), (200, "HTTP/3"));
    assert_eq!(own.body_len, "site www.h3.test".len());
    let other = opened
        .conn
        .request("api.h3.test", port, "/", T)
        .await
        .expect("coalesced");
    assert_eq!(other.status, 421, "the coalesced request is refused");
    assert!(!opened.conn.is_closed());
    let authority = |name: &str| format!("{name}:{port}");
    assert_eq!(
        server.seen(),
        vec![
            H3Seen {
                sni: Some("www.h3.test".into()),
                authority: authority("www.h3.test"),
                connection: 1
            },
            H3Seen {
                sni: Some("www.h3.test".into()),
                authority: authority("api.h3.test"),
                connection: 1
            },
        ],
        "both requests on the one connection opened for www"
    );
    // A chain from a CA the settings do not trust is still captured, and says so.
    let stranger = Pki::new("someone else");
    let (chain, key) = stranger.leaf(&["www.h3.test"], Validity::Expired);
    let other_server = h3_server(loopback(2), chain, key, strict()).await;
    let opened = h3::open(&settings, other_server.addr, "www.h3.test")
        .await
        .expect("handshake");
    assert_eq!(opened.tls.chain.len(), 2);
    assert!(opened.tls.chain_error.is_some(), "{:?}", opened.tls.chain_error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_keeps_its_http3_code_and_an_endless_body_is_cut_at_the_cap() {
    let pki = Pki::new("h3 probe");
    let (chain, key) = pki.leaf(&["*.h3.test"], Validity::Current);
    let rule: H3Rule = Arc::new(|_, authority| match authority.split(':').next() {
        Some("reject.h3.test") => H3Reply::Reset(H3Code::REQUEST_REJECTED.0),
        Some("fallback.h3.test") => H3Reply::Reset(H3Code::VERSION_FALLBACK.0),
        _ => H3Reply::Endless,
    });
    let server = h3_server(loopback(3), chain, key, rule).await;
    let settings = pki.settings(T);
    let port = server.addr.port();
    let opened = h3::open(&settings, server.addr, "www.h3.test")
        .await
        .expect("handshake");
    let reset = opened.conn.request("reject.h3.test", port, "/", T).await;
    assert_eq!(
        reset,
        Err(ProbeError::H3Reset {
            code: H3Code::REQUEST_REJECTED,
            by_client: false
        })
    );
    let fallback = opened.conn.request("fallback.h3.test", port, "/", T).await;
    assert_eq!(
        fallback.map_err(|e| e.to_string()),
        Err("http: stream reset: H3_VERSION_FALLBACK".to_string())
    );
    let started = Instant::now();
    let endless = no_hang("endless body", opened.conn.request("www.h3.test", port, "/", T))
        .await
        .expect("capped answer");
    assert_eq!((endless.status, endless.body_len), (200, BODY_CAP));
    assert!(endless.body_unbounded, "no length and no end: may never end");
    assert!(started.elapsed() < T + SLACK);
    // The connection still carries requests after a reset and a cut body.
    assert!(opened.conn.request("reject.h3.test", port, "/", T).await.is_err());
    assert!(!opened.conn.is_closed());
}

/// The server's HTTP/3 ORIGIN frame (RFC 9412), which h3 itself drops, is read from its
/// control stream beside h3: the origins it lists, normalised; a server that sends none
/// leaves the set empty (None). Requests go on as usual on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http3_origin_frame_is_read_from_the_control_stream() {
    use coalscope::testing::h3::h3_server_with_origin;
    let pki = Pki::new("h3 probe");
    let (chain, key) = pki.leaf(&["www.h3.test", "api.h3.test"], Validity::Current);
    let origins = ["https://api.h3.test", "HTTPS://Img.H3.test:8443", "not an origin"];
    let server = h3_server_with_origin(loopback(4), chain.clone(), key.clone_key(), strict(), &origins).await;
    let settings = pki.settings(T);
    let port = server.addr.port();
    let opened = no_hang("h3 open", h3::open(&settings, server.addr, "www.h3.test"))
        .await
        .expect("h3 handshake");
    let own = opened
        .conn
        .request("www.h3.test", port, "/", T)
        .await
        .expect("own");
    assert_eq!(own.status, 200);
    // The control stream is a stream of its own: its SETTINGS are waited for.
    let ControlSeen::Read(Some(set)) = opened.conn.settled(T).await else {
        panic!("no ORIGIN frame read: {:?}", opened.conn.control_seen());
    };
    assert_eq!(opened.conn.origin().as_ref(), Some(&set));
    assert_eq!(set.origins, ["https://api.h3.test", "https://img.h3.test:8443"]);
    assert_eq!((set.frames, set.invalid, set.dropped), (1, 1, 0));
    let other = opened
        .conn
        .request("api.h3.test", port, "/", T)
        .await
        .expect("coalesced");
    assert_eq!(other.status, 421);
    // Without the frame: None.
    let plain = h3_server(loopback(5), chain, key, strict()).await;
    let opened = h3::open(&settings, plain.addr, "www.h3.test")
        .await
        .expect("handshake");
    let own = opened
        .conn
        .request("www.h3.test", plain.addr.port(), "/", T)
        .await;
    assert_eq!(own.map(|a| a.status), Ok(200));
    assert_eq!(opened.conn.settled(T).await, ControlSeen::Read(None));
}
