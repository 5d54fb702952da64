//! The `berth` command: `serve [CONFIG]`, `check-config CONFIG`, `version`.

use std::path::PathBuf;
use std::process::ExitCode;

use berth_server::config::Config;
use berth_server::lifecycle::{Server, shutdown_signal};
use berth_server::{limits, logging};

const USAGE: &str = "usage:
  berth serve [CONFIG]        run the registry (no CONFIG: embedded default, ./data on 127.0.0.1:5000)
  berth check-config CONFIG   validate a distribution-style config.yml and exit
  berth version               print the version";

fn load(path: &str) -> Result<(Config, Vec<String>), String> {
    Config::load(&PathBuf::from(path))
        .map_err(|e| format!("berth: invalid configuration {path}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["serve"] => serve(None),
        ["serve", path] => serve(Some(path)),
        ["check-config", path] => match load(path) {
            Ok((_, warnings)) => {
                for w in &warnings {
                    eprintln!("warning: {w}");
                }
                println!("{path}: configuration is valid");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        ["version"] | ["--version"] | ["-v"] => {
            println!("berth {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        ["help"] | ["--help"] | ["-h"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn serve(path: Option<&str>) -> ExitCode {
    let (config, warnings, source) = match path {
        Some(p) => match load(p) {
            Ok((c, w)) => (c, w, p.to_owned()),
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
    logging::init(&config);
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
