//! The durable queue: one log of events shared by every endpoint, each endpoint with its
//! own cursor (so an event is written once however many endpoints want it, and each
//! endpoint still sees its events in order and at its own pace).
//!
//! One writer task (on the runtime, beside the requests) owns the active segment.
//! Requests hand it their encoded events and wait for a cheap signal; the task takes
//! everything that arrived meanwhile, writes it with one `write`, publishes the new head
//! and signals every waiter (group commit). Being a task rather than a thread, handing
//! over and waking back are queue operations of the runtime's, not context switches.
//! The segment is flushed to the disk every `flush_interval` while there is something
//! unflushed, never per request, and by a second thread, so appends go on while the disk
//! catches up: a process crash loses nothing acknowledged (the page cache has it), a
//! power cut may lose the last interval's events. A segment is closed (and flushed) at
//! [`SEGMENT_BYTES`]; segments every cursor has passed are deleted.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use berth_metrics::Counter;
use tokio::sync::{Notify, oneshot};

use crate::record;
use crate::store::{Appender, Flush, Store};

/// A segment is closed once it holds this much.
pub const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

/// Most requests' events written in one `write`.
const MAX_GROUP: usize = 4096;

/// What the writer and the readers share.
pub struct Shared {
    /// The sequence number the next event gets; every event below it is readable.
    pub head: AtomicU64,
    /// Woken after each write.
    pub wake: Notify,
    /// Each endpoint's cursor (next undelivered sequence number), by endpoint index.
    pub cursors: Vec<AtomicU64>,
    /// Where the bytes are.
    pub store: Arc<dyn Store>,
    /// Events appended.
    pub appended: Counter,
    /// Events lost because the queue could not be written.
    pub write_errors: Counter,
}

/// One request's events, and how it learns they are written.
pub struct Append {
    /// Each event's JSON.
    pub payloads: Vec<Vec<u8>>,
    /// Signalled once the events are written (or failed to be).
    pub done: oneshot::Sender<()>,
}

/// The head after recovery and the segments present (the last one active).
struct Recovered {
    head: u64,
    segments: VecDeque<u64>,
}

/// Reads the active segment to find the head, cutting off a torn last record.
fn recover(store: &dyn Store) -> io::Result<Recovered> {
    let segments: VecDeque<u64> = store.segments()?.into();
    let Some(&last) = segments.back() else {
        return Ok(Recovered { head: 0, segments });
    };
    let data = store.read(last, 0, usize::MAX)?;
    let records = record::decode_all(&data);
    let valid = records.last().map_or(0, |r| r.end);
    let head = records.last().map_or(last, |r| r.seq + 1);
    if valid < data.len() {
        tracing::warn!(
            segment = last,
            cut_bytes = data.len() - valid,
            "notification queue: cutting off a torn last record (a crash interrupted its write)"
        );
        store.truncate(last, valid as u64)?;
    }
    Ok(Recovered { head, segments })
}

/// The running writer.
pub struct Writer {
    tx: tokio::sync::mpsc::UnboundedSender<Append>,
}

