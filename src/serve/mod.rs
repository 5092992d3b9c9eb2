//! The exporter behind `coalscope serve`: Prometheus metrics folded in from the engine's views
//! (`metrics`), the counters' reconciler that keeps them monotonic (`reconcile`), and the HTTP
//! server of `/metrics`, `/api/snapshot`, `/api/status` and `/healthz` (`http`), the cap on its connections and which to close when it is full (`conns`), the answers encoded once per view (`encoded`), and who
//! may read it: the web-config file (`webconfig`: TLS, client certificates, headers, rate limit)
//! and its basic-auth users (`auth`). The command itself, which starts the engine and this, is
//! `commands::serve`.

pub mod auth;
pub mod conns;
pub mod encoded;
pub mod http;
pub mod metrics;
pub mod reconcile;
pub mod webconfig;
