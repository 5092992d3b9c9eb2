//! Property tests: the watch-file parser (never panics, bounded diagnostics, normalisation is
//! idempotent, entries round-trip through their text forms, line endings do not matter) and
//! certificate name matching (case-insensitive, trailing dot ignored, a wildcard matches
//! exactly one left-most label and nothing else).

// Test code: a failed expectation is a failed test, said where it happened.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use coalscope::engine::probe::cert::{covering_san, name_matches, CertSummary};
use coalscope::watchlist::{self, normalize_host, parse, WatchError, MAX_DIAGNOSTICS};
use proptest::prelude::*;

fn label() -> impl Strategy<Value = String> {
    // Hyphens in the 3rd and 4th places mark an A-label ("xn--…", RFC 5891 §4.2.3.1): a random
    // one ("xn--0") is not valid punycode, and the parser rightly refuses it.
    "[a-z0-9]([a-z0-9-]{0,12}[a-z0-9])?".prop_filter("no A-label prefix", |l| l.get(2..4) != Some("--"))
}

/// A valid LDH host of 2–4 labels with an alphabetic top label.
fn host() -> impl Strategy<Value = String> {
    (prop::collection::vec(label(), 1..4), "[a-z]{2,6}").prop_map(|(mut labels, tld)| {
        labels.push(tld);
        labels.join(".")
    })
}

/// Random ASCII case.
fn recase(s: &str, mask: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// Text rich in the characters the parser cares about.
fn tricky_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("a".to_string()),
            Just(".".to_string()),
            Just(":".to_string()),
            Just("/".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just("#".to_string()),
            Just("?".to_string()),
            Just("@".to_string()),
            Just("https://".to_string()),
            Just(" ".to_string()),
            Just("\t".to_string()),
            Just("\r\n".to_string()),
            Just("\n".to_string()),
            Just("\u{0}".to_string()),
            Just("\u{1b}[2J".to_string()),
            Just("\u{202e}".to_string()),
            Just("ü".to_string()),
            Just("xn--".to_string()),
            Just("*".to_string()),
            Just("443".to_string()),
            Just("99999".to_string()),
            Just("::1".to_string()),
            "[a-z0-9-]{1,70}",
            any::<char>().prop_map(|c| c.to_string()),
        ],
        0..60,
    )
    .prop_map(|parts| parts.concat())
}

/// One label that UTS 46 accepts: ASCII in any case (with `_`, and a `-` that can never make
/// an `xn--` prefix), a Unicode word (mapped, then Punycode), a full-width one (mapped to
/// ASCII) or a valid A-label.
fn any_label() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9_]{1,3}(-[a-zA-Z0-9_]{1,8})?",
        1 => prop::sample::select(vec!["bücher", "MÜNCHEN", "straße", "café", "пример", "例え", "Ｅｘａｍｐｌｅ", "xn--bcher-kva"])
            .prop_map(str::to_string),
    ]
}

/// A name that normalises: 1–3 labels and an alphabetic (or Unicode) top label, joined by
/// ASCII or ideographic full stops, any case, with or without the trailing dot; or an IP
/// literal in a non-canonical spelling.
fn normalisable() -> impl Strategy<Value = String> {
    let name = (
        prop::collection::vec(
            (any_label(), prop::sample::select(vec![".", ".", ".", "\u{3002}"])),
            1..4,
        ),
        prop_oneof![
            "[a-zA-Z]{2,6}",
            Just("みんな".to_string()),
            Just("COM".to_string())
        ],
        any::<bool>(),
    )
        .prop_map(|(labels, top, dot)| {
            let mut name: String = labels.iter().map(|(l, sep)| format!("{l}{sep}")).collect();
            name.push_str(&top);
            if dot {
                name.push('.');
            }
            name
        });
    prop_oneof![
        8 => name,
        1 => prop::sample::select(vec![
            "127.0.0.1",
            "0:0:0:0:0:0:0:1",
            "[2001:DB8::0:1]",
            "::FFFF:192.0.2.1",
            "[::1]",
        ])
        .prop_map(str::to_string),
    ]
}

