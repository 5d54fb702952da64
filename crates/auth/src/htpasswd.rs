//! Users from an htpasswd file (bcrypt entries, as `htpasswd -B` writes them), checked
//! with a short-lived memory of successful checks so that bcrypt's deliberate cost is
//! paid once per client rather than once per request. The file is re-read when it
//! changes, and a change forgets every remembered check.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use quick_cache::sync::Cache;
use sha2::{Digest, Sha256};

/// How long a successful check is remembered.
pub const REMEMBER_FOR: Duration = Duration::from_secs(60);
/// How many successful checks are remembered at most.
const REMEMBERED: usize = 10_000;
/// How often, at most, the file's modification time is looked at.
const RECHECK_FILE: Duration = Duration::from_secs(1);

/// Why the users file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `user:hash`.
    #[error("line {line}: expected user:bcrypt-hash")]
    Syntax {
        /// Line number (from 1).
        line: usize,
    },
    /// A line uses a hash other than bcrypt.
    #[error(
        "line {line}: user {user:?} has a non-bcrypt hash (only htpasswd -B entries are accepted)"
    )]
    NotBcrypt {
        /// Line number (from 1).
        line: usize,
        /// The user.
        user: String,
    },
}

/// Parses htpasswd text: `user:hash` lines; blank lines and `#` comments skipped.
pub fn parse(text: &str) -> Result<HashMap<String, String>, HtpasswdError> {
    let mut users = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, hash) = line
            .split_once(':')
            .ok_or(HtpasswdError::Syntax { line: i + 1 })?;
        if user.is_empty() || hash.is_empty() {
            return Err(HtpasswdError::Syntax { line: i + 1 });
        }
        if !["$2a$", "$2b$", "$2y$", "$2x$"]
            .iter()
            .any(|p| hash.starts_with(p))
        {
            return Err(HtpasswdError::NotBcrypt {
                line: i + 1,
                user: user.to_owned(),
            });
        }
        users.insert(user.to_owned(), hash.to_owned());
    }
    Ok(users)
}

struct Loaded {
    users: Arc<HashMap<String, String>>,
    modified: Option<SystemTime>,
    generation: u64,
}

/// A users file and the memory of recent successful checks against it.
pub struct Htpasswd {
    path: PathBuf,
    loaded: RwLock<Loaded>,
    /// When the file was loaded; `next_stat_ms` counts from it.
    born: Instant,
    /// Milliseconds after `born` before which the file is not looked at again: one
    /// atomic load per check, and one caller at a time wins the look.
    next_stat_ms: AtomicU64,
    remembered: Cache<[u8; 32], Instant>,
    /// Keys the memory so that its contents say nothing about passwords.
    salt: [u8; 32],
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read(path: &Path) -> Result<HashMap<String, String>, HtpasswdError> {
    let text = std::fs::read_to_string(path).map_err(|source| HtpasswdError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text)
}

impl Htpasswd {
    /// Reads the file; it must exist and parse.
    pub fn load(path: &Path) -> Result<Htpasswd, HtpasswdError> {
        let users = read(path)?;
        Ok(Htpasswd {
            path: path.to_owned(),
            loaded: RwLock::new(Loaded {
                users: Arc::new(users),
                modified: modified(path),
                generation: 0,
            }),
            born: Instant::now(),
            next_stat_ms: AtomicU64::new(RECHECK_FILE.as_millis() as u64),
            remembered: Cache::new(REMEMBERED),
            salt: rand::random(),
        })
    }

    /// Re-reads the file when its modification time changed. A file that became
    /// unreadable or invalid keeps the last good users (and says so once per change).
    fn refresh(&self) {
        let now = self.born.elapsed().as_millis() as u64;
        let due = self.next_stat_ms.load(Ordering::Relaxed);
        let next = now + RECHECK_FILE.as_millis() as u64;
        if now < due
            || self
                .next_stat_ms
                .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let now = modified(&self.path);
        let current = self.loaded.read().map(|l| l.modified).unwrap_or(None);
        if now == current {
            return;
        }
        let Ok(mut loaded) = self.loaded.write() else {
            return;
        };
        loaded.modified = now;
        match read(&self.path) {
            Ok(users) => {
                loaded.users = Arc::new(users);
                loaded.generation += 1;
                tracing::info!(path = %self.path.display(), users = loaded.users.len(), "users file reloaded");
            }
            Err(e) => tracing::warn!("keeping the previous users: {e}"),
        }
    }

    fn snapshot(&self) -> (Arc<HashMap<String, String>>, u64) {
        match self.loaded.read() {
            Ok(l) => (l.users.clone(), l.generation),
            Err(_) => (Arc::new(HashMap::new()), u64::MAX),
        }
    }

    fn key(&self, generation: u64, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(generation.to_le_bytes());
        h.update((user.len() as u64).to_le_bytes());
        h.update(user.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// Whether `user` exists in the file now.
    pub fn has_user(&self, user: &str) -> bool {
        self.refresh();
        self.snapshot().0.contains_key(user)
    }

    /// Whether `password` is `user`'s. bcrypt runs on the blocking pool; a success is
    /// remembered for [`REMEMBER_FOR`].
    pub async fn verify(&self, user: &str, password: &str) -> bool {
        self.refresh();
        let (users, generation) = self.snapshot();
        let Some(hash) = users.get(user) else {
            return false;
        };
        let key = self.key(generation, user, password);
        if let Some(at) = self.remembered.get(&key) {
            if at.elapsed() < REMEMBER_FOR {
                return true;
            }
            self.remembered.remove(&key);
        }
        let hash = hash.clone();
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        if ok {
            self.remembered.insert(key, Instant::now());
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bcrypt_lines_only() {
        let users = parse("# c\n\nalice:$2y$05$abc\nbob:$2b$10$def\n").unwrap();
        assert_eq!(users.len(), 2);
        assert!(matches!(
            parse("carol:{SHA}xyz"),
            Err(HtpasswdError::NotBcrypt { line: 1, .. })
        ));
        assert!(matches!(
            parse("ok:$2y$05$x\nnocolon"),
            Err(HtpasswdError::Syntax { line: 2 })
        ));
        assert!(matches!(
            parse(":$2y$05$x"),
            Err(HtpasswdError::Syntax { line: 1 })
        ));
    }

    #[tokio::test]
    async fn verifies_remembers_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        let hash = bcrypt::hash("secret", 4).unwrap();
        std::fs::write(&path, format!("alice:{hash}\n")).unwrap();
        let h = Htpasswd::load(&path).unwrap();
        assert!(h.verify("alice", "secret").await);
        assert!(h.verify("alice", "secret").await);
        assert!(!h.verify("alice", "wrong").await);
        assert!(!h.verify("bob", "secret").await);

        // A rewritten file drops alice; the remembered success must not outlive it.
        std::thread::sleep(Duration::from_millis(20));
        let hash = bcrypt::hash("pw", 4).unwrap();
        std::fs::write(&path, format!("bob:{hash}\n")).unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        h.next_stat_ms.store(0, Ordering::Relaxed);
        assert!(!h.verify("alice", "secret").await);
        assert!(h.verify("bob", "pw").await);
        assert!(h.has_user("bob") && !h.has_user("alice"));
    }
}
