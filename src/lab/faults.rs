//! Faults in flight: a cloneable handle ([`Faults`], from [`super::Lab::faults`]) that changes a
//! running lab under a live engine. A listening address can be stopped (its listener and
//! every open connection closed: clients get connection refused) and started again on the same
//! address and port; the lab DNS can go silent (queries read and dropped) and answer again; a
//! scale-lab group's certificate can be rotated (newly issued by the lab CA: new key, serial
//! and expiry, optionally more SANs).
//!
//! With no fault set the lab behaves exactly as before: the servers run the same tasks and
//! the DNS answers from the same catalog.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustls::crypto::CryptoProvider;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::ca::{Ca, Validity};
use super::scale::{listen_on, GroupResolver, ScaleOptions, SCALE_ZONE};

/// What serves one address, given its listener (called again on each restart).
pub(crate) type MakeServer =
    Arc<dyn Fn(TcpListener) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A fault that could not be set.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("{0} is not a lab server address")]
    UnknownAddress(SocketAddr),
    #[error("restarting the lab server {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("certificate rotation needs the scale lab")]
    NotScale,
    #[error("the scale lab has no group {0}")]
    UnknownGroup(usize),
    #[error("issuing the rotated certificate for {group}: {detail}")]
    Issue { group: String, detail: String },
}

/// A newly served certificate.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The parent name of the group (`gGGG.scale.coalscope.test`).
    pub group: String,
    /// The leaf, DER (serial, expiry and SANs are read from it).
    pub der: CertificateDer<'static>,
}

/// The handle: clone it freely; it changes the lab it came from.
#[derive(Clone)]
pub struct Faults {
    inner: Arc<Inner>,
}

struct Inner {
    servers: Mutex<BTreeMap<SocketAddr, Slot>>,
    dns_silent: Arc<AtomicBool>,
    rotation: Option<Rotation>,
    /// Rotations so far: each adds a day to the new certificate's validity (a new expiry
    /// even within the second the previous one was issued).
    rotations: AtomicI64,
}

struct Slot {
    make: MakeServer,
    task: Option<JoinHandle<()>>,
}

/// What rotating a scale-lab certificate needs.
pub(crate) struct Rotation {
    pub ca: Arc<Ca>,
    pub provider: Arc<CryptoProvider>,
    pub resolver: Arc<GroupResolver>,
    pub layout: ScaleOptions,
}

impl Faults {
    pub(crate) fn new(rotation: Option<Rotation>) -> Faults {
        Faults {
            inner: Arc::new(Inner {
                servers: Mutex::new(BTreeMap::new()),
                dns_silent: Arc::new(AtomicBool::new(false)),
                rotation,
                rotations: AtomicI64::new(0),
            }),
        }
    }

    fn servers(&self) -> MutexGuard<'_, BTreeMap<SocketAddr, Slot>> {
        // A panic while the lock was held left nothing half-done: slots are replaced whole.
        self.inner
            .servers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Serve `addr` with `make(listener)` (the lab's start: it registers every address).
    pub(crate) fn serve(&self, addr: SocketAddr, listener: TcpListener, make: MakeServer) {
        let task = tokio::spawn(make(listener));
        self.servers().insert(
            addr,
            Slot {
                make,
                task: Some(task),
            },
        );
    }

    /// Every server address of the lab.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.servers().keys().copied().collect()
    }

    /// Whether `addr` is serving now.
    pub fn is_running(&self, addr: SocketAddr) -> bool {
        self.servers()
            .get(&addr)
            .is_some_and(|slot| slot.task.as_ref().is_some_and(|t| !t.is_finished()))
    }

    /// Stop serving `addr`: the listener and every open connection on it are closed when this
    /// returns (the server task, which owns them, has been dropped). Stopping a stopped address
    /// does nothing.
    pub async fn stop(&self, addr: SocketAddr) -> Result<(), FaultError> {
        let task = {
            let mut servers = self.servers();
            let slot = servers.get_mut(&addr).ok_or(FaultError::UnknownAddress(addr))?;
            slot.task.take()
        };
        if let Some(task) = task {
            task.abort();
            // Cancelled (or a panic, already logged): either way the task's sockets are gone.
            let _ = task.await;
        }
        Ok(())
    }

    /// Serve `addr` again (a new listener on the same address and port). Starting a running
    /// address does nothing.
    pub async fn start(&self, addr: SocketAddr) -> Result<(), FaultError> {
        if self.is_running(addr) {
            return Ok(());
        }
        let listener = listen_on(addr).map_err(|source| FaultError::Bind { addr, source })?;
        let mut servers = self.servers();
        let slot = servers.get_mut(&addr).ok_or(FaultError::UnknownAddress(addr))?;
        slot.task = Some(tokio::spawn((slot.make)(listener)));
        Ok(())
    }

    /// Stop every server and wait until their sockets are closed (the lab's shutdown).
    pub(crate) async fn stop_all(&self) {
        for addr in self.addresses() {
            let _ = self.stop(addr).await;
        }
    }

    /// Abort every server without waiting (the lab's drop).
    pub(crate) fn abort_all(&self) {
        for slot in self.servers().values_mut() {
            if let Some(task) = slot.task.take() {
                task.abort();
            }
        }
    }

    /// The switch the lab DNS reads on every query.
    pub(crate) fn dns_switch(&self) -> Arc<AtomicBool> {
        self.inner.dns_silent.clone()
    }

    /// Make the lab DNS drop every query unanswered (`true`) or answer again (`false`).
    pub fn set_dns_silent(&self, silent: bool) {
        self.inner.dns_silent.store(silent, Ordering::Relaxed);
    }

    /// Whether the lab DNS is silent now.
    pub fn dns_silent(&self) -> bool {
        self.inner.dns_silent.load(Ordering::Relaxed)
    }

    /// Serve a new certificate for scale-lab group `group` (every name of the group, on the
    /// next handshake; open connections keep theirs): issued by the lab CA with a new key and
    /// serial, valid from yesterday for 90 days plus one per rotation so far, for the group's
    /// wildcard and `extra_sans`.
    pub fn rotate_group(&self, group: usize, extra_sans: &[&str]) -> Result<Rotated, FaultError> {
        let rotation = self.inner.rotation.as_ref().ok_or(FaultError::NotScale)?;
        if group >= rotation.layout.groups() {
            return Err(FaultError::UnknownGroup(group));
        }
        let parent = format!("g{group:03}.{SCALE_ZONE}");
        let wildcard = format!("*.{parent}");
        let mut sans = vec![wildcard.as_str()];
        sans.extend_from_slice(extra_sans);
        let n = self.inner.rotations.fetch_add(1, Ordering::Relaxed) + 1;
        let issue_error = |e: anyhow::Error| FaultError::Issue {
            group: parent.clone(),
            detail: format!("{e:#}"),
        };
        let key = rotation
            .ca
            .server_key(&sans, Validity::Days(90 + n), &rotation.provider)
            .map_err(issue_error)?;
        let der = key
            .cert
            .first()
            .cloned()
            .ok_or_else(|| issue_error(anyhow::anyhow!("no certificate issued")))?;
        rotation.resolver.replace(&parent, key);
        Ok(Rotated { group: parent, der })
    }
}
