//! The lab servers answer as their scenario says.

use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::client::{client_cert_requested, fetch, fetch_alpn};
use crate::lab::{Lab, LabOptions};

async fn lab() -> Lab {
    Lab::start(LabOptions::default()).await.expect("lab starts")
}

#[tokio::test]
async fn nginx_client_auth_block_gets_421_on_other_sni() {
    let lab = lab().await;
    let (shop, admin) = ("shop.nginx.coalscope.test", "admin.nginx.coalscope.test");
    let r = fetch(&lab, 11, shop, admin).await.expect("coalesced request");
    assert_eq!(r.status, 421);
    assert_eq!(r.alpn.as_deref(), Some(b"h2".as_slice()));
    assert!(r
        .body
        .contains("<center><h1>421 Misdirected Request</h1></center>"));
    assert_eq!(r.header("x-vhost"), shop, "nginx sends the SNI block's headers");
    assert_eq!(r.header("server"), "coalscope-lab (nginx)");

    let r = fetch(&lab, 11, admin, shop).await.expect("other way");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<h1>site shop.nginx.coalscope.test</h1>"));
    assert_eq!(r.header("content-type"), "text/html; charset=utf-8");

    let r = fetch(&lab, 11, admin, admin).await.expect("direct");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<h1>site admin.nginx.coalscope.test</h1>"));

    // Only admin's block asks for a (optional) client certificate.
    assert!(client_cert_requested(&lab, 11, admin).await.expect("admin"));
    assert!(!client_cert_requested(&lab, 11, shop).await.expect("shop"));
    lab.shutdown().await;
}

#[tokio::test]
async fn apache_and_caddy_are_strict_both_ways() {
    let lab = lab().await;
    let (blog, docs) = ("blog.apache.coalscope.test", "docs.apache.coalscope.test");
    for (sni, host) in [(blog, docs), (docs, blog)] {
        let r = fetch(&lab, 12, sni, host).await.expect("apache");
        assert_eq!(r.status, 421);
        assert!(r.body.contains("<h1>Misdirected Request</h1>"));
        assert_eq!(
            r.header("x-vhost"),
            host,
            "apache sends the target vhost's headers"
        );
        assert_eq!(fetch(&lab, 12, host, host).await.expect("direct").status, 200);
    }
    let (api, www) = ("api.caddy.coalscope.test", "www.caddy.coalscope.test");
    for (sni, host) in [(api, www), (www, api)] {
        let r = fetch(&lab, 13, sni, host).await.expect("caddy");
        assert_eq!(r.status, 421);
        assert!(r.body.is_empty());
        assert_eq!(fetch(&lab, 13, host, host).await.expect("direct").status, 200);
    }
    lab.shutdown().await;
}

#[tokio::test]
async fn envoy_answers_404_for_the_other_name() {
    let lab = lab().await;
    let (grpc, web) = ("grpc.envoy.coalscope.test", "web.envoy.coalscope.test");
    let r = fetch(&lab, 14, grpc, web).await.expect("coalesced");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("server"), "envoy");
    assert!(r.body.is_empty());
    let r = fetch(&lab, 14, web, web).await.expect("direct");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("site web.envoy.coalscope.test"));
    lab.shutdown().await;
}

#[tokio::test]
async fn sni_router_serves_the_wrong_site_with_200() {
    let lab = lab().await;
    let (alpha, beta) = ("alpha.router.coalscope.test", "beta.router.coalscope.test");
    let r = fetch(&lab, 15, alpha, beta).await.expect("coalesced");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<h1>site alpha.router.coalscope.test</h1>"));
    assert!(!r.body.contains("beta"));
    lab.shutdown().await;
}

#[tokio::test]
async fn load_balancer_alternates_per_connection() {
    let lab = lab().await;
    let (pay, cart) = ("pay.lb.coalscope.test", "cart.lb.coalscope.test");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(fetch(&lab, 16, pay, cart).await.expect("coalesced").status);
    }
    assert_eq!(statuses, vec![200, 421, 200, 421]);
    for _ in 0..2 {
        assert_eq!(fetch(&lab, 16, cart, cart).await.expect("direct").status, 200);
    }
    lab.shutdown().await;
}

