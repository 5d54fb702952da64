//! Nodes of a fleet for end-to-end tests: a berth process with its metrics on a debug
//! address and, when given one, a `redis-server` as its shared cache, versions and
//! locks (set through `REGISTRY_*` variables, as a fleet's nodes would be); and what the
//! tests push to and ask of such nodes. Included by path with `common` at the crate root.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_client::BlockingClient;
use sha2::{Digest as _, Sha256};

/// The media type of the images [`push_image`] pushes.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// `sha256:<hex>` of `b`.
pub fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// A running berth node with metrics at `debug`.
pub struct Node {
    pub process: crate::common::Process,
    /// The debug address (`host:port`) serving `/metrics`.
    pub debug: String,
    /// Its configuration file.
    pub config: PathBuf,
}

impl Node {
    /// Starts `berth serve config` (listening on `addr`, its debug server on `debug`),
    /// with Redis at `redis` when given; waits until it answers, and until Redis is in
    /// use.
    pub fn spawn(
        config: PathBuf,
        addr: String,
        debug: String,
        work: &Path,
        name: &str,
        redis: Option<&str>,
    ) -> Node {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.arg("serve").arg(&config);
        if let Some(redis) = redis {
            with_redis(&mut cmd, redis);
        }
        let process = crate::common::spawn(cmd, addr, work, name);
        let node = Node {
            process,
            debug,
            config,
        };
        if redis.is_some() {
            node.wait_metric("berth_redis_up", "", 1.0);
        }
        node
    }

    /// The lines a node's `http` section needs for [`spawn`](Self::spawn)'s `debug`
    /// address (metrics on).
    pub fn debug_yaml(debug: &str) -> String {
        format!("  debug:\n    addr: {debug}\n    prometheus:\n      enabled: true\n")
    }

    pub fn client(&self) -> &BlockingClient {
        self.process.client()
    }

    /// A sample of the node's metrics (0 when absent); `labels` as encoded, e.g.
    /// `cache="blob_link",result="hit"`.
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        let c = crate::common::client(&self.debug);
        let Ok(r) = c.run(|c| c.get("/metrics")) else {
            return 0.0;
        };
        let text = String::from_utf8_lossy(&r.body).into_owned();
        let series = if labels.is_empty() {
            name.to_owned()
        } else {
            format!("{name}{{{labels}}}")
        };
        text.lines()
            .find_map(|l| l.strip_prefix(&series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits (up to 15 s) until a sample reads `value`.
    pub fn wait_metric(&self, name: &str, labels: &str, value: f64) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.metric(name, labels) != value {
            assert!(
                Instant::now() < deadline,
                "{name}{{{labels}}} never became {value}:\n{}",
                self.process.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The environment that puts a node's descriptor cache (and with it the repository
/// versions and the fleet's locks) in Redis at `redis`.
pub fn with_redis(cmd: &mut Command, redis: &str) {
    cmd.env("REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR", "redis")
        .env("REGISTRY_REDIS_ADDR", redis)
        .env("REGISTRY_REDIS_READTIMEOUT", "500ms")
        .env("REGISTRY_REDIS_WRITETIMEOUT", "500ms");
}

/// Pushes `bytes` as a blob of `repo` through `node`; answers its digest.
pub fn push(node: &Node, repo: &str, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    let r = node
        .client()
        .run(|c| c.push_blob(repo, &d, bytes.to_vec()))
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    d
}

/// The body of a one-layer image manifest naming `config` and `layer` (already pushed).
pub fn image_manifest(config: (&str, usize), layer: (&str, usize)) -> String {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.0, "size": layer.1}],
    })
    .to_string()
}

/// Pushes a one-layer image manifest to `repo:tag` (by digest when `tag` is empty)
/// through `node`; answers its digest.
pub fn push_image(node: &Node, repo: &str, tag: &str, layer: &[u8]) -> String {
    let config = b"{}".to_vec();
    let (cd, ld) = (push(node, repo, &config), push(node, repo, layer));
    let manifest = image_manifest((&cd, config.len()), (&ld, layer.len()));
    let digest = sha256(manifest.as_bytes());
    let reference = if tag.is_empty() { &digest } else { tag };
    let r = node
        .client()
        .run(|c| c.put_manifest(repo, reference, OCI_MANIFEST, manifest.clone(), &[]))
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    digest
}

/// What `repo:tag` names on `node`: its digest, or `None` when 404.
pub fn tag_target(node: &Node, repo: &str, tag: &str) -> Option<String> {
    let r = node
        .client()
        .run(|c| c.get_manifest(repo, tag, OCI_MANIFEST))
        .unwrap();
    match r.status {
        200 => Some(r.header("docker-content-digest").unwrap().to_owned()),
        404 => None,
        other => panic!("GET {repo}:{tag}: {other} {}", r.text()),
    }
}