impl Writer {
    /// Recovers the queue in `store`, sets each endpoint's cursor (a new endpoint starts
    /// at the head: it gets events from now on), and starts the writer task
    /// (inside a tokio runtime).
    pub fn start(
        store: Arc<dyn Store>,
        endpoints: &[String],
        flush_interval: Duration,
    ) -> io::Result<(Writer, Arc<Shared>)> {
        let Recovered { head, mut segments } = recover(store.as_ref())?;
        let active = segments.back().copied().unwrap_or(head);
        if segments.is_empty() {
            segments.push_back(active);
        }
        let appender = store.appender(active)?;
        store.names_flusher()()?;
        let first = segments.front().copied().unwrap_or(active);
        let mut cursors = Vec::new();
        for name in endpoints {
            let cursor = match store.cursor(name)? {
                // A cursor past the head (a queue directory replaced under it) or
                // before what is kept is brought within the queue.
                Some(c) => c.clamp(first, head),
                None => {
                    store.set_cursor(name, head)?;
                    head
                }
            };
            cursors.push(AtomicU64::new(cursor));
        }
        let shared = Arc::new(Shared {
            head: AtomicU64::new(head),
            wake: Notify::new(),
            cursors,
            store,
            appended: Counter::default(),
            write_errors: Counter::default(),
        });
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (flush_tx, flush_rx) = mpsc::sync_channel::<Flush>(4);
        std::thread::Builder::new()
            .name("berth-notify-flush".into())
            .spawn(move || {
                while let Ok(flush) = flush_rx.recv() {
                    if let Err(e) = flush() {
                        tracing::warn!(error = %e, "notification queue: flushing to disk failed");
                    }
                }
            })?;
        let state = WriterState {
            flusher: flush_tx,
            shared: shared.clone(),
            appender,
            active,
            segments,
            flush_interval,
            dirty: false,
            last_sync: Instant::now(),
            buf: Vec::new(),
            broken: false,
        };
        // Must run inside a tokio runtime (as `Notifier::start` says).
        tokio::spawn(state.run(rx));
        Ok((Writer { tx }, shared))
    }

    /// Hands one request's events to the writer; the receiver completes once they are
    /// written. `None` when the writer has stopped.
    pub fn append(&self, payloads: Vec<Vec<u8>>) -> Option<oneshot::Receiver<()>> {
        let (done, rx) = oneshot::channel();
        self.tx.send(Append { payloads, done }).ok()?;
        Some(rx)
    }
}

struct WriterState {
    /// The thread that runs flushes.
    flusher: mpsc::SyncSender<Flush>,
    shared: Arc<Shared>,
    appender: Box<dyn Appender>,
    active: u64,
    segments: VecDeque<u64>,
    flush_interval: Duration,
    dirty: bool,
    last_sync: Instant,
    buf: Vec<u8>,
    /// The active segment may end in bytes of a failed write: start a new one.
    broken: bool,
}

/// Whether the writer stops (its `Writer` dropped) or its runtime shuts down (the task
/// dropped), what was written is flushed.
impl Drop for WriterState {
    fn drop(&mut self) {
        if self.dirty {
            self.sync();
        }
    }
}

impl WriterState {
    async fn run(mut self, mut rx: tokio::sync::mpsc::UnboundedReceiver<Append>) {
        let mut group = Vec::new();
        loop {
            match tokio::time::timeout(self.flush_interval, rx.recv()).await {
                Ok(Some(first)) => {
                    group.push(first);
                    while group.len() < MAX_GROUP {
                        match rx.try_recv() {
                            Ok(a) => group.push(a),
                            Err(_) => break,
                        }
                    }
                    // A page-cache write of a few kilobytes: brief enough to make on
                    // the runtime (the flushes that wait for the disk run elsewhere).
                    self.write(&group);
                    for a in group.drain(..) {
                        let _ = a.done.send(());
                    }
                }
                Err(_) => {}
                Ok(None) => break,
            }
            if self.dirty && self.last_sync.elapsed() >= self.flush_interval {
                self.flush_behind();
            }
            // Cursors move without writes: an idle queue still frees what was delivered.
            self.compact();
        }
    }

    fn sync(&mut self) {
        if let Err(e) = self.appender.sync() {
            tracing::warn!(error = %e, "notification queue: flushing to disk failed");
        }
        self.dirty = false;
        self.last_sync = Instant::now();
    }

    /// Hands a flush of what was written to the flush thread; while it is still busy
    /// with earlier ones, tries again next time (the data stays marked unflushed).
    fn flush_behind(&mut self) {
        match self.appender.flusher() {
            Ok(flush) => match self.flusher.try_send(flush) {
                Ok(()) => {
                    self.dirty = false;
                    self.last_sync = Instant::now();
                }
                Err(mpsc::TrySendError::Full(_)) => {}
                Err(mpsc::TrySendError::Disconnected(_)) => self.sync(),
            },
            Err(e) => {
                tracing::warn!(error = %e, "notification queue: cannot flush");
                self.sync();
            }
        }
    }

