//! What servers tell clients beyond the certificate and DNS, judged: the ORIGIN frame
//! (RFC 8336), Alt-Svc (RFC 7838) and HTTPS records (RFC 9460). Host findings from one host's
//! own records, pair findings from a pair's policy and verdict, and the endpoint report's
//! fields.

use std::net::SocketAddr;

use crate::engine::judge::policy::PairPolicy;
use crate::engine::probe::cert;
use crate::engine::probe::signals::{origin_of, AltSvcSource, FrameAnomaly, ServerSignals};
use crate::engine::record::{EndpointRecord, H3Record, HostRecord};
use crate::engine::snapshot::{
    AltSvcReport, CoalesceRule, Finding, FindingKind, PairAddressReport, Severity, Verdict,
};

use super::format::{addr_text, first_of};

fn finding(kind: FindingKind, severity: Severity, message: String) -> Finding {
    Finding {
        kind,
        severity,
        message,
    }
}

/// The host findings about what its servers and its DNS answer signal: ORIGIN entries the
/// certificate does not cover, odd frames, HTTPS records without h2 for a name serving h2,
/// HTTP/3 advertised. In address order, then the DNS ones.
pub(crate) fn host_findings(findings: &mut Vec<Finding>, h: &HostRecord) {
    let mut h3_sources: Vec<String> = Vec::new();
    for (addr, ep) in &h.endpoints {
        let Some(signals) = ep.signals.as_deref() else {
            continue;
        };
        let a = addr_text(addr);
        origin_findings(findings, &a, ep, signals);
        if signals.offers_h3() {
            let source = if signals.alt_svc.iter().any(|x| x.source == AltSvcSource::Frame) {
                "ALTSVC frame"
            } else {
                "Alt-Svc header"
            };
            h3_sources.push(format!("{source} at {a}"));
        }
    }
    let serves_h2 = h
        .endpoints
        .values()
        .any(|ep| ep.tls.as_ref().is_some_and(|t| t.alpn.as_deref() == Some("h2")));
    let own: Vec<_> = h
        .dns
        .https
        .iter()
        .filter(|r| r.is_service() && (r.target.is_empty() || r.target.eq_ignore_ascii_case(&h.entry.host)))
        .collect();
    if serves_h2 && !own.is_empty() && own.iter().all(|r| !r.offers_h2()) {
        findings.push(finding(
            FindingKind::HttpsRecordNoH2,
            Severity::Warning,
            format!(
                "the HTTPS DNS records of {} offer {} but not h2, while its servers negotiate h2: Chromium does not pool it onto HTTP/2 connections opened for other names, and clients that follow the records skip HTTP/2. Add h2 to the records' alpn",
                h.entry.host,
                own.iter()
                    .flat_map(|r| r.alpn.iter())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(",")
                    .chars()
                    .take(80)
                    .collect::<String>()
            ),
        ));
    }
    if own.iter().any(|r| r.offers_h3()) {
        h3_sources.push("HTTPS DNS record".to_string());
    }
    if !h3_sources.is_empty() {
        let (severity, probed) = h3_probed(h);
        findings.push(finding(
            FindingKind::H3Advertised,
            severity,
            format!(
                "{} advertises HTTP/3 ({}): browsers move there, where coalescing follows the same certificate rules and a server may refuse coalesced requests differently; {probed}",
                h.entry.host,
                first_of(&h3_sources)
            ),
        ));
    }
}

/// What the HTTP/3 probes of `h` found, said after its advertisement: a warning when QUIC
/// handshakes failed (browsers that try HTTP/3 there wait, then fall back).
fn h3_probed(h: &HostRecord) -> (Severity, String) {
    let probed: Vec<(String, &H3Record)> = h
        .endpoints
        .iter()
        .filter_map(|(&addr, ep)| {
            ep.h3
                .as_deref()
                .map(|r| (SocketAddr::new(addr, r.port).to_string(), r))
        })
        .collect();
    if probed.is_empty() {
        return (Severity::Info, "this run probed HTTP/2 only".to_string());
    }
    let failed: Vec<String> = probed
        .iter()
        .filter_map(|(at, r)| {
            r.handshake_errors.first().map(|e| {
                format!(
                    "{at}: {} of {} QUIC handshakes failed ({e})",
                    r.handshake_errors.len(),
                    r.handshakes
                )
            })
        })
        .collect();
    if failed.is_empty() {
        let at: Vec<String> = probed.into_iter().map(|(at, _)| at).collect();
        return (
            Severity::Info,
            format!("probed over HTTP/3 at {} (UDP)", first_of(&at)),
        );
    }
    (
        Severity::Warning,
        format!(
            "over HTTP/3, {}: browsers that try it wait for the handshake, then fall back to HTTP/2",
            first_of(&failed)
        ),
    )
}

