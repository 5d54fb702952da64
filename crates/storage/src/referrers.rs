//! Referrers: berth keeps, per repository, a link from each subject to the manifests that
//! name it, in a `_berth` directory distribution ignores. The index is derived from the
//! manifests themselves; a listing skips links whose manifest has gone.

use berth_core::manifest::Manifest;
use berth_core::{Descriptor, Digest, Error, RepositoryName};

use crate::StorageRegistry;
use crate::layout::StoragePath;

impl StorageRegistry {
    pub(crate) async fn referrers_impl(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, Error> {
        let dir = StoragePath::ReferrersDir(repo, subject).path();
        let mut found = Vec::new();
        for alg in self.list_names(&dir).await? {
            for hex in self.list_names(&format!("{dir}/{alg}")).await? {
                if let Ok(d) = Digest::parse(&format!("{alg}:{hex}")) {
                    found.push(d);
                }
            }
        }
        found.sort();
        let mut out = Vec::new();
        for digest in found {
            if !self
                .exists(StoragePath::RevisionLink(repo, &digest))
                .await?
            {
                continue;
            }
            let Some(body) = self.manifest_bytes(&digest).await? else {
                continue;
            };
            let Ok(m) = Manifest::parse(None, &body) else {
                continue;
            };
            if m.subject.as_ref().map(|s| &s.digest) != Some(subject) {
                continue;
            }
            let desc = m.referrer_descriptor(digest, body.len() as u64);
            if artifact_type.is_none_or(|want| desc.artifact_type.as_deref() == Some(want)) {
                out.push(desc);
            }
        }
        Ok(out)
    }
}
