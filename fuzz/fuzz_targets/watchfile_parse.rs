//! Arbitrary bytes as a watch-file: parsing never panics, diagnostics stay capped, and every
//! entry it accepts parses back to itself from its `host:port/path` form.
#![no_main]

use coalscope::watchlist::{normalize_host, parse, WatchError, MAX_DIAGNOSTICS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse("fuzz.watch", data) {
        Ok(list) => {
            assert!(list.warnings.len() <= MAX_DIAGNOSTICS);
            for e in &list.entries {
                assert_eq!(normalize_host(&e.host).as_deref(), Ok(e.host.as_str()));
                let line = format!("{}{}", e.key(), e.path.clone().unwrap_or_default());
                let back = parse("again", line.as_bytes()).expect("an accepted entry re-parses");
                assert_eq!(back.entries.len(), 1);
                assert_eq!((&back.entries[0].host, back.entries[0].port), (&e.host, e.port));
                assert_eq!(back.entries[0].path, e.path);
            }
        }
        Err(WatchError::Invalid { errors, .. }) => assert!(errors.len() <= MAX_DIAGNOSTICS),
        Err(e) => panic!("parse gave an I/O error: {e}"),
    }
});
