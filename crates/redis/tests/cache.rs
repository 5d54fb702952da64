//! The Redis descriptor cache against a real `redis-server`: lookups and updates, the
//! repository scope against the global one, distribution's key layout both ways, and an
//! outage: lookups miss at once instead of waiting, removals made meanwhile reach Redis
//! before it is read again, and the cache is used again once Redis is back.

mod support;

use std::time::{Duration, Instant};

use berth_core::{Algorithm, Digest, RepositoryName};
use berth_redis::{RedisConfig, RedisDescriptors};
use berth_storage::SharedDescriptors;
use redis::Commands;
use support::client::{connected, raw, wait_up};
use support::server::RedisServer;

fn digest(n: u32) -> Digest {
    Digest::of(Algorithm::Sha256, &n.to_le_bytes())
}

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_and_global() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let cache = connected(&server).await;
    let (a, b, d) = (repo("a"), repo("b/c"), digest(1));
    assert_eq!(cache.global(&d).await, None);
    assert_eq!(cache.linked(&a, &d).await, None);
    cache.set_linked(&a, &d, 42).await;
    assert_eq!(cache.linked(&a, &d).await, Some(42));
    assert_eq!(cache.global(&d).await, Some(42));
    assert_eq!(cache.linked(&b, &d).await, None, "scoped to its repository");
    cache.set_link(&b, &d, 42).await;
    assert_eq!(cache.linked(&b, &d).await, Some(42));
    cache.unlink(&a, &d).await;
    assert_eq!(cache.linked(&a, &d).await, None);
    assert_eq!(cache.linked(&b, &d).await, Some(42));
    // The global entry gone, no repository answers for the blob.
    cache.forget_global(&d).await;
    assert_eq!(cache.global(&d).await, None);
    assert_eq!(cache.linked(&b, &d).await, None);
    // A link without a global entry is a miss until the global entry is filled.
    cache.set_global(&d, 7).await;
    assert_eq!(cache.linked(&b, &d).await, Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_key_layout() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let cache = connected(&server).await;
    let mut conn = raw(&server);
    let (r, d) = (repo("library/x"), digest(2));
    cache.set_linked(&r, &d, 1234).await;
    let global: Vec<(String, String)> = conn.hgetall(format!("blobs::{d}")).unwrap();
    let mut global = global;
    global.sort();
    assert_eq!(
        global,
        vec![
            ("digest".into(), d.to_string()),
            ("mediatype".into(), "application/octet-stream".into()),
            ("size".into(), "1234".into()),
        ]
    );
    let member: bool = conn
        .sismember("repository::library/x::blobs", d.to_string())
        .unwrap();
    assert!(member);
    let media: String = conn
        .hget(format!("repository::library/x::blobs::{d}"), "mediatype")
        .unwrap();
    assert_eq!(media, "application/octet-stream");

    // What a distribution node writes, berth reads.
    let other = digest(3);
    let _: () = conn
        .hset_multiple(
            format!("blobs::{other}"),
            &[
                ("digest", other.to_string()),
                ("size", "99".into()),
                ("mediatype", "application/vnd.oci.image.layer.v1.tar".into()),
            ],
        )
        .unwrap();
    let _: () = conn
        .sadd("repository::library/x::blobs", other.to_string())
        .unwrap();
    assert_eq!(cache.linked(&r, &other).await, Some(99));
    // distribution's blob delete clears the global hash's fields: no longer served.
    let _: () = conn
        .hdel(format!("blobs::{other}"), &["digest", "size", "mediatype"])
        .unwrap();
    assert_eq!(cache.linked(&r, &other).await, None);

    // A berth unlink is seen by distribution's membership test.
    cache.unlink(&r, &d).await;
    let member: bool = conn
        .sismember("repository::library/x::blobs", d.to_string())
        .unwrap();
    assert!(!member);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_degrades_and_recovers() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let mut config = RedisConfig::new(server.addr());
    config.read_timeout = Duration::from_millis(300);
    config.write_timeout = Duration::from_millis(300);
    let cache = RedisDescriptors::start(&config).unwrap();
    wait_up(&cache).await;
    let (r, d, kept) = (repo("r"), digest(4), digest(5));
    cache.set_linked(&r, &d, 10).await;
    cache.set_linked(&r, &kept, 11).await;

    server.stop();
    // Lookups miss; after the first failure, every call is skipped without waiting.
    let started = Instant::now();
    for _ in 0..100 {
        assert_eq!(cache.linked(&r, &d).await, None);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "100 lookups took {:?} while Redis was down",
        started.elapsed()
    );
    assert!(!cache.is_up());

    server.restart();
    wait_up(&cache).await;
    cache.set_linked(&r, &kept, 11).await;
    assert_eq!(cache.linked(&r, &kept).await, Some(11));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_during_a_hang_is_sent_before_reads() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut config = RedisConfig::new(server.addr());
    config.read_timeout = Duration::from_millis(200);
    config.write_timeout = Duration::from_millis(200);
    let cache = RedisDescriptors::start(&config).unwrap();
    wait_up(&cache).await;
    let (r, d) = (repo("r"), digest(7));
    cache.set_linked(&r, &d, 10).await;

    server.pause();
    // The first call waits for its timeout, no longer; the next ones are skipped.
    let started = Instant::now();
    assert_eq!(cache.linked(&r, &d).await, None);
    let first = started.elapsed();
    assert!(
        first < Duration::from_secs(1),
        "first lookup took {first:?}"
    );
    let started = Instant::now();
    for _ in 0..100 {
        assert_eq!(cache.linked(&r, &d).await, None);
    }
    assert!(started.elapsed() < Duration::from_millis(500));
    // Removed from storage meanwhile: the removal waits in the queue.
    cache.unlink(&r, &d).await;

    server.resume();
    wait_up(&cache).await;
    let member: bool = raw(&server)
        .sismember("repository::r::blobs", d.to_string())
        .unwrap();
    assert!(
        !member,
        "the removal queued during the hang was sent on reconnection"
    );
    assert_eq!(cache.linked(&r, &d).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_at_start() {
    // Nothing listens there: start-up does not fail, and lookups are misses.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cache = RedisDescriptors::start(&RedisConfig::new(format!("127.0.0.1:{port}"))).unwrap();
    let started = Instant::now();
    assert_eq!(cache.global(&digest(6)).await, None);
    cache.forget_global(&digest(6)).await;
    assert!(started.elapsed() < Duration::from_millis(100));
    assert!(!cache.is_up());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_move_on_and_never_repeat() {
    use berth_storage::SharedVersions;
    let Some(server) = RedisServer::start() else {
        return;
    };
    let cache = connected(&server).await;
    let (r, other) = (repo("v/app"), repo("v/other"));
    let first = cache.version(&r).await.expect("a version");
    assert_eq!(
        cache.version(&r).await,
        Some(first),
        "stable while nothing changes"
    );
    cache.bump(&r).await;
    let second = cache.version(&r).await.unwrap();
    assert_eq!(second, first + 1);
    let unrelated = cache.version(&other).await.unwrap();
    cache.bump(&r).await;
    assert_eq!(
        cache.version(&other).await,
        Some(unrelated),
        "per repository"
    );
    // Emptied (a restart without persistence, a flush): the count starts again above
    // every value it had, so nothing stamped before is trusted again.
    let _: () = redis::cmd("FLUSHALL").query(&mut raw(&server)).unwrap();
    let restarted = cache.version(&r).await.unwrap();
    assert!(restarted > second + 1, "{restarted} <= {second} + 1");
}

/// `redis.username` (Redis 6 ACLs): a user of its own, with its password, connects and
/// is used; the same user with a wrong password never connects, and lookups then miss
/// (storage is read) rather than fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_connects_and_a_wrong_password_does_not() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut conn = raw(&server);
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "registry", "on", ">s3cret", "~*", "&*", "+@all"])
        .query(&mut conn)
        .unwrap();
    let as_user = |password: &str| {
        let mut config = RedisConfig::new(server.addr());
        config.username = Some("registry".into());
        config.password = Some(password.into());
        RedisDescriptors::start(&config).unwrap()
    };

    let cache = as_user("s3cret");
    wait_up(&cache).await;
    let (a, d) = (repo("acl/app"), digest(7));
    cache.set_linked(&a, &d, 7).await;
    assert_eq!(cache.linked(&a, &d).await, Some(7));
    let who: String = redis::cmd("CLIENT").arg("LIST").query(&mut conn).unwrap();
    assert!(who.contains("user=registry"), "{who}");

    let refused = as_user("wrong");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!refused.is_up(), "a wrong password must not connect");
    assert_eq!(refused.linked(&a, &d).await, None, "a miss, not a failure");
}
