//! The bottom line: the filter being typed, a message, and the keys.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::tui::app::{App, Screen};
use crate::tui::panes::{clean, row};

pub fn draw(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let mut spans = Vec::new();
    if app.filter_editing {
        spans.push(Span::styled(" filter: ", t.key));
        spans.push(Span::styled(format!("{}█", clean(&app.filter, 60)), t.header));
        spans.push(Span::styled("  Enter keep · Esc clear", t.dim));
        row(buf, area, 0, &Line::from(spans), None);
        return;
    }
    if let Some(m) = &app.message {
        spans.push(Span::styled(format!(" {} ", clean(m, 200)), t.message));
        spans.push(Span::styled("│", t.dim));
    } else if !app.filter.is_empty() {
        spans.push(Span::styled(
            format!(" filter: {} ", clean(&app.filter, 40)),
            t.message,
        ));
        spans.push(Span::styled("│", t.dim));
    }
    if app.message.is_none() {
        if let Some(name) = app.vantage_name() {
            spans.push(Span::styled(format!(" vantage: {} ", clean(name, 24)), t.message));
            spans.push(Span::styled("│", t.dim));
        }
    }
    let mut keys: Vec<(&str, &str)> = match app.screen {
        Screen::Main => vec![
            ("q", "quit"),
            ("↑↓", "move"),
            ("Tab", "pane"),
            ("⏎", "open"),
            ("/", "filter"),
            ("s", "sort"),
            ("m", "matrix"),
            ("p", "pause"),
            ("r", "probe"),
            ("e", "export"),
            ("?", "help"),
        ],
        Screen::Matrix => vec![
            ("q", "quit"),
            ("←↑↓→", "cell"),
            ("⏎", "pair"),
            ("m/Esc", "back"),
            ("r", "probe"),
            ("e", "export"),
            ("?", "help"),
        ],
    };
    // Merged views (`watch --from`): the vantage filter, after the name filter.
    if app.screen == Screen::Main && app.vantages().is_some() {
        keys.insert(5, ("v", "vantage"));
    }
    // Narrow terminals: the navigation keys go without words.
    let narrow = area.width < 100;
    for (k, what) in &keys {
        spans.push(Span::styled(format!(" {k}"), t.key));
        if !(narrow && matches!(*what, "move" | "pane" | "open" | "cell")) {
            spans.push(Span::styled(format!(" {what}"), t.dim));
        }
    }
    row(buf, area, 0, &Line::from(spans), None);
}
