//! Details of the selected pair, host or group: for a pair what was seen and how to fix it;
//! for a host its DNS answers, certificates, ALPN/TLS, statuses, timings and errors.

use std::collections::BTreeMap;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

use crate::engine::snapshot::cause::{self, CauseBlock};
use crate::engine::snapshot::impact;
use crate::engine::snapshot::{
    CertReport, CoalesceRule, Content, EndpointReport, Finding, HostReport, LiveView, PairAddressReport,
    PairReport, Protocol, Severity, Verdict,
};
use crate::tui::app::{App, DetailTarget, Focus};
use crate::tui::index::GroupEntry;
use crate::tui::panes::{clean, frame, percent, signals, title, vantage};
use crate::tui::theme::Theme;

/// Long strings (explanations, fixes, errors) are bounded before wrapping: room for the longest
/// fix hint (Apache's, led by its impact) with four long names.
const LONG: usize = 800;
/// At most this many SANs, addresses or findings are listed.
const MAX_ITEMS: usize = 40;

pub fn draw(view: &LiveView, app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let target = app.detail_target();
    let (heading, lines) = match target {
        DetailTarget::Pair(p) => {
            let pair = &view.report.pairs[p];
            let mut lines = pair_lines(pair, t);
            if let Some(vantages) = &view.vantages {
                // Right under the verdict: what every vantage says of the pair.
                lines.insert(2, vantage::pair_verdicts(vantages, pair, t));
            }
            let heading = match &view.vantages {
                Some(vantages) => match vantages.list.get(vantages.of_pair(p)) {
                    Some(v) => format!("Details · pair from {} (Enter: its hosts)", vantage::label(v)),
                    None => "Details · pair (Enter: its hosts)".to_string(),
                },
                None => "Details · pair (Enter: its hosts)".to_string(),
            };
            (heading, lines)
        }
        DetailTarget::Host(h) => {
            let host = &view.report.hosts[h];
            let mut lines = host_lines(host, t);
            if let Some(line) = view
                .vantages
                .as_ref()
                .and_then(|v| vantage::host_addresses(v, host, t))
            {
                lines.insert(2, line);
            }
            ("Details · host".to_string(), lines)
        }
        DetailTarget::Group(g) => (
            "Details · group".to_string(),
            group_lines(view, &app.derived.index.groups[g], &app.derived.group_pairs, t),
        ),
        DetailTarget::Nothing => (
            "Details".to_string(),
            vec![Line::styled("select a group, host or pair", t.dim)],
        ),
    };
    let inner = frame(area, buf, title(heading, t), app.focus == Focus::Details, t);
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .scroll((app.details_scroll, 0))
        .render(inner, buf);
}

