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

/// Tag in front of a hash state saved by berth before it wrote Go's format; still read,
/// so sessions open across an upgrade resume without re-hashing.
const LEGACY_STATE_VERSION: &[u8] = b"berth-sha2-0.11\n";

/// A running hash in the binary encoding of Go's `crypto/sha256` and `crypto/sha512`
/// (`MarshalBinary`), which distribution saves under `hashstates/<alg>/<offset>`: a
/// four-byte tag, the chaining words big-endian, the partial block zero-padded to a whole
/// block, and the count of bytes hashed (big-endian `u64`). Saving in this encoding lets
/// distribution resume a hash berth saved, and berth one distribution saved.
///
/// `sha2` serialises the same state as the words little-endian, the count of whole
/// blocks (little-endian, `u64` for SHA-256, `u128` for SHA-512), the partial block's
/// length in one byte, and the partial block zero-padded to one byte short of a block
/// (it is never whole); `saved_state_is_gos_encoding` pins that layout.
struct GoState {
    tag: &'static [u8; 4],
    word: usize,
    block: usize,
    /// Bytes of `sha2`'s whole-block count.
    count: usize,
}

const GO_SHA256: GoState = GoState {
    tag: b"sha\x03",
    word: 4,
    block: 64,
    count: 8,
};

const GO_SHA512: GoState = GoState {
    tag: b"sha\x07",
    word: 8,
    block: 128,
    count: 16,
};

impl GoState {
    fn words(&self) -> usize {
        8 * self.word
    }

    /// `sha2`'s serialisation to Go's encoding; `None` if it is not the expected layout.
    fn encode(&self, s: &[u8]) -> Option<Vec<u8>> {
        let (words, rest) = s.split_at_checked(self.words())?;
        let (blocks, rest) = rest.split_at_checked(self.count)?;
        let (&pending, buffer) = rest.split_first()?;
        let pending = usize::from(pending);
        if buffer.len() != self.block - 1 || pending >= self.block {
            return None;
        }
        let mut count = [0u8; 16];
        count[..blocks.len()].copy_from_slice(blocks);
        let hashed = u128::from_le_bytes(count)
            .checked_mul(self.block as u128)?
            .checked_add(pending as u128)?;
        let hashed = u64::try_from(hashed).ok()?;
        let mut out = Vec::with_capacity(4 + self.words() + self.block + 8);
        out.extend_from_slice(self.tag);
        for w in words.chunks(self.word) {
            out.extend(w.iter().rev());
        }
        out.extend_from_slice(&buffer[..pending]);
        out.resize(out.len() + self.block - pending, 0);
        out.extend_from_slice(&hashed.to_be_bytes());
        Some(out)
    }

