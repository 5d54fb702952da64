//! [`RedisIndex`]: the catalog and tag listings as sorted sets in Redis (every score 0,
//! so `ZRANGEBYLEX` reads them in byte order, a page per call), over the descriptor
//! cache's [`Link`] (its timeouts, breaker, metrics and queue). What the storage side
//! relies on is in `berth_storage::SharedIndex`; here is how Redis keeps it:
//! - Order: tags are compared as bytes already. Catalog names are compared component
//!   by component (`a/b` before `a-b`), which is byte order once `/` is written as
//!   `\0`, a byte below every other (see [`encode`] and [`catalog_after`]).
//! - Completeness: the empty member (never a name) marks a complete index. It lives in
//!   the index's own key, so a key flushed or evicted takes its mark with it.
//! - Rebuilding: `begin` takes the lease (`SET NX PX`) and empties the index, the walk's
//!   names go to a key of their own, and `complete` merges them, takes out the names
//!   removed meanwhile (a removal records its name while a lease exists) and sets the
//!   mark, in one script, only while the lease is still the caller's and the gathered
//!   key is whole.
//! - An update that may not have reached Redis queues the index's distrust (the mark
//!   and any lease removed), sent once Redis answers and before this node reads it again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use berth_core::Page;
use berth_storage::{IndexName, LEASE_RENEWAL, Lease, SharedIndex};
use redis::{FromRedisValue, Pipeline};

use crate::keys;
use crate::link::{Kind, Link};

/// How long a rebuild's lease lasts unless renewed (every `LEASE_RENEWAL`).
const LEASE: Duration = Duration::from_secs(LEASE_RENEWAL.as_secs() * 6);
/// Names sent to Redis per call while a rebuild gathers them.
const BATCH: usize = 1000;
/// The member marking a complete index.
const COMPLETE: &str = "";

/// Takes a name out and, while a rebuild's lease exists, records it as removed.
const REMOVE: &str = r"
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('SADD', KEYS[3], ARGV[1])
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
return 1";

/// Takes the lease of an incomplete index and empties it: 1, or 0 when complete or
/// leased already.
const BEGIN: &str = r"
if redis.call('ZSCORE', KEYS[1], '') then return 0 end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1], KEYS[3])
return 1";

/// Extends the lease while it is the caller's: 1, else 0.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0";

/// Merges the gathered names (all `ARGV[2]` of them) into the index, takes out the
/// names removed meanwhile and marks it complete: 1; 0 when the lease is not the
/// caller's or the gathered key is not whole (nothing changes but the cleanup).
const COMPLETE_SCRIPT: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  redis.call('DEL', KEYS[4])
  return 0
end
if redis.call('ZCARD', KEYS[4]) ~= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[2], KEYS[4])
  return 0
end
redis.call('ZUNIONSTORE', KEYS[1], 2, KEYS[1], KEYS[4])
local removed = redis.call('SMEMBERS', KEYS[3])
for i = 1, #removed do
  redis.call('ZREM', KEYS[1], removed[i])
end
redis.call('ZADD', KEYS[1], 0, '')
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
return 1";

/// The member a catalog name is stored as: `/` written as `\0`, so that byte order is
/// catalog order (a separator below every other byte sorts a name before its longer
/// siblings, component by component).
pub fn encode(name: &str) -> String {
    name.replace('/', "\0")
}

/// The name a catalog member stands for.
pub fn decode(member: &str) -> String {
    member.replace('\0', "/")
}

/// The `ZRANGEBYLEX` lower bound of the catalog names after `last` in catalog order.
/// Names hold no `\0`; a `last` that does (nothing a client should send, but a query
/// can) is cut there: every name whose component at that place starts with what comes
/// before it, and goes on, is after `last`, and one equal to it is before.
pub fn catalog_after(last: Option<&str>) -> String {
    match last {
        None => "(".to_owned(),
        Some(last) => match last.split_once('\0') {
            None => format!("({}", encode(last)),
            Some((head, _)) => format!("[{}\u{1}", encode(head)),
        },
    }
}

/// The listings in Redis. Cheap to share: clone the `Arc`.
pub struct RedisIndex {
    link: Arc<Link>,
}

