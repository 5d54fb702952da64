//! `health`: the background checks and their state. Each check runs on its own timer
//! (first after one interval, as in distribution); a check whose probe failed
//! `threshold` times in a row is failing until a probe passes. While any check fails,
//! the API's [`HealthGate`] is raised (every request answers 503) and `/debug/health`
//! lists the failing checks with their last error.
//!
//! The storage probe writes and deletes a small file under berth's own prefix
//! (`StoragePath::HealthProbe`, `docker/registry/v2/_berth/health/`): distribution only reads the root, which a filesystem remounted
//! read-only, a full disk or lost permissions still allow, so a registry unable to
//! take a push would report healthy. A read-only registry
//! (`storage.maintenance.readonly`) may sit on read-only storage, so its probe only
//! lists the root.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_driver::{DriverError, StorageDriver};
use berth_http::HealthGate;
use berth_notify::HttpClient;
use berth_storage::layout::StoragePath;
use bytes::Bytes;
use http_body_util::Full;
use tokio::task::JoinHandle;

use crate::config::{HealthCheck, Probe};

/// One check and what its probes found.
struct CheckState {
    check: HealthCheck,
    /// Failures in a row, counted up to the threshold.
    failures: AtomicU32,
    /// The last probe's error, kept while it fails.
    error: Mutex<Option<String>>,
}

impl CheckState {
    fn failing(&self) -> bool {
        self.failures.load(Ordering::Relaxed) >= self.check.threshold
    }
}

/// Every configured check.
pub struct Health {
    checks: Vec<CheckState>,
    gate: Arc<HealthGate>,
}

impl Health {
    /// The checks of `checks`, raising `gate` while one fails; nothing runs until
    /// [`spawn`](Self::spawn).
    pub fn new(checks: &[HealthCheck], gate: Arc<HealthGate>) -> Arc<Health> {
        Arc::new(Health {
            checks: checks
                .iter()
                .map(|c| CheckState {
                    check: c.clone(),
                    failures: AtomicU32::new(0),
                    error: Mutex::new(None),
                })
                .collect(),
            gate,
        })
    }

    /// The failing checks by name, with their last error.
    pub fn failing(&self) -> BTreeMap<String, String> {
        self.checks
            .iter()
            .filter(|c| c.failing())
            .map(|c| {
                let error = c.error.lock().unwrap_or_else(|p| p.into_inner()).clone();
                (c.check.name.clone(), error.unwrap_or_default())
            })
            .collect()
    }

    /// Starts one task per check; `driver` is what the storage probe writes through.
    pub fn spawn(
        self: &Arc<Self>,
        driver: Arc<dyn StorageDriver>,
        read_only: bool,
    ) -> Vec<JoinHandle<()>> {
        // One file per process, so nodes sharing a storage never delete each other's.
        let probe_path = StoragePath::HealthProbe(probe_key()).path();
        let http = self.http_client();
        (0..self.checks.len())
            .map(|i| {
                let health = self.clone();
                let prober = Prober {
                    driver: driver.clone(),
                    read_only,
                    probe_path: probe_path.clone(),
                    http: http.clone(),
                };
                tokio::spawn(async move { health.run(i, prober).await })
            })
            .collect()
    }

    /// The client of the `http` checks (the one webhooks are posted with): `https://`
    /// certificates are checked against the system's roots or `SSL_CERT_FILE`, loaded
    /// only when a check needs them. Roots that cannot be loaded leave the `http` checks
    /// failing with the reason, rather than stopping the registry.
    fn http_client(&self) -> Result<HttpClient, Arc<str>> {
        let https = self.checks.iter().any(
            |c| matches!(&c.check.probe, Probe::Http { uri, .. } if uri.starts_with("https:")),
        );
        berth_notify::https_client(https).map_err(|e| {
            tracing::error!("health checks over HTTP cannot run: {e}");
            Arc::from(e)
        })
    }

