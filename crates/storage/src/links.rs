//! Small-file primitives shared by the stores: link files (a digest as text), existence
//! checks, and the one conversion of driver failures into domain errors.

use berth_core::{Digest, Error};
use berth_driver::DriverError;
use bytes::Bytes;

use crate::StorageRegistry;
use crate::layout::StoragePath;

/// What a link file holds: the digest as text.
fn link_content(digest: &Digest) -> Bytes {
    Bytes::from(digest.to_string())
}

/// A driver failure that is not the client's doing.
pub(crate) fn internal(e: DriverError) -> Error {
    Error::Internal(e.to_string())
}

impl StorageRegistry {
    /// The digest a link file holds; `None` when there is no link.
    pub(crate) async fn read_link(&self, at: StoragePath<'_>) -> Result<Option<Digest>, Error> {
        let path = at.path();
        match self.driver.get_content(&path).await {
            // A link being created is briefly empty: not there yet.
            Ok(b) if b.is_empty() => Ok(None),
            Ok(b) => {
                let text = std::str::from_utf8(&b).unwrap_or("").trim();
                Digest::parse(text)
                    .map(Some)
                    .map_err(|_| Error::Internal(format!("corrupt link file {path}")))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(internal(e)),
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
        self.driver
            .ensure_content(&at.path(), link_content(digest))
            .await
            .map_err(internal)
    }

    /// Whether anything exists at a path.
    pub(crate) async fn exists(&self, at: StoragePath<'_>) -> Result<bool, Error> {
        match self.driver.stat(&at.path()).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(internal(e)),
        }
    }

    /// Deletes a path; `Ok(false)` when there was nothing.
    pub(crate) async fn remove(&self, at: StoragePath<'_>) -> Result<bool, Error> {
        match self.driver.delete(&at.path()).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(internal(e)),
        }
    }

    /// The last path segment of each child of a directory; empty when it does not exist.
    pub(crate) async fn children(&self, at: StoragePath<'_>) -> Result<Vec<String>, Error> {
        self.list_names(&at.path()).await
    }

    /// Like [`children`](Self::children) for a raw driver path.
    pub(crate) async fn list_names(&self, path: &str) -> Result<Vec<String>, Error> {
        match self.driver.list(path).await {
            Ok(v) => Ok(v
                .into_iter()
                .map(|p| p.rsplit('/').next().unwrap_or_default().to_owned())
                .collect()),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(internal(e)),
        }
    }
}
