//! A host's report: its DNS answer, what each address showed (handshake, certificate,
//! direct answers) and the findings about it.

use crate::engine::probe::cert;
use crate::engine::probe::dns::HttpsRecord;
use crate::engine::probe::error::ProbeError;
use crate::engine::probe::tls::TlsInfo;
use crate::engine::record::{EndpointRecord, HostRecord};
use crate::engine::snapshot::{
    CertReport, DirectReport, DnsReport, DnsStaleReport, EndpointReport, Finding, FindingKind, HostReport,
    HttpsRecordReport, Severity, Timestamp,
};

use super::format::{addr_text, bounded, count_statuses, first_of, median_ms, most_frequent, summarise_sans};

/// Certificates expiring within this many days get a warning.
const EXPIRY_WARNING_DAYS: i64 = 14;

fn finding(kind: FindingKind, severity: Severity, message: String) -> Finding {
    Finding {
        kind,
        severity,
        message,
    }
}

/// The report of host `h` at unix time `now` (a certificate's days left depend on it).
/// Findings come in a fixed order: DNS, then per address (no-h2, sni-mismatch, cert-invalid
/// or cert-expiring), then those about the whole host.
pub(crate) fn host_report(h: &HostRecord, now: i64) -> HostReport {
    let mut findings = Vec::new();
    if let Some(e) = &h.dns.error {
        findings.push(finding(
            FindingKind::DnsError,
            Severity::Error,
            format!("DNS lookup of {} failed: {e}", h.entry.host),
        ));
    }
    if let Some(stale) = &h.dns.stale {
        findings.push(finding(
            FindingKind::DnsStale,
            Severity::Warning,
            format!(
                "DNS lookups of {} fail ({}): the last good answer is used until {}",
                h.entry.host,
                stale.error,
                Timestamp::from_unix(stale.until)
            ),
        ));
    }
    let mut endpoints = Vec::with_capacity(h.endpoints.len());
    // Addresses where every direct answer was a 421, and where no handshake succeeded.
    let mut refused = Vec::new();
    let mut unreachable = Vec::new();
    for (addr, ep) in &h.endpoints {
        let a = addr_text(addr);
        if refuses_its_own_name(ep) {
            refused.push(a.clone());
        }
        let cert = ep.tls.as_ref().map(|tls| cert_report(&h.entry.host, ep, tls));
        match (&ep.tls, &cert) {
            (Some(tls), Some(c)) => endpoint_findings(&mut findings, h, &a, ep, tls, c, now),
            _ => {
                let err = ep
                    .handshake_errors
                    .last()
                    .map_or_else(|| "not probed".to_string(), ProbeError::to_string);
                unreachable.push(format!("{a} ({err})"));
            }
        }
        endpoints.push(endpoint_report(a, ep, cert));
    }
    host_findings(&mut findings, h, &refused, &unreachable);
    super::signals::host_findings(&mut findings, h);
    super::oddities::host_findings(&mut findings, h);
    HostReport {
        host: h.entry.host.clone(),
        port: h.entry.port,
        path: h.path.clone(),
        line: h.entry.line,
        addresses: h.dns.addresses.iter().map(addr_text).collect(),
        dns: DnsReport {
            cnames: h.dns.cnames.clone(),
            ttl_s: h.dns.ttl_s,
            error: h.dns.error.clone(),
            overridden: h.dns.overridden,
            elapsed_ms: (h.dns.elapsed.as_secs_f64() * 1e5).round() / 100.0,
            https: h.dns.https.iter().map(https_report).collect(),
            https_error: h.dns.https_error.clone(),
            stale: h.dns.stale.as_ref().map(|s| DnsStaleReport {
                since: Timestamp::from_unix(s.since),
                until: Timestamp::from_unix(s.until),
                error: s.error.clone(),
            }),
        },
        endpoints,
        findings,
    }
}

fn https_report(r: &HttpsRecord) -> HttpsRecordReport {
    HttpsRecordReport {
        priority: r.priority,
        target: r.target.clone(),
        alpn: r.alpn.clone(),
        no_default_alpn: r.no_default_alpn,
        port: r.port,
        ipv4hint: r.ipv4hint.iter().map(ToString::to_string).collect(),
        ipv6hint: r.ipv6hint.iter().map(ToString::to_string).collect(),
        ech: r.ech,
        ttl_s: r.ttl_s,
    }
}

/// Every direct answer a 421: the server refuses the name on its own connection.
fn refuses_its_own_name(ep: &EndpointRecord) -> bool {
    let mut answered = ep.references().filter_map(|o| o.as_ref().ok()).peekable();
    answered.peek().is_some() && answered.all(|x| x.status == 421)
}

