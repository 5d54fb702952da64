//! What a registry answered: [`Response`] (status, headers and the whole body, read
//! before it is returned) and [`Streaming`] (status and headers, the body read piece by
//! piece), with the readers every user needs: headers, `Location`, the `Link` to the
//! next page, listings, the spec's error codes, and a one-line account for failures.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;
use url::Url;

use crate::error::{Error, describe};

/// How many bytes of a body [`Response::describe`] quotes.
const BODY_EXCERPT: usize = 300;

/// One complete answer.
#[derive(Clone)]
pub struct Response {
    /// The request method.
    pub method: Method,
    /// The URL that answered (after redirects, when the client follows them); relative
    /// `Location` and `Link` values resolve against it.
    pub url: Url,
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body (what arrived of it, if reading it failed).
    pub body: Bytes,
    /// Why reading the body failed, if it did (e.g. the connection closed before
    /// `Content-Length` bytes arrived); a check that judges only the status can ignore it.
    pub body_error: Option<String>,
    /// From sending the request to the last byte of the body: what a benchmark times.
    /// Putting a body that arrived in pieces together is not part of it.
    pub elapsed: Duration,
}

impl Response {
    /// `METHOD URL`, for messages.
    pub fn what(&self) -> String {
        format!("{} {}", self.method, self.url)
    }

    /// The value of a header, if present and valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of a header that may repeat (e.g. `OCI-Tag`, `Link`).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// A header that must be present.
    pub fn require_header(&self, name: &'static str) -> Result<&str, Error> {
        self.header(name).ok_or_else(|| Error::MissingHeader {
            name,
            got: Box::new(self.clone()),
        })
    }

    /// The media type of `Content-Type`, without parameters.
    pub fn content_type(&self) -> Option<&str> {
        self.header("Content-Type")
            .map(|v| v.split(';').next().unwrap_or(v).trim())
    }

    /// `Docker-Content-Digest`, if present.
    pub fn digest(&self) -> Option<&str> {
        self.header("Docker-Content-Digest")
    }

    /// The `Location` header resolved against the URL that answered: where an upload
    /// continues, or where a pushed blob or manifest lives.
    pub fn location(&self) -> Result<Url, Error> {
        let loc = self.require_header("Location")?;
        self.url.join(loc).map_err(|source| Error::Url {
            reference: loc.to_owned(),
            base: self.url.to_string(),
            source,
        })
    }

    /// The target of the `Link: <...>; rel="next"` header, as written, if any.
    pub fn next_link(&self) -> Option<String> {
        self.header_all("Link")
            .into_iter()
            .find_map(parse_next_link)
    }

    /// Fails unless the status is `want`.
    pub fn require_status(&self, want: u16) -> Result<(), Error> {
        if self.status == want {
            Ok(())
        } else {
            Err(Error::Status {
                want,
                got: Box::new(self.clone()),
            })
        }
    }

    /// This answer if its status is `want`, else the error naming what came back.
    pub fn expect_status(self, want: u16) -> Result<Self, Error> {
        if self.status == want {
            Ok(self)
        } else {
            Err(Error::Status {
                want,
                got: Box::new(self),
            })
        }
    }

    /// Fails unless the status is `want` and the body is the spec's error body with
    /// `code` among its errors.
    pub fn require_error(&self, want: u16, code: &str) -> Result<(), Error> {
        self.require_status(want)?;
        let codes = self.error_codes()?;
        if codes.iter().any(|c| c == code) {
            Ok(())
        } else {
            Err(self.body_error(format!("expected error code {code}, got {codes:?}")))
        }
    }

    /// The body as lossy text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| self.body_error(format!("body is not JSON ({e})")))
    }

    /// The codes of the spec's error body `{"errors":[{"code": ...}]}`.
    pub fn error_codes(&self) -> Result<Vec<String>, Error> {
        let value = self.json()?;
        let errors = value
            .get("errors")
            .and_then(Value::as_array)
            .ok_or_else(|| self.body_error("error body has no \"errors\" array".into()))?;
        errors
            .iter()
            .map(|e| {
                e.get("code")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        self.body_error(format!("error entry without a string \"code\": {e}"))
                    })
            })
            .collect()
    }

    /// The tags of a `tags/list` answer (`null` or missing counts as none).
    pub fn tag_names(&self) -> Result<Vec<String>, Error> {
        self.names("tags")
    }

    /// The repositories of a `_catalog` answer (`null` or missing counts as none).
    pub fn repository_names(&self) -> Result<Vec<String>, Error> {
        self.names("repositories")
    }

    /// The string array under `field` of a JSON body (`null` or missing counts as
    /// none).
    pub fn names(&self, field: &str) -> Result<Vec<String>, Error> {
        match self.json()?.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| self.body_error(format!("{field} holds a non-string")))
                })
                .collect(),
            Some(_) => Err(self.body_error(format!("{field} is not an array"))),
        }
    }

    fn body_error(&self, detail: String) -> Error {
        Error::Body {
            detail,
            got: Box::new(self.clone()),
        }
    }

    /// A one-line account for failure messages: request, status, headers and a body
    /// excerpt.
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
            "{} -> {} [{}] body: {body}",
            self.what(),
            self.status,
            headers.join("; "),
        )
    }
}

