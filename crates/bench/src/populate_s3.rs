//! `berth-bench populate-s3`: writes catalog repositories straight into an S3 bucket at
//! distribution's keys, so that catalog-scale in the S3 mode can time a page at 20,000
//! repositories without pushing them through a registry (through radosgw that takes far
//! longer than the page). What it writes is what a mount of one blob into each
//! repository leaves and all that either registry's catalog looks for: the blob once,
//! and per repository its `_layers` link. The same objects serve every registry compared.

use std::sync::Arc;
use std::time::Instant;

use berth_driver::{S3Driver, S3Options, StorageDriver};
use bytes::Bytes;

use crate::data::{Blob, rng};
use crate::scenarios::populate::catalog_repo;

/// Where and what to write.
#[derive(Debug, Clone)]
pub struct PopulateOptions {
    /// The S3 endpoint, e.g. `http://127.0.0.1:7480` (path-style requests).
    pub endpoint: String,
    /// The bucket (it must exist).
    pub bucket: String,
    /// The region requests are signed for.
    pub region: String,
    /// Access key.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
    /// The registries' `rootdirectory` in the bucket.
    pub root: String,
    /// First repository number written.
    pub from: usize,
    /// Repositories `from..to` are written.
    pub to: usize,
    /// Concurrent writes.
    pub workers: usize,
    /// Seed of the blob (as `run --seed`).
    pub seed: u64,
}

/// Writes the blob and the links of repositories `from..to`; answers how many objects.
pub async fn populate(o: &PopulateOptions) -> Result<usize, String> {
    let mut s3 = S3Options::new(o.bucket.as_str(), o.region.as_str());
    s3.endpoint = Some(o.endpoint.clone());
    s3.force_path_style = true;
    s3.access_key = Some(o.access_key.clone());
    s3.secret_key = Some(o.secret_key.clone());
    s3.root_directory = o.root.clone();
    let driver = Arc::new(S3Driver::new(&s3).map_err(|e| format!("S3 client: {e}"))?);
    // The blob catalog-scale's own set-up pushes, so the layouts match.
    let blob = Blob::random(&mut rng(o.seed, "catalog-seed"), 256);
    let hex = blob.digest.trim_start_matches("sha256:").to_owned();
    let started = Instant::now();
    driver
        .put_content(
            &format!("/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]),
            blob.data.clone(),
        )
        .await
        .map_err(|e| format!("writing the blob: {e}"))?;
    let link = Bytes::from(blob.digest.clone());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(o.from));
    let mut tasks = Vec::new();
    for _ in 0..o.workers.max(1) {
        let (driver, link, next, hex) = (
            Arc::clone(&driver),
            link.clone(),
            Arc::clone(&next),
            hex.clone(),
        );
        let to = o.to;
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= to {
                    return Ok::<(), String>(());
                }
                let path = format!(
                    "/docker/registry/v2/repositories/{}/_layers/sha256/{hex}/link",
                    catalog_repo(i)
                );
                driver
                    .put_content(&path, link.clone())
                    .await
                    .map_err(|e| format!("writing {path}: {e}"))?;
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| format!("a writer failed: {e}"))??;
    }
    let written = o.to.saturating_sub(o.from) + 1;
    eprintln!(
        "berth-bench: wrote {written} objects to s3://{}/{} in {:.1} s",
        o.bucket,
        o.root.trim_matches('/'),
        started.elapsed().as_secs_f64()
    );
    Ok(written)
}
