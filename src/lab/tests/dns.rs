//! The lab DNS over real UDP and TCP, queried with hand-built hickory-proto messages.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::lab::{Lab, LabOptions};

const TIMEOUT: Duration = Duration::from_secs(5);

fn query(name: &str) -> Message {
    let mut msg = Message::query();
    msg.add_query(Query::query(
        Name::from_ascii(name).expect("valid name"),
        RecordType::A,
    ));
    msg.metadata.recursion_desired = true;
    msg
}

pub(super) async fn ask_udp(server: SocketAddr, name: &str) -> anyhow::Result<Message> {
    let q = query(name);
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    sock.send_to(&q.to_vec()?, server).await?;
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(TIMEOUT, sock.recv_from(&mut buf)).await??;
    let reply = Message::from_vec(&buf[..n])?;
    anyhow::ensure!(reply.metadata.id == q.metadata.id, "wrong id");
    Ok(reply)
}

async fn ask_tcp(server: SocketAddr, name: &str) -> anyhow::Result<Message> {
    let q = query(name).to_vec()?;
    let mut tcp = tokio::time::timeout(TIMEOUT, TcpStream::connect(server)).await??;
    let len = u16::try_from(q.len())?;
    tcp.write_all(&len.to_be_bytes()).await?;
    tcp.write_all(&q).await?;
    let mut len = [0u8; 2];
    tokio::time::timeout(TIMEOUT, tcp.read_exact(&mut len)).await??;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    tokio::time::timeout(TIMEOUT, tcp.read_exact(&mut buf)).await??;
    Ok(Message::from_vec(&buf)?)
}

fn addresses(msg: &Message) -> Vec<Ipv4Addr> {
    let mut out: Vec<Ipv4Addr> = msg
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn dns_answers_over_udp_and_tcp() {
    let lab = Lab::start(LabOptions::default()).await.expect("lab starts");
    for tcp in [false, true] {
        let ask = |name: &'static str| async move {
            if tcp {
                ask_tcp(lab.dns, name).await
            } else {
                ask_udp(lab.dns, name).await
            }
        };
        let a = ask("shop.nginx.coalscope.test.").await.expect("answer");
        assert_eq!(a.metadata.response_code, ResponseCode::NoError, "tcp={tcp}");
        assert_eq!(addresses(&a), vec![Ipv4Addr::new(127, 0, 0, 11)]);
        assert!(a.answers.iter().all(|r| r.ttl == 30));
        assert!(a.metadata.authoritative);

        let multi = ask("cdn.multi.coalscope.test.").await.expect("answer");
        assert_eq!(
            addresses(&multi),
            vec![Ipv4Addr::new(127, 0, 0, 17), Ipv4Addr::new(127, 0, 0, 18)]
        );

        let ghost = ask("ghost.coalscope.test.").await.expect("answer");
        assert_eq!(ghost.metadata.response_code, ResponseCode::NXDomain, "tcp={tcp}");
        assert!(ghost.answers.is_empty());

        let outside = ask("example.com.").await.expect("answer");
        assert_eq!(outside.metadata.response_code, ResponseCode::Refused, "tcp={tcp}");
    }
    lab.shutdown().await;
}

/// The lab DNS serves HTTPS records given as specs, and coalscope's resolver reads them back.
#[tokio::test]
async fn dns_serves_https_records() {
    use crate::engine::probe::dns::{Dns, DnsConfig};
    use crate::lab::dns::{catalog_with_https, start};
    use crate::lab::HttpsSpec;

    let ip = Ipv4Addr::new(127, 0, 0, 40);
    let h3 = HttpsSpec::service("h3.https.test", 1, &["h3"], Some(8443), &[ip]);
    let alias = HttpsSpec::alias("apex.https.test", "h3.https.test");
    let names = [("h3.https.test", vec![ip]), ("plain.https.test", vec![ip])];
    let catalog = catalog_with_https("https.test", &names, &[h3, alias]).expect("catalog");
    let server = start(catalog, None, Default::default()).await.expect("lab DNS");
    let dns = Dns::new(DnsConfig {
        nameservers: vec![server.addr],
        overrides: vec![],
        timeout: TIMEOUT,
    })
    .expect("resolver");

    let answer = dns.resolve("h3.https.test", 443).await;
    assert_eq!(answer.addresses, vec![std::net::IpAddr::V4(ip)]);
    assert_eq!(
        (answer.https.len(), answer.https_error.as_deref()),
        (1, None),
        "{answer:?}"
    );
    let record = &answer.https[0];
    assert_eq!(record.alpn, vec!["h3".to_string()]);
    assert_eq!((record.priority, record.port, record.ttl_s), (1, Some(8443), 30));
    assert_eq!(
        (record.target.as_str(), record.ipv4hint.as_slice()),
        ("", &[ip][..])
    );

    let apex = dns.resolve("apex.https.test", 443).await;
    assert_eq!(apex.https.len(), 1, "{apex:?}");
    assert_eq!(
        (apex.https[0].priority, apex.https[0].target.as_str()),
        (0, "h3.https.test")
    );

    let plain = dns.resolve("plain.https.test", 443).await;
    assert!(plain.https.is_empty() && plain.https_error.is_none(), "{plain:?}");
    server.shutdown().await;
}
