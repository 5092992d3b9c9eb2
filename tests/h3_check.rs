//! `check` over HTTP/3 (issue 17, step 2): a host whose HTTP/2 answers advertise HTTP/3
//! (`Alt-Svc: h3=":PORT"`) is probed over QUIC too, and each pair gets both verdicts. Real
//! servers on loopback: the test HTTP/2 server (clean: it answers every name on every
//! connection) and the test HTTP/3 server (strict like Caddy's `strict_sni_host`, or clean),
//! at the same address; `check` runs as a child process with `--resolve` and the test CA.

// Test code: a failed expectation is a failed test, said where it happened.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use coalscope::testing::h3::{h3_server, H3Reply, H3Rule, H3Server};
use coalscope::testing::net::{signalling_server, Pki, ServerOptions, Signals, TestServer, Validity};
use serde_json::Value;

/// The test HTTP/3 server's rule: the page the HTTP/2 test server answers for the name
/// (`site=HOST sni=SNI path=/`), or 421 when `strict` and the name is not the SNI.
fn rule(strict: bool) -> H3Rule {
    Arc::new(move |sni, authority| {
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        if strict && sni != Some(host) {
            return H3Reply::Answer(421, String::new());
        }
        H3Reply::Answer(200, format!("site={host} sni={} path=/", sni.unwrap_or("-")))
    })
}

/// A site at `ip`: HTTP/2 on TCP, clean, advertising HTTP/3 on the UDP port of an HTTP/3
/// server beside it (strict or not).
struct Site {
    h2: TestServer,
    h3: H3Server,
}

async fn site(pki: &Pki, ip: [u8; 4], names: &[&str], strict: bool) -> Site {
    site_with(pki, ip, names, rule(strict)).await
}

/// `site`, its HTTP/3 server answering by `rule`.
async fn site_with(pki: &Pki, ip: [u8; 4], names: &[&str], rule: H3Rule) -> Site {
    let (chain, key) = pki.leaf(names, Validity::Current);
    let h3 = h3_server(SocketAddr::from((ip, 0)), chain.clone(), key.clone_key(), rule).await;
    let alt_svc: &'static str = Box::leak(format!("h3=\":{}\"; ma=60", h3.addr.port()).into_boxed_str());
    let signals = Signals {
        alt_svc: Some(alt_svc),
        ..Signals::default()
    };
    let h2 = signalling_server(
        SocketAddr::from((ip, 0)),
        chain,
        key,
        ServerOptions::default(),
        signals,
    )
    .await;
    Site { h2, h3 }
}

/// `check` of `names` at `site` (two rounds, JSON), with `extra` options.
async fn check(pki: &Pki, site: &Site, names: &[&str], extra: &[&str]) -> (Option<i32>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pki.ca_pem()).unwrap();
    let port = site.h2.addr.port();
    let watch: String = names.iter().map(|n| format!("{n}:{port}\n")).collect();
    let ip = site.h2.addr.ip().to_string();
    let resolves: Vec<String> = names.iter().map(|n| format!("{n}:{ip}")).collect();
    let mut args = vec![
        "check",
        "-",
        "--format",
        "json",
        "--rounds",
        "2",
        "--timeout",
        "2s",
    ];
    args.extend(["--ca-file", ca.to_str().unwrap()]);
    for r in &resolves {
        args.extend(["--resolve", r]);
    }
    args.extend(extra);
    let out = common::run(&args, Some(watch.as_bytes())).await;
    let doc = common::stdout_json(&out);
    common::assert_valid(&doc);
    (out.status.code(), doc)
}

