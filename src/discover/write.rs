//! The watch-file `discover` prints: a header saying where the names come from, then one block
//! per group (`# group 1: 3 names · 203.0.113.5`), a comment per certificate served in it
//! (`# cert 1a2b3c4d5e6f… (Let's Encrypt R11, 14 SANs) · 203.0.113.5`), the names; with
//! `--all`, the names that share nothing last, each with a trailing comment. Every string from
//! the network is sanitised and kept on its comment line, so the text always parses as a
//! watch-file.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use crate::sanitize;

use super::group::{Grouping, Section};
use super::probe::{Probed, Served};

/// Addresses listed in one comment at most.
const ADDRESSES_SHOWN: usize = 4;

/// What the header says.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// The NAMEs as given on the command line (normalised entries).
    pub names: Vec<String>,
    /// Where the Certificate Transparency names came from, one line (e.g. the URL and counts).
    pub ct: String,
}

/// The watch-file text. `ct_issuers`: a CT issuer per name, said for names whose certificate
/// could not be read; `all`: also the names that share nothing.
pub fn watch_file(
    probed: &[Probed],
    grouping: &Grouping,
    header: &Header,
    ct_issuers: &HashMap<String, String>,
    all: bool,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# coalscope discover {}", comment(&header.names.join(" ")));
    let _ = writeln!(
        out,
        "# Names that can share an HTTP/2 connection: grouped by the certificate each serves and"
    );
    let _ = writeln!(
        out,
        "# the addresses they share. Check them with `coalscope check FILE`."
    );
    let _ = writeln!(out, "# Certificate Transparency: {}", comment(&header.ct));
    for (n, g) in grouping.groups.iter().enumerate() {
        let addresses: Vec<IpAddr> = g.sections.iter().flat_map(|s| addresses_of(probed, s)).collect();
        let _ = writeln!(
            out,
            "\n# group {}: {} names · {}",
            n + 1,
            g.len(),
            address_list(addresses)
        );
        for s in &g.sections {
            let _ = writeln!(out, "# {}", section_comment(probed, s, ct_issuers));
            for &i in &s.names {
                let _ = writeln!(out, "{}", entry(&probed[i]));
            }
        }
    }
    if all && !grouping.alone.is_empty() {
        let _ = writeln!(
            out,
            "\n# sharing nothing: no certificate covering another name at a shared address"
        );
        for &i in &grouping.alone {
            let p = &probed[i];
            let what = match p.first_cert() {
                Some(c) => cert_words(c),
                None => no_cert_words(p, ct_issuers),
            };
            let _ = writeln!(
                out,
                "{}  # {} · {}",
                entry(p),
                what,
                address_list(p.addresses.clone())
            );
        }
    }
    out
}

fn addresses_of(probed: &[Probed], s: &Section) -> Vec<IpAddr> {
    s.names
        .iter()
        .flat_map(|i| probed[*i].addresses.iter().copied())
        .collect()
}

fn section_comment(probed: &[Probed], s: &Section, ct_issuers: &HashMap<String, String>) -> String {
    let first = &probed[s.names[0]];
    let what = match first.first_cert() {
        Some(c) if s.cert.is_some() => cert_words(c),
        _ => no_cert_words(first, ct_issuers),
    };
    format!("{what} · {}", address_list(addresses_of(probed, s)))
}

/// `cert 1a2b3c4d5e6f… (issuer, N SANs[, chain problem][, no h2])`.
fn cert_words(c: &Served) -> String {
    let sans = c.summary.dns_sans.len() + c.summary.ip_sans.len();
    let mut notes = vec![
        short_issuer(&c.summary.issuer),
        format!("{sans} SAN{}", if sans == 1 { "" } else { "s" }),
    ];
    if let Some(e) = &c.chain_error {
        notes.push(comment(e));
    }
    match c.alpn.as_deref() {
        Some("h2") => {}
        Some(other) => notes.push(format!("no h2: {}", comment(other))),
        None => notes.push("no h2: no ALPN".to_string()),
    }
    let sha: String = c.summary.sha256.chars().take(12).collect();
    format!("cert {sha}… ({})", notes.join(", "))
}

fn no_cert_words(p: &Probed, ct_issuers: &HashMap<String, String>) -> String {
    let why = comment(p.cert_error().unwrap_or("not read"));
    match ct_issuers.get(&p.host) {
        Some(issuer) => format!("no certificate read ({why}); in CT: {}", short_issuer(issuer)),
        None => format!("no certificate read ({why})"),
    }
}

/// The entry line: `host` on 443, `host:port` otherwise (`[v6]:port` for an IPv6 literal).
pub fn entry(p: &Probed) -> String {
    match (p.host.contains(':'), p.port) {
        (false, 443) => p.host.clone(),
        (false, port) => format!("{}:{port}", p.host),
        (true, port) => format!("[{}]:{port}", p.host),
    }
}

/// Sorted, deduplicated, at most [`ADDRESSES_SHOWN`] then `+N more`.
fn address_list(mut addresses: Vec<IpAddr>) -> String {
    addresses.sort();
    addresses.dedup();
    let mut words: Vec<String> = addresses
        .iter()
        .take(ADDRESSES_SHOWN)
        .map(IpAddr::to_string)
        .collect();
    if addresses.len() > ADDRESSES_SHOWN {
        words.push(format!("+{} more", addresses.len() - ADDRESSES_SHOWN));
    }
    words.join(", ")
}

/// Untrusted text made fit for one comment line: no control characters (a newline would end
/// the comment), bounded.
pub fn comment(text: &str) -> String {
    sanitize::for_terminal(text, 200)
}

