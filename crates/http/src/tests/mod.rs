//! In-process router tests (no sockets): the HTTP contract of edge cases the conformance
//! suite does not reach, over the real storage layer on the in-memory driver.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use berth_core::{Algorithm, Digest};
use berth_driver::InMemoryDriver;
use berth_storage::{Options as StoreOptions, StorageRegistry};
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::{Options, router};

mod deviations;
mod sessions;
mod unread_body;
mod upload_state;

pub(super) fn app(options: Options) -> Router {
    let store = StorageRegistry::new(
        Arc::new(InMemoryDriver::new()),
        StoreOptions {
            delete_enabled: true,
            ..StoreOptions::default()
        },
    );
    router(Arc::new(store), options)
}

pub(super) struct Resp {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    pub fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        v["errors"][0]["code"].as_str().unwrap_or("").to_owned()
    }
}

pub(super) async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_vec())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

pub(super) async fn push(app: &Router, repo: &str, data: &[u8]) -> Digest {
    let d = Digest::of(Algorithm::Sha256, data);
    let r = call(
        app,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
        &[],
        data,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    d
}

#[tokio::test]
async fn base_and_unknown_paths() {
    let app = app(Options::default());
    let r = call(&app, "GET", "/v2/", &[], b"").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("docker-distribution-api-version"), "registry/2.0");
    let r = call(&app, "GET", "/v2/a/unknown/thing", &[], b"").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "UNSUPPORTED");
    let r = call(&app, "GET", "/elsewhere", &[], b"").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(&app, "GET", "/v2/Bad/tags/list", &[], b"").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "NAME_INVALID")
    );
    let r = call(&app, "GET", "/v2/a/..%2F..%2Fetc/tags/list", &[], b"").await;
    assert_eq!(r.code(), "NAME_INVALID");
    let r = call(&app, "PATCH", "/v2/a/manifests/latest", &[], b"").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let app = app(Options {
        prefix: "/reg".into(),
        ..Options::default()
    });
    // Kept from the client, on API answers, errors and paths outside the API alike.
    for path in ["/reg/v2/", "/reg/v2/a/manifests/nope", "/elsewhere"] {
        let r = call(&app, "GET", path, &[("x-request-id", "trace-42")], b"").await;
        assert_eq!(r.header("x-request-id"), "trace-42", "{path}");
    }
    // Made when absent or unfit, and different every time.
    let a = call(&app, "GET", "/reg/v2/", &[], b"").await;
    let b = call(
        &app,
        "GET",
        "/reg/v2/",
        &[("x-request-id", "two words")],
        b"",
    )
    .await;
    for r in [&a, &b] {
        assert_eq!(r.header("x-request-id").len(), 36, "{:?}", r.headers);
    }
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"));
}

#[tokio::test]
async fn blob_head_ranges_and_conditional() {
    let app = app(Options::default());
    let d = push(&app, "r", b"0123456789").await;
    let uri = format!("/v2/r/blobs/{d}");
    let r = call(&app, "HEAD", &uri, &[], b"").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), "10");
    assert_eq!(r.header("docker-content-digest"), d.to_string());
    assert!(r.body.is_empty());
    let r = call(&app, "GET", &uri, &[("range", "bytes=-3")], b"").await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.header("content-range"), "bytes 7-9/10");
    assert_eq!(r.body, b"789");
    let r = call(&app, "GET", &uri, &[("range", "bytes=10-")], b"").await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), "bytes */10");
    let etag = format!("\"{d}\"");
    let r = call(&app, "GET", &uri, &[("if-none-match", &etag)], b"").await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    let r = call(&app, "GET", "/v2/r/blobs/sha256:abc", &[], b"").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let r = call(
        &app,
        "GET",
        "/v2/other/blobs/".to_owned().as_str(),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(&app, "GET", &format!("/v2/other/blobs/{d}"), &[], b"").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
    );
}

