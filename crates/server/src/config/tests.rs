//! Configuration tests: distribution's sample configurations, overrides, and errors.

use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
    Config::from_yaml(text, Vec::new())
}

/// The configuration Debian's docker-registry package installs.
const DEBIAN: &str = r#"
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/docker-registry
  delete:
    enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"#;

#[test]
fn reads_the_debian_config() {
    let (c, warnings) = parse(DEBIAN).unwrap();
    assert_eq!(
        c.storage.driver,
        Driver::Filesystem {
            root: PathBuf::from("/var/lib/docker-registry"),
            fsync: true
        }
    );
    assert!(c.storage.delete_enabled);
    assert_eq!(
        c.storage.descriptor_cache,
        Some(berth_storage::DEFAULT_CACHE_CAPACITY)
    );
    assert_eq!(c.http.addr, ":5000");
    assert_eq!(
        c.http.headers,
        [(
            http::HeaderName::from_static("x-content-type-options"),
            http::HeaderValue::from_static("nosniff")
        )]
    );
    assert_eq!(c.log.fields["service"], Value::from("registry"));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        c.health,
        [HealthCheck {
            name: "storagedriver_filesystem".into(),
            probe: Probe::StorageDriver,
            interval: Duration::from_secs(10),
            threshold: 3,
        }]
    );
}

#[test]
fn maintenance_and_aliases() {
    let (c, w) = parse(
        "version: 0.1\nstorage:\n  inmemory:\n  cache: {layerinfo: inmemory, blobdescriptorsize: 5}\n  \
         maintenance:\n    uploadpurging: {enabled: true, age: 2h, interval: 30m, dryrun: true}\n    \
         readonly: {enabled: true}\n",
    )
    .unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.storage.driver, Driver::InMemory);
    assert_eq!(c.storage.descriptor_cache, Some(5));
    assert!(c.storage.read_only);
    assert_eq!(
        c.storage.upload_purging,
        UploadPurging {
            enabled: true,
            age: Duration::from_secs(7200),
            interval: Duration::from_secs(1800),
            dry_run: true
        }
    );
}

