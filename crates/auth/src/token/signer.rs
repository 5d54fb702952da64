//! Signs tokens with the issuer's private key. The header names the key by its libtrust
//! ID and carries the certificate as `x5c`, so any verifier whose `rootcertbundle` holds
//! that certificate (berth, distribution 2.x and 3.x) finds the key either way.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::SignatureScheme;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::SigningKey;
use serde::Serialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::keys::{Algorithm, PublicKey, x5c_entry};

/// Why a signing key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    /// The key file holds no usable private key.
    #[error("private key: {0}")]
    Key(String),
    /// The certificate file holds no usable certificate.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The key does not belong to the certificate.
    #[error("the private key does not match the certificate's public key")]
    Mismatch,
    /// Signing failed.
    #[error("signing: {0}")]
    Sign(String),
}

/// A private key and its certificate, ready to sign tokens.
pub struct Signer {
    key: Arc<dyn SigningKey>,
    scheme: SignatureScheme,
    alg: Algorithm,
    header: String,
    public: PublicKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// ECDSA signatures come out DER-encoded; JWS wants `r || s`, each `len` bytes.
fn der_to_fixed(der: &[u8], len: usize) -> Option<Vec<u8>> {
    fn take(b: &[u8]) -> Option<(usize, &[u8])> {
        let (&first, rest) = b.split_first()?;
        if first < 0x80 {
            return Some((first as usize, rest));
        }
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 2 || rest.len() < n {
            return None;
        }
        let v = rest[..n]
            .iter()
            .fold(0usize, |acc, &x| (acc << 8) | x as usize);
        Some((v, &rest[n..]))
    }
    fn integer(b: &[u8]) -> Option<(&[u8], &[u8])> {
        let (&tag, rest) = b.split_first()?;
        if tag != 0x02 {
            return None;
        }
        let (n, rest) = take(rest)?;
        (rest.len() >= n).then(|| (&rest[..n], &rest[n..]))
    }
    let (&tag, rest) = der.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (n, body) = take(rest)?;
    let body = body.get(..n)?;
    let (r, rest) = integer(body)?;
    let (s, _) = integer(rest)?;
    let mut out = Vec::with_capacity(2 * len);
    for v in [r, s] {
        let first = v.iter().position(|&x| x != 0).unwrap_or(v.len());
        let v = &v[first..];
        if v.len() > len {
            return None;
        }
        out.extend(std::iter::repeat_n(0, len - v.len()));
        out.extend_from_slice(v);
    }
    Some(out)
}

impl Signer {
    /// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1; RSA, P-256 or P-384) and the PEM
    /// certificate whose public key it is.
    pub fn from_pem(key_pem: &[u8], cert_pem: &[u8]) -> Result<Signer, SignerError> {
        let der =
            PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| SignerError::Key(e.to_string()))?;
        let key = rustls::crypto::ring::sign::any_supported_type(&der)
            .map_err(|e| SignerError::Key(e.to_string()))?;
        let cert = CertificateDer::pem_slice_iter(cert_pem)
            .next()
            .ok_or_else(|| SignerError::Certificate("no PEM certificate".into()))?
            .map_err(|e| SignerError::Certificate(e.to_string()))?;
        let (_, parsed) = X509Certificate::from_der(&cert)
            .map_err(|e| SignerError::Certificate(e.to_string()))?;
        let public = PublicKey::from_spki(parsed.public_key().raw)
            .map_err(|e| SignerError::Certificate(e.to_string()))?;
        let (scheme, alg) = [
            (SignatureScheme::RSA_PKCS1_SHA256, Algorithm::RS256),
            (SignatureScheme::ECDSA_NISTP256_SHA256, Algorithm::ES256),
            (SignatureScheme::ECDSA_NISTP384_SHA384, Algorithm::ES384),
        ]
        .into_iter()
        .find(|(s, _)| key.choose_scheme(&[*s]).is_some())
        .ok_or_else(|| SignerError::Key("not an RSA, P-256 or P-384 key".into()))?;
        #[derive(Serialize)]
        struct Header {
            typ: &'static str,
            alg: &'static str,
            kid: String,
            x5c: [String; 1],
        }
        let header = serde_json::to_vec(&Header {
            typ: "JWT",
            alg: alg.name(),
            kid: public.libtrust_id().unwrap_or_default(),
            x5c: [x5c_entry(&cert)],
        })
        .map_err(|e| SignerError::Sign(e.to_string()))?;
        let signer = Signer {
            key,
            scheme,
            alg,
            header: URL_SAFE_NO_PAD.encode(header),
            public,
        };
        let probe = b"berth key check";
        let sig = signer.sign_bytes(probe)?;
        if !signer.public.verify(alg, probe, &sig) {
            return Err(SignerError::Mismatch);
        }
        Ok(signer)
    }

    fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        let signer = self
            .key
            .choose_scheme(&[self.scheme])
            .ok_or_else(|| SignerError::Sign("scheme unavailable".into()))?;
        let sig = signer
            .sign(message)
            .map_err(|e| SignerError::Sign(e.to_string()))?;
        match self.alg {
            Algorithm::ES256 => der_to_fixed(&sig, 32),
            Algorithm::ES384 => der_to_fixed(&sig, 48),
            _ => Some(sig),
        }
        .ok_or_else(|| SignerError::Sign("malformed ECDSA signature".into()))
    }

    /// Signs `claims` into a compact JWS.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, SignerError> {
        let payload = serde_json::to_vec(claims).map_err(|e| SignerError::Sign(e.to_string()))?;
        let input = format!("{}.{}", self.header, URL_SAFE_NO_PAD.encode(payload));
        let sig = self.sign_bytes(input.as_bytes())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }

    /// The signature algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

#[cfg(test)]
mod tests {
    use super::der_to_fixed;

    #[test]
    fn der_signatures_become_fixed_width() {
        // SEQUENCE { INTEGER 0x00ff (leading zero for sign), INTEGER 0x01 }
        let der = [0x30, 0x07, 0x02, 0x02, 0x00, 0xff, 0x02, 0x01, 0x01];
        let fixed = der_to_fixed(&der, 4).unwrap();
        assert_eq!(fixed, [0, 0, 0, 0xff, 0, 0, 0, 1]);
        assert!(der_to_fixed(&der, 0).is_none());
        assert!(der_to_fixed(&[0x31, 0], 4).is_none());
        assert!(der_to_fixed(&[0x30, 0x05, 0x02], 4).is_none());
    }
}
