//! Running the registry: bind (plain or TLS), serve, purge old uploads and collect
//! garbage (when configured) on schedule, and
//! on SIGTERM/SIGINT stop accepting, drain in-flight requests (up to
//! `http.draintimeout`), then return.

use std::future::Future;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum_server::Handle;
use berth_storage::StorageRegistry;

use berth_driver::StorageDriver;

use crate::app::{self, StartError};
use crate::config::{Config, Limits, OnlineGc, UploadPurging};
use crate::connection::{self, LimitedAcceptor, Timeouts};
use crate::health::Health;
use crate::tls::Serving;
use crate::zerocopy::SendfileAcceptor;

/// A bound, not yet serving, registry.
pub struct Server {
    listener: TcpListener,
    router: Router,
    registry: Arc<StorageRegistry>,
    tls: Option<Serving>,
    http2: bool,
    drain: Duration,
    purging: Option<UploadPurging>,
    /// Online garbage collection, when enabled, and its series.
    gc: Option<(OnlineGc, Arc<crate::online_gc::GcMetrics>)>,
    limits: Limits,
    /// The debug server (`http.debug.addr`), bound, with its routes.
    debug: Option<(TcpListener, Router)>,
    /// The health checks and the driver their storage probe writes through.
    health: Option<(Arc<Health>, Arc<dyn StorageDriver>)>,
    read_only: bool,
    /// One line saying where data lives.
    pub storage_description: String,
}

/// Binds a configured listen address, non-blocking for tokio.
fn bind(raw: &str) -> Result<TcpListener, StartError> {
    let listen_err = |message: String| StartError::Listen {
        addr: raw.to_owned(),
        message,
    };
    let addrs: Vec<SocketAddr> = listen_addr(raw)
        .to_socket_addrs()
        .map_err(|e| listen_err(e.to_string()))?
        .collect();
    let listener = TcpListener::bind(&addrs[..]).map_err(|e| listen_err(e.to_string()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| listen_err(e.to_string()))?;
    Ok(listener)
}

/// `:5000` means every interface, as in distribution.
fn listen_addr(addr: &str) -> String {
    if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_owned()
    }
}

impl Server {
    /// Wires the registry and binds its address (port 0 picks a free one).
    pub fn bind(config: &Config) -> Result<Server, StartError> {
        let app = app::build(config)?;
        let router = app.router;
        let health = app
            .health
            .as_ref()
            .map(|gate| Health::new(&config.health, gate.clone()));
        let debug = match &config.http.debug_addr {
            Some(raw) => {
                let failing: berth_http::FailingChecks = match &health {
                    Some(h) => {
                        let h = h.clone();
                        Arc::new(move || h.failing())
                    }
                    None => Arc::new(Default::default),
                };
                let metrics = config
                    .http
                    .metrics_path
                    .clone()
                    .map(|path| (path, app.metrics.clone()));
                Some((bind(raw)?, berth_http::debug_router(metrics, failing)))
            }
            None => {
                if config.http.metrics_path.is_some() {
                    tracing::warn!(
                        "http.debug.prometheus.enabled without http.debug.addr: metrics are \
                         recorded but served nowhere"
                    );
                }
                None
            }
        };
        let listener = bind(&config.http.addr)?;
        let tls = match &config.http.tls {
            Some(t) => Some(Serving::new(t, config.http.http2)?),
            None => None,
        };
        let purging = config.storage.upload_purging.clone();
        let purging = (purging.enabled && !config.storage.read_only).then_some(purging);
        let gc = config.storage.gc.clone();
        let gc = gc.enabled.then(|| (gc, app.gc_metrics.clone()));
        Ok(Server {
            listener,
            router,
            registry: app.registry,
            tls,
            http2: config.http.http2,
            drain: config.http.drain_timeout,
            purging,
            gc,
            limits: config.limits.clone(),
            debug,
            health: health.map(|h| (h, app.driver.clone())),
            read_only: config.storage.read_only,
            storage_description: app.storage_description,
        })
    }

