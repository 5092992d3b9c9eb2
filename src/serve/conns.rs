//! The exporter's global connection cap and its policy: at most `cap` connections are open;
//! when one more arrives and the cap is full, the connection idle longest makes room (closed
//! at once), so that thousands of idle or slow connections from many addresses cannot keep a
//! scraper out. A connection is idle while no request of it is being answered; its idleness
//! counts from its last byte read or written (so a scraper downloading a large answer is not
//! idle, a client that stopped reading is). Only when every open connection has a request in
//! hand does a new one wait (the accept loop stops accepting until one ends or goes idle).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// What the exporter's metrics say of its connections (`coalscope_serve_connections`,
/// `coalscope_serve_connections_closed_for_room_total`).
#[derive(Debug, Default)]
pub struct ConnStats {
    open: AtomicU64,
    closed_for_room: AtomicU64,
}

impl ConnStats {
    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Idle connections closed so far to admit a new one.
    pub fn closed_for_room(&self) -> u64 {
        self.closed_for_room.load(Ordering::Relaxed)
    }
}

/// The open connections, under one cap.
pub struct Connections {
    cap: usize,
    stats: Arc<ConnStats>,
    epoch: Instant,
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
    next_id: AtomicU64,
    /// Told when a connection ends or a request of one is answered.
    freed: Notify,
}

/// What the cap knows of one connection.
pub struct ConnState {
    /// Milliseconds since the registry's epoch of the last byte read or written.
    last_active_ms: AtomicU64,
    /// Requests being answered (taken with `busy`).
    in_flight: AtomicUsize,
    /// Told when the connection must close to make room.
    evict: Notify,
}

/// One admitted connection: counted until dropped.
pub struct Admitted {
    conns: Arc<Connections>,
    id: u64,
    state: Arc<ConnState>,
}

