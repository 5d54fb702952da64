//! Test data builders: seeded random bytes, digests, blobs, and the manifests the
//! suite pushes (OCI image manifest and index, Docker schema2 manifest and list,
//! artifacts with `artifactType` and `subject`). Every builder returns the exact bytes
//! it will send together with their digest.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256, Sha512};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer media type.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI empty descriptor media type (content `{}`).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Docker schema2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer media type.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// `Accept` value that admits every manifest type the suite pushes.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// `sha512:<hex>` of `data`.
pub fn sha512(data: &[u8]) -> String {
    format!("sha512:{}", hex::encode(Sha512::digest(data)))
}

/// Seeded generator for random content and names.
pub struct Gen(StdRng);

impl Gen {
    /// A generator whose output is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self(StdRng::seed_from_u64(seed))
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        self.0.fill_bytes(&mut out);
        out
    }

    /// A random size in `lo..hi`.
    pub fn size(&mut self, lo: usize, hi: usize) -> usize {
        self.0.random_range(lo..hi)
    }

    /// A random lowercase hex token of `len` characters.
    pub fn token(&mut self, len: usize) -> String {
        let mut s = hex::encode(self.bytes(len.div_ceil(2)));
        s.truncate(len);
        s
    }

    /// A digest of random content that was never pushed.
    pub fn unknown_digest(&mut self) -> String {
        sha256(&self.bytes(32))
    }
}

/// Content addressed by its digest: a blob or a manifest, with the media type it is
/// referenced (blobs) or pushed (manifests) with.
#[derive(Clone)]
pub struct Content {
    /// The exact bytes.
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of the bytes.
    pub digest: String,
    /// Media type.
    pub media_type: String,
}

impl Content {
    /// Wraps bytes with their sha256 digest.
    pub fn new(bytes: Vec<u8>, media_type: &str) -> Self {
        let digest = sha256(&bytes);
        Self {
            bytes,
            digest,
            media_type: media_type.to_owned(),
        }
    }

    /// Serializes a JSON document compactly (key order kept) and wraps it.
    pub fn json(value: &Value, media_type: &str) -> Self {
        Self::new(value.to_string().into_bytes(), media_type)
    }

    /// The OCI descriptor `{mediaType, digest, size}`.
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()})
    }
}

/// A random layer blob of `len` bytes.
pub fn layer(g: &mut Gen, len: usize, media_type: &str) -> Content {
    Content::new(g.bytes(len), media_type)
}

/// A small image config, unique per call.
pub fn config(g: &mut Gen, media_type: &str) -> Content {
    let v = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"org.berth.conformance": g.token(16)}},
        "rootfs": {"type": "layers", "diff_ids": [g.unknown_digest()]}
    });
    Content::json(&v, media_type)
}

/// The empty blob `{}` used as an artifact's config.
pub fn empty_config() -> Content {
    Content::new(b"{}".to_vec(), OCI_EMPTY)
}

/// An OCI image manifest over a config and layers.
pub fn oci_manifest(config: &Content, layers: &[&Content]) -> Content {
    let v = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(|l| l.descriptor()).collect::<Vec<_>>(),
    });
    Content::json(&v, OCI_MANIFEST)
}

/// A Docker schema2 manifest over a config and layers.
pub fn docker_manifest(config: &Content, layers: &[&Content]) -> Content {
    let v = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(|l| l.descriptor()).collect::<Vec<_>>(),
    });
    Content::json(&v, DOCKER_MANIFEST)
}

/// An index (`OCI_INDEX` or `DOCKER_LIST`) over manifests, each given a platform.
pub fn index(media_type: &str, children: &[&Content]) -> Content {
    let archs = ["amd64", "arm64", "riscv64", "s390x"];
    let manifests: Vec<Value> = children
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut d = c.descriptor();
            d["platform"] = json!({"architecture": archs[i % archs.len()], "os": "linux"});
            d
        })
        .collect();
    let v = json!({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests});
    Content::json(&v, media_type)
}

/// An OCI artifact manifest: `artifactType`, the empty config, the given layers,
/// optional `subject` and annotations.
pub fn artifact(
    artifact_type: &str,
    layers: &[&Content],
    subject: Option<&Content>,
    annotations: Option<Value>,
) -> Content {
    let mut v = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty_config().descriptor(),
        "layers": layers.iter().map(|l| l.descriptor()).collect::<Vec<_>>(),
    });
    if let Some(s) = subject {
        v["subject"] = s.descriptor();
    }
    if let Some(a) = annotations {
        v["annotations"] = a;
    }
    Content::json(&v, OCI_MANIFEST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_has_the_well_known_digest() {
        assert_eq!(
            empty_config().digest,
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn generator_is_deterministic() {
        assert_eq!(Gen::new(7).bytes(16), Gen::new(7).bytes(16));
        assert_eq!(Gen::new(7).token(9).len(), 9);
    }

    #[test]
    fn manifest_bytes_match_digest_and_keep_order() {
        let mut g = Gen::new(1);
        let c = config(&mut g, OCI_CONFIG);
        let l = layer(&mut g, 10, OCI_LAYER);
        let m = oci_manifest(&c, &[&l]);
        assert_eq!(m.digest, sha256(&m.bytes));
        let text = String::from_utf8(m.bytes).unwrap();
        assert!(text.starts_with(r#"{"schemaVersion":2,"mediaType":"#));
    }
}
