//! One-line explanations and concrete fix hints for pair verdicts, worded for the ops
//! engineer who just saw a 421. The server is recognised from the `Server` header of the
//! answers on the coalesced connection, when it says who it is.

use std::collections::BTreeMap;

use crate::engine::judge::backends::{Blame, Distinction};
use crate::engine::judge::verdict::Refusal;
use crate::engine::probe::error::H2Reason;
use crate::engine::snapshot::NotCoalescable;
use crate::engine::snapshot::{Content, Verdict};

pub use crate::engine::snapshot::cause::ServerKind;

/// What the explanation needs to know of a pair.
#[derive(Debug, Clone)]
pub struct PairFacts<'a> {
    pub origin: &'a str,
    pub target: &'a str,
    pub verdict: Verdict,
    pub reason: Option<NotCoalescable>,
    /// How the coalesced pages compared with the target's (the furthest, over the addresses
    /// judged `verdict`), and the "host:port" of the site they looked like (other-site).
    pub content: Option<Content>,
    pub looked_like: Option<String>,
    /// The target's page changes between two direct answers.
    pub dynamic: bool,
    /// Addresses (text) at which the pair's own verdict was found, e.g. the misdirected ones.
    pub bad_addresses: Vec<String>,
    /// Addresses where the pair was fine.
    pub good_addresses: Vec<String>,
    pub probes: u32,
    /// Requests refused (421, resets and GOAWAYs clients retry elsewhere), at all addresses.
    pub refused: u32,
    /// The refusals at `bad_addresses`, by kind.
    pub refusals: BTreeMap<Refusal, u32>,
    /// At a bad address, some backends refuse and others do not: which.
    pub blame: Option<Blame>,
    pub misrouted: u32,
    /// Statuses of the misrouted answers and of the direct answers, e.g. "404" and "200".
    pub misrouted_status: Option<u16>,
    pub direct_status: Option<u16>,
    pub direct_error: Option<String>,
    pub http1_status: Option<u16>,
    pub server: ServerKind,
    pub cert_error: Option<String>,
    /// Why the probe could not finish (verdict `error`).
    pub error: Option<String>,
}

/// "shop.example:443" → "shop.example" (a site is named like the pair's hosts).
fn site_name(key: &str) -> &str {
    key.rsplit_once(':').map_or(key, |(host, _)| host)
}

fn at(addresses: &[String]) -> String {
    if addresses.is_empty() {
        String::new()
    } else {
        format!(" at {}", addresses.join(", "))
    }
}

/// What every pair waiting for its first probe says. The same text for all of them (the pair
/// names its hosts), so that a big list's many pending pairs share one copy.
pub const PENDING_WHY: &str = "not probed within the window yet: the request budget reaches part of the pairs per window (see coverage)";
pub const PENDING_FIX: &str =
    "wait for the planner to reach it, or raise --max-rps or --window for more coverage";

/// (explanation, fix hint) of a judged pair: one text per verdict.
pub fn explain(f: &PairFacts<'_>) -> (String, Option<String>) {
    let (a, b) = (f.origin, f.target);
    let direct = match (f.direct_status, &f.direct_error) {
        (Some(s), _) => format!("{s}"),
        (None, Some(e)) => e.clone(),
        (None, None) => "nothing".into(),
    };
    let fine_elsewhere = if f.good_addresses.is_empty() {
        String::new()
    } else {
        format!(" ({} fine)", f.good_addresses.join(", "))
    };
    match f.verdict {
        Verdict::Ok => (ok(f), None),
        Verdict::Misdirected if only_421(f) => (
            format!(
                "every request for {b} on a connection opened for {a}{} got 421 Misdirected Request{fine_elsewhere}; directly {b} answers {direct}",
                at(&f.bad_addresses)
            ),
            Some(misdirected_fix(f.server, a, b)),
        ),
        Verdict::Misdirected => (
            format!(
                "every request for {b} on a connection opened for {a}{} was refused ({}){}{fine_elsewhere}; directly {b} answers {direct}",
                at(&f.bad_addresses),
                refusal_counts(&f.refusals),
                refusal_why(f),
            ),
            Some(refusal_fix(f)),
        ),
        Verdict::Intermittent if only_421(f) => (
            format!(
                "{} of {} requests for {b} on connections opened for {a}{} got 421, the others the right answer: the servers behind the address disagree{}",
                f.refused, f.probes, at(&f.bad_addresses), blame_text(f.blame.as_ref())
            ),
            Some(format!(
                "some backends (or addresses) refuse requests for {b} on connections opened for {a}: find the odd one out and align its configuration ({})",
                misdirected_fix(f.server, a, b)
            )),
        ),
        Verdict::Intermittent => (
            format!(
                "{} of {} requests for {b} on connections opened for {a}{} were refused ({}){}, the others got the right answer: the servers behind the address disagree{}",
                f.refused, f.probes, at(&f.bad_addresses),
                refusal_counts(&f.refusals),
                refusal_why(f),
                blame_text(f.blame.as_ref()),
            ),
            Some(format!(
                "some backends (or addresses) refuse requests for {b} on connections opened for {a}: find the odd one out and align its configuration ({})",
                refusal_fix(f)
            )),
        ),
        Verdict::Misrouted => misrouted(f),
        Verdict::DirectBroken => direct_broken(f, &direct),
        Verdict::Error => (
            format!("the probe of {b} over {a}'s connection could not finish: {}", f.error.as_deref().unwrap_or("unknown error")),
            Some(format!("make {a} reachable over TLS from here, then check again")),
        ),
        Verdict::Pending => (PENDING_WHY.to_string(), Some(PENDING_FIX.to_string())),
        Verdict::NotCoalescable => (not_coalescable(f), None),
    }
}

