//! The embedded lab: loopback TLS HTTP/2 servers that reproduce the real-world coalescing
//! failure modes, a throwaway CA, and a DNS server on loopback answering the lab's names.
//!
//! The scenarios are one data table (`scenarios.rs`); this file turns it into running
//! listeners, certificates, DNS records and files.

pub mod ca;
mod describe;
mod dns;
pub use self::dns::HttpsSpec;
pub mod faults;
pub mod frames;
mod idle;
mod phase;
pub(crate) mod quic;
mod respond;
pub mod scale;
mod scenarios;
mod server;
mod tls;

#[cfg(test)]
mod tests;

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::engine::snapshot::{FindingKind, NotCoalescable, Verdict};

/// A name and its A records, as the lab DNS serves them.
type ARecords<'a> = (&'a str, Vec<Ipv4Addr>);

use self::ca::{Ca, Validity};
use self::phase::{Clock, PHASES};
use self::respond::LiveCounter;
use self::scenarios::{all_endpoints, all_sites, Issuer, Scenario, Style, SCENARIOS, ZONE};
use self::server::EndpointRuntime;
use self::tls::{EndpointTls, SniResolver};

/// How to start the lab.
#[derive(Debug, Clone, Default)]
pub struct LabOptions {
    /// Port every lab server listens on (on its own 127.0.0.x address); None = pick a free one.
    pub port: Option<u16>,
    /// Port of the lab's DNS server on 127.0.0.1; None = pick a free one.
    pub dns_port: Option<u16>,
    /// Directory for the CA, the watch-file and certificates; None = a new temporary directory
    /// removed when the lab is dropped.
    pub dir: Option<PathBuf>,
    /// Demo mode: some scenarios change their behaviour every minute or so.
    pub dynamic: bool,
    /// Start the scale lab (synthetic names for benchmarks) instead of the scenarios.
    pub scale: Option<scale::ScaleOptions>,
}

/// What a lab pair is expected to be judged (used by tests and printed by `coalscope lab`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    pub origin: &'static str,
    pub target: &'static str,
    pub verdict: Verdict,
    /// Why, for `not-coalescable`.
    pub reason: Option<NotCoalescable>,
}

/// A running lab. Dropping it stops every server (and removes its temporary directory);
/// [`Lab::shutdown`] also waits until every socket is closed.
pub struct Lab {
    /// The lab's DNS server (UDP and TCP) on loopback.
    pub dns: SocketAddr,
    /// PEM file of the lab CA, for `--ca-file`.
    pub ca_file: PathBuf,
    /// The watch-file listing every lab name.
    pub watchfile: PathBuf,
    /// The port every lab name is served on.
    pub port: u16,
    dir: PathBuf,
    owns_dir: bool,
    clock: Clock,
    ca_pem: String,
    /// The servers (one task per address, restartable) and the fault switches.
    faults: faults::Faults,
    dns_server: Option<dns::DnsServer>,
    /// Set for the scale lab.
    scale: Option<scale::ScaleOptions>,
    /// The HTTP/3 listeners (UDP) of the endpoints that serve HTTP/3.
    quic: Vec<quic::QuicListener>,
}

/// Attempts at finding a port free on every lab address.
const PORT_ATTEMPTS: usize = 64;

impl Lab {
    pub async fn start(options: LabOptions) -> anyhow::Result<Lab> {
        let clock = Clock::new(options.dynamic);
        Lab::start_with_clock(options, clock).await
    }

