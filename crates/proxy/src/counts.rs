//! What each upstream's cache did, as Prometheus series: pulls served (manifests and
//! blobs, from the cache or fetched) and bytes fetched from the upstream; with a size
//! limit, the cache's size and its evictions.

use berth_metrics::{Collect, Counter, Encoder, Kind};

use crate::registry::ProxyRegistry;

/// One upstream's counters.
#[derive(Default)]
pub(crate) struct Counts {
    manifests_cached: Counter,
    manifests_fetched: Counter,
    blobs_cached: Counter,
    blobs_fetched: Counter,
    fetched_bytes: Counter,
}

/// What was pulled.
#[derive(Clone, Copy)]
pub(crate) enum Pulled {
    Manifest,
    Blob,
}

impl Counts {
    /// A pull served; `fetched` when it came from the upstream.
    pub(crate) fn pull(&self, what: Pulled, fetched: bool) {
        match (what, fetched) {
            (Pulled::Manifest, false) => self.manifests_cached.inc(),
            (Pulled::Manifest, true) => self.manifests_fetched.inc(),
            (Pulled::Blob, false) => self.blobs_cached.inc(),
            (Pulled::Blob, true) => self.blobs_fetched.inc(),
        }
    }

    /// Bytes received from the upstream.
    pub(crate) fn bytes(&self, n: u64) {
        self.fetched_bytes.add(n);
    }
}

impl Collect for ProxyRegistry {
    fn collect(&self, enc: &mut Encoder) {
        let name = "berth_proxy_pulls_total";
        enc.family(
            name,
            "Manifest and blob pulls of proxied repositories by upstream, kind and source \
             (cache: served from local storage; upstream: fetched).",
            Kind::Counter,
        );
        for up in self.upstreams() {
            let label = up.config.label();
            let c = &up.counts;
            for (kind, source, counter) in [
                ("manifest", "cache", &c.manifests_cached),
                ("manifest", "upstream", &c.manifests_fetched),
                ("blob", "cache", &c.blobs_cached),
                ("blob", "upstream", &c.blobs_fetched),
            ] {
                enc.sample(
                    name,
                    &[("upstream", &label), ("kind", kind), ("source", source)],
                    counter.get(),
                );
            }
        }
        let name = "berth_proxy_upstream_bytes_total";
        enc.family(
            name,
            "Bytes of manifests and blobs received from each upstream.",
            Kind::Counter,
        );
        for up in self.upstreams() {
            enc.sample(
                name,
                &[("upstream", &up.config.label())],
                up.counts.fetched_bytes.get(),
            );
        }
        if let Some(e) = self.eviction() {
            for (name, help, kind, value) in [
                (
                    "berth_proxy_cache_bytes",
                    "Bytes of blobs the pull-through cache holds (berth.proxy.cache.maxsize bounds it).",
                    Kind::Gauge,
                    e.size(),
                ),
                (
                    "berth_proxy_cache_limit_bytes",
                    "berth.proxy.cache.maxsize.",
                    Kind::Gauge,
                    e.limit(),
                ),
                (
                    "berth_proxy_evictions_total",
                    "Blobs evicted from the pull-through cache (least recently used first).",
                    Kind::Counter,
                    e.evicted.get(),
                ),
                (
                    "berth_proxy_evicted_bytes_total",
                    "Bytes of the blobs evicted from the pull-through cache.",
                    Kind::Counter,
                    e.evicted_bytes.get(),
                ),
            ] {
                enc.family(name, help, kind);
                enc.sample(name, &[], value);
            }
        }
    }
}