fn kv<'a>(k: &str, v: String, t: &Theme) -> Vec<Span<'a>> {
    vec![Span::styled(format!("{k} "), t.label), Span::styled(v, t.text)]
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn counts(m: &BTreeMap<String, u32>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter()
        .take(MAX_ITEMS)
        .map(|(k, v)| format!("{}×{v}", clean(k, 12)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A pair: its names, verdict and refusal rate, how it would be coalesced, why, who is hurt and
/// what to fix, then one line per address.
pub fn pair_lines<'a>(p: &PairReport, t: &Theme) -> Vec<Line<'a>> {
    let mut out = vec![pair_heading(p, t), pair_verdict(p, t), pair_coalescing(p, t)];
    out.extend(pair_protocols(p, t));
    out.extend(pair_notes(p, t));
    // Probed over both protocols: the addresses as the protocol that decided the verdict saw
    // them.
    let (addresses, over) = match p.deciding_protocol() {
        Some(r) => (&r.addresses, Some(r.protocol)),
        None => (&p.addresses, None),
    };
    out.extend(addresses.iter().take(MAX_ITEMS).map(|a| pair_address(a, over, t)));
    out
}

fn pair_heading<'a>(p: &PairReport, t: &Theme) -> Line<'a> {
    Line::from(vec![
        Span::styled(clean(&p.origin, 200), t.header),
        Span::styled(" → ", t.dim),
        Span::styled(clean(&p.target, 200), t.header),
    ])
}

fn pair_verdict<'a>(p: &PairReport, t: &Theme) -> Line<'a> {
    let mut l = vec![
        Span::styled("verdict ", t.label),
        Span::styled(p.verdict.as_str(), t.verdict(p.verdict)),
    ];
    if let Some(r) = p.reason {
        l.push(Span::styled(format!(" ({r})"), t.dim));
    }
    // Probed over both protocols: the counts of the one that decided the verdict, said.
    let deciding = p.deciding_protocol();
    let (refusal_rate, probes) = deciding.map_or((p.refusal_rate, p.probes), |r| (r.refusal_rate, r.probes));
    let over = deciding.map_or(String::new(), |r| format!(" over {}", r.protocol.label()));
    let refused = match refusal_rate {
        Some(r) if r.n > 0 => format!(
            "{} of {probes} probes{over} (95%: {}–{})",
            percent(r.rate),
            percent(r.low),
            percent(r.high)
        ),
        _ => format!("- of {probes} probes{over}"),
    };
    l.extend(kv("  refused", refused, t));
    Line::from(l)
}

/// Each protocol's verdict, when the pair was probed over HTTP/3 too:
/// "over HTTP/2 ok 0% refused of 3 probes · over HTTP/3 misdirected 100% refused of 3 probes".
fn pair_protocols<'a>(p: &PairReport, t: &Theme) -> Option<Line<'a>> {
    if p.protocols.is_empty() {
        return None;
    }
    let mut l = Vec::new();
    for (i, row) in p.protocols.iter().enumerate() {
        let label = format!(
            "{}over {} ",
            if i == 0 { "" } else { " · " },
            row.protocol.label()
        );
        l.push(Span::styled(label, t.label));
        l.push(Span::styled(row.verdict.as_str(), t.verdict(row.verdict)));
        let refused = match row.refusal_rate {
            Some(r) if r.n > 0 => percent(r.rate),
            _ => "-".to_string(),
        };
        l.push(Span::styled(
            format!(" {refused} refused of {} probes", row.probes),
            t.dim,
        ));
    }
    Some(Line::from(l))
}

/// Which clients would coalesce, whether the certificate allows it, the shared addresses.
fn pair_coalescing<'a>(p: &PairReport, t: &Theme) -> Line<'a> {
    let rules = &p.coalesce.rules;
    let mut l = kv(
        "coalesce",
        format!(
            "chrome {}{} · firefox {}{}",
            yes(p.coalesce.chrome),
            signal_rule(rules.chrome),
            yes(p.coalesce.firefox),
            signal_rule(rules.firefox)
        ),
        t,
    );
    l.extend(kv("  cert covers target", yes(p.cert_covers).into(), t));
    let shared: Vec<String> = p
        .shared_addresses
        .iter()
        .take(MAX_ITEMS)
        .map(|a| clean(a, 45))
        .collect();
    l.extend(kv(
        "  shared",
        if shared.is_empty() {
            "-".into()
        } else {
            shared.join(", ")
        },
        t,
    ));
    Line::from(l)
}

/// " (rule)" when what the server or DNS signals decided (an ORIGIN frame, HTTPS records);
/// nothing for the ordinary address and certificate rules, which the rest of the line shows.
fn signal_rule(rule: CoalesceRule) -> String {
    match rule {
        CoalesceRule::OriginFrame | CoalesceRule::OriginFrameExcludes | CoalesceRule::HttpsRecordNoH2 => {
            format!(" ({rule})")
        }
        _ => String::new(),
    }
}

/// Why, who is hurt (the same line as `check`'s table), the fix and the error, each when
/// there is one.
fn pair_notes<'a>(p: &PairReport, t: &Theme) -> Vec<Line<'a>> {
    let mut out = Vec::new();
    if !p.explanation.is_empty() {
        out.push(Line::from(kv("why", clean(&p.explanation, LONG), t)));
    }
    if let Some(line) = impact::summary(&p.impact, p.verdict) {
        out.push(Line::from(kv("impact", line, t)));
    }
    if let Some(fix) = &p.fix {
        out.push(Line::from(vec![
            Span::styled("fix ", t.label),
            Span::styled(clean(fix, LONG), t.warning),
        ]));
    }
    if let Some(e) = &p.error {
        out.push(error_line("error ", e, t));
    }
    out.extend(p.findings.iter().take(MAX_ITEMS).map(|f| finding(f, t)));
    out
}

/// What was seen at one shared address.
fn pair_address<'a>(a: &PairAddressReport, over: Option<Protocol>, t: &Theme) -> Line<'a> {
    let over = over.map_or(String::new(), |p| format!("over {} ", p.label()));
    let mut l = vec![
        Span::styled(format!("@ {} {over}", clean(&a.address, 45)), t.label),
        Span::styled(a.verdict.as_str(), t.verdict(a.verdict)),
    ];
    l.push(Span::styled(
        format!(
            " · probes {} · coalesced {} · direct {} · errors {} · misrouted {}",
            a.probes,
            counts(&a.statuses),
            counts(&a.direct_statuses),
            a.errors,
            a.misrouted
        ),
        t.text,
    ));
    if !a.clients.is_empty() {
        let clients: Vec<&str> = a.clients.iter().map(|c| c.as_str()).collect();
        l.push(Span::styled(format!(" · clients {}", clients.join(",")), t.dim));
    }
    if a.dynamic {
        l.push(Span::styled(" · dynamic page", t.dim));
    }
    // How the coalesced pages compared with the target's, when not byte for byte.
    match (a.content, &a.looked_like) {
        (Some(Content::OtherSite), Some(site)) => l.push(Span::styled(
            format!(" · page like {}", clean(site, 80)),
            t.verdict(Verdict::Misrouted),
        )),
        (Some(c @ (Content::OtherSite | Content::Similar)), _) => {
            l.push(Span::styled(format!(" · page {c}"), t.dim));
        }
        _ => {}
    }
    Line::from(l)
}

/// A host: its name, DNS answer, then per endpoint what it negotiated and answered and the
/// certificate it served, then the host's findings.
pub fn host_lines<'a>(h: &HostReport, t: &Theme) -> Vec<Line<'a>> {
    let mut out = vec![host_heading(h, t), dns_answer(h, t)];
    if let Some(e) = &h.dns.error {
        out.push(error_line("DNS error ", e, t));
    }
    if let Some(stale) = &h.dns.stale {
        let text = format!(
            "lookups fail since {} ({}): the last good answer is used until {}",
            stale.since,
            clean(&stale.error, LONG),
            stale.until
        );
        out.push(error_line("DNS stale ", &text, t));
    }
    out.extend(signals::https_lines(h, t));
    for ep in h.endpoints.iter().take(MAX_ITEMS) {
        out.push(endpoint_handshake(ep, t));
        out.push(endpoint_direct(ep, t));
        if let Some(c) = &ep.cert {
            out.push(certificate(c, t));
            out.push(certificate_names(c, t));
        }
        if let Some(e) = &ep.error {
            out.push(error_line("  error ", e, t));
        }
        if let Some(e) = &ep.direct.error {
            out.push(error_line("  direct error ", e, t));
        }
        out.extend(signals::endpoint_lines(ep, t));
    }
    out.extend(h.findings.iter().take(MAX_ITEMS).map(|f| finding(f, t)));
    out
}

/// "label text", the text an error.
fn error_line<'a>(label: &'static str, error: &str, t: &Theme) -> Line<'a> {
    Line::from(vec![
        Span::styled(label, t.label),
        Span::styled(clean(error, LONG), t.error),
    ])
}

fn host_heading<'a>(h: &HostReport, t: &Theme) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{}:{}", clean(&h.host, 200), h.port), t.header),
        Span::styled(
            format!("  path {} · watch-file line {}", clean(&h.path, 100), h.line),
            t.dim,
        ),
    ])
}

