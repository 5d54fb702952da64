//! One background task per endpoint: reads its events from the queue in order, posts
//! them in distribution's envelope (several per post when several are waiting), and
//! moves its cursor only after a 2xx/3xx answer, so every event is delivered at least
//! once. Failures are retried as distribution's retrying sink does: at once until
//! `threshold` posts in a row failed, then every `backoff`. An endpoint more than
//! `maxevents` behind loses its oldest events (counted and logged), so a dead endpoint
//! cannot make the queue grow without bound.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, USER_AGENT};
use http::{Method, Request};
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::config::EndpointConfig;
use crate::event::{Action, EVENTS_MEDIA_TYPE};
use crate::metrics::EndpointCounters;
use crate::queue::{READ_BYTES, Reader, Shared};

/// Most events in one post: enough for one delivery task to keep up with tens of
/// thousands of pulls a second (one post per event, as distribution sends, would not).
pub const MAX_BATCH: u64 = 256;

/// The HTTP client posts go through (`http://` and `https://`).
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client for `http://` and `https://` endpoints. `https://` certificates are checked
/// against the system's roots, or the PEM bundle `SSL_CERT_FILE` names (as other TLS
/// clients on the machine do); `with_roots` says whether any was needed.
pub fn client(with_roots: bool) -> Result<HttpClient, String> {
    let mut roots = rustls::RootCertStore::empty();
    if with_roots {
        let found = rustls_native_certs::load_native_certs();
        if let Some(e) = found.errors.first().filter(|_| found.certs.is_empty()) {
            return Err(format!("loading the system's root certificates: {e}"));
        }
        let (_, ignored) = roots.add_parsable_certificates(found.certs);
        if roots.is_empty() {
            return Err(format!(
                "no usable root certificate found ({ignored} ignored); set SSL_CERT_FILE to a PEM bundle"
            ));
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// The parts of a stored event its endpoint's filters look at.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow)]
    action: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    target: PeekTarget<'a>,
}

#[derive(Deserialize, Default)]
struct PeekTarget<'a> {
    #[serde(rename = "mediaType", default, borrow)]
    media_type: std::borrow::Cow<'a, str>,
}

/// Whether `ep` wants the stored event `payload`. Events are filtered when written
/// too; this applies the filters of the configuration delivering them.
fn wanted(ep: &EndpointConfig, payload: &[u8]) -> bool {
    if ep.ignored_actions.is_empty() && ep.ignored_media_types.is_empty() {
        return true;
    }
    match serde_json::from_slice::<Peek>(payload) {
        Ok(p) => Action::parse(&p.action).is_none_or(|a| ep.accepts(a, &p.target.media_type)),
        Err(_) => true,
    }
}

/// The envelope around stored events.
fn envelope(batch: &VecDeque<(u64, Vec<u8>)>) -> Bytes {
    let size: usize = batch.iter().map(|(_, p)| p.len() + 1).sum();
    let mut body = Vec::with_capacity(size + 16);
    body.extend_from_slice(b"{\"events\":[");
    for (i, (_, p)) in batch.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(p);
    }
    body.extend_from_slice(b"]}");
    Bytes::from(body)
}

/// How one post went.
enum Outcome {
    Delivered,
    Refused,
    Failed,
}

/// One endpoint's delivery loop.
pub struct Delivery {
    /// Its index among the endpoints (its cursor's).
    pub index: usize,
    /// Its settings.
    pub endpoint: Arc<EndpointConfig>,
    /// The queue.
    pub shared: Arc<Shared>,
    /// Its counts.
    pub counters: Arc<EndpointCounters>,
    /// The HTTP client.
    pub client: HttpClient,
    /// Undelivered events kept.
    pub max_events: u64,
}

impl Delivery {
    /// Runs until the process ends.
    pub async fn run(self) {
        let start = self.shared.cursors[self.index].load(Ordering::Acquire);
        let mut reader = match self.blocking_reader(start).await {
            Some(r) => r,
            None => return,
        };
        let mut batch: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
        loop {
            self.skip_dropped(&mut reader, &mut batch).await;
            if batch.is_empty() {
                let wake = self.shared.wake.notified();
                tokio::pin!(wake);
                wake.as_mut().enable();
                let (r, read) = self.read(reader).await;
                reader = r;
                if read.is_empty() {
                    if reader.next >= self.shared.head.load(Ordering::Acquire) {
                        wake.await;
                    } else {
                        // Behind the head yet nothing readable (damaged bytes a failed
                        // write left): look again later rather than spin.
                        tokio::time::sleep(self.endpoint.backoff).await;
                    }
                    continue;
                }
                let mut last = None;
                for (seq, payload) in read {
                    self.counters.events.inc();
                    last = Some(seq);
                    if wanted(&self.endpoint, &payload) {
                        batch.push_back((seq, payload));
                    }
                }
                if batch.is_empty() {
                    if let Some(seq) = last {
                        self.advance(seq + 1).await;
                    }
                    continue;
                }
            }
            self.deliver(&mut batch, &mut reader).await;
            self.advance(reader.next).await;
        }
    }

    /// Posts `batch` until it is delivered or dropped.
    async fn deliver(&self, batch: &mut VecDeque<(u64, Vec<u8>)>, reader: &mut Reader) {
        let mut failures = 0u32;
        loop {
            self.skip_dropped(reader, batch).await;
            if batch.is_empty() {
                return;
            }
            if failures >= self.endpoint.threshold {
                tokio::time::sleep(self.endpoint.backoff).await;
            }
            let n = batch.len() as u64;
            match self.post(envelope(batch), n).await {
                Outcome::Delivered => {
                    self.counters.successes.add(n);
                    batch.clear();
                    return;
                }
                Outcome::Refused => self.counters.failures.add(n),
                Outcome::Failed => self.counters.errors.add(n),
            }
            failures = failures.saturating_add(1);
            if failures == self.endpoint.threshold {
                tracing::warn!(
                    endpoint = %self.endpoint.name,
                    "notification endpoint failed {failures} times in a row; retrying every {:?}",
                    self.endpoint.backoff
                );
            }
        }
    }

