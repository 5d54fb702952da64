//! `berth-bench wait`: polls `GET <url>/v2/` until the registry gives any HTTP answer,
//! so scripts can start a server and know when it listens.

use std::time::{Duration, Instant};

use berth_client::Client;

/// Waits until `GET <url>/v2/` answers with any status, or `timeout` passes.
pub async fn until_up(url: &str, timeout: Duration) -> Result<(), String> {
    let client = Client::builder(url)
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = Instant::now() + timeout;
    loop {
        match client.ping().await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("no answer within {timeout:?}: {e}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
