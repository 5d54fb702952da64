//! `berth garbage-collect`: opens the storage a configuration names (see `offline`; never
//! in-memory storage), runs the collection of `berth-storage`, and prints what it does in
//! the lines distribution 2.8.2's `garbage-collect` prints on standard output, as it goes
//! (so a large registry's report streams); what this run removed goes to standard error,
//! one `removed <path>` line per path.

use std::io::Write;

use berth_storage::{GcEvent, GcOptions, GcReport};

use crate::config::Config;
use crate::offline::{Offline, OfflineError};

/// The subcommand's name, as messages say it.
const COMMAND: &str = "garbage-collect";

/// Collects the storage `config` names, writing the report to `out` and removals to
/// `removals`.
pub fn run(
    config: &Config,
    options: GcOptions,
    out: &mut dyn Write,
    removals: &mut dyn Write,
) -> Result<GcReport, OfflineError> {
    let storage = Offline::open(config, COMMAND, false)?;
    // The first failed write is kept and ends the command after the walk: a report cut
    // short must not pass for a whole one.
    let mut failed: Option<std::io::Error> = None;
    let report = storage.block_on(storage.registry.garbage_collect(options, |event| {
        if failed.is_none()
            && let Err(e) = write_event(&event, &storage.root, out, removals)
        {
            failed = Some(e);
        }
    }))?;
    match failed {
        Some(e) => Err(OfflineError::Output(e)),
        None => Ok(report),
    }
}

/// One event as distribution prints it (a removal as berth's `check-storage` does).
fn write_event(
    event: &GcEvent<'_>,
    root: &str,
    out: &mut dyn Write,
    removals: &mut dyn Write,
) -> std::io::Result<()> {
    match event {
        GcEvent::Repository(repo) => writeln!(out, "{repo}"),
        GcEvent::ManifestEligible(_, digest) => {
            writeln!(out, "manifest eligible for deletion: {digest}")
        }
        // 2.8.2 ends this line with a space; scripts written against it may expect it.
        GcEvent::MarkManifest(repo, digest) => writeln!(out, "{repo}: marking manifest {digest} "),
        GcEvent::MarkBlob(repo, digest) => writeln!(out, "{repo}: marking blob {digest}"),
        GcEvent::Summary {
            marked,
            blobs,
            manifests,
        } => writeln!(
            out,
            "\n{marked} blobs marked, {blobs} blobs and {manifests} manifests eligible for deletion"
        ),
        GcEvent::BlobEligible(digest) => writeln!(out, "blob eligible for deletion: {digest}"),
        // Offline nothing touches a blob and the grace period is zero.
        GcEvent::BlobKept(_) => Ok(()),
        GcEvent::Removed(path) => writeln!(removals, "removed {root}{path}"),
    }
}
