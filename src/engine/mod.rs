//! The probe engine: DNS, TLS, HTTP/2, certificate coverage, client policies, verdicts.
//! Nothing in here knows about terminals.

pub mod cert;
pub mod check;
pub mod direct;
pub mod dns;
pub mod error;
pub mod h2;
pub mod policy;
pub mod tls;
pub mod verdict;

#[cfg(test)]
pub(crate) mod testsupport;
