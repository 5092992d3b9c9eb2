//! Certificates with x509-parser: SANs, validity, and name coverage by RFC 9525 / browser
//! rules: DNS SANs only (no CN fallback), a wildcard only as the whole left-most label and
//! matching exactly one label, case-insensitive A-label comparison, trailing dots ignored,
//! IP addresses only against iPAddress SANs.

use std::net::IpAddr;

use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// What coalscope needs to know of a leaf certificate. Strings are exactly as in the
/// certificate (untrusted: sanitise before drawing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// Subject DN in RFC 4514 form.
    pub subject: String,
    /// Issuer DN in RFC 4514 form.
    pub issuer: String,
    /// dNSName SANs, in certificate order.
    pub dns_sans: Vec<String>,
    /// iPAddress SANs, in certificate order.
    pub ip_sans: Vec<IpAddr>,
    /// Validity, seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// Serial number in lower-case hex.
    pub serial: String,
    /// SHA-256 of the DER, lower-case hex.
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate: {0}")]
pub struct CertError(pub String);

/// Parse a DER leaf certificate. Garbage is an error, never a panic.
pub fn parse_leaf(der: &[u8]) -> Result<CertSummary, CertError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| CertError(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertError(format!("{} bytes after the certificate", rest.len())));
    }
    let mut dns_sans = Vec::new();
    let mut ip_sans = Vec::new();
    // A malformed or duplicated SAN extension makes the certificate unusable for names:
    // clients reject it, so it is an error here rather than "no SANs".
    let san = cert
        .subject_alternative_name()
        .map_err(|e| CertError(format!("subjectAltName: {e}")))?;
    for name in san.iter().flat_map(|s| &s.value.general_names) {
        match name {
            GeneralName::DNSName(d) => dns_sans.push((*d).to_string()),
            GeneralName::IPAddress(b) => ip_sans.extend(ip_from_octets(b)),
            _ => {}
        }
    }
    let validity = cert.validity();
    Ok(CertSummary {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        dns_sans,
        ip_sans,
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        serial: serial_hex(cert.raw_serial()),
        sha256: hex::encode(Sha256::digest(der)),
    })
}

/// iPAddress SANs are 4 or 16 octets; anything else (e.g. a name-constraint style
/// address+mask of 8 or 32) is not an address and is skipped.
fn ip_from_octets(b: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(b) {
        Some(IpAddr::from(v4))
    } else if let Ok(v6) = <[u8; 16]>::try_from(b) {
        Some(IpAddr::from(v6))
    } else {
        None
    }
}

/// DER INTEGERs carry a leading 0x00 when the top bit is set; that byte is sign, not value.
fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex::encode(&raw[start..])
}

/// Does the SAN pattern `san` (a dNSName, possibly a wildcard) match `host`?
/// Both are compared as lower-case A-labels without trailing dot.
pub fn name_matches(san: &str, host: &str) -> bool {
    // SANs must be A-labels (RFC 5280 §4.2.1.6 via IA5String): a U-label SAN never matches,
    // and a host reaching here is already A-labels. Non-ASCII on either side: no match.
    if !san.is_ascii() || !host.is_ascii() {
        return false;
    }
    let san = san.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    let san = san.strip_suffix('.').unwrap_or(&san);
    let host = host.strip_suffix('.').unwrap_or(&host);
    // An IP literal is an iPAddress identity, never a dNSName one (RFC 9525 §6.2.1), and a
    // host is never a pattern.
    if host.parse::<IpAddr>().is_ok() || host.starts_with('[') || host.contains('*') {
        return false;
    }
    let host_labels: Vec<&str> = host.split('.').collect();
    let san_labels: Vec<&str> = san.split('.').collect();
    if host_labels.iter().chain(&san_labels).any(|l| l.is_empty()) {
        return false;
    }
    match san_labels.split_first() {
        // Wildcard: only as the entire left-most label, matching exactly one label of the
        // host. Partial wildcards (`f*o`, `w*`, `*o`) are refused as Chromium and Firefox do.
        // At least two labels must follow it, so `*.com` matches nothing; browsers also
        // consult the public suffix list (`*.co.uk`), which is out of scope here. A host
        // label that is an A-label (`xn--…`) is matched, as Chromium does.
        Some((&"*", rest)) => {
            rest.len() >= 2
                && !rest.iter().any(|l| l.contains('*'))
                && host_labels.len() == san_labels.len()
                && host_labels[1..] == *rest
        }
        _ => !san.contains('*') && san == host,
    }
}

