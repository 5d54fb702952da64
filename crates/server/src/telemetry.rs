//! OpenTelemetry traces, exported over OTLP/HTTP when the standard `OTEL_*` environment
//! variables ask for them, and off otherwise. What turns them on: `OTEL_TRACES_EXPORTER=otlp`,
//! or an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! with no `OTEL_TRACES_EXPORTER`; `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`
//! keep them off. Everything else the SDK reads itself (headers, timeout, protocol
//! `http/protobuf` or `http/json`, sampler, batch sizes, resource attributes).
//!
//! Each request is one server span (the `request` span of `berth-http`, continued from
//! the caller's W3C `traceparent` when it sends one) and each storage call a child span
//! (`berth_driver::ObservedDriver`); log events written inside them become span events.

use std::sync::atomic::{AtomicBool, Ordering};

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Set once an exporter is installed: the storage spans are only worth making then.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Why traces could not be set up as the environment asks.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// An exporter other than OTLP (or `none`) was named.
    #[error(
        "OTEL_TRACES_EXPORTER={0}: berth exports traces over OTLP only (set it to `otlp` or `none`)"
    )]
    Exporter(String),
    /// A protocol berth has no client for.
    #[error(
        "{var}={value}: berth sends OTLP over HTTP only (`http/protobuf` or `http/json`); \
         point it at the collector's HTTP port (4318 by default)"
    )]
    Protocol {
        /// The variable that named it.
        var: &'static str,
        /// What it named.
        value: String,
    },
    /// The SDK refused the settings.
    #[error("OTLP trace exporter: {0}")]
    Build(String),
}

/// The installed trace pipeline; dropping it sends what is still buffered.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        ACTIVE.store(false, Ordering::Relaxed);
        if let Err(e) = self.provider.shutdown() {
            eprintln!("berth: flushing traces at exit: {e}");
        }
    }
}

/// Whether spans are being exported.
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether the environment asks for traces.
fn wanted() -> Result<bool, TelemetryError> {
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(false);
    }
    if let Some(exporters) = var("OTEL_TRACES_EXPORTER") {
        let mut otlp = false;
        for name in exporters.split(',').map(str::trim) {
            match name {
                "otlp" => otlp = true,
                "none" => return Ok(false),
                other => return Err(TelemetryError::Exporter(other.to_owned())),
            }
        }
        return Ok(otlp);
    }
    Ok(var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some())
}

/// The protocol the environment names, `http/protobuf` (OTLP's default) when none. Refused
/// rather than left to the exporter, which would fall back to another one silently.
fn protocol() -> Result<Protocol, TelemetryError> {
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(value) = var(name) {
            return match value.to_ascii_lowercase().as_str() {
                "http/protobuf" => Ok(Protocol::HttpBinary),
                "http/json" => Ok(Protocol::HttpJson),
                _ => Err(TelemetryError::Protocol { var: name, value }),
            };
        }
    }
    Ok(Protocol::HttpBinary)
}

/// The service's resource: the SDK's (environment included), named `berth` unless the
/// environment names it.
fn resource() -> Resource {
    let named = var("OTEL_SERVICE_NAME").is_some()
        || var("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| {
            a.split(',')
                .any(|kv| kv.trim_start().starts_with("service.name="))
        });
    let builder = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
        "service.version",
        env!("CARGO_PKG_VERSION"),
    ));
    if named {
        builder.build()
    } else {
        builder.with_service_name("berth").build()
    }
}

/// The layer that turns `tracing` spans into exported ones.
pub type TraceLayer<S> =
    tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>;

/// Builds the exporter and the tracing layer the environment asks for; `None` when it
/// asks for none. Must run outside the async runtime: the exporter's blocking HTTP
/// client owns a runtime of its own.
pub fn from_env<S>() -> Result<Option<(Telemetry, TraceLayer<S>)>, TelemetryError>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    if !wanted()? {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol()?)
        .build()
        .map_err(|e| TelemetryError::Build(e.to_string()))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build();
    let tracer = provider.tracer("berth");
    ACTIVE.store(true, Ordering::Relaxed);
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        // A span starts when it ends or gets a child, not when it is entered, so that
        // `dispatch` can still name the request's span once it knows the route (nothing
        // else in the process reads the active OpenTelemetry context).
        .with_context_activation(false)
        // Source locations, threads, targets and busy/idle times say nothing per request.
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false);
    Ok(Some((Telemetry { provider }, layer)))
}

/// A request's headers, as the propagator reads them.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Makes a request's span continue the trace its `traceparent` header names, if any.
pub fn continue_trace(headers: &HeaderMap, span: &tracing::Span) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    // Fails only when the span is not exported, and then there is nothing to continue.
    let _ = span.set_parent(parent);
}
