//! Golden reports: the exact text `coalscope check` prints for the embedded lab, with only
//! what changes from run to run masked (the lab's random port, timestamps, timings, the lab
//! CA's fresh keys, and the counts of the load-balancer pairs, whose split between the two
//! backends is random by design). Restructuring the engine must leave these byte for byte.
//!
//! `COALSCOPE_UPDATE_GOLDEN=1 cargo test` rewrites the files instead of comparing.

use std::path::PathBuf;

use regex::Regex;

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Masks shared by both formats: the port, RFC 3339 times, the run's duration.
fn mask_common(text: &str, port: u16) -> String {
    let port_re = Regex::new(&format!(r"\b{port}\b")).expect("port regex");
    let text = port_re.replace_all(text, "PORT");
    // The lab's certificates are made afresh on every run.
    let cert = Regex::new(r"cert …[0-9a-f]{8}").expect("cert regex");
    let text = cert.replace_all(&text, "cert …MASKED");
    let time_re = Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").expect("time regex");
    time_re.replace_all(&text, "TIME").into_owned()
}

/// The lines of the load-balancer pairs (`*.lb.coalscope.test`), where the numbers of 421s
/// and 200s depend on which backend each fresh connection lands on.
fn mask_load_balancer_counts(line: &str) -> String {
    let counts = Regex::new(r"\d+ of \d+ requests").expect("regex");
    let line = counts.replace_all(line, "N of N requests");
    let times = Regex::new(r"(200|421)×\d+\s*").expect("regex");
    let line = times.replace_all(&line, "${1}×N ");
    let statuses = Regex::new(r#""(200|421)": \d+"#).expect("regex");
    let line = statuses.replace_all(&line, "\"${1}\": N");
    let rate = Regex::new(r#""rate_421": [0-9.]+"#).expect("regex");
    let line = rate.replace_all(&line, "\"rate_421\": N");
    // Per backend (which one a connection reaches alternates) and the refusal rate's interval.
    let refused = Regex::new(r"\d+ of \d+ refused").expect("regex");
    let line = refused.replace_all(&line, "N of N refused");
    let fields = Regex::new(r#""(rate|low|high|probes|refused)": [0-9.]+"#).expect("regex");
    fields.replace_all(&line, "\"${1}\": N").into_owned()
}

/// `check --format json` of the lab, volatile values masked.
pub fn mask_json(text: &str, port: u16) -> String {
    let text = mask_common(text, port);
    let volatile =
        Regex::new(r#"^(\s*"(?:elapsed_ms|connect_ms|tls_ms|duration_s|sha256|cert_sha256)"): [^,]*(,?)$"#)
            .expect("regex");
    let mut in_lb_pair = false;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.trim_start().starts_with("\"origin\": ") {
            in_lb_pair = line.contains(".lb.coalscope.test:");
        } else if line.trim_start().starts_with("\"groups\": ") {
            in_lb_pair = false;
        }
        let line = volatile.replace(line, "${1}: MASKED${2}");
        let line = if in_lb_pair {
            mask_load_balancer_counts(&line)
        } else {
            line.into_owned()
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `check` (the table) of the lab, volatile values masked.
pub fn mask_table(text: &str, port: u16) -> String {
    let text = mask_common(text, port);
    let duration = Regex::new(r"requests, [0-9.]+ s\)").expect("regex");
    let text = duration.replace_all(&text, "requests, N s)");
    let mut in_lb_pair = false;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        // A pair (or a block of pairs of one cause) starts with its verdict, two spaces in;
        // its details are indented further, a block's pairs among them.
        let starts_pair = line.starts_with("  ") && !line.starts_with("   ");
        let lb = line.contains(".lb.coalscope.test:PORT →");
        if starts_pair || lb {
            in_lb_pair = lb;
        }
        let line = if in_lb_pair {
            mask_load_balancer_counts(line)
        } else {
            line.to_string()
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Compare `text` with the golden file `name` (or write it under COALSCOPE_UPDATE_GOLDEN=1).
pub fn assert_golden(name: &str, text: &str) {
    let path = golden_path(name);
    if std::env::var_os("COALSCOPE_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("create tests/golden");
        std::fs::write(&path, text).expect("write the golden file");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (COALSCOPE_UPDATE_GOLDEN=1 writes it)", path.display()));
    if want != text {
        let first = want
            .lines()
            .zip(text.lines())
            .enumerate()
            .find(|(_, (w, g))| w != g)
            .map(|(i, (w, g))| format!("line {}:\n  golden: {w}\n  now:    {g}", i + 1))
            .unwrap_or_else(|| {
                format!(
                    "lengths differ: golden {} lines, now {}",
                    want.lines().count(),
                    text.lines().count()
                )
            });
        panic!(
            "the report differs from {} ({first})\nwhole report now:\n{text}",
            path.display()
        );
    }
}