/// What the handshake at address `a` showed: no h2, a certificate that does not cover the
/// name, or one that is invalid or expiring soon.
fn endpoint_findings(
    findings: &mut Vec<Finding>,
    h: &HostRecord,
    a: &str,
    ep: &EndpointRecord,
    tls: &TlsInfo,
    c: &CertReport,
    now: i64,
) {
    if tls.alpn.as_deref() != Some("h2") {
        findings.push(finding(
            FindingKind::NoH2,
            Severity::Warning,
            format!(
                "{a} negotiated {} instead of h2: browsers never coalesce onto this host's connections",
                tls.alpn.as_deref().unwrap_or("no ALPN protocol")
            ),
        ));
    }
    // Only a certificate that could be read can fail to cover the name (an unreadable or
    // missing one is `cert-invalid`).
    if !c.covers_host && ep.leaf().is_some() {
        findings.push(finding(
            FindingKind::SniMismatch,
            Severity::Error,
            format!(
                "the certificate served at {a} for SNI {} does not cover it (SANs: {})",
                h.entry.host,
                summarise_sans(&c.sans)
            ),
        ));
    }
    if let Some(e) = &c.error {
        findings.push(finding(
            FindingKind::CertInvalid,
            Severity::Error,
            format!(
                "the certificate served at {a} is not valid: {e} (issuer {}, not after {})",
                bounded(&c.issuer),
                c.not_after.map(|t| t.to_string()).unwrap_or_default()
            ),
        ));
    } else if let Some(leaf) = ep.leaf() {
        let days = (leaf.not_after - now) / 86_400;
        if days < EXPIRY_WARNING_DAYS {
            findings.push(finding(
                FindingKind::CertExpiring,
                Severity::Warning,
                format!(
                    "the certificate served at {a} expires in {days} days ({})",
                    Timestamp::from_unix(leaf.not_after)
                ),
            ));
        }
    }
}

/// The findings about the whole host: refused on its own connection, unreachable, no HTTP
/// answer, more addresses than are probed.
fn host_findings(findings: &mut Vec<Finding>, h: &HostRecord, refused: &[String], unreachable: &[String]) {
    if !refused.is_empty() {
        findings.push(finding(
            FindingKind::DirectMisdirected,
            Severity::Error,
            format!(
                "every direct request for {host} at {} got 421 Misdirected Request on a connection opened for {host} itself (SNI = Host): \
                 the server refuses the name even without coalescing, e.g. an SNI≠Host rule that compares a Host header carrying :port, or no site for this name",
                first_of(refused),
                host = h.entry.host
            ),
        ));
    }
    if !unreachable.is_empty() {
        let severity = if unreachable.len() == h.endpoints.len() {
            Severity::Error
        } else {
            Severity::Warning
        };
        findings.push(finding(
            FindingKind::Unreachable,
            severity,
            format!(
                "no TLS connection for {} to {}",
                h.entry.host,
                first_of(unreachable)
            ),
        ));
    }
    if let Some(f) = http_error_finding(h) {
        findings.push(f);
    }
    if h.dns.dropped > 0 {
        findings.push(finding(
            FindingKind::AddressesCapped,
            Severity::Warning,
            format!(
                "{} has {} addresses; only the first {} are probed",
                h.entry.host,
                h.dns.addresses.len() + h.dns.dropped,
                h.dns.addresses.len()
            ),
        ));
    }
}

/// One address of the host: its handshake, certificate and direct answers (on its own
/// connections: the first request of its origin probes, and direct requests).
fn endpoint_report(address: String, ep: &EndpointRecord, cert: Option<CertReport>) -> EndpointReport {
    let statuses = count_statuses(ep.references());
    let http1_statuses = count_statuses(&ep.direct_http1);
    let direct_errors: Vec<&ProbeError> = ep.references().filter_map(|o| o.as_ref().err()).collect();
    let (origin_frame, alt_svc) = super::signals::endpoint_signals(ep);
    EndpointReport {
        address,
        alpn: ep.tls.as_ref().and_then(|t| t.alpn.clone()),
        tls_version: ep.tls.as_ref().map(|t| t.version.clone()),
        cert,
        direct: DirectReport {
            status: most_frequent(&statuses),
            error: direct_errors.last().map(|e| e.to_string()),
            statuses,
            errors: direct_errors.len() as u32,
            version: ep
                .direct
                .iter()
                .rev()
                .chain(ep.own.iter().rev().map(|c| &c.outcome))
                .find_map(|o| o.as_ref().ok())
                .map(|a| a.version.clone()),
            http1_statuses,
        },
        error: if ep.tls.is_none() {
            ep.handshake_errors.last().map(ProbeError::to_string)
        } else {
            None
        },
        handshakes: ep.handshakes,
        handshake_errors: ep.handshake_errors.len() as u32,
        connect_ms: median_ms(&ep.connect_times),
        tls_ms: median_ms(&ep.tls_times),
        origin_frame,
        alt_svc,
    }
}

