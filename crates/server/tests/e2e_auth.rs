//! Access control on the real binary: htpasswd users (made with `htpasswd -B`), the
//! policy, bearer tokens minted outside berth the way an external token server mints them
//! (signed with `openssl`), and berth's own token issuer, whose tokens distribution 2.8.2
//! accepts too. Every refused request is checked for its status, its challenge and an
//! untouched storage tree.

#[path = "support/auth.rs"]
mod auth;
mod common;
#[path = "support/oci_layout.rs"]
mod oci_layout;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use auth::*;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use berth_client::{BlockingClient, Body, Method, Request, Response};
use oci_layout::*;
use serde_json::{Value, json};

const AUTH_TOOLS: [&str; 2] = ["htpasswd", "openssl"];

fn tools_present() -> bool {
    AUTH_TOOLS.iter().all(|t| common::have_tool(t))
}

/// Every file under `root` with its bytes: what a refused request must leave alone.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.insert(p.strip_prefix(base).unwrap().to_owned(), Vec::new());
                walk(&p, base, out);
            } else {
                out.insert(
                    p.strip_prefix(base).unwrap().to_owned(),
                    std::fs::read(&p).unwrap_or_default(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// One request with an optional `Authorization`.
fn send(reg: &BlockingClient, method: Method, path: &str, auth: Option<&str>) -> Response {
    let url = reg.client().url(path).unwrap();
    let mut req = Request::new(method.clone(), url);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    if method == Method::PUT || method == Method::POST {
        req = req.body(Body::bytes(Vec::<u8>::new()));
    }
    reg.run(|c| c.send(req))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn push_image(reg: &BlockingClient, repo: &str, tag: &str, img: &Image) {
    for b in img.blobs() {
        let r = reg
            .run(|c| c.push_blob(repo, &b.digest, b.bytes.clone()))
            .unwrap();
        assert_eq!(r.status, 201, "push blob to {repo}: {}", r.text());
    }
    let r = reg
        .run(|c| {
            c.put_manifest(
                repo,
                tag,
                &img.manifest.media_type,
                img.manifest.bytes.clone(),
                &[],
            )
        })
        .unwrap();
    assert_eq!(r.status, 201, "push manifest to {repo}: {}", r.text());
}

fn codes(r: &Response) -> Vec<String> {
    r.error_codes().unwrap_or_default()
}

fn assert_refused(r: &Response, status: u16, code: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert_eq!(codes(r), [code], "{what}");
    assert_eq!(
        r.header("docker-distribution-api-version"),
        Some("registry/2.0"),
        "{what}: every refusal keeps the API version header"
    );
}

#[test]
fn htpasswd_users_must_authenticate_and_refusals_change_nothing() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let berth = berth_with_users(root.path(), work.path(), &[("alice", "alice-pw")]);
    let anon = berth.client();
    let challenge = Some("Basic realm=\"berth-test\"");

    for (auth, what) in [
        (None, "no credentials"),
        (Some(basic("alice", "wrong")), "wrong password"),
        (Some(basic("mallory", "alice-pw")), "unknown user"),
        (Some("Bearer abc.def.ghi".to_owned()), "another scheme"),
        (Some("Basic !!!".to_owned()), "malformed Basic"),
    ] {
        for method in [Method::GET, Method::HEAD] {
            let r = send(anon, method.clone(), "/v2/", auth.as_deref());
            assert_eq!(r.status, 401, "{what} {method}");
            assert_eq!(r.header("www-authenticate"), challenge, "{what}");
            assert_eq!(
                r.header("docker-distribution-api-version"),
                Some("registry/2.0")
            );
        }
        let r = send(anon, Method::GET, "/v2/", auth.as_deref());
        assert_refused(&r, 401, "UNAUTHORIZED", what);
    }

    let alice = common::client_as(&berth.addr, &basic("alice", "alice-pw"));
    assert_eq!(send(&alice, Method::GET, "/v2/", None).status, 200);
    let img = image(&mut Rng::new("htpasswd"), "amd64", &[4096]);
    push_image(&alice, "team/app", "v1", &img);
    let r = alice
        .run(|c| c.get_manifest("team/app", "v1", &img.manifest.media_type))
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_ref(), img.manifest.bytes.as_slice());
    // The access log names who pushed, as distribution's does.
    let pushed = berth.log_text().lines().any(|l| {
        l.contains("PUT") && l.contains("manifests/v1") && l.contains("auth.user.name=\"alice\"")
    });
    assert!(pushed, "no access line names alice: {}", berth.log_text());

    let before = snapshot(root.path());
    let layer = &img.layers[0].digest;
    for (method, path, auth) in [
        (Method::PUT, "/v2/team/app/manifests/v2".to_owned(), None),
        (Method::POST, "/v2/team/new/blobs/uploads/".to_owned(), None),
        (Method::DELETE, "/v2/team/app/manifests/v1".to_owned(), None),
        (
            Method::DELETE,
            format!("/v2/team/app/blobs/{layer}"),
            Some(basic("alice", "nope")),
        ),
        (Method::GET, format!("/v2/team/app/blobs/{layer}"), None),
        (Method::GET, "/v2/_catalog".to_owned(), None),
    ] {
        let r = send(anon, method.clone(), &path, auth.as_deref());
        assert_eq!(r.status, 401, "{method} {path}: {}", r.text());
        assert_eq!(r.header("www-authenticate"), challenge);
    }
    assert!(
        before == snapshot(root.path()),
        "a refused request changed storage"
    );
}

/// A client that sent a manifest with no credentials gets its challenge before the body
/// has arrived; it then retries with credentials, on the same connection if the
/// challenge did not announce a close (Go's transport, and so the released OCI
/// conformance suite, does). The connection must then still work, or the challenge must
/// carry `Connection: close`; the retry then succeeds.
#[test]
fn a_challenge_before_the_body_keeps_the_connection_or_announces_its_close() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let berth = berth_with_users(root.path(), work.path(), &[("alice", "alice-pw")]);
    let alice = common::client_as(&berth.addr, &basic("alice", "alice-pw"));
    let img = image(&mut Rng::new("early-challenge"), "amd64", &[4096]);
    for b in img.blobs() {
        let r = alice
            .run(|c| c.push_blob("team/app", &b.digest, b.bytes.clone()))
            .unwrap();
        assert_eq!(r.status, 201);
    }
    let url = alice.client().url("/v2/team/app/manifests/v1").unwrap();
    let next = alice.client().url("/v2/").unwrap();
    let content_type = [("Content-Type", img.manifest.media_type.as_str())];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // No credentials, wrong ones (both challenged before the body), then good ones.
    let tries = [
        (None, 401),
        (Some(basic("alice", "wrong")), 401),
        (Some(basic("alice", "alice-pw")), 201),
    ];
    for (auth, want) in tries {
        let mut headers = content_type.to_vec();
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let status = runtime
            .block_on(berth_conformance::connection::early_answer(
                &url,
                "PUT",
                &headers,
                &img.manifest.bytes,
                &next,
            ))
            .unwrap_or_else(|e| panic!("credentials {auth:?}: {e}"));
        assert_eq!(status, want, "credentials {auth:?}");
    }
}

fn catalog_as(reg: &BlockingClient) -> Vec<String> {
    let r = reg.run(|c| c.catalog(Some(100), None)).unwrap();
    assert_eq!(r.status, 200, "catalog: {}", r.text());
    r.repository_names().unwrap()
}

#[test]
fn the_policy_decides_pushes_deletes_catalog_and_mounts() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let users = htpasswd_file(
        work.path(),
        &[("alice", "a-pw"), ("bob", "b-pw"), ("root", "r-pw")],
    );
    let berth = common::berth(
        root.path(),
        work.path(),
        &format!(
            "auth:\n  htpasswd:\n    realm: policy\n    path: {}\n{POLICY}",
            users.display()
        ),
    );
    let admin = common::client_as(&berth.addr, &basic("root", "r-pw"));
    let alice = common::client_as(&berth.addr, &basic("alice", "a-pw"));
    let bob = common::client_as(&berth.addr, &basic("bob", "b-pw"));
    let anon = berth.client();
    let mut rng = Rng::new("policy");
    let secret = image(&mut rng, "amd64", &[2048]);
    let public = image(&mut rng, "amd64", &[2048]);
    let team = image(&mut rng, "amd64", &[2048]);
    push_image(&admin, "secret/x", "v1", &secret);
    push_image(&admin, "public/base", "v1", &public);
    push_image(&alice, "team/app", "v1", &team);
    let mt = &team.manifest.media_type;

    // bob reads team/*, and nothing he may not do changes storage.
    assert_eq!(
        bob.run(|c| c.get_manifest("team/app", "v1", mt))
            .unwrap()
            .status,
        200
    );
    let before = snapshot(root.path());
    let r = bob
        .run(|c| c.put_manifest("team/app", "v2", mt, team.manifest.bytes.clone(), &[]))
        .unwrap();
    assert_refused(&r, 403, "DENIED", "bob pushes");
    assert!(r.header("www-authenticate").is_none());
    let r = bob.run(|c| c.start_upload("team/other")).unwrap();
    assert_refused(&r, 403, "DENIED", "bob uploads");
    let r = bob.run(|c| c.delete_manifest("team/app", "v1")).unwrap();
    assert_refused(&r, 403, "DENIED", "bob deletes");
    // alice may push but not delete.
    let r = alice
        .run(|c| c.delete_blob("team/app", &team.layers[0].digest))
        .unwrap();
    assert_refused(&r, 403, "DENIED", "alice deletes");
    // alice may not read secret/x: denied, not hidden behind a 404.
    let r = alice.run(|c| c.get_manifest("secret/x", "v1", mt)).unwrap();
    assert_refused(&r, 403, "DENIED", "alice reads secret");
    assert!(
        before == snapshot(root.path()),
        "a refused request changed storage"
    );

    // Anonymous pulls of public/** only; elsewhere a Basic challenge.
    assert_eq!(
        anon.run(|c| c.get_manifest("public/base", "v1", mt))
            .unwrap()
            .status,
        200
    );
    let r = anon.run(|c| c.get_manifest("team/app", "v1", mt)).unwrap();
    assert_refused(&r, 401, "UNAUTHORIZED", "anonymous reads team");
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"policy\""));

    // The catalog lists what each caller may pull.
    assert_eq!(catalog_as(&admin), ["public/base", "secret/x", "team/app"]);
    assert_eq!(catalog_as(&alice), ["public/base", "team/app"]);
    assert_eq!(catalog_as(&bob), ["public/base", "team/app"]);
    assert_eq!(catalog_as(anon), ["public/base"]);
    // Paging a filtered catalog one name at a time still reaches every visible name.
    let r = alice.run(|c| c.catalog(Some(1), None)).unwrap();
    assert_eq!(r.repository_names().unwrap(), ["public/base"]);
    let next = r.next_link().expect("a next page");
    let r = alice.run(|c| c.get(&next)).unwrap();
    assert_eq!(r.repository_names().unwrap(), ["team/app"]);

    // Mounts: from a repository alice cannot read, or with no source, a secret blob is
    // never linked and its existence never shown: an ordinary upload session.
    let hidden = &secret.layers[0].digest;
    for from in [Some("secret/x"), None] {
        let r = alice
            .run(|c| c.mount_blob("team/app", hidden, from))
            .unwrap();
        assert_eq!(r.status, 202, "mount from {from:?}: {}", r.text());
        assert!(r.header("location").is_some());
        let r = alice.run(|c| c.head_blob("team/app", hidden)).unwrap();
        assert_eq!(r.status, 404, "mount from {from:?} linked a hidden blob");
    }
    // From a repository alice reads, the mount works, with or without naming it.
    let shared = &team.layers[0].digest;
    let r = alice
        .run(|c| c.mount_blob("team/copy", shared, Some("team/app")))
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let r = alice
        .run(|c| c.mount_blob("team/copy2", &public.layers[0].digest, None))
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    // The administrator may delete.
    let r = admin.run(|c| c.delete_manifest("team/app", "v1")).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
}