    /// Writes a group of requests' events in one write, then publishes them.
    fn write(&mut self, group: &[Append]) {
        let head = self.shared.head.load(Ordering::Acquire);
        self.buf.clear();
        let mut seq = head;
        for a in group {
            for p in &a.payloads {
                record::encode(&mut self.buf, seq, p);
                seq += 1;
            }
        }
        let count = seq - head;
        if count == 0 {
            return;
        }
        let full =
            self.appender.len() > 0 && self.appender.len() + self.buf.len() as u64 > SEGMENT_BYTES;
        if full && let Err(e) = self.roll(head) {
            return self.failed(count, &e);
        }
        let before = self.appender.len();
        if let Err(e) = self.appender.append(&self.buf) {
            // Cut off whatever part was written, so that the segment stays readable;
            // failing that, the next write starts a new segment.
            if let Err(e) = self
                .shared
                .store
                .truncate(self.active, before)
                .and_then(|()| self.shared.store.appender(self.active))
                .map(|a| self.appender = a)
            {
                tracing::error!(error = %e, "notification queue: cannot repair the segment");
                self.broken = true;
            }
            return self.failed(count, &e);
        }
        self.dirty = true;
        self.shared.head.store(seq, Ordering::Release);
        self.shared.appended.add(count);
        self.shared.wake.notify_waiters();
    }

    fn failed(&self, count: u64, e: &io::Error) {
        self.shared.write_errors.add(count);
        tracing::error!(
            error = %e,
            events = count,
            "notification queue: writing events failed; they are lost (the requests succeeded)"
        );
    }

    /// Closes the active segment and opens one starting at `head`; the old segment and
    /// the new name are flushed by the flush thread (waiting for it only when it is
    /// four flushes behind).
    fn roll(&mut self, head: u64) -> io::Result<()> {
        let old = self.appender.flusher()?;
        let next = self.shared.store.appender(head)?;
        for flush in [old, self.shared.store.names_flusher()] {
            if let Err(mpsc::SendError(flush)) = self.flusher.send(flush) {
                flush()?;
            }
        }
        self.appender = next;
        self.active = head;
        self.segments.push_back(head);
        self.compact();
        Ok(())
    }

    /// Deletes the segments every endpoint has passed (never the active one).
    fn compact(&mut self) {
        let min = self
            .shared
            .cursors
            .iter()
            .map(|c| c.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX);
        while self.segments.len() > 1 && self.segments[1] <= min {
            let Some(old) = self.segments.pop_front() else {
                break;
            };
            if let Err(e) = self.shared.store.remove(old) {
                tracing::warn!(error = %e, segment = old, "notification queue: removing a delivered segment");
                self.segments.push_front(old);
                break;
            }
        }
    }
}

/// One endpoint's read position in the log.
#[derive(Clone)]
pub struct Reader {
    shared: Arc<Shared>,
    seg: u64,
    offset: u64,
    /// The sequence number of the next event this reader returns.
    pub next: u64,
}

/// Bytes read from a segment at once.
pub const READ_BYTES: usize = 1024 * 1024;

impl Reader {
    /// A reader positioned at `seq` (or at the oldest event kept, if that is later).
    pub fn at(shared: Arc<Shared>, seq: u64) -> io::Result<Reader> {
        let segs = shared.store.segments()?;
        let seg = segs
            .iter()
            .rev()
            .find(|s| **s <= seq)
            .or(segs.first())
            .copied()
            .unwrap_or(seq);
        let mut r = Reader {
            shared,
            seg,
            offset: 0,
            next: seg,
        };
        // Skip to `seq` within the segment.
        while r.next < seq {
            let skipped = r.read(READ_BYTES, seq - r.next)?;
            if skipped.is_empty() {
                break;
            }
        }
        Ok(r)
    }

