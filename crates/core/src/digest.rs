//! Content digests (`sha256:<hex>`, `sha512:<hex>`) and the incremental hasher that
//! computes them, including the serialisable running state a chunked upload resumes from.

use std::fmt;
use std::str::FromStr;

use sha2::digest::common::hazmat::SerializableState;
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::Error;

/// A digest algorithm berth can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the default everywhere.
    Sha256,
    /// SHA-512, accepted wherever a digest is.
    Sha512,
}

impl Algorithm {
    /// The name used in digests and storage paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Number of hex characters in an encoded digest of this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// Parses an algorithm name; anything but sha256 and sha512 is `DIGEST_INVALID`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            other => Err(Error::DigestInvalid(format!(
                "unsupported digest algorithm {other:?} (sha256 and sha512 are supported)"
            ))),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated content digest: a supported algorithm and its lowercase hex encoding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses `alg:hex`, checking the algorithm and the exact hex length and alphabet.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let (alg, hex) = s.split_once(':').ok_or_else(|| {
            Error::DigestInvalid(format!("{s:?} is not of the form algorithm:hex"))
        })?;
        let algorithm = Algorithm::parse(alg)?;
        let valid = hex.len() == algorithm.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(Error::DigestInvalid(format!(
                "{s:?}: a {algorithm} digest is {} lowercase hex characters",
                algorithm.hex_len()
            )));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// Digest of a complete byte slice.
    pub fn of(algorithm: Algorithm, data: &[u8]) -> Self {
        let mut d = Digester::new(algorithm);
        d.update(data);
        d.finish()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex encoding.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Tag in front of a saved hash state, so a state written by another build or another
/// hashing library is recognised as foreign and the upload is re-hashed instead.
const STATE_VERSION: &[u8] = b"berth-sha2-0.11\n";

/// An incremental hasher for one algorithm.
#[derive(Clone)]
pub enum Digester {
    /// Running SHA-256.
    Sha256(Sha256),
    /// Running SHA-512.
    Sha512(Sha512),
}

impl Digester {
    /// A fresh hasher.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Digester::Sha256(Sha256::new()),
            Algorithm::Sha512 => Digester::Sha512(Sha512::new()),
        }
    }

    /// The algorithm this hasher computes.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Digester::Sha256(_) => Algorithm::Sha256,
            Digester::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Digester::Sha256(h) => h.update(data),
            Digester::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything fed so far (the hasher itself is left untouched).
    pub fn current(&self) -> Digest {
        self.clone().finish()
    }

    /// Consumes the hasher and returns the digest.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Digester::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Digester::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }

    /// Serialises the running state (versioned), for resuming after a restart.
    pub fn save(&self) -> Vec<u8> {
        let mut out = STATE_VERSION.to_vec();
        match self {
            Digester::Sha256(h) => out.extend_from_slice(&h.serialize()),
            Digester::Sha512(h) => out.extend_from_slice(&h.serialize()),
        }
        out
    }

    /// Restores a state written by [`Digester::save`]; `None` when it is foreign or damaged.
    pub fn restore(algorithm: Algorithm, saved: &[u8]) -> Option<Self> {
        let body = saved.strip_prefix(STATE_VERSION)?;
        match algorithm {
            Algorithm::Sha256 => {
                let state = body.try_into().ok()?;
                Sha256::deserialize(state).ok().map(Digester::Sha256)
            }
            Algorithm::Sha512 => {
                let state = body.try_into().ok()?;
                Sha512::deserialize(state).ok().map(Digester::Sha512)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let d = Digest::parse(
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        )
        .unwrap();
        assert_eq!(d, Digest::of(Algorithm::Sha256, b""));
        for bad in [
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:abc",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha256",
            "sha256:../../../../etc/passwd00000000000000000000000000000000000000",
        ] {
            assert!(
                matches!(Digest::parse(bad), Err(Error::DigestInvalid(_))),
                "{bad}"
            );
        }
        let d512 = Digest::of(Algorithm::Sha512, b"abc");
        assert_eq!(Digest::parse(&d512.to_string()).unwrap(), d512);
    }

    #[test]
    fn saved_state_resumes() {
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let mut a = Digester::new(alg);
            a.update(b"hello ");
            let saved = a.save();
            let mut b = Digester::restore(alg, &saved).unwrap();
            b.update(b"world");
            assert_eq!(b.finish(), Digest::of(alg, b"hello world"));
            assert!(Digester::restore(alg, b"garbage").is_none());
            assert!(Digester::restore(alg, &saved[..saved.len() - 1]).is_none());
        }
    }
}
