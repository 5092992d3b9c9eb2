//! Reports of a snapshot: the JSON of the contract and the human table.

pub mod json;
pub mod table;
