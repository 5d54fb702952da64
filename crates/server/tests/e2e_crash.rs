//! Crash safety of the real binary: `berth` is killed with SIGKILL at random moments while
//! 16 clients push (blobs, mounts, manifests, tags, some tags moved again and again),
//! restarted on the same root each time, and then every acknowledged write must still be
//! readable. After the last round the whole root must be consistent: for berth over HTTP,
//! on disk (no empty link file), for `berth check-storage`, and for distribution 2.8.2.

mod common;
#[path = "support/oci_layout.rs"]
mod oci_layout;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use berth_client::{BlockingClient, Client};
use oci_layout::*;

/// Concurrent pushers per round.
const PUSHERS: usize = 16;
/// Kill-and-restart rounds.
const ROUNDS: usize = 5;
/// Repositories the pushers share (several pushers write each one).
const REPOSITORIES: usize = 4;
/// Where mounted layers land.
const MOUNTED: &str = "crash/mounted";

/// Every write a client saw acknowledged, and every attempt at a moving tag.
#[derive(Default)]
struct Ledger {
    /// (round, repository, digest) of blobs answered 201 (pushes and mounts).
    blobs: Vec<(usize, String, String)>,
    /// (round, repository, tag, digest) of manifest PUTs answered 201 under a tag used once.
    tagged: Vec<(usize, String, String, String)>,
    /// Per (repository, moving tag), every digest PUT to it in order, and whether the PUT
    /// was answered 201.
    moving: BTreeMap<(String, String), Vec<(String, bool)>>,
    /// Answers that were neither success nor the connection dying with the server.
    unexpected: Vec<String>,
    /// Manifests acknowledged, all rounds.
    acknowledged: usize,
}

fn repo_of(pusher: usize) -> String {
    format!("crash/r{}", pusher % REPOSITORIES)
}

/// A client that gives up quickly once the server is gone.
fn quick_client(addr: &str) -> BlockingClient {
    let client = Client::builder(&format!("http://{addr}"))
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .expect("client");
    BlockingClient::new(client).expect("blocking client")
}

/// One pusher's round: images pushed until the server dies or `stop` is set. Writes
/// only the outcome of each request to the ledger; a transport error ends the round.
fn push_until_killed(
    pusher: usize,
    round: usize,
    addr: &str,
    stop: &AtomicBool,
    ledger: &Mutex<Ledger>,
) {
    let reg = quick_client(addr);
    let repo = repo_of(pusher);
    let moving = format!("move-{pusher}");
    let mut rng = Rng::new(&format!("crash-{pusher}-{round}"));
    let record = |f: &mut dyn FnMut(&mut Ledger)| f(&mut ledger.lock().expect("ledger"));
    for n in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let size = 512 + (rng.next_u64() % 8192) as usize;
        let img = image(&mut rng, "amd64", &[size]);
        for b in img.blobs() {
            let pushed = if pusher.is_multiple_of(3) {
                reg.run(|c| c.push_blob_chunked(&repo, &b.digest, b.bytes.clone(), 1500))
            } else {
                reg.run(|c| c.push_blob(&repo, &b.digest, b.bytes.clone()))
            };
            match pushed {
                Ok(_) => record(&mut |l| l.blobs.push((round, repo.clone(), b.digest.clone()))),
                // An answer the push did not want means the server refused: not a crash.
                Err(
                    e @ (berth_client::Error::Status { .. }
                    | berth_client::Error::Body { .. }
                    | berth_client::Error::MissingHeader { .. }),
                ) => {
                    record(&mut |l| l.unexpected.push(format!("blob push: {e}")));
                    return;
                }
                Err(_) => return,
            }
        }
        if pusher % 4 == 1 {
            let layer = &img.layers[0].digest;
            match reg.run(|c| c.mount_blob(MOUNTED, layer, Some(&repo))) {
                Ok(r) if r.status == 201 => {
                    record(&mut |l| l.blobs.push((round, MOUNTED.to_owned(), layer.clone())))
                }
                Ok(r) => {
                    record(&mut |l| l.unexpected.push(format!("mount: {}", r.describe())));
                    return;
                }
                Err(_) => return,
            }
        }
        let tag = if n.is_multiple_of(2) {
            format!("t{pusher}-{round}-{n}")
        } else {
            record(&mut |l| {
                l.moving
                    .entry((repo.clone(), moving.clone()))
                    .or_default()
                    .push((img.manifest.digest.clone(), false))
            });
            moving.clone()
        };
        let m = &img.manifest;
        match reg.run(|c| c.put_manifest(&repo, &tag, &m.media_type, m.bytes.clone(), &[])) {
            Ok(r) if r.status == 201 => record(&mut |l| {
                l.acknowledged += 1;
                if tag == moving {
                    if let Some(last) = l
                        .moving
                        .get_mut(&(repo.clone(), moving.clone()))
                        .and_then(|v| v.last_mut())
                    {
                        last.1 = true;
                    }
                } else {
                    l.tagged
                        .push((round, repo.clone(), tag.clone(), m.digest.clone()));
                }
            }),
            Ok(r) => {
                record(&mut |l| l.unexpected.push(format!("manifest PUT: {}", r.describe())));
                return;
            }
            Err(_) => return,
        }
    }
}

