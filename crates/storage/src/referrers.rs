//! Referrers: berth keeps, per repository, a link from each subject to the manifests that
//! name it, in a `_berth` directory distribution ignores. The index is derived from the
//! manifests themselves, so a listing checks each candidate against its manifest.

use berth_core::{Algorithm, Digest, Error, RepositoryName};

use crate::access::Access;
use crate::layout::StoragePath;

/// The subject-to-referrer links.
pub(crate) struct ReferrerStore {
    access: Access,
}

impl ReferrerStore {
    pub(crate) fn new(access: Access) -> Self {
        ReferrerStore { access }
    }

    /// Records that `referrer` names `subject`.
    pub(crate) async fn link(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<(), Error> {
        self.access
            .write_link(StoragePath::ReferrerLink(repo, subject, referrer), referrer)
            .await
    }

    /// Forgets that `referrer` names `subject`; `Ok(false)` when no link said so.
    pub(crate) async fn unlink(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<bool, Error> {
        self.access
            .remove(StoragePath::ReferrerDir(repo, subject, referrer))
            .await
    }

    /// Every manifest recorded as naming `subject`, in digest order (unchecked: the
    /// manifest may have gone since).
    pub(crate) async fn candidates(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> Result<Vec<Digest>, Error> {
        let mut found = Vec::new();
        for alg in self
            .access
            .children(StoragePath::ReferrersDir(repo, subject))
            .await?
        {
            let Ok(alg) = Algorithm::parse(&alg) else {
                continue;
            };
            let at = StoragePath::ReferrersOfAlgorithm(repo, subject, alg);
            for hex in self.access.children(at).await? {
                if let Ok(d) = Digest::parse(&format!("{alg}:{hex}")) {
                    found.push(d);
                }
            }
        }
        found.sort();
        Ok(found)
    }
}
