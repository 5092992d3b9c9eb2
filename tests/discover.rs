//! `coalscope discover`: the Certificate Transparency client against a fake crt.sh on loopback
//! (fixtures in crt.sh's shape, retries, timeouts, the body cap, HTTPS with a test CA), and
//! the real binary against the embedded lab: which names come out, grouped how, which are left
//! out, and that `coalscope check` accepts the watch-file. Never the internet.
//!
//! `COALSCOPE_UPDATE_GOLDEN=1 cargo test --test discover` rewrites `tests/golden/discover_lab.watch`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use coalscope::discover::crtsh::CtCollector;
use coalscope::discover::ct::{parse_url, CtClient, CtError, CtOptions};
use coalscope::lab::{Lab, LabOptions};
use coalscope::testing::ct::{ct_server, fixture, CtServer, Reply};
use coalscope::testing::net::{no_hang, Pki, Validity};
use regex::Regex;

const NOW: i64 = 1_796_000_000; // 2026-11-29

fn client(server: &CtServer, timeout: Duration, roots: Option<Arc<rustls::RootCertStore>>) -> CtClient {
    let options = CtOptions {
        backoff: Duration::from_millis(20),
        ..CtOptions::new(parse_url(&server.url).unwrap(), timeout)
    };
    CtClient::new(
        options,
        roots.unwrap_or_else(|| Arc::new(rustls::RootCertStore::empty())),
    )
    .unwrap()
}

#[tokio::test]
async fn a_crt_sh_answer_is_read_row_by_row() {
    let server = ct_server(
        vec![("%.example.com", vec![Reply::Json(fixture("example.json"))])],
        None,
    )
    .await;
    let ct = client(&server, Duration::from_secs(10), None);
    let url = ct.query_url("%.example.com");
    let body = no_hang("CT query", ct.get(&url)).await.unwrap();
    let mut collector = CtCollector::new(NOW, false);
    collector
        .add(url.as_str(), &body, &["example.com".to_string()])
        .unwrap();
    let (certs, stats) = collector.finish();
    let names: Vec<Vec<String>> = certs.iter().map(|c| c.names.clone()).collect();
    assert_eq!(
        names,
        vec![
            vec!["example.com", "www.example.com"],
            vec!["example.com"],
            vec!["api.example.com", "shop.example.net"],
            vec!["xn--bcher-kva.example.com"],
        ]
    );
    assert_eq!(certs[1].wildcards, vec!["*.example.com"]);
    assert_eq!((stats.duplicates, stats.expired, stats.malformed), (1, 1, 2));
    // The e-mail certificate names no host (its CN is an organisation): nothing of it is kept.
    assert_eq!((stats.bad_names, stats.unrelated), (1, 1));
    assert_eq!(server.hits("%.example.com"), 1);
}

#[tokio::test]
async fn server_errors_are_retried_until_an_answer() {
    let replies = vec![
        Reply::Status(503),
        Reply::Status(502),
        Reply::Json(fixture("example.json")),
    ];
    let server = ct_server(vec![("example.com", replies)], None).await;
    let ct = client(&server, Duration::from_secs(10), None);
    let body = no_hang("CT query", ct.get(&ct.query_url("example.com")))
        .await
        .unwrap();
    assert!(body.starts_with(b"[{"));
    assert_eq!(server.hits("example.com"), 3);
}

