//! The hostile lab (tests/hostile/): servers and DNS that misbehave in every way a monitored
//! host can, on 127.0.3.x. For each: every probe phase ends within `--timeout`, the host gets
//! a finding naming the failure, nothing panics, bodies and headers are read only up to the
//! caps, and every network string is sanitised in the table (JSON keeps it exactly, escaped).
//! A `check` mixing the hostile lab with the embedded (healthy) lab finishes within a bound
//! computed from `--timeout` and `--rounds`, with every healthy verdict unchanged.

// Test code: a failed expectation is a failed test, said where it happened.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;
#[path = "hostile/mod.rs"]
mod hostile;
#[path = "hostile/watchfile.rs"]
mod watchfile;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coalscope::engine::judge::verdict::Refusal;
use coalscope::engine::probe::direct::{self, DirectProtocol};
use coalscope::engine::probe::dns::{Dns, DnsConfig, MAX_ADDRESSES};
use coalscope::engine::probe::error::{H2Reason, Phase, ProbeError};
use coalscope::engine::probe::h2::{self, BODY_CAP};
use coalscope::engine::probe::tls::{self, TlsSettings};
use coalscope::engine::snapshot::{FindingKind, NotCoalescable, Verdict};
use coalscope::lab::{self, Lab, LabOptions};
use hostile::HostileLab;
use serde_json::Value;

/// The `--timeout` of these tests.
const T: Duration = Duration::from_secs(1);
const T_ARG: &str = "1s";

/// Slack for a loaded 2-core machine on top of a computed bound (a hang detector, not a
/// performance assertion).
const SLACK: Duration = Duration::from_secs(5);

fn settings(lab: &HostileLab) -> TlsSettings {
    TlsSettings::new(Some(&lab.ca_file("")), T).expect("tls settings")
}

/// No character that could move the cursor, recolour, retitle or reorder a terminal.
fn assert_terminal_clean(what: &str, text: &str) {
    for (i, c) in text.char_indices() {
        let bad = (c.is_control() && c != '\n')
            || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(
            !bad,
            "{what}: U+{:04X} at byte {i}: …{}…",
            c as u32,
            text[i.saturating_sub(60)..]
                .chars()
                .take(120)
                .collect::<String>()
                .escape_debug()
        );
    }
}

fn assert_no_panic(out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "a panic:\n{stderr}");
    let code = out.status.code();
    assert!(
        matches!(code, Some(0) | Some(1)),
        "exit status {:?}\nstderr:\n{stderr}",
        out.status
    );
}

fn host_json<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .find(|h| h["host"] == name)
        .unwrap_or_else(|| panic!("{name} missing from the report"))
}

