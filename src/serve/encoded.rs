//! The answers of `/metrics`, `/api/snapshot` and `/api/events`, encoded once per view and
//! shared: the exposition changes only when the exporter folds a view in, the JSON only when
//! the engine publishes one (every 5 s under `serve`, and at each cycle's end), while
//! scrapers may ask many times a second. An encoding runs on the blocking pool (off the async
//! threads that run the engine and the connections), one at a time per answer: scrapers
//! asking meanwhile wait for it (without holding a thread) and share its bytes. What is kept
//! is one encoding per answer, and its gzip form once a client asked for it (Prometheus
//! does: a tenth of the bytes to send).

use std::io::Write;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use tokio::sync::Mutex;

use crate::engine::snapshot::LiveView;
use crate::serve::metrics::{Exporter, Format};

/// How an answer's bytes are sent (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
}

/// One answer as made from one key: its bytes, and their gzip form once asked for.
struct Made<K> {
    key: K,
    identity: Bytes,
    gzip: Option<Bytes>,
}

/// One answer's latest encoding and what it was made from.
struct Slot<K> {
    latest: Mutex<Option<Made<K>>>,
}

impl<K: PartialEq + Clone> Slot<K> {
    fn new() -> Slot<K> {
        Slot {
            latest: Mutex::new(None),
        }
    }

    /// The encoding for `key` in `coding`: the kept one when current, else made by `encode`
    /// (and compressed) on the blocking pool (single flight: the lock is held while it runs).
    async fn get(&self, key: K, coding: Coding, encode: impl FnOnce() -> String + Send + 'static) -> Bytes {
        let mut latest = self.latest.lock().await;
        let made = match latest.take() {
            Some(made) if made.key == key => made,
            _ => {
                let identity = match tokio::task::spawn_blocking(encode).await {
                    Ok(text) => Bytes::from(text),
                    Err(e) => {
                        tracing::error!("encoding an answer failed: {e}");
                        return Bytes::from_static(b"");
                    }
                };
                Made {
                    key,
                    identity,
                    gzip: None,
                }
            }
        };
        let made = latest.insert(made);
        if coding == Coding::Identity {
            return made.identity.clone();
        }
        if made.gzip.is_none() {
            let identity = made.identity.clone();
            match tokio::task::spawn_blocking(move || gzip(&identity)).await {
                Ok(bytes) => made.gzip = Some(Bytes::from(bytes)),
                Err(e) => tracing::error!("compressing an answer failed: {e}"),
            }
        }
        made.gzip.clone().unwrap_or_default()
    }
}

/// `bytes` gzipped, at the fastest level: made once per view, it still outweighs what it
/// saves only for tiny answers, which do not come here.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut z = GzEncoder::new(Vec::with_capacity(bytes.len() / 8), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = z.write_all(bytes);
    z.finish().unwrap_or_default()
}

/// The view a JSON encoding was made from, compared by identity and not kept alive: a slot
/// keeps its key until another view is asked for, which for `/api/events` may be hours (the
/// fault soak's scrapers ask for it after a fault), and a kept view keeps every report and
/// host record it shares with no later view (a whole view's worth once they have all
/// changed: +35 MiB at 1,000 names in `soak_faults`, measured with heaptrack).
#[derive(Clone)]
struct ViewKey(Weak<LiveView>);

impl ViewKey {
    fn of(view: &Arc<LiveView>) -> ViewKey {
        ViewKey(Arc::downgrade(view))
    }
}

impl PartialEq for ViewKey {
    /// The same view: while a key exists its view's allocation does too (a `Weak` keeps it),
    /// so no later view can take its address.
    fn eq(&self, other: &ViewKey) -> bool {
        Weak::ptr_eq(&self.0, &other.0)
    }
}

/// The shared encodings of one exporter.
pub struct Encoded {
    prometheus: Slot<u64>,
    openmetrics: Slot<u64>,
    snapshot: Slot<ViewKey>,
    events: Slot<ViewKey>,
}

impl Default for Encoded {
    fn default() -> Encoded {
        Encoded {
            prometheus: Slot::new(),
            openmetrics: Slot::new(),
            snapshot: Slot::new(),
            events: Slot::new(),
        }
    }
}

impl Encoded {
    /// The exposition in `format`, current for the views folded in so far.
    pub async fn metrics(&self, exporter: &Exporter, format: Format, coding: Coding) -> Bytes {
        let slot = match format {
            Format::Prometheus => &self.prometheus,
            Format::OpenMetrics => &self.openmetrics,
        };
        let exporter = exporter.clone();
        slot.get(exporter.updates(), coding, move || exporter.encode(format))
            .await
    }

    /// The contract JSON of `view` (with the exporter's vantage).
    pub async fn snapshot(&self, exporter: &Exporter, view: Arc<LiveView>, coding: Coding) -> Bytes {
        let vantage = exporter.vantage().map(str::to_string);
        let key = ViewKey::of(&view);
        self.snapshot
            .get(key, coding, move || {
                crate::report::json::vantage_view_to_json(&view, vantage.as_deref())
            })
            .await
    }

