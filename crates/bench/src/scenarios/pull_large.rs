//! pull-large: full `GET`s of the large blob (every body hashed and compared with the
//! digest, after the timer stops) and `Range` requests at random offsets (every body
//! compared with the slice it should be).

use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::Method;

use crate::data::{Blob, rng, sha256_chunks};
use crate::line::Line;
use crate::ops;
use crate::scenarios::Ctx;
use crate::scenarios::push_large::MONOLITHIC_REPO;
use crate::stats::Recorder;

/// Scenario name.
pub const NAME: &str = "pull-large";

/// Runs both variants (pushing the blob first if push-large did not).
pub async fn run(ctx: &Ctx) -> Vec<Line> {
    let blob = ctx.large_blob().await;
    let mut setup = Recorder::new();
    let ready = ops::ensure_blob(&ctx.reg, &mut setup, MONOLITHIC_REPO, blob).await;
    super::settle().await;
    if let Err(e) = ready {
        setup.error(e);
        let mut line = ctx.line(NAME, "full");
        setup.fill(&mut line, 0.0);
        return vec![line];
    }
    let mut full = full(ctx, blob).await;
    full.errors += setup.errors;
    vec![full, ranges(ctx, blob).await]
}

async fn full(ctx: &Ctx, blob: &Blob) -> Line {
    let mut line = ctx.line(NAME, "full");
    let mut rec = Recorder::new();
    let mut timed = Duration::ZERO;
    let url = ctx
        .reg
        .url(&format!("/v2/{MONOLITHIC_REPO}/blobs/{}", blob.digest));
    for _ in 0..ctx.size.large_pulls {
        let Some(url) = rec.check(url.clone()) else {
            break;
        };
        let started = Instant::now();
        let answer = ctx
            .reg
            .send(&mut rec, ctx.reg.request(Method::GET, url))
            .await
            .and_then(|a| a.expect(200));
        timed += started.elapsed();
        let Some(answer) = rec.check(answer) else {
            continue;
        };
        let got = sha256_chunks(&answer.chunks);
        if got != blob.digest {
            rec.error(format!(
                "{}: body hashes to {got}, want {}",
                answer.what, blob.digest
            ));
            continue;
        }
        rec.bytes += answer.body_len();
        rec.ops += 1;
    }
    rec.fill(&mut line, timed.as_secs_f64());
    line
}

async fn ranges(ctx: &Ctx, blob: &Blob) -> Line {
    let mut line = ctx.line(NAME, "range");
    let mut rec = Recorder::new();
    let mut timed = Duration::ZERO;
    let mut offsets = rng(ctx.seed, "range-offsets");
    let total = blob.data.len();
    let len = ctx.size.range_len.min(total).max(1);
    for _ in 0..ctx.size.range_requests {
        let start = offsets.random_range(0..=total - len);
        let end = start + len - 1;
        let url = ctx
            .reg
            .url(&format!("/v2/{MONOLITHIC_REPO}/blobs/{}", blob.digest));
        let Some(url) = rec.check(url) else { break };
        let request = ctx
            .reg
            .request(Method::GET, url)
            .header("Range", format!("bytes={start}-{end}"));
        let started = Instant::now();
        let answer = ctx
            .reg
            .send(&mut rec, request)
            .await
            .and_then(|a| a.expect(206));
        timed += started.elapsed();
        let Some(answer) = rec.check(answer) else {
            continue;
        };
        let want_range = format!("bytes {start}-{end}/{total}");
        if answer.header("Content-Range") != Some(want_range.as_str()) {
            rec.error(format!(
                "{}: Content-Range {:?}, want {want_range}",
                answer.what,
                answer.header("Content-Range")
            ));
            continue;
        }
        if answer.body() != blob.data.slice(start..=end) {
            rec.error(format!("{}: body is not bytes {start}-{end}", answer.what));
            continue;
        }
        rec.bytes += answer.body_len();
        rec.ops += 1;
    }
    rec.fill(&mut line, timed.as_secs_f64());
    line
}
