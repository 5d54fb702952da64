//! `berth-bench report`: reads result lines from several rounds, takes the median of
//! each metric per label, and renders a Markdown table with ratios and targets.

mod rules;
mod table;

use std::collections::HashMap;

use crate::line::Line;
pub use rules::{Goals, Metric, SCALE_GROWTH_MAX, Target, baseline_of, rows_for};
pub use table::render;

/// Which labels are compared.
#[derive(Debug, Clone)]
pub struct Labels {
    /// The registry being judged (ratios above 1 mean it is better).
    pub candidate: String,
    /// The registry it is compared with.
    pub baseline: String,
}

impl Default for Labels {
    fn default() -> Self {
        Self {
            candidate: "berth".into(),
            baseline: "distribution".into(),
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// Variant name.
    pub variant: String,
    /// What is compared (column text).
    pub metric: String,
    /// The candidate's median.
    pub candidate: Option<f64>,
    /// The baseline's median.
    pub baseline: Option<f64>,
    /// Better-is-above-1 ratio of the medians.
    pub ratio: Option<f64>,
    /// The goal (column text).
    pub target: String,
    /// Whether the goal is met (`None`: no goal, or no data).
    pub met: Option<bool>,
    /// Errors summed over rounds: candidate, baseline.
    pub errors: (u64, u64),
    /// Rounds seen: candidate, baseline.
    pub rounds: (usize, usize),
}

/// Parses JSON lines; answers the lines and a warning for each one that is not a result.
pub fn parse(text: &str) -> (Vec<Line>, Vec<String>) {
    let mut lines = Vec::new();
    let mut warnings = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        match serde_json::from_str::<Line>(raw) {
            Ok(line) if !line.scenario.is_empty() => lines.push(line),
            Ok(_) => warnings.push(format!("line {}: no scenario", n + 1)),
            Err(e) => warnings.push(format!("line {}: {e}", n + 1)),
        }
    }
    (lines, warnings)
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// The rows for `lines`, in the order scenarios first appear, judged by the filesystem
/// benchmark's targets.
pub fn rows(lines: &[Line], labels: &Labels) -> Vec<Row> {
    rows_for_goals(lines, labels, Goals::Filesystem)
}

/// Like [`rows`], judged by `goals`.
pub fn rows_for_goals(lines: &[Line], labels: &Labels, goals: Goals) -> Vec<Row> {
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut groups: HashMap<(String, String), Vec<&Line>> = HashMap::new();
    for line in lines {
        let key = (line.scenario.clone(), line.variant.clone());
        if !groups.contains_key(&key) {
            keys.push(key.clone());
        }
        groups.entry(key).or_default().push(line);
    }
    let mut out = Vec::new();
    for key in &keys {
        let group = &groups[key];
        let of = |label: &str| -> Vec<&Line> {
            group.iter().copied().filter(|l| l.label == label).collect()
        };
        let (cand, base) = (of(&labels.candidate), of(&labels.baseline));
        let errors = (
            cand.iter().map(|l| l.errors).sum(),
            base.iter().map(|l| l.errors).sum(),
        );
        for (metric, target) in goals.rows_for(&key.0, &key.1) {
            // Ratio targets are set against one baseline (distribution; a direct pull for
            // pull-proxy); against another (berth without auth, without fsync) only a
            // bound on the candidate's own value applies.
            let target = match target {
                Target::Ratio(_) if labels.baseline != baseline_of(&key.0) => Target::None,
                t => t,
            };
            let med = |ls: &[&Line]| median(ls.iter().filter_map(|l| metric.get(l)).collect());
            let (c, b) = (med(&cand), med(&base));
            // An informative row without data (CPU times of a run without `--pid`)
            // says nothing; a row with a goal stays, empty, to show what is missing.
            if target == Target::None && c.is_none() && b.is_none() {
                continue;
            }
            let ratio = c.zip(b).and_then(|(c, b)| metric.ratio(c, b));
            out.push(Row {
                scenario: key.0.clone(),
                variant: key.1.clone(),
                metric: metric.name().into(),
                candidate: c,
                baseline: b,
                ratio,
                target: target.describe(metric),
                met: target.met(c, ratio),
                errors,
                rounds: (cand.len(), base.len()),
            });
        }
    }
    if let Some(row) = scale_growth(lines, labels) {
        out.push(row);
    }
    out
}

/// The catalog-scale growth row: page time at the largest registry over page time at
/// the smallest, per label (medians of p50).
fn scale_growth(lines: &[Line], labels: &Labels) -> Option<Row> {
    let growth = |label: &str| -> Option<(f64, u64, u64)> {
        let ours: Vec<&Line> = lines
            .iter()
            .filter(|l| l.scenario == "catalog-scale" && l.label == label)
            .collect();
        let sizes: Vec<u64> = ours.iter().filter_map(|l| l.repositories).collect();
        let (small, large) = (*sizes.iter().min()?, *sizes.iter().max()?);
        let at = |n: u64| {
            median(
                ours.iter()
                    .filter(|l| l.repositories == Some(n))
                    .filter_map(|l| l.p50_ms)
                    .collect(),
            )
        };
        (large > small).then_some(())?;
        Some((at(large)? / at(small)?, small, large))
    };
    // The page lines only (they carry the registry's size; a first page after a start
    // is reported in its own row).
    let errors = |label: &str| -> u64 {
        lines
            .iter()
            .filter(|l| l.scenario == "catalog-scale" && l.label == label)
            .filter(|l| l.repositories.is_some())
            .map(|l| l.errors)
            .sum()
    };
    let c = growth(&labels.candidate);
    let b = growth(&labels.baseline);
    let (_, small, large) = c.or(b)?;
    let (cg, bg) = (c.map(|g| g.0), b.map(|g| g.0));
    Some(Row {
        scenario: "catalog-scale".into(),
        variant: format!("growth {small}→{large}"),
        metric: "p50 ratio".into(),
        candidate: cg,
        baseline: bg,
        ratio: cg.zip(bg).and_then(|(c, b)| (c > 0.0).then(|| b / c)),
        target: format!("≤ {SCALE_GROWTH_MAX}x"),
        met: cg.map(|g| g <= SCALE_GROWTH_MAX),
        errors: (errors(&labels.candidate), errors(&labels.baseline)),
        rounds: (0, 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(label: &str, scenario: &str, variant: &str, mib: f64) -> Line {
        Line {
            mib_per_s: Some(mib),
            ..Line::new(label, scenario, variant)
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn rows_take_medians_and_ratios() {
        let lines = vec![
            line("berth", "push-large", "monolithic", 400.0),
            line("berth", "push-large", "monolithic", 500.0),
            line("berth", "push-large", "monolithic", 900.0),
            line("distribution", "push-large", "monolithic", 100.0),
        ];
        let rows = rows(&lines, &Labels::default());
        assert_eq!(rows.len(), 1, "no CPU row without CPU times");
        assert_eq!(rows[0].candidate, Some(500.0));
        assert_eq!(rows[0].ratio, Some(5.0));
        assert_eq!(rows[0].met, Some(true));
        assert_eq!(rows[0].rounds, (3, 1));
    }

    #[test]
    fn server_cpu_rows_are_per_unit_and_lower_is_better() {
        let small = |label: &str, cpu: f64| Line {
            ops: Some(2000),
            ops_per_s: Some(1000.0),
            server_cpu_s: Some(cpu),
            ..Line::new(label, "push-small", "blob+manifest")
        };
        let lines = vec![small("berth", 1.0), small("distribution", 16.0)];
        let rows = rows(&lines, &Labels::default());
        let cpu = rows
            .iter()
            .find(|r| r.metric == "server CPU ms/op")
            .unwrap();
        assert_eq!(cpu.candidate, Some(0.5));
        assert_eq!(cpu.baseline, Some(8.0));
        assert_eq!(cpu.ratio, Some(16.0));
        assert_eq!(cpu.met, None);
    }

    #[test]
    fn ratio_targets_apply_only_against_distribution() {
        let pull = |label: &str, rps: f64, p99: f64| Line {
            req_per_s: Some(rps),
            p99_ms: Some(p99),
            ..Line::new(label, "pull-small", "manifest+head")
        };
        let lines = vec![
            pull("berth", 1000.0, 4.0),
            pull("berth-noauth", 1100.0, 3.0),
        ];
        let labels = Labels {
            candidate: "berth".into(),
            baseline: "berth-noauth".into(),
        };
        let rows = rows(&lines, &labels);
        let rps = rows.iter().find(|r| r.metric == "req/s").unwrap();
        assert_eq!((rps.target.as_str(), rps.met), ("—", None));
        let p99 = rows.iter().find(|r| r.metric == "p99 ms").unwrap();
        assert_eq!(p99.met, Some(true), "the absolute bound still applies");
    }

    #[test]
    fn proxy_pulls_meet_their_target_only_against_the_direct_pull() {
        let lines = vec![
            line("berth", "pull-proxy", "cold", 95.0),
            line("direct", "pull-proxy", "cold", 100.0),
            line("distribution", "pull-proxy", "cold", 50.0),
            line("berth", "pull-proxy", "warm-32", 80.0),
            line("direct", "pull-proxy", "warm-32", 100.0),
        ];
        let direct = Labels {
            candidate: "berth".into(),
            baseline: "direct".into(),
        };
        let rows_direct = rows(&lines, &direct);
        let cold = &rows_direct[0];
        assert_eq!((cold.variant.as_str(), cold.ratio), ("cold", Some(0.95)));
        assert_eq!((cold.target.as_str(), cold.met), ("≥ 0.9x", Some(true)));
        assert_eq!(rows_direct[1].met, Some(false), "warm-32 at 80% of direct");
        // Against distribution's cache the ratio informs; no goal is set there.
        let against = rows(&lines, &Labels::default());
        assert_eq!(against[0].ratio, Some(1.9));
        assert_eq!((against[0].target.as_str(), against[0].met), ("—", None));
    }

    #[test]
    fn growth_row() {
        let scale = |label: &str, n: u64, p50: f64| Line {
            repositories: Some(n),
            p50_ms: Some(p50),
            ..Line::new(label, "catalog-scale", &format!("page-at-{n}"))
        };
        let lines = vec![
            scale("berth", 2000, 1.0),
            scale("berth", 20000, 1.5),
            scale("distribution", 2000, 10.0),
            scale("distribution", 20000, 100.0),
        ];
        let rows = rows(&lines, &Labels::default());
        let growth = rows.last().unwrap();
        assert_eq!(growth.candidate, Some(1.5));
        assert_eq!(growth.baseline, Some(10.0));
        assert_eq!(growth.met, Some(true));
    }

    #[test]
    fn parse_skips_junk() {
        let (lines, warnings) = parse("{\"label\":\"b\",\"scenario\":\"s\"}\n\nnot json\n");
        assert_eq!(lines.len(), 1);
        assert_eq!(warnings.len(), 1);
    }
}
