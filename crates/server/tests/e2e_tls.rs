//! End-to-end TLS: the real `berth` binary behind HTTPS, driven by curl, openssl
//! s_client and skopeo with certificates made by the openssl CLI: pushes and pulls over
//! verified TLS, mutual TLS (`clientcas`), `minimumtls`, `ciphersuites`, HTTP/2 by ALPN
//! and `http2.disabled`, certificate reload on file change and SIGHUP without dropping a
//! connection in flight, ACME (`letsencrypt`) against Debian's pebble test CA, and
//! `https://` health checks verifying their target.

mod common;
#[path = "support/oci_layout.rs"]
mod oci_layout;
#[path = "support/tls.rs"]
mod tls;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_layout::*;
use tls::*;

/// Subject, issuer and serial of the certificate `host:port` presents, by
/// `openssl s_client` (no verification: this is what the server sends).
fn presented(addr: &str, servername: &str) -> String {
    let out = output(Command::new("openssl").args([
        "s_client",
        "-connect",
        addr,
        "-servername",
        servername,
    ]));
    let pem = text(&out.stdout);
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-issuer", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    x509.stdin
        .take()
        .unwrap()
        .write_all(pem.as_bytes())
        .unwrap();
    let out = x509.wait_with_output().unwrap();
    text(&out.stdout)
}

