//! The hostile DNS server (UDP and TCP on one port): SERVFAIL, silence, NXDOMAIN, a CNAME
//! loop, 500 A records (too big for UDP: truncated, then asked again over TCP), and the
//! addresses of the hostile servers. Unknown names get NXDOMAIN.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

pub const SERVFAIL: &str = "servfail.dns.hostile.test";
pub const SILENT: &str = "silent.dns.hostile.test";
pub const NXDOMAIN: &str = "nxdomain.dns.hostile.test";
pub const LOOP: &str = "loop.dns.hostile.test";
pub const LOOP2: &str = "loop2.dns.hostile.test";
pub const MANY: &str = "many.dns.hostile.test";

/// The 500 addresses of `MANY`: 127.0.3.0–255, then 127.0.4.0–243.
pub fn many_addresses() -> Vec<Ipv4Addr> {
    (0..500u32)
        .map(|i| Ipv4Addr::new(127, 0, 3 + (i / 256) as u8, (i % 256) as u8))
        .collect()
}

pub struct HostileDns {
    pub addr: SocketAddr,
    pub udp_queries: Arc<AtomicUsize>,
    pub tcp_queries: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for HostileDns {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn name(text: &str) -> Name {
    Name::from_ascii(format!("{text}.")).expect("dns name")
}

enum Answer {
    Records(Vec<Record>),
    Code(ResponseCode),
    Silence,
}

fn zone(qname: &str, qtype: RecordType, hosts: &HashMap<String, Ipv4Addr>) -> Answer {
    let a = |owner: &str, ip: Ipv4Addr| Record::from_rdata(name(owner), 60, RData::A(A(ip)));
    let cname = |owner: &str, to: &str| Record::from_rdata(name(owner), 60, RData::CNAME(CNAME(name(to))));
    let qname = qname.strip_suffix('.').unwrap_or(qname);
    match qname {
        SERVFAIL => Answer::Code(ResponseCode::ServFail),
        SILENT => Answer::Silence,
        NXDOMAIN => Answer::Code(ResponseCode::NXDomain),
        LOOP => Answer::Records(vec![cname(LOOP, LOOP2), cname(LOOP2, LOOP)]),
        LOOP2 => Answer::Records(vec![cname(LOOP2, LOOP), cname(LOOP, LOOP2)]),
        MANY if qtype == RecordType::A => {
            Answer::Records(many_addresses().into_iter().map(|ip| a(MANY, ip)).collect())
        }
        MANY => Answer::Records(vec![]),
        other => match hosts.get(other) {
            Some(ip) if qtype == RecordType::A => Answer::Records(vec![a(other, *ip)]),
            Some(_) => Answer::Records(vec![]),
            None => Answer::Code(ResponseCode::NXDomain),
        },
    }
}

/// The encoded answer to `query`, at most `limit` bytes (else truncated); None = no answer.
fn answer(query: &[u8], limit: usize, hosts: &HashMap<String, Ipv4Addr>) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    let question = request.queries.first()?.clone();
    let qname = question.name().to_lowercase().to_ascii();
    let mut response = Message::response(request.metadata.id, OpCode::Query);
    response.metadata.message_type = MessageType::Response;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.authoritative = true;
    response.add_query(question.clone());
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        response.set_edns(edns);
    }
    match zone(&qname, question.query_type(), hosts) {
        Answer::Silence => return None,
        Answer::Code(code) => response.metadata.response_code = code,
        Answer::Records(records) => {
            response.add_answers(records);
        }
    }
    let bytes = response.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    response.truncate().to_vec().ok()
}

/// Serve on `ip` (UDP and TCP, one free port); `hosts` maps the hostile server names to
/// their addresses.
pub async fn start(ip: Ipv4Addr, hosts: HashMap<String, Ipv4Addr>) -> HostileDns {
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind((ip, 0)).await.expect("bind udp");
        let port = udp.local_addr().expect("udp addr").port();
        if let Ok(tcp) = TcpListener::bind((ip, port)).await {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().expect("addr");
    let hosts = Arc::new(hosts);
    let udp_queries = Arc::new(AtomicUsize::new(0));
    let tcp_queries = Arc::new(AtomicUsize::new(0));
    let (h, counter) = (hosts.clone(), udp_queries.clone());
    let udp_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
            counter.fetch_add(1, Ordering::SeqCst);
            let limit = Message::from_vec(&buf[..n])
                .ok()
                .and_then(|m| m.edns.map(|e| e.max_payload() as usize))
                .unwrap_or(512)
                .clamp(512, 1232);
            if let Some(reply) = answer(&buf[..n], limit, &h) {
                let _ = udp.send_to(&reply, peer).await;
            }
        }
    });
    let (h, counter) = (hosts.clone(), tcp_queries.clone());
    let tcp_task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let mut stream = tokio::select! {
                a = tcp.accept() => match a { Ok((s, _)) => s, Err(_) => continue },
                Some(_) = connections.join_next() => continue,
            };
            let (h, counter) = (h.clone(), counter.clone());
            connections.spawn(async move {
                loop {
                    let Ok(len) = stream.read_u16().await else {
                        return;
                    };
                    let mut query = vec![0u8; len as usize];
                    if stream.read_exact(&mut query).await.is_err() {
                        return;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    let Some(reply) = answer(&query, u16::MAX as usize, &h) else {
                        continue;
                    };
                    let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&reply);
                    if stream.write_all(&framed).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    HostileDns {
        addr,
        udp_queries,
        tcp_queries,
        tasks: vec![udp_task, tcp_task],
    }
}
