//! One file per pane. Every pane draws straight into the frame's buffer and builds only the
//! rows that are visible.

pub mod details;
pub mod events;
pub mod footer;
pub mod groups;
pub mod header;
pub mod help;
pub mod matrix;
pub mod pairs;
mod signals;
pub mod vantage;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Widget};

use crate::engine::snapshot::Timestamp;
use crate::tui::theme::Theme;

/// A string from the network (or anything else untrusted), ready to draw: control and bidi
/// characters replaced, length bounded.
pub fn clean(s: &str, max_chars: usize) -> String {
    crate::sanitize::for_terminal(s, max_chars.max(1))
}

/// Cut `s` to `width` columns with "…" (for strings that are already clean).
pub fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else if width == 0 {
        String::new()
    } else {
        let mut out: String = s.chars().take(width - 1).collect();
        out.push('…');
        out
    }
}

/// `s` cut or padded to exactly `width` columns.
pub fn pad(s: &str, width: usize) -> String {
    let s = fit(s, width);
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(n)))
}

/// Draw a bordered pane and return its inside.
pub fn frame(area: Rect, buf: &mut Buffer, title: Line<'_>, focused: bool, theme: &Theme) -> Rect {
    let block = Block::bordered()
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(if focused { theme.border_focus } else { theme.border })
        .title(title);
    let inner = block.inner(area);
    block.render(area, buf);
    inner
}

pub fn title<'a>(text: String, theme: &Theme) -> Line<'a> {
    Line::from(Span::styled(format!(" {text} "), theme.title))
}

/// Write one line at row `y` of `area`; `selected` highlights the whole row.
pub fn row(buf: &mut Buffer, area: Rect, y: u16, line: &Line<'_>, selected: Option<Style>) {
    if y >= area.height {
        return;
    }
    buf.set_line(area.x, area.y + y, line, area.width);
    if let Some(style) = selected {
        buf.set_style(Rect::new(area.x, area.y + y, area.width, 1), style);
    }
}

/// "87%" from a share.
pub fn percent(share: f64) -> String {
    format!("{:.0}%", (share * 100.0).clamp(0.0, 100.0))
}

/// A sparkline of refusal rates (421s, resets) (0..1), one character per bucket; gaps where nothing landed.
pub fn sparkline(values: &[Option<f32>], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let start = values.len().saturating_sub(width);
    let mut s: String = values[start..]
        .iter()
        .map(|v| match v {
            None => ' ',
            Some(v) if !v.is_finite() => '?',
            Some(v) => BARS[((v.clamp(0.0, 1.0) * 7.0).round()) as usize],
        })
        .collect();
    let n = values.len() - start;
    if n < width {
        s = format!("{}{s}", " ".repeat(width - n));
    }
    s
}

/// "HH:MM:SS" (UTC) of a time (its whole text when out of range).
pub fn clock(at: Timestamp) -> String {
    let text = at.to_string();
    match text.split_once('T') {
        Some((_, t)) if t.len() >= 8 => t[..8].to_string(),
        _ => text,
    }
}
