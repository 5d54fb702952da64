//! `berth-bench wait`: polls `GET <url>/v2/` until the registry gives any HTTP answer,
//! so scripts can start a server and know when it listens.

use std::time::{Duration, Instant};

/// Waits until `GET <url>/v2/` answers with any status, or `timeout` passes.
pub async fn until_up(url: &str, timeout: Duration) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))?;
    let target = format!("{}/v2/", url.trim_end_matches('/'));
    let deadline = Instant::now() + timeout;
    loop {
        match client.get(&target).send().await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("{target} did not answer within {timeout:?}: {e}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
