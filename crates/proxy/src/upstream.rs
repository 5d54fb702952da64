//! One upstream registry: its configuration, and the few requests a cache sends it
//! (manifest HEAD and GET, blob HEAD and GET, tag listing), each with the credentials
//! `auth` provides and one retry after a 401 that taught a new challenge.

use std::time::Duration;

use berth_core::{Descriptor, Digest, Page, media};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use crate::auth::Authenticator;
use crate::counts::Counts;
use crate::error::UpstreamError;

/// Largest upstream tag list read.
const MAX_TAG_LIST_BYTES: usize = 32 * 1024 * 1024;

/// Every manifest type berth serves, as the `Accept` of manifest requests (an upstream
/// that is not told converts to schema 1, or picks one of a list's children).
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest taken from an upstream (distribution's limit on pushes, 4 MiB).
const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// How long connecting may take, and how long an answer may stall.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// One upstream as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    /// Repositories whose names start with this are copies of this upstream's, the
    /// prefix removed from the name sent upstream (`hub/`: `hub/library/alpine` is
    /// `library/alpine` upstream). Empty for distribution's `proxy`: every repository.
    pub prefix: String,
    /// The upstream's base URL (`https://registry-1.docker.io`).
    pub remote: Url,
    /// User name for the upstream (Basic, or for its token service).
    pub username: Option<String>,
    /// Password for the upstream.
    pub password: Option<String>,
    /// How long a tag fetched or confirmed upstream is served without asking again.
    pub ttl: Duration,
}

impl UpstreamConfig {
    /// The name sent upstream for a local repository name, when this upstream has it.
    pub fn remote_name<'a>(&self, local: &'a str) -> Option<&'a str> {
        local
            .strip_prefix(&self.prefix)
            .filter(|rest| !rest.is_empty())
    }

    /// The label naming this upstream in metrics and logs.
    pub fn label(&self) -> String {
        if self.prefix.is_empty() {
            self.remote.as_str().trim_end_matches('/').to_owned()
        } else {
            self.prefix.clone()
        }
    }
}

/// A client of one upstream.
pub(crate) struct Upstream {
    pub(crate) config: UpstreamConfig,
    base: Url,
    http: reqwest::Client,
    auth: Authenticator,
    pub(crate) counts: Counts,
}

