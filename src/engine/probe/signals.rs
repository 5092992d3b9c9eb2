//! What a server tells clients beyond its certificate and DNS: the HTTP/2 ORIGIN frame
//! (RFC 8336), Alt-Svc (RFC 7838, as a header or an ALTSVC frame). Plain data, bounded: the
//! frame reader (`probe::frames`) and the Alt-Svc header parser fill it in; the client
//! policies (`judge::policy`) and the findings read it.

/// The ORIGIN frame's type (RFC 8336 §2).
pub const ORIGIN_FRAME_TYPE: u8 = 0x0c;

/// Most origins kept from the ORIGIN frames of one connection (the rest are counted).
pub const MAX_ORIGINS: usize = 256;
/// Most Alt-Svc alternatives kept per connection (the rest are counted).
pub const MAX_ALT_SVC: usize = 16;
/// Most anomalies kept per connection (the rest are counted).
pub const MAX_ANOMALIES: usize = 8;

/// The ORIGIN frames received on one connection (RFC 8336 §2.3). Once one is received, the
/// connection's origin set is its own origin plus every entry of every ORIGIN frame; a client
/// that honours it (Firefox) pools only those origins there, and pools them whatever DNS says
/// when the certificate covers them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OriginSet {
    /// ASCII serialised origins as received, lower-cased, without a default port
    /// ("https://b.example", "https://c.example:8443"), in order of arrival, without
    /// duplicates, at most `MAX_ORIGINS`.
    pub origins: Vec<String>,
    /// ORIGIN frames received on stream 0.
    pub frames: u32,
    /// Entries beyond `MAX_ORIGINS`.
    pub dropped: usize,
    /// Entries that were not an ASCII origin (not `https://host[:port]`): ignored.
    pub invalid: usize,
}

impl OriginSet {
    /// The set lists `https://host[:port]` (port 443 is written without it).
    pub fn lists(&self, host: &str, port: u16) -> bool {
        let want = origin_of(host, port);
        self.origins.contains(&want)
    }
}

impl ServerSignals {
    /// What the ORIGIN frames say about `host:port`: Some(true) listed, Some(false) left out,
    /// None when no frame came, or when the set was cut short (entries beyond the bound, or
    /// ORIGIN frames skipped as oversized, malformed or past the flood cutoff): a client that
    /// read the whole frame may have found the name where this reader stopped.
    pub fn origin_lists(&self, host: &str, port: u16) -> Option<bool> {
        let set = self.origin.as_ref()?;
        if set.lists(host, port) {
            return Some(true);
        }
        let cut_short = set.dropped > 0
            || self.anomalies_dropped > 0
            || self.anomalies.iter().any(|a| {
                matches!(
                    a,
                    FrameAnomaly::Oversized {
                        frame_type: ORIGIN_FRAME_TYPE,
                        ..
                    } | FrameAnomaly::Malformed {
                        frame_type: ORIGIN_FRAME_TYPE
                    } | FrameAnomaly::Flood {
                        frame_type: ORIGIN_FRAME_TYPE
                    }
                )
            });
        (!cut_short).then_some(false)
    }
}

/// `https://host` or `https://host:port` (port != 443), as ORIGIN entries serialise it; an
/// IPv6 literal in brackets whether it is given with them or not.
pub fn origin_of(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    if port == 443 {
        format!("https://{host}")
    } else {
        format!("https://{host}:{port}")
    }
}

/// Where an Alt-Svc alternative was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AltSvcSource {
    /// An `Alt-Svc` response header.
    Header,
    /// An HTTP/2 ALTSVC frame (type 0xa).
    Frame,
}

/// One alternative service (RFC 7838 §3): `h3=":443"; ma=86400`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AltService {
    /// The ALPN protocol id, percent-decoded ("h3", "h2", "h3-29").
    pub protocol: String,
    /// The alternative host; None when the authority leaves it out (same host).
    pub host: Option<String>,
    pub port: u16,
    /// `ma` in seconds (RFC 7838 default 86400 when absent: None here).
    pub max_age: Option<u32>,
    pub source: AltSvcSource,
}

