//! Writers: bytes buffered up to one part, then sent as parts of a multipart upload, so
//! a node never holds more than a few parts of a large file. Parts are sent in the
//! background, [`IN_FLIGHT`] at most, while the next one fills: the client's bytes keep
//! flowing while the store takes the last part. A plain writer completes the upload (or
//! PUTs a small file whole) on commit; an appending writer leaves a pending object (see
//! `pending`) so that any node can continue the file later.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjPath;
use object_store::{
    Attribute, Attributes, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
};

use super::options::MIN_PART;
use super::pending::{META_KEY, PendingState};
use super::store_error;
use crate::{DriverError, FileWriter};

/// Parts being sent at once by one writer (each holds a part's bytes until answered).
const IN_FLIGHT: usize = 2;

/// A part being sent: its number's answer, the part's ETag.
type Sending = tokio::task::JoinHandle<Result<String, object_store::Error>>;

/// A file being written to S3.
pub(crate) struct S3Writer {
    pub(crate) store: Arc<AmazonS3>,
    pub(crate) key: ObjPath,
    pub(crate) path: String,
    pub(crate) chunk: usize,
    pub(crate) attributes: Attributes,
    /// Leave a pending object on commit rather than completing the upload.
    pub(crate) append: bool,
    pub(crate) state: PendingState,
    /// Bytes not yet in a part.
    pub(crate) buf: BytesMut,
    /// Parts sent and not yet answered, in part-number order after `state.parts`.
    pub(crate) sending: std::collections::VecDeque<Sending>,
    /// A part failed: its bytes are counted in `state.parts_len` but in no part, so the
    /// writer takes no more bytes and its commit records nothing (the file stays as the
    /// last commit left it).
    pub(crate) failed: bool,
    /// The write ended: committed, or aborted by the caller. A plain writer dropped
    /// before either aborts its multipart upload (see `Drop`).
    pub(crate) finished: bool,
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // A plain writer dropped unfinished (a request cut short, a push never
        // published, a failed commit): its parts would stay in the bucket, billed, until
        // a lifecycle rule expires them. An appending writer's parts belong to the
        // pending object, which stays as its last commit left it.
        if self.finished || self.append || self.state.upload_id.is_empty() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store, key) = (self.store.clone(), self.key.clone());
        let id = std::mem::take(&mut self.state.upload_id);
        let sending = std::mem::take(&mut self.sending);
        rt.spawn(async move {
            // Parts still on their way would otherwise land after the abort, and be kept.
            for part in sending {
                let _ = part.await;
            }
            let _ = store.abort_multipart(&key, &id).await;
        });
    }
}

impl S3Writer {
    fn err(&self, e: object_store::Error) -> DriverError {
        store_error(&self.path, e)
    }

    /// Starts sending the first `len` buffered bytes as the next part, once fewer than
    /// [`IN_FLIGHT`] parts are on their way.
    async fn send_part(&mut self, len: usize) -> Result<(), DriverError> {
        if self.state.upload_id.is_empty() {
            let opts = PutMultipartOptions {
                attributes: self.attributes.clone(),
                ..Default::default()
            };
            self.state.upload_id = self
                .store
                .create_multipart_opts(&self.key, opts)
                .await
                .map_err(|e| self.err(e))?;
        }
        while self.sending.len() >= IN_FLIGHT {
            self.wait_oldest().await?;
        }
        let part = self.buf.split_to(len).freeze();
        let number = self.state.parts.len() + self.sending.len();
        let (store, key, id) = (
            self.store.clone(),
            self.key.clone(),
            self.state.upload_id.clone(),
        );
        self.sending.push_back(tokio::spawn(async move {
            let payload = PutPayload::from_bytes(part);
            let answer = store.put_part(&key, &id, number, payload).await?;
            Ok(answer.content_id)
        }));
        self.state.parts_len += len as u64;
        Ok(())
    }

