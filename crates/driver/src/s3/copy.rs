//! Server-side copies of large objects in parts (`UploadPartCopy`), which object_store
//! does not offer: `CopyObject` refuses objects over 5 GiB, and parts copied
//! concurrently move large blobs faster. Each part request is signed with
//! object_store's own SigV4 authorizer and sent with reqwest; the multipart upload is
//! created and completed through object_store.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AwsAuthorizer, AwsCredential};
use object_store::client::HttpRequestBody;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjPath;
use object_store::{Attributes, PutMultipartOptions};

use super::store_error;
use crate::DriverError;

/// Where and how parts are copied.
pub(crate) struct Copier {
    pub(crate) http: reqwest013::Client,
    /// `https://bucket.host` or `https://host/bucket`, as object_store addresses the
    /// bucket.
    pub(crate) bucket_endpoint: String,
    pub(crate) bucket: String,
    pub(crate) region: String,
    pub(crate) part: u64,
    pub(crate) threshold: u64,
    pub(crate) concurrency: usize,
}

fn io_err(path: &str, msg: String) -> DriverError {
    DriverError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(msg),
    }
}

/// A key percent-encoded for a URL path, slashes kept.
fn encode_key(key: &ObjPath) -> String {
    let mut out = String::with_capacity(key.as_ref().len());
    for b in key.as_ref().bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The ETag in a `CopyPartResult` answer.
fn etag_of(xml: &str) -> Option<String> {
    let start = xml.find("<ETag>")? + "<ETag>".len();
    let end = start + xml[start..].find("</ETag>")?;
    Some(
        xml[start..end]
            .replace("&quot;", "\"")
            .replace("&#34;", "\""),
    )
}

impl Copier {
    /// Whether an object of `size` bytes is copied in parts.
    pub(crate) fn in_parts(&self, size: u64) -> bool {
        size > self.threshold
    }

    /// Copies `from` (of `size` bytes) to `to` in parts of at most `part` bytes, up to
    /// `concurrency` at a time; on failure the multipart upload is aborted.
    pub(crate) async fn copy(
        &self,
        store: &Arc<AmazonS3>,
        attributes: &Attributes,
        from: &ObjPath,
        to: &ObjPath,
        size: u64,
        path: &str,
    ) -> Result<(), DriverError> {
        let opts = PutMultipartOptions {
            attributes: attributes.clone(),
            ..Default::default()
        };
        let id = store
            .create_multipart_opts(to, opts)
            .await
            .map_err(|e| store_error(path, e))?;
        let cred = store
            .credentials()
            .get_credential()
            .await
            .map_err(|e| store_error(path, e))?;
        let ranges: Vec<(usize, u64, u64)> = (0..size.div_ceil(self.part))
            .map(|i| {
                let a = i * self.part;
                (i as usize + 1, a, (a + self.part).min(size) - 1)
            })
            .collect();
        let copied: Result<Vec<String>, DriverError> = futures::stream::iter(ranges)
            .map(|(n, a, b)| self.copy_part(&cred, from, to, &id, n, a, b, path))
            .buffered(self.concurrency.max(1))
            .try_collect()
            .await;
        let etags = match copied {
            Ok(e) => e,
            Err(e) => {
                let _ = store.abort_multipart(to, &id).await;
                return Err(e);
            }
        };
        let parts = etags
            .into_iter()
            .map(|content_id| PartId { content_id })
            .collect();
        store
            .complete_multipart(to, &id, parts)
            .await
            .map_err(|e| store_error(path, e))?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy_part(
        &self,
        cred: &AwsCredential,
        from: &ObjPath,
        to: &ObjPath,
        upload_id: &str,
        number: usize,
        first: u64,
        last: u64,
        path: &str,
    ) -> Result<String, DriverError> {
        let upload: String = url::form_urlencoded::byte_serialize(upload_id.as_bytes()).collect();
        let uri = format!(
            "{}/{}?partNumber={number}&uploadId={upload}",
            self.bucket_endpoint.trim_end_matches('/'),
            encode_key(to)
        );
        let mut req = http::Request::builder()
            .method(http::Method::PUT)
            .uri(&uri)
            .header(
                "x-amz-copy-source",
                format!("/{}/{}", self.bucket, encode_key(from)),
            )
            .header("x-amz-copy-source-range", format!("bytes={first}-{last}"))
            .body(HttpRequestBody::from(Bytes::new()))
            .map_err(|e| io_err(path, format!("copy request: {e}")))?;
        AwsAuthorizer::new(cred, "s3", &self.region)
            .try_authorize(&mut req, None)
            .map_err(|e| store_error(path, e))?;
        let (parts, _) = req.into_parts();
        let resp = self
            .http
            .request(parts.method, uri)
            .headers(parts.headers)
            .send()
            .await
            .map_err(|e| io_err(path, format!("copying part {number}: {e}")))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| io_err(path, format!("copying part {number}: {e}")))?;
        if !status.is_success() {
            return Err(io_err(
                path,
                format!("copying part {number}: {status}: {text}"),
            ));
        }
        etag_of(&text).ok_or_else(|| io_err(path, format!("copying part {number}: no ETag")))
    }
}

#[cfg(test)]
mod tests {
    use super::{encode_key, etag_of};
    use object_store::path::Path;

    #[test]
    fn keys_and_etags() {
        assert_eq!(
            encode_key(&Path::from("r/docker/a b/x+y")),
            "r/docker/a%20b/x%2By"
        );
        let xml = "<CopyPartResult><LastModified>x</LastModified><ETag>&quot;abc&quot;</ETag></CopyPartResult>";
        assert_eq!(etag_of(xml).as_deref(), Some("\"abc\""));
        assert_eq!(etag_of("<Error/>"), None);
    }
}
