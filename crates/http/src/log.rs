//! What is recorded of every request once its response body is finished: one
//! structured log line (its id, method, path, status, the bytes of body actually sent,
//! and the time from the request's arrival to the end of its response body), and, with
//! `http.debug.prometheus` on, its metrics (`metrics.rs`). The response body is wrapped
//! so that both are taken when the body ends, fails, or is dropped unfinished (a client
//! that went away, a HEAD response); the request body is wrapped to count what is read.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{Method, StatusCode};
use http_body::{Frame, SizeHint};

use crate::access::AuthenticatedUser;
use crate::metrics::{Finished, HttpMetrics, Routed, approximate_request_size, method_index};
use crate::request_id::RequestId;

/// Records the request once its response body is finished.
pub(crate) async fn observe_request(
    State(metrics): State<Option<Arc<HttpMetrics>>>,
    req: Request,
    next: Next,
) -> Response {
    // With the access log off (`log.accesslog.disabled`) and no metrics, the bodies are
    // left as they are.
    let logging = tracing::enabled!(target: "berth::access", tracing::Level::INFO);
    if !logging && metrics.is_none() {
        return next.run(req).await;
    }
    let start = Instant::now();
    let method = req.method().clone();
    let line = logging.then(|| Line {
        id: req.extensions().get::<RequestId>().cloned(),
        method: method.clone(),
        path: req.uri().path().to_owned(),
        user: None,
        // The body is polled by the connection task, outside the request's span; the
        // line keeps the span so its fields (the request id, `log.fields`) still come
        // with it.
        span: tracing::Span::current(),
    });
    let (req, request_size) = match &metrics {
        Some(m) => {
            let size = approximate_request_size(&req);
            let counted = req.map(|inner| {
                Body::new(Tapped {
                    inner,
                    tap: Received(m.clone()),
                })
            });
            (counted, size)
        }
        None => (req, 0),
    };
    let resp = next.run(req).await;
    let (parts, body) = resp.into_parts();
    let routed = parts.extensions.get::<Routed>().copied();
    let line = line.map(|l| Line {
        user: parts
            .extensions
            .get::<AuthenticatedUser>()
            .map(|u| u.0.clone()),
        ..l
    });
    let record = Record {
        start,
        status: parts.status,
        line,
        metrics: metrics.map(|m| Metered {
            metrics: m,
            routed,
            method: method_index(&method),
            request_size,
        }),
    };
    let body = Tapped {
        inner: body,
        tap: Observed {
            bytes: 0,
            record: Some(record),
        },
    };
    Response::from_parts(parts, Body::new(body))
}

/// What is written when the body ends, besides its byte count.
struct Record {
    start: Instant,
    status: StatusCode,
    line: Option<Line>,
    metrics: Option<Metered>,
}

/// The access line's fields.
struct Line {
    /// Written in the line itself (not only in its span) so that a search for one
    /// request's access line needs no knowledge of span nesting.
    id: Option<RequestId>,
    method: Method,
    path: String,
    /// The authenticated user, named as distribution names it (`auth.user.name`).
    user: Option<String>,
    span: tracing::Span,
}

/// What the metrics need of a request.
struct Metered {
    metrics: Arc<HttpMetrics>,
    /// The route `dispatch` counted the request under, if it named one.
    routed: Option<Routed>,
    method: usize,
    request_size: u64,
}

impl Record {
    fn write(self, bytes: u64) {
        let elapsed = self.start.elapsed();
        if let Some(m) = self.metrics {
            m.metrics.sent(bytes);
            if let Some(Routed(route)) = m.routed {
                m.metrics.finished(&Finished {
                    route,
                    method: m.method,
                    status: self.status,
                    request_size: m.request_size,
                    response_size: bytes,
                    elapsed,
                });
            }
        }
        if let Some(line) = self.line {
            let _entered = line.span.enter();
            tracing::info!(
                target: "berth::access",
                request_id = line.id.as_ref().map(RequestId::as_str),
                method = %line.method,
                path = %line.path,
                auth.user.name = line.user.as_deref(),
                status = self.status.as_u16(),
                bytes,
                duration_ms = duration_ms(elapsed),
                "request"
            );
        }
    }
}

/// Milliseconds with at most three decimals (whole microseconds, rounded). Dividing an
/// integer count of microseconds by 1000 gives the double nearest to that decimal, which
/// prints as that decimal; scaling seconds by 1000 would print binary noise
/// (`0.014192000000000001`).
fn duration_ms(elapsed: Duration) -> f64 {
    let micros = (elapsed.as_nanos() + 500) / 1000;
    // u64 microseconds last 584,000 years; the cast below is exact below 2^53 (285 years).
    let micros = u64::try_from(micros).unwrap_or(u64::MAX);
    micros as f64 / 1000.0
}

