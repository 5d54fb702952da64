//! Renders report rows as a Markdown table.

use super::{Labels, Row};

/// A number with as many decimals as its size deserves.
fn num(v: Option<f64>) -> String {
    match v {
        None => "—".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// The Markdown table of `rows`.
pub fn render(rows: &[Row], labels: &Labels) -> String {
    let (c, b) = (&labels.candidate, &labels.baseline);
    let mut out = format!(
        "| scenario | variant | metric | {c} | {b} | ratio | target | met | errors ({c}/{b}) |\n"
    );
    out.push_str("| --- | --- | --- | ---: | ---: | ---: | --- | --- | --- |\n");
    for row in rows {
        let ratio = row.ratio.map_or("—".into(), |r| format!("{r:.2}x"));
        let met = match row.met {
            // A measurement of wrong answers judges nothing.
            _ if row.errors.0 > 0 => "invalid (errors)",
            Some(true) => "met",
            Some(false) => "missed",
            None => "—",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {}/{} |\n",
            row.scenario,
            row.variant,
            row.metric,
            num(row.candidate),
            num(row.baseline),
            ratio,
            row.target,
            met,
            row.errors.0,
            row.errors.1,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_row() {
        let row = Row {
            scenario: "push-large".into(),
            variant: "monolithic".into(),
            metric: "MiB/s".into(),
            candidate: Some(812.345),
            baseline: Some(203.1),
            ratio: Some(4.0),
            target: "≥ 4x".into(),
            met: Some(true),
            errors: (0, 1),
            rounds: (3, 3),
        };
        let table = render(&[row], &Labels::default());
        assert!(table.contains(
            "| push-large | monolithic | MiB/s | 812 | 203 | 4.00x | ≥ 4x | met | 0/1 |"
        ));
    }
}
