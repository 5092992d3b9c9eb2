//! The network side: resolving, TLS with chain capture, HTTP/2 and direct requests,
//! certificates, probe errors and the rate limiter. Each step has its own timeout and every
//! buffer its bound. `engine::prober` puts them together into one job.

pub mod altsvc;
pub mod cert;
pub mod direct;
pub mod dns;
pub mod error;
pub mod frames;
pub mod h2;
pub mod h3;
pub mod h3_control;
pub mod page;
pub mod rate;
pub mod signals;
pub mod tls;
