//! The HTTP client for the registry under test: one keep-alive connection pool, and
//! `send`, which times one request (until its whole body has arrived) into a
//! [`Recorder`] and turns transport failures into error strings, never panics.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, Request, RequestBuilder};
use url::Url;

use crate::stats::Recorder;

/// How long one request may take (a 512 MiB blob over a slow registry included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// How many bytes of an unexpected body an error message quotes.
const EXCERPT: usize = 200;

/// An HTTP client bound to the base URL of the registry under test.
#[derive(Clone)]
pub struct Registry {
    http: reqwest::Client,
    base: Url,
}

/// One complete answer.
pub struct Answer {
    /// What was asked, e.g. `GET http://.../v2/x/manifests/t`, for error messages.
    pub what: String,
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, as received (possibly in several chunks).
    pub chunks: Vec<Bytes>,
}

impl Answer {
    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Total body length.
    pub fn body_len(&self) -> u64 {
        self.chunks.iter().map(|c| c.len() as u64).sum()
    }

    /// The body as one contiguous buffer (copies only when it arrived in pieces).
    pub fn body(&self) -> Bytes {
        match self.chunks.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => Bytes::from(many.concat()),
        }
    }

    /// This answer if its status is `status`, else an error naming what came back.
    pub fn expect(self, status: u16) -> Result<Self, String> {
        if self.status == status {
            return Ok(self);
        }
        let body = self.body();
        let excerpt = String::from_utf8_lossy(&body[..body.len().min(EXCERPT)]).into_owned();
        Err(format!(
            "{}: status {} (want {status}): {excerpt}",
            self.what, self.status
        ))
    }

    /// A header that must be present, or an error.
    pub fn require_header(&self, name: &str) -> Result<&str, String> {
        self.header(name)
            .ok_or_else(|| format!("{}: no {name} header", self.what))
    }
}

impl Registry {
    /// A client for `base_url` keeping up to `connections` idle keep-alive connections.
    pub fn new(base_url: &str, connections: usize) -> Result<Self, String> {
        let base = Url::parse(base_url).map_err(|e| format!("invalid URL {base_url}: {e}"))?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(connections.max(1))
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .http1_only()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(Self { http, base })
    }

    /// Resolves a path (`/v2/...`) or a `Location`/`Link` value against the base URL.
    pub fn url(&self, reference: &str) -> Result<Url, String> {
        self.base
            .join(reference)
            .map_err(|e| format!("cannot resolve {reference:?}: {e}"))
    }

    /// Starts a request.
    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url)
    }

    /// Sends a request, reads the whole body, and records how long that took.
    pub async fn send(
        &self,
        rec: &mut Recorder,
        builder: RequestBuilder,
    ) -> Result<Answer, String> {
        let request: Request = builder
            .build()
            .map_err(|e| format!("cannot build request: {e}"))?;
        let what = format!("{} {}", request.method(), request.url());
        let started = Instant::now();
        let result = self.read(request).await;
        match result {
            Ok((status, headers, chunks)) => {
                rec.request(started.elapsed());
                Ok(Answer {
                    what,
                    status,
                    headers,
                    chunks,
                })
            }
            Err(e) => {
                rec.unanswered();
                Err(format!("{what}: {e}"))
            }
        }
    }

    async fn read(&self, request: Request) -> Result<(u16, HeaderMap, Vec<Bytes>), String> {
        let mut response = self.http.execute(request).await.map_err(describe)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut chunks = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(describe)? {
            chunks.push(chunk);
        }
        Ok((status, headers, chunks))
    }
}

/// A reqwest error with its causes, which carry the useful part.
fn describe(e: reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
