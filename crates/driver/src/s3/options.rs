//! What the S3 driver needs to reach its bucket, as distribution's `storage.s3` names it.
//! The server's configuration fills this in; the driver knows nothing of YAML.

/// S3's smallest part of a multipart upload (except the last).
pub const MIN_PART: usize = 5 * 1024 * 1024;

/// Settings for [`S3Driver`](super::S3Driver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Options {
    /// The bucket.
    pub bucket: String,
    /// The region (`us-east-1` unless told).
    pub region: String,
    /// An S3-compatible endpoint (`regionendpoint`); a bare host gets `https://`, or
    /// `http://` when `secure` is off.
    pub endpoint: Option<String>,
    /// Access key; with the secret, replaces the AWS environment credentials.
    pub access_key: Option<String>,
    /// Secret key.
    pub secret_key: Option<String>,
    /// A prefix inside the bucket (`rootdirectory`), with or without slashes.
    pub root_directory: String,
    /// Path-style requests (`http://host/bucket/key`) instead of virtual hosts.
    pub force_path_style: bool,
    /// HTTPS for a bare-host endpoint.
    pub secure: bool,
    /// Accept any server certificate.
    pub skip_verify: bool,
    /// Bytes per part of a multipart upload (`chunksize`, at least 5 MiB).
    pub chunk_size: usize,
    /// Objects larger than this are moved by a multipart copy
    /// (`multipartcopythresholdsize`).
    pub copy_threshold: u64,
    /// Part size of a multipart copy (`multipartcopychunksize`).
    pub copy_part: u64,
    /// Parts of one multipart copy in flight at once (`multipartcopymaxconcurrency`).
    pub copy_concurrency: usize,
    /// `x-amz-storage-class` for new objects.
    pub storage_class: Option<String>,
    /// Server-side encryption: SSE-KMS with `key_id` when given, SSE-S3 otherwise.
    pub encrypt: bool,
    /// The KMS key for `encrypt`.
    pub key_id: Option<String>,
}

impl S3Options {
    /// Defaults for a bucket, as distribution's.
    pub fn new(bucket: impl Into<String>, region: impl Into<String>) -> Self {
        S3Options {
            bucket: bucket.into(),
            region: region.into(),
            endpoint: None,
            access_key: None,
            secret_key: None,
            root_directory: String::new(),
            force_path_style: false,
            secure: true,
            skip_verify: false,
            chunk_size: 10 * 1024 * 1024,
            copy_threshold: 32 * 1024 * 1024,
            copy_part: 32 * 1024 * 1024,
            copy_concurrency: 100,
            storage_class: None,
            encrypt: false,
            key_id: None,
        }
    }

    /// The URL prefix of the bucket's objects, as object_store addresses them.
    pub(crate) fn bucket_endpoint(&self) -> String {
        match self.endpoint_url() {
            Some(e) if self.force_path_style => format!("{e}/{}", self.bucket),
            Some(e) => e,
            None if self.force_path_style => {
                format!("https://s3.{}.amazonaws.com/{}", self.region, self.bucket)
            }
            None => format!("https://{}.s3.{}.amazonaws.com", self.bucket, self.region),
        }
    }

    /// The endpoint URL, with a scheme. Without `force_path_style` the bucket is the
    /// first label of the host (`https://bucket.minio:9000`), as an AWS SDK sends
    /// it; object_store takes a virtual-hosted endpoint as given.
    pub(crate) fn endpoint_url(&self) -> Option<String> {
        let e = self.endpoint.as_deref()?.trim_end_matches('/');
        let (scheme, rest) = match e.split_once("://") {
            Some((s, r)) => (s, r),
            None if self.secure => ("https", e),
            None => ("http", e),
        };
        if self.force_path_style {
            Some(format!("{scheme}://{rest}"))
        } else {
            Some(format!("{scheme}://{}.{rest}", self.bucket))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::S3Options;

    #[test]
    fn endpoints() {
        let mut o = S3Options::new("b", "r");
        assert_eq!(o.endpoint_url(), None);
        o.endpoint = Some("minio:9000/".into());
        assert_eq!(o.endpoint_url().as_deref(), Some("https://b.minio:9000"));
        o.secure = false;
        assert_eq!(o.endpoint_url().as_deref(), Some("http://b.minio:9000"));
        o.force_path_style = true;
        assert_eq!(o.endpoint_url().as_deref(), Some("http://minio:9000"));
        o.endpoint = Some("https://s3.example".into());
        assert_eq!(o.endpoint_url().as_deref(), Some("https://s3.example"));
    }
}
