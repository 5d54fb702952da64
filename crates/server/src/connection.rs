//! Connection limits (`berth.limits`): how long a request head may take, how long a
//! connection may sit idle, and how large a head may be.
//!
//! hyper's own head timer starts when it begins waiting for a head, which on a
//! keep-alive connection is as soon as the previous response is written: it cannot
//! tell a client that is slow to send a head (a slow-loris, to be cut off in seconds)
//! from one that keeps its connection for the next request (to be left alone for a
//! minute). So [`LimitedAcceptor`] wraps every accepted connection (plain or TLS,
//! after the handshake) in a [`LimitedStream`] and every request on it in a counting
//! service; between them they know whether a request is in flight, when bytes last
//! moved, and when the first byte of a head arrived while none was. From that:
//!
//! - a head must be complete (its request handed to the router) within
//!   `headerreadtimeout` of its first byte;
//! - with no request in flight, a connection on which no byte moves for `idletimeout`
//!   is closed: an idle keep-alive connection, a client that never sends anything, or
//!   one that stops reading a response it is being sent.
//!
//! "In flight" ends when the router answers, not when the body has been sent: a long
//! download is kept alive by its bytes moving, and one the client stops reading times
//! out like an idle connection. While a request is being handled nothing times out
//! (the handler may be flushing a large blob; a request body that stalls holds its
//! connection, as in distribution). On HTTP/2, any frame arriving while no stream is
//! open counts as the start of a head. Head size is hyper's to enforce
//! ([`configure`]).
//!
//! A connection over a limit is closed by failing its next read or write with
//! `TimedOut`, which ends hyper's connection task.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use tower::Service;

use crate::config::Limits;

/// hyper refuses a read buffer smaller than this.
const MIN_BUFFER: usize = 8192;

/// Applies `limits.max_header_bytes` to hyper: HTTP/1 heads that do not fit its read
/// buffer are answered 431 and the connection closed; HTTP/2 header lists beyond it are
/// refused by the h2 layer. The same bound caps how much one read of an HTTP/1 body
/// takes from the socket.
pub fn configure<A: axum_server::Address, Acc>(
    server: &mut axum_server::Server<A, Acc>,
    limits: &Limits,
) {
    let builder = server.http_builder();
    builder
        .http1()
        .max_buf_size(limits.max_header_bytes.max(MIN_BUFFER));
    builder
        .http2()
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
}

/// The timeouts every connection gets.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeouts {
    /// From a head's first byte to its request reaching the router.
    pub header_read: Option<Duration>,
    /// With no request in flight, since bytes last moved.
    pub idle: Option<Duration>,
}

impl Timeouts {
    /// The timeouts of `limits`.
    pub fn from_limits(limits: &Limits) -> Self {
        Timeouts {
            header_read: limits.header_read_timeout,
            idle: limits.idle_timeout,
        }
    }
}

/// Wraps an acceptor so its connections and their requests enforce [`Timeouts`].
#[derive(Debug, Clone)]
pub struct LimitedAcceptor<A> {
    inner: A,
    timeouts: Timeouts,
}

impl<A> LimitedAcceptor<A> {
    /// `inner`'s connections, limited by `timeouts`.
    pub fn new(inner: A, timeouts: Timeouts) -> Self {
        LimitedAcceptor { inner, timeouts }
    }
}

impl<I, S, A> Accept<I, S> for LimitedAcceptor<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = LimitedStream<A::Stream>;
    type Service = Counted<A::Service>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepting = self.inner.accept(stream, service);
        let timeouts = self.timeouts;
        Box::pin(async move {
            let (stream, service) = accepting.await?;
            let state = Arc::new(ConnState::new());
            let stream = LimitedStream {
                inner: stream,
                state: state.clone(),
                timeouts,
                timer: None,
            };
            Ok((
                stream,
                Counted {
                    inner: service,
                    state,
                },
            ))
        })
    }
}

/// "Not set" in the millisecond fields of [`ConnState`].
const UNSET: u64 = u64::MAX;

/// What a connection's stream and its requests share.
#[derive(Debug)]
struct ConnState {
    /// When the connection was accepted; the fields below count milliseconds from it.
    epoch: Instant,
    /// Requests handed to the router and not yet answered.
    in_flight: AtomicUsize,
    /// When a byte last moved, or a request was last answered.
    last_activity: AtomicU64,
    /// When the first byte arrived while no request was in flight; [`UNSET`] when none
    /// has since the last request started.
    head_started: AtomicU64,
    /// The connection task, when it last found no deadline to wait for (a request was
    /// in flight): woken when the request is answered, so it arms the idle timer even
    /// if no byte ever arrives to wake it.
    parked: Mutex<Option<Waker>>,
}

impl ConnState {
    fn new() -> Self {
        ConnState {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_activity: AtomicU64::new(0),
            head_started: AtomicU64::new(UNSET),
            parked: Mutex::new(None),
        }
    }