#[test]
fn online_gc_is_off_unless_asked_and_reads_every_key() {
    let (c, w) = parse("version: 0.1\nstorage: {inmemory: {}}\n").unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.storage.gc, OnlineGc::default());
    assert!(!c.storage.gc.enabled);
    let (c, w) = parse(
        "version: 0.1\nstorage:\n  inmemory:\n  maintenance:\n    gc: {enabled: true, interval: 10m, \
         graceperiod: 2h, deleteuntagged: true, dryrun: \"true\"}\n",
    )
    .unwrap();
    assert!(w.is_empty(), "berth's own keys are supported: {w:?}");
    assert_eq!(
        c.storage.gc,
        OnlineGc {
            enabled: true,
            interval: Duration::from_secs(600),
            grace_period: Duration::from_secs(7200),
            delete_untagged: true,
            dry_run: true,
        }
    );
    // Every key from the environment, as distribution's overrides go.
    let vars = [
        ("REGISTRY_STORAGE_MAINTENANCE_GC_ENABLED", "true"),
        ("REGISTRY_STORAGE_MAINTENANCE_GC_INTERVAL", "90s"),
        ("REGISTRY_STORAGE_MAINTENANCE_GC_GRACEPERIOD", "0s"),
        ("REGISTRY_STORAGE_MAINTENANCE_GC_DELETEUNTAGGED", "true"),
        ("REGISTRY_STORAGE_MAINTENANCE_GC_DRYRUN", "false"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let (c, _) = Config::from_yaml("version: 0.1\nstorage: {inmemory: {}}\n", vars).unwrap();
    assert_eq!(
        c.storage.gc,
        OnlineGc {
            enabled: true,
            interval: Duration::from_secs(90),
            grace_period: Duration::ZERO,
            delete_untagged: true,
            dry_run: false,
        }
    );
    // A zero interval only matters when collections run.
    let (c, _) =
        parse("version: 0.1\nstorage: {inmemory: {}, maintenance: {gc: {interval: 0s}}}\n")
            .unwrap();
    assert!(!c.storage.gc.enabled);
}

#[test]
fn environment_overrides() {
    let (c, _) = Config::from_yaml(
        "version: 0.1\nstorage: {filesystem: {rootdirectory: /a}}\n",
        vec![
            (
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY".to_owned(),
                "/b".to_owned(),
            ),
            ("REGISTRY_HTTP_ADDR".to_owned(), "127.0.0.1:1".to_owned()),
            (
                "REGISTRY_STORAGE_DELETE_ENABLED".to_owned(),
                "true".to_owned(),
            ),
        ],
    )
    .unwrap();
    assert_eq!(
        c.storage.driver,
        Driver::Filesystem {
            root: PathBuf::from("/b"),
            fsync: true
        }
    );
    assert_eq!(c.http.addr, "127.0.0.1:1");
    assert!(c.storage.delete_enabled);
}

#[test]
fn errors_name_the_key() {
    let cases = [
        (
            "version: 0.1\nstorage: {filesystem: {}}\nhttp: {addr: [1]}\n",
            "http.addr",
        ),
        (
            "version: 0.1\nstorage: {filesystem: {}, delete: {enabled: maybe}}\n",
            "storage.delete.enabled",
        ),
        (
            "version: 0.1\nstorage: {filesystem: {}, inmemory: {}}\n",
            "storage",
        ),
        ("version: 0.1\n", "storage"),
        ("storage: {inmemory: {}}\n", "version"),
        (
            "version: 0.1\nstorage: {inmemory: {}, maintenance: {uploadpurging: {age: forever}}}\n",
            "storage.maintenance.uploadpurging.age",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}}\nhttp: {draintimeout: soon}\n",
            "http.draintimeout",
        ),
        ("version: [\n", "(document)"),
        (
            "version: 0.1\nstorage: {inmemory: {}}\nhttp: {addr: localhost}\n",
            "http.addr",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}}\nhttp: {tls: {certificate: /c.pem}}\n",
            "http.tls.key",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}}\nhttp: {tls: {key: /k.pem}}\n",
            "http.tls.certificate",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}}\n\
             http: {tls: {certificate: /nonexistent/c.pem, key: /nonexistent/k.pem}}\n",
            "http.tls.certificate",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}}\nhttp: {headers: {X-A: [\"a\\nb\"]}}\n",
            "http.headers.X-A",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}}\nhttp: {headers: {\"X A\": [b]}}\n",
            "http.headers.X A",
        ),
        (
            "version: 0.1\nstorage: {filesystem: {maxthreads: lots}}\n",
            "storage.filesystem.maxthreads",
        ),
        (
            "version: 0.1\nstorage: {filesystem: {rootdirectory: \"\"}}\n",
            "storage.filesystem.rootdirectory",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}, cache: {blobdescriptor: disk}}\n",
            "storage.cache.blobdescriptor",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}, cache: {blobdescriptor: inmemory, \
             blobdescriptorsize: 0}}\n",
            "storage.cache.blobdescriptorsize",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}, cache: {blobdescriptor: redis}}\n",
            "storage.cache.blobdescriptor",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}}\nredis: {addr: \"redis:port\"}\n",
            "redis.addr",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}}\nredis: {addr: \"r:6379\", dialtimeout: 5 seconds}\n",
            "redis.dialtimeout",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}}\nredis: {addr: \"r:6379\", db: -1}\n",
            "redis.db",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}}\nredis: {addr: \"r:6379\", tls: {enabled: maybe}}\n",
            "redis.tls.enabled",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}}\nredis: {addr: \"r:6379\", tls: {rootcas: [/nonexistent/ca.pem]}}\n",
            "redis.tls.rootcas",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}}\nredis: {addr: \"r:6379\", tls: {certificate: /c.pem}}\n",
            "redis.tls.key",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}}\nredis: {addr: \"r:6379\", tls: {enabled: false, rootcas: [/c.pem]}}\n",
            "redis.tls.enabled",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}, maintenance: {uploadpurging: {interval: 0s}}}\n",
            "storage.maintenance.uploadpurging.interval",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}, redirect: {disable: sometimes}}\n",
            "storage.redirect.disable",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}, maintenance: {gc: {enabled: true, interval: 0s}}}\n",
            "storage.maintenance.gc.interval",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}, maintenance: {gc: {graceperiod: soon}}}\n",
            "storage.maintenance.gc.graceperiod",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}, maintenance: {gc: {enabled: yes please}}}\n",
            "storage.maintenance.gc.enabled",
        ),
    ];
    for (text, key) in cases {
        let err = parse(text).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key: k, .. } if k == key),
            "{text}: {err}"
        );
    }
}

#[test]
fn refuses_what_it_must_not_ignore() {
    // An access controller berth does not have must not leave the registry open.
    let silly = "version: 0.1\nstorage: {inmemory: {}}\nauth: {silly: {realm: r, service: s}}\n";
    assert!(matches!(parse(silly), Err(ConfigError::Refused(m)) if m.contains("auth.silly")));
    let extra =
        "version: 0.1\nstorage: {inmemory: {}}\nauth: {htpasswd: {realm: r, path: /p, x: 1}}\n";
    assert!(matches!(parse(extra), Err(ConfigError::Refused(m)) if m.contains("auth.htpasswd.x")));
    let gcs = "version: 0.1\nstorage: {gcs: {bucket: x}}\n";
    assert!(matches!(parse(gcs), Err(ConfigError::Refused(m)) if m.contains("gcs")));
    let unix = "version: 0.1\nstorage: {inmemory: {}}\nhttp: {net: unix, addr: /run/r.sock}\n";
    assert!(matches!(parse(unix), Err(ConfigError::Refused(m)) if m.contains("http.net")));
}

#[test]
fn maxthreads_is_checked_and_still_warned_about() {
    let (_, w) = parse("version: 0.1\nstorage: {filesystem: {maxthreads: 100}}\n").unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("`storage.filesystem.maxthreads`") && w[0].contains("still checked"),
        "{w:?}"
    );
}

