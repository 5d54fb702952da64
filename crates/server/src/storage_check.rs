//! `berth check-storage`: opens the storage a configuration names (an existing root only:
//! checking a directory a typo just created would report a clean registry), runs the
//! storage check of `berth-storage`, and renders its report as text, one line per
//! finding and a summary.

use std::path::PathBuf;
use std::sync::Arc;

use berth_driver::{FilesystemDriver, InMemoryDriver, StorageDriver};
use berth_storage::{CheckReport, Options, StorageRegistry};

use crate::config::{Config, Driver};

/// Why the check could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum CheckStorageError {
    /// The configured filesystem root is not a directory.
    #[error("storage root {0} does not exist or is not a directory")]
    MissingRoot(PathBuf),
    /// The async runtime did not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// Storage failed during the walk or a repair.
    #[error("{0}")]
    Storage(#[from] berth_core::Error),
}

/// The outcome of one run: the report, and how to show a driver path to the operator.
pub struct Checked {
    /// What was found (and repaired).
    pub report: CheckReport,
    /// Prepended to every driver path printed (the filesystem root; empty in memory).
    pub root: String,
}

/// Checks (and with `repair`, repairs) the storage `config` names.
pub fn run(config: &Config, repair: bool) -> Result<Checked, CheckStorageError> {
    let (driver, root): (Arc<dyn StorageDriver>, String) = match &config.storage.driver {
        Driver::Filesystem { root, fsync } => {
            if !root.is_dir() {
                return Err(CheckStorageError::MissingRoot(root.clone()));
            }
            let shown = root.display().to_string().trim_end_matches('/').to_owned();
            let driver = FilesystemDriver::new(root.clone()).with_fsync(*fsync);
            (Arc::new(driver), shown)
        }
        Driver::InMemory => (Arc::new(InMemoryDriver::new()), String::new()),
    };
    // Deletes are how repairs work, whatever the registry allows its clients.
    let options = Options {
        delete_enabled: true,
        descriptor_cache: None,
        ..Options::default()
    };
    let registry = StorageRegistry::new(driver, options);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CheckStorageError::Runtime)?;
    let report = runtime.block_on(registry.check_storage(repair))?;
    Ok(Checked { report, root })
}

impl Checked {
    /// One line per finding: `<kind> <path>: <detail>; <repair>`, where the repair is
    /// what `--repair` removes, or what this run removed.
    pub fn finding_lines(&self) -> Vec<String> {
        self.report
            .findings
            .iter()
            .map(|f| {
                let action = if f.repaired {
                    "removed"
                } else {
                    "--repair removes"
                };
                format!(
                    "{} {}{}: {}; {action} {}{}",
                    f.kind, self.root, f.path, f.detail, self.root, f.remove
                )
            })
            .collect()
    }

    /// The closing line: what was walked, and how many findings (and repairs).
    pub fn summary(&self) -> String {
        let r = &self.report;
        let walked = format!(
            "checked {} repositor{} ({} link{}, {} tag{}, {} manifest revision{})",
            r.repositories,
            if r.repositories == 1 { "y" } else { "ies" },
            r.links,
            plural(r.links),
            r.tags,
            plural(r.tags),
            r.revisions,
            plural(r.revisions)
        );
        let found = r.findings.len();
        let repaired = r.findings.iter().filter(|f| f.repaired).count();
        match (found, repaired) {
            (0, _) => format!("{walked}: clean"),
            (1, 0) => format!("{walked}: 1 finding; run with --repair to remove it"),
            (n, 0) => format!("{walked}: {n} findings; run with --repair to remove them"),
            (n, m) => format!("{walked}: {n} finding{}, {m} repaired", plural(n)),
        }
    }
}

/// The plural ending of a count's noun.
fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
