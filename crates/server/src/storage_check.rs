//! `berth check-storage`: opens the storage a configuration names (see `offline`), runs
//! the storage check of `berth-storage`, and renders its report as text, one line per
//! finding and a summary.

use berth_storage::CheckReport;

use crate::config::Config;
use crate::offline::{Offline, OfflineError};

/// Why the check could not run to its end.
pub type CheckStorageError = OfflineError;

/// The outcome of one run: the report, and how to show a driver path to the operator.
pub struct Checked {
    /// What was found (and repaired).
    pub report: CheckReport,
    /// Prepended to every driver path printed (the filesystem root; empty in memory).
    pub root: String,
}

/// Checks (and with `repair`, repairs) the storage `config` names.
pub fn run(config: &Config, repair: bool) -> Result<Checked, CheckStorageError> {
    let storage = Offline::open(config, "check-storage", true)?;
    let report = storage.block_on(storage.registry.check_storage(repair))?;
    Ok(Checked {
        report,
        root: storage.root,
    })
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