/// The check of the hostile lab and the embedded lab together: bounded, no panic, every
/// hostile host named, every healthy verdict as expected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_mixing_hostile_and_healthy_hosts() {
    let hostile = HostileLab::start().await;
    let healthy = Lab::start(LabOptions::default()).await.expect("lab starts");
    let lab_lines = std::fs::read_to_string(&healthy.watchfile).expect("lab watch-file");
    let watch = hostile.watchfile("mixed.watch", &[], &lab_lines);
    let ca = hostile.ca_file(healthy.ca_pem());
    let dns = hostile.dns.addr.to_string();
    let rounds = 3u32;
    let concurrency = 64usize;
    let mut args: Vec<String> = vec![
        "check".into(),
        watch.display().to_string(),
        "--dns".into(),
        dns,
        "--ca-file".into(),
        ca.display().to_string(),
        "--timeout".into(),
        T_ARG.into(),
        "--rounds".into(),
        rounds.to_string(),
        "--concurrency".into(),
        concurrency.to_string(),
        "--max-rps".into(),
        "0".into(),
        "--format".into(),
        "json".into(),
    ];
    for r in healthy.resolve_args() {
        args.push("--resolve".into());
        args.push(r);
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let out = common::run(&argv, None).await;
    let took = started.elapsed();
    assert_no_panic(&out);
    let doc = common::stdout_json(&out);
    common::assert_valid(&doc);

    // The bound: DNS (hickory bounds each query by T, the engine the whole lookup by 2T + 1s),
    // then `rounds` rounds plus the HTTP/1.1 fallback round, each at most `waves` batches of
    // `concurrency` jobs, each job at most connect + TLS + request + one more request = 4T;
    // then `rounds` HTTP/3 rounds for the few hosts that advertise it (one batch each: fewer
    // than `concurrency`), each job at most a handshake and two waves of requests = 3T.
    let addresses: usize = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["addresses"].as_array().unwrap().len())
        .sum();
    let waves = (2 * addresses).div_ceil(concurrency) as u32;
    let bound = (2 * T + Duration::from_secs(1)) + (rounds + 1) * waves * 4 * T + rounds * 3 * T + SLACK;
    println!("check of {addresses} addresses took {took:?} (bound {bound:?})");
    assert!(took < bound, "check took {took:?}, bound {bound:?}");

    // Every hostile host: the expected findings, naming the failure.
    let mut failures = Vec::new();
    for h in &hostile.hosts {
        let report = host_json(&doc, &h.name);
        let findings = report["findings"].as_array().unwrap();
        for e in &h.expect {
            let hit = findings.iter().any(|f| {
                f["kind"] == e.kind
                    && e.severity.is_none_or(|s| f["severity"] == s)
                    && (e.any_of.is_empty()
                        || e.any_of
                            .iter()
                            .any(|n| f["message"].as_str().unwrap().contains(n)))
            });
            if !hit {
                failures.push(format!("{}: expected {e:?}, got {findings:?}", h.name));
            }
        }
        if h.expect.is_empty() {
            let errors: Vec<&Value> = findings.iter().filter(|f| f["severity"] == "error").collect();
            if !errors.is_empty() {
                failures.push(format!("{}: unexpected errors {errors:?}", h.name));
            }
        }
    }

    // The certificate cases, exactly.
    let chain = &host_json(&doc, hostile::CHAIN_HOST)["endpoints"][0]["cert"];
    assert_eq!(chain["chain_len"], 100, "{chain}");
    assert_eq!(chain["trusted"], false);
    let sans = &host_json(&doc, hostile::SANS_HOST)["endpoints"][0]["cert"];
    assert_eq!(sans["sans"].as_array().unwrap().len(), 5001);
    assert_eq!(
        (sans["trusted"].as_bool(), sans["covers_host"].as_bool()),
        (Some(true), Some(true))
    );
    let evil = &host_json(&doc, hostile::EVIL_HOST)["endpoints"][0]["cert"];
    let subject = evil["subject"].as_str().unwrap();
    assert!(
        subject.contains("\u{1b}[31mRED") && subject.contains('\u{202e}'),
        "JSON keeps the exact subject: {subject:?}"
    );
    assert!(
        subject.len() > hostile::pki::HUGE,
        "the 10,000-character organisation is kept"
    );
    assert!(evil["issuer"].as_str().unwrap().contains("\u{1b}[2J"));
    assert!(evil["sans"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s.as_str().unwrap().contains('\u{7}')));
    // …and escaped: no raw control, C1 or bidi character on stdout, so that even the raw
    // JSON is safe on a terminal.
    assert_terminal_clean(
        "JSON",
        &String::from_utf8(out.stdout.clone()).expect("UTF-8 JSON"),
    );

    // The endless body was read up to the cap only: an answer, status 200.
    let endless = &host_json(&doc, "endless.body.hostile.test")["endpoints"][0]["direct"];
    assert_eq!(endless["status"], 200, "{endless}");
    // The 421 pair with a 10 MB body: misdirected both ways.
    for (o, t) in [
        (hostile::ORIGIN_421, hostile::TARGET_421),
        (hostile::TARGET_421, hostile::ORIGIN_421),
    ] {
        let port = hostile.host(o).port;
        let p = doc["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["origin"] == format!("{o}:{port}") && p["target"] == format!("{t}:{port}"))
            .unwrap_or_else(|| panic!("pair {o} → {t} missing"));
        assert_eq!(p["verdict"], "misdirected", "{p}");
    }
    let sent = hostile
        .server(hostile::ORIGIN_421)
        .stats
        .bytes_sent
        .load(std::sync::atomic::Ordering::SeqCst);
    let probes_421 = 2 * rounds as u64;
    assert!(
        sent < probes_421 * 2 * 1024 * 1024,
        "a 421 body is not read to its end: {sent} bytes left the server for {probes_421} probes"
    );

    // The QUIC cases: the blackhole sent nothing; the garbage answered; the stalled handshake
    // got as far as the server's Initial packets (the ServerHello) and no further.
    let quic_sent = |name: &str| {
        let sent = hostile.server(name).quic_sent.as_ref().expect("a UDP side");
        sent.load(std::sync::atomic::Ordering::SeqCst)
    };
    assert_eq!(quic_sent("blackhole.quic.hostile.test"), 0);
    assert!(quic_sent("garbage.quic.hostile.test") > 0);
    assert!(quic_sent("stall.quic.hostile.test") > 0);

    // The 500-record name: asked over UDP, truncated, asked again over TCP; capped at 64.
    let many = host_json(&doc, hostile::dns::MANY);
    assert_eq!(many["addresses"].as_array().unwrap().len(), MAX_ADDRESSES);
    assert!(hostile.dns.tcp_queries.load(std::sync::atomic::Ordering::SeqCst) >= 1);

    // Every healthy verdict unaffected. The load-balanced pair alternates per connection, so
    // with 3 rounds it may land on one backend: "ok" or "misdirected" are then right too.
    let key = |name: &str| format!("{name}:{}", healthy.port);
    for e in lab::expectations() {
        let p = doc["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["origin"] == key(e.origin) && p["target"] == key(e.target));
        let Some(p) = p else {
            if e.reason != Some(NotCoalescable::NoSharedAddress) {
                failures.push(format!("lab pair {} → {} missing", e.origin, e.target));
            }
            continue;
        };
        let got = (p["verdict"].as_str().unwrap(), p["reason"].as_str());
        let fine = got == (e.verdict.as_str(), e.reason.map(|r| r.as_str()))
            || (e.verdict == Verdict::Intermittent && matches!(got.0, "ok" | "misdirected"));
        if !fine {
            failures.push(format!(
                "lab pair {} → {}: expected {} {:?}, got {got:?}",
                e.origin, e.target, e.verdict, e.reason
            ));
        }
    }
    for (name, kind) in lab::expected_findings() {
        // The lab's names come from `--resolve` here, which asks DNS nothing else: no HTTPS
        // records, so none of the findings drawn from them.
        if matches!(kind, FindingKind::HttpsRecordNoH2 | FindingKind::H3Advertised) {
            continue;
        }
        let h = host_json(&doc, name);
        if !h["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == kind.as_str())
        {
            failures.push(format!("lab host {name}: finding {kind} missing"));
        }
    }
    // No hostile name appears in a pair with a healthy one.
    for p in doc["pairs"].as_array().unwrap() {
        let (o, t) = (p["origin"].as_str().unwrap(), p["target"].as_str().unwrap());
        if o.contains("hostile.test") != t.contains("hostile.test") {
            failures.push(format!("hostile and healthy hosts paired: {o} → {t}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(out.status.code(), Some(1), "hostile hosts are problems");
    healthy.shutdown().await;

    // The same report on the dashboard: every pane, every row, the details: clean cells.
    let report: coalscope::engine::snapshot::Snapshot =
        serde_json::from_value(doc.clone()).expect("snapshot");
    dashboard_is_clean(report);
}

/// Draw `report` in the dashboard at three sizes, walking every pane, its rows and their
/// details; no cell may hold a control, escape or bidi character.
fn dashboard_is_clean(report: coalscope::engine::snapshot::Snapshot) {
    use coalscope::engine::snapshot::LiveView;
    use coalscope::tui::app::{Action, App};
    use coalscope::tui::render::draw;
    use coalscope::tui::theme::Theme;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    let view = std::sync::Arc::new(LiveView {
        report,
        ..LiveView::default()
    });
    let mut slowest = Duration::ZERO;
    let mut frames = 0;
    for (w, h) in [(80u16, 24u16), (120, 40), (220, 60)] {
        let mut app = App::new(Theme::dark());
        app.apply(Action::Resize(w, h));
        app.set_view(view.clone());
        let mut term = Terminal::new(TestBackend::new(w, h)).expect("terminal");
        let mut frame = |app: &App, what: &str| {
            let started = Instant::now();
            term.draw(|f| draw(&view, app, f.area(), f.buffer_mut()))
                .expect("draw");
            slowest = slowest.max(started.elapsed());
            frames += 1;
            let buf = term.backend().buffer();
            let mut text = String::new();
            for y in 0..buf.area.height {
                for x in 0..buf.area.width {
                    text.push_str(buf[(x, y)].symbol());
                }
                text.push('\n');
            }
            assert_terminal_clean(&format!("dashboard {w}x{h} {what}"), &text);
        };
        let mut steps = vec![Action::Home];
        for _ in 0..6 {
            for _ in 0..30 {
                steps.push(Action::Down);
            }
            steps.extend([Action::Enter, Action::Back, Action::NextPane]);
        }
        steps.extend([Action::ToggleMatrix, Action::ToggleMatrix, Action::ToggleHelp]);
        for step in steps {
            app.apply(step);
            frame(&app, &format!("after {step:?}"));
        }
    }
    println!("dashboard: {frames} frames of the hostile report, slowest {slowest:?}");
}

/// The table shows the evil certificate's strings, the 421 server's header and the failures
/// with every control, escape and bidi character replaced; stderr too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_output_is_sanitised() {
    let hostile = HostileLab::start().await;
    let watch = hostile.watchfile(
        "evil.watch",
        &[
            hostile::EVIL_HOST,
            hostile::ORIGIN_421,
            hostile::TARGET_421,
            "garbage.tls.hostile.test",
            "reset.h2.hostile.test",
            hostile::dns::MANY,
        ],
        "",
    );
    let ca = hostile.ca_file("");
    let dns = hostile.dns.addr.to_string();
    let args = [
        "check",
        watch.to_str().unwrap(),
        "--dns",
        &dns,
        "--ca-file",
        ca.to_str().unwrap(),
        "--timeout",
        T_ARG,
        "--rounds",
        "1",
        "--max-rps",
        "0",
    ];
    let out = common::run(&args, None).await;
    assert_no_panic(&out);
    let table = String::from_utf8(out.stdout.clone()).expect("UTF-8 table");
    assert_terminal_clean("table", &table);
    assert_terminal_clean("stderr", &String::from_utf8_lossy(&out.stderr));
    // The evil strings are there, defused, and cut.
    assert!(table.contains("\u{fffd}[31mred"), "{table}");
    assert!(table.contains("does not cover"), "{table}");
    assert!(table.contains("misdirected"), "{table}");
    assert!(table.contains("and 59 more"), "{table}");
    let longest = table.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(
        longest < 4 * hostile::pki::HUGE / 10,
        "a line of {longest} characters"
    );
}

/// Library level: each phase of each probe ends within the timeout and names itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_probe_phase_ends_within_the_timeout() {
    let lab = HostileLab::start().await;
    let settings = settings(&lab);
    // Each phase is bounded by T; a whole probe has at most three (connect, TLS, request).
    let bound = 3 * T + SLACK;
    let timed = |started: Instant, what: &str| {
        let took = started.elapsed();
        println!("{what}: {took:?}");
        assert!(took < bound, "{what} took {took:?}");
    };

    // TLS phase.
    for (name, want) in [
        (
            "silent.tcp.hostile.test",
            ProbeError::Timeout {
                phase: Phase::Tls,
                after: T,
            },
        ),
        (
            "stall.tls.hostile.test",
            ProbeError::Timeout {
                phase: Phase::Tls,
                after: T,
            },
        ),
        (
            "trickle.tls.hostile.test",
            ProbeError::Timeout {
                phase: Phase::Tls,
                after: T,
            },
        ),
        (
            "garbage.tls.hostile.test",
            ProbeError::Tls("received garbage (not TLS)".into()),
        ),
    ] {
        let started = Instant::now();
        let err = tls::connect(&settings, lab.addr(name), name, tls::ALPN_H2_H1)
            .await
            .err();
        timed(started, name);
        assert_eq!(err, Some(want.clone()), "{name}");
        let started = Instant::now();
        let err = direct::request(
            &settings,
            name,
            lab.addr(name).port(),
            "/",
            lab.addr(name).ip(),
            DirectProtocol::Negotiate,
        )
        .await
        .err();
        timed(started, name);
        assert!(
            err.as_ref()
                .is_some_and(|e| e.phase() == Phase::Tls || e.phase() == Phase::Connect),
            "{name}: {err:?}"
        );
    }

    // Request phase: the handshake works, HTTP does not.
    // (name, what the HTTP/2 error names, whether HTTP/1.1 fails too)
    let request_cases: &[(&str, &[&str], bool)] = &[
        ("closed.tls.hostile.test", &["closed", "reset"], true),
        // Over HTTP/1.1 this one answers properly: the fallback tells only h2 is broken.
        ("h1.h2.hostile.test", &[], false),
        ("goaway.h2.hostile.test", &["GOAWAY", "closed"], true),
        ("reset.h2.hostile.test", &["stream reset: REFUSED_STREAM"], true),
        ("zero.h2.hostile.test", &["request timed out after 1s"], true),
        ("noheaders.h2.hostile.test", &["request timed out after 1s"], true),
        (
            "endless1xx.h2.hostile.test",
            &["request timed out after 1s"],
            true,
        ),
    ];
    for (name, any_of, h1_fails) in request_cases {
        let addr = lab.addr(name);
        let started = Instant::now();
        let result = match h2::open(&settings, addr, name).await {
            Ok(opened) => {
                assert_eq!(opened.tls.alpn.as_deref(), Some("h2"), "{name}");
                let conn = opened.conn.expect("h2");
                conn.request(name, addr.port(), "/", T).await.err()
            }
            Err(e) => Some(e),
        };
        timed(started, name);
        let err = result.unwrap_or_else(|| panic!("{name}: the request succeeded"));
        // GOAWAY right after the preface, last_stream_id 0: when the request's stream was
        // opened before the frame arrived, the h2 crate fails it with the server's GOAWAY,
        // and that is a refusal (the request was not processed); when the connection was
        // already gone, it is "connection closed", which is not. (Our own GOAWAY, e.g. for
        // the HTTP/1.1 answer of h1.h2, is no refusal either.)
        if let (ProbeError::GoAway { .. }, &"goaway.h2.hostile.test") = (&err, name) {
            assert_eq!(
                Refusal::of(&Err(err.clone())),
                Some(Refusal::GoAway(H2Reason(0))),
                "{name}: {err:?}"
            );
        }
        let refusal = Refusal::of(&Err(err.clone()));
        match *name {
            "reset.h2.hostile.test" => assert_eq!(
                refusal,
                Some(Refusal::Reset(H2Reason::REFUSED_STREAM)),
                "{name}: {err:?}"
            ),
            "h1.h2.hostile.test" => assert_eq!(refusal, None, "{name}: {err:?}"),
            _ => {}
        }
        let text = err.to_string();
        assert!(matches!(err.phase(), Phase::Request), "{name}: {err:?}");
        assert!(
            any_of.is_empty() || any_of.iter().any(|n| text.contains(n)),
            "{name}: {text}"
        );
        for protocol in [DirectProtocol::Negotiate, DirectProtocol::Http1Only] {
            let started = Instant::now();
            let result = direct::request(&settings, name, addr.port(), "/", addr.ip(), protocol).await;
            timed(started, &format!("{name} direct {protocol:?}"));
            if protocol == DirectProtocol::Negotiate || *h1_fails {
                let err = result
                    .err()
                    .unwrap_or_else(|| panic!("{name} {protocol:?}: the request succeeded"));
                println!("  {protocol:?}: {err}");
            } else {
                assert_eq!(result.map(|a| a.status).ok(), Some(200), "{name} {protocol:?}");
            }
        }
    }

    // The floods, error for error. A megabyte of response headers: the client itself closes
    // the HTTP/2 connection (the h2 crate's abuse limit, GOAWAY ENHANCE_YOUR_CALM) and refuses
    // the HTTP/1.1 head as too large; it never takes the response. PINGs as fast as the socket
    // takes them and never an answer: the request ends by its own timeout, in the request
    // phase, over either protocol (the flood neither starves the timer nor ends the probe
    // early with another error).
    let calm = ProbeError::GoAway {
        reason: H2Reason::ENHANCE_YOUR_CALM,
        by_client: true,
    };
    assert_eq!(
        calm.to_string(),
        "http: connection closed by client (GOAWAY ENHANCE_YOUR_CALM)"
    );
    let timeout = ProbeError::Timeout {
        phase: Phase::Request,
        after: T,
    };
    let floods = [
        (
            "bigheaders.h2.hostile.test",
            [
                calm.clone(),
                calm,
                ProbeError::Http("response headers too large".into()),
            ],
        ),
        (
            "pingflood.h2.hostile.test",
            [timeout.clone(), timeout.clone(), timeout],
        ),
    ];
    for (name, [over_h2, negotiated, over_h1]) in floods {
        let addr = lab.addr(name);
        let started = Instant::now();
        let opened = h2::open(&settings, addr, name).await.expect("handshake");
        assert_eq!(opened.tls.alpn.as_deref(), Some("h2"), "{name}");
        let conn = opened.conn.expect("h2");
        let err = conn.request(name, addr.port(), "/", T).await.err();
        timed(started, name);
        assert_eq!(err, Some(over_h2), "{name} over HTTP/2");
        for (protocol, want) in [
            (DirectProtocol::Negotiate, negotiated),
            (DirectProtocol::Http1Only, over_h1),
        ] {
            let started = Instant::now();
            let err = direct::request(&settings, name, addr.port(), "/", addr.ip(), protocol)
                .await
                .err();
            timed(started, &format!("{name} direct {protocol:?}"));
            assert_eq!(err, Some(want), "{name} direct {protocol:?}");
        }
    }

    // Bodies: read up to the cap, the rest never.
    for name in ["endless.body.hostile.test", hostile::ORIGIN_421] {
        let addr = lab.addr(name);
        let server = lab.server(name);
        let target = if name == hostile::ORIGIN_421 {
            hostile::TARGET_421
        } else {
            name
        };
        let before = server.stats.bytes_sent.load(std::sync::atomic::Ordering::SeqCst);
        let started = Instant::now();
        let conn = h2::open(&settings, addr, name)
            .await
            .expect("open")
            .conn
            .expect("h2");
        let answer = conn.request(target, addr.port(), "/", T).await.expect("answer");
        timed(started, name);
        assert_eq!(answer.body_len, BODY_CAP, "{name}");
        assert_eq!(answer.status, if name == hostile::ORIGIN_421 { 421 } else { 200 });
        drop(conn);
        tokio::time::sleep(Duration::from_millis(200)).await;
        // HTTP/2 flow control (256 KiB per stream, 1 MiB per connection) bounds what the
        // server could push ahead of the capped read.
        let sent = server.stats.bytes_sent.load(std::sync::atomic::Ordering::SeqCst) - before;
        assert!(
            sent < 2 * 1024 * 1024,
            "{name}: {sent} bytes sent for one capped read"
        );
        for protocol in [DirectProtocol::Negotiate, DirectProtocol::Http1Only] {
            let started = Instant::now();
            let a = direct::request(&settings, name, addr.port(), "/", addr.ip(), protocol)
                .await
                .expect("direct answer");
            timed(started, &format!("{name} direct {protocol:?}"));
            // The 421 server answers its own name directly with 200 and `ok NAME`, read whole.
            let whole = if name == hostile::ORIGIN_421 {
                format!("ok {name}").len()
            } else {
                BODY_CAP
            };
            assert_eq!((a.status, a.body_len), (200, whole), "{name} direct {protocol:?}");
        }
    }
}

/// A refused stream is one request: no retry behind the probe's back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_streams_are_not_retried() {
    let lab = HostileLab::start().await;
    let settings = settings(&lab);
    let name = "reset.h2.hostile.test";
    let addr = lab.addr(name);
    let server = lab.server(name);
    let err = direct::request(
        &settings,
        name,
        addr.port(),
        "/",
        addr.ip(),
        DirectProtocol::Negotiate,
    )
    .await
    .err();
    assert_eq!(
        err,
        Some(ProbeError::Reset {
            reason: H2Reason::REFUSED_STREAM,
            by_client: false
        })
    );
    use std::sync::atomic::Ordering::SeqCst;
    assert_eq!(server.stats.requests.load(SeqCst), 1, "exactly one stream");
    assert_eq!(server.stats.accepted.load(SeqCst), 1, "exactly one connection");
}

/// DNS: SERVFAIL, silence, NXDOMAIN, a CNAME loop, 500 records, each bounded and named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_failures_are_bounded_and_named() {
    let lab = HostileLab::start().await;
    let dns = Dns::new(DnsConfig {
        nameservers: vec![lab.dns.addr],
        overrides: vec![],
        timeout: T,
    })
    .expect("dns");
    let bound = 2 * T + Duration::from_secs(1) + SLACK;
    for (name, want) in [
        (hostile::dns::SERVFAIL, Some("SERVFAIL")),
        (hostile::dns::SILENT, Some("timed out after 1s")),
        (hostile::dns::NXDOMAIN, Some("NXDOMAIN")),
        (hostile::dns::LOOP, None),
    ] {
        let started = Instant::now();
        let answer = dns.resolve(name, 443).await;
        let took = started.elapsed();
        println!("{name}: {took:?} {:?}", answer.error);
        assert!(took < bound, "{name} took {took:?}");
        assert!(answer.addresses.is_empty(), "{name}: {answer:?}");
        let error = answer.error.unwrap_or_else(|| panic!("{name}: no error"));
        if let Some(want) = want {
            assert!(error.contains(want), "{name}: {error}");
        }
        assert!(answer.cnames.len() <= 16);
    }
    use std::sync::atomic::Ordering::SeqCst;
    let (udp, tcp) = (lab.dns.udp_queries.load(SeqCst), lab.dns.tcp_queries.load(SeqCst));
    let answer = dns.resolve(hostile::dns::MANY, 443).await;
    assert_eq!(answer.error, None);
    assert_eq!(answer.addresses.len(), MAX_ADDRESSES);
    assert_eq!(answer.dropped, 500 - MAX_ADDRESSES);
    // Asked over UDP (truncated), then again over TCP.
    assert!(lab.dns.udp_queries.load(SeqCst) > udp, "asked over UDP");
    assert!(lab.dns.tcp_queries.load(SeqCst) > tcp, "TCP fallback");
    let nowhere = dns.resolve(hostile::NOWHERE, 443).await;
    let addr = SocketAddr::new(nowhere.addresses[0], lab.spare_port);
    let err = tls::connect(
        &TlsSettings::new(None, T).unwrap(),
        addr,
        hostile::NOWHERE,
        tls::ALPN_H2_H1,
    )
    .await
    .err();
    assert_eq!(err, Some(ProbeError::Connect("connection refused".into())));
}

/// Every probe closes what it opened, whatever the server did: each hostile server sees as
/// many connections closed as it accepted (a leaked socket per probe would exhaust the file
/// descriptors of a monitor running for weeks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_probe_closes_its_connections() {
    use std::sync::atomic::Ordering::SeqCst;
    let lab = HostileLab::start().await;
    let settings = settings(&lab);
    let names: Vec<String> = lab.servers.keys().cloned().collect();
    let probes = names.iter().map(|name| {
        let (settings, addr) = (settings.clone(), lab.addr(name));
        async move {
            for _ in 0..3 {
                if let Ok(opened) = h2::open(&settings, addr, name).await {
                    if let Some(conn) = opened.conn {
                        let _ = conn.request(name, addr.port(), "/", T).await;
                    }
                }
                for protocol in [DirectProtocol::Negotiate, DirectProtocol::Http1Only] {
                    let _ = direct::request(&settings, name, addr.port(), "/", addr.ip(), protocol).await;
                }
            }
        }
    });
    futures::future::join_all(probes).await;
    // Many at once on the server that allows no stream: whether the client learns the limit
    // before or after it sends its request is a race; both orders must close the socket.
    let zero = "zero.h2.hostile.test";
    let addr = lab.addr(zero);
    let burst = (0..40).map(|_| {
        direct::request(
            &settings,
            zero,
            addr.port(),
            "/",
            addr.ip(),
            DirectProtocol::Negotiate,
        )
    });
    futures::future::join_all(burst).await;
    // Closing is asynchronous on both sides: give it a moment, then compare.
    let deadline = Instant::now() + 3 * T + SLACK;
    let open = |lab: &HostileLab| -> Vec<String> {
        names
            .iter()
            .filter_map(|n| {
                let st = &lab.server(n).stats;
                let (a, c) = (st.accepted.load(SeqCst), st.closed.load(SeqCst));
                (a != c).then(|| format!("{n}: {a} accepted, {c} closed"))
            })
            .collect()
    };
    while !open(&lab).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        open(&lab).is_empty(),
        "connections left open:\n{}",
        open(&lab).join("\n")
    );
}

