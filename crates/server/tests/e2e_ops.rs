//! Operations on the real binary: Prometheus metrics on the debug address after pushes
//! and pulls (read by a strict parser of the text exposition), health checks turning
//! the API to 503 and back (an unwritable storage root, a closed then opened TCP port
//! and HTTP service), and request ids echoed, generated and logged.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_client::{BlockingClient, Body, Method, Request, Response};
use sha2::{Digest as _, Sha256};

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Starts `berth serve` on `config`, waiting until its API and debug server listen (the
/// API may already be refusing: health checks can fail from the start).
fn start(config: &Path, addr: &str, debug: &str, work: &Path) -> common::Process {
    let log = work.join(format!("berth-{}.log", common::free_port()));
    let out = std::fs::File::create(&log).expect("log");
    let err = out.try_clone().expect("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("serve")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn berth");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(debug).is_err()
        || std::net::TcpStream::connect(addr).is_err()
    {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "berth exited with {status}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "berth never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    common::Process::new(child, addr.to_owned(), log)
}

/// Starts berth with a debug server and `extra` (below the `http` section's `debug`
/// key) on `root`; answers it and the debug address.
fn start_debug(
    root: &Path,
    work: &Path,
    debug_extra: &str,
    extra: &str,
) -> (common::Process, String) {
    let debug = format!("127.0.0.1:{}", common::free_port());
    let (config, addr) = common::berth_config(
        root,
        work,
        "",
        &format!("  debug:\n    addr: {debug}\n{debug_extra}{extra}"),
    );
    (start(&config, &addr, &debug, work), debug)
}

/// A plain GET of the debug server: status and body.
fn debug_get(debug: &str, path: &str) -> (u16, String) {
    let c = common::client(debug);
    let r = c.run(|c| c.get(path)).expect("debug GET");
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

fn send(reg: &BlockingClient, method: Method, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = Request::new(method.clone(), reg.client().url(path).unwrap());
    for (k, v) in headers {
        req = req.header(k, *v);
    }
    if method == Method::PUT || method == Method::POST {
        req = req.body(Body::bytes(Vec::<u8>::new()));
    }
    reg.run(|c| c.send(req))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// A series: its name and sorted labels.
type Series = (String, Vec<(String, String)>);

/// One parsed exposition: every sample by name and sorted label set, and each
/// family's type.
#[derive(Debug, Default)]
struct Scrape {
    samples: BTreeMap<Series, f64>,
    types: HashMap<String, String>,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The family a sample belongs to: histogram series drop their suffix.
fn family_of<'a>(name: &'a str, types: &HashMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types.get(base).map(String::as_str) == Some("histogram")
        {
            return base;
        }
    }
    name
}

/// Parses label text `a="x",b="y\"z"` strictly (escapes `\\`, `\"`, `\n` only).
fn parse_labels(text: &str, line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label in {line:?}"));
        assert!(is_name(name), "label name {name:?} in {line:?}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        out.push((name.to_owned(), value));
        rest = &after[end + 1..];
        rest = match rest.strip_prefix(',') {
            Some(r) => r,
            None => {
                assert!(rest.is_empty(), "junk after label in {line:?}");
                rest
            }
        };
    }
    let names: HashSet<&String> = out.iter().map(|(k, _)| k).collect();
    assert_eq!(names.len(), out.len(), "duplicate label in {line:?}");
    out
}

/// Reads an exposition, failing on anything that is not well formed: every sample line
/// parses, belongs to a family with HELP and TYPE written before it, and appears once;
/// every histogram's buckets are cumulative and end in `+Inf` equal to its `_count`.
fn parse(text: &str) -> Scrape {
    let mut s = Scrape::default();
    let mut helped = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(is_name(name), "{line:?}");
            assert!(helped.insert(name.to_owned()), "HELP twice: {line:?}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
            assert!(helped.contains(name), "TYPE before HELP: {line:?}");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "{line:?}"
            );
            assert!(
                s.types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "{line:?}"
            );
        } else {
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line {line:?}"
            );
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("value in {line:?}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line:?}"));
                    (name, parse_labels(inner, line))
                }
                None => (series, Vec::new()),
            };
            assert!(is_name(name), "{line:?}");
            let family = family_of(name, &s.types);
            assert!(
                s.types.contains_key(family),
                "sample without TYPE: {line:?}"
            );
            if s.types[family] == "counter" {
                assert!(name.ends_with("_total") && value >= 0.0, "{line:?}");
            }
            let mut labels = labels;
            labels.sort();
            assert!(
                s.samples.insert((name.to_owned(), labels), value).is_none(),
                "series twice: {line:?}"
            );
        }
    }
    // Histograms: per series, buckets ascending by bound are non-decreasing and the
    // +Inf bucket is the count.
    let mut buckets: BTreeMap<Series, Vec<(f64, f64)>> = BTreeMap::new();
    for ((name, labels), v) in &s.samples {
        if let Some(base) = name.strip_suffix("_bucket") {
            let le = labels
                .iter()
                .find(|(k, _)| k == "le")
                .expect("le")
                .1
                .clone();
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("le")
            };
            let rest: Vec<_> = labels.iter().filter(|(k, _)| k != "le").cloned().collect();
            buckets
                .entry((base.to_owned(), rest))
                .or_default()
                .push((bound, *v));
        }
    }
    assert!(!buckets.is_empty(), "no histogram in the scrape");
    for ((base, labels), mut bs) in buckets {
        bs.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(
            bs.windows(2).all(|w| w[0].1 <= w[1].1),
            "{base}{labels:?}: {bs:?}"
        );
        let last = bs.last().expect("bucket");
        assert_eq!(last.0, f64::INFINITY, "{base}{labels:?} has no +Inf bucket");
        let count = s.samples[&(format!("{base}_count"), labels.clone())];
        assert_eq!(
            last.1, count,
            "{base}{labels:?}: +Inf bucket and _count differ"
        );
        assert!(
            s.samples
                .contains_key(&(format!("{base}_sum"), labels.clone()))
        );
    }
    s
}

