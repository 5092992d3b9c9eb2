//! What a lab server answers: a pure decision from (style, SNI site, Host site, connection
//! number), then the rendering of that decision into an HTTP response.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use super::scenarios::{Site, Style};

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The site's own answer (its status, its page).
    Serve(&'static Site),
    /// nginx's 421 page, with the headers of the SNI's server block.
    NginxMisdirected { vhost: &'static Site },
    /// Apache's 421 page, with the headers of the target (Host) vhost.
    ApacheMisdirected { vhost: &'static Site },
    /// An empty 421 (Caddy, a strict backend).
    EmptyMisdirected,
    /// No answer: the stream is reset with HTTP_1_1_REQUIRED (mod_http2 when the request needs
    /// a TLS renegotiation).
    ResetHttp11Required,
    /// Envoy's empty 404 for a Host its SNI-chosen route table does not know.
    EnvoyNotFound,
    /// A Host no site on this address answers to.
    UnknownHost,
}

/// Decide the answer. `sni_site` is the site the connection's SNI selected (the address's
/// default site when the SNI is absent or unknown); `host_site` is the site named by the
/// request's Host (None when the Host is absent or not served here). `conn` numbers the
/// accepted TCP connections of the listener from 0.
pub(crate) fn decide(
    style: Style,
    sni_site: &'static Site,
    host_site: Option<&'static Site>,
    conn: u64,
) -> Outcome {
    let same = host_site.is_some_and(|h| h.name == sni_site.name);
    match style {
        Style::ByHost | Style::Blackhole => by_host(host_site),
        Style::NginxClientAuth { protected } => match host_site {
            Some(h) if h.name == protected && !same => Outcome::NginxMisdirected { vhost: sni_site },
            _ => by_host(host_site),
        },
        Style::ApacheStrict => match host_site {
            Some(h) if !same => Outcome::ApacheMisdirected { vhost: h },
            _ => by_host(host_site),
        },
        Style::ApacheInsecure { protected } => match host_site {
            Some(h) if h.name == protected && !same => Outcome::ResetHttp11Required,
            _ => by_host(host_site),
        },
        Style::CaddyStrict => strict(sni_site, host_site),
        Style::EnvoySni => {
            if same {
                Outcome::Serve(sni_site)
            } else {
                Outcome::EnvoyNotFound
            }
        }
        Style::SniRouter => Outcome::Serve(sni_site),
        Style::LoadBalancer => {
            if conn % 2 == 0 {
                by_host(host_site)
            } else {
                strict(sni_site, host_site)
            }
        }
    }
}

fn by_host(host_site: Option<&'static Site>) -> Outcome {
    host_site.map_or(Outcome::UnknownHost, Outcome::Serve)
}

fn strict(sni_site: &'static Site, host_site: Option<&'static Site>) -> Outcome {
    match host_site {
        Some(h) if h.name == sni_site.name => Outcome::Serve(h),
        Some(_) => Outcome::EmptyMisdirected,
        None => Outcome::UnknownHost,
    }
}

/// The label in the `server` header: the style, and for the balancer which backend.
pub(crate) fn server_label(style: Style, conn: u64) -> String {
    match style {
        Style::LoadBalancer => format!("load-balancer backend-{}", 1 + conn % 2),
        other => other.label().to_string(),
    }
}

const NGINX_421: &str = "<html>\r\n<head><title>421 Misdirected Request</title></head>\r\n\
<body>\r\n<center><h1>421 Misdirected Request</h1></center>\r\n\
<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

const APACHE_421: &str = "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n\
<html><head>\n<title>421 Misdirected Request</title>\n</head><body>\n\
<h1>Misdirected Request</h1>\n<p>The client needs a new connection for this\n\
request as the requested host name does not match\n\
the Server Name Indication (SNI) in use for this\nconnection.</p>\n</body></html>\n";

const UNKNOWN_HOST: &str = "<!doctype html>\n<html><head><title>404 Not Found</title></head>\
<body><h1>404 Not Found</h1><p>no site for this Host on this address</p></body></html>\n";

/// Counter for the `live` sites' pages (shared by the whole lab).
#[derive(Debug, Default)]
pub(crate) struct LiveCounter(AtomicU64);

/// Render an outcome. `server` is the `server` header's style label, `sni` the name of the
/// site the connection's SNI selected.
pub(crate) fn render(outcome: Outcome, server: &str, sni: &str, live: &LiveCounter) -> Response<Full<Bytes>> {
    let server_header = format!("coalscope-lab ({server})");
    match outcome {
        Outcome::Serve(site) => {
            let status = StatusCode::from_u16(site.status).unwrap_or(StatusCode::OK);
            let body = site_page(site, status, sni, live);
            html(status, &server_header, Some(site), body)
        }
        Outcome::NginxMisdirected { vhost } | Outcome::ApacheMisdirected { vhost } => {
            let page = if matches!(outcome, Outcome::NginxMisdirected { .. }) {
                NGINX_421
            } else {
                APACHE_421
            };
            html(
                StatusCode::MISDIRECTED_REQUEST,
                &server_header,
                Some(vhost),
                page.to_string(),
            )
        }
        Outcome::EmptyMisdirected => empty(StatusCode::MISDIRECTED_REQUEST, &server_header),
        // The server resets the stream instead (`server.rs`); over HTTP/1.1, where there is
        // no stream to reset, what httpd logs for it: 403.
        Outcome::ResetHttp11Required => empty(StatusCode::FORBIDDEN, &server_header),
        Outcome::EnvoyNotFound => empty(StatusCode::NOT_FOUND, "envoy"),
        Outcome::UnknownHost => html(
            StatusCode::NOT_FOUND,
            &server_header,
            None,
            UNKNOWN_HOST.to_string(),
        ),
    }
}

fn site_page(site: &Site, status: StatusCode, sni: &str, live: &LiveCounter) -> String {
    let name = site.name;
    let detail = if status.is_server_error() {
        format!(
            "<p>{} {}: the application behind this site is down</p>",
            status.as_u16(),
            status.canonical_reason().unwrap_or("error")
        )
    } else if site.live {
        let n = live.0.fetch_add(1, Ordering::Relaxed) + 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        format!("<p>update #{n} at {now} ms since the epoch</p>")
    } else if site.prints_sni {
        format!("<p>served by the coalscope lab</p><p>you reached this page as {sni} over TLS</p>")
    } else {
        "<p>served by the coalscope lab</p>".to_string()
    };
    format!(
        "<!doctype html>\n<html><head><title>{name}</title></head>\
         <body><h1>site {name}</h1>{detail}</body></html>\n"
    )
}

fn html(status: StatusCode, server: &str, vhost: Option<&Site>, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(server) {
        h.insert(header::SERVER, v);
    }
    if let Some(site) = vhost {
        // What a server block / vhost adds itself (e.g. nginx `add_header`): it tells whose
        // headers an error page carries.
        if let Ok(v) = HeaderValue::from_str(site.name) {
            h.insert("x-vhost", v);
        }
    }
    resp
}

fn empty(status: StatusCode, server: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(server) {
        resp.headers_mut().insert(header::SERVER, v);
    }
    resp
}

/// The Host a request names: h2 `:authority` (in the URI) or the `Host` header, without a
/// port, lower-cased, without a trailing dot.
pub(crate) fn request_host<B>(req: &http::Request<B>) -> Option<String> {
    let from_uri = req.uri().host().map(str::to_string);
    let host = from_uri.or_else(|| {
        let value = req.headers().get(header::HOST)?.to_str().ok()?;
        let authority: http::uri::Authority = value.parse().ok()?;
        Some(authority.host().to_string())
    })?;
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    static A: Site = Site {
        name: "a.x.test",
        octets: &[1],
        also_at: &[],
        status: 200,
        live: false,
        prints_sni: false,
        findings: &[],
        https_alpn: &[],
    };
    static B: Site = Site {
        name: "b.x.test",
        octets: &[1],
        also_at: &[],
        status: 200,
        live: false,
        prints_sni: false,
        findings: &[],
        https_alpn: &[],
    };

    fn status(o: Outcome) -> u16 {
        match o {
            Outcome::Serve(s) => s.status,
            Outcome::NginxMisdirected { .. }
            | Outcome::ApacheMisdirected { .. }
            | Outcome::EmptyMisdirected => 421,
            Outcome::EnvoyNotFound | Outcome::UnknownHost => 404,
            // No status: the stream is reset.
            Outcome::ResetHttp11Required => 0,
        }
    }

    #[test]
    fn decision_table() {
        let nginx = Style::NginxClientAuth {
            protected: "b.x.test",
        };
        let insecure = Style::ApacheInsecure {
            protected: "b.x.test",
        };
        // (style, sni, host, conn, expected status (0: stream reset), expected served site)
        type Case = (
            Style,
            &'static Site,
            &'static Site,
            u64,
            u16,
            Option<&'static str>,
        );
        let cases: &[Case] = &[
            (Style::ByHost, &A, &B, 0, 200, Some("b.x.test")),
            (nginx, &A, &B, 0, 421, None),
            (nginx, &B, &A, 0, 200, Some("a.x.test")),
            (nginx, &B, &B, 0, 200, Some("b.x.test")),
            (Style::ApacheStrict, &A, &B, 0, 421, None),
            (Style::ApacheStrict, &A, &A, 0, 200, Some("a.x.test")),
            (insecure, &A, &B, 0, 0, None),
            (insecure, &B, &A, 0, 200, Some("a.x.test")),
            (insecure, &B, &B, 0, 200, Some("b.x.test")),
            (Style::CaddyStrict, &B, &A, 0, 421, None),
            (Style::EnvoySni, &A, &B, 0, 404, None),
            (Style::EnvoySni, &B, &B, 0, 200, Some("b.x.test")),
            (Style::SniRouter, &A, &B, 0, 200, Some("a.x.test")),
            (Style::LoadBalancer, &A, &B, 0, 200, Some("b.x.test")),
            (Style::LoadBalancer, &A, &B, 1, 421, None),
            (Style::LoadBalancer, &A, &A, 1, 200, Some("a.x.test")),
        ];
        for &(style, sni, host, conn, want, site) in cases {
            let got = decide(style, sni, Some(host), conn);
            assert_eq!(status(got), want, "{style:?} sni={} host={}", sni.name, host.name);
            if let Some(name) = site {
                assert_eq!(got, Outcome::Serve(if name == A.name { &A } else { &B }));
            }
        }
    }

    #[test]
    fn misdirected_pages_carry_the_right_vhost() {
        let nginx = Style::NginxClientAuth {
            protected: "b.x.test",
        };
        assert_eq!(
            decide(nginx, &A, Some(&B), 0),
            Outcome::NginxMisdirected { vhost: &A }
        );
        assert_eq!(
            decide(Style::ApacheStrict, &A, Some(&B), 0),
            Outcome::ApacheMisdirected { vhost: &B }
        );
        let live = LiveCounter::default();
        let r = render(decide(nginx, &A, Some(&B), 0), "nginx", A.name, &live);
        assert_eq!(r.headers()["x-vhost"], "a.x.test");
        let r = render(
            decide(Style::ApacheStrict, &A, Some(&B), 0),
            "apache",
            A.name,
            &live,
        );
        assert_eq!(r.headers()["x-vhost"], "b.x.test");
        let r = render(Outcome::EnvoyNotFound, "envoy", A.name, &live);
        assert_eq!(r.headers()["server"], "envoy");
    }

    #[test]
    fn echo_pages_print_the_connection_server_name() {
        let echo = Site {
            prints_sni: true,
            ..A
        };
        let live = LiveCounter::default();
        let page = |sni| site_page(&echo, StatusCode::OK, sni, &live);
        assert!(page("b.x.test").contains("you reached this page as b.x.test over TLS"));
        assert_ne!(page("a.x.test"), page("b.x.test"));
        assert_eq!(page("a.x.test"), page("a.x.test"), "not between two requests");
        assert!(!site_page(&A, StatusCode::OK, "b.x.test", &live).contains("b.x.test"));
    }

    #[test]
    fn unknown_host_is_404_except_for_the_sni_router() {
        assert_eq!(decide(Style::ByHost, &A, None, 0), Outcome::UnknownHost);
        assert_eq!(decide(Style::SniRouter, &A, None, 0), Outcome::Serve(&A));
    }

    #[test]
    fn host_is_normalised() {
        let req = http::Request::get("https://WWW.Example.test.:8443/x")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req).as_deref(), Some("www.example.test"));
        let req = http::Request::get("/x")
            .header("host", "Api.Example.test:443")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req).as_deref(), Some("api.example.test"));
        let req = http::Request::get("/x").body(()).unwrap();
        assert_eq!(request_host(&req), None);
    }
}
