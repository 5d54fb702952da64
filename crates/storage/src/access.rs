//! Small-file access shared by the stores: link files (a digest as text), existence
//! checks, listings of a directory's children, and the one conversion of driver failures
//! into domain errors. Every path arrives as a [`StoragePath`].

use std::sync::Arc;

use berth_core::{Algorithm, Digest, Error};
use berth_driver::{DirWindow, DriverError, Persist, StorageDriver};
use bytes::Bytes;

use crate::layout::StoragePath;

/// Every algorithm a link or blob directory can be named after.
pub(crate) const ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

/// The digest a directory is named after (`<alg>/<hex>`); `None` for a name no registry
/// writes, which nothing reads either.
pub(crate) fn digest_named(alg: Algorithm, hex: &str) -> Option<Digest> {
    Digest::parse(&format!("{alg}:{hex}")).ok()
}

/// How a driver result becomes a domain result: the only place that looks at
/// [`DriverError::is_not_found`].
pub(crate) trait DriverResult<T> {
    /// A missing path is `None`; any other failure is internal.
    fn or_absent(self) -> Result<Option<T>, Error>;
    /// Any failure is internal (the path is expected to exist).
    fn or_internal(self) -> Result<T, Error>;
}

impl<T> DriverResult<T> for Result<T, DriverError> {
    fn or_absent(self) -> Result<Option<T>, Error> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(failure(e)),
        }
    }

    fn or_internal(self) -> Result<T, Error> {
        self.map_err(failure)
    }
}

/// A driver failure other than a missing path: a backend out of reach is worth a
/// retry (503), anything else is internal.
fn failure(e: DriverError) -> Error {
    match e {
        DriverError::Unavailable { .. } => Error::StorageUnavailable(e.to_string()),
        other => Error::internal_from("storage", other),
    }
}

/// The driver, seen through the layout.
#[derive(Clone)]
pub(crate) struct Access {
    driver: Arc<dyn StorageDriver>,
}

impl Access {
    pub(crate) fn new(driver: Arc<dyn StorageDriver>) -> Self {
        Access { driver }
    }

    /// The driver, for streaming reads and writes.
    pub(crate) fn driver(&self) -> &dyn StorageDriver {
        self.driver.as_ref()
    }

    /// The digest a link file holds; `None` when there is no link.
    pub(crate) async fn read_link(&self, at: StoragePath<'_>) -> Result<Option<Digest>, Error> {
        let path = at.path();
        match self.driver.get_content(&path).await.or_absent()? {
            // A link being created is briefly empty: not there yet.
            Some(b) if b.is_empty() => Ok(None),
            Some(b) => {
                let text = std::str::from_utf8(&b).unwrap_or("").trim();
                Digest::parse(text)
                    .map(Some)
                    .map_err(|_| Error::internal(format!("corrupt link file {path}")))
            }
            None => Ok(None),
        }
    }

    /// Points a link at `digest`. A new link is created in place (a racing reader sees
    /// it empty, which [`read_link`](Self::read_link) takes as absent); one pointing
    /// elsewhere (a tag's `current` that moves) is replaced atomically.
    pub(crate) async fn write_link(
        &self,
        at: StoragePath<'_>,
        digest: &Digest,
    ) -> Result<(), Error> {
        self.ensure(at, Bytes::from(digest.to_string()), Persist::Durable)
            .await
    }

    /// [`write_link`](Self::write_link) without the flush: the link is in place for
    /// readers, and a later `flush` of it makes it survive a machine crash.
    pub(crate) async fn place_link(
        &self,
        at: StoragePath<'_>,
        digest: &Digest,
    ) -> Result<(), Error> {
        self.ensure(at, Bytes::from(digest.to_string()), Persist::Volatile)
            .await
    }

    /// Makes a small file hold `content` (see `StorageDriver::ensure_content`).
    pub(crate) async fn ensure(
        &self,
        at: StoragePath<'_>,
        content: Bytes,
        persist: Persist,
    ) -> Result<(), Error> {
        self.driver
            .ensure_content(&at.path(), content, persist)
            .await
            .or_internal()
    }

    /// A small file's bytes; `None` when absent.
    pub(crate) async fn get(&self, at: StoragePath<'_>) -> Result<Option<Bytes>, Error> {
        self.driver.get_content(&at.path()).await.or_absent()
    }

    /// A file's size; `None` when absent.
    pub(crate) async fn size(&self, at: StoragePath<'_>) -> Result<Option<u64>, Error> {
        Ok(self
            .driver
            .stat(&at.path())
            .await
            .or_absent()?
            .map(|i| i.size))
    }

    /// Whether anything exists at a path.
    pub(crate) async fn exists(&self, at: StoragePath<'_>) -> Result<bool, Error> {
        Ok(self.driver.stat(&at.path()).await.or_absent()?.is_some())
    }

    /// Deletes a path (a whole tree for a directory); `Ok(false)` when there was nothing.
    pub(crate) async fn remove(&self, at: StoragePath<'_>) -> Result<bool, Error> {
        Ok(self.driver.delete(&at.path()).await.or_absent()?.is_some())
    }

    /// The last path segment of each child of a directory; empty when it does not exist.
    pub(crate) async fn children(&self, at: StoragePath<'_>) -> Result<Vec<String>, Error> {
        let listed = self.driver.list(&at.path()).await.or_absent()?;
        Ok(listed
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.rsplit('/').next().unwrap_or_default().to_owned())
            .collect())
    }

    /// A window of a directory's subdirectories within `from`, in name order (see
    /// [`StorageDriver::list_dirs`]); an absent directory has none.
    pub(crate) async fn dirs(
        &self,
        at: StoragePath<'_>,
        from: std::ops::Bound<&str>,
        limit: usize,
    ) -> Result<DirWindow, Error> {
        let listed = self
            .driver
            .list_dirs(&at.path(), from, limit)
            .await
            .or_absent()?;
        Ok(listed.unwrap_or_default())
    }

    /// The digests named by the `<hex>` directories under `dir(alg)`, for every
    /// algorithm (layer links, revisions, tag history, referrers), in no particular order.
    pub(crate) async fn digest_dirs<'p>(
        &self,
        dir: impl Fn(Algorithm) -> StoragePath<'p>,
    ) -> Result<Vec<Digest>, Error> {
        let mut out = Vec::new();
        for alg in ALGORITHMS {
            let names = self.children(dir(alg)).await?;
            out.extend(names.iter().filter_map(|hex| digest_named(alg, hex)));
        }
        Ok(out)
    }
}
