//! A minimal HTTP/1.1 `GET` over a plain TCP socket that hands the body to a callback as
//! it arrives, through one reused buffer: the leanest client possible (about what
//! `curl -o /dev/null` costs, plus whatever the callback checks).
//!
//! Why it exists beside [`crate::Client`]: the benchmark's pull-large times full `GET`s
//! of a large blob while the client shares the machine's two cores with the server.
//! Every copy or page fault a general client adds (reqwest hands over each piece in
//! fresh memory) is taken from the server's share, which hides the difference between
//! servers: through reqwest, pull-large measured the client (berth 1,380-1,630 MiB/s,
//! distribution 1,350-1,940); through this reader, berth 4,300-4,650 (see
//! `docs/benchmarks.md`).
//!
//! It handles only what a blob `GET` answers: a status line, headers, and a body of
//! `Content-Length` bytes (no chunked encoding, no TLS, no redirects); anything else is
//! an error.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use url::Url;

use crate::error::Error;

/// Bytes read per system call at most (and the longest response head accepted). Measured
/// here on 512 MiB pulls from berth (MiB/s): 64 KiB 3,024-3,286, 256 KiB 3,672-3,699,
/// 1 MiB 4,088-4,212, 4 MiB 4,319-4,647; distribution, bound by its own copies, stayed
/// at 2,871-3,145 whatever the size.
const PIECE: usize = 4 * 1024 * 1024;

/// A response read by [`get_with`]: status, response head as text (for error messages),
/// and the body length.
pub struct RawAnswer {
    /// The status code.
    pub status: u16,
    /// The status line and headers.
    pub head: String,
    /// Bytes of body handed to the sink.
    pub len: usize,
}

/// `GET url` on a new connection (with `Authorization: <authorization>` when given); the
/// body is handed to `sink` piece by piece, in order, through one reused buffer of
/// [`PIECE`] bytes. Blocking: run it on a blocking thread.
pub fn get_with(
    url: &Url,
    timeout: Duration,
    authorization: Option<&str>,
    mut sink: impl FnMut(&[u8]),
) -> Result<RawAnswer, Error> {
    let fail = |detail: String| Error::Raw {
        url: url.to_string(),
        detail,
    };
    if url.scheme() != "http" {
        return Err(fail("only http:// URLs can be read raw".into()));
    }
    let host = url.host_str().ok_or_else(|| fail("no host".into()))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let io = |e: std::io::Error| fail(e.to_string());
    let mut stream = TcpStream::connect((host, port)).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    let mut path = url.path().to_owned();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: */*\r\n{auth}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(io)?;

    let mut buf = vec![0u8; PIECE];
    let mut filled = 0;
    let end = loop {
        if let Some(i) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if filled == buf.len() {
            return Err(fail(format!("response head over {PIECE} bytes")));
        }
        let n = stream.read(&mut buf[filled..]).map_err(io)?;
        if n == 0 {
            return Err(fail("connection closed inside the response head".into()));
        }
        filled += n;
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| fail(format!("no status in {head:?}")))?;
    let len = content_length(&head).ok_or_else(|| fail("no Content-Length".into()))?;

    let early = (filled - end).min(len);
    sink(&buf[end..end + early]);
    let mut left = len - early;
    while left > 0 {
        let want = left.min(buf.len());
        let n = stream.read(&mut buf[..want]).map_err(io)?;
        if n == 0 {
            return Err(fail(format!("body ended {left} bytes early")));
        }
        sink(&buf[..n]);
        left -= n;
    }
    Ok(RawAnswer { status, head, len })
}

/// The `Content-Length` of a response head.
fn content_length(head: &str) -> Option<usize> {
    head.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            value.trim().parse().ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_content_length_in_any_case() {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: x\r\nContent-LENGTH:  42\r\n\r\n";
        assert_eq!(content_length(head), Some(42));
        assert_eq!(content_length("HTTP/1.1 200 OK\r\n\r\n"), None);
    }

    #[test]
    fn refuses_tls_urls() {
        let url = Url::parse("https://127.0.0.1:1/v2/").unwrap();
        assert!(get_with(&url, Duration::from_secs(1), None, |_| {}).is_err());
    }
}