    /// Start with a given phase clock (tests start "in the past" to reach a later phase).
    pub(crate) async fn start_with_clock(options: LabOptions, clock: Clock) -> anyhow::Result<Lab> {
        if let Some(scale) = options.scale {
            return Lab::start_scale(&options, scale, clock).await;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let lab_ca = Ca::new("coalscope lab CA")?;
        let untrusted_ca = Ca::new("coalscope untrusted CA (not in ca.pem)")?;
        let live = Arc::new(LiveCounter::default());

        // Certificates and TLS configuration, per scenario then per address.
        let mut runtimes = Vec::new();
        for sc in SCENARIOS {
            let resolver = certificates(sc, &lab_ca, &untrusted_ca, &provider)?;
            for ep in sc.endpoints {
                let tls = match (&resolver, ep.style) {
                    (_, Style::Blackhole) | (None, _) => None,
                    (Some(resolver), _) => Some(EndpointTls::new(
                        provider.clone(),
                        resolver.clone(),
                        ep.alpn,
                        &lab_ca.der,
                    )?),
                };
                runtimes.push(Arc::new(EndpointRuntime {
                    scenario: sc,
                    endpoint: ep,
                    tls,
                    clock,
                    live: live.clone(),
                }));
            }
        }

        let (port, listeners) = bind_all(options.port).await?;
        let records: Vec<(&str, Vec<Ipv4Addr>)> = all_sites()
            .map(|(_, s)| (s.name, s.octets.iter().map(|o| lab_ip(*o)).collect()))
            .collect();
        // HTTPS records (RFC 9460) for the sites that have them: ServiceMode, the name itself.
        let https: Vec<HttpsSpec> = all_sites()
            .filter(|(_, s)| !s.https_alpn.is_empty())
            .map(|(_, s)| HttpsSpec::service(s.name, 1, s.https_alpn, Some(port), &[]))
            .collect();
        let mut lab = Lab::prepare(
            &options,
            port,
            clock,
            &lab_ca,
            ("lab.watch", describe::watchfile(port)),
            (ZONE, &records, &https),
            (None, None),
        )
        .await?;
        for (rt, (addr, listener, udp)) in runtimes.into_iter().zip(listeners) {
            if let (Some(style), Some(udp)) = (rt.endpoint.h3, udp) {
                lab.quic.push(quic::listen(udp, rt.clone(), style)?);
            }
            let make: faults::MakeServer =
                Arc::new(move |listener| Box::pin(server::run(listener, rt.clone())));
            lab.faults.serve(addr, listener, make);
        }
        tracing::info!(port, dns = %lab.dns, dir = %lab.dir.display(), "lab started");
        Ok(lab)
    }

    /// The scale lab: one wildcard certificate per group, one listener per address.
    async fn start_scale(
        options: &LabOptions,
        layout: scale::ScaleOptions,
        clock: Clock,
    ) -> anyhow::Result<Lab> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let lab_ca = Arc::new(Ca::new("coalscope lab CA")?);
        let (config, resolver) = scale::server_config(&layout, &lab_ca, provider.clone())?;
        let rotation = faults::Rotation {
            ca: lab_ca.clone(),
            provider,
            resolver,
            layout,
        };
        let (port, listeners) = scale::bind_all(&layout, options.port).await?;
        let owned = layout.records();
        let records: Vec<(&str, Vec<Ipv4Addr>)> =
            owned.iter().map(|(n, a)| (n.as_str(), a.clone())).collect();
        // Serving HTTP/3 too: every name says so in an HTTPS record.
        let https: Vec<HttpsSpec> = if layout.h3 {
            owned
                .iter()
                .map(|(n, _)| HttpsSpec::service(n, 1, &["h2", "h3"], Some(port), &[]))
                .collect()
        } else {
            Vec::new()
        };
        let mut lab = Lab::prepare(
            options,
            port,
            clock,
            &lab_ca,
            ("scale.watch", layout.watchfile(port)),
            (scale::SCALE_ZONE, &records, &https),
            (Some(layout), Some(rotation)),
        )
        .await?;
        for (addr, listener, udp) in listeners {
            if let Some(udp) = udp {
                lab.quic.push(scale::listen_h3(udp, &config, layout)?);
            }
            let config = config.clone();
            let make: faults::MakeServer =
                Arc::new(move |listener| Box::pin(scale::run(listener, config.clone(), layout)));
            lab.faults.serve(addr, listener, make);
        }
        tracing::info!(port, dns = %lab.dns, names = layout.names, "scale lab started");
        Ok(lab)
    }

