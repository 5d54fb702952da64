//! One download per missing blob, however many clients ask at once. The first request
//! starts a download (a task of its own, so it outlives a client that goes away) into a
//! spool file; every request, the first included, reads that file as it grows, woken
//! by a watch channel as bytes land. The last byte of what a client asked for is held
//! back until the whole blob matched its digest, so a corrupt upstream answer reaches
//! no client complete: their streams fail. A download stays joinable until its blob is
//! committed to storage, then its spool file goes (readers keep their open handle).

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_core::{ByteStream, Digest};
use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;

/// Largest read handed to a client at once.
const READ_CHUNK: usize = 256 * 1024;

/// Why a download ended without a blob.
#[derive(Debug, Clone)]
pub(crate) enum FlightError {
    /// The upstream does not have it.
    NotFound,
    /// Anything else, said once for every client.
    Failed(Arc<str>),
}

/// How far a download is.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    /// The blob's size, once the upstream said.
    pub size: Option<u64>,
    /// Bytes in the spool file.
    pub written: u64,
    /// `Some` once it ended: verified, or failed.
    pub end: Option<Result<(), FlightError>>,
}

/// One download in progress.
pub(crate) struct Flight {
    path: PathBuf,
    progress: watch::Sender<Progress>,
}

impl Flight {
    /// Records what the download did (only the downloader calls this).
    pub(crate) fn update(&self, f: impl FnOnce(&mut Progress)) {
        self.progress.send_modify(f);
    }

    /// Ends the download, unless it already ended.
    pub(crate) fn end(&self, result: Result<(), FlightError>) {
        self.progress.send_if_modified(|p| {
            if p.end.is_some() {
                return false;
            }
            p.end = Some(result);
            true
        });
    }

    /// The spool file's path.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The blob's size, once the upstream said (or the download's error).
    pub(crate) async fn size(&self) -> Result<u64, FlightError> {
        let mut rx = self.progress.subscribe();
        loop {
            {
                let p = rx.borrow_and_update();
                match (&p.size, &p.end) {
                    (Some(s), _) => return Ok(*s),
                    (None, Some(Err(e))) => return Err(e.clone()),
                    (None, Some(Ok(()))) => return Ok(p.written),
                    (None, None) => {}
                }
            }
            if rx.changed().await.is_err() {
                return Err(FlightError::Failed("the download stopped".into()));
            }
        }
    }
}

/// Ends a flight as failed if its download task stops without ending it (a panic), so
/// no reader waits forever.
pub(crate) struct EndGuard(pub Arc<Flight>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0
            .end(Err(FlightError::Failed("the download stopped".into())));
    }
}

/// The downloads in progress, by digest.
pub(crate) struct Flights {
    spool: PathBuf,
    active: Mutex<HashMap<Digest, Arc<Flight>>>,
}

/// A reader of one download.
pub(crate) struct Joined {
    flight: Arc<Flight>,
    file: std::fs::File,
}

impl Flights {
    /// Downloads spooled in `spool` (created, and emptied of what a previous process
    /// left).
    pub(crate) fn new(spool: PathBuf) -> std::io::Result<Self> {
        if spool.exists() {
            std::fs::remove_dir_all(&spool)?;
        }
        std::fs::create_dir_all(&spool)?;
        Ok(Flights {
            spool,
            active: Mutex::new(HashMap::new()),
        })
    }

    /// Joins the download of `digest`, or starts it with `lead` (given the flight and
    /// the spool file to write).
    pub(crate) fn join(
        self: &Arc<Self>,
        digest: &Digest,
        lead: impl FnOnce(Arc<Flight>, std::fs::File) -> BoxFuture<'static, ()>,
    ) -> std::io::Result<Joined> {
        let mut active = self
            .active
            .lock()
            .map_err(|_| std::io::Error::other("download table poisoned"))?;
        if let Some(flight) = active.get(digest) {
            // Opened under the table's lock: the file cannot be removed before this.
            let file = std::fs::File::open(&flight.path)?;
            return Ok(Joined {
                flight: flight.clone(),
                file,
            });
        }
        let path = self.spool.join(format!(
            "{}-{}-{}",
            digest.algorithm(),
            digest.hex(),
            berth_core::UploadId::random()
        ));
        let writer = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)?;
        let file = std::fs::File::open(&path)?;
        let flight = Arc::new(Flight {
            path,
            progress: watch::channel(Progress::default()).0,
        });
        active.insert(digest.clone(), flight.clone());
        drop(active);
        tokio::spawn(lead(flight.clone(), writer));
        Ok(Joined { flight, file })
    }

    /// The download of `digest` in progress, if any (a `HEAD` asks it for the size
    /// rather than the upstream).
    pub(crate) fn active(&self, digest: &Digest) -> Option<Arc<Flight>> {
        let active = self.active.lock().ok()?;
        active.get(digest).cloned()
    }

    /// Retires a finished download: later requests find the blob in storage (or start
    /// again after a failure), and the spool file goes.
    pub(crate) fn land(&self, digest: &Digest, flight: &Arc<Flight>) {
        if let Ok(mut active) = self.active.lock() {
            if active.get(digest).is_some_and(|f| Arc::ptr_eq(f, flight)) {
                active.remove(digest);
            }
            if let Err(e) = std::fs::remove_file(&flight.path) {
                tracing::warn!("removing spool file {}: {e}", flight.path.display());
            }
        }
    }
}

