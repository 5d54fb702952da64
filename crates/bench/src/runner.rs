//! `berth-bench run`: runs the chosen scenarios in a fixed order against one registry,
//! handing each result line to the caller as soon as it is known.

use std::time::Instant;

use crate::line::Line;
use crate::scenarios::{
    Ctx, Scenario, catalog, catalog_scale, image_push, memory, pull_large, pull_proxy, pull_small,
    push_huge, push_large, push_small, tags_list,
};
use crate::size::Size;

/// What to run, against what.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Base URL of the registry, e.g. `http://127.0.0.1:5000`.
    pub url: String,
    /// The scenarios to run (run in [`Scenario::ALL`] order, whatever the order here).
    pub scenarios: Vec<Scenario>,
    /// Counts and sizes.
    pub size: Size,
    /// The server's process id, for the memory scenario.
    pub pid: Option<u32>,
    /// Label written into every line.
    pub label: String,
    /// Seed of all generated data.
    pub seed: u64,
    /// `Authorization` value sent with every request (auth mode).
    pub authorization: Option<String>,
    /// Base URL of the upstream when the registry is a pull-through cache of it
    /// (pull-proxy puts its blobs there).
    pub upstream: Option<String>,
    /// Blob GETs follow a redirect (a registry that sends them to presigned storage
    /// URLs); otherwise a redirect is a wrong answer.
    pub follow_redirects: bool,
    /// Catalog repositories `0..N` already written to the registry's storage (see
    /// [`Ctx::populated`]).
    pub populated: Option<usize>,
    /// How many times catalog-scale fetches its page, instead of the size's count
    /// (a registry whose page costs minutes).
    pub scale_fetches: Option<usize>,
    /// Seconds after which catalog-scale times its page again (see
    /// [`Size::scale_later_secs`](crate::size::Size::scale_later_secs)).
    pub scale_later: Option<u64>,
}

/// Runs every chosen scenario, calls `emit` with each line, and answers them all.
pub async fn run(opts: &RunOptions, mut emit: impl FnMut(&Line)) -> Result<Vec<Line>, String> {
    let mut size = opts.size.clone();
    if let Some(n) = opts.scale_fetches {
        size.scale_fetches = n;
    }
    if let Some(s) = opts.scale_later {
        size.scale_later_secs = s;
    }
    let size = &size;
    let connections = size
        .pull_connections
        .max(size.push_workers)
        .max(size.populate_workers)
        .max(size.images);
    let reg = crate::ops::connect_with(
        &opts.url,
        connections,
        opts.authorization.as_deref(),
        opts.follow_redirects,
    )?;
    let mut ctx = Ctx::new(reg, size.clone(), opts.seed, &opts.label, opts.pid);
    ctx.authorization = opts.authorization.clone();
    ctx.follow_redirects = opts.follow_redirects;
    ctx.populated = opts.populated;
    if let Some(upstream) = &opts.upstream {
        ctx.upstream = Some(crate::ops::connect(
            upstream,
            connections,
            opts.authorization.as_deref(),
        )?);
    }
    let chosen = |s: Scenario| opts.scenarios.contains(&s);
    let mut all = Vec::new();
    for scenario in Scenario::ALL {
        let wanted = chosen(scenario)
            || (scenario == Scenario::ImagePush && chosen(Scenario::Memory) && ctx.pid.is_some());
        if !wanted {
            continue;
        }
        eprintln!("berth-bench: {} {} ...", opts.label, scenario.name());
        crate::scenarios::settle().await;
        let started = Instant::now();
        let lines = match scenario {
            Scenario::Memory => match ctx.pid {
                Some(pid) => vec![memory::idle(&ctx, pid)],
                None => {
                    eprintln!("berth-bench: memory needs --pid; skipped");
                    Vec::new()
                }
            },
            Scenario::PushLarge => push_large::run(&ctx).await,
            Scenario::PushChunked2g => push_huge::run(&ctx).await,
            Scenario::PullLarge => pull_large::run(&ctx).await,
            Scenario::PushSmall => push_small::run(&ctx).await,
            Scenario::PullSmall => pull_small::run(&ctx).await,
            Scenario::TagsList => tags_list::run(&ctx).await,
            Scenario::Catalog => catalog::run(&ctx).await,
            Scenario::ImagePush => {
                image_push::run(&ctx, chosen(Scenario::ImagePush), chosen(Scenario::Memory)).await
            }
            Scenario::CatalogScale => catalog_scale::run(&ctx).await,
            Scenario::PullProxy => pull_proxy::run(&ctx).await,
        };
        eprintln!(
            "berth-bench: {} {} done in {:.1} s",
            opts.label,
            scenario.name(),
            started.elapsed().as_secs_f64()
        );
        for line in lines {
            emit(&line);
            all.push(line);
        }
    }
    Ok(all)
}
