//! The object that stands for a file being appended to across requests and nodes.
//!
//! S3 has no append, refuses non-final multipart parts under 5 MiB, and cannot read the
//! parts of a multipart upload before it completes. So a file opened for appending
//! whose bytes reach a whole part lives, between requests, as one ordinary object at
//! its own key (a "pending" object): a user-metadata entry `berth-pending` holding the
//! file's logical size, and a body of one JSON line (the multipart upload id and the
//! ETags of the parts uploaded so far) followed by the tail, the bytes not yet in a
//! part (under 5 MiB). One PUT replaces the whole state, so every node sees the parts
//! and the tail of the last acknowledged write together, and none of it lives only in
//! one node's memory. Completing the multipart upload at the same key turns the file
//! back into an ordinary object.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The user-metadata key (after `x-amz-meta-`) that marks a pending object.
pub(crate) const META_KEY: &str = "berth-pending";

/// What a pending object's first line says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingState {
    /// The multipart upload at the same key.
    pub upload_id: String,
    /// ETags of the parts, in part-number order (part `i` is number `i + 1`).
    pub parts: Vec<String>,
    /// Bytes in the parts.
    pub parts_len: u64,
}

impl PendingState {
    /// The object body: the state line, then the tail.
    pub(crate) fn encode(&self, tail: &[u8]) -> Bytes {
        // Serialising strings and integers cannot fail.
        let mut out = serde_json::to_vec(self).unwrap_or_default();
        out.push(b'\n');
        out.extend_from_slice(tail);
        Bytes::from(out)
    }

    /// Splits a pending object's body into its state and tail.
    pub(crate) fn decode(body: &Bytes) -> Option<(PendingState, Bytes)> {
        let nl = body.iter().position(|b| *b == b'\n')?;
        let state: PendingState = serde_json::from_slice(&body[..nl]).ok()?;
        Some((state, body.slice(nl + 1..)))
    }
}

#[cfg(test)]
mod tests {
    use super::PendingState;
    use bytes::Bytes;

    #[test]
    fn round_trip() {
        let s = PendingState {
            upload_id: "u-1".into(),
            parts: vec!["\"e1\"".into(), "\"e2\"".into()],
            parts_len: 10 << 20,
        };
        let body = s.encode(b"tail\nwith newline");
        let (back, tail) = PendingState::decode(&body).unwrap();
        assert_eq!(back, s);
        assert_eq!(tail, Bytes::from_static(b"tail\nwith newline"));
        assert!(PendingState::decode(&Bytes::from_static(b"no line")).is_none());
    }
}
