//! The modes, each a method of `Bench`: `serve` (then the floor), `watch`, `memory`.

mod floor;
mod memory;
mod serve;
mod watch;
