//! Command-line parsing (no dependency: the grammar is small).

use std::time::Duration;

use crate::report::Labels;
use crate::runner::RunOptions;
use crate::scenarios::Scenario;
use crate::size::Size;

/// Usage text.
pub const USAGE: &str = "\
usage:
  berth-bench run --url URL [--scenario NAME]... [--size smoke|full] [--pid PID]
                  [--label LABEL] [--seed N] [--authorization VALUE] [--upstream URL]
      Runs scenarios against the registry at URL; prints one JSON line per variant.
      --authorization sends `Authorization: VALUE` with every request (auth mode).
      --upstream names the registry URL is a pull-through cache of (pull-proxy puts
      its blobs there; without it, in URL itself: the direct baseline).
      Scenarios: memory push-large pull-large push-small pull-small tags-list catalog
      image-push catalog-scale pull-proxy, or `all`. Default: all but catalog-scale
      and pull-proxy.
  berth-bench report [--candidate LABEL] [--baseline LABEL] FILE...
      Reads JSON lines (several rounds) and prints a Markdown table of medians,
      ratios (above 1 = candidate better) and targets. Default labels: berth, distribution.
  berth-bench token --key PEM --cert PEM --issuer NAME --service NAME
                    [--repository NAME]... [--expires SECONDS]
      Prints a bearer token granting pull, push and delete on each repository (default:
      the repositories of push-large, pull-large and pull-small), signed as a token
      server would sign it, for registries whose auth.token trusts CERT.
  berth-bench receive --port PORT
      Serves a notification endpoint on 127.0.0.1:PORT until stopped: every POST is
      answered 200 and its events counted; GET /count answers {\"posts\":N,\"events\":M}.
  berth-bench free-port
      Prints a free TCP port on 127.0.0.1.
  berth-bench wait --url URL [--timeout SECONDS]
      Waits until GET URL/v2/ gets an HTTP answer (default 30 s).
";

/// A parsed command line.
#[derive(Debug)]
pub enum Command {
    /// `run`.
    Run(Box<RunOptions>),
    /// `report`.
    Report {
        /// Labels compared.
        labels: Labels,
        /// Files of JSON lines.
        files: Vec<String>,
    },
    /// `token`.
    Token(TokenOptions),
    /// `receive`.
    Receive {
        /// The loopback port to listen on.
        port: u16,
    },
    /// `free-port`.
    FreePort,
    /// `wait`.
    Wait {
        /// Base URL.
        url: String,
        /// How long to wait at most.
        timeout: Duration,
    },
    /// `help`, `-h`, `--help`.
    Help,
}

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some((sub, rest)) = args.split_first() else {
        return Err("no command given".into());
    };
    match sub.as_str() {
        "run" => parse_run(rest).map(|o| Command::Run(Box::new(o))),
        "report" => parse_report(rest),
        "token" => parse_token(rest).map(Command::Token),
        "receive" => parse_receive(rest),
        "free-port" => Ok(Command::FreePort),
        "wait" => parse_wait(rest),
        "help" | "-h" | "--help" => Ok(Command::Help),
        other => Err(format!("unknown command {other:?}")),
    }
}

/// Splits `--flag value` and `--flag=value` pairs; free arguments go to `free`.
fn pairs(args: &[String], free: &mut Vec<String>) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if let Some(flag) = arg.strip_prefix("--") {
            let (name, value) = match flag.split_once('=') {
                Some((n, v)) => (n.to_owned(), v.to_owned()),
                None => {
                    let v = it.next().ok_or_else(|| format!("--{flag} needs a value"))?;
                    (flag.to_owned(), v.clone())
                }
            };
            out.push((name, value));
        } else {
            free.push(arg.clone());
        }
    }
    Ok(out)
}

fn parse_run(args: &[String]) -> Result<RunOptions, String> {
    let mut free = Vec::new();
    let mut url = None;
    let mut scenarios = Vec::new();
    let mut size = Size::full();
    let mut pid = None;
    let mut label = "registry".to_owned();
    let mut seed = 1;
    let mut authorization = None;
    let mut upstream = None;
    for (name, value) in pairs(args, &mut free)? {
        match name.as_str() {
            "url" => url = Some(value.trim_end_matches('/').to_owned()),
            "upstream" => upstream = Some(value.trim_end_matches('/').to_owned()),
            "scenario" => {
                for s in value.split(',').filter(|s| !s.is_empty()) {
                    if s == "all" {
                        scenarios.extend(Scenario::ALL);
                    } else {
                        scenarios.push(
                            Scenario::parse(s).ok_or_else(|| format!("unknown scenario {s:?}"))?,
                        );
                    }
                }
            }
            "size" => {
                size = Size::named(&value).ok_or_else(|| format!("unknown size {value:?}"))?
            }
            "pid" => pid = Some(value.parse().map_err(|_| format!("bad --pid {value:?}"))?),
            "label" => label = value,
            "seed" => seed = value.parse().map_err(|_| format!("bad --seed {value:?}"))?,
            "authorization" => authorization = Some(value),
            other => return Err(format!("run: unknown option --{other}")),
        }
    }
    if let Some(extra) = free.first() {
        return Err(format!("run: unexpected argument {extra:?}"));
    }
    if scenarios.is_empty() {
        scenarios = Scenario::default_set();
    }
    scenarios.sort();
    scenarios.dedup();
    Ok(RunOptions {
        url: url.ok_or("run: --url is required")?,
        scenarios,
        size,
        pid,
        label,
        seed,
        authorization,
        upstream,
    })
}

