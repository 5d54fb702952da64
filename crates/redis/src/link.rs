//! The connection to Redis and what keeps an outage from reaching requests: every call
//! bounded by a timeout; a failed call drops the connection, after which calls are skipped
//! (answered at once as misses) until a background task has reconnected; removals that
//! did not reach Redis are queued and sent by that task before the connection is used
//! again, so this node never reads Redis while entries it should have removed may remain.
//! Failures are counted and logged at most once per [`LOG_EVERY`].

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use berth_metrics::Counter;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, FromRedisValue, Pipeline};
use tokio::sync::Notify;

/// The shortest time between two logged failures.
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// Removals kept for sending once Redis is back; past this the oldest are dropped.
pub const MAX_PENDING: usize = 100_000;
/// The first pause between reconnection attempts, doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the link counts, for the metrics.
#[derive(Debug, Default)]
pub struct LinkCounts {
    /// Calls that failed or timed out.
    pub errors: Counter,
    /// Calls not sent because Redis was unreachable.
    pub skipped: Counter,
    /// Connections opened (the first one included).
    pub connects: Counter,
    /// Queued removals dropped because the queue was full.
    pub dropped: Counter,
}

/// One shared connection with its breaker.
pub struct Link {
    client: Client,
    dial: AsyncConnectionConfig,
    read_timeout: Duration,
    write_timeout: Duration,
    /// `None` while Redis is unreachable: calls are skipped.
    conn: RwLock<Option<MultiplexedConnection>>,
    /// Removals that must reach Redis before this node reads it again.
    pending: Mutex<Pending>,
    wake: Notify,
    log: Throttle,
    pub counts: LinkCounts,
}

/// The queued removals, in order, and the keys of those queued under one.
#[derive(Default)]
struct Pending {
    queue: VecDeque<(Option<String>, Pipeline)>,
    keys: HashSet<String>,
}

impl Pending {
    fn pop_front(&mut self) {
        if let Some((Some(key), _)) = self.queue.pop_front() {
            self.keys.remove(&key);
        }
    }
}

/// Whether a call is a lookup or an update (which timeout bounds it).
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Read,
    Write,
}

