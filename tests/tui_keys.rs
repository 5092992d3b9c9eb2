//! The dashboard's state machine: keys → actions → state and effects, without a terminal, on
//! views the real engine made (`testing::views`).

// Test code: a failed expectation is a failed test, said where it happened.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::sync::Arc;

use coalscope::engine::snapshot::{LiveView, Snapshot};
use coalscope::testing::views;
use coalscope::tui::app::{Action, App, DetailTarget, Effect, Focus, Screen, SortMode, Subject};
use coalscope::tui::keymap;
use coalscope::tui::{Control, Theme};
use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};

fn app() -> (App, Arc<LiveView>) {
    let view = Arc::new(views::lab_view());
    let mut app = App::new(Theme::dark());
    app.apply(Action::Resize(120, 40));
    app.set_view(view.clone());
    (app, view)
}

fn key(c: KeyCode) -> Event {
    Event::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

/// Feed terminal events through the keymap into the app; collect the effects.
fn press(app: &mut App, events: &[Event]) -> Vec<Effect> {
    let mut out = vec![];
    for e in events {
        if let Some(a) = keymap::action(e, app.filter_editing) {
            out.extend(app.apply(a));
        }
    }
    out
}

fn chars(s: &str) -> Vec<Event> {
    s.chars().map(|c| key(KeyCode::Char(c))).collect()
}

fn selected_group_label(app: &App, view: &LiveView) -> String {
    let d = &app.derived;
    let g = &d.index.groups[d.groups[app.group] as usize];
    g.label(view)
}

fn selected_pair(app: &App, view: &LiveView) -> (String, String) {
    let p = &view.report.pairs[app.derived.pairs[app.pair] as usize];
    (p.origin.to_string(), p.target.to_string())
}

#[test]
fn quit_keys() {
    let (mut app, _) = app();
    assert_eq!(press(&mut app, &chars("q")), vec![Effect::Quit]);
    let ctrl_c = Event::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert_eq!(press(&mut app, std::slice::from_ref(&ctrl_c)), vec![Effect::Quit]);
    // While typing a filter, q is text but Ctrl-C still quits.
    let (mut app, _) = self::app();
    assert!(press(&mut app, &chars("/q")).is_empty());
    assert_eq!(app.filter, "q");
    assert_eq!(press(&mut app, &[ctrl_c]), vec![Effect::Quit]);
    // Key releases do nothing.
    let mut release = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
    release.kind = KeyEventKind::Release;
    assert!(keymap::action(&Event::Key(release), false).is_none());
}

#[test]
fn groups_come_problems_first_and_unfold() {
    let (mut app, view) = app();
    assert_eq!(app.focus, Focus::Groups);
    // A group whose pairs are all misdirected first, the pseudo-group of loners last.
    assert_eq!(selected_group_label(&app, &view), "*.apache.coalscope.test");
    assert_eq!(app.member, None);
    assert_eq!(
        app.detail_target(),
        DetailTarget::Group(app.derived.groups[0] as usize)
    );
    // j enters the members, then the next group.
    press(&mut app, &chars("j"));
    assert_eq!(app.member, Some(0));
    match app.detail_target() {
        DetailTarget::Host(h) => assert_eq!(view.report.hosts[h].host, "blog.apache.coalscope.test"),
        other => panic!("{other:?}"),
    }
    press(&mut app, &chars("jj"));
    assert_eq!((app.group, app.member), (1, None));
    // k from a group row goes to the previous group's row, not into its members.
    press(&mut app, &[key(KeyCode::Up)]);
    assert_eq!((app.group, app.member), (0, None));
    press(&mut app, &[key(KeyCode::End)]);
    assert_eq!(selected_group_label(&app, &view), "not coalescing");
    press(&mut app, &[key(KeyCode::Home)]);
    assert_eq!((app.group, app.member), (0, None));
    // k at the top stays.
    press(&mut app, &chars("k"));
    assert_eq!((app.group, app.member), (0, None));
}

#[test]
fn tab_enter_and_escape_drill_in_and_out() {
    let (mut app, view) = app();
    press(&mut app, &[key(KeyCode::Tab)]);
    assert_eq!(app.focus, Focus::Pairs);
    press(&mut app, &[key(KeyCode::Tab)]);
    assert_eq!(app.focus, Focus::Details);
    press(&mut app, &[key(KeyCode::Tab)]);
    assert_eq!(app.focus, Focus::Events);
    press(&mut app, &[key(KeyCode::Tab)]);
    assert_eq!(app.focus, Focus::Groups);
    press(&mut app, &[key(KeyCode::BackTab)]);
    assert_eq!(app.focus, Focus::Events);

    let (mut app, _) = self::app();
    press(&mut app, &[key(KeyCode::Enter)]);
    assert_eq!(app.focus, Focus::Pairs);
    assert_eq!(
        selected_pair(&app, &view),
        (
            "blog.apache.coalscope.test:8443".into(),
            "docs.apache.coalscope.test:8443".into()
        )
    );
    press(&mut app, &[key(KeyCode::Enter)]);
    assert_eq!(app.focus, Focus::Details);
    let pair = app.derived.pairs[app.pair] as usize;
    assert_eq!(app.detail_target(), DetailTarget::Pair(pair));
    // Enter in the details walks the pair's hosts.
    press(&mut app, &[key(KeyCode::Enter)]);
    assert_eq!(app.subject, Subject::Origin);
    let DetailTarget::Host(h) = app.detail_target() else {
        panic!()
    };
    assert_eq!(view.report.hosts[h].host, "blog.apache.coalscope.test");
    press(&mut app, &[key(KeyCode::Enter)]);
    let DetailTarget::Host(h) = app.detail_target() else {
        panic!()
    };
    assert_eq!(view.report.hosts[h].host, "docs.apache.coalscope.test");
    press(&mut app, &[key(KeyCode::Esc)]);
    assert_eq!((app.focus, app.subject), (Focus::Pairs, Subject::Pair));
    press(&mut app, &chars("h"));
    assert_eq!(app.focus, Focus::Groups);
    press(&mut app, &chars("l"));
    assert_eq!(app.focus, Focus::Pairs);
}

#[test]
fn pause_probe_and_export_effects() {
    let (mut app, _) = app();
    assert_eq!(
        press(&mut app, &chars("p")),
        vec![Effect::Control(Control::SetPaused(true))]
    );
    assert_eq!(
        press(&mut app, &chars("p")),
        vec![Effect::Control(Control::SetPaused(false))]
    );
    // A group row: probe everything.
    assert_eq!(
        press(&mut app, &chars("r")),
        vec![Effect::Control(Control::ProbeNow(None))]
    );
    // A member: that host.
    press(&mut app, &chars("jj"));
    assert_eq!(
        press(&mut app, &chars("r")),
        vec![Effect::Control(Control::ProbeNow(Some(
            "docs.apache.coalscope.test:8443".into()
        )))]
    );
    assert!(app.message.as_deref().unwrap().contains("docs.apache"));
    // A pair: its origin (whose connection carries the target).
    press(&mut app, &[key(KeyCode::Tab)]);
    assert_eq!(
        press(&mut app, &chars("r")),
        vec![Effect::Control(Control::ProbeNow(Some(
            "blog.apache.coalscope.test:8443".into()
        )))]
    );
    assert_eq!(press(&mut app, &chars("e")), vec![Effect::Export]);
}

#[test]
fn filter_narrows_groups_and_pairs() {
    let (mut app, view) = app();
    press(&mut app, &chars("/"));
    assert!(app.filter_editing);
    press(&mut app, &chars("cart"));
    assert_eq!(app.derived.groups.len(), 1);
    assert_eq!(selected_group_label(&app, &view), "*.lb.coalscope.test");
    // Pairs that name cart, both ways; members that match.
    assert_eq!(app.derived.pairs.len(), 2);
    assert_eq!(app.derived.members.len(), 1);
    press(&mut app, &[key(KeyCode::Backspace)]);
    assert_eq!(app.filter, "car");
    press(&mut app, &[key(KeyCode::Enter)]);
    assert!(!app.filter_editing);
    // Keys are commands again; the filter stays.
    press(&mut app, &chars("j"));
    assert_eq!(app.member, Some(0));
    press(&mut app, &[key(KeyCode::Esc)]);
    assert!(app.filter.is_empty());
    assert_eq!(app.derived.groups.len(), 16);
    // Esc while typing clears too; nothing matches → empty lists, no panic.
    press(&mut app, &chars("/zzz"));
    assert!(app.derived.groups.is_empty() && app.derived.pairs.is_empty());
    let _ = coalscope::tui::render_to_buffer(&view, &app, 80, 24);
    press(&mut app, &chars("j"));
    press(&mut app, &[key(KeyCode::Esc)]);
    assert!(!app.filter_editing && app.filter.is_empty());
}

#[test]
fn sort_cycles() {
    let (mut app, view) = app();
    assert_eq!(app.sort, SortMode::Problems);
    press(&mut app, &chars("s"));
    assert_eq!(app.sort, SortMode::Rate);
    // The selection stays on the same group.
    assert_eq!(selected_group_label(&app, &view), "*.apache.coalscope.test");
    press(&mut app, &chars("s"));
    assert_eq!(app.sort, SortMode::Name);
    let labels: Vec<String> = app
        .derived
        .groups
        .iter()
        .map(|&g| app.derived.index.groups[g as usize].label(&view))
        .collect();
    assert_eq!(
        labels[..5],
        [
            "*.apache.coalscope.test",
            "*.broken.coalscope.test",
            "*.caddy.coalscope.test",
            "*.echo.coalscope.test",
            "*.echorouter.coalscope.test"
        ]
    );
    press(&mut app, &[key(KeyCode::End)]);
    assert_eq!(selected_group_label(&app, &view), "not coalescing");
    press(&mut app, &[key(KeyCode::Home)]);
    assert_eq!(selected_group_label(&app, &view), "*.apache.coalscope.test");
    press(&mut app, &chars("s"));
    assert_eq!(app.sort, SortMode::Problems);
}

#[test]
fn matrix_moves_and_opens_a_pair() {
    let (mut app, view) = app();
    press(&mut app, &chars("m"));
    assert_eq!(app.screen, Screen::Matrix);
    assert_eq!(app.cell, (0, 1));
    let p = app.matrix_pair().expect("blog → docs");
    let names = |p: usize| {
        let pair = &view.report.pairs[p];
        (pair.origin.to_string(), pair.target.to_string())
    };
    assert_eq!(
        names(p),
        (
            "blog.apache.coalscope.test:8443".into(),
            "docs.apache.coalscope.test:8443".into()
        )
    );
    press(&mut app, &chars("h"));
    assert_eq!(app.matrix_pair(), None, "the diagonal");
    press(&mut app, &chars("j"));
    assert_eq!(app.cell, (1, 0));
    let p = app.matrix_pair().expect("docs → blog");
    assert_eq!(names(p).0, "docs.apache.coalscope.test:8443");
    press(&mut app, &[key(KeyCode::Enter)]);
    assert_eq!((app.screen, app.focus), (Screen::Main, Focus::Details));
    assert_eq!(app.detail_target(), DetailTarget::Pair(p));
    press(&mut app, &chars("m"));
    press(&mut app, &[key(KeyCode::Esc)]);
    assert_eq!(app.screen, Screen::Main);
}

#[test]
fn help_opens_and_any_key_closes() {
    let (mut app, _) = app();
    press(&mut app, &chars("?"));
    assert!(app.help);
    assert!(press(&mut app, &chars("j")).is_empty());
    assert!(!app.help);
    assert_eq!(app.member, None, "the key that closes help does nothing else");
}

#[test]
fn selection_survives_a_new_generation() {
    let (mut app, view) = app();
    press(&mut app, &[key(KeyCode::Tab), key(KeyCode::Down)]);
    let before = selected_pair(&app, &view);
    // The engine publishes a new view with pairs and groups in another order.
    let mut next = (*view).clone();
    next.report.pairs.reverse();
    next.histories.reverse();
    next.report.groups.reverse();
    let next = Arc::new(next);
    app.set_view(next.clone());
    assert_eq!(selected_pair(&app, &next), before);
    assert_eq!(selected_group_label(&app, &next), "*.apache.coalscope.test");
    // A reload that removes the selected group falls back to a valid selection.
    let mut smaller = (*next).clone();
    smaller.report = Snapshot::default();
    smaller.histories.clear();
    app.set_view(Arc::new(smaller.clone()));
    assert!(app.derived.groups.is_empty());
    assert_eq!(app.detail_target(), DetailTarget::Nothing);
    press(&mut app, &chars("jjkr"));
}

#[test]
fn mouse_selects_and_scrolls() {
    let (mut app, view) = app();
    let p = app.panes();
    // Click the second pair row (after the border and the column header).
    let click = Event::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: p.pairs.x + 5,
        row: p.pairs.y + 3,
        modifiers: KeyModifiers::NONE,
    });
    press(&mut app, &[click]);
    assert_eq!(app.focus, Focus::Pairs);
    assert_eq!(app.pair, 1);
    assert_eq!(
        selected_pair(&app, &view),
        (
            "docs.apache.coalscope.test:8443".into(),
            "blog.apache.coalscope.test:8443".into()
        )
    );
    // Click the third row of the groups pane: the second member of the open group.
    let click = Event::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: p.groups.x + 3,
        row: p.groups.y + 3,
        modifiers: KeyModifiers::NONE,
    });
    press(&mut app, &[click]);
    assert_eq!((app.focus, app.group, app.member), (Focus::Groups, 0, Some(1)));
    // The wheel over the groups pane moves down through the list.
    let wheel = Event::Mouse(MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: p.groups.x + 3,
        row: p.groups.y + 3,
        modifiers: KeyModifiers::NONE,
    });
    press(&mut app, &[wheel]);
    assert!(app.group >= 1, "{}", app.group);
}

