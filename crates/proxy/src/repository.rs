//! A proxied repository: the cache's rules over the local copy (the wrapped registry's
//! repository of the same name) and the upstream. Manifests by digest and blobs are
//! served from the copy when it has them and fetched (verified, then kept) when it does
//! not; a tag is served from the copy while its ttl runs, else asked upstream with a
//! `HEAD` (the copy answers when the upstream cannot, past its ttl or not); tags and
//! referrers are listed as the upstream says, else by the copy. Writes are refused as
//! distribution refuses them in proxy mode: 405 `UNSUPPORTED`.

use std::sync::Arc;

use async_trait::async_trait;
use berth_core::{
    Algorithm, BlobContent, BlobRead, ByteStream, Chunk, Descriptor, Digest, Digester, Error, Page,
    PutManifest, RangeRequest, Reference, Repository, RepositoryName, Result, StoredManifest, Tag,
    UploadId, UploadState,
};
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;

use crate::counts::Pulled;
use crate::error::UpstreamError;
use crate::flight::{EndGuard, Flight, FlightError, SpoolWriter};
use crate::lru::Pin;
use crate::registry::Shared;
use crate::upstream::Upstream;

/// One proxied repository's handle.
pub(crate) struct ProxyRepository {
    name: RepositoryName,
    remote: String,
    local: Arc<dyn Repository>,
    upstream: Arc<Upstream>,
    shared: Arc<Shared>,
}

fn unsupported() -> Error {
    Error::Unsupported("this repository is a pull-through cache of another registry".into())
}

impl ProxyRepository {
    pub(crate) fn new(
        name: RepositoryName,
        remote: String,
        local: Box<dyn Repository>,
        upstream: Arc<Upstream>,
        shared: Arc<Shared>,
    ) -> Self {
        ProxyRepository {
            name,
            remote,
            local: Arc::from(local),
            upstream,
            shared,
        }
    }

    /// Fetches the manifest `digest` upstream, checks its bytes, keeps it (tagged `tag`
    /// when given) and answers it as stored.
    async fn fetch_manifest(&self, digest: &Digest, tag: Option<&Tag>) -> Result<StoredManifest> {
        let unknown = || Error::ManifestUnknown(format!("{}@{digest}", self.name));
        let (content_type, body) = self
            .upstream
            .get_manifest(&self.remote, &digest.to_string())
            .await
            .map_err(|e| e.into_domain(unknown))?;
        let actual = Digest::of(digest.algorithm(), &body);
        if actual != *digest {
            return Err(Error::UpstreamUnavailable(format!(
                "the upstream sent a manifest with digest {actual} for {digest}"
            )));
        }
        self.keep_manifest(digest, tag, content_type.as_deref(), body)
            .await
    }

