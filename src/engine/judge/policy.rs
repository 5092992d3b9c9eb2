//! Would a real browser put a request for B on a connection opened for A? Pure functions.
//!
//! Chromium pools by IP: a request for B reuses A's connection at address X when B's own DNS
//! answer contains X (same port), A's certificate is valid and covers B, and h2 was
//! negotiated. Firefox coalesces when the two DNS answers overlap at all (then A's connection
//! at any of A's addresses is used), with the same certificate and h2 conditions.

use std::net::IpAddr;

use crate::engine::snapshot::{CoalesceRule, NotCoalescable, Protocol};

/// What an ORIGIN frame (RFC 8336) on the origin's connection says about the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OriginFrame {
    /// No ORIGIN frame received: the connection's origin set is unrestricted.
    #[default]
    Absent,
    /// Received, and it lists the target.
    Lists,
    /// Received, without the target.
    Excludes,
}

/// What the handshake of a connection opened for the origin A at `addr` (SNI = A) showed,
/// seen from a target B. Only addresses where the handshake succeeded have facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointFacts {
    pub addr: IpAddr,
    /// ALPN negotiated h2.
    pub h2: bool,
    /// The chain verifies (roots + --ca-file) and is within its validity period.
    pub cert_trusted: bool,
    /// A's certificate at this address covers B (RFC 9525 rules).
    pub covers_target: bool,
    /// What the connection's ORIGIN frame says about B.
    pub origin_frame: OriginFrame,
}

/// What the target's own DNS answer says beyond its addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetFacts {
    /// B has ServiceMode HTTPS records (RFC 9460) and none offers `h2`: Chromium does not
    /// pool B onto an HTTP/2 connection.
    pub https_without_h2: bool,
}

/// The policies' answer for one ordered pair A → B.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PairPolicy {
    /// Addresses in both A's and B's DNS answers, sorted.
    pub shared: Vec<IpAddr>,
    /// Some certificate served for A covers B.
    pub cert_covers: bool,
    pub chrome: bool,
    pub firefox: bool,
    /// Which rule decided for each client.
    pub chrome_rule: CoalesceRule,
    pub firefox_rule: CoalesceRule,
    /// Set when neither client would coalesce *and* the facts say why. None when a client
    /// would coalesce, or when no handshake to A succeeded at a relevant address (the facts
    /// are missing: the caller reports an error, not a reason).
    pub reason: Option<NotCoalescable>,
    /// Addresses X of A where Chromium would put B on A's connection.
    pub chrome_addrs: Vec<IpAddr>,
    /// Addresses X of A where Firefox would put B on A's connection.
    pub firefox_addrs: Vec<IpAddr>,
    /// Of those, the ones where it does because the connection's ORIGIN frame lists B.
    pub origin_frame_addrs: Vec<IpAddr>,
}

