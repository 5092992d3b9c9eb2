//! The lab's DNS server: real DNS over UDP and TCP on 127.0.0.1, authoritative for the lab
//! zone (hickory-server with an in-memory zone). Unknown names in the zone get NXDOMAIN, names
//! outside it REFUSED (the catalog has no zone for them).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record};
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
    server: Server<Catalog>,
    pub addr: SocketAddr,
}

impl DnsServer {
    /// Stop serving and wait until every socket is closed.
    pub(crate) async fn shutdown(mut self) {
        if let Err(error) = self.server.shutdown_gracefully().await {
            tracing::debug!(%error, "lab DNS shut down with an error");
        }
    }
}

/// Build the catalog for `zone` with A records `names` (a name with no address is left out,
/// so it gets NXDOMAIN).
pub(crate) fn catalog(zone: &str, names: &[(&str, Vec<Ipv4Addr>)]) -> anyhow::Result<Catalog> {
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
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::new(&origin), vec![Arc::new(handler)]);
    Ok(catalog)
}

/// Serve `catalog` on 127.0.0.1, UDP and TCP on the same port (`port`, or a free one).
pub(crate) async fn start(catalog: Catalog, port: Option<u16>) -> anyhow::Result<DnsServer> {
    let (udp, tcp) = bind(port).await?;
    let addr = udp.local_addr().context("lab DNS address")?;
    let mut server = Server::new(catalog);
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
