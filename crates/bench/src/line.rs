//! One result line: what `berth-bench run` prints per scenario and variant, and what
//! `berth-bench report` reads back. Fields that do not apply to a scenario are `null`.

use serde::{Deserialize, Serialize};

/// One measured scenario variant, printed as one JSON line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Line {
    /// Which registry was measured (`berth`, `distribution`, ...).
    pub label: String,
    /// The scenario name, e.g. `push-large`.
    pub scenario: String,
    /// The variant within the scenario, e.g. `monolithic`.
    pub variant: String,
    /// Payload bytes moved in the timed part.
    pub bytes: Option<u64>,
    /// Wall-clock seconds of the timed part.
    pub seconds: Option<f64>,
    /// Payload throughput in MiB/s.
    pub mib_per_s: Option<f64>,
    /// HTTP requests sent in the timed part.
    pub requests: Option<u64>,
    /// HTTP requests per second.
    pub req_per_s: Option<f64>,
    /// Scenario-level operations (e.g. one blob + one manifest) in the timed part.
    pub ops: Option<u64>,
    /// Operations per second.
    pub ops_per_s: Option<f64>,
    /// Median latency of one HTTP request, in milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency of one HTTP request, in milliseconds.
    pub p99_ms: Option<f64>,
    /// Repositories in the registry when measured (catalog scenarios).
    pub repositories: Option<u64>,
    /// Resident set size of the server in MiB (memory scenario).
    pub rss_mib: Option<f64>,
    /// CPU seconds (user + system) the server used during the timed part (with `--pid`).
    pub server_cpu_s: Option<f64>,
    /// Failed requests and wrong answers (a wrong digest, a missing tag, ...).
    pub errors: u64,
    /// The first error seen, for diagnosis.
    pub first_error: Option<String>,
}

impl Line {
    /// A line for `scenario`/`variant` with every measurement empty.
    pub fn new(label: &str, scenario: &str, variant: &str) -> Self {
        Self {
            label: label.to_owned(),
            scenario: scenario.to_owned(),
            variant: variant.to_owned(),
            ..Self::default()
        }
    }

    /// Records the server's CPU time over a timed part from readings before and after.
    pub fn set_server_cpu(&mut self, before: Option<f64>, after: Option<f64>) {
        if let (Some(b), Some(a)) = (before, after) {
            self.server_cpu_s = Some((a - b).max(0.0));
        }
    }

    /// The line as one line of JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain numbers and strings cannot fail; fall back to a marker
        // line rather than panicking if it ever does.
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                "{{\"label\":{:?},\"scenario\":{:?},\"errors\":1,\"first_error\":{:?}}}",
                self.label,
                self.scenario,
                e.to_string()
            )
        })
    }
}
