//! The probe engine: DNS, TLS, HTTP/2, certificate coverage, client policies, verdicts.
//! Nothing in here knows about terminals.

pub mod analysis;
pub mod cert;
pub mod check;
pub mod direct;
pub mod dns;
pub mod error;
pub mod explain;
pub mod h2;
pub mod planner;
pub mod policy;
pub mod rate;
pub mod scheduler;
pub mod snapshot;
pub mod store;
pub mod tls;
pub mod verdict;

#[cfg(test)]
pub(crate) mod testsupport;