/// Servers that send ORIGIN frames too big, malformed, on a stream, full of garbage or
/// without end: the probe's own request ends within its timeout, the frames are read within
/// their bounds, and each oddity is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_origin_frames_are_bounded_and_named() {
    use coalscope::engine::probe::frames::{ALTSVC, ORIGIN};
    use coalscope::engine::probe::signals::{FrameAnomaly, MAX_ORIGINS};
    let lab = HostileLab::start().await;
    let settings = settings(&lab);
    let bound = 3 * T + SLACK;
    for name in [
        hostile::ORIGIN_OVERSIZED,
        hostile::ORIGIN_MALFORMED,
        hostile::ORIGIN_ON_STREAM,
        hostile::ORIGIN_GARBAGE,
        hostile::ORIGIN_FLOOD,
    ] {
        let addr = lab.addr(name);
        let started = Instant::now();
        let conn = h2::open(&settings, addr, name)
            .await
            .expect("open")
            .conn
            .expect("h2");
        let answer = conn.request(name, addr.port(), "/", T).await;
        let took = started.elapsed();
        println!("{name}: {took:?} {:?}", answer.as_ref().map(|a| a.status));
        assert!(took < bound, "{name} took {took:?}");
        let signals = conn.signals();
        assert!(signals
            .origin
            .as_ref()
            .is_none_or(|o| o.origins.len() <= MAX_ORIGINS));
        let set = signals.origin.clone().unwrap_or_default();
        match name {
            hostile::ORIGIN_OVERSIZED => {
                // hyper ends the connection (FRAME_SIZE_ERROR); the reader said why.
                assert!(answer.is_err(), "{name}: {answer:?}");
                assert_eq!(
                    signals.anomalies,
                    [FrameAnomaly::Oversized {
                        frame_type: ORIGIN,
                        length: 24_000
                    }]
                );
            }
            hostile::ORIGIN_MALFORMED => {
                assert_eq!(answer.expect(name).status, 200);
                assert_eq!(set.origins, ["https://b.test"]);
                assert_eq!(
                    signals.anomalies,
                    [
                        FrameAnomaly::Malformed { frame_type: ORIGIN },
                        FrameAnomaly::Malformed { frame_type: ALTSVC }
                    ]
                );
            }
            hostile::ORIGIN_ON_STREAM => {
                assert_eq!(answer.expect(name).status, 200);
                assert_eq!(signals.origin, None);
                assert_eq!(signals.anomalies, [FrameAnomaly::OriginOnStream(3)]);
            }
            hostile::ORIGIN_GARBAGE => {
                assert_eq!(answer.expect(name).status, 200);
                assert_eq!(set.origins, ["https://ok.hostile.test"]);
                assert_eq!((set.frames, set.invalid), (2, 5));
            }
            _ => {
                assert_eq!(answer.expect(name).status, 200);
                // Hold the connection while the flood goes on: the capture stays bounded.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let signals = conn.signals();
                let sent = lab
                    .server(name)
                    .stats
                    .bytes_sent
                    .load(std::sync::atomic::Ordering::SeqCst);
                let set = signals.origin.clone().expect("origin set");
                println!(
                    "{name}: {sent} bytes of frames sent, {} ORIGIN frames read",
                    set.frames
                );
                assert!(set.frames > 64, "{set:?}");
                assert_eq!(set.origins.len(), 64 * 2, "the entries of the first 64 frames");
                assert!(signals
                    .anomalies
                    .contains(&FrameAnomaly::Flood { frame_type: ORIGIN }));
            }
        }
    }
}