/// What `token` signs.
#[derive(Debug)]
pub struct TokenOptions {
    /// PEM private key file.
    pub key: String,
    /// PEM certificate file of that key.
    pub cert: String,
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub service: String,
    /// Repositories granted pull, push and delete.
    pub repositories: Vec<String>,
    /// Lifetime in seconds.
    pub expires: u64,
}

fn parse_token(args: &[String]) -> Result<TokenOptions, String> {
    let mut free = Vec::new();
    let (mut key, mut cert, mut issuer, mut service) = (None, None, None, None);
    let mut repositories = Vec::new();
    let mut expires = 3600;
    for (name, value) in pairs(args, &mut free)? {
        match name.as_str() {
            "key" => key = Some(value),
            "cert" => cert = Some(value),
            "issuer" => issuer = Some(value),
            "service" => service = Some(value),
            "repository" => repositories.push(value),
            "expires" => {
                expires = value
                    .parse()
                    .map_err(|_| format!("bad --expires {value:?}"))?
            }
            other => return Err(format!("token: unknown option --{other}")),
        }
    }
    if let Some(extra) = free.first() {
        return Err(format!("token: unexpected argument {extra:?}"));
    }
    if repositories.is_empty() {
        repositories = crate::scenarios::AUTH_MODE_REPOSITORIES
            .iter()
            .map(|r| (*r).to_owned())
            .collect();
    }
    Ok(TokenOptions {
        key: key.ok_or("token: --key is required")?,
        cert: cert.ok_or("token: --cert is required")?,
        issuer: issuer.ok_or("token: --issuer is required")?,
        service: service.ok_or("token: --service is required")?,
        repositories,
        expires,
    })
}

fn parse_report(args: &[String]) -> Result<Command, String> {
    let mut files = Vec::new();
    let mut labels = Labels::default();
    for (name, value) in pairs(args, &mut files)? {
        match name.as_str() {
            "candidate" => labels.candidate = value,
            "baseline" => labels.baseline = value,
            other => return Err(format!("report: unknown option --{other}")),
        }
    }
    if files.is_empty() {
        return Err("report: name at least one file".into());
    }
    Ok(Command::Report { labels, files })
}

fn parse_wait(args: &[String]) -> Result<Command, String> {
    let mut free = Vec::new();
    let mut url = None;
    let mut timeout = Duration::from_secs(30);
    for (name, value) in pairs(args, &mut free)? {
        match name.as_str() {
            "url" => url = Some(value.trim_end_matches('/').to_owned()),
            "timeout" => {
                let secs: f64 = value
                    .parse()
                    .map_err(|_| format!("bad --timeout {value:?}"))?;
                timeout = Duration::from_secs_f64(secs.max(0.0));
            }
            other => return Err(format!("wait: unknown option --{other}")),
        }
    }
    Ok(Command::Wait {
        url: url.ok_or("wait: --url is required")?,
        timeout,
    })
}

fn parse_receive(args: &[String]) -> Result<Command, String> {
    let mut free = Vec::new();
    let mut port = None;
    for (name, value) in pairs(args, &mut free)? {
        match name.as_str() {
            "port" => port = Some(value.parse().map_err(|_| format!("bad --port {value:?}"))?),
            other => return Err(format!("receive: unknown option --{other}")),
        }
    }
    Ok(Command::Receive {
        port: port.ok_or("receive: --port is required")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn run_options() {
        let Ok(Command::Run(o)) = parse(&args(
            "run --url http://h:1/ --scenario catalog --scenario push-large,catalog --size smoke --pid 7 --label berth",
        )) else {
            panic!("not a run");
        };
        assert_eq!(o.url, "http://h:1");
        assert_eq!(o.scenarios, vec![Scenario::PushLarge, Scenario::Catalog]);
        assert_eq!(o.size.tags, Size::smoke().tags);
        assert_eq!(o.pid, Some(7));
        assert_eq!(o.label, "berth");
    }

    #[test]
    fn defaults_and_errors() {
        let Ok(Command::Run(o)) = parse(&args("run --url=http://h:1")) else {
            panic!("not a run");
        };
        assert!(!o.scenarios.contains(&Scenario::CatalogScale));
        assert!(!o.scenarios.contains(&Scenario::PullProxy));
        assert_eq!(o.scenarios.len(), Scenario::ALL.len() - 2);
        assert_eq!(o.upstream, None);
        let Ok(Command::Run(o)) = parse(&args(
            "run --url http://cache:1 --upstream http://up:2/ --scenario pull-proxy",
        )) else {
            panic!("not a run");
        };
        assert_eq!(o.upstream.as_deref(), Some("http://up:2"));
        assert_eq!(o.scenarios, vec![Scenario::PullProxy]);
        assert!(parse(&args("run")).is_err());
        assert!(parse(&args("run --url x --scenario nope")).is_err());
        assert!(parse(&args("report")).is_err());
        assert!(matches!(
            parse(&args("report --baseline d a.jsonl b.jsonl")),
            Ok(Command::Report { files, .. }) if files.len() == 2
        ));
    }
}
