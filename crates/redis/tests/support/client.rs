//! Test support: berth's Redis client connected to a [`RedisServer`], and a plain
//! connection to look at what it wrote.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_redis::{RedisConfig, RedisDescriptors, RedisIndex};
use berth_storage::{IndexName, SharedIndex};

use super::server::RedisServer;

/// The descriptor cache (and the connection every other Redis service shares) on
/// `server`, once connected.
pub async fn connected(server: &RedisServer) -> Arc<RedisDescriptors> {
    let cache = RedisDescriptors::start(&RedisConfig::new(server.addr())).unwrap();
    wait_up(&cache).await;
    cache
}

/// Waits (up to 10 s) until `cache` has connected.
pub async fn wait_up(cache: &RedisDescriptors) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cache.is_up() {
        assert!(Instant::now() < deadline, "redis did not connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plain connection to `server`.
pub fn raw(server: &RedisServer) -> redis::Connection {
    redis::Client::open(format!("redis://{}/", server.addr()))
        .unwrap()
        .get_connection()
        .unwrap()
}

/// `v` as owned strings.
pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Builds `index` from `names` as a node would after walking storage.
pub async fn rebuild(index: &RedisIndex, at: IndexName<'_>, names: &[&str]) {
    let lease = index.begin_rebuild(at).await.expect("lease");
    assert!(index.complete_rebuild(at, &lease, strings(names)).await);
}
