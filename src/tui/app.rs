//! The dashboard's state machine: keys and mouse become `Action`s, `App::apply` changes the
//! state and returns `Effect`s for the run loop (quit, send a control, export). No terminal,
//! no drawing, no I/O here, so every key can be tested on its own.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::Arc;

use ratatui::layout::{Position, Rect};

use crate::engine::snapshot::{LiveView, PairReport, Verdict};
use crate::tui::index::{refused, ViewIndex, NONE};
use crate::tui::layout::{self, inner_rows, scrolled, Panes};
pub use crate::tui::layout::{Focus, Screen};
use crate::tui::theme::Theme;

/// What the UI asks of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Probe this host (its "host:port" key) now, or everything when None.
    ProbeNow(Option<String>),
    /// Pause or resume probing.
    SetPaused(bool),
    /// Leave.
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortMode {
    /// Problems first (worst verdict, then highest refusal rate).
    Problems,
    /// Highest refusal rate first (421s, resets).
    Rate,
    /// By name.
    Name,
}

impl SortMode {
    pub fn label(self) -> &'static str {
        match self {
            SortMode::Problems => "problems",
            SortMode::Rate => "refusal rate",
            SortMode::Name => "name",
        }
    }
}

/// What the details pane describes when it follows a pair: the pair, or one of its hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Pair,
    Origin,
    Target,
}