    /// The next events (at most `max_events`, about `max_bytes`), oldest first; empty
    /// when the reader is at the head.
    pub fn read(&mut self, max_bytes: usize, max_events: u64) -> io::Result<Vec<(u64, Vec<u8>)>> {
        let head = self.shared.head.load(Ordering::Acquire);
        let max_bytes = max_bytes.max(record::HEADER);
        loop {
            if self.next >= head {
                return Ok(Vec::new());
            }
            let data = match self.shared.store.read(self.seg, self.offset, max_bytes) {
                Ok(d) => d,
                // Compacted under an old position: move on to what exists.
                Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(e),
            };
            let mut out = Vec::new();
            let mut at = 0;
            while let Some(r) = data.get(at..).and_then(record::decode) {
                if r.seq >= head || out.len() as u64 >= max_events {
                    break;
                }
                at += r.end;
                self.next = r.seq + 1;
                out.push((r.seq, r.payload.to_vec()));
            }
            if !out.is_empty() {
                self.offset += at as u64;
                return Ok(out);
            }
            if data.len() >= max_bytes && data.len() >= record::HEADER {
                // One record larger than what was read: read it whole.
                let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
                if len + record::HEADER > max_bytes && len <= record::MAX_PAYLOAD {
                    return self.read(len + record::HEADER, max_events);
                }
            }
            // The end of this segment: the next one starts at `next`, or, after a
            // write error, later.
            let segs = self.shared.store.segments()?;
            match segs.iter().find(|s| **s > self.seg) {
                Some(&s) => {
                    self.seg = s;
                    self.offset = 0;
                    self.next = self.next.max(s);
                }
                None => return Ok(Vec::new()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DirStore, MemStore};

    /// The runtime the writer task runs on; keep the guard for the test's length.
    pub(super) fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    fn push(w: &Writer, n: usize, tag: &str) {
        let payloads = (0..n).map(|i| format!("{tag}{i}").into_bytes()).collect();
        let rx = w.append(payloads).unwrap();
        rx.blocking_recv().unwrap();
    }

    fn drain(r: &mut Reader) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let batch = r.read(READ_BYTES, 1000).unwrap();
            if batch.is_empty() {
                return out;
            }
            out.extend(
                batch
                    .into_iter()
                    .map(|(_, p)| String::from_utf8(p).unwrap()),
            );
        }
    }

    #[test]
    fn events_survive_a_restart_in_order_and_a_torn_tail_is_cut() {
        let rt = runtime();
        let _in = rt.enter();
        let dir = tempfile::tempdir().unwrap();
        let names = ["a".to_owned()];
        {
            let store = Arc::new(DirStore::open(dir.path()).unwrap());
            let (w, _) = Writer::start(store, &names, Duration::from_millis(10)).unwrap();
            push(&w, 3, "x");
            push(&w, 2, "y");
        }
        std::thread::sleep(Duration::from_millis(50));
        // A crash in the middle of a write leaves part of a record.
        let seg = dir.path().join(format!("{:020}.log", 0));
        let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
        io::Write::write_all(&mut f, &[9, 0, 0, 0, 1, 2]).unwrap();
        let store = Arc::new(DirStore::open(dir.path()).unwrap());
        let (w, shared) = Writer::start(store, &names, Duration::from_millis(10)).unwrap();
        assert_eq!(shared.head.load(Ordering::Acquire), 5);
        push(&w, 1, "z");
        let mut r = Reader::at(shared.clone(), 0).unwrap();
        assert_eq!(drain(&mut r), ["x0", "x1", "x2", "y0", "y1", "z0"]);
        let mut r = Reader::at(shared, 4).unwrap();
        assert_eq!(drain(&mut r), ["y1", "z0"]);
    }

    #[test]
    fn segments_roll_and_delivered_ones_are_deleted() {
        let rt = runtime();
        let _in = rt.enter();
        let store = MemStore::default();
        let names = ["a".to_owned()];
        let (w, shared) =
            Writer::start(Arc::new(store.clone()), &names, Duration::from_millis(1)).unwrap();
        let big = vec![b'x'; 1024 * 1024];
        for _ in 0..20 {
            let rx = w.append(vec![big.clone()]).unwrap();
            rx.blocking_recv().unwrap();
        }
        assert!(store.segments().unwrap().len() > 1);
        let mut r = Reader::at(shared.clone(), 0).unwrap();
        let mut n = 0;
        loop {
            let b = r.read(READ_BYTES, 1000).unwrap();
            if b.is_empty() {
                break;
            }
            n += b.len();
        }
        assert_eq!(n, 20);
        shared.cursors[0].store(20, Ordering::Release);
        push(&w, 1, "tick");
        std::thread::sleep(Duration::from_millis(20));
        push(&w, 1, "tick");
        assert_eq!(store.segments().unwrap().len(), 1);
    }
}

#[cfg(test)]
mod failure_tests {
    use super::*;
    use crate::store::MemStore;

