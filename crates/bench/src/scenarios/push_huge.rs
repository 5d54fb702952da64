//! push-chunked-2g: one very large blob (2 GiB at full size) pushed in fixed-size
//! `PATCH`es while the server's resident memory is sampled: what a node holds per upload
//! must not grow with the blob. The client never holds the blob either: its bytes are
//! eight random pieces of one `PATCH` each, repeated, hashed in a first pass (untimed)
//! to know the digest. Checked afterwards with a `HEAD` (untimed).

use std::time::Instant;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::data::{Blob, rng};
use crate::line::Line;
use crate::ops;
use crate::rss::Sampler;
use crate::scenarios::Ctx;
use crate::scenarios::memory::SAMPLE_EVERY;
use crate::stats::Recorder;

/// Scenario name.
pub const NAME: &str = "push-chunked-2g";
/// Repository of the push.
pub const REPO: &str = "bench/huge";
/// Distinct pieces the blob is made of.
const PIECES: usize = 8;

/// Runs the scenario: one line with throughput and, with `--pid`, the peak RSS.
pub async fn run(ctx: &Ctx) -> Vec<Line> {
    let patch = ctx.size.huge_patch.max(1);
    let total = ctx.size.huge_blob;
    let mut line = ctx.line(NAME, &format!("{}MiB-patches", patch >> 20));
    let mut r = rng(ctx.seed, NAME);
    let pieces: Vec<Bytes> = (0..PIECES)
        .map(|_| Blob::random(&mut r, patch).data)
        .collect();
    // The bytes of PATCH `i`: piece `i % PIECES`, cut short at the end of the blob.
    let chunk = |i: usize| -> Bytes {
        let len = patch.min(total - i * patch);
        pieces[i % PIECES].slice(..len)
    };
    let count = total.div_ceil(patch);
    let digest = {
        let mut h = Sha256::new();
        for i in 0..count {
            h.update(chunk(i));
        }
        format!("sha256:{}", hex::encode(h.finalize()))
    };

    let mut rec = Recorder::new();
    let sampler = ctx.pid.map(|pid| Sampler::start(pid, SAMPLE_EVERY));
    let cpu = ctx.server_cpu();
    let started = Instant::now();
    let result = push(ctx, &mut rec, &digest, count, chunk).await;
    let seconds = started.elapsed().as_secs_f64();
    line.set_server_cpu(cpu, ctx.server_cpu());
    if let Some(sampler) = sampler {
        match sampler.stop().await {
            Ok(peak) => line.rss_mib = Some(peak.kib as f64 / 1024.0),
            Err(e) => rec.error(e),
        }
    }
    if rec.check(result).is_some() {
        rec.bytes = total as u64;
        rec.ops = 1;
    }
    let mut check = Recorder::new();
    match ops::head_blob(&ctx.reg, &mut check, REPO, &digest).await {
        Ok(Some(len)) if len == total as u64 => {}
        Ok(other) => check.error(format!("{REPO}: after push HEAD says {other:?}")),
        Err(e) => check.error(e),
    }
    rec.merge_errors(check);
    rec.fill(&mut line, seconds);
    vec![line]
}

/// `POST`, `count` `PATCH`es with `Content-Range`, the closing `PUT ?digest=`.
async fn push(
    ctx: &Ctx,
    rec: &mut Recorder,
    digest: &str,
    count: usize,
    chunk: impl Fn(usize) -> Bytes,
) -> Result<(), String> {
    let mut upload = ops::start_upload(&ctx.reg, rec, REPO).await?;
    let mut at = 0u64;
    for i in 0..count {
        let piece = chunk(i);
        let len = piece.len() as u64;
        let answer = ops::timed(rec, ctx.reg.patch_chunk(&upload, at, piece))
            .await?
            .expect_status(202)?;
        at += len;
        if let Some(range) = answer.header("Range") {
            let want = format!("0-{}", at - 1);
            if range != want {
                return Err(format!("{}: Range {range}, want {want}", answer.what()));
            }
        }
        upload = answer.location()?;
    }
    let answer = ops::timed(rec, ctx.reg.finish_upload(&upload, digest, Bytes::new()))
        .await?
        .expect_status(201)?;
    match answer.digest() {
        Some(d) if d != digest => Err(format!(
            "{}: Docker-Content-Digest {d}, want {digest}",
            answer.what()
        )),
        _ => Ok(()),
    }
}
