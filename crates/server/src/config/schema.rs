//! The typed configuration document: one serde struct per section of distribution's
//! `config.yml` that berth reads, with every key berth reads and nothing else. Typing
//! checks the shape and the types of values (a type error names its key); the checks that
//! need more than one key, or the file system, are in `validate`. Keys not typed here are
//! ignored by serde and reported by `support` as warnings.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use super::size::ByteSize;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use yaml_serde::Value;

use super::duration::GoDuration;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Document {
    /// Configuration format version (`0.1`); required.
    pub version: Option<Value>,
    /// Deprecated top-level log level.
    pub loglevel: Option<String>,
    /// `log`.
    pub log: LogSection,
    /// `http`.
    pub http: HttpSection,
    /// `storage`; required.
    pub storage: Option<StorageSection>,
    /// `auth`.
    pub auth: AuthSection,
    /// `health`.
    pub health: HealthSection,
    /// `notifications`.
    pub notifications: NotificationsSection,
    /// `proxy`: distribution's pull-through cache of one upstream.
    pub proxy: ProxySection,
    /// `redis`: the server of the shared descriptor cache.
    pub redis: RedisSection,
    /// `berth`: berth's own options (distribution ignores a top-level key it does not know).
    pub berth: BerthSection,
}

/// `redis`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RedisSection {
    /// `host:port`.
    pub addr: Option<String>,
    /// An ACL user, sent with `AUTH` (distribution 3's key).
    pub username: Option<String>,
    /// Sent with `AUTH`.
    pub password: Option<String>,
    /// The database selected.
    pub db: Option<i64>,
    /// How long opening a connection may take.
    pub dialtimeout: Option<GoDuration>,
    /// How long a lookup may take.
    pub readtimeout: Option<GoDuration>,
    /// How long an update may take.
    pub writetimeout: Option<GoDuration>,
    /// `redis.pool`.
    pub pool: RedisPoolSection,
    /// `redis.tls`.
    pub tls: RedisTlsSection,
}

/// `redis.pool`: typed and checked; berth keeps one multiplexed connection per node.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RedisPoolSection {
    /// Idle connections kept.
    pub maxidle: Option<i64>,
    /// Connections opened at most.
    pub maxactive: Option<i64>,
    /// How long an idle connection is kept.
    pub idletimeout: Option<GoDuration>,
}

/// `redis.tls`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RedisTlsSection {
    /// Connect with TLS.
    pub enabled: Option<Flag>,
    /// A client certificate (PEM).
    pub certificate: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
    /// CA certificates (PEM) the server must chain to.
    pub rootcas: Option<Vec<PathBuf>>,
}

/// `berth`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BerthSection {
    /// `berth.referrers`.
    pub referrers: BerthReferrersSection,
    /// `berth.limits`.
    pub limits: BerthLimitsSection,
    /// `berth.auth`.
    pub auth: BerthAuthSection,
    /// `berth.notifications`.
    pub notifications: BerthNotificationsSection,
    /// `berth.proxy`.
    pub proxy: BerthProxySection,
    /// `berth.redis`.
    pub redis: BerthRedisSection,
}

/// `berth.redis`: berth's own settings of what the fleet keeps in Redis.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BerthRedisSection {
    /// How long a lock's lease lasts unless its holder renews it.
    pub locklease: Option<GoDuration>,
}

/// `berth.notifications`: berth's own settings of the durable event queue.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BerthNotificationsSection {
    /// `berth.notifications.queue`.
    pub queue: QueueSection,
}

/// `berth.notifications.queue`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct QueueSection {
    /// The node-local directory the queue is kept in.
    pub directory: Option<PathBuf>,
    /// Undelivered events kept per endpoint before the oldest are dropped.
    pub maxevents: Option<u64>,
    /// How often queued events are flushed to the disk.
    pub flushinterval: Option<GoDuration>,
}

/// `notifications`: webhook endpoints events are posted to.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NotificationsSection {
    /// `notifications.events`.
    pub events: EventsSection,
    /// `notifications.endpoints`.
    pub endpoints: Vec<EndpointSection>,
}

/// `notifications.events`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EventsSection {
    /// List a manifest's references in its events.
    pub includereferences: Option<Flag>,
}

