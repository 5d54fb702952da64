//! memory: the server's resident set size (`VmRSS` of `--pid`), once idle before any
//! load, and at its peak while image-push runs (sampled every 20 ms by
//! [`crate::rss::Sampler`]).

use std::time::Duration;

use crate::line::Line;
use crate::rss::{Peak, read_rss_kib};
use crate::scenarios::Ctx;

/// Scenario name.
pub const NAME: &str = "memory";
/// How often the server's RSS is sampled during image-push.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(20);

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The idle line: the server's RSS now.
pub fn idle(ctx: &Ctx, pid: u32) -> Line {
    let mut line = ctx.line(NAME, "idle");
    match read_rss_kib(pid) {
        Ok(kib) => line.rss_mib = Some(mib(kib)),
        Err(e) => {
            line.errors = 1;
            line.first_error = Some(e);
        }
    }
    line
}

/// The peak line: the highest RSS seen over `seconds` of image-push.
pub fn peak_line(ctx: &Ctx, seconds: f64, peak: Result<Peak, String>) -> Line {
    let mut line = ctx.line(NAME, "peak-image-push");
    line.seconds = Some(seconds);
    match peak {
        Ok(p) => line.rss_mib = Some(mib(p.kib)),
        Err(e) => {
            line.errors = 1;
            line.first_error = Some(e);
        }
    }
    line
}
