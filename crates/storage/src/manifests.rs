//! Manifests: the exact pushed bytes stored as a blob, a revision link in the repository,
//! validation that everything a manifest references is present, and deletion.

use berth_core::manifest::{Manifest, sniff_media_type};
use berth_core::{Digest, Error, PutManifest, Reference, RepositoryName, StoredManifest, Tag};
use bytes::Bytes;
use futures::future::try_join_all;

use crate::StorageRegistry;
use crate::layout::StoragePath;
use crate::links::internal;

impl StorageRegistry {
    /// The digest a reference resolves to, if the manifest exists in the repository.
    pub(crate) async fn resolve(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<Digest>, Error> {
        let digest = match reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(t) => match self.meta.tag(repo, t) {
                Some(d) => d,
                None => match self.read_link(StoragePath::TagCurrentLink(repo, t)).await? {
                    Some(d) => {
                        self.meta.set_tag(repo, t, &d);
                        d
                    }
                    None => return Ok(None),
                },
            },
        };
        if self.meta.has_revision(repo, &digest) {
            return Ok(Some(digest));
        }
        if !self
            .exists(StoragePath::RevisionLink(repo, &digest))
            .await?
        {
            return Ok(None);
        }
        self.meta.set_revision(repo, &digest);
        Ok(Some(digest))
    }

    /// The stored bytes of a manifest revision known to exist.
    pub(crate) async fn manifest_bytes(&self, digest: &Digest) -> Result<Option<Bytes>, Error> {
        match self
            .driver
            .get_content(&StoragePath::BlobData(digest).path())
            .await
        {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(internal(e)),
        }
    }

    pub(crate) async fn get_manifest_impl(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<StoredManifest, Error> {
        let unknown = || Error::ManifestUnknown(format!("{repo}:{reference}"));
        let digest = self.resolve(repo, reference).await?.ok_or_else(unknown)?;
        if let Some(m) = self.meta.manifest(&digest) {
            return Ok(m);
        }
        let body = self.manifest_bytes(&digest).await?.ok_or_else(unknown)?;
        let m = StoredManifest {
            media_type: sniff_media_type(&body),
            digest,
            body,
        };
        self.meta.set_manifest(&m);
        Ok(m)
    }

    /// Checks that every blob and child manifest the manifest names is in the repository.
    /// The subject is exempt: referrers may be pushed before what they refer to.
    async fn check_references(&self, repo: &RepositoryName, m: &Manifest) -> Result<(), Error> {
        let blobs = m
            .config
            .iter()
            .chain(&m.layers)
            .filter(|d| d.urls.is_empty());
        let blob_checks = blobs.map(|d| async move {
            match self.linked_blob_size(repo, &d.digest).await? {
                Some(_) => Ok(()),
                None => Err(Error::ManifestBlobUnknown(d.digest.to_string())),
            }
        });
        try_join_all(blob_checks).await?;
        let child_checks = m.manifests.iter().map(|d| async move {
            if self
                .exists(StoragePath::RevisionLink(repo, &d.digest))
                .await?
            {
                Ok(())
            } else {
                Err(Error::ManifestBlobUnknown(d.digest.to_string()))
            }
        });
        try_join_all(child_checks).await?;
        Ok(())
    }

    pub(crate) async fn put_manifest_impl(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
        extra_tags: &[Tag],
    ) -> Result<PutManifest, Error> {
        let manifest = Manifest::parse(content_type, &body)?;
        let digest = match reference {
            Reference::Digest(expected) => {
                let actual = Digest::of(expected.algorithm(), &body);
                if actual != *expected {
                    return Err(Error::DigestInvalid(format!(
                        "manifest body has digest {actual}, not {expected}"
                    )));
                }
                actual
            }
            Reference::Tag(_) => Digest::of(berth_core::Algorithm::Sha256, &body),
        };
        self.check_references(repo, &manifest).await?;

        // Created in place: nothing reads a manifest's bytes before a revision link to
        // it exists, and that link is written after them.
        self.driver
            .ensure_content(&StoragePath::BlobData(&digest).path(), body.clone())
            .await
            .map_err(internal)?;
        if let Some(c) = &self.cache {
            c.set_global(&digest, body.len() as u64);
        }
        self.write_link(StoragePath::RevisionLink(repo, &digest), &digest)
            .await?;
        self.meta.set_revision(repo, &digest);

        let mut tags: Vec<Tag> = Vec::new();
        if let Reference::Tag(t) = reference {
            tags.push(t.clone());
        }
        for t in extra_tags {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        // Tags and the referrer link only name the revision written above, so they go to
        // the disk together.
        let subject = manifest.subject.map(|s| s.digest);
        let referrer = async {
            match &subject {
                Some(s) => {
                    self.write_link(StoragePath::ReferrerLink(repo, s, &digest), &digest)
                        .await
                }
                None => Ok(()),
            }
        };
        let tagged = try_join_all(tags.iter().map(|t| self.tag_manifest(repo, t, &digest)));
        futures::try_join!(tagged, referrer)?;
        Ok(PutManifest {
            digest,
            subject,
            tags,
        })
    }

    pub(crate) async fn delete_manifest_impl(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<(), Error> {
        if !self.delete_enabled {
            return Err(Error::Unsupported(
                "manifest deletion is disabled (storage.delete.enabled)".into(),
            ));
        }
        let digest = match reference {
            Reference::Tag(t) => {
                return if self.untag(repo, t).await? {
                    Ok(())
                } else {
                    Err(Error::ManifestUnknown(format!("{repo}:{t}")))
                };
            }
            Reference::Digest(d) => d,
        };
        if !self.exists(StoragePath::RevisionLink(repo, digest)).await? {
            return Err(Error::ManifestUnknown(format!("{repo}@{digest}")));
        }
        let subject = match self.manifest_bytes(digest).await? {
            Some(body) => Manifest::parse(None, &body).ok().and_then(|m| m.subject),
            None => None,
        };
        self.meta.forget_revision(repo, digest);
        self.remove(StoragePath::RevisionDir(repo, digest)).await?;
        if let Some(c) = &self.cache {
            c.unlink(repo, digest);
        }
        for tag in self.tags_pointing_at(repo, digest).await? {
            self.untag(repo, &tag).await?;
        }
        if let Some(s) = subject {
            let link = StoragePath::ReferrerLink(repo, &s.digest, digest).path();
            let _ = self.driver.delete(link.trim_end_matches("/link")).await;
        }
        Ok(())
    }
}
