//! Arbitrary bytes as another `serve`'s `/api/snapshot` (what `watch --from` reads from the
//! network): parsing never panics and keeps the caps; a snapshot that parses is merged as two
//! vantages and drawn (the main screen, a pair's details, one vantage's view) without a panic,
//! and no cell of the screen holds a character unsafe for a terminal.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use coalscope::engine::snapshot::{Health, Timestamp, Vantage};
use coalscope::remote::fetch::parse;
use coalscope::remote::merge::merge;
use coalscope::sanitize::is_unsafe;
use coalscope::tui::render::draw;
use coalscope::tui::{Action, App, Theme};
use libfuzzer_sys::fuzz_target;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

const CAP: usize = 200;

fuzz_target!(|body: &[u8]| {
    let Ok(data) = parse(body, CAP, CAP) else {
        return;
    };
    assert!(data.report.pairs.len() <= CAP && data.report.hosts.len() <= CAP);
    let data = Arc::new(data);
    let vantage = |name: &str, stale: bool| Vantage {
        name: name.to_string(),
        source: format!("http://{name}.test:9421"),
        local: false,
        health: Health {
            age: Duration::from_secs(1),
            answered: true,
            error: stale.then(|| "cannot connect".to_string()),
            stale,
        },
        data: data.clone(),
    };
    let view = Arc::new(merge(
        None,
        vec![vantage("a", false), vantage("b", true)],
        Timestamp::from_unix(0),
    ));
    let screens: [&[Action]; 3] = [
        &[],
        &[Action::NextPane, Action::Enter],
        &[Action::CycleVantage, Action::NextPane, Action::Enter],
    ];
    for actions in screens {
        let mut app = App::new(Theme::dark());
        app.apply(Action::Resize(80, 24));
        app.set_view(view.clone());
        for a in actions {
            app.apply(*a);
        }
        let area = Rect::new(0, 0, 80, 24);
        let mut buf = Buffer::empty(area);
        draw(&view, &app, area, &mut buf);
        for cell in buf.content() {
            assert!(!cell.symbol().chars().any(is_unsafe), "{:?}", cell.symbol());
        }
    }
});
