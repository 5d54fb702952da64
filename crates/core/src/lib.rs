//! berth-core: the registry's vocabulary. Identifiers (digests, repository names, tags,
//! references), descriptors, manifest parsing and validation rules, the domain error, and
//! the `Registry` service trait that the HTTP layer calls and the storage layer implements.
//! Nothing here performs I/O.

pub mod descriptor;
pub mod digest;
pub mod error;
pub mod manifest;
pub mod media;
pub mod name;
pub mod reference;
pub mod service;

pub use descriptor::Descriptor;
pub use digest::{Algorithm, Digest, Digester};
pub use error::{Error, Result};
pub use manifest::Manifest;
pub use name::{RepositoryName, Tag};
pub use reference::Reference;
pub use service::{
    BlobContent, ByteStream, Page, PutManifest, Registry, StoredManifest, UploadState,
};
