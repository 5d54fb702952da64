//! Log set-up from `log.level`, `log.formatter`, `log.fields` and `log.accesslog`, and
//! the trace exporter beside it (`telemetry`).

use std::io::IsTerminal;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::Config;
use crate::telemetry::{Telemetry, TelemetryError};

/// Installs the global subscriber, with the OpenTelemetry layer when the environment asks
/// for traces (the returned guard sends what is buffered when dropped). `RUST_LOG`, when
/// set, overrides the level of log lines; it does not change what is traced.
pub fn init(config: &Config) -> Result<Option<Telemetry>, TelemetryError> {
    let level = config
        .log
        .level
        .as_deref()
        .unwrap_or("info")
        .to_ascii_lowercase();
    let level = match level.as_str() {
        "error" | "warn" | "info" | "debug" | "trace" => level,
        "warning" => "warn".to_owned(),
        "fatal" | "panic" => "error".to_owned(),
        _ => "info".to_owned(),
    };
    let mut directives = level;
    if !config.log.access_log {
        directives.push_str(",berth::access=off");
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives));
    let json = matches!(
        config.log.formatter.as_deref(),
        Some("json") | Some("logstash")
    );
    // Colour codes help a person at a terminal and corrupt a file or a pipe.
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = if json {
        fmt.json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let (telemetry, otel) = match crate::telemetry::from_env()? {
        Some((telemetry, layer)) => {
            // berth's own spans and events only: the exporter's HTTP client must not
            // trace its own exports, and the access line repeats the request span.
            let traced = Targets::new()
                .with_target("berth", LevelFilter::INFO)
                .with_target("berth::access", LevelFilter::OFF);
            (Some(telemetry), Some(layer.with_filter(traced)))
        }
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init();
    Ok(telemetry)
}

/// `log.fields` as one `key=value` string, attached to every request's span.
pub fn static_fields(config: &Config) -> Option<String> {
    if config.log.fields.is_empty() {
        return None;
    }
    let parts: Vec<String> = config
        .log
        .fields
        .iter()
        .map(|(k, v)| {
            let v = match v {
                yaml_serde::Value::String(s) => s.clone(),
                other => yaml_serde::to_string(other)
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            };
            format!("{k}={v}")
        })
        .collect();
    Some(parts.join(" "))
}
