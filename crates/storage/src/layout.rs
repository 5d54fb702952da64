//! distribution's storage layout, as one closed enum of paths and one infallible mapping.
//! Every value is built from validated identifiers, so every path is safe.

use berth_core::{Algorithm, Digest, RepositoryName, Tag, UploadId};

/// The root of everything distribution (and berth) stores.
pub const ROOT: &str = "/docker/registry/v2";

/// A place in the layout.
#[derive(Debug, Clone, Copy)]
pub enum StoragePath<'a> {
    /// `blobs/<alg>/<xx>/<hex>/data`: content shared by all repositories.
    BlobData(&'a Digest),
    /// `blobs/<alg>/<xx>`: the directory that gains a blob's directory.
    BlobParent(&'a Digest),
    /// `blobs/<alg>/<xx>/<hex>`: the directory holding a blob's `data`.
    BlobDir(&'a Digest),
    /// `blobs/<alg>/<xx>/<hex>/startedat`: a session's start time, carried in when the
    /// whole session directory became the blob's and removed right after.
    BlobStartedAt(&'a Digest),
    /// `blobs/<alg>`: the blobs of one algorithm (where garbage collection's sweep
    /// starts).
    BlobsOfAlgorithm(Algorithm),
    /// `blobs/<alg>/<prefix>`: a directory met on the sweep, named by what the driver
    /// listed under `blobs/<alg>` (so made of names the driver returned).
    BlobPrefix(Algorithm, &'a str),
    /// `repositories/`: where the catalog walk starts.
    Repositories,
    /// `repositories/<prefix>`: a directory met on the catalog walk, named by the
    /// segments listed on the way down (so made of names the driver returned).
    RepositoryTree(&'a str),
    /// `repositories/<name>/_layers`.
    LayersDir(&'a RepositoryName),
    /// `repositories/<name>/_layers/<alg>`: the layer links of one algorithm.
    LayersOfAlgorithm(&'a RepositoryName, Algorithm),
    /// `repositories/<name>/_layers/<alg>/<hex>`: what unlinking a blob removes.
    LayerDir(&'a RepositoryName, &'a Digest),
    /// `repositories/<name>/_layers/<alg>/<hex>/link`.
    LayerLink(&'a RepositoryName, &'a Digest),
    /// `repositories/<name>/_manifests`.
    ManifestsDir(&'a RepositoryName),
    /// `repositories/<name>/_manifests/revisions/<alg>`: revisions of one algorithm.
    RevisionsOfAlgorithm(&'a RepositoryName, Algorithm),
    /// `repositories/<name>/_manifests/revisions/<alg>/<hex>`.
    RevisionDir(&'a RepositoryName, &'a Digest),
    /// `repositories/<name>/_manifests/revisions/<alg>/<hex>/link`.
    RevisionLink(&'a RepositoryName, &'a Digest),
    /// `repositories/<name>/_manifests/tags`.
    TagsDir(&'a RepositoryName),
    /// `repositories/<name>/_manifests/tags/<tag>`.
    TagDir(&'a RepositoryName, &'a Tag),
    /// `repositories/<name>/_manifests/tags/<tag>/current/link`.
    TagCurrentLink(&'a RepositoryName, &'a Tag),
    /// `repositories/<name>/_manifests/tags/<tag>/index/<alg>`: a tag's history entries
    /// of one algorithm.
    TagIndexOfAlgorithm(&'a RepositoryName, &'a Tag, Algorithm),
    /// `repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>`: one history entry.
    TagIndexDir(&'a RepositoryName, &'a Tag, &'a Digest),
    /// `repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link`.
    TagIndexLink(&'a RepositoryName, &'a Tag, &'a Digest),
    /// `repositories/<name>/_uploads`.
    UploadsDir(&'a RepositoryName),
    /// `repositories/<name>/_uploads/<id>`.
    UploadDir(&'a RepositoryName, &'a UploadId),
    /// `repositories/<name>/_uploads/<id>/data`.
    UploadData(&'a RepositoryName, &'a UploadId),
    /// `repositories/<name>/_uploads/<id>/startedat`.
    UploadStartedAt(&'a RepositoryName, &'a UploadId),
    /// `repositories/<name>/_uploads/<id>/hashstates/<alg>`.
    UploadHashStates(&'a RepositoryName, &'a UploadId, Algorithm),
    /// `repositories/<name>/_uploads/<id>/berth-epoch`: the driver's volatile epoch the
    /// session's hash states were saved in (berth's own; distribution reads only the
    /// files it knows in a session directory).
    UploadEpoch(&'a RepositoryName, &'a UploadId),
    /// `repositories/<name>/_uploads/<id>/hashstates/<alg>/<offset>`.
    UploadHashState(&'a RepositoryName, &'a UploadId, Algorithm, u64),
    /// `repositories/<name>/_berth/referrers/<alg>`: subjects of one algorithm in
    /// berth's referrers index.
    ReferrerSubjectsOfAlgorithm(&'a RepositoryName, Algorithm),
    /// berth's referrers index (distribution ignores `_`-directories it does not know):
    /// `repositories/<name>/_berth/referrers/<alg>/<hex>`.
    ReferrersDir(&'a RepositoryName, &'a Digest),
    /// `repositories/<name>/_berth/referrers/<alg>/<hex>/<alg>`: referrers of one algorithm.
    ReferrersOfAlgorithm(&'a RepositoryName, &'a Digest, Algorithm),
    /// `repositories/<name>/_berth/referrers/<alg>/<hex>/<alg>/<hex>`: one referrer.
    ReferrerDir(&'a RepositoryName, &'a Digest, &'a Digest),
    /// `repositories/<name>/_berth/referrers/<alg>/<hex>/<alg>/<hex>/link`.
    ReferrerLink(&'a RepositoryName, &'a Digest, &'a Digest),
    /// `_berth/health/probe-<hex>`: the file the storage health check writes and deletes
    /// (berth's own; distribution reads only `blobs` and `repositories`), one per
    /// process, named by a key of its own.
    HealthProbe(u64),
}

impl StoragePath<'_> {
    /// The driver path.
    pub fn path(&self) -> String {
        use StoragePath::*;
        let repo = |n: &RepositoryName| format!("{ROOT}/repositories/{n}");
        let dg = |d: &Digest| format!("{}/{}", d.algorithm(), d.hex());
        match *self {
            BlobData(d) => format!("{}/data", BlobDir(d).path()),
            BlobStartedAt(d) => format!("{}/startedat", BlobDir(d).path()),
            BlobParent(d) => format!("{ROOT}/blobs/{}/{}", d.algorithm(), &d.hex()[..2]),
            BlobDir(d) => format!(
                "{ROOT}/blobs/{}/{}/{}",
                d.algorithm(),
                &d.hex()[..2],
                d.hex()
            ),
            BlobsOfAlgorithm(a) => format!("{ROOT}/blobs/{a}"),
            BlobPrefix(a, prefix) => format!("{ROOT}/blobs/{a}/{prefix}"),
            Repositories => format!("{ROOT}/repositories"),
            RepositoryTree(prefix) => format!("{ROOT}/repositories/{prefix}"),
            LayersDir(n) => format!("{}/_layers", repo(n)),
            LayersOfAlgorithm(n, a) => format!("{}/_layers/{a}", repo(n)),
            LayerDir(n, d) => format!("{}/_layers/{}", repo(n), dg(d)),
            LayerLink(n, d) => format!("{}/link", LayerDir(n, d).path()),
            ManifestsDir(n) => format!("{}/_manifests", repo(n)),
            RevisionsOfAlgorithm(n, a) => format!("{}/_manifests/revisions/{a}", repo(n)),
            RevisionDir(n, d) => format!("{}/_manifests/revisions/{}", repo(n), dg(d)),
            RevisionLink(n, d) => format!("{}/_manifests/revisions/{}/link", repo(n), dg(d)),
            TagsDir(n) => format!("{}/_manifests/tags", repo(n)),
            TagDir(n, t) => format!("{}/_manifests/tags/{t}", repo(n)),
            TagCurrentLink(n, t) => format!("{}/_manifests/tags/{t}/current/link", repo(n)),
            TagIndexOfAlgorithm(n, t, a) => format!("{}/_manifests/tags/{t}/index/{a}", repo(n)),
            TagIndexDir(n, t, d) => format!("{}/_manifests/tags/{t}/index/{}", repo(n), dg(d)),
            TagIndexLink(n, t, d) => format!("{}/link", TagIndexDir(n, t, d).path()),
            UploadsDir(n) => format!("{}/_uploads", repo(n)),
            UploadDir(n, id) => format!("{}/_uploads/{id}", repo(n)),
            UploadData(n, id) => format!("{}/_uploads/{id}/data", repo(n)),
            UploadStartedAt(n, id) => format!("{}/_uploads/{id}/startedat", repo(n)),
            UploadHashStates(n, id, a) => format!("{}/_uploads/{id}/hashstates/{a}", repo(n)),
            UploadEpoch(n, id) => format!("{}/_uploads/{id}/berth-epoch", repo(n)),
            UploadHashState(n, id, a, off) => {
                format!("{}/_uploads/{id}/hashstates/{a}/{off}", repo(n))
            }
            ReferrerSubjectsOfAlgorithm(n, a) => format!("{}/_berth/referrers/{a}", repo(n)),
            ReferrersDir(n, s) => format!("{}/_berth/referrers/{}", repo(n), dg(s)),
            ReferrersOfAlgorithm(n, s, alg) => format!("{}/{alg}", ReferrersDir(n, s).path()),
            ReferrerDir(n, s, r) => format!("{}/{}", ReferrersDir(n, s).path(), dg(r)),
            ReferrerLink(n, s, r) => format!("{}/link", ReferrerDir(n, s, r).path()),
            HealthProbe(key) => format!("{ROOT}/_berth/health/probe-{key:016x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_distribution() {
        let n = RepositoryName::parse("team/app").unwrap();
        let t = Tag::parse("v1").unwrap();
        let d = Digest::of(Algorithm::Sha256, b"");
        let h = d.hex();
        let u = UploadId::random();
        assert_eq!(
            StoragePath::BlobData(&d).path(),
            format!("/docker/registry/v2/blobs/sha256/e3/{h}/data")
        );
        assert_eq!(
            StoragePath::LayerLink(&n, &d).path(),
            format!("/docker/registry/v2/repositories/team/app/_layers/sha256/{h}/link")
        );
        assert_eq!(
            StoragePath::RevisionLink(&n, &d).path(),
            format!(
                "/docker/registry/v2/repositories/team/app/_manifests/revisions/sha256/{h}/link"
            )
        );
        assert_eq!(
            StoragePath::TagCurrentLink(&n, &t).path(),
            "/docker/registry/v2/repositories/team/app/_manifests/tags/v1/current/link"
        );
        assert_eq!(
            StoragePath::TagIndexLink(&n, &t, &d).path(),
            format!(
                "/docker/registry/v2/repositories/team/app/_manifests/tags/v1/index/sha256/{h}/link"
            )
        );
        assert_eq!(
            StoragePath::UploadHashState(&n, &u, Algorithm::Sha256, 42).path(),
            format!("/docker/registry/v2/repositories/team/app/_uploads/{u}/hashstates/sha256/42")
        );
    }
}