fn claims(access: Value) -> Value {
    let t = now();
    json!({"iss": "test-issuer", "sub": "ci", "aud": "registry.test", "exp": t + 300,
           "nbf": t - 10, "iat": t - 10, "jti": "x", "access": access})
}

fn repo_access(name: &str, actions: &[&str]) -> Value {
    json!([{"type": "repository", "name": name, "actions": actions}])
}

#[test]
fn external_tokens_are_checked_and_challenges_name_the_scope() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let d = work.path();
    let (key, cert) = signing_pair(d, "signer");
    let (rogue_key, rogue_cert) = signing_pair(d, "rogue");
    let berth = common::berth(
        root.path(),
        d,
        &format!(
            "auth:\n  token:\n    realm: https://auth.example.test/token\n    service: registry.test\n    issuer: test-issuer\n    rootcertbundle: {}\n",
            cert.display()
        ),
    );
    let x5c = json!({"alg": "RS256", "typ": "JWT", "x5c": [STANDARD.encode(cert_der(&cert))]});
    let kid = json!({"alg": "RS256", "typ": "JWT", "kid": libtrust_kid(d, &cert)});
    let bearer = |t: &str| format!("Bearer {t}");
    let full = mint(
        d,
        &key,
        &x5c,
        &claims(repo_access("team/app", &["pull", "push"])),
    );
    let pusher = common::client_as(&berth.addr, &bearer(&full));
    let img = image(&mut Rng::new("tokens"), "amd64", &[3000]);
    push_image(&pusher, "team/app", "v1", &img);
    // The same rights through a kid naming the bundle certificate's key.
    let by_kid = mint(d, &key, &kid, &claims(repo_access("team/app", &["pull"])));
    let r = send(
        berth.client(),
        Method::GET,
        &format!("/v2/team/app/manifests/{}", img.manifest.digest),
        Some(&bearer(&by_kid)),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    let challenge = |scope: &str, error: Option<&str>| {
        let mut c = format!(
            "Bearer realm=\"https://auth.example.test/token\",service=\"registry.test\",scope=\"{scope}\""
        );
        if let Some(e) = error {
            c.push_str(&format!(",error=\"{e}\""));
        }
        c
    };
    let base_challenge =
        "Bearer realm=\"https://auth.example.test/token\",service=\"registry.test\"";
    let r = send(berth.client(), Method::GET, "/v2/", None);
    assert_refused(&r, 401, "UNAUTHORIZED", "no token on /v2/");
    assert_eq!(r.header("www-authenticate"), Some(base_challenge));

    let t = now();
    let mut expired = claims(repo_access("team/app", &["pull"]));
    expired["exp"] = json!(t - 120);
    let mut early = claims(repo_access("team/app", &["pull"]));
    early["nbf"] = json!(t + 600);
    let mut wrong_iss = claims(repo_access("team/app", &["pull"]));
    wrong_iss["iss"] = json!("someone-else");
    let mut wrong_aud = claims(repo_access("team/app", &["pull"]));
    wrong_aud["aud"] = json!("other.registry");
    let pull_claims = claims(repo_access("team/app", &["pull"]));
    let rogue_x5c = json!({"alg": "RS256", "x5c": [STANDARD.encode(cert_der(&rogue_cert))]});
    let mut tampered: Vec<String> = mint(d, &key, &x5c, &pull_claims)
        .split('.')
        .map(str::to_owned)
        .collect();
    tampered[1] = URL_SAFE_NO_PAD
        .encode(claims(repo_access("team/app", &["pull", "push", "delete"])).to_string());
    let manifest = "/v2/team/app/manifests/v1";
    let invalid = [
        ("expired", mint(d, &key, &x5c, &expired)),
        ("not yet valid", mint(d, &key, &x5c, &early)),
        ("wrong issuer", mint(d, &key, &x5c, &wrong_iss)),
        ("wrong audience", mint(d, &key, &x5c, &wrong_aud)),
        ("bad signature", tampered.join(".")),
        ("unknown key", mint(d, &rogue_key, &rogue_x5c, &pull_claims)),
        (
            "trusted chain, other key",
            mint(d, &rogue_key, &x5c, &pull_claims),
        ),
        ("garbage", "not-a-token".to_owned()),
    ];
    for (what, token) in &invalid {
        let r = send(berth.client(), Method::GET, manifest, Some(&bearer(token)));
        assert_refused(&r, 401, "UNAUTHORIZED", what);
        assert_eq!(
            r.header("www-authenticate"),
            Some(challenge("repository:team/app:pull", Some("invalid_token")).as_str()),
            "{what}"
        );
    }
    let r = send(berth.client(), Method::GET, manifest, None);
    assert_eq!(
        r.header("www-authenticate"),
        Some(challenge("repository:team/app:pull", None).as_str())
    );

    let before = snapshot(root.path());
    let other_repo = mint(
        d,
        &key,
        &x5c,
        &claims(repo_access("team/other", &["pull", "push", "delete"])),
    );
    let pull_only = mint(d, &key, &x5c, &pull_claims);
    let insufficient = [
        (
            "token for another repository",
            other_repo.clone(),
            Method::GET,
            manifest.to_owned(),
            "repository:team/app:pull",
        ),
        (
            "pull-only token pushing",
            pull_only.clone(),
            Method::PUT,
            "/v2/team/app/manifests/v2".to_owned(),
            "repository:team/app:pull,push",
        ),
        (
            "pull-only token uploading",
            pull_only.clone(),
            Method::POST,
            "/v2/team/app/blobs/uploads/".to_owned(),
            "repository:team/app:pull,push",
        ),
        (
            "delete without the right",
            full.clone(),
            Method::DELETE,
            manifest.to_owned(),
            "repository:team/app:delete",
        ),
        (
            "catalog without the scope",
            full.clone(),
            Method::GET,
            "/v2/_catalog".to_owned(),
            "registry:catalog:*",
        ),
    ];
    for (what, token, method, path, scope) in &insufficient {
        let r = send(berth.client(), method.clone(), path, Some(&bearer(token)));
        assert_refused(&r, 401, "UNAUTHORIZED", what);
        assert_eq!(
            r.header("www-authenticate"),
            Some(challenge(scope, Some("insufficient_scope")).as_str()),
            "{what}"
        );
    }
    // A mount whose source the token cannot read is an ordinary upload, and the
    // challenge of an unauthenticated mount names the source too.
    let layer = &img.layers[0].digest;
    let mounter = mint(
        d,
        &key,
        &x5c,
        &claims(repo_access("team/other", &["pull", "push"])),
    );
    let r = send(
        berth.client(),
        Method::POST,
        &format!("/v2/team/other/blobs/uploads/?mount={layer}&from=secret/x"),
        None,
    );
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            challenge(
                "repository:team/other:pull,push repository:secret/x:pull",
                None
            )
            .as_str()
        )
    );
    let r = send(
        berth.client(),
        Method::POST,
        &format!("/v2/team/other/blobs/uploads/?mount={layer}&from=team/app"),
        Some(&bearer(&mounter)),
    );
    assert_eq!(
        r.status,
        202,
        "mount from an unreadable source: {}",
        r.text()
    );
    let r = send(
        berth.client(),
        Method::HEAD,
        &format!("/v2/team/other/blobs/{layer}"),
        Some(&bearer(&mounter)),
    );
    assert_eq!(r.status, 404, "the refused mount linked the blob");
    let session = snapshot(root.path());
    // Only the new upload session (and the repository directory holding it) differs.
    let added: Vec<_> = session
        .keys()
        .filter(|k| !before.contains_key(*k))
        .collect();
    let other = Path::new("docker/registry/v2/repositories/team/other");
    assert!(
        added
            .iter()
            .all(|k| *k == other || k.starts_with(other.join("_uploads"))),
        "refused requests changed storage: {added:?}"
    );
    assert!(before.keys().all(|k| session.get(k) == before.get(k)));

    // With the catalog scope, the whole catalog.
    let cat = mint(
        d,
        &key,
        &x5c,
        &claims(json!([{"type": "registry", "name": "catalog", "actions": ["*"]}])),
    );
    let r = send(
        berth.client(),
        Method::GET,
        "/v2/_catalog",
        Some(&bearer(&cat)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.repository_names()
            .unwrap()
            .contains(&"team/app".to_owned())
    );
}

