//! Locks the nodes of a fleet share. [`SharedLocks`] (Redis, in `berth-redis`) grants
//! leases by name; [`Fleet`] asks it for the lease of a store's key, and [`Locks`] pairs
//! that lease with this node's [`KeyedLocks`]. A writer takes this node's lock of a key
//! first and the fleet's lease second, so that one request in the whole fleet at a time
//! reads, checks and writes what the key guards; a node asks the fleet once per key
//! however many of its own requests queue for it, and a request takes locks of several
//! kinds in the same order on every node as on one (no cycle of nodes waiting).
//!
//! Readers that fill a cache take the lease only if it is free at once
//! ([`Locks::lock_to_fill`]): while another node changes the key, what storage says is
//! answered but not cached. Readers whose cache entries carry the shared repository
//! version (tags, revisions) need no lease at all ([`Locks::local`]).
//!
//! Without a lock service (one node, or Redis not used) all of this is this node's lock
//! alone, as before; with one that cannot be reached, too (the service logs and counts
//! it): an outage never fails a request.

use std::fmt::{self, Display};
use std::hash::Hash;
use std::sync::Arc;

use async_trait::async_trait;
use berth_core::{Digest, Error};

use crate::locks::{KeyGuard, KeyedLocks};

/// A lease of one name, held by this node until dropped, then released for the fleet.
/// The implementation keeps it from expiring while it is held.
pub trait SharedLease: Send + Sync {}

/// What asking for a lease got.
pub enum Acquired {
    /// The lease, held until dropped.
    Held(Box<dyn SharedLease>),
    /// The service could not be reached: go on under this node's lock only.
    Unavailable,
    /// Another node holds it: past the service's deadline when waiting, or at once when
    /// not.
    Busy,
}

/// Leases by name, shared by the nodes of a fleet.
#[async_trait]
pub trait SharedLocks: Send + Sync + fmt::Debug {
    /// The lease of `name`. With `wait`, polls while another node holds it, up to the
    /// service's deadline; without, answers [`Acquired::Busy`] at once. Never fails:
    /// an unreachable service is [`Acquired::Unavailable`].
    async fn acquire(&self, name: &str, wait: bool) -> Acquired;
}

/// How a key names its lease: unique among the keys of one kind.
pub(crate) trait LockName {
    fn lock_name(&self) -> String;
}

/// Repository-scoped keys: a repository name never holds `::`.
impl<A: Display, B: Display> LockName for (A, B) {
    fn lock_name(&self) -> String {
        format!("{}::{}", self.0, self.1)
    }
}

impl LockName for Digest {
    fn lock_name(&self) -> String {
        self.to_string()
    }
}

/// A held lease, or none (no fleet, or the service unreachable).
pub(crate) type Lease = Option<Box<dyn SharedLease>>;

/// The fleet's lock service, when there is one.
#[derive(Clone, Default)]
pub(crate) struct Fleet(Option<Arc<dyn SharedLocks>>);

impl Fleet {
    pub(crate) fn new(shared: Option<Arc<dyn SharedLocks>>) -> Self {
        Fleet(shared)
    }

    /// The lease of `kind`'s `key`, waiting for it; `Busy` when another node kept it
    /// past the service's deadline. The caller holds this node's lock of the key.
    pub(crate) async fn lease(&self, kind: &str, key: &impl LockName) -> Result<Lease, Error> {
        let Some(shared) = &self.0 else {
            return Ok(None);
        };
        let name = format!("{kind}::{}", key.lock_name());
        match shared.acquire(&name, true).await {
            Acquired::Held(lease) => Ok(Some(lease)),
            Acquired::Unavailable => Ok(None),
            Acquired::Busy => Err(Error::Busy(format!(
                "another node holds the lock of {kind} {}",
                key.lock_name()
            ))),
        }
    }

    /// The lease of `kind`'s `key` if no other node holds it now, for a cache fill;
    /// the flag says whether filling is safe (false: another node is changing it).
    async fn try_lease(&self, kind: &str, key: &impl LockName) -> (Lease, bool) {
        let Some(shared) = &self.0 else {
            return (None, true);
        };
        let name = format!("{kind}::{}", key.lock_name());
        match shared.acquire(&name, false).await {
            Acquired::Held(lease) => (Some(lease), true),
            // The shared cache is skipped while Redis is down: a fill goes nowhere.
            Acquired::Unavailable => (None, true),
            Acquired::Busy => (None, false),
        }
    }
}

/// This node's lock per key, and the fleet's lease of it.
pub(crate) struct Locks<K> {
    local: KeyedLocks<K>,
    fleet: Fleet,
    /// Names the keys' kind in the fleet (`tag`, `revision`, ...).
    kind: &'static str,
}

/// A key held on this node and, when the fleet granted it, in the fleet.
pub(crate) struct Held<'a, K: Eq + Hash> {
    // Declared first, so dropped first: the lease is on its way back before this node's
    // next holder of the key asks for it.
    _lease: Lease,
    _local: KeyGuard<'a, K>,
}

impl<K: Eq + Hash + Clone + LockName> Locks<K> {
    pub(crate) fn new(kind: &'static str, fleet: Fleet) -> Self {
        Locks {
            local: KeyedLocks::default(),
            fleet,
            kind,
        }
    }

    /// This node's lock only.
    pub(crate) async fn local(&self, key: K) -> KeyGuard<'_, K> {
        self.local.lock(key).await
    }

    /// This node's lock, then the fleet's lease: for whoever changes what `key` guards.
    pub(crate) async fn lock(&self, key: K) -> Result<Held<'_, K>, Error> {
        let local = self.local.lock(key.clone()).await;
        let lease = self.fleet.lease(self.kind, &key).await?;
        Ok(Held {
            _lease: lease,
            _local: local,
        })
    }

    /// This node's lock, and the fleet's lease when it is free at once: for a reader
    /// about to cache what storage says. The flag is false while another node holds
    /// the lease: it may be changing storage, so what is read now is not cached.
    pub(crate) async fn lock_to_fill(&self, key: K) -> (Held<'_, K>, bool) {
        let local = self.local.lock(key.clone()).await;
        let (lease, fill) = self.fleet.try_lease(self.kind, &key).await;
        let held = Held {
            _lease: lease,
            _local: local,
        };
        (held, fill)
    }
}
