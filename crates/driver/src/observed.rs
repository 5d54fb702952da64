//! [`ObservedDriver`]: any driver, watched at the driver boundary. With metrics on, the
//! time each call takes is recorded by action as distribution's
//! `registry_storage_action_seconds{driver,action}` histogram (two clock reads and two
//! atomic adds per call); with tracing on, each call runs in a `storage` span (exported
//! over OTLP as a child of its request's span). Either way a reader or a writer is
//! observed until it is open, not while it streams.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use berth_metrics::{Collect, DEFAULT_DURATION, Encoder, Histogram, Kind};
use bytes::Bytes;

use tracing::Instrument;

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

/// A driver whose calls are timed, traced, or both.
pub struct ObservedDriver {
    inner: Arc<dyn StorageDriver>,
    metrics: Option<Arc<DriverMetrics>>,
    spans: bool,
}

impl ObservedDriver {
    /// Wraps `inner`, observing nothing until told to.
    pub fn new(inner: Arc<dyn StorageDriver>) -> Self {
        ObservedDriver {
            inner,
            metrics: None,
            spans: false,
        }
    }

    /// Times every call; the timers are [`metrics`](Self::metrics).
    pub fn with_metrics(mut self) -> Self {
        self.metrics = Some(Arc::new(DriverMetrics {
            driver: self.inner.name(),
            timers: std::array::from_fn(|_| Histogram::new(DEFAULT_DURATION)),
        }));
        self
    }

    /// Runs every call in a span of its own.
    pub fn with_spans(mut self) -> Self {
        self.spans = true;
        self
    }

    /// The timers, for the scrape; `None` unless [`with_metrics`](Self::with_metrics).
    pub fn metrics(&self) -> Option<Arc<DriverMetrics>> {
        self.metrics.clone()
    }

    /// Runs one call, timed and in its span as configured.
    async fn observe<T>(
        &self,
        action: Action,
        path: &str,
        call: impl Future<Output = Result<T, DriverError>>,
    ) -> Result<T, DriverError> {
        let start = Instant::now();
        // Only calls made for a request are traced: the background tasks' (health probes,
        // purging) would each be a trace of their own, every few seconds.
        let result = if self.spans && !tracing::Span::current().is_none() {
            let span = tracing::info_span!(
                target: "berth::storage",
                "storage",
                otel.name = ACTIONS[action as usize].1,
                storage.driver = self.inner.name(),
                storage.path = path,
                otel.status_code = tracing::field::Empty,
                error.message = tracing::field::Empty,
            );
            let result = call.instrument(span.clone()).await;
            // A missing path is an answer (a cache miss, a 404), not a failed operation.
            if let Err(e) = &result
                && !matches!(e, DriverError::PathNotFound(_))
            {
                span.record("otel.status_code", "error");
                span.record("error.message", tracing::field::display(e));
            }
            result
        } else {
            call.await
        };
        if let Some(m) = &self.metrics {
            m.observe(action, start);
        }
        result
    }
}

#[async_trait]
impl StorageDriver for ObservedDriver {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn get_content(&self, path: &str) -> Result<Bytes, DriverError> {
        self.observe(Action::GetContent, path, self.inner.get_content(path))
            .await
    }

    async fn put_content(&self, path: &str, content: Bytes) -> Result<(), DriverError> {
        self.observe(
            Action::PutContent,
            path,
            self.inner.put_content(path, content),
        )
        .await
    }

    async fn ensure_content(
        &self,
        path: &str,
        content: Bytes,
        persist: Persist,
    ) -> Result<(), DriverError> {
        self.observe(
            Action::EnsureContent,
            path,
            self.inner.ensure_content(path, content, persist),
        )
        .await
    }

    async fn reader(
        &self,
        path: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<ReadStream, DriverError> {
        self.observe(Action::Reader, path, self.inner.reader(path, offset, len))
            .await
    }

    async fn writer(
        &self,
        path: &str,
        append: bool,
        persist: Persist,
    ) -> Result<Box<dyn FileWriter>, DriverError> {
        self.observe(
            Action::Writer,
            path,
            self.inner.writer(path, append, persist),
        )
        .await
    }

    async fn flush(&self, path: &str) -> Result<(), DriverError> {
        self.observe(Action::Flush, path, self.inner.flush(path))
            .await
    }

    fn volatile_epoch(&self) -> &str {
        self.inner.volatile_epoch()
    }

    fn writes_appear_on_commit(&self) -> bool {
        self.inner.writes_appear_on_commit()
    }

    fn redirects(&self) -> bool {
        self.inner.redirects()
    }

    async fn redirect_url(&self, path: &str) -> Result<Option<String>, DriverError> {
        // Signing is local computation, not a storage call: not timed.
        self.inner.redirect_url(path).await
    }

    async fn stat(&self, path: &str) -> Result<FileInfo, DriverError> {
        self.observe(Action::Stat, path, self.inner.stat(path))
            .await
    }

    async fn list(&self, path: &str) -> Result<Vec<String>, DriverError> {
        self.observe(Action::List, path, self.inner.list(path))
            .await
    }

    async fn list_dirs(
        &self,
        path: &str,
        from: std::ops::Bound<&str>,
        limit: usize,
    ) -> Result<crate::DirWindow, DriverError> {
        self.observe(Action::List, path, self.inner.list_dirs(path, from, limit))
            .await
    }

    async fn rename(&self, from: &str, to: &str, persist: Persist) -> Result<(), DriverError> {
        self.observe(Action::Move, from, self.inner.rename(from, to, persist))
            .await
    }

    async fn import(
        &self,
        from: &std::path::Path,
        to: &str,
        persist: Persist,
    ) -> Result<(), DriverError> {
        self.observe(Action::Move, to, self.inner.import(from, to, persist))
            .await
    }

    async fn delete(&self, path: &str) -> Result<(), DriverError> {
        self.observe(Action::Delete, path, self.inner.delete(path))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryDriver;

    #[tokio::test]
    async fn each_call_is_timed_under_its_action() {
        let d = ObservedDriver::new(Arc::new(InMemoryDriver::new())).with_metrics();
        d.put_content("/a/b", Bytes::from_static(b"x"))
            .await
            .unwrap();
        d.get_content("/a/b").await.unwrap();
        d.get_content("/a/b").await.unwrap();
        assert!(d.stat("/missing").await.is_err(), "failures are timed too");
        let m = d.metrics().unwrap();
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
