//! Tokens end to end with keys and certificates made by the `openssl` CLI: what berth's
//! issuer signs, berth's verifier accepts; tokens crafted and signed outside berth (as an
//! external token server would) are accepted or refused for the right reason.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use berth_auth::htpasswd::Htpasswd;
use berth_auth::issuer::{Grant, Issuer, IssuerSettings, TokenRequest};
use berth_auth::policy::{Policy, RuleSpec};
use berth_auth::token::TokenError;
use berth_auth::token::keys::PublicKey;
use berth_auth::token::verifier::{TokenVerifier, VerifierConfig};
use berth_auth::{Resource, Scope};
use x509_parser::prelude::{FromDer, X509Certificate};

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A self-signed key pair: (key path, cert path).
fn self_signed(dir: &Path, name: &str, newkey: &[&str]) -> (PathBuf, PathBuf) {
    let (k, c) = (format!("{name}.key"), format!("{name}.crt"));
    let mut args = vec!["req", "-x509", "-nodes", "-days", "2", "-subj"];
    let subj = format!("/CN={name}");
    args.push(&subj);
    args.extend_from_slice(&["-keyout", &k, "-out", &c]);
    args.extend_from_slice(newkey);
    openssl(dir, &args);
    (dir.join(k), dir.join(c))
}

const RSA: &[&str] = &["-newkey", "rsa:2048"];

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn verifier(bundle: &Path) -> TokenVerifier {
    TokenVerifier::new(VerifierConfig {
        issuer: "test-issuer".into(),
        service: "test-service".into(),
        root_bundle: Some(std::fs::read(bundle).unwrap()),
        ..VerifierConfig::default()
    })
    .unwrap()
}

fn cert_key(cert: &Path) -> PublicKey {
    let pem = std::fs::read(cert).unwrap();
    let der = rustls_pem_cert(&pem);
    let (_, c) = X509Certificate::from_der(&der).unwrap();
    PublicKey::from_spki(c.public_key().raw).unwrap()
}

fn rustls_pem_cert(pem: &[u8]) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem).unwrap().to_vec()
}

/// Signs `header.payload` with an RSA key through `openssl dgst` (RS256), as a token
/// server outside berth would.
fn rs256(dir: &Path, key: &Path, header: &serde_json::Value, claims: &serde_json::Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let msg = dir.join("msg");
    std::fs::write(&msg, &input).unwrap();
    let sig = openssl(
        dir,
        &[
            "dgst",
            "-sha256",
            "-sign",
            key.to_str().unwrap(),
            msg.to_str().unwrap(),
        ],
    );
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn claims(exp: i64, nbf: i64) -> serde_json::Value {
    serde_json::json!({
        "iss": "test-issuer", "sub": "alice", "aud": "test-service",
        "exp": exp, "nbf": nbf, "iat": nbf,
        "access": [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}],
    })
}

#[test]
fn libtrust_key_id_matches_an_independent_computation() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert) = self_signed(dir.path(), "t", RSA);
    let spki = openssl(
        dir.path(),
        &["x509", "-in", cert.to_str().unwrap(), "-pubkey", "-noout"],
    );
    std::fs::write(dir.path().join("pub.pem"), spki).unwrap();
    let der = openssl(
        dir.path(),
        &["pkey", "-pubin", "-in", "pub.pem", "-outform", "DER"],
    );
    let sum = openssl_sha256(dir.path(), &der);
    let expected = coreutils_base32(dir.path(), &sum[..30]);
    let groups: Vec<String> = expected
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    assert_eq!(cert_key(&cert).libtrust_id().unwrap(), groups.join(":"));
    assert_eq!(groups.len(), 12);
}

fn openssl_sha256(dir: &Path, data: &[u8]) -> Vec<u8> {
    std::fs::write(dir.join("data"), data).unwrap();
    openssl(dir, &["dgst", "-sha256", "-binary", "data"])
}

/// Base32 by coreutils' `base32`, without padding: a second implementation to check
/// berth's key IDs against.
fn coreutils_base32(dir: &Path, b: &[u8]) -> String {
    std::fs::write(dir.join("raw"), b).unwrap();
    let out = Command::new("base32")
        .args(["--wrap=0", "raw"])
        .current_dir(dir)
        .output()
        .expect("coreutils base32");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .trim_end_matches('=')
        .to_owned()
}

