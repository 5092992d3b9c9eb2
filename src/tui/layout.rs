//! Where each pane goes, for a terminal size. Drawing and mouse hit-testing both use this, so
//! a click lands on the row that was drawn there.

use ratatui::layout::Rect;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Groups,
    Pairs,
    Details,
    Events,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Main,
    Matrix,
}

/// Below this the dashboard draws a message instead of panes.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;
pub const HEADER_HEIGHT: u16 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Panes {
    pub header: Rect,
    pub footer: Rect,
    /// Main screen.
    pub groups: Rect,
    pub pairs: Rect,
    /// Details, or in compact mode the bottom area shared with events (shown when focused).
    pub details: Rect,
    pub events: Rect,
    /// Matrix screen: the grid and the strip describing the cell under the cursor.
    pub matrix: Rect,
    pub matrix_info: Rect,
    /// Details and events share the bottom area (small terminals).
    pub compact: bool,
    pub too_small: bool,
}

pub fn compute(area: Rect, screen: Screen, focus: Focus) -> Panes {
    let mut p = Panes::default();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        p.too_small = true;
        return p;
    }
    p.header = Rect::new(area.x, area.y, area.width, HEADER_HEIGHT);
    p.footer = Rect::new(area.x, area.bottom() - 1, area.width, 1);
    let body = Rect::new(
        area.x,
        area.y + HEADER_HEIGHT,
        area.width,
        area.height - HEADER_HEIGHT - 1,
    );
    if screen == Screen::Matrix {
        let info = 6.min(body.height / 3);
        p.matrix = Rect::new(body.x, body.y, body.width, body.height - info);
        p.matrix_info = Rect::new(body.x, body.bottom() - info, body.width, info);
        return p;
    }
    p.compact = area.width < 100 || area.height < 30;
    let top_h = if p.compact {
        body.height / 2
    } else {
        body.height * 11 / 20
    };
    let groups_w = if p.compact {
        26
    } else {
        (area.width * 3 / 10).clamp(30, 44)
    };
    p.groups = Rect::new(body.x, body.y, groups_w, top_h);
    p.pairs = Rect::new(body.x + groups_w, body.y, body.width - groups_w, top_h);
    let bottom = Rect::new(body.x, body.y + top_h, body.width, body.height - top_h);
    if p.compact {
        if focus == Focus::Events {
            p.events = bottom;
        } else {
            p.details = bottom;
        }
    } else {
        let details_w = bottom.width * 3 / 5;
        p.details = Rect::new(bottom.x, bottom.y, details_w, bottom.height);
        p.events = Rect::new(
            bottom.x + details_w,
            bottom.y,
            bottom.width - details_w,
            bottom.height,
        );
    }
    p
}

/// Rows inside a bordered pane.
pub fn inner_rows(r: Rect) -> usize {
    r.height.saturating_sub(2) as usize
}

/// The first row to draw so that `selected` is visible, starting from the remembered
/// `offset` (it only moves when the selection leaves the window).
pub fn scrolled(offset: usize, selected: usize, rows: usize) -> usize {
    if rows == 0 {
        return selected;
    }
    offset.min(selected).max((selected + 1).saturating_sub(rows))
}

/// Width of one matrix cell.
pub const MATRIX_CELL_W: u16 = 3;

/// Width of the matrix's row labels inside its frame.
pub fn matrix_label_width(inner: Rect) -> u16 {
    (inner.width / 3).min(22)
}

/// The inside of a pane's frame.
pub fn inner_of(area: Rect) -> Rect {
    Rect::new(
        area.x + 1,
        area.y + 1,
        area.width.saturating_sub(2),
        area.height.saturating_sub(2),
    )
}

/// Visible (rows, columns) of cells in the matrix pane.
pub fn matrix_grid(area: Rect) -> (usize, usize) {
    let inner = inner_of(area);
    let rows = inner.height.saturating_sub(1) as usize;
    let cols = (inner.width.saturating_sub(matrix_label_width(inner) + 1) / MATRIX_CELL_W) as usize;
    (rows, cols)
}

/// The visible (row, column) under a click in the matrix pane, before scrolling.
pub fn matrix_cell_at(area: Rect, x: u16, y: u16) -> Option<(usize, usize)> {
    let inner = inner_of(area);
    let (rows, cols) = matrix_grid(area);
    let x0 = inner.x + matrix_label_width(inner) + 1;
    if y < inner.y + 1 || x < x0 {
        return None;
    }
    let (r, c) = ((y - inner.y - 1) as usize, ((x - x0) / MATRIX_CELL_W) as usize);
    (r < rows && c < cols).then_some((r, c))
}
