//! The queue's record framing: `length (u32 LE) | check (u32 LE) | sequence (u64 LE) |
//! payload`, where `check` is a 32-bit FNV-1a hash of the sequence bytes and the payload.
//! A record cut short by a crash, or whose bytes do not hash to its check, ends the valid
//! part of a segment: recovery truncates there, and nothing after it is read.

/// Bytes before the payload.
pub const HEADER: usize = 16;

/// Largest payload accepted when reading (an event is well under a kilobyte; this only
/// stops a damaged length from asking for gigabytes).
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

fn fnv1a(parts: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for part in parts {
        for b in *part {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// Appends one record to `out`.
pub fn encode(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    let seq_bytes = seq.to_le_bytes();
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&fnv1a(&[&seq_bytes, payload]).to_le_bytes());
    out.extend_from_slice(&seq_bytes);
    out.extend_from_slice(payload);
}

/// One decoded record, borrowing its payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Its sequence number.
    pub seq: u64,
    /// The event's JSON.
    pub payload: &'a [u8],
    /// Offset just past the record in the buffer decoded.
    pub end: usize,
}

/// The record at the start of `buf`, or `None` when it is incomplete or damaged.
pub fn decode(buf: &[u8]) -> Option<Record<'_>> {
    let header = buf.get(..HEADER)?;
    let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    let check = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let seq_bytes: [u8; 8] = header[8..16].try_into().ok()?;
    if len > MAX_PAYLOAD {
        return None;
    }
    let payload = buf.get(HEADER..HEADER + len)?;
    if fnv1a(&[&seq_bytes, payload]) != check {
        return None;
    }
    Some(Record {
        seq: u64::from_le_bytes(seq_bytes),
        payload,
        end: HEADER + len,
    })
}

/// Every valid record of `buf` from its start, stopping at the first that is not.
pub fn decode_all(buf: &[u8]) -> Vec<Record<'_>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(r) = buf.get(at..).and_then(decode) {
        at += r.end;
        out.push(Record { end: at, ..r });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_tails() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, b"{\"a\":1}");
        encode(&mut buf, 8, b"{\"b\":2}");
        let all = decode_all(&buf);
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].seq, all[0].payload), (7, &b"{\"a\":1}"[..]));
        assert_eq!(all[1].end, buf.len());
        // Cut anywhere inside the second record: only the first survives.
        for cut in all[0].end + 1..buf.len() {
            assert_eq!(decode_all(&buf[..cut]).len(), 1, "cut at {cut}");
        }
        // A flipped payload byte is caught.
        let mut bad = buf.clone();
        let last = bad.len() - 2;
        bad[last] ^= 1;
        assert_eq!(decode_all(&bad).len(), 1);
        // Zeros (a hole a crash left) are not a record.
        assert!(decode(&[0u8; 64]).is_none());
    }
}
