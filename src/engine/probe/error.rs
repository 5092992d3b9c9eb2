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
            ProbeError::Reset { .. } | ProbeError::GoAway { .. } | ProbeError::Http(_) => Phase::Request,
        }
    }

    /// What went wrong, without the phase: "connection refused", "stream reset: CANCEL"…
    pub fn detail(&self) -> String {
        match self {
            ProbeError::Connect(t) | ProbeError::Tls(t) | ProbeError::Http(t) => t.clone(),
            ProbeError::Reset { reason, by_client } => reset_detail(*reason, *by_client),
            ProbeError::GoAway { reason, by_client } => goaway_detail(*reason, *by_client),
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
}
