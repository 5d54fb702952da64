//! `Connection: close` on an HTTP/1.x response sent before its request's body was read
//! to the end: an early refusal (a 401 challenge, an unknown upload, a bad range) leaves
//! the rest of the body unread, and hyper then ends the connection after the response
//! unless the body had already arrived. RFC 9112 §9.6 lets a server close instead of
//! reading the body, but a sender SHOULD say so with `Connection: close`; without it an
//! HTTP/1.1 connection persists (§9.3), so a client that had finished writing the body
//! reuses the connection and its next request fails with EOF (Go's transport does this
//! after every challenged upload). Distribution's Go server reads up to 256 KiB of an
//! unread body instead; announcing the close costs the client one new connection and
//! never delays the answer.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::header::CONNECTION;
use http::{HeaderValue, Version};
use http_body::{Frame, SizeHint};

/// Marks the response `Connection: close` when the request's body was not read to its
/// end by the time the response was ready.
pub(crate) async fn close_if_unread(req: Request, next: Next) -> Response {
    // HTTP/2 has no connection-wide consequence (and forbids the header); a request
    // without a body has nothing left to read.
    let http1 = matches!(req.version(), Version::HTTP_10 | Version::HTTP_11);
    if !http1 || req.body().is_end_stream() {
        return next.run(req).await;
    }
    let finished = Arc::new(AtomicBool::new(false));
    let req = req.map(|inner| {
        Body::new(Watched {
            inner,
            finished: finished.clone(),
        })
    });
    let mut resp = next.run(req).await;
    if !finished.load(Ordering::Acquire) {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// A request body passed through unchanged that records whether its end was reached.
struct Watched {
    inner: Body,
    finished: Arc<AtomicBool>,
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        // A reader that stops after the last data frame (it knows the length) has still
        // read everything: the inner body then reports its end.
        if matches!(polled, Poll::Ready(None)) || this.inner.is_end_stream() {
            this.finished.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