/// An ok pair: say so, and that the page differs by connection when it does.
fn ok(f: &PairFacts<'_>) -> String {
    let (a, b) = (f.origin, f.target);
    if f.content == Some(Content::Similar) && !f.dynamic {
        format!("browsers put {b} on connections opened for {a}, and the server answers it with {b}'s page ({} probes); the page differs by connection (e.g. it prints the server name it was reached by), not by site", f.probes)
    } else {
        format!("browsers put {b} on connections opened for {a}, and the server answers it as it does directly ({} probes)", f.probes)
    }
}

/// Another site (or another status) answered: say which.
fn misrouted(f: &PairFacts<'_>) -> (String, Option<String>) {
    let (a, b) = (f.origin, f.target);
    let what = match (f.misrouted_status, f.direct_status, &f.looked_like) {
        (Some(m), Some(d), _) if m != d => format!("got {m} where {b} answers {d} directly"),
        (_, _, Some(site)) => format!(
            "got a page that looked like {}'s page, not {b}'s (the wrong site)",
            site_name(site)
        ),
        _ => format!("got a different page than {b} serves directly (the wrong site)"),
    };
    (
        format!(
            "{} requests for {b} on connections opened for {a}{} {what}",
            f.misrouted,
            at(&f.bad_addresses)
        ),
        Some(misrouted_fix(f.server, a, b)),
    )
}

/// The target fails on its own: say whether only its HTTP/2 does.
fn direct_broken(f: &PairFacts<'_>, direct: &str) -> (String, Option<String>) {
    let (a, b) = (f.origin, f.target);
    let h1 = match f.http1_status {
        Some(s) if crate::engine::judge::verdict::is_healthy_status(s) => {
            format!("; over HTTP/1.1 it answers {s}: only its HTTP/2 is broken")
        }
        Some(s) => format!("; over HTTP/1.1 too ({s})"),
        None => String::new(),
    };
    (
        format!("{b} already fails on its own connection ({direct}){h1}: coalescing is not the cause"),
        Some(format!(
            "fix {b} itself first; then check again whether coalescing onto {a} works"
        )),
    )
}

/// "; 1 of 2 backends behind 192.0.2.1 refuses: the one serving certificate …1a2b3c4d".
fn blame_text(blame: Option<&Blame>) -> String {
    let Some(b) = blame else {
        return String::new();
    };
    let verb = if b.refusing == 1 { "refuses" } else { "refuse" };
    let which = match &b.by {
        Some(Distinction::Cert(sha)) => {
            let hex = hex::encode(sha);
            format!(": the one serving certificate …{}", &hex[hex.len() - 8..])
        }
        Some(Distinction::Server(Some(s))) => format!(": the one answering with Server \"{s}\""),
        Some(Distinction::Server(None)) => ": the one sending no Server header".to_string(),
        Some(Distinction::TlsVersion(v)) => format!(": the one negotiating {v}"),
        Some(Distinction::Cipher(c)) => {
            format!(
                ": the one choosing cipher suite {}",
                c.as_deref().unwrap_or("(none)")
            )
        }
        Some(Distinction::Alpn(p)) => {
            format!(": the one choosing ALPN {}", p.as_deref().unwrap_or("(none)"))
        }
        None => String::new(),
    };
    let the_one = if b.refusing == 1 {
        which
    } else {
        which.replace("the one", "such as the one")
    };
    format!(
        "; {} of {} backends behind {} {verb}{the_one}",
        b.refusing, b.backends, b.address
    )
}

