//! What happens to a request body a response did not read to its end (an early refusal:
//! a 401 challenge, an unknown upload, a bad range). hyper ends such an HTTP/1.x
//! connection after the response, and an HTTP/1.1 connection whose response announced
//! nothing persists (RFC 9112 §9.3): a client that had finished writing the body reuses
//! it, and its next request fails with EOF (Go's transport does this after every
//! challenged upload; so does nginx, proxying a body unbuffered, towards its client).
//! So the rest of a small body is read and dropped before the response goes out, and the
//! connection stays usable, as distribution's Go server does (up to 256 KiB); a larger
//! rest, or one that does not come within [`DRAIN_WAIT`], ends the connection with
//! `Connection: close` announced (RFC 9112 §9.6).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::header::CONNECTION;
use http::{HeaderValue, Version};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;

/// The most of an unread body read and dropped to keep its connection.
pub(crate) const DRAIN_LIMIT: usize = 256 * 1024;
/// How long the rest of an unread body is waited for before the connection is given up.
pub(crate) const DRAIN_WAIT: Duration = Duration::from_secs(5);

/// Reads and drops the rest of a request body the response left unread, when it is
/// small; otherwise marks the response `Connection: close`.
pub(crate) async fn close_if_unread(req: Request, next: Next) -> Response {
    // HTTP/2 has no connection-wide consequence (and forbids the header); a request
    // without a body has nothing left to read.
    let http1 = matches!(req.version(), Version::HTTP_10 | Version::HTTP_11);
    if !http1 || req.body().is_end_stream() {
        return next.run(req).await;
    }
    let watch = Arc::new(Watch::default());
    let req = req.map(|inner| {
        Body::new(Watched {
            inner: Some(inner),
            watch: watch.clone(),
        })
    });
    let mut resp = next.run(req).await;
    if !watch.finished.load(Ordering::Acquire) && !watch.drain().await {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// What the middleware learns of its request's body.
#[derive(Default)]
struct Watch {
    /// The body's end was reached.
    finished: AtomicBool,
    /// The body, handed back when it was dropped before its end.
    rest: Mutex<Option<Body>>,
}

impl Watch {
    /// Reads the rest of a body dropped before its end; whether it ended within
    /// [`DRAIN_LIMIT`] bytes and [`DRAIN_WAIT`]. A body still held elsewhere (the
    /// response did not drop it) counts as unread.
    async fn drain(&self) -> bool {
        let rest = self.rest.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut body) = rest else {
            return false;
        };
        let read = async {
            let mut seen = 0usize;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else {
                    return false;
                };
                seen += frame.data_ref().map_or(0, |d| d.len());
                if seen > DRAIN_LIMIT {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(DRAIN_WAIT, read)
            .await
            .unwrap_or(false)
    }
}

/// A request body passed through unchanged that records whether its end was reached,
/// and hands itself back to its [`Watch`] when dropped before.
struct Watched {
    inner: Option<Body>,
    watch: Arc<Watch>,
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(&mut *inner).poll_frame(cx);
        // A reader that stops after the last data frame (it knows the length) has still
        // read everything: the inner body then reports its end.
        if matches!(polled, Poll::Ready(None)) || inner.is_end_stream() {
            this.watch.finished.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if !self.watch.finished.load(Ordering::Acquire)
            && let Some(inner) = self.inner.take()
        {
            *self.watch.rest.lock().unwrap_or_else(|p| p.into_inner()) = Some(inner);
        }
    }
}
