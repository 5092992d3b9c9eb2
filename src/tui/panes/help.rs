//! `?`: every key, over the dashboard.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Widget, Wrap};

use crate::tui::app::App;
use crate::tui::panes::{frame, title};

pub const KEYS: &[(&str, &str)] = &[
    ("q, Ctrl-C", "quit"),
    ("↑ ↓ ← →, h j k l", "move; ← → also change pane"),
    ("PgUp PgDn Home End", "move by page, to the ends"),
    ("Tab, Shift-Tab", "next / previous pane"),
    ("Enter", "drill in: group → pairs → details → its hosts"),
    ("Esc", "back; clear the filter"),
    ("/", "filter by name (Enter keeps it, Esc clears)"),
    ("s", "sort: problems, refusal rate, name"),
    ("m", "matrix of the selected group"),
    ("p", "pause / resume probing"),
    ("r", "probe the selected host (or everything) now"),
    ("e", "export the current snapshot as JSON"),
    ("mouse", "click selects, wheel scrolls"),
    ("?", "this help (any key closes it)"),
];

/// The key of merged views (`watch --from`), listed only there.
pub const VANTAGE_KEY: (&str, &str) = ("v", "vantage: all, then each in turn");

pub fn draw(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let mut keys: Vec<(&str, &str)> = KEYS.to_vec();
    if app.vantages().is_some() {
        keys.insert(keys.len() - 2, VANTAGE_KEY);
    }
    let w = area.width.min(64);
    let h = area.height.min(keys.len() as u16 + 4);
    let popup = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    Clear.render(popup, buf);
    let inner = frame(popup, buf, title("Keys".into(), t), true, t);
    let lines: Vec<Line> = keys
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!("{k:>19}  "), t.key),
                Span::styled(what.to_string(), t.text),
            ])
        })
        .chain(std::iter::once(Line::styled(
            "verdicts are spelled as in the JSON contract",
            t.dim,
        )))
        .collect();
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .render(inner, buf);
}