/// What a registry answers for `repo:reference`: the status, and for a 200 the digest
/// of the body (checked against `Docker-Content-Digest`, a mismatch is an error).
fn fetch(reg: &BlockingClient, repo: &str, reference: &str) -> Result<(u16, String), String> {
    let accept = format!("{OCI_MANIFEST}, {OCI_INDEX}, {DOCKER_MANIFEST}");
    let r = reg
        .run(|c| c.get_manifest(repo, reference, &accept))
        .map_err(|e| format!("GET {repo}:{reference}: {e}"))?;
    if r.status != 200 {
        return Ok((r.status, r.text()));
    }
    let actual = sha256_digest(&r.body);
    if r.body.is_empty() || r.digest() != Some(actual.as_str()) {
        return Err(format!(
            "GET {repo}:{reference}: 200 with {} bytes hashing to {actual}, Docker-Content-Digest {:?}",
            r.body.len(),
            r.digest()
        ));
    }
    Ok((200, actual))
}

/// Checks that every write acknowledged in `round` (all rounds when `None`) is readable,
/// and that every moving tag names its last acknowledged digest or a later attempt.
fn acknowledged_problems(
    reg: &BlockingClient,
    ledger: &Ledger,
    round: Option<usize>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let wanted = |r: usize| round.is_none_or(|k| k == r);
    for (r, repo, digest) in ledger.blobs.iter().filter(|b| wanted(b.0)) {
        match reg.run(|c| c.head_blob(repo, digest)) {
            Ok(a) if a.status == 200 => {}
            Ok(a) => problems.push(format!(
                "round {r}: acknowledged blob {repo}@{digest}: HEAD {}",
                a.status
            )),
            Err(e) => problems.push(format!("HEAD {repo}@{digest}: {e}")),
        }
    }
    for (r, repo, tag, digest) in ledger.tagged.iter().filter(|t| wanted(t.0)) {
        for reference in [tag, digest] {
            match fetch(reg, repo, reference) {
                Ok((200, got)) if got == *digest => {}
                Ok((status, what)) => problems.push(format!(
                    "round {r}: acknowledged {repo}:{reference} (-> {digest}): {status} {what}"
                )),
                Err(e) => problems.push(format!("round {r}: {e}")),
            }
        }
    }
    for ((repo, tag), attempts) in &ledger.moving {
        let last_ack = attempts.iter().rposition(|a| a.1);
        let allowed: BTreeSet<&String> = attempts[last_ack.unwrap_or(0)..]
            .iter()
            .map(|a| &a.0)
            .collect();
        match fetch(reg, repo, tag) {
            Ok((200, got)) if allowed.contains(&got) => {}
            Ok((404, _)) if last_ack.is_none() => {}
            Ok((status, what)) => problems.push(format!(
                "moving tag {repo}:{tag}: {status} {what}; last acknowledged {:?}, later attempts {}",
                last_ack.map(|i| &attempts[i].0),
                attempts.len() - last_ack.map_or(0, |i| i + 1)
            )),
            Err(e) => problems.push(e),
        }
    }
    problems
}

/// The storage root: in memory (`/dev/shm`) where there is one. A SIGKILL leaves the
/// page cache as it was, so a process crash looks the same there as on a disk; and on
/// this project's VMs (ext4 mounted with `discard`) removing the few thousand small
/// files a run leaves takes about 20 s, longer than the run itself.
fn scratch_root() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("temporary directory")
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The repository and digest a `<repos>/<name>/_layers/<alg>/<hex>/link` path names.
fn layer_link(repos: &Path, link: &Path) -> Option<(String, String)> {
    let rel = link.strip_prefix(repos).ok()?.to_str()?;
    let (name, rest) = rel.split_once("/_layers/")?;
    let (alg, rest) = rest.split_once('/')?;
    let hex = rest.strip_suffix("/link")?;
    Some((name.to_owned(), format!("{alg}:{hex}")))
}

/// Every repository a registry lists, and each one's tags; problems on the way.
fn listed_tags(
    reg: &BlockingClient,
    extra: &BTreeSet<String>,
) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let mut problems = Vec::new();
    let mut repos: BTreeSet<String> = extra.clone();
    match reg.run(|c| c.catalog(None, None)) {
        Ok(r) if r.status == 200 => repos.extend(r.repository_names().unwrap_or_default()),
        Ok(r) => problems.push(format!("catalog: {}", r.describe())),
        Err(e) => problems.push(format!("catalog: {e}")),
    }
    let mut out = BTreeMap::new();
    for repo in repos {
        match reg.run(|c| c.tags_list(&repo, None, None)) {
            Ok(r) if r.status == 200 => {
                out.insert(repo, r.tag_names().unwrap_or_default());
            }
            Ok(r) if r.status == 404 && repo == MOUNTED => {}
            Ok(r) => problems.push(format!("tags/list {repo}: {}", r.describe())),
            Err(e) => problems.push(format!("tags/list {repo}: {e}")),
        }
    }
    (out, problems)
}

