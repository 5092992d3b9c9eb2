//! Arbitrary bytes as a Certificate Transparency answer in crt.sh's shape (the JSON `discover`
//! reads from the network or a file): never a panic; every name kept is a normalised host name
//! (ASCII, lower-case, no trailing dot, no wildcard), wildcards are kept apart, and the counts
//! add up.
#![no_main]

use coalscope::discover::crtsh::{CtCollector, MAX_ROWS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (bool, &[u8])| {
    let (include_expired, body) = input;
    let mut c = CtCollector::new(1_800_000_000, include_expired);
    let domains = vec!["example.com".to_string()];
    let parsed = c.add("fuzz", body, &domains).is_ok();
    let stats = c.stats.clone();
    let (certs, _) = c.finish();
    if !parsed {
        assert!(certs.is_empty());
    }
    assert!(stats.rows <= MAX_ROWS);
    assert!(certs.len() <= stats.rows);
    for cert in &certs {
        for n in &cert.names {
            assert!(n.is_ascii() && !n.ends_with('.') && !n.contains('*'), "{n:?}");
            assert_eq!(n, &n.to_ascii_lowercase());
        }
        assert!(cert.wildcards.iter().all(|w| w.starts_with("*.")), "{:?}", cert.wildcards);
    }
});
