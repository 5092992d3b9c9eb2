//! crt.sh's JSON answers (`?q=…&output=json`): an array of rows, one per logged certificate
//! (or precertificate), e.g.
//! `{"issuer_ca_id":295810,"issuer_name":"C=US, O=Let's Encrypt, CN=R11","common_name":
//! "example.com","name_value":"example.com\nwww.example.com","id":123,"entry_timestamp":
//! "2024-05-01T10:00:00.123","not_before":"2024-05-01T09:00:00","not_after":
//! "2024-07-30T09:00:00","serial_number":"04ab…","result_count":2}`.
//!
//! Every answer is folded into a [`CtCollector`]: malformed rows are skipped and counted (never
//! fatal), the precertificate and certificate of one issuance (same issuer, same serial)
//! collapse, expired certificates are left out (counted) unless asked for, names are
//! normalised as watch-file names (case, trailing dot, IDNs to A-labels) and wildcards kept
//! apart (they stand for no name by themselves). A certificate that names nothing inside the
//! asked domains is left out: its other names are kept only because they share a certificate
//! with an asked one.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Deserialize;

use crate::watchlist::normalize_host;

/// Rows read from one answer at most: a bound on work whatever the body cap lets through.
pub const MAX_ROWS: usize = 200_000;

/// One certificate as Certificate Transparency shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtCert {
    /// crt.sh's id of the first row seen for it.
    pub id: u64,
    /// The issuer as crt.sh writes it (RFC 4514-like), untrusted text.
    pub issuer: String,
    /// Concrete names (normalised, sorted, no duplicates).
    pub names: Vec<String>,
    /// Wildcard names (`*.example.com`, normalised, sorted).
    pub wildcards: Vec<String>,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
}

/// What reading the answers left out, for the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CtStats {
    /// Rows read, malformed ones included.
    pub rows: usize,
    /// Rows that are not a crt.sh row (missing or mistyped field, bad date).
    pub malformed: usize,
    /// Rows of a certificate already seen (its precertificate, or another query's answer).
    pub duplicates: usize,
    /// Certificates left out because they have expired.
    pub expired: usize,
    /// Certificates left out because they name nothing inside the asked domains.
    pub unrelated: usize,
    /// Names that are not host names (an e-mail address, an IP address, garbage).
    pub bad_names: usize,
    /// Rows beyond [`MAX_ROWS`] in one answer, not read.
    pub beyond_limit: usize,
}

/// A body that is not a crt.sh answer at all (not a JSON array).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: not a crt.sh JSON answer (an array of certificate rows): {detail}")]
pub struct NotAnAnswer {
    pub source_name: String,
    pub detail: String,
}

/// The fields of a crt.sh row that coalscope reads; the others are ignored.
#[derive(Debug, Deserialize)]
struct Row {
    id: u64,
    #[serde(default)]
    issuer_ca_id: Option<i64>,
    #[serde(default)]
    issuer_name: Option<String>,
    #[serde(default)]
    common_name: Option<String>,
    name_value: String,
    not_after: String,
    #[serde(default)]
    serial_number: Option<String>,
}

/// Certificates from any number of answers, deduplicated.
#[derive(Debug, Clone)]
pub struct CtCollector {
    now: i64,
    include_expired: bool,
    /// (issuer id, serial) or ("id", crt.sh id) of every row seen.
    seen: HashSet<(String, String)>,
    certs: BTreeMap<u64, CtCert>,
    pub stats: CtStats,
}

impl CtCollector {
    /// `now`: seconds since the Unix epoch, to tell expired certificates.
    pub fn new(now: i64, include_expired: bool) -> CtCollector {
        CtCollector {
            now,
            include_expired,
            seen: HashSet::new(),
            certs: BTreeMap::new(),
            stats: CtStats::default(),
        }
    }

