//! distribution's names for the lowest TLS version (`http.tls.minimumtls`) and for cipher
//! suites (`http.tls.ciphersuites`, Go's `crypto/tls` constant names), and what rustls
//! makes of them. rustls speaks TLS 1.2 and 1.3 with AEAD suites only, so the older
//! versions and the CBC, RC4 and 3DES suites distribution accepts are named in a start-up
//! warning instead of being served.

use rustls::SupportedCipherSuite;
use rustls::crypto::ring::cipher_suite as ring;

/// The lowest protocol version berth accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinimumTls {
    /// TLS 1.2 and 1.3 (distribution's default, `tls1.2`).
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl MinimumTls {
    /// The versions a server with this floor offers.
    pub fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        const BOTH: &[&rustls::SupportedProtocolVersion] =
            &[&rustls::version::TLS13, &rustls::version::TLS12];
        const ONLY_13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
        match self {
            MinimumTls::Tls12 => BOTH,
            MinimumTls::Tls13 => ONLY_13,
        }
    }

    /// distribution's spelling.
    pub fn name(self) -> &'static str {
        match self {
            MinimumTls::Tls12 => "tls1.2",
            MinimumTls::Tls13 => "tls1.3",
        }
    }
}

/// Reads `http.tls.minimumtls` (absent means `tls1.2`). Answers the floor and, for
/// `tls1.0`/`tls1.1`, a warning that the floor is TLS 1.2 anyway; an unknown value is an
/// error message.
pub fn minimum(value: Option<&str>) -> Result<(MinimumTls, Option<String>), String> {
    match value {
        None | Some("tls1.2") => Ok((MinimumTls::Tls12, None)),
        Some("tls1.3") => Ok((MinimumTls::Tls13, None)),
        Some(old @ ("tls1.0" | "tls1.1")) => Ok((
            MinimumTls::Tls12,
            Some(format!(
                "http.tls.minimumtls: {old} asked for, but berth's TLS library speaks only TLS 1.2 \
                 and 1.3, so the lowest version accepted is TLS 1.2"
            )),
        )),
        Some(other) => Err(format!(
            "unknown version {other:?} (tls1.0, tls1.1, tls1.2 or tls1.3)"
        )),
    }
}

/// Names distribution accepts that rustls implements, with the rustls suite.
const IMPLEMENTED: &[(&str, SupportedCipherSuite)] = &[
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ring::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ring::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        ring::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ring::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        ring::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        ring::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    ("TLS_AES_128_GCM_SHA256", ring::TLS13_AES_128_GCM_SHA256),
    ("TLS_AES_256_GCM_SHA384", ring::TLS13_AES_256_GCM_SHA384),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        ring::TLS13_CHACHA20_POLY1305_SHA256,
    ),
];

/// Names distribution (2.8) accepts that rustls does not implement: CBC, RC4 and 3DES
/// suites, and RSA key exchange without forward secrecy.
const NOT_IMPLEMENTED: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// The suites to serve, and warnings about the names that could not be honoured.
#[derive(Debug, Clone)]
pub struct Suites {
    /// Enabled suites, in the order written (TLS 1.3 ones added when none was named).
    pub enabled: Vec<SupportedCipherSuite>,
    /// Start-up warnings.
    pub warnings: Vec<String>,
}

fn is_tls13(suite: &SupportedCipherSuite) -> bool {
    matches!(suite, SupportedCipherSuite::Tls13(_))
}

