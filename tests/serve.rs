//! `coalscope serve` end to end: the real binary against the embedded lab (started in this
//! process), scraped over loopback; its exposition checked by `promtool`; the assets checked
//! by `promtool`; and a real Prometheus scraping it until the misdirected-pair alert fires.
//!
//! promtool / prometheus missing: those checks are skipped with a loud message, unless
//! COALSCOPE_REQUIRE_INTEROP=1 (CI), where they fail.

// Test code: a failed expectation is a failed test, said where it happened.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use coalscope::lab::ca::{Issued, Leaf};
use coalscope::lab::{Lab, LabOptions};
use coalscope::testing::net::Pki;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

const MISDIRECTED: (&str, &str) = ("shop.nginx.coalscope.test", "admin.nginx.coalscope.test");
const OK: (&str, &str) = ("admin.nginx.coalscope.test", "shop.nginx.coalscope.test");

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets")
}

/// The path of `tool` when it is installed; None (after saying so in one line) when it is not
/// and interop is not required; a panic when it is required (`common::interop_available`).
fn interop_tool(tool: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    });
    let missing: &[&str] = if found.is_some() { &[] } else { &[tool] };
    if !common::interop_available(
        tool,
        missing,
        "apt-get install -y --no-install-recommends prometheus",
    ) {
        return None;
    }
    found
}

/// A running `coalscope serve`: killed on drop if still running.
struct Serve {
    child: Child,
    addr: SocketAddr,
    stderr: tokio::task::JoinHandle<String>,
}

impl Serve {
    async fn start(lab: &Lab, extra: &[&str]) -> Serve {
        Serve::start_on(lab, &lab.watchfile, extra).await
    }

    async fn start_on(lab: &Lab, watchfile: &Path, extra: &[&str]) -> Serve {
        let mut args = common::lab_args("serve", lab, watchfile);
        // `common::serve::spawn` says `serve` itself.
        args.remove(0);
        args.extend(
            [
                "--interval",
                "1s",
                "--window",
                "60s",
                "--timeout",
                "1s",
                "--max-rps",
                "0",
                "--listen",
                "127.0.0.1:0",
            ]
            .iter()
            .chain(extra)
            .map(|a| a.to_string()),
        );
        let common::serve::ServeProcess { child, addr, stderr } = common::serve::spawn(&args).await;
        Serve { child, addr, stderr }
    }

    async fn get(&self, path: &str, accept: Option<&str>) -> Reply {
        http_get(self.addr, path, accept).await
    }

