//! The human report of `check`: groups, then pairs with problems first (each with why and
//! what to fix), then host findings. Colour only when asked for (a terminal, no NO_COLOR).
//! Every string that came from the network is sanitised before it is printed.

use std::fmt::Write;

use crate::engine::snapshot::cause::{self, CauseBlock};
use crate::engine::snapshot::impact;
use crate::engine::snapshot::{
    CoalesceRule, NotCoalescable, PairAddressReport, PairReport, Severity, Snapshot, Verdict,
};
use crate::sanitize::for_terminal;

const RED: &str = "31";
const YELLOW: &str = "33";
const MAGENTA: &str = "35";
const GREEN: &str = "32";
const DIM: &str = "2";
const BOLD: &str = "1";

struct Painter {
    colour: bool,
}

impl Painter {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn verdict(&self, v: Verdict, text: &str) -> String {
        let code = match v {
            Verdict::Misdirected => RED,
            Verdict::Misrouted => MAGENTA,
            Verdict::Intermittent | Verdict::DirectBroken => YELLOW,
            Verdict::Error => RED,
            Verdict::Ok => GREEN,
            Verdict::Pending | Verdict::NotCoalescable => DIM,
        };
        self.paint(code, text)
    }
}

/// Untrusted text, made safe for a terminal line.
fn safe(s: &str) -> String {
    for_terminal(s, 1000)
}

/// `host` alone when the port is 443, else `host:port`.
fn short(key: &str) -> String {
    safe(key.strip_suffix(":443").unwrap_or(key))
}

