//! berth-notify: webhook notifications as distribution sends them (its event envelope,
//! endpoints, filters, retries and backoff), with a durable queue in place of
//! distribution's in-memory one: an event whose request was acknowledged is on disk (in
//! the page cache at least) and is delivered at least once, in order per endpoint, across
//! restarts and crashes.
//!
//! A request hands its events to [`Notifier::emit`], which encodes them and waits for the
//! queue's writer task to write them together with every other request's (one write
//! per group); delivery runs in one background task per endpoint. A request is never
//! failed by its events: a queue that cannot be written is logged and counted.

pub mod config;
mod delivery;
pub mod event;
mod metrics;
mod queue;
mod record;
mod store;

use std::sync::Arc;

use berth_metrics::Collect;

pub use config::{EndpointConfig, NotifyConfig, QueueConfig};
pub use delivery::{HttpClient, client as https_client};
pub use event::{
    Action, Actor, EVENTS_MEDIA_TYPE, Event, EventDraft, Reference, RequestRecord, Source, Target,
};
pub use metrics::NotifyMetrics;

use crate::delivery::Delivery;
use crate::metrics::EndpointCounters;
use crate::queue::Writer;
use crate::store::{DirStore, MemStore, Store};

/// Longest a request waits for its events to be written; past it the request is
/// answered anyway (a hung queue disk must not hang the registry).
pub const WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why notifications could not start.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `https://` endpoints are configured and no root certificate could be loaded.
    #[error("notifications: {0}")]
    Tls(String),
    /// The queue directory could not be opened or recovered.
    #[error("notification queue {path}: {source}")]
    Queue {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The handle requests emit events through; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Writer,
    endpoints: Vec<Arc<EndpointConfig>>,
    include_references: bool,
    source: Source,
    metrics: Arc<NotifyMetrics>,
}

impl Notifier {
    /// Opens (and recovers) the queue and starts one delivery task per endpoint. Must
    /// run inside a tokio runtime.
    pub fn start(config: NotifyConfig, source: Source) -> Result<Notifier, NotifyError> {
        let where_ = config
            .queue
            .directory
            .as_ref()
            .map_or_else(|| "(memory)".to_owned(), |d| d.display().to_string());
        let queue_err = |source| NotifyError::Queue {
            path: where_.clone(),
            source,
        };
        let store: Arc<dyn Store> = match &config.queue.directory {
            Some(dir) => Arc::new(DirStore::open(dir).map_err(queue_err)?),
            None => Arc::new(MemStore::default()),
        };
        let names: Vec<String> = config.endpoints.iter().map(|e| e.name.clone()).collect();
        let (writer, shared) =
            Writer::start(store, &names, config.queue.flush_interval).map_err(queue_err)?;
        let https = config
            .endpoints
            .iter()
            .any(|e| e.url.scheme_str() == Some("https"));
        let client = delivery::client(https).map_err(NotifyError::Tls)?;
        let mut endpoints = Vec::new();
        let mut counted = Vec::new();
        for (index, ep) in config.endpoints.into_iter().enumerate() {
            let ep = Arc::new(ep);
            let counters = Arc::new(EndpointCounters::default());
            counted.push((ep.name.clone(), counters.clone()));
            tokio::spawn(
                Delivery {
                    index,
                    endpoint: ep.clone(),
                    shared: shared.clone(),
                    counters,
                    client: client.clone(),
                    max_events: config.queue.max_events,
                }
                .run(),
            );
            endpoints.push(ep);
        }
        let metrics = Arc::new(NotifyMetrics {
            shared,
            endpoints: counted,
        });
        Ok(Notifier {
            inner: Arc::new(Inner {
                writer,
                endpoints,
                include_references: config.include_references,
                source,
                metrics,
            }),
        })
    }

    /// Whether any endpoint wants an event of `action` about a target of `media_type`
    /// (handlers skip building events nobody gets).
    pub fn wants(&self, action: Action, media_type: &str) -> bool {
        self.inner
            .endpoints
            .iter()
            .any(|e| e.accepts(action, media_type))
    }

    /// Whether manifest events list the manifest's references.
    pub fn include_references(&self) -> bool {
        self.inner.include_references
    }

    /// Queues one request's events and returns once they are written (or failed to
    /// be, which is logged and counted, never returned).
    pub async fn emit(&self, request: &RequestRecord, actor: &Actor, drafts: &[EventDraft]) {
        let timestamp = event::now_timestamp();
        let mut payloads = Vec::with_capacity(drafts.len());
        for d in drafts {
            if !self.wants(d.action, &d.target.media_type) {
                continue;
            }
            let id = event::new_id();
            let e = Event {
                id: &id,
                timestamp: &timestamp,
                action: d.action,
                target: &d.target,
                request,
                actor,
                source: &self.inner.source,
            };
            match serde_json::to_vec(&e) {
                Ok(p) => payloads.push(p),
                Err(err) => tracing::error!(error = %err, "encoding a notification event"),
            }
        }
        if payloads.is_empty() {
            return;
        }
        let n = payloads.len() as u64;
        match self.inner.writer.append(payloads) {
            Some(done) => {
                if tokio::time::timeout(WRITE_WAIT, done).await.is_err() {
                    // A queue disk that hangs must not hang the registry: the events stay
                    // handed to the writer, but this answer no longer waits for them.
                    tracing::warn!(
                        events = n,
                        wait = ?WRITE_WAIT,
                        "notification queue write is slow; answering without waiting for it"
                    );
                }
            }
            None => {
                self.inner.metrics.shared.write_errors.add(n);
                tracing::error!(
                    events = n,
                    "notification queue writer has stopped; events lost"
                );
            }
        }
    }

    /// The notifier's metrics, for the debug server's scrape.
    pub fn metrics(&self) -> Arc<dyn Collect> {
        self.inner.metrics.clone()
    }
}
