//! The `Authorization` header: which scheme it uses, and Basic credentials decoded.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Credentials sent with the Basic scheme.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Password, as sent.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// An `Authorization` header split into scheme and parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorization<'a> {
    /// `Basic <base64>`.
    Basic(&'a str),
    /// `Bearer <token>`.
    Bearer(&'a str),
    /// Any other scheme, or a header with no parameter.
    Other,
}

impl<'a> Authorization<'a> {
    /// Splits a header value; scheme names are case-insensitive.
    pub fn parse(value: &'a str) -> Authorization<'a> {
        let Some((scheme, rest)) = value.trim().split_once(' ') else {
            return Authorization::Other;
        };
        let rest = rest.trim();
        if rest.is_empty() {
            Authorization::Other
        } else if scheme.eq_ignore_ascii_case("basic") {
            Authorization::Basic(rest)
        } else if scheme.eq_ignore_ascii_case("bearer") {
            Authorization::Bearer(rest)
        } else {
            Authorization::Other
        }
    }
}

/// Decodes the parameter of a Basic header: base64 of `user:password` (the password may
/// contain colons; the user may not). `None` when it is not that.
pub fn decode(param: &str) -> Option<Credentials> {
    let raw = STANDARD.decode(param.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    if user.is_empty() {
        return None;
    }
    Some(Credentials {
        user: user.to_owned(),
        password: password.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert_eq!(
            Authorization::parse("Basic YTpi"),
            Authorization::Basic("YTpi")
        );
        assert_eq!(
            Authorization::parse("bearer  x.y.z "),
            Authorization::Bearer("x.y.z")
        );
        assert_eq!(Authorization::parse("Basic"), Authorization::Other);
        assert_eq!(Authorization::parse("Digest a=b"), Authorization::Other);
        let c = decode(&STANDARD.encode("alice:pa:ss")).unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("alice", "pa:ss"));
        assert!(decode(&STANDARD.encode("nocolon")).is_none());
        assert!(decode(&STANDARD.encode(":pw")).is_none());
        assert!(decode("%%%").is_none());
        assert!(!format!("{c:?}").contains("pa:ss"));
    }
}
