//! Arbitrary (SAN, host) pairs: matching never panics, ignores ASCII case and one trailing
//! dot, and a name always matches itself.
#![no_main]

use coalscope::engine::probe::cert::name_matches;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let (san, host) = input;
    let m = name_matches(san, host);
    assert_eq!(name_matches(&san.to_ascii_uppercase(), &host.to_ascii_lowercase()), m);
    if !san.ends_with('.') && !host.ends_with('.') {
        assert_eq!(name_matches(&format!("{san}."), host), m);
        assert_eq!(name_matches(san, &format!("{host}.")), m);
    }
    if let Ok(n) = coalscope::watchlist::normalize_host(host) {
        if !n.contains('*') && n.parse::<std::net::IpAddr>().is_err() {
            assert!(name_matches(&n, &n), "{n:?} does not match itself");
        }
    }
});
