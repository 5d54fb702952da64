//! A webhook receiver for notification tests: an HTTP server on a loopback port (its own
//! thread and runtime) that records every POST, answers the status it is told to, and can
//! be stopped and started again on the same port.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

/// One POST as received.
#[derive(Debug, Clone)]
pub struct Post {
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body, parsed.
    pub body: Value,
    /// What the receiver answered.
    pub status: u16,
}

#[derive(Default)]
struct Shared {
    posts: Mutex<Vec<Post>>,
    status: AtomicU16,
}

/// The receiver; stopped when dropped.
pub struct Receiver {
    addr: SocketAddr,
    /// Certificate and key, when it serves HTTPS.
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    shared: Arc<Shared>,
    running: Option<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
}

async fn record(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: String) -> StatusCode {
    let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
    let status = shared.status.load(Ordering::Relaxed);
    shared.posts.lock().unwrap().push(Post {
        headers,
        body,
        status,
    });
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}

impl Receiver {
    /// A receiver on a free port, answering 200.
    pub fn start() -> Receiver {
        Receiver::start_with(None)
    }

    /// A receiver serving HTTPS with this certificate and key.
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Receiver {
        Receiver::start_with(Some((cert.to_owned(), key.to_owned())))
    }

    fn start_with(tls: Option<(std::path::PathBuf, std::path::PathBuf)>) -> Receiver {
        let mut r = Receiver {
            tls,
            addr: "127.0.0.1:0".parse().unwrap(),
            shared: Arc::new(Shared::default()),
            running: None,
        };
        r.shared.status.store(200, Ordering::Relaxed);
        r.resume();
        r
    }

    /// Where events are to be posted.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/events", self.addr)
    }

    /// Answers `status` from now on.
    pub fn answer(&self, status: u16) {
        self.shared.status.store(status, Ordering::Relaxed);
    }

    /// Closes the port (connections are refused until [`resume`](Self::resume)).
    pub fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }

    /// Listens again, on the same port.
    pub fn resume(&mut self) {
        self.stop();
        let listener = std::net::TcpListener::bind(self.addr).expect("bind receiver");
        listener.set_nonblocking(true).unwrap();
        self.addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let shared = self.shared.clone();
        let tls = self.tls.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = axum::Router::new()
                    .route("/events", post(record))
                    .with_state(shared);
                if let Some((cert, key)) = tls {
                    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                        .await
                        .expect("receiver certificate");
                    let handle = axum_server::Handle::new();
                    let stopper = handle.clone();
                    tokio::spawn(async move {
                        let _ = rx.await;
                        stopper.shutdown();
                    });
                    let _ = axum_server::from_tcp_rustls(listener, config)
                        .expect("receiver listener")
                        .handle(handle)
                        .serve(app.into_make_service())
                        .await;
                    return;
                }
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        self.running = Some((tx, thread));
    }

    /// Every POST so far.
    pub fn posts(&self) -> Vec<Post> {
        self.shared.posts.lock().unwrap().clone()
    }

    /// Every event of every POST answered with a success so far, in order.
    pub fn events(&self) -> Vec<Value> {
        self.posts()
            .iter()
            .filter(|p| p.status < 300)
            .flat_map(|p| p.body["events"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Waits until at least `n` events arrived (panics after `limit`).
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let events = self.events();
            if events.len() >= n {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} events arrived: {events:#?}",
                events.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}
