//! Log set-up from `log.level`, `log.formatter`, `log.fields` and `log.accesslog`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::Config;

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the level.
pub fn init(config: &Config) {
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
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
