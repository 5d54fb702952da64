//! The connection to Redis and what keeps an outage from reaching requests: every call
//! bounded by a timeout; a failed call drops the connection, after which calls are skipped
//! (answered at once as misses) until a background task has reconnected; changes that
//! did not reach Redis are queued and sent by that task before the connection is used
//! again, so this node never reads Redis while entries it should have removed may remain.
//! Failures are counted and logged at most once per [`LOG_EVERY`].
//!
//! What is queued: descriptor-cache removals ([`Link::remove`] from `cache`: a global
//! hash deleted, a link's set member and hash deleted), version bumps (`INCR` of
//! `berth::repository::<name>::version`, also through [`Link::remove`]) and index
//! distrusts ([`Link::queue_once`] from `index`: an index's mark and rebuild lease
//! deleted). The queue is bounded (`max_pending`, [`MAX_PENDING`] by default); a change
//! that would overflow it is not dropped, nor are the older ones: the queue is emptied
//! and a wipe is owed instead (`wipe`), done on reconnection before anything else, with
//! the same rule as the queue (no call goes through until it is done; one that fails is
//! owed still). The wipe does what any queued change could have done, to every key it
//! could have named: every descriptor-cache entry berth reads goes, every index loses
//! its completeness (and any running rebuild its lease), every version counter moves
//! on. Changes asked for while a wipe is owed and not started are done by it, so they
//! are not queued; those asked for while it runs are, since its scan may have passed
//! their keys already.

mod wipe;

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
/// Changes kept for sending once Redis is back, by default; one more and the queue is
/// emptied for a wipe (see the module's header).
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
    /// Times the queue was full: emptied, and a wipe owed instead.
    pub overflows: Counter,
    /// Wipes done.
    pub wipes: Counter,
}

/// One shared connection with its breaker.
pub struct Link {
    client: Client,
    dial: AsyncConnectionConfig,
    read_timeout: Duration,
    write_timeout: Duration,
    /// `None` while Redis is unreachable: calls are skipped.
    conn: RwLock<Option<MultiplexedConnection>>,
    /// Changes that must reach Redis before this node reads it again.
    pending: Mutex<Pending>,
    wake: Notify,
    log: Throttle,
    pub counts: LinkCounts,
}

/// The queued changes, in order, the keys of those queued under one, and the wipe.
struct Pending {
    queue: VecDeque<Queued>,
    keys: HashSet<String>,
    /// The number the next queued change gets.
    next: u64,
    wipe: Wipe,
    /// How many changes the queue holds at most.
    max: usize,
}

/// A change waiting for Redis.
struct Queued {
    /// Its number: the reconnection takes out only the change it sent.
    seq: u64,
    /// The key of a change queued once (`queue_once`).
    key: Option<String>,
    pipe: Pipeline,
}

/// Whether a wipe is owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wipe {
    /// None: the queue holds every change not sent.
    None,
    /// Owed, not started: it will do every change asked for until it starts.
    Owed,
    /// Under way; `again` when the queue overflowed meanwhile, so another one is owed
    /// (this one's scan may have passed the keys of those changes before they were made).
    Running { again: bool },
}

impl Pending {
    fn new(max: usize) -> Self {
        Pending {
            queue: VecDeque::new(),
            keys: HashSet::new(),
            next: 0,
            wipe: Wipe::None,
            max,
        }
    }

    fn pop_front(&mut self) {
        if let Some(Queued { key: Some(key), .. }) = self.queue.pop_front() {
            self.keys.remove(&key);
        }
    }
}

/// What the reconnection does next.
enum Step {
    Wipe,
    Send(u64, Pipeline),
}

/// Whether a call is a lookup or an update (which timeout bounds it).
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Read,
    Write,
}