/// One `notifications.endpoints` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EndpointSection {
    /// Its name (unique).
    pub name: Option<String>,
    /// Skip it.
    pub disabled: Option<Flag>,
    /// Where events are posted.
    pub url: Option<String>,
    /// Headers added to every post.
    pub headers: BTreeMap<String, Vec<String>>,
    /// How long one post may take.
    pub timeout: Option<GoDuration>,
    /// Failed posts in a row before retries are spaced by `backoff`.
    pub threshold: Option<i64>,
    /// The pause between retries past `threshold`.
    pub backoff: Option<GoDuration>,
    /// Target media types not sent (older spelling of `ignore.mediatypes`).
    pub ignoredmediatypes: StringList,
    /// `ignore`.
    pub ignore: IgnoreSection,
}

/// An endpoint's `ignore`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IgnoreSection {
    /// Target media types not sent.
    pub mediatypes: StringList,
    /// Actions not sent (pull, push, mount, delete).
    pub actions: StringList,
}

/// `proxy`: distribution's pull-through cache; every repository is a copy of the
/// upstream's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ProxySection {
    /// The upstream's base URL.
    pub remoteurl: Option<String>,
    /// User name for the upstream.
    pub username: Option<String>,
    /// Password for the upstream.
    pub password: Option<String>,
    /// How long a cached tag is served before the upstream is asked again.
    pub ttl: Option<GoDuration>,
}

/// `berth.proxy`: pull-through caches of several upstreams, by repository prefix.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BerthProxySection {
    /// The upstreams.
    pub upstreams: Option<Vec<UpstreamSection>>,
    /// `berth.proxy.cache`.
    pub cache: ProxyCacheSection,
}

/// `berth.proxy.cache`: what the cache keeps.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ProxyCacheSection {
    /// Bytes of cached blobs kept at most (least recently used evicted first); absent or
    /// 0 for no limit.
    pub maxsize: Option<ByteSize>,
}

/// One entry of `berth.proxy.upstreams`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct UpstreamSection {
    /// Repositories under this prefix (`hub/`) are copies of the upstream's, named
    /// without it.
    pub prefix: Option<String>,
    /// The upstream's base URL.
    pub remoteurl: Option<String>,
    /// User name for the upstream.
    pub username: Option<String>,
    /// Password for the upstream.
    pub password: Option<String>,
    /// How long a cached tag is served before the upstream is asked again.
    pub ttl: Option<GoDuration>,
}

/// `berth.auth`: berth's policy and token issuer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BerthAuthSection {
    /// htpasswd file of the users the issuer authenticates.
    pub users: Option<PathBuf>,
    /// Group name to member user names.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Rules: who may do what to which repositories.
    pub policy: Option<Vec<berth_auth::policy::RuleSpec>>,
    /// `berth.auth.issuer`.
    pub issuer: BerthIssuerSection,
}

/// `berth.auth.issuer`: serve a token endpoint at `auth.token.realm`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BerthIssuerSection {
    /// PEM private key tokens are signed with.
    pub key: Option<PathBuf>,
    /// PEM certificate of that key (default: `auth.token.rootcertbundle`).
    pub certificate: Option<PathBuf>,
    /// Access-token lifetime.
    pub expiration: Option<GoDuration>,
    /// Refresh-token lifetime.
    pub refreshexpiration: Option<GoDuration>,
}

/// `auth`: one access controller.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AuthSection {
    /// `auth.htpasswd`.
    pub htpasswd: Option<HtpasswdSection>,
    /// `auth.token`.
    pub token: Option<TokenSection>,
}

/// `auth.htpasswd`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HtpasswdSection {
    /// Realm of the Basic challenge.
    pub realm: Option<String>,
    /// The users file.
    pub path: Option<PathBuf>,
}

/// `auth.token`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TokenSection {
    /// Where clients get tokens.
    pub realm: Option<String>,
    /// The audience tokens must name.
    pub service: Option<String>,
    /// The issuer tokens must name.
    pub issuer: Option<String>,
    /// PEM bundle of the certificates whose keys sign tokens.
    pub rootcertbundle: Option<PathBuf>,
    /// A JWK Set file of signing keys.
    pub jwks: Option<PathBuf>,
    /// Accepted signature algorithms.
    pub signingalgorithms: Option<Vec<String>>,
    /// Challenge with a realm on the request's own host.
    pub autoredirect: Option<Flag>,
    /// The path of that realm.
    pub autoredirectpath: Option<String>,
}

