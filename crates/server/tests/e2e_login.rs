//! Real clients against access control over TLS: skopeo and podman log in to the real
//! `berth` binary (behind a certificate of a test CA made with openssl, trusted through
//! a client cert dir) and push and pull with the digests identical both ways, through
//! 1. htpasswd users made with `htpasswd -B`;
//! 2. bearer tokens from a token server outside berth (a thread of this test minting RS256
//!    tokens with `openssl dgst`), which berth verifies against its `rootcertbundle`;
//! 3. berth's own token issuer with a policy: alice pushes `team/*`, bob only pulls it
//!    and his push is refused, anyone pulls `public/**` and nothing else, only root
//!    deletes; the issuer serves podman's login (GET with Basic, as containers/image asks
//!    with a password), podman's OAuth2 POST `grant_type=refresh_token` (with an identity
//!    token in its authfile), and containerd's POST `grant_type=password` (`ctr`);
//! 4. a client certificate checked against `http.tls.clientcas`, with htpasswd;
//! 5. a certificate berth obtained from pebble (ACME), with htpasswd.
//!
//! Every refusal is checked to be one: the client fails with an authentication error in
//! its own words. Each client keeps its credentials in an authfile under the test's
//! temporary directory, and podman its images in a storage there too.

#[path = "support/access_log.rs"]
mod access_log;
#[path = "support/auth.rs"]
mod auth;
mod common;
#[path = "support/containerd.rs"]
mod containerd;
#[path = "support/oci_layout.rs"]
mod oci_layout;
#[path = "support/podman.rs"]
mod podman;
#[path = "support/tls.rs"]
mod tls;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use access_log::stop_clean;
use auth::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use containerd::Containerd;
use oci_layout::*;
use serde_json::{Value, json};
use tls::*;

/// Tools every test here drives. podman is asked for separately, so that its absence
/// (outside `BERTH_E2E_REQUIRED=1`) still leaves the skopeo half running.
const TOOLS: [&str; 4] = ["openssl", "curl", "skopeo", "htpasswd"];

/// A client's failure, as the user sees it: stderr (and stdout) of the command.
fn failure(out: &Output) -> String {
    format!("{}{}", text(&out.stderr), text(&out.stdout))
}

/// Whether a client's error says that authentication or authorization failed, in the
/// words containers/image (skopeo, podman) uses for 401/403 answers and refused tokens.
fn is_auth_error(err: &str) -> bool {
    let e = err.to_lowercase();
    [
        "unauthorized",
        "authentication required",
        "invalid username/password",
        "requested access to the resource is denied",
    ]
    .iter()
    .any(|w| e.contains(w))
}

