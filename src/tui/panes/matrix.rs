//! A group as a matrix: one row per origin, one column per target, one coloured cell per
//! ordered pair (a letter without colour). Only the visible window of cells is drawn.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};

use crate::engine::snapshot::{CoalesceRule, LiveView, PairReport, Verdict};
use crate::tui::app::App;
use crate::tui::index::short;
use crate::tui::layout::{matrix_grid, matrix_label_width, scrolled, MATRIX_CELL_W};
use crate::tui::panes::{clean, frame, pad, percent, row, title};
use crate::tui::theme::Theme;

pub fn draw(view: &LiveView, app: &App, area: Rect, info: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let d = &app.derived;
    let group = d.groups.get(app.group).map(|&g| &d.index.groups[g as usize]);
    let heading = match group {
        Some(g) => format!(
            "Matrix of {} · rows: origin, columns: target · {} hosts",
            clean(&g.label(view), 50),
            d.members.len()
        ),
        None => "Matrix".into(),
    };
    let inner = frame(area, buf, title(heading, t), true, t);
    let suffix = group.map_or("", |g| g.suffix.as_str());
    let n = d.members.len();
    let (rows, cols) = matrix_grid(area);
    if n == 0 || rows == 0 || cols == 0 {
        row(
            buf,
            inner,
            0,
            &Line::styled(" no hosts in this group", t.dim),
            None,
        );
        draw_info(view, app, info, buf);
        return;
    }
    let r0 = scrolled(app.matrix_offset.0, app.cell.0, rows);
    let c0 = scrolled(app.matrix_offset.1, app.cell.1, cols);
    let lw = matrix_label_width(inner) as usize;
    let name = |h: u32| {
        let host = &view.report.hosts[h as usize];
        let key = format!("{}:{}", host.host, host.port);
        clean(short(&key, suffix), lw)
    };
    // Column header: target numbers.
    let mut head = vec![Span::styled(pad("origin \\ target", lw + 1), t.label)];
    for c in c0..n.min(c0 + cols) {
        let style = if c == app.cell.1 { t.selected } else { t.label };
        head.push(Span::styled(format!("{:>2} ", (c + 1) % 100), style));
    }
    row(buf, inner, 0, &Line::from(head), None);
    for (y, r) in (r0..n.min(r0 + rows)).enumerate() {
        let origin = d.members[r];
        let lstyle = if r == app.cell.0 { t.selected } else { t.text };
        let mut spans = vec![Span::styled(
            pad(&format!("{:>2} {}", (r + 1) % 100, name(origin)), lw),
            lstyle,
        )];
        spans.push(Span::raw(" "));
        for c in c0..n.min(c0 + cols) {
            let target = d.members[c];
            let (mut text, mut style) = if r == c {
                ("╲  ".to_string(), t.dim)
            } else {
                let pair = d
                    .cells
                    .get(&(origin, target))
                    .map(|&p| &*view.report.pairs[p as usize]);
                cell(pair, t)
            };
            if text.chars().count() < MATRIX_CELL_W as usize {
                text.push(' ');
            }
            if (r, c) == app.cell {
                style = style.add_modifier(Modifier::REVERSED);
                text = format!("[{}]", text.trim_end().chars().next().unwrap_or(' '));
            }
            spans.push(Span::styled(text, style));
        }
        row(buf, inner, y as u16 + 1, &Line::from(spans), None);
    }
    draw_info(view, app, info, buf);
}

/// A pair's cell: its verdict's letter and style, marked `°` when only an ORIGIN frame links
/// the pair.
fn cell(pair: Option<&PairReport>, t: &Theme) -> (String, Style) {
    let (text, style) = t.cell(pair.map(|p| p.verdict));
    if pair.is_some_and(linked_only_by_origin_frame) {
        return (text.chars().take(1).chain(std::iter::once('°')).collect(), style);
    }
    (text.to_string(), style)
}

/// No shared address: only the origin's ORIGIN frame makes a client (Firefox) pool the pair.
fn linked_only_by_origin_frame(p: &PairReport) -> bool {
    p.shared_addresses.is_empty() && p.coalesce.rules.firefox == CoalesceRule::OriginFrame
}

/// The pair under the cursor, and the legend.
fn draw_info(view: &LiveView, app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let inner = frame(area, buf, title("Cell".into(), t), false, t);
    let w = inner.width as usize;
    let legend = Line::from(vec![
        Span::styled("M", t.verdict(Verdict::Misdirected)),
        Span::styled(" misdirected  ", t.dim),
        Span::styled("R", t.verdict(Verdict::Misrouted)),
        Span::styled(" misrouted  ", t.dim),
        Span::styled("I", t.verdict(Verdict::Intermittent)),
        Span::styled(" intermittent  ", t.dim),
        Span::styled("D", t.verdict(Verdict::DirectBroken)),
        Span::styled(" direct-broken  ", t.dim),
        Span::styled("·", t.verdict(Verdict::Ok)),
        Span::styled(" ok  ", t.dim),
        Span::styled("-", t.verdict(Verdict::NotCoalescable)),
        Span::styled(" not-coalescable  ", t.dim),
        Span::styled("E", t.verdict(Verdict::Error)),
        Span::styled(" error  ", t.dim),
        Span::styled("…", t.verdict(Verdict::Pending)),
        Span::styled(" pending  ", t.dim),
        Span::styled("°", t.label),
        Span::styled(" by ORIGIN", t.dim),
    ]);
    let last = inner.height.saturating_sub(1);
    match app.matrix_pair() {
        Some(p) => {
            let pair = &view.report.pairs[p];
            let head = Line::from(vec![
                Span::styled(clean(&pair.origin, w / 2), t.header),
                Span::styled(" → ", t.dim),
                Span::styled(clean(&pair.target, w / 2), t.header),
                Span::raw("  "),
                Span::styled(pair.verdict.as_str(), t.verdict(pair.verdict)),
                Span::styled(
                    format!(
                        "  refused {} of {} probes",
                        percent(pair.refusal_rate.map_or(0.0, |r| r.rate)),
                        pair.probes
                    ),
                    t.text,
                ),
            ]);
            row(buf, inner, 0, &head, None);
            if last > 1 {
                let why = Line::styled(clean(&pair.explanation, w), t.text);
                row(buf, inner, 1, &why, None);
            }
        }
        None => {
            let msg = if app.cell.0 == app.cell.1 {
                " the same host"
            } else {
                " no pair listed for these hosts"
            };
            row(buf, inner, 0, &Line::styled(msg, t.dim), None);
        }
    }
    if last > 0 {
        row(buf, inner, last, &legend, None);
    }
}
