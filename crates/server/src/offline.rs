//! What the offline subcommands (`check-storage`, `garbage-collect`) share: opening the
//! storage a configuration names while no registry runs on it (an existing filesystem
//! root only: a directory a typo just created would look like an empty registry), and a
//! runtime to walk it on. The configuration's serving switches (`storage.delete.enabled`,
//! `storage.maintenance.readonly`) are not read: they govern clients, and these commands
//! are the operator's.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use berth_driver::{FilesystemDriver, InMemoryDriver, StorageDriver};
use berth_storage::{Options, StorageRegistry};

use crate::config::{Config, Driver};

/// Why an offline command could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The configured filesystem root is not a directory.
    #[error("storage root {0} does not exist or is not a directory")]
    MissingRoot(PathBuf),
    /// The command needs storage that outlives a registry process.
    #[error(
        "the configuration names storage.inmemory, which holds nothing once its registry \
         stops: {0} works on filesystem storage"
    )]
    InMemory(&'static str),
    /// The storage driver could not be set up.
    #[error("storage driver: {0}")]
    Driver(berth_driver::DriverError),
    /// The async runtime did not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// Storage failed during the walk or a removal.
    #[error("{0}")]
    Storage(#[from] berth_core::Error),
    /// The report could not be written (a closed pipe).
    #[error("cannot write the report: {0}")]
    Output(std::io::Error),
}

/// The storage a configuration names, opened for one offline command.
pub struct Offline {
    /// The stores over the driver: deletes allowed, no descriptor cache (every answer
    /// comes from storage).
    pub registry: StorageRegistry,
    /// Prepended to every driver path printed (the filesystem root; empty in memory).
    pub root: String,
    runtime: tokio::runtime::Runtime,
}

impl Offline {
    /// Opens the storage of `config` for the command named `command`; in-memory storage
    /// is opened empty when `memory_ok`, else refused.
    pub fn open(
        config: &Config,
        command: &'static str,
        memory_ok: bool,
    ) -> Result<Offline, OfflineError> {
        let (driver, root): (Arc<dyn StorageDriver>, String) = match &config.storage.driver {
            Driver::Filesystem { root, fsync } => {
                if !root.is_dir() {
                    return Err(OfflineError::MissingRoot(root.clone()));
                }
                let shown = root.display().to_string().trim_end_matches('/').to_owned();
                let driver = FilesystemDriver::new(root.clone()).with_fsync(*fsync);
                (Arc::new(driver), shown)
            }
            Driver::InMemory if memory_ok => (Arc::new(InMemoryDriver::new()), String::new()),
            Driver::InMemory => return Err(OfflineError::InMemory(command)),
            Driver::S3(opts) => {
                let driver = berth_driver::S3Driver::new(opts).map_err(OfflineError::Driver)?;
                let root = opts.root_directory.trim_matches('/');
                (Arc::new(driver), format!("s3://{}/{root}", opts.bucket))
            }
        };
        // Deletes are how repairs and collections work, whatever clients are allowed.
        let options = Options {
            delete_enabled: true,
            descriptor_cache: None,
            ..Options::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(OfflineError::Runtime)?;
        Ok(Offline {
            registry: StorageRegistry::new(driver, options),
            root,
            runtime,
        })
    }

    /// Runs a walk to its end.
    pub fn block_on<F: Future>(&self, walk: F) -> F::Output {
        self.runtime.block_on(walk)
    }
}
