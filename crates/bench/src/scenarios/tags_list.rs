//! tags-list: a repository with many tags (one manifest tagged over and over, untimed),
//! then the whole tag list walked page by page following `Link`, and fetched in one
//! unpaged `GET`. Every listing must hold every tag exactly once, in order.

use std::sync::Arc;
use std::time::Instant;

use crate::data::{Blob, oci_manifest};
use crate::line::Line;
use crate::ops;
use crate::paging;
use crate::scenarios::populate;
use crate::scenarios::{Ctx, Stop, parallel};
use crate::stats::Recorder;

/// Scenario name.
pub const NAME: &str = "tags-list";
const REPO: &str = "bench/tags";

fn tag(i: usize) -> String {
    format!("t{i:05}")
}

/// Runs both variants.
pub async fn run(ctx: &Ctx) -> Vec<Line> {
    let page = ctx.size.tags_page;
    let paged_name = format!("paged-n{page}");
    let setup = populate_tags(ctx).await;
    if setup.errors > 0 {
        let mut line = ctx.line(NAME, &paged_name);
        setup.fill(&mut line, 0.0);
        return vec![line];
    }
    let want: Vec<String> = (0..ctx.size.tags).map(tag).collect();
    let paged = format!("/v2/{REPO}/tags/list?n={page}");
    let unpaged = format!("/v2/{REPO}/tags/list");
    vec![
        walks(ctx, &paged_name, &paged, &want).await,
        walks(ctx, "unpaged", &unpaged, &want).await,
    ]
}

/// Pushes one image and tags it `t00000` ... (16 workers).
async fn populate_tags(ctx: &Ctx) -> Recorder {
    let mut setup = Recorder::new();
    let config = Blob::config("tags-list");
    let layer = ctx.random_blob("tags-list-layer", 1024);
    let first = populate::image(ctx, &mut setup, REPO, &tag(0), &config, &[&layer]).await;
    if setup.check(first).is_none() {
        return setup;
    }
    let manifest = Arc::new(oci_manifest(&config, &[&layer]));
    let reg = ctx.reg.clone();
    let rest = ctx.size.tags.saturating_sub(1);
    let more = parallel(ctx.size.populate_workers, Stop::After(rest), move |i| {
        let (reg, manifest) = (reg.clone(), Arc::clone(&manifest));
        async move {
            let mut rec = Recorder::new();
            let result = ops::put_manifest(&reg, &mut rec, REPO, &tag(i + 1), &manifest).await;
            rec.check(result);
            rec
        }
    })
    .await;
    setup.merge_errors(more);
    setup
}

/// Walks the listing at `first` several times, checking each result.
async fn walks(ctx: &Ctx, variant: &str, first: &str, want: &[String]) -> Line {
    let mut line = ctx.line(NAME, variant);
    let mut rec = Recorder::new();
    let started = Instant::now();
    for _ in 0..ctx.size.tag_walks {
        let got = paging::walk(&ctx.reg, &mut rec, first, "tags").await;
        let Some(got) = rec.check(got) else { continue };
        // A listing that arrived whole counts as done; a wrong one also as an error.
        rec.ops += 1;
        rec.check(paging::verify_listing(&got, want, |_| true));
    }
    let seconds = started.elapsed().as_secs_f64();
    rec.fill(&mut line, seconds);
    line
}
