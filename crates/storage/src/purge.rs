//! Upload purging: removes upload sessions older than a given age
//! (`storage.maintenance.uploadpurging`), by the `startedat` file that berth and
//! distribution both write when a session starts (and read by both purgers).

use std::time::{Duration, SystemTime};

use berth_core::{Error, RepositoryName, UploadId};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::StorageRegistry;
use crate::access::DriverResult;
use crate::catalog::ANY_DATA_MARKERS;
use crate::layout::StoragePath;

/// A session's `startedat` as distribution writes and parses it: RFC 3339 in UTC, to the
/// second, no line end (`2006-01-02T15:04:05Z`; Go's parser refuses anything after it).
pub(crate) fn startedat(at: SystemTime) -> Vec<u8> {
    let t = OffsetDateTime::from(at);
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
        .into_bytes()
}

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
        let stores = &self.stores;
        let cutoff = SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut report = PurgeReport::default();
        // Sessions counted against the upload bound before the walk and not found by it
        // ended elsewhere (another node finished them): their slots are freed after it.
        let mut gone = stores.uploads.counted();
        for repo in stores.catalog.walk(ANY_DATA_MARKERS).await? {
            let sessions = stores
                .access
                .children(StoragePath::UploadsDir(&repo))
                .await?;
            for id in sessions.iter().filter_map(|s| UploadId::parse(s).ok()) {
                gone.remove(&(repo.clone(), id.clone()));
                let started = self.upload_started(&repo, &id).await;
                if started.is_some_and(|t| t < cutoff) {
                    report.purged += 1;
                    if !dry_run {
                        stores.uploads.discard(&repo, &id).await?;
                    }
                } else {
                    report.kept += 1;
                }
            }
        }
        stores.uploads.uncount(gone);
        Ok(report)
    }

    async fn upload_started(&self, repo: &RepositoryName, id: &UploadId) -> Option<SystemTime> {
        let access = &self.stores.access;
        if let Ok(Some(b)) = access.get(StoragePath::UploadStartedAt(repo, id)).await {
            let text = String::from_utf8_lossy(&b);
            if let Ok(t) = OffsetDateTime::parse(text.trim(), &Rfc3339) {
                return Some(t.into());
            }
        }
        let data = StoragePath::UploadData(repo, id).path();
        let info = access.driver().stat(&data).await.or_absent().ok()??;
        info.modified
    }
}
