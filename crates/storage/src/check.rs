//! The storage check behind `berth check-storage`: a walk of every repository that finds
//! what no crash of berth should leave but older data, another registry or a full disk
//! might (empty or unreadable link files, links to blobs that are gone, tags that name no
//! readable manifest, manifest bytes that do not hash to their digest) and, when asked,
//! removes the damaged entries. It never removes a blob's data: blobs are shared by every
//! repository, and only garbage collection may decide one is unused.
//!
//! The walk reads storage directly, past every cache, and is meant for a root no registry
//! is writing to: a write in progress can look like damage (a link being created is
//! briefly empty), and a repair under a running registry would leave its caches behind.

use std::collections::HashSet;
use std::fmt;

use berth_core::{Digest, Digester, Error, RepositoryName, Tag};
use futures::TryStreamExt;

use crate::StorageRegistry;
use crate::access::DriverResult;
use crate::layout::StoragePath;

/// What makes a directory under `repositories/` worth checking: any registry data.
const MARKERS: &[&str] = &["_layers", "_manifests", "_uploads", "_berth"];

/// How much of a corrupt link's content a finding quotes.
const QUOTED_BYTES: usize = 48;

/// A kind of damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FindingKind {
    /// A `link` file with no content (created, never written).
    EmptyLink,
    /// A `link` file whose content is not exactly a digest.
    CorruptLink,
    /// A `link` file naming another digest than the one its directory is named after.
    MismatchedLink,
    /// A layer or revision link whose blob data is missing.
    DanglingLink,
    /// A tag directory without a `current/link` (tags/list names it, in berth and in
    /// distribution, and a GET of it answers 404).
    TagWithoutCurrent,
    /// A tag whose `current/link` names a revision the repository cannot serve.
    BrokenTag,
    /// A manifest revision whose stored bytes are empty or do not hash to its digest.
    DamagedManifest,
}

impl FindingKind {
    /// The name printed in a finding line.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::EmptyLink => "empty-link",
            FindingKind::CorruptLink => "corrupt-link",
            FindingKind::MismatchedLink => "mismatched-link",
            FindingKind::DanglingLink => "dangling-link",
            FindingKind::TagWithoutCurrent => "tag-without-current",
            FindingKind::BrokenTag => "broken-tag",
            FindingKind::DamagedManifest => "damaged-manifest",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One damaged entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What is wrong.
    pub kind: FindingKind,
    /// The driver path of the damaged file (or directory, for a tag without `current`).
    pub path: String,
    /// What was found there, in words.
    pub detail: String,
    /// The driver path a repair removes (the link's directory, or the whole tag).
    pub remove: String,
    /// Whether this run removed it.
    pub repaired: bool,
}

/// What one check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Repositories walked.
    pub repositories: usize,
    /// Link files read.
    pub links: usize,
    /// Tags seen.
    pub tags: usize,
    /// Manifest revisions whose bytes were hashed.
    pub revisions: usize,
    /// Everything damaged, in walk order.
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// What a link file holds.
enum LinkState {
    /// No file (an empty directory around it is harmless: nothing reads it).
    Absent,
    /// A digest.
    Good(Digest),
    /// Damage of this kind, described.
    Bad(FindingKind, String),
}

impl StorageRegistry {
    /// Walks every repository and reports the damage [`FindingKind`] lists; with `repair`,
    /// removes each damaged entry as its finding says (a link's directory, or a whole tag)
    /// and marks it repaired. Revisions are checked before tags, so a tag naming a
    /// revision found damaged is reported (and removed) in the same run.
    pub async fn check_storage(&self, repair: bool) -> Result<CheckReport, Error> {
        let mut report = CheckReport::default();
        let mut repos = self.stores.catalog.walk(MARKERS).await?;
        repos.sort_by(|a, b| crate::catalog::catalog_order(a.as_str(), b.as_str()));
        for repo in &repos {
            report.repositories += 1;
            self.check_layers(repo, repair, &mut report).await?;
            let good = self.check_revisions(repo, repair, &mut report).await?;
            self.check_tags(repo, &good, repair, &mut report).await?;
            self.check_referrers(repo, repair, &mut report).await?;
        }
        Ok(report)
    }

