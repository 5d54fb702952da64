//! pull-large: full `GET`s of the large blob (every body hashed and compared with the
//! digest, after the timer stops) and `Range` requests at random offsets (every body
//! compared with the slice it should be). With [`Ctx::follow_redirects`] a GET answered
//! with a redirect (to a presigned storage URL) follows it, and the time includes both.

use std::time::{Duration, Instant};

use berth_client::{ByteRange, raw};
use rand::Rng;

use crate::data::{Blob, rng};
use crate::line::Line;
use crate::ops;
use crate::scenarios::Ctx;
use crate::scenarios::push_large::MONOLITHIC_REPO;
use crate::stats::Recorder;

/// How long one full GET may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

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
    let Some(url) = rec.check(
        ctx.reg
            .blob_url(MONOLITHIC_REPO, &blob.digest)
            .map_err(String::from),
    ) else {
        rec.fill(&mut line, 0.0);
        return line;
    };
    // The leanest client there is (see `berth_client::raw`): every piece is compared with the
    // blob's bytes as it arrives, in one reused buffer, so what is timed is the registry
    // sending and the kernel delivering, not client copies to fresh memory (the client
    // shares the two cores with the server). The server is idle while the client checks,
    // so the CPU it uses over the whole loop is what the GETs cost it.
    let cpu = ctx.server_cpu();
    for _ in 0..ctx.size.large_pulls {
        timed += checked_get(ctx, &url, blob, &mut rec).await;
    }
    line.set_server_cpu(cpu, ctx.server_cpu());
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
    let cpu = ctx.server_cpu();
    for _ in 0..ctx.size.range_requests {
        let start = offsets.random_range(0..=total - len);
        let end = start + len - 1;
        let range = ByteRange::Span(start as u64, end as u64);
        let sent = ctx.reg.get_blob(MONOLITHIC_REPO, &blob.digest, Some(range));
        let started = Instant::now();
        let answer = ops::timed(&mut rec, sent)
            .await
            .and_then(|a| a.expect_status(206).map_err(String::from));
        timed += started.elapsed();
        let Some(answer) = rec.check(answer) else {
            continue;
        };
        let want_range = format!("bytes {start}-{end}/{total}");
        if answer.header("Content-Range") != Some(want_range.as_str()) {
            rec.error(format!(
                "{}: Content-Range {:?}, want {want_range}",
                answer.what(),
                answer.header("Content-Range")
            ));
            continue;
        }
        if answer.body != blob.data.slice(start..=end) {
            rec.error(format!(
                "{}: body is not bytes {start}-{end}",
                answer.what()
            ));
            continue;
        }
        rec.bytes += answer.body.len() as u64;
        rec.ops += 1;
    }
    line.set_server_cpu(cpu, ctx.server_cpu());
    rec.fill(&mut line, timed.as_secs_f64());
    line
}

/// One full `GET` of `blob` at `url` through the leanest client, every piece compared
/// with the blob's bytes as it arrives; recorded in `rec`. Answers the time it took.
pub(crate) async fn checked_get(
    ctx: &Ctx,
    url: &berth_client::Url,
    blob: &Blob,
    rec: &mut Recorder,
) -> Duration {
    let started = Instant::now();
    let target = url.clone();
    let want = blob.data.clone();
    let authorization = ctx.authorization.clone();
    let follow = ctx.follow_redirects;
    let answer = tokio::task::spawn_blocking(move || {
        let mut check = Compare::new(&want);
        let mut answer = raw::get_with(&target, REQUEST_TIMEOUT, authorization.as_deref(), |p| {
            check.piece(p)
        })
        .map_err(String::from)?;
        if follow && (300..400).contains(&answer.status) {
            // To the storage itself (a presigned URL), without the registry's credentials.
            let to = header(&answer.head, "location")
                .and_then(|l| target.join(l).ok())
                .ok_or_else(|| format!("GET {target}: {} without a Location", answer.status))?;
            check = Compare::new(&want);
            answer = raw::get_with(&to, REQUEST_TIMEOUT, None, |p| check.piece(p))
                .map_err(String::from)?;
        }
        Ok((answer, check.differs))
    })
    .await
    .unwrap_or_else(|e| Err(format!("GET {url}: {e}")));
    let took = started.elapsed();
    let (answer, differs) = match answer {
        Ok(a) => {
            rec.request(took);
            a
        }
        Err(e) => {
            rec.unanswered();
            rec.error(e);
            return took;
        }
    };
    if answer.status != 200 {
        rec.error(format!(
            "GET {url}: status {} (want 200): {}",
            answer.status, answer.head
        ));
        return took;
    }
    if answer.len != blob.data.len() {
        rec.error(format!(
            "GET {url}: {} bytes, want {}",
            answer.len,
            blob.data.len()
        ));
        return took;
    }
    if let Some(at) = differs {
        rec.error(format!(
            "GET {url}: body differs from the blob at byte {at}"
        ));
        return took;
    }
    rec.bytes += answer.len as u64;
    rec.ops += 1;
    took
}

/// Compares a body arriving in pieces with the bytes it should be.
struct Compare<'a> {
    want: &'a [u8],
    at: usize,
    /// The offset of the first piece that differs.
    differs: Option<usize>,
}

impl<'a> Compare<'a> {
    fn new(want: &'a [u8]) -> Self {
        Self {
            want,
            at: 0,
            differs: None,
        }
    }

    fn piece(&mut self, piece: &[u8]) {
        let expected = self.want.get(self.at..self.at + piece.len());
        if self.differs.is_none() && expected != Some(piece) {
            self.differs = Some(self.at);
        }
        self.at += piece.len();
    }
}

/// The value of header `name` in a response head.
fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