#[test]
fn defaults_fill_what_is_absent() {
    let (c, _) = parse("version: 0.1\nloglevel: debug\nstorage: {filesystem: }\n").unwrap();
    assert_eq!(
        c.storage.driver,
        Driver::Filesystem {
            root: PathBuf::from("/var/lib/registry"),
            fsync: true
        }
    );
    assert_eq!(c.http.addr, ":5000");
    assert_eq!(c.http.drain_timeout, Duration::from_secs(30));
    assert!(c.http.tls.is_none());
    assert!(c.log.access_log);
    assert_eq!(c.log.level.as_deref(), Some("debug"));
    assert_eq!(c.storage.upload_purging, UploadPurging::default());
    let (c, _) = parse(
        "version: 0.1\nstorage: {inmemory: }\nlog: {accesslog: {disabled: true}}\n\
         http: {draintimeout: 1500ms}\n",
    )
    .unwrap();
    assert_eq!(c.storage.driver, Driver::InMemory);
    assert!(!c.log.access_log);
    assert_eq!(c.http.drain_timeout, Duration::from_millis(1500));
}

#[test]
fn fsync_is_on_unless_turned_off() {
    let fsync_of = |yaml: &str, env: Vec<(String, String)>| match Config::from_yaml(yaml, env) {
        Ok((c, w)) => {
            assert!(w.is_empty(), "{w:?}");
            match c.storage.driver {
                Driver::Filesystem { fsync, .. } => Ok(fsync),
                other => panic!("not a filesystem driver: {other:?}"),
            }
        }
        Err(e) => Err(e.to_string()),
    };
    let base = "version: 0.1\nstorage: {filesystem: {rootdirectory: /a}}\n";
    assert_eq!(fsync_of(base, Vec::new()), Ok(true));
    let off = "version: 0.1\nstorage: {filesystem: {rootdirectory: /a, fsync: false}}\n";
    assert_eq!(fsync_of(off, Vec::new()), Ok(false));
    let env = vec![(
        "REGISTRY_STORAGE_FILESYSTEM_FSYNC".to_owned(),
        "false".to_owned(),
    )];
    assert_eq!(fsync_of(base, env), Ok(false));
    let bad = "version: 0.1\nstorage: {filesystem: {rootdirectory: /a, fsync: sometimes}}\n";
    let err = fsync_of(bad, Vec::new()).unwrap_err();
    assert!(err.contains("storage.filesystem.fsync"), "{err}");
    assert!(
        err.ends_with("expected true or false, found sometimes"),
        "{err}"
    );
}

#[test]
fn embedded_default_takes_overrides() {
    let (c, w) = Config::embedded(Vec::new()).unwrap();
    assert!(w.is_empty());
    assert_eq!(
        c.storage.driver,
        Driver::Filesystem {
            root: PathBuf::from("data"),
            fsync: true
        }
    );
    assert_eq!(c.http.addr, "127.0.0.1:5000");
    let (c, _) = Config::embedded(vec![(
        "REGISTRY_HTTP_ADDR".to_owned(),
        "127.0.0.1:0".to_owned(),
    )])
    .unwrap();
    assert_eq!(c.http.addr, "127.0.0.1:0");
}

