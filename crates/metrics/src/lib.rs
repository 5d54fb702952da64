//! berth-metrics: the few metric types berth records (counters, gauges, fixed-bucket
//! histograms), each a handful of atomics updated with one `fetch_add`, and the
//! Prometheus text exposition format (version 0.0.4) they are scraped in. Every series
//! is created when its owner is built, so recording never takes a lock, looks up a
//! label set, or allocates; only a scrape walks and formats them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// The `Content-Type` of [`Encoder`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        // Relaxed: a scrape needs each count eventually, not an order between them.
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (requests in flight).
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one away.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the buckets of a histogram, in the unit observations are recorded in
/// (nanoseconds or bytes), with the factor that turns that unit into the exposed one.
#[derive(Debug, Clone, Copy)]
pub struct Buckets {
    /// Inclusive upper bounds, ascending; `+Inf` is implied.
    pub bounds: &'static [u64],
    /// Recorded units per exposed unit (1e9 for nanoseconds shown as seconds). Dividing
    /// an integer by it gives the double nearest the decimal (`60`, `70.082`), where
    /// multiplying by its inverse would print binary noise (`60.00000000000001`).
    pub divisor: f64,
}

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

/// Duration bounds shared by both duration bucket sets: 5 ms to 60 s.
const DURATION_BOUNDS: [u64; 13] = [
    5 * MS,
    10 * MS,
    25 * MS,
    50 * MS,
    100 * MS,
    250 * MS,
    500 * MS,
    S,
    2 * S + S / 2,
    5 * S,
    10 * S,
    25 * S,
    60 * S,
];

/// distribution's buckets for HTTP request durations, 5 ms to 60 s.
pub const HTTP_DURATION: Buckets = Buckets {
    bounds: &DURATION_BOUNDS,
    divisor: 1e9,
};

/// The Prometheus client's default buckets (distribution's storage action timer), 5 ms
/// to 10 s: the HTTP ones without the last two.
pub const DEFAULT_DURATION: Buckets = Buckets {
    bounds: DURATION_BOUNDS.split_at(11).0,
    divisor: 1e9,
};

/// distribution's buckets for HTTP request and response sizes: 1 KiB doubling 22 times
/// (to 2 GiB).
pub const SIZES: Buckets = Buckets {
    bounds: &SIZE_BOUNDS,
    divisor: 1.0,
};

const SIZE_BOUNDS: [u64; 22] = {
    let mut bounds = [0u64; 22];
    let mut i = 0;
    while i < 22 {
        bounds[i] = 1024 << i;
        i += 1;
    }
    bounds
};

