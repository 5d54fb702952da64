//! The server's resident memory: read `VmRSS` from `/proc/<pid>/status`, once or
//! every few milliseconds in the background while a scenario runs, keeping the peak.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// The current `VmRSS` of `pid` in KiB.
pub fn read_rss_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    parse_vmrss(&status).ok_or_else(|| format!("{path}: no VmRSS line"))
}

/// The `VmRSS:   1234 kB` value of a `/proc/<pid>/status` text, in KiB.
fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What a background sampler saw.
#[derive(Debug, Clone, Copy)]
pub struct Peak {
    /// The highest `VmRSS` seen, in KiB.
    pub kib: u64,
    /// How many samples were taken.
    pub samples: u64,
}

/// Samples `VmRSS` of one process at a fixed interval until stopped.
pub struct Sampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<Peak, String>>,
}

impl Sampler {
    /// Starts sampling `pid` every `every`.
    pub fn start(pid: u32, every: Duration) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut peak = Peak { kib: 0, samples: 0 };
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {
                        peak.kib = peak.kib.max(read_rss_kib(pid)?);
                        peak.samples += 1;
                    }
                }
            }
            // One last look, so a short scenario still has its end state.
            peak.kib = peak.kib.max(read_rss_kib(pid)?);
            peak.samples += 1;
            Ok(peak)
        });
        Self { stop, task }
    }

    /// Stops sampling and answers the peak.
    pub async fn stop(self) -> Result<Peak, String> {
        let _ = self.stop.send(());
        self.task
            .await
            .map_err(|e| format!("RSS sampler failed: {e}"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let text = "Name:\tberth\nVmPeak:\t  9000 kB\nVmRSS:\t    4321 kB\nThreads:\t3\n";
        assert_eq!(parse_vmrss(text), Some(4321));
        assert_eq!(parse_vmrss("Name: x\n"), None);
    }

    #[tokio::test]
    async fn samples_this_process() {
        let me = std::process::id();
        assert!(read_rss_kib(me).unwrap() > 0);
        let sampler = Sampler::start(me, Duration::from_millis(5));
        tokio::time::sleep(Duration::from_millis(30)).await;
        let peak = sampler.stop().await.unwrap();
        assert!(peak.kib > 0 && peak.samples >= 2, "{peak:?}");
    }
}
