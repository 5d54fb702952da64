//! OpenTelemetry traces from the real binary, received by a small OTLP/HTTP collector on
//! loopback that decodes what it is sent with the OTLP protobuf definitions: a request
//! continuing a caller's `traceparent` is a server span of that trace, its storage calls
//! are its children, the service is named; without `OTEL_*` nothing is sent; a gRPC
//! protocol is refused at start-up with a readable error.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use berth_client::{Body, Method, Request};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use sha2::{Digest as _, Sha256};

/// One received span with what the assertions look at.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: HashMap<String, String>,
}

type Spans = Arc<Mutex<Vec<Received>>>;

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attributes(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

async fn collect(
    State(spans): State<Spans>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body.clone()).unwrap_or_else(|e| {
        panic!(
            "not an OTLP protobuf body ({e}): {headers:?} {:?}",
            String::from_utf8_lossy(&body)
        )
    });
    let mut out = spans.lock().unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .as_ref()
            .map(|r| attributes(&r.attributes))
            .and_then(|a| a.get("service.name").cloned())
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                out.push(Received {
                    service: service.clone(),
                    name: span.name.clone(),
                    kind: span.kind,
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent: hex::encode(&span.parent_span_id),
                    attributes: attributes(&span.attributes),
                });
            }
        }
    }
    ""
}

/// Starts the collector on a free loopback port in a thread of its own; answers its
/// address and what it has received.
fn collector() -> (String, Spans) {
    let spans: Spans = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr").to_string();
    let state = spans.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let app = axum::Router::new()
                .route("/v1/traces", post(collect))
                .with_state(state);
            axum::serve(listener, app).await.expect("serve");
        });
    });
    (addr, spans)
}

/// `berth serve` on `root` with exactly the `OTEL_*` variables of `env`; answers the
/// command and the address it will listen on.
fn berth_traced(
    root: &std::path::Path,
    work: &std::path::Path,
    env: &[(&str, &str)],
) -> (Command, String) {
    let (config, addr) = common::berth_config(root, work, "", "");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("serve").arg(config);
    for var in [
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    (cmd, addr)
}

#[test]
fn requests_and_storage_calls_are_exported_as_one_trace() {
    let (collector_addr, spans) = collector();
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{collector_addr}");
    let (cmd, addr) = berth_traced(
        root.path(),
        work.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            // Export within a fraction of a second rather than the default 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let berth = common::spawn(cmd, addr, work.path(), "berth");
    let reg = berth.client();

    // A monolithic upload, continuing the caller's trace: its storage calls are the
    // request span's children.
    let data = b"traced layer".to_vec();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let mut url = reg.client().url("/v2/traced/app/blobs/uploads/").unwrap();
    url.query_pairs_mut().append_pair("digest", &digest);
    let req = Request::new(Method::POST, url)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .header("X-Request-Id", "traced-push-1")
        .body(Body::bytes(data.clone()));
    let resp = reg.run(|c| c.send(req)).expect("POST blob");
    assert_eq!(resp.status, 201);
    // A GET of it, in a trace of its own.
    let resp = reg
        .run(|c| c.head_blob("traced/app", &digest))
        .expect("HEAD");
    assert_eq!(resp.status, 200);

    // Wait until the upload's span and at least one of its storage children arrived.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (request, children) = loop {
        let got = spans.lock().unwrap().clone();
        let request = got
            .iter()
            .find(|s| s.trace_id == trace_id && s.parent == caller_span)
            .cloned();
        if let Some(request) = request {
            let children: Vec<Received> = got
                .iter()
                .filter(|s| s.parent == request.span_id)
                .cloned()
                .collect();
            if !children.is_empty() {
                break (request, children);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no trace arrived; received {got:#?}\nberth log:\n{}",
            berth.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };

    assert_eq!(request.service, "berth");
    assert_eq!(request.name, "POST /v2/{name}/blobs/uploads/");
    assert_eq!(request.kind, SpanKind::Server as i32);
    let attr = |k: &str| request.attributes.get(k).map(String::as_str);
    assert_eq!(attr("http.request.method"), Some("POST"));
    assert_eq!(attr("http.route"), Some("/v2/{name}/blobs/uploads/"));
    assert_eq!(attr("http.response.status_code"), Some("201"));
    assert_eq!(attr("request_id"), Some("traced-push-1"));
    assert_eq!(attr("url.path"), Some("/v2/traced/app/blobs/uploads/"));
    for child in &children {
        assert_eq!(child.trace_id, trace_id, "{child:?}");
        assert_eq!(child.kind, SpanKind::Internal as i32, "{child:?}");
        assert_eq!(
            child.attributes.get("storage.driver").map(String::as_str),
            Some("filesystem"),
            "{child:?}"
        );
        assert!(
            child
                .attributes
                .get("storage.path")
                .is_some_and(|p| p.starts_with("/docker/registry/v2/")),
            "{child:?}"
        );
    }
    let names: Vec<&str> = children.iter().map(|c| c.name.as_str()).collect();
    assert!(
        names.contains(&"Writer") && names.contains(&"Move"),
        "an upload writes its data and moves it into place: {names:?}"
    );

    // Requests without a `traceparent` start traces of their own.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = spans.lock().unwrap().clone();
        if let Some(head) = got
            .iter()
            .find(|s| s.name == "HEAD /v2/{name}/blobs/{digest}")
        {
            assert!(head.parent.is_empty(), "{head:?}");
            assert_ne!(head.trace_id, trace_id, "{head:?}");
            assert_eq!(
                head.attributes
                    .get("http.response.status_code")
                    .map(String::as_str),
                Some("200")
            );
            break;
        }
        assert!(Instant::now() < deadline, "no HEAD span: {got:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(berth.stop().success());
}

#[test]
fn nothing_is_exported_unless_asked() {
    let (collector_addr, spans) = collector();
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    // A traces endpoint, but the exporter is switched off by name.
    let endpoint = format!("http://{collector_addr}/v1/traces");
    let (cmd, addr) = berth_traced(
        root.path(),
        work.path(),
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint.as_str()),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let berth = common::spawn(cmd, addr, work.path(), "berth");
    for _ in 0..5 {
        assert_eq!(berth.client().run(|c| c.ping()).unwrap().status, 200);
    }
    std::thread::sleep(Duration::from_millis(600));
    assert!(berth.stop().success());
    assert!(spans.lock().unwrap().is_empty());
}

#[test]
fn a_grpc_collector_is_refused_at_start_up() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (mut cmd, _) = berth_traced(
        root.path(),
        work.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
    );
    let out = cmd.output().expect("run berth");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc") && err.contains("http/protobuf"),
        "{err}"
    );
}
