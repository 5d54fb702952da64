//! Path validation shared by all drivers: the last line of defence against traversal.

use crate::DriverError;

/// Accepts `/a/b/c` (or `/`); rejects relative paths, empty, `.` and `..` segments,
/// backslashes and NUL bytes.
pub fn check_path(path: &str) -> Result<(), DriverError> {
    let bad = || DriverError::InvalidPath(path.to_owned());
    let rest = path.strip_prefix('/').ok_or_else(bad)?;
    if rest.is_empty() {
        return Ok(());
    }
    for seg in rest.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." || seg.contains(['\\', '\0']) {
            return Err(bad());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_path;

    #[test]
    fn paths() {
        for ok in ["/", "/a", "/a/b.c/d"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "/a/", "//a", "/a/../b", "/.", "/a\\b", "/a\0"] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }
}