/// Resolves `http.tls.ciphersuites`. Empty means the defaults, which are distribution's
/// defaults too (ECDHE with AES-GCM or ChaCha20-Poly1305, and the TLS 1.3 suites).
///
/// As in distribution (where Go does not let TLS 1.3 suites be chosen), a list naming no
/// TLS 1.3 suite restricts TLS 1.2 only; one that names some restricts TLS 1.3 to those.
/// A name distribution does not know is an error, as it is there; names it knows that
/// rustls does not implement are listed in a warning, and are an error only when
/// nothing usable is left.
pub fn cipher_suites(names: &[String], minimum: MinimumTls) -> Result<Suites, String> {
    let defaults = rustls::crypto::ring::DEFAULT_CIPHER_SUITES;
    if names.is_empty() {
        return Ok(Suites {
            enabled: defaults.to_vec(),
            warnings: Vec::new(),
        });
    }
    let mut enabled: Vec<SupportedCipherSuite> = Vec::new();
    let mut ignored: Vec<&str> = Vec::new();
    for name in names {
        if let Some((_, suite)) = IMPLEMENTED.iter().find(|(n, _)| n == name) {
            if !enabled.contains(suite) {
                enabled.push(*suite);
            }
        } else if NOT_IMPLEMENTED.contains(&name.as_str()) {
            ignored.push(name);
        } else {
            return Err(format!("unknown cipher suite {name:?}"));
        }
    }
    if enabled.is_empty() {
        return Err(format!(
            "none of the listed suites is implemented by berth's TLS library (rustls offers \
             only AEAD suites: ECDHE with AES-GCM or ChaCha20-Poly1305, and TLS 1.3's); \
             not implemented: {}",
            ignored.join(", ")
        ));
    }
    let mut warnings = Vec::new();
    if !ignored.is_empty() {
        warnings.push(format!(
            "http.tls.ciphersuites: ignoring suites berth's TLS library does not implement: {}",
            ignored.join(", ")
        ));
    }
    let named_tls13 = enabled.iter().any(is_tls13);
    if minimum == MinimumTls::Tls13 && !named_tls13 {
        warnings.push(
            "http.tls.ciphersuites names only TLS 1.2 suites, which minimumtls tls1.3 never \
             uses; every TLS 1.3 suite is offered"
                .to_owned(),
        );
    }
    if !named_tls13 {
        enabled.extend(defaults.iter().filter(|s| is_tls13(s)).copied());
    }
    Ok(Suites { enabled, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn minimum_versions() {
        assert_eq!(minimum(None).unwrap(), (MinimumTls::Tls12, None));
        assert_eq!(minimum(Some("tls1.3")).unwrap().0, MinimumTls::Tls13);
        let (floor, warning) = minimum(Some("tls1.0")).unwrap();
        assert_eq!(floor, MinimumTls::Tls12);
        assert!(warning.unwrap().contains("TLS 1.2"));
        assert!(minimum(Some("tls1.4")).unwrap_err().contains("tls1.4"));
        assert!(
            minimum(Some("TLS1.2")).is_err(),
            "distribution's names are lower case"
        );
    }

    #[test]
    fn empty_list_is_the_default_set() {
        let s = cipher_suites(&[], MinimumTls::Tls12).unwrap();
        assert_eq!(s.enabled.len(), 9);
        assert!(s.warnings.is_empty());
    }

    #[test]
    fn a_tls12_list_keeps_every_tls13_suite() {
        let s = cipher_suites(
            &names(&[
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_RSA_WITH_AES_128_CBC_SHA",
            ]),
            MinimumTls::Tls12,
        )
        .unwrap();
        assert_eq!(s.enabled[0], ring::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256);
        assert_eq!(s.enabled.iter().filter(|s| !is_tls13(s)).count(), 1);
        assert_eq!(s.enabled.iter().filter(|s| is_tls13(s)).count(), 3);
        assert_eq!(s.warnings.len(), 1);
        assert!(s.warnings[0].contains("TLS_RSA_WITH_AES_128_CBC_SHA"));
    }

    #[test]
    fn named_tls13_suites_restrict_tls13() {
        let s = cipher_suites(&names(&["TLS_AES_256_GCM_SHA384"]), MinimumTls::Tls13).unwrap();
        assert_eq!(s.enabled, vec![ring::TLS13_AES_256_GCM_SHA384]);
    }

    #[test]
    fn unusable_and_unknown_lists_are_errors() {
        let e = cipher_suites(
            &names(&["TLS_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA"]),
            MinimumTls::Tls12,
        )
        .unwrap_err();
        assert!(e.contains("TLS_RSA_WITH_RC4_128_SHA"), "{e}");
        let e = cipher_suites(&names(&["TLS_MADE_UP"]), MinimumTls::Tls12).unwrap_err();
        assert!(e.contains("TLS_MADE_UP"), "{e}");
    }
}
