//! Three lines: what is watched and what was found; where the engine is; the last reload.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::engine::snapshot::LiveView;
use crate::tui::app::App;
use crate::tui::panes::vantage;
use crate::tui::panes::{clean, clock, percent, row};
use crate::tui::theme::Theme;

pub fn draw(view: &LiveView, app: &App, area: Rect, buf: &mut Buffer) {
    let w = area.width as usize;
    row(buf, area, 0, &watched(view, &app.theme, w), None);
    if let Some(vantages) = &view.vantages {
        row(buf, area, 1, &vantage::states(vantages, &app.theme), None);
        row(buf, area, 2, &vantage::news(view, vantages, &app.theme, w), None);
        return;
    }
    row(buf, area, 1, &progress(view, app, w), None);
    row(buf, area, 2, &last_reload(view, &app.theme, w), None);
}

/// Line 1: source and counts.
fn watched<'a>(view: &LiveView, t: &Theme, w: usize) -> Line<'a> {
    let st = &view.status;
    let s = &view.report.summary;
    let coverage = coverage_text(s);
    let counts = format!(
        "  {} hosts · {} groups · {} problem pairs{coverage}",
        st.hosts.max(view.report.hosts.len()),
        view.report.groups.len(),
        s.problems,
    );
    let room = w.saturating_sub(counts.chars().count() + 12);
    let source = clean(if st.source.is_empty() { "-" } else { &st.source }, room.max(8));
    let problems_style = if s.problems > 0 { t.error } else { t.good };
    Line::from(vec![
        Span::styled(" coalscope ", t.title),
        Span::styled(source, t.header),
        Span::styled(
            format!(
                "  {} hosts · {} groups · ",
                st.hosts.max(view.report.hosts.len()),
                view.report.groups.len()
            ),
            t.text,
        ),
        Span::styled(format!("{} problem pairs", s.problems), problems_style),
        Span::styled(coverage, t.text),
    ])
}

/// " · coverage 61%", and when the budget cannot cover every pair, the share of the names
/// tried as a target too (" · coverage 2% · targets 100%").
fn coverage_text(s: &crate::engine::snapshot::Summary) -> String {
    if s.coverage < 1.0 {
        format!(
            " · coverage {} · targets {}",
            percent(s.coverage),
            percent(s.target_coverage)
        )
    } else {
        format!(" · coverage {}", percent(s.coverage))
    }
}

/// Line 2: round progress, pause, lab phase.
fn progress<'a>(view: &LiveView, app: &App, w: usize) -> Line<'a> {
    let t = &app.theme;
    let st = &view.status;
    let total = st.cycle_total.max(1);
    let done = st.cycle_done.min(total);
    let filled = done * 10 / total;
    let mut spans = vec![
        Span::styled(" round ", t.label),
        Span::styled(
            format!("{}{}", "▰".repeat(filled), "▱".repeat(10 - filled)),
            t.good,
        ),
        Span::styled(
            format!(" {}/{}", done.min(st.cycle_total), st.cycle_total),
            t.text,
        ),
        Span::styled(
            format!(
                " · cycle {} · every {} · window {}",
                st.cycles,
                secs(st.interval_s),
                secs(st.window_s)
            ),
            t.dim,
        ),
    ];
    if st.max_rps > 0 && st.full_rps > f64::from(st.max_rps) {
        // The budget covers part of the pairs per cycle: say how much a full cycle would take.
        spans.push(Span::styled(
            format!(" · budget {} of {:.0} req/s", st.max_rps, st.full_rps.ceil()),
            t.warning,
        ));
    }
    if st.paused || app.paused {
        spans.push(Span::raw("  "));
        let text = if st.paused { " PAUSED " } else { " pausing… " };
        spans.push(Span::styled(text, t.paused));
    }
    if let Some(phase) = &st.lab_phase {
        spans.push(Span::raw("  "));
        spans.push(Span::styled(clean(phase, w), t.warning));
    }
    Line::from(spans)
}

/// Line 3: the last reload, or why it failed.
fn last_reload<'a>(view: &LiveView, t: &Theme, w: usize) -> Line<'a> {
    let st = &view.status;
    let s = &view.report.summary;
    match (&st.reload_error, &st.last_reload) {
        (Some(e), _) => Line::from(vec![
            Span::styled(" reload failed: ", t.error),
            Span::styled(clean(e, w), t.error),
        ]),
        (None, Some(at)) => Line::from(vec![
            Span::styled(" watch-file loaded ", t.label),
            Span::styled(clock(*at), t.text),
            Span::styled(
                format!(
                    " UTC · {} pairs · {} requests · {} connections",
                    s.pairs, s.requests, s.connections
                ),
                t.dim,
            ),
        ]),
        (None, None) => Line::from(Span::styled(" waiting for the first results…", t.dim)),
    }
}

/// "3s", "2m", "1.5s".
pub fn secs(s: f64) -> String {
    if s <= 0.0 {
        "-".into()
    } else if s >= 60.0 && (s % 60.0).abs() < 1e-9 {
        format!("{}m", (s / 60.0) as u64)
    } else if (s.fract()).abs() < 1e-9 {
        format!("{}s", s as u64)
    } else {
        format!("{s:.1}s")
    }
}
