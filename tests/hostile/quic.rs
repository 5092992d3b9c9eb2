//! The hostile lab's QUIC side: what answers on UDP where a host's HTTP/2 answers advertise
//! HTTP/3 (`Alt-Svc: h3=":PORT"`, the same port number as its TCP one). Each runs as one task;
//! aborting it closes its sockets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use coalscope::engine::probe::h3_control::varint;
use coalscope::testing::h3::{h3_server, H3Reply, H3Rule};
use coalscope::testing::net::{Pki, Validity};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;

/// What answers on the advertised UDP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quic {
    /// A bound socket that reads nothing and answers nothing (a UDP blackhole: a firewall
    /// that lets TCP 443 through and drops UDP 443).
    Silent,
    /// Every datagram answered with bytes that are not QUIC.
    Garbage,
    /// A real HTTP/3 server behind a relay that passes on only the Initial packet of each of
    /// its datagrams: the client gets the ServerHello, never the rest of the handshake.
    Stall,
}

/// Serve `kind` on `socket` until aborted; `sent` counts the bytes sent to clients.
pub async fn serve(kind: Quic, socket: UdpSocket, name: String, sent: Arc<AtomicU64>) {
    match kind {
        Quic::Silent => {
            let _keep = socket;
            std::future::pending::<()>().await;
        }
        Quic::Garbage => {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let noise: Vec<u8> = (0..n.max(64)).map(|i| (i * 7 + 3) as u8).collect();
                if socket.send_to(&noise, from).await.is_ok() {
                    sent.fetch_add(noise.len() as u64, Ordering::SeqCst);
                }
            }
        }
        Quic::Stall => stall(socket, &name, sent).await,
    }
}

/// The relay of `Quic::Stall`, in front of an HTTP/3 server of its own (on another port of
/// the same address).
async fn stall(front: UdpSocket, name: &str, sent: Arc<AtomicU64>) {
    let pki = Pki::new("hostile QUIC");
    let (chain, key) = pki.leaf(&[name], Validity::Current);
    let Ok(local) = front.local_addr() else { return };
    let answer: H3Rule = Arc::new(|_, _| H3Reply::Answer(200, "ok".into()));
    let server = h3_server(SocketAddr::new(local.ip(), 0), chain, key, answer).await;
    let front = Arc::new(front);
    // Per client address: the socket that talks to the server for it.
    let mut clients: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut back_tasks = JoinSet::new();
    let mut buf = vec![0u8; 65_536];
    while let Ok((n, from)) = front.recv_from(&mut buf).await {
        let back = match clients.get(&from) {
            Some(b) => b.clone(),
            None => {
                let Ok(b) = UdpSocket::bind(SocketAddr::new(local.ip(), 0)).await else {
                    continue;
                };
                if b.connect(server.addr).await.is_err() {
                    continue;
                }
                let b = Arc::new(b);
                let (b2, front, sent) = (b.clone(), front.clone(), sent.clone());
                back_tasks.spawn(async move {
                    let mut buf = vec![0u8; 65_536];
                    while let Ok(n) = b2.recv(&mut buf).await {
                        if let Some(k) = initial_len(&buf[..n]) {
                            if front.send_to(&buf[..k], from).await.is_ok() {
                                sent.fetch_add(k as u64, Ordering::SeqCst);
                            }
                        }
                    }
                });
                clients.insert(from, b.clone());
                b
            }
        };
        let _ = back.send(&buf[..n]).await;
    }
}

/// The length of the Initial packet a datagram starts with (QUIC v1 long header, type 0),
/// None when it starts with another packet (RFC 9000 §17.2.2).
fn initial_len(d: &[u8]) -> Option<usize> {
    let first = *d.first()?;
    if first & 0x80 == 0 || (first >> 4) & 0x03 != 0 {
        return None;
    }
    let mut i = 5;
    i += 1 + usize::from(*d.get(i)?);
    i += 1 + usize::from(*d.get(i)?);
    let (token, n) = varint(d.get(i..)?)?;
    i += n + usize::try_from(token).ok()?;
    let (len, n) = varint(d.get(i..)?)?;
    i += n + usize::try_from(len).ok()?;
    (i <= d.len()).then_some(i)
}

#[test]
fn initial_packets_are_cut_at_their_length() {
    // Long header, Initial, version 1, DCID 2 bytes, SCID 1 byte, no token, length 3; then
    // a Handshake packet (type 2) coalesced after it.
    let initial = [0xc0, 0, 0, 0, 1, 2, 9, 9, 1, 7, 0, 3, 0xa, 0xb, 0xc];
    let mut datagram = initial.to_vec();
    datagram.extend_from_slice(&[0xe0, 0, 0, 0, 1, 0, 0, 1, 0xff]);
    assert_eq!(initial_len(&datagram), Some(initial.len()));
    assert_eq!(initial_len(&datagram[initial.len()..]), None);
    // Two-byte varint length (0x4003 = 3); a short header; a packet that runs past the end.
    assert_eq!(
        initial_len(&[0xc0, 0, 0, 0, 1, 0, 0, 0, 0x40, 3, 1, 2, 3]),
        Some(13)
    );
    assert_eq!(initial_len(&[0x40, 1, 2, 3]), None);
    assert_eq!(initial_len(&[0xc0, 0, 0, 0, 1, 0, 0, 0, 9, 1]), None);
}