    async fn metrics(&self) -> String {
        let r = self.get("/metrics", None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    /// Scrape until `ok` holds for the exposition (bounded).
    async fn metrics_until(&self, what: &str, ok: impl Fn(&Exposition) -> bool) -> Exposition {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.metrics().await;
            let e = Exposition::parse(&text);
            if ok(&e) {
                return e;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; last exposition:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// A minimal HTTP/1.1 GET over loopback (Connection: close).
async fn http_get(addr: SocketAddr, path: &str, accept: Option<&str>) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    exchange(stream, addr, path, &accept)
        .await
        .expect("an HTTP answer")
}

/// One GET with `extra` header lines on `stream` (Connection: close); Err when the connection
/// ends without an answer (a refused TLS client, say).
async fn exchange<S>(mut stream: S, addr: SocketAddr, path: &str, extra: &str) -> Result<Reply, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .map_err(|_| "no answer in time".to_string())?
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8(raw).map_err(|e| format!("not UTF-8: {e}"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body = if chunked { dechunk(body) } else { body.to_string() };
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// GET `path` asking for gzip, as Prometheus does: (Content-Encoding, Vary, the body
/// decompressed, its size on the wire).
async fn gzip_get(addr: SocketAddr, path: &str) -> (String, String, String, usize) {
    use std::io::Read;
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("an answer in time")
        .unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a head");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let body = &raw[split + 4..];
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
            .unwrap_or_default()
    };
    let mut text = String::new();
    if header("content-encoding") == "gzip" {
        flate2::read::GzDecoder::new(body)
            .read_to_string(&mut text)
            .expect("a gzip body");
    }
    (header("content-encoding"), header("vary"), text, body.len())
}

/// The body of a `Transfer-Encoding: chunked` response.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("chunk size line");
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).expect("chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&after[..size]);
        rest = after[size..].strip_prefix("\r\n").expect("chunk end");
    }
}

/// Samples of a Prometheus text exposition: name → [(labels, value)].
struct Exposition {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut samples = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("value of {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, parse_labels(rest.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            samples.push((name.to_string(), labels, value));
        }
        Exposition { samples }
    }

    fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (&'a BTreeMap<String, String>, f64)> + 'a {
        self.samples
            .iter()
            .filter(move |(n, _, _)| n == name)
            .map(|(_, l, v)| (l, *v))
    }

    fn value(&self, name: &str) -> Option<f64> {
        self.series(name).next().map(|(_, v)| v)
    }

    /// Sum of a pair's per-address series (origin/target given without the port).
    fn pair_sum(&self, name: &str, pair: (&str, &str)) -> Option<f64> {
        let values: Vec<f64> = self
            .series(name)
            .filter(|(l, _)| {
                l.get("origin")
                    .is_some_and(|o| o.starts_with(&format!("{}:", pair.0)))
                    && l.get("target")
                        .is_some_and(|t| t.starts_with(&format!("{}:", pair.1)))
            })
            .map(|(_, v)| v)
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }
}

/// `a="x",b="y"` (values without escapes, as the lab's names need none).
fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some((key, after)) = rest.split_once("=\"") {
        let end = after.find('"').expect("closing quote");
        out.insert(key.trim_start_matches(',').to_string(), after[..end].to_string());
        rest = &after[end + 1..];
    }
    out
}

async fn promtool_check_metrics(promtool: &Path, text: &str) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn promtool");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(text.as_bytes()).await.expect("feed promtool");
    drop(stdin);
    let out = child.wait_with_output().await.expect("promtool output");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics refused the exposition:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn send_signal(child: &Child, signal: &str) {
    let pid = child.id().expect("child still running");
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

async fn start_lab() -> Lab {
    Lab::start(LabOptions::default()).await.expect("lab starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exports_the_lab_and_stops_on_sigterm() {
    let lab = start_lab().await;
    let mut serve = Serve::start(&lab, &["--vantage", "lab-east"]).await;
    // The capped exporter watches a copy of the lab's watch-file, edited below.
    let dir = tempfile::tempdir().unwrap();
    let watchfile = dir.path().join("hosts.watch");
    let lab_list = std::fs::read_to_string(&lab.watchfile).unwrap();
    std::fs::write(&watchfile, &lab_list).unwrap();
    let capped = Serve::start_on(&lab, &watchfile, &["--max-pairs", "3"]).await;

    // The 421 counters grow for the misdirected pair and stay zero for the ok pair.
    let first = serve
        .metrics_until("probes of both nginx pairs", |e| {
            e.pair_sum("coalscope_pair_probes_total", MISDIRECTED)
                .unwrap_or(0.0)
                > 0.0
                && e.pair_sum("coalscope_pair_probes_total", OK).unwrap_or(0.0) > 0.0
        })
        .await;
    let m1 = first
        .pair_sum("coalscope_pair_misdirected_total", MISDIRECTED)
        .unwrap();
    assert!(m1 > 0.0);
    let later = serve
        .metrics_until("more 421s for the misdirected pair", |e| {
            e.pair_sum("coalscope_pair_misdirected_total", MISDIRECTED)
                .unwrap_or(0.0)
                > m1
        })
        .await;
    assert_eq!(
        later.pair_sum("coalscope_pair_misdirected_total", OK),
        Some(0.0),
        "the ok pair got 421s"
    );
    assert!(later.pair_sum("coalscope_pair_probes_total", OK).unwrap() > 0.0);
    // A scraper that takes gzip (Prometheus does) gets the same exposition, compressed; one
    // that does not gets it as it is.
    let (coding, vary, text, wire) = gzip_get(serve.addr, "/metrics").await;
    assert_eq!((coding.as_str(), vary.as_str()), ("gzip", "accept-encoding"));
    let unzipped = Exposition::parse(&text);
    assert!(unzipped.pair_sum("coalscope_pair_probes_total", OK).unwrap() > 0.0);
    assert!(wire < text.len() / 3, "{wire} bytes for {}", text.len());
    let (coding, _, json, _) = gzip_get(serve.addr, "/api/snapshot").await;
    assert_eq!(coding, "gzip");
    let snapshot: serde_json::Value = serde_json::from_str(&json).expect("the snapshot, unzipped");
    assert!(snapshot["pairs"].as_array().is_some_and(|p| !p.is_empty()));
    let plain = serve.get("/metrics", None).await;
    assert_eq!(plain.headers.get("content-encoding"), None);
    // Refusals of every kind: here all 421s, so at least the 421s of the same scrape.
    assert!(
        later
            .pair_sum("coalscope_pair_refused_total", MISDIRECTED)
            .unwrap_or(0.0)
            >= later
                .pair_sum("coalscope_pair_misdirected_total", MISDIRECTED)
                .unwrap_or(1.0),
        "refusals count the 421s"
    );
    assert_eq!(later.pair_sum("coalscope_pair_refused_total", OK), Some(0.0));
    let state = |e: &Exposition, pair: (&str, &str), verdict: &str| {
        e.series("coalscope_pair_verdict")
            .find(|(l, _)| {
                l["origin"].starts_with(pair.0) && l["target"].starts_with(pair.1) && l["verdict"] == verdict
            })
            .map(|(_, v)| v)
    };
    assert_eq!(state(&later, MISDIRECTED, "misdirected"), Some(1.0));
    assert_eq!(state(&later, MISDIRECTED, "ok"), Some(0.0));
    assert_eq!(state(&later, OK, "ok"), Some(1.0));
    // Exactly one verdict is set per exported pair.
    let mut set: BTreeMap<(String, String), f64> = BTreeMap::new();
    for (l, v) in later.series("coalscope_pair_verdict") {
        *set.entry((l["origin"].clone(), l["target"].clone())).or_default() += v;
    }
    assert!(!set.is_empty() && set.values().all(|&n| n == 1.0), "{set:?}");
    // Host, build, reload and summary series are there.
    assert_eq!(later.value("coalscope_build_info"), Some(1.0));
    assert_eq!(later.value("coalscope_watchfile_reload_success"), Some(1.0));
    assert!(later.value("coalscope_pair_coverage_ratio").is_some());
    assert!(later.value("coalscope_cert_expiry_timestamp_seconds").unwrap() > 1.7e9);
    // The lab's expired and untrusted certificates.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let expired = |l: &BTreeMap<String, String>| l["host"].starts_with("expired.certs.");
    assert!(later
        .series("coalscope_cert_expiry_timestamp_seconds")
        .any(|(l, v)| expired(l) && v < now));
    assert!(later
        .series("coalscope_cert_trusted")
        .any(|(l, v)| expired(l) && v == 0.0));
    // Every exported certificate covers its host (no lab site serves a wrong name). The series
    // must be there for that to say anything: the nginx hosts' among them.
    let covers: Vec<_> = later.series("coalscope_cert_covers_host").collect();
    for host in [MISDIRECTED.0, MISDIRECTED.1] {
        assert!(
            covers.iter().any(|(l, _)| l["host"].starts_with(host)),
            "no coalscope_cert_covers_host series for {host}: {covers:?}"
        );
    }
    assert!(covers.iter().all(|&(_, v)| v == 1.0), "{covers:?}");
    assert!(later
        .series("coalscope_host_finding")
        .any(|(l, v)| expired(l) && l["kind"] == "cert-invalid" && v == 1.0));
    assert!(later
        .series("coalscope_probe_phase_duration_seconds_count")
        .any(|(l, v)| l["phase"] == "tls" && v > 0.0));
    assert_eq!(later.value("coalscope_pairs_dropped"), Some(0.0));

    // Every series carries the vantage.
    let text = serve.metrics().await;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.contains("vantage=\"lab-east\""), "no vantage: {line}");
    }
    // promtool accepts the exposition.
    if let Some(promtool) = interop_tool("promtool") {
        promtool_check_metrics(&promtool, &text).await;
        promtool_check_metrics(&promtool, &capped.metrics().await).await;
    }

    // OpenMetrics when asked for.
    let om = serve
        .get(
            "/metrics",
            Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
        )
        .await;
    assert_eq!(om.status, 200);
    assert!(om.headers["content-type"].starts_with("application/openmetrics-text"));
    assert!(om.body.ends_with("# EOF\n"));
    assert!(om.body.contains("# TYPE coalscope_pair_probes counter"));
    let plain = serve.get("/metrics", Some("text/plain")).await;
    assert!(plain.headers["content-type"].starts_with("text/plain; version=0.0.4"));
    assert!(!plain.body.contains("# EOF"));

    // The snapshot follows the contract's schema; status and health answer.
    let snap = serve.get("/api/snapshot", None).await;
    assert_eq!(snap.status, 200);
    assert!(snap.headers["content-type"].starts_with("application/json"));
    let doc: Value = serde_json::from_str(&snap.body).expect("snapshot JSON");
    common::assert_valid(&doc);
    assert!(doc["pairs"].as_array().is_some_and(|p| p.len() >= 2));
    // `--vantage` names the snapshot too (remote dashboards show it under that name).
    assert_eq!(doc["vantage"], "lab-east");
    let status = serve.get("/api/status", None).await;
    let status: Value = serde_json::from_str(&status.body).expect("status JSON");
    assert_eq!(status["vantage"], "lab-east");
    assert_eq!(status["hosts"], doc["hosts"].as_array().unwrap().len());
    assert!(status["last_reload"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(serve.get("/healthz", None).await.status, 200);
    assert_eq!(serve.get("/nope", None).await.status, 404);

    // The event log: the contract's rows, oldest first; the lab's problem pairs are verdict
    // events once the first cycle is done. The counters per kind and the stale gauge per host.
    let events = serve.get("/api/events", None).await;
    assert_eq!(events.status, 200);
    assert!(events.headers["content-type"].starts_with("application/json"));
    let events: Value = serde_json::from_str(&events.body).expect("events JSON");
    assert_eq!(events["schema"], "coalscope/1");
    common::assert_valid_against("assets/coalscope-events-1.schema.json", &events);
    let rows = events["events"].as_array().expect("an events array");
    assert!(rows.len() <= 1000);
    let keys = [
        "at", "kind", "host", "address", "origin", "target", "from", "to", "message",
    ];
    for row in rows {
        assert!(keys.iter().all(|k| row.get(*k).is_some()), "{row}");
        if row["kind"] == "verdict" {
            assert!(row["origin"].is_string() && row["to"].is_string(), "{row}");
        }
    }
    let times: Vec<&str> = rows.iter().map(|r| r["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first: {times:?}");
    let text = serve.metrics().await;
    let e = Exposition::parse(&text);
    let kinds: BTreeSet<String> = e
        .series("coalscope_events_total")
        .map(|(labels, _)| labels["kind"].clone())
        .collect();
    let all = [
        "addresses-changed",
        "cert-changed",
        "dns-failed",
        "dns-recovered",
        "dns-stale",
        "verdict",
    ];
    assert_eq!(kinds, all.iter().map(|k| k.to_string()).collect(), "{text}");
    let stale: Vec<f64> = e.series("coalscope_dns_stale").map(|(_, v)| v).collect();
    assert_eq!(stale.len(), doc["hosts"].as_array().unwrap().len());
    assert!(stale.iter().all(|v| *v == 0.0), "the lab's DNS answers");

    // --max-pairs 3: three pairs exported, problem pairs only, and the exporter says so.
    let e = capped
        .metrics_until("the capped exporter to see every pair", |e| {
            e.value("coalscope_pairs").unwrap_or(0.0) >= 20.0
                && e.value("coalscope_pairs_dropped").unwrap_or(0.0) > 0.0
        })
        .await;
    assert_eq!(e.value("coalscope_pairs_exported"), Some(3.0));
    assert_eq!(e.value("coalscope_pairs_max"), Some(3.0));
    assert_eq!(
        e.value("coalscope_pairs_dropped").unwrap() + 3.0,
        e.value("coalscope_pairs").unwrap()
    );
    let exported: BTreeSet<(String, String)> = e
        .series("coalscope_pair_verdict")
        .map(|(l, _)| (l["origin"].clone(), l["target"].clone()))
        .collect();
    assert_eq!(exported.len(), 3, "{exported:?}");
    let problem = ["misdirected", "misrouted", "intermittent", "direct-broken"];
    for (l, v) in e.series("coalscope_pair_verdict") {
        if v == 1.0 {
            assert!(
                problem.contains(&l["verdict"].as_str()),
                "non-problem pair exported: {l:?}"
            );
        }
    }
    assert!(!e.samples.iter().any(|(_, l, _)| l.contains_key("vantage")));

    // Hot reload: a broken edit keeps the last good list and says so; a good one applies.
    let hosts = e.value("coalscope_hosts").unwrap();
    std::fs::write(&watchfile, format!("{lab_list}\nnot a host name!\n")).unwrap();
    let e = capped
        .metrics_until("the broken edit to show", |e| {
            e.value("coalscope_watchfile_reload_success") == Some(0.0)
        })
        .await;
    assert_eq!(e.value("coalscope_hosts"), Some(hosts));
    let status: Value = serde_json::from_str(&capped.get("/api/status", None).await.body).unwrap();
    assert!(
        status["reload_error"]
            .as_str()
            .is_some_and(|m| m.contains("hosts.watch:")),
        "{status}"
    );
    let nginx: String = lab_list
        .lines()
        .filter(|l| l.contains(".nginx."))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&watchfile, nginx).unwrap();
    capped
        .metrics_until("the reduced list", |e| {
            e.value("coalscope_watchfile_reload_success") == Some(1.0)
                && e.value("coalscope_hosts") == Some(2.0)
                && e.value("coalscope_pairs_dropped") == Some(0.0)
        })
        .await;

    // SIGTERM: a clean exit, saying why.
    send_signal(&serve.child, "-TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), serve.child.wait())
        .await
        .expect("serve exits after SIGTERM")
        .expect("wait");
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let stderr = serve.stderr.await.unwrap();
    assert!(stderr.contains("SIGTERM, shutting down"), "{stderr}");
    // Ctrl-C (SIGINT) too.
    let mut capped = capped;
    send_signal(&capped.child, "-INT");
    let status = tokio::time::timeout(Duration::from_secs(10), capped.child.wait())
        .await
        .expect("serve exits after SIGINT")
        .expect("wait");
    assert!(status.success(), "exit status after SIGINT: {status:?}");
    assert!(capped
        .stderr
        .await
        .unwrap()
        .contains("interrupted, shutting down"));
    lab.shutdown().await;
}

#[tokio::test]
async fn a_bad_listen_address_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let watchfile = dir.path().join("hosts.watch");
    std::fs::write(&watchfile, "a.example\n").unwrap();
    let wf = watchfile.display().to_string();

    let out = common::run(&["serve", &wf, "--listen", "nope"], None).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"nope\"") && err.contains("IP:PORT"), "{err}");

    // A port already taken: the error names the address.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = common::run(&["serve", &wf, "--listen", &addr, "--dns", "127.0.0.1:9"], None).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

#[tokio::test]
async fn promtool_accepts_the_rules_config_and_rule_tests() {
    let Some(promtool) = interop_tool("promtool") else {
        return;
    };
    let dir = assets().join("prometheus");
    for args in [
        vec!["check", "rules", "coalscope-rules.yml"],
        vec!["check", "config", "prometheus.yml"],
        vec!["test", "rules", "coalscope-rules.test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(&args)
            .current_dir(&dir)
            .output()
            .await
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every `coalscope_…` metric the rules and the dashboard query is one the exporter writes
/// (or a recording rule of the rules file).
#[tokio::test]
async fn rules_and_dashboard_query_only_exported_metrics() {
    use coalscope::engine::snapshot::LiveView;
    use coalscope::serve::metrics::{Exporter, ExporterOptions, Format};
    // An exporter fed one synthetic view writes every family (names do not depend on data,
    // families without series are left out, so feed a lab-like snapshot from a real check).
    let lab = start_lab().await;
    let out = common::check_lab(&lab, &["--rounds", "1", "--timeout", "1s", "--format", "json"]).await;
    lab.shutdown().await;
    let report = serde_json::from_slice(&out.stdout).expect("check JSON");
    let exporter = Exporter::new(ExporterOptions {
        vantage: Some("x".into()),
        max_pairs: 100,
        window: Duration::from_secs(60),
    });
    let mut view = LiveView {
        report,
        ..LiveView::default()
    };
    view.status.last_reload = coalscope::engine::snapshot::Timestamp::parse("2026-11-28T02:00:00Z");
    exporter.update(std::sync::Arc::new(view), std::time::Instant::now());
    let text = exporter.encode(Format::Prometheus);
    let mut known: BTreeSet<String> = Exposition::parse(&text)
        .samples
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    let rules = std::fs::read_to_string(assets().join("prometheus/coalscope-rules.yml")).unwrap();
    for line in rules.lines() {
        if let Some(name) = line.trim().strip_prefix("- record:") {
            known.insert(name.trim().to_string());
        }
    }
    let dashboard = std::fs::read_to_string(assets().join("grafana/coalscope.json")).unwrap();
    let _: Value = serde_json::from_str(&dashboard).expect("dashboard is JSON");
    for (file, text) in [("rules", &rules), ("dashboard", &dashboard)] {
        let used = metric_names(text);
        assert!(!used.is_empty(), "{file} queries no coalscope metric");
        for name in used {
            assert!(known.contains(&name), "{file} uses {name}, which is not exported");
        }
    }
}

/// `coalscope_…` and `coalscope:…` names in a text, without the histogram suffixes' base.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("coalscope") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_' || bytes[end] == b':')
        {
            end += 1;
        }
        let word = &text[start..end];
        let before_ok = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let prefixed = word.starts_with("coalscope_") || word.starts_with("coalscope:");
        if before_ok && prefixed && word.len() > "coalscope_".len() && !word.ends_with(':') {
            out.insert(word.to_string());
        }
        i = end.max(start + 1);
    }
    out
}

/// A Prometheus server, killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
}

impl Prometheus {
    /// Prometheus on a free loopback port with `dir/prometheus.yml`, its data in `dir/data`.
    fn start(binary: &Path, dir: &Path) -> Prometheus {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start prometheus");
        Prometheus { child, addr }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_fires_the_misdirected_alert() {
    let Some(prometheus) = interop_tool("prometheus") else {
        return;
    };
    let lab = start_lab().await;
    let serve = Serve::start(&lab, &["--vantage", "lab-west"]).await;

    // The assets' rules, with `for:` shortened so the test does not wait minutes.
    let dir = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(assets().join("prometheus/coalscope-rules.yml")).unwrap();
    let rules: String = rules
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for:") {
            Some(_) => format!("{}for: 0s", &l[..l.len() - l.trim_start().len()]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join("coalscope-rules.yml"), rules).unwrap();
    // The assets' scrape config itself, with every interval at 1s (and the timeout under it)
    // and the example targets replaced by this exporter.
    let config = std::fs::read_to_string(assets().join("prometheus/prometheus.yml")).unwrap();
    let mut shipped = String::new();
    let mut in_targets = false;
    for line in config.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if in_targets && trimmed.starts_with("- ") {
            continue;
        }
        in_targets = false;
        let key = trimmed.split(':').next().unwrap_or("");
        match key {
            "scrape_interval" | "evaluation_interval" => shipped.push_str(&format!("{indent}{key}: 1s\n")),
            "scrape_timeout" => shipped.push_str(&format!("{indent}{key}: 900ms\n")),
            "- targets" => {
                in_targets = true;
                shipped.push_str(&format!("{indent}- targets: ['{}']\n", serve.addr));
            }
            _ => shipped.push_str(&format!("{line}\n")),
        }
    }
    assert!(shipped.contains(&serve.addr.to_string()), "{shipped}");
    std::fs::write(dir.path().join("prometheus.yml"), &shipped).unwrap();
    let prom = Prometheus::start(&prometheus, dir.path());

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    loop {
        if tokio::time::Instant::now() > deadline {
            panic!("the misdirected-pair alert did not fire in time; last /api/v1/alerts: {last}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(stream) = tokio::net::TcpStream::connect(prom.addr).await else {
            continue;
        };
        drop(stream);
        let reply = http_get(prom.addr, "/api/v1/alerts", None).await;
        last = reply.body.clone();
        let Ok(doc) = serde_json::from_str::<Value>(&reply.body) else {
            continue;
        };
        let firing = doc["data"]["alerts"].as_array().is_some_and(|alerts| {
            alerts.iter().any(|a| {
                a["labels"]["alertname"] == "CoalscopePairMisdirected"
                    && a["state"] == "firing"
                    && a["labels"]["vantage"] == "lab-west"
                    && a["labels"]["origin"]
                        .as_str()
                        .is_some_and(|o| o.starts_with(MISDIRECTED.0))
                    && a["labels"]["target"]
                        .as_str()
                        .is_some_and(|t| t.starts_with(MISDIRECTED.1))
            })
        });
        if firing {
            break;
        }
    }
    // The series is queryable too, and no alert fires for the ok pair.
    let q = http_get(
        prom.addr,
        "/api/v1/query?query=coalscope_pair_misdirected_total",
        None,
    )
    .await;
    let doc: Value = serde_json::from_str(&q.body).expect("query JSON");
    assert_eq!(doc["status"], "success");
    assert!(doc["data"]["result"].as_array().is_some_and(|r| !r.is_empty()));
    let alerts: Value = serde_json::from_str(&last).unwrap();
    assert!(!alerts["data"]["alerts"].as_array().unwrap().iter().any(|a| {
        a["labels"]["alertname"] == "CoalscopePairMisdirected"
            && a["labels"]["origin"]
                .as_str()
                .is_some_and(|o| o.starts_with(OK.0))
            && a["labels"]["target"]
                .as_str()
                .is_some_and(|t| t.starts_with(OK.1))
    }));
    drop(prom);
    drop(serve);
    lab.shutdown().await;
}

/// A client's view of the TLS exporter: trusts `ca`, shows `client` when given.
async fn https_get(
    addr: SocketAddr,
    path: &str,
    login: Option<(&str, &str)>,
    client: Option<&Issued>,
    ca: &Pki,
) -> Result<Reply, String> {
    use base64::Engine;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.ca_der()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(c) => builder
            .with_client_auth_cert(c.chain.clone(), c.key_der())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    let tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| format!("handshake: {e}"))?;
    let extra = login
        .map(|(u, p)| {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            format!("Authorization: Basic {token}\r\n")
        })
        .unwrap_or_default();
    exchange(tls, addr, path, &extra).await
}

/// Who may read the exporter: `--web-config` in the exporter-toolkit format with TLS, required
/// client certificates (with allowed SANs), basic auth and a response header. The right scraper
/// reads it (a real Prometheus too); a wrong password, no password, plain HTTP, a certificate
/// from another CA, no certificate, and a certificate with another SAN are all refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_config_lets_in_only_the_right_scrapers() {
    let lab = start_lab().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = Pki::new("exporter CA");
    let server = pki
        .ca()
        .issue(&Leaf::for_names(&["127.0.0.1", "localhost"]).unwrap())
        .unwrap();
    let client_leaf = |name: &str| Leaf::for_names(&[name]).unwrap().for_clients();
    let scraper = pki.ca().issue(&client_leaf("prometheus.scraper")).unwrap();
    let other_san = pki.ca().issue(&client_leaf("someone.else")).unwrap();
    let stranger_ca = Pki::new("another CA");
    let stranger = stranger_ca
        .ca()
        .issue(&client_leaf("prometheus.scraper"))
        .unwrap();
    for (file, text) in [
        ("server.crt", server.pem.clone()),
        ("server.key", server.key_pem()),
        ("ca.crt", pki.ca_pem()),
        ("client.crt", scraper.pem.clone()),
        ("client.key", scraper.key_pem()),
        ("stranger.crt", stranger.pem.clone()),
        ("stranger.key", stranger.key_pem()),
    ] {
        std::fs::write(d.join(file), text).unwrap();
    }
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let web = format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: [prometheus.scraper]\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\nbasic_auth_users:\n  prom: {hash}\n"
    );
    std::fs::write(d.join("web.yml"), web).unwrap();
    let web_path = d.join("web.yml").display().to_string();
    let serve = Serve::start(&lab, &["--web-config", &web_path]).await;
    let addr = serve.addr;

    let ok = https_get(addr, "/metrics", Some(("prom", "s3cret")), Some(&scraper), &pki)
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("coalscope_"), "{}", ok.body);
    assert_eq!(
        ok.headers.get("x-content-type-options").map(String::as_str),
        Some("nosniff")
    );

    for login in [Some(("prom", "wrong")), Some(("nobody", "s3cret")), None] {
        let r = https_get(addr, "/api/snapshot", login, Some(&scraper), &pki)
            .await
            .unwrap();
        assert_eq!(r.status, 401, "{login:?}: {}", r.body);
        assert!(r
            .headers
            .get("www-authenticate")
            .is_some_and(|v| v.starts_with("Basic")));
        assert!(!r.body.contains("coalscope.test"), "{}", r.body);
    }
    let plain = http_get(addr, "/metrics", None).await;
    assert_eq!(plain.status, 400);
    assert!(
        plain.body.contains("HTTP request to an HTTPS server"),
        "{}",
        plain.body
    );
    for (what, client, ca) in [
        ("a certificate from another CA", Some(&stranger), &pki),
        ("no certificate", None, &pki),
        ("a certificate whose SAN is not allowed", Some(&other_san), &pki),
    ] {
        let r = https_get(addr, "/metrics", Some(("prom", "s3cret")), client, ca).await;
        assert!(r.is_err(), "{what} was let in: {:?}", r.map(|r| r.status));
    }

    // A real Prometheus: the right scraper is up, the wrong ones are down.
    if let Some(prometheus) = interop_tool("prometheus") {
        let job = |name: &str, tls: &str, auth: &str| {
            format!(
                "  - job_name: {name}\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n{tls}    {auth}\n    static_configs:\n      - targets: ['{addr}']\n",
                ca = d.join("ca.crt").display(),
            )
        };
        let cert = |c: &str| {
            format!(
                "      cert_file: {}\n      key_file: {}\n",
                d.join(format!("{c}.crt")).display(),
                d.join(format!("{c}.key")).display()
            )
        };
        let right = "basic_auth: {username: prom, password: s3cret}";
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n{}{}{}{}",
            job("right", &cert("client"), right),
            job(
                "wrong_password",
                &cert("client"),
                "basic_auth: {username: prom, password: nope}"
            ),
            job("no_client_cert", "", right),
            job("stranger_cert", &cert("stranger"), right),
        );
        std::fs::write(d.join("prometheus.yml"), &config).unwrap();
        let prom = Prometheus::start(&prometheus, d);
        let want = [
            ("right", 1.0),
            ("wrong_password", 0.0),
            ("no_client_cert", 0.0),
            ("stranger_cert", 0.0),
        ];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "Prometheus did not see {want:?} in time; last /api/v1/query?query=up: {last}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            if tokio::net::TcpStream::connect(prom.addr).await.is_err() {
                continue;
            }
            let reply = http_get(prom.addr, "/api/v1/query?query=up", None).await;
            last = reply.body.clone();
            let Ok(doc) = serde_json::from_str::<Value>(&reply.body) else {
                continue;
            };
            let ups: BTreeMap<String, f64> = doc["data"]["result"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| {
                    let job = r["metric"]["job"].as_str()?.to_string();
                    let v = r["value"][1].as_str()?.parse().ok()?;
                    Some((job, v))
                })
                .collect();
            if want.iter().all(|(job, v)| ups.get(*job) == Some(v)) {
                break;
            }
        }
        drop(prom);
    }
    drop(serve);
    lab.shutdown().await;
}

