//! The command line's promises: exit status 2 with a message naming file:line for bad input,
//! stdin as `-`, help and version.

// Test code: a failed expectation is a failed test, said where it happened.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::io::Write;

#[tokio::test]
async fn a_bad_watch_file_names_file_and_line_and_exits_2() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "# hosts\nok.example.test\nhttp://plain.example.test\n").unwrap();
    let path = f.path().to_string_lossy().to_string();
    let out = common::run(&["check", &path], None).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{path}:3")), "{err}");
}

#[tokio::test]
async fn a_missing_watch_file_exits_2() {
    let out = common::run(&["check", "/nonexistent/coalscope/hosts"], None).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/coalscope/hosts"));
}

#[tokio::test]
async fn stdin_errors_are_named_dash() {
    let out = common::run(&["check", "-"], Some(b"good.example.test\nbad host name\n")).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("-:2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn bad_options_exit_2() {
    // (arguments, what the message must name: the option that is wrong, not something else
    // that happens to fail with the same status).
    for (args, names) in [
        (vec!["check", "-", "--timeout", "never"], "never"),
        (vec!["check", "-", "--resolve", "nonsense"], "nonsense"),
        // The CA file is read before the resolver is built: its error is the one given, also
        // on a machine without a readable /etc/resolv.conf (no --dns here, so the resolver
        // would read it).
        (
            vec![
                "check",
                "-",
                "--ca-file",
                "/nonexistent/ca.pem",
                "--resolve",
                "a.test:127.0.0.1",
            ],
            "/nonexistent/ca.pem",
        ),
        (vec!["serve", "-", "--dns-grace", "2d"], "at most 24h"),
        (vec!["serve", "-", "--dns-grace", "soon"], "--dns-grace"),
        (vec!["demo", "--dns-grace=1 fortnight"], "--dns-grace"),
        // HTTP/3 is probed beside HTTP/2, never instead: said before anything starts.
        (
            vec!["check", "-", "--protocols", "h3", "--dns", "127.0.0.1:9"],
            "h2 cannot be left out",
        ),
        (
            vec!["serve", "-", "--protocols", "h3", "--dns", "127.0.0.1:9"],
            "h2 cannot be left out",
        ),
        (vec!["serve", "-", "--protocols", "h2,h4"], "h4"),
        (vec!["--frobnicate"], "--frobnicate"),
        // `coalscope WORD` is the short form of `coalscope watch WORD` (not an unknown
        // subcommand): without a terminal, that is the usage error given.
        (vec!["frobnicate"], "needs a terminal"),
        // `watch` needs a watch-file unless `--from` gives remote vantages; a bad `--from`
        // is named.
        (vec!["watch"], "<WATCHFILE>"),
        (vec!["watch", "--from", "ftp://h.test/"], "ftp://h.test/"),
        (vec!["watch", "--from", "fra1=not-a-url"], "not-a-url"),
        (
            vec!["watch", "--from", "fra1=http://127.0.0.1:9/"],
            "needs a terminal",
        ),
    ] {
        let out = common::run(&args, Some(b"a.test\n")).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(names),
            "{args:?}: the message names {names:?}: {stderr}"
        );
    }
}

/// Completion scripts and manual pages come from the clap definitions: every command is in
/// them, the bash script parses, and the pages render with groff when it is installed.
#[tokio::test]
async fn completions_and_manual_pages() {
    for shell in ["bash", "zsh", "fish"] {
        let out = common::run(&["completions", shell], None).await;
        assert_eq!(out.status.code(), Some(0), "{shell}: {out:?}");
        let script = String::from_utf8_lossy(&out.stdout);
        for word in ["coalscope", "check", "serve", "max-rps", "discover", "ct-url"] {
            assert!(script.contains(word), "{shell}: {word} missing");
        }
    }
    let out = common::run(&["completions", "bash"], None).await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("coalscope.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(syntax.status.success(), "bash -n: {syntax:?}");

    let out = common::run(&["man"], None).await;
    assert_eq!(out.status.code(), Some(0));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH coalscope 1"), "{page}");
    assert!(
        page.contains("coalscope\\-check"),
        "the main page lists the commands: {page}"
    );
    let out = common::run(&["man", "check"], None).await;
    assert_eq!(out.status.code(), Some(0));
    let page = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(page.contains(".TH coalscope-check 1"), "{page}");
    assert!(page.contains("\\-\\-rounds"), "{page}");
    if std::path::Path::new("/usr/bin/groff").exists() {
        let path = dir.path().join("coalscope-check.1");
        std::fs::write(&path, &page).unwrap();
        let text = std::process::Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            text.status.success() && text.stderr.is_empty(),
            "groff: {}",
            String::from_utf8_lossy(&text.stderr)
        );
    }
    let out = common::run(&["man", "discover"], None).await;
    assert_eq!(out.status.code(), Some(0));
    let page = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(page.contains(".TH coalscope-discover 1"), "{page}");
    for option in ["\\-\\-ct\\-url", "\\-\\-ct\\-file", "\\-\\-no\\-ct", "\\-\\-all"] {
        assert!(page.contains(option), "{option} missing: {page}");
    }
    let out = common::run(&["man", "nope"], None).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no command \"nope\""));
}

