//! Every dashboard view, drawn with `TestBackend` at 80×24 and 120×40 from views the real
//! engine made (`testing::views`: the embedded lab probed and published by the live store, and
//! the synthetic workload published by it), compared with the committed insta snapshots; plus
//! NO_COLOR, the light theme, hostile strings and a terminal too small.

// Test code: a failed expectation is a failed test, said where it happened.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::sync::Arc;

use coalscope::engine::snapshot::{LiveView, Verdict};
use coalscope::testing::views;
use coalscope::tui::app::{Action, App, DetailTarget, Focus};
use coalscope::tui::render::draw;
use coalscope::tui::theme::Theme;
use coalscope::watchlist::{self, watcher::ReloadError};
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
    Arc::new(views::lab_view())
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
    // The engine's fix for this pair (Apache's) is long: the evidence per address is below it.
    check(
        "pair_details_scrolled",
        &lab(),
        &[Action::NextPane, Action::Enter, Action::PageDown],
    );
}

#[test]
fn misrouted_pair_names_the_site_its_page_looked_like() {
    // The SNI router in front of pages printing the server name: the details say whose page
    // came back, per address.
    let mut actions = vec![Action::StartFilter];
    actions.extend(chars("echorouter"));
    actions.extend([
        Action::FilterDone,
        Action::NextPane,
        Action::Enter,
        Action::PageDown,
    ]);
    check("content_details", &lab(), &actions);
}

#[test]
fn a_pair_refused_by_stream_resets_shows_its_refusal_rate() {
    // Apache's HTTP_1_1_REQUIRED resets carry no status: the row says RST and 100% refused,
    // the details the refusal rate with its interval (not a 0% 421 rate).
    let mut actions = vec![Action::StartFilter];
    actions.extend(chars("renego"));
    actions.extend([Action::FilterDone, Action::NextPane, Action::Enter]);
    let view = lab();
    let app = app_for(&view, 120, 40, &actions);
    let shown = text(screen(&view, &app, 120, 40).backend().buffer());
    let row = shown
        .lines()
        .find(|l| l.contains("www → admin"))
        .unwrap_or_else(|| panic!("no renego row:\n{shown}"));
    assert!(
        row.contains("misdirected") && row.contains("RST/200") && row.contains("100%"),
        "{row}"
    );
    assert!(shown.contains("refused 100% of"), "{shown}");
}

#[test]
fn a_pair_refused_over_http3_only_shows_both_protocols() {
    // The lab's quic pair: clean over HTTP/2, 421 over HTTP/3. The pairs pane has a protocol
    // column (this group was probed over HTTP/3), the details both verdicts.
    let mut actions = vec![Action::StartFilter];
    actions.extend(chars("quic"));
    actions.extend([Action::FilterDone, Action::NextPane, Action::Enter]);
    check("quic_pair_details", &lab(), &actions);
    let view = lab();
    let app = app_for(&view, 120, 40, &actions);
    let shown = text(screen(&view, &app, 120, 40).backend().buffer());
    assert!(shown.contains("proto"), "{shown}");
    let row = shown
        .lines()
        .find(|l| l.contains("→ www") || l.contains("→ api"))
        .unwrap_or_else(|| panic!("no quic row:\n{shown}"));
    assert!(row.contains("misdirected") && row.contains("h2 h3"), "{row}");
    assert!(
        shown.contains("over HTTP/3 (misdirected; over HTTP/2: ok)"),
        "{shown}"
    );
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
    // The group without problems: its pairs stay quiet (the echo group, also fine, sorts
    // after it).
    check(
        "good_group",
        &lab(),
        &[Action::End, Action::Up, Action::Up, Action::Right],
    );
}