/// `berth.limits`: what one connection, client or user may hold or ask of a node.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BerthLimitsSection {
    /// Time a request head may take from its first byte to its last.
    pub headerreadtimeout: Option<GoDuration>,
    /// Time a connection may sit with no request and no traffic.
    pub idletimeout: Option<GoDuration>,
    /// Largest request head (request line and headers), in bytes.
    pub maxheaderbytes: Option<u64>,
    /// Upload sessions this node keeps open at once.
    pub maxuploadsessions: Option<u64>,
    /// `berth.limits.ratelimit`.
    pub ratelimit: RateLimitSection,
}

/// `berth.limits.ratelimit`: token buckets, each off unless written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RateLimitSection {
    /// A bucket per client address.
    pub perclient: Option<BucketSection>,
    /// A bucket per authenticated user.
    pub peruser: Option<BucketSection>,
}

/// One token bucket.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BucketSection {
    /// Requests per second, sustained.
    pub rate: Option<f64>,
    /// Requests admitted at once.
    pub burst: Option<u64>,
}

/// `berth.referrers`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BerthReferrersSection {
    /// Keep the referrers tag schema's `<alg>-<hex>` indexes current.
    pub tagschema: Option<Flag>,
}

/// `log`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LogSection {
    /// error, warn, info, debug (trace too).
    pub level: Option<String>,
    /// text, json (logstash is written as json).
    pub formatter: Option<String>,
    /// Static fields added to every request's line.
    pub fields: BTreeMap<String, Value>,
    /// `log.accesslog`.
    pub accesslog: AccessLogSection,
}

/// `log.accesslog`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AccessLogSection {
    /// Turns off the per-request line.
    pub disabled: Option<Flag>,
}

/// `http`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HttpSection {
    /// Listen address (`:5000`, `127.0.0.1:5000`).
    pub addr: Option<String>,
    /// `tcp` (unix sockets are not supported yet).
    pub net: Option<String>,
    /// URL prefix.
    pub prefix: Option<String>,
    /// Externally visible base URL, for absolute `Location` headers.
    pub host: Option<String>,
    /// Key the `_state` token of upload URLs is signed with (shared by a fleet).
    pub secret: Option<String>,
    /// Relative `Location` URLs (berth's default; accepted).
    pub relativeurls: Option<Flag>,
    /// How long shutdown waits for in-flight requests.
    pub draintimeout: Option<GoDuration>,
    /// Headers added to every response.
    pub headers: BTreeMap<String, Vec<String>>,
    /// `http.tls`.
    pub tls: TlsSection,
    /// `http.http2`.
    pub http2: Http2Section,
    /// `http.debug`.
    pub debug: DebugSection,
}

/// `http.debug`: the second listener, for metrics and health.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DebugSection {
    /// Listen address of the debug server.
    pub addr: Option<String>,
    /// `http.debug.prometheus`.
    pub prometheus: PrometheusSection,
}

/// `http.debug.prometheus`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PrometheusSection {
    /// Record and serve metrics.
    pub enabled: Option<Flag>,
    /// Path of the exposition on the debug server (`/metrics`).
    pub path: Option<String>,
}

/// `health`: background checks that turn the API to 503 while one fails.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HealthSection {
    /// `health.storagedriver`.
    pub storagedriver: StorageDriverCheckSection,
    /// `health.file`: files whose presence marks the registry unhealthy.
    pub file: Vec<FileCheckSection>,
    /// `health.http`: URIs that must answer with a status.
    pub http: Vec<HttpCheckSection>,
    /// `health.tcp`: addresses that must accept a connection.
    pub tcp: Vec<TcpCheckSection>,
}

/// `health.storagedriver`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StorageDriverCheckSection {
    /// Run the check.
    pub enabled: Option<Flag>,
    /// Time between checks.
    pub interval: Option<GoDuration>,
    /// Failures in a row that make the check fail.
    pub threshold: Option<i64>,
}

/// One `health.file` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FileCheckSection {
    /// The file whose existence fails the check.
    pub file: Option<String>,
    /// Time between checks.
    pub interval: Option<GoDuration>,
    /// Failures in a row that make the check fail.
    pub threshold: Option<i64>,
}