proptest! {
    #[test]
    fn the_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        check_bounded(parse("p.watch", &bytes));
    }

    #[test]
    fn the_parser_never_panics_on_tricky_text(text in tricky_text()) {
        check_bounded(parse("p.watch", text.as_bytes()));
    }

    /// Every input here normalises (one that does not fails the test): idempotence is checked
    /// on each case, not on the rare tricky text that happens to be a name.
    #[test]
    fn normalisation_is_idempotent(raw in normalisable()) {
        let n = normalize_host(&raw)
            .map_err(|e| TestCaseError::fail(format!("{raw:?} does not normalise: {e}")))?;
        prop_assert_eq!(normalize_host(&n), Ok(n.clone()), "{:?}", raw);
        prop_assert!(!n.ends_with('.'));
        prop_assert!(n.is_ascii(), "{:?} → {:?}", raw, n);
        prop_assert_eq!(n.to_ascii_lowercase(), n.clone());
    }

    /// The same on tricky text, where few inputs normalise (about 0.4%): those that do.
    #[test]
    fn normalisation_of_tricky_text_is_idempotent_when_it_succeeds(raw in tricky_text()) {
        if let Ok(n) = normalize_host(&raw) {
            prop_assert_eq!(normalize_host(&n), Ok(n.clone()));
            prop_assert!(!n.ends_with('.'));
            prop_assert_eq!(n.to_ascii_lowercase(), n.clone());
        }
    }

    #[test]
    fn case_and_trailing_dot_do_not_matter(h in host(), mask in any::<u64>(), dot in any::<bool>()) {
        let spelled = format!("{}{}", recase(&h, mask), if dot { "." } else { "" });
        prop_assert_eq!(normalize_host(&spelled), Ok(h.clone()));
    }

    #[test]
    fn entries_round_trip_through_every_form(
        h in host(),
        port in 1u16..=65535,
        path in prop::option::of("/[a-zA-Z0-9._~-]{0,12}(\\?[a-z]=[0-9])?"),
        form in 0u8..4,
        mask in any::<u64>(),
    ) {
        let host_text = recase(&h, mask);
        let p = path.clone().unwrap_or_default();
        let line = match form {
            0 => format!("{host_text}:{port}{p}"),
            1 => format!("https://{host_text}:{port}{p}"),
            2 => format!("HTTPS://{host_text}.:{port}{p}   # comment"),
            _ => format!("  {host_text}:{port}{p}\t"),
        };
        let list = parse("r.watch", line.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(list.entries.len(), 1);
        let e = &list.entries[0];
        prop_assert_eq!(&e.host, &h);
        prop_assert_eq!(e.port, port);
        prop_assert_eq!(&e.path, &path);
        // Written back as `host:port/path`, it parses to the same entry.
        let again = format!("{}{}", e.key(), e.path.clone().unwrap_or_default());
        let back = parse("r.watch", again.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back.entries, &list.entries);
    }

    #[test]
    fn line_endings_and_the_final_newline_do_not_matter(
        hosts in prop::collection::vec(host(), 1..20),
        crlf in prop::collection::vec(any::<bool>(), 20),
        final_newline in any::<bool>(),
    ) {
        let mut lf = String::new();
        let mut mixed = String::new();
        for (i, h) in hosts.iter().enumerate() {
            lf.push_str(h);
            lf.push('\n');
            mixed.push_str(h);
            if i + 1 < hosts.len() || final_newline {
                mixed.push_str(if crlf[i] { "\r\n" } else { "\n" });
            }
        }
        let a = parse("a", lf.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let b = parse("a", mixed.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(a, b);
    }

    #[test]
    fn reading_is_the_same_as_parsing(text in tricky_text()) {
        let read = watchlist::read("x", text.as_bytes()).map_err(|e| e.to_string());
        let parsed = parse("x", text.as_bytes()).map_err(|e| e.to_string());
        prop_assert_eq!(read, parsed);
    }

    // ---- name matching ----

    #[test]
    fn a_name_matches_itself_in_any_case_with_or_without_dot(
        h in host(), m1 in any::<u64>(), m2 in any::<u64>(), d1 in any::<bool>(), d2 in any::<bool>(),
    ) {
        let dot = |b: bool| if b { "." } else { "" };
        let san = format!("{}{}", recase(&h, m1), dot(d1));
        let name = format!("{}{}", recase(&h, m2), dot(d2));
        prop_assert!(name_matches(&san, &name));
    }

    #[test]
    fn matching_ignores_case_and_trailing_dots(san in tricky_text(), h in tricky_text(), mask in any::<u64>()) {
        let base = name_matches(&san, &h);
        prop_assert_eq!(name_matches(&recase(&san, mask), &h), base);
        prop_assert_eq!(name_matches(&san, &recase(&h, !mask)), base);
        if !san.ends_with('.') && !h.ends_with('.') {
            prop_assert_eq!(name_matches(&format!("{san}."), &h), base);
            prop_assert_eq!(name_matches(&san, &format!("{h}.")), base);
        }
    }

    #[test]
    fn a_wildcard_matches_exactly_one_left_most_label(
        first in label(), extra in label(), parent in host(),
    ) {
        let wildcard = format!("*.{parent}");
        let one = format!("{first}.{parent}");
        let two = format!("{extra}.{first}.{parent}");
        prop_assert_eq!(name_matches(&wildcard, &one), parent.contains('.'), "{} vs {}", wildcard, one);
        prop_assert!(!name_matches(&wildcard, &two), "{} matched two labels: {}", wildcard, two);
        prop_assert!(!name_matches(&wildcard, &parent), "{} matched its parent", wildcard);
        // A wildcard anywhere but alone in the left-most label never matches.
        let inner = format!("{first}.*.{parent}");
        prop_assert!(!name_matches(&inner, &two));
        let partial = format!("{first}*.{parent}");
        prop_assert!(!name_matches(&partial, &one));
        // A host is never a pattern.
        prop_assert!(!name_matches(&wildcard, &wildcard));
    }

    #[test]
    fn different_names_do_not_match(a in host(), b in host()) {
        prop_assume!(a != b);
        prop_assert!(!name_matches(&a, &b));
    }

    #[test]
    fn covering_san_agrees_with_name_matches(sans in prop::collection::vec(prop_oneof![host(), host().prop_map(|h| format!("*.{h}"))], 0..8), h in host()) {
        let cert = CertSummary {
            subject: String::new(),
            issuer: String::new(),
            dns_sans: sans.clone(),
            ip_sans: vec![],
            not_before: 0,
            not_after: 0,
            serial: String::new(),
            sha256: String::new(),
        };
        let covering = covering_san(&cert, &h);
        prop_assert_eq!(covering.clone(), sans.iter().find(|s| name_matches(s, &h)).cloned());
        if let Some(s) = covering {
            prop_assert!(name_matches(&s, &h));
        }
    }
}

/// Parsing finished; its diagnostics are capped.
fn check_bounded(result: Result<watchlist::WatchList, WatchError>) {
    match result {
        Ok(list) => assert!(list.warnings.len() <= MAX_DIAGNOSTICS),
        Err(WatchError::Invalid { errors, .. }) => {
            assert!(!errors.is_empty() && errors.len() <= MAX_DIAGNOSTICS)
        }
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}
