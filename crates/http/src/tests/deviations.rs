//! Regression tests for spec deviations seen from outside (issue #8): references that
//! cannot exist, empty path segments, and `Accept` negotiation of manifest lists.

use berth_core::{Algorithm, Digest, media};
use http::StatusCode;

use super::{app, call, push};
use crate::Options;

#[tokio::test]
async fn a_reference_that_cannot_exist_is_unknown_not_invalid() {
    let app = app(Options::default());
    push(&app, "r", b"x").await;
    for method in ["GET", "HEAD", "DELETE"] {
        let r = call(
            &app,
            method,
            "/v2/r/manifests/.INVALID_MANIFEST_NAME",
            &[],
            b"",
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method}");
        if method != "HEAD" {
            assert_eq!(r.code(), "MANIFEST_UNKNOWN", "{method}");
        }
    }
    let r = call(
        &app,
        "PUT",
        "/v2/r/manifests/.INVALID_MANIFEST_NAME",
        &[],
        b"{}",
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_INVALID")
    );
}

#[tokio::test]
async fn empty_path_segments_name_no_repository() {
    let app = app(Options::default());
    for path in [
        "/v2//team/app/blobs/uploads/",
        "/v2/team//app/blobs/uploads/",
        "/v2/team/app//blobs/uploads/",
    ] {
        let r = call(&app, "POST", path, &[], b"").await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            "{path}"
        );
    }
    let d = Digest::of(Algorithm::Sha256, b"x");
    let r = call(
        &app,
        "POST",
        &format!("/v2//team/app/blobs/uploads/?digest={d}"),
        &[],
        b"x",
    )
    .await;
    assert_eq!(r.code(), "NAME_INVALID");
    let r = call(&app, "GET", "/v2/_catalog", &[], b"").await;
    assert_eq!(r.body, br#"{"repositories":[]}"#);
}

/// Pushes a manifest with `content-type` and returns its digest.
async fn put_manifest(
    app: &axum::Router,
    repo: &str,
    reference: &str,
    ct: &str,
    body: &str,
) -> Digest {
    let r = call(
        app,
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("content-type", ct)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    Digest::of(Algorithm::Sha256, body.as_bytes())
}

#[tokio::test]
async fn a_list_falls_back_to_its_linux_amd64_child() {
    let app = app(Options::default());
    let cfg = push(&app, "l", b"{}").await;
    let child = |arch: &str| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{cfg}","size":2}},"layers":[],"annotations":{{"arch":"{arch}"}}}}"#,
            media::DOCKER_MANIFEST
        )
    };
    let (amd64, arm64) = (child("amd64"), child("arm64"));
    let amd64_digest = put_manifest(&app, "l", "amd64", media::DOCKER_MANIFEST, &amd64).await;
    let arm64_digest = put_manifest(&app, "l", "arm64", media::DOCKER_MANIFEST, &arm64).await;
    let entry = |d: &Digest, len: usize, arch: &str| {
        format!(
            r#"{{"mediaType":"{}","digest":"{d}","size":{len},"platform":{{"os":"linux","architecture":"{arch}"}}}}"#,
            media::DOCKER_MANIFEST
        )
    };
    let list = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{},{}]}}"#,
        media::DOCKER_LIST,
        entry(&arm64_digest, arm64.len(), "arm64"),
        entry(&amd64_digest, amd64.len(), "amd64"),
    );
    let list_digest = put_manifest(&app, "l", "multi", media::DOCKER_LIST, &list).await;

    // A client that takes only single schema2 manifests gets the linux/amd64 child.
    let single = ("accept", media::DOCKER_MANIFEST);
    let r = call(&app, "GET", "/v2/l/manifests/multi", &[single], b"").await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.header("docker-content-digest"), amd64_digest.to_string());
    assert_eq!(r.header("content-type"), media::DOCKER_MANIFEST);
    assert_eq!(r.body, amd64.as_bytes());
    // One that takes lists gets the list; by digest, the list is served as it is.
    let lists = ("accept", media::DOCKER_LIST);
    let r = call(&app, "GET", "/v2/l/manifests/multi", &[lists], b"").await;
    assert_eq!(r.header("docker-content-digest"), list_digest.to_string());
    let r = call(
        &app,
        "GET",
        &format!("/v2/l/manifests/{list_digest}"),
        &[single],
        b"",
    )
    .await;
    assert_eq!(r.header("docker-content-digest"), list_digest.to_string());
    // Nothing acceptable: 404 naming the stored type.
    let oci_only = ("accept", media::OCI_MANIFEST);
    let r = call(&app, "GET", "/v2/l/manifests/multi", &[oci_only], b"").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "MANIFEST_UNKNOWN");
    assert!(String::from_utf8_lossy(&r.body).contains(media::DOCKER_LIST));
}