impl Scrape {
    /// A sample's value; 0 when the series is absent (not yet seen).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        self.samples
            .get(&(name.to_owned(), labels))
            .copied()
            .unwrap_or(0.0)
    }
}

fn scrape(debug: &str) -> Scrape {
    let (status, text) = debug_get(debug, "/metrics");
    assert_eq!(status, 200, "{text}");
    parse(&text)
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[test]
fn metrics_count_pushes_and_pulls_exactly() {
    let work = tempfile::tempdir().unwrap();
    let (berth, debug) = start_debug(
        &work.path().join("root"),
        work.path(),
        "    prometheus:\n      enabled: true\n",
        "",
    );
    let reg = berth.client();
    let before = scrape(&debug);

    let repo = "team/app";
    let config_blob = b"{}".to_vec();
    let layers: Vec<Vec<u8>> = (0..2u8)
        .map(|i| vec![i; 3000 + usize::from(i) * 5000])
        .collect();
    let mut blobs = vec![config_blob.clone()];
    blobs.extend(layers.iter().cloned());
    for b in &blobs {
        let d = sha256(b);
        let r = reg.run(|c| c.push_blob(repo, &d, b.clone())).unwrap();
        assert_eq!(r.status, 201);
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config_blob), "size": config_blob.len()},
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(l), "size": l.len()
        })).collect::<Vec<_>>(),
    })
    .to_string();
    let r = reg
        .run(|c| c.put_manifest(repo, "v1", OCI_MANIFEST, manifest.clone(), &[]))
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    for _ in 0..2 {
        let r = reg
            .run(|c| c.get_manifest(repo, "v1", OCI_MANIFEST))
            .unwrap();
        assert_eq!(r.status, 200);
    }
    for b in &blobs {
        let d = sha256(b);
        let r = reg.run(|c| c.get_blob(repo, &d, None)).unwrap();
        assert_eq!(r.status, 200);
    }
    let absent = sha256(b"absent");
    let r = reg.run(|c| c.head_blob(repo, &absent)).unwrap();
    assert_eq!(r.status, 404);

    let after = scrape(&debug);
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let requests = "registry_http_requests_total";
    let n = blobs.len() as f64;
    for (handler, code, method, expected) in [
        ("blob_upload", "202", "post", n),
        ("blob_upload_chunk", "201", "put", n),
        ("manifest", "201", "put", 1.0),
        ("manifest", "200", "get", 2.0),
        ("blob", "200", "get", n),
        ("blob", "404", "head", 1.0),
    ] {
        let labels = [("handler", handler), ("code", code), ("method", method)];
        assert_eq!(delta(requests, &labels), expected, "{labels:?}");
        // Each handler and method pair here answered with one code only, so its
        // duration histogram counted exactly its requests.
        let d = [("handler", handler), ("method", method)];
        assert_eq!(
            delta("registry_http_request_duration_seconds_count", &d),
            expected,
            "{d:?}"
        );
    }
    // Nothing else was counted on those routes: every request is accounted for above.
    let total = |s: &Scrape| -> f64 {
        s.samples
            .iter()
            .filter(|((name, _), _)| name == requests)
            .map(|(_, v)| v)
            .sum()
    };
    assert_eq!(total(&after) - total(&before), 3.0 * n + 4.0);
    for handler in ["blob", "manifest", "blob_upload", "blob_upload_chunk"] {
        assert_eq!(
            after.get("registry_http_in_flight_requests", &[("handler", handler)]),
            0.0
        );
    }
    assert_eq!(
        delta(
            "registry_http_response_size_bytes_count",
            &[("handler", "blob")]
        ),
        n + 1.0
    );
    let pushed: usize = blobs.iter().map(Vec::len).sum::<usize>() + manifest.len();
    assert_eq!(delta("berth_http_received_bytes_total", &[]), pushed as f64);
    let pulled: usize = blobs.iter().map(Vec::len).sum::<usize>() + 2 * manifest.len();
    assert!(delta("berth_http_sent_bytes_total", &[]) >= pulled as f64);
    // The storage layer: driver actions timed, cache requests split into hits and misses.
    for action in ["EnsureContent", "Stat", "Reader", "Writer", "Move"] {
        let labels = [("driver", "filesystem"), ("action", action)];
        assert!(
            delta("registry_storage_action_seconds_count", &labels) > 0.0,
            "{action}"
        );
    }
    let cache = |t: &str| after.get("registry_storage_cache_total", &[("type", t)]);
    assert!(cache("Request") > 0.0);
    assert_eq!(cache("Request"), cache("Hit") + cache("Miss"));
    assert!(
        cache("Hit") > 0.0,
        "pulls of just-pushed blobs hit the cache"
    );
    assert_eq!(after.get("berth_upload_sessions_open", &[]), 0.0);
    assert_eq!(after.types["berth_http_rate_limited_total"], "counter");
    assert!(berth.stop().success());
}

