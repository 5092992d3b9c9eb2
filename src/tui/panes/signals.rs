//! The details pane's lines about what a server signals besides answers: the ORIGIN set and
//! the Alt-Svc alternatives of an endpoint.

use ratatui::text::{Line, Span};

use crate::engine::snapshot::{AltSvcReport, EndpointReport};
use crate::tui::panes::clean;
use crate::tui::theme::Theme;

/// At most this many origins or alternatives are listed on a line.
const MAX_LISTED: usize = 12;

/// "  ORIGIN frame …" and "  Alt-Svc …", each when the endpoint has one.
pub(super) fn endpoint_lines<'a>(ep: &EndpointReport, t: &Theme) -> Vec<Line<'a>> {
    let mut out = Vec::new();
    if let Some(origins) = &ep.origin_frame {
        let listed: Vec<String> = origins
            .iter()
            .take(MAX_LISTED)
            .map(|o| clean(o.strip_prefix("https://").unwrap_or(o), 80))
            .collect();
        let mut text = if listed.is_empty() {
            "empty (only this name)".to_string()
        } else {
            listed.join(", ")
        };
        if origins.len() > MAX_LISTED {
            text.push_str(&format!(" … {} in all", origins.len()));
        }
        out.push(Line::from(vec![
            Span::styled("  ORIGIN frame ", t.label),
            Span::styled(text, t.text),
        ]));
    }
    if !ep.alt_svc.is_empty() {
        let alts: Vec<String> = ep.alt_svc.iter().take(MAX_LISTED).map(alt_text).collect();
        out.push(Line::from(vec![
            Span::styled("  Alt-Svc ", t.label),
            Span::styled(alts.join(", "), t.text),
        ]));
    }
    out
}

/// `h3=":443" ma=86400 (header)`.
fn alt_text(a: &AltSvcReport) -> String {
    let host = a.host.as_deref().map_or(String::new(), |h| clean(h, 80));
    let ma = a.max_age_s.map_or(String::new(), |m| format!(" ma={m}"));
    format!(
        "{}=\"{host}:{}\"{ma} ({})",
        clean(&a.protocol, 20),
        a.port,
        clean(&a.source, 10)
    )
}