impl fmt::Debug for Response {
    /// The one-line account: a whole blob body would bury everything else.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// An answer whose body is read piece by piece, never held whole: for blobs larger
/// than a caller wants in memory.
pub struct Streaming {
    /// The request method.
    pub method: Method,
    /// The URL that answered.
    pub url: Url,
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    pub(crate) inner: reqwest::Response,
}

impl Streaming {
    /// The value of a header, if present and valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The next piece of the body, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        self.inner.chunk().await.map_err(|e| Error::Transport {
            what: format!("{} {}", self.method, self.url),
            detail: describe(&e),
        })
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

/// The first bytes of a body as lossy text, for failure messages.
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
    use reqwest::header::HeaderValue;

    fn answer(status: u16, headers: &[(&'static str, &str)], body: &str) -> Response {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        Response {
            method: Method::GET,
            url: Url::parse("http://r.example:5000/v2/a/b/tags/list").unwrap(),
            status,
            headers: map,
            body: Bytes::from(body.to_owned()),
            body_error: None,
            elapsed: Duration::ZERO,
        }
    }

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
    fn next_link_in_a_second_header() {
        let r = answer(
            200,
            &[
                ("Link", r#"</p>; rel="prev""#),
                ("Link", r#"</n>; rel="next""#),
            ],
            "{}",
        );
        assert_eq!(r.next_link().as_deref(), Some("/n"));
    }

    #[test]
    fn excerpt_cuts_long_bodies() {
        assert_eq!(excerpt(b""), "<empty>");
        assert!(excerpt(&[b'a'; 1000]).ends_with("(1000 bytes)"));
    }

    #[test]
    fn location_resolves_relative_and_absolute() {
        let r = answer(202, &[("Location", "/v2/a/b/blobs/uploads/u1?x=1")], "");
        assert_eq!(
            r.location().unwrap().as_str(),
            "http://r.example:5000/v2/a/b/blobs/uploads/u1?x=1"
        );
        let r = answer(202, &[("Location", "http://other:1/v2/u")], "");
        assert_eq!(r.location().unwrap().as_str(), "http://other:1/v2/u");
        let e = answer(202, &[], "").location().unwrap_err();
        assert!(
            e.to_string().starts_with("missing Location header; GET "),
            "{e}"
        );
    }

    #[test]
    fn listings_and_error_codes() {
        let r = answer(200, &[], r#"{"name":"a/b","tags":["v1","v2"]}"#);
        assert_eq!(r.tag_names().unwrap(), ["v1", "v2"]);
        let r = answer(200, &[], r#"{"name":"a/b","tags":null}"#);
        assert!(r.tag_names().unwrap().is_empty());
        let r = answer(200, &[], r#"{"repositories":[1]}"#);
        assert!(r.repository_names().is_err());
        let r = answer(
            404,
            &[("Content-Type", "application/json; charset=utf-8")],
            r#"{"errors":[{"code":"NAME_UNKNOWN","message":"x"}]}"#,
        );
        assert_eq!(r.error_codes().unwrap(), ["NAME_UNKNOWN"]);
        assert!(r.require_error(404, "NAME_UNKNOWN").is_ok());
        let e = r
            .require_error(404, "BLOB_UNKNOWN")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(r#"expected error code BLOB_UNKNOWN, got ["NAME_UNKNOWN"]; GET"#),
            "{e}"
        );
        assert_eq!(r.content_type(), Some("application/json"));
        let e = r.require_status(200).unwrap_err().to_string();
        assert!(
            e.starts_with("expected status 200; got GET http://r.example:5000/"),
            "{e}"
        );
        assert!(e.contains("-> 404") && e.contains("NAME_UNKNOWN"), "{e}");
    }
}
