//! Byte ranges: `Range` on blob GETs (RFC 9110 single ranges) and `Content-Range` on
//! upload PATCHes (`<start>-<end>`, inclusive).

use berth_core::RangeRequest;

/// Interprets a `Range` header of a blob GET; `None` serves the whole blob. Other
/// units than `bytes` and multiple ranges are ignored, as RFC 9110 requires and allows;
/// a single `bytes=` range that is malformed or ends before it starts is
/// [`RangeRequest::Invalid`] (refused, as distribution refuses it). Whether a valid range
/// lies in the blob is decided against its size by the registry.
pub(crate) fn blob_range(header: Option<&str>) -> Option<RangeRequest> {
    let spec = header?.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    Some(byte_range(spec.trim()).unwrap_or(RangeRequest::Invalid))
}

/// One `first-last`, `first-` or `-suffix` range-spec; `None` when it is not one.
fn byte_range(spec: &str) -> Option<RangeRequest> {
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        return b.parse::<u64>().ok().map(RangeRequest::Suffix);
    }
    let first = a.parse::<u64>().ok()?;
    let last = if b.is_empty() {
        None
    } else {
        Some(b.parse::<u64>().ok().filter(|l| *l >= first)?)
    };
    Some(RangeRequest::From { first, last })
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
    // `0-18446744073709551615` covers 2^64 bytes, one more than a length can say.
    let len = b.checked_sub(a)?.checked_add(1)?;
    Some((a, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeRequest::*;
        let from = |first, last| Some(From { first, last });
        assert_eq!(blob_range(None), None);
        assert_eq!(blob_range(Some("bytes=0-4")), from(0, Some(4)));
        assert_eq!(blob_range(Some("bytes=5-")), from(5, None));
        assert_eq!(blob_range(Some("bytes=-3")), Some(Suffix(3)));
        assert_eq!(blob_range(Some("bytes=-0")), Some(Suffix(0)));
        for ignored in ["bytes=0-1,3-4", "items=0-1", "0-1"] {
            assert_eq!(blob_range(Some(ignored)), None, "{ignored}");
        }
        for invalid in [
            "bytes=4-2",
            "bytes=500-0",
            "bytes=x-1",
            "bytes=-x",
            "bytes=",
            "bytes=7",
        ] {
            assert_eq!(blob_range(Some(invalid)), Some(Invalid), "{invalid}");
        }
    }

    #[test]
    fn content_ranges() {
        assert_eq!(content_range("0-9"), Some((0, 10)));
        assert_eq!(content_range("bytes 10-19/*"), Some((10, 10)));
        assert_eq!(content_range("bytes=10-19"), Some((10, 10)));
        assert_eq!(content_range("9-0"), None);
        assert_eq!(content_range("abc"), None);
    }

    /// Found by the `range` fuzz target: a chunk of every offset was a length
    /// overflow (a panic in debug builds, a zero-byte chunk in release ones).
    #[test]
    fn a_content_range_of_every_offset_is_malformed() {
        assert_eq!(content_range("0-18446744073709551615"), None);
        assert_eq!(content_range("bytes=0-18446744073709551615/*"), None);
        assert_eq!(content_range("1-18446744073709551615"), Some((1, u64::MAX)));
        assert_eq!(
            content_range("18446744073709551615-18446744073709551615"),
            Some((u64::MAX, 1))
        );
    }
}