/// ORIGIN entries the certificate at `a` does not cover, and frames that were odd.
fn origin_findings(findings: &mut Vec<Finding>, a: &str, ep: &EndpointRecord, signals: &ServerSignals) {
    if let (Some(set), Some(leaf)) = (&signals.origin, ep.leaf()) {
        let uncovered: Vec<String> = set
            .origins
            .iter()
            .filter(|o| {
                let host = origin_host(o);
                cert::covering_san(leaf, host).is_none()
            })
            .cloned()
            .collect();
        if !uncovered.is_empty() {
            findings.push(finding(
                FindingKind::OriginFrameUncovered,
                Severity::Warning,
                format!(
                    "the ORIGIN frame at {a} lists {} that the certificate does not cover: clients ignore those entries (RFC 8336 §2.4), so nothing is pooled for them",
                    first_of(&uncovered)
                ),
            ));
        }
    }
    let mut odd: Vec<String> = signals.anomalies.iter().map(anomaly_text).collect();
    if let Some(set) = &signals.origin {
        if set.invalid > 0 {
            odd.push(format!("{} entries that are not an origin", set.invalid));
        }
        if set.dropped > 0 {
            odd.push(format!(
                "{} entries beyond the {} kept",
                set.dropped,
                set.origins.len()
            ));
        }
    }
    if signals.anomalies_dropped > 0 {
        odd.push(format!("{} more", signals.anomalies_dropped));
    }
    if !odd.is_empty() {
        findings.push(finding(
            FindingKind::OriginFrameMalformed,
            Severity::Warning,
            format!("the server at {a} sent odd HTTP/2 frames: {}", odd.join("; ")),
        ));
    }
}

fn anomaly_text(a: &FrameAnomaly) -> String {
    match a {
        FrameAnomaly::OriginOnStream(id) => format!("an ORIGIN frame on stream {id} (ignored)"),
        FrameAnomaly::Oversized { frame_type, length } => {
            format!(
                "a {} frame of {length} bytes, over the frame size limit",
                frame_name(*frame_type)
            )
        }
        FrameAnomaly::Malformed { frame_type } => format!("a malformed {} frame", frame_name(*frame_type)),
        FrameAnomaly::Flood { frame_type } => {
            format!("too many {} frames (the rest unread)", frame_name(*frame_type))
        }
    }
}

fn frame_name(frame_type: u8) -> String {
    match frame_type {
        0x0a => "ALTSVC".to_string(),
        0x0c => "ORIGIN".to_string(),
        t => format!("type-{t:#04x}"),
    }
}

/// The host of an ASCII origin `https://host[:port]` (the frame reader keeps only those).
fn origin_host(origin: &str) -> &str {
    let rest = origin.split_once("://").map_or(origin, |(_, r)| r);
    if let Some(v6) = rest.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    rest.rsplit_once(':').map_or(rest, |(h, _)| h)
}

/// The endpoint report's ORIGIN set and Alt-Svc alternatives.
pub(crate) fn endpoint_signals(ep: &EndpointRecord) -> (Option<Vec<String>>, Vec<AltSvcReport>) {
    let Some(s) = ep.signals.as_deref() else {
        return (None, Vec::new());
    };
    let alt = s
        .alt_svc
        .iter()
        .map(|x| AltSvcReport {
            protocol: x.protocol.clone(),
            host: x.host.clone(),
            port: x.port,
            max_age_s: x.max_age,
            source: match x.source {
                AltSvcSource::Header => "header",
                AltSvcSource::Frame => "frame",
            }
            .to_string(),
        })
        .collect();
    (s.origin.as_ref().map(|o| o.origins.clone()), alt)
}