    /// The parts every lab shares: its directory with `ca.pem` and the watch-file
    /// (`name`, `content`), and its DNS server for `zone` answering `records` and the HTTPS
    /// records `https`; the scale layout and what rotating its certificates needs. Servers are
    /// spawned by the caller; dropping the returned lab on a later error cleans up.
    async fn prepare(
        options: &LabOptions,
        port: u16,
        clock: Clock,
        ca: &Ca,
        (watch_name, watch_content): (&str, String),
        (zone, records, https): (&str, &[ARecords<'_>], &[HttpsSpec]),
        (scale, rotation): (Option<scale::ScaleOptions>, Option<faults::Rotation>),
    ) -> anyhow::Result<Lab> {
        let (dir, owns_dir) = make_dir(options.dir.as_deref())?;
        let mut lab = Lab {
            dns: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            ca_file: dir.join("ca.pem"),
            watchfile: dir.join(watch_name),
            port,
            dir,
            owns_dir,
            clock,
            ca_pem: ca.pem.clone(),
            faults: faults::Faults::new(rotation),
            dns_server: None,
            scale,
            quic: Vec::new(),
        };
        // From here on, dropping `lab` on an error cleans up what was started.
        std::fs::write(&lab.ca_file, &lab.ca_pem)
            .with_context(|| format!("writing {}", lab.ca_file.display()))?;
        std::fs::write(&lab.watchfile, watch_content)
            .with_context(|| format!("writing {}", lab.watchfile.display()))?;
        let catalog = dns::catalog_with_https(zone, records, https)?;
        let dns = dns::start(catalog, options.dns_port, lab.faults.dns_switch()).await?;
        lab.dns = dns.addr;
        lab.dns_server = Some(dns);
        Ok(lab)
    }

    /// The scale lab's layout, when this is one.
    pub fn scale(&self) -> Option<scale::ScaleOptions> {
        self.scale
    }

    /// The fault switches of this lab (stop and start a server, silence the DNS, rotate a
    /// certificate); a clone stays usable while the lab runs.
    pub fn faults(&self) -> faults::Faults {
        self.faults.clone()
    }

    /// Stop every server and wait until their sockets are closed.
    pub async fn shutdown(mut self) {
        self.quic.clear();
        self.faults.stop_all().await;
        if let Some(dns) = self.dns_server.take() {
            dns.shutdown().await;
        }
    }

    /// The lab's directory (CA, watch-file).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lab CA certificate, PEM (the content of `ca_file`).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The text `coalscope lab` prints: where things are, the command to run, and the
    /// verdicts to expect.
    pub fn describe(&self) -> String {
        if let Some(layout) = &self.scale {
            return scale::describe(layout, &self.watchfile, &self.ca_file, self.dns, self.port);
        }
        describe::describe(&describe::Facts {
            dir: &self.dir,
            watchfile: &self.watchfile,
            ca_file: &self.ca_file,
            dns: self.dns,
            port: self.port,
            dynamic: self.clock.is_dynamic(),
        })
    }

    /// `--resolve` values pinning every lab name that has addresses to them, for runs that do
    /// not use the lab DNS (`ghost` is left out: it has no address).
    pub fn resolve_args(&self) -> Vec<String> {
        all_sites()
            .filter(|(_, s)| !s.octets.is_empty())
            .map(|(_, s)| {
                let addrs: Vec<String> = s.octets.iter().map(|o| lab_ip(*o).to_string()).collect();
                format!("{}:{}:{}", s.name, self.port, addrs.join(","))
            })
            .collect()
    }

    /// Whether the lab changes behaviour over time (demo mode).
    pub fn is_dynamic(&self) -> bool {
        self.clock.is_dynamic()
    }

    /// The current phase number (always 0 when not dynamic) and the number of phases.
    pub fn phase(&self) -> (usize, usize) {
        (self.clock.phase(), PHASES.len())
    }

    /// Time until the behaviour changes next (None when not dynamic).
    pub fn next_change_in(&self) -> Option<Duration> {
        self.clock.next_change_in()
    }

    /// One line for the demo: what the lab is doing now.
    pub fn phase_description(&self) -> String {
        if !self.clock.is_dynamic() {
            return "static lab: behaviour never changes".to_string();
        }
        let (phase, phases) = self.phase();
        let next = self.next_change_in().map(|d| d.as_secs()).unwrap_or(0);
        format!(
            "lab phase {}/{phases} (next change in {next}s): {}",
            phase + 1,
            PHASES[phase]
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.quic.clear();
        self.faults.abort_all();
        self.dns_server.take();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Every ordered pair of the lab whose names share an address, plus the cert-only pairs,
/// with the verdict a correct engine must give (non-dynamic mode).
pub fn expectations() -> Vec<Expectation> {
    SCENARIOS
        .iter()
        .flat_map(|sc| sc.expect.iter())
        .map(|&(origin, target, verdict, reason)| Expectation {
            origin,
            target,
            verdict,
            reason,
        })
        .collect()
}

/// The host findings a correct engine reports on the lab: (host, finding kind).
pub fn expected_findings() -> Vec<(&'static str, FindingKind)> {
    all_sites()
        .flat_map(|(_, s)| s.findings.iter().map(move |k| (s.name, *k)))
        .collect()
}

/// Every name of the lab (the watch-file's names, without the port).
pub fn lab_hosts() -> Vec<&'static str> {
    all_sites().map(|(_, s)| s.name).collect()
}

/// 127.0.0.`octet`.
fn lab_ip(octet: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, octet)
}

/// Issue a scenario's certificates; the resolver serving them (None: the scenario has no TLS).
fn certificates(
    sc: &'static Scenario,
    lab_ca: &Ca,
    untrusted_ca: &Ca,
    provider: &rustls::crypto::CryptoProvider,
) -> anyhow::Result<Option<SniResolver>> {
    let mut resolver: Option<SniResolver> = None;
    for spec in sc.certs {
        let ca = match spec.issuer {
            Issuer::Lab => lab_ca,
            Issuer::Untrusted => untrusted_ca,
        };
        let validity = if spec.expired {
            Validity::Expired
        } else {
            Validity::Current
        };
        let cert = ca
            .server_key(spec.sans, validity, provider)
            .with_context(|| format!("issuing the {} certificate", sc.key))?;
        // The first certificate is the default for an absent or unknown SNI.
        let resolver = resolver.get_or_insert_with(|| SniResolver::new(cert.clone()));
        for name in spec.serves {
            resolver.insert(name, cert.clone());
        }
    }
    Ok(resolver)
}

/// Bind every listener on one common port: `port`, or a random free one.
async fn bind_all(port: Option<u16>) -> anyhow::Result<(u16, Vec<Bound>)> {
    if let Some(port) = port {
        return Ok((port, bind_on(port).await?));
    }
    let mut last_error = None;
    for _ in 0..PORT_ATTEMPTS {
        let candidate: u16 = rand::random_range(20000..60000);
        match bind_on(candidate).await {
            Ok(listeners) => return Ok((candidate, listeners)),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error
        .unwrap_or_else(|| anyhow::anyhow!("no attempt made"))
        .context("no port free on every lab address"))
}

/// An address's sockets on the lab's port: TCP, and UDP where HTTP/3 is served (the scenario
/// lab's and the scale lab's).
pub(crate) type Bound = (SocketAddr, TcpListener, Option<std::net::UdpSocket>);

/// Bind every endpoint's sockets on `port`: its UDP side too, in the same attempt (a port
/// chosen for TCP alone could be taken on UDP meanwhile, by a QUIC client's own socket).
async fn bind_on(port: u16) -> anyhow::Result<Vec<Bound>> {
    let mut listeners = Vec::new();
    for (_, ep) in all_endpoints() {
        let addr = SocketAddr::from((lab_ip(ep.octet), port));
        let failed = |e, what| bind_error("lab server", addr, what, e);
        let listener = TcpListener::bind(addr).await.map_err(|e| failed(e, ""))?;
        let udp = match ep.h3 {
            Some(_) => Some(std::net::UdpSocket::bind(addr).map_err(|e| failed(e, " (UDP)"))?),
            None => None,
        };
        listeners.push((addr, listener, udp));
    }
    Ok(listeners)
}

/// "binding the `server` `addr``what`: `e`", with a hint when the address is not on loopback.
pub(crate) fn bind_error(server: &str, addr: SocketAddr, what: &str, e: std::io::Error) -> anyhow::Error {
    let hint = if e.kind() == ErrorKind::AddrNotAvailable {
        " (the lab needs the whole 127.0.0.0/8 on loopback, as on Linux)"
    } else {
        ""
    };
    anyhow::anyhow!("binding the {server} {addr}{what}: {e}{hint}")
}

/// The lab directory: `dir` (created if needed, kept), or a new temporary one (removed on drop).
fn make_dir(dir: Option<&Path>) -> anyhow::Result<(PathBuf, bool)> {
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        return Ok((dir.to_path_buf(), false));
    }
    let base = std::env::temp_dir();
    for _ in 0..16 {
        let name = format!(
            "coalscope-lab-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        );
        let dir = base.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((dir, true)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    anyhow::bail!("could not create a lab directory in {}", base.display())
}
