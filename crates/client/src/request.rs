//! A request as the caller describes it: method, URL, headers and a [`Body`]. The
//! registry operations build these; conformance checks that probe bad input build their
//! own and send them through [`crate::Client::send`].

use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;
use reqwest::Method;
use url::Url;

/// A stream of body pieces.
pub type PieceStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// A request body.
pub enum Body {
    /// No body and no `Content-Length` (GET, HEAD, DELETE).
    Empty,
    /// A body of known length, sent with `Content-Length` (also when it is 0, as an
    /// upload's `POST` or closing `PUT` is).
    Bytes(Bytes),
    /// A body sent as it is produced: with `Content-Length` when `len` is given, else
    /// with chunked transfer encoding (a docker-style streamed `PATCH`).
    Stream {
        /// The pieces.
        pieces: PieceStream,
        /// The total length, if known in advance.
        len: Option<u64>,
    },
}

impl Body {
    /// A body of known bytes.
    pub fn bytes(data: impl Into<Bytes>) -> Self {
        Body::Bytes(data.into())
    }

    /// A body of these pieces, in chunked transfer encoding.
    pub fn pieces(pieces: impl IntoIterator<Item = Bytes, IntoIter: Send + 'static>) -> Self {
        Body::stream(futures::stream::iter(pieces.into_iter().map(Ok)), None)
    }

    /// A body read from `stream` as it yields; `len`, if given, is sent as
    /// `Content-Length` and must be what the stream yields in total.
    pub fn stream(
        stream: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
        len: Option<u64>,
    ) -> Self {
        Body::Stream {
            pieces: Box::pin(stream),
            len,
        }
    }
}

/// One request to send.
pub struct Request {
    /// The method.
    pub method: Method,
    /// The absolute URL.
    pub url: Url,
    /// Headers, in order (a name may repeat).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
}

impl Request {
    /// A request without headers or body.
    pub fn new(method: Method, url: Url) -> Self {
        Self {
            method,
            url,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    /// Appends query parameters to the URL (keeping those it has).
    pub fn query(mut self, params: &[(&str, &str)]) -> Self {
        if !params.is_empty() {
            let mut q = self.url.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
        }
        self
    }
}
