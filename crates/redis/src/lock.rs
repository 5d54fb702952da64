//! [`RedisLocks`]: the fleet's leases (`berth_storage::SharedLocks`), one Redis key per
//! lock (`berth::lock::<name>`), over the descriptor cache's [`Link`], so the same
//! timeouts, breaker and failure counts apply to locks as to lookups.
//!
//! - Taking is `SET key token NX PX lease` in effect, as a script that also takes over a
//!   lease this node has just dropped and whose release is still on its way (the next
//!   holder on this node then does not wait for it). While another node holds the key,
//!   it is polled with back-off (2 ms doubling to 100 ms) up to the deadline.
//! - A task renews a held lease every third of its length (`PEXPIRE` if the token is
//!   still this holder's), so a PATCH streaming gigabytes keeps it; a holder that dies
//!   lets it expire within one lease.
//! - Dropping the lease stops the renewal and releases it with a compare-and-delete
//!   script: only the holder's token removes the key.
//! - A call Redis does not answer (down, skipped by the breaker, timed out) makes the lock
//!   unavailable: the caller goes on under its node's lock only. That is logged (at most
//!   once per 10 s) and counted; it is the risk accepted during an outage, as a request
//!   never fails because Redis does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use berth_metrics::{Collect, Counter, Encoder, Gauge, Kind as MetricKind};
use berth_storage::{Acquired, SharedLease, SharedLocks};
use tokio::task::JoinHandle;

use crate::keys;
use crate::link::{Kind, Link, Throttle};

/// The first pause between two attempts at a held lock, doubled up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(2);
const MAX_POLL: Duration = Duration::from_millis(100);
/// How many leases long a request waits for a lock another node holds.
pub const WAIT_LEASES: u32 = 6;

/// Takes the key when it is free, or when it still holds the token this node released
/// last (ARGV[3], empty for none). KEYS[1]: the key; ARGV[1]: the new token; ARGV[2]:
/// the lease in milliseconds.
const TAKE: &str = r"
local held = redis.call('GET', KEYS[1])
if held == false or held == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0";

/// Extends the lease if the token is still the holder's.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

/// Removes the key if the token is still the holder's.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// What the locks count, for the metrics.
#[derive(Debug, Default)]
struct LockCounts {
    taken: Counter,
    waited: Counter,
    timeouts: Counter,
    fills_skipped: Counter,
    degraded: Counter,
    lost: Counter,
    held: Gauge,
}

/// The fleet's locks in Redis. Cheap to share: clone the `Arc`.
pub struct RedisLocks {
    inner: Arc<Inner>,
}

struct Inner {
    link: Arc<Link>,
    lease: Duration,
    wait: Duration,
    /// Leases this node dropped whose release may not have reached Redis yet: key to
    /// token. This node's next holder of the key takes such a lease over.
    released: Mutex<HashMap<String, String>>,
    counts: LockCounts,
    log: Throttle,
}

impl std::fmt::Debug for RedisLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLocks")
            .field("lease", &self.inner.lease)
            .field("wait", &self.inner.wait)
            .finish()
    }
}

impl RedisLocks {
    /// Locks over `link` whose leases last `lease` unless renewed; a request waits up to
    /// [`WAIT_LEASES`] leases for a lock another node holds.
    pub(crate) fn new(link: Arc<Link>, lease: Duration) -> Self {
        RedisLocks {
            inner: Arc::new(Inner {
                link,
                lease,
                wait: lease * WAIT_LEASES,
                released: Mutex::new(HashMap::new()),
                counts: LockCounts::default(),
                log: Throttle::default(),
            }),
        }
    }

    /// Leases held by this node now.
    pub fn held(&self) -> i64 {
        self.inner.counts.held.get()
    }
}

impl Inner {
    fn lease_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX)
    }

    fn released(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.released.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends one script; `None` when Redis did not answer.
    async fn eval(&self, script: &str, key: &str, args: &[&str]) -> Option<bool> {
        let mut pipe = redis::pipe();
        let cmd = pipe.cmd("EVAL").arg(script).arg(1).arg(key);
        for a in args {
            cmd.arg(*a);
        }
        let (done,): (bool,) = self.link.query(&pipe, Kind::Write).await?;
        Some(done)
    }
}