impl std::fmt::Debug for RedisIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisIndex")
            .field("up", &self.link.is_up())
            .finish()
    }
}

/// An index's key.
fn key(index: IndexName<'_>) -> String {
    match index {
        IndexName::Catalog => keys::CATALOG.to_owned(),
        IndexName::Tags(repo) => keys::tags(repo),
    }
}

/// A name as the index stores it.
fn member(index: IndexName<'_>, name: &str) -> String {
    match index {
        IndexName::Catalog => encode(name),
        IndexName::Tags(_) => name.to_owned(),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Adds `EVAL script` over `keys` to `pipe`; its arguments follow.
fn eval<'p>(pipe: &'p mut Pipeline, script: &str, keys: &[&str]) -> &'p mut Pipeline {
    let cmd = pipe.cmd("EVAL").arg(script).arg(keys.len());
    for k in keys {
        cmd.arg(*k);
    }
    cmd
}

impl RedisIndex {
    pub(crate) fn new(link: Arc<Link>) -> Self {
        RedisIndex { link }
    }

    /// Sends an update and answers its replies; one that may not have reached Redis
    /// (`None`) leaves the index distrusted.
    async fn update<T: FromRedisValue>(&self, index: &str, pipe: &Pipeline) -> Option<T> {
        let answer = self.link.query::<T>(pipe, Kind::Write).await;
        if answer.is_none() {
            let mut distrust = redis::pipe();
            distrust.atomic();
            distrust.cmd("ZREM").arg(index).arg(COMPLETE).ignore();
            distrust.cmd("DEL").arg(keys::lease(index)).ignore();
            self.link.queue_once(index.to_owned(), distrust);
        }
        answer
    }
}

#[async_trait]
impl SharedIndex for RedisIndex {
    async fn page(
        &self,
        index: IndexName<'_>,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Option<Page> {
        let from = match index {
            IndexName::Catalog => catalog_after(last),
            IndexName::Tags(_) => format!("({}", last.unwrap_or("")),
        };
        let key = key(index);
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("ZSCORE").arg(&key).arg(COMPLETE);
        let range = pipe.cmd("ZRANGEBYLEX").arg(&key).arg(from).arg("+");
        if let Some(n) = n {
            range.arg("LIMIT").arg(0).arg(n.saturating_add(1));
        }
        let (complete, mut members): (Option<f64>, Vec<String>) =
            self.link.query(&pipe, Kind::Read).await?;
        complete?;
        let more = n.is_some_and(|n| n > 0 && members.len() > n);
        if let Some(n) = n {
            members.truncate(n);
        }
        let entries = match index {
            IndexName::Catalog => members.iter().map(|m| decode(m)).collect(),
            IndexName::Tags(_) => members,
        };
        Some(Page { entries, more })
    }

    async fn add(&self, index: IndexName<'_>, name: &str) -> bool {
        let key = key(index);
        let member = member(index, name);
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("ZADD").arg(&key).arg(0).arg(&member);
        // Added again after a removal a running rebuild recorded: no longer removed.
        pipe.cmd("SREM")
            .arg(keys::removed(&key))
            .arg(&member)
            .ignore();
        let added: Option<(u64,)> = self.update(&key, &pipe).await;
        added.is_some_and(|(n,)| n > 0)
    }

    async fn remove(&self, index: IndexName<'_>, name: &str) {
        let key = key(index);
        let (lease, removed) = (keys::lease(&key), keys::removed(&key));
        let mut pipe = redis::pipe();
        eval(&mut pipe, REMOVE, &[&key, &lease, &removed])
            .arg(member(index, name))
            .arg(millis(LEASE))
            .ignore();
        self.update::<()>(&key, &pipe).await;
    }

    async fn begin_rebuild(&self, index: IndexName<'_>) -> Option<Lease> {
        let key = key(index);
        let (lease, removed) = (keys::lease(&key), keys::removed(&key));
        let token = format!("{:016x}", rand::random::<u64>());
        let mut pipe = redis::pipe();
        eval(&mut pipe, BEGIN, &[&key, &lease, &removed])
            .arg(&token)
            .arg(millis(LEASE));
        let (taken,): (i64,) = self.link.query(&pipe, Kind::Write).await?;
        (taken == 1).then_some(Lease(token))
    }

