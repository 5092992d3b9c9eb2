//! Errors of one probe operation. They stay typed through the records and the judgement
//! (which tells a stream reset from a timeout by its type, not by its text); their `Display`
//! is short and names the phase, and is made once, where a report is written.

use std::fmt;
use std::time::Duration;

/// The phase of a probe in which something went wrong or took too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Dns,
    Connect,
    Tls,
    Request,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Dns => "dns",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::Request => "request",
        }
    }
}

/// An HTTP/2 error code (RFC 9113 §7), e.g. in a RST_STREAM or GOAWAY frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct H2Reason(pub u32);

impl H2Reason {
    pub const REFUSED_STREAM: H2Reason = H2Reason(0x7);
    pub const ENHANCE_YOUR_CALM: H2Reason = H2Reason(0xb);
    pub const HTTP_1_1_REQUIRED: H2Reason = H2Reason(0xd);

    /// The codes' names, indexed by code.
    pub const NAMES: [&'static str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];

    /// The code of a name in `NAMES`.
    pub fn from_name(name: &str) -> Option<H2Reason> {
        H2Reason::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| H2Reason(i as u32))
    }
}

impl fmt::Display for H2Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match H2Reason::NAMES.get(self.0 as usize) {
            Some(name) => f.write_str(name),
            None => write!(f, "0x{:x}", self.0),
        }
    }
}

/// An HTTP/3 error code (RFC 9114 §8.1, RFC 9204 §6), e.g. in a stream reset or a
/// CONNECTION_CLOSE of the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct H3Code(pub u64);

impl H3Code {
    pub const NO_ERROR: H3Code = H3Code(0x100);
    pub const REQUEST_REJECTED: H3Code = H3Code(0x10b);
    pub const REQUEST_CANCELLED: H3Code = H3Code(0x10c);
    /// The HTTP/3 twin of HTTP/2's HTTP_1_1_REQUIRED: retry over HTTP/1.1 or HTTP/2.
    pub const VERSION_FALLBACK: H3Code = H3Code(0x110);

    /// The names of 0x100..=0x110 (RFC 9114 §8.1), indexed by code - 0x100.
    const NAMES: [&'static str; 17] = [
        "H3_NO_ERROR",
        "H3_GENERAL_PROTOCOL_ERROR",
        "H3_INTERNAL_ERROR",
        "H3_STREAM_CREATION_ERROR",
        "H3_CLOSED_CRITICAL_STREAM",
        "H3_FRAME_UNEXPECTED",
        "H3_FRAME_ERROR",
        "H3_EXCESSIVE_LOAD",
        "H3_ID_ERROR",
        "H3_SETTINGS_ERROR",
        "H3_MISSING_SETTINGS",
        "H3_REQUEST_REJECTED",
        "H3_REQUEST_CANCELLED",
        "H3_REQUEST_INCOMPLETE",
        "H3_MESSAGE_ERROR",
        "H3_CONNECT_ERROR",
        "H3_VERSION_FALLBACK",
    ];
    /// 0x200..=0x202 (RFC 9204 §6).
    const QPACK_NAMES: [&'static str; 3] = [
        "QPACK_DECOMPRESSION_FAILED",
        "QPACK_ENCODER_STREAM_ERROR",
        "QPACK_DECODER_STREAM_ERROR",
    ];
}

