//! [`BlockingClient`]: the async [`Client`] for synchronous code (the end-to-end tests,
//! which drive processes and wait on them), through a single-threaded runtime the
//! wrapper owns. Not for use inside an async runtime: blocking on one there panics.

use std::future::Future;

use crate::client::Client;
use crate::error::Error;

/// A [`Client`] with its own runtime; [`BlockingClient::run`] waits for one operation.
pub struct BlockingClient {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl BlockingClient {
    /// Wraps `client` with a fresh single-threaded runtime.
    pub fn new(client: Client) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        Ok(Self { runtime, client })
    }

    /// A blocking client for `base_url` with the default settings.
    pub fn connect(base_url: &str) -> Result<Self, Error> {
        Self::new(Client::new(base_url)?)
    }

    /// The async client inside.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs one operation of the client to its end, e.g.
    /// `reg.run(|c| c.get_manifest("team/app", "v1", accept))`.
    pub fn run<'a, F: Future + 'a>(&'a self, op: impl FnOnce(&'a Client) -> F) -> F::Output {
        self.runtime.block_on(op(&self.client))
    }
}
