//! `Endpoint::parse`: a request path below `/v2/` to the endpoint it names. Repository
//! names may contain any number of `/`, so the fixed suffix is matched from the right.

use berth_core::{Error, RepositoryName};

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
        /// Tag or digest, unparsed (the handler reports which is malformed).
        reference: String,
    },
    /// `/v2/<name>/blobs/<digest>`.
    Blob {
        /// Repository.
        name: RepositoryName,
        /// Digest, unparsed.
        digest: String,
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
        id: String,
    },
    /// `/v2/<name>/referrers/<digest>`.
    Referrers {
        /// Repository.
        name: RepositoryName,
        /// Subject digest, unparsed.
        digest: String,
    },
}

impl Endpoint {
    /// Parses the part of the path after `/v2/`. `Ok(None)`: no such endpoint.
    pub fn parse(rest: &str) -> Result<Option<Endpoint>, Error> {
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
        let ep = if n >= 3 && tail(2) == ["tags", "list"] {
            Endpoint::Tags { name: name(2)? }
        } else if n >= 4 && tail(3) == ["blobs", "uploads", ""] {
            Endpoint::Uploads { name: name(3)? }
        } else if n >= 3 && tail(2) == ["blobs", "uploads"] {
            Endpoint::Uploads { name: name(2)? }
        } else if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
            Endpoint::Upload {
                name: name(3)?,
                id: segs[n - 1].to_owned(),
            }
        } else if n >= 3 && segs[n - 2] == "blobs" && !segs[n - 1].is_empty() {
            Endpoint::Blob {
                name: name(2)?,
                digest: segs[n - 1].to_owned(),
            }
        } else if n >= 3 && segs[n - 2] == "manifests" && !segs[n - 1].is_empty() {
            Endpoint::Manifest {
                name: name(2)?,
                reference: segs[n - 1].to_owned(),
            }
        } else if n >= 3 && segs[n - 2] == "referrers" && !segs[n - 1].is_empty() {
            Endpoint::Referrers {
                name: name(2)?,
                digest: segs[n - 1].to_owned(),
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

    fn n(s: &str) -> RepositoryName {
        RepositoryName::parse(s).unwrap()
    }

    #[test]
    fn parses_from_the_right() {
        assert_eq!(Endpoint::parse("").unwrap(), Some(Endpoint::Base));
        assert_eq!(
            Endpoint::parse("_catalog").unwrap(),
            Some(Endpoint::Catalog)
        );
        assert_eq!(
            Endpoint::parse("a/b/c/d/e/f/g/h/manifests/latest").unwrap(),
            Some(Endpoint::Manifest {
                name: n("a/b/c/d/e/f/g/h"),
                reference: "latest".into()
            })
        );
        assert_eq!(
            Endpoint::parse("x/blobs/manifests/v1").unwrap(),
            Some(Endpoint::Manifest {
                name: n("x/blobs"),
                reference: "v1".into()
            })
        );
        assert_eq!(
            Endpoint::parse("tags/list/tags/list").unwrap(),
            Some(Endpoint::Tags {
                name: n("tags/list")
            })
        );
        assert_eq!(
            Endpoint::parse("a/blobs/uploads/").unwrap(),
            Some(Endpoint::Uploads { name: n("a") })
        );
        assert_eq!(
            Endpoint::parse("a/blobs/uploads").unwrap(),
            Some(Endpoint::Uploads { name: n("a") })
        );
        assert_eq!(
            Endpoint::parse("a/blobs/uploads/123").unwrap(),
            Some(Endpoint::Upload {
                name: n("a"),
                id: "123".into()
            })
        );
        assert_eq!(
            Endpoint::parse("a/blobs/sha256:00").unwrap(),
            Some(Endpoint::Blob {
                name: n("a"),
                digest: "sha256:00".into()
            })
        );
        assert_eq!(
            Endpoint::parse("a/referrers/sha256:00").unwrap(),
            Some(Endpoint::Referrers {
                name: n("a"),
                digest: "sha256:00".into()
            })
        );
        assert_eq!(Endpoint::parse("a/nothing").unwrap(), None);
        assert_eq!(Endpoint::parse("manifests/x").unwrap(), None);
        assert!(matches!(
            Endpoint::parse("A/manifests/x"),
            Err(Error::NameInvalid(_))
        ));
        assert!(matches!(
            Endpoint::parse("../../etc/manifests/x"),
            Err(Error::NameInvalid(_))
        ));
    }
}
