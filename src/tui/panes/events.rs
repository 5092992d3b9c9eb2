//! The event log, newest first: verdict changes and what changed under a host (certificate,
//! addresses, DNS), all sanitised (names, SANs and errors come from the network).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::engine::snapshot::{Event, HostEvent, LiveView, VerdictEvent};
use crate::tui::app::{App, Focus};
use crate::tui::index::short;
use crate::tui::panes::{clean, clock, frame, row, title};
use crate::tui::theme::Theme;

pub fn draw(view: &LiveView, app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let n = view.events.len();
    let inner = frame(
        area,
        buf,
        title(format!("Events ({n})"), t),
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
        let mut spans = vec![Span::styled(format!("{} ", clock(e.at())), t.dim)];
        match e {
            Event::Verdict(v) => verdict_spans(&mut spans, v, suffix, w, t),
            Event::Host(h) => host_spans(&mut spans, h, suffix, w, t),
        }
        let selected = (y == 0 && app.focus == Focus::Events).then_some(t.selected);
        row(buf, inner, y as u16, &Line::from(spans), selected);
    }
}

/// "origin → target from → to  explanation".
fn verdict_spans<'a>(spans: &mut Vec<Span<'a>>, e: &'a VerdictEvent, suffix: &str, w: usize, t: &Theme) {
    spans.push(Span::styled(
        format!(
            "{} → {} ",
            clean(short(&e.origin, suffix), w / 3),
            clean(short(&e.target, suffix), w / 3)
        ),
        t.text,
    ));
    match &e.from {
        Some(from) => {
            spans.push(Span::styled(from.as_str(), t.verdict(*from)));
            spans.push(Span::styled(" → ", t.dim));
        }
        None => spans.push(Span::styled("new → ", t.dim)),
    }
    spans.push(Span::styled(e.to.as_str(), t.verdict(e.to)));
    spans.push(Span::styled(format!("  {}", clean(&e.message, w)), t.dim));
}

/// "kind host [at address]  what changed" (the kind first: the pane is narrow).
fn host_spans(spans: &mut Vec<Span<'_>>, e: &HostEvent, suffix: &str, w: usize, t: &Theme) {
    spans.push(Span::styled(format!("{} ", e.change.kind().as_str()), t.label));
    let mut place = clean(short(&e.host, suffix), w / 3);
    if let Some(a) = &e.address {
        place.push_str(&format!(" at {}", clean(a, w / 4)));
    }
    spans.push(Span::styled(place, t.text));
    spans.push(Span::styled(
        format!("  {}", clean(&e.change.message(), w)),
        t.dim,
    ));
}