/// The pair's findings: the ORIGIN frame lists the target and the server refuses or misroutes
/// it there (Firefox pools it whatever DNS says: its users get the errors); or it leaves out a
/// target the server answers fine on the origin's connection (Firefox loses the pooling).
pub(crate) fn pair_findings(
    (a, b): (&str, &HostRecord),
    policy: &PairPolicy,
    verdict: Verdict,
    addresses: &[PairAddressReport],
) -> Vec<Finding> {
    // The worst verdict at the addresses where the ORIGIN frame made Firefox pool: the pair's
    // verdict may come from an address where only Chromium pools.
    let framed = addresses
        .iter()
        .filter(|x| {
            policy
                .origin_frame_addrs
                .iter()
                .any(|f| addr_text(f) == x.address)
        })
        .map(|x| x.verdict);
    let framed = Verdict::worst(framed);
    let b_origin = origin_of(&b.entry.host, b.entry.port);
    let b = b.entry.host.as_str();
    match policy.firefox_rule {
        CoalesceRule::OriginFrame
            if framed.is_some_and(|v| v.is_problem() && v != Verdict::DirectBroken) =>
        {
            let verdict = framed.unwrap_or(verdict);
            let only = if policy.shared.is_empty() {
                " (DNS alone would keep them apart)"
            } else {
                ""
            };
            let answer = match verdict {
                Verdict::Misrouted => "answers them with another site's page",
                Verdict::Intermittent => "refuses some of them",
                _ => "refuses them",
            };
            vec![finding(
                FindingKind::OriginAdvertisedRefused,
                Severity::Error,
                format!(
                    "{a}'s server lists {b} in its ORIGIN frame, so Firefox sends requests for {b} on {a}'s connection{only}, and the server {answer}: remove {b} from the ORIGIN frame, or serve it there"
                ),
            )]
        }
        CoalesceRule::OriginFrameExcludes if verdict == Verdict::Ok => vec![finding(
            FindingKind::OriginOmitsServed,
            Severity::Info,
            format!(
                "{a}'s server leaves {b} out of its ORIGIN frame although it answers {b} fine on {a}'s connection: Firefox opens a separate connection for {b}; list {b_origin} in the ORIGIN frame to let it pool"
            ),
        )],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_an_origin() {
        assert_eq!(origin_host("https://b.example"), "b.example");
        assert_eq!(origin_host("https://b.example:8443"), "b.example");
        assert_eq!(origin_host("https://[2001:db8::1]:8443"), "2001:db8::1");
        assert_eq!(origin_host("https://[2001:db8::1]"), "2001:db8::1");
    }

    fn at(address: &str, verdict: Verdict) -> PairAddressReport {
        PairAddressReport {
            address: address.into(),
            verdict,
            probes: 3,
            statuses: Default::default(),
            direct_statuses: Default::default(),
            errors: 0,
            misrouted: 0,
            clients: vec![],
            dynamic: false,
            content: None,
            looked_like: None,
            refusals: Default::default(),
            refusal_rate: None,
            backends: vec![],
        }
    }

    fn host(name: &str, port: u16) -> HostRecord {
        HostRecord {
            entry: crate::watchlist::Entry {
                host: name.into(),
                port,
                path: None,
                line: 1,
            },
            key: format!("{name}:{port}").into(),
            path: "/".into(),
            dns: Default::default(),
            endpoints: Default::default(),
        }
    }

    fn kinds(f: &[Finding]) -> Vec<FindingKind> {
        f.iter().map(|f| f.kind).collect()
    }

    /// The refusal counts against the ORIGIN frame only where the frame made Firefox pool: A at
    /// X (frame lists B, B served fine) and Y (frame leaves B out, 421 for Chromium there).
    #[test]
    fn an_advertised_name_is_refused_only_where_the_frame_pools_it() {
        let (x, y) = ("192.0.2.1", "192.0.2.2");
        let policy = PairPolicy {
            firefox: true,
            chrome: true,
            firefox_rule: CoalesceRule::OriginFrame,
            chrome_rule: CoalesceRule::IpMatch,
            origin_frame_addrs: vec![x.parse().unwrap()],
            ..PairPolicy::default()
        };
        let b = host("b.example", 443);
        let fine_where_framed = [at(x, Verdict::Ok), at(y, Verdict::Misdirected)];
        let f = pair_findings(
            ("a.example", &b),
            &policy,
            Verdict::Misdirected,
            &fine_where_framed,
        );
        assert!(f.is_empty(), "{f:?}");
        let refused_where_framed = [at(x, Verdict::Misdirected), at(y, Verdict::Ok)];
        let f = pair_findings(
            ("a.example", &b),
            &policy,
            Verdict::Misdirected,
            &refused_where_framed,
        );
        assert_eq!(kinds(&f), [FindingKind::OriginAdvertisedRefused]);
    }

    /// The fix names the origin exactly as the ORIGIN frame must list it, port included.
    #[test]
    fn an_omitted_name_is_quoted_as_an_origin() {
        let policy = PairPolicy {
            chrome: true,
            firefox_rule: CoalesceRule::OriginFrameExcludes,
            ..PairPolicy::default()
        };
        let b = host("b.example", 8443);
        let f = pair_findings(("a.example", &b), &policy, Verdict::Ok, &[]);
        assert_eq!(kinds(&f), [FindingKind::OriginOmitsServed]);
        assert!(
            f[0].message.contains("list https://b.example:8443 in"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn uncovered_origins_are_quoted_with_how_many_more() {
        let names: Vec<String> = (0..7).map(|i| format!("n{i}")).collect();
        assert_eq!(first_of(&names), "n0, n1, n2, n3, n4 and 2 more");
        assert_eq!(first_of(&names[..2]), "n0, n1");
    }
}