#[test]
fn externally_signed_tokens_are_checked_like_distribution() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, cert) = self_signed(d, "trusted", RSA);
    let (other_key, other_cert) = self_signed(d, "other", RSA);
    let v = verifier(&cert);
    let kid = cert_key(&cert).libtrust_id().unwrap();
    let thumb = cert_key(&cert).thumbprint();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": kid});
    let t = now();

    let ok = rs256(d, &key, &header, &claims(t + 300, t));
    let c = v.verify(&ok).unwrap();
    assert_eq!(c.sub, "alice");
    // The RFC 7638 thumbprint names the same key (distribution 3's kid).
    let by_thumb = serde_json::json!({"alg": "RS256", "kid": thumb});
    v.verify(&rs256(d, &key, &by_thumb, &claims(t + 300, t)))
        .unwrap();
    // Within the minute of leeway on both ends.
    v.verify(&rs256(d, &key, &header, &claims(t - 30, t + 30)))
        .unwrap();

    let refused = |token: String| v.verify(&token).unwrap_err();
    assert_eq!(
        refused(rs256(d, &key, &header, &claims(t - 120, t - 600))),
        TokenError::Expired
    );
    assert_eq!(
        refused(rs256(d, &key, &header, &claims(t + 600, t + 300))),
        TokenError::NotYetValid
    );
    let mut wrong_iss = claims(t + 300, t);
    wrong_iss["iss"] = "someone-else".into();
    assert!(matches!(
        refused(rs256(d, &key, &header, &wrong_iss)),
        TokenError::WrongIssuer(_)
    ));
    let mut wrong_aud = claims(t + 300, t);
    wrong_aud["aud"] = serde_json::json!(["other-service"]);
    assert_eq!(
        refused(rs256(d, &key, &header, &wrong_aud)),
        TokenError::WrongAudience
    );
    // Signed by an untrusted key that claims the trusted key's id.
    assert_eq!(
        refused(rs256(d, &other_key, &header, &claims(t + 300, t))),
        TokenError::BadSignature
    );
    // An unknown key id.
    let other_kid = serde_json::json!({"alg": "RS256", "kid": cert_key(&other_cert).libtrust_id()});
    assert_eq!(
        refused(rs256(d, &other_key, &other_kid, &claims(t + 300, t))),
        TokenError::UntrustedKey
    );
    // A tampered payload.
    let mut parts: Vec<String> = ok.split('.').map(str::to_owned).collect();
    let mut tampered = claims(t + 300, t);
    tampered["access"][0]["name"] = "team/other".into();
    parts[1] = URL_SAFE_NO_PAD.encode(tampered.to_string());
    assert_eq!(refused(parts.join(".")), TokenError::BadSignature);
    // An algorithm the configuration does not accept.
    let es_only = TokenVerifier::new(VerifierConfig {
        issuer: "test-issuer".into(),
        service: "test-service".into(),
        root_bundle: Some(std::fs::read(&cert).unwrap()),
        algorithms: vec!["ES256".into()],
        ..VerifierConfig::default()
    })
    .unwrap();
    assert!(matches!(es_only.verify(&ok), Err(TokenError::Algorithm(_))));
    assert!(matches!(refused("a.b".into()), TokenError::Malformed(_)));
}

#[test]
fn x5c_chains_must_end_in_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A CA in the bundle, and a signing certificate it issued (not in the bundle).
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=root",
            "-newkey",
            "rsa:2048",
            "-keyout",
            "root.key",
            "-out",
            "root.crt",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-new",
            "-nodes",
            "-subj",
            "/CN=signer",
            "-newkey",
            "rsa:2048",
            "-keyout",
            "signer.key",
            "-out",
            "signer.csr",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "signer.csr",
            "-CA",
            "root.crt",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "signer.crt",
        ],
    );
    let (rogue_key, rogue_cert) = self_signed(d, "rogue", RSA);
    let v = verifier(&d.join("root.crt"));
    let x5c = |cert: &Path| STANDARD.encode(rustls_pem_cert(&std::fs::read(cert).unwrap()));
    let t = now();
    let good = serde_json::json!({"alg": "RS256", "x5c": [x5c(&d.join("signer.crt"))]});
    v.verify(&rs256(d, &d.join("signer.key"), &good, &claims(t + 300, t)))
        .unwrap();
    let rogue = serde_json::json!({"alg": "RS256", "x5c": [x5c(&rogue_cert)]});
    assert!(matches!(
        v.verify(&rs256(d, &rogue_key, &rogue, &claims(t + 300, t))),
        Err(TokenError::BadChain(_))
    ));
    // The trusted chain, but signed with another key.
    assert_eq!(
        v.verify(&rs256(d, &rogue_key, &good, &claims(t + 300, t)))
            .unwrap_err(),
        TokenError::BadSignature
    );
}

