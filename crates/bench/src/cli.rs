//! Command-line parsing (no dependency: the grammar is small).

use std::time::Duration;

use crate::populate_s3::PopulateOptions;
use crate::report::{Goals, Labels};
use crate::runner::RunOptions;
use crate::scenarios::Scenario;
use crate::size::Size;

/// Usage text.
pub const USAGE: &str = "\
usage:
  berth-bench run --url URL [--scenario NAME]... [--size smoke|full] [--pid PID]
                  [--label LABEL] [--seed N] [--authorization VALUE] [--upstream URL]
                  [--follow-redirects] [--populated N] [--scale-fetches N] [--scale-later S]
      Runs scenarios against the registry at URL; prints one JSON line per variant.
      --authorization sends `Authorization: VALUE` with every request (auth mode).
      --upstream names the registry URL is a pull-through cache of (pull-proxy puts
      its blobs there; without it, in URL itself: the direct baseline).
      --follow-redirects: blob GETs follow a redirect (to presigned storage URLs);
      without it a redirect is a wrong answer.
      --populated N: catalog repositories 0..N are already in the registry's storage
      (populate-s3); catalog-scale times its page at N only.
      --scale-fetches N: catalog-scale fetches its page N times (default: the size's).
      --scale-later S: with --populated, catalog-scale times its page again S seconds
      later (line page-later-at-N: after a listing built in the background is done).
      Scenarios: memory push-large push-chunked-2g pull-large push-small pull-small
      tags-list catalog image-push catalog-scale pull-proxy, or `all` (all but
      push-chunked-2g, which writes 2 GiB and runs only when named). Default: all but
      catalog-scale and pull-proxy.
  berth-bench report [--candidate LABEL] [--baseline LABEL] [--targets fs|s3] FILE...
      Reads JSON lines (several rounds) and prints a Markdown table of medians,
      ratios (above 1 = candidate better) and targets (of the filesystem benchmark, or
      of the S3 mode). Default labels: berth, distribution.
  berth-bench populate-s3 --endpoint URL --bucket NAME --access-key KEY --secret-key KEY
                          --to N [--from M] [--root DIR] [--region R] [--workers W] [--seed N]
      Writes catalog repositories M..N (default M = 0) straight into the bucket under
      rootdirectory DIR, at distribution's keys: a blob and each repository's link to it.
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
        /// Which benchmark's targets apply.
        goals: Goals,
        /// Files of JSON lines.
        files: Vec<String>,
    },
    /// `token`.
    Token(TokenOptions),
    /// `populate-s3`.
    PopulateS3(PopulateOptions),
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
        "populate-s3" => parse_populate(rest).map(Command::PopulateS3),
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
    // The one option without a value.
    let follow_redirects = args.iter().any(|a| a == "--follow-redirects");
    let args: Vec<String> = args
        .iter()
        .filter(|a| *a != "--follow-redirects")
        .cloned()
        .collect();
    let mut free = Vec::new();
    let mut populated = None;
    let mut scale_fetches = None;
    let mut scale_later = None;
    let mut url = None;
    let mut scenarios = Vec::new();
    let mut size = Size::full();
    let mut pid = None;
    let mut label = "registry".to_owned();
    let mut seed = 1;
    let mut authorization = None;
    let mut upstream = None;
    for (name, value) in pairs(&args, &mut free)? {
        match name.as_str() {
            "url" => url = Some(value.trim_end_matches('/').to_owned()),
            "scale-fetches" => {
                scale_fetches = Some(
                    value
                        .parse()
                        .map_err(|_| format!("bad --scale-fetches {value:?}"))?,
                )
            }
            "scale-later" => {
                scale_later = Some(
                    value
                        .parse()
                        .map_err(|_| format!("bad --scale-later {value:?}"))?,
                )
            }
            "populated" => {
                populated = Some(
                    value
                        .parse()
                        .map_err(|_| format!("bad --populated {value:?}"))?,
                )
            }
            "upstream" => upstream = Some(value.trim_end_matches('/').to_owned()),
            "scenario" => {
                for s in value.split(',').filter(|s| !s.is_empty()) {
                    if s == "all" {
                        scenarios.extend(Scenario::ALL.into_iter().filter(|s| !s.by_name_only()));
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
        follow_redirects,
        populated,
        scale_fetches,
        scale_later,
    })
}

fn parse_populate(args: &[String]) -> Result<PopulateOptions, String> {
    let mut free = Vec::new();
    let (mut endpoint, mut bucket, mut access_key, mut secret_key) = (None, None, None, None);
    let mut o = PopulateOptions {
        endpoint: String::new(),
        bucket: String::new(),
        region: "us-east-1".into(),
        access_key: String::new(),
        secret_key: String::new(),
        root: String::new(),
        from: 0,
        to: 0,
        workers: 16,
        seed: 1,
    };
    let mut to = None;
    let number = |name: &str, value: &str| -> Result<usize, String> {
        value.parse().map_err(|_| format!("bad --{name} {value:?}"))
    };
    for (name, value) in pairs(args, &mut free)? {
        match name.as_str() {
            "endpoint" => endpoint = Some(value.trim_end_matches('/').to_owned()),
            "bucket" => bucket = Some(value),
            "access-key" => access_key = Some(value),
            "secret-key" => secret_key = Some(value),
            "region" => o.region = value,
            "root" => o.root = value,
            "from" => o.from = number(&name, &value)?,
            "to" => to = Some(number(&name, &value)?),
            "workers" => o.workers = number(&name, &value)?,
            "seed" => o.seed = value.parse().map_err(|_| format!("bad --seed {value:?}"))?,
            other => return Err(format!("populate-s3: unknown option --{other}")),
        }
    }
    if let Some(extra) = free.first() {
        return Err(format!("populate-s3: unexpected argument {extra:?}"));
    }
    o.endpoint = endpoint.ok_or("populate-s3: --endpoint is required")?;
    o.bucket = bucket.ok_or("populate-s3: --bucket is required")?;
    o.access_key = access_key.ok_or("populate-s3: --access-key is required")?;
    o.secret_key = secret_key.ok_or("populate-s3: --secret-key is required")?;
    o.to = to.ok_or("populate-s3: --to is required")?;
    if o.from > o.to {
        return Err(format!(
            "populate-s3: --from {} is past --to {}",
            o.from, o.to
        ));
    }
    Ok(o)
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
    let mut goals = Goals::Filesystem;
    for (name, value) in pairs(args, &mut files)? {
        match name.as_str() {
            "candidate" => labels.candidate = value,
            "baseline" => labels.baseline = value,
            "targets" => {
                goals = match value.as_str() {
                    "fs" => Goals::Filesystem,
                    "s3" => Goals::S3,
                    _ => return Err(format!("report: --targets takes fs or s3, not {value:?}")),
                }
            }
            other => return Err(format!("report: unknown option --{other}")),
        }
    }
    if files.is_empty() {
        return Err("report: name at least one file".into());
    }
    Ok(Command::Report {
        labels,
        goals,
        files,
    })
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
        assert!(!o.scenarios.contains(&Scenario::PushChunked2g));
        assert_eq!(o.scenarios.len(), Scenario::ALL.len() - 3);
        assert!(!o.follow_redirects && o.populated.is_none());
        let Ok(Command::Run(o)) = parse(&args(
            "run --url http://h:1 --follow-redirects --scenario catalog-scale --populated 20000 --scale-later 40",
        )) else {
            panic!("not a run");
        };
        assert!(o.follow_redirects);
        let Ok(Command::Run(all)) = parse(&args("run --url http://h:1 --scenario all")) else {
            panic!("not a run");
        };
        assert_eq!(all.scenarios.len(), Scenario::ALL.len() - 1);
        assert_eq!(o.populated, Some(20000));
        assert_eq!(o.scale_fetches, None);
        assert_eq!(o.scale_later, Some(40));
        assert_eq!(o.scenarios, vec![Scenario::CatalogScale]);
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
            Ok(Command::Report { files, goals: Goals::Filesystem, .. }) if files.len() == 2
        ));
        assert!(matches!(
            parse(&args("report --targets s3 a.jsonl")),
            Ok(Command::Report {
                goals: Goals::S3,
                ..
            })
        ));
        assert!(parse(&args("report --targets nfs a.jsonl")).is_err());
    }

    #[test]
    fn populate_options() {
        let Ok(Command::PopulateS3(o)) = parse(&args(
            "populate-s3 --endpoint http://s3:1/ --bucket b --access-key k --secret-key s --root /cat --from 2000 --to 20000",
        )) else {
            panic!("not populate-s3");
        };
        assert_eq!(o.endpoint, "http://s3:1");
        assert_eq!((o.from, o.to, o.workers), (2000, 20000, 16));
        assert_eq!((o.root.as_str(), o.region.as_str()), ("/cat", "us-east-1"));
        assert!(
            parse(&args(
                "populate-s3 --endpoint e --bucket b --access-key k --secret-key s"
            ))
            .is_err()
        );
        assert!(
            parse(&args(
                "populate-s3 --endpoint e --bucket b --access-key k --secret-key s --from 5 --to 4"
            ))
            .is_err()
        );
    }
}