impl PairPolicy {
    /// Addresses of A where some client would coalesce B (union, sorted).
    pub fn coalescing_addrs(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .chrome_addrs
            .iter()
            .chain(&self.firefox_addrs)
            .copied()
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Only an ORIGIN frame links the pair: no shared address, and a client pools it because
    /// the origin's connection lists the target (Firefox over HTTP/2 and HTTP/3, Chromium over
    /// HTTP/3).
    pub fn origin_frame_only(&self) -> bool {
        self.shared.is_empty() && (self.firefox || self.chrome)
    }
}

/// Evaluate both clients for A → B, from the two DNS answers, the facts of A's endpoints and
/// what B's DNS answer says beyond its addresses.
///
/// `origin_endpoints` are taken as A's current endpoints (the caller passes only facts for
/// addresses in A's answer); several facts for one address are allowed, and any one that
/// qualifies makes the address qualify.
pub fn evaluate(
    origin_addrs: &[IpAddr],
    target_addrs: &[IpAddr],
    origin_endpoints: &[EndpointFacts],
    target: TargetFacts,
) -> PairPolicy {
    evaluate_over(Protocol::H2, origin_addrs, target_addrs, origin_endpoints, target)
}

/// `evaluate` over `protocol`: over HTTP/3 (`origin_endpoints` then the origin's HTTP/3
/// connections, their ORIGIN frames those of the HTTP/3 control stream) Chromium waives its IP
/// check for a name the ORIGIN frame lists (RFC 9412; quiche's `OnOriginFrame`, Chromium's
/// `CanWaiveIpMatching`), and HTTPS records without h2 do not keep it away.
pub fn evaluate_over(
    protocol: Protocol,
    origin_addrs: &[IpAddr],
    target_addrs: &[IpAddr],
    origin_endpoints: &[EndpointFacts],
    target: TargetFacts,
) -> PairPolicy {
    let mut shared: Vec<IpAddr> = origin_addrs
        .iter()
        .filter(|a| target_addrs.contains(a))
        .copied()
        .collect();
    shared.sort();
    shared.dedup();
    let listed = origin_endpoints
        .iter()
        .any(|f| f.origin_frame == OriginFrame::Lists);
    // Before any client rule: what keeps both clients away whatever they do.
    let obstacle = why_not(&shared, listed, origin_endpoints);

    let (chrome_addrs, chrome_rule) = chromium(&shared, origin_endpoints, target, protocol);
    let (firefox_addrs, firefox_rule, origin_frame_addrs) = firefox(&shared, origin_endpoints, obstacle);
    let chrome = !chrome_addrs.is_empty();
    let firefox = !firefox_addrs.is_empty();
    let reason = if chrome || firefox {
        None
    } else {
        obstacle
            .or_else(|| reason_of(firefox_rule))
            .or_else(|| reason_of(chrome_rule))
    };
    PairPolicy {
        cert_covers: origin_endpoints.iter().any(|f| f.covers_target),
        shared,
        chrome,
        firefox,
        chrome_rule,
        firefox_rule,
        reason,
        chrome_addrs,
        firefox_addrs,
        origin_frame_addrs,
    }
}

/// Chromium pools by (IP, port): only an address in B's own answer is reused. It ignores
/// ORIGIN frames over HTTP/2, and skips B when B's HTTPS records offer no h2; over HTTP/3 an
/// ORIGIN frame listing B waives the IP check. Its addresses of A, sorted, and the rule that
/// decided.
fn chromium(
    shared: &[IpAddr],
    facts: &[EndpointFacts],
    target: TargetFacts,
    protocol: Protocol,
) -> (Vec<IpAddr>, CoalesceRule) {
    let waived = |f: &EndpointFacts| protocol == Protocol::H3 && f.origin_frame == OriginFrame::Lists;
    let mut addrs: Vec<IpAddr> = facts
        .iter()
        .filter(usable)
        .filter(|f| shared.contains(&f.addr) || waived(f))
        .map(|f| f.addr)
        .collect();
    sorted_unique(&mut addrs);
    let rule = if addrs.is_empty() {
        let at_shared: Vec<EndpointFacts> = facts
            .iter()
            .filter(|f| shared.contains(&f.addr) || waived(f))
            .copied()
            .collect();
        let listed = at_shared.iter().any(waived);
        rule_of(why_not(shared, listed, &at_shared))
    } else if protocol == Protocol::H2 && target.https_without_h2 {
        addrs.clear();
        CoalesceRule::HttpsRecordNoH2
    } else if addrs.iter().any(|a| !shared.contains(a)) {
        CoalesceRule::OriginFrame
    } else {
        CoalesceRule::IpMatch
    };
    (addrs, rule)
}

/// Firefox: an ORIGIN frame on A's connection decides alone (listed and covered: pooled, DNS
/// not consulted; left out: not pooled). Without one, the answers only need to overlap; then
/// A's connection at whichever of A's addresses it went to is reused. Its addresses of A,
/// sorted, the rule that decided (`obstacle` when nothing pools), and the addresses where the
/// ORIGIN frame made it pool.
fn firefox(
    shared: &[IpAddr],
    facts: &[EndpointFacts],
    obstacle: Option<NotCoalescable>,
) -> (Vec<IpAddr>, CoalesceRule, Vec<IpAddr>) {
    let mut addrs = Vec::new();
    let mut by_frame = Vec::new();
    let mut excluded = false;
    for f in facts.iter().filter(usable) {
        match f.origin_frame {
            OriginFrame::Lists => {
                by_frame.push(f.addr);
                addrs.push(f.addr);
            }
            OriginFrame::Excludes => excluded |= !shared.is_empty(),
            OriginFrame::Absent if !shared.is_empty() => addrs.push(f.addr),
            OriginFrame::Absent => {}
        }
    }
    sorted_unique(&mut addrs);
    sorted_unique(&mut by_frame);
    let rule = if !by_frame.is_empty() {
        CoalesceRule::OriginFrame
    } else if !addrs.is_empty() {
        CoalesceRule::AddressOverlap
    } else if excluded {
        CoalesceRule::OriginFrameExcludes
    } else {
        rule_of(obstacle)
    };
    (addrs, rule, by_frame)
}

/// A connection a client can put B on: h2, a trusted certificate covering B.
fn usable(f: &&EndpointFacts) -> bool {
    f.h2 && f.cert_trusted && f.covers_target
}

/// What keeps every client away. Precedence, from the most fundamental obstacle to the most
/// easily fixed: no shared address (unless an ORIGIN frame lists B: then DNS does not
/// matter to Firefox), then the certificate not naming B (a reissue is needed), then an
/// untrusted/expired certificate (a renewal is needed), then h2 missing. Facts at every
/// address of A count, as Firefox would use any of them; with no facts at all the answer is
/// unknown (None): the caller reports the failed handshakes instead of guessing a reason. None
/// too when some fact is usable: then a client's own rule decides.
fn why_not(shared: &[IpAddr], listed: bool, facts: &[EndpointFacts]) -> Option<NotCoalescable> {
    if shared.is_empty() && !listed {
        return Some(NotCoalescable::NoSharedAddress);
    }
    // With no shared address, only the endpoints whose ORIGIN frame lists B matter.
    let relevant: Vec<&EndpointFacts> = facts
        .iter()
        .filter(|f| !shared.is_empty() || f.origin_frame == OriginFrame::Lists)
        .collect();
    if relevant.is_empty() {
        return None;
    }
    let covering: Vec<&&EndpointFacts> = relevant.iter().filter(|f| f.covers_target).collect();
    if covering.is_empty() {
        Some(NotCoalescable::CertNotCovering)
    } else if covering.iter().all(|f| !f.cert_trusted) {
        Some(NotCoalescable::CertInvalid)
    } else if !covering.iter().any(|f| f.cert_trusted && f.h2) {
        Some(NotCoalescable::NoH2)
    } else {
        None
    }
}

/// The rule an obstacle stands for (`Unknown` without one).
fn rule_of(obstacle: Option<NotCoalescable>) -> CoalesceRule {
    obstacle.map_or(CoalesceRule::Unknown, CoalesceRule::from)
}

/// The reason a refusing rule gives (None for the rules that pool, and `Unknown`).
fn reason_of(rule: CoalesceRule) -> Option<NotCoalescable> {
    match rule {
        CoalesceRule::NoSharedAddress => Some(NotCoalescable::NoSharedAddress),
        CoalesceRule::CertNotCovering => Some(NotCoalescable::CertNotCovering),
        CoalesceRule::CertInvalid => Some(NotCoalescable::CertInvalid),
        CoalesceRule::NoH2 => Some(NotCoalescable::NoH2),
        CoalesceRule::OriginFrameExcludes => Some(NotCoalescable::OriginFrameExcludes),
        CoalesceRule::HttpsRecordNoH2 => Some(NotCoalescable::HttpsRecordNoH2),
        CoalesceRule::IpMatch
        | CoalesceRule::AddressOverlap
        | CoalesceRule::OriginFrame
        | CoalesceRule::Unknown => None,
    }
}

fn sorted_unique(v: &mut Vec<IpAddr>) {
    v.sort();
    v.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;
    use CoalesceRule as R;
    use NotCoalescable::*;

    const X: &str = "192.0.2.1";
    const Y: &str = "192.0.2.2";
    const Z: &str = "192.0.2.3";
    const V6: &str = "2001:db8::1";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ips(v: &[&str]) -> Vec<IpAddr> {
        v.iter().map(|s| ip(s)).collect()
    }

    /// A fact from a compact spec: "h2 trusted covers" flags as 1/0.
    fn fact(addr: &str, h2: u8, trusted: u8, covers: u8) -> EndpointFacts {
        EndpointFacts {
            addr: ip(addr),
            h2: h2 == 1,
            cert_trusted: trusted == 1,
            covers_target: covers == 1,
            origin_frame: OriginFrame::Absent,
        }
    }

    struct Case {
        name: &'static str,
        origin: &'static [&'static str],
        target: &'static [&'static str],
        facts: Vec<EndpointFacts>,
        shared: &'static [&'static str],
        chrome: &'static [&'static str],
        firefox: &'static [&'static str],
        reason: Option<NotCoalescable>,
        covers: bool,
    }

    /// One piece: a table of cases (from the RFCs, the clients' code and real incidents),
    /// read side by side.
    fn cases() -> Vec<Case> {
        vec![
            Case {
                name: "one shared address, everything fine: both",
                origin: &[X],
                target: &[X],
                facts: vec![fact(X, 1, 1, 1)],
                shared: &[X],
                chrome: &[X],
                firefox: &[X],
                reason: None,
                covers: true,
            },
            Case {
                name: "A at X,Y; B at Y; cert good only at X: Firefox via X, Chromium not",
                origin: &[X, Y],
                target: &[Y],
                facts: vec![fact(X, 1, 1, 1), fact(Y, 1, 1, 0)],
                shared: &[Y],
                chrome: &[],
                firefox: &[X],
                reason: None,
                covers: true,
            },
            Case {
                name: "A at X,Y; B at Y; good at both: Chromium only at Y, Firefox at both",
                origin: &[X, Y],
                target: &[Y],
                facts: vec![fact(X, 1, 1, 1), fact(Y, 1, 1, 1)],
                shared: &[Y],
                chrome: &[Y],
                firefox: &[X, Y],
                reason: None,
                covers: true,
            },
            Case {
                name: "answers in another order, duplicates: shared sorted and unique",
                origin: &[Z, Y, X, Y],
                target: &[Y, Z, X],
                facts: vec![fact(Z, 1, 1, 1), fact(X, 1, 1, 1), fact(X, 1, 1, 1)],
                shared: &[X, Y, Z],
                chrome: &[X, Z],
                firefox: &[X, Z],
                reason: None,
                covers: true,
            },
            Case {
                name: "IPv6 and IPv4 mixed",
                origin: &[V6, X],
                target: &[V6],
                facts: vec![fact(V6, 1, 1, 1), fact(X, 1, 1, 1)],
                shared: &[V6],
                chrome: &[V6],
                firefox: &[X, V6],
                reason: None,
                covers: true,
            },
            Case {
                name: "no shared address, cert covers: cert-only pair",
                origin: &[X],
                target: &[Y],
                facts: vec![fact(X, 1, 1, 1)],
                shared: &[],
                chrome: &[],
                firefox: &[],
                reason: Some(NoSharedAddress),
                covers: true,
            },
            Case {
                name: "no shared address wins over every other reason",
                origin: &[X],
                target: &[Y],
                facts: vec![fact(X, 0, 0, 0)],
                shared: &[],
                chrome: &[],
                firefox: &[],
                reason: Some(NoSharedAddress),
                covers: false,
            },
            Case {
                name: "no shared address even without facts",
                origin: &[X],
                target: &[],
                facts: vec![],
                shared: &[],
                chrome: &[],
                firefox: &[],
                reason: Some(NoSharedAddress),
                covers: false,
            },
            Case {
                name: "shared but no facts at all: unknown",
                origin: &[X],
                target: &[X],
                facts: vec![],
                shared: &[X],
                chrome: &[],
                firefox: &[],
                reason: None,
                covers: false,
            },
            Case {
                name: "cert does not cover B",
                origin: &[X],
                target: &[X],
                facts: vec![fact(X, 1, 1, 0)],
                shared: &[X],
                chrome: &[],
                firefox: &[],
                reason: Some(CertNotCovering),
                covers: false,
            },
            Case {
                name: "not covering wins over untrusted and no h2",
                origin: &[X, Y],
                target: &[X],
                facts: vec![fact(X, 0, 0, 0), fact(Y, 0, 1, 0)],
                shared: &[X],
                chrome: &[],
                firefox: &[],
                reason: Some(CertNotCovering),
                covers: false,
            },
            Case {
                name: "covering cert untrusted",
                origin: &[X],
                target: &[X],
                facts: vec![fact(X, 1, 0, 1)],
                shared: &[X],
                chrome: &[],
                firefox: &[],
                reason: Some(CertInvalid),
                covers: true,
            },
            Case {
                name: "untrusted wins over no h2 when every covering cert is untrusted",
                origin: &[X, Y],
                target: &[X],
                facts: vec![fact(X, 0, 0, 1), fact(Y, 0, 1, 0)],
                shared: &[X],
                chrome: &[],
                firefox: &[],
                reason: Some(CertInvalid),
                covers: true,
            },
            Case {
                name: "no h2 with a good covering cert",
                origin: &[X],
                target: &[X],
                facts: vec![fact(X, 0, 1, 1)],
                shared: &[X],
                chrome: &[],
                firefox: &[],
                reason: Some(NoH2),
                covers: true,
            },
            Case {
                name: "one covering cert untrusted, another trusted without h2: no-h2",
                origin: &[X, Y],
                target: &[X, Y],
                facts: vec![fact(X, 1, 0, 1), fact(Y, 0, 1, 1)],
                shared: &[X, Y],
                chrome: &[],
                firefox: &[],
                reason: Some(NoH2),
                covers: true,
            },
            Case {
                name: "facts only at an unshared address still give the reason (Firefox would use it)",
                origin: &[X, Y],
                target: &[Y],
                facts: vec![fact(X, 1, 1, 0)],
                shared: &[Y],
                chrome: &[],
                firefox: &[],
                reason: Some(CertNotCovering),
                covers: false,
            },
            Case {
                name: "handshake failed at the shared address, good elsewhere: Firefox only",
                origin: &[X, Y],
                target: &[X],
                facts: vec![fact(Y, 1, 1, 1)],
                shared: &[X],
                chrome: &[],
                firefox: &[Y],
                reason: None,
                covers: true,
            },
            Case {
                name: "multi-address: some shared addresses good, others not",
                origin: &[X, Y, Z],
                target: &[X, Y],
                facts: vec![fact(X, 1, 1, 1), fact(Y, 0, 1, 1), fact(Z, 1, 0, 1)],
                shared: &[X, Y],
                chrome: &[X],
                firefox: &[X],
                reason: None,
                covers: true,
            },
            Case {
                name: "one address, two facts (rounds disagree): any good fact qualifies",
                origin: &[X],
                target: &[X],
                facts: vec![fact(X, 1, 1, 0), fact(X, 1, 1, 1)],
                shared: &[X],
                chrome: &[X],
                firefox: &[X],
                reason: None,
                covers: true,
            },
            Case {
                name: "empty everything",
                origin: &[],
                target: &[],
                facts: vec![],
                shared: &[],
                chrome: &[],
                firefox: &[],
                reason: Some(NoSharedAddress),
                covers: false,
            },
        ]
    }

    #[test]
    fn policy_table() {
        for c in cases() {
            let p = evaluate(&ips(c.origin), &ips(c.target), &c.facts, TargetFacts::default());
            let mut want_ff = ips(c.firefox);
            want_ff.sort();
            assert_eq!(p.shared, ips(c.shared), "{}: shared", c.name);
            assert_eq!(p.chrome_addrs, ips(c.chrome), "{}: chrome_addrs", c.name);
            assert_eq!(p.firefox_addrs, want_ff, "{}: firefox_addrs", c.name);
            assert_eq!(p.chrome, !c.chrome.is_empty(), "{}: chrome", c.name);
            assert_eq!(p.firefox, !c.firefox.is_empty(), "{}: firefox", c.name);
            assert_eq!(p.reason, c.reason, "{}: reason", c.name);
            assert_eq!(p.cert_covers, c.covers, "{}: cert_covers", c.name);
            // Chromium's conditions are strictly stronger than Firefox's.
            assert!(
                p.chrome_addrs.iter().all(|a| p.firefox_addrs.contains(a)),
                "{}",
                c.name
            );
        }
    }

    /// A fact whose connection received an ORIGIN frame that lists (1) or leaves out (0) B.
    fn framed(addr: &str, lists: u8) -> EndpointFacts {
        EndpointFacts {
            origin_frame: if lists == 1 {
                OriginFrame::Lists
            } else {
                OriginFrame::Excludes
            },
            ..fact(addr, 1, 1, 1)
        }
    }

    /// RFC 8336 and RFC 9460 cases: (name, origin, target, facts, B's HTTPS records lack h2,
    /// Chromium's rule, Firefox's rule, Firefox's addresses, reason). One piece: a table read
    /// side by side.
    #[allow(clippy::type_complexity)]
    fn signal_cases() -> Vec<(
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        Vec<EndpointFacts>,
        bool,
        CoalesceRule,
        CoalesceRule,
        &'static [&'static str],
        Option<NotCoalescable>,
    )> {
        use CoalesceRule as R;
        vec![
            (
                "ORIGIN lists B, no shared address: Firefox pools (DNS not consulted), Chromium not",
                &[X],
                &[Y],
                vec![framed(X, 1)],
                false,
                R::NoSharedAddress,
                R::OriginFrame,
                &[X],
                None,
            ),
            (
                "ORIGIN leaves B out, shared address: Chromium still pools by IP, Firefox not",
                &[X],
                &[X],
                vec![framed(X, 0)],
                false,
                R::IpMatch,
                R::OriginFrameExcludes,
                &[],
                None,
            ),
            (
                "ORIGIN leaves B out and B's HTTPS records lack h2: nobody, the frame named first",
                &[X],
                &[X],
                vec![framed(X, 0)],
                true,
                R::HttpsRecordNoH2,
                R::OriginFrameExcludes,
                &[],
                Some(OriginFrameExcludes),
            ),
            (
                "HTTPS records without h2: Chromium skips, Firefox pools on overlap",
                &[X],
                &[X],
                vec![fact(X, 1, 1, 1)],
                true,
                R::HttpsRecordNoH2,
                R::AddressOverlap,
                &[X],
                None,
            ),
            (
                "ORIGIN lists B but the certificate does not cover B: nobody, cert named",
                &[X],
                &[Y],
                vec![EndpointFacts {
                    covers_target: false,
                    ..framed(X, 1)
                }],
                false,
                R::NoSharedAddress,
                R::CertNotCovering,
                &[],
                Some(CertNotCovering),
            ),
            (
                "ORIGIN lists B, untrusted chain: nobody",
                &[X],
                &[Y],
                vec![EndpointFacts {
                    cert_trusted: false,
                    ..framed(X, 1)
                }],
                false,
                R::NoSharedAddress,
                R::CertInvalid,
                &[],
                Some(CertInvalid),
            ),
            (
                "ORIGIN leaves B out, no shared address: no-shared-address is the more basic reason",
                &[X],
                &[Y],
                vec![framed(X, 0)],
                false,
                R::NoSharedAddress,
                R::NoSharedAddress,
                &[],
                Some(NoSharedAddress),
            ),
            (
                "two addresses, one connection lists B, the other has no frame: Firefox at both",
                &[X, Y],
                &[Y],
                vec![framed(X, 1), fact(Y, 1, 1, 1)],
                false,
                R::IpMatch,
                R::OriginFrame,
                &[X, Y],
                None,
            ),
            (
                "two addresses, one lists B and one leaves it out: Firefox only where listed",
                &[X, Y],
                &[Z],
                vec![framed(X, 1), framed(Y, 0)],
                false,
                R::NoSharedAddress,
                R::OriginFrame,
                &[X],
                None,
            ),
        ]
    }

    #[test]
    fn origin_frames_and_https_records() {
        for (name, origin, target, facts, no_h2, chrome, firefox, ff_addrs, reason) in signal_cases() {
            let p = evaluate(
                &ips(origin),
                &ips(target),
                &facts,
                TargetFacts {
                    https_without_h2: no_h2,
                },
            );
            assert_eq!(p.chrome_rule, chrome, "{name}: chrome rule");
            assert_eq!(p.firefox_rule, firefox, "{name}: firefox rule");
            assert_eq!(p.firefox_addrs, ips(ff_addrs), "{name}: firefox addrs");
            assert_eq!(p.chrome, chrome == R::IpMatch, "{name}: chrome");
            assert_eq!(p.reason, reason, "{name}: reason");
        }
    }

    /// Without ORIGIN frames and HTTPS records the rules name what the old table decided.
    #[test]
    fn rules_without_signals_name_the_reason() {
        for c in cases() {
            let p = evaluate(&ips(c.origin), &ips(c.target), &c.facts, TargetFacts::default());
            assert_eq!(p.chrome_rule == CoalesceRule::IpMatch, p.chrome, "{}", c.name);
            assert_eq!(
                p.firefox_rule == CoalesceRule::AddressOverlap,
                p.firefox,
                "{}",
                c.name
            );
            if let Some(r) = c.reason {
                assert_eq!(p.firefox_rule, CoalesceRule::from(r), "{}", c.name);
            }
        }
    }

    #[test]
    fn coalescing_addrs_is_the_sorted_union() {
        let p = evaluate(
            &ips(&[X, Y]),
            &ips(&[Y]),
            &[fact(X, 1, 1, 1), fact(Y, 1, 1, 1)],
            TargetFacts::default(),
        );
        assert_eq!(p.coalescing_addrs(), ips(&[X, Y]));
        assert_eq!(NotCoalescable::CertNotCovering.as_str(), "cert-not-covering");
    }
}