/// The SAN that covers `host` (the dNSName as written, or the IP SAN formatted), if any.
/// An IP literal `host` is matched only against iPAddress SANs.
pub fn covering_san(cert: &CertSummary, host: &str) -> Option<String> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return cert.ip_sans.iter().find(|s| **s == ip).map(IpAddr::to_string);
    }
    // dNSName SANs only: the subject CN is never consulted (RFC 9525 §6.3, all browsers).
    cert.dns_sans.iter().find(|s| name_matches(s, host)).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::ca::{DistinguishedName, DnType, Leaf, SanType, Validity};

    fn fmt_unix(secs: i64) -> String {
        crate::engine::snapshot::Timestamp::from_unix(secs).to_string()
    }

    fn summary(dns: &[&str], ips: &[&str]) -> CertSummary {
        CertSummary {
            subject: String::new(),
            issuer: String::new(),
            dns_sans: dns.iter().map(|s| s.to_string()).collect(),
            ip_sans: ips.iter().filter_map(|s| s.parse().ok()).collect(),
            not_before: 0,
            not_after: 0,
            serial: String::new(),
            sha256: String::new(),
        }
    }

    /// (SAN, host, matches): RFC 9525 §6.3 / §7.2 and Chromium/Firefox behaviour.
    const NAME_CASES: &[(&str, &str, bool)] = &[
        ("example.com", "example.com", true),
        ("Example.COM", "example.com", true),
        ("example.com", "EXAMPLE.com", true),
        ("example.com.", "example.com", true),
        ("example.com", "example.com.", true),
        ("example.com.", "example.com.", true),
        ("example.com..", "example.com", false),
        ("example.com", "www.example.com", false),
        ("www.example.com", "example.com", false),
        ("example.co", "example.com", false),
        ("*.example.com", "www.example.com", true),
        ("*.example.com", "WWW.Example.Com.", true),
        ("*.EXAMPLE.com.", "www.example.com", true),
        ("*.example.com", "example.com", false),
        ("*.example.com", "a.b.example.com", false),
        ("*.example.com", ".example.com", false),
        ("*.example.com", "*.example.com", false),
        ("*.example.com", "_acme.example.com", true),
        ("*.example.com", "xn--bcher-kva.example.com", true),
        ("f*o.example.com", "foo.example.com", false),
        ("*o.example.com", "foo.example.com", false),
        ("w*.example.com", "www.example.com", false),
        ("**.example.com", "www.example.com", false),
        ("*.com", "a.com", false),
        ("*.com", "com", false),
        ("*", "com", false),
        ("*", "a", false),
        ("a.*.example.com", "a.b.example.com", false),
        ("www.example.*", "www.example.com", false),
        ("*.*.example.com", "a.b.example.com", false),
        ("*.example.com", "www.example.org", false),
        ("*.co.uk", "example.co.uk", true), // no public suffix list: see name_matches
        ("xn--bcher-kva.example", "xn--bcher-kva.example", true),
        ("XN--BCHER-KVA.example", "xn--bcher-kva.example", true),
        ("bücher.example", "xn--bcher-kva.example", false),
        ("bücher.example", "bücher.example", false),
        ("*.bücher.example", "a.xn--bcher-kva.example", false),
        ("*.xn--bcher-kva.example", "a.xn--bcher-kva.example", true),
        ("a..example.com", "a..example.com", false),
        (".example.com", ".example.com", false),
        ("192.0.2.1", "192.0.2.1", false),
        ("::1", "::1", false),
        ("*.2.0.192", "1.2.0.192", false), // an IP literal host: never a dNSName match
        ("*.0.2.1", "192.0.2.1", false),
        ("", "", false),
        ("", "example.com", false),
        ("example.com", "", false),
        (".", ".", false),
    ];

    #[test]
    fn name_matching_table() {
        for (san, host, want) in NAME_CASES {
            assert_eq!(name_matches(san, host), *want, "SAN {san:?} vs host {host:?}");
        }
    }

    #[test]
    fn covering_san_table() {
        let cert = summary(
            &["a.example", "*.b.example", "192.0.2.9", "XN--BCHER-KVA.example"],
            &["192.0.2.1", "2001:db8::1"],
        );
        let cases: &[(&str, Option<&str>)] = &[
            ("a.example", Some("a.example")),
            ("A.Example.", Some("a.example")),
            ("x.b.example", Some("*.b.example")),
            ("b.example", None),
            ("x.y.b.example", None),
            ("xn--bcher-kva.example", Some("XN--BCHER-KVA.example")),
            ("192.0.2.1", Some("192.0.2.1")),
            ("192.0.2.9", None), // a dNSName SAN with an IP's text is not an IP identity
            ("192.0.2.2", None),
            ("2001:db8::1", Some("2001:db8::1")),
            ("2001:DB8:0::1", Some("2001:db8::1")),
            ("[2001:db8::1]", Some("2001:db8::1")),
            ("::ffff:192.0.2.1", None),
            ("c.example", None),
            ("", None),
        ];
        for (host, want) in cases {
            assert_eq!(covering_san(&cert, host).as_deref(), *want, "host {host:?}");
        }
        // No SANs at all: the subject CN is never a fallback.
        assert_eq!(covering_san(&summary(&[], &[]), "a.example"), None);
    }

    /// `leaf`, self-signed, DER (the lab's certificate builder).
    fn generate(leaf: Leaf) -> Vec<u8> {
        let issued = leaf.self_signed().unwrap_or_else(|e| panic!("cert: {e}"));
        issued.der.to_vec()
    }

    #[test]
    fn parses_an_rcgen_leaf() {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "leaf");
        dn.push(DnType::OrganizationName, "Coal Lab");
        let mut leaf = Leaf::for_names(&["a.example", "192.0.2.1", "*.b.example", "2001:db8::1"])
            .unwrap_or_else(|e| panic!("names: {e}"))
            .more_sans([SanType::Rfc822Name(
                "x@a.example".try_into().unwrap_or_else(|e| panic!("{e}")),
            )])
            .valid(Validity::Between(
                time::macros::datetime!(2026-01-01 0:00 UTC),
                time::macros::datetime!(2027-01-01 0:00 UTC),
            ))
            .serial(&[0x80, 0x01, 0xab]);
        leaf.subject = dn;
        let der = generate(leaf);

        let s = parse_leaf(&der).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.dns_sans, vec!["a.example", "*.b.example"]);
        let ips: Vec<IpAddr> = ["192.0.2.1", "2001:db8::1"]
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        assert_eq!(s.ip_sans, ips);
        assert_eq!(fmt_unix(s.not_before), "2026-01-01T00:00:00Z");
        assert_eq!(fmt_unix(s.not_after), "2027-01-01T00:00:00Z");
        assert_eq!(s.serial, "8001ab");
        assert_eq!(s.subject, "CN=leaf, O=Coal Lab");
        assert_eq!(s.issuer, s.subject, "self-signed");
        assert_eq!(s.sha256, hex::encode(Sha256::digest(&der)));
        assert_eq!(s.sha256.len(), 64);
        assert_eq!(covering_san(&s, "x.b.example").as_deref(), Some("*.b.example"));
        assert_eq!(covering_san(&s, "leaf"), None);
    }

    #[test]
    fn leaf_without_sans() {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "a.example");
        let s = parse_leaf(&generate(Leaf::with_subject(dn, vec![]))).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.dns_sans.is_empty() && s.ip_sans.is_empty());
        assert_eq!(covering_san(&s, "a.example"), None, "no CN fallback");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_leaf(&[]).is_err());
        assert!(parse_leaf(b"not a certificate").is_err());
        assert!(parse_leaf(&[0x30, 0x82, 0xff, 0xff, 0x01]).is_err());
        let der = generate(Leaf::for_names(&["a.example"]).unwrap_or_else(|e| panic!("{e}")));
        // Every truncation, and a byte flipped at every position: never a panic.
        for n in 0..der.len() {
            assert!(parse_leaf(&der[..n]).is_err(), "truncated to {n}");
        }
        for i in 0..der.len() {
            let mut bad = der.clone();
            bad[i] ^= 0xff;
            let _ = parse_leaf(&bad);
        }
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(parse_leaf(&trailing).is_err());
    }

    #[test]
    fn ip_octets_and_serials() {
        assert_eq!(ip_from_octets(&[192, 0, 2, 1]), "192.0.2.1".parse().ok());
        assert_eq!(ip_from_octets(&[0; 16]), "::".parse().ok());
        assert_eq!(ip_from_octets(&[192, 0, 2, 0, 255, 255, 255, 0]), None);
        assert_eq!(ip_from_octets(&[]), None);
        assert_eq!(serial_hex(&[0x00, 0x80, 0x01]), "8001");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[0x01, 0x00]), "0100");
        assert_eq!(serial_hex(&[]), "");
    }

    #[test]
    fn formats_unix_times() {
        assert_eq!(fmt_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(fmt_unix(1_798_761_600), "2027-01-01T00:00:00Z");
        assert_eq!(fmt_unix(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(fmt_unix(253_402_300_800), "@253402300800 (out of range)");
        assert_eq!(fmt_unix(i64::MIN), format!("@{} (out of range)", i64::MIN));
    }
}