impl Connections {
    /// A registry of at most `cap` connections (at least 1), counted in `stats`.
    pub fn new(cap: usize, stats: Arc<ConnStats>) -> Arc<Connections> {
        Arc::new(Connections {
            cap: cap.max(1),
            stats,
            epoch: Instant::now(),
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            freed: Notify::new(),
        })
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.open.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// True when none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Admit a new connection: at once while below the cap; else after closing the connection
    /// idle longest; else (every one busy) when one ends or goes idle.
    pub async fn admit(self: &Arc<Self>) -> Admitted {
        loop {
            let freed = self.freed.notified();
            if let Some(admitted) = self.try_admit() {
                return admitted;
            }
            freed.await;
        }
    }

    fn try_admit(self: &Arc<Self>) -> Option<Admitted> {
        let mut open = self.open.lock().ok()?;
        if open.len() >= self.cap {
            let idlest = open
                .iter()
                .filter(|(_, s)| s.in_flight.load(Ordering::Acquire) == 0)
                .min_by_key(|(id, s)| (s.last_active_ms.load(Ordering::Relaxed), **id))
                .map(|(id, _)| *id)?;
            if let Some(state) = open.remove(&idlest) {
                state.evict.notify_one();
                self.stats.closed_for_room.fetch_add(1, Ordering::Relaxed);
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState {
            last_active_ms: AtomicU64::new(self.now_ms()),
            in_flight: AtomicUsize::new(0),
            evict: Notify::new(),
        });
        open.insert(id, state.clone());
        self.stats.open.store(open.len() as u64, Ordering::Relaxed);
        Some(Admitted {
            conns: self.clone(),
            id,
            state,
        })
    }
}

impl Admitted {
    /// Resolves when the connection must close to make room for a new one.
    pub async fn evicted(&self) {
        self.state.evict.notified().await;
    }

    /// `io` wrapped so that each byte read or written counts as activity.
    pub fn track<S>(&self, io: S) -> Tracked<S> {
        Tracked {
            io,
            conns: self.conns.clone(),
            state: self.state.clone(),
        }
    }

    /// What the connection's request service marks its requests busy with.
    pub fn handle(&self) -> BusyHandle {
        BusyHandle {
            conns: self.conns.clone(),
            state: self.state.clone(),
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut open) = self.conns.open.lock() {
            open.remove(&self.id);
            self.conns.stats.open.store(open.len() as u64, Ordering::Relaxed);
        }
        self.conns.freed.notify_one();
    }
}

/// What a connection's request service holds to mark its requests busy.
#[derive(Clone)]
pub struct BusyHandle {
    conns: Arc<Connections>,
    state: Arc<ConnState>,
}

impl BusyHandle {
    /// A request is being answered until the guard drops.
    pub fn busy(&self) -> Busy {
        self.state.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy {
            conns: self.conns.clone(),
            state: self.state.clone(),
        }
    }
}

/// A request in hand; the connection is idle again (from now) when it drops.
pub struct Busy {
    conns: Arc<Connections>,
    state: Arc<ConnState>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.state
            .last_active_ms
            .store(self.conns.now_ms(), Ordering::Relaxed);
        self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.conns.freed.notify_one();
    }
}

/// A connection's stream whose reads and writes mark it active.
pub struct Tracked<S> {
    io: S,
    conns: Arc<Connections>,
    state: Arc<ConnState>,
}

impl<S> Tracked<S> {
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    fn touch(&self) {
        self.state
            .last_active_ms
            .store(self.conns.now_ms(), Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn below_the_cap_every_connection_is_admitted() {
        let conns = Connections::new(3, Arc::default());
        let a = conns.admit().await;
        let b = conns.admit().await;
        assert_eq!(conns.len(), 2);
        drop(a);
        drop(b);
        assert!(conns.is_empty());
    }

    #[tokio::test]
    async fn a_full_cap_closes_the_connection_idle_longest() {
        let stats = Arc::new(ConnStats::default());
        let conns = Connections::new(2, stats.clone());
        let old = conns.admit().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let newer = conns.admit().await;
        // The older one was active last: the newer one is now idle longest.
        tokio::time::sleep(Duration::from_millis(5)).await;
        old.track(()).touch();
        let third = conns.admit().await;
        assert_eq!(conns.len(), 2);
        tokio::time::timeout(Duration::from_secs(5), newer.evicted())
            .await
            .expect("the idlest connection is told to close");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), old.evicted())
                .await
                .is_err(),
            "the recently active one stays"
        );
        assert_eq!((stats.open(), stats.closed_for_room()), (2, 1));
        drop(third);
        assert_eq!((stats.open(), stats.closed_for_room()), (1, 1));
    }

    /// A cap of one, full with a connection that has a request in hand, and a second
    /// connection waiting for room (checked to wait).
    async fn full_and_busy() -> (
        Arc<Connections>,
        Admitted,
        Busy,
        tokio::task::JoinHandle<Admitted>,
    ) {
        let conns = Connections::new(1, Arc::default());
        let first = conns.admit().await;
        let busy = first.handle().busy();
        let waiting = tokio::spawn({
            let conns = conns.clone();
            async move { conns.admit().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "admitted while every slot was busy");
        (conns, first, busy, waiting)
    }

    async fn admitted(waiting: tokio::task::JoinHandle<Admitted>, when: &str) -> Admitted {
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap_or_else(|_| panic!("not admitted {when}"))
            .unwrap()
    }

    #[tokio::test]
    async fn a_connection_with_a_request_in_hand_is_never_closed_for_room() {
        let (conns, first, busy, waiting) = full_and_busy().await;
        // The request is answered: the connection is idle, and makes room.
        drop(busy);
        let second = admitted(waiting, "once the slot went idle").await;
        tokio::time::timeout(Duration::from_secs(5), first.evicted())
            .await
            .expect("the idle one closes");
        assert_eq!(conns.len(), 1);
        drop(second);
    }

    #[tokio::test]
    async fn a_closed_connection_frees_its_slot() {
        let (conns, first, busy, waiting) = full_and_busy().await;
        drop(first);
        let _second = admitted(waiting, "once the connection ended").await;
        drop(busy);
        assert_eq!(conns.len(), 1);
    }
}