/// Addresses, TTL, CNAME chain, lookup time, and whether `--resolve` set the answer.
fn dns_answer<'a>(h: &HostReport, t: &Theme) -> Line<'a> {
    let addrs: Vec<String> = h.addresses.iter().take(MAX_ITEMS).map(|a| clean(a, 45)).collect();
    let mut l = kv(
        "DNS",
        if addrs.is_empty() {
            "no address".into()
        } else {
            addrs.join(", ")
        },
        t,
    );
    if let Some(ttl) = h.dns.ttl_s {
        l.extend(kv(" · TTL", format!("{ttl}s"), t));
    }
    if !h.dns.cnames.is_empty() {
        let cn: Vec<String> = h
            .dns
            .cnames
            .iter()
            .take(MAX_ITEMS)
            .map(|c| clean(c, 100))
            .collect();
        l.extend(kv(" · CNAME", cn.join(" → "), t));
    }
    l.push(Span::styled(format!(" · {:.1} ms", h.dns.elapsed_ms), t.dim));
    if h.dns.overridden {
        l.push(Span::styled(" · --resolve", t.dim));
    }
    Line::from(l)
}

/// ALPN, TLS version, connect and TLS times, handshakes made and failed.
fn endpoint_handshake<'a>(ep: &EndpointReport, t: &Theme) -> Line<'a> {
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} ms"));
    Line::from(vec![
        Span::styled(format!("@ {} ", clean(&ep.address, 45)), t.label),
        Span::styled(
            format!(
                "ALPN {} · {} · connect {} · TLS {} · handshakes {} ({} failed)",
                clean(ep.alpn.as_deref().unwrap_or("-"), 20),
                clean(ep.tls_version.as_deref().unwrap_or("-"), 20),
                ms(ep.connect_ms),
                ms(ep.tls_ms),
                ep.handshakes,
                ep.handshake_errors
            ),
            t.text,
        ),
    ])
}

