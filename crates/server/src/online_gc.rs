//! Online garbage collection (`storage.maintenance.gc`, berth's own): a background task
//! of the serving process that runs `berth_storage`'s collection every `interval`,
//! through the same stores the requests use, so the process's caches follow what it
//! removes and its requests are fenced against it (docs/DESIGN.md, "Garbage
//! collection"). With `storage.maintenance.readonly` every cycle is skipped (and logged):
//! a read-only registry changes nothing, the offline `berth garbage-collect` is how such
//! a registry is collected.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use berth_metrics::{Collect, Counter, Encoder, Kind};
use berth_storage::{GcOptions, GcReport, StorageRegistry};

use crate::config::OnlineGc;

/// The longest wait for the first collection after start-up, so that a registry
/// restarted more often than `interval` still collects.
const FIRST_AFTER: Duration = Duration::from_secs(600);

/// The collections' series (`berth_gc_*`), scraped when metrics are on.
#[derive(Debug, Default)]
pub struct GcMetrics {
    ok: Counter,
    failed: Counter,
    skipped: Counter,
    blobs_removed: Counter,
    bytes_removed: Counter,
    manifests_removed: Counter,
    kept_young: Counter,
    kept_touched: Counter,
    /// Microseconds the last finished collection took.
    last_duration_us: AtomicU64,
    /// When the last collection finished, in milliseconds since the Unix epoch; 0 before.
    last_end_ms: AtomicU64,
}

impl GcMetrics {
    /// Records a finished collection (a dry run frees nothing, so counts no removals).
    fn finished(&self, report: &GcReport, dry_run: bool, took: Duration) {
        self.ok.inc();
        if !dry_run {
            self.blobs_removed.add(report.blobs_removed as u64);
            self.bytes_removed.add(report.bytes_removed);
            self.manifests_removed.add(report.manifests_removed as u64);
        }
        self.kept_young.add(report.kept_young as u64);
        self.kept_touched.add(report.kept_touched as u64);
        self.ended(took);
    }

    fn ended(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.last_duration_us.store(us, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.last_end_ms.store(now, Ordering::Relaxed);
    }
}

impl Collect for GcMetrics {
    fn collect(&self, enc: &mut Encoder) {
        let name = "berth_gc_runs_total";
        enc.family(
            name,
            "Online garbage collection cycles by result (skipped: read-only mode).",
            Kind::Counter,
        );
        for (result, c) in [
            ("ok", &self.ok),
            ("failed", &self.failed),
            ("skipped", &self.skipped),
        ] {
            enc.sample(name, &[("result", result)], c.get());
        }
        enc.counters(&[
            (
                "berth_gc_blobs_removed_total",
                "Blobs removed by online garbage collection.",
                self.blobs_removed.get(),
            ),
            (
                "berth_gc_bytes_freed_total",
                "Bytes of the blobs removed by online garbage collection.",
                self.bytes_removed.get(),
            ),
            (
                "berth_gc_manifests_removed_total",
                "Untagged manifests deleted by online garbage collection (deleteuntagged).",
                self.manifests_removed.get(),
            ),
        ]);
        let name = "berth_gc_kept_total";
        enc.family(
            name,
            "Unreferenced blobs or manifests a collection kept: younger than the grace period, \
             or relied on by a request while it ran.",
            Kind::Counter,
        );
        enc.sample(name, &[("reason", "young")], self.kept_young.get());
        enc.sample(name, &[("reason", "touched")], self.kept_touched.get());
        let name = "berth_gc_last_run_duration_seconds";
        enc.family(
            name,
            "How long the last finished collection took.",
            Kind::Gauge,
        );
        let us = self.last_duration_us.load(Ordering::Relaxed);
        enc.sample(name, &[], us as f64 / 1e6);
        let name = "berth_gc_last_run_timestamp_seconds";
        enc.family(
            name,
            "When the last collection finished (Unix time; 0: none yet).",
            Kind::Gauge,
        );
        let ms = self.last_end_ms.load(Ordering::Relaxed);
        enc.sample(name, &[], ms as f64 / 1e3);
    }
}

/// Runs collections every `gc.interval` (measured from the end of the previous one; the
/// first after `gc.interval` or ten minutes, whichever is shorter) until the task is
/// dropped. `read_only` skips each, with a log line.
pub async fn run(
    registry: Arc<StorageRegistry>,
    gc: OnlineGc,
    read_only: bool,
    metrics: Arc<GcMetrics>,
) {
    let options = GcOptions {
        dry_run: gc.dry_run,
        delete_untagged: gc.delete_untagged,
        grace_period: gc.grace_period,
    };
    tracing::info!(
        interval_s = gc.interval.as_secs_f64(),
        grace_period_s = gc.grace_period.as_secs_f64(),
        delete_untagged = gc.delete_untagged,
        dry_run = gc.dry_run,
        "online garbage collection on; it assumes this process is the only writer to the storage"
    );
    if gc.grace_period.is_zero() && !gc.dry_run {
        tracing::warn!(
            "storage.maintenance.gc.graceperiod is 0s: a blob uploaded before a collection \
             starts, for a manifest pushed after it, is removed, and that push fails with \
             MANIFEST_BLOB_UNKNOWN"
        );
    }
    let mut pause = gc.interval.min(FIRST_AFTER);
    loop {
        tokio::time::sleep(pause).await;
        pause = gc.interval;
        if read_only {
            metrics.skipped.inc();
            tracing::info!(
                "online garbage collection skipped: storage.maintenance.readonly is on \
                 (berth garbage-collect collects a read-only registry)"
            );
            continue;
        }
        let started = Instant::now();
        match registry.garbage_collect(options, |_| {}).await {
            Ok(r) => {
                let took = started.elapsed();
                metrics.finished(&r, gc.dry_run, took);
                tracing::info!(
                    repositories = r.repositories,
                    marked = r.marked,
                    blobs_eligible = r.blobs_eligible,
                    blobs_removed = r.blobs_removed,
                    bytes_freed = r.bytes_removed,
                    manifests_eligible = r.manifests_eligible,
                    manifests_removed = r.manifests_removed,
                    kept_young = r.kept_young,
                    kept_touched = r.kept_touched,
                    dry_run = gc.dry_run,
                    duration_ms = took.as_millis() as u64,
                    "online garbage collection"
                );
            }
            Err(e) => {
                metrics.failed.inc();
                metrics.ended(started.elapsed());
                tracing::warn!(error = %e, "online garbage collection failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_count_what_collections_did() {
        let m = GcMetrics::default();
        let report = GcReport {
            blobs_removed: 3,
            bytes_removed: 4096,
            manifests_removed: 1,
            kept_young: 2,
            kept_touched: 5,
            ..GcReport::default()
        };
        m.finished(&report, false, Duration::from_millis(1500));
        // A dry run removes nothing, whatever its report says would go.
        m.finished(&report, true, Duration::from_millis(250));
        m.skipped.inc();
        let mut enc = Encoder::new();
        m.collect(&mut enc);
        let text = enc.finish();
        for line in [
            "berth_gc_runs_total{result=\"ok\"} 2",
            "berth_gc_runs_total{result=\"failed\"} 0",
            "berth_gc_runs_total{result=\"skipped\"} 1",
            "berth_gc_blobs_removed_total 3",
            "berth_gc_bytes_freed_total 4096",
            "berth_gc_manifests_removed_total 1",
            "berth_gc_kept_total{reason=\"young\"} 4",
            "berth_gc_kept_total{reason=\"touched\"} 10",
            "berth_gc_last_run_duration_seconds 0.25",
            "# TYPE berth_gc_last_run_timestamp_seconds gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
