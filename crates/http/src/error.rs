//! The one mapping from failures to HTTP: status, OCI error code, and the JSON body
//! `{"errors":[{"code","message"}]}`. Nothing else in berth knows status codes.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use berth_auth::issuer::IssueError;
use berth_auth::{Refusal, RefusalKind};
use berth_core::Error;
use http::{HeaderValue, StatusCode, header};

use crate::headers::range_value;
use crate::upload_state::StateError;

/// A failed request.
#[derive(Debug)]
pub enum ApiError {
    /// A domain error from the registry.
    Domain(Error),
    /// No endpoint at this path.
    NoSuchEndpoint,
    /// The endpoint exists but not with this method.
    MethodNotAllowed,
    /// A write while `storage.maintenance.readonly` is on.
    ReadOnly,
    /// An upload URL whose `_state` token was refused.
    UploadState(StateError),
    /// Access control refused the request.
    Access(Refusal),
    /// The client's (or user's) request rate passed `berth.limits.ratelimit`; a request
    /// would be admitted again after `retry_after`.
    RateLimited {
        /// When the bucket holds a token again.
        retry_after: Duration,
    },
    /// A health check fails (`health`); the debug server's `/debug/health` says which.
    Unavailable,
}

/// What `Retry-After` tells a client refused a new upload session: sessions end as
/// pushes finish, so a short wait is worth it; there is no telling exactly when.
const UPLOAD_RETRY_AFTER: Duration = Duration::from_secs(5);

