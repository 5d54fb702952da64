//! Shared by the access-control end-to-end tests (included with
//! `#[path = "support/auth.rs"]`, next to `mod common;`): htpasswd files made by the real
//! `htpasswd -B`, the shared policy, and RS256 tokens minted with `openssl dgst` the way a
//! token server outside berth mints them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;

use crate::common;

/// berth on `root` with htpasswd access control (realm `berth-test`) for `users`, its
/// files in `work`.
pub fn berth_with_users(root: &Path, work: &Path, users: &[(&str, &str)]) -> common::Process {
    let file = htpasswd_file(work, users);
    common::berth(
        root,
        work,
        &format!(
            "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
            file.display()
        ),
    )
}

/// An htpasswd file made by the real `htpasswd -B`.
pub fn htpasswd_file(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("htpasswd");
    for (i, (user, pw)) in users.iter().enumerate() {
        let mut cmd = Command::new("htpasswd");
        cmd.arg("-B").arg("-b");
        if i == 0 {
            cmd.arg("-c");
        }
        common::run(cmd.arg(&path).arg(user).arg(pw));
    }
    path
}

pub fn basic(user: &str, pw: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{pw}")))
}

/// The policy the auth tests share: alice pushes and pulls `team/*`, the `readers`
/// group (bob) pulls it, anyone pulls `public/**`, root does everything.
pub const POLICY: &str = "berth:
  auth:
    groups:
      readers: [bob]
    policy:
      - repositories: [\"team/*\"]
        users: [alice]
        actions: [pull, push]
      - repositories: [\"team/*\"]
        groups: [readers]
        actions: [pull]
      - repositories: [\"public/**\"]
        anonymous: true
        actions: [pull]
      - repositories: [\"**\"]
        users: [root]
        actions: [\"*\"]
        catalog: true
";

/// `openssl <args>` run in `dir`: its stdout.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    common::run_bytes(Command::new("openssl").args(args).current_dir(dir))
}

/// A self-signed RSA signing certificate: (key, cert).
pub fn signing_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (k, c) = (format!("{name}.key"), format!("{name}.crt"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-newkey",
            "rsa:2048",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &k,
            "-out",
            &c,
        ],
    );
    (dir.join(k), dir.join(c))
}

pub fn cert_der(cert: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(cert).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token signed with `openssl dgst` (RS256), as a token server outside berth would.
pub fn mint(dir: &Path, key: &Path, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    // One file per token: a token server thread may mint while the test does.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file = format!("input-{}", COUNTER.fetch_add(1, Ordering::Relaxed));
    std::fs::write(dir.join(&file), &input).unwrap();
    let sig = openssl(
        dir,
        &["dgst", "-sha256", "-sign", key.to_str().unwrap(), &file],
    );
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}
