//! The fleet's locks against a real `redis-server`, each "node" a lock service with its
//! own connection: one holder at a time per name, a lease renewed past its length while
//! held, a dead holder's lease expiring, only the holder releasing, a wait bounded by
//! its deadline, and an unreachable Redis answered at once as unavailable (the caller
//! goes on under its own lock), with the locks used again once Redis is back.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use berth_metrics::{Collect, Encoder};
use berth_redis::{RedisConfig, RedisDescriptors, RedisLocks, WAIT_LEASES};
use berth_storage::{Acquired, SharedLocks};
use redis::Commands;
use support::server::RedisServer;

/// A node's lock service with leases of `lease`, connected.
async fn node(server: &RedisServer, lease: Duration) -> Arc<RedisLocks> {
    let cache = RedisDescriptors::start(&RedisConfig::new(server.addr())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cache.is_up() {
        assert!(Instant::now() < deadline, "did not connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cache.locks(lease)
}

fn raw(server: &RedisServer) -> redis::Connection {
    redis::Client::open(format!("redis://{}/", server.addr()))
        .unwrap()
        .get_connection()
        .unwrap()
}

/// A counter of the lock service's metrics.
fn metric(locks: &RedisLocks, name: &str) -> u64 {
    let mut enc = Encoder::new();
    locks.collect(&mut enc);
    let text = enc.finish();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

fn is_held(a: &Acquired) -> bool {
    matches!(a, Acquired::Held(_))
}

fn is_busy(a: &Acquired) -> bool {
    matches!(a, Acquired::Busy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_holder_at_a_time_across_nodes() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let nodes = [
        node(&server, Duration::from_secs(2)).await,
        node(&server, Duration::from_secs(2)).await,
    ];
    let inside = Arc::new(AtomicU32::new(0));
    let overlaps = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (locks, inside, overlaps) =
                (nodes[i % 2].clone(), inside.clone(), overlaps.clone());
            tokio::spawn(async move {
                let lease = locks.acquire("tag::team/app::latest", true).await;
                assert!(is_held(&lease), "task {i} got no lease");
                if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                drop(lease);
            })
        })
        .collect();
    // Another name is free meanwhile.
    let other = nodes[1].acquire("tag::team/app::v2", false).await;
    assert!(is_held(&other));
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "two holders at once");
    let waits = metric(&nodes[0], "berth_redis_lock_waits_total")
        + metric(&nodes[1], "berth_redis_lock_waits_total");
    assert!(
        waits > 0,
        "sixteen takers never waited: the test proves nothing"
    );
    drop(other);
    // Everything released: the keys are gone once the releases have arrived.
    let mut conn = raw(&server);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = conn.keys("berth::lock::*").unwrap();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(nodes[0].held() + nodes[1].held(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lease_is_renewed_past_its_length() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let lease = Duration::from_millis(600);
    let (a, b) = (node(&server, lease).await, node(&server, lease).await);
    let held = a.acquire("upload::team/app::u1", true).await;
    assert!(is_held(&held));
    assert_eq!(a.held(), 1);
    // Four leases long: B never gets it, and the key always has time left.
    let mut conn = raw(&server);
    let started = Instant::now();
    while started.elapsed() < lease * 4 {
        assert!(is_busy(&b.acquire("upload::team/app::u1", false).await));
        let ttl: i64 = redis::cmd("PTTL")
            .arg("berth::lock::upload::team/app::u1")
            .query(&mut conn)
            .unwrap();
        assert!(ttl > 0, "the lease ran out while held ({ttl})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Released: B takes it at once.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(2);
    let taken = loop {
        let got = b.acquire("upload::team/app::u1", false).await;
        if is_held(&got) {
            break got;
        }
        assert!(Instant::now() < deadline, "never released");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    drop(taken);
    assert_eq!(metric(&a, "berth_redis_locks_lost_total"), 0);
}

/// A holder whose process dies: its runtime goes with the lease still held (nothing
/// released, nothing renewed).
fn die_holding(addr: String, name: &'static str, lease: Duration) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let cache = RedisDescriptors::start(&RedisConfig::new(addr)).unwrap();
            while !cache.is_up() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let held = cache.locks(lease).acquire(name, false).await;
            assert!(is_held(&held));
            std::mem::forget(held);
        });
        runtime.shutdown_background();
    })
    .join()
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holders_lease_expires() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let lease = Duration::from_millis(1500);
    let b = node(&server, lease).await;
    die_holding(server.addr(), "upload::team/app::dead", lease);
    let started = Instant::now();
    assert!(is_busy(&b.acquire("upload::team/app::dead", false).await));
    let got = b.acquire("upload::team/app::dead", true).await;
    let waited = started.elapsed();
    assert!(is_held(&got), "not taken after the holder died");
    assert!(
        waited >= lease / 2 && waited < lease * 2,
        "taken after {waited:?}, the lease being {lease:?}"
    );
    assert_eq!(metric(&b, "berth_redis_lock_waits_total"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_holder_releases() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let lease = Duration::from_millis(900);
    let (a, b, c) = (
        node(&server, lease).await,
        node(&server, lease).await,
        node(&server, lease).await,
    );
    let key = "berth::lock::revision::team/app::sha256:00";
    let first = a.acquire("revision::team/app::sha256:00", false).await;
    assert!(is_held(&first));
    // A's lease is lost behind its back (as an expiry during a partition would): B
    // takes the lock.
    let mut conn = raw(&server);
    let _: () = conn.del(key).unwrap();
    let second = b.acquire("revision::team/app::sha256:00", false).await;
    assert!(is_held(&second));
    let owner: String = conn.get(key).unwrap();
    // A's renewal finds it taken and stops; A's release removes nothing.
    tokio::time::sleep(lease / 2).await;
    assert_eq!(metric(&a, "berth_redis_locks_lost_total"), 1);
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let still: Option<String> = conn.get(key).unwrap();
    assert_eq!(
        still.as_deref(),
        Some(owner.as_str()),
        "A removed B's lease"
    );
    assert!(is_busy(
        &c.acquire("revision::team/app::sha256:00", false).await
    ));
    // B's own release frees it.
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !is_held(&c.acquire("revision::team/app::sha256:00", false).await) {
        assert!(Instant::now() < deadline, "B's release never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_ends_at_its_deadline() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let lease = Duration::from_millis(300);
    let (a, b) = (node(&server, lease).await, node(&server, lease).await);
    let held = a.acquire("link::team/app::sha256:01", true).await;
    assert!(is_held(&held));
    let started = Instant::now();
    let got = b.acquire("link::team/app::sha256:01", true).await;
    let waited = started.elapsed();
    assert!(is_busy(&got), "taken from a live holder");
    let deadline = lease * WAIT_LEASES;
    assert!(
        waited >= deadline && waited < deadline + Duration::from_secs(1),
        "gave up after {waited:?}, the deadline being {deadline:?}"
    );
    assert_eq!(metric(&b, "berth_redis_lock_timeouts_total"), 1);
    drop(held);
}

/// A node hands a lock from one of its holders to the next without waiting for the
/// release to reach Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_nodes_next_holder_does_not_wait() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = node(&server, Duration::from_secs(2)).await;
    let started = Instant::now();
    for _ in 0..200 {
        let held = a.acquire("tag::team/app::hot", true).await;
        assert!(is_held(&held));
        drop(held);
    }
    assert_eq!(metric(&a, "berth_redis_lock_waits_total"), 0);
    assert_eq!(metric(&a, "berth_redis_locks_taken_total"), 200);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_leaves_the_lock_to_the_node() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let a = node(&server, Duration::from_secs(2)).await;
    // Hung: the first call waits for the write timeout, later ones are skipped at once.
    server.pause();
    let started = Instant::now();
    for _ in 0..20 {
        assert!(matches!(
            a.acquire("tag::team/app::v", true).await,
            Acquired::Unavailable
        ));
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(metric(&a, "berth_redis_lock_degraded_total"), 20);
    // Dead: the same.
    server.stop();
    assert!(matches!(
        a.acquire("tag::team/app::v", true).await,
        Acquired::Unavailable
    ));
    // Back: used again once reconnected.
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if is_held(&a.acquire("tag::team/app::v", true).await) {
            break;
        }
        assert!(Instant::now() < deadline, "locks not used again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
