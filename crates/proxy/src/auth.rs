//! Credentials for an upstream: Basic, or bearer tokens from the token service its
//! `WWW-Authenticate` challenge names (realm, service, and the scope
//! `repository:<name>:pull`), kept per scope until they expire. The challenge is learnt
//! from the first 401 and then used up front, so later requests take one round trip.
//! Configured credentials go to a token realm only on the upstream's own host or
//! registrable domain (Docker Hub's `auth.docker.io` for `registry-1.docker.io`): a
//! hostile upstream cannot send them elsewhere (distribution binds realms the same way
//! since 2026).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use url::Url;

use crate::error::UpstreamError;

/// Largest token-server answer read.
const MAX_TOKEN_RESPONSE: usize = 1024 * 1024;

/// Token lifetime when the token service does not say (the spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// What the upstream asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic realm=...`.
    Basic,
    /// `Bearer realm=...,service=...`.
    Bearer {
        /// Where tokens are issued.
        realm: Url,
        /// The audience to ask a token for.
        service: Option<String>,
    },
}

/// The credentials of one upstream and what it taught us.
pub(crate) struct Authenticator {
    host: Option<String>,
    basic: Option<String>,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl Authenticator {
    /// Credentials for the upstream at `remote`.
    pub(crate) fn new(remote: &Url, username: Option<&str>, password: Option<&str>) -> Self {
        let basic = username.map(|u| {
            let raw = format!("{u}:{}", password.unwrap_or(""));
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        });
        Authenticator {
            host: remote.host_str().map(str::to_ascii_lowercase),
            basic,
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The `Authorization` value for a request needing `scope`, fetching a token when
    /// the upstream wants one and none is held.
    pub(crate) async fn header(
        &self,
        http: &reqwest::Client,
        scope: &str,
    ) -> Result<Option<String>, UpstreamError> {
        let challenge = self.challenge.lock().map(|c| c.clone()).unwrap_or(None);
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.basic.clone()),
            Some(Challenge::Bearer { realm, service }) => {
                if let Some(token) = self.cached(scope) {
                    return Ok(Some(format!("Bearer {token}")));
                }
                let token = self.fetch(http, &realm, service.as_deref(), scope).await?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Learns from a 401: keeps its challenge and drops the token that was refused.
    /// Whether asking again can help.
    pub(crate) fn refused(&self, www_authenticate: Option<&str>, scope: &str) -> bool {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(scope);
        }
        let Some(new) = www_authenticate.and_then(parse_challenge) else {
            return false;
        };
        if new == Challenge::Basic && self.basic.is_none() {
            return false;
        }
        if let Ok(mut c) = self.challenge.lock() {
            *c = Some(new);
        }
        true
    }

    fn cached(&self, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().ok()?;
        let (token, until) = tokens.get(scope)?;
        (Instant::now() < *until).then(|| token.clone())
    }

    /// Whether configured credentials may be sent to `realm`.
    fn trusted(&self, realm: &Url) -> bool {
        let (Some(ours), Some(theirs)) = (self.host.as_deref(), realm.host_str()) else {
            return false;
        };
        let theirs = theirs.to_ascii_lowercase();
        ours == theirs || registrable(ours).is_some_and(|d| Some(d) == registrable(&theirs))
    }

    async fn fetch(
        &self,
        http: &reqwest::Client,
        realm: &Url,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String, UpstreamError> {
        let mut url = realm.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            q.append_pair("scope", scope);
        }
        let mut req = http.get(url);
        if let Some(b) = self.basic.as_ref().filter(|_| self.trusted(realm)) {
            req = req.header(reqwest::header::AUTHORIZATION, b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(UpstreamError::Status {
                status: status.as_u16(),
                what: format!("a token for {scope} from {realm}"),
            });
        }
        // A token (with its certificate chain) is kilobytes; refuse a body that is not.
        let body = crate::upstream::read_bounded(resp, MAX_TOKEN_RESPONSE, || {
            format!("token response from {realm}")
        })
        .await?;
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Invalid(format!("token response from {realm}: {e}")))?;
        let token = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| UpstreamError::Invalid(format!("no token from {realm}")))?;
        let lifetime = parsed
            .expires_in
            .filter(|s| *s > 0)
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        // Renewed a little early, so a token never expires between check and use.
        let until = Instant::now() + lifetime.saturating_sub(lifetime / 10);
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.retain(|_, (_, u)| Instant::now() < *u);
            tokens.insert(scope.to_owned(), (token.clone(), until));
        }
        Ok(token)
    }
}

/// A token service's answer (the spec's fields; Docker Hub sends both names).
#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// The last two labels of a DNS name (`docker.io` of `registry-1.docker.io`); `None` for
/// addresses and single labels. An approximation of the registrable domain that is
/// stricter than it for names under a public suffix such as `co.uk` (they match only
/// themselves, so credentials are withheld, never leaked).
fn registrable(host: &str) -> Option<&str> {
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return None;
    }
    let mut dots = host.rmatch_indices('.');
    dots.next()?;
    match dots.next() {
        Some((i, _)) => Some(&host[i + 1..]),
        None => Some(host),
    }
}

/// The first challenge of a `WWW-Authenticate` value that berth can answer.
pub(crate) fn parse_challenge(value: &str) -> Option<Challenge> {
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        let realm = Url::parse(&get("realm")?).ok()?;
        if !matches!(realm.scheme(), "http" | "https") {
            return None;
        }
        Some(Challenge::Bearer {
            realm,
            service: get("service"),
        })
    } else {
        None
    }
}

/// `key="value", key=value` pairs; quoted values may hold commas and `\"`.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ','))
            .collect::<String>()
            .trim()
            .to_owned();
        if key.is_empty() {
            return out;
        }
        if chars.next() != Some('=') {
            continue;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ','))
                .collect::<String>()
                .trim()
                .to_owned();
        }
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: Url::parse("https://auth.docker.io/token").unwrap(),
                service: Some("registry.docker.io".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Bearer realm=file:///etc/passwd"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(""), None);
        assert_eq!(parse_challenge("Bearer service=\"x"), None);
    }

    #[test]
    fn credentials_stay_on_the_upstream_domain() {
        let a = Authenticator::new(
            &Url::parse("https://registry-1.docker.io").unwrap(),
            Some("u"),
            Some("p"),
        );
        let t = |s: &str| a.trusted(&Url::parse(s).unwrap());
        assert!(t("https://auth.docker.io/token"));
        assert!(t("https://registry-1.docker.io/token"));
        assert!(!t("https://evil.example.net/token"));
        assert!(!t("https://docker.io.evil.net/token"));
        let local = Authenticator::new(&Url::parse("http://127.0.0.1:5000").unwrap(), None, None);
        assert!(local.trusted(&Url::parse("http://127.0.0.1:5001/auth").unwrap()));
        assert!(!local.trusted(&Url::parse("http://127.0.0.2/auth").unwrap()));
    }
}
