//! The `berth` command line on the real binary: subcommands, help, version, exit codes,
//! and a table of bad configurations that `check-config` and `serve` must both refuse
//! with the same message, `serve` before it binds its port; text logs written to a pipe.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn berth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .output()
        .expect("run berth")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn version_is_one_line_with_a_newline() {
    let expected = format!("berth {}\n", env!("CARGO_PKG_VERSION"));
    for args in [&["version"][..], &["--version"][..]] {
        let out = berth(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(stdout(&out), expected, "{args:?}");
    }
}

#[test]
fn help_names_every_subcommand_and_the_exit_codes() {
    let out = berth(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for word in [
        "serve",
        "check-config",
        "garbage-collect",
        "version",
        "Exit status:",
        "2  usage error",
    ] {
        assert!(text.contains(word), "{word} missing from:\n{text}");
    }
}

#[test]
fn each_subcommand_has_help() {
    for args in [
        &["help", "serve"][..],
        &["serve", "--help"][..],
        &["help", "check-config"][..],
        &["check-config", "--help"][..],
        &["help", "garbage-collect"][..],
        &["garbage-collect", "--help"][..],
    ] {
        let out = berth(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = stdout(&out);
        assert!(text.contains("Usage: berth"), "{args:?}: {text}");
        assert!(
            text.contains("[CONFIG]") || text.contains("<CONFIG>"),
            "{text}"
        );
    }
}

#[test]
fn usage_errors_exit_with_2() {
    for args in [
        &[][..],
        &["nonsense"][..],
        &["check-config"][..],
        &["serve", "a.yml", "b.yml"][..],
        &["version", "extra"][..],
        &["garbage-collect"][..],
        &["garbage-collect", "--repair", "a.yml"][..],
    ] {
        let out = berth(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("Usage:"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_missing_file_is_a_failure_not_a_usage_error() {
    let out = berth(&["check-config", "/nonexistent/berth.yml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/nonexistent/berth.yml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn garbage_collect_help_says_to_run_it_offline_and_its_flags() {
    let out = berth(&["garbage-collect", "--help"]);
    let text = stdout(&out);
    for word in [
        "-d, --dry-run",
        "-m, --delete-untagged",
        "no registry writes",
        "storage.maintenance.readonly.enabled",
        "blobs marked,",
        "Exit status:",
    ] {
        assert!(text.contains(word), "{word} missing from:\n{text}");
    }
}

#[test]
fn garbage_collect_refuses_memory_storage_and_missing_roots() {
    let dir = tempfile::tempdir().unwrap();
    let memory = dir.path().join("memory.yml");
    std::fs::write(&memory, "version: 0.1\nstorage:\n  inmemory: {}\n").unwrap();
    let missing = dir.path().join("missing.yml");
    let absent = dir.path().join("absent");
    let yaml = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n",
        absent.display()
    );
    std::fs::write(&missing, yaml).unwrap();
    for (config, flags, says) in [
        (&memory, &[][..], "storage.inmemory"),
        (&memory, &["-d", "-m"][..], "storage.inmemory"),
        (&missing, &["--dry-run"][..], "does not exist"),
    ] {
        let mut args = vec!["garbage-collect"];
        args.extend_from_slice(flags);
        args.push(config.to_str().unwrap());
        let out = berth(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
    }
    assert!(!absent.exists(), "garbage-collect created the storage root");
}

/// Runs berth, killing it (and failing) if it is still running after 20 seconds: a bad
/// configuration that `serve` accepted would otherwise hang the test.
fn berth_bounded(args: &[&Path], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run berth");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("berth {args:?} kept running:\n{}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// One row of the table: what is wrong, the YAML, `REGISTRY_*` variables, and what the
/// message must name.
type BadConfig<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, &'a str);

/// The line that names the configuration problem.
fn config_error(out: &Output) -> String {
    stderr(out)
        .lines()
        .find(|l| l.contains("invalid configuration"))
        .unwrap_or_else(|| panic!("no configuration error in:\n{}", stderr(out)))
        .to_owned()
}

#[test]
fn check_config_and_serve_refuse_the_same_bad_configurations() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The port is held for the whole test: if serve got as far as binding it, its error
    // would be about the address in use rather than the configuration.
    let held = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("addr").to_string();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "this is not a certificate\n").expect("write");
    let not_pem = not_pem.display().to_string();
    let cache = dir.path().join("acme.json").display().to_string();
    // A valid certificate source that needs no certificate files.
    let acme = format!("letsencrypt: {{cachefile: {cache}, hosts: [registry.example.com]}}");
    let storage = "storage: {inmemory: {}}";
    let http = format!("http: {{addr: \"{addr}\"}}");
    let base = format!("version: 0.1\n{storage}\n{http}\n");
    let table: Vec<BadConfig> = vec![
        (
            "unix socket",
            format!("version: 0.1\n{storage}\nhttp: {{addr: \"{addr}\", net: unix}}\n"),
            vec![],
            "http.net",
        ),
        (
            "address without a port",
            format!("version: 0.1\n{storage}\nhttp: {{addr: localhost}}\n"),
            vec![],
            "http.addr",
        ),
        (
            "debug address without a port",
            format!(
                "version: 0.1\n{storage}\nhttp: {{addr: \"{addr}\", debug: {{addr: localhost}}}}\n"
            ),
            vec![],
            "http.debug.addr",
        ),
        (
            "metrics path not below /",
            format!(
                "version: 0.1\n{storage}\nhttp: {{addr: \"{addr}\", debug: {{prometheus: {{enabled: true, path: metrics}}}}}}\n"
            ),
            vec![],
            "http.debug.prometheus.path",
        ),
        (
            "metrics path on the health status",
            base.clone(),
            vec![
                ("REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED", "true"),
                ("REGISTRY_HTTP_DEBUG_PROMETHEUS_PATH", "/debug/health"),
            ],
            "http.debug.prometheus.path",
        ),
        (
            "metrics switch that is not a boolean",
            base.clone(),
            vec![("REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED", "maybe")],
            "http.debug.prometheus.enabled",
        ),
        (
            "negative health threshold",
            format!("{base}health: {{storagedriver: {{enabled: true, threshold: -1}}}}\n"),
            vec![],
            "health.storagedriver.threshold",
        ),
        (
            "health interval that is not a duration",
            base.clone(),
            vec![
                ("REGISTRY_HEALTH_STORAGEDRIVER_ENABLED", "true"),
                ("REGISTRY_HEALTH_STORAGEDRIVER_INTERVAL", "forever"),
            ],
            "health.storagedriver.interval",
        ),
        (
            "file check without a file",
            format!("{base}health: {{file: [{{interval: 1s}}]}}\n"),
            vec![],
            "health.file[0].file",
        ),
        (
            "http check whose uri is not a URL",
            format!("{base}health: {{http: [{{uri: \"not a url\"}}]}}\n"),
            vec![],
            "health.http[0].uri",
        ),
        (
            "http check whose scheme is neither http nor https",
            format!("{base}health: {{http: [{{uri: \"ftp://127.0.0.1:1/\"}}]}}\n"),
            vec![],
            "health.http[0].uri",
        ),
        (
            "http check expecting a status that is none",
            format!("{base}health: {{http: [{{uri: \"http://127.0.0.1:1/\", statuscode: 99}}]}}\n"),
            vec![],
            "health.http[0].statuscode",
        ),
        (
            "http check with a bad header",
            format!(
                "{base}health: {{http: [{{uri: \"http://127.0.0.1:1/\", headers: {{\"bad header\": [x]}}}}]}}\n"
            ),
            vec![],
            "health.http[0].headers",
        ),
        (
            "tcp check without a port",
            format!("{base}health: {{tcp: [{{addr: localhost}}]}}\n"),
            vec![],
            "health.tcp[0].addr",
        ),
        (
            "the same check twice",
            format!(
                "{base}health: {{tcp: [{{addr: \"127.0.0.1:1\"}}, {{addr: \"127.0.0.1:1\"}}]}}\n"
            ),
            vec![],
            "health",
        ),
        (
            "certificate without its key",
            format!(
                "version: 0.1\n{storage}\nhttp: {{addr: \"{addr}\", tls: {{certificate: {not_pem}}}}}\n"
            ),
            vec![],
            "http.tls.key",
        ),
        (
            "certificate that is not PEM",
            format!(
                "version: 0.1\n{storage}\nhttp: {{addr: \"{addr}\", tls: {{certificate: {not_pem}, key: {not_pem}}}}}\n"
            ),
            vec![],
            "http.tls.certificate",
        ),
        (
            "missing certificate file",
            format!(
                "version: 0.1\n{storage}\nhttp: {{addr: \"{addr}\", tls: {{certificate: /nonexistent/c.pem, key: /nonexistent/k.pem}}}}\n"
            ),
            vec![],
            "http.tls.certificate",
        ),
        (
            "missing client CA file",
            format!(
                "version: 0.1\n{storage}\nhttp: {{addr: \"{addr}\", tls: {{{acme}, clientcas: [/nonexistent/ca.pem]}}}}\n"
            ),
            vec![],
            "http.tls.clientcas",
        ),
        (
            "client CA file that is not PEM",
            base.clone(),
            vec![
                ("REGISTRY_HTTP_TLS_LETSENCRYPT_CACHEFILE", cache.as_str()),
                (
                    "REGISTRY_HTTP_TLS_LETSENCRYPT_HOSTS",
                    "[registry.example.com]",
                ),
                ("REGISTRY_HTTP_TLS_CLIENTCAS", not_pem.as_str()),
            ],
            "http.tls.clientcas",
        ),
        (
            "unknown minimumtls",
            format!(
                "version: 0.1\n{storage}\nhttp: {{addr: \"{addr}\", tls: {{{acme}, minimumtls: tls1.4}}}}\n"
            ),
            vec![],
            "http.tls.minimumtls",
        ),
        (
            "unknown minimumtls from the environment",
            format!("version: 0.1\n{storage}\nhttp: {{addr: \"{addr}\", tls: {{{acme}}}}}\n"),
            vec![("REGISTRY_HTTP_TLS_MINIMUMTLS", "ssl3")],
            "http.tls.minimumtls",
        ),
        (
            "no usable cipher suite",
            format!(
                "version: 0.1\n{storage}\nhttp: {{addr: \"{addr}\", tls: {{{acme}, ciphersuites: [TLS_RSA_WITH_RC4_128_SHA, TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]}}}}\n"
            ),
            vec![],
            "http.tls.ciphersuites",
        ),
        (
            "unknown cipher suite",
            format!(
                "version: 0.1\n{storage}\nhttp: {{addr: \"{addr}\", tls: {{{acme}, ciphersuites: [TLS_MADE_UP_SUITE]}}}}\n"
            ),
            vec![],
            "http.tls.ciphersuites",
        ),
        (
            "letsencrypt without hosts",
            format!(
                "version: 0.1\n{storage}\nhttp: {{addr: \"{addr}\", tls: {{letsencrypt: {{cachefile: {cache}}}}}}}\n"
            ),
            vec![],
            "http.tls.letsencrypt.hosts",
        ),
        (
            "letsencrypt without cachefile",
            format!(
                "version: 0.1\n{storage}\nhttp: {{addr: \"{addr}\", tls: {{letsencrypt: {{hosts: [registry.example.com], email: a@example.com}}}}}}\n"
            ),
            vec![],
            "http.tls.letsencrypt.cachefile",
        ),
        (
            "letsencrypt cachefile in a missing directory",
            format!(
                "version: 0.1\n{storage}\nhttp: {{addr: \"{addr}\", tls: {{letsencrypt: {{cachefile: /nonexistent/acme.json, hosts: [registry.example.com]}}}}}}\n"
            ),
            vec![],
            "http.tls.letsencrypt.cachefile",
        ),
        (
            "letsencrypt with a plain-http directory",
            format!("version: 0.1\n{storage}\nhttp: {{addr: \"{addr}\", tls: {{{acme}}}}}\n"),
            vec![(
                "REGISTRY_HTTP_TLS_LETSENCRYPT_DIRECTORYURL",
                "http://acme.example.com/dir",
            )],
            "http.tls.letsencrypt.directoryurl",
        ),
        (
            "letsencrypt and a certificate",
            format!(
                "version: 0.1\n{storage}\nhttp: {{addr: \"{addr}\", tls: {{{acme}, certificate: {not_pem}, key: {not_pem}}}}}\n"
            ),
            vec![],
            "http.tls.letsencrypt",
        ),
        (
            "bad http2.disabled",
            base.clone(),
            vec![("REGISTRY_HTTP_HTTP2_DISABLED", "sometimes")],
            "http.http2.disabled",
        ),
        (
            "proxy upstream that is not a URL, from the environment",
            base.clone(),
            vec![("REGISTRY_PROXY_REMOTEURL", "registry-1.docker.io")],
            "proxy.remoteurl",
        ),
        (
            "overlapping proxy prefixes",
            format!(
                "{base}berth: {{proxy: {{upstreams: [{{prefix: hub/, remoteurl: \"http://a\"}}, {{prefix: hub/x/, remoteurl: \"http://b\"}}]}}}}\n"
            ),
            vec![],
            "berth.proxy.upstreams[1].prefix",
        ),
        (
            "redis descriptor cache without redis.addr",
            format!(
                "version: 0.1\nstorage: {{inmemory: {{}}, cache: {{blobdescriptor: redis}}}}\n{http}\n"
            ),
            vec![],
            "storage.cache.blobdescriptor",
        ),
        (
            "redis address without a port",
            format!("{base}redis: {{addr: localhost}}\n"),
            vec![],
            "redis.addr",
        ),
        (
            "bad redis read timeout from the environment",
            format!("{base}redis: {{addr: \"127.0.0.1:6379\"}}\n"),
            vec![("REGISTRY_REDIS_READTIMEOUT", "quickly")],
            "redis.readtimeout",
        ),
        (
            "lock lease shorter than a second",
            format!(
                "{base}redis: {{addr: \"127.0.0.1:6379\"}}\nberth: {{redis: {{locklease: 100ms}}}}\n"
            ),
            vec![],
            "berth.redis.locklease",
        ),
        (
            "lock lease not a duration, from the environment",
            base.clone(),
            vec![("REGISTRY_BERTH_REDIS_LOCKLEASE", "long")],
            "berth.redis.locklease",
        ),
        (
            "negative redis pool size from the environment",
            base.clone(),
            vec![
                ("REGISTRY_REDIS_ADDR", "127.0.0.1:6379"),
                ("REGISTRY_REDIS_POOL_MAXACTIVE", "-1"),
            ],
            "redis.pool.maxactive",
        ),
        (
            "bad draintimeout",
            format!("version: 0.1\n{storage}\nhttp: {{addr: \"{addr}\", draintimeout: soon}}\n"),
            vec![],
            "http.draintimeout",
        ),
        (
            "bad draintimeout from the environment",
            base.clone(),
            vec![("REGISTRY_HTTP_DRAINTIMEOUT", "soon")],
            "http.draintimeout",
        ),
        (
            "bad header value",
            format!(
                "version: 0.1\n{storage}\nhttp: {{addr: \"{addr}\", headers: {{X-Bad: [\"a\\nb\"]}}}}\n"
            ),
            vec![],
            "http.headers.X-Bad",
        ),
        (
            "bad header name",
            format!(
                "version: 0.1\n{storage}\nhttp: {{addr: \"{addr}\", headers: {{\"X Bad\": [b]}}}}\n"
            ),
            vec![],
            "http.headers.X Bad",
        ),
        (
            "bad boolean",
            format!(
                "version: 0.1\nstorage: {{inmemory: {{}}, delete: {{enabled: perhaps}}}}\n{http}\n"
            ),
            vec![],
            "storage.delete.enabled",
        ),
        (
            "maxthreads not a number",
            format!(
                "version: 0.1\nstorage: {{filesystem: {{rootdirectory: {}, maxthreads: lots}}}}\n{http}\n",
                dir.path().join("root").display()
            ),
            vec![],
            "storage.filesystem.maxthreads",
        ),
        (
            "zero purge interval",
            format!(
                "version: 0.1\nstorage: {{inmemory: {{}}, maintenance: {{uploadpurging: {{interval: 0s}}}}}}\n{http}\n"
            ),
            vec![],
            "storage.maintenance.uploadpurging.interval",
        ),
        (
            "zero online gc interval",
            format!(
                "version: 0.1\nstorage: {{inmemory: {{}}, maintenance: {{gc: {{enabled: true, interval: 0s}}}}}}\n{http}\n"
            ),
            vec![],
            "storage.maintenance.gc.interval",
        ),
        (
            "bad online gc grace period",
            format!(
                "version: 0.1\nstorage: {{inmemory: {{}}, maintenance: {{gc: {{graceperiod: a-day}}}}}}\n{http}\n"
            ),
            vec![],
            "storage.maintenance.gc.graceperiod",
        ),
        (
            "bad online gc switch from the environment",
            base.clone(),
            vec![(
                "REGISTRY_STORAGE_MAINTENANCE_GC_DELETEUNTAGGED",
                "sometimes",
            )],
            "storage.maintenance.gc.deleteuntagged",
        ),
        (
            "bad online gc dry run",
            format!(
                "version: 0.1\nstorage: {{inmemory: {{}}, maintenance: {{gc: {{dryrun: 1}}}}}}\n{http}\n"
            ),
            vec![],
            "storage.maintenance.gc.dryrun",
        ),
        (
            "unsupported driver",
            format!("version: 0.1\nstorage: {{gcs: {{bucket: x}}}}\n{http}\n"),
            vec![],
            "storage driver `gcs`",
        ),
        (
            "s3 without a bucket",
            format!("version: 0.1\nstorage: {{s3: {{region: x}}}}\n{http}\n"),
            vec![],
            "storage.s3.bucket",
        ),
        (
            "s3 chunk size under S3's part minimum",
            format!(
                "version: 0.1\nstorage: {{s3: {{region: x, bucket: b, chunksize: 1000}}}}\n{http}\n"
            ),
            vec![],
            "storage.s3.chunksize",
        ),
        (
            "s3 bucket from the environment, secret key missing",
            format!("version: 0.1\nstorage: {{s3: {{region: x}}}}\n{http}\n"),
            vec![
                ("REGISTRY_STORAGE_S3_BUCKET", "b"),
                ("REGISTRY_STORAGE_S3_ACCESSKEY", "a"),
            ],
            "storage.s3.secretkey",
        ),
        (
            "htpasswd file missing",
            format!("{base}auth: {{htpasswd: {{realm: r, path: /nonexistent/htpasswd}}}}\n"),
            vec![],
            "auth.htpasswd.path",
        ),
        (
            "an access controller berth does not have",
            format!("{base}auth: {{silly: {{realm: r, service: s}}}}\n"),
            vec![],
            "auth.silly",
        ),
        (
            "two access controllers",
            format!("{base}auth: {{htpasswd: {{realm: r, path: /p}}, token: {{realm: r}}}}\n"),
            vec![],
            "configure one access controller",
        ),
        (
            "token auth without signing keys",
            format!("{base}auth: {{token: {{realm: https://a/t, service: s, issuer: i}}}}\n"),
            vec![],
            "rootcertbundle or jwks",
        ),
        (
            "a policy without an access controller",
            format!(
                "{base}berth: {{auth: {{policy: [{{repositories: [a], users: [u], actions: [pull]}}]}}}}\n"
            ),
            vec![],
            "berth.auth",
        ),
        (
            "a policy rule with an unknown action",
            format!(
                "{base}auth: {{htpasswd: {{realm: r, path: /nonexistent}}}}\nberth: {{auth: {{policy: [{{repositories: [a], users: [u], actions: [write]}}]}}}}\n"
            ),
            vec![],
            "berth.auth.policy",
        ),
        (
            "bad head timeout",
            format!("{base}berth: {{limits: {{headerreadtimeout: soon}}}}\n"),
            vec![],
            "berth.limits.headerreadtimeout",
        ),
        (
            "negative idle timeout",
            format!("{base}berth: {{limits: {{idletimeout: -5}}}}\n"),
            vec![],
            "berth.limits.idletimeout",
        ),
        (
            "head limit too small",
            format!("{base}berth: {{limits: {{maxheaderbytes: 100}}}}\n"),
            vec![],
            "berth.limits.maxheaderbytes",
        ),
        (
            "session bound not a number, from the environment",
            base.clone(),
            vec![("REGISTRY_BERTH_LIMITS_MAXUPLOADSESSIONS", "lots")],
            "berth.limits.maxuploadsessions",
        ),
        (
            "rate limit without a rate",
            format!("{base}berth: {{limits: {{ratelimit: {{perclient: {{burst: 5}}}}}}}}\n"),
            vec![],
            "berth.limits.ratelimit.perclient.rate",
        ),
        (
            "rate limit burst of zero",
            format!("{base}berth: {{limits: {{ratelimit: {{peruser: {{rate: 5, burst: 0}}}}}}}}\n"),
            vec![],
            "berth.limits.ratelimit.peruser.burst",
        ),
        (
            "negative rate",
            format!("{base}berth: {{limits: {{ratelimit: {{perclient: {{rate: -1}}}}}}}}\n"),
            vec![],
            "berth.limits.ratelimit.perclient.rate",
        ),
        (
            "notification endpoint without a url",
            format!("{base}notifications: {{endpoints: [{{name: hook}}]}}\n"),
            vec![],
            "notifications.endpoints[0].url",
        ),
        (
            "notification endpoints with one name",
            format!(
                "{base}notifications: {{endpoints: [{{name: hook, url: 'http://127.0.0.1:9/a'}}, {{name: hook, url: 'http://127.0.0.1:9/b'}}]}}\n"
            ),
            vec![],
            "notifications.endpoints[1].name",
        ),
        (
            "notification endpoint with a zero timeout, from the environment",
            base.clone(),
            vec![(
                "REGISTRY_NOTIFICATIONS_ENDPOINTS",
                "[{name: hook, url: 'http://127.0.0.1:9/', timeout: 0s}]",
            )],
            "notifications.endpoints[0].timeout",
        ),
        (
            "notification endpoint that is not http",
            format!("{base}notifications: {{endpoints: [{{name: hook, url: 'ftp://h/'}}]}}\n"),
            vec![],
            "notifications.endpoints[0].url",
        ),
        (
            "notification action that does not exist",
            format!(
                "{base}notifications: {{endpoints: [{{name: hook, url: 'http://h/', ignore: {{actions: [fetch]}}}}]}}\n"
            ),
            vec![],
            "notifications.endpoints[0].ignore.actions",
        ),
        (
            "notification queue of no events",
            base.clone(),
            vec![("REGISTRY_BERTH_NOTIFICATIONS_QUEUE_MAXEVENTS", "0")],
            "berth.notifications.queue.maxevents",
        ),
        (
            "no version",
            format!("{storage}\n{http}\n"),
            vec![],
            "version",
        ),
    ];
    for (i, (name, yaml, env, key)) in table.iter().enumerate() {
        let path = dir.path().join(format!("bad-{i}.yml"));
        std::fs::write(&path, yaml).expect("write");
        let check = berth_bounded(&[Path::new("check-config"), &path], env);
        let serve = berth_bounded(&[Path::new("serve"), &path], env);
        assert_eq!(
            check.status.code(),
            Some(1),
            "{name}: check-config: {}",
            stderr(&check)
        );
        assert_eq!(
            serve.status.code(),
            Some(1),
            "{name}: serve: {}",
            stderr(&serve)
        );
        let message = config_error(&check);
        assert!(message.contains(key), "{name}: {message}");
        assert_eq!(
            config_error(&serve),
            message,
            "{name}: serve said something else"
        );
        assert!(
            !stderr(&serve).contains("listening"),
            "{name}: {}",
            stderr(&serve)
        );
    }

    let good = dir.path().join("good.yml");
    std::fs::write(&good, &base).expect("write");
    let out = berth_bounded(&[Path::new("check-config"), &good], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("configuration is valid"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        stderr(&out),
        "",
        "a supported configuration has no warnings"
    );
    drop(held);
}

#[test]
fn text_logs_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.path().join("text.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: info, formatter: text}}\nstorage: {{inmemory: {{}}}}\n\
             http: {{addr: \"{addr}\"}}\n"
        ),
    )
    .expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut pipe = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let registry = common::client(&addr);
    while !registry.run(|c| c.ping()).is_ok_and(|r| r.status == 200) {
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            panic!(
                "berth never answered: {}",
                reader.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("wait");
    let text = reader.join().expect("reader");
    assert!(status.success(), "{status}: {text}");
    assert!(text.contains("listening on http://"), "{text}");
    assert!(text.contains("path=/v2/"), "no access line in: {text}");
    assert!(!text.contains("\x1b["), "colour codes in a pipe: {text:?}");
}
