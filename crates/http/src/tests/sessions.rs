//! Upload sessions belong to the repository that opened them (issue #9, finding 1): no
//! step of a session is accepted under another repository, and such a step writes
//! nothing.

use berth_core::{Algorithm, Digest};
use http::StatusCode;

use super::{app, call};
use crate::Options;

#[tokio::test]
async fn a_session_is_unknown_under_another_repository() {
    let app = app(Options::default());
    let r = call(&app, "POST", "/v2/scope/a/blobs/uploads/", &[], b"").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let id = r.header("docker-upload-uuid").to_owned();
    let data = b"session data";
    let d = Digest::of(Algorithm::Sha256, data);
    let unknown = |r: &super::Resp| {
        (r.status, r.code()) == (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN".to_owned())
    };

    let r = call(
        &app,
        "PATCH",
        &format!("/v2/scope/b/blobs/uploads/{id}"),
        &[],
        data,
    )
    .await;
    assert!(unknown(&r), "PATCH under another repository: {}", r.status);
    let r = call(
        &app,
        "GET",
        &format!("/v2/scope/b/blobs/uploads/{id}"),
        &[],
        b"",
    )
    .await;
    assert!(unknown(&r), "status under another repository: {}", r.status);
    let r = call(
        &app,
        "PUT",
        &format!("/v2/scope/c/blobs/uploads/{id}?digest={d}"),
        &[],
        b"",
    )
    .await;
    assert!(
        unknown(&r),
        "empty PUT under another repository: {}",
        r.status
    );
    let r = call(
        &app,
        "PUT",
        &format!("/v2/scope/d/blobs/uploads/{id}?digest={d}"),
        &[],
        data,
    )
    .await;
    assert!(
        unknown(&r),
        "PUT with a body under another repository: {}",
        r.status
    );
    let r = call(
        &app,
        "DELETE",
        &format!("/v2/scope/e/blobs/uploads/{id}"),
        &[],
        b"",
    )
    .await;
    assert!(unknown(&r), "DELETE under another repository: {}", r.status);
    for repo in ["scope/b", "scope/c", "scope/d"] {
        let r = call(&app, "HEAD", &format!("/v2/{repo}/blobs/{d}"), &[], b"").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{repo}");
    }

    // The session is untouched: its own repository finishes it.
    let r = call(
        &app,
        "PATCH",
        &format!("/v2/scope/a/blobs/uploads/{id}"),
        &[],
        data,
    )
    .await;
    assert_eq!(r.header("range"), format!("0-{}", data.len() - 1));
    let r = call(
        &app,
        "PUT",
        &format!("/v2/scope/a/blobs/uploads/{id}?digest={d}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = call(&app, "GET", "/v2/_catalog", &[], b"").await;
    assert_eq!(r.body, br#"{"repositories":["scope/a"]}"#);
}
