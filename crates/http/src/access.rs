//! Which scopes each endpoint needs, and the one access check every request passes
//! before its handler runs.

use berth_auth::{Action, Needs, Principal, RequestInfo, Scope};
use berth_core::RepositoryName;
use http::{HeaderMap, Method, header};

use crate::AppState;
use crate::endpoint::Endpoint;
use crate::error::ApiError;
use crate::query::Query;

/// The scopes a request needs. Reads need pull; uploads and manifest pushes need pull
/// and push (as distribution asks); deletes of manifests and blobs need delete. An
/// upload's cancel is part of pushing, so it needs push rather than delete. The source
/// of a cross-repository mount is only wanted: without pull on it, the POST becomes an
/// ordinary upload.
pub(crate) fn needs(endpoint: &Endpoint, method: &Method, query: &Query) -> Needs {
    use Action::{Delete, Pull, Push};
    let repo =
        |name: &RepositoryName, actions: &[Action]| vec![Scope::repository(name.as_str(), actions)];
    let reading = method == Method::GET || method == Method::HEAD;
    let scopes = match endpoint {
        Endpoint::Base => Vec::new(),
        Endpoint::Catalog => vec![Scope::catalog()],
        Endpoint::Tags { name } | Endpoint::Referrers { name, .. } => repo(name, &[Pull]),
        Endpoint::Manifest { name, .. } | Endpoint::Blob { name, .. } if reading => {
            repo(name, &[Pull])
        }
        Endpoint::Manifest { name, .. } | Endpoint::Blob { name, .. }
            if method == Method::DELETE =>
        {
            repo(name, &[Delete])
        }
        Endpoint::Manifest { name, .. }
        | Endpoint::Blob { name, .. }
        | Endpoint::Uploads { name }
        | Endpoint::Upload { name, .. } => repo(name, &[Pull, Push]),
    };
    let wanted = match endpoint {
        Endpoint::Uploads { .. } if query.get("mount").is_some() => query
            .get("from")
            .and_then(|f| RepositoryName::parse(f).ok())
            .map(|from| vec![Scope::repository(from.as_str(), &[Pull])])
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    Needs { scopes, wanted }
}

/// The user a request was authenticated as, set on its response for the access log.
#[derive(Debug, Clone)]
pub(crate) struct AuthenticatedUser(pub String);

/// Runs the configured access check (everyone may do everything when none is; the
/// scopes are then not even worked out).
pub(crate) async fn check(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    endpoint: &Endpoint,
    query: &Query,
) -> Result<Principal, ApiError> {
    let Some(controller) = &state.options.access else {
        return Ok(Principal::unrestricted());
    };
    let needs = needs(endpoint, method, query);
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let info = RequestInfo {
        authorization: text(header::AUTHORIZATION.as_str()),
        host: text(header::HOST.as_str()),
        forwarded_proto: text("x-forwarded-proto"),
    };
    controller
        .authorize(&info, &needs)
        .await
        .map_err(ApiError::Access)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(method: Method, path: &str) -> Vec<String> {
        let (path, q) = path.split_once('?').unwrap_or((path, ""));
        let ep = Endpoint::parse(&method, path).unwrap().unwrap();
        let n = needs(&ep, &method, &Query::parse(Some(q)));
        n.scopes
            .iter()
            .chain(&n.wanted)
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn every_endpoint_names_its_scopes() {
        let d = "sha256:".to_owned() + &"a".repeat(64);
        assert!(scopes(Method::GET, "").is_empty());
        assert_eq!(scopes(Method::GET, "_catalog"), ["registry:catalog:*"]);
        assert_eq!(
            scopes(Method::GET, "a/b/tags/list"),
            ["repository:a/b:pull"]
        );
        assert_eq!(
            scopes(Method::HEAD, "a/manifests/v1"),
            ["repository:a:pull"]
        );
        assert_eq!(
            scopes(Method::PUT, "a/manifests/v1"),
            ["repository:a:pull,push"]
        );
        assert_eq!(
            scopes(Method::DELETE, "a/manifests/v1"),
            ["repository:a:delete"]
        );
        assert_eq!(
            scopes(Method::GET, &format!("a/blobs/{d}")),
            ["repository:a:pull"]
        );
        assert_eq!(
            scopes(Method::DELETE, &format!("a/blobs/{d}")),
            ["repository:a:delete"]
        );
        assert_eq!(
            scopes(Method::POST, "a/blobs/uploads/"),
            ["repository:a:pull,push"]
        );
        assert_eq!(
            scopes(
                Method::POST,
                &format!("a/blobs/uploads/?mount={d}&from=b/c")
            ),
            ["repository:a:pull,push", "repository:b/c:pull"]
        );
        let id = "01234567-89ab-cdef-0123-456789abcdef";
        assert_eq!(
            scopes(Method::DELETE, &format!("a/blobs/uploads/{id}")),
            ["repository:a:pull,push"]
        );
        assert_eq!(
            scopes(Method::GET, &format!("a/referrers/{d}")),
            ["repository:a:pull"]
        );
    }
}
