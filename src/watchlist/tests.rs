use super::*;

fn ok(text: &str) -> WatchList {
    match parse("w.txt", text.as_bytes()) {
        Ok(l) => l,
        Err(e) => panic!("unexpected error for {text:?}: {e}"),
    }
}

fn errs(bytes: &[u8]) -> Vec<Diagnostic> {
    match parse("w.txt", bytes) {
        Err(WatchError::Invalid { errors, .. }) => errors,
        other => panic!("expected Invalid for {bytes:?}, got {other:?}"),
    }
}

/// (host, port, path) of one entry.
type Parts = (String, u16, Option<String>);

fn one(line: &str) -> Parts {
    let l = ok(line);
    assert_eq!(l.entries.len(), 1, "{line:?}");
    let e = &l.entries[0];
    (e.host.clone(), e.port, e.path.clone())
}

fn one_err(line: &str) -> String {
    let d = errs(line.as_bytes());
    assert_eq!(d.len(), 1, "{line:?}: {d:?}");
    d[0].message.clone()
}

fn e(host: &str, port: u16, path: Option<&str>) -> Parts {
    (host.to_string(), port, path.map(str::to_string))
}

#[test]
fn every_entry_form() {
    let cases: &[(&str, Parts)] = &[
        ("a.example", e("a.example", 443, None)),
        ("a.example:8443", e("a.example", 8443, None)),
        ("a.example/health", e("a.example", 443, Some("/health"))),
        ("a.example:8443/x/y", e("a.example", 8443, Some("/x/y"))),
        ("https://a.example", e("a.example", 443, None)),
        ("https://a.example/", e("a.example", 443, Some("/"))),
        ("HTTPS://A.example:444/p", e("a.example", 444, Some("/p"))),
        (
            "https://a.example/p?q=1&r=2",
            e("a.example", 443, Some("/p?q=1&r=2")),
        ),
        ("a.example?q", e("a.example", 443, Some("/?q"))),
        (
            "a.example/r?to=https://b.example",
            e("a.example", 443, Some("/r?to=https://b.example")),
        ),
        ("a.example/caf\u{e9}", e("a.example", 443, Some("/caf%C3%A9"))),
        ("a.example/a{b}", e("a.example", 443, Some("/a%7Bb%7D"))),
        ("A.Example.", e("a.example", 443, None)),
        ("192.0.2.1", e("192.0.2.1", 443, None)),
        ("192.0.2.1:8443/x", e("192.0.2.1", 8443, Some("/x"))),
        ("[::1]:8443", e("::1", 8443, None)),
        ("[2001:DB8:0:0::1]", e("2001:db8::1", 443, None)),
        ("https://[::1]/p", e("::1", 443, Some("/p"))),
        ("_acme.example", e("_acme.example", 443, None)),
        ("-a.example", e("-a.example", 443, None)),
        ("a.example:65535", e("a.example", 65535, None)),
        ("a.example:1", e("a.example", 1, None)),
        ("  \ta.example  ", e("a.example", 443, None)),
        ("a.example # note", e("a.example", 443, None)),
        ("a.example#note", e("a.example", 443, None)),
        ("https://a.example/p#frag", e("a.example", 443, Some("/p"))),
        ("localhost", e("localhost", 443, None)),
    ];
    for (line, want) in cases {
        assert_eq!(&one(line), want, "{line:?}");
    }
}

#[test]
fn idn_becomes_a_labels() {
    assert_eq!(one("bücher.example").0, "xn--bcher-kva.example");
    assert_eq!(one("BÜCHER.Example").0, "xn--bcher-kva.example");
    assert_eq!(one("https://bücher.example:8443/").0, "xn--bcher-kva.example");
    assert_eq!(one("XN--BCHER-KVA.example").0, "xn--bcher-kva.example");
    // Ideographic full stop is a dot under UTS 46.
    assert_eq!(one("bücher\u{3002}example").0, "xn--bcher-kva.example");
    assert_eq!(
        normalize_host("ÄÖÜ.example.").as_deref(),
        Ok("xn--4ca0bs.example")
    );
    // Bad Punycode is refused.
    assert!(normalize_host("xn--a.example").is_err());
}