    async fn renew(&self, index: IndexName<'_>, lease: &Lease) -> bool {
        let lease_key = keys::lease(&key(index));
        let mut pipe = redis::pipe();
        eval(&mut pipe, RENEW, &[&lease_key])
            .arg(&lease.0)
            .arg(millis(LEASE));
        let renewed: Option<(i64,)> = self.link.query(&pipe, Kind::Write).await;
        renewed == Some((1,))
    }

    async fn complete_rebuild(
        &self,
        index: IndexName<'_>,
        lease: &Lease,
        names: Vec<String>,
    ) -> bool {
        let key = key(index);
        let lease_key = keys::lease(&key);
        let gathered = keys::rebuilt(&key, &lease.0);
        let mut members: Vec<String> = names.iter().map(|n| member(index, n)).collect();
        members.sort_unstable();
        members.dedup();
        for batch in members.chunks(BATCH) {
            let mut pipe = redis::pipe();
            eval(&mut pipe, RENEW, &[&lease_key])
                .arg(&lease.0)
                .arg(millis(LEASE));
            let add = pipe.cmd("ZADD").arg(&gathered);
            for m in batch {
                add.arg(0).arg(m);
            }
            add.ignore();
            pipe.cmd("PEXPIRE")
                .arg(&gathered)
                .arg(millis(LEASE))
                .ignore();
            let renewed: Option<(i64,)> = self.link.query(&pipe, Kind::Write).await;
            if renewed != Some((1,)) {
                return false;
            }
        }
        let mut pipe = redis::pipe();
        eval(
            &mut pipe,
            COMPLETE_SCRIPT,
            &[&key, &lease_key, &keys::removed(&key), &gathered],
        )
        .arg(&lease.0)
        .arg(members.len());
        let done: Option<(i64,)> = self.link.query(&pipe, Kind::Write).await;
        done == Some((1,))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Component-wise order, as the storage side's catalog compares names.
    fn catalog_order(a: &str, b: &str) -> std::cmp::Ordering {
        a.split('/').cmp(b.split('/'))
    }

    /// Random strings over the characters that decide the order: the separator, the
    /// name characters just below and above it, `\0` and `\u{1}` (which only a `last`
    /// can hold) and a high one.
    fn random_string(rng: &mut StdRng, name: bool) -> String {
        let alphabet: &[char] = if name {
            &['/', '-', '.', '_', '0', 'a', 'z']
        } else {
            &['/', '-', '.', '_', '0', 'a', 'z', '\0', '\u{1}', ' ', '~']
        };
        (0..rng.random_range(0..6))
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect()
    }

    #[test]
    fn byte_order_of_members_is_catalog_order() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..20_000 {
            let (a, b) = (random_string(&mut rng, true), random_string(&mut rng, true));
            assert_eq!(
                encode(&a).cmp(&encode(&b)),
                catalog_order(&a, &b),
                "{a:?} {b:?}"
            );
            assert_eq!(decode(&encode(&a)), a);
        }
        assert!(encode("a/b") < encode("a-b"));
        assert!(encode("a") < encode("a/b"));
    }

    #[test]
    fn the_lower_bound_of_any_last_selects_exactly_the_names_after_it() {
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..20_000 {
            let name = random_string(&mut rng, true);
            let last = random_string(&mut rng, false);
            let bound = catalog_after(Some(&last));
            let member = encode(&name);
            // `ZRANGEBYLEX`'s reading of the bound.
            let selected = match bound.split_at(1) {
                ("(", b) => member.as_str() > b,
                ("[", b) => member.as_str() >= b,
                _ => unreachable!("bounds start with ( or ["),
            };
            assert_eq!(
                selected,
                catalog_order(&name, &last).is_gt(),
                "name {name:?} last {last:?} bound {bound:?}"
            );
        }
        // No `last`: everything but the mark of completeness.
        assert_eq!(catalog_after(None), "(");
        assert!(COMPLETE < encode("a").as_str());
    }
}