/// A test's work directory, storage root and htpasswd file of `users` (none when empty),
/// or `None` when a tool it drives (the common ones and `more`) is missing.
fn setup(
    more: &[&str],
    users: &[(&str, &str)],
) -> Option<(tempfile::TempDir, tempfile::TempDir, PathBuf)> {
    if !have(&TOOLS) || !have(more) {
        return None;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let htpasswd = if users.is_empty() {
        work.path().join("no-users")
    } else {
        htpasswd_file(work.path(), users)
    };
    Some((work, root, htpasswd))
}

/// Asserts that a command failed and said why in authentication terms.
fn assert_auth_refused(out: &Output, what: &str) {
    assert!(!out.status.success(), "{what} succeeded:\n{}", failure(out));
    let err = failure(out);
    assert!(is_auth_error(&err), "{what}: not an auth error:\n{err}");
}

/// The two clients, which share containers/image and so most options.
#[derive(Clone, Copy, Debug)]
enum Tool {
    Skopeo,
    Podman,
}

/// skopeo and (when present) podman set up for one registry: a cert dir (`ca.crt`, and
/// a client pair for mutual TLS), an authfile, and podman's own storage, all under the
/// test's temporary directory.
struct Clients {
    work: PathBuf,
    certs: PathBuf,
    authfile: PathBuf,
    podman_dir: PathBuf,
    podman: bool,
}

impl Clients {
    fn new(work: &Path, certs: PathBuf, name: &str) -> Clients {
        let podman_dir = work.join(format!("podman-{name}"));
        std::fs::create_dir_all(podman_dir.join("tmp")).unwrap();
        // podman refuses an authfile that does not exist; an empty one holds no
        // credentials.
        let authfile = work.join(format!("auth-{name}.json"));
        std::fs::write(&authfile, r#"{"auths": {}}"#).unwrap();
        Clients {
            work: work.to_owned(),
            certs,
            authfile,
            podman_dir,
            podman: common::have_tool("podman"),
        }
    }

    fn certs(&self) -> String {
        self.certs.display().to_string()
    }

    fn authfile(&self) -> String {
        self.authfile.display().to_string()
    }

    /// `program` reading credentials from this authfile only: containers/image also
    /// reads docker's config, which is pointed at the test's directory, not the user's.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("REGISTRY_AUTH_FILE", &self.authfile)
            .env("DOCKER_CONFIG", &self.work);
        cmd
    }

    /// `skopeo --insecure-policy <args>`, whatever its outcome.
    fn skopeo(&self, args: &[&str]) -> Output {
        output(self.command("skopeo").arg("--insecure-policy").args(args))
    }

    /// `<tool> login` (skopeo and podman take the same options) into the authfile.
    fn login(&self, tool: Tool, host: &str, user: &str, password: &str) -> Output {
        let (authfile, certs) = (self.authfile(), self.certs());
        let args = [
            "login",
            "--authfile",
            &authfile,
            "--cert-dir",
            &certs,
            "--username",
            user,
            "--password",
            password,
            host,
        ];
        match tool {
            Tool::Skopeo => self.skopeo(&args),
            Tool::Podman => self.podman(&args),
        }
    }

    /// `skopeo copy` with verified TLS through the cert dir and `extra` options (by
    /// default the authfile's credentials); the digest written, or skopeo's error.
    fn copy(&self, extra: &[&str], src: &str, dest: &str) -> Result<String, String> {
        let authfile = self.authfile();
        let mut args = vec!["--authfile", authfile.as_str()];
        args.extend_from_slice(extra);
        skopeo_copy_verified_with(&args, &self.certs, src, dest, &self.work)
    }

    /// Pushes `img` from a fresh layout to `dest` and pulls it back into another: both
    /// digests are the image's, and the pulled layout holds it byte for byte.
    fn push_and_pull(&self, extra: &[&str], img: &Image, dest: &str) {
        let label = common::free_port();
        let src = self.work.join(format!("src-{label}"));
        LayoutWriter::new(&src).add_image(img, "v1");
        let pushed = self
            .copy(extra, &layout_str(&src, "v1"), dest)
            .unwrap_or_else(|e| panic!("skopeo push to {dest}: {e}"));
        assert_eq!(pushed, img.manifest.digest, "pushed to {dest}");
        let out = self.work.join(format!("out-{label}"));
        let pulled = self
            .copy(extra, dest, &layout_str(&out, "v1"))
            .unwrap_or_else(|e| panic!("skopeo pull from {dest}: {e}"));
        assert_eq!(pulled, img.manifest.digest, "pulled from {dest}");
        assert_layout_has_image(&out, "v1", img);
    }

    /// `creds` (`user:password`) pull `from`, which holds `img`, but their push of `img`
    /// to `to` is refused with an authentication error and leaves no manifest.
    fn pulls_but_cannot_push(&self, creds: &str, img: &Image, from: &str, to: &str) {
        let label = common::free_port();
        let out = layout_str(&self.work.join(format!("reader-out-{label}")), "v1");
        let pulled = self
            .copy(&["--src-creds", creds], from, &out)
            .unwrap_or_else(|e| panic!("{creds} pulls {from}: {e}"));
        assert_eq!(pulled, img.manifest.digest);
        let src = self.work.join(format!("reader-src-{label}"));
        LayoutWriter::new(&src).add_image(img, "v1");
        let err = self
            .copy(&["--dest-creds", creds], &layout_str(&src, "v1"), to)
            .expect_err("a reader pushed");
        assert!(is_auth_error(&err), "{creds} pushing {to}: {err}");
        assert!(
            self.raw_manifest(&["--creds", creds], to).is_err(),
            "the refused push to {to} left a manifest"
        );
    }

    /// `skopeo inspect --raw` with `extra` options: the manifest bytes, or skopeo's error.
    fn raw_manifest(&self, extra: &[&str], image: &str) -> Result<Vec<u8>, String> {
        let certs = self.certs();
        let mut args = vec![
            "inspect",
            "--raw",
            "--retry-times",
            "0",
            "--cert-dir",
            &certs,
        ];
        args.extend_from_slice(extra);
        args.push(image);
        let out = self.skopeo(&args);
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(failure(&out))
        }
    }

    /// podman with a storage of its own: what a test may use as root without touching
    /// the machine's images.
    fn podman(&self, args: &[&str]) -> Output {
        let mut cmd = self.command("podman");
        podman::isolate(&mut cmd, &self.podman_dir);
        output(cmd.args(args))
    }

    /// `<tool> login` that must succeed.
    fn logs_in(&self, tool: Tool, host: &str, user: &str, password: &str) {
        let out = self.login(tool, host, user, password);
        assert!(
            out.status.success(),
            "{tool:?} login as {user}: {}",
            failure(&out)
        );
    }

    /// `podman pull` of `image` through the cert dir and authfile.
    fn podman_pull(&self, image: &str) -> Output {
        let (certs, authfile) = (self.certs(), self.authfile());
        self.podman(&[
            "pull",
            "--quiet",
            "--cert-dir",
            &certs,
            "--authfile",
            &authfile,
            image,
        ])
    }

    /// podman pulls `image`, which must be `img`.
    fn podman_pulls(&self, image: &str, img: &Image) {
        let out = self.podman_pull(image);
        assert!(
            out.status.success(),
            "podman pull {image}: {}",
            failure(&out)
        );
        // podman answers the image ID: the digest of the config it stored.
        assert_eq!(
            format!("sha256:{}", text(&out.stdout).trim()),
            img.config.digest,
            "podman pulled another image than {image}"
        );
    }

    /// podman pulls `from` on `host` (an image skopeo pushed), tags it as `to` and pushes
    /// that: the digest podman reports is the one the registry serves for `to`, whose
    /// manifest keeps the image's config; skopeo then pulls `to` back with that digest.
    fn podman_pull_tag_push(&self, host: &str, img: &Image, from: &str, to: &str) {
        let (from, to) = (&format!("{host}/{from}"), &format!("{host}/{to}"));
        self.podman_pulls(from, img);
        let (certs, authfile) = (self.certs(), self.authfile());
        let tls = [
            "--cert-dir",
            certs.as_str(),
            "--authfile",
            authfile.as_str(),
        ];
        let out = self.podman(&["tag", from, to]);
        assert!(out.status.success(), "podman tag: {}", failure(&out));
        let digestfile = self
            .work
            .join(format!("podman-digest-{}", common::free_port()));
        let digestfile_s = digestfile.display().to_string();
        let out = self.podman(
            &[
                &["push", "--quiet", "--digestfile", &digestfile_s][..],
                &tls,
                &[to],
            ]
            .concat(),
        );
        assert!(out.status.success(), "podman push {to}: {}", failure(&out));
        let pushed = std::fs::read_to_string(&digestfile).unwrap();
        let served = self
            .raw_manifest(&["--authfile", &authfile], &format!("docker://{to}"))
            .unwrap_or_else(|e| panic!("inspect {to}: {e}"));
        assert_eq!(
            sha256_digest(&served),
            pushed.trim(),
            "served manifest of {to}"
        );
        let manifest: Value = serde_json::from_slice(&served).unwrap();
        assert_eq!(manifest["config"]["digest"], img.config.digest.as_str());
        let out = self
            .work
            .join(format!("podman-out-{}", common::free_port()));
        let pulled = self
            .copy(&[], &format!("docker://{to}"), &layout_str(&out, "v1"))
            .unwrap_or_else(|e| panic!("skopeo pull of podman's push: {e}"));
        assert_eq!(pulled, pushed.trim());
    }
}