#[test]
fn jwks_keys_are_found_by_kid() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, cert) = self_signed(d, "jwk", RSA);
    // The modulus and exponent of the key, as a JWKS entry.
    let text = String::from_utf8(openssl(
        d,
        &["x509", "-in", cert.to_str().unwrap(), "-noout", "-modulus"],
    ))
    .unwrap();
    let modulus = text.trim().trim_start_matches("Modulus=");
    let n: Vec<u8> = (0..modulus.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&modulus[i..i + 2], 16).unwrap())
        .collect();
    let jwks = serde_json::json!({"keys": [{"kty": "RSA", "kid": "my-key", "n": URL_SAFE_NO_PAD.encode(n), "e": "AQAB"}]});
    let v = TokenVerifier::new(VerifierConfig {
        issuer: "test-issuer".into(),
        service: "test-service".into(),
        jwks: Some(jwks.to_string().into_bytes()),
        ..VerifierConfig::default()
    })
    .unwrap();
    let t = now();
    v.verify(&rs256(
        d,
        &key,
        &serde_json::json!({"alg": "RS256", "kid": "my-key"}),
        &claims(t + 60, t),
    ))
    .unwrap();
    assert_eq!(
        v.verify(&rs256(
            d,
            &key,
            &serde_json::json!({"alg": "RS256", "kid": "nope"}),
            &claims(t + 60, t)
        ))
        .unwrap_err(),
        TokenError::UntrustedKey
    );
}

fn htpasswd(dir: &Path) -> Arc<Htpasswd> {
    let path = dir.join("htpasswd");
    let alice = bcrypt::hash("alice-pw", 4).unwrap();
    let bob = bcrypt::hash("bob-pw", 4).unwrap();
    std::fs::write(&path, format!("alice:{alice}\nbob:{bob}\n")).unwrap();
    Arc::new(Htpasswd::load(&path).unwrap())
}

fn settings() -> IssuerSettings {
    IssuerSettings {
        issuer: "test-issuer".into(),
        service: "test-service".into(),
        expiration: Duration::from_secs(300),
        refresh_expiration: Duration::from_secs(3600),
    }
}

#[tokio::test]
async fn issued_tokens_verify_for_every_key_type_and_carry_the_granted_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let users = htpasswd(d);
    let policy = Policy::new(
        &[RuleSpec {
            repositories: vec!["team/*".into()],
            users: vec!["alice".into()],
            actions: vec!["pull".into(), "push".into()],
            ..RuleSpec::default()
        }],
        &Default::default(),
    )
    .unwrap();
    let policy = Some(Arc::new(policy));
    for (name, newkey) in [
        ("rsa", RSA),
        (
            "p256",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
        ),
        (
            "p384",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"][..],
        ),
    ] {
        let (key, cert) = self_signed(d, name, newkey);
        let issuer = Issuer::new(
            settings(),
            &std::fs::read(&key).unwrap(),
            &std::fs::read(&cert).unwrap(),
            users.clone(),
            policy.clone(),
        )
        .unwrap();
        let v = verifier(&cert);
        let scopes =
            Scope::parse_list("repository:team/app:pull,push,delete repository:other:pull")
                .unwrap();
        let resp = issuer
            .issue(TokenRequest {
                grant: Grant::Password {
                    user: "alice".into(),
                    password: "alice-pw".into(),
                },
                service: Some("test-service".into()),
                scopes: scopes.clone(),
                offline: true,
            })
            .await
            .unwrap();
        assert_eq!(resp.token, resp.access_token);
        assert_eq!(resp.expires_in, 300);
        let c = v
            .verify(&resp.token)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.sub, "alice");
        let access = berth_auth::access::AccessSet::from_claims(&c.access);
        let app = Resource::repository("team/app");
        assert!(access.allows(&app, "pull") && access.allows(&app, "push"));
        assert!(
            !access.allows(&app, "delete"),
            "{name}: policy gives no delete"
        );
        assert!(!access.allows(&Resource::repository("other"), "pull"));

        // The refresh token gets a new access token, and is no access token itself.
        let refresh = resp
            .refresh_token
            .expect("offline asks for a refresh token");
        assert_eq!(v.verify(&refresh).unwrap_err(), TokenError::RefreshToken);
        let again = issuer
            .issue(TokenRequest {
                grant: Grant::Refresh(refresh),
                service: None,
                scopes,
                offline: false,
            })
            .await
            .unwrap();
        assert!(again.refresh_token.is_none());
        assert_eq!(v.verify(&again.token).unwrap().sub, "alice");

        // Wrong password, wrong service, forged refresh token.
        for (grant, service) in [
            (
                Grant::Password {
                    user: "alice".into(),
                    password: "nope".into(),
                },
                None,
            ),
            (Grant::Anonymous, Some("elsewhere".to_owned())),
            (Grant::Refresh(again.token.clone()), None),
        ] {
            let refused = issuer
                .issue(TokenRequest {
                    grant: grant.clone(),
                    service,
                    scopes: vec![],
                    offline: false,
                })
                .await;
            assert!(refused.is_err(), "{name}: {grant:?} was given a token");
        }
    }
}

#[tokio::test]
async fn a_key_that_is_not_the_certificates_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = self_signed(dir.path(), "a", RSA);
    let (_, cert) = self_signed(dir.path(), "b", RSA);
    let err = Issuer::new(
        settings(),
        &std::fs::read(key).unwrap(),
        &std::fs::read(cert).unwrap(),
        htpasswd(dir.path()),
        None,
    )
    .err()
    .expect("mismatched pair");
    assert!(err.to_string().contains("does not match"), "{err}");
}
