//! `auth` and `berth.auth`: reads the users file, the token trust (bundle, JWKS), the
//! policy and the issuer's key while the configuration is validated, so a missing file,
//! a key that does not match its certificate or a malformed rule stops `check-config` and
//! `serve` alike, before any port is bound.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth_auth::htpasswd::Htpasswd;
use berth_auth::issuer::{Issuer, IssuerSettings};
use berth_auth::policy::Policy;
use berth_auth::token::verifier::{TokenVerifier, VerifierConfig};
use berth_auth::{AccessController, Scheme};

use super::schema::{AuthSection, BerthAuthSection, Flag, HtpasswdSection, TokenSection};
use super::{ConfigError, invalid};

/// Default lifetime of issued access tokens.
const TOKEN_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Default lifetime of issued refresh tokens.
const REFRESH_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// distribution's default `autoredirectpath`.
const AUTOREDIRECT_PATH: &str = "/auth/token";

/// Access control, loaded.
#[derive(Clone)]
pub struct Auth {
    /// Checks every API request.
    pub controller: Arc<AccessController>,
    /// berth's own token endpoint: its path and issuer.
    pub token_endpoint: Option<(String, Arc<Issuer>)>,
    /// One line for the start-up log.
    pub description: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

fn read(path: &Path, key: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| invalid(key, format!("reading {}: {e}", path.display())))
}

fn users(path: &Path, key: &str) -> Result<Arc<Htpasswd>, ConfigError> {
    Htpasswd::load(path).map(Arc::new).map_err(|e| {
        invalid(
            key,
            format!("{e} (create the file with `htpasswd -B -c FILE USER`)"),
        )
    })
}

fn required<'a>(v: &'a Option<String>, key: &str) -> Result<&'a str, ConfigError> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid(key, "is required"))
}

/// Validates `auth` and `berth.auth`; `None` when access control is off.
pub fn auth(section: &AuthSection, berth: &BerthAuthSection) -> Result<Option<Auth>, ConfigError> {
    let policy = match &berth.policy {
        Some(rules) => {
            let groups = berth.groups.clone().into_iter().collect();
            Some(Arc::new(
                Policy::new(rules, &groups)
                    .map_err(|e| invalid("berth.auth.policy", e.to_string()))?,
            ))
        }
        None => None,
    };
    let issuing = berth.issuer.key.is_some() || berth.issuer.certificate.is_some();
    match (&section.htpasswd, &section.token) {
        (Some(_), Some(_)) => Err(invalid(
            "auth",
            "configure one access controller: htpasswd or token, not both",
        )),
        (Some(h), None) => {
            if issuing {
                return Err(invalid(
                    "berth.auth.issuer",
                    "issues bearer tokens, so it needs auth.token (not auth.htpasswd)",
                ));
            }
            if berth.users.is_some() {
                return Err(invalid(
                    "berth.auth.users",
                    "is for berth.auth.issuer; with auth.htpasswd the users are auth.htpasswd.path",
                ));
            }
            basic(h, policy).map(Some)
        }
        (None, Some(t)) => bearer(t, berth, policy).map(Some),
        (None, None) => {
            if policy.is_some() || issuing {
                return Err(invalid(
                    "berth.auth",
                    "needs an access controller: auth.htpasswd or auth.token",
                ));
            }
            Ok(None)
        }
    }
}

fn basic(h: &HtpasswdSection, policy: Option<Arc<Policy>>) -> Result<Auth, ConfigError> {
    let realm = required(&h.realm, "auth.htpasswd.realm")?.to_owned();
    let path = h
        .path
        .as_deref()
        .ok_or_else(|| invalid("auth.htpasswd.path", "is required"))?;
    let users = users(path, "auth.htpasswd.path")?;
    let description = format!(
        "htpasswd authentication ({}){}",
        path.display(),
        if policy.is_some() {
            " with berth.auth.policy"
        } else {
            ""
        }
    );
    Ok(Auth {
        controller: Arc::new(AccessController::new(
            Scheme::Basic { realm, users },
            policy,
        )),
        token_endpoint: None,
        description,
    })
}

