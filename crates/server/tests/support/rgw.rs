//! Ceph's radosgw, the real S3 gateway the S3 tests also run on (it checks SigV4
//! signatures and presigned URLs, which moto does not). One gateway serves a whole test
//! run: the one `scripts/test.sh` started (named by `BERTH_RGW_ENDPOINT`,
//! `BERTH_RGW_ACCESSKEY`, `BERTH_RGW_SECRETKEY`), or else one that the first test of a
//! test binary starts with `scripts/lib/rgw.sh` (about 15 s), shared by the binary's other
//! tests and stopped by the script's watchdog once the binary exits. Every test makes its
//! own bucket. Buckets are made and inspected with signed `curl --aws-sigv4` requests.
//!
//! Self-contained (no `common` module), so that the driver's tests include it too.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// SHA-256 of an empty body: the payload hash of the bodiless requests sent here (curl
/// signs none of its own, and S3 wants one).
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// A running gateway and the keys of its S3 user.
#[derive(Debug)]
pub struct Rgw {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The user's access key.
    pub access_key: String,
    /// The user's secret key.
    pub secret_key: String,
}

static SHARED: OnceLock<Result<Rgw, String>> = OnceLock::new();
static BUCKETS: AtomicUsize = AtomicUsize::new(0);

/// Whether `BERTH_E2E_REQUIRED=1`: what is missing fails the test instead of skipping it.
fn required() -> bool {
    std::env::var("BERTH_E2E_REQUIRED").as_deref() == Ok("1")
}

/// Skips (answers `None`) or, under `BERTH_E2E_REQUIRED`, fails with `why`.
fn unavailable<T>(why: &str) -> Option<T> {
    assert!(
        !required(),
        "radosgw is required by this test: {why} (scripts/lib/rgw.sh install, or unset BERTH_E2E_REQUIRED to skip)"
    );
    eprintln!("skipping: {why}");
    None
}

fn installed(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `scripts/lib/rgw.sh` of this source tree (both crates that use this live in `crates/`).
fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/lib/rgw.sh")
}

/// The value of `name=` in `KEY=VALUE` lines.
fn value_of(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        .map(str::to_owned)
}

impl Rgw {
    /// The gateway of this test run (see the module text), or `None` when radosgw is not
    /// installed or cannot be started (the test is then skipped, or fails under
    /// `BERTH_E2E_REQUIRED`).
    pub fn shared() -> Option<&'static Rgw> {
        match SHARED.get_or_init(Self::find_or_start) {
            Ok(rgw) => Some(rgw),
            Err(why) => unavailable(why),
        }
    }

    fn find_or_start() -> Result<Rgw, String> {
        if let Ok(endpoint) = std::env::var("BERTH_RGW_ENDPOINT") {
            let var = |k: &str| {
                std::env::var(k).map_err(|_| format!("{k} is needed with BERTH_RGW_ENDPOINT"))
            };
            return Ok(Rgw {
                endpoint: endpoint.trim_end_matches('/').to_owned(),
                access_key: var("BERTH_RGW_ACCESSKEY")?,
                secret_key: var("BERTH_RGW_SECRETKEY")?,
            });
        }
        for cmd in ["radosgw", "ceph-mon", "ceph-osd", "curl"] {
            if !installed(cmd) {
                return Err(format!("{cmd} is not installed"));
            }
        }
        let dir = std::env::temp_dir().join(format!("berth-rgw-{}", std::process::id()));
        let started = std::time::Instant::now();
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(&dir)
            .args(["--owner", &std::process::id().to_string()])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", script().display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!(
                "rgw.sh start failed ({}):\n{stdout}\n{stderr}",
                out.status
            ));
        }
        eprintln!(
            "radosgw started for this test binary in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let get = |k: &str| value_of(&stdout, k).ok_or_else(|| format!("rgw.sh printed no {k}"));
        Ok(Rgw {
            endpoint: get("BERTH_RGW_ENDPOINT")?,
            access_key: get("BERTH_RGW_ACCESSKEY")?,
            secret_key: get("BERTH_RGW_SECRETKEY")?,
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        self.endpoint.trim_start_matches("http://")
    }

    /// A signed request for `path` (`/bucket/key?query`, without a body); answers the
    /// status and the body.
    pub fn signed(&self, method: &str, path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-sS", "-X", method, "-w", "\n%{http_code}"])
            .args(["-H", &format!("x-amz-content-sha256: {EMPTY_SHA256}")])
            .args(["-H", "Content-Length: 0"])
            .args(["--aws-sigv4", "aws:amz:us-east-1:s3", "--user"])
            .arg(format!("{}:{}", self.access_key, self.secret_key))
            .arg(format!("{}{path}", self.endpoint))
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "curl {method} {path}: {text}");
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// Creates a bucket named after `prefix`, unique on this gateway (which outlives the
    /// test), and answers its name.
    pub fn create_bucket(&self, prefix: &str) -> String {
        let bucket = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            BUCKETS.fetch_add(1, Ordering::Relaxed)
        );
        let (status, body) = self.signed("PUT", &format!("/{bucket}"));
        assert_eq!(status, 200, "create bucket {bucket}: {body}");
        bucket
    }

    /// The keys under `prefix` in `bucket` (first 1,000).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        // Encoded as the signature's canonical query has it.
        let prefix = prefix.replace('/', "%2F");
        let (status, body) = self.signed("GET", &format!("/{bucket}?list-type=2&prefix={prefix}"));
        assert_eq!(status, 200, "list {bucket}: {body}");
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_owned()))
            .collect()
    }

    /// Multipart uploads in progress in `bucket`.
    pub fn uploads_in(&self, bucket: &str) -> usize {
        let (status, body) = self.signed("GET", &format!("/{bucket}?uploads="));
        assert_eq!(status, 200, "list uploads of {bucket}: {body}");
        body.matches("<UploadId>").count()
    }

    /// The `s3` entries of a `storage` section (indented four spaces) over `bucket` and
    /// `rootdirectory`, in the words both berth and distribution 2.8.2 read (2.8.2 has no
    /// `forcepathstyle`: it uses path-style requests whenever `regionendpoint` is set).
    pub fn s3_yaml(&self, bucket: &str, root: &str) -> String {
        format!(
            "    region: us-east-1\n    regionendpoint: {}\n    bucket: {bucket}\n    accesskey: {}\n    secretkey: {}\n    rootdirectory: {root}\n    secure: false\n    v4auth: true\n    chunksize: 5242880\n",
            self.endpoint, self.access_key, self.secret_key
        )
    }
}
