//! What a hostile or broken server sent that coalscope handled safely, said out loud: names in
//! a certificate that carry terminal escapes, C0/C1 controls, bidi or invisible format
//! characters, or run to thousands of characters; a certificate with thousands of SANs; an
//! answer body that went on past the cap with no declared length. The verdicts stay right
//! without these findings; an operator should still hear that something was odd, and what,
//! shown escaped (`\u{1b}[31m`), never raw.

use crate::engine::probe::cert::CertSummary;
use crate::engine::probe::h2::BODY_CAP;
use crate::engine::record::HostRecord;
use crate::engine::snapshot::{Finding, FindingKind, Severity};
use crate::sanitize::is_unsafe;

use super::format::{addr_text, first_of};

/// More SANs than this is odd: public CAs issue at most a few hundred (Let's Encrypt 100),
/// and every client matches names against the whole list.
pub const MANY_SANS: usize = 1000;
/// A name (subject, issuer, SAN) longer than this is odd (a DNS name is at most 253).
const LONG_NAME: usize = 1024;
/// Characters of an odd name shown in a message (escaped).
const SHOWN: usize = 80;

/// What kind of odd character `c` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Odd {
    Escape,
    C0,
    C1,
    Bidi,
    Invisible,
}

impl Odd {
    fn of(c: char) -> Option<Odd> {
        if !is_unsafe(c) {
            return None;
        }
        Some(match c {
            '\u{1b}' => Odd::Escape,
            '\u{0}'..='\u{1f}' | '\u{7f}' => Odd::C0,
            '\u{80}'..='\u{9f}' => Odd::C1,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                Odd::Bidi
            }
            _ => Odd::Invisible,
        })
    }

    fn words(self) -> &'static str {
        match self {
            Odd::Escape => "terminal escape sequences",
            Odd::C0 => "control characters",
            Odd::C1 => "C1 control characters",
            Odd::Bidi => "bidi controls",
            Odd::Invisible => "invisible format characters",
        }
    }
}