impl Joined {
    /// The blob's size, once the upstream said (or the download's error).
    pub(crate) async fn size(&self) -> Result<u64, FlightError> {
        self.flight.size().await
    }

    /// The bytes `start..stop` as they arrive; fails, before its last byte, if the
    /// download does.
    pub(crate) fn stream(self, start: u64, stop: u64) -> ByteStream {
        struct State {
            rx: watch::Receiver<Progress>,
            file: tokio::fs::File,
            pos: u64,
            stop: u64,
            seeked: bool,
            failed: bool,
            _flight: Arc<Flight>,
        }
        let state = State {
            rx: self.flight.progress.subscribe(),
            file: tokio::fs::File::from_std(self.file),
            pos: start,
            stop,
            seeked: false,
            failed: false,
            _flight: self.flight,
        };
        let stream = futures::stream::unfold(state, |mut s| async move {
            if s.failed {
                // After an error, nothing more.
                return None;
            }
            loop {
                let (end, written) = {
                    let p = s.rx.borrow_and_update();
                    (p.end.clone(), p.written)
                };
                let verified = match end {
                    Some(Err(e)) => {
                        let e = std::io::Error::other(match e {
                            FlightError::NotFound => "the upstream lost the blob".to_owned(),
                            FlightError::Failed(m) => m.to_string(),
                        });
                        s.failed = true;
                        return Some((Err(e), s));
                    }
                    Some(Ok(())) => true,
                    None => false,
                };
                if s.pos >= s.stop {
                    if verified {
                        return None;
                    }
                } else {
                    // The last byte waits for the digest check.
                    let limit = if verified { s.stop } else { s.stop - 1 };
                    let available = written.min(limit);
                    if s.pos < available {
                        return Some(match read(&mut s, available).await {
                            Ok(b) => (Ok(b), s),
                            Err(e) => {
                                s.failed = true;
                                (Err(e), s)
                            }
                        });
                    }
                }
                if s.rx.changed().await.is_err() {
                    let e = std::io::Error::other("the download stopped");
                    s.failed = true;
                    return Some((Err(e), s));
                }
            }
        });

        async fn read(s: &mut State, available: u64) -> std::io::Result<Bytes> {
            if !s.seeked {
                s.file.seek(SeekFrom::Start(s.pos)).await?;
                s.seeked = true;
            }
            let want = (available - s.pos).min(READ_CHUNK as u64) as usize;
            let mut buf = vec![0u8; want];
            s.file.read_exact(&mut buf).await?;
            s.pos += want as u64;
            Ok(Bytes::from(buf))
        }
        Box::pin(stream)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use futures::StreamExt;

    use super::*;

    fn digest() -> Digest {
        Digest::of(berth_core::Algorithm::Sha256, b"0123456789")
    }

    /// Starts a download whose leader writes `bytes` and ends with `result`.
    async fn flight(
        dir: &std::path::Path,
        bytes: &'static [u8],
        result: Result<(), FlightError>,
    ) -> (Arc<Flights>, Joined, Joined) {
        let flights = Arc::new(Flights::new(dir.join("spool")).unwrap());
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let first = flights
            .join(&digest(), move |f, mut file| {
                Box::pin(async move {
                    f.update(|p| p.size = Some(10));
                    let _ = wait.await;
                    file.write_all(bytes).unwrap();
                    f.update(|p| p.written = bytes.len() as u64);
                    f.end(result);
                })
            })
            .unwrap();
        let second = flights
            .join(&digest(), |_, _| panic!("a second download started"))
            .unwrap();
        let _ = go.send(());
        (flights, first, second)
    }

    async fn collect(j: Joined, start: u64, stop: u64) -> (Vec<u8>, Option<String>) {
        let mut s = j.stream(start, stop);
        let mut out = Vec::new();
        while let Some(item) = s.next().await {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn readers_share_one_download_and_get_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let (_flights, a, b) = flight(dir.path(), b"0123456789", Ok(())).await;
        assert_eq!(a.size().await.unwrap(), 10);
        let (whole, err) = collect(a, 0, 10).await;
        assert_eq!((whole.as_slice(), err), (&b"0123456789"[..], None));
        let (part, err) = collect(b, 3, 6).await;
        assert_eq!((part.as_slice(), err), (&b"345"[..], None));
    }

    #[tokio::test]
    async fn a_failed_download_never_completes_a_stream() {
        let dir = tempfile::tempdir().unwrap();
        let (_flights, a, b) = flight(
            dir.path(),
            b"0123456789",
            Err(FlightError::Failed("digest mismatch".into())),
        )
        .await;
        for j in [a, b] {
            let (got, err) = collect(j, 0, 10).await;
            assert!(got.len() < 10, "the last byte waits for the check");
            assert_eq!(err.as_deref(), Some("digest mismatch"));
        }
    }
}