    /// Waits for the oldest part on its way and records its ETag.
    async fn wait_oldest(&mut self) -> Result<(), DriverError> {
        let Some(sending) = self.sending.pop_front() else {
            return Ok(());
        };
        let answer = match sending.await {
            Ok(answer) => answer.map_err(|e| self.err(e)),
            Err(e) => Err(store_error(
                &self.path,
                object_store::Error::JoinError { source: e },
            )),
        };
        match answer {
            Ok(etag) => {
                self.state.parts.push(etag);
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// Waits until every part sent is answered (all of them, so none lands later);
    /// fails if any part of this writer failed.
    async fn settle(&mut self) -> Result<(), DriverError> {
        let mut first = None;
        while !self.sending.is_empty() {
            if let Err(e) = self.wait_oldest().await {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(e),
            None if self.failed => Err(self.broken()),
            None => Ok(()),
        }
    }

    /// The error of a writer one of whose parts failed.
    fn broken(&self) -> DriverError {
        super::io_error(
            &self.path,
            "a part of this write failed; nothing was recorded",
        )
    }

    /// One whole object with `attributes`.
    async fn put(&self, body: Bytes, attributes: Attributes) -> Result<(), DriverError> {
        let opts = PutOptions {
            attributes,
            ..Default::default()
        };
        self.store
            .put_opts(&self.key, PutPayload::from_bytes(body), opts)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

/// Completes a multipart upload whose last part is `tail` (skipped when empty), making
/// the key an ordinary object.
pub(crate) async fn complete(
    store: &AmazonS3,
    key: &ObjPath,
    path: &str,
    mut state: PendingState,
    tail: Bytes,
) -> Result<(), DriverError> {
    if !tail.is_empty() {
        let id = store
            .put_part(
                key,
                &state.upload_id,
                state.parts.len(),
                PutPayload::from_bytes(tail),
            )
            .await
            .map_err(|e| store_error(path, e))?;
        state.parts.push(id.content_id);
    }
    let parts = state
        .parts
        .into_iter()
        .map(|content_id| PartId { content_id })
        .collect();
    store
        .complete_multipart(key, &state.upload_id, parts)
        .await
        .map_err(|e| store_error(path, e))?;
    Ok(())
}

#[async_trait]
impl FileWriter for S3Writer {
    async fn write(&mut self, data: Bytes) -> Result<(), DriverError> {
        if self.failed {
            return Err(self.broken());
        }
        self.buf.extend_from_slice(&data);
        while self.buf.len() >= self.chunk {
            self.send_part(self.chunk).await?;
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.state.parts_len + self.buf.len() as u64
    }

    async fn commit(mut self: Box<Self>) -> Result<(), DriverError> {
        self.settle().await?;
        if self.state.upload_id.is_empty() {
            // Small enough to be one object: nothing pending, nothing to resume.
            let body = std::mem::take(&mut self.buf).freeze();
            return self.put(body, self.attributes.clone()).await;
        }
        if !self.append {
            let tail = std::mem::take(&mut self.buf).freeze();
            complete(&self.store, &self.key, &self.path, self.state.clone(), tail).await?;
            self.finished = true;
            return Ok(());
        }
        if self.buf.len() >= MIN_PART {
            self.send_part(self.buf.len()).await?;
            self.settle().await?;
        }
        // The parts are in the multipart upload; the tail and the list of parts go into
        // one object before the write is acknowledged, so no acknowledged byte depends
        // on this node staying alive.
        let size = self.size();
        let body = self.state.encode(&self.buf);
        let mut attributes = self.attributes.clone();
        attributes.insert(
            Attribute::Metadata(META_KEY.into()),
            size.to_string().into(),
        );
        self.put(body, attributes).await
    }

    async fn abort(mut self: Box<Self>) -> Result<(), DriverError> {
        // Parts still on their way would otherwise land after the abort, and be kept.
        for sending in std::mem::take(&mut self.sending) {
            let _ = sending.await;
        }
        self.finished = true;
        if self.append || self.state.upload_id.is_empty() {
            // An appending writer's parts belong to the pending object, which stays as
            // the last commit left it; a small file was never sent.
            return Ok(());
        }
        self.store
            .abort_multipart(&self.key, &self.state.upload_id)
            .await
            .map_err(|e| self.err(e))
    }
}
