//! Request rate limits (`berth.limits.ratelimit`, off by default): token buckets keyed
//! by client address and by authenticated user. A bucket holds up to `burst` tokens and
//! gains `rate` per second; each request takes one, and a request finding less than one
//! is refused with 429 `TOOMANYREQUESTS` and a `Retry-After` saying when one will be
//! there. Memory stays bounded: a bucket that has refilled is the same as none and is
//! dropped when room is needed, and each table holds at most [`MAX_BUCKETS`].
//!
//! The client address is the TCP peer (`ConnectInfo`); `X-Forwarded-For` and the like
//! are not read, since any client can write them. IPv6 clients are keyed by their /64,
//! the block one host is normally given, so one machine cannot spread over addresses.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use berth_metrics::Counter;

use crate::error::ApiError;

/// Buckets one table keeps at most (about 100 bytes each).
pub const MAX_BUCKETS: usize = 65_536;

/// One bucket's configuration: `rate` tokens a second, at most `burst` held.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketLimit {
    /// Tokens added per second (requests per second sustained); positive.
    pub rate: f64,
    /// Tokens a bucket holds at most (requests admitted at once); at least 1.
    pub burst: u32,
}

/// `berth.limits.ratelimit`: which buckets are on.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateLimit {
    /// A bucket per client address.
    pub per_client: Option<BucketLimit>,
    /// A bucket per authenticated user (checked once the access check knows the user).
    pub per_user: Option<BucketLimit>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// A table of token buckets under one limit, keyed by text.
#[derive(Debug)]
pub struct TokenBuckets {
    limit: BucketLimit,
    capacity: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl TokenBuckets {
    /// An empty table under `limit`, holding at most [`MAX_BUCKETS`].
    pub fn new(limit: BucketLimit) -> Self {
        Self::with_capacity(limit, MAX_BUCKETS)
    }

    fn with_capacity(limit: BucketLimit, capacity: usize) -> Self {
        TokenBuckets {
            limit,
            capacity: capacity.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token from `key`'s bucket, or answers how long until it holds one.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    /// Buckets held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Bucket>> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let BucketLimit { rate, burst } = self.limit;
        let burst = f64::from(burst);
        let mut buckets = self.lock();
        if !buckets.contains_key(key) && buckets.len() >= self.capacity {
            self.make_room(&mut buckets, now);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / rate;
        Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX))
    }

    /// Drops every bucket that has refilled (forgetting it changes nothing); if none
    /// has, the one left alone longest, so a flood of new keys cannot grow the table.
    fn make_room(&self, buckets: &mut HashMap<String, Bucket>, now: Instant) {
        let BucketLimit { rate, burst } = self.limit;
        let full = |b: &Bucket| {
            b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * rate
                >= f64::from(burst)
        };
        buckets.retain(|_, b| !full(b));
        if buckets.len() < self.capacity {
            return;
        }
        let oldest = buckets
            .iter()
            .min_by_key(|(_, b)| b.updated)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            buckets.remove(&k);
        }
    }
}

/// The configured tables.
#[derive(Debug)]
pub struct RateLimiter {
    per_client: Option<TokenBuckets>,
    per_user: Option<TokenBuckets>,
    /// Requests refused by each table, for the metrics.
    refused: [Counter; 2],
}

impl RateLimiter {
    /// The limiter `limit` describes; `None` when both buckets are off.
    pub fn new(limit: RateLimit) -> Option<Self> {
        if limit.per_client.is_none() && limit.per_user.is_none() {
            return None;
        }
        Some(RateLimiter {
            per_client: limit.per_client.map(TokenBuckets::new),
            per_user: limit.per_user.map(TokenBuckets::new),
            refused: Default::default(),
        })
    }

    /// Requests refused by the per-client buckets so far.
    pub fn refused_clients(&self) -> u64 {
        self.refused[0].get()
    }

    /// Requests refused by the per-user buckets so far.
    pub fn refused_users(&self) -> u64 {
        self.refused[1].get()
    }

    fn refuse(&self, table: usize, retry_after: Duration) -> ApiError {
        self.refused[table].inc();
        ApiError::RateLimited { retry_after }
    }

    /// Takes a token for the client at `ip`.
    pub fn check_client(&self, ip: IpAddr) -> Result<(), ApiError> {
        match &self.per_client {
            Some(t) => t
                .check(&client_key(ip))
                .map_err(|retry_after| self.refuse(0, retry_after)),
            None => Ok(()),
        }
    }

