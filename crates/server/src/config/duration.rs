//! Go-style durations as distribution's configuration writes them: `168h`, `1h30m`,
//! `500ms`, `10s`; a bare integer is nanoseconds, as in Go. The one place durations are
//! parsed: [`GoDuration`] is how every duration key of the typed document is read.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Parses a Go duration string.
pub fn parse(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Ok(ns) = s.parse::<u64>() {
        return Some(Duration::from_nanos(ns));
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// A duration-valued configuration key: a Go duration string, or an integer of
/// nanoseconds. Errors say what was found, and `serde_path_to_error` adds the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(GoDurationVisitor)
    }
}

struct GoDurationVisitor;

impl Visitor<'_> for GoDurationVisitor {
    type Value = GoDuration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration such as 168h, 30m or 10s")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<GoDuration, E> {
        parse(s)
            .map(GoDuration)
            .ok_or_else(|| E::custom(format!("{s:?} is not a duration (e.g. 168h)")))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<GoDuration, E> {
        Ok(GoDuration(Duration::from_nanos(n)))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<GoDuration, E> {
        u64::try_from(n)
            .map(|n| GoDuration(Duration::from_nanos(n)))
            .map_err(|_| E::custom(format!("{n} is negative; durations are strings like 24h")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_yaml(text: &str) -> Result<GoDuration, String> {
        yaml_serde::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_strings_and_nanoseconds() {
        assert_eq!(from_yaml("90m"), Ok(GoDuration(Duration::from_secs(5400))));
        assert_eq!(from_yaml("1000"), Ok(GoDuration(Duration::from_micros(1))));
        let err = from_yaml("forever").unwrap_err();
        assert!(err.contains("\"forever\" is not a duration"), "{err}");
        assert!(from_yaml("-5").unwrap_err().contains("negative"));
        assert!(from_yaml("[1]").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse("168h"), Some(Duration::from_secs(168 * 3600)));
        assert_eq!(parse("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse("0"), Some(Duration::ZERO));
        assert_eq!(parse("10 days"), None);
        assert_eq!(parse("h"), None);
        assert_eq!(parse(""), None);
    }
}
