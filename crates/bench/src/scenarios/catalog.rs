//! catalog: a registry with many repositories (populated by mounts, untimed), then the
//! whole catalog walked page by page following `Link`, at two page sizes. The walk must
//! hold every repository exactly once, in order.

use std::time::Instant;

use crate::line::Line;
use crate::paging;
use crate::scenarios::Ctx;
use crate::scenarios::populate::{self, CATALOG_PREFIX, catalog_repo};
use crate::stats::Recorder;

/// Scenario name.
pub const NAME: &str = "catalog";

/// Runs one variant per page size.
pub async fn run(ctx: &Ctx) -> Vec<Line> {
    let pages = ctx.size.catalog_pages;
    let setup = populate::catalog_repos(ctx, ctx.size.repos).await;
    if setup.errors > 0 {
        let mut line = ctx.line(NAME, &format!("paged-n{}", pages[0]));
        setup.fill(&mut line, 0.0);
        return vec![line];
    }
    let want: Vec<String> = (0..ctx.size.repos).map(catalog_repo).collect();
    let mut lines = Vec::new();
    for n in pages {
        lines.push(walks(ctx, n, &want).await);
    }
    lines
}

async fn walks(ctx: &Ctx, n: usize, want: &[String]) -> Line {
    let mut line = ctx.line(NAME, &format!("paged-n{n}"));
    line.repositories = Some(want.len() as u64);
    let mut rec = Recorder::new();
    let first = format!("/v2/_catalog?n={n}");
    let started = Instant::now();
    for _ in 0..ctx.size.catalog_walks {
        let got = paging::walk(&ctx.reg, &mut rec, &first, "repositories").await;
        let Some(got) = rec.check(got) else { continue };
        // A listing that arrived whole counts as done; a wrong one also as an error.
        rec.ops += 1;
        let checked = paging::verify_listing(&got, want, |r| r.starts_with(CATALOG_PREFIX));
        rec.check(checked);
    }
    let seconds = started.elapsed().as_secs_f64();
    rec.fill(&mut line, seconds);
    line
}