    async fn run(&self, i: usize, prober: Prober) {
        let check = &self.checks[i].check;
        let start = tokio::time::Instant::now() + check.interval;
        let mut ticker = tokio::time::interval_at(start, check.interval);
        // A slow probe delays the next one rather than letting probes pile up.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let result = prober.probe(&check.probe, check.interval).await;
            self.update(i, result);
        }
    }

    fn update(&self, i: usize, result: Result<(), String>) {
        let state = &self.checks[i];
        let was = state.failing();
        match result {
            Ok(()) => {
                state.failures.store(0, Ordering::Relaxed);
                *state.error.lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
            Err(e) => {
                let n = state.failures.load(Ordering::Relaxed);
                state
                    .failures
                    .store((n + 1).min(state.check.threshold), Ordering::Relaxed);
                *state.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            }
        }
        let now = state.failing();
        if now != was {
            if now {
                let error = state
                    .error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                tracing::warn!(
                    check = %state.check.name,
                    error = error.as_deref().unwrap_or(""),
                    "health check failing: the API answers 503 until it passes"
                );
            } else {
                tracing::info!(check = %state.check.name, "health check passing again");
            }
        }
        self.gate
            .set_down(self.checks.iter().any(CheckState::failing));
    }
}

/// A key distinct between processes (of one machine or several) sharing a storage.
fn probe_key() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ u64::from(std::process::id()).rotate_left(40)
}

/// What the probes need.
struct Prober {
    driver: Arc<dyn StorageDriver>,
    read_only: bool,
    probe_path: String,
    http: Result<HttpClient, Arc<str>>,
}

impl Prober {
    /// Runs one probe, bounded by `limit` where the probe has no timeout of its own.
    async fn probe(&self, probe: &Probe, limit: Duration) -> Result<(), String> {
        match probe {
            Probe::StorageDriver => bounded(limit, self.storage()).await,
            Probe::File(path) => match tokio::fs::symlink_metadata(path).await {
                Ok(_) => Err(format!("{} exists", path.display())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(format!("{}: {e}", path.display())),
            },
            Probe::Http {
                uri,
                headers,
                status,
                timeout,
            } => bounded(*timeout, self.http(uri, headers, *status)).await,
            Probe::Tcp { addr, timeout } => {
                bounded(*timeout, async {
                    tokio::net::TcpStream::connect(addr.as_str())
                        .await
                        .map(drop)
                        .map_err(|e| format!("connecting to {addr}: {e}"))
                })
                .await
            }
        }
    }

    async fn storage(&self) -> Result<(), String> {
        if self.read_only {
            return match self.driver.list("/").await {
                Ok(_) | Err(DriverError::PathNotFound(_)) => Ok(()),
                Err(e) => Err(format!("listing the storage root: {e}")),
            };
        }
        let stamp = format!("{:?}", std::time::SystemTime::now());
        self.driver
            .put_content(&self.probe_path, Bytes::from(stamp))
            .await
            .map_err(|e| format!("writing {}: {e}", self.probe_path))?;
        match self.driver.delete(&self.probe_path).await {
            Ok(()) | Err(DriverError::PathNotFound(_)) => Ok(()),
            Err(e) => Err(format!("deleting {}: {e}", self.probe_path)),
        }
    }

    async fn http(
        &self,
        uri: &str,
        headers: &[(http::HeaderName, http::HeaderValue)],
        status: u16,
    ) -> Result<(), String> {
        let mut req = http::Request::head(uri);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("building the request to {uri}: {e}"))?;
        let client = self.http.as_ref().map_err(|e| e.to_string())?;
        let resp = client
            .request(req)
            .await
            .map_err(|e| format!("requesting {uri}: {e}"))?;
        if resp.status().as_u16() == status {
            Ok(())
        } else {
            Err(format!(
                "{uri} answered {} where {status} was expected",
                resp.status().as_u16()
            ))
        }
    }
}

async fn bounded(
    limit: Duration,
    probe: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    tokio::time::timeout(limit, probe)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {limit:?}")))
}
