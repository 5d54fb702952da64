//! Garbage collection behind `berth garbage-collect`: the mark (every blob a kept manifest
//! needs) and the sweep (every other blob of `blobs/`, with the `_layers` links naming
//! it), and, when asked, the deletion of manifests no tag reaches.
//!
//! What is kept: without `delete_untagged`, every manifest revision of every repository;
//! with it, what a tag reaches: the tagged manifests, the children of a kept index
//! (recursively) and the referrers of a kept manifest (a manifest whose `subject` is kept,
//! recursively). A kept manifest marks its own bytes, its config and layers, and its
//! children's digests. Only digests are held: the mark set, and per repository while
//! `delete_untagged` decides, each revision's children and subject.
//!
//! Manifests are read leniently here, unlike on push: any `config`, `layers`, `blobs`,
//! `fsLayers` (schema 1) or `manifests` entry with a digest counts, so older data berth
//! would not accept today keeps its blobs. Marking too much only keeps a blob; marking
//! too little loses one.
//!
//! The same collection runs offline (`berth garbage-collect`) and inside the serving
//! process. Deletions go through the stores, under their locks, so the caches follow
//! storage. Beside requests of this process it is safe through the `fence`: the mark
//! begins once every push that started before it has finished, a request relies on a
//! blob or manifest only after touching it, and the collection removes nothing touched
//! (see `fence` and docs/DESIGN.md). Requests of other processes are not fenced: for
//! them only the grace period (`GcOptions::grace_period`) protects a blob uploaded for a
//! manifest not yet pushed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use berth_core::{Digest, Error, RepositoryName};
use serde_json::Value;

use crate::StorageRegistry;
use crate::access::{ALGORITHMS, digest_named};
use crate::blobs::Sweep;
use crate::catalog::{ANY_DATA_MARKERS, catalog_order};
use crate::layout::StoragePath;

/// How a collection runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcOptions {
    /// Report only: remove nothing.
    pub dry_run: bool,
    /// Delete the manifests no tag reaches (see the module documentation for what a tag
    /// reaches).
    pub delete_untagged: bool,
    /// A blob whose data changed less than this long ago is never removed (nor, when not
    /// zero, one whose age the driver cannot tell). Zero offline, as distribution.
    pub grace_period: Duration,
}

