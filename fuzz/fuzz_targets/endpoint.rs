//! `Endpoint::parse` on any method and path. Beyond not panicking: an endpoint parsed
//! from a path parses again, with the same method, from the path its parts print as.

#![no_main]

use berth_http::Endpoint;
use http::Method;
use libfuzzer_sys::fuzz_target;

const METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::PUT,
    Method::POST,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

/// The path (after `/v2/`) that names `ep`.
fn path_of(ep: &Endpoint) -> String {
    match ep {
        Endpoint::Base => String::new(),
        Endpoint::Catalog => "_catalog".into(),
        Endpoint::Tags { name } => format!("{name}/tags/list"),
        Endpoint::Manifest { name, reference } => format!("{name}/manifests/{reference}"),
        Endpoint::Blob { name, digest } => format!("{name}/blobs/{digest}"),
        Endpoint::Uploads { name } => format!("{name}/blobs/uploads/"),
        Endpoint::Upload { name, id } => format!("{name}/blobs/uploads/{id}"),
        Endpoint::Referrers { name, digest } => format!("{name}/referrers/{digest}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let Ok(path) = std::str::from_utf8(rest) else {
        return;
    };
    let method = &METHODS[usize::from(m) % METHODS.len()];
    if let Ok(Some(ep)) = Endpoint::parse(method, path) {
        let canonical = path_of(&ep);
        match Endpoint::parse(method, &canonical) {
            Ok(Some(again)) => assert_eq!(again, ep, "{path:?} -> {canonical:?}"),
            other => panic!("{path:?} parsed as {ep:?}, but {canonical:?} as {other:?}"),
        }
    }
});
