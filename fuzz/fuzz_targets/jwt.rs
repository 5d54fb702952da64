//! Bearer tokens from any text: the JWS splitter, the claims, the certificate-chain and
//! key readers and the whole verifier must refuse what they cannot read (never panic),
//! and nothing unsigned by a trusted key may verify.

#![no_main]

use std::sync::OnceLock;

use berth_auth::token::jws::{self, Claims};
use berth_auth::token::keys::PublicKey;
use berth_auth::token::verifier::{TokenVerifier, VerifierConfig};
use berth_auth::token::{TokenError, chain};
use libfuzzer_sys::fuzz_target;

/// A verifier trusting one P-256 key nobody holds the private half of.
fn verifier() -> &'static TokenVerifier {
    static V: OnceLock<TokenVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let zero = "A".repeat(43);
        let jwks = format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"k","x":"{zero}","y":"{zero}"}}]}}"#
        );
        TokenVerifier::new(VerifierConfig {
            issuer: "i".into(),
            service: "s".into(),
            jwks: Some(jwks.into_bytes()),
            ..VerifierConfig::default()
        })
        .expect("verifier")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = PublicKey::from_spki(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = jws::parse(text) {
        assert!(text.starts_with(parsed.signing_input));
        if let Ok(certs) = parsed.header.chain() {
            let _ = chain::verify(&certs, &[], 1_700_000_000);
        }
        let _ = serde_json::from_slice::<Claims>(&parsed.payload);
    }
    match verifier().verify(text) {
        Ok(claims) => panic!("an unsigned token verified: {claims:?}"),
        Err(TokenError::Malformed(_)) | Err(_) => {}
    }
});
