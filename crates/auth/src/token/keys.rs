//! Public keys that may sign tokens: read from a certificate's SubjectPublicKeyInfo or a
//! JWK, named the two ways token servers name them (the libtrust key ID distribution
//! 2.x matches `kid` against, and the RFC 7638 thumbprint distribution 3 uses), and used
//! to check a JWS signature.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey as ParsedKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// JWS signature algorithms berth checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// ECDSA P-521 with SHA-512.
    ES512,
    /// Ed25519.
    EdDSA,
}

impl Algorithm {
    /// Every algorithm, the default accepted set.
    pub const ALL: [Algorithm; 10] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES512,
        Algorithm::EdDSA,
    ];

    /// The JWS `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES512 => "ES512",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// The algorithm a JWS `alg` names, if berth checks it.
    pub fn parse(s: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == s)
    }
}

/// Why a key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not a public key berth can read.
    #[error("unsupported or malformed public key: {0}")]
    Unsupported(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Material {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { curve: Curve, point: Vec<u8> },
    Ed25519(Vec<u8>),
}

/// Elliptic curves for ES256/384/512.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    fn jwk_name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }

    /// Bytes of one coordinate (and of r and s in a signature).
    pub(crate) fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }
}

/// A public key that may have signed a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    material: Material,
    /// DER SubjectPublicKeyInfo, when the key came from one.
    spki: Option<Vec<u8>>,
}

fn strip_zeros(b: &[u8]) -> Vec<u8> {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b[first..].to_vec()
}

/// A JSON Web Key (the members berth reads).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Jwk {
    /// Key type: RSA, EC, OKP.
    #[serde(default)]
    pub kty: String,
    /// Key ID.
    #[serde(default)]
    pub kid: Option<String>,
    /// Curve (EC, OKP).
    #[serde(default)]
    pub crv: Option<String>,
    /// RSA modulus.
    #[serde(default)]
    pub n: Option<String>,
    /// RSA exponent.
    #[serde(default)]
    pub e: Option<String>,
    /// EC x / OKP public key.
    #[serde(default)]
    pub x: Option<String>,
    /// EC y.
    #[serde(default)]
    pub y: Option<String>,
    /// Certificate chain (base64 DER).
    #[serde(default)]
    pub x5c: Vec<String>,
}

/// A JWK Set file.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct JwkSet {
    /// The keys.
    pub keys: Vec<Jwk>,
}

