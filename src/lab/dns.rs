//! The lab's DNS server: real DNS over UDP and TCP on 127.0.0.1, authoritative for the lab
//! zone (hickory-server with an in-memory zone). Unknown names in the zone get NXDOMAIN, names
//! outside it REFUSED (the catalog has no zone for them).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata};
use hickory_proto::rr::rdata::svcb::{Alpn, EchConfigList, IpHint, SvcParamKey, SvcParamValue, SVCB};
use hickory_proto::rr::rdata::{A, AAAA, HTTPS, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record};
use hickory_proto::serialize::binary::BinEncodable;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};

/// TTL of every lab record.
pub(crate) const TTL: u32 = 30;
/// Queries on one TCP connection must come within this long.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running lab DNS server; dropping it stops it.
pub(crate) struct DnsServer {
    server: Server<Silenceable>,
    pub addr: SocketAddr,
}

/// The catalog, unless the server has been made silent: then a query gets no answer at all
/// (over UDP the client waits out its timeout; over TCP the connection stays quiet).
pub(crate) struct Silenceable {
    catalog: Catalog,
    silent: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl RequestHandler for Silenceable {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        if self.silent.load(Ordering::Relaxed) {
            // Nothing is sent; the header only tells the server's log what happened.
            let metadata = Metadata::new(
                request.metadata.id,
                MessageType::Response,
                request.metadata.op_code,
            );
            return ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            });
        }
        self.catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

impl DnsServer {
    /// Stop serving and wait until every socket is closed.
    pub(crate) async fn shutdown(mut self) {
        if let Err(error) = self.server.shutdown_gracefully().await {
            tracing::debug!(%error, "lab DNS shut down with an error");
        }
    }
}

/// An HTTPS record (RFC 9460) to serve: the lab's DNS, the tests' loopback DNS
/// (`testing::net`) and the interop tests' dnsmasq (`wire`) take it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpsSpec {
    /// Owner name, without the trailing dot.
    pub name: String,
    /// 0 = AliasMode.
    pub priority: u16,
    /// TargetName without the trailing dot; "" = "." (the owner itself).
    pub target: String,
    pub alpn: Vec<String>,
    pub no_default_alpn: bool,
    pub port: Option<u16>,
    pub ipv4hint: Vec<Ipv4Addr>,
    pub ipv6hint: Vec<Ipv6Addr>,
    /// An ECHConfigList, served as given (tests need only its presence).
    pub ech: Option<Vec<u8>>,
}

impl HttpsSpec {
    /// A ServiceMode record for `name` with target "." (the name itself).
    pub fn service(
        name: &str,
        priority: u16,
        alpn: &[&str],
        port: Option<u16>,
        ipv4hint: &[Ipv4Addr],
    ) -> HttpsSpec {
        HttpsSpec {
            name: name.to_string(),
            priority,
            alpn: alpn.iter().map(|a| a.to_string()).collect(),
            port,
            ipv4hint: ipv4hint.to_vec(),
            ..HttpsSpec::default()
        }
    }

    /// An AliasMode record: `name`'s service is `target`'s.
    pub fn alias(name: &str, target: &str) -> HttpsSpec {
        HttpsSpec {
            name: name.to_string(),
            target: target.to_string(),
            ..HttpsSpec::default()
        }
    }

    /// The owner name, fully qualified.
    pub fn owner(&self) -> anyhow::Result<Name> {
        Name::from_ascii(format!("{}.", self.name)).with_context(|| format!("HTTPS owner {}", self.name))
    }

    /// The record data. Parameters are in key order, as RFC 9460 requires on the wire.
    pub fn rdata(&self) -> anyhow::Result<HTTPS> {
        let target = Name::from_ascii(format!("{}.", self.target))
            .with_context(|| format!("HTTPS target {:?}", self.target))?;
        let mut params = Vec::new();
        if !self.alpn.is_empty() {
            params.push((SvcParamKey::Alpn, SvcParamValue::Alpn(Alpn(self.alpn.clone()))));
        }
        if self.no_default_alpn {
            params.push((SvcParamKey::NoDefaultAlpn, SvcParamValue::NoDefaultAlpn));
        }
        if let Some(port) = self.port {
            params.push((SvcParamKey::Port, SvcParamValue::Port(port)));
        }
        if !self.ipv4hint.is_empty() {
            let hint = IpHint(self.ipv4hint.iter().map(|a| A(*a)).collect());
            params.push((SvcParamKey::Ipv4Hint, SvcParamValue::Ipv4Hint(hint)));
        }
        if let Some(ech) = &self.ech {
            let list = EchConfigList(ech.clone());
            params.push((SvcParamKey::EchConfigList, SvcParamValue::EchConfigList(list)));
        }
        if !self.ipv6hint.is_empty() {
            let hint = IpHint(self.ipv6hint.iter().map(|a| AAAA(*a)).collect());
            params.push((SvcParamKey::Ipv6Hint, SvcParamValue::Ipv6Hint(hint)));
        }
        Ok(HTTPS(SVCB::new(self.priority, target, params)))
    }

