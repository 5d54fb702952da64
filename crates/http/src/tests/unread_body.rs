//! `Connection: close` marks exactly the HTTP/1.x answers given before the request body
//! was read to its end (the socket-level consequence is checked by berth-conformance).

use axum::body::Body;
use http::{Request, StatusCode, Version, header};
use tower::ServiceExt;

use super::{app, call, push};
use crate::Options;

#[tokio::test]
async fn only_answers_that_left_the_body_unread_announce_a_close() {
    let app = app(Options::default());
    let data = vec![7u8; 3000];

    // Read to the end: the blob is stored, the connection stays.
    push(&app, "unread/a", &data).await;
    let r = call(&app, "POST", "/v2/unread/a/blobs/uploads/", &[], b"").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.headers.get(header::CONNECTION).is_none());
    let upload = r.header("location").to_owned();
    let r = call(&app, "PATCH", &upload, &[], &data).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(
        r.headers.get(header::CONNECTION).is_none(),
        "PATCH read whole"
    );

    // Refused before the body was looked at.
    let unknown = "/v2/unread/a/blobs/uploads/no-such-session";
    let r = call(&app, "PATCH", unknown, &[], &data).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN")
    );
    assert_eq!(r.header("connection"), "close");
    let r = call(&app, "PUT", "/v2/Bad..Name/manifests/v1", &[], &data).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert_eq!(r.header("connection"), "close");

    // HTTP/2 closes nothing (and forbids the header).
    let req = Request::builder()
        .method("PATCH")
        .uri(unknown)
        .version(Version::HTTP_2)
        .body(Body::from(data.clone()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(resp.headers().get(header::CONNECTION).is_none());
}