#[tokio::test]
async fn multi_address_names_differ_per_address() {
    let lab = lab().await;
    let (media, cdn) = ("media.multi.coalscope.test", "cdn.multi.coalscope.test");
    assert_eq!(fetch(&lab, 17, media, cdn).await.expect(".17").status, 200);
    assert_eq!(fetch(&lab, 18, media, cdn).await.expect(".18").status, 421);
    assert_eq!(fetch(&lab, 18, cdn, cdn).await.expect(".18 direct").status, 200);
    lab.shutdown().await;
}

#[tokio::test]
async fn h1_only_server_negotiates_http11() {
    let lab = lab().await;
    let (legacy, old) = ("legacy.h1.coalscope.test", "old.h1.coalscope.test");
    let r = fetch(&lab, 19, legacy, old).await.expect("h1");
    assert_eq!(r.alpn.as_deref(), Some(b"http/1.1".as_slice()));
    assert_eq!(r.status, 200);
    assert!(r.body.contains("site old.h1.coalscope.test"));
    // Every other server speaks HTTP/1.1 too when asked.
    let good = "www.good.coalscope.test";
    let r = fetch_alpn(&lab, 10, good, good, &[b"http/1.1"])
        .await
        .expect("h1 on good");
    assert_eq!(r.alpn.as_deref(), Some(b"http/1.1".as_slice()));
    assert_eq!(r.status, 200);
    lab.shutdown().await;
}

#[tokio::test]
async fn good_server_routes_by_host_and_live_changes() {
    let lab = lab().await;
    let (www, api, live) = (
        "www.good.coalscope.test",
        "api.good.coalscope.test",
        "live.good.coalscope.test",
    );
    let r = fetch(&lab, 10, www, api).await.expect("coalesced");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<h1>site api.good.coalscope.test</h1>"));
    let first = fetch(&lab, 10, live, live).await.expect("live 1").body;
    let second = fetch(&lab, 10, www, live).await.expect("live 2").body;
    assert!(first.contains("<h1>site live.good.coalscope.test</h1>"));
    assert!(second.contains("<h1>site live.good.coalscope.test</h1>"));
    assert_ne!(first, second);
    lab.shutdown().await;
}

#[tokio::test]
async fn broken_app_answers_503_even_directly() {
    let lab = lab().await;
    let (status, app) = ("status.broken.coalscope.test", "app.broken.coalscope.test");
    assert_eq!(fetch(&lab, 25, app, app).await.expect("direct").status, 503);
    assert_eq!(fetch(&lab, 25, status, app).await.expect("coalesced").status, 503);
    assert_eq!(fetch(&lab, 25, app, status).await.expect("other way").status, 200);
    lab.shutdown().await;
}

#[tokio::test]
async fn bad_certificates_fail_verification() {
    let lab = lab().await;
    let expired = "expired.certs.coalscope.test";
    let untrusted = "untrusted.certs.coalscope.test";
    let err = fetch(&lab, 20, expired, expired).await.expect_err("expired");
    assert!(format!("{err:#}").to_lowercase().contains("expired"), "{err:#}");
    let err = fetch(&lab, 20, untrusted, untrusted)
        .await
        .expect_err("untrusted");
    assert!(format!("{err:#}").to_lowercase().contains("issuer"), "{err:#}");
    // Split names each get their own (valid) certificate.
    let one = "one.split.coalscope.test";
    assert_eq!(fetch(&lab, 21, one, one).await.expect("split").status, 200);
    lab.shutdown().await;
}

#[tokio::test]
async fn blackhole_accepts_and_stays_silent() {
    let lab = lab().await;
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.24", lab.port))
        .await
        .expect("blackhole accepts");
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut buf)).await;
    assert!(read.is_err(), "the blackhole sent something: {read:?}");
    lab.shutdown().await;
    // Once the lab is shut down the held socket is closed.
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
}

#[tokio::test]
async fn start_and_stop_twice_on_the_same_ports() {
    let first = lab().await;
    let (port, dns_port) = (first.port, first.dns.port());
    let dir = first.dir().to_path_buf();
    assert!(first.ca_file.exists() && first.watchfile.exists());
    first.shutdown().await;
    assert!(!dir.exists(), "temporary lab directory removed");

    let again = Lab::start(LabOptions {
        port: Some(port),
        dns_port: Some(dns_port),
        ..LabOptions::default()
    })
    .await
    .expect("second start on the same ports");
    let www = "www.good.coalscope.test";
    assert_eq!(fetch(&again, 10, www, www).await.expect("served").status, 200);
    drop(again);
}