fn pair<'a>(doc: &'a Value, origin: &str, target: &str) -> &'a Value {
    doc["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["origin"].as_str().unwrap().starts_with(origin)
                && p["target"].as_str().unwrap().starts_with(target)
        })
        .unwrap_or_else(|| panic!("no pair {origin} → {target}: {doc:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_clean_over_http2_but_refused_over_http3_is_misdirected_and_says_so() {
    let pki = Pki::new("h3 check");
    let names = ["www.h3c.test", "api.h3c.test"];
    let s = site(&pki, [127, 0, 18, 1], &names, true).await;
    let (code, doc) = check(&pki, &s, &names, &[]).await;
    let p = pair(&doc, "www.h3c.test", "api.h3c.test");
    assert_eq!(p["verdict"], "misdirected", "{p:#}");
    // Two rounds: over each protocol, one connection per origin per round carries the target.
    assert_eq!(
        common::protocol_rows(p),
        [("h2", "ok", 2), ("h3", "misdirected", 2)],
        "{p:#}"
    );
    let explanation = p["explanation"].as_str().unwrap();
    assert!(
        explanation.starts_with("over HTTP/3 (misdirected; over HTTP/2: ok)"),
        "{explanation}"
    );
    // The pair's own counts stay HTTP/2's; the HTTP/3 row has its 421s.
    assert_eq!(
        (p["probes"].as_u64(), p["rate_421"].as_f64()),
        (Some(2), Some(0.0))
    );
    assert_eq!(p["protocols"][1]["rate_421"], 1.0, "{p:#}");
    assert_eq!(p["protocols"][1]["addresses"][0]["statuses"]["421"], 2, "{p:#}");
    assert_eq!(code, Some(1), "a problem: exit 1");
    // The HTTP/3 server saw each coalesced request on a connection whose SNI was the origin.
    let seen = s.h3.seen();
    assert!(
        seen.iter()
            .any(|r| r.sni.as_deref() == Some("www.h3c.test") && r.authority.starts_with("api.h3c.test")),
        "{seen:?}"
    );
    // `--protocols h2`: no QUIC at all, the pair is judged over HTTP/2 alone.
    let before = s.h3.seen().len();
    let (code, doc) = check(&pki, &s, &names, &["--protocols", "h2"]).await;
    let p = pair(&doc, "www.h3c.test", "api.h3c.test");
    assert_eq!(
        (p["verdict"].as_str(), common::protocol_rows(p).len()),
        (Some("ok"), 0),
        "{p:#}"
    );
    assert_eq!(s.h3.seen().len(), before, "no HTTP/3 request with --protocols h2");
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_clean_over_both_protocols_is_ok_with_both_verdicts() {
    let pki = Pki::new("h3 check clean");
    let names = ["www.h3ok.test", "api.h3ok.test"];
    let s = site(&pki, [127, 0, 18, 2], &names, false).await;
    let (code, doc) = check(&pki, &s, &names, &[]).await;
    for (a, b) in [(names[0], names[1]), (names[1], names[0])] {
        let p = pair(&doc, a, b);
        assert_eq!(p["verdict"], "ok", "{p:#}");
        assert_eq!(
            common::protocol_rows(p),
            [("h2", "ok", 2), ("h3", "ok", 2)],
            "{p:#}"
        );
        assert!(
            !p["explanation"].as_str().unwrap().starts_with("over HTTP"),
            "{p:#}"
        );
    }
    assert_eq!(code, Some(0), "{doc:#}");
}

/// A server that answers one name with 421 and then sends GOAWAY (as a proxy may after a
/// misdirected request): the targets the connection can no longer carry go on a fresh
/// connection for the same origin, as a browser would send them, and are judged on their
/// answers there; none ends in "connection closing". The other answers come 150 ms late so
/// that targets are still queued (8 in flight, 10 targets) when the GOAWAY arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_left_by_an_http3_goaway_go_on_a_fresh_connection() {
    let pki = Pki::new("h3 goaway");
    let names = [
        "www.h3g.test",
        "bye.h3g.test",
        "n1.h3g.test",
        "n2.h3g.test",
        "n3.h3g.test",
        "n4.h3g.test",
        "n5.h3g.test",
        "n6.h3g.test",
        "n7.h3g.test",
        "n8.h3g.test",
        "n9.h3g.test",
    ];
    let rule: H3Rule = Arc::new(|sni, authority| {
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        let page = format!("site={host} sni={} path=/", sni.unwrap_or("-"));
        if sni == Some(host) {
            H3Reply::Answer(200, page)
        } else if host == "bye.h3g.test" {
            H3Reply::AnswerThenGoAway(421, String::new())
        } else {
            H3Reply::AnswerAfter(200, page, std::time::Duration::from_millis(150))
        }
    });
    let s = site_with(&pki, [127, 0, 18, 3], &names, rule).await;
    let (_, doc) = check(&pki, &s, &names, &[]).await;
    for origin in names {
        for target in names.iter().filter(|t| **t != origin) {
            let p = pair(&doc, origin, target);
            let h3 = &p["protocols"][1];
            assert_eq!(h3["protocol"], "h3", "{p:#}");
            let expected = if *target == "bye.h3g.test" {
                "misdirected"
            } else {
                "ok"
            };
            assert_eq!(h3["verdict"], expected, "{p:#}");
            assert_eq!(h3["probes"], 2, "two rounds, each target requested once: {p:#}");
            assert_eq!(
                h3["addresses"][0]["errors"], 0,
                "no request lost to the GOAWAY: {p:#}"
            );
        }
    }
    // Some origin's targets went on a second connection with its SNI within a round.
    let seen = s.h3.seen();
    let mut connections: std::collections::BTreeMap<&str, std::collections::BTreeSet<usize>> =
        std::collections::BTreeMap::new();
    for r in &seen {
        if let Some(sni) = r.sni.as_deref() {
            connections.entry(sni).or_default().insert(r.connection);
        }
    }
    assert!(
        connections.get("www.h3g.test").is_some_and(|c| c.len() > 2),
        "two rounds, and fresh connections after the GOAWAYs: {connections:?}"
    );
}

/// The scale lab serving HTTP/3 too (what the sweep benchmark measures an HTTP/3 probe on):
/// every name advertises it in an HTTPS record, and `check` judges every pair over both
/// protocols alike (the misconfigured names refuse coalesced requests over both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scale_lab_over_http3_judges_every_pair_over_both_protocols() {
    use coalscope::lab::scale::ScaleOptions;
    use coalscope::lab::{Lab, LabOptions};
    let layout = ScaleOptions {
        h3: true,
        ..ScaleOptions::new(20, 10)
    };
    let lab = Lab::start(LabOptions {
        scale: Some(layout),
        ..Default::default()
    })
    .await
    .unwrap();
    let out = common::check_lab(&lab, &["--rounds", "1", "--format", "json", "--max-rps", "0"]).await;
    lab.shutdown().await;
    let doc = common::stdout_json(&out);
    // The progress plans each HTTP/3 connection with the targets HTTP/2 carried there.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HTTP/3 round 1/1: 20 connections, 200 requests planned"),
        "{stderr}"
    );
    let (pairs, bad) = layout.expected_pairs();
    let listed = doc["pairs"].as_array().unwrap();
    assert_eq!(listed.len(), pairs, "{:#}", doc["summary"]);
    let rows = |p: &Value| -> Vec<(String, String)> {
        p["protocols"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| (r["protocol"].to_string(), r["verdict"].to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut misdirected = 0;
    for p in listed {
        let verdict = p["verdict"].as_str().unwrap();
        let expected = [
            ("\"h2\"".to_string(), format!("\"{verdict}\"")),
            ("\"h3\"".to_string(), format!("\"{verdict}\"")),
        ];
        assert_eq!(rows(p), expected, "{p:#}");
        misdirected += usize::from(verdict == "misdirected");
    }
    assert_eq!(misdirected, bad);
    // One HTTP/2 and one HTTP/3 connection per name.
    assert_eq!(
        doc["summary"]["connections"],
        2 * layout.names as u64,
        "{:#}",
        doc["summary"]
    );
}

/// Chromium over HTTP/3 (RFC 9412): the server's HTTP/3 ORIGIN frame lists a name whose DNS
/// answer does not hold the connection's address, so over HTTP/2 no client pools it (no shared
/// address, no HTTP/2 ORIGIN frame) while over HTTP/3 Chromium and Firefox do: the name rides
/// on the origin's HTTP/3 connection, is refused there (421), and the pair is misdirected
/// over HTTP/3 with each protocol's clients said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http3_origin_frame_makes_chromium_pool_a_name_elsewhere_in_dns() {
    use coalscope::testing::h3::h3_server_with_origin;
    let pki = Pki::new("h3 origin");
    let (www, api) = ("www.h3o.test", "api.h3o.test");
    let (chain, key) = pki.leaf(&[www, api], Validity::Current);
    let www_ip = [127, 0, 18, 9];
    // HTTP/2 first (its port is the watched one), then HTTP/3 on the same number over UDP.
    let listener = std::net::TcpListener::bind(SocketAddr::from((www_ip, 0))).unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let origin = format!("https://{api}:{port}");
    let h3 = h3_server_with_origin(
        SocketAddr::from((www_ip, port)),
        chain.clone(),
        key.clone_key(),
        rule(true),
        &[origin.as_str()],
    )
    .await;
    let alt_svc: &'static str = Box::leak(format!("h3=\":{port}\"; ma=60").into_boxed_str());
    let signals = Signals {
        alt_svc: Some(alt_svc),
        ..Signals::default()
    };
    let h2 = signalling_server(
        SocketAddr::from((www_ip, port)),
        chain,
        key,
        ServerOptions::default(),
        signals,
    )
    .await;
    // The target's own server, at another address, with a certificate of its own.
    let (api_chain, api_key) = pki.leaf(&[api], Validity::Current);
    let api_server = signalling_server(
        SocketAddr::from(([127, 0, 18, 10], port)),
        api_chain,
        api_key,
        ServerOptions::default(),
        Signals::default(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pki.ca_pem()).unwrap();
    let watch = format!("{www}:{port}\n{api}:{port}\n");
    let www_at = format!("{www}:{}", h2.addr.ip());
    let api_at = format!("{api}:{}", api_server.addr.ip());
    let args = [
        "check",
        "-",
        "--format",
        "json",
        "--rounds",
        "2",
        "--timeout",
        "2s",
        "--ca-file",
        ca.to_str().unwrap(),
        "--resolve",
        &www_at,
        "--resolve",
        &api_at,
    ];
    let out = common::run(&args, Some(watch.as_bytes())).await;
    let doc = common::stdout_json(&out);
    common::assert_valid(&doc);
    let p = pair(&doc, www, api);
    assert_eq!(p["verdict"], "misdirected", "{p:#}");
    assert_eq!(
        common::protocol_rows(p),
        [("h2", "not-coalescable", 0), ("h3", "misdirected", 2)],
        "{p:#}"
    );
    // HTTP/2 carried no request for it: the pair's counts are HTTP/3's, and it counts as probed.
    assert_eq!(
        (p["probes"].as_u64(), p["rate_421"].as_f64()),
        (Some(2), Some(1.0)),
        "{p:#}"
    );
    assert_eq!(doc["summary"]["coverage"], 1.0, "{:#}", doc["summary"]);
    let clients = |row: &Value| {
        let c = &row["coalesce"];
        (
            c["chrome"].clone(),
            c["rules"]["chrome"].clone(),
            c["firefox"].clone(),
        )
    };
    assert_eq!(
        clients(&p["protocols"][0]),
        (
            Value::Bool(false),
            Value::from("no-shared-address"),
            Value::Bool(false)
        )
    );
    assert_eq!(
        clients(&p["protocols"][1]),
        (Value::Bool(true), Value::from("origin-frame"), Value::Bool(true))
    );
    // The HTTP/3 server saw the target asked for on the origin's connection.
    assert!(
        h3.seen()
            .iter()
            .any(|r| r.sni.as_deref() == Some(www) && r.authority.starts_with(api)),
        "{:?}",
        h3.seen()
    );
}
