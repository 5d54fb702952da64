//! berth-core: the registry's vocabulary. Identifiers (digests, repository names, tags,
//! references), descriptors, manifest parsing and validation rules, the domain error, and
//! the `Registry`/`Repository` service traits that the HTTP layer calls and the storage layer implements.
//! Nothing here performs I/O.

pub mod descriptor;
pub mod digest;
pub mod error;
pub mod manifest;
pub mod media;
pub mod name;
pub mod range;
pub mod reference;
pub mod service;
pub mod upload;

pub use descriptor::{Descriptor, Platform};
pub use digest::{Algorithm, Digest, Digester};
pub use error::{BoxError, Error, Result};
pub use manifest::Manifest;
pub use name::{RepositoryName, Tag};
pub use range::RangeRequest;
pub use reference::Reference;
pub use service::{
    BlobContent, BlobRead, ByteStream, Page, PutManifest, Registry, Repository, StoredManifest,
    UploadState,
};
pub use upload::{Chunk, UploadId};
