//! Manifest parsing and structural validation: OCI image manifest and index, Docker
//! schema2 manifest and manifest list. The stored bytes are always the pushed bytes; this
//! module only reads them to find references, the subject and the media type.

use serde_json::{Map, Value};

use crate::descriptor::{Descriptor, Platform};
use crate::digest::Digest;
use crate::error::Error;
use crate::media;

/// The four manifest formats berth accepts on push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// OCI image manifest (also artifacts).
    OciManifest,
    /// OCI image index.
    OciIndex,
    /// Docker schema2 image manifest.
    DockerManifest,
    /// Docker manifest list.
    DockerList,
}

impl Kind {
    /// The canonical media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Kind::OciManifest => media::OCI_MANIFEST,
            Kind::OciIndex => media::OCI_INDEX,
            Kind::DockerManifest => media::DOCKER_MANIFEST,
            Kind::DockerList => media::DOCKER_LIST,
        }
    }

    fn from_media_type(mt: &str) -> Option<Kind> {
        match mt {
            media::OCI_MANIFEST => Some(Kind::OciManifest),
            media::OCI_INDEX => Some(Kind::OciIndex),
            media::DOCKER_MANIFEST => Some(Kind::DockerManifest),
            media::DOCKER_LIST => Some(Kind::DockerList),
            _ => None,
        }
    }

    /// Whether this kind lists child manifests rather than blobs.
    pub fn is_index(self) -> bool {
        matches!(self, Kind::OciIndex | Kind::DockerList)
    }
}

/// A parsed, validated manifest: the parts berth needs, not a re-serialisable model.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Format.
    pub kind: Kind,
    /// The config descriptor (image manifests).
    pub config: Option<Descriptor>,
    /// Layer descriptors (image manifests).
    pub layers: Vec<Descriptor>,
    /// Child manifests (indexes and lists).
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (referrers API).
    pub subject: Option<Descriptor>,
    /// Top-level `artifactType`.
    pub artifact_type: Option<String>,
    /// Top-level annotations.
    pub annotations: Option<Map<String, Value>>,
}

impl Manifest {
    /// Parses pushed bytes. `content_type` is the request's `Content-Type`, if any; a
    /// `mediaType` in the body must agree with it when both name a manifest format.
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Manifest, Error> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| Error::ManifestInvalid(format!("not valid JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| Error::ManifestInvalid("a manifest is a JSON object".into()))?;
        let header = content_type.map(media::essence).filter(|s| !s.is_empty());
        let kind = resolve_kind(obj, header)?;
        match obj.get("schemaVersion") {
            Some(Value::Number(n)) if n.as_u64() == Some(2) => {}
            Some(other) => {
                return Err(Error::ManifestInvalid(format!(
                    "schemaVersion {other} is not supported (expected 2)"
                )));
            }
            None => return Err(Error::ManifestInvalid("schemaVersion is missing".into())),
        }
        let mut m = Manifest {
            kind,
            config: None,
            layers: Vec::new(),
            manifests: Vec::new(),
            subject: optional_descriptor(obj, "subject")?,
            artifact_type: optional_string(obj, "artifactType")?,
            annotations: optional_object(obj, "annotations")?,
        };
        if kind.is_index() {
            m.manifests = descriptor_list(obj, "manifests", true)?;
        } else {
            m.config =
                Some(optional_descriptor(obj, "config")?.ok_or_else(|| {
                    Error::ManifestInvalid("config descriptor is missing".into())
                })?);
            m.layers = descriptor_list(obj, "layers", kind == Kind::DockerManifest)?;
        }
        Ok(m)
    }

    /// The descriptor of this manifest as the referrers API lists it.
    pub fn referrer_descriptor(&self, digest: Digest, size: u64) -> Descriptor {
        let artifact_type = self.artifact_type.clone().or_else(|| {
            if self.kind.is_index() {
                None
            } else {
                self.config.as_ref().map(|c| c.media_type.clone())
            }
        });
        Descriptor {
            media_type: self.kind.media_type().to_owned(),
            digest,
            size,
            artifact_type,
            annotations: self.annotations.clone(),
            urls: Vec::new(),
            platform: None,
        }
    }
}

/// The media type of stored manifest bytes, the way distribution derives it: the body's
/// `mediaType`, else by shape (schema 1, index, image manifest).
pub fn sniff_media_type(body: &[u8]) -> String {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return media::OCI_MANIFEST.to_owned();
    };
    if let Some(Value::String(mt)) = obj.get("mediaType") {
        return mt.clone();
    }
    if obj.get("schemaVersion").and_then(Value::as_u64) == Some(1) {
        return if obj.contains_key("signatures") {
            media::DOCKER_SCHEMA1_SIGNED
        } else {
            media::DOCKER_SCHEMA1
        }
        .to_owned();
    }
    if obj.contains_key("manifests") {
        media::OCI_INDEX.to_owned()
    } else {
        media::OCI_MANIFEST.to_owned()
    }
}