/// berth behind HTTPS (a server certificate of test CA `ca` for 127.0.0.1) with `http_tls`
/// lines added to `http.tls` and `rest` (top-level sections, which may name the address)
/// after the http section.
fn tls_berth(
    work: &Path,
    root: &Path,
    http_tls: &str,
    rest: impl FnOnce(&str) -> String,
    ready: &[&str],
) -> (common::Process, PathBuf) {
    let (_pki, ca, cert, key) = server_pki(work);
    let addr = format!("127.0.0.1:{}", common::free_port());
    let extra = tls_yaml(&cert, &key, http_tls) + &rest(&addr);
    let (config, addr) = common::berth_config_on(&addr, root, work, "", &extra);
    let ca_s = ca.display().to_string();
    let ready = [&["--cacert", ca_s.as_str()][..], ready].concat();
    (spawn(work, &config, addr, &[], "https", &ready), ca)
}

fn htpasswd_yaml(users: &Path) -> String {
    format!(
        "auth:\n  htpasswd:\n    realm: berth-login\n    path: {}\n",
        users.display()
    )
}

/// The htpasswd half both the plain and the mutual TLS test run: a wrong password is
/// refused, alice logs in, and skopeo and podman push and pull with her credentials.
fn htpasswd_round_trips(clients: &Clients, host: &str, label: &str) {
    let out = clients.login(Tool::Skopeo, host, "alice", "wrong");
    assert_auth_refused(&out, "skopeo login with a wrong password");
    clients.logs_in(Tool::Skopeo, host, "alice", "a-pw");
    // A layer of megabytes, so that transfers span many TLS records and HTTP/2 frames.
    let img = image(&mut Rng::new(label), "amd64", &[3 * 1024 * 1024 + 3, 1000]);
    clients.push_and_pull(&[], &img, &format!("docker://{host}/team/app:v1"));
    if clients.podman {
        let out = clients.login(Tool::Podman, host, "alice", "wrong");
        assert_auth_refused(&out, "podman login with a wrong password");
        clients.logs_in(Tool::Podman, host, "alice", "a-pw");
        clients.podman_pull_tag_push(host, &img, "team/app:v1", "team/podman:v1");
    }
}

