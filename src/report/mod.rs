//! Reports: the JSON of the contract and the human table.
