//! Referrers: berth keeps, per repository, a link from each subject to the manifests that
//! name it, in a `_berth` directory distribution ignores. The index is derived from the
//! manifests themselves; a listing skips links whose manifest has gone. Manifests that
//! clients listed under the referrers tag schema (`<alg>-<hex>`, what they push to a
//! registry without this API, such as distribution 2.8) are included too, as the spec
//! requires of a registry that enables the API on existing data.

use berth_core::manifest::Manifest;
use berth_core::{Descriptor, Digest, Error, Reference, RepositoryName, Tag};

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
            out.push(m.referrer_descriptor(digest, body.len() as u64));
        }
        for desc in self.tag_schema_referrers(repo, subject).await? {
            if !out.iter().any(|d| d.digest == desc.digest) {
                out.push(desc);
            }
        }
        out.retain(|d| artifact_type.is_none_or(|want| d.artifact_type.as_deref() == Some(want)));
        Ok(out)
    }

    /// The descriptors of the index tagged `<alg>-<hex>` (the referrers tag schema, hex
    /// cut to 64 characters), if there is one.
    async fn tag_schema_referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> Result<Vec<Descriptor>, Error> {
        let hex = subject.hex();
        let Ok(tag) = Tag::parse(&format!(
            "{}-{}",
            subject.algorithm(),
            &hex[..hex.len().min(64)]
        )) else {
            return Ok(Vec::new());
        };
        let stored = match self.get_manifest_impl(repo, &Reference::Tag(tag)).await {
            Ok(m) => m,
            Err(Error::ManifestUnknown(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(match Manifest::parse(None, &stored.body) {
            Ok(index) if index.kind.is_index() => index.manifests,
            _ => Vec::new(),
        })
    }
}
