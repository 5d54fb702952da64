//! An `x5c` certificate chain checked against the trusted bundle (`rootcertbundle`):
//! each certificate is in its validity period and signed by the next, every issuer is a
//! CA, and the chain ends in, or is signed by, a bundle certificate. Key usages are not
//! restricted, as distribution does not restrict them.

use x509_parser::prelude::{ASN1Time, FromDer, X509Certificate};

use super::TokenError;
use super::keys::PublicKey;

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, TokenError> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| TokenError::BadChain(format!("unreadable certificate: {e}")))
}

fn is_ca(cert: &X509Certificate<'_>) -> bool {
    matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
}

fn signed_by(child: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    child.issuer() == issuer.subject() && child.verify_signature(Some(issuer.public_key())).is_ok()
}

/// Checks `chain` (leaf first, DER) against `roots` (DER) at `now` (seconds since the
/// epoch) and answers the leaf's public key.
pub fn verify(chain: &[Vec<u8>], roots: &[Vec<u8>], now: i64) -> Result<PublicKey, TokenError> {
    let at = ASN1Time::from_timestamp(now)
        .map_err(|_| TokenError::BadChain("clock out of range".into()))?;
    let certs = chain
        .iter()
        .map(|d| parse(d))
        .collect::<Result<Vec<_>, _>>()?;
    let (Some(leaf), Some(last)) = (certs.first(), certs.last()) else {
        return Err(TokenError::BadChain("empty x5c".into()));
    };
    if let Some(c) = certs.iter().find(|c| !c.validity().is_valid_at(at)) {
        return Err(TokenError::BadChain(format!(
            "certificate {} is outside its validity period",
            c.subject()
        )));
    }
    for pair in certs.windows(2) {
        if !is_ca(&pair[1]) || !signed_by(&pair[0], &pair[1]) {
            return Err(TokenError::BadChain(format!(
                "{} is not signed by the next certificate of the chain",
                pair[0].subject()
            )));
        }
    }
    let anchored = roots.iter().any(|root| {
        if chain.last().is_some_and(|d| d == root) {
            return true;
        }
        parse(root).is_ok_and(|r| r.validity().is_valid_at(at) && is_ca(&r) && signed_by(last, &r))
    });
    if !anchored {
        return Err(TokenError::BadChain(
            "the chain does not end in a trusted certificate".into(),
        ));
    }
    PublicKey::from_spki(leaf.public_key().raw)
        .map_err(|e| TokenError::BadChain(format!("leaf key: {e}")))
}
