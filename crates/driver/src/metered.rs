//! [`MeteredDriver`]: any driver, with the time each call takes recorded by action as
//! distribution's `registry_storage_action_seconds{driver,action}` histogram. It sits
//! at the driver boundary, so it times what the backend does (a reader or a writer is
//! timed until it is open, not while it streams), and costs two clock reads and two
//! atomic adds per call.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use berth_metrics::{Collect, DEFAULT_DURATION, Encoder, Histogram, Kind};
use bytes::Bytes;

use crate::{DriverError, FileInfo, FileWriter, Persist, ReadStream, StorageDriver};

/// A driver call, as the `action` label names it: distribution's names for the calls it
/// has, berth's for the two it adds (`EnsureContent`, `Flush`).
#[derive(Debug, Clone, Copy)]
enum Action {
    GetContent,
    PutContent,
    EnsureContent,
    Reader,
    Writer,
    Flush,
    Stat,
    List,
    Move,
    Delete,
}

const ACTIONS: [(Action, &str); 10] = [
    (Action::GetContent, "GetContent"),
    (Action::PutContent, "PutContent"),
    (Action::EnsureContent, "EnsureContent"),
    (Action::Reader, "Reader"),
    (Action::Writer, "Writer"),
    (Action::Flush, "Flush"),
    (Action::Stat, "Stat"),
    (Action::List, "List"),
    (Action::Move, "Move"),
    (Action::Delete, "Delete"),
];

/// The action timers of one driver.
pub struct DriverMetrics {
    driver: &'static str,
    timers: [Histogram; ACTIONS.len()],
}

impl DriverMetrics {
    fn observe(&self, action: Action, start: Instant) {
        self.timers[action as usize].observe_duration(start.elapsed());
    }
}

impl Collect for DriverMetrics {
    fn collect(&self, enc: &mut Encoder) {
        let name = "registry_storage_action_seconds";
        enc.family(
            name,
            "The number of seconds that the storage action takes",
            Kind::Histogram,
        );
        for ((_, action), timer) in ACTIONS.iter().zip(&self.timers) {
            enc.histogram(name, &[("driver", self.driver), ("action", action)], timer);
        }
    }
}

/// A driver whose calls are timed.
pub struct MeteredDriver {
    inner: Arc<dyn StorageDriver>,
    metrics: Arc<DriverMetrics>,
}

impl MeteredDriver {
    /// Wraps `inner`; its timers are [`metrics`](Self::metrics).
    pub fn new(inner: Arc<dyn StorageDriver>) -> Self {
        let metrics = Arc::new(DriverMetrics {
            driver: inner.name(),
            timers: std::array::from_fn(|_| Histogram::new(DEFAULT_DURATION)),
        });
        MeteredDriver { inner, metrics }
    }

    /// The timers, for the scrape.
    pub fn metrics(&self) -> Arc<DriverMetrics> {
        self.metrics.clone()
    }
}

#[async_trait]
impl StorageDriver for MeteredDriver {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn get_content(&self, path: &str) -> Result<Bytes, DriverError> {
        let start = Instant::now();
        let r = self.inner.get_content(path).await;
        self.metrics.observe(Action::GetContent, start);
        r
    }

    async fn put_content(&self, path: &str, content: Bytes) -> Result<(), DriverError> {
        let start = Instant::now();
        let r = self.inner.put_content(path, content).await;
        self.metrics.observe(Action::PutContent, start);
        r
    }

    async fn ensure_content(
        &self,
        path: &str,
        content: Bytes,
        persist: Persist,
    ) -> Result<(), DriverError> {
        let start = Instant::now();
        let r = self.inner.ensure_content(path, content, persist).await;
        self.metrics.observe(Action::EnsureContent, start);
        r
    }

    async fn reader(
        &self,
        path: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<ReadStream, DriverError> {
        let start = Instant::now();
        let r = self.inner.reader(path, offset, len).await;
        self.metrics.observe(Action::Reader, start);
        r
    }

    async fn writer(
        &self,
        path: &str,
        append: bool,
        persist: Persist,
    ) -> Result<Box<dyn FileWriter>, DriverError> {
        let start = Instant::now();
        let r = self.inner.writer(path, append, persist).await;
        self.metrics.observe(Action::Writer, start);
        r
    }

    async fn flush(&self, path: &str) -> Result<(), DriverError> {
        let start = Instant::now();
        let r = self.inner.flush(path).await;
        self.metrics.observe(Action::Flush, start);
        r
    }

    fn volatile_epoch(&self) -> &str {
        self.inner.volatile_epoch()
    }

    async fn stat(&self, path: &str) -> Result<FileInfo, DriverError> {
        let start = Instant::now();
        let r = self.inner.stat(path).await;
        self.metrics.observe(Action::Stat, start);
        r
    }

    async fn list(&self, path: &str) -> Result<Vec<String>, DriverError> {
        let start = Instant::now();
        let r = self.inner.list(path).await;
        self.metrics.observe(Action::List, start);
        r
    }

    async fn rename(&self, from: &str, to: &str, persist: Persist) -> Result<(), DriverError> {
        let start = Instant::now();
        let r = self.inner.rename(from, to, persist).await;
        self.metrics.observe(Action::Move, start);
        r
    }

    async fn delete(&self, path: &str) -> Result<(), DriverError> {
        let start = Instant::now();
        let r = self.inner.delete(path).await;
        self.metrics.observe(Action::Delete, start);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryDriver;

    #[tokio::test]
    async fn each_call_is_timed_under_its_action() {
        let d = MeteredDriver::new(Arc::new(InMemoryDriver::new()));
        d.put_content("/a/b", Bytes::from_static(b"x"))
            .await
            .unwrap();
        d.get_content("/a/b").await.unwrap();
        d.get_content("/a/b").await.unwrap();
        assert!(d.stat("/missing").await.is_err(), "failures are timed too");
        let m = d.metrics();
        let count = |a: Action| m.timers[a as usize].count();
        assert_eq!(count(Action::PutContent), 1);
        assert_eq!(count(Action::GetContent), 2);
        assert_eq!(count(Action::Stat), 1);
        assert_eq!(count(Action::Delete), 0);
        let mut enc = Encoder::new();
        m.collect(&mut enc);
        let text = enc.finish();
        assert!(
            text.contains(
                "registry_storage_action_seconds_count{driver=\"inmemory\",action=\"GetContent\"} 2\n"
            ),
            "{text}"
        );
    }
}