#[test]
fn normalize_host_ip_literals() {
    assert_eq!(normalize_host("[::1]").as_deref(), Ok("::1"));
    assert_eq!(
        normalize_host("::FFFF:192.0.2.1").as_deref(),
        Ok("::ffff:192.0.2.1")
    );
    assert_eq!(normalize_host("2001:db8:0::1").as_deref(), Ok("2001:db8::1"));
    assert_eq!(normalize_host("192.0.2.1").as_deref(), Ok("192.0.2.1"));
    assert!(normalize_host("[192.0.2.1]").is_err());
    assert!(normalize_host("[::1").is_err());
    assert!(normalize_host("1.2.3").is_err());
    assert!(normalize_host("a.0x7f").is_err());
    assert!(normalize_host("").is_err());
    assert!(normalize_host(".").is_err());
    assert!(normalize_host("a..example").is_err());
    assert!(normalize_host("a.example..").is_err());
    assert!(normalize_host("*.example").is_err());
    // A numeric label that is not the last one is fine.
    assert_eq!(normalize_host("1.example").as_deref(), Ok("1.example"));
}

#[test]
fn length_limits() {
    let label63 = "a".repeat(63);
    let label64 = "a".repeat(64);
    assert_eq!(one(&format!("{label63}.example")).0, format!("{label63}.example"));
    assert!(one_err(&format!("{label64}.example")).contains("label of 64 octets"));
    // 253 octets: 3 × 63 + 1 + 61 + dots.
    let n253 = format!("{label63}.{label63}.{label63}.{}", "b".repeat(61));
    assert_eq!(n253.len(), 253);
    assert_eq!(one(&n253).0, n253);
    assert_eq!(
        one(&format!("{n253}.")).0,
        n253,
        "the trailing dot does not count"
    );
    let n254 = format!("{label63}.{label63}.{label63}.{}", "b".repeat(62));
    assert!(one_err(&n254).contains("254 octets"));
    // The limits apply to the A-label form: 61 characters become 68 octets.
    let idn_label = format!("\u{fc}{}", "a".repeat(60));
    assert!(one_err(&format!("{idn_label}.example")).contains("label of 68 octets"));
    let idn_name = format!("{label63}.{label63}.{label63}.\u{fc}{}", "b".repeat(55));
    assert!(idn_name.chars().count() <= 253);
    assert!(one_err(&idn_name).contains("octets long"));
}

#[test]
fn bad_ports() {
    assert!(one_err("a.example:0").contains("out of range"));
    assert!(one_err("a.example:65536").contains("out of range"));
    assert!(one_err("a.example:99999999999999999999").contains("out of range"));
    assert!(one_err("a.example:abc").contains("\"abc\" is not a number"));
    assert!(one_err("a.example:+443").contains("not a number"));
    assert!(one_err("a.example:").contains("missing port"));
    assert!(one_err("[::1]:0").contains("out of range"));
}

#[test]
fn bad_entries() {
    let cases: &[(&str, &str)] = &[
        ("http://a.example", "unsupported scheme \"http\""),
        ("ftp://a.example", "unsupported scheme"),
        ("://a.example", "unsupported scheme"),
        ("https://user:pw@a.example/", "user information"),
        ("user@a.example", "user information"),
        ("a.example b.example", "more than one entry"),
        ("https://", "no host"),
        ("/path", "no host"),
        (":443", "no host"),
        ("::1", "brackets"),
        ("2001:db8::1:443", "brackets"),
        ("[::1", "closing"),
        ("[::1]x", "unexpected"),
        ("[nothex]:443", "not a valid IPv6"),
        ("a_b!.example", "\"!\""),
        ("a.example/p\x07q", "control"),
        ("a\x1b[31m.example", "control character"),
        ("a..example", "empty label"),
        ("1.2.3", "ends in a number"),
    ];
    for (line, want) in cases {
        let msg = one_err(line);
        assert!(msg.contains(want), "{line:?}: {msg:?} lacks {want:?}");
    }
}

#[test]
fn errors_name_every_bad_line() {
    let text = "# header\n\ngood.example\nhttp://bad.example\nalso good.example\nok.example:1\nbad:0\n";
    let d = errs(text.as_bytes());
    let lines: Vec<usize> = d.iter().map(|d| d.line).collect();
    assert_eq!(lines, vec![4, 5, 7]);
    assert_eq!(
        d[0].to_string(),
        "w.txt:4: unsupported scheme \"http\" (only https:// is watched)"
    );
    let all = WatchError::Invalid { errors: d, more: 0 }.to_string();
    assert_eq!(all.lines().count(), 3);
    assert!(all.starts_with("w.txt:4: "));
}