    /// Reads a link exactly as distribution does: its whole content must be a digest
    /// (distribution does not trim), and, where its directory names one, that digest.
    async fn inspect_link(
        &self,
        at: StoragePath<'_>,
        expected: Option<&Digest>,
        report: &mut CheckReport,
    ) -> Result<LinkState, Error> {
        let Some(bytes) = self.stores.access.get(at).await? else {
            return Ok(LinkState::Absent);
        };
        report.links += 1;
        if bytes.is_empty() {
            return Ok(LinkState::Bad(
                FindingKind::EmptyLink,
                "the file is empty".to_owned(),
            ));
        }
        let parsed = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| Digest::parse(text).ok());
        let Some(digest) = parsed else {
            let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(QUOTED_BYTES)]);
            return Ok(LinkState::Bad(
                FindingKind::CorruptLink,
                format!("holds {shown:?} ({} bytes), not a digest", bytes.len()),
            ));
        };
        match expected {
            Some(want) if *want != digest => Ok(LinkState::Bad(
                FindingKind::MismatchedLink,
                format!("names {digest}, its directory {want}"),
            )),
            _ => Ok(LinkState::Good(digest)),
        }
    }

    /// Records a finding; the caller has already repaired it when `repaired`.
    fn record(
        report: &mut CheckReport,
        kind: FindingKind,
        path: StoragePath<'_>,
        detail: String,
        remove: StoragePath<'_>,
        repaired: bool,
    ) {
        report.findings.push(Finding {
            kind,
            path: path.path(),
            detail,
            remove: remove.path(),
            repaired,
        });
    }

    /// Layer links: each must hold its digest and the blob must exist.
    async fn check_layers(
        &self,
        repo: &RepositoryName,
        repair: bool,
        report: &mut CheckReport,
    ) -> Result<(), Error> {
        let access = &self.stores.access;
        for digest in access
            .digest_dirs(|alg| StoragePath::LayersOfAlgorithm(repo, alg))
            .await?
        {
            let link = StoragePath::LayerLink(repo, &digest);
            let (kind, detail) = match self.inspect_link(link, Some(&digest), report).await? {
                LinkState::Absent => continue,
                LinkState::Bad(kind, detail) => (kind, detail),
                LinkState::Good(_) => {
                    if access.exists(StoragePath::BlobData(&digest)).await? {
                        continue;
                    }
                    (
                        FindingKind::DanglingLink,
                        format!("blob {} is missing", StoragePath::BlobData(&digest).path()),
                    )
                }
            };
            if repair {
                // Through the blob store, so its cache forgets the link with storage.
                self.stores.blobs.unlink(repo, &digest).await?;
            }
            let dir = StoragePath::LayerDir(repo, &digest);
            Self::record(report, kind, link, detail, dir, repair);
        }
        Ok(())
    }

    /// Revision links and the bytes they name; answers the revisions a tag may name.
    async fn check_revisions(
        &self,
        repo: &RepositoryName,
        repair: bool,
        report: &mut CheckReport,
    ) -> Result<HashSet<Digest>, Error> {
        let access = &self.stores.access;
        let mut good = HashSet::new();
        for digest in access
            .digest_dirs(|alg| StoragePath::RevisionsOfAlgorithm(repo, alg))
            .await?
        {
            let link = StoragePath::RevisionLink(repo, &digest);
            let (kind, detail) = match self.inspect_link(link, Some(&digest), report).await? {
                LinkState::Absent => continue,
                LinkState::Bad(kind, detail) => (kind, detail),
                LinkState::Good(_) => match self.stored_digest(&digest).await? {
                    None => (
                        FindingKind::DanglingLink,
                        format!(
                            "manifest bytes {} are missing",
                            StoragePath::BlobData(&digest).path()
                        ),
                    ),
                    Some((0, _)) => (
                        FindingKind::DamagedManifest,
                        "the stored manifest bytes are empty (they stay in blobs/; push \
                             the manifest again)"
                            .to_owned(),
                    ),
                    Some((size, actual)) if actual != digest => (
                        FindingKind::DamagedManifest,
                        format!(
                            "the stored {size} bytes hash to {actual} (they stay in \
                                 blobs/; push the manifest again)"
                        ),
                    ),
                    Some(_) => {
                        report.revisions += 1;
                        good.insert(digest);
                        continue;
                    }
                },
            };
            if repair {
                // Under the revision's lock and through the stores, as a delete does.
                let stores = &self.stores;
                let _revision = stores.manifests.lock(repo, &digest).await?;
                stores.manifests.remove_locked(repo, &digest).await?;
                stores.blobs.forget(repo, &digest).await?;
            }
            let dir = StoragePath::RevisionDir(repo, &digest);
            Self::record(report, kind, link, detail, dir, repair);
        }
        Ok(good)
    }

    /// The size and digest of a blob's stored bytes, hashed as they stream past;
    /// `None` when the blob is missing.
    async fn stored_digest(&self, digest: &Digest) -> Result<Option<(u64, Digest)>, Error> {
        let path = StoragePath::BlobData(digest).path();
        let opened = self.stores.access.driver().reader(&path, 0, None).await;
        let Some(mut stream) = opened.or_absent()? else {
            return Ok(None);
        };
        let mut hasher = Digester::new(digest.algorithm());
        let mut size = 0u64;
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| Error::internal_from(format!("reading {path}"), e))?
        {
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok(Some((size, hasher.finish())))
    }

    /// Tags: `current/link` must name a revision in `good`; history entries must hold
    /// their digest (they may name revisions since deleted: that is history).
    async fn check_tags(
        &self,
        repo: &RepositoryName,
        good: &HashSet<Digest>,
        repair: bool,
        report: &mut CheckReport,
    ) -> Result<(), Error> {
        let stores = &self.stores;
        for name in stores.access.children(StoragePath::TagsDir(repo)).await? {
            let Ok(tag) = Tag::parse(&name) else {
                continue;
            };
            report.tags += 1;
            let current = StoragePath::TagCurrentLink(repo, &tag);
            let dir = StoragePath::TagDir(repo, &tag);
            let broken = match self.inspect_link(current, None, report).await? {
                LinkState::Absent => Some((
                    FindingKind::TagWithoutCurrent,
                    dir,
                    "the tag has no current/link: tags/list names it, no registry serves it"
                        .to_owned(),
                )),
                LinkState::Bad(kind, detail) => Some((kind, current, detail)),
                LinkState::Good(d) if !good.contains(&d) => Some((
                    FindingKind::BrokenTag,
                    current,
                    format!("names {d}, which the repository cannot serve"),
                )),
                LinkState::Good(_) => None,
            };
            if let Some((kind, at, detail)) = broken {
                if repair {
                    // Through the tag store, so its cache and listing follow.
                    stores.tags.remove(repo, &tag, None).await?;
                }
                Self::record(report, kind, at, detail, dir, repair);
                continue;
            }
            for digest in stores
                .access
                .digest_dirs(|alg| StoragePath::TagIndexOfAlgorithm(repo, &tag, alg))
                .await?
            {
                let link = StoragePath::TagIndexLink(repo, &tag, &digest);
                if let LinkState::Bad(kind, detail) =
                    self.inspect_link(link, Some(&digest), report).await?
                {
                    let entry = StoragePath::TagIndexDir(repo, &tag, &digest);
                    if repair {
                        stores.access.remove(entry).await?;
                    }
                    Self::record(report, kind, link, detail, entry, repair);
                }
            }
        }
        Ok(())
    }

    /// berth's referrer links: each must hold the referrer's digest. A link whose
    /// manifest has gone is not damage: listings check every candidate.
    async fn check_referrers(
        &self,
        repo: &RepositoryName,
        repair: bool,
        report: &mut CheckReport,
    ) -> Result<(), Error> {
        let stores = &self.stores;
        for subject in stores
            .access
            .digest_dirs(|alg| StoragePath::ReferrerSubjectsOfAlgorithm(repo, alg))
            .await?
        {
            for referrer in stores
                .access
                .digest_dirs(|alg| StoragePath::ReferrersOfAlgorithm(repo, &subject, alg))
                .await?
            {
                let link = StoragePath::ReferrerLink(repo, &subject, &referrer);
                if let LinkState::Bad(kind, detail) =
                    self.inspect_link(link, Some(&referrer), report).await?
                {
                    if repair {
                        stores.referrers.unlink(repo, &subject, &referrer).await?;
                    }
                    let dir = StoragePath::ReferrerDir(repo, &subject, &referrer);
                    Self::record(report, kind, link, detail, dir, repair);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use berth_core::{Algorithm, Reference, Registry};
    use berth_driver::StorageDriver;
    use bytes::Bytes;

    use super::*;
    use crate::tests::{drivers, image, opts, push_blob, put, repo, tag};

    fn sha(data: &[u8]) -> Digest {
        Digest::of(Algorithm::Sha256, data)
    }

    /// Writes a file directly, as older data or a crash would have left it.
    async fn plant(driver: &Arc<dyn StorageDriver>, at: StoragePath<'_>, content: &[u8]) {
        driver
            .put_content(&at.path(), Bytes::copy_from_slice(content))
            .await
            .unwrap();
    }

    /// The (kind, path, removed path) of each finding, sorted.
    fn summary(report: &CheckReport) -> Vec<(FindingKind, String, String)> {
        let mut out: Vec<_> = report
            .findings
            .iter()
            .map(|f| (f.kind, f.path.clone(), f.remove.clone()))
            .collect();
        out.sort_by(|a, b| (a.1.as_str(), a.2.as_str()).cmp(&(b.1.as_str(), b.2.as_str())));
        out
    }

    #[tokio::test]
    async fn healthy_storage_is_clean() {
        for (driver, _dir) in drivers().await {
            let r = StorageRegistry::new(driver, opts());
            let name = repo("team/app");
            let cfg = push_blob(&r, &name, b"{}").await;
            let layer = push_blob(&r, &name, b"layer").await;
            let m = put(&r, &name, image(&cfg, &layer, None), &[tag("v1")]).await;
            put(&r, &name, image(&cfg, &layer, Some(&m)), &[]).await;
            // A tag moved: its history keeps an entry for a revision since deleted.
            let old = put(&r, &name, image(&layer, &cfg, None), &[tag("v2")]).await;
            put(&r, &name, image(&cfg, &layer, None), &[tag("v2")]).await;
            r.repository(name.clone())
                .delete_manifest(&Reference::Digest(old))
                .await
                .unwrap();
            let report = r.check_storage(false).await.unwrap();
            assert!(report.is_clean(), "{report:#?}");
            assert_eq!(
                (report.repositories, report.tags, report.revisions),
                (1, 2, 2)
            );
            // 2 layers, 2 revisions, 2 current links, 3 index entries, 1 referrer.
            assert_eq!(report.links, 10, "{report:#?}");
        }
    }

    #[tokio::test]
    async fn every_kind_of_damage_is_reported_then_repaired() {
        for (driver, _dir) in drivers().await {
            let r = StorageRegistry::new(driver.clone(), opts());
            let name = repo("team/app");
            let cfg = push_blob(&r, &name, b"{}").await;
            let layer = push_blob(&r, &name, b"layer").await;
            let good = put(&r, &name, image(&cfg, &layer, None), &[tag("v1")]).await;
            let sig = put(&r, &name, image(&cfg, &layer, Some(&good)), &[]).await;
            let garbled = put(&r, &name, image(&layer, &cfg, None), &[tag("garbled")]).await;
            let emptied = put(&r, &name, image(&cfg, &cfg, None), &[]).await;
            let referrer_of = put(&r, &name, image(&cfg, &layer, Some(&cfg)), &[]).await;

            // Damage, planted directly on the driver.
            let (e, c, m, g) = (sha(b"e"), sha(b"c"), sha(b"m"), sha(b"gone"));
            let dmg = repo("dmg");
            let empty_layer = StoragePath::LayerLink(&dmg, &e);
            plant(&driver, empty_layer, b"").await;
            let corrupt_layer = StoragePath::LayerLink(&dmg, &c);
            plant(&driver, corrupt_layer, b"not a digest").await;
            let mismatched_layer = StoragePath::LayerLink(&dmg, &m);
            plant(&driver, mismatched_layer, cfg.to_string().as_bytes()).await;
            let dangling_layer = StoragePath::LayerLink(&dmg, &g);
            plant(&driver, dangling_layer, g.to_string().as_bytes()).await;
            let dangling_revision = StoragePath::RevisionLink(&name, &g);
            plant(&driver, dangling_revision, g.to_string().as_bytes()).await;
            // A link distribution cannot read (it does not trim).
            let newline = format!("{good}\n");
            let untrimmed = StoragePath::TagIndexLink(&name, &tag("v1"), &good);
            plant(&driver, untrimmed, newline.as_bytes()).await;
            plant(&driver, StoragePath::BlobData(&garbled), b"{}").await;
            plant(&driver, StoragePath::BlobData(&emptied), b"").await;
            let (ghost, blank, nowhere) = (tag("ghost"), tag("blank"), tag("nowhere"));
            let ghost_index = StoragePath::TagIndexLink(&name, &ghost, &good);
            plant(&driver, ghost_index, good.to_string().as_bytes()).await;
            let blank_current = StoragePath::TagCurrentLink(&name, &blank);
            plant(&driver, blank_current, b"").await;
            let nowhere_current = StoragePath::TagCurrentLink(&name, &nowhere);
            plant(&driver, nowhere_current, layer.to_string().as_bytes()).await;
            let referrer = StoragePath::ReferrerLink(&name, &cfg, &referrer_of);
            plant(&driver, referrer, b"").await;

            let dir = |p: StoragePath<'_>| p.path();
            let mut expected = vec![
                (
                    FindingKind::EmptyLink,
                    empty_layer.path(),
                    dir(StoragePath::LayerDir(&dmg, &e)),
                ),
                (
                    FindingKind::CorruptLink,
                    corrupt_layer.path(),
                    dir(StoragePath::LayerDir(&dmg, &c)),
                ),
                (
                    FindingKind::MismatchedLink,
                    mismatched_layer.path(),
                    dir(StoragePath::LayerDir(&dmg, &m)),
                ),
                (
                    FindingKind::DanglingLink,
                    dangling_layer.path(),
                    dir(StoragePath::LayerDir(&dmg, &g)),
                ),
                (
                    FindingKind::DanglingLink,
                    dangling_revision.path(),
                    dir(StoragePath::RevisionDir(&name, &g)),
                ),
                (
                    FindingKind::CorruptLink,
                    untrimmed.path(),
                    dir(StoragePath::TagIndexDir(&name, &tag("v1"), &good)),
                ),
                (
                    FindingKind::DamagedManifest,
                    StoragePath::RevisionLink(&name, &garbled).path(),
                    dir(StoragePath::RevisionDir(&name, &garbled)),
                ),
                (
                    FindingKind::DamagedManifest,
                    StoragePath::RevisionLink(&name, &emptied).path(),
                    dir(StoragePath::RevisionDir(&name, &emptied)),
                ),
                (
                    FindingKind::BrokenTag,
                    StoragePath::TagCurrentLink(&name, &tag("garbled")).path(),
                    dir(StoragePath::TagDir(&name, &tag("garbled"))),
                ),
                (
                    FindingKind::TagWithoutCurrent,
                    dir(StoragePath::TagDir(&name, &ghost)),
                    dir(StoragePath::TagDir(&name, &ghost)),
                ),
                (
                    FindingKind::EmptyLink,
                    blank_current.path(),
                    dir(StoragePath::TagDir(&name, &blank)),
                ),
                (
                    FindingKind::BrokenTag,
                    nowhere_current.path(),
                    dir(StoragePath::TagDir(&name, &nowhere)),
                ),
                (
                    FindingKind::EmptyLink,
                    referrer.path(),
                    dir(StoragePath::ReferrerDir(&name, &cfg, &referrer_of)),
                ),
            ];
            expected
                .sort_by(|a, b| (a.1.as_str(), a.2.as_str()).cmp(&(b.1.as_str(), b.2.as_str())));

            // Reporting changes nothing: a second look finds the same.
            let fresh = || StorageRegistry::new(driver.clone(), opts());
            let first = fresh().check_storage(false).await.unwrap();
            assert_eq!(summary(&first), expected, "{first:#?}");
            assert!(first.findings.iter().all(|f| !f.repaired));
            let again = fresh().check_storage(false).await.unwrap();
            assert_eq!(summary(&again), expected);

            let repaired = fresh().check_storage(true).await.unwrap();
            assert_eq!(summary(&repaired), expected, "{repaired:#?}");
            assert!(repaired.findings.iter().all(|f| f.repaired));
            let after = fresh().check_storage(false).await.unwrap();
            assert!(after.is_clean(), "{after:#?}");
            for (_, _, removed) in &expected {
                assert!(
                    driver.stat(removed).await.is_err(),
                    "{removed} is still there"
                );
            }

            // Healthy data is untouched, and no blob's data was removed.
            let r = fresh();
            let repository = r.repository(name.clone());
            let v1 = repository
                .get_manifest(&Reference::Tag(tag("v1")))
                .await
                .unwrap();
            assert_eq!(v1.digest, good);
            assert_eq!(repository.tags(None, None).await.unwrap().entries, ["v1"]);
            let refs = repository.referrers(&good, None).await.unwrap();
            assert_eq!(refs.len(), 1);
            assert_eq!(refs[0].digest, sig);
            for d in [&cfg, &layer, &garbled, &emptied, &referrer_of, &good] {
                assert!(
                    driver.stat(&StoragePath::BlobData(d).path()).await.is_ok(),
                    "blob {d} was removed"
                );
            }
            for d in [&cfg, &layer] {
                assert!(
                    driver
                        .stat(&StoragePath::LayerLink(&name, d).path())
                        .await
                        .is_ok(),
                    "layer link {d} was removed"
                );
            }
            // A damaged manifest can be pushed again once its revision is gone.
            let body = image(&layer, &cfg, None);
            assert_eq!(
                put(&r, &name, body.clone(), &[tag("garbled")]).await,
                garbled
            );
            let got = repository
                .get_manifest(&Reference::Tag(tag("garbled")))
                .await
                .unwrap();
            assert_eq!(got.body, body);
        }
    }
}
