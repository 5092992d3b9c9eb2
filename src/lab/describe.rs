//! Text the lab writes and prints: the watch-file and the `coalscope lab` description.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use super::scenarios::{Scenario, SCENARIOS};

/// The watch-file: every lab name at `port`, under a comment per scenario.
pub(crate) fn watchfile(port: u16) -> String {
    let mut out = String::from(
        "# coalscope lab: loopback servers reproducing HTTP/2 coalescing failure modes.\n\
         # Use the lab DNS and CA (see `coalscope lab`); names resolve to 127.0.0.x.\n",
    );
    for (i, sc) in SCENARIOS.iter().enumerate() {
        let _ = writeln!(out, "\n# {} ({}): {}", i + 1, sc.key, sc.reproduces);
        for site in sc.sites {
            let _ = writeln!(out, "{}:{port}", site.name);
        }
    }
    out
}

/// Where a scenario lives, e.g. `127.0.0.17 (by-host), 127.0.0.18 (caddy)`.
fn addresses(sc: &Scenario) -> String {
    if sc.endpoints.is_empty() {
        return "no address (NXDOMAIN)".to_string();
    }
    sc.endpoints
        .iter()
        .map(|e| format!("127.0.0.{} ({})", e.octet, e.style.label()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The facts a `coalscope lab` user needs.
pub(crate) struct Facts<'a> {
    pub dir: &'a Path,
    pub watchfile: &'a Path,
    pub ca_file: &'a Path,
    pub dns: SocketAddr,
    pub port: u16,
    pub dynamic: bool,
}

/// The text `coalscope lab` prints.
pub(crate) fn describe(f: &Facts<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "coalscope lab is running (Ctrl-C stops it)");
    let _ = writeln!(out, "  directory : {}", f.dir.display());
    let _ = writeln!(out, "  DNS       : {} (udp and tcp)", f.dns);
    let _ = writeln!(out, "  CA        : {}", f.ca_file.display());
    let _ = writeln!(out, "  watch-file: {}", f.watchfile.display());
    let _ = writeln!(out, "  port      : {} on 127.0.0.10 and up", f.port);
    if f.dynamic {
        let _ = writeln!(out, "  mode      : dynamic (some scenarios change every minute)");
    }
    let _ = writeln!(out, "\nRun:");
    let _ = writeln!(
        out,
        "  coalscope check {} --dns {} --ca-file {}",
        f.watchfile.display(),
        f.dns,
        f.ca_file.display()
    );
    let _ = writeln!(out, "\nScenarios and the verdicts to expect:");
    for (i, sc) in SCENARIOS.iter().enumerate() {
        let _ = writeln!(out, "  {:>2}. {} @ {}", i + 1, sc.key, addresses(sc));
        let _ = writeln!(out, "      {}", sc.reproduces);
        for (origin, target, verdict, reason) in sc.expect {
            let reason = reason.map(|r| format!(" ({r})")).unwrap_or_default();
            let _ = writeln!(out, "      {origin} -> {target}: {verdict}{reason}");
        }
        for site in sc.sites {
            for kind in site.findings {
                let _ = writeln!(out, "      {}: finding {kind}", site.name);
            }
        }
    }
    let _ = writeln!(out, "\nWatch-file content:");
    for line in watchfile(f.port).lines() {
        let _ = writeln!(out, "  {line}");
    }
    out
}
