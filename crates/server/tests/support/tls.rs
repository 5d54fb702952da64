//! Shared by the TLS end-to-end tests (included with `#[path = "support/tls.rs"]`, next
//! to `mod common;`): test certificates made with the openssl CLI, berth started behind
//! HTTPS and waited for with curl, skopeo copies with verified TLS and cert dirs, and
//! Debian's pebble (an ACME test CA).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common;

/// Whether every tool these tests drive is present (a missing one fails the test under
/// `BERTH_E2E_REQUIRED=1`).
pub fn have(tools: &[&str]) -> bool {
    tools.iter().all(|t| common::have_tool(t))
}

pub fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A directory of test certificates made with the openssl CLI (EC P-256 keys).
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        Pki {
            dir: dir.to_owned(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn openssl(&self, args: &[&str]) {
        common::run(Command::new("openssl").current_dir(&self.dir).args(args));
    }

    /// A self-signed CA: `<name>.crt`, `<name>.key`.
    pub fn ca(&self, name: &str) -> PathBuf {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=berth test {name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ]);
        self.path(&format!("{name}.crt"))
    }

    /// A leaf `<name>.crt`/`<name>.key` signed by CA `ca`, with subject CN `cn` and the
    /// given extensions (subjectAltName, extendedKeyUsage).
    pub fn leaf(&self, ca: &str, name: &str, cn: &str, extensions: &[&str]) -> (PathBuf, PathBuf) {
        let mut req = vec![
            "req".to_owned(),
            "-new".into(),
            "-newkey".into(),
            "ec".into(),
            "-pkeyopt".into(),
            "ec_paramgen_curve:P-256".into(),
            "-nodes".into(),
            "-subj".into(),
            format!("/CN={cn}"),
            "-keyout".into(),
            format!("{name}.key"),
            "-out".into(),
            format!("{name}.csr"),
        ];
        for ext in extensions {
            req.push("-addext".into());
            req.push((*ext).to_owned());
        }
        let req: Vec<&str> = req.iter().map(String::as_str).collect();
        self.openssl(&req);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-copy_extensions",
            "copy",
            "-out",
            &format!("{name}.crt"),
        ]);
        (
            self.path(&format!("{name}.crt")),
            self.path(&format!("{name}.key")),
        )
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn server(&self, ca: &str, name: &str, cn: &str) -> (PathBuf, PathBuf) {
        self.leaf(
            ca,
            name,
            cn,
            &[
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "extendedKeyUsage=serverAuth",
            ],
        )
    }

    /// A client certificate.
    pub fn client(&self, ca: &str, name: &str) -> (PathBuf, PathBuf) {
        self.leaf(ca, name, name, &["extendedKeyUsage=clientAuth"])
    }
}

/// The usual test PKI: CA `ca` and a server certificate `server` (CN berth-a).
pub fn server_pki(work: &Path) -> (Pki, PathBuf, PathBuf, PathBuf) {
    let pki = Pki::new(&work.join("pki"));
    let ca = pki.ca("ca");
    let (cert, key) = pki.server("ca", "server", "berth-a");
    (pki, ca, cert, key)
}

/// `http.tls` lines (indented for the http section) for a certificate and key.
pub fn tls_yaml(cert: &Path, key: &Path, more: &str) -> String {
    format!(
        "  tls:\n    certificate: {}\n    key: {}\n{more}",
        cert.display(),
        key.display()
    )
}

/// Starts berth with `http_extra` appended to its http section and `env` set, and waits
/// until `curl <ready>` gets an HTTP answer from `https://127.0.0.1:<port>/v2/` (or the
/// plain URL when `scheme` is http): 200, or 401 from a berth with access control.
pub fn start(
    work: &Path,
    root: &Path,
    http_extra: &str,
    env: &[(&str, &str)],
    scheme: &str,
    ready: &[&str],
) -> common::Process {
    let (config, addr) = common::berth_config(root, work, "", http_extra);
    spawn(work, &config, addr, env, scheme, ready)
}

/// Starts berth on a written `config` listening on `addr`, and waits as [`start`] does.
pub fn spawn(
    work: &Path,
    config: &Path,
    addr: String,
    env: &[(&str, &str)],
    scheme: &str,
    ready: &[&str],
) -> common::Process {
    let log = work.join(format!("berth-{}.log", common::free_port()));
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("serve")
        .arg(config)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("spawn berth");
    let mut process = common::Process::new(child, addr.clone(), log);
    let url = format!("{scheme}://{addr}/v2/");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = output(
            Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
                .args(ready)
                .arg(&url),
        );
        if matches!(text(&out.stdout).as_str(), "200" | "401") {
            return process;
        }
        if let Ok(Some(status)) = process.child.try_wait() {
            panic!("berth exited with {status}:\n{}", process.log_text());
        }
        assert!(
            Instant::now() < deadline,
            "berth never answered {url}:\n{}",
            process.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// curl's exit code and `-w` output for `url` with `args`.
pub fn curl(args: &[&str], url: &str) -> (Option<i32>, String) {
    let out = output(
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "--max-time", "20"])
            .args(args)
            .arg(url),
    );
    (out.status.code(), text(&out.stdout))
}

