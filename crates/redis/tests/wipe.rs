//! A full queue against a real `redis-server`: while Redis is hung, more changes are
//! asked for than the queue keeps (an index distrust and a cache removal first, which a
//! queue dropping its oldest would lose); once Redis answers again, every index is
//! distrusted (a rebuild is asked, a running one loses its lease), the stale cache entry
//! is gone and versions have moved on, while locks and other applications' keys are
//! kept. A wipe that fails midway is owed still, and done on a later reconnection.

mod support;

use std::time::{Duration, Instant};

use berth_core::{Algorithm, Digest, RepositoryName};
use berth_redis::{RedisConfig, RedisDescriptors};
use berth_storage::{IndexName, SharedDescriptors, SharedIndex, SharedVersions};
use redis::Commands;
use support::client::{raw, rebuild, strings, wait_up};
use support::server::RedisServer;

/// Changes the queue keeps in these tests.
const MAX_PENDING: usize = 4;

fn digest(n: u32) -> Digest {
    Digest::of(Algorithm::Sha256, &n.to_le_bytes())
}

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

/// Keys no wipe may touch: a lock, another application's key, and a key under
/// distribution's prefix that is not one of its entries. Returns their names.
fn unrelated(conn: &mut redis::Connection) -> Vec<&'static str> {
    let _: () = redis::cmd("SET")
        .arg("berth::lock::tag::team/app::v1")
        .arg("token")
        .arg("PX")
        .arg(60_000)
        .query(conn)
        .unwrap();
    let _: () = conn.set("other-app::session", "x").unwrap();
    let _: () = conn.hset("blobs::not-a-digest", "f", "v").unwrap();
    vec![
        "berth::lock::tag::team/app::v1",
        "other-app::session",
        "blobs::not-a-digest",
    ]
}

/// A cache on `server` keeping [`MAX_PENDING`] changes, connected.
async fn capped(server: &RedisServer) -> std::sync::Arc<RedisDescriptors> {
    let mut config = RedisConfig::new(server.addr());
    config.read_timeout = Duration::from_millis(200);
    config.write_timeout = Duration::from_millis(200);
    let cache = RedisDescriptors::start_with_max_pending(&config, MAX_PENDING).unwrap();
    wait_up(&cache).await;
    cache
}

/// With Redis hung, asks for a catalog distrust and the unlink of `stale` from `r`
/// first, then more removals than the queue keeps.
async fn overflow(server: &RedisServer, cache: &RedisDescriptors, r: &RepositoryName) {
    let index = cache.index();
    server.pause();
    // The first call waits for its timeout (it may or may not have been applied) and
    // queues the catalog's distrust; every later one is skipped and queued.
    index.add(IndexName::Catalog, "team/new").await;
    cache.unlink(r, &digest(1)).await;
    assert_eq!(cache.pending_removals(), 2);
    assert!(!cache.wipe_owed());
    for n in 10..(10 + MAX_PENDING as u32) {
        cache.forget_global(&digest(n)).await;
    }
    assert_eq!(cache.pending_removals(), 0, "given up for a wipe");
    assert!(cache.wipe_owed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_wipes_what_it_gave_up_and_nothing_else() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let cache = capped(&server).await;
    let index = cache.index();
    let (r, other) = (repo("team/app"), repo("team/other"));
    let stale = digest(1);
    cache.set_linked(&r, &stale, 10).await;
    assert_eq!(cache.linked(&r, &stale).await, Some(10));
    rebuild(&index, IndexName::Catalog, &["team/app"]).await;
    rebuild(&index, IndexName::Tags(&r), &["v1"]).await;
    // Another node is rebuilding a tag index; its walk may predate a lost change.
    let running = index
        .begin_rebuild(IndexName::Tags(&other))
        .await
        .expect("lease");
    let version = cache.version(&r).await.unwrap();
    let mut conn = raw(&server);
    let kept = unrelated(&mut conn);

    overflow(&server, &cache, &r).await;
    server.resume();
    wait_up(&cache).await;
    assert!(!cache.wipe_owed());
    assert_eq!(cache.pending_removals(), 0);

    // The distrust given up: the catalog is rebuilt, not trusted.
    assert!(index.page(IndexName::Catalog, None, None).await.is_none());
    assert!(index.begin_rebuild(IndexName::Catalog).await.is_some());
    // So is every index (the wipe cannot tell which a change named); names are kept.
    assert!(index.page(IndexName::Tags(&r), None, None).await.is_none());
    let names: Vec<String> = conn
        .zrange("berth::repository::team/app::tags", 0, -1)
        .unwrap();
    assert_eq!(names, ["v1"]);
    assert!(
        !index
            .complete_rebuild(IndexName::Tags(&other), &running, strings(&["x"]))
            .await,
        "a rebuild running through the outage completes nothing"
    );
    // The removal given up: the stale entry is not served.
    assert_eq!(cache.linked(&r, &stale).await, None);
    let left: bool = conn
        .exists(format!("repository::team/app::blobs::{stale}"))
        .unwrap();
    assert!(!left);
    assert_eq!(cache.global(&stale).await, None);
    // Versions moved on: no tag cached before is trusted.
    assert!(cache.version(&r).await.unwrap() > version);
    // Locks and keys that are not berth's survive.
    for key in kept {
        let there: bool = conn.exists(key).unwrap();
        assert!(there, "{key} was wiped");
    }
    let token: String = conn.get("berth::lock::tag::team/app::v1").unwrap();
    assert_eq!(token, "token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wipe_that_fails_midway_is_owed_still() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let cache = capped(&server).await;
    let index = cache.index();
    let r = repo("team/app");
    let stale = digest(1);
    cache.set_linked(&r, &stale, 10).await;
    rebuild(&index, IndexName::Catalog, &["team/app"]).await;
    // The catalog's rebuild lease, the first key a wipe removes.
    let mut conn = raw(&server);
    let _: () = conn.set("berth::catalog::rebuild", "t").unwrap();
    // Redis refuses SCAN (berth sends it only when wiping): the wipe fails after its
    // first step.
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "default", "-scan"])
        .query(&mut conn)
        .unwrap();

    overflow(&server, &cache, &r).await;
    server.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lease: bool = conn.exists("berth::catalog::rebuild").unwrap();
        if !lease {
            break;
        }
        assert!(Instant::now() < deadline, "no wipe was tried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Tried, failed at its scan: owed still, and Redis unused meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(cache.wipe_owed());
    assert!(!cache.is_up());
    let member: bool = conn
        .sismember("repository::team/app::blobs", stale.to_string())
        .unwrap();
    assert!(member, "the wipe went further than its scan");
    assert_eq!(cache.linked(&r, &stale).await, None, "Redis is not read");

    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "default", "+scan"])
        .query(&mut conn)
        .unwrap();
    wait_up(&cache).await;
    assert!(!cache.wipe_owed());
    assert_eq!(cache.linked(&r, &stale).await, None);
    let member: bool = conn
        .sismember("repository::team/app::blobs", stale.to_string())
        .unwrap();
    assert!(!member);
    assert!(index.page(IndexName::Catalog, None, None).await.is_none());
}
