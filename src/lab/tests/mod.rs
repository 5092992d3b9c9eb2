//! Lab tests on loopback: a tiny TLS + HTTP client and DNS client, and checks of the
//! behaviours the end-to-end tests rely on. Every test owns its lab; `Lab`'s `Drop` stops
//! it even when an assertion fails.

mod client;
mod dns;
mod faults;
mod servers;
mod table;