/// The libtrust key ID of a certificate's key, as berth computes it (cross-checked
/// against an independent computation in berth-auth's own tests).
fn libtrust_kid(dir: &Path, cert: &Path) -> String {
    let pem = openssl(
        dir,
        &["x509", "-in", cert.to_str().unwrap(), "-pubkey", "-noout"],
    );
    std::fs::write(dir.join("pub.pem"), pem).unwrap();
    let spki = openssl(
        dir,
        &["pkey", "-pubin", "-in", "pub.pem", "-outform", "DER"],
    );
    berth_auth::token::keys::PublicKey::from_spki(&spki)
        .unwrap()
        .libtrust_id()
        .unwrap()
}

fn token_payload(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWS");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn form(reg: &BlockingClient, path: &str, body: &str) -> Response {
    let req = Request::new(Method::POST, reg.client().url(path).unwrap())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(Body::bytes(body.as_bytes().to_vec()));
    reg.run(|c| c.send(req)).unwrap()
}

#[test]
fn the_builtin_issuer_serves_docker_oauth2_and_distribution_accepts_its_tokens() {
    if !tools_present() || !common::have_tool("docker-registry") || !common::have_tool("skopeo") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let d = work.path();
    let (key, cert) = signing_pair(d, "issuer");
    let users = htpasswd_file(d, &[("alice", "a-pw"), ("bob", "b-pw"), ("root", "r-pw")]);
    let addr = format!("127.0.0.1:{}", common::free_port());
    let realm = format!("http://{addr}/auth/token");
    let token_auth = format!(
        "auth:\n  token:\n    realm: {realm}\n    service: registry.test\n    issuer: test-issuer\n    rootcertbundle: {}\n",
        cert.display()
    );
    let extra = format!(
        "{token_auth}{POLICY}    users: {}\n    issuer:\n      key: {}\n      expiration: 2m\n",
        users.display(),
        key.display()
    );
    let (config, addr) = common::berth_config_on(&addr, root.path(), d, "", &extra);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("serve").arg(&config);
    let berth = common::spawn(cmd, addr.clone(), d, "berth");
    let reg = berth.client();

    // docker's GET, with Basic credentials; the token carries what the policy grants.
    let scope = "service=registry.test&scope=repository:team/app:pull,push,delete";
    let get_token = |auth: Option<&str>, query: &str| {
        send(reg, Method::GET, &format!("/auth/token?{query}"), auth)
    };
    let r = get_token(Some(&basic("alice", "a-pw")), scope);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let body = r.json().unwrap();
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["expires_in"], 120);
    assert!(body["issued_at"].as_str().unwrap().contains('T'));
    assert!(body.get("refresh_token").is_none());
    let alice_token = body["token"].as_str().unwrap().to_owned();
    let claims = token_payload(&alice_token);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(
        claims["access"],
        repo_access("team/app", &["pull", "push"]),
        "delete is not granted to alice"
    );
    let alice = common::client_as(&addr, &format!("Bearer {alice_token}"));
    let img = image(&mut Rng::new("issuer"), "amd64", &[5000]);
    push_image(&alice, "team/app", "v1", &img);

    // bob asks for push and gets pull only: his push is refused with the scope named.
    let r = get_token(Some(&basic("bob", "b-pw")), scope);
    let bob_token = r.json().unwrap()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        token_payload(&bob_token)["access"],
        repo_access("team/app", &["pull"])
    );
    let bob = common::client_as(&addr, &format!("Bearer {bob_token}"));
    let r = bob
        .run(|c| {
            c.put_manifest(
                "team/app",
                "v2",
                &img.manifest.media_type,
                img.manifest.bytes.clone(),
                &[],
            )
        })
        .unwrap();
    assert_refused(&r, 401, "UNAUTHORIZED", "bob pushes with a pull token");
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .ends_with("scope=\"repository:team/app:pull,push\",error=\"insufficient_scope\"")
    );
    assert_eq!(
        bob.run(|c| c.get_manifest("team/app", "v1", &img.manifest.media_type))
            .unwrap()
            .status,
        200
    );

    // Anonymous: a token with only what anonymous callers may do.
    let r = get_token(
        None,
        "service=registry.test&scope=repository:public/base:pull&scope=repository:team/app:pull",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        token_payload(r.json().unwrap()["token"].as_str().unwrap())["access"],
        repo_access("public/base", &["pull"])
    );
    // Wrong password, wrong service, malformed scope.
    let r = get_token(Some(&basic("alice", "nope")), scope);
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic "));
    assert_eq!(get_token(None, "service=elsewhere").status, 400);
    assert_eq!(get_token(None, "scope=nonsense").status, 400);

    // The OAuth2 form: a password grant with a refresh token, then the refresh grant.
    let r = form(
        reg,
        "/auth/token",
        "grant_type=password&username=alice&password=a-pw&service=registry.test&client_id=test&access_type=offline&scope=repository:team/app:pull",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let refresh = r.json().unwrap()["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let r = form(
        reg,
        "/auth/token",
        &format!(
            "grant_type=refresh_token&refresh_token={refresh}&service=registry.test&client_id=test&scope=repository:team/app:pull"
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        token_payload(r.json().unwrap()["access_token"].as_str().unwrap())["sub"],
        "alice"
    );
    // A refresh token opens nothing by itself.
    let r = send(
        reg,
        Method::GET,
        "/v2/team/app/tags/list",
        Some(&format!("Bearer {refresh}")),
    );
    assert_refused(&r, 401, "UNAUTHORIZED", "refresh token as access token");
    for (body, error) in [
        (
            "grant_type=password&username=alice&password=bad",
            "invalid_grant",
        ),
        (
            "grant_type=refresh_token&refresh_token=forged.token.here",
            "invalid_grant",
        ),
        ("grant_type=client_credentials", "unsupported_grant_type"),
        ("grant_type=password&username=alice", "invalid_request"),
    ] {
        let r = form(reg, "/auth/token", body);
        assert!(r.status == 400 || r.status == 401, "{body}: {}", r.status);
        assert_eq!(r.json().unwrap()["error"], error, "{body}");
    }

    // distribution 2.8.2, trusting the same certificate, accepts berth's tokens.
    let droot = tempfile::tempdir().unwrap();
    let dport = common::free_port();
    let daddr = format!("127.0.0.1:{dport}");
    let dconfig = d.join("distribution.yml");
    std::fs::write(
        &dconfig,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {daddr}\n{token_auth}",
            droot.path().display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new("docker-registry");
    cmd.arg("serve").arg(&dconfig);
    let dist = common::spawn(cmd, daddr.clone(), d, "distribution");
    let to_dist = common::client_as(&daddr, &format!("Bearer {alice_token}"));
    push_image(&to_dist, "team/app", "v1", &img);
    let r = to_dist
        .run(|c| c.get_manifest("team/app", "v1", &img.manifest.media_type))
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_ref(), img.manifest.bytes.as_slice());
    let r = send(
        dist.client(),
        Method::GET,
        "/v2/team/app/tags/list",
        Some(&format!("Bearer {bob_token}")),
    );
    assert_eq!(r.status, 200, "distribution reads with bob's pull token");
    let r = common::client_as(&daddr, &format!("Bearer {bob_token}"))
        .run(|c| c.start_upload("team/app"))
        .unwrap();
    assert_eq!(r.status, 401, "distribution refuses bob's push too");

    // skopeo follows the challenge to the issuer with Basic credentials (docker's flow).
    let src = d.join("layout");
    LayoutWriter::new(&src).add_image(&img, "v1");
    let dest = format!("docker://{addr}/team/skopeo:v1");
    let pushed = skopeo_copy(
        &["--dest-creds", "alice:a-pw"],
        &layout_str(&src, "v1"),
        &dest,
        d,
    );
    assert_eq!(pushed, img.manifest.digest);
    let out = d.join("pulled");
    let pulled = skopeo_copy(
        &["--src-creds", "bob:b-pw"],
        &dest,
        &format!("oci:{}:v1", out.display()),
        d,
    );
    assert_eq!(pulled, img.manifest.digest);
    let refused = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--retry-times",
            "0",
            "--dest-tls-verify=false",
            "--dest-creds",
            "bob:b-pw",
            &layout_str(&src, "v1"),
            &format!("docker://{addr}/team/bob:v1"),
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "bob pushed through skopeo");
    let stderr = String::from_utf8_lossy(&refused.stderr).to_lowercase();
    assert!(
        stderr.contains("unauthorized")
            || stderr.contains("denied")
            || stderr.contains("authentication"),
        "{stderr}"
    );
}