    /// The record with `ttl`.
    pub fn record(&self, ttl: u32) -> anyhow::Result<Record> {
        Ok(Record::from_rdata(
            self.owner()?,
            ttl,
            RData::HTTPS(self.rdata()?),
        ))
    }

    /// The RDATA in wire format (what `dnsmasq --dns-rr=NAME,65,HEX` wants, hex-encoded).
    pub fn wire(&self) -> anyhow::Result<Vec<u8>> {
        self.rdata()?.to_bytes().context("encoding the HTTPS record")
    }
}

/// Build the catalog for `zone` with A records `names` (a name with no address is left out,
/// so it gets NXDOMAIN); it also serves the HTTPS records `https` (owners inside `zone`; a name with
/// only an HTTPS record answers A queries with no data).
pub(crate) fn catalog_with_https(
    zone: &str,
    names: &[(&str, Vec<Ipv4Addr>)],
    https: &[HttpsSpec],
) -> anyhow::Result<Catalog> {
    let origin = Name::from_ascii(format!("{zone}.")).context("lab zone name")?;
    let mut handler: InMemoryZoneHandler =
        InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
    let serial = 1;
    let soa = SOA::new(
        Name::from_ascii(format!("ns.{zone}.")).context("lab NS name")?,
        Name::from_ascii(format!("hostmaster.{zone}.")).context("lab RNAME")?,
        serial,
        3600,
        600,
        86400,
        TTL,
    );
    anyhow::ensure!(
        handler.upsert_mut(Record::from_rdata(origin.clone(), TTL, RData::SOA(soa)), serial),
        "inserting the lab SOA"
    );
    for (name, addrs) in names {
        let fqdn = Name::from_ascii(format!("{name}.")).with_context(|| format!("lab name {name}"))?;
        for addr in addrs {
            let record = Record::from_rdata(fqdn.clone(), TTL, RData::A(A(*addr)));
            anyhow::ensure!(handler.upsert_mut(record, serial), "inserting {name} A");
        }
    }
    for spec in https {
        let record = spec.record(TTL)?;
        anyhow::ensure!(
            handler.upsert_mut(record, serial),
            "inserting {} HTTPS",
            spec.name
        );
    }
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::new(&origin), vec![Arc::new(handler)]);
    Ok(catalog)
}

/// Serve `catalog` on 127.0.0.1, UDP and TCP on the same port (`port`, or a free one); while
/// `silent` is set, queries are read and dropped unanswered (a fault: `lab::faults`).
pub(crate) async fn start(
    catalog: Catalog,
    port: Option<u16>,
    silent: Arc<AtomicBool>,
) -> anyhow::Result<DnsServer> {
    let (udp, tcp) = bind(port).await?;
    let addr = udp.local_addr().context("lab DNS address")?;
    let mut server = Server::new(Silenceable { catalog, silent });
    server.register_socket(udp);
    server.register_listener(tcp, TCP_TIMEOUT, 64);
    Ok(DnsServer { server, addr })
}

async fn bind(port: Option<u16>) -> anyhow::Result<(UdpSocket, TcpListener)> {
    let ip = Ipv4Addr::LOCALHOST;
    if let Some(port) = port {
        let udp = UdpSocket::bind((ip, port))
            .await
            .with_context(|| format!("binding the lab DNS to udp 127.0.0.1:{port}"))?;
        let tcp = TcpListener::bind((ip, port))
            .await
            .with_context(|| format!("binding the lab DNS to tcp 127.0.0.1:{port}"))?;
        return Ok((udp, tcp));
    }
    let mut last_error = None;
    for _ in 0..64 {
        // Let the kernel pick a free UDP port, then take the same TCP port if free.
        let udp = UdpSocket::bind((ip, 0))
            .await
            .context("binding the lab DNS (udp)")?;
        let port = udp.local_addr().context("lab DNS udp address")?.port();
        match TcpListener::bind((ip, port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) => last_error = Some(error),
        }
    }
    Err(anyhow::anyhow!(
        "no port free for the lab DNS on both udp and tcp: {last_error:?}"
    ))
}
