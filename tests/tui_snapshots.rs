//! Every dashboard view, drawn with `TestBackend` from fixture views at 80×24 and 120×40,
//! compared with the committed insta snapshots; plus NO_COLOR, the light theme, hostile
//! strings and a terminal too small.

use std::sync::Arc;

use coalscope::engine::snapshot::{LiveView, Verdict};
use coalscope::tui::app::{Action, App, Focus};
use coalscope::tui::fixture;
use coalscope::tui::render::draw;
use coalscope::tui::theme::Theme;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use ratatui::Terminal;

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

fn app_for(view: &Arc<LiveView>, w: u16, h: u16, actions: &[Action]) -> App {
    let mut app = App::new(Theme::dark());
    app.apply(Action::Resize(w, h));
    app.set_view(view.clone());
    for a in actions {
        app.apply(*a);
    }
    app
}

fn screen(view: &Arc<LiveView>, app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| draw(view, app, f.area(), f.buffer_mut())).unwrap();
    term
}

fn text(buf: &Buffer) -> String {
    let mut s = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            s.push_str(buf[(x, y)].symbol());
        }
        s.push('\n');
    }
    s
}

/// Snapshot one view at both sizes.
fn check(name: &str, view: &Arc<LiveView>, actions: &[Action]) {
    for (w, h) in SIZES {
        let app = app_for(view, w, h, actions);
        let term = screen(view, &app, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), term.backend());
    }
}

fn lab() -> Arc<LiveView> {
    Arc::new(fixture::lab_view())
}

fn chars(s: &str) -> Vec<Action> {
    s.chars().map(Action::FilterChar).collect()
}

#[test]
fn main_view_groups_focused() {
    check("main", &lab(), &[]);
}

#[test]
fn group_members_and_host_details() {
    // Down enters the first group's members: the host's details show.
    check("host_details", &lab(), &[Action::Down, Action::Enter]);
}

#[test]
fn pairs_and_pair_details() {
    check("pair_details", &lab(), &[Action::NextPane, Action::Enter]);
}

#[test]
fn pair_origin_details() {
    check(
        "pair_origin",
        &lab(),
        &[Action::NextPane, Action::Enter, Action::Enter],
    );
}

#[test]
fn good_group_pairs() {
    // The group without problems: its pairs stay quiet.
    check("good_group", &lab(), &[Action::End, Action::Up, Action::Right]);
}

#[test]
fn matrix_view() {
    check(
        "matrix",
        &lab(),
        &[Action::End, Action::Up, Action::ToggleMatrix, Action::Right],
    );
}

#[test]
fn event_log() {
    check("events", &lab(), &[Action::PrevPane]);
}

#[test]
fn help_overlay() {
    check("help", &lab(), &[Action::ToggleHelp]);
}

#[test]
fn filter_typing() {
    let mut actions = vec![Action::StartFilter];
    actions.extend(chars("lb"));
    check("filter", &lab(), &actions);
}

#[test]
fn sorted_by_name() {
    check("sort_name", &lab(), &[Action::CycleSort, Action::CycleSort]);
}

#[test]
fn reload_error_and_paused() {
    let mut v = fixture::lab_view();
    v.status.reload_error =
        Some("lab.watch:7: \"bad host!\" is not a valid name; keeping the last good list".into());
    v.status.paused = true;
    check("reload_error", &Arc::new(v), &[]);
}

#[test]
fn empty_view_waits() {
    check("empty", &Arc::new(LiveView::default()), &[]);
}

#[test]
fn thousand_names() {
    let v = Arc::new(fixture::synthetic_view(1000, 50));
    check("synthetic_1000", &v, &[Action::NextPane, Action::PageDown]);
}

#[test]
fn too_small_says_so() {
    let view = lab();
    let app = app_for(&view, 50, 12, &[]);
    let term = screen(&view, &app, 50, 12);
    insta::assert_snapshot!("too_small_50x12", term.backend());
    assert!(text(term.backend().buffer()).contains("too small"));
}

#[test]
fn hostile_strings_are_defanged() {
    let view = lab();
    // The last group is the pseudo-group; its first member carries the hostile strings.
    let app = app_for(&view, 120, 40, &[Action::End, Action::Down, Action::Enter]);
    let term = screen(&view, &app, 120, 40);
    let s = text(term.backend().buffer());
    assert!(s.contains("legacy.h1.lab.test"), "{s}");
    assert!(s.contains("HACKED"), "{s}");
    assert!(!s.chars().any(|c| c.is_control() && c != '\n'), "{s:?}");
    assert!(!s.contains('\u{202e}'));
    assert!(s.contains('\u{fffd}'));
}

#[test]
fn no_color_draws_no_colour() {
    let view = lab();
    let mut app = App::new(Theme::new(false, true));
    app.apply(Action::Resize(120, 40));
    app.set_view(view.clone());
    for actions in [vec![], vec![Action::ToggleMatrix], vec![Action::ToggleHelp]] {
        let mut app = app.clone();
        for a in actions {
            app.apply(a);
        }
        let term = screen(&view, &app, 120, 40);
        let buf = term.backend().buffer();
        for cell in buf.content() {
            assert_eq!((cell.fg, cell.bg), (Color::Reset, Color::Reset), "{cell:?}");
        }
        // Verdicts are still there, spelled out.
        let s = text(buf);
        assert!(s.contains("misdirected") || s.contains("M "), "{s}");
    }
}

#[test]
fn light_theme_differs_from_dark() {
    let view = lab();
    let dark = app_for(&view, 120, 40, &[]);
    let mut light = dark.clone();
    light.theme = Theme::light();
    let a = screen(&view, &dark, 120, 40);
    let b = screen(&view, &light, 120, 40);
    assert_eq!(text(a.backend().buffer()), text(b.backend().buffer()));
    assert_ne!(a.backend().buffer(), b.backend().buffer());
    // Problem verdicts are coloured in both.
    assert_ne!(Theme::light().verdict(Verdict::Misdirected).fg, None);
    assert_ne!(
        Theme::dark().verdict(Verdict::Misdirected).fg,
        Theme::dark().verdict(Verdict::Ok).fg
    );
}

#[test]
fn render_to_buffer_matches_the_terminal() {
    let view = lab();
    let app = app_for(&view, 120, 40, &[Action::NextPane]);
    let term = screen(&view, &app, 120, 40);
    let buf = coalscope::tui::render_to_buffer(&view, &app, 120, 40);
    assert_eq!(&buf, term.backend().buffer());
    // An App that never saw this view derives its state on the fly.
    let stranger = App::new(Theme::dark());
    let buf = coalscope::tui::render_to_buffer(&view, &stranger, 120, 40);
    assert!(text(&buf).contains("Groups (6)"), "{}", text(&buf));
    assert_eq!(stranger.focus, Focus::Groups);
}