/// What the details pane shows, resolved against the current view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailTarget {
    Nothing,
    /// Position in `ViewIndex::groups`.
    Group(usize),
    /// Index into `report.hosts`.
    Host(usize),
    /// Index into `report.pairs`.
    Pair(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
    NextPane,
    PrevPane,
    Enter,
    Back,
    StartFilter,
    FilterChar(char),
    FilterBackspace,
    FilterDone,
    CycleSort,
    ToggleMatrix,
    TogglePause,
    ProbeSelection,
    Export,
    ToggleHelp,
    /// Merged views (`watch --from`): show all vantages, then each in turn.
    CycleVantage,
    Click(u16, u16),
    ScrollUp(u16, u16),
    ScrollDown(u16, u16),
    Resize(u16, u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Quit,
    Control(Control),
    /// Write the current report as JSON (the run loop does the I/O and calls `set_message`).
    Export,
}

/// Lists derived from one view and the filter/sort/selection: what the panes show.
#[derive(Debug, Clone, Default)]
pub struct Derived {
    pub index: Arc<ViewIndex>,
    /// Positions in `index.groups`, filtered and sorted.
    pub groups: Vec<u32>,
    /// Hosts of the selected group (indexes into `report.hosts`), filtered.
    pub members: Vec<u32>,
    /// Every pair of the selected group (indexes into `report.pairs`), in report order.
    pub group_pairs: Vec<u32>,
    /// Pairs of the selected group (indexes into `report.pairs`), filtered and sorted.
    pub pairs: Vec<u32>,
    /// Pairs of the selected group by (origin host, target host), for the matrix.
    pub cells: HashMap<(u32, u32), u32>,
}

#[derive(Debug, Clone)]
pub struct App {
    pub theme: Theme,
    pub focus: Focus,
    pub screen: Screen,
    pub help: bool,
    pub sort: SortMode,
    pub filter: String,
    pub filter_editing: bool,
    /// One line for the footer (export path, probe requested, …).
    pub message: Option<String>,
    pub size: (u16, u16),
    /// Position in `derived.groups`.
    pub group: usize,
    /// Position in `derived.members` (None: the group's own row).
    pub member: Option<usize>,
    /// Position in `derived.pairs`.
    pub pair: usize,
    /// Whether details follow the groups pane or the pairs pane.
    pub detail_from_pairs: bool,
    pub subject: Subject,
    pub details_scroll: u16,
    pub events_scroll: usize,
    /// Matrix cursor: (row = origin, column = target) positions in `derived.members`.
    pub cell: (usize, usize),
    pub groups_offset: usize,
    pub pairs_offset: usize,
    pub matrix_offset: (usize, usize),
    /// Paused as last requested (the engine's status confirms it).
    pub paused: bool,
    /// The vantage shown of a merged view (index into its vantages); None: all of them.
    pub vantage: Option<usize>,
    anchor_host: Option<String>,
    /// The selected pair: origin, target and, in a merged view, the vantage of its row.
    anchor_pair: Option<(Arc<str>, Arc<str>, Option<usize>)>,
    /// The view shown: the view received, or its vantage `vantage` (`LiveView::for_vantage`).
    current: Option<Arc<LiveView>>,
    /// The view received (the same as `current` unless narrowed to a vantage).
    full: Option<Arc<LiveView>>,
    pub derived: Derived,
}

impl App {
    pub fn new(theme: Theme) -> App {
        App {
            theme,
            focus: Focus::Groups,
            screen: Screen::Main,
            help: false,
            sort: SortMode::Problems,
            filter: String::new(),
            filter_editing: false,
            message: None,
            size: (120, 40),
            group: 0,
            member: None,
            pair: 0,
            detail_from_pairs: false,
            subject: Subject::Pair,
            details_scroll: 0,
            events_scroll: 0,
            cell: (0, 0),
            groups_offset: 0,
            pairs_offset: 0,
            matrix_offset: (0, 0),
            paused: false,
            vantage: None,
            anchor_host: None,
            anchor_pair: None,
            current: None,
            full: None,
            derived: Derived::default(),
        }
    }

    /// The view the state was derived from.
    pub fn view(&self) -> Option<&Arc<LiveView>> {
        self.current.as_ref()
    }

    /// True when `view` is the one this state was derived from (the view received, or the
    /// vantage of it shown).
    pub fn is_current(&self, view: &LiveView) -> bool {
        let is = |v: &Option<Arc<LiveView>>| v.as_ref().is_some_and(|c| std::ptr::eq(Arc::as_ptr(c), view));
        is(&self.current) || is(&self.full)
    }

    /// The vantage list of the view received (merged views only).
    pub fn vantages(&self) -> Option<&crate::engine::snapshot::Vantages> {
        self.full.as_ref()?.vantages.as_ref()
    }

    /// The name of the vantage shown (None: all, or not a merged view).
    pub fn vantage_name(&self) -> Option<&str> {
        let v = self.vantage?;
        self.vantages()?.list.get(v).map(|v| v.name.as_str())
    }

    /// A new generation from the engine: fold it into the indexes (only what changed since
    /// the current view is read again), keep the selection on the same group, host and pair.
    ///
    /// Returns the view it replaced, for the caller to release where it costs no latency:
    /// when it holds the last reference, dropping a view of 490,000 pairs touches every
    /// pair's reference count (tens of milliseconds), which the dashboard does off its
    /// event loop.
    pub fn set_view(&mut self, view: Arc<LiveView>) -> Option<Arc<LiveView>> {
        if self.is_current(&view) {
            return None;
        }
        let previous = self.full.replace(view.clone());
        let shown = self.narrow(&view);
        let narrowed = self.show(shown);
        // The narrowed view replaced is a copy of a vantage's lists: dropped here.
        if previous.is_some() {
            previous
        } else {
            narrowed
        }
    }

    /// `view`, or the vantage of it the filter picks.
    fn narrow(&mut self, view: &Arc<LiveView>) -> Arc<LiveView> {
        match self.vantage.map(|v| view.for_vantage(v)) {
            Some(Some(narrowed)) => Arc::new(narrowed),
            Some(None) => {
                // The vantage is gone (or this is no merged view): show everything.
                self.vantage = None;
                view.clone()
            }
            None => view.clone(),
        }
    }

    /// Derive the state for the view shown.
    fn show(&mut self, view: Arc<LiveView>) -> Option<Arc<LiveView>> {
        self.paused = view.status.paused;
        let previous = self.current.take();
        match &previous {
            Some(previous) => Arc::make_mut(&mut self.derived.index).update(previous, &view),
            None => self.derived.index = Arc::new(ViewIndex::build(&view)),
        }
        self.current = Some(view);
        self.refresh_groups();
        self.restore_anchors();
        self.fit();
        previous
    }

    pub fn set_message(&mut self, message: impl Into<String>) {
        self.message = Some(message.into());
    }

    pub fn panes(&self) -> Panes {
        layout::compute(Rect::new(0, 0, self.size.0, self.size.1), self.screen, self.focus)
    }

    /// What the details pane describes.
    pub fn detail_target(&self) -> DetailTarget {
        let Some(view) = &self.current else {
            return DetailTarget::Nothing;
        };
        let d = &self.derived;
        if self.detail_from_pairs {
            let Some(&p) = d.pairs.get(self.pair) else {
                return DetailTarget::Nothing;
            };
            let pair = &view.report.pairs[p as usize];
            let key = match self.subject {
                Subject::Pair => return DetailTarget::Pair(p as usize),
                Subject::Origin => &pair.origin,
                Subject::Target => &pair.target,
            };
            return match d.index.host_by_key.get(&**key) {
                Some(&h) => DetailTarget::Host(h as usize),
                None => DetailTarget::Pair(p as usize),
            };
        }
        match (d.groups.get(self.group), self.member) {
            (Some(_), Some(m)) => match d.members.get(m) {
                Some(&h) => DetailTarget::Host(h as usize),
                None => DetailTarget::Nothing,
            },
            (Some(&g), None) => DetailTarget::Group(g as usize),
            _ => DetailTarget::Nothing,
        }
    }

    /// Apply one action; returns what the run loop must do. The filter being edited and the
    /// help screen take the keys first; otherwise the main table applies.
    pub fn apply(&mut self, action: Action) -> Vec<Effect> {
        if self.filter_editing {
            let effects = self.apply_while_filtering(action);
            self.fit();
            return effects;
        }
        if self.help {
            return self.apply_in_help(action);
        }
        let effect = self.apply_main(action);
        self.store_anchors();
        self.fit();
        effect.into_iter().collect()
    }

    /// Keys edit the filter; only Quit and a resize keep their meaning.
    fn apply_while_filtering(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::FilterChar(c) => {
                self.filter.push(c);
                self.filter_changed();
            }
            Action::FilterBackspace => {
                self.filter.pop();
                self.filter_changed();
            }
            Action::FilterDone => self.filter_editing = false,
            Action::Back => {
                self.filter_editing = false;
                self.filter.clear();
                self.filter_changed();
            }
            Action::Quit => return vec![Effect::Quit],
            Action::Resize(w, h) => self.size = (w, h),
            _ => {}
        }
        Vec::new()
    }

    /// Any key closes the help, except Quit and a resize.
    fn apply_in_help(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Quit => return vec![Effect::Quit],
            Action::Resize(w, h) => self.size = (w, h),
            _ => self.help = false,
        }
        Vec::new()
    }

    /// The main screen: one action, one method (or field), and the effect if it has one.
    fn apply_main(&mut self, action: Action) -> Option<Effect> {
        match action {
            Action::Quit => return Some(Effect::Quit),
            Action::Up => self.step(-1),
            Action::Down => self.step(1),
            Action::PageUp => self.step(-(self.page() as isize)),
            Action::PageDown => self.step(self.page() as isize),
            Action::Home => self.step(isize::MIN / 2),
            Action::End => self.step(isize::MAX / 2),
            Action::Left => self.left(),
            Action::Right => self.right(),
            Action::NextPane => self.cycle_focus(1),
            Action::PrevPane => self.cycle_focus(-1),
            Action::Enter => self.enter(),
            Action::Back => self.back(),
            Action::StartFilter => self.start_filter(),
            Action::FilterChar(_) | Action::FilterBackspace | Action::FilterDone => {}
            Action::CycleSort => self.cycle_sort(),
            Action::ToggleMatrix => self.toggle_matrix(),
            Action::TogglePause => return self.toggle_pause(),
            Action::ProbeSelection => return self.probe_selection(),
            Action::Export => return Some(Effect::Export),
            Action::ToggleHelp => self.help = true,
            Action::CycleVantage => self.cycle_vantage(),
            Action::Click(x, y) => self.click(x, y),
            Action::ScrollUp(x, y) => self.wheel(x, y, -3),
            Action::ScrollDown(x, y) => self.wheel(x, y, 3),
            Action::Resize(w, h) => self.size = (w, h),
        }
        None
    }

    fn start_filter(&mut self) {
        self.filter_editing = true;
        self.message = None;
    }

    /// Next sort order; the selection stays on the same group, host and pair.
    fn cycle_sort(&mut self) {
        self.sort = match self.sort {
            SortMode::Problems => SortMode::Rate,
            SortMode::Rate => SortMode::Name,
            SortMode::Name => SortMode::Problems,
        };
        self.store_anchors();
        self.refresh_groups();
        self.restore_anchors();
        self.set_message(format!("sorted by {}", self.sort.label()));
    }

    /// All vantages, then each in turn; the selection stays on the same group, host and pair
    /// where the vantage shown has them.
    fn cycle_vantage(&mut self) {
        let Some(full) = self.full.clone() else { return };
        let n = full.vantages.as_ref().map_or(0, |v| v.list.len());
        if n == 0 {
            self.set_message("one vantage only: `watch --from URL` shows several");
            return;
        }
        self.vantage = match self.vantage {
            None => Some(0),
            Some(v) if v + 1 < n => Some(v + 1),
            Some(_) => None,
        };
        self.store_anchors();
        let shown = self.narrow(&full);
        self.show(shown);
        let label = match self.vantage_name() {
            Some(name) => format!("vantage {}", crate::sanitize::for_terminal(name, 40)),
            None => "all vantages".to_string(),
        };
        self.set_message(format!("showing {label}"));
    }

    /// True when nothing here probes: every vantage of the merged view is remote.
    fn remote_only(&self) -> bool {
        self.vantages().is_some_and(|v| !v.list.iter().any(|v| v.local))
    }

    fn toggle_matrix(&mut self) {
        self.screen = match self.screen {
            Screen::Main => {
                // Start on the selected member's first pair, off the diagonal.
                let row = self.member.unwrap_or(0);
                self.cell = (row, usize::from(row == 0));
                Screen::Matrix
            }
            Screen::Matrix => Screen::Main,
        };
        self.fill_cells();
    }

    /// Ask the engine to pause or resume (its status confirms it in a later view).
    fn toggle_pause(&mut self) -> Option<Effect> {
        if self.remote_only() {
            self.set_message("remote vantages only: their own serve instances probe");
            return None;
        }
        self.paused = !self.paused;
        self.set_message(if self.paused {
            "pausing probes"
        } else {
            "resuming probes"
        });
        Some(Effect::Control(Control::SetPaused(self.paused)))
    }

    /// Ask the engine to probe the selected host (or pair's origin) now, or everything.
    fn probe_selection(&mut self) -> Option<Effect> {
        if self.remote_only() {
            self.set_message("remote vantages only: their own serve instances probe");
            return None;
        }
        let key = self.probe_key();
        self.set_message(match &key {
            Some(k) => format!("probing {} now", crate::sanitize::for_terminal(k, 80)),
            None => "probing every host now".to_string(),
        });
        Some(Effect::Control(Control::ProbeNow(key)))
    }

    fn page(&self) -> usize {
        let p = self.panes();
        let rows = match self.focus {
            Focus::Groups => inner_rows(p.groups),
            Focus::Pairs => inner_rows(p.pairs).saturating_sub(1),
            Focus::Details => inner_rows(p.details),
            Focus::Events => inner_rows(p.events),
        };
        rows.max(1)
    }

    /// The host to probe for `r`: the selected member, or the origin of the selected pair.
    fn probe_key(&self) -> Option<String> {
        let view = self.current.as_ref()?;
        match self.detail_target_for_probe() {
            DetailTarget::Host(h) => {
                let h = &view.report.hosts[h];
                Some(format!("{}:{}", h.host, h.port))
            }
            DetailTarget::Pair(p) => Some(view.report.pairs[p].origin.to_string()),
            _ => None,
        }
    }

    fn detail_target_for_probe(&self) -> DetailTarget {
        if self.screen == Screen::Matrix {
            return self
                .matrix_pair()
                .map(DetailTarget::Pair)
                .unwrap_or(DetailTarget::Nothing);
        }
        self.detail_target()
    }

    /// The pair under the matrix cursor, if the cell has one.
    pub fn matrix_pair(&self) -> Option<usize> {
        let d = &self.derived;
        let origin = *d.members.get(self.cell.0)?;
        let target = *d.members.get(self.cell.1)?;
        d.cells.get(&(origin, target)).map(|&p| p as usize)
    }

    /// The (row, column) of the matrix cell under a click in the matrix pane `area`.
    fn matrix_cell_at(&self, area: Rect, x: u16, y: u16) -> Option<(usize, usize)> {
        let (r, c) = layout::matrix_cell_at(area, x, y)?;
        let (rows, cols) = layout::matrix_grid(area);
        let n = self.derived.members.len();
        let r0 = scrolled(self.matrix_offset.0, self.cell.0, rows);
        let c0 = scrolled(self.matrix_offset.1, self.cell.1, cols);
        (r0 + r < n && c0 + c < n).then_some((r0 + r, c0 + c))
    }

    fn groups_rows(&self) -> usize {
        self.derived.groups.len() + self.derived.members.len()
    }

    fn groups_cursor(&self) -> usize {
        self.group + self.member.map_or(0, |m| m + 1)
    }

    /// Move the groups cursor to a row of the groups pane (group rows and the selected
    /// group's member rows).
    fn set_groups_row(&mut self, row: usize) {
        let rows = self.groups_rows();
        if rows == 0 {
            return;
        }
        let row = row.min(rows - 1);
        let members = self.derived.members.len();
        let (group, member) = if row <= self.group {
            (row, None)
        } else if row <= self.group + members {
            (self.group, Some(row - self.group - 1))
        } else {
            (row - members, None)
        };
        self.detail_from_pairs = false;
        if group != self.group {
            self.group = group;
            self.member = None;
            self.pair = 0;
            self.pairs_offset = 0;
            self.details_scroll = 0;
            self.refresh_selection();
        } else {
            self.member = member;
            self.details_scroll = 0;
        }
    }

    fn step(&mut self, delta: isize) {
        let moved = |cur: usize, len: usize| -> usize {
            if len == 0 {
                return 0;
            }
            (cur as isize + delta).clamp(0, len as isize - 1) as usize
        };
        if self.screen == Screen::Matrix {
            self.cell.0 = moved(self.cell.0, self.derived.members.len());
            return;
        }
        match self.focus {
            Focus::Groups => {
                // Moving down from a group's row enters its members; moving up from a
                // group's row goes to the previous group's row.
                let target = if delta < 0 && self.member.is_none() {
                    self.group as isize + delta
                } else {
                    self.groups_cursor() as isize + delta
                };
                let target = target.clamp(0, self.groups_rows().max(1) as isize - 1) as usize;
                if delta == isize::MAX / 2 {
                    // End: the last group's row.
                    let last = self.derived.groups.len().saturating_sub(1);
                    let extra = if self.group < last {
                        self.derived.members.len()
                    } else {
                        0
                    };
                    self.set_groups_row(last + extra);
                } else {
                    self.set_groups_row(target);
                }
            }
            Focus::Pairs => {
                self.pair = moved(self.pair, self.derived.pairs.len());
                self.detail_from_pairs = true;
                self.details_scroll = 0;
            }
            Focus::Details => {
                self.details_scroll = (self.details_scroll as isize + delta).clamp(0, 10_000) as u16;
            }
            Focus::Events => {
                let len = self.current.as_ref().map_or(0, |v| v.events.len());
                self.events_scroll = moved(self.events_scroll, len);
            }
        }
    }

    fn left(&mut self) {
        if self.screen == Screen::Matrix {
            self.cell.1 = self.cell.1.saturating_sub(1);
            return;
        }
        match self.focus {
            Focus::Groups => self.member = None,
            Focus::Pairs => self.focus = Focus::Groups,
            Focus::Details => {
                self.focus = if self.detail_from_pairs {
                    Focus::Pairs
                } else {
                    Focus::Groups
                }
            }
            Focus::Events => self.focus = Focus::Details,
        }
    }

    fn right(&mut self) {
        if self.screen == Screen::Matrix {
            let n = self.derived.members.len();
            self.cell.1 = (self.cell.1 + 1).min(n.saturating_sub(1));
            return;
        }
        match self.focus {
            Focus::Groups => {
                self.focus = Focus::Pairs;
                self.detail_from_pairs = true;
            }
            Focus::Pairs => self.focus = Focus::Details,
            Focus::Details => self.focus = Focus::Events,
            Focus::Events => {}
        }
    }

    fn cycle_focus(&mut self, dir: isize) {
        if self.screen == Screen::Matrix {
            self.screen = Screen::Main;
        }
        let order = [Focus::Groups, Focus::Pairs, Focus::Details, Focus::Events];
        let i = order.iter().position(|f| *f == self.focus).unwrap_or(0) as isize;
        self.focus = order[(i + dir).rem_euclid(order.len() as isize) as usize];
        match self.focus {
            Focus::Pairs => self.detail_from_pairs = true,
            Focus::Groups => self.detail_from_pairs = false,
            _ => {}
        }
    }

    fn enter(&mut self) {
        if self.screen == Screen::Matrix {
            match self.matrix_pair() {
                Some(p) => {
                    if let Some(pos) = self.derived.pairs.iter().position(|&x| x as usize == p) {
                        self.pair = pos;
                    } else {
                        // Hidden by the filter: show it anyway.
                        self.filter.clear();
                        self.refresh_selection();
                        self.pair = self
                            .derived
                            .pairs
                            .iter()
                            .position(|&x| x as usize == p)
                            .unwrap_or(0);
                    }
                    self.screen = Screen::Main;
                    self.focus = Focus::Details;
                    self.detail_from_pairs = true;
                    self.subject = Subject::Pair;
                    self.details_scroll = 0;
                }
                None => self.set_message("no pair in this cell"),
            }
            return;
        }
        match self.focus {
            Focus::Groups => {
                if self.member.is_some() {
                    self.focus = Focus::Details;
                } else {
                    self.focus = Focus::Pairs;
                    self.detail_from_pairs = true;
                }
            }
            Focus::Pairs => {
                self.focus = Focus::Details;
                self.detail_from_pairs = true;
                self.subject = Subject::Pair;
                self.details_scroll = 0;
            }
            Focus::Details => {
                if self.detail_from_pairs {
                    self.subject = match self.subject {
                        Subject::Pair => Subject::Origin,
                        Subject::Origin => Subject::Target,
                        Subject::Target => Subject::Pair,
                    };
                    self.details_scroll = 0;
                }
            }
            Focus::Events => {}
        }
    }

    fn back(&mut self) {
        if self.screen == Screen::Matrix {
            self.screen = Screen::Main;
        } else if self.focus == Focus::Details {
            self.subject = Subject::Pair;
            self.focus = if self.detail_from_pairs {
                Focus::Pairs
            } else {
                Focus::Groups
            };
        } else if !self.filter.is_empty() {
            self.filter.clear();
            self.filter_changed();
        } else {
            self.message = None;
        }
    }

    fn click(&mut self, x: u16, y: u16) {
        let p = self.panes();
        let at = Position::new(x, y);
        if p.too_small {
            return;
        }
        if self.screen == Screen::Matrix {
            if p.matrix.contains(at) {
                if let Some(cell) = self.matrix_cell_at(p.matrix, x, y) {
                    self.cell = cell;
                }
            }
            return;
        }
        if p.groups.contains(at) {
            self.focus = Focus::Groups;
            if let Some(row) = row_in(p.groups, y, 0) {
                let off = scrolled(self.groups_offset, self.groups_cursor(), inner_rows(p.groups));
                if off + row < self.groups_rows() {
                    self.set_groups_row(off + row);
                }
            }
        } else if p.pairs.contains(at) {
            self.focus = Focus::Pairs;
            self.detail_from_pairs = true;
            if let Some(row) = row_in(p.pairs, y, 1) {
                let rows = inner_rows(p.pairs).saturating_sub(1);
                let off = scrolled(self.pairs_offset, self.pair, rows);
                if off + row < self.derived.pairs.len() {
                    self.pair = off + row;
                    self.subject = Subject::Pair;
                    self.details_scroll = 0;
                }
            }
        } else if p.details.contains(at) {
            self.focus = Focus::Details;
        } else if p.events.contains(at) {
            self.focus = Focus::Events;
        }
    }

    fn wheel(&mut self, x: u16, y: u16, delta: isize) {
        let p = self.panes();
        let at = Position::new(x, y);
        if self.screen == Screen::Main {
            for (rect, focus) in [
                (p.groups, Focus::Groups),
                (p.pairs, Focus::Pairs),
                (p.details, Focus::Details),
                (p.events, Focus::Events),
            ] {
                if rect.contains(at) {
                    self.focus = focus;
                    if focus == Focus::Pairs {
                        self.detail_from_pairs = true;
                    }
                }
            }
        }
        self.step(delta);
    }

    fn filter_changed(&mut self) {
        self.refresh_groups();
        self.restore_anchors();
    }

    /// Keep every offset so that the selection is visible at the current size.
    fn fit(&mut self) {
        let p = self.panes();
        if p.too_small {
            return;
        }
        self.group = self.group.min(self.derived.groups.len().saturating_sub(1));
        self.pair = self.pair.min(self.derived.pairs.len().saturating_sub(1));
        if let Some(m) = self.member {
            if m >= self.derived.members.len() {
                self.member = None;
            }
        }
        self.groups_offset = scrolled(self.groups_offset, self.groups_cursor(), inner_rows(p.groups));
        self.pairs_offset = scrolled(
            self.pairs_offset,
            self.pair,
            inner_rows(p.pairs).saturating_sub(1),
        );
        let n = self.derived.members.len();
        self.cell = (
            self.cell.0.min(n.saturating_sub(1)),
            self.cell.1.min(n.saturating_sub(1)),
        );
        let (rows, cols) = layout::matrix_grid(p.matrix);
        self.matrix_offset = (
            scrolled(self.matrix_offset.0, self.cell.0, rows),
            scrolled(self.matrix_offset.1, self.cell.1, cols),
        );
    }

    fn store_anchors(&mut self) {
        let Some(view) = &self.current else { return };
        let d = &self.derived;
        let host_key = |h: u32| {
            let h = &view.report.hosts[h as usize];
            format!("{}:{}", h.host, h.port)
        };
        self.anchor_host = match self.member.and_then(|m| d.members.get(m)) {
            Some(&h) => Some(host_key(h)),
            None => d
                .groups
                .get(self.group)
                .and_then(|&g| d.index.groups[g as usize].hosts.first())
                .map(|&h| host_key(h)),
        };
        let vantages = view.vantages.as_ref();
        self.anchor_pair = d.pairs.get(self.pair).map(|&p| {
            let vantage = vantages.map(|v| v.of_pair(p as usize));
            let p = &view.report.pairs[p as usize];
            (p.origin.clone(), p.target.clone(), vantage)
        });
    }

    /// Find the anchored group, member and pair in the current lists.
    fn restore_anchors(&mut self) {
        let Some(view) = self.current.clone() else {
            return;
        };
        let index = self.derived.index.clone();
        let host = self
            .anchor_host
            .as_deref()
            .and_then(|k| index.host_by_key.get(k).copied());
        let group = host.and_then(|h| index.group_of(h));
        if let Some(pos) = group.and_then(|g| self.derived.groups.iter().position(|&x| x as usize == g)) {
            self.group = pos;
        }
        self.group = self.group.min(self.derived.groups.len().saturating_sub(1));
        self.refresh_selection();
        if let Some(m) = self.member {
            self.member = host
                .and_then(|h| self.derived.members.iter().position(|&x| x == h))
                .or(Some(m).filter(|&m| m < self.derived.members.len()));
        }
        if let Some((o, t, vantage)) = &self.anchor_pair {
            let vantages = view.vantages.as_ref();
            let is = |p: u32, same_vantage: bool| {
                let r = &view.report.pairs[p as usize];
                &r.origin == o
                    && &r.target == t
                    && (!same_vantage || vantages.map(|v| v.of_pair(p as usize)) == *vantage)
            };
            // The same row (pair and vantage), else the pair from another vantage.
            let pairs = &self.derived.pairs;
            if let Some(pos) = pairs
                .iter()
                .position(|&p| is(p, true))
                .or_else(|| pairs.iter().position(|&p| is(p, false)))
            {
                self.pair = pos;
            }
        }
        self.pair = self.pair.min(self.derived.pairs.len().saturating_sub(1));
    }

    /// Visible groups: filtered by member names, sorted.
    fn refresh_groups(&mut self) {
        let Some(view) = &self.current else {
            self.derived.groups.clear();
            return;
        };
        let index = &self.derived.index;
        let filter = self.filter.to_lowercase();
        let hosts = &view.report.hosts;
        let mut groups: Vec<u32> = (0..index.groups.len() as u32)
            .filter(|&g| {
                filter.is_empty()
                    || index.groups[g as usize]
                        .hosts
                        .iter()
                        .any(|&h| host_matches(&hosts[h as usize].host, &filter))
            })
            .collect();
        let pseudo_last = |g: u32| index.groups[g as usize].report.is_none();
        match self.sort {
            SortMode::Problems => groups.sort_by_key(|&g| {
                let e = &index.groups[g as usize];
                (
                    pseudo_last(g),
                    e.problems == 0,
                    // Groups without pairs last.
                    (e.worst.is_none(), e.worst),
                    Reverse(e.problems),
                    g,
                )
            }),
            SortMode::Rate => groups.sort_by_key(|&g| {
                let e = &index.groups[g as usize];
                (pseudo_last(g), Reverse(e.max_refused), g)
            }),
            SortMode::Name => {
                let mut keyed: Vec<(bool, String, u32)> = groups
                    .iter()
                    .map(|&g| {
                        let label = index.groups[g as usize].label(view);
                        (pseudo_last(g), label, g)
                    })
                    .collect();
                keyed.sort();
                groups = keyed.into_iter().map(|(_, _, g)| g).collect();
            }
        }
        self.derived.groups = groups;
    }

    /// Members and pairs of the selected group: filtered, sorted.
    fn refresh_selection(&mut self) {
        self.derived.members.clear();
        self.derived.group_pairs.clear();
        self.derived.pairs.clear();
        self.derived.cells.clear();
        let Some(view) = &self.current else { return };
        let Some(&g) = self.derived.groups.get(self.group) else {
            return;
        };
        let index = &self.derived.index;
        let entry = &index.groups[g as usize];
        let group_pairs = index.pairs_of(g as usize);
        let filter = self.filter.to_lowercase();
        let hosts = &view.report.hosts;
        let pairs = &view.report.pairs;
        self.derived.members = entry
            .hosts
            .iter()
            .copied()
            .filter(|&h| filter.is_empty() || host_matches(&hosts[h as usize].host, &filter))
            .collect();
        let list = group_pairs.iter().copied().filter(|&p| {
            let p = &pairs[p as usize];
            filter.is_empty() || host_matches(&p.origin, &filter) || host_matches(&p.target, &filter)
        });
        self.derived.pairs = sorted(list, pairs, self.sort);
        self.derived.group_pairs = group_pairs;
        self.fill_cells();
    }

    /// The selected group's pairs by (origin, target) while the matrix shows them (the main
    /// screen does not need them).
    fn fill_cells(&mut self) {
        self.derived.cells.clear();
        let Some(view) = self.current.as_ref().filter(|_| self.screen == Screen::Matrix) else {
            return;
        };
        let d = &mut self.derived;
        for &p in &d.group_pairs {
            let origin = d.index.pairs[p as usize].origin;
            if origin == NONE {
                continue;
            }
            if let Some(&target) = d.index.host_by_key.get(&*view.report.pairs[p as usize].target) {
                d.cells.insert((origin, target), p);
            }
        }
    }

    /// Derive the panes' lists for a view other than the current one (benchmarks, tests
    /// that draw without `set_view`), keeping this state's selection positions.
    pub fn derive_for(&self, view: &Arc<LiveView>) -> App {
        let mut app = self.clone();
        app.current = None;
        app.full = None;
        app.set_view(view.clone());
        app
    }
}

