//! Request ids: every request gets one, taken from its `X-Request-Id` header when that
//! is a sane token, otherwise generated (a random UUID, version 4). The id is a request
//! extension ([`RequestId`]) for handlers and the notification events they emit, a field
//! of the span every log event of the request is written in (the access line too), and
//! is echoed in the response's `X-Request-Id`.

use std::fmt;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue};
use tracing::Instrument;

/// `X-Request-Id`.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-given id kept; a longer one is replaced. Long enough for any tracing
/// scheme in use (a W3C trace parent is 55 bytes), short enough to keep log lines sane.
pub const MAX_REQUEST_ID_LEN: usize = 128;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// One request's id, as the header value it is echoed as (cloning shares its bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The client's id when it is 1 to [`MAX_REQUEST_ID_LEN`] visible ASCII characters
    /// (no spaces or controls, which could forge or break log lines); `None` otherwise.
    pub fn from_headers(headers: &HeaderMap) -> Option<RequestId> {
        let value = headers.get(REQUEST_ID)?;
        let bytes = value.as_bytes();
        let sane = (1..=MAX_REQUEST_ID_LEN).contains(&bytes.len())
            && bytes.iter().all(|b| b.is_ascii_graphic());
        sane.then(|| RequestId(value.clone()))
    }

    /// A new random id: a version-4 UUID in its hyphenated form.
    pub fn generate() -> RequestId {
        let mut bytes: [u8; 16] = rand::random();
        // Version 4 (random) and the RFC 4122 variant, so tools that parse UUIDs accept it.
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let mut text = String::with_capacity(36);
        for (i, b) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                text.push('-');
            }
            text.push(char::from(HEX[usize::from(b >> 4)]));
            text.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        // Hex digits and hyphens are always a valid header value.
        RequestId(HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("-")))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only visible ASCII gets in (checked or generated), so this never falls back.
        self.0.to_str().unwrap_or("-")
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.as_str())
    }
}

/// What the request span carries besides the id.
#[derive(Clone)]
pub(crate) struct SpanSettings {
    /// `log.fields`, as one text.
    pub fields: Option<std::sync::Arc<str>>,
    /// Links the span to the caller's trace, when traces are exported.
    pub continue_trace: Option<crate::ContinueTrace>,
}

/// Names the request, runs it inside its span (which also carries `log.fields`, the
/// state, and what OpenTelemetry's HTTP conventions ask of a server span), and echoes
/// the id. Outermost layer, so that every other layer logs inside the span.
pub(crate) async fn assign(
    State(settings): State<SpanSettings>,
    mut req: Request,
    next: Next,
) -> Response {
    let id = RequestId::from_headers(req.headers()).unwrap_or_else(RequestId::generate);
    req.extensions_mut().insert(id.clone());
    let span = match settings.continue_trace {
        // `otel.name` and `http.route` are filled in by `dispatch` once the endpoint is
        // known. Only an exported span carries them: they would repeat the access line
        // in every log line's span.
        Some(continue_trace) => {
            let span = tracing::info_span!(
                "request",
                request_id = %id,
                fields = tracing::field::Empty,
                otel.name = %req.method(),
                otel.kind = "server",
                otel.status_code = tracing::field::Empty,
                http.request.method = %req.method(),
                http.route = tracing::field::Empty,
                url.path = req.uri().path(),
                http.response.status_code = tracing::field::Empty,
            );
            continue_trace(req.headers(), &span);
            span
        }
        None => tracing::info_span!("request", request_id = %id, fields = tracing::field::Empty),
    };
    if let Some(fields) = &settings.fields {
        span.record("fields", fields.as_ref());
    }
    let mut resp = next.run(req).instrument(span.clone()).await;
    if settings.continue_trace.is_some() {
        span.record("http.response.status_code", resp.status().as_u16());
        if resp.status().is_server_error() {
            span.record("otel.status_code", "error");
        }
    }
    resp.headers_mut().insert(REQUEST_ID, id.0);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, HeaderValue::from_bytes(value).unwrap());
        h
    }

    #[test]
    fn sane_client_ids_are_kept() {
        let id = RequestId::from_headers(&with(b"abc-123_XYZ.trace/1")).unwrap();
        assert_eq!(id.as_str(), "abc-123_XYZ.trace/1");
        let longest = "a".repeat(MAX_REQUEST_ID_LEN);
        assert!(RequestId::from_headers(&with(longest.as_bytes())).is_some());
    }

    #[test]
    fn other_client_ids_are_replaced() {
        let too_long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        for bad in [
            &b""[..],
            b"has space",
            b"tab\there",
            too_long.as_bytes(),
            b"caf\xc3\xa9",
        ] {
            assert!(RequestId::from_headers(&with(bad)).is_none(), "{bad:?}");
        }
        assert!(RequestId::from_headers(&HeaderMap::new()).is_none());
    }

    #[test]
    fn generated_ids_are_version_4_uuids() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        let text = a.as_str();
        assert_eq!(text.len(), 36, "{text}");
        let groups: Vec<&str> = text.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('4'), "{text}");
        assert!("89ab".contains(&groups[3][..1]), "{text}");
        assert!(text.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit()));
    }
}