/// One `health.http` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HttpCheckSection {
    /// The URI a `HEAD` request is sent to.
    pub uri: Option<String>,
    /// Headers sent with it.
    pub headers: BTreeMap<String, Vec<String>>,
    /// The status expected (200).
    pub statuscode: Option<i64>,
    /// How long the request may take.
    pub timeout: Option<GoDuration>,
    /// Time between checks.
    pub interval: Option<GoDuration>,
    /// Failures in a row that make the check fail.
    pub threshold: Option<i64>,
}

/// One `health.tcp` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TcpCheckSection {
    /// `host:port` to connect to.
    pub addr: Option<String>,
    /// How long the connection may take.
    pub timeout: Option<GoDuration>,
    /// Time between checks.
    pub interval: Option<GoDuration>,
    /// Failures in a row that make the check fail.
    pub threshold: Option<i64>,
}

/// `http.http2`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Http2Section {
    /// Serve HTTP/1.1 only (no `h2` in ALPN, no cleartext HTTP/2).
    pub disabled: Option<Flag>,
}

/// `http.tls`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TlsSection {
    /// PEM certificate chain.
    pub certificate: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// PEM CA files; when set, clients must present a certificate chaining to one.
    pub clientcas: StringList,
    /// Lowest TLS version: tls1.0, tls1.1, tls1.2 (default), tls1.3.
    pub minimumtls: Option<String>,
    /// Cipher suites by Go's names.
    pub ciphersuites: StringList,
    /// `http.tls.letsencrypt`.
    pub letsencrypt: LetsEncryptSection,
}

/// `http.tls.letsencrypt`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LetsEncryptSection {
    /// The file holding the ACME account and certificate.
    pub cachefile: Option<PathBuf>,
    /// Contact address for the ACME account.
    pub email: Option<String>,
    /// Names the certificate is for.
    pub hosts: StringList,
    /// The ACME directory URL (Let's Encrypt's by default).
    pub directoryurl: Option<String>,
}

/// A list of strings. A single string is read as a list of one, so a `REGISTRY_*`
/// variable can name one file without YAML brackets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StringList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StringListVisitor)
    }
}

struct StringListVisitor;

impl<'de> Visitor<'de> for StringListVisitor {
    type Value = StringList;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of strings")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<StringList, E> {
        Ok(StringList(vec![s.to_owned()]))
    }

    fn visit_unit<E: de::Error>(self) -> Result<StringList, E> {
        Ok(StringList::default())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<StringList, A::Error> {
        let mut out = Vec::new();
        while let Some(s) = seq.next_element::<String>()? {
            out.push(s);
        }
        Ok(StringList(out))
    }
}

/// `storage`: one driver section (named by its key) and the shared settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StorageSection {
    /// `storage.filesystem`.
    pub filesystem: Option<FilesystemSection>,
    /// `storage.inmemory`.
    pub inmemory: Option<InMemorySection>,
    /// `storage.s3`.
    pub s3: Option<S3Section>,
    /// `storage.delete`.
    pub delete: DeleteSection,
    /// `storage.cache`.
    pub cache: CacheSection,
    /// `storage.maintenance`.
    pub maintenance: MaintenanceSection,
    /// `storage.redirect`.
    pub redirect: RedirectSection,
    /// Every key of the section that is not a shared setting, i.e. the driver names
    /// written (`filesystem`, `s3`, ...). A driver is chosen by key name, and a `null`
    /// section (`inmemory:`) still names one, so these come from the YAML tree's keys.
    #[serde(skip)]
    pub drivers: Vec<String>,
}

/// `storage.filesystem`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FilesystemSection {
    /// Where the data lives.
    pub rootdirectory: Option<String>,
    /// distribution's limit on concurrent file operations (typed, not acted on yet).
    pub maxthreads: Option<u64>,
    /// berth's own: flush every write to the disk before acknowledging it.
    pub fsync: Option<Flag>,
}