impl fmt::Display for H3Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            c @ 0x100..=0x110 => H3Code::NAMES.get((c - 0x100) as usize),
            c @ 0x200..=0x202 => H3Code::QPACK_NAMES.get((c - 0x200) as usize),
            _ => None,
        };
        match name {
            Some(name) => f.write_str(name),
            None => write!(f, "0x{:x}", self.0),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ProbeError {
    /// The phase did not finish within the configured timeout.
    #[error("{} timed out after {}", .phase.as_str(), humantime::format_duration(*.after))]
    Timeout { phase: Phase, after: Duration },
    /// TCP connect failed (refused, unreachable, ...).
    #[error("connect: {0}")]
    Connect(String),
    /// The TLS handshake failed (alert, garbage, closed, ...).
    #[error("tls: {0}")]
    Tls(String),
    /// The request's HTTP/2 stream was reset, by the server or (`by_client`) by our side
    /// (an oversized or malformed response).
    #[error("http: {}", reset_detail(*.reason, *.by_client))]
    Reset { reason: H2Reason, by_client: bool },
    /// The connection was closed with a GOAWAY frame, by the server or (`by_client`) by our
    /// side.
    #[error("http: {}", goaway_detail(*.reason, *.by_client))]
    GoAway { reason: H2Reason, by_client: bool },
    /// The request's HTTP/3 stream was reset (or its reading stopped), by the server or
    /// (`by_client`) by our side.
    #[error("http: {}", h3_reset_detail(*.code, *.by_client))]
    H3Reset { code: H3Code, by_client: bool },
    /// The HTTP/3 connection was closed with an application error code, by the server or
    /// (`by_client`) by our side.
    #[error("http: {}", h3_close_detail(*.code, *.by_client))]
    H3Closed { code: H3Code, by_client: bool },
    /// The HTTP/3 server sent GOAWAY before the request was sent: it was not (RFC 9114 §5.2:
    /// a fresh connection may carry it).
    #[error("http: connection closing (GOAWAY)")]
    H3GoAway,
    /// The HTTP exchange failed otherwise (protocol error, GOAWAY, closed, oversized headers, ...).
    #[error("http: {0}")]
    Http(String),
}

/// `step`, bounded by `after`: its output, or a `Timeout` of `phase`. Every network step of a
/// probe goes through here.
pub async fn within<T>(
    phase: Phase,
    after: Duration,
    step: impl std::future::Future<Output = T>,
) -> Result<T, ProbeError> {
    tokio::time::timeout(after, step)
        .await
        .map_err(|_| ProbeError::Timeout { phase, after })
}

impl ProbeError {
    pub fn phase(&self) -> Phase {
        match self {
            ProbeError::Timeout { phase, .. } => *phase,
            ProbeError::Connect(_) => Phase::Connect,
            ProbeError::Tls(_) => Phase::Tls,
            ProbeError::Reset { .. }
            | ProbeError::GoAway { .. }
            | ProbeError::H3Reset { .. }
            | ProbeError::H3Closed { .. }
            | ProbeError::H3GoAway
            | ProbeError::Http(_) => Phase::Request,
        }
    }

    /// What went wrong, without the phase: "connection refused", "stream reset: CANCEL"…
    pub fn detail(&self) -> String {
        match self {
            ProbeError::Connect(t) | ProbeError::Tls(t) | ProbeError::Http(t) => t.clone(),
            ProbeError::Reset { reason, by_client } => reset_detail(*reason, *by_client),
            ProbeError::GoAway { reason, by_client } => goaway_detail(*reason, *by_client),
            ProbeError::H3Reset { code, by_client } => h3_reset_detail(*code, *by_client),
            ProbeError::H3Closed { code, by_client } => h3_close_detail(*code, *by_client),
            ProbeError::H3GoAway => "connection closing (GOAWAY)".into(),
            ProbeError::Timeout { .. } => self.to_string(),
        }
    }
}

/// "stream reset: REFUSED_STREAM", "stream reset by client: PROTOCOL_ERROR".
fn reset_detail(reason: H2Reason, by_client: bool) -> String {
    let by = if by_client { " by client" } else { "" };
    format!("stream reset{by}: {reason}")
}

/// "connection closed (GOAWAY)", "connection closed by client (GOAWAY PROTOCOL_ERROR)".
fn goaway_detail(reason: H2Reason, by_client: bool) -> String {
    let by = if by_client { " by client" } else { "" };
    match reason {
        H2Reason(0) => format!("connection closed{by} (GOAWAY)"),
        reason => format!("connection closed{by} (GOAWAY {reason})"),
    }
}

/// "stream reset: H3_REQUEST_REJECTED", "stream reset by client: H3_REQUEST_CANCELLED".
fn h3_reset_detail(code: H3Code, by_client: bool) -> String {
    let by = if by_client { " by client" } else { "" };
    format!("stream reset{by}: {code}")
}

/// "connection closed (H3_NO_ERROR)", "connection closed by client (H3_FRAME_ERROR)".
fn h3_close_detail(code: H3Code, by_client: bool) -> String {
    let by = if by_client { " by client" } else { "" };
    format!("connection closed{by} ({code})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_name_the_phase_and_the_code() {
        let reset = ProbeError::Reset {
            reason: H2Reason::REFUSED_STREAM,
            by_client: false,
        };
        assert_eq!(reset.to_string(), "http: stream reset: REFUSED_STREAM");
        assert_eq!(reset.detail(), "stream reset: REFUSED_STREAM");
        let ours = ProbeError::Reset {
            reason: H2Reason(1),
            by_client: true,
        };
        assert_eq!(ours.to_string(), "http: stream reset by client: PROTOCOL_ERROR");
        let goaway = |code| ProbeError::GoAway {
            reason: H2Reason(code),
            by_client: false,
        };
        assert_eq!(goaway(0).to_string(), "http: connection closed (GOAWAY)");
        assert_eq!(
            goaway(0xd).to_string(),
            "http: connection closed (GOAWAY HTTP_1_1_REQUIRED)"
        );
        assert_eq!(H2Reason(0x42).to_string(), "0x42");
        assert_eq!(
            H2Reason::from_name("HTTP_1_1_REQUIRED"),
            Some(H2Reason::HTTP_1_1_REQUIRED)
        );
        let timeout = ProbeError::Timeout {
            phase: Phase::Tls,
            after: Duration::from_millis(1500),
        };
        assert_eq!(timeout.to_string(), "tls timed out after 1s 500ms");
        assert_eq!(timeout.phase(), Phase::Tls);
        assert_eq!(
            ProbeError::Connect("connection refused".into()).detail(),
            "connection refused"
        );
    }

    #[test]
    fn http3_codes_have_their_rfc_names() {
        let reset = ProbeError::H3Reset {
            code: H3Code::REQUEST_REJECTED,
            by_client: false,
        };
        assert_eq!(reset.to_string(), "http: stream reset: H3_REQUEST_REJECTED");
        assert_eq!(reset.phase(), Phase::Request);
        let closed = ProbeError::H3Closed {
            code: H3Code(0x106),
            by_client: true,
        };
        assert_eq!(closed.detail(), "connection closed by client (H3_FRAME_ERROR)");
        assert_eq!(H3Code::VERSION_FALLBACK.to_string(), "H3_VERSION_FALLBACK");
        assert_eq!(H3Code(0x202).to_string(), "QPACK_DECODER_STREAM_ERROR");
        assert_eq!(H3Code(0x21).to_string(), "0x21");
        assert_eq!(H3Code(0x111).to_string(), "0x111");
    }
}
