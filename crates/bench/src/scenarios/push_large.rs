//! push-large: one large random blob pushed monolithically (`POST` + one `PUT`), and
//! another pushed in fixed-size `PATCH`es with `Content-Range`. Each push is checked
//! afterwards with a `HEAD` (untimed).

use std::time::Instant;

use crate::data::Blob;
use crate::line::Line;
use crate::ops;
use crate::scenarios::Ctx;
use crate::stats::Recorder;

/// Scenario name.
pub const NAME: &str = "push-large";
/// Repository of the monolithic push (pull-large reads it).
pub const MONOLITHIC_REPO: &str = "bench/large-monolithic";
pub const CHUNKED_REPO: &str = "bench/large-chunked";

/// Runs both variants.
pub async fn run(ctx: &Ctx) -> Vec<Line> {
    let monolithic = ctx.large_blob().await.clone();
    let chunked = ctx.random_blob("large-chunked", ctx.size.large_blob);
    let first = variant(ctx, "monolithic", MONOLITHIC_REPO, &monolithic, None).await;
    super::settle().await;
    vec![
        first,
        variant(ctx, "chunked", CHUNKED_REPO, &chunked, Some(ctx.size.chunk)).await,
    ]
}

async fn variant(ctx: &Ctx, name: &str, repo: &str, blob: &Blob, chunk: Option<usize>) -> Line {
    let mut line = ctx.line(NAME, name);
    let mut rec = Recorder::new();
    let cpu = ctx.server_cpu();
    let started = Instant::now();
    let result = match chunk {
        None => ops::push_monolithic(&ctx.reg, &mut rec, repo, blob).await,
        Some(size) => ops::push_chunked(&ctx.reg, &mut rec, repo, blob, size).await,
    };
    let seconds = started.elapsed().as_secs_f64();
    line.set_server_cpu(cpu, ctx.server_cpu());
    if rec.check(result).is_some() {
        rec.bytes = blob.len();
        rec.ops = 1;
    }
    let mut check = Recorder::new();
    let stored = ops::head_blob(&ctx.reg, &mut check, repo, &blob.digest).await;
    match stored {
        Ok(Some(len)) if len == blob.len() => {}
        Ok(other) => check.error(format!("{repo}: after push HEAD says {other:?}")),
        Err(e) => check.error(e),
    }
    rec.merge_errors(check);
    rec.fill(&mut line, seconds);
    line
}
