//! The access controller: from a request's `Authorization` header and the scopes its
//! endpoint needs, either the caller ([`Principal`]) or a refusal with the challenge
//! that tells the client how to authenticate (`Basic realm=...`, or `Bearer realm=...,
//! service=...,scope=...` naming exactly the scopes needed).

use std::sync::Arc;

use crate::access::Scope;
use crate::basic::{self, Authorization};
use crate::htpasswd::Htpasswd;
use crate::policy::Policy;
use crate::principal::Principal;
use crate::token::TokenError;
use crate::token::verifier::TokenVerifier;

/// How callers authenticate.
pub enum Scheme {
    /// `auth.htpasswd`.
    Basic {
        /// The realm named in the challenge.
        realm: String,
        /// The users.
        users: Arc<Htpasswd>,
    },
    /// `auth.token`.
    Bearer {
        /// Where clients get tokens.
        realm: String,
        /// With `autoredirect`: the token path on the registry's own host, which
        /// replaces `realm` in challenges.
        autoredirect: Option<String>,
        /// Checks tokens.
        verifier: Arc<TokenVerifier>,
    },
}

/// What a request asks for.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    /// Scopes that must be granted (none: any authenticated caller).
    pub scopes: Vec<Scope>,
    /// Scopes also named in a challenge, because the request uses them when granted
    /// (the source of a cross-repository mount).
    pub wanted: Vec<Scope>,
}

/// The parts of a request the controller reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestInfo<'a> {
    /// `Authorization`.
    pub authorization: Option<&'a str>,
    /// `Host`, for `autoredirect` realms.
    pub host: Option<&'a str>,
    /// `X-Forwarded-Proto`, for `autoredirect` realms.
    pub forwarded_proto: Option<&'a str>,
}

/// How a refused request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// 401: authenticate (again), as the challenge says.
    Unauthorized,
    /// 403: authenticated, and not allowed.
    Denied,
}

/// A refused request.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// 401 or 403.
    pub kind: RefusalKind,
    /// The `WWW-Authenticate` value (401 only).
    pub challenge: Option<String>,
    /// For the error body and the log.
    pub message: String,
    /// The scopes the request needed (the error's detail).
    pub scopes: Vec<Scope>,
}

/// Authenticates and authorizes requests.
pub struct AccessController {
    scheme: Scheme,
    policy: Option<Arc<Policy>>,
}

fn scope_list(needs: &Needs) -> String {
    needs
        .scopes
        .iter()
        .chain(&needs.wanted)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

impl AccessController {
    /// A controller for `scheme`, with an optional policy.
    pub fn new(scheme: Scheme, policy: Option<Arc<Policy>>) -> AccessController {
        AccessController { scheme, policy }
    }

    fn basic_challenge(realm: &str) -> String {
        format!("Basic realm={}", quote(realm))
    }

    fn bearer_challenge(
        &self,
        req: &RequestInfo<'_>,
        needs: &Needs,
        error: Option<&str>,
    ) -> String {
        let Scheme::Bearer {
            realm,
            autoredirect,
            verifier,
        } = &self.scheme
        else {
            return String::new();
        };
        let realm = match (autoredirect, req.host) {
            (Some(path), Some(host)) => {
                format!("{}://{host}{path}", req.forwarded_proto.unwrap_or("https"))
            }
            _ => realm.clone(),
        };
        let mut c = format!(
            "Bearer realm={},service={}",
            quote(&realm),
            quote(verifier.service())
        );
        let scope = scope_list(needs);
        if !scope.is_empty() {
            c.push_str(&format!(",scope={}", quote(&scope)));
        }
        if let Some(e) = error {
            c.push_str(&format!(",error={}", quote(e)));
        }
        c
    }

    fn refuse(
        &self,
        kind: RefusalKind,
        challenge: Option<String>,
        message: String,
        needs: &Needs,
    ) -> Refusal {
        Refusal {
            kind,
            challenge,
            message,
            scopes: needs.scopes.clone(),
        }
    }

    /// Decides a request: the caller, or why not.
    pub async fn authorize(
        &self,
        req: &RequestInfo<'_>,
        needs: &Needs,
    ) -> Result<Principal, Refusal> {
        match &self.scheme {
            Scheme::Basic { realm, users } => self.authorize_basic(realm, users, req, needs).await,
            Scheme::Bearer { verifier, .. } => self.authorize_bearer(verifier, req, needs),
        }
    }

    async fn authorize_basic(
        &self,
        realm: &str,
        users: &Htpasswd,
        req: &RequestInfo<'_>,
        needs: &Needs,
    ) -> Result<Principal, Refusal> {
        let challenge = || Some(Self::basic_challenge(realm));
        let user = match req.authorization.map(Authorization::parse) {
            None => None,
            Some(Authorization::Basic(param)) => {
                let Some(creds) = basic::decode(param) else {
                    return Err(self.refuse(
                        RefusalKind::Unauthorized,
                        challenge(),
                        "malformed Basic credentials".into(),
                        needs,
                    ));
                };
                if !users.verify(&creds.user, &creds.password).await {
                    return Err(self.refuse(
                        RefusalKind::Unauthorized,
                        challenge(),
                        "invalid user name or password".into(),
                        needs,
                    ));
                }
                Some(creds.user)
            }
            Some(_) => {
                return Err(self.refuse(
                    RefusalKind::Unauthorized,
                    challenge(),
                    "this registry takes Basic credentials".into(),
                    needs,
                ));
            }
        };
        let authenticated = user.is_some();
        let principal = match (&self.policy, user) {
            (Some(p), user) => Principal::by_policy(user, p.clone()),
            (None, Some(user)) => Principal::trusted_user(user),
            (None, None) => Principal::nobody(),
        };
        if needs.scopes.is_empty() && !authenticated {
            return Err(self.refuse(
                RefusalKind::Unauthorized,
                challenge(),
                "authentication required".into(),
                needs,
            ));
        }
        if principal.satisfies(&needs.scopes) {
            return Ok(principal);
        }
        Err(if authenticated {
            self.refuse(
                RefusalKind::Denied,
                None,
                "requested access to the resource is denied".into(),
                needs,
            )
        } else {
            self.refuse(
                RefusalKind::Unauthorized,
                challenge(),
                "authentication required".into(),
                needs,
            )
        })
    }

    fn authorize_bearer(
        &self,
        verifier: &TokenVerifier,
        req: &RequestInfo<'_>,
        needs: &Needs,
    ) -> Result<Principal, Refusal> {
        let Some(Authorization::Bearer(raw)) = req.authorization.map(Authorization::parse) else {
            return Err(self.refuse(
                RefusalKind::Unauthorized,
                Some(self.bearer_challenge(req, needs, None)),
                "authentication required".into(),
                needs,
            ));
        };
        let claims = verifier.verify(raw).map_err(|e: TokenError| {
            tracing::info!(reason = %e, "bearer token refused");
            self.refuse(
                RefusalKind::Unauthorized,
                Some(self.bearer_challenge(req, needs, Some("invalid_token"))),
                format!("invalid token: {e}"),
                needs,
            )
        })?;
        let user = (!claims.sub.is_empty()).then(|| claims.sub.clone());
        let principal = Principal::by_token(user, claims.rights.clone(), self.policy.clone());
        if principal.satisfies(&needs.scopes) {
            return Ok(principal);
        }
        Err(self.refuse(
            RefusalKind::Unauthorized,
            Some(self.bearer_challenge(req, needs, Some("insufficient_scope"))),
            "insufficient scope".into(),
            needs,
        ))
    }
}

/// A challenge parameter value in double quotes.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}