#[test]
fn request_ids_are_echoed_generated_and_logged() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    let (config, addr) = common::berth_config(&root, work.path(), "", "");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("serve")
        .arg(&config)
        .env("REGISTRY_LOG_FORMATTER", "json");
    let berth = common::spawn(cmd, addr, work.path(), "berth");
    let reg = berth.client();
    let r = send(reg, Method::GET, "/v2/", &[("X-Request-Id", "ops-test-42")]);
    assert_eq!(r.header("x-request-id"), Some("ops-test-42"));
    let r = send(
        reg,
        Method::GET,
        "/v2/nothing/tags/list",
        &[("X-Request-Id", "bad id with spaces")],
    );
    assert_eq!(r.status, 404);
    let made = r.header("x-request-id").expect("an id").to_owned();
    assert_eq!(made.len(), 36, "{made}");
    let log = berth.log.clone();
    assert!(berth.stop().success());
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["target"] == "berth::access")
        .collect();
    let by_id = |id: &str| {
        lines
            .iter()
            .find(|l| l["request_id"] == id)
            .unwrap_or_else(|| panic!("no access line with id {id} in:\n{text}"))
    };
    assert_eq!(by_id("ops-test-42")["path"], "/v2/");
    let line = by_id(&made);
    assert_eq!(line["path"], "/v2/nothing/tags/list");
    assert_eq!(
        line["span"]["request_id"],
        made.as_str(),
        "the span carries it too"
    );
}

/// Polls until `done` or 15 seconds pass; answers how long it took.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    start.elapsed()
}

fn api_status(reg: &BlockingClient) -> u16 {
    reg.run(|c| c.ping()).map(|r| r.status).unwrap_or(0)
}