/// `autoredirect`: challenges name a token realm on the host the client asked, at
/// `autoredirectpath`, with the scheme a proxy in front reports.
#[test]
fn autoredirect_challenges_point_at_the_requested_host() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let (_, cert) = signing_pair(work.path(), "signer");
    let berth = common::berth(
        root.path(),
        work.path(),
        &format!(
            "auth:\n  token:\n    realm: https://auth.example.test/token\n    service: registry.test\n    issuer: test-issuer\n    rootcertbundle: {}\n    autoredirect: true\n    autoredirectpath: /v1/token\n",
            cert.display()
        ),
    );
    let url = berth.client().client().url("/v2/").unwrap();
    let ask = |proto: Option<&str>| {
        let mut req =
            Request::new(Method::GET, url.clone()).header("Host", "registry.example.com:5000");
        if let Some(p) = proto {
            req = req.header("X-Forwarded-Proto", p);
        }
        let r = berth.client().run(|c| c.send(req)).unwrap();
        assert_eq!(r.status, 401);
        r.header("www-authenticate").unwrap().to_owned()
    };
    assert_eq!(
        ask(None),
        "Bearer realm=\"https://registry.example.com:5000/v1/token\",service=\"registry.test\""
    );
    assert!(
        ask(Some("http")).starts_with("Bearer realm=\"http://registry.example.com:5000/v1/token\"")
    );
}
