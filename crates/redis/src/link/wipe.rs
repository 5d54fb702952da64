//! The wipe a full queue leaves owed (see `link`): on reconnection, before any call
//! goes through, every key a queued change could have named is brought to where that
//! change would have left it, found with `SCAN MATCH` (a page of [`SCAN_COUNT`] per
//! round trip; never `KEYS` or `FLUSHDB`: the Redis may hold distribution's keys and
//! other applications' data), and each page changed in one round trip:
//! - descriptor-cache entries (`blobs::<digest>`, `repository::<name>::blobs`,
//!   `repository::<name>::blobs::<digest>`) are unlinked, as a queued `forget_global` or
//!   `unlink` would have removed one of them; a later lookup reads storage and fills
//!   them again;
//! - every index loses its completeness as a queued distrust would have: rebuild leases
//!   (`berth::catalog::rebuild`, `berth::repository::<name>::tags::rebuild`) are
//!   unlinked, then the mark (the empty member) is taken out of every index, keeping its
//!   names (a rebuild started meanwhile keeps the updates made since it emptied the
//!   index). Leases go first: a rebuild whose walk may predate a lost update loses its
//!   lease before the marks are scanned, or, if it completes before its lease is
//!   scanned, its mark is there when the marks are (a key that exists for a whole scan
//!   is returned by it). A rebuild that takes its lease after the lease scan walks
//!   storage after every change the queue gave up, which came before the wipe began;
//! - every version counter moves on (`INCR`, as a queued bump would have for one of
//!   them), so no node trusts a tag or revision cached under an earlier value; a counter
//!   gone meanwhile is left to its next reader, which starts it afresh above every
//!   earlier value.
//!
//! Left alone: locks (`berth::lock::*`), a rebuild's gathered names and removals (they
//! expire, and are of no use without the lease), and every key whose name does not
//! parse as one of berth's (`keys::role`). A key filled by another node while the scan
//! runs was filled after the changes the queue gave up were made in storage.
//! Each call is bounded by the link's timeouts; a wipe that fails is owed still, and
//! done from its start on the next reconnection (every step may be repeated).

use redis::aio::MultiplexedConnection;

use super::{Kind, Link};
use crate::keys::{self, Role};

/// Keys Redis looks at per `SCAN` call.
const SCAN_COUNT: usize = 1000;

/// Takes the mark out of each index named (sorted sets only: no key that is not one
/// fails the wipe).
const UNMARK: &str = r"
for _, key in ipairs(KEYS) do
  if redis.call('TYPE', key).ok == 'zset' then redis.call('ZREM', key, '') end
end
return 0";

/// Moves each counter named on, if it still exists (`pcall`: a value that is not a
/// counter fails nothing).
const BUMP: &str = r"
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.pcall('INCR', key) end
end
return 0";

/// How many keys of each kind a wipe acted on.
#[derive(Debug, Default)]
pub(super) struct Wiped {
    pub descriptors: usize,
    pub indexes: usize,
    pub leases: usize,
    pub versions: usize,
}

/// One scan: the keys named outright, then those matching `pattern`; keys of `roles`
/// are acted on.
struct Pass {
    fixed: &'static [&'static str],
    pattern: &'static str,
    roles: &'static [Role],
}

/// In order: leases (and counters) before marks (see the module's header).
const PASSES: [Pass; 4] = [
    Pass {
        fixed: &[keys::CATALOG_LEASE],
        pattern: keys::REPOSITORY_KEYS,
        roles: &[Role::Lease, Role::Version],
    },
    Pass {
        fixed: &[keys::CATALOG],
        pattern: keys::TAG_INDEXES,
        roles: &[Role::Index],
    },
    Pass {
        fixed: &[],
        pattern: keys::GLOBALS,
        roles: &[Role::Descriptor],
    },
    Pass {
        fixed: &[],
        pattern: keys::LINKS,
        roles: &[Role::Descriptor],
    },
];

impl Link {
    /// Does the wipe over `conn`.
    pub(super) async fn wipe(&self, conn: &mut MultiplexedConnection) -> Result<Wiped, String> {
        let mut wiped = Wiped::default();
        for pass in &PASSES {
            let fixed = pass.fixed.iter().map(|k| k.as_bytes().to_vec()).collect();
            self.act(conn, fixed, pass.roles, &mut wiped).await?;
            let mut cursor = "0".to_owned();
            loop {
                let mut pipe = redis::pipe();
                pipe.cmd("SCAN")
                    .arg(&cursor)
                    .arg("MATCH")
                    .arg(pass.pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT);
                let ((next, found),): ((String, Vec<Vec<u8>>),) = self
                    .send(conn, &pipe, Kind::Read)
                    .await
                    .map_err(|e| format!("scanning {}: {e}", pass.pattern))?;
                self.act(conn, found, pass.roles, &mut wiped).await?;
                if next == "0" {
                    break;
                }
                cursor = next;
            }
        }
        Ok(wiped)
    }

    /// Acts on those of `found` whose role is one of `roles`, in one round trip.
    async fn act(
        &self,
        conn: &mut MultiplexedConnection,
        found: Vec<Vec<u8>>,
        roles: &[Role],
        wiped: &mut Wiped,
    ) -> Result<(), String> {
        let (mut unlink, mut unmark, mut bump) = (Vec::new(), Vec::new(), Vec::new());
        for key in found {
            match keys::role(&key).filter(|r| roles.contains(r)) {
                Some(Role::Descriptor) => {
                    wiped.descriptors += 1;
                    unlink.push(key);
                }
                Some(Role::Lease) => {
                    wiped.leases += 1;
                    unlink.push(key);
                }
                Some(Role::Index) => {
                    wiped.indexes += 1;
                    unmark.push(key);
                }
                Some(Role::Version) => {
                    wiped.versions += 1;
                    bump.push(key);
                }
                None => {}
            }
        }
        let mut pipe = redis::pipe();
        if !unlink.is_empty() {
            pipe.cmd("UNLINK").arg(&unlink).ignore();
        }
        for (script, named) in [(UNMARK, &unmark), (BUMP, &bump)] {
            if !named.is_empty() {
                pipe.cmd("EVAL")
                    .arg(script)
                    .arg(named.len())
                    .arg(named)
                    .ignore();
            }
        }
        if unlink.is_empty() && unmark.is_empty() && bump.is_empty() {
            return Ok(());
        }
        self.send::<()>(conn, &pipe, Kind::Write)
            .await
            .map_err(|e| format!("removing: {e}"))
    }
}
