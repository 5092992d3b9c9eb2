//! The hostile lab: misbehaving servers and DNS on 127.0.3.x (loopback only), each with the
//! finding a correct `coalscope check` must give it. Started in-process by the tests; every
//! server stops when the lab is dropped.

pub mod dns;
pub mod pki;
pub mod quic;
pub mod servers;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use quic::Quic;
use servers::{Kind, Server};

/// 127.0.3.`last`.
pub fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 3, last)
}

/// What a correct check must report for one hostile name.
#[derive(Debug, Clone)]
pub struct Expect {
    /// A finding of this kind (and, if given, with this severity)…
    pub kind: &'static str,
    pub severity: Option<&'static str>,
    /// …whose message contains one of these (empty: any message).
    pub any_of: &'static [&'static str],
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub port: u16,
    /// Findings expected; empty means "no finding of severity error".
    pub expect: Vec<Expect>,
}

impl Host {
    pub fn entry(&self) -> String {
        format!("{}:{}", self.name, self.port)
    }
}

pub struct HostileLab {
    pub hosts: Vec<Host>,
    pub servers: HashMap<String, Server>,
    pub dns: dns::HostileDns,
    /// The hostile CA (PEM), to be added to `--ca-file`.
    pub ca_pem: String,
    /// The port reserved on 127.0.3.98 (and free on every other 127.0.3.x): the DNS-only
    /// names, the 500-record name and the address where nothing listens use it.
    pub spare_port: u16,
    _spare: std::net::TcpListener,
    pub dir: tempfile::TempDir,
}

fn expect(kind: &'static str, severity: &'static str, any_of: &'static [&'static str]) -> Expect {
    Expect {
        kind,
        severity: Some(severity),
        any_of,
    }
}

pub const EVIL_HOST: &str = "evil.certs.hostile.test";
pub const CHAIN_HOST: &str = "chain100.certs.hostile.test";
pub const SANS_HOST: &str = "sans5000.certs.hostile.test";
pub const ORIGIN_421: &str = "a.421.hostile.test";
pub const TARGET_421: &str = "b.421.hostile.test";
pub const NOWHERE: &str = "nowhere.dns.hostile.test";
pub const ORIGIN_OVERSIZED: &str = "oversized.origin.hostile.test";
pub const ORIGIN_MALFORMED: &str = "malformed.origin.hostile.test";
pub const ORIGIN_ON_STREAM: &str = "stream.origin.hostile.test";
pub const ORIGIN_GARBAGE: &str = "garbage.origin.hostile.test";
pub const ORIGIN_FLOOD: &str = "flood.origin.hostile.test";

