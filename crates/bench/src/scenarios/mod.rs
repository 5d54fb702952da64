//! The scenarios, one file each, and what they share: the run context ([`Ctx`]), the
//! scenario names, and [`parallel`], which runs jobs over a fixed number of workers.

pub mod catalog;
pub mod catalog_scale;
pub mod image_push;
pub mod memory;
pub mod populate;
pub mod pull_large;
pub mod pull_proxy;
pub mod pull_small;
pub mod push_huge;
pub mod push_large;
pub mod push_small;
pub mod tags_list;

/// The repositories of the scenarios run in auth mode (push-large, pull-large,
/// pull-small): what a benchmark token must grant.
pub const AUTH_MODE_REPOSITORIES: [&str; 3] = [
    push_large::MONOLITHIC_REPO,
    push_large::CHUNKED_REPO,
    pull_small::REPO,
];

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use berth_client::Client;
use tokio::sync::OnceCell;

use crate::data::{Blob, rng};
use crate::line::Line;
use crate::size::Size;
use crate::stats::Recorder;

/// Everything a scenario needs.
pub struct Ctx {
    /// The registry under test.
    pub reg: Client,
    /// Counts and sizes.
    pub size: Size,
    /// Seed of all generated data.
    pub seed: u64,
    /// Label written into every line.
    pub label: String,
    /// Server process to sample memory of, if known.
    pub pid: Option<u32>,
    /// The upstream of the pull-through cache under test (pull-proxy fills it).
    pub upstream: Option<Client>,
    /// `Authorization` value for requests made outside [`Ctx::reg`] (the raw GETs).
    pub authorization: Option<String>,
    /// Whether blob GETs follow a redirect (to a presigned storage URL); otherwise a
    /// redirect is a wrong answer.
    pub follow_redirects: bool,
    /// Catalog repositories `0..N` already in the registry's storage, written there
    /// directly (`berth-bench populate-s3`): catalog-scale then times its page at `N`
    /// only, populating nothing.
    pub populated: Option<usize>,
    large: OnceCell<Blob>,
}

impl Ctx {
    /// A context for one run.
    pub fn new(reg: Client, size: Size, seed: u64, label: &str, pid: Option<u32>) -> Self {
        Self {
            reg,
            size,
            seed,
            label: label.to_owned(),
            pid,
            upstream: None,
            authorization: None,
            follow_redirects: false,
            populated: None,
            large: OnceCell::new(),
        }
    }

    /// An empty line for `scenario`/`variant` under this run's label.
    pub fn line(&self, scenario: &str, variant: &str) -> Line {
        Line::new(&self.label, scenario, variant)
    }

    /// The large blob that push-large pushes and pull-large pulls (generated once).
    pub async fn large_blob(&self) -> &Blob {
        self.large
            .get_or_init(|| async { self.random_blob("large-monolithic", self.size.large_blob) })
            .await
    }

    /// The server's CPU seconds so far, when its pid is known and readable; a timed part
    /// reads it before and after (see [`Line::set_server_cpu`]).
    pub fn server_cpu(&self) -> Option<f64> {
        self.pid.and_then(|pid| crate::cpu::read_cpu_s(pid).ok())
    }

    /// `len` random bytes from the named stream of this run's seed.
    pub fn random_blob(&self, stream: &str, len: usize) -> Blob {
        Blob::random(&mut rng(self.seed, stream), len)
    }
}

/// A scenario name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    /// Idle RSS before any load and peak RSS during image-push.
    Memory,
    /// One large blob, monolithic and chunked.
    PushLarge,
    /// GET of the large blob and Range requests.
    PullLarge,
    /// Many small blob + manifest pushes.
    PushSmall,
    /// Manifest GET + blob HEAD over many connections for a fixed time.
    PullSmall,
    /// Tag listing, paged and unpaged.
    TagsList,
    /// Catalog paging.
    Catalog,
    /// Parallel docker-style image pushes.
    ImagePush,
    /// A catalog page at a small and at a large registry.
    CatalogScale,
    /// Cold and warm pulls through a pull-through cache (see `pull_proxy`).
    PullProxy,
    /// A 2 GiB blob in 16 MiB PATCHes, with the server's peak RSS (see `push_huge`).
    PushChunked2g,
}

impl Scenario {
    /// Every scenario, in the order they run.
    pub const ALL: [Scenario; 11] = [
        Scenario::Memory,
        Scenario::PushLarge,
        Scenario::PushChunked2g,
        Scenario::PullLarge,
        Scenario::PushSmall,
        Scenario::PullSmall,
        Scenario::TagsList,
        Scenario::Catalog,
        Scenario::ImagePush,
        Scenario::CatalogScale,
        Scenario::PullProxy,
    ];

    /// What runs when none is named: all but catalog-scale, which is slow to populate,
    /// pull-proxy, which measures a registry set up as a cache, and those run only by
    /// name.
    pub fn default_set() -> Vec<Scenario> {
        Self::ALL
            .into_iter()
            .filter(|s| !matches!(s, Scenario::CatalogScale | Scenario::PullProxy))
            .filter(|s| !s.by_name_only())
            .collect()
    }

    /// Whether the scenario runs only when named (`all` leaves it out): push-chunked-2g,
    /// which writes 2 GiB.
    pub fn by_name_only(self) -> bool {
        self == Scenario::PushChunked2g
    }

    /// The name used on the command line and in result lines.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Memory => "memory",
            Scenario::PushLarge => "push-large",
            Scenario::PullLarge => "pull-large",
            Scenario::PushSmall => "push-small",
            Scenario::PullSmall => "pull-small",
            Scenario::TagsList => "tags-list",
            Scenario::Catalog => "catalog",
            Scenario::ImagePush => "image-push",
            Scenario::CatalogScale => "catalog-scale",
            Scenario::PullProxy => pull_proxy::NAME,
            Scenario::PushChunked2g => push_huge::NAME,
        }
    }

    /// The scenario called `name`.
    pub fn parse(name: &str) -> Option<Scenario> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// When [`parallel`] stops handing out jobs.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// After this many jobs.
    After(usize),
    /// At this instant (jobs already started finish).
    At(Instant),
}

/// Runs `job(0)`, `job(1)`, ... over `workers` concurrent workers until `stop`, and
/// merges what the jobs recorded. A worker that panics is counted as an error.
pub async fn parallel<F, Fut>(workers: usize, stop: Stop, job: F) -> Recorder
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Recorder> + Send + 'static,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..workers.max(1))
        .map(|_| {
            let job = Arc::clone(&job);
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                let mut rec = Recorder::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let more = match stop {
                        Stop::After(n) => i < n,
                        Stop::At(t) => Instant::now() < t,
                    };
                    if !more {
                        break;
                    }
                    rec.merge(job(i).await);
                }
                rec
            })
        })
        .collect();
    let mut total = Recorder::new();
    for task in tasks {
        match task.await {
            Ok(rec) => total.merge(rec),
            Err(e) => total.error(format!("worker failed: {e}")),
        }
    }
    total
}

/// Waits until the kernel has written dirty pages to disk, so the write-back of one
/// step's data (gigabytes, for the large scenarios) does not land in the next step's
/// timing. Applied the same way to every registry.
pub async fn settle() {
    let _ = tokio::task::spawn_blocking(|| std::process::Command::new("sync").status()).await;
}