#[test]
fn htpasswd_login_push_and_pull_over_tls() {
    let Some((work, root, users)) = setup(&[], &[("alice", "a-pw")]) else {
        return;
    };
    let (berth, ca) = tls_berth(work.path(), root.path(), "", |_| htpasswd_yaml(&users), &[]);
    let clients = Clients::new(work.path(), cert_dir(work.path(), "certs", &ca, None), "h");
    // Without credentials the registry asks for them.
    let img = image(&mut Rng::new("anonymous"), "amd64", &[100]);
    let src = work.path().join("anon");
    LayoutWriter::new(&src).add_image(&img, "v1");
    let err = clients
        .copy(
            &[],
            &layout_str(&src, "v1"),
            &format!("docker://{}/team/anon:v1", berth.host()),
        )
        .expect_err("an anonymous push worked");
    assert!(is_auth_error(&err), "{err}");
    htpasswd_round_trips(&clients, berth.host(), "htpasswd");
    stop_clean(berth);
}

/// A token server outside berth, as docker's or a cloud's is: `GET <realm>?service=&scope=`
/// with Basic credentials answers an RS256 token signed by `openssl dgst` whose header
/// carries the signing certificate (`x5c`); berth knows that certificate only from its
/// `auth.token.rootcertbundle`.
struct TokenServer {
    realm: String,
    /// One line per request: `user=<name> scope=<scopes>`, `anonymous` for no user.
    requests: Arc<Mutex<Vec<String>>>,
}

const EXTERNAL_ISSUER: &str = "external-issuer";
const SERVICE: &str = "registry.test";

/// The token server's users: name, password, and the actions each may have on any
/// repository under `ext/` (and nothing elsewhere).
const EXTERNAL_USERS: [(&str, &str, &[&str]); 2] = [
    ("ci", "ci-pw", &["pull", "push"]),
    ("viewer", "v-pw", &["pull"]),
];

