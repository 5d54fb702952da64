//! The `berth` command line: parses arguments (clap) and runs one subcommand. Each
//! subcommand is a variant of [`Command`], so a new one is a new variant and a new match
//! arm; the work itself lives in the library (`storage_check`, `garbage_collect`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use berth_server::config::Config;
use berth_server::lifecycle::{Server, shutdown_signal};
use berth_server::{garbage_collect, limits, logging, storage_check};
use berth_storage::GcOptions;
use clap::{Parser, Subcommand};

/// Shown after `berth --help`; the README's "Using it" section says the same.
const EXIT_STATUS: &str = "Exit status:
  0  success (check-storage: storage is clean, or every finding was repaired)
  1  the configuration is invalid, the registry failed while starting or running, or
     check-storage or garbage-collect could not read or change the storage
  2  usage error (unknown subcommand, missing or extra argument)
  3  check-storage found damage (run without --repair)";

/// `check-storage` found damage and was not asked to repair it (clap owns 2).
const FINDINGS_PRESENT: u8 = 3;

/// Shown after `berth check-storage --help`.
const CHECK_STORAGE_HELP: &str =
    "Finds what no crash should leave but older data, another registry or a
full disk might:
  - empty link files, and links that are not a digest or not their directory's digest
    (layers, manifest revisions, tags, tag history, berth's referrers index)
  - layer and revision links whose blob is missing
  - tags without a current link, or naming a revision the repository cannot serve
  - manifest revisions whose stored bytes are empty or do not hash to their digest
Prints one line per finding, `<kind> <path>: <what is wrong>; --repair removes <path>`
(`removed <path>` with --repair), then a summary. Run it while no registry writes to
the storage.

Exit status:
  0  clean, or every finding was repaired (--repair)
  1  the configuration is invalid, or the storage could not be read or repaired
  2  usage error
  3  findings present (without --repair)";

/// Shown after `berth garbage-collect --help`.
const GARBAGE_COLLECT_HELP: &str =
    "Deletes the blobs no kept manifest references, as distribution's garbage-collect
does, with its flags and its report on standard output:
  <repository>                                     as the mark enters each repository
  <repository>: marking manifest <digest>          a kept manifest (2.8.2's trailing space)
  <repository>: marking blob <digest>              a blob or child manifest it references
  manifest eligible for deletion: <digest>         (--delete-untagged) no tag reaches it
  (an empty line)
  <N> blobs marked, <M> blobs and <K> manifests eligible for deletion
  blob eligible for deletion: <digest>
Every path removed is printed to standard error as `removed <path>`.

Kept: every manifest revision; with --delete-untagged only what a tag reaches: tagged
manifests, the children of a kept index and the referrers (`subject`) of a kept
manifest, to any depth (distribution 2.8.2 deletes index children and referrers). The
_layers links naming a deleted blob are removed too (2.8.2 leaves them).

Run it only while no registry writes to the storage: stop the registry, or restart it
with storage.maintenance.readonly.enabled: true; collect; then restart it without
read-only mode, so no cache remembers what was removed. A blob uploaded for a manifest
not yet pushed has no reference and would be deleted.
To collect while serving, let the registry do it: storage.maintenance.gc.enabled: true
(see the README, Online garbage collection).

Exit status:
  0  done (--dry-run: nothing removed)
  1  the configuration is invalid or names inmemory storage, or the storage could not be
     read or changed
  2  usage error";

/// A container image registry, a drop-in replacement for CNCF distribution.
#[derive(Debug, Parser)]
#[command(name = "berth", version, after_help = EXIT_STATUS)]
#[command(subcommand_required = true, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the registry.
    Serve {
        /// A distribution-style config.yml. Without it, the embedded default: filesystem
        /// storage in ./data, listening on 127.0.0.1:5000. REGISTRY_* environment
        /// variables override either.
        config: Option<PathBuf>,
    },
    /// Validate a configuration exactly as `serve` would (before it binds), print its
    /// warnings, and exit.
    CheckConfig {
        /// A distribution-style config.yml (REGISTRY_* environment variables apply).
        config: PathBuf,
    },
    /// Check the storage for damage; with --repair, remove it (never a blob's data).
    #[command(after_help = CHECK_STORAGE_HELP)]
    CheckStorage {
        /// A distribution-style config.yml naming the storage (REGISTRY_* environment
        /// variables apply).
        config: PathBuf,
        /// Remove what is damaged: a link's directory, or a tag without a readable
        /// manifest.
        #[arg(long)]
        repair: bool,
    },
    /// Delete blobs no manifest references (and, with --delete-untagged, manifests no tag
    /// reaches). Only while no registry writes to the storage.
    #[command(after_help = GARBAGE_COLLECT_HELP)]
    GarbageCollect {
        /// A distribution-style config.yml naming the storage (REGISTRY_* environment
        /// variables apply).
        config: PathBuf,
        /// Report what would be removed, and remove nothing.
        #[arg(short = 'd', long)]
        dry_run: bool,
        /// Also delete manifests no tag reaches (children of tagged indexes and
        /// referrers of kept manifests are kept).
        #[arg(short = 'm', long)]
        delete_untagged: bool,
    },
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    berth_server::allocator::tune();
    // One TLS crypto provider for every client and server in the process (the S3 and
    // trace exporters' reqwest is built without one of its own).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // clap exits with 2 on a usage error and 0 after printing help or the version.
    match Cli::parse().command {
        Command::Serve { config } => serve(config.as_deref()),
        Command::CheckConfig { config } => check_config(&config),
        Command::CheckStorage { config, repair } => check_storage(&config, repair),
        Command::GarbageCollect {
            config,
            dry_run,
            delete_untagged,
        } => garbage_collect(
            &config,
            GcOptions {
                dry_run,
                delete_untagged,
                ..GcOptions::default()
            },
        ),
        Command::Version => {
            println!("berth {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}

fn load(path: &Path) -> Result<(Config, Vec<String>), String> {
    Config::load(path).map_err(|e| format!("berth: invalid configuration {}: {e}", path.display()))
}

/// The configuration of an offline subcommand (its warnings are about serving); a load
/// that fails is reported and answers the exit status.
fn load_offline(path: &Path) -> Result<Config, ExitCode> {
    load(path).map(|(config, _)| config).map_err(|e| {
        eprintln!("{e}");
        ExitCode::FAILURE
    })
}

fn check_config(path: &Path) -> ExitCode {
    match load(path) {
        Ok((_, warnings)) => {
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            println!("{}: configuration is valid", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn check_storage(path: &Path, repair: bool) -> ExitCode {
    let config = match load_offline(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    match storage_check::run(&config, repair) {
        Ok(checked) => {
            for line in checked.finding_lines() {
                println!("{line}");
            }
            println!("{}", checked.summary());
            if checked.report.findings.iter().all(|f| f.repaired) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(FINDINGS_PRESENT)
            }
        }
        Err(e) => {
            eprintln!("berth: check-storage: {e}");
            ExitCode::FAILURE
        }
    }
}

fn garbage_collect(path: &Path, options: GcOptions) -> ExitCode {
    let config = match load_offline(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
    match garbage_collect::run(&config, options, &mut out, &mut err) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: garbage-collect: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(path: Option<&Path>) -> ExitCode {
    let (config, warnings, source) = match path {
        Some(p) => match load(p) {
            Ok((c, w)) => (c, w, p.display().to_string()),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        },
        None => match Config::embedded(std::env::vars()) {
            Ok((c, w)) => (c, w, "embedded default".to_owned()),
            Err(e) => {
                eprintln!("berth: invalid REGISTRY_* override of the embedded default: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    // Held until the process ends, so buffered spans are sent at exit.
    let _telemetry = match logging::init(&config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("berth: {e}");
            return ExitCode::FAILURE;
        }
    };
    for w in &warnings {
        tracing::warn!("{w}");
    }
    match limits::raise_open_files() {
        Ok((before, after)) if before != after => {
            tracing::info!(?before, ?after, "raised the open-files limit");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("{e}"),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let server = match Server::bind(&config) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("berth: {e}");
                return ExitCode::FAILURE;
            }
        };
        let scheme = if server.is_tls() { "https" } else { "http" };
        let addr = server.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(config = %source, "berth {} listening on {scheme}://{addr}, {}", env!("CARGO_PKG_VERSION"), server.storage_description);
        if let Some(debug_addr) = server.debug_addr() {
            tracing::info!("debug server (metrics, /debug/health) listening on http://{debug_addr}");
        }
        match &config.auth {
            Some(auth) => tracing::info!("access control: {}", auth.description),
            None => tracing::info!("access control: off (no auth section): every client may push and delete"),
        }
        match server.run(shutdown_signal()).await {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
