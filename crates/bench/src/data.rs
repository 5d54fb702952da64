//! Test data: seeded random blobs with their digests, and the image manifests that
//! reference them (OCI and Docker schema2). Generated before a timed part starts.

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker schema2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A random-number generator for one named stream of data under the run's seed, so
/// every scenario gets the same bytes on every registry and every round.
pub fn rng(seed: u64, stream: &str) -> SmallRng {
    // FNV-1a of the stream name, mixed into the seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in stream.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    SmallRng::seed_from_u64(seed ^ h)
}

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Content with its digest.
#[derive(Clone, Debug)]
pub struct Blob {
    /// The bytes.
    pub data: Bytes,
    /// `sha256:<hex>` of the bytes.
    pub digest: String,
}

impl Blob {
    /// Wraps bytes and computes their digest.
    pub fn new(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        let digest = sha256(&data);
        Self { data, digest }
    }

    /// `len` random bytes from `rng`.
    pub fn random(rng: &mut SmallRng, len: usize) -> Self {
        let mut data = vec![0u8; len];
        rng.fill_bytes(&mut data);
        Self::new(data)
    }

    /// A small image configuration (JSON) that names `id`, so each one is unique.
    pub fn config(id: &str) -> Self {
        let body = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"berth-bench": id}},
            "rootfs": {"type": "layers", "diff_ids": []},
        });
        Self::new(body.to_string().into_bytes())
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.data.len() as u64
    }

    /// Whether the blob is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// A manifest ready to `PUT`.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// Its media type (the `Content-Type` to send).
    pub media_type: &'static str,
    /// The exact bytes.
    pub body: Bytes,
    /// `sha256:<hex>` of the bytes.
    pub digest: String,
}

/// An OCI image manifest over `config` and `layers`.
pub fn oci_manifest(config: &Blob, layers: &[&Blob]) -> Manifest {
    manifest(
        OCI_MANIFEST,
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        config,
        layers,
    )
}

/// A Docker schema2 manifest over `config` and `layers` (what `docker push` sends).
pub fn docker_manifest(config: &Blob, layers: &[&Blob]) -> Manifest {
    manifest(
        DOCKER_MANIFEST,
        "application/vnd.docker.container.image.v1+json",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        config,
        layers,
    )
}

fn manifest(
    media_type: &'static str,
    config_type: &str,
    layer_type: &str,
    config: &Blob,
    layers: &[&Blob],
) -> Manifest {
    let layers: Vec<_> = layers
        .iter()
        .map(|l| json!({"mediaType": layer_type, "digest": l.digest, "size": l.len()}))
        .collect();
    let body = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "digest": config.digest, "size": config.len()},
        "layers": layers,
    })
    .to_string();
    let body = Bytes::from(body.into_bytes());
    Manifest {
        media_type,
        digest: sha256(&body),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_different_streams_differ() {
        let a = Blob::random(&mut rng(1, "x"), 64);
        let b = Blob::random(&mut rng(1, "x"), 64);
        let c = Blob::random(&mut rng(1, "y"), 64);
        assert_eq!(a.digest, b.digest);
        assert_ne!(a.digest, c.digest);
    }

    #[test]
    fn manifest_names_its_blobs() {
        let config = Blob::config("c");
        let layer = Blob::random(&mut rng(3, "l"), 10);
        let m = oci_manifest(&config, &[&layer]);
        let v: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(v["layers"][0]["digest"], layer.digest.as_str());
        assert_eq!(v["config"]["size"], config.len());
        assert_eq!(m.digest, sha256(&m.body));
    }
}