/// The pairs `list` (indexes into `pairs`) in the order of `sort`, each report read once.
fn sorted(list: impl Iterator<Item = u32>, pairs: &[Arc<PairReport>], sort: SortMode) -> Vec<u32> {
    if sort == SortMode::Name {
        let mut keyed: Vec<(&str, &str, u32)> = list
            .map(|p| {
                let r = &pairs[p as usize];
                (&*r.origin, &*r.target, p)
            })
            .collect();
        keyed.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        return keyed.into_iter().map(|k| k.2).collect();
    }
    let mut keyed: Vec<(Verdict, f64, u32)> = list
        .map(|p| {
            let r = &pairs[p as usize];
            (r.verdict, refused(r), p)
        })
        .collect();
    match sort {
        SortMode::Rate => keyed.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))),
        _ => keyed.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1))),
    }
    keyed.into_iter().map(|k| k.2).collect()
}

/// Case-insensitive substring match of a filter (already lower case) on a name.
fn host_matches(name: &str, filter: &str) -> bool {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        name.to_lowercase().contains(filter)
    } else {
        name.contains(filter)
    }
}

/// Row inside a bordered pane (after `skip` header rows) for screen row `y`.
fn row_in(r: Rect, y: u16, skip: u16) -> Option<usize> {
    let first = r.y + 1 + skip;
    (y >= first && y < r.bottom().saturating_sub(1)).then(|| (y - first) as usize)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::engine::live::store::Store;
    use crate::engine::record::HostRecord;
    use crate::engine::snapshot::{EngineStatus, ViewChanges};
    use crate::testing::synth::Synth;
    use crate::tui::index;
    use crate::tui::render::render_to_buffer;
    use crate::watchlist::Entry;

    /// Keys a dashboard user may press between two views.
    const KEYS: [Action; 18] = [
        Action::Down,
        Action::Down,
        Action::Up,
        Action::PageDown,
        Action::Home,
        Action::End,
        Action::Right,
        Action::Left,
        Action::NextPane,
        Action::PrevPane,
        Action::Enter,
        Action::Back,
        Action::CycleSort,
        Action::ToggleMatrix,
        Action::StartFilter,
        Action::FilterChar('1'),
        Action::FilterChar('g'),
        Action::FilterDone,
    ];

    /// A live store fed with the synthetic workload at random: probes with answers that
    /// change verdicts, DNS changes that move hosts between groups, reloads, time passing.
    struct Engine {
        synth: Synth,
        entries: Vec<Entry>,
        store: Store,
        hosts: Vec<HostRecord>,
        now: Instant,
        cycles: u64,
    }

    impl Engine {
        fn new(names: usize, group: usize) -> Engine {
            let synth = Synth::new(names, group);
            let store = synth.store(Duration::from_secs(60));
            let hosts = store.hosts_for_jobs();
            Engine {
                entries: synth.entries(),
                synth,
                store,
                hosts,
                now: Instant::now(),
                cycles: 0,
            }
        }

        fn probe(&mut self, i: usize, round: u64) {
            let key = self.entries[i].key();
            let Some(n) = self.hosts.iter().position(|h| h.entry.key() == key) else {
                return;
            };
            if self.hosts.len() == self.entries.len() {
                self.store
                    .apply(&self.hosts, self.synth.origin(n, round), self.now);
            }
            self.store.apply(&self.hosts, self.synth.direct(n), self.now);
        }

        fn reload(&mut self, listed: &[Entry]) {
            self.store.set_entries(listed);
            for e in listed {
                let n = self.entries.iter().position(|x| x == e).unwrap();
                self.store.set_dns(&e.key(), self.synth.dns(n));
            }
            self.hosts = self.store.hosts_for_jobs();
        }

        /// One random change to the store.
        fn step(&mut self, rng: &mut StdRng) {
            match rng.random_range(0..100) {
                0..=69 => {
                    let i = rng.random_range(0..self.entries.len());
                    self.probe(i, rng.random_range(0..6));
                }
                70..=74 => {
                    let e = &self.entries[rng.random_range(0..self.entries.len())];
                    let to = rng.random_range(0..self.entries.len());
                    self.store.set_dns(&e.key(), self.synth.dns(to));
                }
                75..=76 => {
                    let listed: Vec<Entry> = self
                        .entries
                        .iter()
                        .filter(|_| rng.random_bool(0.9))
                        .cloned()
                        .collect();
                    self.reload(&listed);
                }
                77 => self.reload(&self.entries.clone()),
                78..=79 => self.now += Duration::from_secs(rng.random_range(20..200)),
                _ => self.now += Duration::from_millis(rng.random_range(0..3000)),
            }
        }

        fn publish(&mut self) -> LiveView {
            self.cycles += 1;
            let status = EngineStatus {
                cycles: self.cycles,
                ..EngineStatus::default()
            };
            self.store.publish(self.now, status, self.cycles > 1)
        }
    }

    /// A view the engine would not make: its pairs reordered, change numbers dropped or
    /// wrong, a report replaced behind the numbers' back, nothing at all.
    fn odd(view: &LiveView, rng: &mut StdRng) -> LiveView {
        let mut v = view.clone();
        match rng.random_range(0..5) {
            0 => {
                v.report.pairs.reverse();
                v.histories.reverse();
                v.changes.pairs.reverse();
                v.changes.seq += 1;
            }
            1 => v.changes = ViewChanges::default(),
            2 if !v.report.pairs.is_empty() => {
                // A copy of a report, claimed unchanged.
                let k = rng.random_range(0..v.report.pairs.len());
                let mut p = (*v.report.pairs[k]).clone();
                p.verdict = Verdict::Misrouted;
                p.refusal_rate = None;
                v.report.pairs[k] = Arc::new(p);
                v.changes.seq += 1;
            }
            3 => {
                let k = rng.random_range(0..=v.report.pairs.len());
                v.report.pairs.truncate(k);
                v.histories.truncate(k);
                v.changes.pairs.truncate(k);
                v.changes.seq += 1;
            }
            _ => v = LiveView::default(),
        }
        v
    }

    /// Everything the two apps derived and show is the same.
    fn assert_same(inc: &App, full: &App, view: &LiveView, what: &str) {
        let (a, b) = (&inc.derived, &full.derived);
        assert_eq!(*a.index, *b.index, "{what}: index");
        assert_eq!(
            (&a.groups, &a.members, &a.group_pairs, &a.pairs),
            (&b.groups, &b.members, &b.group_pairs, &b.pairs),
            "{what}: lists"
        );
        assert_eq!(a.cells, b.cells, "{what}: matrix cells");
        assert_eq!(
            (inc.group, inc.member, inc.pair, inc.cell, inc.focus, inc.screen),
            (
                full.group,
                full.member,
                full.pair,
                full.cell,
                full.focus,
                full.screen
            ),
            "{what}: selection"
        );
        assert_eq!(
            (inc.groups_offset, inc.pairs_offset, inc.matrix_offset),
            (full.groups_offset, full.pairs_offset, full.matrix_offset),
            "{what}: scrolling"
        );
        assert_eq!(
            (&inc.anchor_host, &inc.anchor_pair),
            (&full.anchor_host, &full.anchor_pair),
            "{what}: anchors"
        );
        let (w, h) = inc.size;
        assert!(
            render_to_buffer(view, inc, w, h) == render_to_buffer(view, full, w, h),
            "{what}: screen"
        );
    }

    /// Views folded in one after the other give the indexes, lists, selection and screen
    /// that deriving each view from scratch gives, over random sequences of engine views
    /// (some never seen, some mangled) and keys pressed between them.
    #[test]
    fn incremental_views_equal_views_derived_from_scratch() {
        for seed in 0..6u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut engine = Engine::new(42, 6);
            let mut inc = App::new(Theme::dark());
            inc.apply(Action::Resize(120, 40));
            let mut full = inc.clone();
            for step in 0..250 {
                engine.step(&mut rng);
                if rng.random_bool(0.5) {
                    continue;
                }
                let mut view = engine.publish();
                // The dashboard sees the latest view only.
                if rng.random_bool(0.2) {
                    continue;
                }
                if rng.random_bool(0.05) {
                    view = odd(&view, &mut rng);
                }
                let view = Arc::new(view);
                inc.set_view(view.clone());
                full = full.derive_for(&view);
                assert_same(&inc, &full, &view, &format!("seed {seed} step {step}"));
                for _ in 0..rng.random_range(0..4) {
                    let key = KEYS[rng.random_range(0..KEYS.len())];
                    assert_eq!(inc.apply(key), full.apply(key));
                }
                assert_same(&inc, &full, &view, &format!("seed {seed} step {step}, keys"));
            }
        }
    }

    /// A view that changed a few pairs is folded in by reading only those pairs' reports.
    #[test]
    fn a_new_view_reads_only_the_changed_reports() {
        let mut engine = Engine::new(60, 6);
        for i in 0..60 {
            engine.probe(i, 0);
        }
        let first = Arc::new(engine.publish());
        let mut app = App::new(Theme::dark());
        app.set_view(first.clone());
        for round in 1..4 {
            // Verdicts change (in round 1, 13 → 14 and 30 → 35 are refused).
            engine.now += Duration::from_secs(1);
            engine.probe(13, round);
            engine.probe(30, round);
            let view = Arc::new(engine.publish());
            let since = app.view().map_or(0, |v| v.changes.seq);
            let changed = view.changes.pairs.iter().filter(|&&s| s > since).count();
            let before = index::reads();
            app.set_view(view.clone());
            let read = index::reads() - before;
            assert!(
                changed > 0 && read == changed,
                "round {round}: read {read} of {changed} changed"
            );
            assert!(read * 10 < view.report.pairs.len());
            assert_eq!(*app.derived.index, ViewIndex::build(&view));
        }
    }
}