/// The direct requests' statuses, errors and HTTP/1.1 retries.
fn endpoint_direct<'a>(ep: &EndpointReport, t: &Theme) -> Line<'a> {
    let mut l = kv(
        "  direct",
        format!(
            "{} {}",
            counts(&ep.direct.statuses),
            clean(ep.direct.version.as_deref().unwrap_or(""), 20)
        ),
        t,
    );
    if ep.direct.errors > 0 {
        l.push(Span::styled(format!(" · {} errors", ep.direct.errors), t.error));
    }
    if !ep.direct.http1_statuses.is_empty() {
        l.extend(kv(" · HTTP/1.1", counts(&ep.direct.http1_statuses), t));
    }
    Line::from(l)
}

/// Subject, issuer, expiry and whether the chain is trusted.
fn certificate<'a>(c: &CertReport, t: &Theme) -> Line<'a> {
    let trust = if c.trusted {
        Span::styled("trusted", t.good)
    } else {
        Span::styled(
            format!("not trusted: {}", clean(c.error.as_deref().unwrap_or("?"), 200)),
            t.error,
        )
    };
    Line::from(vec![
        Span::styled("  cert ", t.label),
        Span::styled(clean(&c.subject, 200), t.text),
        Span::styled(" · issuer ", t.label),
        Span::styled(clean(&c.issuer, 200), t.text),
        Span::styled(" · expires ", t.label),
        Span::styled(c.not_after.map(|t| t.to_string()).unwrap_or_default(), t.text),
        Span::raw(" · "),
        trust,
    ])
}

/// The certificate's names, the one covering the host marked.
fn certificate_names<'a>(c: &CertReport, t: &Theme) -> Line<'a> {
    let mut l = vec![Span::styled("  SANs ", t.label)];
    for (i, san) in c.sans.iter().take(MAX_ITEMS).enumerate() {
        if i > 0 {
            l.push(Span::raw(" "));
        }
        if c.covering_san.as_deref() == Some(san.as_str()) {
            l.push(Span::styled(format!("✓{}", clean(san, 100)), t.mark));
        } else {
            l.push(Span::styled(clean(san, 100), t.text));
        }
    }
    if c.sans.len() > MAX_ITEMS {
        l.push(Span::styled(
            format!(" +{} more", c.sans.len() - MAX_ITEMS),
            t.dim,
        ));
    }
    for ip in c.ip_sans.iter().take(MAX_ITEMS) {
        l.push(Span::styled(format!(" IP:{}", clean(ip, 45)), t.text));
    }
    if !c.covers_host {
        l.push(Span::styled("  (none covers this host)", t.error));
    }
    Line::from(l)
}

fn finding<'a>(f: &Finding, t: &Theme) -> Line<'a> {
    let style = match f.severity {
        Severity::Error => t.error,
        Severity::Warning => t.warning,
        Severity::Info => t.text,
    };
    Line::from(vec![
        Span::styled(format!("{} ", f.severity), style),
        Span::styled(format!("{}: ", f.kind), t.label),
        Span::styled(clean(&f.message, LONG), t.text),
    ])
}

/// Causes the group details name at most.
const MAX_CAUSES: usize = 4;
/// Pairs named under a cause at most.
const PAIRS_PER_CAUSE: usize = 3;

