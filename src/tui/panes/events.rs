//! Verdict changes, newest first.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::engine::snapshot::LiveView;
use crate::tui::app::{App, Focus};
use crate::tui::index::short;
use crate::tui::panes::{clean, clock, frame, row, title};

pub fn draw(view: &LiveView, app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let n = view.events.len();
    let inner = frame(
        area,
        buf,
        title(format!("Verdict changes ({n})"), t),
        app.focus == Focus::Events,
        t,
    );
    if n == 0 {
        row(buf, inner, 0, &Line::styled(" none yet", t.dim), None);
        return;
    }
    let suffix = app.derived.index.suffix.as_str();
    let w = inner.width as usize;
    let start = app.events_scroll.min(n - 1);
    for y in 0..inner.height as usize {
        let Some(i) = (n - 1).checked_sub(start + y) else {
            break;
        };
        let e = &view.events[i];
        let mut spans = vec![
            Span::styled(format!("{} ", clock(e.at)), t.dim),
            Span::styled(
                format!(
                    "{} → {} ",
                    clean(short(&e.origin, suffix), w / 3),
                    clean(short(&e.target, suffix), w / 3)
                ),
                t.text,
            ),
        ];
        match &e.from {
            Some(from) => {
                spans.push(Span::styled(from.as_str(), t.verdict(*from)));
                spans.push(Span::styled(" → ", t.dim));
            }
            None => spans.push(Span::styled("new → ", t.dim)),
        }
        spans.push(Span::styled(e.to.as_str(), t.verdict(e.to)));
        spans.push(Span::styled(format!("  {}", clean(&e.message, w)), t.dim));
        let selected = (y == 0 && app.focus == Focus::Events).then_some(t.selected);
        row(buf, inner, y as u16, &Line::from(spans), selected);
    }
}
