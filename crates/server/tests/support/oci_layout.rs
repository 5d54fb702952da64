//! Shared by the end-to-end tests (included with `#[path = "support/oci_layout.rs"]`):
//! builds test images as OCI image layouts in pure Rust (valid tar layers, gzip with stored
//! deflate blocks, a config with matching diff IDs), reads layouts back, runs skopeo, and
//! looks at a registry directly through `berth-client`'s blocking client.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_client::{BlockingClient, Response};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
/// The artifact type of [`referrer`]s.
pub const SIGNATURE: &str = "application/vnd.example.signature.v1";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A small deterministic generator (xorshift64*); seeded per run so every run pushes new
/// content and no client-side cache can make a push look like it worked.
pub struct Rng(u64);

impl Rng {
    pub fn new(label: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut seed = nanos ^ (u64::from(std::process::id()) << 32);
        for b in label.bytes() {
            seed = seed.rotate_left(7) ^ u64::from(b);
        }
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// A ustar archive holding one regular file.
pub fn tar_with_file(name: &str, content: &[u8]) -> Vec<u8> {
    assert!(name.len() < 100);
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    header[100..108].copy_from_slice(b"0000644\0");
    header[108..116].copy_from_slice(b"0000000\0");
    header[116..124].copy_from_slice(b"0000000\0");
    header[124..136].copy_from_slice(format!("{:011o}\0", content.len()).as_bytes());
    header[136..148].copy_from_slice(b"00000000000\0");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, slot) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *slot = c;
    }
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// A valid gzip stream of `data` made of stored (uncompressed) deflate blocks: clients
/// detect it as gzip by its magic and can decompress it, no compression library needed.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut chunks = data.chunks(65_535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// Some content and its descriptor fields.
#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Self {
        Blob {
            media_type: media_type.into(),
            digest: sha256_digest(&bytes),
            bytes,
        }
    }

    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()})
    }

    pub fn hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").expect("sha256 digest")
    }
}

/// One single-platform image.
#[derive(Clone, Debug)]
pub struct Image {
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Blob>,
}

impl Image {
    /// Every blob the manifest references (config first).
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(self.layers.iter())
    }
}

/// An OCI artifact (an image manifest with `artifactType` and the empty config) whose
/// `subject` is `subject`, carrying one signature blob.
pub fn referrer(rng: &mut Rng, subject: &Blob) -> Image {
    let config = Blob::new(OCI_EMPTY_CONFIG, b"{}".to_vec());
    let signature = Blob::new(SIGNATURE, rng.bytes(300));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGNATURE,
        "config": config.descriptor(),
        "layers": [signature.descriptor()],
        "subject": subject.descriptor(),
    });
    Image {
        manifest: Blob::new(OCI_MANIFEST, serde_json::to_vec(&manifest).unwrap()),
        config,
        layers: vec![signature],
    }
}

/// An image index and its platform images.
#[derive(Clone, Debug)]
pub struct MultiArch {
    pub index: Blob,
    pub images: Vec<(String, Image)>,
}

/// Builds an image with one gzip tar layer per entry of `layer_sizes` (random file content).
pub fn image(rng: &mut Rng, arch: &str, layer_sizes: &[usize]) -> Image {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    let mut history = Vec::new();
    for (i, &size) in layer_sizes.iter().enumerate() {
        let tar = tar_with_file(&format!("layer{i}/random-{arch}.bin"), &rng.bytes(size));
        diff_ids.push(sha256_digest(&tar));
        history
            .push(json!({"created": "2024-01-01T00:00:00Z", "created_by": format!("layer {i}")}));
        layers.push(Blob::new(OCI_LAYER_GZIP, gzip_stored(&tar)));
    }
    let config = json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": arch,
        "os": "linux",
        "config": {"Env": [format!("NONCE={:016x}", rng.next_u64())], "Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    });
    let config = Blob::new(
        OCI_CONFIG,
        serde_json::to_vec(&config).expect("config json"),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
    });
    let manifest = Blob::new(
        OCI_MANIFEST,
        serde_json::to_vec_pretty(&manifest).expect("manifest json"),
    );
    Image {
        manifest,
        config,
        layers,
    }
}

/// Builds an index over one image per architecture (each with its own config and one layer).
pub fn multi_arch(rng: &mut Rng, archs: &[&str]) -> MultiArch {
    let images: Vec<(String, Image)> = archs
        .iter()
        .map(|&a| (a.to_string(), image(rng, a, &[64 * 1024 + 7])))
        .collect();
    let manifests: Vec<Value> = images
        .iter()
        .map(|(arch, img)| {
            let mut d = img.manifest.descriptor();
            d["platform"] = json!({"architecture": arch, "os": "linux"});
            d
        })
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    let index = Blob::new(
        OCI_INDEX,
        serde_json::to_vec_pretty(&index).expect("index json"),
    );
    MultiArch { index, images }
}

/// Writes an OCI image layout: blobs plus tagged top-level manifests in `index.json`.
pub struct LayoutWriter {
    dir: PathBuf,
    refs: Vec<Value>,
}