fn resolve_kind(obj: &Map<String, Value>, header: Option<&str>) -> Result<Kind, Error> {
    let header_kind = header.and_then(Kind::from_media_type);
    let body_type = optional_string(obj, "mediaType")?;
    if let Some(mt) = body_type.as_deref() {
        if mt == media::DOCKER_SCHEMA1 || mt == media::DOCKER_SCHEMA1_SIGNED {
            return Err(Error::ManifestInvalid(
                "Docker schema 1 manifests are deprecated and not accepted".into(),
            ));
        }
        let kind = Kind::from_media_type(mt).ok_or_else(|| {
            Error::ManifestInvalid(format!("unsupported manifest mediaType {mt:?}"))
        })?;
        if let Some(h) = header_kind.filter(|h| *h != kind) {
            return Err(Error::ManifestInvalid(format!(
                "Content-Type {} does not match the manifest's mediaType {mt}",
                h.media_type()
            )));
        }
        return Ok(kind);
    }
    if let Some(kind) = header_kind {
        return Ok(kind);
    }
    if let Some(h) = header.filter(|h| *h != "application/json" && *h != "application/octet-stream")
    {
        return Err(Error::ManifestInvalid(format!(
            "unsupported manifest Content-Type {h:?}"
        )));
    }
    Ok(if obj.contains_key("manifests") {
        Kind::OciIndex
    } else {
        Kind::OciManifest
    })
}

fn optional_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::ManifestInvalid(format!("{key} must be a string"))),
    }
}

fn optional_object(
    obj: &Map<String, Value>,
    key: &str,
) -> Result<Option<Map<String, Value>>, Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(_) => Err(Error::ManifestInvalid(format!("{key} must be an object"))),
    }
}

fn optional_descriptor(obj: &Map<String, Value>, key: &str) -> Result<Option<Descriptor>, Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse_descriptor(v, key).map(Some),
    }
}

fn descriptor_list(
    obj: &Map<String, Value>,
    key: &str,
    required: bool,
) -> Result<Vec<Descriptor>, Error> {
    match obj.get(key) {
        None | Some(Value::Null) if !required => Ok(Vec::new()),
        None | Some(Value::Null) => Err(Error::ManifestInvalid(format!("{key} is missing"))),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| parse_descriptor(v, &format!("{key}[{i}]")))
            .collect(),
        Some(_) => Err(Error::ManifestInvalid(format!("{key} must be an array"))),
    }
}

fn parse_descriptor(v: &Value, at: &str) -> Result<Descriptor, Error> {
    let invalid = |what: &str| Error::ManifestInvalid(format!("{at}: {what}"));
    let obj = v
        .as_object()
        .ok_or_else(|| invalid("a descriptor is an object"))?;
    let media_type = match obj.get("mediaType") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(invalid("mediaType must be a non-empty string")),
    };
    let digest = match obj.get("digest") {
        Some(Value::String(s)) => Digest::parse(s).map_err(|e| invalid(&format!("digest: {e}")))?,
        _ => return Err(invalid("digest must be a string")),
    };
    let size = obj
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid("size must be a non-negative integer"))?;
    let urls = match obj.get("urls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|u| {
                u.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid("urls must be strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("urls must be an array")),
    };
    Ok(Descriptor {
        media_type,
        digest,
        size,
        artifact_type: optional_string(obj, "artifactType")
            .map_err(|_| invalid("artifactType must be a string"))?,
        annotations: optional_object(obj, "annotations")
            .map_err(|_| invalid("annotations must be an object"))?,
        urls,
        platform: platform(obj),
    })
}

/// An entry's platform, when it names both an OS and an architecture (anything else
/// is left for clients to judge, as distribution does).
fn platform(obj: &Map<String, Value>) -> Option<Platform> {
    let p = obj.get("platform")?.as_object()?;
    Some(Platform {
        os: p.get("os")?.as_str()?.to_owned(),
        architecture: p.get("architecture")?.as_str()?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Algorithm;

    fn d(s: &str) -> String {
        Digest::of(Algorithm::Sha256, s.as_bytes()).to_string()
    }

    #[test]
    fn oci_manifest_with_subject_and_artifact_type() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"application/x.sbom",
            "config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{}","size":2}},
            "layers":[],"subject":{{"mediaType":"{}","digest":"{}","size":7}},
            "annotations":{{"a":"b"}},"unknownField":[1]}}"#,
            media::OCI_MANIFEST,
            d("{}"),
            media::OCI_MANIFEST,
            d("x")
        );
        let m = Manifest::parse(Some(media::OCI_MANIFEST), body.as_bytes()).unwrap();
        assert_eq!(m.kind, Kind::OciManifest);
        assert!(m.subject.is_some());
        let r = m.referrer_descriptor(Digest::of(Algorithm::Sha256, body.as_bytes()), 9);
        assert_eq!(r.artifact_type.as_deref(), Some("application/x.sbom"));
        assert_eq!(sniff_media_type(body.as_bytes()), media::OCI_MANIFEST);
    }

    #[test]
    fn rejects_bad_manifests() {
        let cases = [
            (None, "not json"),
            (None, "[]"),
            (None, r#"{"schemaVersion":3,"config":{},"layers":[]}"#),
            (
                None,
                r#"{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+json"}"#,
            ),
            (
                Some(media::OCI_INDEX),
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#,
            ),
            (
                None,
                r#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"md5:00","size":1},"layers":[]}"#,
            ),
            (
                None,
                r#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:00","size":-1},"layers":[]}"#,
            ),
            (None, r#"{"schemaVersion":2,"manifests":"x"}"#),
        ];
        for (ct, body) in cases {
            assert!(
                matches!(
                    Manifest::parse(ct, body.as_bytes()),
                    Err(Error::ManifestInvalid(_))
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn index_kind_from_shape() {
        let body = r#"{"schemaVersion":2,"manifests":[]}"#;
        let m = Manifest::parse(None, body.as_bytes()).unwrap();
        assert_eq!(m.kind, Kind::OciIndex);
        assert!(
            m.referrer_descriptor(Digest::of(Algorithm::Sha256, b""), 1)
                .artifact_type
                .is_none()
        );
    }
}
