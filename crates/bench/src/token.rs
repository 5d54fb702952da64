//! `berth-bench token`: a bearer token for auth mode, signed the way a token server
//! signs one, so that berth and distribution configured with the same `auth.token` trust
//! are measured with the same credentials.

use std::time::{SystemTime, UNIX_EPOCH};

use berth_auth::access::ResourceActions;
use berth_auth::token::jws::{Audience, Claims};
use berth_auth::token::signer::Signer;

use crate::cli::TokenOptions;

/// Signs a token granting pull, push and delete on each repository of `opts`.
pub fn mint(opts: &TokenOptions) -> Result<String, String> {
    let read = |p: &str| std::fs::read(p).map_err(|e| format!("reading {p}: {e}"));
    let signer =
        Signer::from_pem(&read(&opts.key)?, &read(&opts.cert)?).map_err(|e| e.to_string())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs() as i64;
    let claims = Claims {
        iss: opts.issuer.clone(),
        sub: "berth-bench".to_owned(),
        aud: Audience(vec![opts.service.clone()]),
        exp: Some(now + opts.expires as i64),
        nbf: Some(now - 5),
        iat: Some(now),
        jti: format!("bench-{now}"),
        access: opts
            .repositories
            .iter()
            .map(|name| ResourceActions {
                kind: "repository".to_owned(),
                name: name.clone(),
                actions: ["pull", "push", "delete"].map(str::to_owned).to_vec(),
            })
            .collect(),
        refresh: false,
    };
    signer.sign(&claims).map_err(|e| e.to_string())
}
