//! An HTTP/1.x answer given before its request body was read to the end reads a small
//! rest and keeps the connection, and announces `Connection: close` otherwise (the
//! socket-level consequence is checked by berth-conformance).

use axum::body::Body;
use http::{Request, StatusCode, Version, header};
use tower::ServiceExt;

use super::{app, call, push};
use crate::Options;
use crate::unread_body::DRAIN_LIMIT;

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

    // Refused before the body was looked at: a small rest is read and dropped, and the
    // connection stays; a larger one ends it, announced.
    let unknown = "/v2/unread/a/blobs/uploads/no-such-session";
    let r = call(&app, "PATCH", unknown, &[], &data).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN")
    );
    assert!(
        r.headers.get(header::CONNECTION).is_none(),
        "small rest read"
    );
    let r = call(&app, "PUT", "/v2/Bad..Name/manifests/v1", &[], &data).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert!(
        r.headers.get(header::CONNECTION).is_none(),
        "small rest read"
    );
    let large = vec![7u8; DRAIN_LIMIT + 1];
    let r = call(&app, "PATCH", unknown, &[], &large).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header("connection"), "close");
    let r = call(&app, "PATCH", unknown, &[], &large[..DRAIN_LIMIT]).await;
    assert!(
        r.headers.get(header::CONNECTION).is_none(),
        "a rest at the limit is read"
    );

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

/// A rest that does not come within the wait ends the connection, announced: the answer
/// waits for it no longer than that.
#[tokio::test(start_paused = true)]
async fn a_rest_that_never_comes_closes_the_connection() {
    let app = app(Options::default());
    let never = futures::stream::pending::<Result<bytes::Bytes, std::io::Error>>();
    let req = Request::builder()
        .method("PATCH")
        .uri("/v2/unread/b/blobs/uploads/no-such-session")
        .body(Body::from_stream(never))
        .unwrap();
    let started = tokio::time::Instant::now();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.headers()[header::CONNECTION], "close");
    assert!(started.elapsed() >= crate::unread_body::DRAIN_WAIT);
}
