//! coalscope: find the hostname pairs that browsers put on one HTTP/2 connection
//! ("coalescing"), and prove with real requests which of them the servers answer with
//! 421 Misdirected Request, with the wrong site, or only sometimes.
//!
//! The engine (`engine`) has no terminal dependency; `report` turns its results into the
//! table and the JSON of the contract; `lab` is the embedded loopback lab.

pub mod cli;
pub mod commands;
pub mod discover;
pub mod engine;
pub mod lab;
pub mod remote;
pub mod report;
pub mod sanitize;
pub mod serve;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod tui;
pub mod watchlist;
