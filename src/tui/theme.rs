//! Every colour of the dashboard comes from here: a dark theme, a light theme, and NO_COLOR
//! (no colour at all; emphasis only through bold, reverse and underline, and verdicts are
//! always spelled out so nothing depends on colour).

use ratatui::style::{Color, Modifier, Style};

use crate::engine::snapshot::Verdict;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThemeKind {
    Dark,
    Light,
    NoColor,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub kind: ThemeKind,
    pub text: Style,
    pub dim: Style,
    pub title: Style,
    pub border: Style,
    pub border_focus: Style,
    pub selected: Style,
    pub header: Style,
    pub label: Style,
    pub key: Style,
    pub error: Style,
    pub warning: Style,
    pub good: Style,
    pub badge_problem: Style,
    pub paused: Style,
    pub message: Style,
    pub mark: Style,
}

impl Theme {
    pub fn new(light: bool, no_color: bool) -> Theme {
        if no_color {
            Theme::no_color()
        } else if light {
            Theme::light()
        } else {
            Theme::dark()
        }
    }

    pub fn dark() -> Theme {
        let bold = Modifier::BOLD;
        Theme {
            kind: ThemeKind::Dark,
            text: Style::new().fg(Color::Gray),
            dim: Style::new().fg(Color::DarkGray),
            title: Style::new().fg(Color::Cyan).add_modifier(bold),
            border: Style::new().fg(Color::DarkGray),
            border_focus: Style::new().fg(Color::Cyan),
            selected: Style::new().bg(Color::Rgb(40, 60, 90)).add_modifier(bold),
            header: Style::new().fg(Color::White).add_modifier(bold),
            label: Style::new().fg(Color::Cyan),
            key: Style::new().fg(Color::Yellow).add_modifier(bold),
            error: Style::new().fg(Color::LightRed).add_modifier(bold),
            warning: Style::new().fg(Color::Yellow),
            good: Style::new().fg(Color::Green),
            badge_problem: Style::new().fg(Color::White).bg(Color::Red).add_modifier(bold),
            paused: Style::new().fg(Color::Black).bg(Color::Yellow).add_modifier(bold),
            message: Style::new().fg(Color::LightGreen).add_modifier(bold),
            mark: Style::new().fg(Color::LightGreen).add_modifier(bold),
        }
    }

    pub fn light() -> Theme {
        let bold = Modifier::BOLD;
        Theme {
            kind: ThemeKind::Light,
            text: Style::new().fg(Color::Black),
            dim: Style::new().fg(Color::Gray),
            title: Style::new().fg(Color::Blue).add_modifier(bold),
            border: Style::new().fg(Color::Gray),
            border_focus: Style::new().fg(Color::Blue),
            selected: Style::new().bg(Color::Rgb(200, 220, 250)).add_modifier(bold),
            header: Style::new().fg(Color::Black).add_modifier(bold),
            label: Style::new().fg(Color::Blue),
            key: Style::new().fg(Color::Magenta).add_modifier(bold),
            error: Style::new().fg(Color::Red).add_modifier(bold),
            warning: Style::new().fg(Color::Rgb(160, 90, 0)),
            good: Style::new().fg(Color::Rgb(0, 120, 0)),
            badge_problem: Style::new().fg(Color::White).bg(Color::Red).add_modifier(bold),
            paused: Style::new()
                .fg(Color::Black)
                .bg(Color::Rgb(250, 200, 60))
                .add_modifier(bold),
            message: Style::new().fg(Color::Rgb(0, 110, 0)).add_modifier(bold),
            mark: Style::new().fg(Color::Rgb(0, 120, 0)).add_modifier(bold),
        }
    }

    pub fn no_color() -> Theme {
        let plain = Style::new();
        let bold = Style::new().add_modifier(Modifier::BOLD);
        Theme {
            kind: ThemeKind::NoColor,
            text: plain,
            dim: plain,
            title: bold,
            border: plain,
            border_focus: bold,
            selected: Style::new().add_modifier(Modifier::REVERSED),
            header: bold,
            label: plain,
            key: bold,
            error: bold,
            warning: plain,
            good: plain,
            badge_problem: bold,
            paused: Style::new().add_modifier(Modifier::REVERSED),
            message: bold,
            mark: bold,
        }
    }

    /// The style of a verdict. Problems stand out; ok and not-coalescable stay quiet.
    pub fn verdict(&self, verdict: Verdict) -> Style {
        let bold = Modifier::BOLD;
        match self.kind {
            ThemeKind::NoColor if verdict.is_problem() => Style::new().add_modifier(bold),
            ThemeKind::NoColor => Style::new(),
            ThemeKind::Dark => match verdict {
                Verdict::Misdirected => Style::new().fg(Color::LightRed).add_modifier(bold),
                Verdict::Misrouted => Style::new().fg(Color::LightMagenta).add_modifier(bold),
                Verdict::Intermittent => Style::new().fg(Color::Yellow).add_modifier(bold),
                Verdict::DirectBroken => Style::new().fg(Color::Rgb(255, 150, 60)).add_modifier(bold),
                Verdict::Error => Style::new().fg(Color::Yellow),
                Verdict::Ok => Style::new().fg(Color::Green),
                Verdict::Pending | Verdict::NotCoalescable => Style::new().fg(Color::DarkGray),
            },
            ThemeKind::Light => match verdict {
                Verdict::Misdirected => Style::new().fg(Color::Red).add_modifier(bold),
                Verdict::Misrouted => Style::new().fg(Color::Magenta).add_modifier(bold),
                Verdict::Intermittent => Style::new().fg(Color::Rgb(170, 110, 0)).add_modifier(bold),
                Verdict::DirectBroken => Style::new().fg(Color::Rgb(200, 80, 0)).add_modifier(bold),
                Verdict::Error => Style::new().fg(Color::Rgb(170, 110, 0)),
                Verdict::Ok => Style::new().fg(Color::Rgb(0, 120, 0)),
                Verdict::Pending | Verdict::NotCoalescable => Style::new().fg(Color::Gray),
            },
        }
    }

    /// One matrix cell: a coloured block, or a letter without colour.
    pub fn cell(&self, verdict: Option<Verdict>) -> (&'static str, Style) {
        let letter = match verdict {
            None => "  ",
            Some(Verdict::Misdirected) => "M ",
            Some(Verdict::Misrouted) => "R ",
            Some(Verdict::Intermittent) => "I ",
            Some(Verdict::DirectBroken) => "D ",
            Some(Verdict::Error) => "E ",
            Some(Verdict::Pending) => "… ",
            Some(Verdict::Ok) => "· ",
            Some(Verdict::NotCoalescable) => "- ",
        };
        match (self.kind, verdict) {
            (_, None) => (letter, Style::new()),
            (ThemeKind::NoColor, Some(v)) => (letter, self.verdict(v)),
            (_, Some(v)) => {
                let fg = self.verdict(v).fg.unwrap_or(Color::Reset);
                (
                    letter,
                    Style::new().fg(Color::Black).bg(fg).add_modifier(Modifier::BOLD),
                )
            }
        }
    }
}
