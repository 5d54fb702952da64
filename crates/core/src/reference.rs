//! A manifest reference: a tag or a digest.

use std::fmt;

use crate::digest::Digest;
use crate::error::Error;
use crate::name::Tag;

/// What follows `/manifests/` in a request: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A tag name.
    Tag(Tag),
    /// A content digest.
    Digest(Digest),
}

impl Reference {
    /// A reference containing ':' is a digest (tags cannot contain ':'); anything else a tag.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.contains(':') {
            Digest::parse(s).map(Reference::Digest)
        } else {
            Tag::parse(s).map(Reference::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}