    /// Fold in one answer (`source_name` names it in errors: the URL or the file). `domains`:
    /// the asked domains (normalised); a certificate must name one of them or a name under one
    /// (none: every certificate counts).
    pub fn add(&mut self, source_name: &str, body: &[u8], domains: &[String]) -> Result<(), NotAnAnswer> {
        let rows: Vec<serde_json::Value> = serde_json::from_slice(body).map_err(|e| NotAnAnswer {
            source_name: source_name.to_string(),
            detail: e.to_string(),
        })?;
        self.stats.beyond_limit += rows.len().saturating_sub(MAX_ROWS);
        for value in rows.into_iter().take(MAX_ROWS) {
            self.stats.rows += 1;
            match serde_json::from_value::<Row>(value) {
                Ok(row) => self.add_row(row, domains),
                Err(_) => self.stats.malformed += 1,
            }
        }
        Ok(())
    }

    fn add_row(&mut self, row: Row, domains: &[String]) {
        let Some(not_after) = parse_time(&row.not_after) else {
            self.stats.malformed += 1;
            return;
        };
        let key = match (row.issuer_ca_id, row.serial_number.as_deref()) {
            (Some(ca), Some(serial)) if !serial.is_empty() => (ca.to_string(), serial.to_ascii_lowercase()),
            _ => ("id".to_string(), row.id.to_string()),
        };
        if !self.seen.insert(key) {
            self.stats.duplicates += 1;
            return;
        }
        if not_after < self.now && !self.include_expired {
            self.stats.expired += 1;
            return;
        }
        let mut names = BTreeSet::new();
        let mut wildcards = BTreeSet::new();
        for raw in row.name_value.split('\n') {
            match ct_name(raw) {
                Some(CtName::Concrete(n)) => {
                    names.insert(n);
                }
                Some(CtName::Wildcard(w)) => {
                    wildcards.insert(w);
                }
                None if raw.trim().is_empty() => {}
                None => self.stats.bad_names += 1,
            }
        }
        // The common name is usually among the SANs; an organisation name there is no host.
        match row.common_name.as_deref().and_then(ct_name) {
            Some(CtName::Concrete(n)) => {
                names.insert(n);
            }
            Some(CtName::Wildcard(w)) => {
                wildcards.insert(w);
            }
            None => {}
        }
        let related = domains.is_empty()
            || names.iter().any(|n| within(n, domains))
            || wildcards
                .iter()
                .any(|w| within(w.trim_start_matches("*."), domains));
        if !related {
            self.stats.unrelated += 1;
            return;
        }
        self.certs.insert(
            row.id,
            CtCert {
                id: row.id,
                issuer: row.issuer_name.unwrap_or_default(),
                names: names.into_iter().collect(),
                wildcards: wildcards.into_iter().collect(),
                not_after,
            },
        );
    }

    /// The certificates kept, by crt.sh id.
    pub fn finish(self) -> (Vec<CtCert>, CtStats) {
        (self.certs.into_values().collect(), self.stats)
    }
}

/// A name from a certificate, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtName {
    Concrete(String),
    /// `*.` and the normalised rest.
    Wildcard(String),
}

/// A certificate's name as a watch-file name, or a wildcard; None when it is no host name
/// (an e-mail address, an IP address, a partial wildcard, garbage).
pub fn ct_name(raw: &str) -> Option<CtName> {
    let raw = raw.trim();
    if raw.is_empty() || raw.contains(['@', ' ', '/', ':']) {
        return None;
    }
    let (wild, rest) = match raw.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    if rest.contains('*') {
        return None;
    }
    let name = normalize_host(rest).ok()?;
    // IP literals are no names to coalesce by; a wildcard needs two labels after it.
    if name.parse::<std::net::IpAddr>().is_ok() || !name.contains('.') && wild {
        return None;
    }
    Some(if wild {
        CtName::Wildcard(format!("*.{name}"))
    } else {
        CtName::Concrete(name)
    })
}

/// Is `name` one of `domains` or under one?
pub fn within(name: &str, domains: &[String]) -> bool {
    domains.iter().any(|d| {
        name == d
            || name
                .strip_suffix(d.as_str())
                .is_some_and(|head| head.ends_with('.'))
    })
}

