//! The `_state` token of upload URLs (issue #8): berth's Locations carry it signed with
//! `http.secret` as distribution signs it; a request's token is checked against the
//! session its path names; a session is still found without one.

use std::sync::Arc;

use axum::Router;
use berth_core::{Algorithm, Digest, RepositoryName, UploadId};
use berth_driver::InMemoryDriver;
use berth_storage::{Options as StoreOptions, StorageRegistry};
use http::StatusCode;
use time::OffsetDateTime;

use super::{Resp, app, call};
use crate::upload_state::UploadToken;
use crate::{Options, UploadSecret, router};

fn with_secret(secret: UploadSecret) -> Options {
    Options {
        upload_secret: secret,
        ..Options::default()
    }
}

/// The `_state` of a Location, decoded and verified.
fn token_of(r: &Resp, secret: &UploadSecret) -> UploadToken {
    let loc = r.header("location");
    let query = loc.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let state = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "_state")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no _state in {loc}"));
    UploadToken::unpack(secret, &state).unwrap()
}

fn is_invalid(r: &Resp) -> bool {
    (r.status, r.code().as_str()) == (StatusCode::NOT_FOUND, "BLOB_UPLOAD_INVALID")
}

#[tokio::test]
async fn locations_carry_a_signed_state_that_is_checked() {
    let secret = UploadSecret::configured("fleet");
    let app = app(with_secret(secret.clone()));
    let before = OffsetDateTime::now_utc();
    let r = call(&app, "POST", "/v2/team/app/blobs/uploads/", &[], b"").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let id = r.header("docker-upload-uuid").to_owned();
    let t = token_of(&r, &secret);
    assert_eq!(
        (t.name.as_str(), t.uuid.as_str(), t.offset),
        ("team/app", id.as_str(), 0)
    );
    assert!(t.started_at >= before - time::Duration::SECOND);
    let started = t.started_at;

    let loc = r.header("location").to_owned();
    let r = call(&app, "PATCH", &loc, &[], b"hello").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let t = token_of(&r, &secret);
    assert_eq!(t.offset, 5);
    assert_eq!(
        t.started_at, started,
        "the start time travels with the token"
    );
    let loc = r.header("location").to_owned();

    // Signed by another secret: a fleet whose nodes disagree.
    let name = RepositoryName::parse("team/app").unwrap();
    let uid = UploadId::parse(&id).unwrap();
    let foreign = UploadToken::new(&name, &uid, 5, None).pack(&UploadSecret::configured("other"));
    let foreign: String = url::form_urlencoded::byte_serialize(foreign.as_bytes()).collect();
    let path = format!("/v2/team/app/blobs/uploads/{id}");
    for method in ["GET", "PATCH", "PUT", "DELETE"] {
        let r = call(&app, method, &format!("{path}?_state={foreign}"), &[], b"").await;
        assert!(
            is_invalid(&r),
            "{method} with another secret's token: {}",
            r.status
        );
    }
    // Correctly signed, but for another repository or session.
    let moved = loc.replacen("/team/app/", "/team/other/", 1);
    let r = call(&app, "GET", &moved, &[], b"").await;
    assert!(
        is_invalid(&r),
        "token moved to another repository: {}",
        r.status
    );
    let other_id = UploadId::random();
    let r = call(
        &app,
        "GET",
        &loc.replacen(&id, other_id.as_str(), 1),
        &[],
        b"",
    )
    .await;
    assert!(
        is_invalid(&r),
        "token moved to another session: {}",
        r.status
    );
    let r = call(&app, "GET", &format!("{path}?_state=%21%21"), &[], b"").await;
    assert!(is_invalid(&r), "garbage token: {}", r.status);

    // Without a token the session is still found (berth's own leniency).
    let r = call(&app, "PATCH", &path, &[], b" world").await;
    assert_eq!(
        (r.status, r.header("range")),
        (StatusCode::ACCEPTED, "0-10")
    );
    let t = token_of(&r, &secret);
    assert_eq!(t.offset, 11);
    assert_eq!(
        t.started_at.year(),
        1,
        "a start time the answer does not know is Go's zero time"
    );
    let d = Digest::of(Algorithm::Sha256, b"hello world");
    let r = call(&app, "PUT", &format!("{loc}&digest={d}"), &[], b"").await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "a stale token's offset is not held against it"
    );
}

#[tokio::test]
async fn without_a_configured_secret_unverifiable_tokens_are_ignored() {
    // Two processes on one storage in turn, each with its own random key: a Location
    // from before the restart still works on the next one.
    let store: Arc<StorageRegistry> = Arc::new(StorageRegistry::new(
        Arc::new(InMemoryDriver::new()),
        StoreOptions::default(),
    ));
    let first: Router = router(store.clone(), Options::default());
    let second: Router = router(store, Options::default());
    let r = call(&first, "POST", "/v2/solo/blobs/uploads/", &[], b"").await;
    let loc = r.header("location").to_owned();
    assert!(loc.contains("?_state="), "{loc}");
    let r = call(&second, "PATCH", &loc, &[], b"abc").await;
    assert_eq!((r.status, r.header("range")), (StatusCode::ACCEPTED, "0-2"));
    // Its own tokens are still checked against the path.
    let moved = r.header("location").replacen("/solo/", "/other/", 1);
    let r = call(&second, "GET", &moved, &[], b"").await;
    assert!(is_invalid(&r), "{}", r.status);
}