/// What a collection does, in the order it does it (distribution's order: each
/// repository's manifests and their blobs, the summary, then each blob to delete).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcEvent<'a> {
    /// The mark enters a repository.
    Repository(&'a RepositoryName),
    /// A manifest no tag reaches (`delete_untagged` only): deleted unless dry run.
    ManifestEligible(&'a RepositoryName, &'a Digest),
    /// A kept manifest; its bytes are marked.
    MarkManifest(&'a RepositoryName, &'a Digest),
    /// A digest a kept manifest references (a blob, or a child manifest).
    MarkBlob(&'a RepositoryName, &'a Digest),
    /// The mark is over and the blobs to delete are known.
    Summary {
        /// Distinct digests marked.
        marked: usize,
        /// Blobs in `blobs/` that no kept manifest references.
        blobs: usize,
        /// Manifests no tag reaches (`delete_untagged` only).
        manifests: usize,
    },
    /// A blob no kept manifest references: deleted unless dry run, or kept after all
    /// ([`GcEvent::BlobKept`]).
    BlobEligible(&'a Digest),
    /// An eligible blob that stays: younger than the grace period, or relied on by a
    /// request while the collection ran.
    BlobKept(&'a Digest),
    /// A driver path this run removed (a blob's directory, a revision, a tag history
    /// entry, a layer or referrer link).
    Removed(&'a str),
}

/// What one collection found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Repositories walked.
    pub repositories: usize,
    /// Distinct digests marked.
    pub marked: usize,
    /// Blobs no kept manifest references.
    pub blobs_eligible: usize,
    /// Manifests no tag reaches (`delete_untagged` only).
    pub manifests_eligible: usize,
    /// Paths removed (none in a dry run).
    pub removed: usize,
    /// Eligible blobs removed (in a dry run: that would have been).
    pub blobs_removed: usize,
    /// Their bytes.
    pub bytes_removed: u64,
    /// Manifests no tag reaches that were deleted (none in a dry run).
    pub manifests_removed: usize,
    /// Eligible blobs kept because they are younger than the grace period.
    pub kept_young: usize,
    /// Eligible blobs or manifests kept because a request relied on them meanwhile.
    pub kept_touched: usize,
}

/// The digests a manifest names, read leniently (see the module documentation).
#[derive(Debug, Default, PartialEq, Eq)]
struct Refs {
    /// Config, layers and other blobs, in the manifest's order.
    blobs: Vec<Digest>,
    /// Child manifests of an index or list.
    children: Vec<Digest>,
    /// The manifest this one refers to.
    subject: Option<Digest>,
}

impl Refs {
    /// What `body` names; nothing when it is not a JSON object (such bytes cannot name a
    /// blob, and no registry serves them as a manifest).
    fn of(body: &[u8]) -> Refs {
        let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
            return Refs::default();
        };
        let digest_at = |v: &Value, key: &str| {
            v.get(key)
                .and_then(Value::as_str)
                .and_then(|s| Digest::parse(s).ok())
        };
        let list = |key: &str, field: &str| -> Vec<Digest> {
            obj.get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| digest_at(v, field))
                .collect()
        };
        let mut blobs: Vec<Digest> = obj
            .get("config")
            .and_then(|c| digest_at(c, "digest"))
            .into_iter()
            .collect();
        blobs.extend(list("layers", "digest"));
        // The draft OCI artifact manifest's blobs, and schema 1's layers.
        blobs.extend(list("blobs", "digest"));
        blobs.extend(list("fsLayers", "blobSum"));
        Refs {
            blobs,
            children: list("manifests", "digest"),
            subject: obj.get("subject").and_then(|s| digest_at(s, "digest")),
        }
    }
}

/// The mark's state across repositories.
#[derive(Default)]
struct Mark {
    /// Every digest a kept manifest needs, its own included.
    marked: HashSet<Digest>,
    /// Manifests to delete (`delete_untagged`), deleted once every repository is marked.
    untagged: Vec<(RepositoryName, Digest)>,
}

/// The report being made and whom to tell each step.
struct Progress<'a, F> {
    report: GcReport,
    on: &'a mut F,
}