/// crt.sh's `2024-07-30T09:00:00` (UTC, optionally with fractional seconds and a `Z`) as
/// seconds since the Unix epoch.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim().trim_end_matches('Z');
    let (main, fraction) = text.split_once('.').unwrap_or((text, "0"));
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (date, clock) = main.split_once(['T', ' '])?;
    let numbers = |s: &str, sep: char| -> Option<Vec<u32>> {
        s.split(sep)
            .map(|p| (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse().ok())?)
            .collect()
    };
    let (d, c) = (numbers(date, '-')?, numbers(clock, ':')?);
    let ([y, mo, da], [h, mi, s]) = (<[u32; 3]>::try_from(d).ok()?, <[u32; 3]>::try_from(c).ok()?);
    let month = time::Month::try_from(u8::try_from(mo).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(da).ok()?).ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(h).ok()?,
        u8::try_from(mi).ok()?,
        u8::try_from(s).ok()?,
    )
    .ok()?;
    Some(
        time::PrimitiveDateTime::new(date, clock)
            .assume_utc()
            .unix_timestamp(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000; // 2026-05-28

    fn row(id: u64, serial: &str, names: &str, not_after: &str) -> String {
        format!(
            r#"{{"issuer_ca_id":295810,"issuer_name":"C=US, O=Let's Encrypt, CN=R11","common_name":"{}","name_value":"{names}","id":{id},"entry_timestamp":"2026-05-01T10:00:00.123","not_before":"2026-05-01T09:00:00","not_after":"{not_after}","serial_number":"{serial}","result_count":2}}"#,
            names.split("\\n").next().unwrap_or("")
        )
    }

    fn collect(body: &str, domains: &[&str], include_expired: bool) -> (Vec<CtCert>, CtStats) {
        let mut c = CtCollector::new(NOW, include_expired);
        let domains: Vec<String> = domains.iter().map(|d| d.to_string()).collect();
        c.add("test", body.as_bytes(), &domains).unwrap();
        c.finish()
    }

    #[test]
    fn rows_become_certificates() {
        let body = format!(
            "[{},{},{},{}]",
            row(
                1,
                "04ab",
                "example.com\\nWWW.Example.COM.\\n*.example.com",
                "2027-01-01T00:00:00"
            ),
            // The precertificate of the same issuance: same issuer and serial.
            row(2, "04AB", "example.com\\nwww.example.com", "2027-01-01T00:00:00"),
            row(
                3,
                "05cd",
                "api.example.com\\nother.example.net",
                "2027-01-01T00:00:00"
            ),
            row(4, "06ef", "old.example.com", "2020-01-01T00:00:00"),
        );
        let (certs, stats) = collect(&body, &["example.com"], false);
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[0].names, vec!["example.com", "www.example.com"]);
        assert_eq!(certs[0].wildcards, vec!["*.example.com"]);
        assert_eq!(certs[0].issuer, "C=US, O=Let's Encrypt, CN=R11");
        // A name outside the asked domain is kept: it is on the same certificate.
        assert_eq!(certs[1].names, vec!["api.example.com", "other.example.net"]);
        assert_eq!(stats.duplicates, 1);
        assert_eq!(stats.expired, 1);
        assert_eq!(stats.rows, 4);
        let (certs, stats) = collect(&body, &["example.com"], true);
        assert_eq!((certs.len(), stats.expired), (3, 0));
    }

    #[test]
    fn malformed_rows_are_counted_and_skipped() {
        let good = row(1, "01", "a.example.com", "2027-01-01T00:00:00");
        let body = format!(
            r#"[{good}, 17, "text", null, {{"id":"x","name_value":"b.example.com","not_after":"2027-01-01T00:00:00"}},
               {{"id":5,"not_after":"2027-01-01T00:00:00"}},
               {{"id":6,"name_value":"c.example.com","not_after":"soon"}},
               {{"id":7,"name_value":"d.example.com","not_after":"2027-13-01T00:00:00"}},
               {{"id":8,"name_value":"e.example.com","not_after":"2027-01-01T00:00:00"}}]"#
        );
        let (certs, stats) = collect(&body, &["example.com"], false);
        let names: Vec<&str> = certs
            .iter()
            .flat_map(|c| c.names.iter().map(String::as_str))
            .collect();
        // Row 8 lacks the optional fields only: it is a row (deduplicated by its id).
        assert_eq!(names, vec!["a.example.com", "e.example.com"]);
        assert_eq!(stats.malformed, 7);
        assert_eq!(stats.rows, 9);
    }

    #[test]
    fn not_an_array_is_an_error_naming_the_source() {
        let mut c = CtCollector::new(NOW, false);
        let e = c
            .add("https://ct.test/?q=x", b"<html>busy</html>", &[])
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("https://ct.test/?q=x: not a crt.sh JSON answer"),
            "{e}"
        );
        assert!(c.add("f", b"{\"a\":1}", &[]).is_err());
    }

    #[test]
    fn certificates_naming_nothing_asked_are_left_out() {
        let body = format!(
            "[{},{}]",
            row(1, "01", "unrelated.example.org", "2027-01-01T00:00:00"),
            row(2, "02", "*.shop.example.com\\nexample.org", "2027-01-01T00:00:00"),
        );
        let (certs, stats) = collect(&body, &["example.com"], false);
        assert_eq!(stats.unrelated, 1);
        assert_eq!(certs.len(), 1, "a wildcard under the domain relates it");
        assert_eq!(certs[0].names, vec!["example.org"]);
        let (certs, stats) = collect(&body, &[], false);
        assert_eq!(
            (certs.len(), stats.unrelated),
            (2, 0),
            "no domain: every certificate"
        );
    }

    #[test]
    fn names_are_normalised_like_the_watch_file() {
        let cases: &[(&str, Option<CtName>)] = &[
            (
                "Www.Example.COM.",
                Some(CtName::Concrete("www.example.com".into())),
            ),
            (
                "  api.example.com ",
                Some(CtName::Concrete("api.example.com".into())),
            ),
            (
                "bücher.example",
                Some(CtName::Concrete("xn--bcher-kva.example".into())),
            ),
            (
                "xn--bcher-kva.example",
                Some(CtName::Concrete("xn--bcher-kva.example".into())),
            ),
            ("*.Example.com", Some(CtName::Wildcard("*.example.com".into()))),
            (
                "*.bücher.example",
                Some(CtName::Wildcard("*.xn--bcher-kva.example".into())),
            ),
            ("*.com", None),
            ("w*.example.com", None),
            ("*.*.example.com", None),
            ("admin@example.com", None),
            ("192.0.2.1", None),
            ("Example Corp", None),
            ("", None),
            ("a..b", None),
        ];
        for (raw, want) in cases {
            assert_eq!(&ct_name(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn times_are_read_as_utc() {
        assert_eq!(parse_time("1970-01-01T00:00:00"), Some(0));
        assert_eq!(parse_time("2024-07-30T09:00:00"), Some(1_722_330_000));
        assert_eq!(parse_time("2024-07-30T09:00:00.123"), Some(1_722_330_000));
        assert_eq!(parse_time("2024-07-30T09:00:00Z"), Some(1_722_330_000));
        for bad in [
            "",
            "2024-07-30",
            "2024-02-30T00:00:00",
            "2024-07-30T25:00:00",
            "x-y-zTa:b:c",
            "2024-07-30T09:00:00.x",
        ] {
            assert_eq!(parse_time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn within_means_the_domain_or_under_it() {
        let d = vec!["example.com".to_string()];
        assert!(within("example.com", &d));
        assert!(within("a.b.example.com", &d));
        assert!(!within("notexample.com", &d));
        assert!(!within("example.com.evil", &d));
    }
}
