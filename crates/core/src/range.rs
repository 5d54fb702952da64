//! A byte range asked of a blob, before the blob's size is known: the storage layer
//! resolves it against the size it finds, in the same call that opens the blob.

use crate::error::Error;

/// One range of a `Range: bytes=` request (RFC 9110), inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// `first-` or `first-last`.
    From {
        /// First byte.
        first: u64,
        /// Last byte, when given (may lie past the end).
        last: Option<u64>,
    },
    /// `-n`: the last `n` bytes.
    Suffix(u64),
    /// A `bytes=` range that is no range: its last byte before its first (`500-0`) or
    /// not numbers. RFC 9110 lets a server ignore or refuse it; berth refuses it with
    /// 416, as distribution does, so a client learns its request was wrong.
    Invalid,
}

impl RangeRequest {
    /// The inclusive `(first, last)` bytes of a blob of `size` bytes, or
    /// `RangeNotSatisfiable` when none of the blob lies in the range (or the range is
    /// [`Invalid`](RangeRequest::Invalid)).
    pub fn resolve(self, size: u64) -> Result<(u64, u64), Error> {
        let unsatisfiable = Error::RangeNotSatisfiable { size };
        match self {
            RangeRequest::Invalid | RangeRequest::Suffix(0) => Err(unsatisfiable),
            _ if size == 0 => Err(unsatisfiable),
            RangeRequest::Suffix(n) => Ok((size.saturating_sub(n), size - 1)),
            RangeRequest::From { first, .. } if first >= size => Err(unsatisfiable),
            RangeRequest::From { first, last } => {
                Ok((first, last.unwrap_or(u64::MAX).min(size - 1)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_against_the_size() {
        let from = |first, last| RangeRequest::From { first, last };
        assert_eq!(from(0, Some(4)).resolve(10).unwrap(), (0, 4));
        assert_eq!(from(5, None).resolve(10).unwrap(), (5, 9));
        assert_eq!(from(5, Some(100)).resolve(10).unwrap(), (5, 9));
        assert_eq!(RangeRequest::Suffix(3).resolve(10).unwrap(), (7, 9));
        assert_eq!(RangeRequest::Suffix(30).resolve(10).unwrap(), (0, 9));
        for bad in [
            from(10, None),
            RangeRequest::Suffix(0),
            RangeRequest::Invalid,
            from(0, Some(1)),
        ] {
            let size = if bad == from(0, Some(1)) { 0 } else { 10 };
            assert!(matches!(
                bad.resolve(size),
                Err(Error::RangeNotSatisfiable { .. })
            ));
        }
    }
}
