//! berth-client: an HTTP client for any registry speaking the OCI Distribution Spec
//! v1.1 / Docker Registry V2 API, shared by the conformance suite, the benchmark and the
//! end-to-end tests. It knows the API, not berth: it depends on no other berth crate.
//!
//! - [`Client`] (`client.rs`): the connection pool, the base URL, and `send`, the one
//!   place requests go out. Every status is an answer ([`Response`]); only a request
//!   that got no answer is an [`Error`].
//! - `ops.rs`: the API as methods, one request each (blobs, uploads, mounts,
//!   manifests, listings, referrers), plus the monolithic and chunked push workflows.
//! - [`Request`] and [`Body`] (`request.rs`): the escape hatch for requests the typed
//!   methods do not build, e.g. a conformance check that sends bad input.
//! - [`Response`] and [`Streaming`] (`response.rs`): headers, `Location`, the `Link`
//!   to the next page, listings, error codes, a one-line account for failures.
//! - [`raw`]: the lean raw-socket `GET` the benchmark times large pulls with.
//! - [`blocking`]: the client for synchronous callers.
//!
//! ```text
//! let reg = berth_client::Client::new("http://127.0.0.1:5000")?;
//! let r = reg.push_blob("team/app", &digest, bytes).await?;     // 201 or an error
//! let m = reg.get_manifest("team/app", "v1", OCI_MANIFEST).await?;
//! m.require_status(200)?;
//! ```

pub mod blocking;
mod client;
mod error;
mod ops;
pub mod raw;
mod request;
mod response;

pub use blocking::BlockingClient;
pub use client::{Client, ClientBuilder};
pub use error::Error;
pub use ops::{ByteRange, OCTET_STREAM, with_digest};
pub use request::{Body, PieceStream, Request};
pub use reqwest::Method;
pub use reqwest::header::HeaderMap;
pub use response::{Response, Streaming, parse_next_link};
pub use url::Url;