    /// Stores upstream bytes already checked against `digest`, tagged `tag` when given.
    async fn keep_manifest(
        &self,
        digest: &Digest,
        tag: Option<&Tag>,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<StoredManifest> {
        let reference = match tag {
            Some(t) => Reference::Tag(t.clone()),
            None => Reference::Digest(digest.clone()),
        };
        self.local
            .put_copied_manifest(&reference, content_type, body)
            .await
            .map_err(|e| match e {
                // Bytes the store will not keep are the upstream's fault, not the client's.
                Error::ManifestInvalid(m) | Error::DigestInvalid(m) => {
                    Error::UpstreamUnavailable(format!("the upstream sent {digest}: {m}"))
                }
                other => other,
            })?;
        self.upstream.counts.pull(Pulled::Manifest, true);
        self.local
            .get_manifest(&Reference::Digest(digest.clone()))
            .await
    }

    /// A tag: from the copy while fresh, else as the upstream says now.
    async fn manifest_by_tag(&self, tag: &Tag) -> Result<StoredManifest> {
        let (repo, ttl) = (self.name.as_str(), self.upstream.config.ttl);
        let reference = Reference::Tag(tag.clone());
        let freshness = &self.shared.freshness;
        if freshness.is_fresh(repo, tag.as_str(), ttl)
            && let Ok(m) = self.local.get_manifest(&reference).await
        {
            self.upstream.counts.pull(Pulled::Manifest, false);
            return Ok(m);
        }
        let asked = self.ask_tag(tag).await;
        match asked {
            Ok(m) => {
                freshness.confirm(repo, tag.as_str(), ttl);
                Ok(m)
            }
            // As distribution: a tag the upstream no longer has is still served from
            // the copy when there is one.
            Err(UpstreamError::NotFound) => {
                let m = self.local.get_manifest(&reference).await?;
                self.upstream.counts.pull(Pulled::Manifest, false);
                Ok(m)
            }
            Err(e) => match self.local.get_manifest(&reference).await {
                Ok(m) => {
                    tracing::warn!(
                        repository = repo,
                        tag = tag.as_str(),
                        "serving the cached tag, which may be stale: {e}"
                    );
                    self.upstream.counts.pull(Pulled::Manifest, false);
                    Ok(m)
                }
                Err(Error::ManifestUnknown(_)) => Err(Error::UpstreamUnavailable(e.to_string())),
                Err(other) => Err(other),
            },
        }
    }

    /// Asks the upstream where `tag` points and makes the copy agree.
    async fn ask_tag(&self, tag: &Tag) -> std::result::Result<StoredManifest, UpstreamError> {
        let local_err = |e: Error| UpstreamError::Invalid(e.to_string());
        let Some(digest) = self
            .upstream
            .head_manifest(&self.remote, tag.as_str())
            .await?
        else {
            // No digest in the HEAD answer: the GET's bytes name it.
            let (content_type, body) = self
                .upstream
                .get_manifest(&self.remote, tag.as_str())
                .await?;
            let digest = Digest::of(Algorithm::Sha256, &body);
            return self
                .keep_manifest(&digest, Some(tag), content_type.as_deref(), body)
                .await
                .map_err(local_err);
        };
        match self
            .local
            .get_manifest(&Reference::Digest(digest.clone()))
            .await
        {
            Ok(m) => {
                let tagged = Reference::Tag(tag.clone());
                let current = self.local.get_manifest(&tagged).await.ok();
                if current.is_none_or(|c| c.digest != digest) {
                    self.local
                        .put_copied_manifest(&tagged, Some(&m.media_type), m.body.clone())
                        .await
                        .map_err(local_err)?;
                }
                self.upstream.counts.pull(Pulled::Manifest, false);
                Ok(m)
            }
            Err(Error::ManifestUnknown(_)) => match self.fetch_manifest(&digest, Some(tag)).await {
                Ok(m) => Ok(m),
                Err(Error::ManifestUnknown(_)) => Err(UpstreamError::NotFound),
                Err(e) => Err(UpstreamError::Invalid(e.to_string())),
            },
            Err(e) => Err(local_err(e)),
        }
    }

    /// A blob the copy lacks: its size from the upstream (HEAD), or its bytes from the
    /// one shared download.
    async fn fetch_blob(&self, digest: &Digest, read: BlobRead) -> Result<BlobContent> {
        let unknown = || Error::BlobUnknown(digest.to_string());
        let flight_error = |e: FlightError| match e {
            FlightError::NotFound => unknown(),
            FlightError::Failed(m) => Error::UpstreamUnavailable(m.to_string()),
        };
        // A range that is no range is refused (416) for the size alone: no download
        // starts for it.
        if !read.body || read.range == Some(RangeRequest::Invalid) {
            // A download in flight knows the size as soon as the upstream said it.
            let in_flight = match self.shared.flights.active(digest) {
                Some(flight) => flight.size().await.ok(),
                None => None,
            };
            let size = match in_flight {
                Some(size) => size,
                None => self
                    .upstream
                    .head_blob(&self.remote, digest)
                    .await
                    .map_err(|e| e.into_domain(unknown))?,
            };
            let range = read.range.map(|r| r.resolve(size)).transpose()?;
            return Ok(BlobContent {
                size,
                range,
                stream: None,
            });
        }
        let lead = |flight: Arc<Flight>, file: std::fs::File| -> BoxFuture<'static, ()> {
            Box::pin(download(
                self.upstream.clone(),
                self.remote.clone(),
                self.local.clone(),
                self.shared.clone(),
                digest.clone(),
                flight,
                file,
            ))
        };
        let joined = self
            .shared
            .flights
            .join(digest, lead)
            .map_err(|e| Error::internal_from("starting a proxy download", e))?;
        let size = joined.size().await.map_err(flight_error)?;
        let range = read.range.map(|r| r.resolve(size)).transpose()?;
        let (start, stop) = range.map_or((0, size), |(a, b)| (a, b + 1));
        self.upstream.counts.pull(Pulled::Blob, true);
        Ok(BlobContent {
            size,
            range,
            stream: Some(joined.stream(start, stop)),
        })
    }
}

