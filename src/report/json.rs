//! The contract's JSON (`coalscope/1`). JSON keeps the exact strings from the network;
//! serde escapes them.

use crate::engine::snapshot::Snapshot;

pub fn to_json(snapshot: &Snapshot) -> String {
    // Serialising plain structs of strings and numbers cannot fail.
    serde_json::to_string_pretty(snapshot).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
