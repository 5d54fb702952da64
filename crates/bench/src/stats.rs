//! Counting while a scenario runs: request latencies, requests, operations, payload
//! bytes and errors, merged across workers and turned into a [`Line`].

use std::time::Duration;

use crate::line::Line;

/// Bytes in one MiB.
pub const MIB: f64 = 1024.0 * 1024.0;

/// What one worker (or one whole scenario) observed.
#[derive(Debug, Default)]
pub struct Recorder {
    latencies: Vec<Duration>,
    /// HTTP requests sent (answered or not).
    pub requests: u64,
    /// Scenario-level operations completed.
    pub ops: u64,
    /// Payload bytes moved.
    pub bytes: u64,
    /// Failed requests and wrong answers.
    pub errors: u64,
    first_error: Option<String>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one answered request and how long it took.
    pub fn request(&mut self, took: Duration) {
        self.requests += 1;
        self.latencies.push(took);
    }

    /// Records one request that got no answer at all.
    pub fn unanswered(&mut self) {
        self.requests += 1;
    }

    /// Records an error (a failed request or a wrong answer).
    pub fn error(&mut self, message: impl Into<String>) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(message.into());
        }
    }

    /// Unwraps `result`, recording its error and answering `None` if it failed.
    pub fn check<T>(&mut self, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(e);
                None
            }
        }
    }

    /// Adds everything `other` saw to this recorder.
    pub fn merge(&mut self, other: Recorder) {
        self.latencies.extend(other.latencies);
        self.requests += other.requests;
        self.ops += other.ops;
        self.bytes += other.bytes;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Adds only the errors of `other` (e.g. from an untimed set-up phase).
    pub fn merge_errors(&mut self, other: Recorder) {
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Fills `line` with what was recorded over `seconds` of wall-clock time.
    pub fn fill(mut self, line: &mut Line, seconds: f64) {
        self.latencies.sort_unstable();
        let per_s = |n: u64| (seconds > 0.0).then(|| n as f64 / seconds);
        line.seconds = Some(seconds);
        if self.bytes > 0 {
            line.bytes = Some(self.bytes);
            line.mib_per_s = per_s(self.bytes).map(|b| b / MIB);
        }
        line.requests = Some(self.requests);
        line.req_per_s = per_s(self.requests);
        if self.ops > 0 {
            line.ops = Some(self.ops);
            line.ops_per_s = per_s(self.ops);
        }
        line.p50_ms = percentile_ms(&self.latencies, 50.0);
        line.p99_ms = percentile_ms(&self.latencies, 99.0);
        line.errors += self.errors;
        if line.first_error.is_none() {
            line.first_error = self.first_error;
        }
    }
}

/// The `p`th percentile (nearest rank) of sorted latencies, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    Some(sorted[index].as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let sorted = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile_ms(&sorted, 50.0), Some(50.0));
        assert_eq!(percentile_ms(&sorted, 99.0), Some(99.0));
        assert_eq!(percentile_ms(&ms(&[7]), 99.0), Some(7.0));
        assert_eq!(percentile_ms(&[], 50.0), None);
    }

    #[test]
    fn fill_computes_rates_and_keeps_first_error() {
        let mut a = Recorder::new();
        a.request(Duration::from_millis(2));
        a.bytes = 2 * 1024 * 1024;
        a.error("first");
        let mut b = Recorder::new();
        b.request(Duration::from_millis(4));
        b.error("second");
        a.merge(b);
        let mut line = Line::new("x", "s", "v");
        a.fill(&mut line, 2.0);
        assert_eq!(line.requests, Some(2));
        assert_eq!(line.req_per_s, Some(1.0));
        assert_eq!(line.mib_per_s, Some(1.0));
        assert_eq!(line.errors, 2);
        assert_eq!(line.first_error.as_deref(), Some("first"));
        assert_eq!(line.ops, None);
    }
}
