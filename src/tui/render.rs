//! One frame: the layout, then each pane. Pure: the same view and state give the same
//! buffer.

use std::sync::Arc;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget, Wrap};

use crate::engine::snapshot::LiveView;
use crate::tui::app::{App, Screen};
use crate::tui::layout::{self, MIN_HEIGHT, MIN_WIDTH};
use crate::tui::panes;

/// Draw `view` with `app`'s state into `buf` (the whole `area`).
pub fn draw(view: &LiveView, app: &App, area: Rect, buf: &mut Buffer) {
    if !app.is_current(view) {
        // State derived from another view: derive it for this one (slow path, not per frame
        // in the dashboard, which calls `App::set_view` once per generation).
        let fresh = app.derive_for(&Arc::new(view.clone()));
        return draw_shown(view, &fresh, area, buf);
    }
    draw_shown(view, app, area, buf)
}

/// Draw what `app` shows of `view`: the view itself, or the vantage of it the filter picks.
fn draw_shown(view: &LiveView, app: &App, area: Rect, buf: &mut Buffer) {
    match app.view() {
        Some(shown) if !std::ptr::eq(Arc::as_ptr(shown), view) => draw_current(shown, app, area, buf),
        _ => draw_current(view, app, area, buf),
    }
}

fn draw_current(view: &LiveView, app: &App, area: Rect, buf: &mut Buffer) {
    let p = layout::compute(area, app.screen, app.focus);
    if p.too_small {
        let msg = format!(
            "terminal too small: {}×{}; coalscope needs at least {MIN_WIDTH}×{MIN_HEIGHT} (q quits)",
            area.width, area.height
        );
        Paragraph::new(Line::styled(msg, app.theme.error))
            .wrap(Wrap { trim: true })
            .render(area, buf);
        return;
    }
    panes::header::draw(view, app, p.header, buf);
    match app.screen {
        Screen::Main => {
            panes::groups::draw(view, app, p.groups, buf);
            panes::pairs::draw(view, app, p.pairs, buf);
            if p.details.area() > 0 {
                panes::details::draw(view, app, p.details, buf);
            }
            if p.events.area() > 0 {
                panes::events::draw(view, app, p.events, buf);
            }
        }
        Screen::Matrix => panes::matrix::draw(view, app, p.matrix, p.matrix_info, buf),
    }
    panes::footer::draw(app, p.footer, buf);
    if app.help {
        panes::help::draw(app, area, buf);
    }
}

/// Draw one frame of `view` at `width`×`height` into a fresh buffer (tests, benchmarks: only
/// compiled for them).
#[cfg(any(test, feature = "test-support"))]
pub fn render_to_buffer(view: &LiveView, app: &App, width: u16, height: u16) -> Buffer {
    let area = Rect::new(0, 0, width, height);
    let mut buf = Buffer::empty(area);
    draw(view, app, area, &mut buf);
    buf
}