#[test]
fn scrolling_keeps_the_selection_visible_at_10k_rows() {
    // 1,000 names in groups of 50: the first group lists 2,450 pairs.
    let view = Arc::new(views::synthetic_view(1000, 50));
    let mut app = App::new(Theme::dark());
    app.apply(Action::Resize(80, 24));
    app.set_view(view.clone());
    press(&mut app, &[key(KeyCode::Tab)]);
    for _ in 0..30 {
        press(&mut app, &[key(KeyCode::PageDown)]);
    }
    let rows = coalscope::tui::layout::inner_rows(app.panes().pairs) - 1;
    assert!(app.pair > rows);
    assert!(app.pairs_offset <= app.pair && app.pair < app.pairs_offset + rows);
    // The selected pair is on screen.
    let buf = coalscope::tui::render_to_buffer(&view, &app, 80, 24);
    let p = &view.report.pairs[app.derived.pairs[app.pair] as usize];
    let short = p.target.split('.').next().unwrap();
    let screen: String = (0..24)
        .map(|y| {
            (0..80)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
                + "\n"
        })
        .collect();
    assert!(screen.contains(&format!("→ {short} ")), "{short}\n{screen}");
    press(&mut app, &[key(KeyCode::End)]);
    assert_eq!(app.pair, app.derived.pairs.len() - 1);
}