#[tokio::test]
async fn a_server_that_keeps_failing_is_named_with_its_status() {
    let server = ct_server(vec![("example.com", vec![Reply::Status(503)])], None).await;
    let ct = client(&server, Duration::from_secs(10), None);
    let url = ct.query_url("example.com");
    let e = no_hang("CT query", ct.get(&url)).await.unwrap_err();
    assert!(
        matches!(
            e,
            CtError::Status {
                status: 503,
                attempts: 4,
                ..
            }
        ),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains(url.as_str()) && text.contains("HTTP status 503"),
        "{text}"
    );
    assert_eq!(server.hits("example.com"), 4);
    // A client error is not retried.
    let server = ct_server(vec![("example.com", vec![Reply::Status(404)])], None).await;
    let ct = client(&server, Duration::from_secs(10), None);
    let e = no_hang("CT query", ct.get(&ct.query_url("example.com")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            CtError::Status {
                status: 404,
                attempts: 1,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(server.hits("example.com"), 1);
}

#[tokio::test]
async fn a_slow_answer_times_out_is_retried_then_named() {
    let slow = Reply::Slow(
        Duration::from_secs(30),
        Box::new(Reply::Json(fixture("example.json"))),
    );
    let server = ct_server(vec![("example.com", vec![slow])], None).await;
    let ct = client(&server, Duration::from_secs(1), None);
    let url = ct.query_url("example.com");
    let e = no_hang("CT query", ct.get(&url)).await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, CtError::Transport { attempts: 4, .. }) && text.contains("no complete answer within 1s"),
        "{text}"
    );
    assert!(text.contains(url.as_str()), "{text}");
    assert_eq!(server.hits("example.com"), 4);
    // Slow once, then quick: the retry gets it.
    let slow = Reply::Slow(Duration::from_secs(30), Box::new(Reply::Status(200)));
    let server = ct_server(
        vec![("example.com", vec![slow, Reply::Json(fixture("example.json"))])],
        None,
    )
    .await;
    let ct = client(&server, Duration::from_secs(2), None);
    assert!(no_hang("CT query", ct.get(&ct.query_url("example.com")))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_body_over_the_cap_is_refused_without_retry() {
    let server = ct_server(vec![("example.com", vec![Reply::Big(3 * 1024 * 1024)])], None).await;
    let options = CtOptions {
        max_body: 1024 * 1024,
        backoff: Duration::from_millis(20),
        ..CtOptions::new(parse_url(&server.url).unwrap(), Duration::from_secs(10))
    };
    let ct = CtClient::new(options, Arc::new(rustls::RootCertStore::empty())).unwrap();
    let url = ct.query_url("example.com");
    let e = no_hang("CT query", ct.get(&url)).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{url}: the answer is larger than 1 MiB; stopped reading it")
    );
    assert_eq!(server.hits("example.com"), 1);
}

#[tokio::test]
async fn https_with_a_trust_anchor_from_the_ca_file() {
    let pki = Pki::new("coalscope CT test CA");
    let (chain, key) = pki.leaf(&["127.0.0.1"], Validity::Current);
    let server = ct_server(
        vec![("example.com", vec![Reply::Json(fixture("example.json"))])],
        Some((chain, key)),
    )
    .await;
    assert!(server.url.starts_with("https://127.0.0.1:"));
    let roots = pki.settings(Duration::from_secs(5)).roots;
    let ct = client(&server, Duration::from_secs(10), Some(roots));
    let body = no_hang("CT query", ct.get(&ct.query_url("example.com")))
        .await
        .unwrap();
    assert!(body.starts_with(b"[{"));
    // Without the anchor the certificate is refused (and said so), at once.
    let ct = client(&server, Duration::from_secs(10), None);
    let e = no_hang("CT query", ct.get(&ct.query_url("example.com")))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("invalid peer certificate: UnknownIssuer (after 1 attempt)"),
        "{text}"
    );
    assert_eq!(server.hits("example.com"), 1, "TLS errors are not retried");
}

// ------------------------------------------------------------------ the binary, on the lab

/// `discover` of two lab names against the lab, CT from `ct` (a URL, or a file) for the
/// domain coalscope.test, and `extra`.
async fn discover(lab: &Lab, ct: &[&str], extra: &[&str]) -> Output {
    let ca = lab.ca_file.display().to_string();
    discover_from(lab, &["www.good", "shop.nginx"], &ca, ct, extra).await
}

/// `discover` of the lab names `names` (without the zone), trusting the anchors of `ca_file`.
async fn discover_from(lab: &Lab, names: &[&str], ca_file: &str, ct: &[&str], extra: &[&str]) -> Output {
    let names: Vec<String> = names
        .iter()
        .map(|n| format!("{n}.coalscope.test:{}", lab.port))
        .collect();
    let dns = lab.dns.to_string();
    let mut args = vec!["discover"];
    args.extend(names.iter().map(String::as_str));
    // The default timeout: a loaded machine must not turn a slow handshake into a missing name.
    args.extend(["--dns", &dns, "--ca-file", ca_file, "--timeout", "5s"]);
    args.extend(ct);
    args.extend(["--ct-domain", "coalscope.test"]);
    args.extend(extra);
    no_hang("coalscope discover", common::run(&args, None)).await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The watch-file with what changes between runs masked: the lab's port, the CT server's
/// port, the certificates' fingerprints (fresh keys every run).
fn mask(watch: &str, lab: &Lab) -> String {
    let port = Regex::new(&format!(r":{}\b", lab.port)).unwrap();
    let watch = port.replace_all(watch, ":PORT");
    let ct = Regex::new(r"127\.0\.0\.1:\d+/").unwrap();
    let watch = ct.replace_all(&watch, "127.0.0.1:CTPORT/");
    let cert = Regex::new(r"cert [0-9a-f]{12}…").unwrap();
    cert.replace_all(&watch, "cert MASKED…").into_owned()
}

fn entries(watch: &str) -> Vec<String> {
    let list = coalscope::watchlist::parse("discover", watch.as_bytes()).unwrap();
    assert!(list.warnings.is_empty(), "{:?}", list.warnings);
    list.entries.iter().map(|e| e.host.clone()).collect()
}

fn golden(name: &str, got: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("COALSCOPE_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        got,
        want,
        "{} differs (COALSCOPE_UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

/// The lab's names that can coalesce come out grouped by certificate and address; the ones
/// that share nothing, do not resolve or come from an expired certificate do not; `check`
/// accepts the file.
#[tokio::test]
async fn the_lab_discovered_through_a_fake_crt_sh() {
    let lab = Lab::start(LabOptions::default()).await.unwrap();
    let server = ct_server(
        vec![("%.coalscope.test", vec![Reply::Json(fixture("lab.json"))])],
        None,
    )
    .await;
    let out = discover(&lab, &["--ct-url", &server.url], &[]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(server.queries(), vec!["%.coalscope.test", "coalscope.test"]);
    let masked = mask(&stdout, &lab);
    println!("{masked}\n--- stderr ---\n{stderr}");
    golden("discover_lab.watch", &masked);

    let names = entries(&stdout);
    for name in [
        "www.good.coalscope.test",
        "api.good.coalscope.test",
        "admin.nginx.coalscope.test",
        "cdn.multi.coalscope.test",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} missing:\n{stdout}");
    }
    for (name, why) in [
        ("one.split.coalscope.test", "one certificate per name"),
        ("east.geo.coalscope.test", "no shared address"),
        ("www.origin.coalscope.test", "no shared address in DNS"),
        (
            "void.blackhole.coalscope.test",
            "no certificate, nobody at its address",
        ),
        ("ghost.coalscope.test", "does not resolve"),
        ("retired.good.coalscope.test", "does not resolve"),
        ("router.example.net", "outside the domain, resolves nowhere"),
        ("old.nginx.coalscope.test", "expired certificate"),
        ("www.example.org", "unrelated certificate"),
    ] {
        assert!(
            !names.iter().any(|n| n == name),
            "{name} ({why}) printed:\n{stdout}"
        );
    }
    for said in [
        "1 expired certificate left out",
        "4 malformed rows skipped",
        "1 duplicate row collapsed",
        "1 certificate naming no asked domain left out",
        "4 names not resolving, left out: ",
        "ghost.coalscope.test (NXDOMAIN)",
        "1 name without a certificate read: void.blackhole.coalscope.test (tls timed out after 5s)",
        "2 wildcard names stand for no name by themselves",
        "7 names sharing no certificate and address with another, left out (--all lists them)",
    ] {
        assert!(stderr.contains(said), "stderr lacks {said:?}:\n{stderr}");
    }

    // `check` takes the file as it is (0: clean, 1: problems found; never 2).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("discovered.watch");
    std::fs::write(&file, &out.stdout).unwrap();
    let mut args = common::lab_args("check", &lab, &file);
    args.extend(["--rounds", "1", "--timeout", "5s"].map(String::from));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let check = no_hang("coalscope check", common::run(&argv, None)).await;
    assert!(
        matches!(check.status.code(), Some(0 | 1)),
        "check: {}",
        text(&check.stderr)
    );
    lab.shutdown().await;
}

/// `--all` adds the names that share nothing, each with what it serves; `--ct-file` reads a
/// saved answer the same way as the API's.
#[tokio::test]
async fn all_names_from_a_saved_answer() {
    let lab = Lab::start(LabOptions::default()).await.unwrap();
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ct/lab.json");
    let file = file.display().to_string();
    let out = discover(&lab, &["--ct-file", &file], &["--all"]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let alone = stdout
        .split("# sharing nothing")
        .nth(1)
        .unwrap_or_else(|| panic!("no section of names sharing nothing:\n{stdout}"));
    for name in [
        "one.split",
        "two.split",
        "east.geo",
        "west.geo",
        "www.origin",
        "api.origin",
        "void.blackhole",
    ] {
        assert!(
            alone.contains(&format!("{name}.coalscope.test:{}  # ", lab.port)),
            "{name}:\n{stdout}"
        );
    }
    assert!(
        alone.contains("no certificate read (tls timed out after 5s)"),
        "{alone}"
    );
    assert!(
        !stdout.contains("ghost.coalscope.test"),
        "unresolved names are never printed"
    );
    assert!(
        stdout.contains(&format!("# Certificate Transparency: file {file}: ")),
        "{stdout}"
    );
    // Without --ct-domain every certificate of a saved answer counts: www.example.org's too
    // (it then does not resolve at the lab's DNS).
    let (www, dns, ca) = (
        format!("www.good.coalscope.test:{}", lab.port),
        lab.dns.to_string(),
        lab.ca_file.display().to_string(),
    );
    let args = [
        "discover",
        &www,
        "--dns",
        &dns,
        "--ca-file",
        &ca,
        "--ct-file",
        &file,
    ];
    let out = no_hang("coalscope discover", common::run(&args, None)).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("naming no asked domain"), "{stderr}");
    assert!(
        stderr.contains("5 names not resolving") && stderr.contains("www.example.org (REFUSED)"),
        "{stderr}"
    );
    // The grouped part is the same as without --all, whatever the source of the CT answer.
    let grouped = stdout.split("\n# sharing nothing").next().unwrap();
    let want = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/discover_lab.watch"),
    )
    .unwrap();
    let skip_header = |t: &str| t.lines().skip(4).collect::<Vec<_>>().join("\n");
    assert_eq!(skip_header(&mask(grouped, &lab)), skip_header(want.trim_end()));
    lab.shutdown().await;
}

/// The real crt.sh is HTTPS: the binary's CT client trusts the anchors of `--ca-file` (here the
/// lab's CA and the CT server's, in one file) besides the web roots.
#[tokio::test]
async fn the_lab_through_an_https_ct_api_trusted_by_the_ca_file() {
    let lab = Lab::start(LabOptions::default()).await.unwrap();
    let pki = Pki::new("coalscope CT test CA");
    let (chain, key) = pki.leaf(&["127.0.0.1"], Validity::Current);
    let routes = vec![("%.coalscope.test", vec![Reply::Json(fixture("lab.json"))])];
    let server = ct_server(routes, Some((chain, key))).await;
    let dir = tempfile::tempdir().unwrap();
    let both = dir.path().join("anchors.pem");
    std::fs::write(&both, format!("{}{}", lab.ca_pem(), pki.ca_pem())).unwrap();
    let anchors = both.display().to_string();
    let ct = ["--ct-url", server.url.as_str()];
    let out = discover_from(&lab, &["www.good"], &anchors, &ct, &[]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    assert_eq!(server.hits("%.coalscope.test"), 1);
    assert!(
        entries(&stdout).contains(&"cdn.multi.coalscope.test".to_string()),
        "{stdout}"
    );
    // Without the CT server's anchor, its certificate is refused: a warning names the URL.
    let lab_ca = lab.ca_file.display().to_string();
    let out = discover_from(&lab, &["www.good"], &lab_ca, &ct, &["--require-ct"]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}?q=coalscope.test", server.url))
            && stderr.to_lowercase().contains("certificate"),
        "{stderr}"
    );
    lab.shutdown().await;
}

/// When CT fails after its retries, the names from the certificates alone are printed with a
/// warning naming the URL and the status; `--require-ct` makes it an error (2).
#[tokio::test]
async fn a_failing_ct_api_warns_or_fails_on_demand() {
    let lab = Lab::start(LabOptions::default()).await.unwrap();
    let down = vec![Reply::Status(503)];
    let routes = vec![("coalscope.test", down.clone()), ("%.coalscope.test", down)];
    let server = ct_server(routes, None).await;
    let out = discover(&lab, &["--ct-url", &server.url], &[]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: Certificate Transparency: http://127.0.0.1:")
            && stderr.contains(
                "/?q=coalscope.test&output=json&exclude=expired: HTTP status 503 (after 4 attempts)"
            ),
        "{stderr}"
    );
    // The API is down: the second query is not sent.
    assert!(
        stderr.contains("1 more query not sent: the API is down"),
        "{stderr}"
    );
    assert!(
        stdout.contains("1 query FAILED, names from it missing; 1 not asked after that"),
        "{stdout}"
    );
    // Without CT only the NAMEs' certificates speak: nginx's names both; www.good's wildcard
    // names nobody, so good's other names are unknown and www.good shares nothing.
    assert_eq!(
        entries(&stdout),
        vec!["admin.nginx.coalscope.test", "shop.nginx.coalscope.test"]
    );
    assert_eq!(server.hits("coalscope.test"), 4);
    assert_eq!(server.hits("%.coalscope.test"), 0);

    let out = discover(&lab, &["--ct-url", &server.url], &["--require-ct"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("Certificate Transparency could not be read (--require-ct)"));
    lab.shutdown().await;
}

/// Bad input is named and exits 2 before anything is probed.
#[tokio::test]
async fn bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("ct.json");
    std::fs::write(&garbage, "<html>rate limited</html>").unwrap();
    let missing = dir.path().join("missing.json");
    let (missing, garbage) = (missing.display().to_string(), garbage.display().to_string());
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["bad name!", "--no-ct"], "NAME \"bad name!\"".into()),
        (vec!["a.test/path", "--no-ct"], "a path is not part of a name".into()),
        (vec!["a.test:0x", "--no-ct"], "NAME \"a.test:0x\": port".into()),
        (vec!["a.test", "--ct-file", &missing], format!("{missing}: cannot read")),
        (vec!["a.test", "--ct-file", &garbage], format!("{garbage}: not a crt.sh JSON answer")),
        (vec!["a.test", "--ct-url", "ftp://ct.test/"], "\"ftp://ct.test/\"".into()),
        (vec!["a.test", "--ct-domain", "a b"], "--ct-domain \"a b\"".into()),
        (vec![], "NAME".into()),
        // Resolves, but shares nothing with anything: nothing to print is said, not printed.
        (
            vec!["a.test", "--no-ct", "--timeout", "2s"],
            "no names to print for a.test: none shares a certificate and an address with another name (--all lists every name that resolved)".into(),
        ),
    ];
    for (args, said) in cases {
        // --resolve pins the name: nothing reaches a resolver even if the check came late.
        let mut args: Vec<String> = std::iter::once("discover")
            .chain(args)
            .map(String::from)
            .collect();
        args.extend([
            "--resolve".into(),
            "a.test:127.0.0.1".into(),
            "--dns".into(),
            "127.0.0.1:9".into(),
        ]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = no_hang("coalscope discover", common::run(&argv, None)).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&said), "{args:?}: {said:?} not in {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
