//! The lab as data: one entry per scenario describing its names, addresses, certificates,
//! server behaviour and the verdicts a correct engine must give. Adding a scenario is adding
//! one entry to [`SCENARIOS`]; everything else (listeners, DNS, certificates, watch-file,
//! expectations) is derived from it.

use crate::engine::snapshot::{FindingKind, NotCoalescable, Verdict};

/// The lab's DNS zone (RFC 6761 reserves `.test`).
pub(crate) const ZONE: &str = "coalscope.test";

/// How a lab server answers a request, given the connection's SNI and the request's Host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// One TLS server, virtual hosts chosen by Host (what most servers do with a shared cert).
    ByHost,
    /// nginx with `ssl_verify_client optional` in `protected`'s server block: a request for
    /// `protected` on a connection whose SNI selected another block gets nginx's 421 page,
    /// sent with the SNI block's headers.
    NginxClientAuth { protected: &'static str },
    /// Apache httpd >= 2.4.64, `SSLVHostSNIPolicy secure`: the Host vhost differs from the SNI
    /// vhost -> 421 "Misdirected Request", sent with the target (Host) vhost's headers.
    ApacheStrict,
    /// Apache httpd, `SSLVHostSNIPolicy insecure`, `SSLVerifyClient` in `protected`'s vhost: a
    /// request for `protected` on a connection whose SNI selected another vhost would need a
    /// TLS renegotiation, which HTTP/2 forbids -> the stream is reset with HTTP_1_1_REQUIRED.
    ApacheInsecure { protected: &'static str },
    /// Caddy `strict_sni_host`: Host != SNI -> 421 with an empty body.
    CaddyStrict,
    /// Envoy/Istio: the route table is picked by SNI and only knows the SNI's name:
    /// Host != SNI -> 404 with an empty body and `server: envoy`.
    EnvoySni,
    /// A TCP proxy routing on SNI: serves the SNI's site whatever the Host.
    SniRouter,
    /// A balancer alternating two backends per accepted TCP connection: even connections go
    /// to a backend routing by Host, odd ones to a strict backend (Host != SNI -> 421).
    LoadBalancer,
    /// Accepts TCP connections and never sends a byte.
    Blackhole,
}

impl Style {
    /// The name shown in the `server` header and in `coalscope lab`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Style::ByHost => "by-host",
            Style::NginxClientAuth { .. } => "nginx",
            Style::ApacheStrict => "apache",
            Style::ApacheInsecure { .. } => "apache-insecure",
            Style::CaddyStrict => "caddy",
            Style::EnvoySni => "envoy",
            Style::SniRouter => "sni-router",
            Style::LoadBalancer => "load-balancer",
            Style::Blackhole => "blackhole",
        }
    }
}

/// Which application protocols a TLS server offers in ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alpn {
    /// `h2` and `http/1.1` (a client without ALPN gets HTTP/1.1 or HTTP/2 by preface).
    H2AndH1,
    /// `http/1.1` only: the server speaks HTTP/1.1 only.
    H1Only,
}

/// One listener: 127.0.0.`octet`, on the lab's common port.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Endpoint {
    pub octet: u8,
    pub style: Style,
    pub alpn: Alpn,
    /// Demo mode only: the style this listener has during a phase (see `phase.rs`).
    pub dynamic: &'static [(usize, Style)],
    /// Names an ORIGIN frame (RFC 8336) lists on every HTTP/2 connection, sent right after
    /// the server's SETTINGS (as Node.js's `origins` option does). Empty: no ORIGIN frame.
    pub origin_frame: &'static [&'static str],
    /// Serves HTTP/3 too, on UDP at the same address and port, answering as this style
    /// (which may differ from `style`, as Caddy's HTTP/3 listener may). None: TCP only.
    pub h3: Option<Style>,
}