    /// Takes a token for an authenticated user; `dispatch` calls it right after the
    /// access check has named the user.
    pub fn check_user(&self, user: &str) -> Result<(), ApiError> {
        match &self.per_user {
            Some(t) => t
                .check(user)
                .map_err(|retry_after| self.refuse(1, retry_after)),
            None => Ok(()),
        }
    }
}

/// The bucket key of a client address: IPv4 (also mapped into IPv6) as is, IPv6 by /64.
pub(crate) fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Middleware: refuses a request its client's bucket has no token for. The address comes
/// from `ConnectInfo`; a router served without it (in-process tests) is not limited by
/// address.
pub(crate) async fn limit_by_client(
    State(limiter): State<Arc<RateLimiter>>,
    req: Request,
    next: Next,
) -> Response {
    let refused = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(Ok(()), |ConnectInfo(addr)| limiter.check_client(addr.ip()));
    if let Err(e) = refused {
        return e.into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rate: f64, burst: u32) -> BucketLimit {
        BucketLimit { rate, burst }
    }

    #[test]
    fn a_burst_passes_then_the_rate_refills() {
        let t = TokenBuckets::new(limit(2.0, 3));
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(t.check_at("a", start), Ok(()));
        }
        let wait = t.check_at("a", start).unwrap_err();
        assert!(
            (wait.as_secs_f64() - 0.5).abs() < 1e-6,
            "one token at 2/s: {wait:?}"
        );
        // Other keys have buckets of their own.
        assert_eq!(t.check_at("b", start), Ok(()));
        // Half a second later exactly one token is back.
        let later = start + Duration::from_millis(500);
        assert_eq!(t.check_at("a", later), Ok(()));
        assert!(t.check_at("a", later).is_err());
        // A long pause refills to the burst, never beyond it.
        let much_later = later + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(t.check_at("a", much_later), Ok(()));
        }
        assert!(t.check_at("a", much_later).is_err());
    }

    #[test]
    fn refused_requests_take_nothing() {
        let t = TokenBuckets::new(limit(1.0, 1));
        let start = Instant::now();
        assert_eq!(t.check_at("a", start), Ok(()));
        let at = start + Duration::from_millis(900);
        for _ in 0..10 {
            let wait = t.check_at("a", at).unwrap_err();
            assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        }
        assert_eq!(t.check_at("a", start + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn slow_rates_wait_long() {
        let t = TokenBuckets::new(limit(0.1, 1));
        let now = Instant::now();
        assert_eq!(t.check_at("a", now), Ok(()));
        let wait = t.check_at("a", now).unwrap_err();
        assert!((wait.as_secs_f64() - 10.0).abs() < 1e-6, "{wait:?}");
    }

    #[test]
    fn the_table_stays_bounded() {
        let t = TokenBuckets::with_capacity(limit(1.0, 2), 4);
        let start = Instant::now();
        // Four busy keys fill the table, "a" first.
        for (i, k) in ["a", "b", "c", "d"].into_iter().enumerate() {
            assert_eq!(
                t.check_at(k, start + Duration::from_millis(i as u64)),
                Ok(())
            );
        }
        assert_eq!(t.len(), 4);
        // A fifth key evicts the least recently seen, never growing the table.
        let soon = start + Duration::from_millis(10);
        assert_eq!(t.check_at("b", soon), Ok(()));
        assert_eq!(t.check_at("e", soon), Ok(()));
        assert_eq!(t.len(), 4);
        let lock = t.lock();
        assert!(!lock.contains_key("a") && lock.contains_key("b") && lock.contains_key("e"));
        drop(lock);
        // Once buckets have refilled they are all dropped to make room.
        let later = start + Duration::from_secs(60);
        assert_eq!(t.check_at("f", later), Ok(()));
        assert_eq!(t.len(), 1);
        for i in 0..100 {
            let _ = t.check_at(&format!("k{i}"), later);
        }
        assert!(t.len() <= 4);
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        assert_eq!(client_key(mapped), "127.0.0.2");
        assert_eq!(client_key("10.0.0.1".parse().unwrap()), "10.0.0.1");
    }

    #[test]
    fn users_and_clients_are_limited_apart() {
        let limiter = RateLimiter::new(RateLimit {
            per_client: Some(limit(0.001, 1)),
            per_user: Some(limit(0.001, 2)),
        })
        .unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(limiter.check_client(ip).is_ok());
        assert!(matches!(
            limiter.check_client(ip),
            Err(ApiError::RateLimited { .. })
        ));
        assert!(limiter.check_user("alice").is_ok());
        assert!(limiter.check_user("alice").is_ok());
        assert!(limiter.check_user("alice").is_err());
        assert!(limiter.check_user("bob").is_ok());
        assert!(RateLimiter::new(RateLimit::default()).is_none());
    }
}
