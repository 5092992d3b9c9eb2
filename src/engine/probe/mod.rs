//! The network side: resolving, TLS with chain capture, HTTP/2 and direct requests,
//! certificates, probe errors, the rate limiter, and the prober that runs one job.

pub mod cert;
pub mod direct;
pub mod dns;
pub mod error;
pub mod h2;
pub mod prober;
pub mod rate;
pub mod tls;