/// `storage.s3`, with distribution's keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct S3Section {
    /// Access key (with `secretkey`; the AWS environment credentials otherwise).
    pub accesskey: Option<String>,
    /// Secret key.
    pub secretkey: Option<String>,
    /// The bucket's region.
    pub region: Option<String>,
    /// An S3-compatible endpoint (host, or URL with a scheme).
    pub regionendpoint: Option<String>,
    /// Path-style requests.
    pub forcepathstyle: Option<Flag>,
    /// The bucket.
    pub bucket: Option<String>,
    /// Server-side encryption.
    pub encrypt: Option<Flag>,
    /// KMS key for `encrypt`.
    pub keyid: Option<String>,
    /// HTTPS to a bare-host endpoint.
    pub secure: Option<Flag>,
    /// Accept any server certificate.
    pub skipverify: Option<Flag>,
    /// SigV4 signing (the only signing berth has).
    pub v4auth: Option<Flag>,
    /// Bytes per multipart part.
    pub chunksize: Option<u64>,
    /// Part size of a multipart (server-side) copy.
    pub multipartcopychunksize: Option<u64>,
    /// Parts of one multipart copy in flight at once.
    pub multipartcopymaxconcurrency: Option<u64>,
    /// Objects larger than this are moved by a multipart copy.
    pub multipartcopythresholdsize: Option<u64>,
    /// A prefix in the bucket.
    pub rootdirectory: Option<String>,
    /// Storage class of new objects (`NONE` sends none).
    pub storageclass: Option<String>,
    /// Canned ACL; only `private`, S3's default, is supported.
    pub objectacl: Option<String>,
}

/// `storage.inmemory` (no settings).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InMemorySection {}

/// `storage.delete`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DeleteSection {
    /// Allow deleting blobs and manifests.
    pub enabled: Option<Flag>,
}

/// `storage.cache`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CacheSection {
    /// `inmemory` or `redis`.
    pub blobdescriptor: Option<String>,
    /// Older name of `blobdescriptor`.
    pub layerinfo: Option<String>,
    /// Entries of the in-memory descriptor cache.
    pub blobdescriptorsize: Option<u64>,
}

/// `storage.maintenance`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MaintenanceSection {
    /// `storage.maintenance.uploadpurging`.
    pub uploadpurging: UploadPurgingSection,
    /// `storage.maintenance.readonly`.
    pub readonly: ReadOnlySection,
    /// `storage.maintenance.gc` (berth's own; distribution ignores it).
    pub gc: GcSection,
}

/// `storage.maintenance.uploadpurging`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct UploadPurgingSection {
    /// Run the purger.
    pub enabled: Option<Flag>,
    /// Remove sessions older than this.
    pub age: Option<GoDuration>,
    /// Time between passes.
    pub interval: Option<GoDuration>,
    /// Only report.
    pub dryrun: Option<Flag>,
}

/// `storage.maintenance.gc`: online garbage collection in the serving process.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct GcSection {
    /// Run collections.
    pub enabled: Option<Flag>,
    /// Time between the end of one collection and the start of the next.
    pub interval: Option<GoDuration>,
    /// Blobs whose data is younger than this are never removed.
    pub graceperiod: Option<GoDuration>,
    /// Also delete manifests no tag reaches (`garbage-collect -m`).
    pub deleteuntagged: Option<Flag>,
    /// Only report.
    pub dryrun: Option<Flag>,
}

/// `storage.maintenance.readonly`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ReadOnlySection {
    /// Refuse writes.
    pub enabled: Option<Flag>,
}

/// `storage.redirect`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RedirectSection {
    /// Serve blob GETs through berth even where the driver could redirect (S3).
    pub disable: Option<Flag>,
}

/// A boolean key. distribution's configs (and `REGISTRY_*` values) also write booleans
/// as strings, so `"true"`/`"false"` in any case are accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag(pub bool);

impl Flag {
    /// The value, or `default` when the key is absent.
    pub fn or(flag: Option<Flag>, default: bool) -> bool {
        flag.map_or(default, |Flag(b)| b)
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FlagVisitor)
    }
}

struct FlagVisitor;

impl FlagVisitor {
    fn found<E: de::Error>(found: impl fmt::Display) -> E {
        E::custom(format!("expected true or false, found {found}"))
    }
}

impl Visitor<'_> for FlagVisitor {
    type Value = Flag;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("true or false")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Flag, E> {
        Ok(Flag(b))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Flag, E> {
        if s.eq_ignore_ascii_case("true") {
            Ok(Flag(true))
        } else if s.eq_ignore_ascii_case("false") {
            Ok(Flag(false))
        } else {
            Err(Self::found(s))
        }
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Flag, E> {
        Err(Self::found(n))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Flag, E> {
        Err(Self::found(n))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Flag, E> {
        Err(Self::found(n))
    }
}
