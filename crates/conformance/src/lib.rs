//! berth-conformance: a conformance suite for the OCI Distribution Spec v1.1, plus the
//! Docker Registry V2 behaviours real clients rely on. It drives any registry over HTTP
//! at a base URL and reports one [`Outcome`] per check, grouped in the spec's
//! categories: pull, push, discovery and management.
//!
//! Each run draws a fresh seed, generates its content from it and works in repositories
//! below `<namespace>/<run id>/`, so it can run any number of times against one registry.
//!
//! ```text
//! let outcomes = berth_conformance::run(&Options {
//!     base_url: "http://127.0.0.1:5000".into(),
//!     namespace: "conformance".into(),
//!     delete_enabled: true,
//! }).await;
//! assert!(outcomes.iter().all(|o| o.passed));
//! ```
//!
//! The `berth-conformance` binary wraps this: `--url URL [--namespace NS] [--no-delete]`.

/// Fails the enclosing check with a formatted detail unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

pub mod connection;
pub mod data;
mod discovery;
mod management;
mod ops;
mod pull;
mod push;
mod push_manifest;

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_client::Client;
use futures::FutureExt;

use crate::data::Gen;

/// What to test and how.
#[derive(Clone, Debug)]
pub struct Options {
    /// Base URL of the registry, e.g. `http://127.0.0.1:5000`.
    pub base_url: String,
    /// Repository prefix to test under, e.g. `conformance/run1`; each run creates its
    /// repositories below `<namespace>/<run id>/`.
    pub namespace: String,
    /// Whether the registry allows deletes (`storage.delete.enabled`).
    pub delete_enabled: bool,
}

/// The result of one check.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The spec category: `pull`, `push`, `discovery` or `management`.
    pub category: &'static str,
    /// What was checked.
    pub name: String,
    /// Whether the registry behaved as required.
    pub passed: bool,
    /// Why it failed (status, headers, body excerpt), empty when it passed.
    pub detail: String,
}

/// The failed outcomes of a run, one line each (`category name: detail`).
pub fn failures(outcomes: &[Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| format!("{} {}: {}", o.category, o.name, o.detail))
        .collect()
}

/// Everything a check needs: the client, the options and the run's generator.
pub(crate) struct Ctx {
    pub client: Client,
    pub opts: Options,
    pub run_id: String,
    gen_: Mutex<Gen>,
    repos: Mutex<BTreeSet<String>>,
}

impl Ctx {
    /// The repository `<namespace>/<run id>/<leaf>`.
    pub fn repo(&self, leaf: &str) -> String {
        let ns = self.opts.namespace.trim_matches('/');
        if ns.is_empty() {
            format!("{}/{leaf}", self.run_id)
        } else {
            format!("{ns}/{}/{leaf}", self.run_id)
        }
    }

    /// Runs `f` with the run's random generator.
    pub fn with_gen<T>(&self, f: impl FnOnce(&mut Gen) -> T) -> T {
        let mut g = self.gen_.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    /// Notes that a manifest was pushed to `repo`, so the catalog must list it.
    pub fn note_repo(&self, repo: &str) {
        let mut repos = self.repos.lock().unwrap_or_else(|e| e.into_inner());
        repos.insert(repo.to_owned());
    }

    /// The repositories that received a manifest so far, sorted.
    pub fn pushed_repos(&self) -> Vec<String> {
        let repos = self.repos.lock().unwrap_or_else(|e| e.into_inner());
        repos.iter().cloned().collect()
    }

    /// `len` random bytes.
    pub fn bytes(&self, len: usize) -> Vec<u8> {
        self.with_gen(|g| g.bytes(len))
    }
}

/// Collects the outcomes of one category.
pub(crate) struct Recorder<'a> {
    category: &'static str,
    out: &'a mut Vec<Outcome>,
}

impl Recorder<'_> {
    /// Records a check's result under `name`.
    pub fn record(&mut self, name: &str, result: Result<(), String>) {
        let (passed, detail) = match result {
            Ok(()) => (true, String::new()),
            Err(e) => (false, e),
        };
        self.out.push(Outcome {
            category: self.category,
            name: name.to_owned(),
            passed,
            detail,
        });
    }
}

/// Runs every check against the registry at `opts.base_url` and returns their outcomes
/// in order. Never panics: a registry's bad answer, or a bug in a check, becomes a
/// failed outcome.
pub async fn run(opts: &Options) -> Vec<Outcome> {
    let mut out = Vec::new();
    let client = match Client::new(&opts.base_url) {
        Ok(c) => c,
        Err(e) => {
            Recorder {
                category: "pull",
                out: &mut out,
            }
            .record("client setup", Err(e.to_string()));
            return out;
        }
    };
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id()).rotate_left(32);
    let mut g = Gen::new(seed);
    let run_id = format!("run-{}", g.token(10));
    let ctx = Ctx {
        client,
        opts: opts.clone(),
        run_id,
        gen_: Mutex::new(g),
        repos: Mutex::new(BTreeSet::new()),
    };

    category(&ctx, "pull", &mut out, pull::run).await;
    category(&ctx, "push", &mut out, push::run).await;
    category(&ctx, "push", &mut out, push_manifest::run).await;
    category(&ctx, "push", &mut out, connection::run).await;
    category(&ctx, "discovery", &mut out, discovery::run).await;
    category(&ctx, "management", &mut out, management::run).await;
    out
}

/// Runs one category, turning a panic inside it into a failed outcome.
async fn category<F>(ctx: &Ctx, name: &'static str, out: &mut Vec<Outcome>, f: F)
where
    F: AsyncFnOnce(&Ctx, &mut Recorder<'_>),
{
    let mut rec = Recorder {
        category: name,
        out,
    };
    let result = AssertUnwindSafe(f(ctx, &mut rec)).catch_unwind().await;
    if result.is_err() {
        rec.record("(suite)", Err("a check panicked; see stderr".to_owned()));
    }
}