impl<F: FnMut(GcEvent<'_>)> Progress<'_, F> {
    fn tell(&mut self, event: GcEvent<'_>) {
        (self.on)(event);
    }

    /// Counts and tells one removal.
    fn removed(&mut self, at: StoragePath<'_>) {
        self.report.removed += 1;
        (self.on)(GcEvent::Removed(&at.path()));
    }
}

impl StorageRegistry {
    /// Marks what the kept manifests need and sweeps the rest, telling `on` each step
    /// (see [`GcEvent`]). With `dry_run` nothing is removed; the events and the report
    /// are the same but for [`GcEvent::Removed`]. Safe beside this registry's own
    /// requests; other writers to the storage are covered by the grace period only (see
    /// the module documentation). Dropping the future part way leaves requests recording
    /// touches until the next collection begins; nothing is removed meanwhile.
    pub async fn garbage_collect<F>(&self, options: GcOptions, mut on: F) -> Result<GcReport, Error>
    where
        F: FnMut(GcEvent<'_>),
    {
        let fence = &self.stores.blobs.fence;
        let collecting = fence.begin().await;
        let mut progress = Progress {
            report: GcReport::default(),
            on: &mut on,
        };
        let collected = self.collect(options, &mut progress).await;
        fence.end().await;
        drop(collecting);
        collected.map(|()| progress.report)
    }

    /// The collection proper, once the fence is closed.
    async fn collect<F: FnMut(GcEvent<'_>)>(
        &self,
        options: GcOptions,
        progress: &mut Progress<'_, F>,
    ) -> Result<(), Error> {
        let (repos, mark) = self.mark(options, progress).await?;
        self.sweep(options, &repos, mark, progress).await
    }

    /// Walks every repository, marking what its kept manifests need; answers the
    /// repositories walked and the mark.
    async fn mark<F: FnMut(GcEvent<'_>)>(
        &self,
        options: GcOptions,
        progress: &mut Progress<'_, F>,
    ) -> Result<(Vec<RepositoryName>, Mark), Error> {
        let mut repos = self.stores.catalog.walk(ANY_DATA_MARKERS).await?;
        repos.sort_by(|a, b| catalog_order(a.as_str(), b.as_str()));
        let mut mark = Mark::default();
        for repo in &repos {
            progress.report.repositories += 1;
            progress.tell(GcEvent::Repository(repo));
            self.mark_repository(repo, options.delete_untagged, &mut mark, progress)
                .await?;
        }
        progress.report.manifests_eligible = mark.untagged.len();
        Ok((repos, mark))
    }

    /// Deletes the untagged manifests the mark found and every unmarked blob, unless a
    /// request touched it meanwhile or it is younger than the grace period, then the
    /// layer links naming the blobs removed.
    async fn sweep<F: FnMut(GcEvent<'_>)>(
        &self,
        options: GcOptions,
        repos: &[RepositoryName],
        mark: Mark,
        progress: &mut Progress<'_, F>,
    ) -> Result<(), Error> {
        if !options.dry_run {
            for (repo, digest) in &mark.untagged {
                self.delete_untagged(repo, digest, progress).await?;
            }
        }
        let doomed = self.unmarked_blobs(&mark.marked).await?;
        progress.report.marked = mark.marked.len();
        progress.report.blobs_eligible = doomed.len();
        drop(mark);
        let report = &progress.report;
        let summary = GcEvent::Summary {
            marked: report.marked,
            blobs: report.blobs_eligible,
            manifests: report.manifests_eligible,
        };
        progress.tell(summary);
        let mut swept = HashSet::new();
        for digest in doomed {
            progress.tell(GcEvent::BlobEligible(&digest));
            let blobs = &self.stores.blobs;
            match blobs
                .sweep(&digest, options.grace_period, options.dry_run, &|_| false)
                .await?
            {
                Sweep::Removed(bytes) => {
                    progress.report.blobs_removed += 1;
                    progress.report.bytes_removed += bytes;
                    if !options.dry_run {
                        self.stores.manifests.forget_body(&digest);
                        progress.removed(StoragePath::BlobDir(&digest));
                        swept.insert(digest);
                    }
                }
                Sweep::Young => {
                    progress.report.kept_young += 1;
                    progress.tell(GcEvent::BlobKept(&digest));
                }
                Sweep::Touched | Sweep::Busy => {
                    progress.report.kept_touched += 1;
                    progress.tell(GcEvent::BlobKept(&digest));
                }
                // Removed since it was listed (by another collector): its links go too.
                Sweep::Absent => {
                    if !options.dry_run {
                        swept.insert(digest);
                    }
                }
            }
        }
        if !swept.is_empty() {
            self.unlink_swept(repos, &swept, progress).await?;
        }
        Ok(())
    }

    /// Marks one repository's kept manifests and what they name; records the manifests
    /// to delete when `delete_untagged`.
    async fn mark_repository<F: FnMut(GcEvent<'_>)>(
        &self,
        repo: &RepositoryName,
        delete_untagged: bool,
        mark: &mut Mark,
        progress: &mut Progress<'_, F>,
    ) -> Result<(), Error> {
        let revisions = self.revisions(repo).await?;
        let kept = if delete_untagged {
            Some(self.reachable(repo, &revisions).await?)
        } else {
            None
        };
        for digest in &revisions {
            if kept.as_ref().is_some_and(|k| !k.contains(digest)) {
                progress.tell(GcEvent::ManifestEligible(repo, digest));
                mark.untagged.push((repo.clone(), digest.clone()));
                continue;
            }
            progress.tell(GcEvent::MarkManifest(repo, digest));
            mark.marked.insert(digest.clone());
            let refs = self.refs(digest).await?;
            for d in refs.blobs.iter().chain(&refs.children) {
                progress.tell(GcEvent::MarkBlob(repo, d));
                mark.marked.insert(d.clone());
            }
        }
        Ok(())
    }

    /// The repository's manifest revisions, in digest order: each revision directory
    /// holding a `link` whose manifest bytes exist (one whose bytes are gone names
    /// nothing and is left alone, as distribution leaves it; `check-storage` reports it).
    /// The directory's name is the digest, whatever the link holds: keeping more is safe.
    async fn revisions(&self, repo: &RepositoryName) -> Result<Vec<Digest>, Error> {
        let access = &self.stores.access;
        let mut out = Vec::new();
        for digest in access
            .digest_dirs(|alg| StoragePath::RevisionsOfAlgorithm(repo, alg))
            .await?
        {
            if access
                .exists(StoragePath::RevisionLink(repo, &digest))
                .await?
                && access.exists(StoragePath::BlobData(&digest)).await?
            {
                out.push(digest);
            }
        }
        out.sort();
        Ok(out)
    }

    /// What a stored manifest names (nothing when its bytes are gone).
    async fn refs(&self, digest: &Digest) -> Result<Refs, Error> {
        let body = self.stores.manifests.bytes(digest).await?;
        Ok(body.map(|b| Refs::of(&b)).unwrap_or_default())
    }

    /// The revisions a tag reaches: tagged ones, children of reached indexes and
    /// referrers of reached manifests, to any depth. A tag whose `current` link cannot be
    /// read stops the collection (which manifests it keeps is unknown); an empty one, a
    /// tag being created when a crash came, names nothing.
    async fn reachable(
        &self,
        repo: &RepositoryName,
        revisions: &[Digest],
    ) -> Result<HashSet<Digest>, Error> {
        let known: HashSet<&Digest> = revisions.iter().collect();
        let mut children: HashMap<Digest, Vec<Digest>> = HashMap::new();
        let mut referrers: HashMap<Digest, Vec<Digest>> = HashMap::new();
        for digest in revisions {
            let refs = self.refs(digest).await?;
            if !refs.children.is_empty() {
                children.insert(digest.clone(), refs.children);
            }
            if let Some(subject) = refs.subject {
                referrers.entry(subject).or_default().push(digest.clone());
            }
        }
        let mut queue = VecDeque::new();
        for tag in self.stores.tags.names(repo).await? {
            let current = StoragePath::TagCurrentLink(repo, &tag);
            if let Some(target) = self.stores.access.read_link(current).await? {
                queue.push_back(target);
            }
        }
        let mut kept = HashSet::new();
        while let Some(digest) = queue.pop_front() {
            if !known.contains(&digest) || kept.contains(&digest) {
                continue;
            }
            let next = children.get(&digest).into_iter().flatten();
            let next = next.chain(referrers.get(&digest).into_iter().flatten());
            queue.extend(next.cloned());
            kept.insert(digest);
        }
        Ok(kept)
    }

    /// Deletes a manifest no tag reaches, as a manifest delete does, under its
    /// revision's lock: the history entries naming it in every tag (as distribution's
    /// collection does), the revision, and berth's referrer link to it. Its bytes stay
    /// until the sweep, which finds them unmarked. One a request touched since the mark
    /// (a push tagging it, an index naming it) stays.
    async fn delete_untagged<F: FnMut(GcEvent<'_>)>(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        progress: &mut Progress<'_, F>,
    ) -> Result<(), Error> {
        let stores = &self.stores;
        let subject = self.refs(digest).await?.subject;
        let _revision = stores.manifests.lock(repo, digest).await?;
        if !stores.blobs.fence.doom(digest) {
            progress.report.kept_touched += 1;
            return Ok(());
        }
        progress.report.manifests_removed += 1;
        for tag in stores.tags.remove_history(repo, digest).await? {
            progress.removed(StoragePath::TagIndexDir(repo, &tag, digest));
        }
        if stores.manifests.remove_locked(repo, digest).await? {
            progress.removed(StoragePath::RevisionDir(repo, digest));
        }
        stores.blobs.forget(repo, digest).await?;
        if let Some(s) = &subject
            && stores.referrers.unlink(repo, s, digest).await?
        {
            progress.removed(StoragePath::ReferrerDir(repo, s, digest));
        }
        Ok(())
    }

    /// Every blob in `blobs/` (a `<hex>` directory holding `data`) whose digest is not
    /// marked, in digest order. Directories without `data` are left alone, as
    /// distribution leaves them.
    async fn unmarked_blobs(&self, marked: &HashSet<Digest>) -> Result<Vec<Digest>, Error> {
        let access = &self.stores.access;
        let mut out = Vec::new();
        for alg in ALGORITHMS {
            for prefix in access.children(StoragePath::BlobsOfAlgorithm(alg)).await? {
                let at = StoragePath::BlobPrefix(alg, &prefix);
                for hex in access.children(at).await? {
                    // Only where the layout puts a blob: `<first two hex>/<hex>`.
                    let Some(digest) = digest_named(alg, &hex)
                        .filter(|_| prefix.len() == 2 && hex.starts_with(prefix.as_str()))
                    else {
                        continue;
                    };
                    if !marked.contains(&digest)
                        && access.exists(StoragePath::BlobData(&digest)).await?
                    {
                        out.push(digest);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes every `_layers` link naming a swept blob (distribution 2.8.2 leaves them,
    /// and then answers 404 for a blob its repository still lists as linked), unless the
    /// blob was pushed again since.
    async fn unlink_swept<F: FnMut(GcEvent<'_>)>(
        &self,
        repos: &[RepositoryName],
        swept: &HashSet<Digest>,
        progress: &mut Progress<'_, F>,
    ) -> Result<(), Error> {
        let stores = &self.stores;
        for repo in repos {
            let linked = stores
                .access
                .digest_dirs(|alg| StoragePath::LayersOfAlgorithm(repo, alg))
                .await?;
            let mut unlinked = false;
            for digest in linked.iter().filter(|d| swept.contains(*d)) {
                if stores.blobs.unlink_collected(repo, digest).await? {
                    progress.removed(StoragePath::LayerDir(repo, digest));
                    unlinked = true;
                }
            }
            if unlinked {
                // The repository's last link may have gone, and with it (on object
                // storage) its `_layers` directory: the catalog follows.
                stores.catalog.recheck(repo).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod online_tests;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use berth_core::{Algorithm, Reference, Registry};
    use berth_driver::StorageDriver;
    use bytes::Bytes;

    use super::*;
    use crate::tests::{drivers, image, opts, push_blob, put, repo, tag};

    fn index(children: &[&Digest]) -> Bytes {
        let manifests: Vec<String> = children
            .iter()
            .map(|d| {
                format!(
                    r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d}","size":1}}"#
                )
            })
            .collect();
        Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
            manifests.join(",")
        ))
    }

    /// Runs a collection, answering its report and every event as text.
    async fn collect(r: &StorageRegistry, options: GcOptions) -> (GcReport, Vec<String>) {
        let mut events = Vec::new();
        let report = r
            .garbage_collect(options, |e| events.push(format!("{e:?}")))
            .await
            .unwrap();
        (report, events)
    }

    async fn exists(driver: &Arc<dyn StorageDriver>, at: StoragePath<'_>) -> bool {
        driver.stat(&at.path()).await.is_ok()
    }

    /// Every file under the root (paths and contents), to compare before and after.
    async fn files(driver: &Arc<dyn StorageDriver>) -> Vec<(String, Bytes)> {
        let mut out = Vec::new();
        let mut pending = vec![crate::layout::ROOT.to_owned()];
        while let Some(dir) = pending.pop() {
            for child in driver.list(&dir).await.unwrap_or_default() {
                if driver.stat(&child).await.unwrap().is_dir {
                    pending.push(child);
                } else {
                    let content = driver.get_content(&child).await.unwrap();
                    out.push((child, content));
                }
            }
        }
        out.sort();
        out
    }

    async fn served(r: &StorageRegistry, name: &RepositoryName, digest: &Digest) -> bool {
        r.repository(name.clone())
            .get_manifest(&Reference::Digest(digest.clone()))
            .await
            .is_ok()
    }

    #[test]
    fn references_are_read_leniently() {
        let d = |s: &[u8]| Digest::of(Algorithm::Sha256, s);
        let (a, b, c) = (d(b"a"), d(b"b"), d(b"c"));
        let schema1 = format!(
            r#"{{"schemaVersion":1,"fsLayers":[{{"blobSum":"{a}"}},{{"blobSum":"{b}"}}]}}"#
        );
        assert_eq!(
            Refs::of(schema1.as_bytes()),
            Refs {
                blobs: vec![a.clone(), b.clone()],
                ..Refs::default()
            }
        );
        let listed = index(&[&a, &b]);
        let mut with_subject: Value = serde_json::from_slice(&listed).unwrap();
        with_subject["subject"] = serde_json::json!({"digest": c.to_string()});
        let refs = Refs::of(&serde_json::to_vec(&with_subject).unwrap());
        assert_eq!(refs.children, [a.clone(), b.clone()]);
        assert_eq!(refs.subject, Some(c.clone()));
        // No mediaType on a descriptor (berth refuses that on push; old data may have it).
        let loose = format!(r#"{{"config":{{"digest":"{a}"}},"layers":[{{"digest":"{b}"}}]}}"#);
        assert_eq!(Refs::of(loose.as_bytes()).blobs, [a, b]);
        assert_eq!(Refs::of(b"not json"), Refs::default());
    }

    #[tokio::test]
    async fn every_revision_is_kept_and_unreferenced_blobs_are_swept() {
        for (driver, _dir) in drivers().await {
            let r = StorageRegistry::new(driver.clone(), opts());
            let (a, b) = (repo("team/a"), repo("team/b"));
            let cfg = push_blob(&r, &a, b"{}").await;
            let shared = push_blob(&r, &a, b"shared").await;
            let only_untagged = push_blob(&r, &a, b"untagged").await;
            let gone_layer = push_blob(&r, &a, b"gone").await;
            let orphan = push_blob(&r, &a, b"orphan").await;
            let tagged = put(&r, &a, image(&cfg, &shared, None), &[tag("v1")]).await;
            let untagged = put(&r, &a, image(&cfg, &only_untagged, None), &[]).await;
            let deleted = put(&r, &a, image(&cfg, &gone_layer, None), &[tag("v2")]).await;
            r.repository(a.clone())
                .delete_manifest(&Reference::Digest(deleted.clone()))
                .await
                .unwrap();
            // The same orphan linked in a second repository, and a blob only b references.
            r.repository(b.clone())
                .mount_blob(&orphan, Some(&a))
                .await
                .unwrap();
            r.repository(b.clone())
                .mount_blob(&cfg, Some(&a))
                .await
                .unwrap();
            r.repository(b.clone())
                .mount_blob(&gone_layer, Some(&a))
                .await
                .unwrap();
            let in_b = put(&r, &b, image(&cfg, &gone_layer, Some(&tagged)), &[]).await;
            // `gone_layer` is still needed by `in_b`: only the orphan and the deleted
            // manifest's bytes are unreferenced.
            let before = files(&driver).await;
            let fresh = || StorageRegistry::new(driver.clone(), opts());
            let dry = GcOptions {
                dry_run: true,
                delete_untagged: false,
                ..GcOptions::default()
            };
            let (report, events) = collect(&fresh(), dry).await;
            assert_eq!(files(&driver).await, before, "a dry run removed something");
            let mut doomed = vec![orphan.clone(), deleted.clone()];
            doomed.sort();
            assert_eq!(
                (
                    report.repositories,
                    report.blobs_eligible,
                    report.manifests_eligible
                ),
                (2, 2, 0),
                "{events:#?}"
            );
            assert_eq!(report.removed, 0);
            // config, shared, only_untagged, gone_layer and three manifests.
            assert_eq!(report.marked, 7, "{events:#?}");
            let eligible: Vec<String> = events
                .iter()
                .filter(|e| e.starts_with("BlobEligible"))
                .cloned()
                .collect();
            let expected: Vec<String> = doomed
                .iter()
                .map(|d| format!("{:?}", GcEvent::BlobEligible(d)))
                .collect();
            assert_eq!(eligible, expected);
            assert!(events.contains(&format!("{:?}", GcEvent::MarkManifest(&a, &untagged))));
            // A referrer does not mark its subject: the subject is kept on its own or not at all.
            assert!(!events.contains(&format!("{:?}", GcEvent::MarkBlob(&b, &tagged))));

            let (report, _) = collect(&fresh(), GcOptions::default()).await;
            assert_eq!(report.blobs_eligible, 2);
            // Two blob directories and the orphan's layer link in each repository.
            assert_eq!(report.removed, 4);
            for d in &doomed {
                assert!(!exists(&driver, StoragePath::BlobDir(d)).await, "{d}");
            }
            for name in [&a, &b] {
                assert!(!exists(&driver, StoragePath::LayerDir(name, &orphan)).await);
                assert!(exists(&driver, StoragePath::LayerLink(name, &cfg)).await);
            }
            let r = fresh();
            for (name, d) in [(&a, &tagged), (&a, &untagged), (&b, &in_b)] {
                assert!(served(&r, name, d).await, "{name}@{d}");
            }
            for d in [&cfg, &shared, &only_untagged, &gone_layer] {
                assert!(exists(&driver, StoragePath::BlobData(d)).await, "{d}");
            }
            // Nothing left to collect, and the storage check finds no damage.
            let (again, _) = collect(&fresh(), GcOptions::default()).await;
            assert_eq!((again.blobs_eligible, again.removed), (0, 0));
            assert!(fresh().check_storage(false).await.unwrap().is_clean());
        }
    }

    #[tokio::test]
    async fn delete_untagged_keeps_index_children_and_referrers_of_kept_manifests() {
        for (driver, _dir) in drivers().await {
            let r = StorageRegistry::new(driver.clone(), opts());
            let name = repo("team/app");
            let blob = |s: &'static [u8]| push_blob(&r, &name, s);
            let cfg = blob(b"{}").await;
            let (la, lb, lsig, lsig2) = (
                blob(b"a").await,
                blob(b"b").await,
                blob(b"s").await,
                blob(b"s2").await,
            );
            let (lone_layer, lone_sig_layer) = (blob(b"lone").await, blob(b"lone-sig").await);
            let child_a = put(&r, &name, image(&cfg, &la, None), &[]).await;
            let child_b = put(&r, &name, image(&cfg, &lb, None), &[]).await;
            // `old` first names the lone image, then moves to the index: its history keeps
            // an entry for the lone image.
            let lone = put(&r, &name, image(&cfg, &lone_layer, None), &[tag("old")]).await;
            let idx = put(
                &r,
                &name,
                index(&[&child_a, &child_b]),
                &[tag("multi"), tag("old")],
            )
            .await;
            // A signature of a child, and an attestation of the signature.
            let sig = put(&r, &name, image(&cfg, &lsig, Some(&child_a)), &[]).await;
            let sig2 = put(&r, &name, image(&cfg, &lsig2, Some(&sig)), &[]).await;
            let lone_sig = put(&r, &name, image(&cfg, &lone_sig_layer, Some(&lone)), &[]).await;
            let history = StoragePath::TagIndexLink(&name, &tag("old"), &lone);
            assert!(exists(&driver, history).await);

            let fresh = || StorageRegistry::new(driver.clone(), opts());
            let before = files(&driver).await;
            let dry = GcOptions {
                dry_run: true,
                delete_untagged: true,
                ..GcOptions::default()
            };
            let (report, events) = collect(&fresh(), dry).await;
            assert_eq!(files(&driver).await, before, "a dry run removed something");
            let mut untagged = [lone.clone(), lone_sig.clone()];
            untagged.sort();
            let eligible: Vec<String> = events
                .iter()
                .filter(|e| e.starts_with("ManifestEligible"))
                .cloned()
                .collect();
            let expected: Vec<String> = untagged
                .iter()
                .map(|d| format!("{:?}", GcEvent::ManifestEligible(&name, d)))
                .collect();
            assert_eq!(eligible, expected);
            // The two manifests and their own layers.
            assert_eq!(
                (report.manifests_eligible, report.blobs_eligible),
                (2, 4),
                "{events:#?}"
            );

            let options = GcOptions {
                dry_run: false,
                delete_untagged: true,
                ..GcOptions::default()
            };
            let (report, events) = collect(&fresh(), options).await;
            assert_eq!(
                (report.manifests_eligible, report.blobs_eligible),
                (2, 4),
                "{events:#?}"
            );
            let r = fresh();
            for d in [&idx, &child_a, &child_b, &sig, &sig2] {
                assert!(served(&r, &name, d).await, "kept manifest {d} is gone");
            }
            for d in [&cfg, &la, &lb, &lsig, &lsig2] {
                assert!(exists(&driver, StoragePath::BlobData(d)).await, "{d}");
                assert!(
                    exists(&driver, StoragePath::LayerLink(&name, d)).await,
                    "{d}"
                );
            }
            for d in [&lone, &lone_sig] {
                assert!(!served(&r, &name, d).await, "untagged {d} is served");
                assert!(!exists(&driver, StoragePath::RevisionDir(&name, d)).await);
            }
            for d in [&lone, &lone_sig, &lone_layer, &lone_sig_layer] {
                assert!(!exists(&driver, StoragePath::BlobDir(d)).await, "{d}");
            }
            for d in [&lone_layer, &lone_sig_layer] {
                assert!(
                    !exists(&driver, StoragePath::LayerDir(&name, d)).await,
                    "{d}"
                );
            }
            assert!(
                !exists(&driver, history).await,
                "history entry of a deleted manifest"
            );
            let referrer_link = StoragePath::ReferrerDir(&name, &lone, &lone_sig);
            assert!(!exists(&driver, referrer_link).await);
            let refs = r
                .repository(name.clone())
                .referrers(&child_a, None)
                .await
                .unwrap();
            assert_eq!(refs.iter().map(|d| &d.digest).collect::<Vec<_>>(), [&sig]);
            let mut tags = r
                .repository(name.clone())
                .tags(None, None)
                .await
                .unwrap()
                .entries;
            tags.sort();
            assert_eq!(tags, ["multi", "old"]);
            assert!(fresh().check_storage(false).await.unwrap().is_clean());
            let (again, _) = collect(&fresh(), options).await;
            assert_eq!(
                (
                    again.manifests_eligible,
                    again.blobs_eligible,
                    again.removed
                ),
                (0, 0, 0)
            );
        }
    }
}
