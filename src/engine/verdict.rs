//! Verdicts per address and per pair.