#[test]
fn tls_keys_come_from_the_environment_too() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("acme.json").display().to_string();
    let vars = [
        ("REGISTRY_HTTP_TLS_LETSENCRYPT_CACHEFILE", cache.as_str()),
        ("REGISTRY_HTTP_TLS_LETSENCRYPT_EMAIL", "ops@example.com"),
        // One name without brackets is a list of one; a YAML list is read as one.
        (
            "REGISTRY_HTTP_TLS_LETSENCRYPT_HOSTS",
            "registry.example.com",
        ),
        ("REGISTRY_HTTP_TLS_MINIMUMTLS", "tls1.3"),
        (
            "REGISTRY_HTTP_TLS_CIPHERSUITES",
            "[TLS_AES_128_GCM_SHA256, TLS_RSA_WITH_RC4_128_SHA]",
        ),
        ("REGISTRY_HTTP_HTTP2_DISABLED", "true"),
    ];
    let (c, warnings) = Config::from_yaml(
        "version: 0.1\nstorage: {inmemory: }\n",
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap();
    assert!(!c.http.http2);
    let tls = c.http.tls.expect("TLS from the environment");
    match &tls.source {
        CertificateSource::Acme(le) => {
            assert_eq!(le.hosts, ["registry.example.com"]);
            assert_eq!(le.email.as_deref(), Some("ops@example.com"));
            assert_eq!(le.directory_url, tls::LETS_ENCRYPT_DIRECTORY);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(tls.minimum, MinimumTls::Tls13);
    assert_eq!(
        tls.cipher_suites,
        [rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256]
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("TLS_RSA_WITH_RC4_128_SHA")),
        "{warnings:?}"
    );
    let (c, _) = parse("version: 0.1\nstorage: {inmemory: }\n").unwrap();
    assert!(c.http.http2, "HTTP/2 is on by default");
}

#[test]
fn limits_have_defaults_and_read_overrides() {
    let base = "version: 0.1\nstorage: {inmemory: {}}\n";
    let (c, _) = parse(base).unwrap();
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.limits.header_read_timeout, Some(Duration::from_secs(10)));
    assert_eq!(c.limits.idle_timeout, Some(Duration::from_secs(60)));
    assert_eq!(c.limits.max_header_bytes, 1_048_576);
    assert_eq!(c.limits.max_upload_sessions, Some(10_000));
    assert_eq!(c.limits.rate_limit, berth_http::RateLimit::default());

    let text = format!(
        "{base}berth:\n  limits:\n    headerreadtimeout: 2s\n    idletimeout: 0s\n    \
         maxheaderbytes: 4096\n    maxuploadsessions: 0\n    ratelimit:\n      \
         perclient: {{rate: 2.5}}\n      peruser: {{rate: 10, burst: 40}}\n"
    );
    let (c, w) = parse(&text).unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.limits.header_read_timeout, Some(Duration::from_secs(2)));
    assert_eq!(c.limits.idle_timeout, None, "0s turns it off");
    assert_eq!(c.limits.max_header_bytes, 4096);
    assert_eq!(c.limits.max_upload_sessions, None, "0 is unbounded");
    let rl = c.limits.rate_limit;
    let client = rl.per_client.unwrap();
    assert_eq!(
        (client.rate, client.burst),
        (2.5, 3),
        "burst: a second's worth"
    );
    let user = rl.per_user.unwrap();
    assert_eq!((user.rate, user.burst), (10.0, 40));

    let env = vec![(
        "REGISTRY_BERTH_LIMITS_MAXUPLOADSESSIONS".to_owned(),
        "7".to_owned(),
    )];
    let (c, _) = Config::from_yaml(base, env).unwrap();
    assert_eq!(c.limits.max_upload_sessions, Some(7));
}

#[test]
fn bad_limits_name_their_key() {
    let base = "version: 0.1\nstorage: {inmemory: {}}\nberth:\n  limits:\n";
    for (body, key) in [
        (
            "    headerreadtimeout: soon\n",
            "berth.limits.headerreadtimeout",
        ),
        ("    idletimeout: -1\n", "berth.limits.idletimeout"),
        ("    maxheaderbytes: 10\n", "berth.limits.maxheaderbytes"),
        (
            "    maxheaderbytes: 2000000\n",
            "berth.limits.maxheaderbytes",
        ),
        ("    maxheaderbytes: lots\n", "berth.limits.maxheaderbytes"),
        (
            "    maxuploadsessions: -3\n",
            "berth.limits.maxuploadsessions",
        ),
        (
            "    ratelimit: {perclient: {burst: 3}}\n",
            "berth.limits.ratelimit.perclient.rate",
        ),
        (
            "    ratelimit: {perclient: {rate: 0}}\n",
            "berth.limits.ratelimit.perclient.rate",
        ),
        (
            "    ratelimit: {peruser: {rate: fast}}\n",
            "berth.limits.ratelimit.peruser.rate",
        ),
        (
            "    ratelimit: {peruser: {rate: 1, burst: 0}}\n",
            "berth.limits.ratelimit.peruser.burst",
        ),
    ] {
        let err = parse(&format!("{base}{body}")).unwrap_err().to_string();
        assert!(err.contains(key), "{body}: {err}");
    }
}

#[test]
fn debug_server_and_health_checks() {
    let (c, w) = parse(
        "version: 0.1\nstorage: {inmemory: }\nhttp:\n  debug:\n    addr: 127.0.0.1:5001\n    \
         prometheus: {enabled: true}\nhealth:\n  file: [{file: /tmp/down}]\n  \
         http: [{uri: \"http://127.0.0.1:9/ping\", statuscode: 204, headers: {X-A: [b]}, timeout: 2s}]\n  \
         tcp: [{addr: \"127.0.0.1:9\", interval: 1s, threshold: 2}]\n",
    )
    .unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.http.debug_addr.as_deref(), Some("127.0.0.1:5001"));
    assert_eq!(c.http.metrics_path.as_deref(), Some("/metrics"));
    let names: Vec<&str> = c.health.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(
        names,
        ["/tmp/down", "http://127.0.0.1:9/ping", "127.0.0.1:9"]
    );
    assert_eq!(
        c.health[1].probe,
        Probe::Http {
            uri: "http://127.0.0.1:9/ping".into(),
            headers: vec![(
                http::HeaderName::from_static("x-a"),
                http::HeaderValue::from_static("b")
            )],
            status: 204,
            timeout: Duration::from_secs(2),
        }
    );
    assert_eq!(
        (c.health[2].interval, c.health[2].threshold),
        (Duration::from_secs(1), 2)
    );
    // The tcp timeout defaults to the interval.
    assert_eq!(
        c.health[2].probe,
        Probe::Tcp {
            addr: "127.0.0.1:9".into(),
            timeout: Duration::from_secs(1)
        }
    );
    // Off unless enabled; the path is only read when on.
    let (c, _) =
        parse("version: 0.1\nstorage: {inmemory: }\nhttp: {debug: {addr: \":5001\"}}\n").unwrap();
    assert_eq!(c.http.metrics_path, None);
    assert!(c.health.is_empty());
}

