//! What the report compares for each scenario: the metric, which direction is better,
//! and the target from the benchmark issue (a ratio over distribution, or an absolute
//! bound on berth's own value).

use crate::line::Line;

/// A number read from a result line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Payload MiB per second (higher is better).
    MibPerS,
    /// HTTP requests per second (higher is better).
    ReqPerS,
    /// Operations per second (higher is better).
    OpsPerS,
    /// Median request latency (lower is better).
    P50Ms,
    /// 99th percentile request latency (lower is better).
    P99Ms,
    /// Resident memory (lower is better).
    RssMib,
    /// Server CPU milliseconds per scenario operation (lower is better).
    CpuMsPerOp,
    /// Server CPU microseconds per HTTP request (lower is better).
    CpuUsPerRequest,
    /// Server CPU seconds per GiB of payload (lower is better).
    CpuSPerGib,
}

impl Metric {
    /// Column text.
    pub fn name(self) -> &'static str {
        match self {
            Metric::MibPerS => "MiB/s",
            Metric::ReqPerS => "req/s",
            Metric::OpsPerS => "ops/s",
            Metric::P50Ms => "p50 ms",
            Metric::P99Ms => "p99 ms",
            Metric::RssMib => "RSS MiB",
            Metric::CpuMsPerOp => "server CPU ms/op",
            Metric::CpuUsPerRequest => "server CPU µs/request",
            Metric::CpuSPerGib => "server CPU s/GiB",
        }
    }

    /// The unit of the metric's values.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::MibPerS => "MiB/s",
            Metric::ReqPerS => "req/s",
            Metric::OpsPerS => "ops/s",
            Metric::P50Ms | Metric::P99Ms => "ms",
            Metric::RssMib => "MiB",
            Metric::CpuMsPerOp => "ms",
            Metric::CpuUsPerRequest => "µs",
            Metric::CpuSPerGib => "s",
        }
    }

    /// The value in `line`, if it has one.
    pub fn get(self, line: &Line) -> Option<f64> {
        match self {
            Metric::MibPerS => line.mib_per_s,
            Metric::ReqPerS => line.req_per_s,
            Metric::OpsPerS => line.ops_per_s,
            Metric::P50Ms => line.p50_ms,
            Metric::P99Ms => line.p99_ms,
            Metric::RssMib => line.rss_mib,
            Metric::CpuMsPerOp => per(line.server_cpu_s? * 1e3, line.ops? as f64),
            Metric::CpuUsPerRequest => per(line.server_cpu_s? * 1e6, line.requests? as f64),
            Metric::CpuSPerGib => per(line.server_cpu_s?, line.bytes? as f64 / GIB),
        }
    }

    /// Whether a larger value is better.
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::MibPerS | Metric::ReqPerS | Metric::OpsPerS)
    }

    /// The ratio that is above 1 when `candidate` is better than `baseline`.
    pub fn ratio(self, candidate: f64, baseline: f64) -> Option<f64> {
        let (num, den) = if self.higher_is_better() {
            (candidate, baseline)
        } else {
            (baseline, candidate)
        };
        (den > 0.0).then(|| num / den)
    }
}

/// Bytes in a GiB.
const GIB: f64 = crate::stats::MIB * 1024.0;

/// `amount / units`, when there are units.
fn per(amount: f64, units: f64) -> Option<f64> {
    (units > 0.0).then(|| amount / units)
}

/// The goal a row is judged against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// No goal; the row informs.
    None,
    /// The ratio (better-is-above-1) must reach this.
    Ratio(f64),
    /// The candidate's own value must not exceed this.
    AtMost(f64),
}

impl Target {
    /// Column text.
    pub fn describe(self, metric: Metric) -> String {
        match self {
            Target::None => "—".into(),
            Target::Ratio(r) => format!("≥ {r}x"),
            Target::AtMost(v) => format!("≤ {v} {}", metric.unit()),
        }
    }

    /// Whether the goal is met, `None` when it cannot be judged.
    pub fn met(self, candidate: Option<f64>, ratio: Option<f64>) -> Option<bool> {
        match self {
            Target::None => None,
            Target::Ratio(r) => ratio.map(|x| x >= r),
            Target::AtMost(v) => candidate.map(|x| x <= v),
        }
    }
}

/// The rows of the table for one scenario variant: which metrics, against which goal.
pub fn rows_for(scenario: &str, variant: &str) -> Vec<(Metric, Target)> {
    match (scenario, variant) {
        ("push-large", _) => vec![
            (Metric::MibPerS, Target::Ratio(4.0)),
            (Metric::CpuSPerGib, Target::None),
        ],
        ("pull-large", _) => vec![
            (Metric::MibPerS, Target::Ratio(1.3)),
            (Metric::CpuSPerGib, Target::None),
        ],
        ("push-small", _) => vec![
            (Metric::OpsPerS, Target::Ratio(20.0)),
            (Metric::CpuMsPerOp, Target::None),
        ],
        ("pull-small", _) => vec![
            (Metric::ReqPerS, Target::Ratio(15.0)),
            (Metric::P99Ms, Target::AtMost(5.0)),
            (Metric::CpuUsPerRequest, Target::None),
        ],
        ("tags-list", _) => vec![(Metric::OpsPerS, Target::Ratio(2.0))],
        ("catalog", "paged-n100") => vec![(Metric::OpsPerS, Target::Ratio(20.0))],
        ("catalog", _) => vec![(Metric::OpsPerS, Target::None)],
        ("catalog-scale", _) => vec![(Metric::P50Ms, Target::Ratio(20.0))],
        ("image-push", _) => vec![
            (Metric::MibPerS, Target::Ratio(3.0)),
            (Metric::CpuSPerGib, Target::None),
        ],
        // Through a cache, against a direct pull from its upstream (the baseline
        // `direct`, see `baseline_of`): cold at 90% of it, warm matching it (berth's own
        // pull, as the upstream is a berth) within the same 10%.
        ("pull-proxy", _) => vec![
            (Metric::MibPerS, Target::Ratio(0.9)),
            (Metric::CpuSPerGib, Target::None),
        ],
        ("push-chunked-2g", _) => vec![
            (Metric::RssMib, Target::AtMost(64.0)),
            (Metric::MibPerS, Target::None),
            (Metric::CpuSPerGib, Target::None),
        ],
        ("memory", "peak-image-push") => vec![(Metric::RssMib, Target::AtMost(40.0))],
        ("memory", _) => vec![(Metric::RssMib, Target::None)],
        _ => vec![(Metric::ReqPerS, Target::None)],
    }
}

