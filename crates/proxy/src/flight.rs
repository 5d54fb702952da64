//! One download per missing blob, however many clients ask at once. The first request
//! starts a download (a task of its own, so it outlives a client that goes away) into a
//! spool file, written by a thread of its own ([`SpoolWriter`]) so the download's task
//! receives and hashes while the bytes go to the page cache; every request, the first
//! included, reads that file as it grows, woken by a watch channel as bytes land. Reads
//! go through a filesystem driver rooted at the spool directory, which hands large ones
//! over as registered memory maps: a plain connection sends those with `sendfile`, so
//! the bytes reach a client without passing through the process again. The last byte of
//! what a client asked for is held back until the whole blob matched its digest, so a
//! corrupt upstream answer reaches no client complete: their streams fail. A download
//! stays joinable until its blob is committed to storage; its spool file goes when the
//! last reader and the download are done with it.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_core::{ByteStream, Digest};
use berth_driver::{FilesystemDriver, ReadStream, StorageDriver};
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, watch};

/// Below this many new bytes a reader waits for more (unless they are all it may read
/// now): the driver maps reads above 512 KiB, and one wake-up per megabyte is cheap.
const MIN_READ: u64 = 1024 * 1024;
/// Largest read handed to a client at once (a map of the spool file, sent in slices).
const MAX_READ: u64 = 16 * 1024 * 1024;
/// Bytes written between two reports to the readers, so they wake per batch, not per
/// packet.
const REPORT_EVERY: u64 = 1024 * 1024;
/// Chunks queued for the spool writer before the download waits for it.
const WRITE_QUEUE: usize = 32;

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

/// One download in progress. Its spool file is removed when the last handle goes, so a
/// reader may reopen it by name for as long as it reads.
pub(crate) struct Flight {
    path: PathBuf,
    /// The spool file's name under `files`' root.
    name: String,
    files: Arc<FilesystemDriver>,
    progress: watch::Sender<Progress>,
}

