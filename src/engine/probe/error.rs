//! Errors of one probe operation. Their `Display` is short and names the phase, because it
//! ends up in the JSON `error` fields and in the table.

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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    /// The HTTP exchange failed (protocol error, reset, GOAWAY, closed, oversized headers, ...).
    #[error("http: {0}")]
    Http(String),
}

impl ProbeError {
    pub fn phase(&self) -> Phase {
        match self {
            ProbeError::Timeout { phase, .. } => *phase,
            ProbeError::Connect(_) => Phase::Connect,
            ProbeError::Tls(_) => Phase::Tls,
            ProbeError::Http(_) => Phase::Request,
        }
    }
}
