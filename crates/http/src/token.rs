//! berth's token endpoint, served at the path of `auth.token.realm` when berth issues its
//! own tokens: `GET` with optional Basic credentials (`service`, `scope` repeated,
//! `offline_token`), as docker asks, and the OAuth2 `POST` form (`grant_type=password` or
//! `refresh_token`), as containerd and podman ask.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use berth_auth::Scope;
use berth_auth::basic::{self, Authorization};
use berth_auth::issuer::{Grant, Issuer, TokenRequest};
use http::header;

use crate::error::TokenFailure;
use crate::query::Query;

/// Largest form body read.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Every `scope` value, each of which may itself list several separated by spaces.
fn scopes<'a>(values: impl Iterator<Item = &'a str>) -> Result<Vec<Scope>, TokenFailure> {
    let mut out = Vec::new();
    for v in values {
        out.extend(Scope::parse_list(v).map_err(|e| TokenFailure::Request(e.to_string()))?);
    }
    Ok(out)
}

async fn answer(issuer: &Issuer, req: TokenRequest, oauth: bool) -> Response {
    match issuer.issue(req).await {
        Ok(token) => ([(header::CACHE_CONTROL, "no-store")], axum::Json(token)).into_response(),
        Err(e) => TokenFailure::Issue { error: e, oauth }.into_response(),
    }
}

/// `GET <realm>?service=...&scope=...`.
pub(crate) async fn get(State(issuer): State<Arc<Issuer>>, req: Request) -> Response {
    let query = Query::parse(req.uri().query());
    let grant = match req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(Authorization::parse)
    {
        None => Grant::Anonymous,
        Some(Authorization::Basic(param)) => match basic::decode(param) {
            Some(c) => Grant::Password {
                user: c.user,
                password: c.password,
            },
            None => {
                return TokenFailure::Request("malformed Basic credentials".into()).into_response();
            }
        },
        Some(_) => {
            return TokenFailure::Request("the token endpoint takes Basic credentials".into())
                .into_response();
        }
    };
    let scopes = match scopes(query.all("scope")) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let request = TokenRequest {
        grant,
        service: query.get("service").map(str::to_owned),
        scopes,
        offline: query.get("offline_token") == Some("true"),
    };
    answer(&issuer, request, false).await
}

/// `POST <realm>` with an `application/x-www-form-urlencoded` body.
pub(crate) async fn post(State(issuer): State<Arc<Issuer>>, req: Request<Body>) -> Response {
    let body = match to_bytes(req.into_body(), MAX_FORM_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return TokenFailure::OAuth {
                error: "invalid_request",
                description: format!("the form must be at most {MAX_FORM_BYTES} bytes"),
            }
            .into_response();
        }
    };
    let form = Query::parse(std::str::from_utf8(&body).ok());
    let field = |k: &str| form.get(k).map(str::to_owned);
    let grant = match form.get("grant_type") {
        Some("password") => match (field("username"), field("password")) {
            (Some(user), Some(password)) => Grant::Password { user, password },
            _ => {
                return TokenFailure::OAuth {
                    error: "invalid_request",
                    description: "password grant needs username and password".into(),
                }
                .into_response();
            }
        },
        Some("refresh_token") => match field("refresh_token") {
            Some(t) => Grant::Refresh(t),
            None => {
                return TokenFailure::OAuth {
                    error: "invalid_request",
                    description: "refresh_token grant needs refresh_token".into(),
                }
                .into_response();
            }
        },
        other => {
            return TokenFailure::OAuth {
                error: "unsupported_grant_type",
                description: format!(
                    "grant_type {other:?} is not supported (password, refresh_token)"
                ),
            }
            .into_response();
        }
    };
    let scopes = match scopes(form.all("scope")) {
        Ok(s) => s,
        Err(_) => {
            return TokenFailure::OAuth {
                error: "invalid_scope",
                description: "a scope is not TYPE:NAME:ACTIONS".into(),
            }
            .into_response();
        }
    };
    let offline = form.get("access_type") == Some("offline");
    let request = TokenRequest {
        grant,
        service: field("service"),
        scopes,
        offline,
    };
    answer(&issuer, request, true).await
}