    /// The debug server's bound address, when there is one.
    pub fn debug_addr(&self) -> Option<SocketAddr> {
        self.debug.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether clients must use https.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` completes, then drains and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let addr = self.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let listen_err = |message: String| StartError::Listen {
            addr: addr.clone(),
            message,
        };
        let handle = Handle::new();
        let drain = self.drain;
        let signal_handle = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!(
                drain_timeout_s = drain.as_secs_f64(),
                "shutting down: draining in-flight requests"
            );
            signal_handle.graceful_shutdown(Some(drain));
        });
        // The catalog listing is built (or the shared index rebuilt) beside serving:
        // `/v2/` and the health checks answer at once, and catalog pages are read from
        // storage until it is complete.
        self.registry.start_listings();
        let purger = self
            .purging
            .map(|p| tokio::spawn(purge_loop(self.registry.clone(), p)));
        // Read-only mode keeps the task, which logs each skipped cycle.
        let collector = self.gc.map(|(gc, metrics)| {
            let registry = self.registry.clone();
            tokio::spawn(crate::online_gc::run(registry, gc, self.read_only, metrics))
        });
        let checks = self
            .health
            .as_ref()
            .map(|(h, driver)| h.spawn(driver.clone(), self.read_only))
            .unwrap_or_default();
        // The debug server stops with the process, not with the drain: a scrape or a
        // health probe during shutdown still gets an answer.
        let debug = match self.debug {
            Some((listener, router)) => {
                let listener = tokio::net::TcpListener::from_std(listener)
                    .map_err(|e| listen_err(e.to_string()))?;
                Some(tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, router).await {
                        tracing::error!("debug server: {e}");
                    }
                }))
            }
            None => None,
        };
        // Certificate reloads and ACME renewals run beside the listener.
        let tls_maintainer = self.tls.as_ref().map(|t| tokio::spawn(t.maintain()));
        // The peer address reaches handlers (the rate limiter) as `ConnectInfo`.
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let (limits, timeouts) = (&self.limits, Timeouts::from_limits(&self.limits));
        let result = match self.tls {
            Some(tls) => {
                let mut server = axum_server::from_tcp_rustls(self.listener, tls.rustls())
                    .map_err(|e| listen_err(e.to_string()))?
                    .map(|a| LimitedAcceptor::new(a, timeouts));
                connection::configure(&mut server, limits);
                if !self.http2 {
                    server = server.http1_only();
                }
                server.handle(handle).serve(service).await
            }
            None => {
                let mut server = axum_server::from_tcp(self.listener)
                    .map_err(|e| listen_err(e.to_string()))?
                    .acceptor(LimitedAcceptor::new(SendfileAcceptor, timeouts));
                connection::configure(&mut server, limits);
                // `http.http2.disabled` also turns off cleartext HTTP/2 (prior knowledge).
                if !self.http2 {
                    server = server.http1_only();
                }
                server.handle(handle).serve(service).await
            }
        };
        if let Some(p) = purger {
            p.abort();
        }
        // A collection stopped part way removes nothing more; the fence it left up only
        // records touches until the process ends.
        if let Some(c) = collector {
            c.abort();
        }
        if let Some(t) = tls_maintainer {
            t.abort();
        }
        for task in checks.into_iter().chain(debug) {
            task.abort();
        }
        result.map_err(|e| listen_err(e.to_string()))
    }
}

async fn purge_loop(registry: Arc<StorageRegistry>, p: UploadPurging) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + p.interval, p.interval);
    loop {
        ticker.tick().await;
        match registry.purge_uploads(p.age, p.dry_run).await {
            Ok(r) => tracing::info!(
                purged = r.purged,
                kept = r.kept,
                dry_run = p.dry_run,
                "upload purge"
            ),
            Err(e) => tracing::warn!(error = %e, "upload purge failed"),
        }
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