    fn parked(&self) -> std::sync::MutexGuard<'_, Option<Waker>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(UNSET - 1)
    }

    fn moved(&self, read: bool) {
        let now = self.now();
        self.last_activity.store(now, Ordering::Relaxed);
        if read && self.in_flight.load(Ordering::Acquire) == 0 {
            // Only the first byte of a head starts its timer.
            let _ =
                self.head_started
                    .compare_exchange(UNSET, now, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(UNSET, Ordering::Release);
    }

    fn request_answered(&self) {
        self.last_activity.store(self.now(), Ordering::Relaxed);
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(waker) = self.parked().take()
        {
            waker.wake();
        }
    }

    /// When the connection is over a limit, in milliseconds from `epoch`; `None` while a
    /// request is in flight or no limit applies.
    fn deadline(&self, t: &Timeouts) -> Option<u64> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(UNSET - 1);
        let idle = t.idle.map(|d| {
            self.last_activity
                .load(Ordering::Relaxed)
                .saturating_add(ms(d))
        });
        let head = match self.head_started.load(Ordering::Acquire) {
            UNSET => None,
            started => t.header_read.map(|d| started.saturating_add(ms(d))),
        };
        match (idle, head) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A connection that fails with `TimedOut` once it is over its [`Timeouts`].
pub struct LimitedStream<T> {
    inner: T,
    state: Arc<ConnState>,
    timeouts: Timeouts,
    /// Wakes the connection's task at the deadline, so a connection nobody writes to is
    /// still closed on time.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<T> LimitedStream<T> {
    /// Called when the inner stream is not ready: `Ready(Err)` when the connection is
    /// over a limit, else arms the timer for the next deadline and answers `Pending`.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let Some(deadline) = self.state.deadline(&self.timeouts) else {
                if self.timeouts.header_read.is_some() || self.timeouts.idle.is_some() {
                    *self.state.parked() = Some(cx.waker().clone());
                    // Answered meanwhile: look again rather than miss the wake-up.
                    if self.state.in_flight.load(Ordering::Acquire) == 0 {
                        continue;
                    }
                }
                return Poll::Pending;
            };
            if self.state.now() >= deadline {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection closed: request head or idle timeout",
                )));
            }
            let at =
                tokio::time::Instant::from_std(self.state.epoch + Duration::from_millis(deadline));
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            if timer.deadline() != at {
                timer.as_mut().reset(at);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // The timer fired: look again (activity may have moved the deadline).
        }
    }

    /// A write's outcome, noting bytes sent, or failing a stalled write past a deadline.
    /// A flush is no progress: hyper flushes on every turn of its loop, so counting it
    /// would keep an idle connection alive forever.
    fn wrote<R>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<R>>,
        sent: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        match r {
            Poll::Ready(r) => {
                if r.as_ref().is_ok_and(sent) {
                    self.state.moved(false);
                }
                Poll::Ready(r)
            }
            Poll::Pending => match self.poll_expired(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for LimitedStream<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.state.moved(true);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.poll_expired(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for LimitedStream<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(cx, r, |n| *n > 0)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, r, |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        // Must be passed on: `SendfileStream` needs hyper's vectored writes.
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.wrote(cx, r, |()| false)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A connection's service that tells its [`LimitedStream`] when requests are in flight.
#[derive(Debug, Clone)]
pub struct Counted<S> {
    inner: S,
    state: Arc<ConnState>,
}

/// Marks a request answered when dropped, however its future ends.
struct Answered(Arc<ConnState>);

impl Drop for Answered {
    fn drop(&mut self) {
        self.0.request_answered();
    }
}

impl<S, R> Service<R> for Counted<S>
where
    S: Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.state.request_started();
        let answered = Answered(self.state.clone());
        let future = self.inner.call(req);
        Box::pin(async move {
            let response = future.await;
            drop(answered);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts(head: u64, idle: u64) -> Timeouts {
        Timeouts {
            header_read: Some(Duration::from_millis(head)),
            idle: Some(Duration::from_millis(idle)),
        }
    }

    #[test]
    fn deadlines_follow_requests_and_bytes() {
        let s = ConnState::new();
        let t = timeouts(100, 1000);
        // Fresh: idle from the start.
        assert_eq!(s.deadline(&t), Some(1000));
        // A head's first byte starts the shorter head timer; later bytes do not move it.
        s.head_started.store(50, Ordering::Relaxed);
        s.last_activity.store(50, Ordering::Relaxed);
        assert_eq!(s.deadline(&t), Some(150));
        s.moved(true);
        assert_eq!(s.head_started.load(Ordering::Relaxed), 50);
        // In flight: nothing times out.
        s.request_started();
        assert_eq!(s.deadline(&t), None);
        // Bytes read while a request is in flight are its body, not a head.
        s.moved(true);
        assert_eq!(s.head_started.load(Ordering::Relaxed), UNSET);
        s.request_answered();
        let answered = s.last_activity.load(Ordering::Relaxed);
        assert_eq!(s.deadline(&t), Some(answered + 1000));
        // Either timeout alone.
        let only_idle = Timeouts {
            header_read: None,
            ..t
        };
        s.moved(true);
        assert!(s.head_started.load(Ordering::Relaxed) != UNSET);
        assert_eq!(
            s.deadline(&only_idle),
            Some(s.last_activity.load(Ordering::Relaxed) + 1000)
        );
        assert_eq!(s.deadline(&Timeouts::default()), None);
    }

    #[tokio::test]
    async fn an_idle_stream_fails_at_its_deadline() {
        use tokio::io::AsyncReadExt;

        let (client, server) = tokio::io::duplex(64);
        let mut stream = LimitedStream {
            inner: server,
            state: Arc::new(ConnState::new()),
            timeouts: timeouts(50, 200),
            timer: None,
        };
        let start = Instant::now();
        let mut buf = [0u8; 8];
        let e = stream.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(190) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        drop(client);
    }
}
