//! `Manifest::parse`, as a manifest PUT calls it, with the request's `Content-Type`
//! chosen by the first byte. A manifest that parses has well-formed descriptor digests,
//! the shape its kind says, and parses again to the same kind when the header names that
//! kind; the read path's `sniff_media_type` never panics either.

#![no_main]

use berth_core::manifest::{Manifest, sniff_media_type};
use berth_core::{Descriptor, Digest};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 8] = [
    None,
    Some("application/vnd.oci.image.manifest.v1+json"),
    Some("application/vnd.oci.image.index.v1+json"),
    Some("application/vnd.docker.distribution.manifest.v2+json"),
    Some("application/vnd.docker.distribution.manifest.list.v2+json"),
    Some("application/json"),
    Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
    Some("text/plain"),
];

fn check(d: &Descriptor) {
    assert_eq!(
        d.digest.to_string().parse::<Digest>().ok(),
        Some(d.digest.clone())
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&c, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(c) % CONTENT_TYPES.len()];
    let _ = sniff_media_type(body);
    let Ok(m) = Manifest::parse(content_type, body) else {
        return;
    };
    if m.kind.is_index() {
        assert!(m.config.is_none() && m.layers.is_empty());
    } else {
        assert!(m.config.is_some() && m.manifests.is_empty());
    }
    m.config
        .iter()
        .chain(&m.layers)
        .chain(&m.manifests)
        .chain(&m.subject)
        .for_each(check);
    let again = Manifest::parse(Some(m.kind.media_type()), body);
    assert!(
        again.as_ref().is_ok_and(|a| a.kind == m.kind),
        "{:?} under {content_type:?}, but {:?} under its own type",
        m.kind,
        again.map(|a| a.kind)
    );
    let digest = Digest::of(berth_core::Algorithm::Sha256, body);
    let referrer = m.referrer_descriptor(digest, body.len() as u64);
    assert_eq!(referrer.media_type, m.kind.media_type());
});
