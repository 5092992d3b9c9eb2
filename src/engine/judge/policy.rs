//! Would a real browser put a request for B on a connection opened for A? Pure functions.
//!
//! Chromium pools by IP: a request for B reuses A's connection at address X when B's own DNS
//! answer contains X (same port), A's certificate is valid and covers B, and h2 was
//! negotiated. Firefox coalesces when the two DNS answers overlap at all (then A's connection
//! at any of A's addresses is used), with the same certificate and h2 conditions.

use std::net::IpAddr;

use crate::engine::snapshot::NotCoalescable;

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
    /// Set when neither client would coalesce *and* the facts say why. None when a client
    /// would coalesce, or when no handshake to A succeeded at a relevant address (the facts
    /// are missing: the caller reports an error, not a reason).
    pub reason: Option<NotCoalescable>,
    /// Addresses X of A where Chromium would put B on A's connection.
    pub chrome_addrs: Vec<IpAddr>,
    /// Addresses X of A where Firefox would put B on A's connection.
    pub firefox_addrs: Vec<IpAddr>,
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
}

/// Evaluate both clients for A → B, from the two DNS answers and the facts of A's endpoints.
///
/// `origin_endpoints` are taken as A's current endpoints (the caller passes only facts for
/// addresses in A's answer); several facts for one address are allowed, and any one that
/// qualifies makes the address qualify.
pub fn evaluate(
    origin_addrs: &[IpAddr],
    target_addrs: &[IpAddr],
    origin_endpoints: &[EndpointFacts],
) -> PairPolicy {
    let mut shared: Vec<IpAddr> = origin_addrs
        .iter()
        .filter(|a| target_addrs.contains(a))
        .copied()
        .collect();
    shared.sort();
    shared.dedup();
    let usable = |f: &&EndpointFacts| f.h2 && f.cert_trusted && f.covers_target;

    // Chromium pools by (IP, port): only an address in B's own answer is reused.
    let mut chrome_addrs: Vec<IpAddr> = origin_endpoints
        .iter()
        .filter(usable)
        .map(|f| f.addr)
        .filter(|a| shared.contains(a))
        .collect();
    sorted_unique(&mut chrome_addrs);

    // Firefox only needs the answers to overlap; then A's connection at whichever of A's
    // addresses it went to is reused, shared or not.
    let mut firefox_addrs: Vec<IpAddr> = if shared.is_empty() {
        Vec::new()
    } else {
        origin_endpoints.iter().filter(usable).map(|f| f.addr).collect()
    };
    sorted_unique(&mut firefox_addrs);

    let chrome = !chrome_addrs.is_empty();
    let firefox = !firefox_addrs.is_empty();
    let reason = if chrome || firefox {
        None
    } else {
        why_not(&shared, origin_endpoints)
    };
    PairPolicy {
        cert_covers: origin_endpoints.iter().any(|f| f.covers_target),
        shared,
        chrome,
        firefox,
        reason,
        chrome_addrs,
        firefox_addrs,
    }
}

/// Why neither client coalesces. Precedence, from the most fundamental obstacle to the most
/// easily fixed: no shared address (nothing else matters to either client), then the
/// certificate not naming B (a reissue is needed), then an untrusted/expired certificate (a
/// renewal is needed), then h2 missing. Facts at every address of A count, as Firefox would
/// use any of them; with no facts at all the answer is unknown (None): the caller reports the
/// failed handshakes instead of guessing a reason.
fn why_not(shared: &[IpAddr], facts: &[EndpointFacts]) -> Option<NotCoalescable> {
    if shared.is_empty() {
        return Some(NotCoalescable::NoSharedAddress);
    }
    if facts.is_empty() {
        return None;
    }
    let covering: Vec<&EndpointFacts> = facts.iter().filter(|f| f.covers_target).collect();
    if covering.is_empty() {
        Some(NotCoalescable::CertNotCovering)
    } else if covering.iter().all(|f| !f.cert_trusted) {
        Some(NotCoalescable::CertInvalid)
    } else {
        Some(NotCoalescable::NoH2)
    }
}

fn sorted_unique(v: &mut Vec<IpAddr>) {
    v.sort();
    v.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;
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
            let p = evaluate(&ips(c.origin), &ips(c.target), &c.facts);
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

    #[test]
    fn coalescing_addrs_is_the_sorted_union() {
        let p = evaluate(&ips(&[X, Y]), &ips(&[Y]), &[fact(X, 1, 1, 1), fact(Y, 1, 1, 1)]);
        assert_eq!(p.coalescing_addrs(), ips(&[X, Y]));
        assert_eq!(NotCoalescable::CertNotCovering.as_str(), "cert-not-covering");
    }
}
