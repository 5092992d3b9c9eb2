//! Test support, compiled only for the tests and benches (`cfg(test)`, or the dev-only
//! `test-support` feature the crate's own dev-dependency turns on): never in a release build.
//!
//! - `ct`: a fake Certificate Transparency API in crt.sh's format (fixtures, retries, bounds);
//! - `h3`: an HTTP/3 server (quinn + h3) on loopback that answers by rule from (SNI, `:authority`);
//! - `net`: a test PKI (the lab's CA builder, `lab::ca`), loopback TLS/HTTP servers that answer
//!   by rule, raw misbehaving servers and a scriptable DNS server;
//! - `lab`: the embedded lab as a fixture: a prober pointed at its DNS server and CA;
//! - `synth`: a synthetic, deterministic workload for the live store (the scale lab's shape);
//! - `views`: dashboard views made by the real engine (the embedded lab probed and published
//!   by the live store; `synth` published by it), for the dashboard tests and the render bench.

// Test support: a failed expectation here is a failed test, said where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod ct;
pub mod h3;
pub mod lab;
pub mod net;
pub mod synth;
pub mod vantages;
pub mod views;