impl HostileLab {
    pub async fn start() -> HostileLab {
        let ca = pki::ca("coalscope hostile CA");
        let evil_ca = pki::evil_ca();
        let spare = std::net::TcpListener::bind((ip(98), 0)).expect("reserve a port");
        let spare_port = spare.local_addr().expect("addr").port();

        let timeout_any: &[&str] = &["timed out"];
        let table: Vec<(&str, u8, Kind, Vec<Expect>)> = vec![
            (
                "silent.tcp.hostile.test",
                101,
                Kind::Silent,
                vec![expect("unreachable", "error", &["tls timed out"])],
            ),
            (
                "garbage.tls.hostile.test",
                102,
                Kind::Garbage,
                vec![expect("unreachable", "error", &["received garbage (not TLS)"])],
            ),
            (
                "stall.tls.hostile.test",
                103,
                Kind::Stall,
                vec![expect("unreachable", "error", &["tls timed out"])],
            ),
            (
                "trickle.tls.hostile.test",
                104,
                Kind::Trickle,
                vec![expect("unreachable", "error", &["tls timed out"])],
            ),
            (
                CHAIN_HOST,
                105,
                Kind::Plain,
                vec![expect("cert-invalid", "error", &[])],
            ),
            // Handled, and said: thousands of SANs.
            (
                SANS_HOST,
                106,
                Kind::Plain,
                vec![expect("cert-many-sans", "warning", &["5001 SANs"])],
            ),
            (
                EVIL_HOST,
                107,
                Kind::Plain,
                vec![
                    expect("sni-mismatch", "error", &["does not cover"]),
                    expect("cert-invalid", "error", &["unknown issuer"]),
                    // Handled, and said: what was odd, escaped.
                    expect(
                        "cert-odd-names",
                        "warning",
                        &["terminal escape sequences, control characters, C1 control characters, bidi controls, names over 1024 characters"],
                    ),
                ],
            ),
            (
                "closed.tls.hostile.test",
                108,
                Kind::CloseAfterHandshake,
                vec![expect("http-error", "error", &["closed", "reset"])],
            ),
            (
                "h1.h2.hostile.test",
                109,
                Kind::Http1OverH2,
                vec![expect("http-error", "error", &[])],
            ),
            (
                "goaway.h2.hostile.test",
                110,
                Kind::GoAway,
                vec![expect("http-error", "error", &["GOAWAY", "closed"])],
            ),
            (
                "reset.h2.hostile.test",
                111,
                Kind::ResetAll,
                vec![expect("http-error", "error", &["REFUSED_STREAM"])],
            ),
            (
                "zero.h2.hostile.test",
                112,
                Kind::ZeroStreams,
                vec![expect("http-error", "error", timeout_any)],
            ),
            (
                "noheaders.h2.hostile.test",
                113,
                Kind::NoHeaders,
                vec![expect("http-error", "error", timeout_any)],
            ),
            (
                "bigheaders.h2.hostile.test",
                114,
                Kind::MegabyteHeaders,
                vec![expect("http-error", "error", &[])],
            ),
            (
                "endless1xx.h2.hostile.test",
                115,
                Kind::Endless1xx,
                vec![expect("http-error", "error", timeout_any)],
            ),
            (
                "pingflood.h2.hostile.test",
                116,
                Kind::PingFlood,
                vec![expect("http-error", "error", &[])],
            ),
            (
                "endless.body.hostile.test",
                117,
                Kind::EndlessBody,
                vec![expect("body-unbounded", "info", &["may never end"])],
            ),
            (
                ORIGIN_OVERSIZED,
                119,
                Kind::OriginOversized,
                vec![expect("http-error", "error", &[])],
            ),
            // Handled, and said: a warning naming what was odd.
            (
                ORIGIN_MALFORMED,
                120,
                Kind::OriginMalformed,
                vec![expect(
                    "origin-frame-malformed",
                    "warning",
                    &["a malformed ORIGIN frame"],
                )],
            ),
            (
                ORIGIN_ON_STREAM,
                121,
                Kind::OriginOnStream,
                vec![expect(
                    "origin-frame-malformed",
                    "warning",
                    &["an ORIGIN frame on stream"],
                )],
            ),
            (
                ORIGIN_GARBAGE,
                122,
                Kind::OriginGarbage,
                vec![expect("origin-frame-malformed", "warning", &["not an origin"])],
            ),
            (
                ORIGIN_FLOOD,
                123,
                Kind::OriginFlood,
                vec![expect(
                    "origin-frame-malformed",
                    "warning",
                    &["too many ORIGIN frames"],
                )],
            ),
            // QUIC where HTTP/2 advertises HTTP/3: a UDP blackhole, garbage datagrams, a
            // handshake that never completes. Each ends within the timeout and is said.
            (
                "blackhole.quic.hostile.test",
                124,
                Kind::AdvertisesH3(Quic::Silent),
                vec![expect("h3-advertised", "warning", &["QUIC handshakes failed (tls timed out"])],
            ),
            (
                "garbage.quic.hostile.test",
                125,
                Kind::AdvertisesH3(Quic::Garbage),
                vec![expect("h3-advertised", "warning", &["QUIC handshakes failed"])],
            ),
            (
                "stall.quic.hostile.test",
                126,
                Kind::AdvertisesH3(Quic::Stall),
                vec![expect("h3-advertised", "warning", &["QUIC handshakes failed (tls timed out"])],
            ),
        ];
        let mut hosts = Vec::new();
        let mut servers = HashMap::new();
        let mut records = HashMap::new();
        for (name, last, kind, expect) in table {
            let cert = match name {
                CHAIN_HOST => pki::chain_of_100(&ca, name),
                SANS_HOST => pki::many_sans(&ca, name),
                EVIL_HOST => pki::evil_leaf(&evil_ca, name, false),
                _ => pki::leaf(&ca, &[name]),
            };
            let server = servers::start(ip(last), kind, cert, name).await;
            records.insert(name.to_string(), ip(last));
            hosts.push(Host {
                name: name.into(),
                port: server.addr.port(),
                expect,
            });
            servers.insert(name.to_string(), server);
        }
        // Two names on one server and certificate: the origin's connection gets 421 with a
        // 10 MB body for the other name.
        let cert = pki::leaf(&ca, &[ORIGIN_421, TARGET_421]);
        let server = servers::start(ip(118), Kind::Misdirected421, cert, ORIGIN_421).await;
        let port = server.addr.port();
        for name in [ORIGIN_421, TARGET_421] {
            records.insert(name.to_string(), ip(118));
            hosts.push(Host {
                name: name.into(),
                port,
                expect: vec![],
            });
        }
        servers.insert(ORIGIN_421.to_string(), server);

        // DNS cases, on the spare port.
        records.insert(NOWHERE.to_string(), ip(99));
        let dns_cases: Vec<(&str, Vec<Expect>)> = vec![
            (dns::SERVFAIL, vec![expect("dns-error", "error", &["SERVFAIL"])]),
            (dns::SILENT, vec![expect("dns-error", "error", timeout_any)]),
            (dns::NXDOMAIN, vec![expect("dns-error", "error", &["NXDOMAIN"])]),
            (dns::LOOP, vec![expect("dns-error", "error", &["CNAME loop"])]),
            (
                dns::MANY,
                vec![
                    expect("addresses-capped", "warning", &["500 addresses", "first 64"]),
                    expect("unreachable", "error", &["and 59 more"]),
                ],
            ),
            (
                NOWHERE,
                vec![expect("unreachable", "error", &["connection refused"])],
            ),
        ];
        for (name, expect) in dns_cases {
            hosts.push(Host {
                name: name.into(),
                port: spare_port,
                expect,
            });
        }
        let dns = dns::start(ip(200), records).await;
        let dir = tempfile::tempdir().expect("tempdir");
        HostileLab {
            hosts,
            servers,
            dns,
            ca_pem: ca.pem.clone(),
            spare_port,
            _spare: spare,
            dir,
        }
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts.iter().find(|h| h.name == name).expect("hostile host")
    }

    pub fn server(&self, name: &str) -> &Server {
        &self.servers[name]
    }

    pub fn addr(&self, name: &str) -> SocketAddr {
        self.server(name).addr
    }

    /// A watch-file of `names` (all hostile hosts when empty) plus `extra` lines.
    pub fn watchfile(&self, file: &str, names: &[&str], extra: &str) -> PathBuf {
        let mut text = String::from("# hostile lab\n");
        for h in &self.hosts {
            if names.is_empty() || names.contains(&h.name.as_str()) {
                text.push_str(&h.entry());
                text.push('\n');
            }
        }
        text.push_str(extra);
        let path = self.dir.path().join(file);
        std::fs::write(&path, text).expect("write watch-file");
        path
    }

    /// A CA file with the hostile CA and `more` (e.g. the embedded lab's CA).
    pub fn ca_file(&self, more: &str) -> PathBuf {
        let path = self.dir.path().join("ca.pem");
        std::fs::write(&path, format!("{}\n{more}", self.ca_pem)).expect("write CA file");
        path
    }
}