/// One virtual host (one watch-file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Site {
    pub name: &'static str,
    /// Last octets of the A records (127.0.0.x). Empty: NXDOMAIN.
    pub octets: &'static [u8],
    /// Further addresses that serve the site without DNS pointing there (one server behind
    /// several addresses, each name published on one).
    pub also_at: &'static [u8],
    /// Status of every answer from this site (503 for a broken application).
    pub status: u16,
    /// The body changes on every answer (a counter and a timestamp).
    pub live: bool,
    /// The page prints the TLS server name of the connection it is served on (like a page
    /// showing nginx's `$ssl_server_name`): it varies by connection, not between two direct
    /// requests.
    pub prints_sni: bool,
    /// Host finding kinds a correct engine reports for this name.
    pub findings: &'static [FindingKind],
    /// The alpn of an HTTPS record (RFC 9460, ServiceMode, for the name itself) the lab DNS
    /// serves; empty: no HTTPS record.
    pub https_alpn: &'static [&'static str],
}

/// Which CA signs a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Issuer {
    /// The lab CA, written to `ca.pem`.
    Lab,
    /// A second CA that is never written to `ca.pem`.
    Untrusted,
}

/// One leaf certificate of a scenario.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CertSpec {
    pub sans: &'static [&'static str],
    pub issuer: Issuer,
    /// `not_after` in the past.
    pub expired: bool,
    /// SNI values that select this certificate. The scenario's first certificate is the
    /// default for an absent or unknown SNI.
    pub serves: &'static [&'static str],
}

/// One expected pair verdict: (origin, target, verdict, reason).
pub(crate) type Pair = (&'static str, &'static str, Verdict, Option<NotCoalescable>);

/// One scenario of the lab.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scenario {
    /// Short key, also the second-level label of its names.
    pub key: &'static str,
    /// What it reproduces (the watch-file comment).
    pub reproduces: &'static str,
    pub sites: &'static [Site],
    pub endpoints: &'static [Endpoint],
    pub certs: &'static [CertSpec],
    /// Every ordered pair of its names sharing an address, plus its cert-only pairs.
    pub expect: &'static [Pair],
}

impl Scenario {
    /// The sites this scenario serves on `octet`.
    pub(crate) fn sites_at(&self, octet: u8) -> impl Iterator<Item = &'static Site> + '_ {
        self.sites
            .iter()
            .filter(move |s| s.octets.contains(&octet) || s.also_at.contains(&octet))
    }
}

const fn site(name: &'static str, octets: &'static [u8]) -> Site {
    Site {
        name,
        octets,
        also_at: &[],
        status: 200,
        live: false,
        prints_sni: false,
        findings: &[],
        https_alpn: &[],
    }
}

/// A site whose page prints the connection's server name.
const fn echo_site(name: &'static str, octets: &'static [u8]) -> Site {
    Site {
        prints_sni: true,
        ..site(name, octets)
    }
}

const fn endpoint(octet: u8, style: Style) -> Endpoint {
    Endpoint {
        octet,
        style,
        alpn: Alpn::H2AndH1,
        dynamic: &[],
        origin_frame: &[],
        h3: None,
    }
}

const fn lab_cert(sans: &'static [&'static str], serves: &'static [&'static str]) -> CertSpec {
    CertSpec {
        sans,
        issuer: Issuer::Lab,
        expired: false,
        serves,
    }
}