/// The issuer as people say it: `Let's Encrypt R11` from `C=US, O=Let's Encrypt, CN=R11`;
/// the CN alone when it already says the organisation; the whole name when it has neither.
pub fn short_issuer(dn: &str) -> String {
    let mut cn = None;
    let mut org = None;
    for part in split_dn(dn) {
        let Some((key, value)) = part.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_string();
        match key.trim().to_ascii_uppercase().as_str() {
            "CN" => cn = cn.or(Some(value)),
            "O" => org = org.or(Some(value)),
            _ => {}
        }
    }
    let text = match (org, cn) {
        (Some(o), Some(c)) if !says_organisation(&c, &o) => format!("{o} {c}"),
        (_, Some(c)) => c,
        (Some(o), None) => o,
        (None, None) => dn.to_string(),
    };
    sanitize::for_terminal(&text, 80)
}

/// Does the common name already say the organisation (its first word)?
fn says_organisation(cn: &str, org: &str) -> bool {
    let first = org.split([' ', ',']).next().unwrap_or(org).to_lowercase();
    cn.to_lowercase().contains(&first)
}

/// The attributes of a distinguished name, split at commas outside quotes.
fn split_dn(dn: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in dn.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&dn[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&dn[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::group::{group, tests::name};
    use crate::watchlist;

    #[test]
    fn issuers_are_said_briefly() {
        let cases = [
            ("C=US, O=Let's Encrypt, CN=R11", "Let's Encrypt R11"),
            ("CN=coalscope lab CA, O=coalscope lab", "coalscope lab CA"),
            (
                "C=US, O=\"CLOUDFLARE, INC.\", CN=Cloudflare TLS Issuing ECC CA 1",
                "Cloudflare TLS Issuing ECC CA 1",
            ),
            ("O=Example", "Example"),
            ("C=US", "C=US"),
            ("CN=Evil\nCA", "Evil\u{fffd}CA"),
        ];
        for (dn, want) in cases {
            assert_eq!(short_issuer(dn), want, "{dn:?}");
        }
    }

    /// A table: the probed names, `--all`, and the exact text.
    #[test]
    fn watch_file_table() {
        let mut api = name("api.a.test", &[1], &["*.a.test"]);
        api.port = 8443;
        let mut www = name("www.a.test", &[1], &["*.a.test"]);
        www.port = 8443;
        let cases: Vec<(Vec<Probed>, bool, &str)> = vec![
            (
                vec![www.clone(), api.clone(), name("solo.b.test", &[9], &["solo.b.test"])],
                false,
                "\n# group 1: 2 names · 10.0.0.1\n\
                 # cert 000000000000… (Test CA, 1 SAN) · 10.0.0.1\n\
                 api.a.test:8443\nwww.a.test:8443\n",
            ),
            (
                vec![www, api, name("solo.b.test", &[9, 8], &[])],
                true,
                "\n# group 1: 2 names · 10.0.0.1\n\
                 # cert 000000000000… (Test CA, 1 SAN) · 10.0.0.1\n\
                 api.a.test:8443\nwww.a.test:8443\n\
                 \n# sharing nothing: no certificate covering another name at a shared address\n\
                 solo.b.test  # no certificate read (connect: refused); in CT: Let's Encrypt R11 · 10.0.0.8, 10.0.0.9\n",
            ),
        ];
        let header = Header {
            names: vec!["www.a.test:8443".into()],
            ct: "file ct.json\n(2 certificates)".into(),
        };
        let issuers = HashMap::from([(
            "solo.b.test".to_string(),
            "C=US, O=Let's Encrypt, CN=R11".to_string(),
        )]);
        for (probed, all, body) in cases {
            let text = watch_file(&probed, &group(&probed), &header, &issuers, all);
            let head = "# coalscope discover www.a.test:8443\n\
                        # Names that can share an HTTP/2 connection: grouped by the certificate each serves and\n\
                        # the addresses they share. Check them with `coalscope check FILE`.\n\
                        # Certificate Transparency: file ct.json\u{fffd}(2 certificates)\n";
            assert_eq!(text, format!("{head}{body}"));
            let list = watchlist::parse("discover", text.as_bytes()).unwrap();
            assert!(list.warnings.is_empty());
        }
    }

    #[test]
    fn certificate_notes_and_hostile_text_stay_on_their_line() {
        let mut p = name("www.a.test", &[1], &["*.a.test"]);
        if let Ok(served) = &mut p.served[0].1 {
            served.chain_error = Some("expired\nevil.test".into());
            served.alpn = Some("http/1.1".into());
            served.summary.issuer = "CN=x\r\nwww.evil.test".into();
        }
        let q = name("api.a.test", &[1], &["api.a.test"]);
        let probed = vec![p, q];
        let text = watch_file(
            &probed,
            &group(&probed),
            &Header::default(),
            &HashMap::new(),
            true,
        );
        assert!(
            text.contains(
                "(x\u{fffd}\u{fffd}www.evil.test, 1 SAN, expired\u{fffd}evil.test, no h2: http/1.1)"
            ),
            "{text}"
        );
        let list = watchlist::parse("discover", text.as_bytes()).unwrap();
        let hosts: Vec<&str> = list.entries.iter().map(|e| e.host.as_str()).collect();
        assert_eq!(hosts, vec!["api.a.test", "www.a.test"]);
    }

    #[test]
    fn entries_keep_a_port_other_than_443() {
        let mut p = name("www.a.test", &[1], &[]);
        assert_eq!(entry(&p), "www.a.test");
        p.port = 8443;
        assert_eq!(entry(&p), "www.a.test:8443");
        p.host = "2001:db8::1".into();
        assert_eq!(entry(&p), "[2001:db8::1]:8443");
    }
}