#[test]
fn skopeo_pushes_and_pulls_over_verified_tls_with_http2() {
    if !have(&["openssl", "curl", "skopeo"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let (_pki, ca, cert, key) = server_pki(work.path());
    let ca_s = ca.display().to_string();
    let berth = start(
        work.path(),
        root.path(),
        &tls_yaml(&cert, &key, ""),
        &[],
        "https",
        &["--cacert", &ca_s],
    );
    let url = format!("https://{}/v2/", berth.addr);

    // Verified TLS with HTTP/2 chosen by ALPN.
    let (code, version) = curl(
        &["--cacert", &ca_s, "--http2", "-w", "%{http_version}"],
        &url,
    );
    assert_eq!((code, version.as_str()), (Some(0), "2"));
    // Without the CA, the certificate is not trusted.
    let (code, _) = curl(&[], &url);
    assert_eq!(
        code,
        Some(60),
        "curl trusted a certificate of an unknown CA"
    );

    let img = image(&mut Rng::new("tls"), "amd64", &[300 * 1024 + 7, 1000]);
    let src = work.path().join("src");
    LayoutWriter::new(&src).add_image(&img, "v1");
    let certs = cert_dir(work.path(), "certs", &ca, None);
    let dest = format!("docker://{}/team/app:v1", berth.host());
    let pushed = skopeo_copy_verified(&certs, &layout_str(&src, "v1"), &dest, work.path())
        .expect("push over TLS");
    assert_eq!(pushed, img.manifest.digest);
    let out = work.path().join("out");
    let pulled = skopeo_copy_verified(&certs, &dest, &layout_str(&out, "v1"), work.path())
        .expect("pull over TLS");
    assert_eq!(pulled, img.manifest.digest);
    assert_layout_has_image(&out, "v1", &img);

    // skopeo with no CA for this server refuses it.
    let empty = work.path().join("no-certs");
    std::fs::create_dir_all(&empty).unwrap();
    let err = skopeo_copy_verified(
        &empty,
        &dest,
        &layout_str(&work.path().join("out2"), "v1"),
        work.path(),
    )
    .expect_err("an untrusted certificate was accepted");
    assert!(err.contains("certificate"), "{err}");
    assert!(berth.stop().success());
}

#[test]
fn mutual_tls_requires_a_client_certificate_from_the_configured_ca() {
    if !have(&["openssl", "curl", "skopeo"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let (pki, ca, cert, key) = server_pki(work.path());
    let client_ca = pki.ca("client-ca");
    let (client_cert, client_key) = pki.client("client-ca", "alice");
    pki.ca("other-ca");
    let (other_cert, other_key) = pki.client("other-ca", "mallory");
    let s = |p: &Path| p.display().to_string();
    let (ca_s, cc, ck) = (s(&ca), s(&client_cert), s(&client_key));
    // clientcas given by the environment, as distribution reads it: a YAML list.
    let clientcas = format!("[{}]", client_ca.display());
    let berth = start(
        work.path(),
        root.path(),
        &tls_yaml(&cert, &key, ""),
        &[("REGISTRY_HTTP_TLS_CLIENTCAS", &clientcas)],
        "https",
        &["--cacert", &ca_s, "--cert", &cc, "--key", &ck],
    );
    let url = format!("https://{}/v2/", berth.addr);

    let (code, status) = curl(
        &[
            "--cacert",
            &ca_s,
            "--cert",
            &cc,
            "--key",
            &ck,
            "-w",
            "%{http_code}",
        ],
        &url,
    );
    assert_eq!((code, status.as_str()), (Some(0), "200"));
    // No certificate: the handshake is refused (under TLS 1.3 curl learns it on its first send or read).
    let (code, status) = curl(&["--cacert", &ca_s, "-w", "%{http_code}"], &url);
    assert!(
        matches!(code, Some(35 | 55 | 56)),
        "curl exit {code:?}, status {status}"
    );
    assert_eq!(status, "000");
    // A certificate from another CA: refused too, also over TLS 1.2.
    for max in ["1.3", "1.2"] {
        let (code, status) = curl(
            &[
                "--cacert",
                &ca_s,
                "--tls-max",
                max,
                "--cert",
                &s(&other_cert),
                "--key",
                &s(&other_key),
                "-w",
                "%{http_code}",
            ],
            &url,
        );
        assert!(
            matches!(code, Some(35 | 55 | 56)),
            "TLS {max}: curl exit {code:?}, status {status}"
        );
        assert_eq!(status, "000");
    }

    let img = image(&mut Rng::new("mtls"), "amd64", &[2000]);
    let src = layout_str(
        &{
            let src = work.path().join("src");
            LayoutWriter::new(&src).add_image(&img, "v1");
            src
        },
        "v1",
    );
    let dest = format!("docker://{}/team/mtls:v1", berth.host());
    let without = cert_dir(work.path(), "ca-only", &ca, None);
    let err = skopeo_copy_verified(&without, &src, &dest, work.path())
        .expect_err("pushed without a client certificate");
    assert!(!err.is_empty());
    let wrong = cert_dir(work.path(), "wrong", &ca, Some((&other_cert, &other_key)));
    skopeo_copy_verified(&wrong, &src, &dest, work.path())
        .expect_err("pushed with another CA's client certificate");
    let right = cert_dir(work.path(), "right", &ca, Some((&client_cert, &client_key)));
    let pushed = skopeo_copy_verified(&right, &src, &dest, work.path()).expect("push with mTLS");
    assert_eq!(pushed, img.manifest.digest);
    let pulled = skopeo_copy_verified(
        &right,
        &dest,
        &layout_str(&work.path().join("out"), "v1"),
        work.path(),
    )
    .expect("pull with mTLS");
    assert_eq!(pulled, img.manifest.digest);
    assert!(berth.stop().success());
}

#[test]
fn minimum_version_and_cipher_suites_are_enforced() {
    if !have(&["openssl", "curl"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let (_pki, ca, cert, key) = server_pki(work.path());
    let ca_s = ca.display().to_string();

    let tls13 = start(
        work.path(),
        root.path(),
        &tls_yaml(&cert, &key, "    minimumtls: tls1.3\n"),
        &[],
        "https",
        &["--cacert", &ca_s],
    );
    let url = format!("https://{}/v2/", tls13.addr);
    let (code, _) = curl(&["--cacert", &ca_s, "--tls-max", "1.2"], &url);
    assert_eq!(
        code,
        Some(35),
        "a TLS 1.2 handshake was accepted by a tls1.3 floor"
    );
    let (code, status) = curl(&["--cacert", &ca_s, "-w", "%{http_code}"], &url);
    assert_eq!((code, status.as_str()), (Some(0), "200"));
    drop(tls13);

    // tls1.0 is accepted with a warning (the floor stays TLS 1.2); one TLS 1.2 suite is
    // served, and a CBC suite distribution knows is named as ignored.
    let suites = "    minimumtls: tls1.0\n    ciphersuites:\n      - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n      - TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA\n";
    let restricted = start(
        work.path(),
        root.path(),
        &tls_yaml(&cert, &key, suites),
        &[],
        "https",
        &["--cacert", &ca_s],
    );
    let url = format!("https://{}/v2/", restricted.addr);
    for unlisted in [
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ] {
        let (code, _) = curl(
            &["--cacert", &ca_s, "--tls-max", "1.2", "--ciphers", unlisted],
            &url,
        );
        assert_eq!(code, Some(35), "{unlisted} was not listed, yet negotiated");
    }
    let (code, status) = curl(
        &[
            "--cacert",
            &ca_s,
            "--tls-max",
            "1.2",
            "--ciphers",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "-w",
            "%{http_code}",
        ],
        &url,
    );
    assert_eq!((code, status.as_str()), (Some(0), "200"));
    let (code, _) = curl(&["--cacert", &ca_s, "--tlsv1.0", "--tls-max", "1.1"], &url);
    assert_ne!(code, Some(0), "TLS 1.1 was accepted");
    // TLS 1.3 suites were not named, so they all stay (distribution cannot restrict them).
    let (code, _) = curl(
        &[
            "--cacert",
            &ca_s,
            "--tlsv1.3",
            "--tls13-ciphers",
            "TLS_CHACHA20_POLY1305_SHA256",
        ],
        &url,
    );
    assert_eq!(code, Some(0));
    let log = restricted.log_text();
    assert!(log.contains("lowest version accepted is TLS 1.2"), "{log}");
    assert!(
        log.contains("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"),
        "{log}"
    );
    assert!(restricted.stop().success());
}

#[test]
fn http2_is_offered_unless_disabled() {
    if !have(&["openssl", "curl"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let (_pki, ca, cert, key) = server_pki(work.path());
    let ca_s = ca.display().to_string();
    let disabled = start(
        work.path(),
        root.path(),
        &format!(
            "{}  http2:\n    disabled: true\n",
            tls_yaml(&cert, &key, "")
        ),
        &[],
        "https",
        &["--cacert", &ca_s],
    );
    let url = format!("https://{}/v2/", disabled.addr);
    let (code, version) = curl(
        &["--cacert", &ca_s, "--http2", "-w", "%{http_version}"],
        &url,
    );
    assert_eq!((code, version.as_str()), (Some(0), "1.1"));
    // Even a client that insists on HTTP/2 gets nothing but HTTP/1.1.
    let (_, version) = curl(
        &[
            "--cacert",
            &ca_s,
            "--http2-prior-knowledge",
            "-w",
            "%{http_version}",
        ],
        &url,
    );
    assert_ne!(version, "2");
    drop(disabled);

    // Plain HTTP: cleartext HTTP/2 (prior knowledge) is served, unless disabled.
    let plain = start(work.path(), root.path(), "", &[], "http", &[]);
    let url = format!("http://{}/v2/", plain.addr);
    let (code, version) = curl(&["--http2-prior-knowledge", "-w", "%{http_version}"], &url);
    assert_eq!((code, version.as_str()), (Some(0), "2"));
    drop(plain);
    let plain = start(
        work.path(),
        root.path(),
        "",
        &[("REGISTRY_HTTP_HTTP2_DISABLED", "true")],
        "http",
        &[],
    );
    let url = format!("http://{}/v2/", plain.addr);
    let (_, version) = curl(&["--http2-prior-knowledge", "-w", "%{http_version}"], &url);
    assert_ne!(version, "2");
    let (code, version) = curl(&["-w", "%{http_version}"], &url);
    assert_eq!((code, version.as_str()), (Some(0), "1.1"));
    assert!(plain.stop().success());
}

/// Sends SIGHUP to the server.
fn hangup(process: &common::Process) {
    common::run(Command::new("kill").args(["-HUP", &process.child.id().to_string()]));
}

/// Waits until new connections to `addr` are shown a certificate whose subject contains
/// `cn`; answers how long that took.
fn wait_for_certificate(addr: &str, cn: &str, process: &common::Process) -> Duration {
    let started = Instant::now();
    loop {
        let seen = presented(addr, "localhost");
        if seen.contains(cn) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still presented {seen} instead of {cn}:\n{}",
            process.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Overwrites the served files in place, certificate first, as an operator's `cp` would.
fn install(cert: &Path, key: &Path, live_cert: &Path, live_key: &Path) {
    std::fs::copy(cert, live_cert).unwrap();
    std::fs::copy(key, live_key).unwrap();
}

#[test]
fn certificates_reload_on_change_and_sighup_without_dropping_a_download() {
    if !have(&["openssl", "curl"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let (pki, ca, cert_a, key_a) = server_pki(work.path());
    let ca_s = ca.display().to_string();
    let live = work.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    let (live_cert, live_key) = (live.join("tls.crt"), live.join("tls.key"));
    install(&cert_a, &key_a, &live_cert, &live_key);
    let berth = start(
        work.path(),
        root.path(),
        &tls_yaml(&live_cert, &live_key, ""),
        &[],
        "https",
        &["--cacert", &ca_s],
    );
    let addr = berth.addr.clone();
    assert!(presented(&addr, "localhost").contains("CN = berth-a"));

    // A blob large enough that a rate-limited download spans every reload below.
    let data = Rng::new("reload").bytes(40 * 1024 * 1024);
    let digest = sha256_digest(&data);
    let blob = work.path().join("blob");
    std::fs::write(&blob, &data).unwrap();
    let (code, status) = curl(
        &[
            "--cacert",
            &ca_s,
            "-X",
            "POST",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", blob.display()),
            "-w",
            "%{http_code}",
        ],
        &format!("https://{addr}/v2/big/blobs/uploads/?digest={digest}"),
    );
    assert_eq!((code, status.as_str()), (Some(0), "201"));
    let downloaded = work.path().join("downloaded");
    let mut download = Command::new("curl")
        .args(["-s", "--cacert", &ca_s, "--limit-rate", "4M", "-o"])
        .arg(&downloaded)
        .arg(format!("https://{addr}/v2/big/blobs/{digest}"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // 1. The files change: the next handshake gets the new certificate.
    let (cert_b, key_b) = pki.server("ca", "server-b", "berth-b");
    install(&cert_b, &key_b, &live_cert, &live_key);
    let took = wait_for_certificate(&addr, "CN = berth-b", &berth);
    assert!(took < Duration::from_secs(10), "reload took {took:?}");
    let (code, status) = curl(
        &["--cacert", &ca_s, "-w", "%{http_code}"],
        &format!("https://{addr}/v2/"),
    );
    assert_eq!((code, status.as_str()), (Some(0), "200"));
    assert!(
        download.try_wait().unwrap().is_none(),
        "the download ended too soon to prove anything"
    );

    // 2. A pair that does not belong together is refused; the last good one stays.
    let (cert_c, _) = pki.server("ca", "server-c", "berth-c");
    install(&cert_c, &key_b, &live_cert, &live_key);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !berth
        .log_text()
        .contains("still serving the previous certificate")
    {
        assert!(
            Instant::now() < deadline,
            "no warning:\n{}",
            berth.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(presented(&addr, "localhost").contains("CN = berth-b"));

    // 3. SIGHUP reloads at once.
    let (cert_d, key_d) = pki.server("ca", "server-d", "berth-d");
    install(&cert_d, &key_d, &live_cert, &live_key);
    hangup(&berth);
    wait_for_certificate(&addr, "CN = berth-d", &berth);
    let log = berth.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("SIGHUP") && l.contains("berth-d")),
        "no SIGHUP reload in:\n{log}"
    );
    assert!(
        download.try_wait().unwrap().is_none(),
        "the download ended too soon to prove anything"
    );

    // The download that started under the first certificate finished whole.
    let status = download.wait().unwrap();
    assert!(status.success(), "download failed: {status}");
    let got = std::fs::read(&downloaded).unwrap();
    assert_eq!(got.len(), data.len());
    assert_eq!(sha256_digest(&got), digest);
    assert!(
        berth.stop().success(),
        "berth did not survive SIGHUP cleanly"
    );
}

#[test]
fn sighup_reloads_the_client_cas() {
    if !have(&["openssl", "curl"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let (pki, ca, cert, key) = server_pki(work.path());
    let ca_s = ca.display().to_string();
    let first_ca = pki.ca("first-ca");
    let (first_cert, first_key) = pki.client("first-ca", "first");
    let second_ca = pki.ca("second-ca");
    let (second_cert, second_key) = pki.client("second-ca", "second");
    let live_ca = work.path().join("clients.pem");
    std::fs::copy(&first_ca, &live_ca).unwrap();
    let s = |p: &Path| p.display().to_string();
    let (fc, fk, sc, sk) = (
        s(&first_cert),
        s(&first_key),
        s(&second_cert),
        s(&second_key),
    );
    let berth = start(
        work.path(),
        root.path(),
        &tls_yaml(
            &cert,
            &key,
            &format!("    clientcas: [{}]\n", live_ca.display()),
        ),
        &[],
        "https",
        &["--cacert", &ca_s, "--cert", &fc, "--key", &fk],
    );
    let url = format!("https://{}/v2/", berth.addr);
    let with = |c: &str, k: &str| {
        curl(
            &[
                "--cacert",
                &ca_s,
                "--cert",
                c,
                "--key",
                k,
                "-w",
                "%{http_code}",
            ],
            &url,
        )
        .1
    };
    assert_eq!(with(&sc, &sk), "000");

    std::fs::copy(&second_ca, &live_ca).unwrap();
    hangup(&berth);
    let deadline = Instant::now() + Duration::from_secs(15);
    while with(&sc, &sk) != "200" {
        assert!(
            Instant::now() < deadline,
            "new client CA never used:\n{}",
            berth.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(with(&fc, &fk), "000", "the replaced CA still verifies");
    assert!(berth.stop().success());
}

/// A request to berth as `https://localhost:<port>/v2/`, verified against `root`.
fn verified_by(root: &Path, addr: &str) -> (Option<i32>, String) {
    let port = addr.rsplit_once(':').unwrap().1;
    curl(
        &[
            "--cacert",
            root.to_str().unwrap(),
            "--resolve",
            &format!("localhost:{port}:127.0.0.1"),
            "-w",
            "%{http_code}",
        ],
        &format!("https://localhost:{port}/v2/"),
    )
}

fn serial(presented: &str) -> String {
    presented
        .lines()
        .find_map(|l| l.strip_prefix("serial="))
        .unwrap_or_else(|| panic!("no serial in {presented}"))
        .to_owned()
}

#[test]
fn acme_certificate_from_pebble_is_served_and_cached_across_restarts() {
    if !have(&["openssl", "curl", "pebble"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let pki = Pki::new(&work.path().join("pki"));
    let ca = pki.ca("ca");
    let (pebble, directory) = pebble(work.path(), &pki, common::free_port(), true);
    let pebble_ca = pebble_root(&pebble, &pki, work.path());
    let cache = work.path().join("acme.json");
    let ca_s = ca.display().to_string();
    let env = [("SSL_CERT_FILE", ca_s.as_str())];
    // Until the certificate is issued every handshake fails; -k only waits for one.
    let yaml = letsencrypt_yaml(&cache, &directory);
    let berth = start(work.path(), root.path(), &yaml, &env, "https", &["-k"]);

    let (code, status) = verified_by(&pebble_ca, &berth.addr);
    assert_eq!(
        (code, status.as_str()),
        (Some(0), "200"),
        "{}",
        berth.log_text()
    );
    let first = presented(&berth.addr, "localhost");
    assert!(first.contains("Pebble Intermediate CA"), "{first}");
    let orders = |p: &common::Process| p.log_text().matches("/order-plz").count();
    assert_eq!(orders(&pebble), 1, "{}", pebble.log_text());
    let meta = std::fs::metadata(&cache).expect("cache file written");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    assert!(berth.stop().success());

    // A restart serves the cached certificate and orders nothing.
    let berth = start(work.path(), root.path(), &yaml, &env, "https", &["-k"]);
    let (code, status) = verified_by(&pebble_ca, &berth.addr);
    assert_eq!((code, status.as_str()), (Some(0), "200"));
    let again = presented(&berth.addr, "localhost");
    assert_eq!(serial(&again), serial(&first));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        orders(&pebble),
        1,
        "a restart ordered again:\n{}",
        pebble.log_text()
    );
    let log = berth.log_text();
    assert!(log.contains("serving the cached certificate"), "{log}");
    assert!(!log.contains("certificate issued"), "{log}");
    assert!(berth.stop().success());
    drop(pebble);
}

/// pebble really validates here: it connects to berth's port for `localhost` with ALPN
/// `acme-tls/1` and checks the challenge certificate berth answers with.
#[test]
fn acme_tls_alpn_01_challenge_is_answered() {
    if !have(&["openssl", "curl", "pebble"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let pki = Pki::new(&work.path().join("pki"));
    let ca = pki.ca("ca");
    let cache = work.path().join("acme.json");
    let (config, addr) = common::berth_config(root.path(), work.path(), "", "");
    let port: u16 = addr.rsplit_once(':').unwrap().1.parse().unwrap();
    let (pebble, directory) = pebble(work.path(), &pki, port, false);
    let pebble_ca = pebble_root(&pebble, &pki, work.path());
    let yaml = std::fs::read_to_string(&config).unwrap() + &letsencrypt_yaml(&cache, &directory);
    std::fs::write(&config, yaml).unwrap();
    let ca_s = ca.display().to_string();
    let berth = spawn(
        work.path(),
        &config,
        addr,
        &[("SSL_CERT_FILE", &ca_s)],
        "https",
        &["-k"],
    );
    let (code, status) = verified_by(&pebble_ca, &berth.addr);
    assert_eq!(
        (code, status.as_str()),
        (Some(0), "200"),
        "{}",
        berth.log_text()
    );
    let log = pebble.log_text();
    assert!(!log.contains("VA always returns valid"), "{log}");
    assert!(log.contains("set VALID by completed challenge"), "{log}");
    // Once issued, the challenge certificate is gone: an acme-tls/1 handshake gets none.
    let out = output(Command::new("openssl").args([
        "s_client",
        "-connect",
        &berth.addr,
        "-servername",
        "localhost",
        "-alpn",
        "acme-tls/1",
    ]));
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(berth.stop().success());
}

/// The API status of the plain-HTTP registry at `addr`, by curl.
fn api_status(addr: &str) -> String {
    text(
        &output(
            Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(format!("http://{addr}/v2/")),
        )
        .stdout,
    )
}

#[test]
fn https_health_checks_verify_their_target_against_ssl_cert_file() {
    if !have(&["openssl", "curl"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (_pki, ca, cert, key) = server_pki(work.path());
    let target = start(
        work.path(),
        &work.path().join("target-root"),
        &tls_yaml(&cert, &key, ""),
        &[],
        "https",
        &["--cacert", ca.to_str().unwrap()],
    );
    let uri = format!("https://{}/v2/", target.addr);
    // The first probe runs one interval after start-up, so a registry that will fail
    // it still answers 200 while `spawn` waits for it to be ready.
    let health =
        format!("health:\n  http:\n    - uri: \"{uri}\"\n      interval: 1s\n      timeout: 2s\n");
    let wait = |addr: &str, want: &str, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while api_status(addr) != want {
            assert!(Instant::now() < deadline, "{what}: never {want}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // Trusting the test CA: healthy while the target answers, 503 once it is gone.
    let (config, addr) =
        common::berth_config(&work.path().join("trusting"), work.path(), "", &health);
    let ca_file = ca.to_str().unwrap();
    let trusting = spawn(
        work.path(),
        &config,
        addr.clone(),
        &[("SSL_CERT_FILE", ca_file)],
        "http",
        &[],
    );
    wait(&addr, "200", "a verified https target");
    // Not trusting it (the system's roots only): the check fails on the certificate.
    let (config, other) =
        common::berth_config(&work.path().join("doubting"), work.path(), "", &health);
    let doubting = spawn(work.path(), &config, other.clone(), &[], "http", &[]);
    wait(&other, "503", "an unverifiable https target");
    assert!(target.stop().success());
    wait(&addr, "503", "a stopped https target");
    assert!(trusting.stop().success());
    assert!(doubting.stop().success());
}