impl TokenServer {
    fn start(dir: &Path) -> (TokenServer, PathBuf) {
        let dir = dir.join("token-server");
        std::fs::create_dir_all(&dir).unwrap();
        let (key, cert) = signing_pair(&dir, "external");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let header =
            json!({"alg": "RS256", "typ": "JWT", "x5c": [STANDARD.encode(cert_der(&cert))]});
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        // Lives as long as the test process: one request at a time is all clients need.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = answer_token_request(stream, &dir, &key, &header, &seen);
            }
        });
        (TokenServer { realm, requests }, cert)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// The user a Basic `Authorization` names, if the password is right; `Ok(None)` for no
/// credentials; `Err` for wrong ones.
fn external_user(
    authorization: Option<&str>,
) -> Result<Option<(&'static str, &'static [&'static str])>, ()> {
    let Some(a) = authorization else {
        return Ok(None);
    };
    let creds = a
        .strip_prefix("Basic ")
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(())?;
    EXTERNAL_USERS
        .iter()
        .find(|(u, p, _)| creds == format!("{u}:{p}"))
        .map(|(u, _, actions)| Some((*u, *actions)))
        .ok_or(())
}

/// Answers one HTTP/1.1 request of the token server (and closes the connection).
fn answer_token_request(
    stream: TcpStream,
    dir: &Path,
    key: &Path,
    header: &Value,
    requests: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(value.trim().to_owned());
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let url = url::Url::parse(&format!("http://token-server{target}")).unwrap();
    let mut scopes = Vec::new();
    for (k, v) in url.query_pairs() {
        if k == "scope" {
            scopes.extend(v.split(' ').map(str::to_owned));
        }
    }
    let (status, body) = match external_user(authorization.as_deref()) {
        Err(()) => {
            requests.lock().unwrap().push("refused".to_owned());
            (
                "401 Unauthorized",
                json!({"details": "incorrect username or password"}),
            )
        }
        Ok(user) => {
            let (name, allowed) = user.unwrap_or(("", &[]));
            // Grant what is asked for within what the user has, on ext/ only.
            let access: Vec<Value> = scopes
                .iter()
                .filter_map(|s| {
                    let (kind, rest) = s.split_once(':')?;
                    let (repo, actions) = rest.rsplit_once(':')?;
                    let granted: Vec<&str> = actions
                        .split(',')
                        .filter(|a| repo.starts_with("ext/") && allowed.contains(a))
                        .collect();
                    (kind == "repository")
                        .then(|| json!({"type": kind, "name": repo, "actions": granted}))
                })
                .collect();
            let t = now();
            let claims = json!({"iss": EXTERNAL_ISSUER, "sub": name, "aud": SERVICE,
                "exp": t + 300, "nbf": t - 10, "iat": t - 10, "jti": format!("{t}-{}", common::free_port()),
                "access": access});
            let token = mint(dir, key, header, &claims);
            let who = if name.is_empty() { "anonymous" } else { name };
            requests
                .lock()
                .unwrap()
                .push(format!("user={who} scope={}", scopes.join(" ")));
            (
                "200 OK",
                json!({"token": token, "access_token": token, "expires_in": 300}),
            )
        }
    };
    let body = body.to_string();
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

#[test]
fn tokens_from_an_external_token_server() {
    let Some((work, root, _)) = setup(&[], &[]) else {
        return;
    };
    let (server, cert) = TokenServer::start(work.path());
    let (berth, ca) = tls_berth(
        work.path(),
        root.path(),
        "",
        |_| {
            format!(
                "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {EXTERNAL_ISSUER}\n    rootcertbundle: {}\n",
                server.realm,
                cert.display()
            )
        },
        &[],
    );
    let host = berth.host();
    let clients = Clients::new(work.path(), cert_dir(work.path(), "certs", &ca, None), "t");
    let out = clients.login(Tool::Skopeo, host, "ci", "wrong");
    assert_auth_refused(&out, "skopeo login refused by the token server");
    assert_eq!(
        server.requests().last().map(String::as_str),
        Some("refused")
    );
    clients.logs_in(Tool::Skopeo, host, "ci", "ci-pw");

    let img = image(&mut Rng::new("external"), "amd64", &[50 * 1024, 700]);
    clients.push_and_pull(&[], &img, &format!("docker://{host}/ext/app:v1"));
    // berth accepted push tokens it never issued: the token server minted them.
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.starts_with("user=ci") && r.contains("repository:ext/app:pull,push")),
        "{:?}",
        server.requests()
    );
    // A token the server grants only pull with pulls but does not push.
    clients.pulls_but_cannot_push(
        "viewer:v-pw",
        &img,
        &format!("docker://{host}/ext/app:v1"),
        &format!("docker://{host}/ext/viewer:v1"),
    );

    if clients.podman {
        clients.logs_in(Tool::Podman, host, "ci", "ci-pw");
        clients.podman_pull_tag_push(host, &img, "ext/app:v1", "ext/podman:v1");
    }
    stop_clean(berth);
}

