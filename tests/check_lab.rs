//! End to end: the real `coalscope check` binary against the embedded lab (loopback servers,
//! the lab's own DNS and CA). Every pair's verdict, the per-address counts, the host findings
//! and the exit status are asserted; the JSON is validated against the committed schema.

// Test code: a failed expectation is a failed test, said where it happened.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::BTreeSet;

use coalscope::engine::snapshot::Verdict;
use coalscope::lab::{self, Lab, LabOptions};
use serde_json::Value;

async fn check_lab(lab: &Lab, extra: &[&str]) -> (std::process::Output, Value) {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    let out = common::check_lab(lab, &args).await;
    let json = common::stdout_json(&out);
    (out, json)
}

fn pair<'a>(doc: &'a Value, origin: &str, target: &str) -> Option<&'a Value> {
    doc["pairs"]
        .as_array()?
        .iter()
        .find(|p| p["origin"] == origin && p["target"] == target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_gives_every_lab_pair_its_verdict() {
    let lab = Lab::start(LabOptions::default()).await.expect("lab starts");
    // 16 rounds: the load-balancer pair is intermittent unless all 16 connections land on one
    // backend (probability 2^-15 with the shuffled order).
    let (out, doc) = check_lab(
        &lab,
        &[
            "--rounds",
            "16",
            "--timeout",
            "1500ms",
            "--max-rps",
            "0",
            "--all-pairs",
        ],
    )
    .await;
    common::assert_valid(&doc);
    let port = lab.port;
    // The whole report, byte for byte, but for what changes from run to run.
    common::golden::assert_golden(
        "check_lab.json",
        &common::golden::mask_json(&String::from_utf8_lossy(&out.stdout), port),
    );
    let key = |h: &str| format!("{h}:{port}");
    let mut failures = Vec::new();
    let mut expected_keys = BTreeSet::new();
    for e in lab::expectations() {
        expected_keys.insert((key(e.origin), key(e.target)));
        match pair(&doc, &key(e.origin), &key(e.target)) {
            None => failures.push(format!("{} → {}: missing", e.origin, e.target)),
            Some(p) => {
                let got = (p["verdict"].as_str().unwrap_or(""), p["reason"].as_str());
                if got != (e.verdict.as_str(), e.reason.map(|r| r.as_str())) {
                    failures.push(format!(
                        "{} → {}: expected {} {:?}, got {} {:?} ({})",
                        e.origin, e.target, e.verdict, e.reason, got.0, got.1, p["explanation"]
                    ));
                }
            }
        }
    }
    for p in doc["pairs"].as_array().unwrap() {
        let k = (
            p["origin"].as_str().unwrap().to_string(),
            p["target"].as_str().unwrap().to_string(),
        );
        if !expected_keys.contains(&k) {
            failures.push(format!("unexpected pair {} → {} ({})", k.0, k.1, p["verdict"]));
        }
    }
    for (host, kind) in lab::expected_findings() {
        let h = doc["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == host);
        let found = h.is_some_and(|h| {
            h["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["kind"] == kind.as_str())
        });
        if !found {
            failures.push(format!("{host}: finding {kind} missing"));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n\nstderr:\n{}",
        failures.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_impacts(&doc, port);

    // Per address: the two-address name is fine at one address and refused at the other.
    let media = pair(
        &doc,
        &key("media.multi.coalscope.test"),
        &key("cdn.multi.coalscope.test"),
    )
    .unwrap();
    let by_addr: Vec<(&str, &str)> = media["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["address"].as_str().unwrap(), a["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(
        by_addr,
        vec![("127.0.0.17", "ok"), ("127.0.0.18", "misdirected")],
        "{media}"
    );
    assert_eq!(media["addresses"][1]["statuses"]["421"], 16);
    assert_eq!(
        media["addresses"][0]["direct_statuses"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["200"]
    );

    // The load balancer: both kinds of answers on the same address.
    let lb = pair(
        &doc,
        &key("pay.lb.coalscope.test"),
        &key("cart.lb.coalscope.test"),
    )
    .unwrap();
    let rate = lb["rate_421"].as_f64().unwrap();
    assert!(rate > 0.0 && rate < 1.0, "{lb}");
    assert_eq!(lb["probes"], 16);
    // Its two backends are told apart (by their Server header: same certificate), and the
    // strict one is named as the one that refuses.
    let at = &lb["addresses"][0];
    let backends = at["backends"].as_array().unwrap();
    assert_eq!(backends.len(), 2, "{at}");
    let refused: Vec<(&str, u64)> = backends
        .iter()
        .map(|b| (b["server"].as_str().unwrap(), b["refused"].as_u64().unwrap()))
        .collect();
    assert!(
        refused[0] == ("coalscope-lab (load-balancer backend-1)", 0)
            && refused[1].0 == "coalscope-lab (load-balancer backend-2)"
            && refused[1].1 > 0,
        "{at}"
    );
    assert_eq!(backends[0]["cert_sha256"], backends[1]["cert_sha256"]);
    assert_eq!(
        backends
            .iter()
            .map(|b| b["probes"].as_u64().unwrap())
            .sum::<u64>(),
        16
    );
    assert!(at["refusals"]["421"].as_u64().unwrap() > 0, "{at}");
    let interval = &at["refusal_rate"];
    assert!(
        interval["low"].as_f64() < interval["rate"].as_f64() && interval["n"] == 16,
        "{at}"
    );
    let why = lb["explanation"].as_str().unwrap();
    assert!(
        why.ends_with(
            "1 of 2 backends behind 127.0.0.16 refuses: the one answering with Server \"coalscope-lab (load-balancer backend-2)\""
        ),
        "{why}"
    );
    // Apache under `SSLVHostSNIPolicy insecure`: the stream reset with HTTP_1_1_REQUIRED is a
    // refusal, counted by kind.
    let renego = pair(
        &doc,
        &key("www.renego.coalscope.test"),
        &key("admin.renego.coalscope.test"),
    )
    .unwrap();
    assert_eq!(renego["verdict"], "misdirected", "{renego}");
    let at = &renego["addresses"][0];
    assert_eq!(at["refusals"]["reset HTTP_1_1_REQUIRED"], 16, "{at}");
    assert_eq!(
        (at["errors"].as_u64(), at["refusal_rate"]["rate"].as_f64()),
        (Some(0), Some(1.0))
    );
    assert_eq!(renego["rate_421"], 0.0, "rate_421 counts 421s only");
    assert!(
        renego["fix"]
            .as_str()
            .unwrap()
            .contains("SSLVHostSNIPolicy secure"),
        "{renego}"
    );
    // 16 rounds settle every ok and misdirected pair.
    assert_eq!(doc["summary"]["inconclusive"], 0);
    assert_eq!(doc["summary"]["settle_rounds"], serde_json::Value::Null);

    // Content: pages that print the connection's server name are the right site's (ok,
    // `similar`); behind an SNI router they are the other site's, and it is named.
    let judged = |o: &str, t: &str| {
        let p = pair(&doc, &key(o), &key(t)).unwrap();
        let a = &p["addresses"][0];
        (
            p["verdict"].as_str().unwrap().to_string(),
            a["content"].as_str().unwrap_or("-").to_string(),
            a["looked_like"].as_str().unwrap_or("-").to_string(),
            p["explanation"].as_str().unwrap().to_string(),
        )
    };
    let (north, south) = ("north.echo.coalscope.test", "south.echo.coalscope.test");
    for (o, t) in [(north, south), (south, north)] {
        let (verdict, content, looked_like, why) = judged(o, t);
        assert_eq!(
            (verdict.as_str(), content.as_str(), looked_like.as_str()),
            ("ok", "similar", "-"),
            "{why}"
        );
        assert!(why.contains("page differs by connection"), "{why}");
    }
    let (east, west) = ("east.echorouter.coalscope.test", "west.echorouter.coalscope.test");
    for (o, t) in [(east, west), (west, east)] {
        let (verdict, content, looked_like, why) = judged(o, t);
        assert_eq!(
            (verdict.as_str(), content.as_str(), looked_like.as_str()),
            ("misrouted", "other-site", key(o).as_str()),
            "{why}"
        );
        assert!(why.contains(&format!("looked like {o}'s page")), "{why}");
    }
    let (verdict, content, looked_like, _) =
        judged("alpha.router.coalscope.test", "beta.router.coalscope.test");
    assert_eq!(
        (verdict.as_str(), content.as_str(), looked_like.as_str()),
        (
            "misrouted",
            "other-site",
            key("alpha.router.coalscope.test").as_str()
        )
    );
    let (_, content, _, _) = judged("www.good.coalscope.test", "api.good.coalscope.test");
    assert_eq!(content, "same");

    // Groups: the nginx pair is one group with one problem.
    let groups = doc["groups"].as_array().unwrap();
    let nginx = groups
        .iter()
        .find(|g| {
            g["members"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m == &key("shop.nginx.coalscope.test"))
        })
        .expect("nginx group");
    assert_eq!(nginx["problems"], 1);
    assert_eq!(doc["summary"]["cert_only_pairs"], 2);
    assert!(doc["summary"]["connections"].as_u64().unwrap() > 0);
    assert_eq!(out.status.code(), Some(1), "problems found → exit 1");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_report_explains_problems_and_strips_nothing_it_needs() {
    let lab = Lab::start(LabOptions::default()).await.expect("lab starts");
    let out = common::check_lab(
        &lab,
        &[
            // As many rounds as the JSON run: the load-balancer pairs stay intermittent.
            "--rounds",
            "16",
            "--timeout",
            "1500ms",
            "--max-rps",
            "0",
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    common::golden::assert_golden("check_lab.txt", &common::golden::mask_table(&text, lab.port));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(!text.contains('\x1b'), "NO_COLOR and a pipe: no escape sequences");
    assert!(text.contains("Coalescing groups"), "{text}");
    let misdirected = text.find("misdirected").expect("a misdirected pair");
    let ok = text.find("\n  ok ").expect("an ok pair");
    assert!(misdirected < ok, "problems come first:\n{text}");
    assert!(text.contains("ssl_verify_client"), "nginx fix hint:\n{text}");
    assert!(
        text.contains(
            "impact: error page for Safari < 15.1 · retry on a new connection for Chrome, Firefox, Safari\n"
        ),
        "who is hurt, under why:\n{text}"
    );
    assert!(text.contains("dns-error"), "{text}");
    // One block per cause, the fix once with role words; -v explains every pair by name.
    assert!(
        text.contains("  misdirected     2 pairs of group #3 refused by Apache httpd  chrome+firefox\n"),
        "{text}"
    );
    assert_eq!(
        text.matches("make the SSL settings of the origin and the target identical")
            .count(),
        1,
        "{text}"
    );
    let verbose = common::check_lab(
        &lab,
        &["--rounds", "2", "--timeout", "1500ms", "--max-rps", "0", "-v"],
    )
    .await;
    let verbose = String::from_utf8_lossy(&verbose.stdout);
    assert!(!verbose.contains("the origin"), "{verbose}");
    for (a, b) in [("blog", "docs"), ("docs", "blog")] {
        let fix = format!(
            "make the SSL settings of {a}.apache.coalscope.test and {b}.apache.coalscope.test identical"
        );
        assert_eq!(verbose.matches(&fix).count(), 1, "{fix}:\n{verbose}");
    }
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_overrides_replace_dns_and_a_clean_pair_exits_zero() {
    let lab = Lab::start(LabOptions::default()).await.expect("lab starts");
    let port = lab.port;
    let watch = format!("www.good.coalscope.test:{port}\napi.good.coalscope.test:{port}\n");
    let ca = lab.ca_file.to_string_lossy().to_string();
    // The only DNS server is a loopback socket that never answers (held open, so that nothing
    // else can take its port): the overrides must be what answered, and no query may reach it.
    // Nor does the run need a system resolver (/etc/resolv.conf).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a silent DNS socket");
    silent.set_nonblocking(true).expect("non-blocking");
    let dns = silent.local_addr().expect("silent DNS address").to_string();
    let out = common::run(
        &[
            "check",
            "-",
            "--dns",
            &dns,
            "--resolve",
            &format!("www.good.coalscope.test:{port}:127.0.0.10"),
            "--resolve",
            "api.good.coalscope.test:127.0.0.10",
            "--ca-file",
            &ca,
            "--format",
            "json",
            "--rounds",
            "2",
        ],
        Some(watch.as_bytes()),
    )
    .await;
    let doc = common::stdout_json(&out);
    common::assert_valid(&doc);
    assert_eq!(out.status.code(), Some(0), "{doc:#}");
    let verdicts: Vec<&str> = doc["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["ok", "ok"]);
    assert_eq!(doc["hosts"][0]["dns"]["overridden"], true);
    assert_eq!(doc["groups"][0]["members"].as_array().unwrap().len(), 2);
    // 2 hosts × 1 address × 2 rounds, one connection each: the minimal work (each host's own
    // answer is its direct answer, the pages are static, so no direct connection is needed).
    assert_eq!(doc["summary"]["connections"], 4);
    // per origin connection: itself + the other.
    assert_eq!(doc["summary"]["requests"], 8);
    let mut query = [0u8; 512];
    let asked = silent.recv_from(&mut query);
    assert!(
        asked
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "the DNS server was asked although every name is overridden: {asked:?}"
    );
    lab.shutdown().await;
}

/// What each client's users get (`impact`) on the lab's pairs, by verdict: a refusal (421) is
/// an error page for Safari < 15.1 and a retry for the others (over HTTP/1.1 when the stream
/// was reset with HTTP_1_1_REQUIRED: the renego scenario); another site's answer is the wrong
/// page for every browser that pools; non-pooling clients are never affected; pairs that are
/// no problem carry no impact.
fn assert_impacts(doc: &Value, port: u16) {
    let refused: &[(&str, bool, &str)] = &[
        ("safari-before-15.1", true, "shows-error"),
        ("chrome", true, "retries-on-new-connection"),
        ("firefox", true, "retries-on-new-connection"),
        ("safari", true, "retries-on-new-connection"),
        ("non-pooling", false, "unaffected"),
    ];
    let refused_http1: &[(&str, bool, &str)] = &[
        ("safari-before-15.1", true, "shows-error"),
        ("chrome", true, "retries-over-http1"),
        ("firefox", true, "retries-over-http1"),
        ("safari", true, "retries-over-http1"),
        ("non-pooling", false, "unaffected"),
    ];
    let wrong: &[(&str, bool, &str)] = &[
        ("chrome", true, "wrong-content"),
        ("firefox", true, "wrong-content"),
        ("safari", true, "wrong-content"),
        ("safari-before-15.1", true, "wrong-content"),
        ("non-pooling", false, "unaffected"),
    ];
    // Linked only by an ORIGIN frame: Firefox alone pools (and retries the 421).
    let refused_firefox: &[(&str, bool, &str)] = &[
        ("firefox", true, "retries-on-new-connection"),
        ("chrome", false, "unaffected"),
        ("safari", false, "unaffected"),
        ("safari-before-15.1", false, "unaffected"),
        ("non-pooling", false, "unaffected"),
    ];
    // Pairs that are no problem say nothing: every client is unaffected.
    let none: &[(&str, bool, &str)] = &[];
    let mut failures = Vec::new();
    for e in lab::expectations() {
        let expected = match e.verdict {
            Verdict::Misdirected if e.origin.contains(".renego.") => refused_http1,
            Verdict::Misdirected if e.origin.contains(".origin.") => refused_firefox,
            Verdict::Misdirected | Verdict::Intermittent => refused,
            Verdict::Misrouted => wrong,
            Verdict::Ok | Verdict::DirectBroken | Verdict::NotCoalescable => none,
            _ => continue,
        };
        let (origin, target) = (format!("{}:{port}", e.origin), format!("{}:{port}", e.target));
        let Some(p) = pair(doc, &origin, &target) else {
            continue;
        };
        let got: Vec<(&str, bool, &str)> = p["impact"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["client"].as_str().unwrap(),
                    i["coalesces"].as_bool().unwrap(),
                    i["outcome"].as_str().unwrap(),
                )
            })
            .collect();
        if got != expected {
            failures.push(format!("{origin} → {target} ({}): {got:?}", e.verdict));
        }
    }
    assert!(failures.is_empty(), "impact:\n{}", failures.join("\n"));
    // The fix of a refused pair starts with who is hurt most.
    let nginx = pair(
        doc,
        &format!("shop.nginx.coalscope.test:{port}"),
        &format!("admin.nginx.coalscope.test:{port}"),
    )
    .unwrap();
    let fix = nginx["fix"].as_str().unwrap();
    assert!(
        fix.starts_with("Safari < 15.1 users see an error page; "),
        "{fix}"
    );
}