#[test]
fn notifications_as_distribution_writes_them() {
    let text = r#"
version: 0.1
storage: {filesystem: {rootdirectory: /srv/registry}}
notifications:
  events:
    includereferences: true
  endpoints:
    - name: alistener
      disabled: false
      url: https://my.listener.com/event
      headers: {Authorization: [Bearer x]}
    - name: other
      url: http://hooks.example.com:8080/registry
      headers:
        Authorization: [Bearer token]
      timeout: 500ms
      threshold: 5
      backoff: 2s
      ignoredmediatypes: [application/octet-stream]
      ignore:
        mediatypes: [application/vnd.oci.image.manifest.v1+json]
        actions: [pull]
    - name: off
      disabled: true
      url: http://off.example.com/
"#;
    let (config, warnings) = parse(text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let n = config.notifications.expect("notifications");
    assert!(n.include_references);
    assert_eq!(
        n.endpoints
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>(),
        ["alistener", "other"]
    );
    let (a, b) = (&n.endpoints[0], &n.endpoints[1]);
    assert_eq!(
        (a.timeout, a.threshold, a.backoff),
        (Duration::from_secs(1), 10, Duration::from_secs(1))
    );
    assert_eq!(
        (b.timeout, b.threshold, b.backoff),
        (Duration::from_millis(500), 5, Duration::from_secs(2))
    );
    assert_eq!(b.ignored_media_types.len(), 2);
    assert!(!b.accepts(berth_notify::Action::Pull, "x"));
    assert!(!b.accepts(berth_notify::Action::Push, "application/octet-stream"));
    assert!(b.accepts(
        berth_notify::Action::Push,
        "application/vnd.oci.image.index.v1+json"
    ));
    assert_eq!(b.headers.len(), 1);
    assert_eq!(
        n.queue.directory.as_deref(),
        Some(std::path::Path::new(DEFAULT_QUEUE_DIR))
    );
    assert_eq!(n.queue.max_events, DEFAULT_MAX_EVENTS);
    assert_eq!(n.queue.flush_interval, DEFAULT_FLUSH_INTERVAL);

    // In memory storage, an in-memory queue unless a directory is named.
    let mem = "version: 0.1\nstorage: {inmemory: {}}\nnotifications: {endpoints: [{name: a, url: 'http://h/'}]}\n";
    let (config, _) = parse(mem).unwrap();
    assert_eq!(config.notifications.unwrap().queue.directory, None);
    let (config, _) = Config::from_yaml(
        mem,
        vec![
            (
                "REGISTRY_BERTH_NOTIFICATIONS_QUEUE_DIRECTORY".to_owned(),
                "/q".to_owned(),
            ),
            (
                "REGISTRY_NOTIFICATIONS_EVENTS_INCLUDEREFERENCES".to_owned(),
                "true".to_owned(),
            ),
        ],
    )
    .unwrap();
    let n = config.notifications.unwrap();
    assert_eq!(n.queue.directory, Some(PathBuf::from("/q")));
    assert!(n.include_references);
    // Only disabled endpoints: nothing to start.
    let off = "version: 0.1\nstorage: {inmemory: {}}\nnotifications: {endpoints: [{name: a, url: 'http://h/', disabled: true}]}\n";
    assert!(parse(off).unwrap().0.notifications.is_none());
}

#[test]
fn bad_notifications_name_their_key() {
    let base = "version: 0.1\nstorage: {inmemory: {}}\n";
    let ep = |rest: &str| {
        format!("{base}notifications:\n  endpoints:\n    - {{name: a, url: 'http://h/', {rest}}}\n")
    };
    for (text, key) in [
        (ep("timeout: 0s"), "notifications.endpoints[0].timeout"),
        (ep("backoff: 0s"), "notifications.endpoints[0].backoff"),
        (ep("timeout: soon"), "notifications.endpoints[0].timeout"),
        (ep("threshold: -1"), "notifications.endpoints[0].threshold"),
        (
            ep("ignore: {actions: [pul]}"),
            "notifications.endpoints[0].ignore.actions",
        ),
        (
            ep("headers: {'bad header': [x]}"),
            "notifications.endpoints[0].headers",
        ),
        (
            format!("{base}notifications: {{endpoints: [{{name: a}}]}}\n"),
            "notifications.endpoints[0].url",
        ),
        (
            format!("{base}notifications: {{endpoints: [{{url: 'http://h/'}}]}}\n"),
            "notifications.endpoints[0].name",
        ),
        (
            format!("{base}notifications: {{endpoints: [{{name: a, url: 'not a url'}}]}}\n"),
            "notifications.endpoints[0].url",
        ),
        (
            format!("{base}notifications: {{endpoints: [{{name: a, url: 'ftp://h/'}}]}}\n"),
            "notifications.endpoints[0].url",
        ),
        (
            format!(
                "{base}notifications: {{endpoints: [{{name: a, url: 'http://h/'}}, {{name: a, url: 'http://i/'}}]}}\n"
            ),
            "notifications.endpoints[1].name",
        ),
        (
            format!("{base}berth: {{notifications: {{queue: {{maxevents: 0}}}}}}\n"),
            "berth.notifications.queue.maxevents",
        ),
        (
            format!("{base}berth: {{notifications: {{queue: {{flushinterval: 0s}}}}}}\n"),
            "berth.notifications.queue.flushinterval",
        ),
    ] {
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains(key), "{text}: {err}");
    }
}

