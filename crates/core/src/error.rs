//! The domain error: what can go wrong in a registry operation, independent of HTTP.
//! `berth-http` maps each variant to a status and an OCI error code in one place.

/// Result with the domain error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a registry operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The blob is not known in this repository.
    #[error("blob unknown to registry: {0}")]
    BlobUnknown(String),
    /// The upload session does not exist (or was finished or cancelled).
    #[error("blob upload unknown to registry: {0}")]
    BlobUploadUnknown(String),
    /// The upload request is malformed.
    #[error("blob upload invalid: {0}")]
    BlobUploadInvalid(String),
    /// A chunk does not start where the upload currently ends.
    #[error("chunk out of order: upload is at offset {offset}, chunk starts at {start}")]
    ChunkOutOfOrder {
        /// Bytes received so far.
        offset: u64,
        /// Where the rejected chunk claimed to start.
        start: u64,
    },
    /// A byte range of a blob that lies outside it.
    #[error("range not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable {
        /// The blob's size.
        size: u64,
    },
    /// A digest is malformed, unsupported, or does not match the content.
    #[error("{0}")]
    DigestInvalid(String),
    /// A manifest references a blob or manifest that is not in the repository.
    #[error("manifest references unknown blob {0}")]
    ManifestBlobUnknown(String),
    /// A manifest is malformed or fails validation.
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    /// The manifest (tag or digest) is not known in this repository.
    #[error("manifest unknown: {0}")]
    ManifestUnknown(String),
    /// A manifest larger than the configured limit.
    #[error("manifest of {size} bytes exceeds the limit of {limit} bytes")]
    ManifestTooLarge {
        /// Bytes received (or announced).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A repository name does not match the grammar.
    #[error("invalid repository name: {0}")]
    NameInvalid(String),
    /// The repository does not exist.
    #[error("repository name not known to registry: {0}")]
    NameUnknown(String),
    /// A tag does not match the grammar.
    #[error("invalid tag: {0}")]
    TagInvalid(String),
    /// Content length does not match what was declared.
    #[error("{0}")]
    SizeInvalid(String),
    /// A pagination parameter is malformed.
    #[error("invalid pagination parameter: {0}")]
    PaginationInvalid(String),
    /// The operation is disabled by configuration (deletes, read-only mode) or not implemented.
    #[error("{0}")]
    Unsupported(String),
    /// Opening an upload session would pass this node's bound on open sessions
    /// (`berth.limits.maxuploadsessions`); one frees up when a session finishes, is
    /// cancelled or purged.
    #[error("too many open upload sessions (the limit is {limit}); retry later")]
    TooManyUploads {
        /// The configured bound.
        limit: usize,
    },
    /// Another node of the fleet has held what the request must change for longer than
    /// this node waits (`berth.redis.locklease`, six times over): a retry may find it free.
    #[error("busy: {0}; retry")]
    Busy(String),
    /// The registry this one mirrors (a pull-through cache's upstream) could not answer:
    /// unreachable, failing, or sending what does not match its digest; and nothing
    /// cached could stand in.
    #[error("upstream unavailable: {0}")]
    UpstreamUnavailable(String),
    /// Storage could not be reached or did not answer in time (after the driver's
    /// retries): nothing was changed that a retry would not redo.
    #[error("{0}; retry later")]
    StorageUnavailable(String),
    /// The client's request body ended early or could not be read.
    #[error("request body: {0}")]
    BodyRead(#[source] std::io::Error),
    /// A storage or internal failure: not the client's fault.
    #[error("internal error: {message}")]
    Internal {
        /// What failed, for the log and the response.
        message: String,
        /// The underlying failure, kept for logs.
        #[source]
        source: Option<BoxError>,
    },
}

/// Any error, as kept in [`Error::Internal`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Error {
    /// An internal failure described by `message` alone.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal {
            message: message.into(),
            source: None,
        }
    }

    /// An internal failure caused by `source`; the message names both.
    pub fn internal_from(
        context: impl std::fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Internal {
            message: format!("{context}: {source}"),
            source: Some(Box::new(source)),
        }
    }
}
