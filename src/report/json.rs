//! The contract's JSON (`coalscope/1`). JSON keeps the exact strings from the network,
//! escaped: serde escapes C0 controls, quotes and backslashes; this formatter also writes DEL,
//! C1 controls, bidi controls and invisible format characters as `\uXXXX`, so that the raw
//! output is safe on a terminal too (a UTF-8 encoded U+009B is a CSI to some terminals)
//! while every parser reads back the exact value.

use std::io;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use serde_json::ser::{Formatter, PrettyFormatter};

use crate::engine::snapshot::{Event, EventRow, LiveView, Snapshot, MAX_EVENTS, SCHEMA};
use crate::sanitize::is_unsafe;

/// Write the report to `w` as it is serialised, without holding all of it in memory (a
/// 10,000-name report is hundreds of megabytes).
pub fn write_json(snapshot: &Snapshot, w: impl io::Write) -> io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(w, Escaping(PrettyFormatter::new()));
    snapshot.serialize(&mut ser).map_err(io::Error::from)
}

pub fn to_json(snapshot: &Snapshot) -> String {
    into_string(|out| write_json(snapshot, out))
}

/// The report of a live view: `view.report`, with the pending pairs it lists by index made
/// and written in their place (exactly what the view's report would be with every pair in
/// `report.pairs`).
pub fn write_view_json(view: &LiveView, w: impl io::Write) -> io::Result<()> {
    write_vantage_view_json(view, None, w)
}

/// `write_view_json`, with a top-level `vantage` field (after `generated_at`) when `vantage`
/// is given (`serve --vantage NAME`): the name remote dashboards show the view under.
pub fn write_vantage_view_json(view: &LiveView, vantage: Option<&str>, w: impl io::Write) -> io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(w, Escaping(PrettyFormatter::new()));
    ViewReport { view, vantage }
        .serialize(&mut ser)
        .map_err(io::Error::from)
}

pub fn view_to_json(view: &LiveView) -> String {
    into_string(|out| write_view_json(view, out))
}

/// `view_to_json` with the vantage's name (see `write_vantage_view_json`).
pub fn vantage_view_to_json(view: &LiveView, vantage: Option<&str>) -> String {
    into_string(|out| write_vantage_view_json(view, vantage, out))
}

/// `/api/events`: `{"schema": "coalscope/1", "events": [...]}`, oldest first, the newest
/// `MAX_EVENTS` of `events` (escaped as the reports are).
pub fn events_to_json(events: &[Event]) -> String {
    #[derive(Serialize)]
    struct Events<'a> {
        schema: &'a str,
        events: Vec<EventRow>,
    }
    let skip = events.len().saturating_sub(MAX_EVENTS);
    let body = Events {
        schema: SCHEMA,
        events: events[skip..].iter().map(Event::row).collect(),
    };
    into_string(|out| {
        let mut ser = serde_json::Serializer::with_formatter(out, Escaping(PrettyFormatter::new()));
        body.serialize(&mut ser).map_err(io::Error::from)
    })
}

fn into_string(write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
    let mut out = Vec::with_capacity(16 * 1024);
    // Serialising plain structs of strings and numbers into memory cannot fail.
    match write(&mut out) {
        Ok(()) => String::from_utf8(out).unwrap_or_default(),
        Err(e) => format!("{{\"error\": \"{e}\"}}"),
    }
}

/// A live view's report as `Snapshot` writes it (the same fields in the same order), its
/// `pairs` from `LiveView::listed_pairs`, its `vantage` the one given (else the report's).
struct ViewReport<'a> {
    view: &'a LiveView,
    vantage: Option<&'a str>,
}

impl Serialize for ViewReport<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let view = self.view;
        let r = &view.report;
        if view.pending.runs().is_empty() && self.vantage.is_none() {
            return r.serialize(s);
        }
        let vantage = self.vantage.or(r.vantage.as_deref());
        let pairs = ListedReports(view);
        let mut st = s.serialize_struct("Snapshot", 7)?;
        st.serialize_field("schema", &r.schema)?;
        st.serialize_field("generated_at", &r.generated_at)?;
        if let Some(v) = vantage {
            st.serialize_field("vantage", v)?;
        }
        st.serialize_field("hosts", &r.hosts)?;
        st.serialize_field("pairs", &pairs)?;
        st.serialize_field("groups", &r.groups)?;
        st.serialize_field("summary", &r.summary)?;
        st.end()
    }
}

/// Every listed pair's report, made one at a time.
struct ListedReports<'a>(&'a LiveView);

impl Serialize for ListedReports<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let view = self.0;
        s.collect_seq(view.listed_pairs().filter_map(|p| view.listed_report(p)))
    }
}

