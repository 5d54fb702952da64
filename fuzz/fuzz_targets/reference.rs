//! Repository names, tags, digests, references and upload ids from any text. Whatever
//! parses prints back exactly as written (berth keeps names as clients sent them, and
//! storage paths are built from the printed form) and parses again to itself.

#![no_main]

use berth_core::{Algorithm, Digest, Reference, RepositoryName, Tag, UploadId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(name) = RepositoryName::parse(s) {
        assert_eq!(name.to_string(), s);
        assert_eq!(name.as_str(), s);
        assert_eq!(RepositoryName::parse(&name.to_string()).ok(), Some(name));
        // Every component is a path segment of its own: nothing that climbs or hides.
        assert!(s.split('/').all(|c| !c.is_empty() && c != "." && c != ".."));
    }
    if let Ok(tag) = Tag::parse(s) {
        assert_eq!(tag.to_string(), s);
        assert!(!s.contains('/') && !s.contains(':'));
        assert_eq!(Tag::parse(tag.as_str()).ok(), Some(tag));
    }
    if let Ok(d) = Digest::parse(s) {
        assert_eq!(d.to_string(), s);
        assert_eq!(d.hex().len(), d.algorithm().hex_len());
        assert!(d.hex().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(s.parse::<Digest>().ok(), Some(d.clone()));
        assert_eq!(
            Algorithm::parse(d.algorithm().as_str()).ok(),
            Some(d.algorithm())
        );
    }
    if let Ok(r) = Reference::parse(s) {
        assert_eq!(r.to_string(), s);
        assert_eq!(Reference::parse(&r.to_string()).ok(), Some(r));
    }
    if let Ok(id) = UploadId::parse(s) {
        assert_eq!(id.to_string(), s);
        assert!(!s.contains('/'));
        assert_eq!(UploadId::parse(id.as_str()).ok(), Some(id));
    }
});