/// How many access-log lines of `log` show `method` on `path` answered with 200.
fn served(log: &str, method: &str, path: &str) -> usize {
    access_log::count(log, method, path, 200)
}

#[test]
fn berths_own_issuer_with_a_policy() {
    let Some((work, root, users)) =
        setup(&[], &[("alice", "a-pw"), ("bob", "b-pw"), ("root", "r-pw")])
    else {
        return;
    };
    let d = work.path();
    let (key, cert) = signing_pair(d, "issuer");
    let (berth, ca) = tls_berth(
        d,
        root.path(),
        "",
        |addr| {
            format!(
                "auth:\n  token:\n    realm: https://{addr}/auth/token\n    service: {SERVICE}\n    issuer: berth-issuer\n    rootcertbundle: {}\n{POLICY}    users: {}\n    issuer:\n      key: {}\n      certificate: {}\n",
                cert.display(),
                users.display(),
                key.display(),
                cert.display()
            )
        },
        &[],
    );
    let host = berth.host();
    let clients = Clients::new(d, cert_dir(d, "certs", &ca, None), "i");
    let out = clients.login(Tool::Skopeo, host, "alice", "wrong");
    assert_auth_refused(&out, "skopeo login with a wrong password");
    clients.logs_in(Tool::Skopeo, host, "alice", "a-pw");

    let mut rng = Rng::new("issuer");
    let team = image(&mut rng, "amd64", &[40 * 1024, 512]);
    let public = image(&mut rng, "amd64", &[1024]);
    let team_ref = format!("docker://{host}/team/app:v1");
    let public_ref = format!("docker://{host}/public/base:v1");
    clients.push_and_pull(&["--dest-creds", "alice:a-pw"], &team, &team_ref);
    clients.push_and_pull(&["--dest-creds", "root:r-pw"], &public, &public_ref);

    // bob pulls team/*, and his push is refused.
    clients.pulls_but_cannot_push(
        "bob:b-pw",
        &team,
        &team_ref,
        &format!("docker://{host}/team/bob:v1"),
    );

    // Anonymous: public/** reads, team/* does not.
    let anonymous = ["--no-creds"];
    let raw = clients
        .raw_manifest(&anonymous, &public_ref)
        .expect("anonymous inspect of a public image");
    assert_eq!(sha256_digest(&raw), public.manifest.digest);
    let err = clients
        .raw_manifest(&anonymous, &team_ref)
        .expect_err("anonymous inspect of a team image");
    assert!(is_auth_error(&err), "{err}");

    if clients.podman {
        let out = clients.login(Tool::Podman, host, "bob", "wrong");
        assert_auth_refused(&out, "podman login with a wrong password");
        // The issuer serves podman's login: containers/image, holding a password, asks by
        // GET with Basic credentials (not by the OAuth2 POST, which it uses only with an
        // identity token; see below).
        let gets = served(&berth.log_text(), "GET", "/auth/token");
        clients.logs_in(Tool::Podman, host, "alice", "a-pw");
        assert!(served(&berth.log_text(), "GET", "/auth/token") > gets);
        clients.podman_pull_tag_push(host, &team, "team/app:v1", "team/podman:v1");
        podman_pulls_anonymously(&clients, host, &public);
        podman_refreshes_over_oauth2(&clients, &berth, &ca, &team);
    }
    if containerd::installed() {
        containerd_fetches_by_password_grant(d, &berth, &ca, &team);
    }

    // Tags list as bob; deletes: alice's refused (she may not delete), root's done.
    let tags = clients.skopeo(&[
        "list-tags",
        "--cert-dir",
        &clients.certs(),
        "--creds",
        "bob:b-pw",
        &format!("docker://{host}/team/app"),
    ]);
    assert!(tags.status.success(), "list-tags: {}", failure(&tags));
    let tags: Value = serde_json::from_slice(&tags.stdout).unwrap();
    assert_eq!(tags["Tags"], json!(["v1"]));
    let delete = |creds: &str, image: &str| {
        clients.skopeo(&[
            "delete",
            "--cert-dir",
            &clients.certs(),
            "--creds",
            creds,
            image,
        ])
    };
    assert_auth_refused(&delete("alice:a-pw", &team_ref), "alice deletes");
    let out = delete("root:r-pw", &public_ref);
    assert!(out.status.success(), "root deletes: {}", failure(&out));
    let err = clients
        .raw_manifest(&anonymous, &public_ref)
        .expect_err("a deleted image is still served");
    assert!(err.contains("manifest unknown"), "{err}");
    stop_clean(berth);
}

