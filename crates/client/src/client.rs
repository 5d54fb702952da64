//! [`Client`]: one keep-alive connection pool bound to a registry's base URL, and the
//! one place requests go out ([`Client::send`] reads the whole answer,
//! [`Client::send_streaming`] hands the body over piece by piece). Transport failures
//! are errors; every status, good or bad, is an answer for the caller to judge.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{CONTENT_LENGTH, HeaderName, HeaderValue};
use url::Url;

use crate::error::{Error, describe};
use crate::request::{Body, Request};
use crate::response::{Response, Streaming};

/// How long one request may take unless the builder says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// An HTTP client for one registry.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
}

/// Settings of a [`Client`] that differ between its users: the benchmark keeps many
/// idle connections, speaks HTTP/1.1 only and never follows redirects; a test polling a
/// starting server wants a short timeout.
pub struct ClientBuilder {
    base: String,
    timeout: Duration,
    connect_timeout: Option<Duration>,
    max_idle_per_host: Option<usize>,
    http1_only: bool,
    follow_redirects: bool,
    authorization: Option<String>,
}

impl ClientBuilder {
    /// How long a request may take, from sending to the last byte of the answer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long connecting may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How many idle keep-alive connections to keep (at least one).
    pub fn max_idle_connections(mut self, n: usize) -> Self {
        self.max_idle_per_host = Some(n.max(1));
        self
    }

    /// Speak HTTP/1.1 only.
    pub fn http1_only(mut self) -> Self {
        self.http1_only = true;
        self
    }

    /// Whether to follow redirects (on by default: a registry may send blob GETs to
    /// its storage).
    pub fn follow_redirects(mut self, follow: bool) -> Self {
        self.follow_redirects = follow;
        self
    }

    /// An `Authorization` value sent with every request (`Basic ...`, `Bearer ...`).
    pub fn authorization(mut self, value: impl Into<String>) -> Self {
        self.authorization = Some(value.into());
        self
    }

    /// The client.
    pub fn build(self) -> Result<Client, Error> {
        let base = Url::parse(&self.base).map_err(|source| Error::Url {
            reference: self.base.clone(),
            base: String::new(),
            source,
        })?;
        let mut http = reqwest::Client::builder()
            .timeout(self.timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true);
        if let Some(t) = self.connect_timeout {
            http = http.connect_timeout(t);
        }
        if let Some(n) = self.max_idle_per_host {
            http = http.pool_max_idle_per_host(n);
        }
        if self.http1_only {
            http = http.http1_only();
        }
        if !self.follow_redirects {
            http = http.redirect(reqwest::redirect::Policy::none());
        }
        if let Some(value) = &self.authorization {
            let mut v = HeaderValue::from_str(value)
                .map_err(|e| Error::Build(format!("Authorization value: {e}")))?;
            v.set_sensitive(true);
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, v);
            http = http.default_headers(headers);
        }
        let http = http.build().map_err(|e| Error::Build(describe(&e)))?;
        Ok(Client { http, base })
    }
}

impl Client {
    /// A client for `base_url` (e.g. `http://127.0.0.1:5000`) with the default settings.
    pub fn new(base_url: &str) -> Result<Self, Error> {
        Self::builder(base_url).build()
    }

    /// Settings for a client of `base_url`.
    pub fn builder(base_url: &str) -> ClientBuilder {
        ClientBuilder {
            base: base_url.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: None,
            max_idle_per_host: None,
            http1_only: false,
            follow_redirects: true,
            authorization: None,
        }
    }

    /// The base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Resolves a path (`/v2/...`) or a `Location`/`Link` value, relative or absolute,
    /// against the base URL.
    pub fn url(&self, reference: &str) -> Result<Url, Error> {
        self.base.join(reference).map_err(|source| Error::Url {
            reference: reference.to_owned(),
            base: self.base.to_string(),
            source,
        })
    }

    /// Sends one request and reads the whole answer. A body that fails half-way is
    /// reported in [`Response::body_error`], not as an error: the status arrived.
    pub async fn send(&self, request: Request) -> Result<Response, Error> {
        let (method, started, mut response) = self.execute(request).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let final_url = response.url().clone();
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut body_error = None;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => chunks.push(chunk),
                Ok(None) => break,
                Err(e) => {
                    body_error = Some(format!("reading body failed: {}", describe(&e)));
                    break;
                }
            }
        }
        let elapsed = started.elapsed();
        let body = match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.swap_remove(0),
            _ => Bytes::from(chunks.concat()),
        };
        Ok(Response {
            method,
            url: final_url,
            status,
            headers,
            body,
            body_error,
            elapsed,
        })
    }

    /// Sends one request and answers once the head has arrived; the body is read with
    /// [`Streaming::chunk`].
    pub async fn send_streaming(&self, request: Request) -> Result<Streaming, Error> {
        let (method, _, inner) = self.execute(request).await?;
        Ok(Streaming {
            method,
            url: inner.url().clone(),
            status: inner.status().as_u16(),
            headers: inner.headers().clone(),
            inner,
        })
    }

    /// The reqwest request for `request`: its headers in order, then `Content-Length`
    /// when the body's length is known and the caller did not set it.
    /// Sends a request and waits for the answer's head; answers the method and when the
    /// request left (after it was built) with it.
    async fn execute(
        &self,
        request: Request,
    ) -> Result<(Method, Instant, reqwest::Response), Error> {
        let (method, url) = (request.method.clone(), request.url.clone());
        let built = self.build(request)?;
        let started = Instant::now();
        let response = self
            .http
            .execute(built)
            .await
            .map_err(|e| Error::Transport {
                what: format!("{method} {url}"),
                detail: describe(&e),
            })?;
        Ok((method, started, response))
    }

    fn build(&self, request: Request) -> Result<reqwest::Request, Error> {
        let what = || format!("{} {}", request.method, request.url);
        let mut builder = self
            .http
            .request(request.method.clone(), request.url.clone());
        let mut has_length = false;
        for (name, value) in &request.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| Error::Transport {
                what: what(),
                detail: format!("invalid header name {name:?}: {e}"),
            })?;
            let value = HeaderValue::from_str(value).map_err(|e| Error::Transport {
                what: what(),
                detail: format!("invalid value of {name}: {e}"),
            })?;
            has_length |= name == CONTENT_LENGTH;
            builder = builder.header(name, value);
        }
        builder = match request.body {
            Body::Empty => builder,
            Body::Bytes(bytes) => {
                if !has_length {
                    builder = builder.header(CONTENT_LENGTH, bytes.len());
                }
                builder.body(bytes)
            }
            Body::Stream { pieces, len } => {
                if let (Some(len), false) = (len, has_length) {
                    builder = builder.header(CONTENT_LENGTH, len);
                }
                builder.body(reqwest::Body::wrap_stream(pieces))
            }
        };
        builder.build().map_err(|e| Error::Transport {
            what: what(),
            detail: format!("cannot build request: {}", describe(&e)),
        })
    }
}
