//! Bearer tokens: the compact JWS form, signing keys and their IDs, certificate chains,
//! verification as distribution does it, and signing for berth's own issuer.

pub mod chain;
pub mod jws;
pub mod keys;
pub mod signer;
pub mod verifier;

/// Why a token was refused. Every variant is an invalid token to the client; the
/// variant is for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a well-formed JWS or claim set.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// An algorithm berth does not check or was told not to accept.
    #[error("signing algorithm {0:?} is not accepted")]
    Algorithm(String),
    /// No trusted key matches the token's key references.
    #[error("signed by an untrusted key")]
    UntrustedKey,
    /// The `x5c` chain does not lead to a trusted certificate.
    #[error("certificate chain refused: {0}")]
    BadChain(String),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `iss` is not the configured issuer.
    #[error("issued by {0:?}, not the configured issuer")]
    WrongIssuer(String),
    /// `aud` does not name this service.
    #[error("issued for another service")]
    WrongAudience,
    /// Past `exp`.
    #[error("expired")]
    Expired,
    /// Before `nbf`.
    #[error("not valid yet")]
    NotYetValid,
    /// A refresh token presented as an access token.
    #[error("a refresh token grants no access")]
    RefreshToken,
}