/// Until when (unix seconds, exclusive) `host_report(h, now)` stays what it is at `now`: its
/// only part that moves with time is the days a certificate has left.
pub(crate) fn host_report_valid_until(h: &HostRecord, now: i64) -> i64 {
    h.endpoints
        .values()
        .filter_map(|ep| ep.leaf())
        .map(|leaf| next_day_change(leaf.not_after, now))
        .min()
        .unwrap_or(i64::MAX)
}

/// The first second after `now` at which the whole days left before `not_after` (as
/// `host_report` counts them, capped at the warning threshold) differ from those at `now`.
fn next_day_change(not_after: i64, now: i64) -> i64 {
    let q = (not_after - now) / 86_400;
    if q >= EXPIRY_WARNING_DAYS {
        not_after - EXPIRY_WARNING_DAYS * 86_400 + 1
    } else if q >= 1 {
        not_after - q * 86_400 + 1
    } else {
        not_after + (q.abs() + 1) * 86_400
    }
}

/// `http-error`: direct requests that got no HTTP answer at all (reset, GOAWAY, timeout, a
/// malformed response) at the addresses where the TLS handshake worked (where it did not,
/// `unreachable` says so already). Error when every such request failed, warning when some.
fn http_error_finding(h: &HostRecord) -> Option<Finding> {
    let reached = h.endpoints.iter().filter(|(_, ep)| ep.tls.is_some());
    let mut total = 0usize;
    let mut failed = 0usize;
    let mut examples = Vec::new();
    for (addr, ep) in reached {
        total += ep.references().count();
        let errors: Vec<&ProbeError> = ep.references().filter_map(|o| o.as_ref().err()).collect();
        failed += errors.len();
        if let Some(e) = errors.last() {
            examples.push(format!("{} ({e})", addr_text(addr)));
        }
    }
    if failed == 0 {
        return None;
    }
    let severity = if failed == total {
        Severity::Error
    } else {
        Severity::Warning
    };
    Some(Finding {
        kind: FindingKind::HttpError,
        severity,
        message: format!(
            "{failed} of {total} direct requests to {} got no HTTP answer: {}",
            h.entry.host,
            first_of(&examples)
        ),
    })
}

fn cert_report(host: &str, ep: &EndpointRecord, tls: &TlsInfo) -> CertReport {
    match &ep.cert {
        Some(Ok(c)) => {
            let covering = cert::covering_san(c, host);
            CertReport {
                sans: c.dns_sans.clone(),
                ip_sans: c.ip_sans.iter().map(addr_text).collect(),
                subject: c.subject.clone(),
                issuer: c.issuer.clone(),
                not_before: Some(Timestamp::from_unix(c.not_before)),
                not_after: Some(Timestamp::from_unix(c.not_after)),
                trusted: tls.chain_error.is_none(),
                covers_host: covering.is_some(),
                covering_san: covering,
                error: tls.chain_error.clone(),
                chain_len: tls.chain.len(),
                sha256: c.sha256.clone(),
            }
        }
        Some(Err(e)) => unreadable_cert(e.to_string(), tls.chain.len()),
        None => unreadable_cert("certificate: the server sent no certificate".into(), 0),
    }
}

/// The report of a certificate that could not be read (or was not sent): only why.
fn unreadable_cert(error: String, chain_len: usize) -> CertReport {
    CertReport {
        sans: vec![],
        ip_sans: vec![],
        subject: String::new(),
        issuer: String::new(),
        not_before: None,
        not_after: None,
        trusted: false,
        covers_host: false,
        covering_san: None,
        error: Some(error),
        chain_len,
        sha256: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_changes_are_found_exactly() {
        let days = |na: i64, now: i64| {
            let d = (na - now) / 86_400;
            d.min(EXPIRY_WARNING_DAYS)
        };
        let na = 2_000_000_000;
        for now in (na - 20 * 86_400..na + 5 * 86_400).step_by(4_999) {
            let next = next_day_change(na, now);
            assert!(next > now);
            assert_eq!(days(na, next - 1), days(na, now), "now {now}");
            assert_ne!(days(na, next), days(na, now), "now {now}");
        }
    }

    #[test]
    fn https_records_are_reported_as_answered() {
        let record = HttpsRecord {
            priority: 1,
            target: String::new(),
            alpn: vec!["h3".into(), "h2".into()],
            no_default_alpn: true,
            port: Some(8443),
            ipv4hint: vec![std::net::Ipv4Addr::new(192, 0, 2, 1)],
            ipv6hint: vec!["2001:db8::1".parse().expect("v6")],
            ech: true,
            ttl_s: 300,
        };
        let report = https_report(&record);
        assert_eq!(report.alpn, ["h3", "h2"]);
        assert_eq!((report.priority, report.port, report.ttl_s), (1, Some(8443), 300));
        assert_eq!(
            (report.ipv4hint, report.ipv6hint),
            (vec!["192.0.2.1".to_string()], vec!["2001:db8::1".to_string()])
        );
        assert!(report.no_default_alpn && report.ech && report.target.is_empty());
    }
}