/// Every listed tag must GET 200 with a body hashing to its digest.
fn listed_tag_problems(
    who: &str,
    reg: &BlockingClient,
    listing: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (repo, tags) in listing {
        for tag in tags {
            match fetch(reg, repo, tag) {
                Ok((200, _)) => {}
                Ok((status, what)) => {
                    problems.push(format!("{who}: listed tag {repo}:{tag}: {status} {what}"))
                }
                Err(e) => problems.push(format!("{who}: {e}")),
            }
        }
    }
    problems
}

#[test]
fn kill_9_during_concurrent_pushes_loses_no_acknowledged_write() {
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let root = scratch_root();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut timing = Rng::new("crash-timing");
    let mut problems = Vec::new();

    let mut berth = common::berth(root.path(), work.path(), "");
    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let pushers: Vec<_> = (0..PUSHERS)
            .map(|p| {
                let (addr, stop, ledger) = (berth.addr.clone(), stop.clone(), ledger.clone());
                thread::spawn(move || push_until_killed(p, round, &addr, &stop, &ledger))
            })
            .collect();
        let delay = Duration::from_millis(300 + timing.next_u64() % 1200);
        thread::sleep(delay);
        // std's Child::kill is SIGKILL: no shutdown, no flush, no cleanup.
        berth.child.kill().expect("SIGKILL");
        berth.child.wait().expect("reap");
        stop.store(true, Ordering::Relaxed);
        for p in pushers {
            p.join().expect("pusher panicked");
        }
        berth = common::berth(root.path(), work.path(), "");
        let l = ledger.lock().expect("ledger");
        eprintln!(
            "round {round}: killed after {delay:?}; {} manifests acknowledged so far",
            l.acknowledged
        );
        problems.extend(acknowledged_problems(berth.client(), &l, Some(round)));
    }

    let l = ledger.lock().expect("ledger");
    assert!(
        l.unexpected.is_empty(),
        "unexpected answers: {:#?}",
        l.unexpected
    );
    assert!(
        l.acknowledged >= 50,
        "only {} manifests acknowledged: the rounds were too short to mean anything",
        l.acknowledged
    );
    let reg = berth.client();
    problems.extend(acknowledged_problems(reg, &l, None));

    // Every listed tag of every repository is served, byte-exact.
    let known: BTreeSet<String> = (0..REPOSITORIES).map(repo_of).collect();
    let (listing, listing_problems) = listed_tags(reg, &known);
    problems.extend(listing_problems);
    problems.extend(listed_tag_problems("berth", reg, &listing));

    // On disk: every layer link names readable content, and no link file is empty.
    let mut files = Vec::new();
    files_under(root.path(), &mut files);
    let repos = root.path().join("docker/registry/v2/repositories");
    let mut links = 0;
    for file in files.iter().filter(|f| f.ends_with("link")) {
        links += 1;
        if std::fs::metadata(file).is_ok_and(|m| m.len() == 0) {
            problems.push(format!("empty link file {}", file.display()));
        }
        if let Some((repo, digest)) = layer_link(&repos, file) {
            match reg.run(|c| c.head_blob(&repo, &digest)) {
                Ok(r) if r.status == 200 => {}
                Ok(r) => problems.push(format!("layer link {}: HEAD {}", file.display(), r.status)),
                Err(e) => problems.push(format!("HEAD {repo}@{digest}: {e}")),
            }
        }
    }
    assert!(links > 100, "only {links} link files on disk");

    // berth's own check finds nothing, with the registry stopped.
    let (config, _) = common::berth_config(root.path(), work.path(), "", "");
    berth.stop();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("check-storage")
        .arg(&config)
        .output()
        .expect("run check-storage");
    if out.status.code() != Some(0) {
        problems.push(format!(
            "check-storage exited with {:?}:\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }

    // distribution 2.8.2 serves every tag it lists, and every tag berth listed.
    if common::have_tool("docker-registry") {
        let dist = common::distribution(root.path(), work.path());
        let (mut dist_listing, dist_problems) = listed_tags(dist.client(), &known);
        problems.extend(dist_problems);
        for (repo, tags) in &listing {
            let entry = dist_listing.entry(repo.clone()).or_default();
            entry.extend(tags.iter().cloned());
            entry.sort();
            entry.dedup();
        }
        problems.extend(listed_tag_problems(
            "distribution",
            dist.client(),
            &dist_listing,
        ));
        dist.stop();
    }

    eprintln!(
        "{} manifests acknowledged over {ROUNDS} rounds, {links} link files, {:?}",
        l.acknowledged,
        started.elapsed()
    );
    assert!(
        problems.is_empty(),
        "{} problems after {ROUNDS} SIGKILLs:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