const GOOD: [&str; 3] = [
    "www.good.coalscope.test",
    "api.good.coalscope.test",
    "live.good.coalscope.test",
];
const NGINX: [&str; 2] = ["shop.nginx.coalscope.test", "admin.nginx.coalscope.test"];
const APACHE: [&str; 2] = ["blog.apache.coalscope.test", "docs.apache.coalscope.test"];
const CADDY: [&str; 2] = ["api.caddy.coalscope.test", "www.caddy.coalscope.test"];
const ENVOY: [&str; 2] = ["grpc.envoy.coalscope.test", "web.envoy.coalscope.test"];
const ROUTER: [&str; 2] = ["alpha.router.coalscope.test", "beta.router.coalscope.test"];
const LB: [&str; 2] = ["pay.lb.coalscope.test", "cart.lb.coalscope.test"];
const MULTI: [&str; 2] = ["media.multi.coalscope.test", "cdn.multi.coalscope.test"];
const H1: [&str; 2] = ["legacy.h1.coalscope.test", "old.h1.coalscope.test"];
const CERTS: [&str; 2] = ["expired.certs.coalscope.test", "untrusted.certs.coalscope.test"];
const SPLIT: [&str; 2] = ["one.split.coalscope.test", "two.split.coalscope.test"];
const GEO: [&str; 2] = ["east.geo.coalscope.test", "west.geo.coalscope.test"];
const BROKEN: [&str; 2] = ["status.broken.coalscope.test", "app.broken.coalscope.test"];
const ECHO: [&str; 2] = ["north.echo.coalscope.test", "south.echo.coalscope.test"];
const ECHO_ROUTER: [&str; 2] = ["east.echorouter.coalscope.test", "west.echorouter.coalscope.test"];
const RENEGO: [&str; 2] = ["www.renego.coalscope.test", "admin.renego.coalscope.test"];
const ORIGIN: [&str; 2] = ["www.origin.coalscope.test", "api.origin.coalscope.test"];
const SVCB: [&str; 2] = ["www.svcb.coalscope.test", "img.svcb.coalscope.test"];
const QUIC: [&str; 2] = ["www.quic.coalscope.test", "api.quic.coalscope.test"];

/// Both ways of a two-name scenario with the same verdict.
const fn both(names: &'static [&'static str; 2], verdict: Verdict) -> [Pair; 2] {
    [
        (names[0], names[1], verdict, None),
        (names[1], names[0], verdict, None),
    ]
}

const fn both_not(names: &'static [&'static str; 2], reason: NotCoalescable) -> [Pair; 2] {
    [
        (names[0], names[1], Verdict::NotCoalescable, Some(reason)),
        (names[1], names[0], Verdict::NotCoalescable, Some(reason)),
    ]
}