/// Something odd in what the server sent, kept (bounded) so an operator can hear of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FrameAnomaly {
    /// An ORIGIN frame on a stream other than 0 (ignored, RFC 8336 §2.1).
    OriginOnStream(u32),
    /// A frame longer than the negotiated SETTINGS_MAX_FRAME_SIZE (skipped by the reader;
    /// hyper ends the connection).
    Oversized { frame_type: u8, length: u32 },
    /// An ORIGIN or ALTSVC payload that does not parse (a length running past the end).
    Malformed { frame_type: u8 },
    /// More ORIGIN/ALTSVC frames than the reader looks at (the rest pass through unread).
    Flood { frame_type: u8 },
}

/// What the server sent on one connection besides answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerSignals {
    /// None: no ORIGIN frame was received (the connection's origin set is unrestricted).
    pub origin: Option<OriginSet>,
    /// Alternatives from Alt-Svc headers and ALTSVC frames for this connection's origin,
    /// without duplicates, at most `MAX_ALT_SVC`.
    pub alt_svc: Vec<AltService>,
    /// An `Alt-Svc: clear` was received.
    pub alt_svc_clear: bool,
    /// At most `MAX_ANOMALIES`; `anomalies_dropped` counts the rest.
    pub anomalies: Vec<FrameAnomaly>,
    pub anomalies_dropped: usize,
}

impl ServerSignals {
    /// Keep `alt` unless already known or over the bound.
    pub fn add_alt_svc(&mut self, alt: AltService) {
        if !self.alt_svc.contains(&alt) && self.alt_svc.len() < MAX_ALT_SVC {
            self.alt_svc.push(alt);
        }
    }

    pub fn add_anomaly(&mut self, anomaly: FrameAnomaly) {
        if self.anomalies.contains(&anomaly) {
            return;
        }
        if self.anomalies.len() < MAX_ANOMALIES {
            self.anomalies.push(anomaly);
        } else {
            self.anomalies_dropped += 1;
        }
    }

    /// Some alternative offers HTTP/3 (`h3`, or a draft version `h3-NN`).
    pub fn offers_h3(&self) -> bool {
        self.alt_svc
            .iter()
            .any(|a| a.protocol == "h3" || a.protocol.starts_with("h3-"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_set_lists_the_default_port_without_it() {
        let set = OriginSet {
            origins: vec!["https://b.example".into(), "https://c.example:8443".into()],
            frames: 1,
            ..OriginSet::default()
        };
        assert!(set.lists("b.example", 443));
        assert!(set.lists("B.Example", 443));
        assert!(!set.lists("b.example", 8443));
        assert!(set.lists("c.example", 8443));
        assert!(!set.lists("c.example", 443));
    }

    #[test]
    fn an_ipv6_literal_is_written_in_brackets() {
        assert_eq!(origin_of("2001:db8::1", 443), "https://[2001:db8::1]");
        assert_eq!(origin_of("[2001:DB8::1]", 8443), "https://[2001:db8::1]:8443");
        let set = OriginSet {
            origins: vec!["https://[2001:db8::1]".into()],
            ..OriginSet::default()
        };
        assert!(set.lists("2001:db8::1", 443));
    }

    #[test]
    fn a_name_missing_from_a_cut_short_set_is_unknown() {
        let set = |dropped| OriginSet {
            origins: vec!["https://a.example".into()],
            frames: 1,
            dropped,
            ..OriginSet::default()
        };
        let signals = |dropped, anomalies: Vec<FrameAnomaly>| ServerSignals {
            origin: Some(set(dropped)),
            anomalies,
            ..ServerSignals::default()
        };
        assert_eq!(signals(0, vec![]).origin_lists("a.example", 443), Some(true));
        assert_eq!(signals(0, vec![]).origin_lists("b.example", 443), Some(false));
        assert_eq!(signals(3, vec![]).origin_lists("b.example", 443), None);
        let flood = FrameAnomaly::Flood { frame_type: 0x0c };
        assert_eq!(signals(0, vec![flood]).origin_lists("b.example", 443), None);
        // An odd ALTSVC frame says nothing about the ORIGIN set.
        let altsvc = FrameAnomaly::Malformed { frame_type: 0x0a };
        assert_eq!(
            signals(0, vec![altsvc]).origin_lists("b.example", 443),
            Some(false)
        );
        assert_eq!(ServerSignals::default().origin_lists("a.example", 443), None);
    }
}