#[test]
fn messages_are_sanitised_and_bounded() {
    let msg = one_err("http\u{1b}[31m://x");
    assert!(!msg.contains('\u{1b}'), "{msg:?}");
    let long = format!("{}!.example", "a".repeat(500));
    let msg = one_err(&long);
    assert!(msg.len() < 300, "{} chars", msg.len());
    assert!(msg.contains('…'));
}

#[test]
fn line_endings_bom_and_final_newline() {
    let l = ok("\u{feff}a.example\r\nb.example:8443\r\n\r\n# c\r\nc.example");
    let got: Vec<(String, usize)> = l.entries.iter().map(|e| (e.key(), e.line)).collect();
    assert_eq!(
        got,
        vec![
            ("a.example:443".into(), 1),
            ("b.example:8443".into(), 2),
            ("c.example:443".into(), 5)
        ]
    );
    assert!(ok("").entries.is_empty());
    assert!(ok("\n\n   \n# only comments\n").entries.is_empty());
    assert!(ok("\u{feff}").entries.is_empty());
    // Elsewhere U+FEFF is a UTS 46 "ignored" code point, dropped as a browser drops it.
    assert_eq!(ok("a.example\n\u{feff}b.example\n").entries[1].host, "b.example");
}

#[test]
fn nul_and_invalid_utf8_name_the_line() {
    let d = errs(b"a.example\nb.exa\0mple\nc.example\n\xff\xfe.example\n");
    assert_eq!(d.len(), 2);
    assert_eq!((d[0].line, d[1].line), (2, 4));
    assert!(d[0].message.contains("NUL"));
    assert!(d[1].message.contains("UTF-8"));
    // Even inside a comment, bad bytes are an error: the file is damaged.
    assert_eq!(errs(b"# caf\xe9\n")[0].line, 1);
}

#[test]
fn duplicates_warn_and_keep_the_first() {
    let l = ok("a.example/one\nA.Example./two\na.example:8443\n[::1]\n[0:0::1]:443\nbücher.example\nxn--bcher-kva.example\n");
    let keys: Vec<String> = l.entries.iter().map(Entry::key).collect();
    assert_eq!(
        keys,
        vec![
            "a.example:443",
            "a.example:8443",
            "[::1]:443",
            "xn--bcher-kva.example:443"
        ]
    );
    assert_eq!(l.entries[0].path.as_deref(), Some("/one"));
    let w: Vec<(usize, String)> = l.warnings.iter().map(|d| (d.line, d.message.clone())).collect();
    assert_eq!(w.len(), 3);
    assert_eq!(
        w[0],
        (
            2,
            "duplicate entry a.example:443 (first on line 1); line 1 is kept".to_string()
        )
    );
    assert_eq!((w[1].0, w[2].0), (5, 7));
    assert!(w[1].1.contains("line 4"));
}

#[test]
fn key_brackets_ipv6() {
    let entry = |host: &str, port| Entry {
        host: host.into(),
        port,
        path: None,
        line: 1,
    };
    assert_eq!(entry("a.example", 443).key(), "a.example:443");
    assert_eq!(entry("::1", 8443).key(), "[::1]:8443");
    assert_eq!(entry("192.0.2.1", 80).key(), "192.0.2.1:80");
}