/// The lab. Addresses are 127.0.0.10 and up, all on one port.
pub(crate) static SCENARIOS: &[Scenario] = &[
    Scenario {
        key: "good",
        reproduces: "a well-behaved server: one wildcard cert, vhosts by Host (every pair ok; live changes on every answer)",
        sites: &[
            site(GOOD[0], &[10]),
            site(GOOD[1], &[10]),
            Site { live: true, ..site(GOOD[2], &[10]) },
        ],
        endpoints: &[Endpoint {
            // Demo: in phase 2 api.good's block starts requiring client certificates.
            dynamic: &[(2, Style::NginxClientAuth { protected: GOOD[1] })],
            ..endpoint(10, Style::ByHost)
        }],
        certs: &[lab_cert(&["*.good.coalscope.test"], &[])],
        expect: &[
            (GOOD[0], GOOD[1], Verdict::Ok, None),
            (GOOD[0], GOOD[2], Verdict::Ok, None),
            (GOOD[1], GOOD[0], Verdict::Ok, None),
            (GOOD[1], GOOD[2], Verdict::Ok, None),
            (GOOD[2], GOOD[0], Verdict::Ok, None),
            (GOOD[2], GOOD[1], Verdict::Ok, None),
        ],
    },
    Scenario {
        key: "nginx",
        reproduces: "nginx: ssl_verify_client in admin's server block -> 421 for admin on shop's connection",
        sites: &[site(NGINX[0], &[11]), site(NGINX[1], &[11])],
        endpoints: &[Endpoint {
            // Demo: in phase 1 the client-certificate requirement is dropped ("fixed").
            dynamic: &[(1, Style::ByHost)],
            ..endpoint(11, Style::NginxClientAuth { protected: NGINX[1] })
        }],
        certs: &[lab_cert(&NGINX, &[])],
        expect: &[
            (NGINX[0], NGINX[1], Verdict::Misdirected, None),
            (NGINX[1], NGINX[0], Verdict::Ok, None),
        ],
    },
    Scenario {
        key: "apache",
        reproduces: "Apache httpd SSLVHostSNIPolicy secure: separately issued certs (same SANs) -> 421 both ways",
        sites: &[site(APACHE[0], &[12]), site(APACHE[1], &[12])],
        endpoints: &[endpoint(12, Style::ApacheStrict)],
        certs: &[
            lab_cert(&APACHE, &[APACHE[0]]),
            lab_cert(&APACHE, &[APACHE[1]]),
        ],
        expect: &both(&APACHE, Verdict::Misdirected),
    },
    Scenario {
        key: "caddy",
        reproduces: "Caddy strict_sni_host: Host != SNI -> 421 with an empty body",
        sites: &[site(CADDY[0], &[13]), site(CADDY[1], &[13])],
        endpoints: &[endpoint(13, Style::CaddyStrict)],
        certs: &[lab_cert(&CADDY, &[])],
        expect: &both(&CADDY, Verdict::Misdirected),
    },
    Scenario {
        key: "envoy",
        reproduces: "Envoy/Istio: route table chosen by SNI -> 404 for the other name",
        sites: &[site(ENVOY[0], &[14]), site(ENVOY[1], &[14])],
        endpoints: &[endpoint(14, Style::EnvoySni)],
        certs: &[lab_cert(&ENVOY, &[])],
        expect: &both(&ENVOY, Verdict::Misrouted),
    },
    Scenario {
        key: "router",
        reproduces: "SNI-routing TCP proxy: 200 from the SNI's site whatever the Host (silent wrong site)",
        sites: &[site(ROUTER[0], &[15]), site(ROUTER[1], &[15])],
        endpoints: &[endpoint(15, Style::SniRouter)],
        certs: &[lab_cert(&ROUTER, &[])],
        expect: &both(&ROUTER, Verdict::Misrouted),
    },
    Scenario {
        key: "lb",
        reproduces: "load balancer alternating backends per connection: one routes by Host, one is strict (421)",
        sites: &[site(LB[0], &[16]), site(LB[1], &[16])],
        endpoints: &[Endpoint {
            // Demo: in phase 2 the strict backend is "fixed".
            dynamic: &[(2, Style::ByHost)],
            ..endpoint(16, Style::LoadBalancer)
        }],
        certs: &[lab_cert(&LB, &[])],
        expect: &both(&LB, Verdict::Intermittent),
    },
    Scenario {
        key: "multi",
        reproduces: "two addresses: .17 routes by Host, .18 is strict (421) - probe every address",
        sites: &[site(MULTI[0], &[17, 18]), site(MULTI[1], &[17, 18])],
        endpoints: &[endpoint(17, Style::ByHost), endpoint(18, Style::CaddyStrict)],
        certs: &[lab_cert(&MULTI, &[])],
        expect: &both(&MULTI, Verdict::Misdirected),
    },
    Scenario {
        key: "h1",
        reproduces: "HTTP/1.1 only (ALPN http/1.1): no client coalesces",
        sites: &[
            Site { findings: &[FindingKind::NoH2], ..site(H1[0], &[19]) },
            Site { findings: &[FindingKind::NoH2], ..site(H1[1], &[19]) },
        ],
        endpoints: &[Endpoint {
            alpn: Alpn::H1Only,
            ..endpoint(19, Style::ByHost)
        }],
        certs: &[lab_cert(&H1, &[])],
        expect: &both_not(&H1, NotCoalescable::NoH2),
    },
    Scenario {
        key: "certs",
        reproduces: "bad certificates: an expired one and one from an untrusted CA",
        sites: &[
            Site { findings: &[FindingKind::CertInvalid], ..site(CERTS[0], &[20]) },
            Site { findings: &[FindingKind::CertInvalid], ..site(CERTS[1], &[20]) },
        ],
        endpoints: &[endpoint(20, Style::ByHost)],
        certs: &[
            CertSpec {
                sans: &CERTS,
                issuer: Issuer::Lab,
                expired: true,
                serves: &[CERTS[0]],
            },
            CertSpec {
                sans: &CERTS,
                issuer: Issuer::Untrusted,
                expired: false,
                serves: &[CERTS[1]],
            },
        ],
        expect: &both_not(&CERTS, NotCoalescable::CertInvalid),
    },
    Scenario {
        key: "split",
        reproduces: "one address, one cert per name: the certificate keeps them apart",
        sites: &[site(SPLIT[0], &[21]), site(SPLIT[1], &[21])],
        endpoints: &[endpoint(21, Style::ByHost)],
        certs: &[
            lab_cert(&[SPLIT[0]], &[SPLIT[0]]),
            lab_cert(&[SPLIT[1]], &[SPLIT[1]]),
        ],
        expect: &both_not(&SPLIT, NotCoalescable::CertNotCovering),
    },
    Scenario {
        key: "geo",
        reproduces: "a wildcard cert on two addresses: linked only by the certificate",
        sites: &[site(GEO[0], &[22]), site(GEO[1], &[23])],
        endpoints: &[endpoint(22, Style::ByHost), endpoint(23, Style::ByHost)],
        certs: &[lab_cert(&["*.geo.coalscope.test"], &[])],
        expect: &both_not(&GEO, NotCoalescable::NoSharedAddress),
    },
    Scenario {
        key: "broken",
        reproduces: "a broken target: app answers 503 even directly (coalescing is not the cause)",
        sites: &[
            site(BROKEN[0], &[25]),
            Site { status: 503, ..site(BROKEN[1], &[25]) },
        ],
        endpoints: &[endpoint(25, Style::ByHost)],
        certs: &[lab_cert(&BROKEN, &[])],
        expect: &[
            (BROKEN[0], BROKEN[1], Verdict::DirectBroken, None),
            (BROKEN[1], BROKEN[0], Verdict::Ok, None),
        ],
    },
    Scenario {
        key: "echo",
        reproduces: "vhosts by Host whose pages print the connection's TLS server name: the page varies by connection, the site is right (ok)",
        sites: &[echo_site(ECHO[0], &[26]), echo_site(ECHO[1], &[26])],
        endpoints: &[endpoint(26, Style::ByHost)],
        certs: &[lab_cert(&ECHO, &[])],
        expect: &both(&ECHO, Verdict::Ok),
    },
    Scenario {
        key: "echorouter",
        reproduces: "SNI-routing TCP proxy in front of pages that print the TLS server name: the other site's page (misrouted)",
        sites: &[echo_site(ECHO_ROUTER[0], &[27]), echo_site(ECHO_ROUTER[1], &[27])],
        endpoints: &[endpoint(27, Style::SniRouter)],
        certs: &[lab_cert(&ECHO_ROUTER, &[])],
        expect: &both(&ECHO_ROUTER, Verdict::Misrouted),
    },
    Scenario {
        key: "renego",
        reproduces: "Apache httpd SSLVHostSNIPolicy insecure, SSLVerifyClient for admin: admin on www's connection is reset with HTTP_1_1_REQUIRED",
        sites: &[site(RENEGO[0], &[28]), site(RENEGO[1], &[28])],
        endpoints: &[endpoint(28, Style::ApacheInsecure { protected: RENEGO[1] })],
        certs: &[lab_cert(&RENEGO, &[])],
        expect: &[
            (RENEGO[0], RENEGO[1], Verdict::Misdirected, None),
            (RENEGO[1], RENEGO[0], Verdict::Ok, None),
        ],
    },
    Scenario {
        key: "origin",
        reproduces: "one server on two addresses, each name published on one, an ORIGIN frame listing both, a strict SNI=Host rule: Firefox pools them whatever DNS says and gets 421 (Chromium keeps them apart)",
        sites: &[
            Site { also_at: &[30], ..site(ORIGIN[0], &[29]) },
            Site { also_at: &[29], ..site(ORIGIN[1], &[30]) },
        ],
        endpoints: &[
            Endpoint {
                origin_frame: &ORIGIN,
                ..endpoint(29, Style::CaddyStrict)
            },
            Endpoint {
                origin_frame: &ORIGIN,
                ..endpoint(30, Style::CaddyStrict)
            },
        ],
        certs: &[lab_cert(&ORIGIN, &[])],
        expect: &both(&ORIGIN, Verdict::Misdirected),
    },
    Scenario {
        key: "svcb",
        reproduces: "an HTTPS DNS record offering only h3 for img: Chromium does not pool img onto www's HTTP/2 connection, Firefox does (and is served fine); the server serves HTTP/3 too (Alt-Svc), clean",
        sites: &[
            // Its server says it serves HTTP/3 too (Alt-Svc), and does.
            Site {
                findings: &[FindingKind::H3Advertised],
                ..site(SVCB[0], &[31])
            },
            Site {
                https_alpn: &["h3"],
                findings: &[FindingKind::HttpsRecordNoH2, FindingKind::H3Advertised],
                ..site(SVCB[1], &[31])
            },
        ],
        endpoints: &[Endpoint {
            h3: Some(Style::ByHost),
            ..endpoint(31, Style::ByHost)
        }],
        certs: &[lab_cert(&SVCB, &[])],
        expect: &both(&SVCB, Verdict::Ok),
    },
    Scenario {
        key: "quic",
        reproduces: "HTTP/3 advertised (HTTPS records, alpn h2,h3) by a server that routes by Host over HTTP/2 but whose HTTP/3 listener refuses Host != SNI with 421 (Caddy over QUIC with strict_sni_host): clean over HTTP/2, misdirected over HTTP/3, where browsers go",
        sites: &[
            Site {
                https_alpn: &["h2", "h3"],
                findings: &[FindingKind::H3Advertised],
                ..site(QUIC[0], &[32])
            },
            Site {
                https_alpn: &["h2", "h3"],
                findings: &[FindingKind::H3Advertised],
                ..site(QUIC[1], &[32])
            },
        ],
        endpoints: &[Endpoint {
            h3: Some(Style::CaddyStrict),
            ..endpoint(32, Style::ByHost)
        }],
        certs: &[lab_cert(&QUIC, &[])],
        expect: &both(&QUIC, Verdict::Misdirected),
    },
    Scenario {
        key: "ghost",
        reproduces: "a name the DNS does not know (NXDOMAIN)",
        sites: &[Site { findings: &[FindingKind::DnsError], ..site("ghost.coalscope.test", &[]) }],
        endpoints: &[],
        certs: &[],
        expect: &[],
    },
    Scenario {
        key: "blackhole",
        reproduces: "a server that accepts TCP and never answers",
        sites: &[Site { findings: &[FindingKind::Unreachable], ..site("void.blackhole.coalscope.test", &[24]) }],
        endpoints: &[endpoint(24, Style::Blackhole)],
        certs: &[],
        expect: &[],
    },
];

/// Every site of the lab, in table order.
pub(crate) fn all_sites() -> impl Iterator<Item = (&'static Scenario, &'static Site)> {
    SCENARIOS
        .iter()
        .flat_map(|sc| sc.sites.iter().map(move |s| (sc, s)))
}

/// Every listener of the lab, in table order.
pub(crate) fn all_endpoints() -> impl Iterator<Item = (&'static Scenario, &'static Endpoint)> {
    SCENARIOS
        .iter()
        .flat_map(|sc| sc.endpoints.iter().map(move |e| (sc, e)))
}