    /// A store whose appends fail while `failing` is set.
    struct Flaky {
        inner: MemStore,
        failing: Arc<std::sync::atomic::AtomicBool>,
    }

    struct FlakyAppender {
        inner: Box<dyn Appender>,
        failing: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Appender for FlakyAppender {
        fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
            if self.failing.load(Ordering::Relaxed) {
                // Part of the write lands, as on a full disk.
                let _ = self.inner.append(&bytes[..bytes.len() / 2]);
                return Err(io::Error::other("disk full"));
            }
            self.inner.append(bytes)
        }
        fn sync(&mut self) -> io::Result<()> {
            self.inner.sync()
        }
        fn flusher(&self) -> io::Result<Flush> {
            self.inner.flusher()
        }
        fn len(&self) -> u64 {
            self.inner.len()
        }
    }

    impl Store for Flaky {
        fn segments(&self) -> io::Result<Vec<u64>> {
            self.inner.segments()
        }
        fn read(&self, seg: u64, offset: u64, max: usize) -> io::Result<Vec<u8>> {
            self.inner.read(seg, offset, max)
        }
        fn truncate(&self, seg: u64, len: u64) -> io::Result<()> {
            self.inner.truncate(seg, len)
        }
        fn remove(&self, seg: u64) -> io::Result<()> {
            self.inner.remove(seg)
        }
        fn appender(&self, seg: u64) -> io::Result<Box<dyn Appender>> {
            Ok(Box::new(FlakyAppender {
                inner: self.inner.appender(seg)?,
                failing: self.failing.clone(),
            }))
        }
        fn names_flusher(&self) -> Flush {
            self.inner.names_flusher()
        }
        fn cursor(&self, endpoint: &str) -> io::Result<Option<u64>> {
            self.inner.cursor(endpoint)
        }
        fn set_cursor(&self, endpoint: &str, seq: u64) -> io::Result<()> {
            self.inner.set_cursor(endpoint, seq)
        }
    }

    #[test]
    fn a_failed_write_is_counted_and_cut_off_and_the_queue_goes_on() {
        let rt = super::tests::runtime();
        let _in = rt.enter();
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let store = Arc::new(Flaky {
            inner: MemStore::default(),
            failing: failing.clone(),
        });
        let (w, shared) =
            Writer::start(store, &["a".to_owned()], Duration::from_millis(5)).unwrap();
        let ok = |tag: &str| {
            w.append(vec![tag.as_bytes().to_vec()])
                .unwrap()
                .blocking_recv()
                .unwrap()
        };
        ok("one");
        failing.store(true, Ordering::Relaxed);
        // The waiter is still released: a request never hangs on the queue.
        ok("lost");
        failing.store(false, Ordering::Relaxed);
        ok("two");
        assert_eq!(shared.write_errors.get(), 1);
        assert_eq!(shared.head.load(Ordering::Acquire), 2);
        let mut r = Reader::at(shared, 0).unwrap();
        let got: Vec<Vec<u8>> = r
            .read(READ_BYTES, 10)
            .unwrap()
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
    }
}
