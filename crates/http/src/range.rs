//! Byte ranges: `Range` on blob GETs (RFC 9110 single ranges) and `Content-Range` on
//! upload PATCHes (`<start>-<end>`, inclusive).

/// A `Range: bytes=...` request against a blob of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BlobRange {
    /// Serve the whole blob (no header, or a form we ignore as RFC 9110 allows).
    Full,
    /// Serve these inclusive bytes with 206.
    Partial(u64, u64),
    /// Nothing of the blob lies in the range: 416.
    Unsatisfiable,
}

/// Interprets a `Range` header. Multiple ranges and malformed headers are ignored.
pub(crate) fn blob_range(header: Option<&str>, size: u64) -> BlobRange {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return BlobRange::Full;
    };
    if spec.contains(',') {
        return BlobRange::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return BlobRange::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return BlobRange::Full;
        };
        if n == 0 || size == 0 {
            return BlobRange::Unsatisfiable;
        }
        return BlobRange::Partial(size.saturating_sub(n), size - 1);
    }
    let Ok(first) = a.parse::<u64>() else {
        return BlobRange::Full;
    };
    let last = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(l) if l >= first => l,
            _ => return BlobRange::Full,
        }
    };
    if first >= size {
        return BlobRange::Unsatisfiable;
    }
    BlobRange::Partial(first, last.min(size - 1))
}

/// Parses an upload `Content-Range` (`a-b`, also `bytes a-b/*` and `bytes=a-b`) into
/// the start offset and length.
pub(crate) fn content_range(header: &str) -> Option<(u64, u64)> {
    let s = header.trim();
    let s = s
        .strip_prefix("bytes")
        .map(|r| r.trim_start_matches([' ', '=']))
        .unwrap_or(s);
    let s = s.split('/').next()?;
    let (a, b) = s.split_once('-')?;
    let (a, b) = (a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?);
    (b >= a).then(|| (a, b - a + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use BlobRange::*;
        assert_eq!(blob_range(None, 10), Full);
        assert_eq!(blob_range(Some("bytes=0-4"), 10), Partial(0, 4));
        assert_eq!(blob_range(Some("bytes=5-"), 10), Partial(5, 9));
        assert_eq!(blob_range(Some("bytes=5-100"), 10), Partial(5, 9));
        assert_eq!(blob_range(Some("bytes=-3"), 10), Partial(7, 9));
        assert_eq!(blob_range(Some("bytes=-30"), 10), Partial(0, 9));
        assert_eq!(blob_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(blob_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(blob_range(Some("bytes=4-2"), 10), Full);
        assert_eq!(blob_range(Some("bytes=0-1,3-4"), 10), Full);
        assert_eq!(blob_range(Some("items=0-1"), 10), Full);
        assert_eq!(blob_range(Some("bytes=x-1"), 10), Full);
    }

    #[test]
    fn content_ranges() {
        assert_eq!(content_range("0-9"), Some((0, 10)));
        assert_eq!(content_range("bytes 10-19/*"), Some((10, 10)));
        assert_eq!(content_range("bytes=10-19"), Some((10, 10)));
        assert_eq!(content_range("9-0"), None);
        assert_eq!(content_range("abc"), None);
    }
}
