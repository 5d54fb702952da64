//! The notification hook: what handlers call after a successful operation. Nothing is
//! built unless a notifier is configured and some endpoint wants the event; the request
//! record (id, client address, host, method, user agent) and the actor are read from the
//! request only when an event is emitted.

use std::net::{IpAddr, SocketAddr};

use berth_core::{Digest, Manifest, RepositoryName, StoredManifest, Tag};
use berth_notify::{Action, Actor, EventDraft, Reference, RequestRecord, Target};
use http::header;

use super::Ctx;

/// The media type distribution gives blob events.
const BLOB_MEDIA_TYPE: &str = "application/octet-stream";

impl Ctx {
    /// Whether an event of `action` about a `media_type` target would go anywhere.
    pub fn notifying(&self, action: Action, media_type: &str) -> bool {
        self.state
            .options
            .notifier
            .as_ref()
            .is_some_and(|n| n.wants(action, media_type))
    }

    /// Whether a blob event of `action` would go anywhere.
    pub fn notifying_blob(&self, action: Action) -> bool {
        self.notifying(action, BLOB_MEDIA_TYPE)
    }

    /// Queues `drafts`; the future completes once they are written, and never fails
    /// the request. It owns what it needs, so a handler holds no borrow of its `Ctx`
    /// (whose body is not `Sync`) across the wait.
    pub fn emit(&self, drafts: Vec<EventDraft>) -> impl Future<Output = ()> + Send + 'static {
        let job = self
            .state
            .options
            .notifier
            .clone()
            .filter(|_| !drafts.is_empty())
            .map(|n| {
                let actor = Actor {
                    name: self.principal.user().map(str::to_owned),
                };
                (n, self.request_record(), actor)
            });
        async move {
            if let Some((notifier, request, actor)) = job {
                notifier.emit(&request, &actor, &drafts).await;
            }
        }
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The request as events describe it, with distribution's choice of client
    /// address: the first `X-Forwarded-For` entry or `X-Real-Ip` when it is an IP
    /// address, else the TCP peer.
    fn request_record(&self) -> RequestRecord {
        let ip = |s: &str| s.trim().parse::<IpAddr>().ok().map(|_| s.trim().to_owned());
        let addr = self
            .text("x-forwarded-for")
            .and_then(|v| v.split(',').next())
            .and_then(ip)
            .or_else(|| self.text("x-real-ip").and_then(ip))
            .or_else(|| self.peer.map(|p: SocketAddr| p.to_string()))
            .unwrap_or_default();
        RequestRecord {
            id: self
                .request_id
                .as_ref()
                .map(|r| r.as_str().to_owned())
                .unwrap_or_default(),
            addr,
            host: self.host().to_owned(),
            method: self.method.as_str().to_owned(),
            useragent: self
                .header(header::USER_AGENT)
                .unwrap_or_default()
                .to_owned(),
        }
    }

    fn host(&self) -> &str {
        self.header(header::HOST)
            .or(self.authority.as_deref())
            .unwrap_or_default()
    }

    /// The absolute base of the URLs events carry: `http.host` when set, else the
    /// scheme and host the client used (forwarded ones first, as distribution does).
    fn base_url(&self) -> String {
        let options = &self.state.options;
        if let Some(h) = &options.host {
            return format!("{h}{}", options.prefix);
        }
        let scheme =
            self.text("x-forwarded-proto")
                .unwrap_or(if options.tls { "https" } else { "http" });
        let host = self
            .text("x-forwarded-host")
            .and_then(|h| h.split(',').next())
            .map(str::trim)
            .unwrap_or_else(|| self.host());
        format!("{scheme}://{host}{}", options.prefix)
    }

    fn url(&self, name: &RepositoryName, kind: &str, digest: &Digest) -> String {
        format!("{}/v2/{name}/{kind}/{digest}", self.base_url())
    }

    /// A blob pushed, pulled or mounted (`from`: a mount's source).
    pub fn blob_event(
        &self,
        action: Action,
        name: &RepositoryName,
        digest: &Digest,
        size: u64,
        from: Option<&RepositoryName>,
    ) -> EventDraft {
        EventDraft {
            action,
            target: Target {
                media_type: BLOB_MEDIA_TYPE.to_owned(),
                size,
                digest: digest.to_string(),
                length: size,
                repository: name.to_string(),
                from_repository: from.map(ToString::to_string).unwrap_or_default(),
                url: self.url(name, "blobs", digest),
                ..Target::default()
            },
        }
    }

    /// A manifest pushed or pulled, by `tag` when the request named one.
    pub fn manifest_event(
        &self,
        action: Action,
        name: &RepositoryName,
        m: &StoredManifest,
        tag: Option<&Tag>,
    ) -> EventDraft {
        let size = m.body.len() as u64;
        let include = self
            .state
            .options
            .notifier
            .as_ref()
            .is_some_and(|n| n.include_references());
        let references = if include {
            references(&m.media_type, &m.body)
        } else {
            Vec::new()
        };
        EventDraft {
            action,
            target: Target {
                media_type: m.media_type.clone(),
                size,
                digest: m.digest.to_string(),
                length: size,
                repository: name.to_string(),
                url: self.url(name, "manifests", &m.digest),
                tag: tag.map(|t| t.as_str().to_owned()).unwrap_or_default(),
                references,
                ..Target::default()
            },
        }
    }

    /// A manifest or blob deleted: only the repository and the digest, as distribution.
    pub fn deleted_event(name: &RepositoryName, digest: &Digest) -> EventDraft {
        EventDraft {
            action: Action::Delete,
            target: Target {
                digest: digest.to_string(),
                repository: name.to_string(),
                ..Target::default()
            },
        }
    }

    /// A tag deleted: only the repository and the tag, as distribution.
    pub fn tag_deleted_event(name: &RepositoryName, tag: &Tag) -> EventDraft {
        EventDraft {
            action: Action::Delete,
            target: Target {
                repository: name.to_string(),
                tag: tag.as_str().to_owned(),
                ..Target::default()
            },
        }
    }
}

/// What a manifest references, in distribution's order: an image's config then its
/// layers; an index's manifests.
fn references(media_type: &str, body: &[u8]) -> Vec<Reference> {
    let Ok(m) = Manifest::parse(Some(media_type), body) else {
        return Vec::new();
    };
    m.config
        .iter()
        .chain(&m.layers)
        .chain(&m.manifests)
        .map(|d| Reference {
            media_type: d.media_type.clone(),
            size: d.size,
            digest: d.digest.to_string(),
        })
        .collect()
}