/// skopeo copy with verified TLS; `cert_dir` is used for both ends. Answers the digest
/// written, or skopeo's error.
pub fn skopeo_copy_verified(
    cert_dir: &Path,
    src: &str,
    dest: &str,
    work: &Path,
) -> Result<String, String> {
    skopeo_copy_verified_with(&[], cert_dir, src, dest, work)
}

/// [`skopeo_copy_verified`] with `extra` options for the copy (`--authfile`, `--dest-creds`).
pub fn skopeo_copy_verified_with(
    extra: &[&str],
    cert_dir: &Path,
    src: &str,
    dest: &str,
    work: &Path,
) -> Result<String, String> {
    let digestfile = work.join(format!("digest-{}", common::free_port()));
    let dir = cert_dir.display().to_string();
    let out = output(
        Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--retry-times",
                "0",
                "--src-tls-verify=true",
                "--dest-tls-verify=true",
                "--src-cert-dir",
                &dir,
                "--dest-cert-dir",
                &dir,
                "--digestfile",
                digestfile.to_str().unwrap(),
            ])
            .args(extra)
            .args([src, dest]),
    );
    if !out.status.success() {
        return Err(text(&out.stderr));
    }
    Ok(std::fs::read_to_string(&digestfile)
        .expect("digestfile")
        .trim()
        .to_owned())
}

/// A cert dir for skopeo (containers/image): `ca.crt`, and a client pair if given.
pub fn cert_dir(work: &Path, name: &str, ca: &Path, client: Option<(&Path, &Path)>) -> PathBuf {
    let dir = work.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(ca, dir.join("ca.crt")).unwrap();
    if let Some((cert, key)) = client {
        std::fs::copy(cert, dir.join("client.cert")).unwrap();
        std::fs::copy(key, dir.join("client.key")).unwrap();
    }
    dir
}

/// Debian's pebble (an ACME test CA) on free loopback ports, serving its API with a
/// certificate of our test CA; answers the process and the directory URL.
pub fn pebble(
    work: &Path,
    pki: &Pki,
    tls_port: u16,
    always_valid: bool,
) -> (common::Process, String) {
    let (cert, key) = pki.server("ca", "pebble", "pebble");
    let (acme, management) = (common::free_port(), common::free_port());
    let config = work.join("pebble.json");
    let json = serde_json::json!({
        "pebble": {
            "listenAddress": format!("127.0.0.1:{acme}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": cert,
            "privateKey": key,
            "httpPort": common::free_port(),
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false
        }
    });
    std::fs::write(&config, json.to_string()).unwrap();
    let log = work.join("pebble.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new("pebble");
    cmd.arg("-config")
        .arg(&config)
        .env("PEBBLE_VA_NOSLEEP", "1")
        // Every nonce honoured and no authorization reused, so each order is visible.
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .env("PEBBLE_AUTHZREUSE", "0")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    if always_valid {
        cmd.env("PEBBLE_VA_ALWAYS_VALID", "1");
    }
    let child = cmd.spawn().expect("spawn pebble");
    let process = common::Process::new(child, format!("127.0.0.1:{management}"), log);
    let directory = format!("https://127.0.0.1:{acme}/dir");
    let ca = pki.path("ca.crt").display().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while curl(&["--cacert", &ca, "-w", "%{http_code}"], &directory).1 != "200" {
        assert!(
            Instant::now() < deadline,
            "pebble never answered:\n{}",
            process.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (process, directory)
}

/// pebble's root CA of this run, from its management interface.
pub fn pebble_root(pebble: &common::Process, pki: &Pki, work: &Path) -> PathBuf {
    let root = work.join("pebble-root.pem");
    let ca = pki.path("ca.crt").display().to_string();
    let out = output(
        Command::new("curl")
            .args(["-sf", "--cacert", &ca, "-o"])
            .arg(&root)
            .arg(format!("https://{}/roots/0", pebble.addr)),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    root
}

/// The `letsencrypt` section for pebble's directory.
pub fn letsencrypt_yaml(cache: &Path, directory: &str) -> String {
    format!(
        "  tls:\n    letsencrypt:\n      cachefile: {}\n      email: ops@example.com\n      hosts: [localhost]\n      directoryurl: {directory}\n",
        cache.display()
    )
}
