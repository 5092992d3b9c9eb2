//! The coalescing groups, one row each with a problem badge; the selected group is unfolded
//! into its members.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::engine::snapshot::{LiveView, Severity};
use crate::tui::app::{App, Focus};
use crate::tui::index::{short, GroupEntry};
use crate::tui::layout::scrolled;
use crate::tui::panes::{clean, frame, row, title};
use crate::tui::theme::Theme;

pub fn draw(view: &LiveView, app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let d = &app.derived;
    let mut heading = format!("Groups ({})", d.groups.len());
    if !app.filter.is_empty() {
        heading.push_str(" filtered");
    }
    let inner = frame(area, buf, title(heading, t), app.focus == Focus::Groups, t);
    let rows = inner.height as usize;
    let members = d.members.len();
    let total = d.groups.len() + members;
    if total == 0 {
        let msg = if view.report.hosts.is_empty() {
            "no results yet"
        } else {
            "nothing matches the filter"
        };
        row(buf, inner, 0, &Line::styled(format!(" {msg}"), t.dim), None);
        return;
    }
    let cursor = app.group + app.member.map_or(0, |m| m + 1);
    let offset = scrolled(app.groups_offset, cursor, rows);
    let w = inner.width as usize;
    for (y, r) in (offset..total.min(offset + rows)).enumerate() {
        let line = if r <= app.group {
            group_line(view, &d.index.groups[d.groups[r] as usize], r == app.group, w, t)
        } else if r <= app.group + members {
            let h = d.members[r - app.group - 1] as usize;
            let entry = &d.index.groups[d.groups[app.group] as usize];
            member_line(view, h, &entry.suffix, w, t)
        } else {
            let g = d.groups[r - members] as usize;
            group_line(view, &d.index.groups[g], false, w, t)
        };
        let selected = (r == cursor).then_some(t.selected);
        row(buf, inner, y as u16, &line, selected);
    }
}

/// The name a group goes by: "*.suffix" without the port, or its first member.
fn group_line<'a>(view: &LiveView, g: &GroupEntry, open: bool, w: usize, t: &Theme) -> Line<'a> {
    // The hosts of the "not coalescing" pseudo-group have no problem pairs by definition:
    // its badge counts the hosts with an error finding instead of calling them ok.
    let host_errors = g
        .hosts
        .iter()
        .filter(|&&h| {
            view.report.hosts[h as usize]
                .findings
                .iter()
                .any(|f| f.severity == Severity::Error)
        })
        .count();
    let badge = if g.problems > 0 {
        Span::styled(format!(" !{} ", g.problems), t.badge_problem)
    } else if g.report.is_none() && host_errors > 0 {
        Span::styled(format!(" {host_errors} err "), t.badge_problem)
    } else if g.pairs == 0 {
        Span::raw("")
    } else {
        Span::styled(" ok ", t.good)
    };
    let count = format!(" ({})", g.hosts.len());
    let badge_w = badge.content.chars().count();
    let name_w = w.saturating_sub(2 + count.len() + badge_w + 1);
    let name = clean(&g.label(view), name_w);
    let gap = w.saturating_sub(2 + name.chars().count() + count.len() + badge_w);
    Line::from(vec![
        Span::styled(if open { "▾ " } else { "▸ " }, t.dim),
        Span::styled(name, t.header),
        Span::styled(count, t.dim),
        Span::raw(" ".repeat(gap)),
        badge,
    ])
}

fn member_line<'a>(view: &LiveView, h: usize, suffix: &str, w: usize, t: &Theme) -> Line<'a> {
    let host = &view.report.hosts[h];
    let key = format!("{}:{}", host.host, host.port);
    let errors = host.findings.iter().any(|f| f.severity == Severity::Error);
    let name = clean(short(&key, suffix), w.saturating_sub(6));
    let mut spans = vec![Span::styled("   ", t.dim), Span::styled(name, t.text)];
    if errors {
        spans.push(Span::styled(" !", t.error));
    }
    Line::from(spans)
}