/// What a wrapped body reports: each data frame's length, and its end (reached, failed,
/// or the body dropped unfinished; possibly more than once).
trait Tap: Send + Unpin + 'static {
    fn data(&mut self, len: u64);
    fn end(&mut self);
}

/// A body passed through unchanged while its [`Tap`] watches.
struct Tapped<T: Tap> {
    inner: Body,
    tap: T,
}

impl<T: Tap> HttpBody for Tapped<T> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.tap.data(data.len() as u64);
                }
                if this.inner.is_end_stream() {
                    this.tap.end();
                }
            }
            Poll::Ready(Some(Err(_)) | None) => this.tap.end(),
            Poll::Pending => {}
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

impl<T: Tap> Drop for Tapped<T> {
    fn drop(&mut self) {
        self.tap.end();
    }
}

/// The response's tap: counts the bytes sent and writes the record once.
struct Observed {
    bytes: u64,
    record: Option<Record>,
}

impl Tap for Observed {
    fn data(&mut self, len: u64) {
        self.bytes += len;
    }

    fn end(&mut self) {
        if let Some(record) = self.record.take() {
            record.write(self.bytes);
        }
    }
}

/// The request's tap: adds what is read to the received-bytes counter as it goes (a
/// dropped upload still counts what arrived).
struct Received(Arc<HttpMetrics>);

impl Tap for Received {
    fn data(&mut self, len: u64) {
        self.0.received(len);
    }

    fn end(&mut self) {}
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::routing::get;
    use futures::stream;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Log output captured in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl MakeWriter<'_> for Captured {
        type Writer = Captured;
        fn make_writer(&self) -> Captured {
            self.clone()
        }
    }

    impl Captured {
        fn access_lines(&self) -> Vec<serde_json::Value> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .filter(|v| v["target"] == "berth::access")
                .collect()
        }

        fn raw(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(captured.clone())
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    const CHUNKS: [&str; 3] = ["first chunk,", "second,", "and the last one"];

    fn app() -> Router {
        Router::new()
            .route(
                "/stream",
                get(|| async {
                    let chunks = CHUNKS.map(|c| Ok::<_, std::io::Error>(Bytes::from(c)));
                    Body::from_stream(stream::iter(chunks))
                }),
            )
            .layer(axum::middleware::from_fn_with_state(None, observe_request))
    }

    fn get_request(path: &str) -> Request {
        Request::builder().uri(path).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn a_streamed_body_is_logged_when_it_ends_with_its_length() {
        let (captured, _guard) = capture();
        let resp = app().oneshot(get_request("/stream")).await.unwrap();
        assert!(resp.headers().get(http::header::CONTENT_LENGTH).is_none());
        assert!(
            captured.access_lines().is_empty(),
            "the line waits for the body"
        );
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let expected: usize = CHUNKS.iter().map(|c| c.len()).sum();
        assert_eq!(body.len(), expected);
        let lines = captured.access_lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["bytes"], expected as u64);
        assert_eq!(lines[0]["status"], 200);
        assert_eq!(lines[0]["path"], "/stream");
        // The number as written: at most three decimals, whatever the elapsed time was.
        let raw = captured.raw();
        let written = raw
            .split("\"duration_ms\":")
            .nth(1)
            .and_then(|rest| rest.split([',', '}']).next())
            .unwrap_or_else(|| panic!("no duration_ms in {raw}"));
        let decimals = written.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(decimals <= 3, "duration_ms written as {written}");
    }

    #[tokio::test]
    async fn an_unread_body_is_logged_when_dropped() {
        let (captured, _guard) = capture();
        let resp = app().oneshot(get_request("/stream")).await.unwrap();
        drop(resp);
        let lines = captured.access_lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["bytes"], 0);
    }

    #[test]
    fn durations_have_no_float_noise() {
        assert_eq!(duration_ms(Duration::from_nanos(14_192_000)), 14.192);
        assert_eq!(duration_ms(Duration::from_nanos(14_192_499)), 14.192);
        assert_eq!(duration_ms(Duration::from_nanos(14_192_500)), 14.193);
        assert_eq!(
            format!("{:?}", duration_ms(Duration::from_micros(14))),
            "0.014"
        );
        // Every microsecond count up to a second prints as its exact decimal.
        for micros in 0..1_000_000u64 {
            let printed = format!("{:?}", duration_ms(Duration::from_micros(micros)));
            let (whole, frac) = printed.split_once('.').unwrap();
            let frac = format!("{frac:0<3}");
            assert_eq!(
                (whole.parse::<u64>().unwrap(), frac.parse::<u64>().unwrap()),
                (micros / 1000, micros % 1000),
                "{micros}us printed as {printed}"
            );
        }
    }
}
