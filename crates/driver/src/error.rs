//! Driver errors: the only failure vocabulary the stores interpret.

/// A storage driver failure.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// Nothing at this path.
    #[error("path not found: {0}")]
    PathNotFound(String),
    /// A malformed path (relative, empty or dot segments).
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// An offset past the end of the file.
    #[error("invalid offset {offset} for {path}")]
    InvalidOffset {
        /// The path.
        path: String,
        /// The offset asked for.
        offset: u64,
    },
    /// The backend could not be reached, or did not answer in time, after the
    /// driver's own retries (an object store that is down, overloaded or cut off): the
    /// request may succeed later.
    #[error("storage unavailable on {path}: {source}")]
    Unavailable {
        /// The path involved.
        path: String,
        /// The backend's error.
        #[source]
        source: std::io::Error,
    },
    /// Any other backend failure.
    #[error("storage I/O on {path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The backend's error.
        #[source]
        source: std::io::Error,
    },
}

impl DriverError {
    /// Classifies an I/O error on `path`, turning "not found" into `PathNotFound`.
    pub fn io(path: &str, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            DriverError::PathNotFound(path.to_owned())
        } else {
            DriverError::Io {
                path: path.to_owned(),
                source,
            }
        }
    }

    /// Whether this is `PathNotFound`.
    pub fn is_not_found(&self) -> bool {
        matches!(self, DriverError::PathNotFound(_))
    }
}