/// One cause of a group's problems: "misdirected 2 of 2 pairs refused by Apache httpd", the
/// pairs it applies to, and its fix (once, with "the origin" and "the target" for the names).
fn cause_lines<'a>(block: &CauseBlock<'_>, of: u32, t: &Theme) -> Vec<Line<'a>> {
    let mut out = vec![Line::from(vec![
        Span::styled(block.verdict.as_str(), t.verdict(block.verdict)),
        Span::styled(
            format!(" {}", cause::block_heading(block, Some(of as usize))),
            t.text,
        ),
    ])];
    for pair in block.pairs.iter().take(PAIRS_PER_CAUSE) {
        let mut l = vec![Span::raw("  ")];
        l.extend(pair_heading(pair, t).spans);
        out.push(Line::from(l));
    }
    if block.pairs.len() > PAIRS_PER_CAUSE {
        out.push(Line::styled(
            format!("  + {} more", block.pairs.len() - PAIRS_PER_CAUSE),
            t.dim,
        ));
    }
    let fix = match (block.cause, &block.pairs[..]) {
        (_, [pair]) => pair.fix.clone(),
        (Some(c), _) => Some(c.fix.clone()),
        (None, _) => None,
    };
    if let Some(fix) = fix {
        out.push(Line::from(kv("  fix", clean(&fix, LONG), t)));
    }
    out
}

/// A group: its hosts, pairs and problems, its pairs by verdict and its problems by cause
/// (`pairs`: every pair of the group, in report order).
fn group_lines<'a>(view: &LiveView, g: &GroupEntry, pairs: &[u32], t: &Theme) -> Vec<Line<'a>> {
    // Listed in the order of the verdicts' names.
    let verdicts: BTreeMap<&str, (Verdict, u32)> = Verdict::ALL
        .into_iter()
        .filter(|&v| g.verdicts[v as usize] > 0)
        .map(|v| (v.as_str(), (v, g.verdicts[v as usize])))
        .collect();
    let id = g
        .report
        .map(|r| format!("group #{} ", view.report.groups[r].id))
        .unwrap_or_default();
    let mut out = vec![Line::from(vec![
        Span::styled(format!("{id}{}", clean(&g.label(view), 200)), t.header),
        Span::styled(
            format!(
                "  {} hosts · {} pairs · {} problems",
                g.hosts.len(),
                g.pairs,
                g.problems
            ),
            t.text,
        ),
    ])];
    let mut l = vec![Span::styled("verdicts ", t.label)];
    for (name, (v, n)) in &verdicts {
        l.push(Span::styled(*name, t.verdict(*v)));
        l.push(Span::styled(format!(" {n}  "), t.text));
    }
    out.push(Line::from(l));
    if g.report.is_none() {
        out.push(Line::styled(
            "these hosts share no connection with another: no client would coalesce them",
            t.dim,
        ));
    }
    // What is wrong with the group: its problem pairs by cause, each fix said once.
    let problems = pairs
        .iter()
        .map(|&p| &*view.report.pairs[p as usize])
        .filter(|p| p.verdict.is_problem());
    let blocks = cause::by_cause(problems, &|_| None);
    for block in blocks.iter().take(MAX_CAUSES) {
        out.extend(cause_lines(block, g.pairs, t));
    }
    if blocks.len() > MAX_CAUSES {
        out.push(Line::styled(
            format!(
                "+ {} more causes: Enter lists the pairs",
                blocks.len() - MAX_CAUSES
            ),
            t.dim,
        ));
    }
    out.push(Line::styled(
        "Enter: its pairs · m: matrix · r: probe everything now",
        t.dim,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::snapshot::cause::problem_pair;
    use crate::engine::snapshot::{ProtocolReport, RateInterval};

    fn row(protocol: Protocol, verdict: Verdict, refused: f64) -> ProtocolReport {
        ProtocolReport {
            protocol,
            coalesce: Default::default(),
            verdict,
            probes: 3,
            rate_421: refused,
            refusal_rate: Some(RateInterval {
                rate: refused,
                low: 0.0,
                high: 1.0,
                n: 3,
            }),
            explanation: "".into(),
            error: None,
            addresses: vec![],
        }
    }

    #[test]
    fn a_pair_probed_over_both_protocols_shows_both_verdicts() {
        let t = Theme::new(false, true);
        let mut p = problem_pair("a.test:443", "b.test:443", Verdict::Misdirected, None);
        let text =
            |p: &PairReport| -> Vec<String> { pair_lines(p, &t).iter().map(|l| l.to_string()).collect() };
        assert!(
            !text(&p).iter().any(|l| l.contains("over HTTP/")),
            "HTTP/2 only: no line"
        );
        p.protocols = vec![
            row(Protocol::H2, Verdict::Ok, 0.0),
            row(Protocol::H3, Verdict::Misdirected, 1.0),
        ];
        let lines = text(&p);
        assert!(
            lines.contains(
                &"over HTTP/2 ok 0% refused of 3 probes · over HTTP/3 misdirected 100% refused of 3 probes"
                    .to_string()
            ),
            "{lines:#?}"
        );
    }
}