fn counts(m: &std::collections::BTreeMap<String, u32>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter()
        .map(|(s, n)| format!("{s}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How the table is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// ANSI colours (a terminal, no NO_COLOR).
    pub colour: bool,
    /// Every problem pair with its own explanation and fix, instead of one block per cause.
    pub verbose: bool,
}

pub fn render(s: &Snapshot, options: TableOptions) -> String {
    let p = Painter {
        colour: options.colour,
    };
    let mut out = String::new();
    summary_line(&mut out, &p, s);
    groups_section(&mut out, &p, s);
    pairs_section(&mut out, &p, s, options.verbose);
    findings_section(&mut out, &p, s);
    out
}

fn summary_line(out: &mut String, p: &Painter, s: &Snapshot) {
    let sum = &s.summary;
    let _ = writeln!(
        out,
        "{} {} hosts, {} groups, {} pairs, {} with problems, {} host errors  ({} rounds, {} connections, {} requests, {:.1} s)",
        p.paint(BOLD, "coalscope check:"),
        sum.hosts,
        s.groups.len(),
        sum.pairs,
        if sum.problems > 0 { p.paint(RED, &sum.problems.to_string()) } else { sum.problems.to_string() },
        if sum.host_errors > 0 { p.paint(RED, &sum.host_errors.to_string()) } else { sum.host_errors.to_string() },
        sum.rounds,
        sum.connections,
        sum.requests,
        sum.duration_s
    );
}

fn groups_section(out: &mut String, p: &Painter, s: &Snapshot) {
    let _ = writeln!(out, "\n{}", p.paint(BOLD, "Coalescing groups"));
    if s.groups.is_empty() {
        let _ = writeln!(out, "  (none: no two names would share a connection)");
    }
    for g in &s.groups {
        let badge = if g.problems > 0 {
            p.paint(
                RED,
                &format!(
                    "{} problem pair{}",
                    g.problems,
                    if g.problems == 1 { "" } else { "s" }
                ),
            )
        } else {
            p.paint(GREEN, "ok")
        };
        let members: Vec<String> = g.members.iter().map(|m| short(m)).collect();
        let _ = writeln!(out, "  #{:<3} {}  {}", g.id, members.join(", "), badge);
    }
}

/// Every pair in report order (problems first; those of one group with one cause in one
/// block, unless `verbose`), then how many pairs share only a certificate when they are not
/// listed.
fn pairs_section(out: &mut String, p: &Painter, s: &Snapshot, verbose: bool) {
    let _ = writeln!(
        out,
        "\n{}",
        p.paint(
            BOLD,
            "Pairs (origin → target: a connection opened for origin carries a request for target)"
        )
    );
    if s.pairs.is_empty() {
        let _ = writeln!(out, "  (none: no two names share an address)");
    }
    if verbose {
        for pair in &s.pairs {
            pair_lines(out, p, pair);
        }
    } else {
        let groups = cause::group_ids(s);
        let group = |pair: &PairReport| groups.get(&*pair.origin).copied();
        for block in cause::by_cause(s.pairs.iter().map(|p| &**p), &group) {
            match block.pairs[..] {
                [pair] => pair_lines(out, p, pair),
                _ => block_lines(out, p, &block),
            }
        }
    }
    inconclusive_line(out, p, s);
    let cert_only = s.summary.cert_only_pairs;
    if cert_only > 0
        && !s
            .pairs
            .iter()
            .any(|x| x.reason == Some(NotCoalescable::NoSharedAddress))
    {
        dim_line(
            out,
            p,
            &format!("+ {cert_only} pairs linked only by a certificate (no shared address); --all-pairs lists them"),
        );
    }
}

/// One dimmed note line under the pairs.
fn dim_line(out: &mut String, p: &Painter, text: &str) {
    let _ = writeln!(out, "  {}", p.paint(DIM, text));
}

/// How many `ok` or `misdirected` pairs rest on too few probes to rule out a flaky backend,
/// and the `--rounds` that would settle them.
fn inconclusive_line(out: &mut String, p: &Painter, s: &Snapshot) {
    let n = s.summary.inconclusive;
    if n == 0 {
        return;
    }
    let settle = match s.summary.settle_rounds {
        Some(r) => format!(": --rounds {r} would settle them"),
        None => String::new(),
    };
    dim_line(
        out,
        p,
        &format!(
            "{n} pair{} judged on too few probes to rule out one of two backends answering otherwise{settle}",
            if n == 1 { "" } else { "s" }
        ),
    );
}

/// Every host's findings, errors first; nothing when there are none.
fn findings_section(out: &mut String, p: &Painter, s: &Snapshot) {
    let mut findings: Vec<_> = s
        .hosts
        .iter()
        .flat_map(|h| h.findings.iter().map(move |f| (h, f)))
        .collect();
    if findings.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{}", p.paint(BOLD, "Host findings"));
    findings.sort_by_key(|(_, f)| f.severity);
    for (h, f) in findings {
        let sev = match f.severity {
            Severity::Error => p.paint(RED, "error  "),
            Severity::Warning => p.paint(YELLOW, "warning"),
            Severity::Info => p.paint(DIM, "info   "),
        };
        let key = if h.port == 443 {
            safe(&h.host)
        } else {
            format!("{}:{}", safe(&h.host), h.port)
        };
        let _ = writeln!(out, "  {sev} {key}  {}: {}", f.kind, safe(&f.message));
    }
}

/// Who pools the pair ("chrome+firefox"), and when Firefox does by the ORIGIN frame, that.
fn clients(pair: &PairReport) -> &'static str {
    let by_frame = pair.coalesce.rules.firefox == CoalesceRule::OriginFrame;
    match (pair.coalesce.chrome, pair.coalesce.firefox, by_frame) {
        (true, true, false) => "chrome+firefox",
        (true, true, true) => "chrome+firefox (ORIGIN frame)",
        (true, false, _) => "chrome",
        (false, true, false) => "firefox",
        (false, true, true) => "firefox (ORIGIN frame)",
        (false, false, _) => "",
    }
}

/// The pair's findings, one "note:" line each.
fn notes(out: &mut String, p: &Painter, pair: &PairReport, indent: usize) {
    for f in &pair.findings {
        let _ = writeln!(
            out,
            "{:indent$}{} {}: {}",
            "",
            p.paint(BOLD, "note:"),
            f.kind,
            safe(&f.message)
        );
    }
}

fn pair_lines(out: &mut String, p: &Painter, pair: &PairReport) {
    let v = pair.verdict;
    let label = match pair.reason {
        Some(r) => format!("{v} ({r})"),
        None => v.to_string(),
    };
    let clients = clients(pair);
    let _ = writeln!(
        out,
        "  {} {} → {}  {}",
        p.verdict(v, &format!("{label:<15}")),
        short(&pair.origin),
        short(&pair.target),
        p.paint(DIM, clients)
    );
    notes(out, p, pair, INDENT);
    if v == Verdict::NotCoalescable {
        return;
    }
    address_lines(out, p, pair, INDENT);
    if v.is_problem() || v == Verdict::Error {
        why_line(out, p, &pair.explanation, INDENT);
        impact_line(out, p, pair, INDENT);
        if let Some(fix) = &pair.fix {
            fix_line(out, p, fix, INDENT);
        }
    }
}

/// Where the lines under a pair's heading start.
const INDENT: usize = 18;

/// A block of pairs of one group with one verdict and one cause: the cause named once, each
/// pair on its line with its addresses under it, then why, impact and fix once (with "the
/// origin" and "the target" for the names) where the pairs say them alike, else per pair
/// (always for an intermittent pair's why: its counts are its own).
fn block_lines(out: &mut String, p: &Painter, block: &CauseBlock<'_>) {
    let v = block.verdict;
    let _ = writeln!(
        out,
        "  {} {}  {}",
        p.verdict(v, &format!("{:<15}", v.as_str())),
        cause::block_heading(block, None),
        p.paint(DIM, block.common(clients).unwrap_or(""))
    );
    // Intermittent pairs' counts differ by chance: each says its own.
    let why = match v {
        Verdict::Intermittent => None,
        _ => block.common(|pair| pair.cause.as_ref().map(|c| c.why.clone())),
    };
    let impact = block.common(|pair| impact::summary(&pair.impact, v));
    let inner = INDENT + 2;
    for pair in &block.pairs {
        let _ = writeln!(
            out,
            "{:INDENT$}{} → {}",
            "",
            short(&pair.origin),
            short(&pair.target)
        );
        notes(out, p, pair, inner);
        address_lines(out, p, pair, inner);
        if why.is_none() {
            why_line(out, p, &pair.explanation, inner);
        }
        if impact.is_none() {
            impact_line(out, p, pair, inner);
        }
    }
    if let Some(Some(why)) = &why {
        why_line(out, p, why, INDENT);
    }
    if let (Some(first), Some(_)) = (block.pairs.first(), &impact) {
        impact_line(out, p, first, INDENT);
    }
    if let Some(cause) = block.cause {
        fix_line(out, p, &cause.fix, INDENT);
    }
}

/// One line per address of the pair (and its backends under it); per protocol, under a line
/// naming it, when the pair was probed over HTTP/3 too.
fn address_lines(out: &mut String, p: &Painter, pair: &PairReport, indent: usize) {
    if pair.protocols.is_empty() {
        protocol_address_lines(out, p, &pair.addresses, indent);
    }
    for row in &pair.protocols {
        let _ = writeln!(
            out,
            "{:indent$}over {}: {}",
            "",
            row.protocol.label(),
            p.verdict(row.verdict, row.verdict.as_str())
        );
        protocol_address_lines(out, p, &row.addresses, indent + 2);
    }
}

fn protocol_address_lines(out: &mut String, p: &Painter, addresses: &[PairAddressReport], indent: usize) {
    for a in addresses {
        // Refusals without an HTTP answer (resets, GOAWAY) are not among the statuses.
        let mut refusals = a.refusals.clone();
        refusals.remove("421");
        let _ = writeln!(
            out,
            "{:indent$}{:<15} {:<14} coalesced {:<16} direct {}{}{}",
            "",
            safe(&a.address),
            p.verdict(a.verdict, a.verdict.as_str()),
            counts(&a.statuses),
            counts(&a.direct_statuses),
            if refusals.is_empty() {
                String::new()
            } else {
                format!("  (refused: {})", counts(&refusals))
            },
            if a.errors > 0 {
                format!("  ({} errors)", a.errors)
            } else {
                String::new()
            }
        );
        for b in &a.backends {
            let _ = writeln!(
                out,
                "{:indent$}  backend cert …{} {} {} {}: {} of {} refused",
                "",
                safe(
                    b.cert_sha256
                        .get(b.cert_sha256.len().saturating_sub(8)..)
                        .unwrap_or("")
                ),
                safe(b.server.as_deref().unwrap_or("-")),
                safe(b.tls_version.as_deref().unwrap_or("-")),
                safe(b.cipher.as_deref().unwrap_or("-")),
                b.refused,
                b.probes
            );
        }
    }
}

fn why_line(out: &mut String, p: &Painter, why: &str, indent: usize) {
    let _ = writeln!(out, "{:indent$}{} {}", "", p.paint(BOLD, "why:"), safe(why));
}

fn impact_line(out: &mut String, p: &Painter, pair: &PairReport, indent: usize) {
    if let Some(line) = impact::summary(&pair.impact, pair.verdict) {
        let _ = writeln!(out, "{:indent$}{} {line}", "", p.paint(BOLD, "impact:"));
    }
}

fn fix_line(out: &mut String, p: &Painter, fix: &str, indent: usize) {
    let _ = writeln!(out, "{:indent$}{} {}", "", p.paint(BOLD, "fix:"), safe(fix));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inconclusive_pairs_are_counted_with_the_rounds_that_settle_them() {
        let mut s = Snapshot::default();
        assert!(!render(&s, TableOptions::default()).contains("too few probes"));
        s.summary.inconclusive = 3;
        s.summary.settle_rounds = Some(4);
        let text = render(&s, TableOptions::default());
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("too few probes")).collect();
        assert_eq!(
            lines,
            ["  3 pairs judged on too few probes to rule out one of two backends answering otherwise: --rounds 4 would settle them"]
        );
    }

    /// Ten pairs of one group that Apache refuses for one cause, and one nginx pair.
    fn one_cause_snapshot() -> Snapshot {
        use crate::engine::snapshot::cause::{problem_pair, ServerKind};
        use crate::engine::snapshot::GroupReport;
        const FIX: &str = "make the SSL settings of the origin and the target identical";
        let hosts = ["a.test:443", "b.test:443", "c.test:443", "d.test:443"];
        let mut s = Snapshot::default();
        for o in hosts {
            for t in hosts.iter().filter(|t| **t != o).take(3) {
                let cause = Some((ServerKind::Apache, FIX));
                s.pairs
                    .push(problem_pair(o, t, Verdict::Misdirected, cause).into());
            }
        }
        s.pairs.truncate(10);
        let cause = Some((ServerKind::Nginx, "give the target its own IP"));
        s.pairs
            .push(problem_pair("x.test:443", "y.test:443", Verdict::Misdirected, cause).into());
        s.groups = vec![GroupReport {
            id: 1,
            members: hosts.iter().map(|h| h.to_string()).collect(),
            problems: 10,
        }];
        s
    }

    #[test]
    fn a_cause_is_written_once_with_its_pairs_under_it() {
        let s = one_cause_snapshot();
        let text = render(&s, TableOptions::default());
        let fixes: Vec<&str> = text
            .lines()
            .filter(|l| l.trim_start().starts_with("fix:"))
            .collect();
        assert_eq!(
            fixes,
            [
                "                  fix: make the SSL settings of the origin and the target identical",
                "                  fix: give y.test:443 its own IP",
            ],
            "{text}"
        );
        assert!(
            text.contains("  misdirected     10 pairs of group #1 refused by Apache httpd  chrome+firefox\n"),
            "{text}"
        );
        for pair in &s.pairs[..10] {
            let line = format!(
                "\n                  {} → {}\n",
                short(&pair.origin),
                short(&pair.target)
            );
            assert!(text.contains(&line), "{line} listed: {text}");
        }
        // Every address is still there, one line each, under its pair.
        let inner = format!("\n{:20}192.0.2.1       misdirected", "");
        assert_eq!(text.matches(&inner).count(), 10, "{text}");
        assert_eq!(text.matches("why:").count(), 2, "{text}");
    }

    #[test]
    fn verbose_explains_every_pair_on_its_own() {
        let s = one_cause_snapshot();
        let verbose = TableOptions {
            verbose: true,
            ..TableOptions::default()
        };
        let text = render(&s, verbose);
        for pair in &s.pairs {
            let fix = format!("fix: {}\n", pair.fix.as_deref().unwrap_or_default());
            assert_eq!(text.matches(&fix).count(), 1, "{fix}: {text}");
            assert!(text.contains(&format!("why: {}\n", pair.explanation)), "{text}");
        }
        assert!(!text.contains("the origin"), "{text}");
    }
}