#[test]
fn export_writes_contract_json() {
    let dir = tempfile::tempdir().unwrap();
    let view = views::lab_view();
    let a = coalscope::tui::export(&view.report, dir.path()).unwrap();
    let b = coalscope::tui::export(&view.report, dir.path()).unwrap();
    assert_ne!(a, b, "a second export in the same second gets its own name");
    let back: Snapshot = serde_json::from_slice(&std::fs::read(&a).unwrap()).unwrap();
    // The JSON is the whole report but for the pairs' causes, which the reports derive.
    let mut report = view.report.clone();
    for p in &mut report.pairs {
        std::sync::Arc::make_mut(p).cause = None;
    }
    assert_eq!(back, report);
    assert!(a.file_name().unwrap().to_str().unwrap().starts_with("coalscope-"));
    // Only the two exports: no temporary file is left beside them.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // A directory that cannot take it (missing, or a file): an error naming it, nothing written.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    for bad in [dir.path().join("missing"), file.clone()] {
        let e = coalscope::tui::export(&view.report, &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&bad.display().to_string()), "{e}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
    // A directory it may not write to: the same, and nothing half-written in it. Root writes
    // through the mode bits, so only checked when not root.
    if common::is_root() {
        println!("running as root: the read-only export directory is skipped");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    let e = coalscope::tui::export(&view.report, &locked)
        .unwrap_err()
        .to_string();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(e.contains(&locked.display().to_string()), "{e}");
    assert_eq!(std::fs::read_dir(&locked).unwrap().count(), 0);
}

fn merged(iad1_stale: bool) -> (App, Arc<LiveView>) {
    let view = Arc::new(coalscope::testing::vantages::two_vantage_view(iad1_stale));
    let mut app = App::new(Theme::dark());
    app.apply(Action::Resize(120, 40));
    app.set_view(view.clone());
    (app, view)
}

/// The vantage of every listed pair of the selected group, as the app shows them.
fn listed_vantages(app: &App) -> Vec<String> {
    let shown = app.view().expect("a view");
    let vantages = shown.vantages.as_ref().expect("a merged view");
    app.derived
        .pairs
        .iter()
        .map(|&p| vantages.list[vantages.of_pair(p as usize)].name.clone())
        .collect()
}

#[test]
fn v_cycles_the_vantage_filter_all_then_each() {
    let (mut app, view) = merged(false);
    assert_eq!(
        keymap::action(&key(KeyCode::Char('v')), false),
        Some(Action::CycleVantage)
    );
    // While the name filter is typed, `v` is text.
    assert_eq!(
        keymap::action(&key(KeyCode::Char('v')), true),
        Some(Action::FilterChar('v'))
    );
    press(&mut app, &[key(KeyCode::Tab)]);
    let all = listed_vantages(&app);
    assert!(
        all.contains(&"fra1".into()) && all.contains(&"iad1".into()),
        "{all:?}"
    );
    assert_eq!(app.vantage_name(), None);
    let before = selected_pair(&app, app.view().unwrap());

    press(&mut app, &[key(KeyCode::Char('v'))]);
    assert_eq!(app.vantage_name(), Some("fra1"));
    assert_eq!(app.message.as_deref(), Some("showing vantage fra1"));
    let fra = listed_vantages(&app);
    assert!(!fra.is_empty() && fra.iter().all(|v| v == "fra1"), "{fra:?}");
    // The same pair stays selected (now fra1's row of it).
    assert_eq!(selected_pair(&app, app.view().unwrap()), before);

    press(&mut app, &[key(KeyCode::Char('v'))]);
    assert_eq!(app.vantage_name(), Some("iad1"));
    let iad = listed_vantages(&app);
    assert!(!iad.is_empty() && iad.iter().all(|v| v == "iad1"), "{iad:?}");
    assert_eq!(app.view().unwrap().report.summary.problems, 0);

    press(&mut app, &[key(KeyCode::Char('v'))]);
    assert_eq!(app.vantage_name(), None);
    assert_eq!(app.message.as_deref(), Some("showing all vantages"));
    assert_eq!(listed_vantages(&app), all);

    // A new merged view keeps the filter.
    press(&mut app, &[key(KeyCode::Char('v'))]);
    let next = Arc::new((*view).clone());
    app.set_view(next.clone());
    assert_eq!(app.vantage_name(), Some("fra1"));
    assert!(app.is_current(&next));
}

#[test]
fn v_on_a_single_engine_says_there_is_one_vantage() {
    let (mut app, _) = app();
    let effects = press(&mut app, &[key(KeyCode::Char('v'))]);
    assert!(effects.is_empty());
    assert!(app.message.as_deref().unwrap().contains("one vantage only"));
    assert_eq!(app.vantage_name(), None);
}

#[test]
fn remote_vantages_only_cannot_be_paused_or_probed_from_here() {
    let (mut app, _) = merged(true);
    let effects = press(&mut app, &[key(KeyCode::Char('p')), key(KeyCode::Char('r'))]);
    assert!(effects.is_empty(), "{effects:?}");
    assert!(app.message.as_deref().unwrap().contains("remote vantages only"));
}