impl Link {
    /// A link that is not connected yet; [`spawn_reconnect`] connects it.
    pub fn new(client: Client, dial: Duration, read: Duration, write: Duration) -> Self {
        Link {
            client,
            dial: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(dial))
                .set_response_timeout(Some(read.max(write))),
            read_timeout: read,
            write_timeout: write,
            conn: RwLock::new(None),
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
            log: Throttle::default(),
            counts: LinkCounts::default(),
        }
    }

    /// Whether calls are being sent.
    pub fn is_up(&self) -> bool {
        self.conn
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Removals waiting for Redis.
    pub fn pending(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .queue
            .len()
    }

    /// Sends `pipe`; `None` when Redis is skipped, fails or is too slow.
    pub async fn query<T: FromRedisValue>(&self, pipe: &Pipeline, kind: Kind) -> Option<T> {
        let Some(mut conn) = self.current() else {
            self.counts.skipped.inc();
            return None;
        };
        match self.send(&mut conn, pipe, kind).await {
            Ok(v) => Some(v),
            Err(why) => {
                self.fail(&why);
                None
            }
        }
    }

    /// Sends a removal; if it does not reach Redis it is queued, and Redis is not read
    /// again by this node until the queue is sent.
    pub async fn remove(&self, pipe: Pipeline) {
        if self.query::<()>(&pipe, Kind::Write).await.is_none() {
            self.enqueue(None, pipe);
        }
    }

    /// Queues `pipe` to be sent, like a removal that did not reach Redis, unless one
    /// queued under the same `key` is still waiting (a change that must reach Redis
    /// once, however often it is asked for while Redis is away).
    pub fn queue_once(&self, key: String, pipe: Pipeline) {
        self.enqueue(Some(key), pipe);
    }

    fn current(&self) -> Option<MultiplexedConnection> {
        self.conn
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn send<T: FromRedisValue>(
        &self,
        conn: &mut impl ConnectionLike,
        pipe: &Pipeline,
        kind: Kind,
    ) -> Result<T, String> {
        let limit = match kind {
            Kind::Read => self.read_timeout,
            Kind::Write => self.write_timeout,
        };
        match tokio::time::timeout(limit, pipe.query_async(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {limit:?}")),
        }
    }

    fn enqueue(&self, key: Option<String>, pipe: Pipeline) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = &key
            && !pending.keys.insert(key.clone())
        {
            // The same change is waiting already.
            return;
        }
        if pending.queue.len() >= MAX_PENDING {
            pending.pop_front();
            self.counts.dropped.inc();
        }
        pending.queue.push_back((key, pipe));
        // Nothing may be read until it is sent: a connection the reconnection put up
        // since the call failed is taken down again, so it sends the queue first.
        *self.conn.write().unwrap_or_else(PoisonError::into_inner) = None;
        drop(pending);
        self.wake.notify_one();
    }

    /// Drops the connection (so later calls are skipped) and wakes the reconnection.
    fn fail(&self, why: &str) {
        self.counts.errors.inc();
        *self.conn.write().unwrap_or_else(PoisonError::into_inner) = None;
        self.log.warn(why);
        self.wake.notify_one();
    }

    /// Connects, sends the queued removals, and only then lets calls through.
    async fn reconnect(&self) -> Result<(), String> {
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.dial)
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        loop {
            let next = self
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .queue
                .front()
                .map(|(_, pipe)| pipe.clone());
            let Some(pipe) = next else { break };
            self.send::<()>(&mut conn, &pipe, Kind::Write)
                .await
                .map_err(|e| format!("sending a queued removal: {e}"))?;
            self.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front();
        }
        // Installed under the queue's lock: a removal queued after the check above was
        // queued because no connection was up, and is sent on the next reconnection.
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if !pending.queue.is_empty() {
            return Err("removals queued meanwhile".into());
        }
        *self.conn.write().unwrap_or_else(PoisonError::into_inner) = Some(conn);
        drop(pending);
        self.counts.connects.inc();
        Ok(())
    }
}

/// Starts the task that (re)connects `link` whenever it is down; it ends with the link.
pub fn spawn_reconnect(link: &Arc<Link>, addr: String) {
    let weak: Weak<Link> = Arc::downgrade(link);
    tokio::spawn(async move {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let Some(link) = weak.upgrade() else { return };
            if link.is_up() {
                // Bounded, so the task notices within that time that the link was dropped
                // (`notify_one` keeps a wake-up sent while nobody waits).
                let _ = tokio::time::timeout(MAX_BACKOFF, link.wake.notified()).await;
                continue;
            }
            match link.reconnect().await {
                Ok(()) => {
                    tracing::info!(%addr, "redis: connected; the shared descriptor cache is used");
                    backoff = FIRST_BACKOFF;
                }
                Err(why) => {
                    link.log.warn(&why);
                    drop(link);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    });
}

/// Logs a failure at most once per [`LOG_EVERY`], saying how many were not logged.
#[derive(Default)]
pub(crate) struct Throttle {
    last: Mutex<Option<Instant>>,
    quiet: AtomicU64,
}

impl Throttle {
    fn warn(&self, why: &str) {
        if let Some(unlogged) = self.due() {
            tracing::warn!(
                unlogged,
                "redis: {why}; the descriptor cache is skipped (storage is read) until it is back"
            );
        }
    }

    /// Whether a failure is to be logged now: `Some` with how many were not logged since
    /// the last one, or `None` (counted as not logged).
    pub(crate) fn due(&self) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            self.quiet.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(Instant::now());
        drop(last);
        Some(self.quiet.swap(0, Ordering::Relaxed))
    }
}