/// The path of the token endpoint the realm names (`https://host/auth/token` ->
/// `/auth/token`).
fn realm_path(realm: &str) -> Result<String, ConfigError> {
    let url = url::Url::parse(realm).map_err(|e| {
        invalid(
            "auth.token.realm",
            format!("{realm:?} is not an absolute URL: {e}"),
        )
    })?;
    let path = url.path();
    if path.is_empty() || path == "/" {
        return Err(invalid(
            "auth.token.realm",
            "needs a path for berth.auth.issuer to serve tokens at (e.g. /auth/token)",
        ));
    }
    if path.starts_with("/v2/") || path == "/v2" {
        return Err(invalid(
            "auth.token.realm",
            "the token endpoint cannot live under /v2/",
        ));
    }
    Ok(path.to_owned())
}

fn bearer(
    t: &TokenSection,
    berth: &BerthAuthSection,
    policy: Option<Arc<Policy>>,
) -> Result<Auth, ConfigError> {
    let realm = required(&t.realm, "auth.token.realm")?.to_owned();
    let service = required(&t.service, "auth.token.service")?.to_owned();
    let issuer_name = required(&t.issuer, "auth.token.issuer")?.to_owned();
    let bundle = t
        .rootcertbundle
        .as_deref()
        .map(|p| read(p, "auth.token.rootcertbundle"))
        .transpose()?;
    let jwks = t
        .jwks
        .as_deref()
        .map(|p| read(p, "auth.token.jwks"))
        .transpose()?;
    if bundle.is_none() && jwks.is_none() {
        return Err(invalid(
            "auth.token",
            "needs rootcertbundle or jwks: the keys tokens are signed with",
        ));
    }
    let verifier = TokenVerifier::new(VerifierConfig {
        issuer: issuer_name.clone(),
        service: service.clone(),
        root_bundle: bundle.clone(),
        jwks,
        algorithms: t.signingalgorithms.clone().unwrap_or_default(),
    })
    .map_err(|e| invalid("auth.token", e.to_string()))?;
    let autoredirect = Flag::or(t.autoredirect, false).then(|| {
        t.autoredirectpath
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| AUTOREDIRECT_PATH.to_owned())
    });
    let token_endpoint = match &berth.issuer.key {
        Some(key) => {
            let cert_path = berth
                .issuer
                .certificate
                .as_deref()
                .or(t.rootcertbundle.as_deref())
                .ok_or_else(|| {
                    invalid(
                        "berth.auth.issuer.certificate",
                        "is required when auth.token has no rootcertbundle",
                    )
                })?;
            let users_path = berth.users.as_deref().ok_or_else(|| {
                invalid(
                    "berth.auth.users",
                    "is required with berth.auth.issuer: the htpasswd file of the users it authenticates",
                )
            })?;
            let settings = IssuerSettings {
                issuer: issuer_name.clone(),
                service: service.clone(),
                expiration: berth.issuer.expiration.map_or(TOKEN_LIFETIME, |d| d.0),
                refresh_expiration: berth
                    .issuer
                    .refreshexpiration
                    .map_or(REFRESH_LIFETIME, |d| d.0),
            };
            let issuer = Issuer::new(
                settings,
                &read(key, "berth.auth.issuer.key")?,
                &read(cert_path, "berth.auth.issuer.certificate")?,
                users(users_path, "berth.auth.users")?,
                policy.clone(),
            )
            .map_err(|e| invalid("berth.auth.issuer", e.to_string()))?;
            // The node must accept what it issues: a token signed now must verify
            // against the trust configuration.
            let probe = issuer
                .probe_token()
                .map_err(|e| invalid("berth.auth.issuer", e.to_string()))?;
            if let Err(e) = verifier.verify(&probe) {
                return Err(invalid(
                    "berth.auth.issuer.certificate",
                    format!(
                        "tokens signed with this key are refused by auth.token's trust \
                         configuration ({e}); put the certificate in auth.token.rootcertbundle"
                    ),
                ));
            }
            let path = match &autoredirect {
                Some(p) => p.clone(),
                None => realm_path(&realm)?,
            };
            Some((path, Arc::new(issuer)))
        }
        None => {
            if berth.issuer.certificate.is_some() {
                return Err(invalid("berth.auth.issuer.key", "is required"));
            }
            None
        }
    };
    let description = format!(
        "bearer token authentication (service {service:?}, issuer {issuer_name:?}){}{}",
        if token_endpoint.is_some() {
            ", issuing tokens at the realm"
        } else {
            ""
        },
        if policy.is_some() {
            ", with berth.auth.policy"
        } else {
            ""
        }
    );
    Ok(Auth {
        controller: Arc::new(AccessController::new(
            Scheme::Bearer {
                realm,
                autoredirect,
                verifier: Arc::new(verifier),
            },
            policy,
        )),
        token_endpoint,
        description,
    })
}