#[tokio::test]
async fn help_and_version() {
    let out = common::run(&["--help"], None).await;
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["demo", "watch", "check", "serve", "lab"] {
        assert!(help.contains(cmd), "{help}");
    }
    let out = common::run(&["check", "--help"], None).await;
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--dns",
        "--resolve",
        "--ca-file",
        "--timeout",
        "--concurrency",
        "--max-rps",
        "--path",
        "--rounds",
        "--format",
        "--all-pairs",
    ] {
        assert!(help.contains(opt), "{opt} missing from check --help");
    }
    // The live engine's options do nothing in `check`: not in its help, still accepted.
    for opt in [
        "--interval",
        "--window",
        "--dns-grace",
        "--theme",
        "--export-dir",
        "--listen",
    ] {
        assert!(!help.contains(opt), "{opt} in check --help");
    }
    let out = common::run(
        &["check", "--interval", "3s", "--window", "1m", "-"],
        Some(b"bad host name\n"),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("-:1"),
        "the options parse; the watch-file is what fails: {out:?}"
    );
    let out = common::run(&["serve", "--help"], None).await;
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--interval") && help.contains("--window"), "{help}");
    for sub in ["serve", "watch", "demo"] {
        let out = common::run(&[sub, "--help"], None).await;
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("--dns-grace") && help.contains("[default: 5m]"),
            "{sub}: {help}"
        );
    }
}

#[test]
fn the_contract_example_follows_the_schema() {
    let example = serde_json::json!({
      "schema": "coalscope/1",
      "generated_at": "2026-11-28T02:00:00Z",
      "hosts": [
        {"host": "a.example", "port": 443, "addresses": ["192.0.2.1"],
         "dns": {"cnames": [], "ttl_s": 300, "error": null},
         "endpoints": [
           {"address": "192.0.2.1", "alpn": "h2", "tls_version": "TLSv1.3",
            "cert": {"sans": ["a.example", "b.example"], "issuer": "…", "not_after": "2027-01-01T00:00:00Z",
                     "trusted": true, "covers_host": true, "error": null},
            "direct": {"status": 200, "error": null}}
         ],
         "findings": [{"kind": "sni-mismatch", "severity": "error", "message": "…"}]}
      ],
      "pairs": [
        {"origin": "a.example:443", "target": "b.example:443", "verdict": "misdirected", "reason": null,
         "shared_addresses": ["192.0.2.1"], "cert_covers": true,
         "coalesce": {"chrome": true, "firefox": true},
         "probes": 3, "rate_421": 1.0,
         "addresses": [{"address": "192.0.2.1", "verdict": "misdirected", "probes": 3,
                        "statuses": {"421": 3}, "direct_statuses": {"200": 3}}]}
      ],
      "groups": [{"id": 1, "members": ["a.example:443", "b.example:443"], "problems": 1}],
      "summary": {"hosts": 2, "pairs": 2, "problems": 1, "cert_only_pairs": 0,
                  "connections": 8, "requests": 14}
    });
    common::assert_valid(&example);
    // HTTPS records (RFC 9460) and a failed HTTPS query, additive in `dns`.
    let mut with_https = example.clone();
    with_https["hosts"][0]["dns"]["https"] = serde_json::json!([
        {"priority": 1, "target": "", "alpn": ["h3", "h2"], "no_default_alpn": false, "port": 8443,
         "ipv4hint": ["192.0.2.1"], "ipv6hint": ["2001:db8::1"], "ech": true, "ttl_s": 300},
        {"priority": 0, "target": "cdn.example", "alpn": [], "port": null,
         "ipv4hint": [], "ipv6hint": [], "ech": false, "ttl_s": 300}
    ]);
    with_https["hosts"][0]["dns"]["https_error"] = serde_json::Value::Null;
    common::assert_valid(&with_https);
    let mut bad_https = with_https.clone();
    bad_https["hosts"][0]["dns"]["https"][0]["priority"] = 70_000.into();
    assert!(!jsonschema::is_valid(&common::schema(), &bad_https));
    let mut broken = example.clone();
    broken["pairs"][0]["verdict"] = "fine".into();
    let schema = common::schema();
    assert!(
        !jsonschema::is_valid(&schema, &broken),
        "the schema must reject an unknown verdict"
    );
}

/// The shipped systemd unit verifies (`systemd-analyze verify`, when installed) with its
/// binary at the test build's path and the manual pages it names on MANPATH.
#[tokio::test]
async fn the_systemd_unit_verifies() {
    let analyze = std::path::Path::new("/usr/bin/systemd-analyze");
    if !analyze.exists() {
        println!("skipped: systemd-analyze is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/systemd/coalscope-serve.service"
    ))
    .unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/coalscope serve "),
        "{unit}"
    );
    for hardening in [
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "Restart=on-failure",
    ] {
        assert!(unit.contains(hardening), "{hardening} missing");
    }
    let unit = unit.replace("/usr/local/bin/coalscope", &common::bin().display().to_string());
    let path = dir.path().join("coalscope-serve.service");
    std::fs::write(&path, unit).unwrap();
    let man1 = dir.path().join("man/man1");
    std::fs::create_dir_all(&man1).unwrap();
    for (page, args) in [
        ("coalscope.1", vec!["man"]),
        ("coalscope-serve.1", vec!["man", "serve"]),
    ] {
        let out = common::run(&args, None).await;
        assert_eq!(out.status.code(), Some(0));
        std::fs::write(man1.join(page), &out.stdout).unwrap();
    }
    let out = std::process::Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .env("MANPATH", dir.path().join("man"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
