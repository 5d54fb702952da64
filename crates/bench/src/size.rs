//! The two sizes a run can have: `full` (the numbers of the benchmark issue) and `smoke`
//! (tiny, so the whole run takes seconds and CI can check that it works).

use std::time::Duration;

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// Every count and size the scenarios use.
#[derive(Debug, Clone)]
pub struct Size {
    /// push-large / pull-large: the large blob.
    pub large_blob: usize,
    /// push-large: bytes per PATCH of the chunked variant.
    pub chunk: usize,
    /// pull-large: how many full GETs of the large blob.
    pub large_pulls: usize,
    /// pull-large: bytes per Range request.
    pub range_len: usize,
    /// pull-large: how many Range requests.
    pub range_requests: usize,
    /// push-small: how many blob + manifest pushes.
    pub small_pushes: usize,
    /// push-small / pull-small: size of one small blob.
    pub small_blob: usize,
    /// push-small: concurrent workers.
    pub push_workers: usize,
    /// pull-small: distinct images pulled.
    pub pull_images: usize,
    /// pull-small: concurrent connections.
    pub pull_connections: usize,
    /// pull-small: how long to pull.
    pub pull_duration: Duration,
    /// tags-list: tags in the repository.
    pub tags: usize,
    /// tags-list: `n` of the paged walk.
    pub tags_page: usize,
    /// tags-list: how many times each listing is walked.
    pub tag_walks: usize,
    /// catalog: repositories.
    pub repos: usize,
    /// catalog: how many times each listing is walked.
    pub catalog_walks: usize,
    /// catalog: the `n` of each paged walk.
    pub catalog_pages: [usize; 2],
    /// catalog-scale: registry sizes at which a middle page is timed.
    pub scale_repos: [usize; 2],
    /// catalog-scale: `n` of the timed page.
    pub scale_page: usize,
    /// catalog-scale: how many times the page is fetched at each size.
    pub scale_fetches: usize,
    /// catalog-scale over a populated registry: seconds after the first fetches at
    /// which the page is timed again (0: not again), once a listing built in the
    /// background is done.
    pub scale_later_secs: u64,
    /// image-push: images pushed in parallel.
    pub images: usize,
    /// image-push: layers per image (plus one config).
    pub layers: usize,
    /// image-push: smallest and largest layer.
    pub layer_bytes: (usize, usize),
    /// Workers that fill a registry before a timed part (tags, repositories).
    pub populate_workers: usize,
    /// push-chunked-2g: the blob pushed in PATCHes while the server's RSS is sampled.
    pub huge_blob: usize,
    /// push-chunked-2g: bytes per PATCH.
    pub huge_patch: usize,
}

impl Size {
    /// The sizes of the benchmark issue.
    pub fn full() -> Self {
        Self {
            large_blob: 512 * MIB,
            chunk: 8 * MIB,
            large_pulls: 3,
            range_len: 8 * MIB,
            range_requests: 32,
            small_pushes: 2_000,
            small_blob: 4 * KIB,
            push_workers: 16,
            pull_images: 100,
            pull_connections: 64,
            pull_duration: Duration::from_secs(10),
            tags: 10_000,
            tags_page: 1_000,
            tag_walks: 50,
            repos: 2_000,
            catalog_walks: 10,
            catalog_pages: [100, 1_000],
            scale_repos: [2_000, 20_000],
            scale_page: 100,
            scale_fetches: 30,
            scale_later_secs: 0,
            images: 8,
            layers: 5,
            layer_bytes: (MIB, 64 * MIB),
            populate_workers: 16,
            huge_blob: 2048 * MIB,
            huge_patch: 16 * MIB,
        }
    }

    /// Tiny sizes: every code path, in a few seconds.
    pub fn smoke() -> Self {
        Self {
            large_blob: MIB,
            chunk: 256 * KIB,
            large_pulls: 2,
            range_len: 64 * KIB,
            range_requests: 4,
            small_pushes: 20,
            small_blob: 4 * KIB,
            push_workers: 16,
            pull_images: 5,
            pull_connections: 64,
            pull_duration: Duration::from_secs(1),
            tags: 50,
            tags_page: 20,
            tag_walks: 2,
            repos: 30,
            catalog_walks: 2,
            catalog_pages: [10, 100],
            scale_repos: [30, 300],
            scale_page: 10,
            scale_fetches: 3,
            scale_later_secs: 0,
            images: 2,
            layers: 5,
            layer_bytes: (16 * KIB, 64 * KIB),
            populate_workers: 16,
            huge_blob: 24 * MIB + 5,
            huge_patch: 4 * MIB,
        }
    }

    /// The size called `name` (`smoke` or `full`).
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "full" => Some(Self::full()),
            "smoke" => Some(Self::smoke()),
            _ => None,
        }
    }
}