impl PublicKey {
    /// Reads a DER SubjectPublicKeyInfo (RSA, EC P-256/384/521, Ed25519).
    pub fn from_spki(der: &[u8]) -> Result<PublicKey, KeyError> {
        let (_, spki) = SubjectPublicKeyInfo::from_der(der)
            .map_err(|e| KeyError::Unsupported(e.to_string()))?;
        let alg = spki.algorithm.algorithm.to_id_string();
        let material = match alg.as_str() {
            "1.2.840.113549.1.1.1" => match spki.parsed() {
                Ok(ParsedKey::RSA(k)) => Material::Rsa {
                    n: strip_zeros(k.modulus),
                    e: strip_zeros(k.exponent),
                },
                _ => return Err(KeyError::Unsupported("malformed RSA key".into())),
            },
            "1.2.840.10045.2.1" => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string());
                let curve = match curve.as_deref() {
                    Some("1.2.840.10045.3.1.7") => Curve::P256,
                    Some("1.3.132.0.34") => Curve::P384,
                    Some("1.3.132.0.35") => Curve::P521,
                    other => {
                        return Err(KeyError::Unsupported(format!("EC curve {other:?}")));
                    }
                };
                let point = spki.subject_public_key.data.to_vec();
                if point.len() != 1 + 2 * curve.field_len() || point[0] != 4 {
                    return Err(KeyError::Unsupported(
                        "compressed or malformed EC point".into(),
                    ));
                }
                Material::Ec { curve, point }
            }
            "1.3.101.112" => Material::Ed25519(spki.subject_public_key.data.to_vec()),
            other => return Err(KeyError::Unsupported(format!("algorithm {other}"))),
        };
        Ok(PublicKey {
            material,
            spki: Some(der.to_vec()),
        })
    }

    /// Reads a JWK (RSA, EC P-256/384/521, OKP Ed25519).
    pub fn from_jwk(jwk: &Jwk) -> Result<PublicKey, KeyError> {
        let b64 = |v: &Option<String>, what: &str| {
            v.as_deref()
                .and_then(|s| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok())
                .ok_or_else(|| KeyError::Unsupported(format!("JWK without a valid {what}")))
        };
        let material = match jwk.kty.as_str() {
            "RSA" => Material::Rsa {
                n: strip_zeros(&b64(&jwk.n, "n")?),
                e: strip_zeros(&b64(&jwk.e, "e")?),
            },
            "EC" => {
                let curve = match jwk.crv.as_deref() {
                    Some("P-256") => Curve::P256,
                    Some("P-384") => Curve::P384,
                    Some("P-521") => Curve::P521,
                    other => return Err(KeyError::Unsupported(format!("JWK curve {other:?}"))),
                };
                let (x, y) = (b64(&jwk.x, "x")?, b64(&jwk.y, "y")?);
                let len = curve.field_len();
                if x.len() != len || y.len() != len {
                    return Err(KeyError::Unsupported(
                        "JWK EC coordinates of the wrong size".into(),
                    ));
                }
                let mut point = vec![4];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Material::Ec { curve, point }
            }
            "OKP" if jwk.crv.as_deref() == Some("Ed25519") => Material::Ed25519(b64(&jwk.x, "x")?),
            other => return Err(KeyError::Unsupported(format!("JWK key type {other:?}"))),
        };
        Ok(PublicKey {
            material,
            spki: None,
        })
    }

    /// The libtrust key ID: SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits, in
    /// base32 as twelve colon-separated groups of four. `None` for keys read from a JWK.
    pub fn libtrust_id(&self) -> Option<String> {
        let spki = self.spki.as_ref()?;
        let sum = Sha256::digest(spki);
        let encoded = data_encoding::BASE32_NOPAD.encode(&sum[..30]);
        let groups: Vec<&str> = encoded
            .as_bytes()
            .chunks(4)
            .filter_map(|c| std::str::from_utf8(c).ok())
            .collect();
        Some(groups.join(":"))
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url).
    pub fn thumbprint(&self) -> String {
        let enc = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let json = match &self.material {
            Material::Rsa { n, e } => {
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, enc(e), enc(n))
            }
            Material::Ec { curve, point } => {
                let len = curve.field_len();
                format!(
                    r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                    curve.jwk_name(),
                    enc(&point[1..1 + len]),
                    enc(&point[1 + len..])
                )
            }
            Material::Ed25519(x) => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, enc(x)),
        };
        enc(&Sha256::digest(json.as_bytes()))
    }

    /// The names a `kid` may use for this key.
    pub fn ids(&self) -> Vec<String> {
        let mut ids = vec![self.thumbprint()];
        ids.extend(self.libtrust_id());
        ids
    }

    /// Checks a JWS signature made with `alg` over `message`.
    pub fn verify(&self, alg: Algorithm, message: &[u8], sig: &[u8]) -> bool {
        use Algorithm as A;
        match (&self.material, alg) {
            (Material::Rsa { n, e }, _) => {
                let params: &signature::RsaParameters = match alg {
                    A::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    A::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    A::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    A::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    A::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    A::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }
            (
                Material::Ec {
                    curve: Curve::P256,
                    point,
                },
                A::ES256,
            ) => UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, sig)
                .is_ok(),
            (
                Material::Ec {
                    curve: Curve::P384,
                    point,
                },
                A::ES384,
            ) => UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                .verify(message, sig)
                .is_ok(),
            (
                Material::Ec {
                    curve: Curve::P521,
                    point,
                },
                A::ES512,
            ) => verify_p521(point, message, sig),
            (Material::Ed25519(x), A::EdDSA) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, sig)
                .is_ok(),
            _ => false,
        }
    }
}

/// ring has no P-521; RustCrypto's p521 checks ES512.
fn verify_p521(point: &[u8], message: &[u8], sig: &[u8]) -> bool {
    use p521::ecdsa::signature::Verifier;
    let Ok(key) = p521::ecdsa::VerifyingKey::from_sec1_bytes(point) else {
        return false;
    };
    let Ok(sig) = p521::ecdsa::Signature::from_slice(sig) else {
        return false;
    };
    key.verify(message, &sig).is_ok()
}

/// Standard base64 (the `x5c` encoding) of DER bytes.
pub(crate) fn x5c_entry(der: &[u8]) -> String {
    STANDARD.encode(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn es512_signatures_verify_through_a_jwk() {
        use p521::ecdsa::signature::Signer;
        let mut secret = [0u8; 66];
        secret[65] = 7;
        let sk = p521::ecdsa::SigningKey::from_slice(&secret).unwrap();
        let point = p521::ecdsa::VerifyingKey::from(&sk).to_encoded_point(false);
        let jwk = Jwk {
            kty: "EC".into(),
            crv: Some("P-521".into()),
            x: Some(URL_SAFE_NO_PAD.encode(point.x().unwrap())),
            y: Some(URL_SAFE_NO_PAD.encode(point.y().unwrap())),
            ..Jwk::default()
        };
        let key = PublicKey::from_jwk(&jwk).unwrap();
        let sig: p521::ecdsa::Signature = sk.sign(b"message");
        let sig = sig.to_bytes();
        assert!(key.verify(Algorithm::ES512, b"message", &sig));
        assert!(!key.verify(Algorithm::ES512, b"massage", &sig));
        assert!(!key.verify(Algorithm::ES256, b"message", &sig));
    }
}
