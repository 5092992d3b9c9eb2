//! The fault hooks on real lab servers: a stopped address refuses connections and has closed
//! the open ones, a restarted one serves again on the same port, a silent DNS answers nothing
//! and then answers again, a rotated certificate is a new one (serial, expiry, SANs).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::client::{connector, fetch, fetch_ip};
use super::dns::ask_udp;
use crate::lab::faults::FaultError;
use crate::lab::scale::ScaleOptions;
use crate::lab::{Lab, LabOptions};

/// Long enough for any step on loopback; an absence (no DNS answer) is waited for this long.
const WAIT: Duration = Duration::from_secs(5);

async fn scale_lab() -> Lab {
    Lab::start(LabOptions {
        scale: Some(ScaleOptions::new(40, 20)),
        ..LabOptions::default()
    })
    .await
    .expect("scale lab")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_address_refuses_closes_its_connections_and_serves_again_when_started() {
    let lab = scale_lab().await;
    let layout = lab.scale().expect("scale layout");
    let faults = lab.faults();
    let (g0, g1) = (layout.address(0), layout.address(1));
    let addr = SocketAddr::from((g0, lab.port));
    assert_eq!(faults.addresses().len(), 2);
    assert!(faults.is_running(addr));
    let (name0, name1) = (layout.name(1), layout.name(21));
    assert_eq!(
        fetch_ip(&lab, g0, &name0, &name0).await.expect("before").status,
        200
    );

    // A connection open when the address stops is closed by the server.
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let sni = ServerName::try_from(name0.clone()).expect("name");
    let mut open = tokio::time::timeout(WAIT, connector(&lab, &[b"h2"]).expect("tls").connect(sni, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake");

    faults.stop(addr).await.expect("stop");
    assert!(!faults.is_running(addr));
    let refused = TcpStream::connect(addr)
        .await
        .expect_err("stopped: connect fails");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "{refused}");
    let ended = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        // The server's SETTINGS may come first; then end of stream or an error.
        loop {
            match open.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the open connection was closed with its server");
    // The other address is untouched; stopping twice is harmless.
    assert_eq!(
        fetch_ip(&lab, g1, &name1, &name1).await.expect("other").status,
        200
    );
    faults.stop(addr).await.expect("stop again");

    faults.start(addr).await.expect("start");
    assert!(faults.is_running(addr));
    let reply = fetch_ip(&lab, g0, &name0, &name0).await.expect("after restart");
    assert_eq!(reply.status, 200);
    let unknown = SocketAddr::from((Ipv4Addr::new(127, 0, 9, 9), lab.port));
    assert!(matches!(
        faults.stop(unknown).await,
        Err(FaultError::UnknownAddress(a)) if a == unknown
    ));
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scenario_lab_restarts_an_address_too_and_refuses_rotation() {
    let lab = Lab::start(LabOptions::default()).await.expect("lab");
    let faults = lab.faults();
    // The `good` scenario's address.
    let octet = 10;
    let addr = SocketAddr::from((Ipv4Addr::new(127, 0, 0, octet), lab.port));
    assert!(faults.addresses().contains(&addr), "{:?}", faults.addresses());
    let host = "www.good.coalscope.test";
    let before = fetch(&lab, octet, host, host).await.expect("before").status;
    faults.stop(addr).await.expect("stop");
    assert!(fetch(&lab, octet, host, host).await.is_err(), "stopped");
    faults.start(addr).await.expect("start");
    assert_eq!(
        fetch(&lab, octet, host, host).await.expect("after").status,
        before
    );
    assert!(matches!(faults.rotate_group(0, &[]), Err(FaultError::NotScale)));
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_dns_answers_nothing_until_it_answers_again() {
    let lab = scale_lab().await;
    let faults = lab.faults();
    let name = format!("{}.", lab.scale().expect("layout").name(3));
    let answer = ask_udp(lab.dns, &name).await.expect("answers");
    assert_eq!(answer.answers.len(), 1);

    faults.set_dns_silent(true);
    assert!(faults.dns_silent());
    // ask_udp waits WAIT for an answer: none comes.
    assert!(
        ask_udp(lab.dns, &name).await.is_err(),
        "a silent DNS sent an answer"
    );

    faults.set_dns_silent(false);
    let answer = ask_udp(lab.dns, &name).await.expect("answers again");
    assert_eq!(answer.answers.len(), 1);
    lab.shutdown().await;
}

/// (serial, not_after as unix seconds, DNS SANs) of a DER certificate.
fn facts(der: &[u8]) -> (Vec<u8>, i64, Vec<String>) {
    let (_, cert) = X509Certificate::from_der(der).expect("a certificate");
    let sans = cert
        .subject_alternative_name()
        .expect("SAN extension parses")
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    (
        cert.raw_serial().to_vec(),
        cert.validity().not_after.timestamp(),
        sans,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_new_and_served_on_the_next_handshake() {
    let lab = scale_lab().await;
    let layout = lab.scale().expect("layout");
    let faults = lab.faults();
    let (ip, name) = (layout.address(0), layout.name(2));
    let before = fetch_ip(&lab, ip, &name, &name).await.expect("before");
    let old = facts(&before.leaf.expect("a leaf"));
    assert_eq!(old.2, vec!["*.g000.scale.coalscope.test".to_string()]);

    let extra = "extra.g000.scale.coalscope.test";
    let rotated = faults.rotate_group(0, &[extra]).expect("rotate");
    assert_eq!(rotated.group, "g000.scale.coalscope.test");
    let after = fetch_ip(&lab, ip, &name, &name).await.expect("after");
    assert_eq!(after.status, 200, "the new certificate is trusted (lab CA)");
    let leaf = after.leaf.expect("a leaf");
    assert_eq!(leaf, rotated.der.to_vec(), "the rotated certificate is served");
    let new = facts(&leaf);
    assert_ne!(new.0, old.0, "new serial");
    assert!(new.1 > old.1, "later expiry: {} then {}", old.1, new.1);
    assert_eq!(
        new.2,
        vec!["*.g000.scale.coalscope.test".to_string(), extra.to_string()]
    );
    // The other group keeps its certificate.
    let other = layout.name(21);
    let kept = fetch_ip(&lab, layout.address(1), &other, &other)
        .await
        .expect("other");
    assert_eq!(
        facts(&kept.leaf.expect("a leaf")).2,
        vec!["*.g001.scale.coalscope.test".to_string()]
    );
    assert!(matches!(
        faults.rotate_group(2, &[]),
        Err(FaultError::UnknownGroup(2))
    ));
    lab.shutdown().await;
}