/// Which benchmark's targets a report judges by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goals {
    /// The filesystem benchmark's (the default).
    Filesystem,
    /// The S3 mode's (issue #12): both registries over the same radosgw.
    S3,
}

impl Goals {
    /// The rows of the table for one scenario variant under these goals.
    pub fn rows_for(self, scenario: &str, variant: &str) -> Vec<(Metric, Target)> {
        if self == Goals::Filesystem {
            return rows_for(scenario, variant);
        }
        match scenario {
            "push-large" => vec![
                (Metric::MibPerS, Target::Ratio(2.0)),
                (Metric::CpuSPerGib, Target::None),
            ],
            "pull-large" => vec![
                (Metric::MibPerS, Target::Ratio(1.3)),
                (Metric::CpuSPerGib, Target::None),
            ],
            "push-small" => vec![
                (Metric::OpsPerS, Target::Ratio(5.0)),
                (Metric::CpuMsPerOp, Target::None),
            ],
            "pull-small" => vec![
                (Metric::ReqPerS, Target::Ratio(5.0)),
                (Metric::P99Ms, Target::None),
                (Metric::CpuUsPerRequest, Target::None),
            ],
            // Judged by the growth row: the page time must not grow with the registry.
            "catalog-scale" => vec![(Metric::P50Ms, Target::None)],
            // The same bound as in the filesystem run; other scenarios have no S3 goal.
            "push-chunked-2g" => rows_for(scenario, variant),
            _ => rows_for(scenario, variant)
                .into_iter()
                .map(|(m, t)| match t {
                    Target::Ratio(_) => (m, Target::None),
                    t => (m, t),
                })
                .collect(),
        }
    }
}

/// The baseline a scenario's ratio targets are set against: `direct` (a pull from the
/// upstream itself) for pull-proxy, distribution for the rest.
pub fn baseline_of(scenario: &str) -> &'static str {
    match scenario {
        "pull-proxy" => "direct",
        _ => "distribution",
    }
}

/// The catalog-scale growth row's goal: the page at the large registry may take at most
/// this many times the page at the small one.
pub const SCALE_GROWTH_MAX: f64 = 2.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_point_the_same_way() {
        assert_eq!(Metric::MibPerS.ratio(400.0, 100.0), Some(4.0));
        assert_eq!(Metric::P50Ms.ratio(1.0, 20.0), Some(20.0));
        assert_eq!(Metric::ReqPerS.ratio(1.0, 0.0), None);
    }

    #[test]
    fn proxy_pulls_are_judged_against_the_direct_pull() {
        assert_eq!(baseline_of("pull-proxy"), "direct");
        assert_eq!(baseline_of("pull-large"), "distribution");
        for variant in ["cold", "warm", "cold-32", "warm-32"] {
            assert_eq!(
                rows_for("pull-proxy", variant)[0],
                (Metric::MibPerS, Target::Ratio(0.9))
            );
        }
    }

    #[test]
    fn s3_goals_are_the_issues() {
        let first = |scenario: &str| Goals::S3.rows_for(scenario, "v")[0];
        assert_eq!(first("push-large"), (Metric::MibPerS, Target::Ratio(2.0)));
        assert_eq!(first("pull-large"), (Metric::MibPerS, Target::Ratio(1.3)));
        assert_eq!(first("push-small"), (Metric::OpsPerS, Target::Ratio(5.0)));
        assert_eq!(first("pull-small"), (Metric::ReqPerS, Target::Ratio(5.0)));
        assert_eq!(first("catalog-scale"), (Metric::P50Ms, Target::None));
        assert_eq!(
            first("push-chunked-2g"),
            (Metric::RssMib, Target::AtMost(64.0))
        );
        assert_eq!(first("tags-list"), (Metric::OpsPerS, Target::None));
        assert_eq!(
            Goals::Filesystem.rows_for("push-large", "v"),
            rows_for("push-large", "v")
        );
    }

    #[test]
    fn targets() {
        assert_eq!(Target::Ratio(4.0).met(None, Some(4.1)), Some(true));
        assert_eq!(Target::Ratio(4.0).met(None, Some(3.9)), Some(false));
        assert_eq!(Target::AtMost(40.0).met(Some(41.0), None), Some(false));
        assert_eq!(Target::None.met(Some(1.0), Some(1.0)), None);
        assert_eq!(Target::AtMost(5.0).describe(Metric::P99Ms), "≤ 5 ms");
    }
}