impl Link {
    /// A link that is not connected yet, queueing at most `max_pending` changes;
    /// [`spawn_reconnect`] connects it.
    pub fn new(
        client: Client,
        dial: Duration,
        read: Duration,
        write: Duration,
        max_pending: usize,
    ) -> Self {
        Link {
            client,
            dial: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(dial))
                .set_response_timeout(Some(read.max(write))),
            read_timeout: read,
            write_timeout: write,
            conn: RwLock::new(None),
            pending: Mutex::new(Pending::new(max_pending)),
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

    /// Changes waiting for Redis.
    pub fn pending(&self) -> usize {
        self.queue().queue.len()
    }

    /// Whether a wipe is owed (or under way).
    pub fn wipe_owed(&self) -> bool {
        self.queue().wipe != Wipe::None
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
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
        let mut pending = self.queue();
        match pending.wipe {
            // The wipe to come does this change too (it starts after it).
            Wipe::Owed | Wipe::Running { again: true } => {}
            Wipe::None | Wipe::Running { again: false } => {
                if let Some(key) = &key
                    && !pending.keys.insert(key.clone())
                {
                    // The same change is waiting already (so no connection is up).
                    return;
                }
                if pending.queue.len() >= pending.max {
                    self.overflow(&mut pending);
                } else {
                    let seq = pending.next;
                    pending.next += 1;
                    pending.queue.push_back(Queued { seq, key, pipe });
                }
            }
        }
        // Nothing may be read until it is sent: a connection the reconnection put up
        // since the call failed is taken down again, so it sends the queue first.
        *self.conn.write().unwrap_or_else(PoisonError::into_inner) = None;
        drop(pending);
        self.wake.notify_one();
    }

    /// Empties the full queue and owes a wipe instead, which does all it held.
    fn overflow(&self, pending: &mut Pending) {
        pending.queue.clear();
        pending.keys.clear();
        pending.wipe = match pending.wipe {
            Wipe::None | Wipe::Owed => Wipe::Owed,
            Wipe::Running { .. } => Wipe::Running { again: true },
        };
        self.counts.overflows.inc();
        tracing::warn!(
            max = pending.max,
            "redis: more changes are waiting for Redis than are kept; once it is back, \
             every descriptor-cache entry and version, and the listings' completeness, \
             are wiped before it is used again"
        );
    }

    /// Drops the connection (so later calls are skipped) and wakes the reconnection.
    fn fail(&self, why: &str) {
        self.counts.errors.inc();
        *self.conn.write().unwrap_or_else(PoisonError::into_inner) = None;
        self.log.warn(why);
        self.wake.notify_one();
    }

    /// Connects, wipes if a wipe is owed, sends the queued changes, and only then lets
    /// calls through.
    async fn reconnect(&self) -> Result<(), String> {
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.dial)
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        loop {
            let step = {
                let mut pending = self.queue();
                if pending.wipe != Wipe::None {
                    pending.wipe = Wipe::Running { again: false };
                    Step::Wipe
                } else if let Some(front) = pending.queue.front() {
                    Step::Send(front.seq, front.pipe.clone())
                } else {
                    // Installed under the queue's lock: a change queued after this was
                    // queued because no connection was up, and takes this one down
                    // again, so it is sent by the next reconnection.
                    *self.conn.write().unwrap_or_else(PoisonError::into_inner) = Some(conn);
                    drop(pending);
                    self.counts.connects.inc();
                    return Ok(());
                }
            };
            match step {
                Step::Wipe => {
                    let started = Instant::now();
                    let wiped = self.wipe(&mut conn).await;
                    let mut pending = self.queue();
                    pending.wipe = match (&wiped, pending.wipe) {
                        (Ok(_), Wipe::Running { again: false }) => Wipe::None,
                        _ => Wipe::Owed,
                    };
                    drop(pending);
                    let wiped = wiped.map_err(|e| format!("wiping after a full queue: {e}"))?;
                    self.counts.wipes.inc();
                    tracing::info!(
                        descriptors = wiped.descriptors,
                        indexes = wiped.indexes,
                        leases = wiped.leases,
                        versions = wiped.versions,
                        seconds = started.elapsed().as_secs_f64(),
                        "redis: wiped every key the changes a full queue gave up could have named; Redis is used again"
                    );
                }
                Step::Send(seq, pipe) => {
                    self.send::<()>(&mut conn, &pipe, Kind::Write)
                        .await
                        .map_err(|e| format!("sending a queued change: {e}"))?;
                    let mut pending = self.queue();
                    // Not the change sent when the queue overflowed meanwhile.
                    if pending.queue.front().is_some_and(|q| q.seq == seq) {
                        pending.pop_front();
                    }
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A link never connected (nothing is sent): only its queue is looked at.
    fn link(max: usize) -> Link {
        let client = Client::open("redis://127.0.0.1:1/").unwrap();
        let t = Duration::from_millis(10);
        Link::new(client, t, t, t, max)
    }

    fn change(n: u32) -> Pipeline {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(n).ignore();
        pipe
    }

    #[test]
    fn a_full_queue_owes_a_wipe_and_gives_up_nothing_else() {
        let link = link(3);
        link.queue_once("index".into(), change(0));
        link.queue_once("index".into(), change(0));
        link.enqueue(None, change(1));
        link.enqueue(None, change(2));
        assert_eq!((link.pending(), link.wipe_owed()), (3, false));
        // One more than is kept: all of them are given up for the wipe.
        link.enqueue(None, change(3));
        assert_eq!((link.pending(), link.wipe_owed()), (0, true));
        assert_eq!(link.counts.overflows.get(), 1);
        // Until the wipe starts, it does whatever is asked: nothing is queued.
        link.queue_once("index".into(), change(0));
        link.enqueue(None, change(4));
        assert_eq!((link.pending(), link.wipe_owed()), (0, true));
        assert!(link.queue().keys.is_empty());
        assert_eq!(link.counts.overflows.get(), 1);

        // While it runs, changes are queued (its scan may have passed their keys); an
        // overflow then owes another.
        link.queue().wipe = Wipe::Running { again: false };
        link.enqueue(None, change(5));
        assert_eq!(link.pending(), 1);
        for n in 6..9 {
            link.enqueue(None, change(n));
        }
        assert_eq!(link.pending(), 0);
        assert_eq!(link.queue().wipe, Wipe::Running { again: true });
        link.enqueue(None, change(9));
        assert_eq!(link.pending(), 0, "done by the wipe owed again");
        assert!(!link.is_up());
    }
}