impl ProxyRepository {
    /// A blob the copy answered: counted, its use recorded, and its bytes (if any) held
    /// by `pin` until the client has them all.
    fn served_from_copy(
        &self,
        digest: &Digest,
        mut found: BlobContent,
        pin: Option<Pin>,
    ) -> BlobContent {
        if found.stream.is_some() {
            self.upstream.counts.pull(Pulled::Blob, false);
        }
        if let Some(e) = &self.shared.eviction {
            e.used(digest, found.size);
        }
        if let Some(pin) = pin {
            found.stream = found.stream.take().map(|stream| -> ByteStream {
                Box::pin(stream.map(move |item| {
                    let _held = &pin;
                    item
                }))
            });
        }
        found
    }
}

/// The one download of a blob: upstream into the spool file, checked against its
/// digest as it arrives, then committed to the copy (see [`commit`]).
async fn download(
    upstream: Arc<Upstream>,
    remote: String,
    local: Arc<dyn Repository>,
    shared: Arc<Shared>,
    digest: Digest,
    flight: Arc<Flight>,
    file: std::fs::File,
) {
    let guard = EndGuard(flight.clone());
    let fetched = spool(&upstream, &remote, &digest, &flight, file).await;
    match fetched {
        Ok(size) => {
            flight.end(Ok(()));
            match commit(&*local, &digest, &flight).await {
                Err(e) => tracing::warn!(
                    repository = local.name().as_str(),
                    %digest,
                    "a proxied blob was served but not kept: {e}"
                ),
                Ok(_) => {
                    tracing::debug!(%digest, size, "proxied blob kept");
                    if let Some(e) = &shared.eviction {
                        e.used(&digest, size);
                    }
                }
            }
        }
        Err(e) => {
            if let FlightError::Failed(m) = &e {
                tracing::warn!(
                    upstream = upstream.config.label(),
                    repository = remote.as_str(),
                    %digest,
                    "fetching a blob failed: {m}"
                );
            }
            flight.end(Err(e));
        }
    }
    shared.flights.land(&digest, &flight);
    drop(guard);
}

/// Streams the upstream's bytes into the spool file; the size once they matched. The
/// hash runs here as the chunks arrive while a thread of the flight's writes them.
async fn spool(
    upstream: &Upstream,
    remote: &str,
    digest: &Digest,
    flight: &Arc<Flight>,
    file: std::fs::File,
) -> std::result::Result<u64, FlightError> {
    let failed = |m: String| FlightError::Failed(m.into());
    let resp = upstream
        .get_blob(remote, digest)
        .await
        .map_err(|e| match e {
            UpstreamError::NotFound => FlightError::NotFound,
            other => failed(other.to_string()),
        })?;
    let size = resp
        .content_length()
        .ok_or_else(|| failed(format!("the upstream sent {digest} without a length")))?;
    flight.update(|p| p.size = Some(size));
    let mut writer = SpoolWriter::start(flight.clone(), file)
        .map_err(|e| failed(format!("spooling {digest}: {e}")))?;
    let mut hasher = Digester::new(digest.algorithm());
    let mut body = resp.bytes_stream();
    let mut received: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| failed(format!("receiving {digest}: {e}")))?;
        received += chunk.len() as u64;
        upstream.counts.bytes(chunk.len() as u64);
        if received > size {
            return Err(failed(format!(
                "the upstream sent more than the {size} bytes it announced for {digest}"
            )));
        }
        hasher.update(&chunk);
        writer
            .write(chunk)
            .await
            .map_err(|e| failed(format!("spooling {digest}: {e}")))?;
    }
    writer
        .finish()
        .await
        .map_err(|e| failed(format!("spooling {digest}: {e}")))?;
    if received != size {
        return Err(failed(format!(
            "the upstream sent {received} of the {size} bytes it announced for {digest}"
        )));
    }
    let actual = hasher.finish();
    if actual != *digest {
        return Err(failed(format!(
            "the upstream sent bytes with digest {actual} for {digest}; refused"
        )));
    }
    Ok(size)
}

/// Stores the spooled, verified blob in the copy: linked in where the spool shares the
/// storage's file system, so readers still on the spool file and later ones on the copy
/// read the same bytes and nothing is copied or hashed again.
async fn commit(local: &dyn Repository, digest: &Digest, flight: &Flight) -> Result<u64> {
    local.adopt_blob(digest, flight.path()).await
}