#[test]
fn large_file_parses_quickly() {
    let mut text = String::with_capacity(3_000_000);
    for i in 0..100_000 {
        text.push_str(&format!("host{i}.example:{}\n", 1 + i % 60000));
    }
    let start = std::time::Instant::now();
    let l = ok(&text);
    assert_eq!(l.entries.len(), 100_000);
    // About 1 s in a debug build; the bound is what only a hang or quadratic work exceeds
    // (5·10⁹ comparisons of names take minutes), not a performance claim: a loaded 2-core
    // machine must not fail it.
    assert!(
        start.elapsed() < std::time::Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn load_reports_io_errors_with_the_path() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let missing = dir.path().join("nope.txt");
    match load(&missing) {
        Err(WatchError::Io { file, .. }) => assert!(file.ends_with("nope.txt")),
        other => panic!("{other:?}"),
    }
    match load(dir.path()) {
        Err(WatchError::Io { message, .. }) => assert!(message.contains("directory")),
        other => panic!("{other:?}"),
    }
    let f = dir.path().join("w.txt");
    std::fs::write(&f, "a.example\nhttp://b\n").unwrap_or_else(|e| panic!("write: {e}"));
    match load(&f) {
        Err(WatchError::Invalid { errors: d, .. }) => assert_eq!(
            d[0].to_string(),
            format!(
                "{}:2: unsupported scheme \"http\" (only https:// is watched)",
                f.display()
            )
        ),
        other => panic!("{other:?}"),
    }
    std::fs::write(&f, "a.example\n").unwrap_or_else(|e| panic!("write: {e}"));
    assert_eq!(load(&f).map(|l| l.entries.len()).ok(), Some(1));
}

#[test]
fn diff_by_key() {
    let old = ok("a.example\nb.example/x\nc.example\nd.example:8443\n");
    let new = ok("# moved\nb.example/y\na.example\ne.example\nd.example:8444\n");
    let d = diff(&old, &new);
    let keys = |v: &[Entry]| v.iter().map(Entry::key).collect::<Vec<_>>();
    assert_eq!(keys(&d.added), vec!["e.example:443", "d.example:8444"]);
    assert_eq!(keys(&d.removed), vec!["c.example:443", "d.example:8443"]);
    assert_eq!(keys(&d.changed), vec!["b.example:443"]);
    assert_eq!(d.changed[0].path.as_deref(), Some("/y"));
    assert_eq!(keys(&d.unchanged), vec!["a.example:443"]);
    assert_eq!(
        d.unchanged[0].line, 3,
        "new-side entries carry the new line numbers"
    );
    assert!(!d.is_empty());
    assert!(diff(&new, &new).is_empty());
    assert_eq!(diff(&WatchList::default(), &new).added.len(), 4);
}

#[test]
fn diagnostics_are_capped_with_a_count() {
    let mut text = String::new();
    for i in 0..100 {
        text.push_str(&format!("bad host {i}\n"));
    }
    for _ in 0..50 {
        text.push_str("dup.example\n");
    }
    match parse("w.txt", text.as_bytes()) {
        Err(e @ WatchError::Invalid { .. }) => {
            let WatchError::Invalid { errors, more } = &e else {
                unreachable!()
            };
            assert_eq!(errors.len(), MAX_DIAGNOSTICS);
            assert_eq!(*more, 100 - MAX_DIAGNOSTICS);
            let shown = e.to_string();
            assert_eq!(shown.lines().count(), MAX_DIAGNOSTICS + 1);
            assert!(shown.ends_with("w.txt: and 80 more invalid lines"), "{shown}");
        }
        other => panic!("{other:?}"),
    }
    let dups = ok(&"dup.example\n".repeat(50));
    assert_eq!(dups.entries.len(), 1);
    assert_eq!(dups.warnings.len(), MAX_DIAGNOSTICS);
    assert_eq!(dups.warnings_more, 49 - MAX_DIAGNOSTICS);
}

#[test]
fn reading_is_bounded() {
    let list = read("-", &b"a.example\nb.example"[..]).expect("small input");
    assert_eq!(list.entries.len(), 2);
    // An endless reader: only MAX_BYTES + 1 bytes are taken from it.
    let endless = std::io::repeat(b'a');
    match read("-", endless) {
        Err(WatchError::Io { file, message }) => {
            assert_eq!(file, "-");
            assert!(message.contains("larger than 16 MiB"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn one_entry_from_the_command_line() {
    let e = parse_one("WWW.Bücher.example.:8443").expect("a name");
    assert_eq!(
        (e.host.as_str(), e.port, e.path),
        ("www.xn--bcher-kva.example", 8443, None)
    );
    let e = parse_one("https://a.example/x").expect("a URL");
    assert_eq!(
        (e.host.as_str(), e.port, e.path.as_deref()),
        ("a.example", 443, Some("/x"))
    );
    for bad in [
        "",
        "a.example b.example",
        "a.example#x",
        "a.example\nb.example",
        "a.example:",
        "a..example",
    ] {
        assert!(parse_one(bad).is_err(), "{bad:?} accepted");
    }
}
