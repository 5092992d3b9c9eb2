//! The judgement: pure functions from records to the contract's report — client policies,
//! verdicts, the analysis of a whole run, explanations and fixes. No I/O, no clocks but the
//! ones passed in.

pub mod analysis;
mod backends;
pub mod confidence;
pub mod content;
pub mod explain;
mod format;
mod groups;
mod hosts;
pub mod impact;
mod oddities;
mod pairs;
pub mod policy;
mod protocols;
mod signals;
pub mod verdict;
