//! What servers signal besides answers, against real servers: Node.js's `http2` (nghttp2) sends
//! ORIGIN frames (RFC 8336) with its `origins` option and ALTSVC frames (RFC 7838 §4) with
//! `session.altsvc`; nghttpx's `--http2-altsvc` becomes an `Alt-Svc` header over HTTP/2. The Firefox policy follows the ORIGIN set (listed: pooled
//! whatever DNS says; left out: not pooled), Chromium's ignores it over HTTP/2.

use serde_json::Value;

use super::harness::{self, servers_available, Scenario, DNSMASQ, NGHTTPX, NODE};
use super::servers;
use super::{ip, key, sa};

/// The per-client rules of a pair.
fn rules(p: &Value) -> (String, String) {
    let r = &p["coalesce"]["rules"];
    (
        r["chrome"].as_str().unwrap_or("").to_string(),
        r["firefox"].as_str().unwrap_or("").to_string(),
    )
}

fn pair_findings(p: &Value) -> Vec<String> {
    harness::kinds(&p["findings"])
}

/// A scenario for Node.js's http2 server: names www, api and other under `label`; www and
/// other at 127.0.1.`x`, api alone at 127.0.1.`y`; one certificate covering the three; DNS
/// started.
struct NodeSetup {
    sc: Scenario,
    names: [String; 3],
    port: u16,
    listen: [std::net::SocketAddr; 2],
    leaf: harness::Leaf,
}

fn node_setup(scenario: &str, label: &str, (x, y): (u8, u8)) -> NodeSetup {
    let mut sc = Scenario::new(scenario);
    let names = ["www", "api", "other"].map(|n| format!("{n}.{label}.interop.test"));
    let (x, y) = (ip(x), ip(y));
    let port = harness::free_port(&[x, y]);
    sc.record(&names[0], x);
    sc.record(&names[2], x);
    sc.record(&names[1], y);
    sc.start_dns();
    let leaf = sc.pki.issue("node", &[&names[0], &names[1], &names[2]]);
    NodeSetup {
        sc,
        names,
        port,
        listen: [sa(x, port), sa(y, port)],
        leaf,
    }
}

/// www and other share 127.0.1.50, api is alone on 127.0.1.51; one certificate covers the three.
/// Node's ORIGIN frame lists www, api and a name the certificate does not cover, and leaves
/// `other` out; the server answers 421 to api on connections opened for another name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_origin_frame_decides_firefox_and_a_listed_refused_name_is_an_error() {
    if !servers_available("node-origin", &[NODE, DNSMASQ]) {
        return;
    }
    let NodeSetup {
        mut sc,
        names: [www, api, other],
        port,
        listen,
        leaf,
    } = node_setup("node-origin", "node", (50, 51));
    let origins: Vec<String> = [www.as_str(), api.as_str(), "nocert.node.interop.test"]
        .iter()
        .map(|n| format!("https://{n}:{port}"))
        .collect();
    let altsvc = format!("h3=\":{port}\"; ma=60");
    let signals = servers::NodeSignals {
        origins: Some(&origins),
        altsvc: Some(&altsvc),
        refuse: &[&api],
    };
    servers::node_origin(&mut sc, &listen, &leaf, &signals);
    let (kw, ka, ko) = (key(&www, port), key(&api, port), key(&other, port));
    let r = sc.check(&[kw.clone(), ka.clone(), ko.clone()], 2).await;
    r.assert_pairs(&[
        // Only the ORIGIN frame links www and api (no shared address): Firefox pools, the
        // server refuses api there.
        (&kw, &ka, "misdirected", None),
        (&ko, &ka, "misdirected", None),
        (&ka, &kw, "ok", None),
        // Shared address, left out of the ORIGIN frame: Chromium pools by IP, Firefox not.
        (&kw, &ko, "ok", None),
        (&ko, &kw, "ok", None),
    ]);
    let p = r.pair(&kw, &ka);
    assert_eq!(
        rules(p),
        ("no-shared-address".into(), "origin-frame".into()),
        "{p:#}"
    );
    assert_eq!(p["coalesce"]["firefox"], true, "{p:#}");
    assert_eq!(p["coalesce"]["chrome"], false, "{p:#}");
    assert_eq!(pair_findings(p), ["origin-advertised-refused"], "{p:#}");
    assert_eq!(counts_of(p, "127.0.1.50"), harness::map(&[("421", 2)]), "{p:#}");
    let p = r.pair(&kw, &ko);
    assert_eq!(
        rules(p),
        ("ip-match".into(), "origin-frame-excludes".into()),
        "{p:#}"
    );
    assert_eq!(p["coalesce"]["firefox"], false, "{p:#}");
    assert_eq!(pair_findings(p), ["origin-omits-served"], "{p:#}");
    let p = r.pair(&ka, &kw);
    assert_eq!(
        rules(p),
        ("no-shared-address".into(), "origin-frame".into()),
        "{p:#}"
    );
    assert!(pair_findings(p).is_empty(), "{p:#}");
    // The set as received, on every endpoint; the uncovered entry is a finding.
    for (host, addr) in [(&kw, "127.0.1.50"), (&ka, "127.0.1.51"), (&ko, "127.0.1.50")] {
        let ep = endpoint(r.host(host), addr);
        assert_eq!(ep["origin_frame"], serde_json::json!(origins), "{ep:#}");
        // nghttp2's ALTSVC frame (stream 0, this connection's origin).
        assert!(has_alt(ep, "frame", port), "no ALTSVC frame read: {ep:#}");
        assert!(
            r.findings(host).contains(&"h3-advertised".to_string()),
            "{:?}",
            r.findings(host)
        );
        assert!(
            r.findings(host).contains(&"origin-frame-uncovered".to_string()),
            "{:?}",
            r.findings(host)
        );
    }
    assert_eq!(r.exit, Some(1), "{}", r.stderr);
    sc.finish();
}

