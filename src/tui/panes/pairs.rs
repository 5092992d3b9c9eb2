//! The pairs of the selected group: verdict, origin → target, shared address, certificate,
//! which clients would coalesce, coalesced/direct status, refusal rate (421s, resets) and its sparkline.

use std::collections::BTreeMap;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::engine::snapshot::{LiveView, PairAddressReport, PairReport, Verdict};
use crate::tui::app::{App, Focus};
use crate::tui::index::short;
use crate::tui::layout::scrolled;
use crate::tui::panes::{clean, frame, pad, percent, row, sparkline, title, vantage};
use crate::tui::theme::Theme;

/// Which columns fit in a width.
struct Columns {
    /// The row's vantage (merged views only; 0: no column).
    vantage: usize,
    names: usize,
    shared: usize,
    cert: bool,
    clients: bool,
    statuses: bool,
    /// The protocols each pair was judged over (shown when some pair of the group was
    /// probed over HTTP/3).
    protocols: bool,
    spark: usize,
}

const VERDICT_W: usize = 15;
const RATE_W: usize = 4;
/// "h2 h3".
const PROTOCOLS_W: usize = 5;

impl Columns {
    fn for_width(w: usize, vantage: usize, over_h3: bool) -> Columns {
        let mut c = Columns {
            vantage,
            names: 0,
            shared: if w >= 84 { 15 } else { 0 },
            cert: w >= 80,
            clients: w >= 80,
            statuses: w >= 64,
            protocols: over_h3 && w >= 72,
            spark: if w >= 80 { 12 } else { 8 },
        };
        let fixed = VERDICT_W
            + 1
            + if c.vantage > 0 { c.vantage + 1 } else { 0 }
            + if c.shared > 0 { c.shared + 1 } else { 0 }
            + if c.cert { 5 } else { 0 }
            + if c.clients { 4 } else { 0 }
            + if c.statuses { 8 } else { 0 }
            + if c.protocols { PROTOCOLS_W + 1 } else { 0 }
            + RATE_W
            + 1
            + c.spark;
        c.names = w.saturating_sub(fixed + 1).max(8);
        c
    }
}

pub fn draw(view: &LiveView, app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let d = &app.derived;
    let group = d.groups.get(app.group).map(|&g| &d.index.groups[g as usize]);
    let suffix = group.map_or("", |g| g.suffix.as_str());
    let heading = match group {
        Some(g) if !g.suffix.is_empty() => format!(
            "Pairs of *{} ({}) · sort: {}",
            clean(suffix, 60),
            d.pairs.len(),
            app.sort.label()
        ),
        Some(_) => format!("Pairs ({}) · sort: {}", d.pairs.len(), app.sort.label()),
        None => "Pairs".into(),
    };
    let inner = frame(area, buf, title(heading, t), app.focus == Focus::Pairs, t);
    if inner.height == 0 {
        return;
    }
    let w = inner.width as usize;
    // Merged views: the vantage of each row, as wide as the longest name (within bounds).
    let vantage_w = view.vantages.as_ref().map_or(0, |v| {
        let longest = v.list.iter().map(|x| vantage::label(x).chars().count()).max();
        longest.unwrap_or(0).clamp(7, 12)
    });
    let over_h3 = d.pairs.iter().any(|&p| {
        view.report
            .pairs
            .get(p as usize)
            .is_some_and(|p| !p.protocols.is_empty())
    });
    let c = Columns::for_width(w, vantage_w, over_h3);
    let mut head = pad("verdict", VERDICT_W);
    if c.vantage > 0 {
        head.push_str(&format!(" {}", pad("vantage", c.vantage)));
    }
    head.push_str(&format!(" {}", pad("origin → target", c.names)));
    if c.shared > 0 {
        head.push_str(&format!(" {}", pad("shared", c.shared)));
    }
    if c.cert {
        head.push_str(" cert");
    }
    if c.clients {
        head.push_str(" C F");
    }
    if c.statuses {
        head.push_str(" coa/dir");
    }
    if c.protocols {
        head.push_str(&format!(" {}", pad("proto", PROTOCOLS_W)));
    }
    head.push_str(&format!(" {:>4} {}", "ref", pad("history", c.spark)));
    row(buf, inner, 0, &Line::styled(head, t.label), None);

    let rows = inner.height as usize - 1;
    if d.pairs.is_empty() {
        let msg = if group.is_none() {
            " no group selected"
        } else {
            " no pairs in this group"
        };
        row(buf, inner, 1, &Line::styled(msg, t.dim), None);
        return;
    }
    let offset = scrolled(app.pairs_offset, app.pair, rows);
    for (y, i) in (offset..d.pairs.len().min(offset + rows)).enumerate() {
        let p = d.pairs[i] as usize;
        let pair = &view.report.pairs[p];
        let history = view.histories.get(p).map(|h| h.points()).unwrap_or_default();
        let mut line = pair_line(pair, &history, suffix, &c, t);
        if let Some(v) = view.vantages.as_ref().and_then(|v| v.list.get(v.of_pair(p))) {
            let style = if v.health.stale { t.error } else { t.text };
            let cell = format!("{} ", pad(&vantage::label(v), c.vantage));
            line.spans.insert(2, Span::styled(cell, style));
        }
        let selected = (i == app.pair).then_some(t.selected);
        row(buf, inner, y as u16 + 1, &line, selected);
    }
}