impl Drop for Flight {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!("removing spool file {}: {e}", self.path.display());
        }
    }
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

    /// Whether the download ended without the blob. Such a flight stays in the table
    /// until its downloader retires it, a moment after its readers learnt of the
    /// failure: a request arriving meanwhile must start a download of its own.
    fn failed(&self) -> bool {
        matches!(self.progress.borrow().end, Some(Err(_)))
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

/// Writes a download's bytes into its spool file on a thread of its own, telling the
/// readers every [`REPORT_EVERY`] bytes (and at the end) how far the file is. The chunks
/// are handed over as they came, never copied in memory. A plain thread, not one of
/// tokio's blocking pool: a download holds it for as long as the upstream takes, and
/// many slow downloads must not starve the pool every file operation of the server uses.
pub(crate) struct SpoolWriter {
    tx: Option<mpsc::Sender<Bytes>>,
    done: Option<oneshot::Receiver<std::io::Result<u64>>>,
}

impl SpoolWriter {
    /// Starts writing `file`, the spool file of `flight`.
    pub(crate) fn start(flight: Arc<Flight>, mut file: std::fs::File) -> std::io::Result<Self> {
        let (tx, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
        let (done_tx, done) = oneshot::channel();
        std::thread::Builder::new()
            .name("berth-spool".into())
            .spawn(move || {
                let mut write = || {
                    let (mut written, mut reported) = (0u64, 0u64);
                    while let Some(chunk) = rx.blocking_recv() {
                        file.write_all(&chunk)?;
                        written += chunk.len() as u64;
                        if written - reported >= REPORT_EVERY {
                            flight.update(|p| p.written = written);
                            reported = written;
                        }
                    }
                    if written != reported {
                        flight.update(|p| p.written = written);
                    }
                    Ok(written)
                };
                let _ = done_tx.send(write());
            })?;
        Ok(SpoolWriter {
            tx: Some(tx),
            done: Some(done),
        })
    }

    /// Queues `chunk`; fails with the writer's error when it stopped.
    pub(crate) async fn write(&mut self, chunk: Bytes) -> std::io::Result<()> {
        let Some(tx) = &self.tx else {
            return Err(std::io::Error::other("the spool writer was finished"));
        };
        if tx.send(chunk).await.is_ok() {
            return Ok(());
        }
        self.tx = None;
        match self.join().await {
            Err(e) => Err(e),
            Ok(_) => Err(std::io::Error::other("the spool writer stopped")),
        }
    }

    /// Waits until every queued chunk is in the file (and reported); the bytes written.
    pub(crate) async fn finish(mut self) -> std::io::Result<u64> {
        self.tx = None;
        self.join().await
    }

    async fn join(&mut self) -> std::io::Result<u64> {
        match self.done.take() {
            Some(done) => done
                .await
                .map_err(|_| std::io::Error::other("the spool writer's thread died"))?,
            None => Err(std::io::Error::other("the spool writer already stopped")),
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
    /// The spool directory as a driver: its reads of a spool file come as registered
    /// maps (see `berth_driver::mapped`).
    files: Arc<FilesystemDriver>,
    active: Mutex<HashMap<Digest, Arc<Flight>>>,
}

/// A reader of one download.
pub(crate) struct Joined {
    flight: Arc<Flight>,
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
            files: Arc::new(FilesystemDriver::new(spool.clone())),
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
        if let Some(flight) = active.get(digest).filter(|f| !f.failed()) {
            return Ok(Joined {
                flight: flight.clone(),
            });
        }
        let name = format!(
            "{}-{}-{}",
            digest.algorithm(),
            digest.hex(),
            berth_core::UploadId::random()
        );
        let path = self.spool.join(&name);
        let writer = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)?;
        let flight = Arc::new(Flight {
            path,
            name: format!("/{name}"),
            files: self.files.clone(),
            progress: watch::channel(Progress::default()).0,
        });
        active.insert(digest.clone(), flight.clone());
        drop(active);
        tokio::spawn(lead(flight.clone(), writer));
        Ok(Joined { flight })
    }

    /// The download of `digest` in progress, if any (a `HEAD` asks it for the size
    /// rather than the upstream).
    pub(crate) fn active(&self, digest: &Digest) -> Option<Arc<Flight>> {
        let active = self.active.lock().ok()?;
        active.get(digest).filter(|f| !f.failed()).cloned()
    }

    /// Retires a finished download: later requests find the blob in storage (or start
    /// again after a failure). Its spool file goes with the last reader.
    pub(crate) fn land(&self, digest: &Digest, flight: &Arc<Flight>) {
        if let Ok(mut active) = self.active.lock()
            && active.get(digest).is_some_and(|f| Arc::ptr_eq(f, flight))
        {
            active.remove(digest);
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
            /// The read in progress: bytes up to `pos` asked for, not all yet passed on.
            reading: Option<ReadStream>,
            pos: u64,
            stop: u64,
            failed: bool,
            flight: Arc<Flight>,
        }
        let state = State {
            rx: self.flight.progress.subscribe(),
            reading: None,
            pos: start,
            stop,
            failed: false,
            flight: self.flight,
        };
        let stream = futures::stream::unfold(state, |mut s| async move {
            if s.failed {
                // After an error, nothing more.
                return None;
            }
            loop {
                if let Some(reading) = &mut s.reading {
                    match reading.next().await {
                        Some(Ok(b)) => return Some((Ok(b), s)),
                        Some(Err(e)) => {
                            s.failed = true;
                            return Some((Err(e), s));
                        }
                        None => s.reading = None,
                    }
                }
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
                    // Small reads only for what is all there is to read now.
                    if s.pos < available && (available - s.pos >= MIN_READ || available == limit) {
                        let len = (available - s.pos).min(MAX_READ);
                        let flight = &s.flight;
                        match flight.files.reader(&flight.name, s.pos, Some(len)).await {
                            Ok(reading) => {
                                s.pos += len;
                                s.reading = Some(reading);
                                continue;
                            }
                            Err(e) => {
                                s.failed = true;
                                return Some((Err(std::io::Error::other(e)), s));
                            }
                        }
                    }
                }
                if s.rx.changed().await.is_err() {
                    let e = std::io::Error::other("the download stopped");
                    s.failed = true;
                    return Some((Err(e), s));
                }
            }
        });
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

    /// Every chunk of `j`'s `start..stop`, as the stream gave them.
    async fn chunks(j: Joined, start: u64, stop: u64) -> Vec<Bytes> {
        j.stream(start, stop)
            .map(|item| item.expect("a verified download streams without errors"))
            .collect()
            .await
    }

    #[tokio::test]
    async fn the_writer_feeds_readers_maps_of_the_spool_file_which_goes_after_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let flights = Arc::new(Flights::new(spool.clone()).unwrap());
        let data: Bytes = (0..5 * 1024 * 1024 + 12_345u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<u8>>()
            .into();
        let (done_tx, done) = tokio::sync::oneshot::channel::<u64>();
        let (sent, lander) = (data.clone(), flights.clone());
        let first = flights
            .join(&digest(), move |f, file| {
                Box::pin(async move {
                    f.update(|p| p.size = Some(sent.len() as u64));
                    let mut writer = SpoolWriter::start(f.clone(), file).unwrap();
                    for at in (0..sent.len()).step_by(64 * 1024) {
                        let chunk = sent.slice(at..(at + 64 * 1024).min(sent.len()));
                        writer.write(chunk).await.unwrap();
                        tokio::task::yield_now().await;
                    }
                    let written = writer.finish().await.unwrap();
                    f.end(Ok(()));
                    lander.land(&digest(), &f);
                    let _ = done_tx.send(written);
                })
            })
            .unwrap();
        let late = flights
            .join(&digest(), |_, _| panic!("a second download started"))
            .unwrap();
        let size = data.len() as u64;
        let whole = chunks(first, 0, size).await;
        assert_eq!(done.await.unwrap(), size);
        // This one starts reading after the download landed: its spool file is still there.
        let (from, to) = (1024 * 1024 + 7, 4 * 1024 * 1024 + 3);
        let part = chunks(late, from, to).await;

        assert!(whole.concat() == data, "the whole blob, in order");
        assert!(
            part.concat() == data[from as usize..to as usize],
            "the range"
        );
        for got in [&whole, &part] {
            assert!(
                got.iter().any(|c| berth_driver::mapped::find(c).is_some()),
                "large reads come as maps a connection sends with sendfile"
            );
        }
        drop((whole, part));
        // The download's task drops its handle just after it signalled.
        for _ in 0..100 {
            if std::fs::read_dir(&spool).unwrap().next().is_none() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the spool file outlived its download and readers");
    }

    #[tokio::test]
    async fn a_failed_download_never_completes_a_stream() {
        let dir = tempfile::tempdir().unwrap();
        let (flights, a, b) = flight(
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
        // Its downloader has not retired it yet: a request now starts a new download
        // rather than sharing the failure.
        assert!(flights.active(&digest()).is_none());
        let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = started.clone();
        let _again = flights
            .join(&digest(), move |_, _| {
                s.store(true, std::sync::atomic::Ordering::SeqCst);
                Box::pin(async {})
            })
            .unwrap();
        assert!(started.load(std::sync::atomic::Ordering::SeqCst));
    }
}