#[tokio::test]
async fn files_and_description() {
    let lab = lab().await;
    let watch = std::fs::read_to_string(&lab.watchfile).expect("watch-file");
    let port = lab.port;
    assert!(watch.contains(&format!("\nghost.coalscope.test:{port}\n")));
    assert!(watch.contains(&format!("\nvoid.blackhole.coalscope.test:{port}\n")));
    assert_eq!(
        watch
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count(),
        crate::lab::lab_hosts().len()
    );
    let ca = std::fs::read_to_string(&lab.ca_file).expect("ca.pem");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(ca, lab.ca_pem());
    let text = lab.describe();
    let cmd = format!(
        "coalscope check {} --dns 127.0.0.1:{} --ca-file {}",
        lab.watchfile.display(),
        lab.dns.port(),
        lab.ca_file.display()
    );
    assert!(text.contains(&cmd), "{text}");
    assert!(text.contains("shop.nginx.coalscope.test -> admin.nginx.coalscope.test: misdirected"));
    assert_eq!(lab.phase(), (0, 3));
    assert!(!lab.is_dynamic());
    assert_eq!(lab.next_change_in(), None);
    let resolve = lab.resolve_args();
    assert!(resolve.contains(&format!("cdn.multi.coalscope.test:{port}:127.0.0.17,127.0.0.18")));
    assert!(!resolve.iter().any(|r| r.starts_with("ghost.")));
    lab.shutdown().await;
}

#[tokio::test]
async fn dynamic_lab_changes_with_the_phase() {
    use crate::lab::phase::Clock;
    let Some(clock) = Clock::started_ago(Duration::from_secs(65)) else {
        return; // the machine has been up for less than a minute
    };
    let lab = Lab::start_with_clock(
        LabOptions {
            dynamic: true,
            ..LabOptions::default()
        },
        clock,
    )
    .await
    .expect("dynamic lab starts");
    assert_eq!(lab.phase(), (1, 3));
    assert!(
        lab.phase_description().contains("nginx fixed"),
        "{}",
        lab.phase_description()
    );
    let next = lab.next_change_in().expect("dynamic");
    assert!(next <= Duration::from_secs(60));
    // Phase 1: nginx's admin block no longer requires client certificates.
    let (shop, admin) = ("shop.nginx.coalscope.test", "admin.nginx.coalscope.test");
    assert_eq!(fetch(&lab, 11, shop, admin).await.expect("fixed").status, 200);
    assert!(!client_cert_requested(&lab, 11, admin).await.expect("admin"));
    lab.shutdown().await;

    let Some(clock) = Clock::started_ago(Duration::from_secs(125)) else {
        return;
    };
    let lab = Lab::start_with_clock(
        LabOptions {
            dynamic: true,
            ..LabOptions::default()
        },
        clock,
    )
    .await
    .expect("dynamic lab starts");
    assert_eq!(lab.phase(), (2, 3));
    // Phase 2: the balancer is fixed, api.good is broken for coalesced requests.
    let (pay, cart) = ("pay.lb.coalscope.test", "cart.lb.coalscope.test");
    for _ in 0..2 {
        assert_eq!(fetch(&lab, 16, pay, cart).await.expect("lb").status, 200);
    }
    let (www, api) = ("www.good.coalscope.test", "api.good.coalscope.test");
    assert_eq!(fetch(&lab, 10, www, api).await.expect("good").status, 421);
    assert_eq!(fetch(&lab, 10, api, api).await.expect("direct").status, 200);
    assert_eq!(
        fetch(&lab, 11, shop, admin).await.expect("nginx back").status,
        421
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn bad_clients_do_not_stop_a_server() {
    use tokio::io::AsyncWriteExt;
    let lab = lab().await;
    let addr = ("127.0.0.10", lab.port);
    // Garbage instead of a ClientHello, a connection closed at once, a silent one.
    let mut garbage = tokio::net::TcpStream::connect(addr).await.expect("connect");
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").await.expect("write");
    drop(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    let _silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut buf = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(2), garbage.read(&mut buf)).await;
    let www = "www.good.coalscope.test";
    assert_eq!(
        fetch(&lab, 10, www, www).await.expect("still serving").status,
        200
    );
    // Without SNI (e.g. by IP) the address's default certificate and site answer.
    let none = crate::lab::tests::client::fetch_no_sni(&lab, 10, "api.good.coalscope.test")
        .await
        .expect("no SNI");
    assert_eq!(none.status, 200);
    assert!(none.body.contains("site api.good.coalscope.test"));
    lab.shutdown().await;
}
