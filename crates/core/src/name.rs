//! Repository names and tags, validated against the OCI distribution grammar. A value of
//! these types is always safe to use as a storage path segment.

use std::fmt;

use crate::error::Error;

/// Longest repository name accepted (distribution's limit, and what clients assume).
pub const MAX_NAME_LEN: usize = 255;

/// A repository name: slash-separated path components of the spec's grammar.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

impl RepositoryName {
    /// Validates `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.is_empty() {
            return Err(Error::NameInvalid("repository name is empty".into()));
        }
        if s.len() > MAX_NAME_LEN {
            return Err(Error::NameInvalid(format!(
                "repository name is {} characters, the limit is {MAX_NAME_LEN}",
                s.len()
            )));
        }
        if let Some(bad) = s.split('/').find(|c| !valid_component(c)) {
            return Err(Error::NameInvalid(format!(
                "{s:?}: path component {bad:?} must be lowercase letters and digits, \
                 separated by '.', '_', '__' or dashes"
            )));
        }
        Ok(RepositoryName(s.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    let run = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && alnum(b[*i]) {
            *i += 1;
        }
        *i > start
    };
    if !run(&mut i) {
        return false;
    }
    while i < b.len() {
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if !run(&mut i) {
            return false;
        }
    }
    true
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Validates the tag grammar.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let b = s.as_bytes();
        let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
        let ok = !b.is_empty()
            && b.len() <= 128
            && word(b[0])
            && b[1..].iter().all(|&x| word(x) || x == b'.' || x == b'-');
        if ok {
            Ok(Tag(s.to_owned()))
        } else {
            Err(Error::TagInvalid(format!(
                "{s:?} must match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}"
            )))
        }
    }

    /// The tag as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "a",
            "library/ubuntu",
            "a/b/c/d/e/f/g/h",
            "a.b_c__d---e/x0",
            "0",
        ] {
            assert!(RepositoryName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "A",
            "a//b",
            "/a",
            "a/",
            "a..b",
            "a___b",
            "-a",
            "a-",
            "..",
            "a/../b",
            "a b",
            "a%2fb",
            &"a".repeat(256),
        ] {
            assert!(RepositoryName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags() {
        for ok in ["latest", "v1.0-rc_2", "_x", &"a".repeat(128)] {
            assert!(Tag::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", "..", &"a".repeat(129)] {
            assert!(Tag::parse(bad).is_err(), "{bad}");
        }
    }
}