#[test]
fn proxy_upstreams_by_prefix_with_distributions_proxy_last() {
    let (c, warnings) = parse(
        "version: 0.1\nstorage: {inmemory: {}}\n\
         proxy: {remoteurl: 'https://registry-1.docker.io', username: u, password: p}\n\
         berth:\n  proxy:\n    upstreams:\n\
         \x20     - {prefix: ghcr/, remoteurl: 'https://ghcr.io', ttl: 5m}\n\
         \x20     - {prefix: quay/io/, remoteurl: 'https://quay.io/'}\n",
    )
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let p: Vec<(&str, &str, Duration)> = c
        .proxy
        .iter()
        .map(|u| (u.prefix.as_str(), u.remote.as_str(), u.ttl))
        .collect();
    assert_eq!(
        p,
        [
            ("ghcr/", "https://ghcr.io/", Duration::from_secs(300)),
            ("quay/io/", "https://quay.io/", berth_proxy::DEFAULT_TTL),
            (
                "",
                "https://registry-1.docker.io/",
                berth_proxy::DEFAULT_TTL
            ),
        ]
    );
    assert_eq!(c.proxy[2].username.as_deref(), Some("u"));
    let (c, _) = Config::from_yaml(
        "version: 0.1\nstorage: {inmemory: {}}\n",
        vec![
            (
                "REGISTRY_PROXY_REMOTEURL".into(),
                "http://127.0.0.1:5000".into(),
            ),
            ("REGISTRY_PROXY_TTL".into(), "0s".into()),
        ],
    )
    .unwrap();
    assert_eq!(c.proxy.len(), 1);
    assert_eq!(c.proxy[0].ttl, Duration::ZERO);
    assert!(parse(DEBIAN).unwrap().0.proxy.is_empty());
    assert_eq!(parse(DEBIAN).unwrap().0.proxy_max_size, None);
}

#[test]
fn proxy_cache_size_limit() {
    let text = |size: &str| {
        format!(
            "version: 0.1\nstorage: {{inmemory: {{}}}}\nproxy: {{remoteurl: 'http://x'}}\n\
             berth: {{proxy: {{cache: {{maxsize: {size}}}}}}}\n"
        )
    };
    let max = |size: &str| parse(&text(size)).unwrap().0.proxy_max_size;
    assert_eq!(max("50GiB"), Some(50 << 30));
    assert_eq!(max("'1.5 MB'"), Some(1_500_000));
    assert_eq!(max("4096"), Some(4096));
    assert_eq!(max("0"), None, "0 is no limit");
}