    /// Drops the oldest events while the endpoint is more than `max_events` behind.
    async fn skip_dropped(&self, reader: &mut Reader, batch: &mut VecDeque<(u64, Vec<u8>)>) {
        let head = self.shared.head.load(Ordering::Acquire);
        let floor = head.saturating_sub(self.max_events);
        let oldest = batch.front().map_or(reader.next, |(s, _)| *s);
        if oldest >= floor {
            return;
        }
        let mut dropped = 0u64;
        while batch.front().is_some_and(|(s, _)| *s < floor) {
            batch.pop_front();
            dropped += 1;
        }
        if batch.is_empty() && reader.next < floor {
            dropped += floor - reader.next;
            if let Some(r) = self.blocking_reader(floor).await {
                *reader = r;
            }
        }
        self.counters.dropped.add(dropped);
        tracing::warn!(
            endpoint = %self.endpoint.name,
            dropped,
            limit = self.max_events,
            "notification endpoint is too far behind: dropped its oldest events"
        );
        if batch.is_empty() {
            self.advance(reader.next).await;
        }
    }

    async fn blocking_reader(&self, seq: u64) -> Option<Reader> {
        let shared = self.shared.clone();
        match tokio::task::spawn_blocking(move || Reader::at(shared, seq)).await {
            Ok(Ok(r)) => Some(r),
            Ok(Err(e)) => {
                tracing::error!(endpoint = %self.endpoint.name, error = %e, "notification queue: cannot read");
                None
            }
            Err(_) => None,
        }
    }

    async fn read(&self, mut reader: Reader) -> (Reader, Vec<(u64, Vec<u8>)>) {
        let kept = reader.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let r = reader.read(READ_BYTES, MAX_BATCH);
            (reader, r)
        })
        .await;
        match joined {
            Ok((reader, Ok(events))) => (reader, events),
            Ok((reader, Err(e))) => {
                tracing::error!(endpoint = %self.endpoint.name, error = %e, "notification queue: cannot read; retrying");
                tokio::time::sleep(self.endpoint.backoff).await;
                (reader, Vec::new())
            }
            Err(_) => (kept, Vec::new()),
        }
    }

    /// Moves and saves the cursor.
    async fn advance(&self, seq: u64) {
        let cursor = &self.shared.cursors[self.index];
        if cursor.load(Ordering::Acquire) >= seq {
            return;
        }
        cursor.store(seq, Ordering::Release);
        let store = self.shared.store.clone();
        let name = self.endpoint.name.clone();
        let saved = tokio::task::spawn_blocking(move || store.set_cursor(&name, seq)).await;
        if let Ok(Err(e)) = saved {
            tracing::warn!(endpoint = %self.endpoint.name, error = %e, "notification queue: saving the cursor failed (events may be delivered again after a restart)");
        }
    }

    async fn post(&self, body: Bytes, events: u64) -> Outcome {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.endpoint.url.clone())
            .header(CONTENT_TYPE, EVENTS_MEDIA_TYPE)
            .header(USER_AGENT, concat!("berth/", env!("CARGO_PKG_VERSION")));
        for (name, value) in &self.endpoint.headers {
            req = req.header(name, value);
        }
        let req = match req.body(Full::new(body)) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(endpoint = %self.endpoint.name, error = %e, "building a notification post");
                return Outcome::Failed;
            }
        };
        match tokio::time::timeout(self.endpoint.timeout, self.client.request(req)).await {
            Ok(Ok(resp)) => {
                let status = resp.status();
                let line = format!(
                    "{} {}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("")
                );
                self.counters.status(line, events);
                if status.is_success() || status.is_redirection() {
                    Outcome::Delivered
                } else {
                    tracing::warn!(endpoint = %self.endpoint.name, %status, events, "notification endpoint refused events; retrying");
                    Outcome::Refused
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(endpoint = %self.endpoint.name, error = %e, events, "posting notifications failed; retrying");
                Outcome::Failed
            }
            Err(_) => {
                tracing::warn!(endpoint = %self.endpoint.name, timeout = ?self.endpoint.timeout, events, "posting notifications timed out; retrying");
                Outcome::Failed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn filters_apply_to_stored_events() {
        let ep = EndpointConfig {
            name: "e".into(),
            url: "http://h/".parse().unwrap(),
            headers: Vec::new(),
            timeout: Duration::from_secs(1),
            threshold: 1,
            backoff: Duration::from_secs(1),
            ignored_media_types: vec!["application/octet-stream".into()],
            ignored_actions: vec![Action::Delete],
        };
        let blob =
            br#"{"id":"x","action":"push","target":{"mediaType":"application/octet-stream"}}"#;
        let manifest = br#"{"action":"pull","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json"}}"#;
        let delete = br#"{"action":"delete","target":{"repository":"a","tag":"v1"}}"#;
        assert!(!wanted(&ep, blob));
        assert!(wanted(&ep, manifest));
        assert!(!wanted(&ep, delete));
        let mut batch = VecDeque::new();
        batch.push_back((1, manifest.to_vec()));
        batch.push_back((2, delete.to_vec()));
        let body: serde_json::Value = serde_json::from_slice(&envelope(&batch)).unwrap();
        assert_eq!(body["events"].as_array().unwrap().len(), 2);
    }
}
