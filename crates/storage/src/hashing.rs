//! Hashing an upload while it streams. Small bodies are hashed inline; past a threshold
//! the running hash moves to a blocking thread fed through a short queue, so receiving,
//! hashing and writing run on different cores.

use berth_core::{Digester, Error};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Bytes hashed inline before hashing moves to its own thread.
const INLINE_LIMIT: u64 = 1024 * 1024;
/// Chunks queued for the hashing thread.
const QUEUE: usize = 2;

/// A running hash that may be inline or on a thread. (One per request, on its stack:
/// boxing the larger variant would only add an allocation.)
#[allow(clippy::large_enum_variant)]
pub(crate) enum StreamHasher {
    /// Hashed on the caller's task.
    Inline(Digester, u64),
    /// Hashed on a blocking thread.
    Piped(mpsc::Sender<Bytes>, JoinHandle<Digester>),
    /// Transient state while switching.
    Empty,
}

impl StreamHasher {
    /// Continues from `h`.
    pub(crate) fn new(h: Digester) -> Self {
        StreamHasher::Inline(h, 0)
    }

    /// Feeds a chunk.
    pub(crate) async fn update(&mut self, chunk: &Bytes) -> Result<(), Error> {
        if let StreamHasher::Inline(h, seen) = self {
            h.update(chunk);
            *seen += chunk.len() as u64;
            if *seen >= INLINE_LIMIT
                && let StreamHasher::Inline(h, _) = std::mem::replace(self, StreamHasher::Empty)
            {
                let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
                let handle = tokio::task::spawn_blocking(move || {
                    let mut h = h;
                    while let Some(b) = rx.blocking_recv() {
                        h.update(&b);
                    }
                    h
                });
                *self = StreamHasher::Piped(tx, handle);
            }
            return Ok(());
        }
        if let StreamHasher::Piped(tx, _) = self
            && tx.send(chunk.clone()).await.is_ok()
        {
            return Ok(());
        }
        Err(Error::internal("hashing thread stopped"))
    }

    /// The hash of everything fed.
    pub(crate) async fn finish(self) -> Result<Digester, Error> {
        match self {
            StreamHasher::Inline(h, _) => Ok(h),
            StreamHasher::Piped(tx, handle) => {
                drop(tx);
                handle
                    .await
                    .map_err(|e| Error::internal_from("hashing thread", e))
            }
            StreamHasher::Empty => Err(Error::internal("hash state lost")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::{Algorithm, Digest};

    #[tokio::test]
    async fn same_digest_inline_or_piped() {
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 241) as u8).collect();
        let mut s = StreamHasher::new(Digester::new(Algorithm::Sha256));
        for c in data.chunks(300_000) {
            s.update(&Bytes::copy_from_slice(c)).await.unwrap();
        }
        assert!(matches!(s, StreamHasher::Piped(..)));
        assert_eq!(
            s.finish().await.unwrap().finish(),
            Digest::of(Algorithm::Sha256, &data)
        );
    }
}
