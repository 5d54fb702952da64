//! berth's own token issuer: authenticates users from an htpasswd file (or a refresh
//! token it issued), grants the part of the requested scopes the policy allows, and
//! signs an access token that any verifier trusting its certificate accepts.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::access::{ResourceActions, Scope};
use crate::htpasswd::Htpasswd;
use crate::policy::Policy;
use crate::token::TokenError;
use crate::token::jws::{Audience, Claims};
use crate::token::signer::{Signer, SignerError};
use crate::token::verifier::{TokenVerifier, VerifierConfig, VerifierError, now};

/// The issuer's settings.
#[derive(Debug, Clone)]
pub struct IssuerSettings {
    /// `iss` of issued tokens (`auth.token.issuer`).
    pub issuer: String,
    /// `aud` of issued tokens (`auth.token.service`).
    pub service: String,
    /// Lifetime of access tokens.
    pub expiration: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_expiration: Duration,
}

/// How the caller of the token endpoint proves who they are.
#[derive(Debug, Clone)]
pub enum Grant {
    /// No credentials: anonymous.
    Anonymous,
    /// User name and password (Basic header, or OAuth2 `grant_type=password`).
    Password {
        /// User.
        user: String,
        /// Password.
        password: String,
    },
    /// OAuth2 `grant_type=refresh_token`.
    Refresh(String),
}

/// A token request.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// Who asks.
    pub grant: Grant,
    /// `service`; must name this issuer's service when given.
    pub service: Option<String>,
    /// Requested scopes.
    pub scopes: Vec<Scope>,
    /// Whether a refresh token is wanted (`offline_token=true`, `access_type=offline`, or
    /// any password grant over OAuth2).
    pub offline: bool,
}

/// The token endpoint's answer.
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    /// The access token.
    pub token: String,
    /// The same token, under its OAuth2 name.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// When it was issued (RFC 3339).
    pub issued_at: String,
    /// A refresh token, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// Why no token was issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// Wrong user name or password.
    #[error("invalid user name or password")]
    InvalidCredentials,
    /// A refresh token that is not valid (or whose user is gone).
    #[error("invalid refresh token: {0}")]
    InvalidRefreshToken(TokenError),
    /// The request names another service.
    #[error("this issuer serves {expected:?}, not {asked:?}")]
    WrongService {
        /// Configured.
        expected: String,
        /// Asked for.
        asked: String,
    },
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SignerError),
}

/// Why an issuer cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// The key or certificate.
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// The certificate as a verifier root.
    #[error(transparent)]
    Verifier(#[from] VerifierError),
}

/// Issues tokens.
pub struct Issuer {
    settings: IssuerSettings,
    signer: Signer,
    /// Checks the refresh tokens this issuer signed.
    refresh: TokenVerifier,
    users: Arc<Htpasswd>,
    policy: Option<Arc<Policy>>,
}

fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl Issuer {
    /// An issuer signing with `key_pem`, whose certificate is `cert_pem`.
    pub fn new(
        settings: IssuerSettings,
        key_pem: &[u8],
        cert_pem: &[u8],
        users: Arc<Htpasswd>,
        policy: Option<Arc<Policy>>,
    ) -> Result<Issuer, IssuerError> {
        let signer = Signer::from_pem(key_pem, cert_pem)?;
        let refresh = TokenVerifier::new(VerifierConfig {
            issuer: settings.issuer.clone(),
            service: settings.service.clone(),
            root_bundle: Some(cert_pem.to_vec()),
            jwks: None,
            algorithms: vec![signer.algorithm().name().to_owned()],
        })?;
        Ok(Issuer {
            settings,
            signer,
            refresh,
            users,
            policy,
        })
    }

    /// The users this issuer authenticates (for Basic checks elsewhere).
    pub fn users(&self) -> &Arc<Htpasswd> {
        &self.users
    }

    /// A token granting nothing, valid for a minute: proves that a verifier accepts
    /// what this issuer signs.
    pub fn probe_token(&self) -> Result<String, SignerError> {
        let now = now();
        self.signer.sign(&Claims {
            iss: self.settings.issuer.clone(),
            aud: Audience(vec![self.settings.service.clone()]),
            exp: Some(now + 60),
            nbf: Some(now),
            iat: Some(now),
            jti: hex_id(),
            ..Claims::default()
        })
    }

    /// Answers a token request.
    pub async fn issue(&self, req: TokenRequest) -> Result<TokenResponse, IssueError> {
        if let Some(asked) = req
            .service
            .as_deref()
            .filter(|s| *s != self.settings.service)
        {
            return Err(IssueError::WrongService {
                expected: self.settings.service.clone(),
                asked: asked.to_owned(),
            });
        }
        let user = match &req.grant {
            Grant::Anonymous => None,
            Grant::Password { user, password } => {
                if !self.users.verify(user, password).await {
                    return Err(IssueError::InvalidCredentials);
                }
                Some(user.clone())
            }
            Grant::Refresh(raw) => {
                let claims = self
                    .refresh
                    .verify_refresh(raw)
                    .map_err(IssueError::InvalidRefreshToken)?;
                if !self.users.has_user(&claims.sub) {
                    return Err(IssueError::InvalidRefreshToken(TokenError::UntrustedKey));
                }
                Some(claims.sub)
            }
        };
        let granted = match (&self.policy, &user) {
            (Some(p), _) => p.grant(user.as_deref(), &req.scopes),
            (None, Some(_)) => req.scopes.clone(),
            (None, None) => Vec::new(),
        };
        let now = now();
        let exp = now + self.settings.expiration.as_secs() as i64;
        let claims = Claims {
            iss: self.settings.issuer.clone(),
            sub: user.clone().unwrap_or_default(),
            aud: Audience(vec![self.settings.service.clone()]),
            exp: Some(exp),
            nbf: Some(now),
            iat: Some(now),
            jti: hex_id(),
            access: granted.iter().map(ResourceActions::from).collect(),
            refresh: false,
        };
        let token = self.signer.sign(&claims)?;
        let refresh_token = match (&user, req.offline) {
            (Some(u), true) => Some(self.signer.sign(&Claims {
                iss: self.settings.issuer.clone(),
                sub: u.clone(),
                aud: Audience(vec![self.settings.service.clone()]),
                exp: Some(now + self.settings.refresh_expiration.as_secs() as i64),
                nbf: Some(now),
                iat: Some(now),
                jti: hex_id(),
                access: Vec::new(),
                refresh: true,
            })?),
            _ => None,
        };
        Ok(TokenResponse {
            access_token: token.clone(),
            token,
            expires_in: self.settings.expiration.as_secs(),
            issued_at: rfc3339(now),
            refresh_token,
        })
    }
}

fn hex_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}
