//! Checks bearer tokens the way distribution does: the signing key is found through an
//! `x5c` chain ending in the trusted bundle, an embedded JWK or a `kid` naming a trusted
//! key (a bundle certificate's key or a JWKS entry); the signature, issuer, audience and
//! validity period (with a minute of leeway) must hold. A verified token is remembered
//! until it expires, with the rights it grants, so each one costs one signature check;
//! later requests cost a hash of the token text and one comparison with the remembered
//! text (the cache compares whole tokens, so no forged text can stand for a verified
//! one).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use quick_cache::sync::Cache;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::jws::{self, Claims};
use super::keys::{Algorithm, JwkSet, KeyError, PublicKey};
use super::{TokenError, chain};
use crate::access::AccessSet;

/// Clock skew tolerated on `exp` and `nbf`, as distribution tolerates.
pub const LEEWAY_SECS: i64 = 60;
/// Verified tokens remembered at most (a token is one to two KiB with its `x5c`
/// certificate, so about 20 MiB when full).
const REMEMBERED: usize = 10_000;

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What a verifier trusts and expects.
#[derive(Debug, Clone, Default)]
pub struct VerifierConfig {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected in `aud`.
    pub service: String,
    /// PEM bundle of trusted certificates (`rootcertbundle`).
    pub root_bundle: Option<Vec<u8>>,
    /// A JWK Set document (`jwks`).
    pub jwks: Option<Vec<u8>>,
    /// Accepted `alg` names (`signingalgorithms`); all that berth checks when empty.
    pub algorithms: Vec<String>,
}

/// A token that passed verification: its claims, and the rights its `access` grants.
#[derive(Debug)]
pub struct Verified {
    /// The claims.
    pub claims: Claims,
    /// The rights `claims.access` grants, built once per token.
    pub rights: Arc<AccessSet>,
}

impl std::ops::Deref for Verified {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.claims
    }
}

/// Why a verifier cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifierError {
    /// The bundle holds something that is not a usable certificate.
    #[error("rootcertbundle: {0}")]
    Bundle(String),
    /// The JWKS file is unusable.
    #[error("jwks: {0}")]
    Jwks(String),
    /// Neither source yields a key.
    #[error("token auth needs at least one signing key: rootcertbundle or jwks")]
    NoKeys,
    /// An unknown algorithm name.
    #[error("signingalgorithms: unsupported algorithm {0:?}")]
    Algorithm(String),
}

/// Verifies bearer tokens.
pub struct TokenVerifier {
    issuer: String,
    service: String,
    roots: Vec<Vec<u8>>,
    keys: HashMap<String, PublicKey>,
    algorithms: Vec<Algorithm>,
    verified: Cache<Arc<str>, Arc<Verified>>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("issuer", &self.issuer)
            .field("service", &self.service)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Builds a verifier from its trust configuration.
    pub fn new(config: VerifierConfig) -> Result<TokenVerifier, VerifierError> {
        let mut roots = Vec::new();
        let mut keys = HashMap::new();
        if let Some(pem) = &config.root_bundle {
            for der in CertificateDer::pem_slice_iter(pem) {
                let der = der.map_err(|e| VerifierError::Bundle(e.to_string()))?;
                let (_, cert) = X509Certificate::from_der(&der)
                    .map_err(|e| VerifierError::Bundle(e.to_string()))?;
                let key = PublicKey::from_spki(cert.public_key().raw)
                    .map_err(|KeyError::Unsupported(e)| VerifierError::Bundle(e))?;
                for id in key.ids() {
                    keys.insert(id, key.clone());
                }
                roots.push(der.to_vec());
            }
        }
        if let Some(doc) = &config.jwks {
            let set: JwkSet =
                serde_json::from_slice(doc).map_err(|e| VerifierError::Jwks(e.to_string()))?;
            for jwk in &set.keys {
                let key = PublicKey::from_jwk(jwk)
                    .map_err(|KeyError::Unsupported(e)| VerifierError::Jwks(e))?;
                let id = jwk.kid.clone().unwrap_or_else(|| key.thumbprint());
                keys.insert(id, key);
            }
        }
        if keys.is_empty() {
            return Err(VerifierError::NoKeys);
        }
        let algorithms = if config.algorithms.is_empty() {
            Algorithm::ALL.to_vec()
        } else {
            config
                .algorithms
                .iter()
                .map(|a| Algorithm::parse(a).ok_or_else(|| VerifierError::Algorithm(a.clone())))
                .collect::<Result<_, _>>()?
        };
        Ok(TokenVerifier {
            issuer: config.issuer,
            service: config.service,
            roots,
            keys,
            algorithms,
            verified: Cache::new(REMEMBERED),
        })
    }