/// The same servers without an ORIGIN frame: Firefox pools by DNS again (www and api share
/// nothing: not listed; www and other overlap: pooled), which is what RFC 8336 changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_without_origin_frame_firefox_pools_by_dns() {
    if !servers_available("node-no-origin", &[NODE, DNSMASQ]) {
        return;
    }
    let NodeSetup {
        mut sc,
        names: [www, api, other],
        port,
        listen,
        leaf,
    } = node_setup("node-no-origin", "node2", (52, 53));
    let signals = servers::NodeSignals {
        origins: None,
        altsvc: None,
        refuse: &[&api],
    };
    servers::node_origin(&mut sc, &listen, &leaf, &signals);
    let (kw, ka, ko) = (key(&www, port), key(&api, port), key(&other, port));
    let r = sc.check(&[kw.clone(), ka.clone(), ko.clone()], 2).await;
    r.assert_pairs(&[(&kw, &ko, "ok", None), (&ko, &kw, "ok", None)]);
    let p = r.pair(&kw, &ko);
    assert_eq!(rules(p), ("ip-match".into(), "address-overlap".into()), "{p:#}");
    assert!(pair_findings(p).is_empty(), "{p:#}");
    let ep = endpoint(r.host(&kw), "127.0.1.52");
    assert_eq!(ep["origin_frame"], Value::Null, "{ep:#}");
    assert_eq!(r.doc["summary"]["cert_only_pairs"], 4, "{:#}", r.doc["summary"]);
    assert_eq!(r.exit, Some(0), "{}", r.stderr);
    sc.finish();
}

/// nghttpx with `--http2-altsvc=h3,PORT`: over HTTP/2 nghttpx sends it as an `Alt-Svc` header
/// (when the backend sends none), not as an ALTSVC frame (read from its source,
/// shrpx_http2_upstream.cc; Node.js's nghttp2 sends the frames, above). The header is read,
/// and HTTP/3 is advertised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nghttpx_http2_altsvc_header_is_read() {
    if !servers_available("nghttpx-altsvc", &[NGHTTPX, NODE, DNSMASQ]) {
        return;
    }
    let mut sc = Scenario::new("nghttpx-altsvc");
    let (a, b) = ("www.nghttpx.interop.test", "api.nghttpx.interop.test");
    let x = ip(54);
    let port = harness::free_port(&[x]);
    let local = std::net::Ipv4Addr::LOCALHOST;
    let backend = sa(local, harness::free_port(&[local]));
    sc.record(a, x);
    sc.record(b, x);
    sc.start_dns();
    let leaf = sc.pki.issue("nghttpx", &[a, b]);
    servers::node_http1(&mut sc, backend, &[]);
    servers::nghttpx(
        &mut sc,
        sa(x, port),
        backend,
        &leaf,
        &[format!("--http2-altsvc=h3,{port},,,ma=3600")],
    );
    let (ka, kb) = (key(a, port), key(b, port));
    let r = sc.check(&[ka.clone(), kb.clone()], 1).await;
    r.assert_pairs(&[(&ka, &kb, "ok", None), (&kb, &ka, "ok", None)]);
    let ep = endpoint(r.host(&ka), "127.0.1.54");
    assert!(
        has_alt(ep, "header", port),
        "no Alt-Svc header read: {ep:#}\n{}",
        sc.logs()
    );
    assert_eq!(ep["alt_svc"][0]["max_age_s"], 3600, "{ep:#}");
    assert!(
        r.findings(&ka).contains(&"h3-advertised".to_string()),
        "{:?}",
        r.findings(&ka)
    );
    sc.finish();
}

/// The endpoint lists an h3 alternative on `port` read from `source`.
fn has_alt(ep: &Value, source: &str, port: u16) -> bool {
    ep["alt_svc"].as_array().is_some_and(|alts| {
        alts.iter()
            .any(|x| x["protocol"] == "h3" && x["source"] == source && x["port"] == port)
    })
}

fn endpoint<'a>(host: &'a Value, addr: &str) -> &'a Value {
    host["endpoints"]
        .as_array()
        .and_then(|e| e.iter().find(|x| x["address"] == addr))
        .unwrap_or_else(|| panic!("no endpoint {addr}: {host:#}"))
}

fn counts_of(p: &Value, addr: &str) -> std::collections::BTreeMap<String, u64> {
    let at = p["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["address"] == addr))
        .unwrap_or_else(|| panic!("no address {addr}: {p:#}"));
    harness::counts(&at["statuses"])
}