/// Abuse of the exporter's port: idle connections beyond the per-address cap are closed at
/// once and the held ones do not starve a scraper from another address; a megabyte of
/// headers gets 431, another method 405, an unknown path 404, and the exporter goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_port_under_abuse_keeps_serving_scrapers() {
    use std::io::Read;
    let lab = start_lab().await;
    let serve = Serve::start(&lab, &[]).await;
    let addr = serve.addr;

    // 200 idle connections from 127.0.0.1, none sending a byte.
    let idle: Vec<std::net::TcpStream> = (0..200)
        .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
        .collect();
    let open = |conns: &[std::net::TcpStream]| {
        conns
            .iter()
            .filter(|c| {
                c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                let mut b = [0u8; 1];
                // Open: the read times out; closed by the exporter: end of file (or a reset).
                matches!((&**c).read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut)
            })
            .count()
    };
    // Give the exporter a moment to accept them all, then count: 32 held, the rest closed.
    // (Each count takes 20 ms per held connection, well inside the 10 s the exporter gives a
    // connection to send its request.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = tokio::task::block_in_place(|| open(&idle));
    assert_eq!(held, 32, "connections held open from one address");

    // A scraper from another address gets in while those are held.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = socket.connect(addr).await.expect("connect from 127.0.0.2");
    let r = exchange(stream, addr, "/metrics", "").await.expect("scrape");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("coalscope_"), "{}", r.body);
    let still = tokio::task::block_in_place(|| open(&idle));
    assert_eq!(
        still, 32,
        "the idle connections were still held during the scrape"
    );
    drop(idle);

    // A megabyte of headers, another method, an unknown path.
    let big = format!("X-Junk: {}\r\n", "a".repeat(1 << 20));
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let r = exchange(stream, addr, "/metrics", &big).await;
    match r {
        Ok(r) => assert_eq!(r.status, 431, "{}", r.body),
        // The exporter may close before reading the whole megabyte: a reset on our write.
        Err(e) => assert!(e.contains("send") || e.contains("read"), "{e}"),
    }
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /metrics HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 405"), "{raw}");
    assert_eq!(serve.get("/nope", None).await.status, 404);
    // And the exporter is still there.
    assert_eq!(serve.get("/healthz", None).await.status, 200);
    drop(serve);
    lab.shutdown().await;
}
