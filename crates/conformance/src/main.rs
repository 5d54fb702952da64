//! `berth-conformance --url URL [--namespace NS] [--no-delete]`: runs the conformance
//! suite against a registry, prints one line per check and a final
//! `N passed, N failed` line, and exits 1 if any check failed.

use std::process::ExitCode;

use berth_conformance::{Options, run};

const USAGE: &str = "usage: berth-conformance --url URL [--namespace NS] [--no-delete]";

/// Parses the command line into options.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut opts = Options {
        base_url: String::new(),
        namespace: "conformance".to_owned(),
        delete_enabled: true,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--url" => opts.base_url = args.next().ok_or("--url needs a value")?,
            "--namespace" => opts.namespace = args.next().ok_or("--namespace needs a value")?,
            "--no-delete" => opts.delete_enabled = false,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if opts.base_url.is_empty() {
        return Err(format!("--url is required\n{USAGE}"));
    }
    Ok(opts)
}

#[tokio::main]
async fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let outcomes = run(&opts).await;
    let mut failed = 0;
    for o in &outcomes {
        if o.passed {
            println!("PASS {} {}", o.category, o.name);
        } else {
            failed += 1;
            println!("FAIL {} {}: {}", o.category, o.name, o.detail);
        }
    }
    println!("{} passed, {failed} failed", outcomes.len() - failed);
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_all_flags() {
        let o = parse_args(args("--url http://x:1 --namespace a/b --no-delete")).unwrap();
        assert_eq!(o.base_url, "http://x:1");
        assert_eq!(o.namespace, "a/b");
        assert!(!o.delete_enabled);
    }

    #[test]
    fn requires_url_and_rejects_unknown() {
        assert!(parse_args(args("--namespace a")).is_err());
        assert!(parse_args(args("--url")).is_err());
        assert!(parse_args(args("--url u --bogus")).is_err());
    }
}