/// `s` with every unsafe character written as a Rust-style escape, cut to `SHOWN` characters.
fn escaped(s: &str) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n >= SHOWN {
            out.push('…');
            break;
        }
        if is_unsafe(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// The odd names of a certificate: (field, the kinds of odd characters, over-long).
fn odd_names(leaf: &CertSummary) -> Vec<(String, Vec<Odd>, bool)> {
    let fields = [("subject", &leaf.subject), ("issuer", &leaf.issuer)]
        .into_iter()
        .map(|(f, v)| (f.to_string(), v.as_str()))
        .chain(leaf.dns_sans.iter().map(|s| ("SAN".to_string(), s.as_str())));
    let mut out = Vec::new();
    for (field, value) in fields {
        let mut kinds: Vec<Odd> = value.chars().filter_map(Odd::of).collect();
        kinds.sort();
        kinds.dedup();
        let long = value.chars().count() > LONG_NAME;
        if !kinds.is_empty() || long {
            out.push((format!("{field} \"{}\"", escaped(value)), kinds, long));
        }
    }
    out
}

/// Findings about the certificate served at address `a`.
fn cert_findings(findings: &mut Vec<Finding>, a: &str, leaf: &CertSummary) {
    let odd = odd_names(leaf);
    if !odd.is_empty() {
        let mut kinds: Vec<Odd> = odd.iter().flat_map(|(_, k, _)| k.iter().copied()).collect();
        kinds.sort();
        kinds.dedup();
        let mut what: Vec<String> = kinds.iter().map(|k| k.words().to_string()).collect();
        if odd.iter().any(|(_, _, long)| *long) {
            what.push(format!("names over {LONG_NAME} characters"));
        }
        let shown: Vec<String> = odd.into_iter().map(|(f, _, _)| f).collect();
        findings.push(Finding {
            kind: FindingKind::CertOddNames,
            severity: Severity::Warning,
            message: format!(
                "the certificate served at {a} has names with {}: {} (shown escaped; a tool that prints them raw can be made to show something else)",
                what.join(", "),
                first_of(&shown)
            ),
        });
    }
    let sans = leaf.dns_sans.len() + leaf.ip_sans.len();
    if sans > MANY_SANS {
        findings.push(Finding {
            kind: FindingKind::CertManySans,
            severity: Severity::Warning,
            message: format!(
                "the certificate served at {a} has {sans} SANs, more than {MANY_SANS}: beyond what public CAs issue, and every client matches names against the whole list"
            ),
        });
    }
}

/// The host findings of this module, in address order.
pub(crate) fn host_findings(findings: &mut Vec<Finding>, h: &HostRecord) {
    let mut unbounded = Vec::new();
    for (addr, ep) in &h.endpoints {
        let a = addr_text(addr);
        if let Some(leaf) = ep.leaf() {
            cert_findings(findings, &a, leaf);
        }
        if ep.references().flatten().any(|x| x.body_unbounded) {
            unbounded.push(a);
        }
    }
    if !unbounded.is_empty() {
        findings.push(Finding {
            kind: FindingKind::BodyUnbounded,
            severity: Severity::Info,
            message: format!(
                "{}{} went on past {} KiB with no declared length at {} (it may never end; pages are compared on their first {} KiB)",
                h.entry.host,
                h.path,
                BODY_CAP / 1024,
                first_of(&unbounded),
                BODY_CAP / 1024
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(subject: &str, sans: &[&str]) -> CertSummary {
        CertSummary {
            subject: subject.to_string(),
            issuer: "CN=Test CA".into(),
            dns_sans: sans.iter().map(|s| s.to_string()).collect(),
            ip_sans: Vec::new(),
            not_before: 0,
            not_after: 0,
            serial: "01".into(),
            sha256: "00".into(),
        }
    }

    fn found(l: &CertSummary) -> Vec<Finding> {
        let mut f = Vec::new();
        cert_findings(&mut f, "192.0.2.1", l);
        f
    }

    #[test]
    fn ordinary_certificates_say_nothing() {
        assert!(found(&leaf(
            "CN=a.example, O=Example Inc.",
            &["a.example", "*.b.example"]
        ))
        .is_empty());
        // Non-ASCII letters are not odd (U-labels in a subject happen).
        assert!(found(&leaf("CN=bücher.example", &["xn--bcher-kva.example"])).is_empty());
        let hundred: Vec<String> = (0..MANY_SANS).map(|i| format!("n{i}.example")).collect();
        let refs: Vec<&str> = hundred.iter().map(String::as_str).collect();
        assert!(found(&leaf("CN=x", &refs)).is_empty());
    }

    #[test]
    fn odd_names_are_named_and_shown_escaped() {
        let f = found(&leaf(
            "CN=\u{1b}[2J\u{1b}]0;pwned\u{7}",
            &["ok.example", "evil\u{202e}elpmaxe.example", "c1\u{9b}31m.example"],
        ));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, FindingKind::CertOddNames);
        assert_eq!(f[0].severity, Severity::Warning);
        let m = &f[0].message;
        for words in [
            "terminal escape sequences",
            "control characters",
            "C1 control characters",
            "bidi controls",
        ] {
            assert!(m.contains(words), "{words}: {m}");
        }
        assert!(m.contains(r"\u{1b}[2J"), "{m}");
        assert!(m.contains(r"evil\u{202e}elpmaxe.example"), "{m}");
        assert!(m.chars().all(|c| !is_unsafe(c)), "raw control in {m:?}");
        assert!(!m.contains("ok.example"), "{m}");
    }

    #[test]
    fn huge_names_and_thousands_of_sans() {
        let long = format!("CN={}", "x".repeat(10_000));
        let f = found(&leaf(&long, &[]));
        assert_eq!(f.len(), 1);
        assert!(
            f[0].message.contains("names over 1024 characters"),
            "{}",
            f[0].message
        );
        assert!(
            f[0].message.len() < 400,
            "the message is bounded: {}",
            f[0].message.len()
        );
        let many: Vec<String> = (0..5000).map(|i| format!("n{i}.example")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let f = found(&leaf("CN=x", &refs));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, FindingKind::CertManySans);
        assert!(f[0].message.contains("5000 SANs"), "{}", f[0].message);
    }
}
