//! The `Range` (blob GET) and `Content-Range` (upload PATCH) parsers, and
//! `RangeRequest::resolve`. A parsed range is ordered; resolved against any size it
//! lies inside the blob; an upload chunk is never empty and its end fits in a u64.

#![no_main]

use berth_core::RangeRequest;
use berth_http::fuzzing::{blob_range, content_range};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((size_bytes, rest)) = data.split_at_checked(8) else {
        return;
    };
    let Ok(header) = std::str::from_utf8(rest) else {
        return;
    };
    let mut raw = [0u8; 8];
    raw.copy_from_slice(size_bytes);
    let size = u64::from_le_bytes(raw);

    if let Some(range) = blob_range(Some(header)) {
        if let RangeRequest::From {
            first,
            last: Some(last),
        } = range
        {
            assert!(last >= first, "{header:?}");
        }
        for size in [size, 0, 1, u64::MAX] {
            if let Ok((first, last)) = range.resolve(size) {
                assert!(
                    first <= last && last < size,
                    "{header:?} in {size}: {first}-{last}"
                );
            }
        }
    }
    if let Some((start, len)) = content_range(header) {
        assert!(len >= 1, "{header:?}");
        assert!(start.checked_add(len - 1).is_some(), "{header:?}");
    }
});
