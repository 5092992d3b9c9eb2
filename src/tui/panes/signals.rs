//! The details pane's lines about what a server signals besides answers: the ORIGIN set and
//! the Alt-Svc alternatives of an endpoint, and the HTTPS records (RFC 9460) of a name.

use ratatui::text::{Line, Span};

use crate::engine::snapshot::{AltSvcReport, EndpointReport, HostReport, HttpsRecordReport};
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

/// "HTTPS records …" (one line for all of them) and "HTTPS lookup …" when it failed.
pub(super) fn https_lines<'a>(h: &HostReport, t: &Theme) -> Vec<Line<'a>> {
    let mut out = Vec::new();
    if !h.dns.https.is_empty() {
        let records: Vec<String> = h
            .dns
            .https
            .iter()
            .take(MAX_LISTED)
            .map(https_record_text)
            .collect();
        out.push(Line::from(vec![
            Span::styled("HTTPS records ", t.label),
            Span::styled(records.join(" | "), t.text),
        ]));
    }
    if let Some(e) = &h.dns.https_error {
        out.push(Line::from(vec![
            Span::styled("HTTPS lookup ", t.label),
            Span::styled(clean(e, 120), t.dim),
        ]));
    }
    out
}

/// `1 . alpn=h3,h2 port=8443 ipv4hint=… ech` (AliasMode: `0 alias.target.`).
fn https_record_text(r: &HttpsRecordReport) -> String {
    let target = if r.target.is_empty() {
        ".".to_string()
    } else {
        clean(&r.target, 80)
    };
    let mut text = format!("{} {target}", r.priority);
    if !r.alpn.is_empty() {
        let alpn: Vec<String> = r.alpn.iter().map(|a| clean(a, 20)).collect();
        text.push_str(&format!(" alpn={}", alpn.join(",")));
    }
    if r.no_default_alpn {
        text.push_str(" no-default-alpn");
    }
    if let Some(p) = r.port {
        text.push_str(&format!(" port={p}"));
    }
    for (key, hints) in [("ipv4hint", &r.ipv4hint), ("ipv6hint", &r.ipv6hint)] {
        if !hints.is_empty() {
            let shown: Vec<String> = hints.iter().take(4).map(|a| clean(a, 45)).collect();
            text.push_str(&format!(" {key}={}", shown.join(",")));
        }
    }
    if r.ech {
        text.push_str(" ech");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_https_record_reads_like_its_zone_file_line() {
        let r = HttpsRecordReport {
            priority: 1,
            target: String::new(),
            alpn: vec!["h3".into(), "h2".into()],
            no_default_alpn: false,
            port: Some(8443),
            ipv4hint: vec!["192.0.2.1".into(), "192.0.2.2".into()],
            ipv6hint: vec!["2001:db8::1".into()],
            ech: true,
            ttl_s: 300,
        };
        assert_eq!(
            https_record_text(&r),
            "1 . alpn=h3,h2 port=8443 ipv4hint=192.0.2.1,192.0.2.2 ipv6hint=2001:db8::1 ech"
        );
        let alias = HttpsRecordReport {
            priority: 0,
            target: "svc.example".into(),
            alpn: vec![],
            port: None,
            ipv4hint: vec![],
            ipv6hint: vec![],
            ech: false,
            ..r
        };
        assert_eq!(https_record_text(&alias), "0 svc.example");
    }
}