impl LayoutWriter {
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("oci-layout");
        LayoutWriter {
            dir: dir.to_path_buf(),
            refs: Vec::new(),
        }
    }

    pub fn blob(&self, blob: &Blob) {
        std::fs::write(self.dir.join("blobs/sha256").join(blob.hex()), &blob.bytes)
            .expect("write blob");
    }

    pub fn add_image(&mut self, img: &Image, tag: &str) {
        for b in img.blobs().chain(std::iter::once(&img.manifest)) {
            self.blob(b);
        }
        self.tag(&img.manifest, tag);
    }

    pub fn add_multi_arch(&mut self, ma: &MultiArch, tag: &str) {
        for (_, img) in &ma.images {
            for b in img.blobs().chain(std::iter::once(&img.manifest)) {
                self.blob(b);
            }
        }
        self.blob(&ma.index);
        self.tag(&ma.index, tag);
    }

    fn tag(&mut self, blob: &Blob, tag: &str) {
        let mut d = blob.descriptor();
        d["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        self.refs.push(d);
        let index = json!({"schemaVersion": 2, "manifests": self.refs});
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).expect("json"),
        )
        .expect("index.json");
    }
}

/// The descriptor `index.json` of a layout gives for `tag`.
pub fn layout_ref(dir: &Path, tag: &str) -> Value {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("read index.json"))
            .expect("index.json");
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {index}"))
        .clone()
}

/// A blob of a layout, checked against its digest.
pub fn layout_blob(dir: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256");
    let bytes = std::fs::read(dir.join("blobs/sha256").join(hex))
        .unwrap_or_else(|e| panic!("blob {digest}: {e}"));
    assert_eq!(
        sha256_digest(&bytes),
        digest,
        "layout blob content does not match its name"
    );
    bytes
}