    /// Go's encoding to `sha2`'s serialisation; `None` if `g` is not a state of this
    /// algorithm.
    fn decode(&self, g: &[u8]) -> Option<Vec<u8>> {
        let rest = g.strip_prefix(self.tag.as_slice())?;
        let (words, rest) = rest.split_at_checked(self.words())?;
        let (buffer, hashed) = rest.split_at_checked(self.block)?;
        let hashed = u64::from_be_bytes(hashed.try_into().ok()?);
        let block = self.block as u64;
        let pending = usize::try_from(hashed % block).ok()?;
        let blocks = u128::from(hashed / block).to_le_bytes();
        let mut out = Vec::with_capacity(self.words() + self.count + self.block);
        for w in words.chunks(self.word) {
            out.extend(w.iter().rev());
        }
        out.extend_from_slice(&blocks[..self.count]);
        out.push(u8::try_from(pending).ok()?);
        out.extend_from_slice(&buffer[..pending]);
        out.resize(out.len() + self.block - 1 - pending, 0);
        Some(out)
    }
}

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

    /// Serialises the running state in Go's encoding (see [`GoState`]), the one
    /// distribution reads and writes, for resuming after a restart or on another node.
    pub fn save(&self) -> Vec<u8> {
        let saved = match self {
            Digester::Sha256(h) => GO_SHA256.encode(&h.serialize()),
            Digester::Sha512(h) => GO_SHA512.encode(&h.serialize()),
        };
        // Only a `sha2` whose layout changed gets here, and `saved_state_is_gos_encoding`
        // fails on it first; an empty state is never restored, so it means re-hashing.
        saved.unwrap_or_default()
    }

    /// Restores a state in Go's encoding (saved by berth or by distribution) or in the
    /// encoding berth used before; `None` when it is foreign or damaged.
    pub fn restore(algorithm: Algorithm, saved: &[u8]) -> Option<Self> {
        let sha2_state = match saved.strip_prefix(LEGACY_STATE_VERSION) {
            Some(body) => body.to_vec(),
            None => match algorithm {
                Algorithm::Sha256 => GO_SHA256.decode(saved)?,
                Algorithm::Sha512 => GO_SHA512.decode(saved)?,
            },
        };
        let state = sha2_state.as_slice();
        match algorithm {
            Algorithm::Sha256 => Sha256::deserialize(state.try_into().ok()?)
                .ok()
                .map(Digester::Sha256),
            Algorithm::Sha512 => Sha512::deserialize(state.try_into().ok()?)
                .ok()
                .map(Digester::Sha512),
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

    #[test]
    fn saved_state_resumes_past_whole_blocks() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            for cut in [0, 1, 63, 64, 65, 127, 128, 129, 300, 999, 1000] {
                let mut a = Digester::new(alg);
                a.update(&data[..cut]);
                let mut b = Digester::restore(alg, &a.save()).unwrap();
                b.update(&data[cut..]);
                assert_eq!(b.finish(), Digest::of(alg, &data), "{alg} cut at {cut}");
            }
        }
    }

    /// The encoding Go's `crypto/sha256` and `crypto/sha512` write, built here from the
    /// algorithms' initial values: tag, words big-endian, padded block, byte count.
    #[test]
    fn saved_state_is_gos_encoding() {
        let mut want = b"sha\x03".to_vec();
        for w in [
            0x6a09e667u32,
            0xbb67ae85,
            0x3c6ef372,
            0xa54ff53a,
            0x510e527f,
            0x9b05688c,
            0x1f83d9ab,
            0x5be0cd19,
        ] {
            want.extend_from_slice(&w.to_be_bytes());
        }
        want.extend_from_slice(b"abc");
        want.resize(want.len() + 61, 0);
        want.extend_from_slice(&3u64.to_be_bytes());
        let mut h = Digester::new(Algorithm::Sha256);
        h.update(b"abc");
        assert_eq!(h.save(), want);
        assert_eq!(want.len(), 108);

        let mut want = b"sha\x07".to_vec();
        for w in [
            0x6a09e667f3bcc908u64,
            0xbb67ae8584caa73b,
            0x3c6ef372fe94f82b,
            0xa54ff53a5f1d36f1,
            0x510e527fade682d1,
            0x9b05688c2b3e6c1f,
            0x1f83d9abfb41bd6b,
            0x5be0cd19137e2179,
        ] {
            want.extend_from_slice(&w.to_be_bytes());
        }
        want.extend_from_slice(b"hello");
        want.resize(want.len() + 123, 0);
        want.extend_from_slice(&5u64.to_be_bytes());
        let mut h = Digester::new(Algorithm::Sha512);
        h.update(b"hello");
        assert_eq!(h.save(), want);
        assert_eq!(want.len(), 204);

        // A whole block hashed: the count says 64 bytes and the buffer is empty.
        let mut h = Digester::new(Algorithm::Sha256);
        h.update(&[0u8; 64]);
        let saved = h.save();
        assert_eq!(&saved[100..], &64u64.to_be_bytes());
        assert!(saved[36..100].iter().all(|b| *b == 0));
        // Another algorithm's state is not taken for this one's.
        assert!(Digester::restore(Algorithm::Sha512, &saved).is_none());
    }

    #[test]
    fn legacy_state_still_restores() {
        let mut h = Sha256::new();
        h.update(b"hello ");
        let mut legacy = LEGACY_STATE_VERSION.to_vec();
        legacy.extend_from_slice(&h.serialize());
        let mut b = Digester::restore(Algorithm::Sha256, &legacy).unwrap();
        b.update(b"world");
        assert_eq!(b.finish(), Digest::of(Algorithm::Sha256, b"hello world"));
    }
}