impl Upstream {
    pub(crate) fn new(config: UpstreamConfig) -> Result<Self, UpstreamError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION"), " (proxy)"))
            .build()
            .map_err(UpstreamError::from)?;
        let mut base = config.remote.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let auth = Authenticator::new(
            &config.remote,
            config.username.as_deref(),
            config.password.as_deref(),
        );
        Ok(Upstream {
            base,
            http,
            auth,
            counts: Counts::default(),
            config,
        })
    }

    fn url(&self, path: &str) -> Result<Url, UpstreamError> {
        self.base
            .join(path)
            .map_err(|e| UpstreamError::Invalid(format!("URL for {path}: {e}")))
    }

    /// Sends a body-less request for repository `name`, authenticating as asked.
    async fn send(
        &self,
        method: Method,
        url: Url,
        name: &str,
        accept: Option<&str>,
    ) -> Result<Response, UpstreamError> {
        let scope = format!("repository:{name}:pull");
        let mut retried = false;
        loop {
            let mut req = self.http.request(method.clone(), url.clone());
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if let Some(h) = self.auth.header(&self.http, &scope).await? {
                req = req.header(AUTHORIZATION, h);
            }
            let resp = req.send().await?;
            if resp.status() == StatusCode::UNAUTHORIZED && !retried {
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok());
                if self.auth.refused(challenge, &scope) {
                    retried = true;
                    continue;
                }
            }
            return Ok(resp);
        }
    }

    /// `resp` when it is a success; the 404 or other status as an error.
    fn check(resp: Response, what: impl FnOnce() -> String) -> Result<Response, UpstreamError> {
        match resp.status() {
            s if s.is_success() => Ok(resp),
            StatusCode::NOT_FOUND => Err(UpstreamError::NotFound),
            s => Err(UpstreamError::Status {
                status: s.as_u16(),
                what: what(),
            }),
        }
    }

    /// The digest a tag points at upstream (`HEAD`); `None` when the upstream does
    /// not say (then a `GET` must tell).
    pub(crate) async fn head_manifest(
        &self,
        name: &str,
        tag: &str,
    ) -> Result<Option<Digest>, UpstreamError> {
        let url = self.url(&format!("v2/{name}/manifests/{tag}"))?;
        let resp = self
            .send(Method::HEAD, url, name, Some(ACCEPT_MANIFESTS))
            .await?;
        let resp = Self::check(resp, || format!("HEAD {name}:{tag}"))?;
        Ok(resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v).ok()))
    }

    /// A manifest's bytes and `Content-Type`, by tag or digest (unverified: the caller
    /// knows what digest to expect).
    pub(crate) async fn get_manifest(
        &self,
        name: &str,
        reference: &str,
    ) -> Result<(Option<String>, Bytes), UpstreamError> {
        let url = self.url(&format!("v2/{name}/manifests/{reference}"))?;
        let resp = self
            .send(Method::GET, url, name, Some(ACCEPT_MANIFESTS))
            .await?;
        let resp = Self::check(resp, || format!("GET {name}:{reference}"))?;
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| media::essence(v).to_owned());
        let body = read_bounded(resp, MAX_MANIFEST_BYTES, || {
            format!("manifest {name}:{reference}")
        })
        .await?;
        self.counts.bytes(body.len() as u64);
        Ok((content_type, body))
    }

    /// A blob's size (`HEAD`).
    pub(crate) async fn head_blob(
        &self,
        name: &str,
        digest: &Digest,
    ) -> Result<u64, UpstreamError> {
        let url = self.url(&format!("v2/{name}/blobs/{digest}"))?;
        let resp = self.send(Method::HEAD, url, name, None).await?;
        let resp = Self::check(resp, || format!("HEAD {name}@{digest}"))?;
        resp.headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| UpstreamError::Invalid(format!("no length for {name}@{digest}")))
    }

    /// A blob's bytes (`GET`), still streaming.
    pub(crate) async fn get_blob(
        &self,
        name: &str,
        digest: &Digest,
    ) -> Result<Response, UpstreamError> {
        let url = self.url(&format!("v2/{name}/blobs/{digest}"))?;
        let resp = self.send(Method::GET, url, name, None).await?;
        Self::check(resp, || format!("GET {name}@{digest}"))
    }

    /// The manifests whose subject is `subject` upstream (its referrers API), filtered by
    /// `artifact_type` here whether or not the upstream applied the filter. An upstream
    /// without the API answers 404, as for an unknown subject: `NotFound`.
    pub(crate) async fn referrers(
        &self,
        name: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, UpstreamError> {
        let mut url = self.url(&format!("v2/{name}/referrers/{subject}"))?;
        if let Some(t) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", t);
        }
        let resp = self
            .send(Method::GET, url, name, Some(media::OCI_INDEX))
            .await?;
        let resp = Self::check(resp, || format!("referrers of {name}@{subject}"))?;
        let what = || format!("referrers of {name}@{subject}");
        let body = read_bounded(resp, MAX_MANIFEST_BYTES, what).await?;
        self.counts.bytes(body.len() as u64);
        #[derive(serde::Deserialize)]
        struct Index {
            #[serde(default)]
            manifests: Vec<SentDescriptor>,
        }
        let index: Index = serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Invalid(format!("{}: {e}", what())))?;
        let mut out = Vec::with_capacity(index.manifests.len());
        for m in index.manifests {
            if artifact_type.is_some_and(|t| m.artifact_type.as_deref() != Some(t)) {
                continue;
            }
            let digest = Digest::parse(&m.digest)
                .map_err(|e| UpstreamError::Invalid(format!("{}: {e}", what())))?;
            out.push(Descriptor {
                media_type: m.media_type,
                digest,
                size: m.size,
                artifact_type: m.artifact_type,
                annotations: m.annotations,
                urls: Vec::new(),
                platform: None,
            });
        }
        Ok(out)
    }

    /// One page of the upstream's tag list, with the client's `n` and `last`.
    pub(crate) async fn tags(
        &self,
        name: &str,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<Page, UpstreamError> {
        let mut url = self.url(&format!("v2/{name}/tags/list"))?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(n) = n {
                q.append_pair("n", &n.to_string());
            }
            if let Some(l) = last {
                q.append_pair("last", l);
            }
        }
        if n.is_none() && last.is_none() {
            url.set_query(None);
        }
        let resp = self.send(Method::GET, url, name, None).await?;
        let resp = Self::check(resp, || format!("tags of {name}"))?;
        let more = resp.headers().contains_key(reqwest::header::LINK);
        // Hundreds of thousands of tags fit; an endless body does not.
        let body = read_bounded(resp, MAX_TAG_LIST_BYTES, || format!("tag list of {name}")).await?;
        #[derive(serde::Deserialize)]
        struct Tags {
            tags: Option<Vec<String>>,
        }
        let parsed: Tags = serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Invalid(format!("tag list of {name}: {e}")))?;
        Ok(Page {
            entries: parsed.tags.unwrap_or_default(),
            more,
        })
    }
}

/// One entry of an upstream's referrers index, as sent.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SentDescriptor {
    media_type: String,
    digest: String,
    size: u64,
    artifact_type: Option<String>,
    annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A response body of at most `max` bytes; a larger one (announced or sent) is refused
/// as invalid rather than held, whatever the other side claims.
pub(crate) async fn read_bounded(
    resp: Response,
    max: usize,
    what: impl Fn() -> String,
) -> Result<Bytes, UpstreamError> {
    let too_large = || UpstreamError::Invalid(format!("{} is larger than {max} bytes", what()));
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk?);
        if body.len() > max {
            return Err(too_large());
        }
    }
    Ok(body.freeze())
}
