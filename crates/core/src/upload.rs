//! Upload-session vocabulary: the session id berth hands out and a chunk of body bytes
//! with the offsets the client declared for it.

use std::fmt;

use crate::error::Error;
use crate::service::ByteStream;

/// An upload session id: a lowercase hyphenated UUID, as berth and distribution issue
/// them. Anything else names no session, so it never reaches a storage path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId(String);

impl UploadId {
    /// Validates an id from a request path; `BlobUploadUnknown` when it is not one.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let b = s.as_bytes();
        let ok = b.len() == 36
            && b.iter().enumerate().all(|(i, &c)| match i {
                8 | 13 | 18 | 23 => c == b'-',
                _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
            });
        if ok {
            Ok(UploadId(s.to_owned()))
        } else {
            Err(Error::BlobUploadUnknown(s.to_owned()))
        }
    }

    /// A fresh random id (version 4 UUID).
    pub fn random() -> Self {
        let mut b: [u8; 16] = rand::random();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex::encode(b);
        UploadId(format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        ))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Body bytes appended to an upload, with what the request declared about them.
pub struct Chunk {
    /// First byte's offset from `Content-Range`, checked against the session's offset.
    pub start: Option<u64>,
    /// Declared length (`Content-Range` or `Content-Length`), checked against what arrives.
    pub length: Option<u64>,
    /// The bytes.
    pub body: ByteStream,
}

impl Chunk {
    /// A chunk that declares nothing about itself (a streamed PATCH, a monolithic PUT).
    pub fn stream(body: ByteStream) -> Self {
        Chunk {
            start: None,
            length: None,
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let id = UploadId::random();
        assert_eq!(UploadId::parse(id.as_str()).unwrap(), id);
        assert_eq!(id.as_str().as_bytes()[14], b'4');
        for bad in [
            "",
            "123",
            "../../etc/passwd",
            "6F9619FF-8B86-D011-B42D-00C04FC964FF",
            "6f9619ff8b86d011b42d00c04fc964ff",
            "6f9619ff-8b86-d011-b42d-00c04fc964ffx",
        ] {
            assert!(UploadId::parse(bad).is_err(), "{bad}");
        }
        assert!(UploadId::parse("6f9619ff-8b86-d011-b42d-00c04fc964ff").is_ok());
    }
}
