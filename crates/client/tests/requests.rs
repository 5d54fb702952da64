//! The client against a recording fake registry on a real socket: what goes on the wire
//! for each operation (method, path, query, headers, body framing), and how answers,
//! pages and failures come back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body as AxBody, to_bytes};
use axum::extract::{Request as AxRequest, State};
use axum::http::{HeaderMap as AxHeaders, StatusCode};
use axum::response::{IntoResponse, Response as AxResponse};
use berth_client::{BlockingClient, Body, ByteRange, Client, Error, Method, Request, raw};
use bytes::Bytes;

/// One request as the fake registry saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    target: String,
    headers: AxHeaders,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

type Answer = (u16, Vec<(&'static str, String)>, Vec<u8>);
type Script = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;

#[derive(Clone)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Script,
}

async fn record(State(fake): State<Fake>, req: AxRequest) -> AxResponse {
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default()
        .to_vec();
    let seen = Seen {
        method: parts.method.to_string(),
        target: parts.uri.to_string(),
        headers: parts.headers,
        body,
    };
    let (status, headers, body) = (fake.script)(&seen);
    fake.seen.lock().unwrap().push(seen);
    let mut resp = AxBody::from(body).into_response();
    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
    for (k, v) in headers {
        resp.headers_mut().append(k, v.parse().unwrap());
    }
    resp
}

/// Starts the fake on a free port; answers its base URL and what it records.
async fn fake(
    script: impl Fn(&Seen) -> Answer + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = Fake {
        seen: Arc::clone(&seen),
        script: Arc::new(script),
    };
    let app = axum::Router::new().fallback(record).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

/// A fake upload endpoint: POST opens `/up/1`, each PATCH moves the offset, PUT creates.
fn uploads(seen: &Seen) -> Answer {
    match seen.method.as_str() {
        "POST" => (
            202,
            vec![
                ("Location", "/up/1?state=a".into()),
                ("Range", "0-0".into()),
            ],
            vec![],
        ),
        "PATCH" => {
            let end = seen
                .header("content-range")
                .and_then(|r| r.split('-').nth(1))
                .unwrap_or("0")
                .to_owned();
            (
                202,
                vec![
                    ("Location", "/up/1?state=b".into()),
                    ("Range", format!("0-{end}")),
                ],
                vec![],
            )
        }
        "PUT" => (
            201,
            vec![
                ("Docker-Content-Digest", "sha256:x".into()),
                ("Location", "/v2/a/b/blobs/sha256:x".into()),
            ],
            vec![],
        ),
        _ => (405, vec![], vec![]),
    }
}

#[tokio::test]
async fn chunked_push_sends_ranges_and_follows_locations() {
    let (url, seen) = fake(uploads).await;
    let reg = Client::new(&url).unwrap();
    let r = reg
        .push_blob_chunked("a/b", "sha256:x", Bytes::from_static(b"0123456"), 3)
        .await
        .unwrap();
    assert_eq!((r.status, r.digest()), (201, Some("sha256:x")));
    let seen = seen.lock().unwrap().clone();
    let lines: Vec<String> = seen
        .iter()
        .map(|s| format!("{} {}", s.method, s.target))
        .collect();
    assert_eq!(
        lines,
        [
            "POST /v2/a/b/blobs/uploads/",
            "PATCH /up/1?state=a",
            "PATCH /up/1?state=b",
            "PATCH /up/1?state=b",
            "PUT /up/1?state=b&digest=sha256%3Ax",
        ]
    );
    assert_eq!(seen[0].header("content-length"), Some("0"));
    let ranges: Vec<_> = seen[1..4]
        .iter()
        .map(|s| s.header("content-range").unwrap())
        .collect();
    assert_eq!(ranges, ["0-2", "3-5", "6-6"]);
    assert_eq!(seen[3].body, b"6");
    assert_eq!(seen[4].header("content-length"), Some("0"));
    assert_eq!(
        seen[4].header("content-type"),
        Some("application/octet-stream")
    );
}

#[tokio::test]
async fn a_wrong_range_stops_the_chunked_push() {
    let (url, _) = fake(|s| match s.method.as_str() {
        "PATCH" => (
            202,
            vec![("Location", "/up/1".into()), ("Range", "0-0".into())],
            vec![],
        ),
        _ => uploads(s),
    })
    .await;
    let reg = Client::new(&url).unwrap();
    let e = reg
        .push_blob_chunked("a", "sha256:x", Bytes::from_static(b"0123"), 2)
        .await
        .unwrap_err();
    assert!(e.to_string().starts_with("Range is not 0-1; PATCH "), "{e}");
}

#[tokio::test]
async fn monolithic_push_and_its_failures() {
    let (url, seen) = fake(uploads).await;
    let reg = Client::new(&url).unwrap();
    reg.push_blob("a", "sha256:x", b"abc".to_vec())
        .await
        .unwrap();
    let put = seen.lock().unwrap()[1].clone();
    assert_eq!(
        (put.method.as_str(), put.body.as_slice()),
        ("PUT", &b"abc"[..])
    );
    assert_eq!(put.header("content-length"), Some("3"));

    let (url, _) = fake(|_| {
        (
            404,
            vec![],
            br#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#.to_vec(),
        )
    })
    .await;
    let e = Client::new(&url)
        .unwrap()
        .push_blob("a", "sha256:x", b"abc".to_vec())
        .await
        .unwrap_err();
    match &e {
        Error::Status { want: 202, got } => {
            assert_eq!(got.error_codes().unwrap(), ["NAME_UNKNOWN"])
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn streamed_patch_is_chunked_unless_its_length_is_given() {
    let (url, seen) = fake(uploads).await;
    let reg = Client::new(&url).unwrap();
    let upload = reg.url("/up/1").unwrap();
    let pieces = vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cd")];
    reg.patch_stream(&upload, Body::pieces(pieces.clone()))
        .await
        .unwrap();
    let stream = futures::stream::iter(pieces.into_iter().map(Ok));
    reg.patch_stream(&upload, Body::stream(stream, Some(4)))
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].header("transfer-encoding"), Some("chunked"));
    assert_eq!(seen[0].header("content-length"), None);
    assert_eq!(seen[0].header("content-range"), None);
    assert_eq!(seen[1].header("content-length"), Some("4"));
    assert!(seen.iter().all(|s| s.body == b"abcd"));
}

#[tokio::test]
async fn manifests_mounts_listings_and_referrers_build_their_queries() {
    let (url, seen) = fake(|s| match s.target.as_str() {
        t if t.starts_with("/v2/r/tags/list") => (
            200,
            vec![("Link", "</v2/r/tags/list?n=1&last=a>; rel=\"next\"".into())],
            br#"{"name":"r","tags":["a"]}"#.to_vec(),
        ),
        _ => (200, vec![], b"{}".to_vec()),
    })
    .await;
    let reg = Client::new(&url).unwrap();
    let mt = "application/vnd.oci.image.manifest.v1+json";
    reg.put_manifest("r", "sha256:m", mt, b"{}".to_vec(), &["a", "b"])
        .await
        .unwrap();
    reg.get_manifest("r", "v1", mt).await.unwrap();
    reg.head_manifest("r", "v1", mt).await.unwrap();
    reg.delete_manifest("r", "v1").await.unwrap();
    reg.mount_blob("r", "sha256:b", Some("o/p")).await.unwrap();
    reg.mount_blob("r", "sha256:b", None).await.unwrap();
    let page = reg.tags_list("r", Some(1), None).await.unwrap();
    assert_eq!(page.tag_names().unwrap(), ["a"]);
    reg.get(&page.next_link().unwrap()).await.unwrap();
    reg.catalog(Some(5), Some("a/b")).await.unwrap();
    reg.catalog(None, None).await.unwrap();
    reg.referrers("r", "sha256:s", Some("application/x+y"))
        .await
        .unwrap();
    reg.get_blob("r", "sha256:b", Some(ByteRange::Suffix(5)))
        .await
        .unwrap();
    reg.get_blob("r", "sha256:b", Some(ByteRange::Span(0, 9)))
        .await
        .unwrap();
    reg.delete_blob("r", "sha256:b").await.unwrap();
    reg.ping().await.unwrap();

    let seen = seen.lock().unwrap().clone();
    let lines: Vec<String> = seen
        .iter()
        .map(|s| format!("{} {}", s.method, s.target))
        .collect();
    assert_eq!(
        lines,
        [
            "PUT /v2/r/manifests/sha256:m?tag=a&tag=b",
            "GET /v2/r/manifests/v1",
            "HEAD /v2/r/manifests/v1",
            "DELETE /v2/r/manifests/v1",
            "POST /v2/r/blobs/uploads/?mount=sha256%3Ab&from=o%2Fp",
            "POST /v2/r/blobs/uploads/?mount=sha256%3Ab",
            "GET /v2/r/tags/list?n=1",
            "GET /v2/r/tags/list?n=1&last=a",
            "GET /v2/_catalog?n=5&last=a%2Fb",
            "GET /v2/_catalog",
            "GET /v2/r/referrers/sha256:s?artifactType=application%2Fx%2By",
            "GET /v2/r/blobs/sha256:b",
            "GET /v2/r/blobs/sha256:b",
            "DELETE /v2/r/blobs/sha256:b",
            "GET /v2/",
        ]
    );
    assert_eq!(seen[0].header("content-type"), Some(mt));
    assert_eq!(seen[1].header("accept"), Some(mt));
    assert_eq!(seen[11].header("range"), Some("bytes=-5"));
    assert_eq!(seen[12].header("range"), Some("bytes=0-9"));
    assert_eq!(seen[13].header("content-length"), None);
}

#[tokio::test]
async fn bodies_arrive_whole_or_in_pieces() {
    let blob: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let served = blob.clone();
    let (url, _) = fake(move |_| {
        (
            200,
            vec![("Docker-Content-Digest", "sha256:b".into())],
            served.clone(),
        )
    })
    .await;
    let reg = Client::new(&url).unwrap();
    let r = reg.get_blob("r", "sha256:b", None).await.unwrap();
    assert!(r.body == blob && r.body_error.is_none());
    assert!(r.elapsed > Duration::ZERO);
    let mut s = reg.get_blob_streaming("r", "sha256:b", None).await.unwrap();
    assert_eq!(
        (s.status, s.header("docker-content-digest")),
        (200, Some("sha256:b"))
    );
    let mut got = Vec::new();
    while let Some(piece) = s.chunk().await.unwrap() {
        got.extend_from_slice(&piece);
    }
    assert!(got == blob);

    let target = reg.blob_url("r", "sha256:b").unwrap();
    let (mut at, mut same) = (0, true);
    let answer = tokio::task::spawn_blocking(move || {
        raw::get_with(&target, Duration::from_secs(10), None, |piece| {
            same &= blob[at..at + piece.len()] == *piece;
            at += piece.len();
        })
        .map(|a| (a, same))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        (answer.0.status, answer.0.len, answer.1),
        (200, 3_000_000, true)
    );
}

#[tokio::test]
async fn the_escape_hatch_sends_what_it_is_given() {
    let (url, seen) = fake(|_| {
        (
            400,
            vec![],
            br#"{"errors":[{"code":"DIGEST_INVALID"}]}"#.to_vec(),
        )
    })
    .await;
    let reg = Client::new(&url).unwrap();
    let req = Request::new(Method::PUT, reg.url("/v2/x/blobs/uploads/u").unwrap())
        .query(&[("digest", "sha256:nothex")])
        .header("X-Probe", "1")
        .header("Content-Length", "3")
        .body(Body::bytes(b"abc".to_vec()));
    let r = reg.send(req).await.unwrap();
    assert_eq!(r.error_codes().unwrap(), ["DIGEST_INVALID"]);
    let seen = seen.lock().unwrap()[0].clone();
    assert_eq!(seen.target, "/v2/x/blobs/uploads/u?digest=sha256%3Anothex");
    assert_eq!(seen.header("x-probe"), Some("1"));
    assert_eq!(seen.headers.get_all("content-length").iter().count(), 1);
}

#[tokio::test]
async fn no_answer_is_a_transport_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let reg = Client::new(&format!("http://127.0.0.1:{port}")).unwrap();
    match reg.ping().await {
        Err(Error::Transport { what, .. }) => {
            assert_eq!(what, format!("GET http://127.0.0.1:{port}/v2/"))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(Client::new("not a url"), Err(Error::Url { .. })));
}

#[test]
fn the_blocking_client_waits_for_each_operation() {
    let server = tokio::runtime::Runtime::new().unwrap();
    let (url, seen) = server.block_on(fake(uploads));
    let reg = BlockingClient::connect(&url).unwrap();
    let r = reg
        .run(|c| c.push_blob("a", "sha256:x", b"abc".to_vec()))
        .unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(seen.lock().unwrap().len(), 2);
}
