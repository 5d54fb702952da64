//! A token's compact JWS form, `header.payload.signature` in base64url, split and decoded
//! without trusting any of it yet; and the claims berth reads from the payload.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Deserializer, Serialize};

use super::TokenError;
use super::keys::Jwk;
use crate::access::ResourceActions;

/// Longest token accepted; real ones are a few KiB even with a certificate chain.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// The protected header.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Header {
    /// Signature algorithm.
    #[serde(default)]
    pub alg: String,
    /// Key ID.
    #[serde(default)]
    pub kid: Option<String>,
    /// Certificate chain, leaf first, standard base64 DER.
    #[serde(default)]
    pub x5c: Vec<String>,
    /// An embedded key.
    #[serde(default)]
    pub jwk: Option<Jwk>,
}

impl Header {
    /// The `x5c` certificates as DER.
    pub fn chain(&self) -> Result<Vec<Vec<u8>>, TokenError> {
        self.x5c
            .iter()
            .map(|c| {
                STANDARD
                    .decode(c)
                    .map_err(|_| TokenError::Malformed("x5c entry is not base64".into()))
            })
            .collect()
    }
}

/// A split, decoded, not yet verified token.
#[derive(Debug, Clone)]
pub struct Jws<'a> {
    /// The header.
    pub header: Header,
    /// `header.payload` as sent: what the signature covers.
    pub signing_input: &'a str,
    /// The decoded payload.
    pub payload: Vec<u8>,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed(format!("{what} is not base64url")))
}

/// Splits and decodes a compact JWS.
pub fn parse(raw: &str) -> Result<Jws<'_>, TokenError> {
    if raw.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed("token too long".into()));
    }
    let mut parts = raw.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(
            "not three dot-separated parts".into(),
        ));
    };
    let header: Header = serde_json::from_slice(&b64(h, "header")?)
        .map_err(|e| TokenError::Malformed(format!("header: {e}")))?;
    Ok(Jws {
        header,
        signing_input: &raw[..h.len() + 1 + p.len()],
        payload: b64(p, "payload")?,
        signature: b64(s, "signature")?,
    })
}

/// `aud`: one string or a list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience(pub Vec<String>);

/// One audience is written as a plain string: distribution 2.x reads `aud` only that way.
impl Serialize for Audience {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(Audience(match OneOrMany::deserialize(d)? {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }))
    }
}

/// A NumericDate that may be written with a fraction.
fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.map(|v| v.floor() as i64))
}

/// The claims berth reads and writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Claims {
    /// Issuer.
    #[serde(default)]
    pub iss: String,
    /// Subject: the user the token was issued to ("" for anonymous).
    #[serde(default)]
    pub sub: String,
    /// Audience: the services the token is for.
    #[serde(default)]
    pub aud: Audience,
    /// Expiry (seconds since the epoch).
    #[serde(
        default,
        deserialize_with = "numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub exp: Option<i64>,
    /// Not before.
    #[serde(
        default,
        deserialize_with = "numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<i64>,
    /// Issued at.
    #[serde(
        default,
        deserialize_with = "numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub iat: Option<i64>,
    /// Token ID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    /// Granted access.
    #[serde(default)]
    pub access: Vec<ResourceActions>,
    /// Set on refresh tokens berth issues, which grant no access themselves.
    #[serde(
        default,
        rename = "berth_refresh",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub refresh: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_decodes() {
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"K"}"#);
        let p = URL_SAFE_NO_PAD.encode(r#"{"iss":"i","aud":"svc","exp":1.5e9,"access":[]}"#);
        let raw = format!("{h}.{p}.AAAA");
        let jws = parse(&raw).unwrap();
        assert_eq!(jws.header.alg, "RS256");
        assert_eq!(jws.signing_input, format!("{h}.{p}"));
        let claims: Claims = serde_json::from_slice(&jws.payload).unwrap();
        assert_eq!(claims.aud.0, ["svc"]);
        let written = serde_json::to_value(&claims).unwrap();
        assert_eq!(written["aud"], "svc", "one audience is a plain string");
        assert_eq!(claims.exp, Some(1_500_000_000));
        for bad in ["", "a.b", "a.b.c.d", "!!.e30.AA", &format!("{h}.{p}.!!")] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