/// Were the refusals all 421s (or none counted)?
fn only_421(f: &PairFacts<'_>) -> bool {
    f.refusals.keys().all(|r| *r == Refusal::Status421)
}

/// "3 reset HTTP_1_1_REQUIRED, 1 421".
fn refusal_counts(refusals: &BTreeMap<Refusal, u32>) -> String {
    let mut kinds: Vec<(&Refusal, &u32)> = refusals.iter().collect();
    kinds.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
    kinds
        .iter()
        .map(|(r, n)| format!("{n} {r}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The refusal other than a 421 seen most often, which the explanation is about.
fn main_refusal(f: &PairFacts<'_>) -> Option<Refusal> {
    f.refusals
        .iter()
        .filter(|(r, _)| **r != Refusal::Status421)
        .max_by_key(|(_, n)| **n)
        .map(|(r, _)| *r)
}

/// What the refusal other than 421 means, and what browsers do about it.
fn refusal_why(f: &PairFacts<'_>) -> String {
    let b = f.target;
    match main_refusal(f) {
        Some(Refusal::Reset(H2Reason::HTTP_1_1_REQUIRED)) => format!(
            ": the server wants to renegotiate TLS for {b} (typically to ask for a client certificate), which HTTP/2 forbids; browsers retry over HTTP/1.1 on a new connection"
        ),
        Some(Refusal::GoAway(_) | Refusal::H3GoAway) => {
            ": the server closed the connection without processing them (GOAWAY); browsers retry on a new connection".to_string()
        }
        Some(_) => ": the server did not process them; browsers retry on a new connection".to_string(),
        None => String::new(),
    }
}

/// The fix for refusals other than 421.
fn refusal_fix(f: &PairFacts<'_>) -> String {
    let (a, b) = (f.origin, f.target);
    match (main_refusal(f), f.server) {
        (Some(Refusal::Reset(H2Reason::HTTP_1_1_REQUIRED)), ServerKind::Apache) => format!(
            "Apache httpd: the vhost of {b} asks for client certificates per directory (SSLVerifyClient) and {a}'s does not; that needs a TLS renegotiation, which HTTP/2 forbids, and `SSLVHostSNIPolicy insecure` lets the request reach it. \
             Set `SSLVHostSNIPolicy secure` (the default since 2.4.64: httpd answers 421 and browsers open a connection for {b} whose handshake asks for the certificate), or give {b} a certificate without {a}, or `Protocols http/1.1` in {b}'s vhost"
        ),
        (Some(Refusal::Reset(H2Reason::HTTP_1_1_REQUIRED)), _) => format!(
            "{b} needs a TLS renegotiation (a client certificate) that HTTP/2 cannot do: give {a} and {b} the same client-certificate settings, or give {b} a certificate without {a}, or serve {b} over HTTP/1.1 only"
        ),
        (None, server) => misdirected_fix(server, a, b),
        (Some(_), _) => format!(
            "the server turns requests for {b} away on connections opened for {a} without processing them: its error log at the probe times says why; or stop {a}'s certificate from covering {b}, or serve them from different IP addresses"
        ),
    }
}

/// Why no client would coalesce the pair.
fn not_coalescable(f: &PairFacts<'_>) -> String {
    let (a, b) = (f.origin, f.target);
    match f.reason {
        Some(NotCoalescable::NoSharedAddress) => {
            format!("{a} and {b} share no address, so no browser puts them on one connection (the certificate alone would allow it)")
        }
        Some(NotCoalescable::CertNotCovering) => {
            format!("{a}'s certificate does not cover {b}, so browsers open a separate connection")
        }
        Some(NotCoalescable::NoH2) => {
            format!("{a} does not negotiate HTTP/2, so there is no connection to share")
        }
        Some(NotCoalescable::CertInvalid) => format!(
            "{a}'s certificate is not valid ({}), so browsers do not reuse its connection",
            f.cert_error.as_deref().unwrap_or("untrusted")
        ),
        Some(NotCoalescable::OriginFrameExcludes) => format!(
            "{a}'s server sends an ORIGIN frame without {b}, so Firefox opens a separate connection for {b} (and Chromium does not pool them either)"
        ),
        Some(NotCoalescable::HttpsRecordNoH2) => format!(
            "{b}'s HTTPS DNS records offer no h2, so Chromium does not put it on {a}'s HTTP/2 connection (and Firefox does not pool them either)"
        ),
        None => "no client would coalesce".to_string(),
    }
}

fn misdirected_fix(server: ServerKind, a: &str, b: &str) -> String {
    match server {
        ServerKind::Nginx => format!(
            "the server for {b} requires client certificates (ssl_verify_client), so nginx refuses requests for it on connections opened for other names: give {b} its own certificate without {a}, or its own IP"
        ),
        ServerKind::Apache => format!(
            "Apache httpd refuses requests for a vhost whose SSL settings differ from the SNI vhost's (AH02032 in its error log names the SSLVHostSNIPolicy in force, `secure` by default since 2.4.64): make the SSL settings of {a} and {b} identical, or give {b} a certificate without {a}. \
             If only protocols or ciphers differ, `SSLVHostSNIPolicy authonly` lets the request through; if client-certificate settings (SSLVerifyClient, SSLCACertificateFile) differ, `authonly` refuses it too"
        ),
        ServerKind::Caddy => format!(
            "Caddy's strict_sni_host refuses requests whose Host differs from the SNI (Caddy turns it on by itself when a site on the same server uses client authentication, `tls {{ client_auth }}`): turn it off for {a} and {b} (`strict_sni_host insecure_off` if client authentication stays), or give each its own certificate"
        ),
        _ => format!(
            "the server refuses requests whose Host differs from the TLS SNI: let it serve {b} on connections opened for {a}, or stop {a}'s certificate from covering {b} (separate certificates), or serve them from different IP addresses"
        ),
    }
}

fn misrouted_fix(server: ServerKind, a: &str, b: &str) -> String {
    match server {
        ServerKind::Envoy => format!(
            "Envoy/Istio picks the route table by SNI, so {b} is unknown on {a}'s connection: add {b} to the virtual host domains served on {a}'s filter chain (or merge the filter chains), or give {b} a certificate without {a}"
        ),
        _ => format!(
            "the server (or a proxy in front) routes by SNI or falls back to a default site: route by Host (:authority), answer 421 for names it cannot serve on this connection, or stop {a}'s certificate from covering {b}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(verdict: Verdict, server: ServerKind) -> PairFacts<'static> {
        PairFacts {
            origin: "a.example",
            target: "b.example",
            verdict,
            reason: None,
            content: None,
            looked_like: None,
            dynamic: false,
            bad_addresses: vec!["192.0.2.1".into()],
            good_addresses: vec![],
            probes: 3,
            refused: 3,
            refusals: BTreeMap::from([(Refusal::Status421, 3)]),
            blame: None,
            misrouted: 0,
            misrouted_status: None,
            direct_status: Some(200),
            direct_error: None,
            http1_status: None,
            server,
            cert_error: None,
            error: None,
        }
    }

    #[test]
    fn recognises_servers() {
        assert_eq!(ServerKind::from_header(Some("nginx/1.22.1")), ServerKind::Nginx);
        assert_eq!(
            ServerKind::from_header(Some("Apache/2.4.65 (Debian)")),
            ServerKind::Apache
        );
        assert_eq!(ServerKind::from_header(Some("Caddy")), ServerKind::Caddy);
        assert_eq!(ServerKind::from_header(Some("istio-envoy")), ServerKind::Envoy);
        assert_eq!(ServerKind::from_header(None), ServerKind::Unknown);
    }

    #[test]
    fn misdirected_names_the_cause_and_the_fix() {
        let (why, fix) = explain(&facts(Verdict::Misdirected, ServerKind::Nginx));
        assert!(
            why.contains("421") && why.contains("b.example") && why.contains("192.0.2.1"),
            "{why}"
        );
        let fix = fix.unwrap();
        assert!(
            fix.contains("ssl_verify_client") && fix.contains("own IP"),
            "{fix}"
        );
        let (_, apache) = explain(&facts(Verdict::Misdirected, ServerKind::Apache));
        let apache = apache.unwrap();
        assert!(apache.contains("SSLVHostSNIPolicy"), "{apache}");
        // `authonly` is not offered as the fix for every case: under it, differing
        // client-certificate settings are refused too (seen with the real httpd 2.4.71).
        assert!(
            apache.contains("if client-certificate settings") && apache.contains("refuses it too"),
            "{apache}"
        );
    }

    #[test]
    fn caddy_hint_names_the_client_auth_trigger() {
        let (_, fix) = explain(&facts(Verdict::Misdirected, ServerKind::Caddy));
        let fix = fix.unwrap();
        assert!(
            fix.contains("client_auth") && fix.contains("insecure_off"),
            "{fix}"
        );
    }

    #[test]
    fn http_1_1_required_is_explained_as_renegotiation() {
        let mut f = facts(Verdict::Misdirected, ServerKind::Apache);
        f.refusals = BTreeMap::from([(Refusal::Reset(H2Reason::HTTP_1_1_REQUIRED), 3)]);
        let (why, fix) = explain(&f);
        assert!(
            why.contains("3 reset HTTP_1_1_REQUIRED")
                && why.contains("renegotiate")
                && why.contains("client certificate")
                && why.contains("retry over HTTP/1.1"),
            "{why}"
        );
        let fix = fix.unwrap();
        for needed in [
            "SSLVerifyClient",
            "`SSLVHostSNIPolicy secure`",
            "certificate without a.example",
            "`Protocols http/1.1`",
            "HTTP/2 forbids",
        ] {
            assert!(fix.contains(needed), "{needed}: {fix}");
        }
        let mut f = facts(Verdict::Intermittent, ServerKind::Unknown);
        f.refused = 1;
        f.refusals = BTreeMap::from([(Refusal::Reset(H2Reason::REFUSED_STREAM), 1)]);
        let (why, _) = explain(&f);
        assert!(
            why.starts_with("1 of 3 requests") && why.contains("1 reset REFUSED_STREAM"),
            "{why}"
        );
        let mut f = facts(Verdict::Misdirected, ServerKind::Unknown);
        f.refusals = BTreeMap::from([(Refusal::GoAway(H2Reason(0)), 2), (Refusal::Status421, 1)]);
        let (why, _) = explain(&f);
        assert!(
            why.contains("2 goaway NO_ERROR, 1 421") && why.contains("GOAWAY"),
            "{why}"
        );
    }

    #[test]
    fn intermittent_names_the_refusing_backend() {
        let mut f = facts(Verdict::Intermittent, ServerKind::Unknown);
        f.refused = 1;
        let mut sha = [0u8; 32];
        sha[30] = 0x1a;
        sha[31] = 0x2b;
        f.blame = Some(Blame {
            address: "127.0.0.16".into(),
            refusing: 1,
            backends: 2,
            by: Some(Distinction::Cert(sha)),
        });
        let (why, _) = explain(&f);
        assert!(
            why.ends_with("1 of 2 backends behind 127.0.0.16 refuses: the one serving certificate …00001a2b"),
            "{why}"
        );
        f.blame = Some(Blame {
            address: "127.0.0.16".into(),
            refusing: 1,
            backends: 2,
            by: Some(Distinction::Server(Some("nginx/1.2".into()))),
        });
        let (why, _) = explain(&f);
        assert!(
            why.ends_with("the one answering with Server \"nginx/1.2\""),
            "{why}"
        );
    }

    #[test]
    fn direct_broken_says_whether_only_h2_is_affected() {
        let mut f = facts(Verdict::DirectBroken, ServerKind::Unknown);
        f.direct_status = Some(503);
        f.http1_status = Some(200);
        let (why, _) = explain(&f);
        assert!(why.contains("only its HTTP/2 is broken"), "{why}");
    }

    #[test]
    fn content_is_explained() {
        let mut f = facts(Verdict::Misrouted, ServerKind::Unknown);
        f.misrouted = 3;
        f.misrouted_status = Some(200);
        f.content = Some(Content::OtherSite);
        f.looked_like = Some("shop.example.com:443".into());
        let (why, _) = explain(&f);
        assert!(why.contains("looked like shop.example.com's page"), "{why}");
        let mut f = facts(Verdict::Ok, ServerKind::Unknown);
        let (plain, _) = explain(&f);
        assert!(!plain.contains("differs by connection"), "{plain}");
        f.content = Some(Content::Similar);
        let (why, _) = explain(&f);
        assert!(why.contains("page differs by connection"), "{why}");
        // A page that changes between direct answers too is answered "as directly".
        f.dynamic = true;
        assert_eq!(explain(&f).0, plain);
    }

    #[test]
    fn not_coalescable_has_no_fix() {
        let mut f = facts(Verdict::NotCoalescable, ServerKind::Unknown);
        f.reason = Some(NotCoalescable::NoH2);
        let (why, fix) = explain(&f);
        assert!(why.contains("HTTP/2") && fix.is_none());
    }
}
