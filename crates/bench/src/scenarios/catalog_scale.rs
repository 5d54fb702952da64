//! catalog-scale: the time of one catalog page (`n`, starting in the middle via `last=`)
//! in a registry of a small and of a large number of repositories. A catalog whose cost
//! grows with the page and not with the registry answers both in about the same time.

use crate::line::Line;
use crate::paging;
use crate::scenarios::Ctx;
use crate::scenarios::populate::{self, catalog_repo};
use crate::stats::Recorder;

/// Scenario name.
pub const NAME: &str = "catalog-scale";

/// Populates to each size in turn and times the middle page there; with
/// [`Ctx::populated`], times it at that size only (the registry was started over a
/// storage filled directly), after one first fetch timed on its own (the first page
/// after a start, which may build a listing).
pub async fn run(ctx: &Ctx) -> Vec<Line> {
    if let Some(repos) = ctx.populated {
        // No `repositories` on it: the growth row compares the `page-at-` lines.
        let first = ctx.line(NAME, &format!("first-page-at-{repos}"));
        let first = middle_page(ctx, repos, 1, first).await;
        let mut line = ctx.line(NAME, &format!("page-at-{repos}"));
        line.repositories = Some(repos as u64);
        let fetches = ctx.size.scale_fetches;
        let mut lines = vec![first, middle_page(ctx, repos, fetches, line).await];
        if ctx.size.scale_later_secs > 0 {
            // Not a `page-at-` line: the growth row compares the pages right after a
            // start; these show the page once a background listing is done.
            let later = std::time::Duration::from_secs(ctx.size.scale_later_secs);
            tokio::time::sleep(later).await;
            let line = ctx.line(NAME, &format!("page-later-at-{repos}"));
            lines.push(middle_page(ctx, repos, fetches, line).await);
        }
        return lines;
    }
    let mut lines = Vec::new();
    for repos in ctx.size.scale_repos {
        let mut line = ctx.line(NAME, &format!("page-at-{repos}"));
        line.repositories = Some(repos as u64);
        let setup = populate::catalog_repos(ctx, repos).await;
        if setup.errors > 0 {
            setup.fill(&mut line, 0.0);
            lines.push(line);
            continue;
        }
        lines.push(middle_page(ctx, repos, ctx.size.scale_fetches, line).await);
    }
    lines
}

/// Fetches the middle page `fetches` times.
async fn middle_page(ctx: &Ctx, repos: usize, fetches: usize, mut line: Line) -> Line {
    let n = ctx.size.scale_page;
    let middle = repos / 2;
    let target = format!("/v2/_catalog?n={n}&last={}", catalog_repo(middle));
    let end = (middle + 1 + n).min(repos);
    let want: Vec<String> = (middle + 1..end).map(catalog_repo).collect();
    let mut rec = Recorder::new();
    let started = std::time::Instant::now();
    for _ in 0..fetches {
        let page = paging::page(&ctx.reg, &mut rec, &target, "repositories").await;
        let Some((got, _)) = rec.check(page) else {
            continue;
        };
        rec.ops += 1;
        let ours = &got[..got.len().min(want.len())];
        if ours != want.as_slice() {
            rec.error(format!(
                "{target}: page starts {:?}, want {:?}",
                got.first(),
                want.first()
            ));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    rec.fill(&mut line, seconds);
    line
}