/// A random token naming one holding of a lease.
fn token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[async_trait]
impl SharedLocks for RedisLocks {
    async fn acquire(&self, name: &str, wait: bool) -> Acquired {
        let inner = &self.inner;
        let key = keys::lock(name);
        let token = token();
        let lease_ms = inner.lease_ms().to_string();
        let deadline = Instant::now() + inner.wait;
        let mut pause = FIRST_POLL;
        let mut waited = false;
        loop {
            let previous = inner.released().get(&key).cloned().unwrap_or_default();
            match inner
                .eval(TAKE, &key, &[&token, &lease_ms, &previous])
                .await
            {
                Some(true) => {
                    if !previous.is_empty() {
                        let mut released = inner.released();
                        if released.get(&key) == Some(&previous) {
                            released.remove(&key);
                        }
                    }
                    inner.counts.taken.inc();
                    return Acquired::Held(Box::new(RedisLease::start(inner, key, token)));
                }
                Some(false) => {}
                None => {
                    inner.counts.degraded.inc();
                    if let Some(unlogged) = inner.log.due() {
                        tracing::warn!(
                            lock = name,
                            unlogged,
                            "redis: unreachable, so a lock is taken on this node only; \
                             other nodes are not kept out until it is back"
                        );
                    }
                    return Acquired::Unavailable;
                }
            }
            if !wait {
                inner.counts.fills_skipped.inc();
                return Acquired::Busy;
            }
            let now = Instant::now();
            if now >= deadline {
                inner.counts.timeouts.inc();
                tracing::warn!(
                    lock = name,
                    waited = ?inner.wait,
                    "redis: another node held a lock for longer than this node waits"
                );
                return Acquired::Busy;
            }
            if !waited {
                waited = true;
                inner.counts.waited.inc();
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }
}

/// One held lease: renewed until dropped, then released.
struct RedisLease {
    inner: Arc<Inner>,
    key: String,
    token: String,
    renewal: JoinHandle<()>,
}

impl SharedLease for RedisLease {}

impl RedisLease {
    fn start(inner: &Arc<Inner>, key: String, token: String) -> Self {
        inner.counts.held.inc();
        let renewal = tokio::spawn(renew(inner.clone(), key.clone(), token.clone()));
        RedisLease {
            inner: inner.clone(),
            key,
            token,
            renewal,
        }
    }
}

/// Renews a lease every third of its length until aborted, or until it is found lost.
async fn renew(inner: Arc<Inner>, key: String, token: String) {
    let lease_ms = inner.lease_ms().to_string();
    loop {
        tokio::time::sleep(inner.lease / 3).await;
        match inner.eval(RENEW, &key, &[&token, &lease_ms]).await {
            // Not answered: tried again at the next turn; the lease may last until then.
            Some(true) | None => {}
            Some(false) => {
                inner.counts.lost.inc();
                tracing::warn!(
                    %key,
                    "redis: a held lock's lease ran out (Redis unreachable for longer than \
                     berth.redis.locklease, or restarted); another node may take it"
                );
                return;
            }
        }
    }
}

impl Drop for RedisLease {
    fn drop(&mut self) {
        self.renewal.abort();
        self.inner.counts.held.dec();
        // Outside a runtime (shutting down) the lease expires by itself.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (inner, key, token) = (
            self.inner.clone(),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.token),
        );
        inner.released().insert(key.clone(), token.clone());
        runtime.spawn(async move {
            // Unanswered, the lease expires by itself.
            let _ = inner.eval(RELEASE, &key, &[&token]).await;
            let mut released = inner.released();
            if released.get(&key) == Some(&token) {
                released.remove(&key);
            }
        });
    }
}

impl Collect for RedisLocks {
    fn collect(&self, enc: &mut Encoder) {
        let c = &self.inner.counts;
        enc.counters(&[
            (
                "berth_redis_locks_taken_total",
                "Leases of the fleet's locks taken in Redis.",
                c.taken.get(),
            ),
            (
                "berth_redis_lock_waits_total",
                "Leases taken only after waiting for another holder.",
                c.waited.get(),
            ),
            (
                "berth_redis_lock_timeouts_total",
                "Locks another node held past this node's wait (the request answered 503).",
                c.timeouts.get(),
            ),
            (
                "berth_redis_lock_fills_skipped_total",
                "Cache fills skipped because another node held the entry's lock.",
                c.fills_skipped.get(),
            ),
            (
                "berth_redis_lock_degraded_total",
                "Locks taken on this node only because Redis could not be reached.",
                c.degraded.get(),
            ),
            (
                "berth_redis_locks_lost_total",
                "Held leases found expired or taken at a renewal.",
                c.lost.get(),
            ),
        ]);
        let name = "berth_redis_locks_held";
        enc.family(
            name,
            "Leases of the fleet's locks this node holds now.",
            MetricKind::Gauge,
        );
        enc.sample(name, &[], c.held.get());
    }
}