    /// `/api/events` of `view` (at most `MAX_EVENTS` rows: never worth compressing).
    pub async fn events(&self, view: Arc<LiveView>) -> Bytes {
        let key = ViewKey::of(&view);
        self.events
            .get(key, Coding::Identity, move || {
                crate::report::json::events_to_json(&view.events)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    fn exporter() -> Exporter {
        Exporter::new(crate::serve::metrics::ExporterOptions {
            vantage: None,
            max_pairs: 10,
            window: Duration::from_secs(60),
        })
    }

    #[tokio::test]
    async fn one_encoding_per_key_shared_by_every_reader() {
        let slot = Arc::new(Slot::<u64>::new());
        let made = Arc::new(AtomicUsize::new(0));
        let mut readers = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (slot, made) = (slot.clone(), made.clone());
            readers.spawn(async move {
                slot.get(1, Coding::Identity, move || {
                    made.fetch_add(1, Ordering::SeqCst);
                    "one".to_string()
                })
                .await
            });
        }
        while let Some(r) = readers.join_next().await {
            assert_eq!(r.unwrap(), Bytes::from_static(b"one"));
        }
        assert_eq!(made.load(Ordering::SeqCst), 1, "twenty readers, one encoding");
        let again = slot.get(2, Coding::Identity, || "two".to_string()).await;
        assert_eq!(again, Bytes::from_static(b"two"), "a new key encodes again");
    }

    #[tokio::test]
    async fn the_exposition_follows_the_views_folded_in() {
        let exporter = exporter();
        let encoded = Encoded::default();
        let before = encoded
            .metrics(&exporter, Format::Prometheus, Coding::Identity)
            .await;
        assert_eq!(
            before,
            encoded
                .metrics(&exporter, Format::Prometheus, Coding::Identity)
                .await
        );
        let mut view = LiveView::default();
        view.status.cycles = 7;
        exporter.update(Arc::new(view), Instant::now());
        let after = encoded
            .metrics(&exporter, Format::Prometheus, Coding::Identity)
            .await;
        let text = String::from_utf8_lossy(&after);
        assert!(
            text.contains("coalscope_engine_cycles_total 7"),
            "a folded-in view shows: {text}"
        );
        let om = encoded
            .metrics(&exporter, Format::OpenMetrics, Coding::Identity)
            .await;
        assert!(String::from_utf8_lossy(&om).ends_with("# EOF\n"));
    }

    #[tokio::test]
    async fn the_json_is_made_again_for_a_new_view_only() {
        let exporter = exporter();
        let encoded = Encoded::default();
        let first = Arc::new(LiveView::default());
        let a = encoded.snapshot(&exporter, first.clone(), Coding::Identity).await;
        let b = encoded.snapshot(&exporter, first.clone(), Coding::Identity).await;
        assert_eq!(a.as_ptr(), b.as_ptr(), "the same view shares its bytes");
        let mut second = LiveView::default();
        second.status.cycles = 3;
        let c = encoded
            .snapshot(&exporter, Arc::new(second), Coding::Identity)
            .await;
        assert_ne!(a.as_ptr(), c.as_ptr(), "a new view is encoded anew");
    }

    /// A slot keeps its key until another view is asked for, which may be hours: the key
    /// must not keep the view (and every report it holds) alive, and a view made later must
    /// still be told apart from it.
    #[tokio::test]
    async fn an_encoded_view_is_not_kept_alive_by_its_slot() {
        let exporter = exporter();
        let encoded = Encoded::default();
        let view = Arc::new(LiveView::default());
        let watched = Arc::downgrade(&view);
        let snapshot = encoded.snapshot(&exporter, view.clone(), Coding::Identity).await;
        let events = encoded.events(view.clone()).await;
        drop(view);
        assert!(
            watched.upgrade().is_none(),
            "the snapshot and events slots keep the view they encoded alive"
        );
        let mut later = LiveView::default();
        later.status.cycles = 9;
        let later = Arc::new(later);
        let again = encoded.snapshot(&exporter, later.clone(), Coding::Identity).await;
        assert_ne!(snapshot.as_ptr(), again.as_ptr(), "a later view is encoded anew");
        let same = encoded.snapshot(&exporter, later.clone(), Coding::Identity).await;
        assert_eq!(
            again.as_ptr(),
            same.as_ptr(),
            "the same view still shares its bytes"
        );
        assert_eq!(events, encoded.events(later).await, "no events either way");
    }

    fn gunzip(bytes: &[u8]) -> String {
        use std::io::Read;
        let mut text = String::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[tokio::test]
    async fn the_gzip_form_is_made_once_per_key_and_shared() {
        let slot = Arc::new(Slot::<u64>::new());
        let made = Arc::new(AtomicUsize::new(0));
        let text = "coalscope_pair_verdict{origin=\"a\"} 1\n".repeat(1000);
        let mut readers = tokio::task::JoinSet::new();
        for i in 0..20 {
            let (slot, made, text) = (slot.clone(), made.clone(), text.clone());
            let coding = if i % 2 == 0 {
                Coding::Gzip
            } else {
                Coding::Identity
            };
            readers.spawn(async move {
                let bytes = slot
                    .get(1, coding, move || {
                        made.fetch_add(1, Ordering::SeqCst);
                        text
                    })
                    .await;
                (coding, bytes)
            });
        }
        let mut gzipped = Vec::new();
        while let Some(r) = readers.join_next().await {
            let (coding, bytes) = r.unwrap();
            match coding {
                Coding::Identity => assert_eq!(bytes, Bytes::from(text.clone())),
                Coding::Gzip => {
                    assert!(bytes.len() < text.len() / 10, "{} of {}", bytes.len(), text.len());
                    assert_eq!(gunzip(&bytes), text);
                    gzipped.push(bytes);
                }
            }
        }
        assert_eq!(made.load(Ordering::SeqCst), 1, "one encoding for both codings");
        assert!(
            gzipped.iter().all(|b| b.as_ptr() == gzipped[0].as_ptr()),
            "one compression shared"
        );
        let next = slot.get(2, Coding::Gzip, || "two".to_string()).await;
        assert_eq!(gunzip(&next), "two", "a new key is compressed anew");
    }
}
