//! The summary table: one row per mode.

use crate::procfs::mb;

/// One row of the summary table.
#[derive(Default)]
pub(crate) struct Row {
    pub(crate) mode: String,
    pub(crate) names: usize,
    pub(crate) cpu_s: Option<f64>,
    pub(crate) pct: Option<f64>,
    pub(crate) rss_kib: Option<u64>,
    pub(crate) hwm_kib: Option<u64>,
    pub(crate) conn_s: Option<f64>,
    pub(crate) req_s: Option<f64>,
    pub(crate) coverage: Option<f64>,
    pub(crate) full_rps: Option<f64>,
    pub(crate) note: String,
}

pub(crate) fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map(|x| format!("{x:.decimals$}")).unwrap_or_else(|| "-".into())
}

pub(crate) fn print_table(rows: &[Row]) {
    println!("\nidle: summary");
    println!(
        "{:<8} {:>6} {:>8} {:>7} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9}  note",
        "mode", "names", "cpu_s", "%core", "rss_MB", "hwm_MB", "conn/s", "req/s", "coverage", "full_rps"
    );
    for r in rows {
        println!(
            "{:<8} {:>6} {:>8} {:>7} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9}  {}",
            r.mode,
            r.names,
            opt(r.cpu_s, 2),
            opt(r.pct, 2),
            opt(r.rss_kib.map(mb), 1),
            opt(r.hwm_kib.map(mb), 1),
            opt(r.conn_s, 2),
            opt(r.req_s, 1),
            opt(r.coverage, 3),
            opt(r.full_rps, 1),
            r.note
        );
    }
}
