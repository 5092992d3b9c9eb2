//! What merged views (`watch --from`) add to the panes: the vantages' states for the header,
//! a pair's verdict per vantage and a host's addresses per vantage for the details, a row's
//! vantage for the pairs table. Names and errors come from the network: cleaned here.

use ratatui::text::{Line, Span};

use crate::engine::snapshot::{HostReport, LiveView, PairReport, Vantage, Vantages};
use crate::tui::panes::clean;
use crate::tui::theme::Theme;

/// Longest vantage name drawn.
pub const NAME_MAX: usize = 24;

/// "34s", "5m", "2h".
pub fn age(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// How a vantage is doing, in a word and an age: "fresh 2s", "waiting 3s", "stale 34s";
/// the local engine is "probing" (here).
pub fn state(v: &Vantage) -> String {
    let h = &v.health;
    if v.local {
        "probing".into()
    } else if h.stale {
        format!("stale {}", age(h.age))
    } else if !h.answered {
        format!("waiting {}", age(h.age))
    } else {
        format!("fresh {}", age(h.age))
    }
}

/// A vantage's name as drawn (stale ones marked "~").
pub fn label(v: &Vantage) -> String {
    let name = clean(&v.name, NAME_MAX);
    if v.health.stale {
        format!("~{name}")
    } else {
        name
    }
}

fn style(v: &Vantage, t: &Theme) -> ratatui::style::Style {
    if v.health.stale {
        t.error
    } else if !v.health.answered {
        t.warning
    } else {
        t.good
    }
}

/// Header line 2: every vantage with its state, then which one is shown.
pub fn states<'a>(vantages: &Vantages, t: &Theme) -> Line<'a> {
    let mut spans = vec![Span::styled(" vantages ", t.label)];
    for (i, v) in vantages.list.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" · ", t.dim));
        }
        spans.push(Span::styled(clean(&v.name, NAME_MAX), t.header));
        spans.push(Span::styled(format!(" {}", state(v)), style(v, t)));
    }
    let showing = match vantages.showing.and_then(|s| vantages.list.get(s)) {
        Some(v) => clean(&v.name, NAME_MAX),
        None => "all".into(),
    };
    spans.push(Span::styled("  showing ", t.label));
    spans.push(Span::styled(showing, t.message));
    Line::from(spans)
}

/// Header line 3: the first stale vantage's last error (and how many more are stale), else
/// what the caps left out, else the totals.
pub fn news<'a>(view: &LiveView, vantages: &Vantages, t: &Theme, w: usize) -> Line<'a> {
    let stale: Vec<&Vantage> = vantages.list.iter().filter(|v| v.health.stale).collect();
    if let Some(v) = stale.first() {
        let more = if stale.len() > 1 {
            format!(" (and {} more stale)", stale.len() - 1)
        } else {
            String::new()
        };
        let error = v.health.error.as_deref().unwrap_or("no answer within the bound");
        return Line::from(vec![
            Span::styled(
                format!(" {} stale {}: ", clean(&v.name, NAME_MAX), age(v.health.age)),
                t.error,
            ),
            Span::styled(clean(error, w.saturating_sub(30).max(20)), t.error),
            Span::styled(format!("{more} · its rows: ~"), t.dim),
        ]);
    }
    if let Some((v, note)) = vantages
        .list
        .iter()
        .find_map(|v| v.data.note.as_ref().map(|n| (v, n)))
    {
        return Line::from(Span::styled(
            format!(" {}: {}", clean(&v.name, NAME_MAX), clean(note, w)),
            t.warning,
        ));
    }
    let s = &view.report.summary;
    Line::from(Span::styled(
        format!(
            " {} pairs · {} requests · {} connections over {} vantages",
            s.pairs,
            s.requests,
            s.connections,
            vantages.list.len()
        ),
        t.dim,
    ))
}

/// "vantages fra1: misdirected, iad1: not-coalescable" for a pair (stale ones with their
/// age).
pub fn pair_verdicts<'a>(vantages: &Vantages, p: &PairReport, t: &Theme) -> Line<'a> {
    let mut spans = vec![Span::styled("vantages ", t.label)];
    for (i, (v, verdict)) in vantages.verdicts(&p.origin, &p.target).into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(", ", t.dim));
        }
        let stale = if v.health.stale {
            format!(" (stale {})", age(v.health.age))
        } else {
            String::new()
        };
        spans.push(Span::styled(
            format!("{}{stale}: ", clean(&v.name, NAME_MAX)),
            t.text,
        ));
        spans.push(Span::styled(verdict.as_str(), t.verdict(verdict)));
    }
    Line::from(spans)
}

/// "addresses fra1: 127.0.0.10 · iad1: 127.0.0.11" for a host, when the vantages' answers
/// differ (None when they agree or only one has it).
pub fn host_addresses<'a>(vantages: &Vantages, h: &HostReport, t: &Theme) -> Option<Line<'a>> {
    let key = format!("{}:{}", h.host, h.port);
    let seen: Vec<(&Vantage, &Vec<String>)> = vantages
        .list
        .iter()
        .filter_map(|v| v.data.host(&key).map(|r| (v, &r.addresses)))
        .collect();
    if seen.len() < 2 || seen.iter().all(|(_, a)| *a == seen[0].1) {
        return None;
    }
    let mut spans = vec![Span::styled("addresses ", t.label)];
    for (i, (v, addresses)) in seen.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" · ", t.dim));
        }
        let list: Vec<String> = addresses.iter().take(8).map(|a| clean(a, 45)).collect();
        let list = if list.is_empty() {
            "-".to_string()
        } else {
            list.join(", ")
        };
        spans.push(Span::styled(format!("{}: ", clean(&v.name, NAME_MAX)), t.text));
        spans.push(Span::styled(list, t.text));
    }
    Some(Line::from(spans))
}
