//! Thin HTTP helper: sends one request to the registry under test and hands back the
//! whole answer (status, headers, body), with helpers to describe it in a failure
//! detail and to decode the spec's error body `{"errors":[{"code","message"}]}`.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use url::Url;

/// How long one request may take before the check that sent it fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How many bytes of a body a failure detail quotes.
const BODY_EXCERPT: usize = 300;

/// A request body.
pub enum Body {
    /// No body at all (GET, HEAD, DELETE).
    None,
    /// A body of known length, sent with `Content-Length` (which may be 0).
    Bytes(Vec<u8>),
    /// A body sent in pieces with chunked transfer encoding and no `Content-Length`.
    Stream(Vec<Vec<u8>>),
}

/// An HTTP client bound to the base URL of the registry under test.
pub struct Client {
    http: reqwest::Client,
    base: Url,
}

/// One complete answer from the registry.
pub struct Response {
    /// The request method, for failure details.
    pub method: Method,
    /// The URL that answered (after redirects).
    pub url: Url,
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The response body (what arrived of it, if reading it failed).
    pub body: Vec<u8>,
    /// Why reading the body failed, if it did (e.g. the connection closed before
    /// `Content-Length` bytes arrived). Checks that judge only the status still pass.
    pub body_error: Option<String>,
}

impl Client {
    /// Builds a client for `base_url` (e.g. `http://127.0.0.1:5000`).
    pub fn new(base_url: &str) -> Result<Self, String> {
        let base = Url::parse(base_url).map_err(|e| format!("invalid base URL {base_url}: {e}"))?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(Self { http, base })
    }

    /// Resolves a path (`/v2/...`) or a `Location`/`Link` value, relative or absolute,
    /// against the base URL.
    pub fn resolve(&self, reference: &str) -> Result<Url, String> {
        self.base
            .join(reference)
            .map_err(|e| format!("cannot resolve {reference:?} against {}: {e}", self.base))
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Result<Response, String> {
        let mut req = self.http.request(method.clone(), url.clone());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req = match body {
            Body::None => req,
            Body::Bytes(bytes) => req.header("Content-Length", bytes.len()).body(bytes),
            Body::Stream(chunks) => {
                let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
                req.body(reqwest::Body::wrap_stream(stream))
            }
        };
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{method} {url}: request failed: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let final_url = resp.url().clone();
        let (body, body_error) = match resp.bytes().await {
            Ok(b) => (b.to_vec(), None),
            Err(e) => (Vec::new(), Some(format!("reading body failed: {e}"))),
        };
        Ok(Response {
            method,
            url: final_url,
            status,
            headers,
            body,
            body_error,
        })
    }

    /// `GET` (or `HEAD`) a path or URL with extra headers.
    pub async fn fetch(
        &self,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response, String> {
        let url = self.resolve(target)?;
        self.send(method, url, headers, Body::None).await
    }
}

impl Response {
    /// The value of a header, if present and valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A header that must be present.
    pub fn require_header(&self, name: &str) -> Result<&str, String> {
        self.header(name)
            .ok_or_else(|| format!("missing {name} header; {}", self.describe()))
    }

    /// The media type of `Content-Type`, without parameters.
    pub fn content_type(&self) -> Option<&str> {
        self.header("Content-Type")
            .map(|v| v.split(';').next().unwrap_or(v).trim())
    }

    /// A one-line account of the answer for failure details: request line, status,
    /// headers and a body excerpt.
    pub fn describe(&self) -> String {
        let headers: Vec<String> = self
            .headers
            .iter()
            .filter(|(k, _)| *k != "date")
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("<binary>")))
            .collect();
        let body = match &self.body_error {
            Some(e) => e.clone(),
            None => excerpt(&self.body),
        };
        format!(
            "{} {} -> {} [{}] body: {body}",
            self.method,
            self.url,
            self.status,
            headers.join("; "),
        )
    }

    /// Fails unless the status is `want`.
    pub fn expect(&self, want: u16) -> Result<(), String> {
        if self.status == want {
            Ok(())
        } else {
            Err(format!("expected status {want}; got {}", self.describe()))
        }
    }

    /// Fails unless the status is `want` and the body is a spec error body whose
    /// errors include `code`.
    pub fn expect_error(&self, want: u16, code: &str) -> Result<(), String> {
        self.expect(want)?;
        let codes = self
            .error_codes()
            .map_err(|e| format!("{e}; {}", self.describe()))?;
        if codes.iter().any(|c| c == code) {
            Ok(())
        } else {
            Err(format!(
                "expected error code {code}, got {codes:?}; {}",
                self.describe()
            ))
        }
    }

    /// Decodes the spec error body into its list of codes.
    pub fn error_codes(&self) -> Result<Vec<String>, String> {
        let value: serde_json::Value = serde_json::from_slice(&self.body)
            .map_err(|e| format!("error body is not JSON: {e}"))?;
        let errors = value
            .get("errors")
            .and_then(|e| e.as_array())
            .ok_or("error body has no \"errors\" array")?;
        errors
            .iter()
            .map(|e| {
                e.get("code")
                    .and_then(|c| c.as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| format!("error entry without a string \"code\": {e}"))
            })
            .collect()
    }

    /// Parses the body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body)
            .map_err(|e| format!("body is not JSON ({e}); {}", self.describe()))
    }

    /// The target of the `Link: <...>; rel="next"` header, if any.
    pub fn next_link(&self) -> Option<String> {
        self.headers
            .get_all("Link")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(parse_next_link)
    }
}

/// Extracts the URL of the `rel="next"` entry from one `Link` header value (RFC 8288),
/// e.g. `</v2/a/tags/list?n=2&last=b>; rel="next"`.
pub fn parse_next_link(value: &str) -> Option<String> {
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        let params_end = rest[close..].find(',').map_or(rest.len(), |i| close + i);
        let params = &rest[close + 1..params_end];
        let is_next = params.split(';').any(|p| {
            let Some((key, val)) = p.split_once('=') else {
                return false;
            };
            key.trim().eq_ignore_ascii_case("rel")
                && val
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.to_owned());
        }
        rest = &rest[params_end..];
        if rest.is_empty() {
            break;
        }
        rest = &rest[1..];
    }
    None
}

/// The first bytes of a body as lossy text, for failure details.
fn excerpt(body: &[u8]) -> String {
    if body.is_empty() {
        return "<empty>".to_owned();
    }
    let cut = &body[..body.len().min(BODY_EXCERPT)];
    let text = String::from_utf8_lossy(cut).replace('\n', " ");
    if body.len() > BODY_EXCERPT {
        format!("{text}... ({} bytes)", body.len())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_plain() {
        assert_eq!(
            parse_next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
    }

    #[test]
    fn next_link_among_others_and_unquoted() {
        let v = r#"<http://x/prev>; rel="prev", <http://x/v2/_catalog?last=a%2Fb&n=1>;rel=next"#;
        assert_eq!(
            parse_next_link(v).as_deref(),
            Some("http://x/v2/_catalog?last=a%2Fb&n=1")
        );
    }

    #[test]
    fn next_link_absent() {
        assert_eq!(parse_next_link(r#"</v2/x>; rel="prev""#), None);
        assert_eq!(parse_next_link("garbage"), None);
        assert_eq!(parse_next_link("<unterminated; rel=next"), None);
    }

    #[test]
    fn excerpt_cuts_long_bodies() {
        assert_eq!(excerpt(b""), "<empty>");
        assert!(excerpt(&[b'a'; 1000]).ends_with("(1000 bytes)"));
    }
}