/// Observations counted into fixed buckets, with their sum.
#[derive(Debug)]
pub struct Histogram {
    buckets: Buckets,
    /// Per bucket (not cumulative, so an observation is one `fetch_add`), then `+Inf`.
    counts: Box<[AtomicU64]>,
    /// Sum of the observations in recorded units: exact, and one `fetch_add`.
    sum: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `buckets`.
    pub fn new(buckets: Buckets) -> Self {
        Histogram {
            buckets,
            counts: (0..=buckets.bounds.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// Records one observation of `value` recorded units.
    pub fn observe(&self, value: u64) {
        let i = self.buckets.bounds.partition_point(|&b| b < value);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Records a duration (for histograms kept in nanoseconds).
    pub fn observe_duration(&self, d: Duration) {
        self.observe(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// Something that writes its series into a scrape.
pub trait Collect: Send + Sync {
    /// Writes every family this owns.
    fn collect(&self, enc: &mut Encoder);
}

/// The kind of a family, as its `# TYPE` line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, sum and count.
    Histogram,
}

/// Writes the text exposition: per family a `# HELP` and a `# TYPE` line, then its
/// samples.
#[derive(Debug, Default)]
pub struct Encoder {
    out: String,
}

impl Encoder {
    /// An empty exposition.
    pub fn new() -> Self {
        Encoder::default()
    }

    /// Starts a family; its samples must follow before the next family starts.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// Unlabelled counters, each a family of one sample: `(name, help, value)`.
    pub fn counters(&mut self, counters: &[(&str, &str, u64)]) {
        for &(name, help, value) in counters {
            self.family(name, help, Kind::Counter);
            self.sample(name, &[], value);
        }
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Value) {
        self.out.push_str(name);
        self.labels(labels, None);
        self.out.push(' ');
        value.write(&mut self.out);
        self.out.push('\n');
    }

    /// The `_bucket`, `_sum` and `_count` lines of one histogram series; `name` is the
    /// family's.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0u64;
        let mut le = String::new();
        for (i, count) in h.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            le.clear();
            match h.buckets.bounds.get(i) {
                Some(&bound) => (bound as f64 / h.buckets.divisor).write(&mut le),
                None => le.push_str("+Inf"),
            }
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
        }
        let sum = h.sum.load(Ordering::Relaxed) as f64 / h.buckets.divisor;
        let _ = write!(self.out, "{name}_sum");
        self.labels(labels, None);
        self.out.push(' ');
        sum.write(&mut self.out);
        // The count is the last bucket's, so the two always agree within a scrape.
        let _ = write!(self.out, "\n{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {cumulative}");
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let le = le.map(|v| ("le", v));
        for (i, (k, v)) in labels.iter().copied().chain(le).enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(k);
            self.out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        self.out.push('}');
    }

    /// The text written.
    pub fn finish(self) -> String {
        self.out
    }
}

/// A sample value as the exposition writes it.
pub trait Value {
    /// Appends the value's text.
    fn write(self, out: &mut String);
}

impl Value for u64 {
    fn write(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for i64 {
    fn write(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for f64 {
    fn write(self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            // Rust's shortest round-trip form ("0.005", "2.5", "1024"), which every
            // Prometheus parser reads back to the same double.
            let _ = write!(out, "{self}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_with_matching_count_and_exact_sum() {
        let h = Histogram::new(HTTP_DURATION);
        for ms in [1, 5, 6, 70, 70_000] {
            h.observe_duration(Duration::from_millis(ms));
        }
        let mut enc = Encoder::new();
        enc.family("d_seconds", "Durations.", Kind::Histogram);
        enc.histogram("d_seconds", &[("handler", "blob")], &h);
        let text = enc.finish();
        assert!(text.starts_with("# HELP d_seconds Durations.\n# TYPE d_seconds histogram\n"));
        assert!(
            text.contains("d_seconds_bucket{handler=\"blob\",le=\"0.005\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_bucket{handler=\"blob\",le=\"0.01\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_bucket{handler=\"blob\",le=\"0.1\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_bucket{handler=\"blob\",le=\"60\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_bucket{handler=\"blob\",le=\"+Inf\"} 5\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_sum{handler=\"blob\"} 70.082\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_count{handler=\"blob\"} 5\n"),
            "{text}"
        );
        assert_eq!(h.count(), 5);
    }

    #[test]
    fn default_durations_end_at_ten_seconds() {
        assert_eq!(DEFAULT_DURATION.bounds.last(), Some(&(10 * S)));
        assert_eq!(HTTP_DURATION.bounds.last(), Some(&(60 * S)));
    }

    #[test]
    fn size_buckets_double_from_one_kib() {
        assert_eq!(SIZES.bounds.len(), 22);
        assert_eq!(SIZES.bounds[0], 1024);
        assert_eq!(SIZES.bounds[21], 1024 << 21);
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut enc = Encoder::new();
        enc.family("c_total", "Line one\nback\\slash", Kind::Counter);
        enc.sample("c_total", &[("path", "a\"b\\c\nd")], 3u64);
        enc.sample("c_total", &[], 1u64);
        assert_eq!(
            enc.finish(),
            "# HELP c_total Line one\\nback\\\\slash\n# TYPE c_total counter\n\
             c_total{path=\"a\\\"b\\\\c\\nd\"} 3\nc_total 1\n"
        );
    }

    #[test]
    fn counters_and_gauges() {
        let c = Counter::default();
        c.inc();
        c.add(4);
        assert_eq!(c.get(), 5);
        let g = Gauge::default();
        g.inc();
        g.inc();
        g.dec();
        assert_eq!(g.get(), 1);
    }
}