/// podman with no credentials at all gets an anonymous token: it pulls `public/**` and
/// is refused `team/*`.
fn podman_pulls_anonymously(clients: &Clients, host: &str, public: &Image) {
    let anonymous = Clients::new(&clients.work, clients.certs.clone(), "anonymous");
    anonymous.podman_pulls(&format!("{host}/public/base:v1"), public);
    let out = anonymous.podman_pull(&format!("{host}/team/app:v1"));
    assert_auth_refused(&out, "anonymous podman pull of a team image");
}

/// A refresh token for alice from berth's token endpoint (`offline_token=true`), as
/// `docker login` stores it.
fn refresh_token(host: &str, ca: &Path) -> String {
    let out = common::run(Command::new("curl").args([
        "-sf",
        "--cacert",
        ca.to_str().unwrap(),
        "-u",
        "alice:a-pw",
        &format!("https://{host}/auth/token?service={SERVICE}&offline_token=true"),
    ]));
    let answer: Value = serde_json::from_str(&out).unwrap();
    answer["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no refresh token in {out}"))
        .to_owned()
}

/// With an identity token in its authfile (what `docker login` leaves with a token
/// server that issues refresh tokens), podman asks for access tokens by the OAuth2 POST
/// `grant_type=refresh_token`: the pull works and the access log shows the POSTs.
fn podman_refreshes_over_oauth2(
    clients: &Clients,
    berth: &common::Process,
    ca: &Path,
    img: &Image,
) {
    let host = berth.host();
    let identity = Clients::new(&clients.work, clients.certs.clone(), "identity");
    let entry = json!({"auths": {host: {
        // containers/image wants a user:password pair next to the identity token.
        "auth": STANDARD.encode("<token>:"),
        "identitytoken": refresh_token(host, ca),
    }}});
    std::fs::write(&identity.authfile, entry.to_string()).unwrap();
    let posts = served(&berth.log_text(), "POST", "/auth/token");
    identity.podman_pulls(&format!("{host}/team/app:v1"), img);
    assert!(
        served(&berth.log_text(), "POST", "/auth/token") > posts,
        "podman took no token by POST:\n{}",
        berth.log_text()
    );
}