/// What `Retry-After` tells a client whose request waited in vain for another node's
/// lock: that node is still working on the same thing, and may finish any moment.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// `Retry-After` in whole seconds, rounded up and at least 1: a client told 0 would
/// retry at once and be refused again.
fn retry_after_value(wait: Duration) -> HeaderValue {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Domain(e)
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        ApiError::UploadState(e)
    }
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        use StatusCode as S;
        let e = match self {
            ApiError::NoSuchEndpoint => {
                return (S::NOT_FOUND, "UNSUPPORTED", "no such API endpoint".into());
            }
            ApiError::MethodNotAllowed => {
                return (
                    S::METHOD_NOT_ALLOWED,
                    "UNSUPPORTED",
                    "method not allowed on this endpoint".into(),
                );
            }
            ApiError::ReadOnly => {
                return (
                    S::METHOD_NOT_ALLOWED,
                    "UNSUPPORTED",
                    "the registry is in read-only mode".into(),
                );
            }
            // distribution's answer to every refused token: the URL names no session
            // this node will continue.
            ApiError::UploadState(e) => {
                return (S::NOT_FOUND, "BLOB_UPLOAD_INVALID", e.to_string());
            }
            ApiError::Access(r) => {
                return match r.kind {
                    RefusalKind::Unauthorized => {
                        (S::UNAUTHORIZED, "UNAUTHORIZED", r.message.clone())
                    }
                    RefusalKind::Denied => (S::FORBIDDEN, "DENIED", r.message.clone()),
                };
            }
            ApiError::RateLimited { .. } => {
                return (
                    S::TOO_MANY_REQUESTS,
                    "TOOMANYREQUESTS",
                    "too many requests; retry after the time Retry-After gives".into(),
                );
            }
            ApiError::Unavailable => {
                return (
                    S::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "service unavailable".into(),
                );
            }
            ApiError::Domain(e) => e,
        };
        let (status, code) = match e {
            Error::BlobUnknown(_) => (S::NOT_FOUND, "BLOB_UNKNOWN"),
            Error::BlobUploadUnknown(_) => (S::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            Error::BlobUploadInvalid(_) | Error::BodyRead(_) => {
                (S::BAD_REQUEST, "BLOB_UPLOAD_INVALID")
            }
            Error::ChunkOutOfOrder { .. } => (S::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID"),
            Error::RangeNotSatisfiable { .. } => (S::RANGE_NOT_SATISFIABLE, "SIZE_INVALID"),
            Error::DigestInvalid(_) => (S::BAD_REQUEST, "DIGEST_INVALID"),
            Error::ManifestBlobUnknown(_) => (S::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"),
            Error::ManifestInvalid(_) | Error::TagInvalid(_) => {
                (S::BAD_REQUEST, "MANIFEST_INVALID")
            }
            Error::ManifestUnknown(_) => (S::NOT_FOUND, "MANIFEST_UNKNOWN"),
            Error::ManifestTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "SIZE_INVALID"),
            Error::NameInvalid(_) => (S::BAD_REQUEST, "NAME_INVALID"),
            Error::NameUnknown(_) => (S::NOT_FOUND, "NAME_UNKNOWN"),
            Error::SizeInvalid(_) => (S::BAD_REQUEST, "SIZE_INVALID"),
            Error::PaginationInvalid(_) => (S::BAD_REQUEST, "PAGINATION_NUMBER_INVALID"),
            Error::Unsupported(_) => (S::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
            Error::TooManyUploads { .. } => (S::TOO_MANY_REQUESTS, "TOOMANYREQUESTS"),
            // distribution's code for a service that cannot answer now.
            Error::UpstreamUnavailable(_) | Error::Busy(_) | Error::StorageUnavailable(_) => {
                (S::SERVICE_UNAVAILABLE, "UNAVAILABLE")
            }
            Error::Internal { .. } => (S::INTERNAL_SERVER_ERROR, "UNKNOWN"),
        };
        (status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        // An unhealthy registry refuses everything; the failing check is logged once,
        // where it fails, not with every request.
        if status.is_server_error() && !matches!(self, ApiError::Unavailable) {
            tracing::error!(error = %message, "request failed");
        }
        let body = match &self {
            // The detail names what was needed, one entry per action, as distribution's
            // does.
            ApiError::Access(r) => {
                let detail: Vec<_> = r
                    .scopes
                    .iter()
                    .flat_map(|s| {
                        s.actions.iter().map(|a| {
                            serde_json::json!({
                                "Type": s.resource.kind,
                                "Class": "",
                                "Name": s.resource.name,
                                "Action": a,
                            })
                        })
                    })
                    .collect();
                serde_json::json!({ "errors": [{ "code": code, "message": message, "detail": detail }] })
            }
            // The detail points at the health status, as distribution's does.
            ApiError::Unavailable => serde_json::json!({ "errors": [{
                "code": code,
                "message": message,
                "detail": "health check failed: see /debug/health on the debug address",
            }] }),
            _ => serde_json::json!({ "errors": [{ "code": code, "message": message }] }),
        };
        let mut resp = (status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        match self {
            ApiError::Access(Refusal {
                challenge: Some(c), ..
            }) => {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    h.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            ApiError::Domain(Error::ChunkOutOfOrder { offset, .. }) => {
                h.insert(header::RANGE, range_value(offset));
            }
            ApiError::Domain(Error::RangeNotSatisfiable { size }) => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    h.insert(header::CONTENT_RANGE, v);
                }
            }
            ApiError::Domain(Error::TooManyUploads { .. }) => {
                h.insert(header::RETRY_AFTER, retry_after_value(UPLOAD_RETRY_AFTER));
            }
            ApiError::Domain(Error::Busy(_)) => {
                h.insert(header::RETRY_AFTER, retry_after_value(BUSY_RETRY_AFTER));
            }
            ApiError::RateLimited { retry_after } => {
                h.insert(header::RETRY_AFTER, retry_after_value(retry_after));
            }
            _ => {}
        }
        resp
    }
}

/// The status of the debug server's health report: 200 while every check passes, 503
/// while one fails (as distribution's `/debug/health` answers).
pub(crate) fn health_status(healthy: bool) -> StatusCode {
    if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// A failed request to berth's token endpoint.
#[derive(Debug)]
pub enum TokenFailure {
    /// A malformed `GET` request.
    Request(String),
    /// A malformed OAuth2 form, in RFC 6749's error vocabulary.
    OAuth {
        /// `invalid_request`, `unsupported_grant_type`, `invalid_scope`.
        error: &'static str,
        /// What is wrong.
        description: String,
    },
    /// The issuer refused.
    Issue {
        /// Why.
        error: IssueError,
        /// Whether the request was the OAuth2 form (answered in its format).
        oauth: bool,
    },
}

impl IntoResponse for TokenFailure {
    fn into_response(self) -> Response {
        use StatusCode as S;
        let (status, code, message) = match &self {
            TokenFailure::Request(m) => (S::BAD_REQUEST, "invalid_request", m.clone()),
            TokenFailure::OAuth { error, description } => {
                (S::BAD_REQUEST, *error, description.clone())
            }
            TokenFailure::Issue { error, .. } => match error {
                IssueError::InvalidCredentials => {
                    (S::UNAUTHORIZED, "invalid_grant", error.to_string())
                }
                IssueError::InvalidRefreshToken(_) => {
                    (S::BAD_REQUEST, "invalid_grant", error.to_string())
                }
                IssueError::WrongService { .. } => {
                    (S::BAD_REQUEST, "invalid_request", error.to_string())
                }
                IssueError::Sign(_) => {
                    (S::INTERNAL_SERVER_ERROR, "server_error", error.to_string())
                }
            },
        };
        if status.is_server_error() {
            tracing::error!(error = %message, "token request failed");
        }
        let oauth = matches!(
            self,
            TokenFailure::OAuth { .. } | TokenFailure::Issue { oauth: true, .. }
        );
        let body = if oauth {
            serde_json::json!({ "error": code, "error_description": message })
        } else {
            let code = if status == S::UNAUTHORIZED {
                "UNAUTHORIZED"
            } else {
                "UNSUPPORTED"
            };
            serde_json::json!({ "errors": [{ "code": code, "message": message }] })
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if status == S::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"berth token\""),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_error_has_a_spec_code() {
        let spec = [
            "BLOB_UNKNOWN",
            "BLOB_UPLOAD_INVALID",
            "BLOB_UPLOAD_UNKNOWN",
            "DIGEST_INVALID",
            "MANIFEST_BLOB_UNKNOWN",
            "MANIFEST_INVALID",
            "MANIFEST_UNKNOWN",
            "NAME_INVALID",
            "NAME_UNKNOWN",
            "SIZE_INVALID",
            "UNSUPPORTED",
            "PAGINATION_NUMBER_INVALID",
            "TOOMANYREQUESTS",
        ];
        let errors = [
            Error::BlobUnknown(String::new()),
            Error::BlobUploadUnknown(String::new()),
            Error::BlobUploadInvalid(String::new()),
            Error::ChunkOutOfOrder {
                offset: 1,
                start: 2,
            },
            Error::RangeNotSatisfiable { size: 1 },
            Error::DigestInvalid(String::new()),
            Error::ManifestBlobUnknown(String::new()),
            Error::ManifestInvalid(String::new()),
            Error::ManifestUnknown(String::new()),
            Error::ManifestTooLarge { size: 2, limit: 1 },
            Error::NameInvalid(String::new()),
            Error::NameUnknown(String::new()),
            Error::TagInvalid(String::new()),
            Error::SizeInvalid(String::new()),
            Error::PaginationInvalid(String::new()),
            Error::Unsupported(String::new()),
            Error::BodyRead(std::io::Error::other("eof")),
            Error::TooManyUploads { limit: 1 },
        ];
        let others = [ApiError::RateLimited {
            retry_after: Duration::from_millis(1),
        }];
        for e in errors.into_iter().map(ApiError::Domain).chain(others) {
            let (status, code, _) = e.parts();
            assert!(status.is_client_error(), "{code}");
            assert!(spec.contains(&code), "{code}");
        }
    }

    /// A pull-through cache whose upstream cannot answer says so as distribution does.
    #[test]
    fn an_unavailable_upstream_is_a_503() {
        let (status, code, _) = ApiError::Domain(Error::UpstreamUnavailable("down".into())).parts();
        assert_eq!(
            (status, code),
            (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE")
        );
    }

    /// A lock another node kept past this node's wait: a 503 that says when to retry.
    #[test]
    fn a_lock_held_elsewhere_is_a_503_with_retry_after() {
        let resp = ApiError::Domain(Error::Busy("tag a:b".into())).into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn refusals_for_load_say_when_to_retry() {
        let retry = |e: ApiError| {
            let resp = e.into_response();
            assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
            resp.headers()[header::RETRY_AFTER]
                .to_str()
                .map(str::to_owned)
                .unwrap_or_default()
        };
        let limited = |ms| ApiError::RateLimited {
            retry_after: Duration::from_millis(ms),
        };
        assert_eq!(retry(limited(0)), "1", "never 0");
        assert_eq!(retry(limited(20)), "1");
        assert_eq!(retry(limited(1000)), "1");
        assert_eq!(retry(limited(1001)), "2", "rounded up");
        assert_eq!(
            retry(ApiError::Domain(Error::TooManyUploads { limit: 3 })),
            "5"
        );
    }
}