#[async_trait]
impl Repository for ProxyRepository {
    fn name(&self) -> &RepositoryName {
        &self.name
    }

    /// As distribution's proxy: the upstream's list, or the copy's when the upstream
    /// cannot answer.
    async fn tags(&self, n: Option<usize>, last: Option<&str>) -> Result<Page> {
        match self.upstream.tags(&self.remote, n, last).await {
            Ok(page) => Ok(page),
            Err(e) => {
                tracing::debug!(repository = self.name.as_str(), "tags from the copy: {e}");
                self.local.tags(n, last).await
            }
        }
    }

    async fn get_manifest(&self, reference: &Reference) -> Result<StoredManifest> {
        match reference {
            Reference::Tag(t) => self.manifest_by_tag(t).await,
            Reference::Digest(d) => match self.local.get_manifest(reference).await {
                Ok(m) => {
                    self.upstream.counts.pull(Pulled::Manifest, false);
                    Ok(m)
                }
                Err(Error::ManifestUnknown(_)) => self.fetch_manifest(d, None).await,
                Err(e) => Err(e),
            },
        }
    }

    async fn put_manifest(
        &self,
        _reference: &Reference,
        _content_type: Option<&str>,
        _body: Bytes,
        _extra_tags: &[Tag],
    ) -> Result<PutManifest> {
        Err(unsupported())
    }

    async fn delete_manifest(&self, _reference: &Reference) -> Result<Vec<Tag>> {
        Err(unsupported())
    }

    async fn blob(&self, digest: &Digest, read: BlobRead) -> Result<BlobContent> {
        // Pinned before storage is asked: an eviction either sees the pin, or removes
        // the blob before this looks (then it is fetched again below).
        let pin = || {
            let eviction = self.shared.eviction.as_ref().filter(|_| read.body);
            eviction.map(|e| e.pin(digest))
        };
        let held = pin();
        match self.local.blob(digest, read).await {
            Ok(found) => return Ok(self.served_from_copy(digest, found, held)),
            Err(Error::BlobUnknown(_)) => {}
            Err(e) => return Err(e),
        }
        drop(held);
        // Kept for another repository (a base layer shared by images): linked, not
        // fetched again.
        let held = pin();
        if matches!(self.local.mount_blob(digest, None).await, Ok(true))
            && let Ok(found) = self.local.blob(digest, read).await
        {
            return Ok(self.served_from_copy(digest, found, held));
        }
        drop(held);
        self.fetch_blob(digest, read).await
    }

    async fn delete_blob(&self, _digest: &Digest) -> Result<()> {
        Err(unsupported())
    }

    async fn mount_blob(&self, _digest: &Digest, _from: Option<&RepositoryName>) -> Result<bool> {
        Err(unsupported())
    }

    async fn start_upload(&self, _algorithm: Algorithm) -> Result<UploadState> {
        Err(unsupported())
    }

    async fn upload_status(&self, id: &UploadId) -> Result<UploadState> {
        Err(Error::BlobUploadUnknown(id.to_string()))
    }

    async fn upload_chunk(&self, id: &UploadId, _chunk: Chunk) -> Result<UploadState> {
        Err(Error::BlobUploadUnknown(id.to_string()))
    }

    async fn finish_upload(
        &self,
        id: &UploadId,
        _digest: &Digest,
        _last_chunk: Option<Chunk>,
    ) -> Result<u64> {
        Err(Error::BlobUploadUnknown(id.to_string()))
    }

    async fn cancel_upload(&self, id: &UploadId) -> Result<()> {
        Err(Error::BlobUploadUnknown(id.to_string()))
    }

    /// Only the cache itself stores what it fetched, in the wrapped repository.
    async fn adopt_blob(&self, _digest: &Digest, _file: &std::path::Path) -> Result<u64> {
        Err(unsupported())
    }

    /// As the upstream's referrers API says; when it cannot answer (down, or without
    /// the API), the referrers among the manifests pulled so far.
    async fn referrers(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        match self
            .upstream
            .referrers(&self.remote, subject, artifact_type)
            .await
        {
            Ok(found) => Ok(found),
            Err(e) => {
                tracing::debug!(
                    repository = self.name.as_str(),
                    %subject,
                    "referrers from the copy: {e}"
                );
                self.local.referrers(subject, artifact_type).await
            }
        }
    }
}