#[test]
fn matrix_view() {
    check(
        "matrix",
        &lab(),
        &[
            Action::End,
            Action::Up,
            Action::Up,
            Action::ToggleMatrix,
            Action::Right,
        ],
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
    // What the engine shows when a save of the watch-file does not parse: the parser's error.
    let mut v = views::lab_view();
    let saved = b"www.good.coalscope.test:8443\napi.good.coalscope.test:8443\nbad host!\n";
    let error = watchlist::parse("lab.watch", saved).expect_err("a bad line");
    v.status.reload_error = Some(ReloadError::Unusable(error).to_string());
    v.status.paused = true;
    check("reload_error", &Arc::new(v), &[]);
}

#[test]
fn empty_view_waits() {
    check("empty", &Arc::new(LiveView::default()), &[]);
}

#[test]
fn thousand_names() {
    let v = Arc::new(views::synthetic_view(1000, 50));
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
    // The lab sends nothing hostile (tests/hostile.rs draws reports of servers that do): plant
    // what a network controls where it lands in the real view, a CNAME from DNS and the text
    // of a failed direct request, on the first host of the pseudo-group (the last group).
    let mut v = views::lab_view();
    let legacy = v
        .report
        .hosts
        .iter_mut()
        .find(|h| h.host == "legacy.h1.coalscope.test")
        .expect("the lab's legacy.h1");
    let legacy = Arc::make_mut(legacy);
    legacy.dns.cnames = vec!["edge\u{202e}moc.evil.test".into()];
    legacy.endpoints[0].direct.error = Some("server said \u{1b}[2J\u{1b}[31mHACKED\u{7}".into());
    let view = Arc::new(v);
    let app = app_for(&view, 120, 40, &[Action::End, Action::Down, Action::Enter]);
    let term = screen(&view, &app, 120, 40);
    let s = text(term.backend().buffer());
    assert!(s.contains("legacy.h1.coalscope.test"), "{s}");
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
    assert!(text(&buf).contains("Groups (16)"), "{}", text(&buf));
    assert_eq!(stranger.focus, Focus::Groups);
}

fn two_vantages(iad1_stale: bool) -> Arc<LiveView> {
    Arc::new(coalscope::testing::vantages::two_vantage_view(iad1_stale))
}

#[test]
fn two_vantages_main_and_pair_details() {
    // The merged view of `watch --from fra1 --from iad1`: the vantages in the header, a
    // vantage column, and a pair's verdict from each vantage in its details.
    check("vantages_main", &two_vantages(false), &[Action::NextPane]);
    check(
        "vantages_pair_details",
        &two_vantages(false),
        &[Action::NextPane, Action::Enter],
    );
}

#[test]
fn a_stale_vantage_is_marked_and_the_filter_shows_one() {
    check("vantages_stale", &two_vantages(true), &[Action::NextPane]);
    check(
        "vantages_filtered",
        &two_vantages(true),
        &[Action::CycleVantage, Action::CycleVantage, Action::NextPane],
    );
}

#[test]
fn hostile_remote_vantages_are_defanged_and_help_lists_the_vantage_key() {
    // What a remote serve controls: the name it gives itself, and (through its failure) the
    // error text; both are drawn clean.
    use coalscope::engine::snapshot::Vantages;
    let mut v = coalscope::testing::vantages::two_vantage_view(true);
    let vantages = v.vantages.take().unwrap();
    let mut list: Vec<_> = vantages.list.to_vec();
    list[0].name = "fra1\u{1b}[2J\u{202e}evil".into();
    list[1].health.error = Some("refused \u{1b}[31mRED\u{7} \u{9b}2J".into());
    v.vantages = Some(Vantages::new(list));
    let view = Arc::new(v);
    let app = app_for(&view, 120, 40, &[Action::NextPane, Action::Enter]);
    let s = text(screen(&view, &app, 120, 40).backend().buffer());
    assert!(s.contains("evil") && s.contains("RED"), "{s}");
    assert!(
        !s.chars()
            .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}' || c == '\u{9b}'),
        "{s:?}"
    );
    // The help lists `v` for merged views only.
    let help = |view: &Arc<LiveView>| {
        let app = app_for(view, 120, 40, &[Action::ToggleHelp]);
        text(screen(view, &app, 120, 40).backend().buffer())
    };
    assert!(help(&two_vantages(false)).contains("vantage: all, then each in turn"));
    assert!(!help(&lab()).contains("vantage"));
}

/// The lab view with what changes under hosts planted where the engine puts it: host events
/// in the event log (a certificate rotated, with a hostile SAN; addresses moved; DNS stale,
/// failed, recovered) and a stale DNS answer on the host the details show.
fn lab_with_host_events() -> Arc<LiveView> {
    use coalscope::engine::snapshot::{CertId, DnsStaleReport, Event, HostChange, HostEvent, Timestamp};
    let mut v = views::lab_view();
    let at = v.report.generated_at;
    let shown = app_for(&Arc::new(v.clone()), 120, 40, &[Action::Down, Action::Enter]);
    let DetailTarget::Host(i) = shown.detail_target() else {
        panic!("the details show a host: {:?}", shown.detail_target());
    };
    let host = Arc::make_mut(&mut v.report.hosts[i]);
    let key = format!("{}:{}", host.host, host.port);
    host.dns.stale = Some(DnsStaleReport {
        since: Timestamp::from_unix(at.unix() - 30),
        until: Timestamp::from_unix(at.unix() + 270),
        error: "SERVFAIL".into(),
    });
    let event = |change| {
        Event::Host(HostEvent {
            at,
            host: key.clone(),
            address: None,
            change,
        })
    };
    let cert = |sha: &str, days: i64| CertId {
        sha256: sha.repeat(64),
        not_after: Timestamp::from_unix(at.unix() + days * 86_400),
    };
    let events = Arc::make_mut(&mut v.events);
    events.push(Event::Host(HostEvent {
        address: Some("127.0.0.10".into()),
        ..match event(HostChange::CertChanged {
            old: cert("a", 90),
            new: cert("b", 30),
            sans_added: vec!["evil\u{1b}[2J\u{202e}.test".into()],
            sans_removed: vec!["www.good.coalscope.test".into()],
        }) {
            Event::Host(h) => h,
            Event::Verdict(_) => unreachable!(),
        }
    }));
    events.push(event(HostChange::AddressesChanged {
        added: vec!["127.0.0.11".into()],
        removed: vec!["127.0.0.10".into()],
    }));
    events.push(event(HostChange::DnsStale {
        error: "SERVFAIL".into(),
        until: Timestamp::from_unix(at.unix() + 270),
    }));
    events.push(event(HostChange::DnsFailed {
        error: "SERVFAIL".into(),
    }));
    events.push(event(HostChange::DnsRecovered));
    Arc::new(v)
}

#[test]
fn host_events_and_stale_dns() {
    let view = lab_with_host_events();
    check("host_events", &view, &[Action::PrevPane]);
    check("stale_dns_details", &view, &[Action::Down, Action::Enter]);
    let app = app_for(&view, 120, 40, &[Action::PrevPane]);
    let s = text(screen(&view, &app, 120, 40).backend().buffer());
    assert!(s.contains("cert-changed"), "{s}");
    assert!(!s.chars().any(|c| c.is_control() && c != '\n'), "{s:?}");
    assert!(!s.contains('\u{202e}'));
    let app = app_for(&view, 120, 40, &[Action::Down, Action::Enter]);
    let s = text(screen(&view, &app, 120, 40).backend().buffer());
    assert!(s.contains("DNS stale"), "{s}");
}