#[tokio::test]
async fn chunked_upload_contract() {
    let app = app(Options::default());
    let r = call(&app, "POST", "/v2/c/blobs/uploads/", &[], b"").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.header("range"), "0-0");
    let loc = r.header("location").to_owned();
    assert!(loc.starts_with("/v2/c/blobs/uploads/"));
    let r = call(
        &app,
        "PATCH",
        &loc,
        &[("content-range", "0-4"), ("content-length", "5")],
        b"hello",
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.header("range"), "0-4");
    let r = call(
        &app,
        "PATCH",
        &loc,
        &[("content-range", "0-4"), ("content-length", "5")],
        b"hello",
    )
    .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("range"), "0-4");
    let r = call(
        &app,
        "PATCH",
        &loc,
        &[("content-range", "5-9"), ("content-length", "3")],
        b"abc",
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "SIZE_INVALID")
    );
    let r = call(&app, "PATCH", &loc, &[], b" world").await;
    assert_eq!(r.header("range"), "0-10");
    let r = call(&app, "GET", &loc, &[], b"").await;
    assert_eq!(
        (r.status, r.header("range")),
        (StatusCode::NO_CONTENT, "0-10")
    );
    let r = call(&app, "PUT", &loc, &[], b"").await;
    assert_eq!(r.code(), "DIGEST_INVALID");
    let d = Digest::of(Algorithm::Sha256, b"hello world!");
    let r = call(
        &app,
        "PUT",
        &format!("{loc}&digest={d}"),
        &[("content-length", "1")],
        b"!",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("location"), format!("/v2/c/blobs/{d}"));
    let r = call(&app, "GET", &loc, &[], b"").await;
    assert_eq!(r.code(), "BLOB_UPLOAD_UNKNOWN");
    let r = call(&app, "GET", "/v2/c/blobs/uploads/not-a-uuid", &[], b"").await;
    assert_eq!(r.code(), "BLOB_UPLOAD_UNKNOWN");
    let r = call(
        &app,
        "POST",
        "/v2/c/blobs/uploads/?digest-algorithm=md5",
        &[],
        b"",
    )
    .await;
    assert_eq!(r.code(), "DIGEST_INVALID");
}