    /// The service tokens must be for.
    pub fn service(&self) -> &str {
        &self.service
    }

    fn signing_key(&self, header: &jws::Header, now: i64) -> Result<PublicKey, TokenError> {
        if !header.x5c.is_empty() {
            return chain::verify(&header.chain()?, &self.roots, now);
        }
        if let Some(jwk) = &header.jwk {
            let key = PublicKey::from_jwk(jwk).map_err(|_| TokenError::UntrustedKey)?;
            // An embedded key is only as good as its match among the trusted ones.
            return match jwk.kid.as_ref().and_then(|k| self.keys.get(k)) {
                Some(trusted) if *trusted == key || trusted.thumbprint() == key.thumbprint() => {
                    Ok(trusted.clone())
                }
                _ => Err(TokenError::UntrustedKey),
            };
        }
        match header.kid.as_ref().and_then(|k| self.keys.get(k)) {
            Some(k) => Ok(k.clone()),
            None => Err(TokenError::UntrustedKey),
        }
    }

    /// Verifies a compact JWS token and answers its claims and rights.
    pub fn verify(&self, raw: &str) -> Result<Arc<Verified>, TokenError> {
        let now = now();
        if let Some(known) = self.verified.get(raw) {
            self.check_time(&known.claims, now)?;
            return Ok(known);
        }
        let claims = self.checked_claims(raw, now)?;
        if claims.refresh {
            return Err(TokenError::RefreshToken);
        }
        let verified = Arc::new(Verified {
            rights: Arc::new(AccessSet::from_claims(&claims.access)),
            claims,
        });
        self.verified.insert(Arc::from(raw), verified.clone());
        Ok(verified)
    }

    /// Checks a refresh token berth issued: everything an access token is checked for,
    /// and the refresh marker.
    pub fn verify_refresh(&self, raw: &str) -> Result<Claims, TokenError> {
        let claims = self.checked_claims(raw, now())?;
        if !claims.refresh {
            return Err(TokenError::Malformed("not a refresh token".into()));
        }
        Ok(claims)
    }

    /// Signature, issuer, audience and validity period.
    fn checked_claims(&self, raw: &str, now: i64) -> Result<Claims, TokenError> {
        let jws = jws::parse(raw)?;
        let alg = Algorithm::parse(&jws.header.alg)
            .filter(|a| self.algorithms.contains(a))
            .ok_or_else(|| TokenError::Algorithm(jws.header.alg.clone()))?;
        let key = self.signing_key(&jws.header, now)?;
        if !key.verify(alg, jws.signing_input.as_bytes(), &jws.signature) {
            return Err(TokenError::BadSignature);
        }
        let claims: Claims = serde_json::from_slice(&jws.payload)
            .map_err(|e| TokenError::Malformed(format!("claims: {e}")))?;
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer(claims.iss));
        }
        if !claims.aud.0.contains(&self.service) {
            return Err(TokenError::WrongAudience);
        }
        self.check_time(&claims, now)?;
        Ok(claims)
    }

    fn check_time(&self, claims: &Claims, now: i64) -> Result<(), TokenError> {
        match claims.exp {
            Some(exp) if now <= exp.saturating_add(LEEWAY_SECS) => {}
            _ => return Err(TokenError::Expired),
        }
        if claims
            .nbf
            .is_some_and(|nbf| now < nbf.saturating_sub(LEEWAY_SECS))
        {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}
