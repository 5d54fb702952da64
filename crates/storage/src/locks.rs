//! Per-key async locks, so that a write to storage and the matching cache update happen
//! as one step with respect to other writers and to readers filling the cache. Entries
//! exist only while someone holds or waits for them.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

/// A lock per key.
pub(crate) struct KeyedLocks<K> {
    map: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K> Default for KeyedLocks<K> {
    fn default() -> Self {
        KeyedLocks {
            map: Mutex::new(HashMap::new()),
        }
    }
}

/// A held key lock; released (and its entry dropped when nobody else wants it) on drop.
pub(crate) struct KeyGuard<'a, K: Eq + Hash> {
    locks: &'a KeyedLocks<K>,
    key: Option<K>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl<K: Eq + Hash + Clone> KeyedLocks<K> {
    /// Waits for the lock of `key`.
    pub(crate) async fn lock(&self, key: K) -> KeyGuard<'_, K> {
        let mutex = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        let guard = mutex.lock_owned().await;
        KeyGuard {
            locks: self,
            key: Some(key),
            guard: Some(guard),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl<K: Eq + Hash> Drop for KeyGuard<'_, K> {
    fn drop(&mut self) {
        let mut map = self.locks.map.lock().unwrap_or_else(|p| p.into_inner());
        drop(self.guard.take());
        if let Some(key) = self.key.take()
            && map.get(&key).is_some_and(|m| Arc::strong_count(m) == 1)
        {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_holder_per_key_and_no_leftovers() {
        let locks: Arc<KeyedLocks<u32>> = Arc::default();
        let counter = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (locks, counter) = (locks.clone(), counter.clone());
                tokio::spawn(async move {
                    let _g = locks.lock(1).await;
                    let before = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    counter.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    before
                })
            })
            .collect();
        let other = locks.lock(2).await;
        for t in tasks {
            assert_eq!(t.await.unwrap(), 0, "two holders of one key at once");
        }
        assert_eq!(locks.len(), 1);
        drop(other);
        assert_eq!(locks.len(), 0);
    }
}