/// `PrettyFormatter`, plus `\uXXXX` for every character `sanitize::is_unsafe` names.
struct Escaping(PrettyFormatter<'static>);

impl Formatter for Escaping {
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if is_unsafe(c) {
                w.write_all(&fragment.as_bytes()[start..i])?;
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
                start = i + c.len_utf8();
            }
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::snapshot::{
        CertId, EventKind, Finding, FindingKind, HostChange, HostEvent, HostReport, Severity, Timestamp,
        Verdict, VerdictEvent,
    };

    /// `/api/events` follows its schema (assets/coalscope-events-1.schema.json), for every
    /// kind, a new pair (no `from`) and a hostile name; more than MAX_EVENTS keep the newest.
    /// One piece: one log, built once, held to the schema and its words checked.
    #[test]
    fn the_event_log_follows_its_schema() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../assets/coalscope-events-1.schema.json"))
                .expect("schema");
        let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
        let at = Timestamp::from_unix(1_700_000_000);
        let host = |change: HostChange| {
            Event::Host(HostEvent {
                at,
                host: "a\u{1b}[2J.test:443".into(),
                address: Some("127.0.0.1".into()),
                change,
            })
        };
        let cert = |sha: &str| CertId {
            sha256: sha.into(),
            not_after: at,
        };
        let mut events = vec![
            Event::Verdict(VerdictEvent {
                at,
                origin: "a.test:443".into(),
                target: "b.test:443".into(),
                from: None,
                to: Verdict::Pending,
                message: "new".into(),
            }),
            Event::Verdict(VerdictEvent {
                at,
                origin: "a.test:443".into(),
                target: "b.test:443".into(),
                from: Some(Verdict::Ok),
                to: Verdict::Error,
                message: "127.0.0.1: connect: connection refused".into(),
            }),
            host(HostChange::CertChanged {
                old: cert("aa"),
                new: cert("bb"),
                sans_added: vec!["c.test".into()],
                sans_removed: vec![],
            }),
            host(HostChange::AddressesChanged {
                added: vec!["127.0.0.2".into()],
                removed: vec!["127.0.0.1".into()],
            }),
            host(HostChange::DnsStale {
                error: "timed out".into(),
                until: at,
            }),
            host(HostChange::DnsFailed {
                error: "SERVFAIL".into(),
            }),
            host(HostChange::DnsRecovered),
        ];
        let words = |def: &str| -> std::collections::BTreeSet<String> {
            schema["$defs"][def]["enum"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|w| w.as_str().map(String::from))
                .collect()
        };
        assert_eq!(
            words("kind"),
            EventKind::ALL.iter().map(|k| k.to_string()).collect()
        );
        assert_eq!(
            words("verdict"),
            Verdict::ALL.iter().map(|v| v.to_string()).collect()
        );
        let kinds: std::collections::BTreeSet<EventKind> = events.iter().map(Event::kind).collect();
        assert_eq!(kinds.len(), EventKind::ALL.len(), "every kind is tried");
        let check = |events: &[Event]| {
            let doc: serde_json::Value = serde_json::from_str(&events_to_json(events)).expect("JSON");
            let errors: Vec<String> = validator
                .iter_errors(&doc)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{}", errors.join("\n"));
            doc
        };
        check(&events);
        let first = events[0].clone();
        events.resize(MAX_EVENTS + 5, first);
        let doc = check(&events);
        assert_eq!(doc["events"].as_array().map(Vec::len), Some(MAX_EVENTS));
        // A row the schema refuses: it can fail.
        let mut bad = doc.clone();
        bad["events"][0]["kind"] = "restarted".into();
        assert!(!validator.is_valid(&bad));
    }

    #[test]
    fn unsafe_characters_are_escaped_and_read_back_exactly() {
        let evil = "a\u{1b}[2J\u{9b}31m\u{202e}x\u{061c}\u{7f}\u{e0041}ü日\"\\";
        let mut s = Snapshot::default();
        let host: HostReport = serde_json::from_value(serde_json::json!({
            "host": "h.test", "port": 443, "path": "/", "line": 1, "addresses": [],
            "dns": {"cnames": [], "ttl_s": null, "error": null, "overridden": false, "elapsed_ms": 0.0},
            "endpoints": [], "findings": []
        }))
        .expect("host");
        s.hosts.push(std::sync::Arc::new(HostReport {
            findings: vec![Finding {
                kind: FindingKind::HttpError,
                severity: Severity::Error,
                message: evil.into(),
            }],
            ..host
        }));
        let text = to_json(&s);
        assert!(!text.chars().any(|c| c != '\n' && is_unsafe(c)), "{text}");
        assert!(text.contains("\\u009b") && text.contains("\\u202e") && text.contains("\\udb40\\udc41"));
        assert!(text.contains("ü日"), "printable text stays as it is");
        let back: Snapshot = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back.hosts[0].findings[0].message, evil);
        assert_eq!(back, s);
        // Without such characters the text is exactly serde_json's pretty output.
        std::sync::Arc::make_mut(&mut s.hosts[0]).findings[0].message = "plain ü".into();
        assert_eq!(to_json(&s), serde_json::to_string_pretty(&s).unwrap());
    }
}
