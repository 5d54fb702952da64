//! Upload purging: removes upload sessions older than a given age
//! (`storage.maintenance.uploadpurging`).

use std::time::{Duration, SystemTime};

use berth_core::{Error, RepositoryName};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::StorageRegistry;
use crate::catalog::ANY_DATA_MARKERS;
use crate::layout::StoragePath;

/// What one purge pass found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    /// Sessions older than the age limit (deleted unless dry run).
    pub purged: usize,
    /// Sessions kept.
    pub kept: usize,
}

impl StorageRegistry {
    /// Deletes (or, with `dry_run`, only counts) upload sessions started more than
    /// `older_than` ago. A session without a readable start time counts by its data
    /// file's modification time.
    pub async fn purge_uploads(
        &self,
        older_than: Duration,
        dry_run: bool,
    ) -> Result<PurgeReport, Error> {
        let cutoff = SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut report = PurgeReport::default();
        for name in self.repository_names(ANY_DATA_MARKERS).await? {
            let Ok(repo) = RepositoryName::parse(&name) else {
                continue;
            };
            for id in self.children(StoragePath::UploadsDir(&repo)).await? {
                let started = self.upload_started(&repo, &id).await;
                if started.is_some_and(|t| t < cutoff) {
                    report.purged += 1;
                    if !dry_run {
                        self.discard_upload(&repo, &id).await?;
                    }
                } else {
                    report.kept += 1;
                }
            }
        }
        Ok(report)
    }

    async fn upload_started(&self, repo: &RepositoryName, id: &str) -> Option<SystemTime> {
        let at = StoragePath::UploadStartedAt(repo, id).path();
        if let Ok(b) = self.driver.get_content(&at).await {
            let text = String::from_utf8_lossy(&b);
            if let Ok(t) = OffsetDateTime::parse(text.trim(), &Rfc3339) {
                return Some(t.into());
            }
        }
        let data = StoragePath::UploadData(repo, id).path();
        self.driver.stat(&data).await.ok().and_then(|i| i.modified)
    }
}