fn pair_line<'a>(
    pair: &PairReport,
    history: &[Option<f32>],
    suffix: &str,
    c: &Columns,
    t: &Theme,
) -> Line<'a> {
    let vstyle = t.verdict(pair.verdict);
    let names = format!(
        "{} → {}",
        clean(short(&pair.origin, suffix), c.names),
        clean(short(&pair.target, suffix), c.names)
    );
    let mut spans = vec![
        Span::styled(pad(pair.verdict.as_str(), VERDICT_W), vstyle),
        Span::raw(" "),
        Span::styled(pad(&names, c.names), t.text),
    ];
    if c.shared > 0 {
        let shared = match pair.shared_addresses.len() {
            0 => "-".to_string(),
            1 => clean(&pair.shared_addresses[0], c.shared),
            n => format!("{} +{}", clean(&pair.shared_addresses[0], c.shared - 3), n - 1),
        };
        spans.push(Span::styled(format!(" {}", pad(&shared, c.shared)), t.dim));
    }
    if c.cert {
        let (text, style) = if pair.cert_covers {
            (" yes ", t.text)
        } else {
            (" no  ", t.dim)
        };
        spans.push(Span::styled(text, style));
    }
    if c.clients {
        let yes = |b: bool, l: &'static str| if b { l } else { "-" };
        spans.push(Span::styled(
            format!(
                "{} {} ",
                yes(pair.coalesce.chrome, "C"),
                yes(pair.coalesce.firefox, "F")
            ),
            t.text,
        ));
    }
    // Probed over both protocols: the counts of the one that decided the verdict.
    let deciding = pair.deciding_protocol();
    let addresses = deciding.map_or(&pair.addresses, |r| &r.addresses);
    if c.statuses {
        spans.extend(status_cells(addresses, t));
    }
    if c.protocols {
        spans.extend(protocol_cells(pair, t));
    }
    let (refusal_rate, probes) =
        deciding.map_or((pair.refusal_rate, pair.probes), |r| (r.refusal_rate, r.probes));
    let refused = refusal_rate.map_or(0.0, |r| r.rate);
    let rate_style = if refused > 0.0 { vstyle } else { t.dim };
    let rate = if probes == 0 {
        "-".to_string()
    } else {
        percent(refused)
    };
    spans.push(Span::styled(format!("{rate:>4} "), rate_style));
    let spark_style = if pair.verdict.is_problem() { vstyle } else { t.dim };
    spans.push(Span::styled(sparkline(history, c.spark), spark_style));
    Line::from(spans)
}

/// The most frequent coalesced and direct statuses over `addresses` ("421/200 "), the
/// coalesced one in the misdirected colour when it is a refusal.
fn status_cells<'a>(addresses: &[PairAddressReport], t: &Theme) -> [Span<'a>; 2] {
    // No HTTP answer but refusals: the server reset the streams (or sent GOAWAY).
    let coalesced = most_frequent(addresses.iter().map(|a| &a.statuses)).or_else(|| {
        addresses
            .iter()
            .any(|a| !a.refusals.is_empty())
            .then(|| "RST".to_string())
    });
    let direct = most_frequent(addresses.iter().map(|a| &a.direct_statuses));
    let cstyle = if matches!(coalesced.as_deref(), Some("421" | "RST")) {
        t.verdict(Verdict::Misdirected)
    } else {
        t.text
    };
    [
        Span::styled(
            format!("{:>3}", clean(coalesced.as_deref().unwrap_or("-"), 3)),
            cstyle,
        ),
        Span::styled(
            format!("/{:<3} ", clean(direct.as_deref().unwrap_or("-"), 3)),
            t.dim,
        ),
    ]
}

/// The protocols a pair was judged over, each in its verdict's colour ("h2 h3"), or "h2" alone
/// (its origin does not advertise HTTP/3, or HTTP/3 is off); then a space.
fn protocol_cells<'a>(pair: &PairReport, t: &Theme) -> Vec<Span<'a>> {
    if pair.protocols.is_empty() {
        return vec![Span::styled(format!("{} ", pad("h2", PROTOCOLS_W)), t.dim)];
    }
    let mut spans: Vec<Span<'a>> = Vec::new();
    for (i, r) in pair.protocols.iter().take(2).enumerate() {
        if i > 0 {
            spans.push(Span::raw(" "));
        }
        spans.push(Span::styled(r.protocol.as_str(), t.verdict(r.verdict)));
    }
    let used: usize = spans.iter().map(|s| s.content.chars().count()).sum();
    spans.push(Span::raw(" ".repeat(PROTOCOLS_W.saturating_sub(used) + 1)));
    spans
}

/// The most frequent status over several status counts; on a tie the unhealthy one (not
/// 2xx), so that 421×3 beside 200×3 is not shown as a 200.
pub fn most_frequent<'a>(maps: impl Iterator<Item = &'a BTreeMap<String, u32>>) -> Option<String> {
    let mut total: BTreeMap<&str, u32> = BTreeMap::new();
    for m in maps {
        for (k, v) in m {
            *total.entry(k.as_str()).or_default() += v;
        }
    }
    total
        .into_iter()
        .max_by_key(|(k, v)| (*v, !k.starts_with('2'), std::cmp::Reverse(*k)))
        .map(|(k, _)| k.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tie_shows_the_unhealthy_status() {
        let m = |pairs: &[(&str, u32)]| -> BTreeMap<String, u32> {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        let tie = m(&[("200", 3), ("421", 3)]);
        assert_eq!(most_frequent([&tie].into_iter()).as_deref(), Some("421"));
        let more_ok = m(&[("200", 4), ("421", 3)]);
        assert_eq!(most_frequent([&more_ok].into_iter()).as_deref(), Some("200"));
        // Across addresses: 421×2 at one, 200×1 and 421×1 at the other.
        let (a, b) = (m(&[("421", 2)]), m(&[("200", 1), ("421", 1)]));
        assert_eq!(most_frequent([&a, &b].into_iter()).as_deref(), Some("421"));
        assert_eq!(most_frequent(std::iter::empty()), None);
    }
}