/// `oci:<dir>:<tag>` for skopeo.
pub fn layout_str(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

/// Asserts that a pulled layout holds exactly the pushed image under `tag`.
pub fn assert_layout_has_image(dir: &Path, tag: &str, img: &Image) {
    let d = layout_ref(dir, tag);
    assert_eq!(
        d["digest"],
        img.manifest.digest.as_str(),
        "pulled manifest digest"
    );
    assert_eq!(
        layout_blob(dir, &img.manifest.digest),
        img.manifest.bytes,
        "pulled manifest bytes"
    );
    for b in img.blobs() {
        assert!(
            layout_blob(dir, &b.digest) == b.bytes,
            "pulled blob {} differs",
            b.digest
        );
    }
}

/// Runs skopeo (no trust policy, no retries on copy) and returns stdout.
pub fn skopeo(args: &[&str]) -> String {
    let mut cmd = Command::new("skopeo");
    cmd.arg("--insecure-policy");
    cmd.args(args);
    if matches!(
        args.first(),
        Some(&"copy") | Some(&"inspect") | Some(&"list-tags")
    ) {
        cmd.args(["--retry-times", "0"]);
    }
    crate::common::run(&mut cmd)
}

/// `skopeo copy` with TLS verification off on both sides, returning the digest skopeo
/// reports for what it wrote.
pub fn skopeo_copy(extra: &[&str], src: &str, dest: &str, work: &Path) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let digestfile = work.join(format!(
        "digest-{}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let digestfile_s = digestfile.to_str().expect("utf8 path").to_string();
    let mut args = vec![
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
    ];
    args.extend_from_slice(&["--digestfile", &digestfile_s]);
    args.extend_from_slice(extra);
    args.push(src);
    args.push(dest);
    skopeo(&args);
    std::fs::read_to_string(&digestfile)
        .expect("digestfile")
        .trim()
        .to_string()
}

/// `skopeo inspect --raw` of a registry image: the manifest bytes.
pub fn skopeo_raw(image: &str) -> Vec<u8> {
    let mut cmd = Command::new("skopeo");
    cmd.args([
        "--insecure-policy",
        "inspect",
        "--raw",
        "--retry-times",
        "0",
        "--tls-verify=false",
        image,
    ]);
    let out = cmd.output().expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect --raw {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `GET` of a path on the registry; panics only when nothing answers.
pub fn get(reg: &BlockingClient, path: &str) -> Response {
    reg.run(|c| c.get(path))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// `GET /v2/<name>/tags/list`, sorted.
pub fn tags(reg: &BlockingClient, name: &str) -> Vec<String> {
    let r = reg
        .run(|c| c.tags_list(name, None, None))
        .expect("tags/list");
    assert_eq!(r.status, 200, "tags/list of {name}: {}", r.text());
    let mut tags = r.tag_names().expect("tag names");
    tags.sort();
    tags
}

/// `GET /v2/_catalog`.
pub fn catalog(reg: &BlockingClient) -> Vec<String> {
    let r = reg.run(|c| c.catalog(None, None)).expect("catalog");
    assert_eq!(r.status, 200, "catalog: {}", r.text());
    assert!(
        r.json().expect("JSON")["repositories"].is_array(),
        "catalog: {}",
        r.text()
    );
    r.repository_names().expect("repository names")
}

/// Asserts a registry serves every blob of `img` in `name` byte for byte.
pub fn assert_blobs_served(reg: &BlockingClient, name: &str, img: &Image) {
    for b in img.blobs() {
        let r = reg
            .run(|c| c.get_blob(name, &b.digest, None))
            .expect("blob GET");
        assert_eq!(
            r.status,
            200,
            "GET blob {} from {name}: {}",
            b.digest,
            r.text()
        );
        assert!(
            r.body == b.bytes,
            "blob {} from {name}: {} bytes differ from the {} pushed",
            b.digest,
            r.body.len(),
            b.bytes.len()
        );
    }
}

/// Asserts that a pulled layout holds exactly the pushed index (and every platform image)
/// under `tag`.
pub fn assert_layout_has_multi_arch(dir: &Path, tag: &str, ma: &MultiArch) {
    let d = layout_ref(dir, tag);
    assert_eq!(d["digest"], ma.index.digest.as_str(), "pulled index digest");
    assert_eq!(d["mediaType"], OCI_INDEX);
    assert_eq!(
        layout_blob(dir, &ma.index.digest),
        ma.index.bytes,
        "pulled index bytes"
    );
    for (arch, img) in &ma.images {
        assert_eq!(
            layout_blob(dir, &img.manifest.digest),
            img.manifest.bytes,
            "{arch} manifest bytes"
        );
        for b in img.blobs() {
            assert!(
                layout_blob(dir, &b.digest) == b.bytes,
                "{arch} blob {} differs",
                b.digest
            );
        }
    }
}

/// Uploads a blob the chunked way: POST, one PATCH per `chunk` bytes (each with its
/// `Content-Range`, following the `Location` each answer gives, `Range` checked), then
/// PUT `?digest=`.
pub fn push_blob_chunked(reg: &BlockingClient, name: &str, blob: &Blob, chunk: usize) {
    let r = reg
        .run(|c| c.push_blob_chunked(name, &blob.digest, blob.bytes.clone(), chunk))
        .unwrap_or_else(|e| panic!("chunked upload of {} to {name}: {e}", blob.digest));
    assert_eq!(r.digest(), Some(blob.digest.as_str()));
}

/// Uploads a blob monolithically: POST, then one PUT `?digest=` carrying the bytes.
pub fn push_blob_monolithic(reg: &BlockingClient, name: &str, blob: &Blob) {
    let r = reg
        .run(|c| c.push_blob(name, &blob.digest, blob.bytes.clone()))
        .unwrap_or_else(|e| panic!("monolithic upload of {} to {name}: {e}", blob.digest));
    assert_eq!(r.digest(), Some(blob.digest.as_str()));
}

/// Mounts a blob from another repository; asserts the registry answers 201 Created.
pub fn mount_blob(reg: &BlockingClient, name: &str, from: &str, digest: &str) {
    let r = reg
        .run(|c| c.mount_blob(name, digest, Some(from)))
        .expect("mount");
    assert_eq!(
        r.status,
        201,
        "mount {digest} from {from} into {name}: {}",
        r.text()
    );
    assert_eq!(r.digest(), Some(digest));
    assert_eq!(
        r.header("location")
            .map(|l| l.ends_with(&format!("/v2/{name}/blobs/{digest}"))),
        Some(true),
        "mount Location: {:?}",
        r.header("location")
    );
}

/// PUTs a manifest (by tag or digest) and checks the answer.
pub fn put_manifest(reg: &BlockingClient, name: &str, reference: &str, manifest: &Blob) {
    let r = reg
        .run(|c| {
            c.put_manifest(
                name,
                reference,
                &manifest.media_type,
                manifest.bytes.clone(),
                &[],
            )
        })
        .expect("manifest PUT");
    assert_eq!(
        r.status,
        201,
        "PUT manifest {name}:{reference}: {}",
        r.text()
    );
    assert_eq!(r.digest(), Some(manifest.digest.as_str()));
}

/// Deletes a manifest by digest; asserts 202 Accepted.
pub fn delete_manifest(reg: &BlockingClient, name: &str, digest: &str) {
    let r = reg
        .run(|c| c.delete_manifest(name, digest))
        .expect("manifest DELETE");
    assert_eq!(r.status, 202, "DELETE {name}@{digest}: {}", r.text());
}

/// The digest a registry resolves `name:reference` to (GET, any manifest type accepted).
pub fn resolve(reg: &BlockingClient, name: &str, reference: &str) -> Option<String> {
    let accept = format!("{OCI_MANIFEST}, {OCI_INDEX}, {DOCKER_MANIFEST}");
    let r = reg
        .run(|c| c.get_manifest(name, reference, &accept))
        .expect("manifest GET");
    match r.status {
        200 => {
            let d = sha256_digest(&r.body);
            assert_eq!(r.digest(), Some(d.as_str()), "{name}:{reference}");
            Some(d)
        }
        404 => {
            assert!(
                r.text().contains("MANIFEST_UNKNOWN"),
                "{name}:{reference}: 404 with {}",
                r.text()
            );
            None
        }
        s => panic!("GET manifest {name}:{reference}: {s} {}", r.text()),
    }
}
