//! pull-proxy: full `GET`s of blobs through a pull-through cache (or, for the baseline,
//! straight from its upstream), every body compared with the blob. The blobs are put in
//! the upstream first (`--upstream`; without it, in the registry under test: the direct
//! baseline). Variants: `cold` (the first `GET` of pull-large's blob: the cache fetches it
//! while it serves it), `warm` (the same blob again, pull-large's count of times: the
//! cache serves its copy), and `cold-32` / `warm-32` (32 clients at once `GET` a second
//! blob, a quarter of pull-large's size: one upstream fetch shared by all, then the copy).

use std::time::Instant;

use berth_client::Url;

use crate::data::Blob;
use crate::line::Line;
use crate::ops;
use crate::scenarios::Ctx;
use crate::scenarios::pull_large::checked_get;
use crate::scenarios::push_large::MONOLITHIC_REPO;
use crate::stats::Recorder;

/// Scenario name.
pub const NAME: &str = "pull-proxy";
/// Clients of the concurrent variants.
pub const CLIENTS: usize = 32;

/// Runs the four variants.
pub async fn run(ctx: &Ctx) -> Vec<Line> {
    let single = ctx.large_blob().await;
    let shared = ctx.random_blob("proxy-shared", (ctx.size.large_blob / 4).max(1));
    let source = ctx.upstream.as_ref().unwrap_or(&ctx.reg);
    let mut setup = Recorder::new();
    let mut ready = ops::ensure_blob(source, &mut setup, MONOLITHIC_REPO, single).await;
    if ready.is_ok() {
        ready = ops::ensure_blob(source, &mut setup, MONOLITHIC_REPO, &shared).await;
    }
    super::settle().await;
    if let Err(e) = ready {
        setup.error(e);
        let mut line = ctx.line(NAME, "cold");
        setup.fill(&mut line, 0.0);
        return vec![line];
    }
    let mut cold = one_by_one(ctx, single, "cold", 1).await;
    cold.errors += setup.errors;
    vec![
        cold,
        one_by_one(ctx, single, "warm", ctx.size.large_pulls).await,
        together(ctx, &shared, "cold-32").await,
        together(ctx, &shared, "warm-32").await,
    ]
}

/// The URL of `blob`, or `None` with the error recorded into `line`.
fn blob_url(ctx: &Ctx, blob: &Blob, line: &mut Line) -> Option<Url> {
    match ctx.reg.blob_url(MONOLITHIC_REPO, &blob.digest) {
        Ok(u) => Some(u),
        Err(e) => {
            let mut rec = Recorder::new();
            rec.error(String::from(e));
            rec.fill(line, 0.0);
            None
        }
    }
}

/// `times` GETs of `blob`, one after the other.
async fn one_by_one(ctx: &Ctx, blob: &Blob, variant: &str, times: usize) -> Line {
    let mut line = ctx.line(NAME, variant);
    let Some(url) = blob_url(ctx, blob, &mut line) else {
        return line;
    };
    let mut rec = Recorder::new();
    let cpu = ctx.server_cpu();
    let mut timed = std::time::Duration::ZERO;
    for _ in 0..times {
        timed += checked_get(ctx, &url, blob, &mut rec).await;
    }
    line.set_server_cpu(cpu, ctx.server_cpu());
    rec.fill(&mut line, timed.as_secs_f64());
    line
}

/// [`CLIENTS`] GETs of `blob` at once; timed from the first start to the last end.
async fn together(ctx: &Ctx, blob: &Blob, variant: &str) -> Line {
    let mut line = ctx.line(NAME, variant);
    let Some(url) = blob_url(ctx, blob, &mut line) else {
        return line;
    };
    let mut rec = Recorder::new();
    let cpu = ctx.server_cpu();
    let started = Instant::now();
    let gets = (0..CLIENTS).map(|_| async {
        let mut own = Recorder::new();
        checked_get(ctx, &url, blob, &mut own).await;
        own
    });
    for own in futures::future::join_all(gets).await {
        rec.merge(own);
    }
    let wall = started.elapsed();
    line.set_server_cpu(cpu, ctx.server_cpu());
    rec.fill(&mut line, wall.as_secs_f64());
    line
}
