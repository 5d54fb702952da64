//! Untimed set-up shared by several scenarios: fill a registry with catalog
//! repositories cheaply (one small blob, mounted into each repository).

use std::sync::Arc;

use crate::data::Blob;
use crate::ops;
use crate::scenarios::{Ctx, Stop, parallel};
use crate::stats::Recorder;

/// Prefix of the catalog scenarios' repositories.
pub const CATALOG_PREFIX: &str = "cat/";

/// The name of catalog repository `i` (zero-padded, so name order is number order).
pub fn catalog_repo(i: usize) -> String {
    format!("{CATALOG_PREFIX}r{i:05}")
}

/// Makes sure catalog repositories `0..count` exist: the blob is pushed into the first
/// and mounted (`?mount=&from=`) into every other. Answers the set-up's errors.
pub async fn catalog_repos(ctx: &Ctx, count: usize) -> Recorder {
    let mut rec = Recorder::new();
    if count == 0 {
        return rec;
    }
    let blob = ctx.random_blob("catalog-seed", 256);
    let first = catalog_repo(0);
    let pushed = ops::ensure_blob(&ctx.reg, &mut rec, &first, &blob).await;
    if rec.check(pushed).is_none() {
        return rec;
    }
    let reg = ctx.reg.clone();
    let blob = Arc::new(blob);
    let first = Arc::new(first);
    let more = parallel(
        ctx.size.populate_workers,
        Stop::After(count - 1),
        move |i| {
            let (reg, blob, first) = (reg.clone(), Arc::clone(&blob), Arc::clone(&first));
            async move {
                let mut rec = Recorder::new();
                let repo = catalog_repo(i + 1);
                let result = ops::mount(&reg, &mut rec, &repo, &first, &blob.digest).await;
                rec.check(result);
                rec
            }
        },
    )
    .await;
    rec.merge_errors(more);
    rec
}

/// Pushes `config` and `layers` (monolithically, if missing) and the manifest over
/// them under `tag`; set-up for the pull and listing scenarios.
pub async fn image(
    ctx: &Ctx,
    rec: &mut Recorder,
    repo: &str,
    tag: &str,
    config: &Blob,
    layers: &[&Blob],
) -> Result<(), String> {
    ops::ensure_blob(&ctx.reg, rec, repo, config).await?;
    for layer in layers {
        ops::ensure_blob(&ctx.reg, rec, repo, layer).await?;
    }
    let manifest = crate::data::oci_manifest(config, layers);
    ops::put_manifest(&ctx.reg, rec, repo, tag, &manifest).await
}