/// A tmpfs mounted on a directory, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_owned()))
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.0)
            .status()
            .expect("mount");
        assert!(status.success(), "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn an_unwritable_storage_root_makes_the_api_unavailable_until_it_is_writable() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    // Root ignores file modes, so the root is a filesystem of its own, remounted
    // read-only: a write fails for every user, as on a disk the kernel turned read-only.
    let Some(fs) = Tmpfs::mount(&root) else {
        assert!(
            std::env::var("BERTH_E2E_REQUIRED").as_deref() != Ok("1"),
            "this test mounts a tmpfs (needs CAP_SYS_ADMIN)"
        );
        eprintln!("skipping: cannot mount a tmpfs here");
        return;
    };
    let (interval, threshold) = (Duration::from_millis(300), 2);
    let (berth, debug) = start_debug(
        &root,
        work.path(),
        "",
        &format!(
            "health:\n  storagedriver:\n    enabled: true\n    interval: 300ms\n    threshold: {threshold}\n"
        ),
    );
    let reg = berth.client();
    wait_for("a first passing probe", || api_status(reg) == 200);
    std::thread::sleep(interval * 2);
    assert_eq!(api_status(reg), 200);
    assert_eq!(debug_get(&debug, "/debug/health"), (200, "{}".to_owned()));

    fs.remount("ro");
    let took = wait_for("503 from the API", || api_status(reg) == 503);
    // `threshold` failed probes in a row, one per interval.
    assert!(
        took >= interval * (threshold - 1),
        "503 after only {took:?}"
    );
    let r = send(reg, Method::GET, "/v2/team/app/tags/list", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(r.error_codes().unwrap_or_default(), ["UNAVAILABLE"]);
    let (status, body) = debug_get(&debug, "/debug/health");
    assert_eq!(status, 503, "{body}");
    let failing: BTreeMap<String, String> = serde_json::from_str(&body).unwrap();
    assert_eq!(
        failing.keys().collect::<Vec<_>>(),
        ["storagedriver_filesystem"],
        "{body}"
    );
    assert!(
        failing["storagedriver_filesystem"].contains("Read-only"),
        "{body}"
    );

    fs.remount("rw");
    wait_for("recovery", || api_status(reg) == 200);
    assert_eq!(debug_get(&debug, "/debug/health"), (200, "{}".to_owned()));
    // And the registry takes pushes again.
    let back = sha256(b"back");
    let r = reg
        .run(|c| c.push_blob("team/app", &back, &b"back"[..]))
        .unwrap();
    assert_eq!(r.status, 201);
    assert!(berth.stop().success());
}

/// Answers every HTTP request on `listener` with 200, until the test ends.
fn serve_ok(listener: TcpListener) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
}

#[test]
fn tcp_and_http_checks_follow_their_targets() {
    let work = tempfile::tempdir().unwrap();
    let (tcp_port, http_port) = (common::free_port(), common::free_port());
    let tcp = format!("127.0.0.1:{tcp_port}");
    let uri = format!("http://127.0.0.1:{http_port}/ping");
    let (berth, debug) = start_debug(
        &work.path().join("root"),
        work.path(),
        "",
        &format!(
            "health:\n  tcp:\n    - addr: \"{tcp}\"\n      interval: 200ms\n      timeout: 150ms\n  http:\n    - uri: \"{uri}\"\n      interval: 200ms\n      headers: {{X-Probe: [berth]}}\n"
        ),
    );
    let reg = berth.client();
    // Both targets are closed: both checks fail, the API refuses.
    wait_for("both checks failing", || {
        let (status, body) = debug_get(&debug, "/debug/health");
        status == 503 && body.contains(&tcp) && body.contains(&uri)
    });
    assert_eq!(api_status(reg), 503);

    let tcp_listener = TcpListener::bind(&tcp).expect("bind the tcp target");
    wait_for("the tcp check passing", || {
        !debug_get(&debug, "/debug/health").1.contains(&tcp)
    });
    assert_eq!(api_status(reg), 503, "the http check still fails");

    serve_ok(TcpListener::bind(format!("127.0.0.1:{http_port}")).expect("bind the http target"));
    wait_for("every check passing", || {
        debug_get(&debug, "/debug/health") == (200, "{}".to_owned())
    });
    assert_eq!(api_status(reg), 200);

    drop(tcp_listener);
    wait_for("the tcp check failing again", || api_status(reg) == 503);
    assert!(berth.stop().success());
}