#[test]
fn proxy_errors_name_the_key() {
    let base = "version: 0.1\nstorage: {inmemory: {}}\n";
    let ups = |list: &str| format!("{base}berth: {{proxy: {{upstreams: [{list}]}}}}\n");
    let cases = [
        (
            format!("{base}proxy: {{remoteurl: 'ftp://x'}}\n"),
            "proxy.remoteurl",
        ),
        (
            format!("{base}proxy: {{remoteurl: 'not a url'}}\n"),
            "proxy.remoteurl",
        ),
        (format!("{base}proxy: {{username: u}}\n"), "proxy.remoteurl"),
        (
            format!("{base}proxy: {{remoteurl: 'http://x', ttl: soon}}\n"),
            "proxy.ttl",
        ),
        (
            ups(
                "{prefix: hub/, remoteurl: 'http://a'}, {prefix: hub/library/, remoteurl: 'http://b'}",
            ),
            "berth.proxy.upstreams[1].prefix",
        ),
        (
            ups("{remoteurl: 'http://a'}"),
            "berth.proxy.upstreams[0].prefix",
        ),
        (
            ups("{prefix: hub, remoteurl: 'http://a'}"),
            "berth.proxy.upstreams[0].prefix",
        ),
        (
            ups("{prefix: Hub/, remoteurl: 'http://a'}"),
            "berth.proxy.upstreams[0].prefix",
        ),
        (ups("{prefix: hub/}"), "berth.proxy.upstreams[0].remoteurl"),
        (
            ups("{prefix: hub/, remoteurl: 'http://a', password: p}"),
            "berth.proxy.upstreams[0].username",
        ),
        (
            format!("{base}berth: {{proxy: {{cache: {{maxsize: 1GiB}}}}}}\n"),
            "berth.proxy.cache.maxsize",
        ),
        (
            format!(
                "{base}proxy: {{remoteurl: 'http://x'}}\nberth: {{proxy: {{cache: {{maxsize: lots}}}}}}\n"
            ),
            "berth.proxy.cache.maxsize",
        ),
    ];
    for (text, key) in cases {
        match parse(&text) {
            Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
            other => panic!("{text}: {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn redis_section() {
    let (c, warnings) = Config::from_yaml(
        "version: 0.1\nstorage:\n  inmemory:\n  cache: {blobdescriptor: redis}\n\
         redis:\n  addr: redis.example:6380\n  username: registry\n  password: pw\n  db: 2\n  readtimeout: 50ms\n\
         \x20 writetimeout: 0s\n  pool: {maxidle: 16, maxactive: 64, idletimeout: 300s}\n",
        Vec::<(String, String)>::new(),
    )
    .unwrap();
    assert!(c.storage.redis_descriptors);
    let r = c.redis.unwrap();
    assert_eq!(r.addr, "redis.example:6380");
    assert_eq!(r.username.as_deref(), Some("registry"));
    assert_eq!(r.password.as_deref(), Some("pw"));
    assert_eq!(r.db, 2);
    assert_eq!(r.read_timeout, Duration::from_millis(50));
    // Zero is unbounded in distribution: berth's default bounds it.
    assert_eq!(
        r.write_timeout,
        berth_redis::RedisConfig::DEFAULT_WRITE_TIMEOUT
    );
    assert_eq!(
        r.dial_timeout,
        berth_redis::RedisConfig::DEFAULT_DIAL_TIMEOUT
    );
    assert!(r.tls.is_none());
    assert_eq!(r.lock_lease, berth_redis::RedisConfig::DEFAULT_LOCK_LEASE);
    // The pool is checked, not acted on: its keys are named in a warning.
    assert!(warnings.iter().any(|w| w.contains("redis.pool.maxactive")));
    assert!(!warnings.iter().any(|w| w.contains("redis.addr")));

    // From the environment alone, as distribution reads it.
    let vars = [
        ("REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR", "redis"),
        ("REGISTRY_REDIS_ADDR", "127.0.0.1:6379"),
        ("REGISTRY_REDIS_DB", "3"),
        ("REGISTRY_REDIS_TLS_ENABLED", "true"),
        ("REGISTRY_REDIS_USERNAME", "env-user"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let (c, _) = Config::from_yaml("version: 0.1\nstorage: {inmemory: {}}\n", vars).unwrap();
    assert!(c.storage.redis_descriptors);
    let r = c.redis.unwrap();
    assert_eq!((r.addr.as_str(), r.db), ("127.0.0.1:6379", 3));
    assert_eq!(r.tls, Some(berth_redis::RedisTls::default()));
    assert_eq!(r.username.as_deref(), Some("env-user"));

    // berth's own lease, in range only.
    let lease = |v: &str| {
        Config::from_yaml(
            &format!(
                "version: 0.1\nstorage: {{inmemory: {{}}}}\nredis: {{addr: \"r:1\"}}\n\
                 berth: {{redis: {{locklease: {v}}}}}\n"
            ),
            Vec::<(String, String)>::new(),
        )
        .map(|(c, w)| (c.redis.unwrap().lock_lease, w))
    };
    let (two, warnings) = lease("2s").unwrap();
    assert_eq!(two, Duration::from_secs(2));
    assert!(!warnings.iter().any(|w| w.contains("locklease")));
    for bad in ["999ms", "11m", "soon"] {
        match lease(bad) {
            Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "berth.redis.locklease"),
            other => panic!("{bad}: {:?}", other.map(|_| ())),
        }
    }

    // Without the cache set to redis, the section is read but not used.
    let (c, _) = Config::from_yaml(
        "version: 0.1\nstorage: {inmemory: {}}\nredis: {addr: \"r:1\"}\n",
        Vec::<(String, String)>::new(),
    )
    .unwrap();
    assert!(!c.storage.redis_descriptors && c.redis.is_some());
}

#[test]
fn s3_reads_distributions_keys_with_its_defaults() {
    let (c, w) = parse("version: 0.1\nstorage: {s3: {region: us-east-1, bucket: b}}\n").unwrap();
    assert!(w.is_empty(), "{w:?}");
    let Driver::S3(o) = &c.storage.driver else {
        panic!("not s3: {:?}", c.storage.driver)
    };
    let mut want = berth_driver::S3Options::new("b", "us-east-1");
    want.chunk_size = 10 << 20;
    assert_eq!(**o, want);
    assert!(want.secure && !want.force_path_style && !want.skip_verify);

    let full = "version: 0.1\nstorage:\n  s3:\n    region: eu-west-1\n    bucket: reg\n    \
                accesskey: AK\n    secretkey: SK\n    regionendpoint: minio:9000\n    \
                forcepathstyle: true\n    secure: false\n    skipverify: true\n    \
                v4auth: true\n    chunksize: 6291456\n    rootdirectory: /a/b\n    \
                storageclass: REDUCED_REDUNDANCY\n    encrypt: true\n    keyid: k1\n    \
                objectacl: private\n    multipartcopychunksize: 33554432\n";
    let (c, w) = parse(full).unwrap();
    assert!(w.is_empty(), "{w:?}");
    let Driver::S3(o) = &c.storage.driver else {
        panic!("not s3")
    };
    assert_eq!(o.access_key.as_deref(), Some("AK"));
    assert_eq!(o.secret_key.as_deref(), Some("SK"));
    assert_eq!(o.endpoint.as_deref(), Some("minio:9000"));
    assert!(o.force_path_style && !o.secure && o.skip_verify && o.encrypt);
    assert_eq!(o.chunk_size, 6 << 20);
    assert_eq!(o.root_directory, "/a/b");
    assert_eq!(o.storage_class.as_deref(), Some("REDUCED_REDUNDANCY"));
    assert_eq!(o.key_id.as_deref(), Some("k1"));
    assert_eq!(o.copy_part, 32 << 20);
    assert_eq!((o.copy_threshold, o.copy_concurrency), (32 << 20, 100));
}

/// distribution 2.8.2 addresses a `regionendpoint` path-style (it has no
/// `forcepathstyle`); `forcepathstyle: false` still asks for virtual-hosted requests.
#[test]
fn s3_path_style_follows_the_region_endpoint_as_in_2_8_2() {
    let style = |extra: &str| {
        let yaml = format!("version: 0.1\nstorage: {{s3: {{region: r, bucket: b{extra}}}}}\n");
        let (c, _) = parse(&yaml).unwrap();
        let Driver::S3(o) = &c.storage.driver else {
            panic!("not s3")
        };
        o.force_path_style
    };
    assert!(!style(""), "AWS itself: virtual-hosted");
    assert!(style(", regionendpoint: \"http://rgw:7480\""));
    assert!(!style(
        ", regionendpoint: \"http://rgw:7480\", forcepathstyle: false"
    ));
    assert!(style(", forcepathstyle: true"));
}

#[test]
fn s3_mistakes_are_named() {
    let cases = [
        ("{region: r}", "storage.s3.bucket"),
        ("{bucket: b}", "storage.s3.region"),
        (
            "{region: r, bucket: b, accesskey: a}",
            "storage.s3.secretkey",
        ),
        (
            "{region: r, bucket: b, secretkey: s}",
            "storage.s3.accesskey",
        ),
        (
            "{region: r, bucket: b, chunksize: 1024}",
            "storage.s3.chunksize",
        ),
        ("{region: r, bucket: b, chunksize: big}", "chunksize"),
        (
            "{region: r, bucket: b, multipartcopythresholdsize: 1}",
            "multipartcopythresholdsize",
        ),
        (
            "{region: r, bucket: b, multipartcopymaxconcurrency: 0}",
            "multipartcopymaxconcurrency",
        ),
        ("{region: r, bucket: b, v4auth: false}", "v4auth"),
        (
            "{region: r, bucket: b, objectacl: public-read}",
            "objectacl",
        ),
        ("{region: r, bucket: b, secure: maybe}", "secure"),
    ];
    for (section, key) in cases {
        let text = format!("version: 0.1\nstorage: {{s3: {section}}}\n");
        let err = parse(&text).expect_err(section).to_string();
        assert!(err.contains(key), "{section}: {err}");
    }
}

#[test]
fn s3_from_the_environment_replaces_the_files_driver() {
    let vars = [
        ("REGISTRY_STORAGE", "s3"),
        ("REGISTRY_STORAGE_S3_REGION", "eu-central-1"),
        ("REGISTRY_STORAGE_S3_BUCKET", "from-env"),
        ("REGISTRY_STORAGE_S3_CHUNKSIZE", "20971520"),
        ("REGISTRY_STORAGE_S3_FORCEPATHSTYLE", "true"),
        ("REGISTRY_STORAGE_REDIRECT_DISABLE", "true"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let yaml = "version: 0.1\nstorage: {filesystem: {rootdirectory: /r}}\n";
    let (c, w) = Config::from_yaml(yaml, vars).unwrap();
    assert!(w.is_empty(), "{w:?}");
    let Driver::S3(o) = &c.storage.driver else {
        panic!("not s3: {:?}", c.storage.driver)
    };
    assert_eq!(
        (o.region.as_str(), o.bucket.as_str()),
        ("eu-central-1", "from-env")
    );
    assert_eq!(o.chunk_size, 20 << 20);
    assert!(o.force_path_style);
    assert!(!c.storage.redirect);
    let (c, _) = parse("version: 0.1\nstorage: {s3: {region: r, bucket: b}}\n").unwrap();
    assert!(c.storage.redirect, "redirects are on unless disabled");
}
