//! Waiting on the live engine's views (in-process engine tests).

use std::sync::Arc;
use std::time::Duration;

use coalscope::engine::snapshot::LiveView;
use tokio::sync::watch;

/// Wait (bounded, 90 s) for a view that satisfies `ok`; on timeout, fail naming `what` with
/// the last view's status, summary, hosts and events.
pub async fn wait_for(
    rx: &mut watch::Receiver<Arc<LiveView>>,
    what: &str,
    mut ok: impl FnMut(&LiveView) -> bool,
) -> Arc<LiveView> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let view = rx.borrow_and_update().clone();
        if ok(&view) {
            return view;
        }
        if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
            panic!(
                "timed out waiting for {what}; status: {:#?}\nsummary: {:#?}\nhosts: {:#?}\nevents: {:#?}",
                view.status, view.report.summary, view.report.hosts, view.events
            );
        }
    }
}
