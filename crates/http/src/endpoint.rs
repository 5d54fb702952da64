//! `Endpoint::parse`: a request path below `/v2/` to the endpoint it names. Repository
//! names may contain any number of `/`, so the fixed suffix is matched from the right.

use berth_core::{Digest, Error, Reference, RepositoryName, UploadId};
use http::Method;

/// A parsed request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v2/`: the API version check.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/tags/list`.
    Tags {
        /// Repository.
        name: RepositoryName,
    },
    /// `/v2/<name>/manifests/<reference>`.
    Manifest {
        /// Repository.
        name: RepositoryName,
        /// Tag or digest.
        reference: Reference,
    },
    /// `/v2/<name>/blobs/<digest>`.
    Blob {
        /// Repository.
        name: RepositoryName,
        /// The blob.
        digest: Digest,
    },
    /// `/v2/<name>/blobs/uploads/`.
    Uploads {
        /// Repository.
        name: RepositoryName,
    },
    /// `/v2/<name>/blobs/uploads/<id>`.
    Upload {
        /// Repository.
        name: RepositoryName,
        /// Session id.
        id: UploadId,
    },
    /// `/v2/<name>/referrers/<digest>`.
    Referrers {
        /// Repository.
        name: RepositoryName,
        /// Subject digest.
        digest: Digest,
    },
}

impl Endpoint {
    /// Parses the part of the path after `/v2/` for a request with `method`. `Ok(None)`:
    /// no such endpoint. A manifest reference that is neither a tag nor a digest names
    /// no manifest, so reading or deleting it is `ManifestUnknown` (the spec's 404),
    /// while pushing to it is the reference's own error.
    pub fn parse(method: &Method, rest: &str) -> Result<Option<Endpoint>, Error> {
        if rest.is_empty() {
            return Ok(Some(Endpoint::Base));
        }
        if rest == "_catalog" {
            return Ok(Some(Endpoint::Catalog));
        }
        let segs: Vec<&str> = rest.split('/').collect();
        let n = segs.len();
        let name = |k: usize| RepositoryName::parse(&segs[..n - k].join("/"));
        let tail = |k: usize| segs[n - k..].to_vec();
        let last = segs[n - 1];
        let ep = if n >= 3 && tail(2) == ["tags", "list"] {
            Endpoint::Tags { name: name(2)? }
        } else if n >= 4 && tail(3) == ["blobs", "uploads", ""] {
            Endpoint::Uploads { name: name(3)? }
        } else if n >= 3 && tail(2) == ["blobs", "uploads"] {
            Endpoint::Uploads { name: name(2)? }
        } else if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
            let name = name(3)?;
            Endpoint::Upload {
                name,
                id: UploadId::parse(last)?,
            }
        } else if n >= 3 && segs[n - 2] == "blobs" && !last.is_empty() {
            let name = name(2)?;
            Endpoint::Blob {
                name,
                digest: Digest::parse(last)?,
            }
        } else if n >= 3 && segs[n - 2] == "manifests" && !last.is_empty() {
            let name = name(2)?;
            let reference = match Reference::parse(last) {
                Ok(r) => r,
                Err(_) if *method != Method::PUT => {
                    return Err(Error::ManifestUnknown(format!(
                        "{name}:{last}: not a valid tag or digest"
                    )));
                }
                Err(e) => return Err(e),
            };
            Endpoint::Manifest { name, reference }
        } else if n >= 3 && segs[n - 2] == "referrers" && !last.is_empty() {
            let name = name(2)?;
            Endpoint::Referrers {
                name,
                digest: Digest::parse(last)?,
            }
        } else {
            return Ok(None);
        };
        Ok(Some(ep))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::{Algorithm, Tag};

    fn n(s: &str) -> RepositoryName {
        RepositoryName::parse(s).unwrap()
    }

    fn get(rest: &str) -> Result<Option<Endpoint>, Error> {
        Endpoint::parse(&Method::GET, rest)
    }

    #[test]
    fn parses_from_the_right() {
        let d = Digest::of(Algorithm::Sha256, b"");
        let id = UploadId::random();
        let tag = |t: &str| Reference::Tag(Tag::parse(t).unwrap());
        assert_eq!(get("").unwrap(), Some(Endpoint::Base));
        assert_eq!(get("_catalog").unwrap(), Some(Endpoint::Catalog));
        assert_eq!(
            get("a/b/c/d/e/f/g/h/manifests/latest").unwrap(),
            Some(Endpoint::Manifest {
                name: n("a/b/c/d/e/f/g/h"),
                reference: tag("latest")
            })
        );
        assert_eq!(
            get("x/blobs/manifests/v1").unwrap(),
            Some(Endpoint::Manifest {
                name: n("x/blobs"),
                reference: tag("v1")
            })
        );
        assert_eq!(
            get(&format!("x/manifests/{d}")).unwrap(),
            Some(Endpoint::Manifest {
                name: n("x"),
                reference: Reference::Digest(d.clone())
            })
        );
        assert_eq!(
            get("tags/list/tags/list").unwrap(),
            Some(Endpoint::Tags {
                name: n("tags/list")
            })
        );
        assert_eq!(
            get("a/blobs/uploads/").unwrap(),
            Some(Endpoint::Uploads { name: n("a") })
        );
        assert_eq!(
            get("a/blobs/uploads").unwrap(),
            Some(Endpoint::Uploads { name: n("a") })
        );
        assert_eq!(
            get(&format!("a/blobs/uploads/{id}")).unwrap(),
            Some(Endpoint::Upload {
                name: n("a"),
                id: id.clone()
            })
        );
        assert_eq!(
            get(&format!("a/blobs/{d}")).unwrap(),
            Some(Endpoint::Blob {
                name: n("a"),
                digest: d.clone()
            })
        );
        assert_eq!(
            get(&format!("a/referrers/{d}")).unwrap(),
            Some(Endpoint::Referrers {
                name: n("a"),
                digest: d.clone()
            })
        );
        assert_eq!(get("a/nothing").unwrap(), None);
        assert_eq!(get("manifests/x").unwrap(), None);
    }

    #[test]
    fn bad_parts_have_their_own_errors() {
        for bad in [
            "A/manifests/x",
            "../../etc/manifests/x",
            "/a/manifests/x",
            "a//b/tags/list",
        ] {
            assert!(matches!(get(bad), Err(Error::NameInvalid(_))), "{bad}");
        }
        assert!(matches!(
            get("a/blobs/uploads/123"),
            Err(Error::BlobUploadUnknown(_))
        ));
        assert!(matches!(
            get("a/blobs/sha256:00"),
            Err(Error::DigestInvalid(_))
        ));
        // Reading a reference that cannot exist is "unknown"; pushing to it is invalid.
        for method in [Method::GET, Method::HEAD, Method::DELETE] {
            assert!(matches!(
                Endpoint::parse(&method, "a/manifests/.INVALID_MANIFEST_NAME"),
                Err(Error::ManifestUnknown(_))
            ));
        }
        assert!(matches!(
            Endpoint::parse(&Method::PUT, "a/manifests/.INVALID_MANIFEST_NAME"),
            Err(Error::TagInvalid(_))
        ));
    }
}