/// containerd asks for tokens by the OAuth2 POST `grant_type=password` whenever it has
/// a password. Its `ctr` client, through a containerd daemon of the test's own, fetches
/// `img` as bob: the content is the image's, and the access log shows the POSTs.
fn containerd_fetches_by_password_grant(
    work: &Path,
    berth: &common::Process,
    ca: &Path,
    img: &Image,
) {
    let containerd = Containerd::start(&work.join("containerd"));
    // containerd speaks plain HTTP to loopback registries unless a hosts.toml says
    // otherwise; this one names the HTTPS server and its CA.
    let host = berth.host();
    let hosts = containerd.hosts_dir(
        host,
        &format!(
            "server = \"https://{host}\"\n[host.\"https://{host}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = {ca:?}\n"
        ),
    );
    let posts = served(&berth.log_text(), "POST", "/auth/token");
    let out = containerd.ctr(&[
        "content",
        "fetch",
        "--user",
        "bob:b-pw",
        // The dump shows the token request's form.
        "--http-dump",
        "--hosts-dir",
        hosts.to_str().unwrap(),
        &format!("{host}/team/app:v1"),
    ]);
    assert!(out.status.success(), "ctr content fetch: {}", failure(&out));
    assert!(
        failure(&out).contains("grant_type=password"),
        "{}",
        failure(&out)
    );
    assert!(
        served(&berth.log_text(), "POST", "/auth/token") > posts,
        "containerd took no token by POST:\n{}",
        berth.log_text()
    );
    for blob in std::iter::once(&img.manifest).chain(img.blobs()) {
        let out = containerd.ctr(&["content", "get", &blob.digest]);
        assert!(out.status.success(), "{}", failure(&out));
        assert!(
            out.stdout == blob.bytes,
            "containerd fetched another {}",
            blob.digest
        );
    }
}

#[test]
fn client_certificate_and_htpasswd() {
    let Some((work, root, users)) = setup(&[], &[("alice", "a-pw")]) else {
        return;
    };
    let d = work.path();
    let pki = Pki::new(&d.join("client-pki"));
    let client_ca = pki.ca("client-ca");
    let (client_cert, client_key) = pki.client("client-ca", "alice");
    let (cc, ck) = (
        client_cert.display().to_string(),
        client_key.display().to_string(),
    );
    let (berth, ca) = tls_berth(
        d,
        root.path(),
        &format!("    clientcas: [{}]\n", client_ca.display()),
        |_| htpasswd_yaml(&users),
        &["--cert", &cc, "--key", &ck],
    );
    let host = berth.host();
    // The right password without a client certificate does not get through TLS.
    let no_cert = Clients::new(d, cert_dir(d, "ca-only", &ca, None), "no-cert");
    let out = no_cert.login(Tool::Skopeo, host, "alice", "a-pw");
    assert!(
        !out.status.success(),
        "logged in without a client certificate"
    );
    assert!(!is_auth_error(&failure(&out)), "{}", failure(&out));
    // With one, the password still decides.
    let certs = cert_dir(d, "mtls", &ca, Some((&client_cert, &client_key)));
    let clients = Clients::new(d, certs, "m");
    htpasswd_round_trips(&clients, host, "mtls");
    stop_clean(berth);
}

#[test]
fn acme_certificate_from_pebble_and_htpasswd() {
    let Some((work, root, users)) = setup(&["pebble"], &[("alice", "a-pw")]) else {
        return;
    };
    let d = work.path();
    let pki = Pki::new(&d.join("pki"));
    let ca = pki.ca("ca");
    let (pebble, directory) = pebble(d, &pki, common::free_port(), true);
    let pebble_ca = pebble_root(&pebble, &pki, d);
    let yaml = letsencrypt_yaml(&d.join("acme.json"), &directory) + &htpasswd_yaml(&users);
    let ca_s = ca.display().to_string();
    // berth trusts pebble's API by our test CA; until the certificate is issued every
    // handshake fails, and -k waits for the first.
    let berth = start(
        d,
        root.path(),
        &yaml,
        &[("SSL_CERT_FILE", &ca_s)],
        "https",
        &["-k"],
    );
    // The certificate names localhost, so the clients use that name.
    let port = berth.addr.rsplit_once(':').unwrap().1;
    let host = format!("localhost:{port}");
    let clients = Clients::new(d, cert_dir(d, "pebble-certs", &pebble_ca, None), "a");
    // Our test CA is not what signed berth's certificate: without pebble's root, no trust.
    let untrusting = Clients::new(d, cert_dir(d, "test-ca", &ca, None), "untrusting");
    let out = untrusting.login(Tool::Skopeo, &host, "alice", "a-pw");
    assert!(!out.status.success());
    assert!(failure(&out).contains("certificate"), "{}", failure(&out));
    htpasswd_round_trips(&clients, &host, "acme");
    stop_clean(berth);
    drop(pebble);
}
