//! The scenario table is consistent: expectations cover exactly the pairs the contract
//! lists (names sharing an address, plus cert-only pairs), and nothing is duplicated.

use std::collections::{BTreeSet, HashMap};

use crate::engine::snapshot::{FindingKind, Verdict};
use crate::lab::scenarios::{all_endpoints, all_sites, Issuer, SCENARIOS};
use crate::lab::{expectations, expected_findings, lab_hosts};

/// RFC 6125-style match: exact, or `*.` covering exactly one left-most label.
fn covers(san: &str, name: &str) -> bool {
    match san.strip_prefix("*.") {
        Some(suffix) => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => san == name,
    }
}

#[test]
fn expectations_are_exactly_the_contract_pairs() {
    let sites: Vec<_> = all_sites().map(|(sc, s)| (sc.key, s)).collect();
    let mut wanted = BTreeSet::new();
    for (ka, a) in &sites {
        for (kb, b) in &sites {
            if a.name == b.name {
                continue;
            }
            let shared = a.octets.iter().any(|o| b.octets.contains(o));
            // Cert-only: a valid lab certificate of the origin's scenario covers both names.
            let cert_only = ka == kb
                && !shared
                && SCENARIOS.iter().filter(|sc| sc.key == *ka).any(|sc| {
                    sc.certs.iter().any(|c| {
                        c.issuer == Issuer::Lab
                            && !c.expired
                            && c.sans.iter().any(|s| covers(s, a.name))
                            && c.sans.iter().any(|s| covers(s, b.name))
                    })
                });
            if shared || cert_only {
                wanted.insert((a.name, b.name));
            }
        }
    }
    let got: Vec<_> = expectations().into_iter().map(|e| (e.origin, e.target)).collect();
    let got_set: BTreeSet<_> = got.iter().copied().collect();
    assert_eq!(got.len(), got_set.len(), "duplicate expectations");
    assert_eq!(got_set, wanted);
}

#[test]
fn expectations_give_a_reason_exactly_for_not_coalescable() {
    // The words are the contract's by type; what the table must still get right is which
    // verdicts carry a reason, and the pairs the lab exists for.
    for e in expectations() {
        assert_eq!(e.reason.is_some(), e.verdict == Verdict::NotCoalescable, "{e:?}");
    }
    let by_pair: HashMap<_, _> = expectations()
        .into_iter()
        .map(|e| ((e.origin, e.target), e.verdict))
        .collect();
    assert_eq!(
        by_pair[&("shop.nginx.coalscope.test", "admin.nginx.coalscope.test")],
        Verdict::Misdirected
    );
    assert_eq!(
        by_pair[&("admin.nginx.coalscope.test", "shop.nginx.coalscope.test")],
        Verdict::Ok
    );
}

#[test]
fn names_and_addresses_are_unique_and_in_the_zone() {
    let hosts = lab_hosts();
    let unique: BTreeSet<_> = hosts.iter().collect();
    assert_eq!(unique.len(), hosts.len());
    assert!(hosts.iter().all(|h| h.ends_with(".coalscope.test")));
    let octets: Vec<u8> = all_endpoints().map(|(_, e)| e.octet).collect();
    let unique: BTreeSet<_> = octets.iter().collect();
    assert_eq!(unique.len(), octets.len(), "one listener per address");
    // Every address a name resolves to has a listener of the same scenario.
    for (sc, site) in all_sites() {
        for o in site.octets {
            assert!(sc.endpoints.iter().any(|e| e.octet == *o), "{}", site.name);
        }
    }
    // Every name with an address is covered by one of its scenario's certificates, unless
    // it is the blackhole (no TLS at all).
    for (sc, site) in all_sites() {
        if site.octets.is_empty() || sc.certs.is_empty() {
            continue;
        }
        assert!(
            sc.certs
                .iter()
                .any(|c| c.sans.iter().any(|s| covers(s, site.name))),
            "{}",
            site.name
        );
    }
}

#[test]
fn findings_are_the_listed_ones() {
    let mut got = expected_findings();
    got.sort();
    let mut want = vec![
        ("expired.certs.coalscope.test", FindingKind::CertInvalid),
        ("ghost.coalscope.test", FindingKind::DnsError),
        ("img.svcb.coalscope.test", FindingKind::HttpsRecordNoH2),
        ("img.svcb.coalscope.test", FindingKind::H3Advertised),
        ("legacy.h1.coalscope.test", FindingKind::NoH2),
        ("old.h1.coalscope.test", FindingKind::NoH2),
        ("untrusted.certs.coalscope.test", FindingKind::CertInvalid),
        ("void.blackhole.coalscope.test", FindingKind::Unreachable),
        ("www.quic.coalscope.test", FindingKind::H3Advertised),
        ("www.svcb.coalscope.test", FindingKind::H3Advertised),
        ("api.quic.coalscope.test", FindingKind::H3Advertised),
    ];
    want.sort();
    assert_eq!(got, want);
}
