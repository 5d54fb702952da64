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
        let uri = format!(
            "{}/{}?partNumber={number}&uploadId={}",
            self.bucket_endpoint.trim_end_matches('/'),
            encode_key(to),
            query_value(upload_id)
        );
        let headers = [
            (
                "x-amz-copy-source",
                format!("/{}/{}", self.bucket, encode_key(from)),
            ),
            ("x-amz-copy-source-range", format!("bytes={first}-{last}")),
        ];
        let what = format!("copying part {number}");
        let text = self
            .send(cred, http::Method::PUT, uri, &headers, &what, path)
            .await?;
        etag_of(&text).ok_or_else(|| io_err(path, format!("{what}: no ETag")))
    }

    /// The multipart uploads (key, upload id) in progress under `prefix`
    /// (ListMultipartUploads, which object_store does not offer either).
    pub(crate) async fn uploads_under(
        &self,
        store: &AmazonS3,
        prefix: &str,
        path: &str,
    ) -> Result<Vec<(String, String)>, DriverError> {
        let cred = store
            .credentials()
            .get_credential()
            .await
            .map_err(|e| store_error(path, e))?;
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut uri = format!(
                "{}/?uploads=&prefix={}",
                self.bucket_endpoint.trim_end_matches('/'),
                query_value(prefix)
            );
            if let Some((key, id)) = &markers {
                uri.push_str(&format!(
                    "&key-marker={}&upload-id-marker={}",
                    query_value(key),
                    query_value(id)
                ));
            }
            let text = self
                .send(&cred, http::Method::GET, uri, &[], "listing uploads", path)
                .await?;
            for block in elements(&text, "Upload") {
                if let (Some(k), Some(id)) = (
                    elements(block, "Key").next(),
                    elements(block, "UploadId").next(),
                ) {
                    out.push((unescape(k), unescape(id)));
                }
            }
            let truncated = elements(&text, "IsTruncated").next() == Some("true");
            let next = (
                elements(&text, "NextKeyMarker").next().map(unescape),
                elements(&text, "NextUploadIdMarker").next().map(unescape),
            );
            match next {
                (Some(k), Some(id))
                    if truncated && markers.as_ref() != Some(&(k.clone(), id.clone())) =>
                {
                    markers = Some((k, id));
                }
                _ => return Ok(out),
            }
        }
    }

    /// Sends one request signed with SigV4 and an empty body; answers the response
    /// body of a success.
    async fn send(
        &self,
        cred: &AwsCredential,
        method: http::Method,
        uri: String,
        headers: &[(&str, String)],
        what: &str,
        path: &str,
    ) -> Result<String, DriverError> {
        let mut b = http::Request::builder().method(method).uri(&uri);
        for (k, v) in headers {
            b = b.header(*k, v);
        }
        let mut req = b
            .body(HttpRequestBody::from(Bytes::new()))
            .map_err(|e| io_err(path, format!("{what}: {e}")))?;
        AwsAuthorizer::new(cred, "s3", &self.region)
            .try_authorize(&mut req, None)
            .map_err(|e| store_error(path, e))?;
        let (parts, _) = req.into_parts();
        let mut out = self
            .http
            .request(parts.method.clone(), uri)
            .headers(parts.headers);
        if parts.method == http::Method::PUT {
            // Some gateways (Ceph radosgw) answer 411 to a PUT without a length, and an
            // empty body is sent without one. Unsigned, which SigV4 allows.
            out = out.header(http::header::CONTENT_LENGTH, "0");
        }
        let resp = out
            .send()
            .await
            .map_err(|e| io_err(path, format!("{what}: {e}")))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| io_err(path, format!("{what}: {e}")))?;
        if !status.is_success() {
            return Err(io_err(path, format!("{what}: {status}: {text}")));
        }
        Ok(text)
    }
}

/// A query-string value, percent-encoded.
fn query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of every `<name>...</name>` element in `xml` (no nesting of the same name,
/// which S3's answers do not have).
fn elements<'a>(xml: &'a str, name: &str) -> impl Iterator<Item = &'a str> + 'a {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let end = start + rest[start..].find(&close)?;
        let found = &rest[start..end];
        rest = &rest[end + close.len()..];
        Some(found)
    })
}

/// XML's predefined entities decoded.
fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The ETag in a `CopyPartResult` answer.
fn etag_of(xml: &str) -> Option<String> {
    elements(xml, "ETag").next().map(unescape)
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
        let list = "<R><Upload><Key>a/b&amp;c</Key><UploadId>1</UploadId></Upload>\
                    <Upload><Key>a/d</Key><UploadId>2</UploadId></Upload></R>";
        let keys: Vec<&str> = super::elements(list, "Key").collect();
        assert_eq!(keys, ["a/b&amp;c", "a/d"]);
        assert_eq!(super::unescape(keys[0]), "a/b&c");
    }
}
