//! The probe engine. Nothing in here knows about terminals or HTTP servers.
//!
//! Layers, each importing only those above it:
//! - `snapshot`: the contract types (reports, findings, live views): the leaf;
//! - `probe`: the network side (dns, tls, h2, direct, cert, errors, the rate limiter);
//! - `record`: what probes produce (jobs, results, host and endpoint records);
//! - `prober`: the one type that runs a probe job, from `probe` parts into a `record`;
//! - `judge`: pure functions from records to a snapshot (client policies, verdicts,
//!   explanations);
//! - `live` (planner, scheduler, store) and `oneshot` (`check`): the engines that drive the
//!   prober and the judgement.

pub mod judge;
pub mod live;
pub mod oneshot;
pub mod probe;
pub mod prober;
pub mod record;
pub mod snapshot;