#[tokio::test]
async fn manifests_limits_tags_and_negotiation() {
    let app = app(Options::default());
    let cfg = push(&app, "m", b"{}").await;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{cfg}","size":2}},"layers":[]}}"#
    );
    let ct = ("content-type", "application/vnd.oci.image.manifest.v1+json");
    let d = Digest::of(Algorithm::Sha256, manifest.as_bytes());
    let r = call(
        &app,
        "PUT",
        &format!("/v2/m/manifests/{d}?tag=a&tag=b"),
        &[ct],
        manifest.as_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let tags: Vec<_> = r
        .headers
        .get_all("oci-tag")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(tags, ["a", "b"]);
    let r = call(&app, "HEAD", "/v2/m/manifests/b", &[], b"").await;
    assert_eq!(r.header("content-length"), manifest.len().to_string());
    assert_eq!(
        r.header("content-type"),
        "application/vnd.oci.image.manifest.v1+json"
    );
    let docker_only = (
        "accept",
        "application/vnd.docker.distribution.manifest.v2+json",
    );
    let r = call(&app, "GET", "/v2/m/manifests/a", &[docker_only], b"").await;
    assert_eq!(r.code(), "MANIFEST_UNKNOWN");
    let r = call(
        &app,
        "GET",
        &format!("/v2/m/manifests/{d}"),
        &[docker_only],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(&app, "GET", "/v2/m/tags/list?n=1", &[], b"").await;
    assert_eq!(
        r.header("link"),
        "</v2/m/tags/list?n=1&last=a>; rel=\"next\""
    );
    let r = call(&app, "GET", "/v2/m/tags/list?n=-1", &[], b"").await;
    assert_eq!(r.code(), "PAGINATION_NUMBER_INVALID");
    let r = call(
        &app,
        "PUT",
        "/v2/m/manifests/bad:tag",
        &[ct],
        manifest.as_bytes(),
    )
    .await;
    assert_eq!(r.code(), "DIGEST_INVALID");
    let r = call(
        &app,
        "PUT",
        "/v2/m/manifests/.bad",
        &[ct],
        manifest.as_bytes(),
    )
    .await;
    assert_eq!(r.code(), "MANIFEST_INVALID");
    let big = vec![b' '; crate::MAX_MANIFEST_BYTES as usize + 1];
    let r = call(&app, "PUT", "/v2/m/manifests/big", &[ct], &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = call(&app, "PUT", "/v2/m/manifests/x", &[ct], b"{not json").await;
    assert_eq!(r.code(), "MANIFEST_INVALID");
}

#[tokio::test]
async fn read_only_prefix_and_extra_headers() {
    let app = app(Options {
        prefix: "/reg".into(),
        read_only: true,
        extra_headers: vec![(
            header::HeaderName::from_static("x-test"),
            "1".parse().unwrap(),
        )],
        ..Options::default()
    });
    let r = call(&app, "GET", "/reg/v2/", &[], b"").await;
    assert_eq!((r.status, r.header("x-test")), (StatusCode::OK, "1"));
    let r = call(&app, "POST", "/reg/v2/a/blobs/uploads/", &[], b"").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED")
    );
    let r = call(&app, "GET", "/v2/", &[], b"").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// `Options::rate_limit`: a client's burst passes, the next request is refused with 429
/// `TOOMANYREQUESTS`, `Retry-After` and the API version header; another address and
/// (per user) another principal have buckets of their own.
#[tokio::test]
async fn rate_limits_refuse_with_retry_after() {
    use axum::extract::connect_info::ConnectInfo;

    use berth_auth::htpasswd::Htpasswd;
    use berth_auth::{AccessController, Scheme};

    use crate::{BucketLimit, RateLimit};

    // Users come from the access check, so the per-user bucket sees who authenticated.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    let hash = |pw: &str| bcrypt::hash(pw, 4).unwrap();
    std::fs::write(&path, format!("alice:{}\nbob:{}\n", hash("a"), hash("b"))).unwrap();
    let users = Arc::new(Htpasswd::load(&path).unwrap());
    let anonymous_pull = berth_auth::policy::Policy::new(
        &[berth_auth::policy::RuleSpec {
            repositories: vec!["**".into()],
            anonymous: true,
            actions: vec!["pull".into()],
            ..Default::default()
        }],
        &Default::default(),
    )
    .unwrap();
    let access = AccessController::new(
        Scheme::Basic {
            realm: "r".into(),
            users,
        },
        Some(Arc::new(anonymous_pull)),
    );
    let app = app(Options {
        access: Some(Arc::new(access)),
        rate_limit: RateLimit {
            per_client: Some(BucketLimit {
                rate: 0.01,
                burst: 2,
            }),
            per_user: Some(BucketLimit {
                rate: 0.01,
                burst: 3,
            }),
        },
        ..Options::default()
    });
    let get = |from: &str, user: Option<&str>| {
        let mut req = Request::builder().uri("/v2/_catalog");
        if let Some(u) = user {
            let pw = if u == "alice" { "a" } else { "b" };
            let creds = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("{u}:{pw}"),
            );
            req = req.header(header::AUTHORIZATION, format!("Basic {creds}"));
        }
        let mut req = req.body(Body::empty()).unwrap();
        let addr: std::net::SocketAddr = from.parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
        let app = app.clone();
        async move { app.oneshot(req).await.unwrap() }
    };
    for _ in 0..2 {
        assert_eq!(get("127.0.0.1:1000", None).await.status(), StatusCode::OK);
    }
    let refused = get("127.0.0.1:1001", None).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let h = refused.headers();
    assert_eq!(h["docker-distribution-api-version"], "registry/2.0");
    let wait: u64 = h[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((90..=100).contains(&wait), "{wait}");
    let body = refused.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["errors"][0]["code"], "TOOMANYREQUESTS");

    // Another address is not affected; a user's bucket counts across addresses.
    for from in ["127.0.0.2:1", "127.0.0.3:1", "127.0.0.4:1"] {
        let r = get(from, Some("alice")).await;
        assert_eq!(r.status(), StatusCode::OK, "{from}");
    }
    let r = get("127.0.0.5:1", Some("alice")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let r = get("127.0.0.6:1", Some("bob")).await;
    assert_eq!(r.status(), StatusCode::OK);
}
