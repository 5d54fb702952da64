//! Byte sizes as berth's own keys write them: a bare integer is bytes; a number may carry
//! a unit, decimal (`kB`, `MB`, `GB`, `TB`: powers of 1000) or binary (`KiB`, `MiB`,
//! `GiB`, `TiB`: powers of 1024), case-insensitively, with or without a space and with
//! a fraction (`1.5GiB`). [`ByteSize`] is how a size-valued key of the typed document
//! is read.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Parses a size; `None` when it is not one (or does not fit in 64 bits).
pub fn parse(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = (&s[..split], s[split..].trim());
    if number.is_empty() {
        return None;
    }
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "m" | "mb" => 1000u64.pow(2),
        "g" | "gb" => 1000u64.pow(3),
        "t" | "tb" => 1000u64.pow(4),
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        _ => return None,
    };
    if let Ok(n) = number.parse::<u64>() {
        return n.checked_mul(scale);
    }
    let value: f64 = number.parse().ok()?;
    let bytes = (value * scale as f64).round();
    (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// A size-valued configuration key: an integer of bytes or a string with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a size such as 50GiB, 500MB or a number of bytes")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<ByteSize, E> {
        parse(s)
            .map(ByteSize)
            .ok_or_else(|| E::custom(format!("{s:?} is not a size (e.g. 50GiB or 500MB)")))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(n))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<ByteSize, E> {
        u64::try_from(n)
            .map(ByteSize)
            .map_err(|_| E::custom(format!("{n} is negative; sizes are bytes, or like 50GiB")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse("1024"), Some(1024));
        assert_eq!(parse("10GiB"), Some(10 << 30));
        assert_eq!(parse("10 gib"), Some(10 << 30));
        assert_eq!(parse("500MB"), Some(500_000_000));
        assert_eq!(parse("1.5KiB"), Some(1536));
        assert_eq!(parse("2k"), Some(2000));
        assert_eq!(parse("0"), Some(0));
        assert_eq!(parse("lots"), None);
        assert_eq!(parse("5 parsecs"), None);
        assert_eq!(parse("MiB"), None);
        assert_eq!(parse("99999999999TiB"), None);
    }

    #[test]
    fn reads_integers_and_strings() {
        let from_yaml = |t: &str| yaml_serde::from_str::<ByteSize>(t).map_err(|e| e.to_string());
        assert_eq!(from_yaml("2048"), Ok(ByteSize(2048)));
        assert_eq!(from_yaml("1MiB"), Ok(ByteSize(1 << 20)));
        assert!(from_yaml("-1").unwrap_err().contains("negative"));
        assert!(from_yaml("huge").unwrap_err().contains("not a size"));
    }
}
