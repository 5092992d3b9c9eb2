//! Terminal events → actions. The only place that knows which key does what.

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEventKind};

use crate::tui::app::Action;

/// The action for an event, if any. `filtering`: the filter is being typed, so characters
/// are text, not commands.
pub fn action(event: &Event, filtering: bool) -> Option<Action> {
    match event {
        Event::Key(key) => key_action(key, filtering),
        Event::Mouse(m) => match m.kind {
            MouseEventKind::Down(_) => Some(Action::Click(m.column, m.row)),
            MouseEventKind::ScrollUp => Some(Action::ScrollUp(m.column, m.row)),
            MouseEventKind::ScrollDown => Some(Action::ScrollDown(m.column, m.row)),
            _ => None,
        },
        Event::Resize(w, h) => Some(Action::Resize(*w, *h)),
        _ => None,
    }
}

pub fn key_action(key: &KeyEvent, filtering: bool) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('C')) {
        return Some(Action::Quit);
    }
    if filtering {
        return match key.code {
            KeyCode::Char(c) if !ctrl => Some(Action::FilterChar(c)),
            KeyCode::Backspace => Some(Action::FilterBackspace),
            KeyCode::Enter => Some(Action::FilterDone),
            KeyCode::Esc => Some(Action::Back),
            _ => None,
        };
    }
    Some(match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::Left | KeyCode::Char('h') => Action::Left,
        KeyCode::Right | KeyCode::Char('l') => Action::Right,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Home | KeyCode::Char('g') => Action::Home,
        KeyCode::End | KeyCode::Char('G') => Action::End,
        KeyCode::Tab => Action::NextPane,
        KeyCode::BackTab => Action::PrevPane,
        KeyCode::Enter => Action::Enter,
        KeyCode::Esc => Action::Back,
        KeyCode::Char('/') => Action::StartFilter,
        KeyCode::Char('s') => Action::CycleSort,
        KeyCode::Char('m') => Action::ToggleMatrix,
        KeyCode::Char('p') => Action::TogglePause,
        KeyCode::Char('r') => Action::ProbeSelection,
        KeyCode::Char('e') => Action::Export,
        KeyCode::Char('?') => Action::ToggleHelp,
        KeyCode::Char('v') => Action::CycleVantage,
        _ => return None,
    })
}
