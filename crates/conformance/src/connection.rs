//! Push category, the connection under an upload refused early: a registry may answer a
//! request before its body has arrived (an unknown upload session, a missing credential),
//! and must then either read that body and keep the connection, or announce the close
//! with `Connection: close` (RFC 9112 §9.6). An HTTP/1.1 connection whose last response
//! announced nothing persists (§9.3), so a client that has finished writing the body
//! sends its next request on it; a registry that closed it silently makes that request
//! fail. General clients hide which of these happened, so this is checked over a raw
//! socket, and on plain-HTTP registries only.

use std::time::Duration;

use berth_client::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::{Ctx, Recorder};

/// How long an answer is awaited before the body is sent: a registry that reads the
/// body first (distribution's Go server does) answers only once it has arrived.
const EARLY: Duration = Duration::from_secs(2);
/// How long an answered connection is watched for a close nobody announced.
const WATCH: Duration = Duration::from_millis(300);
/// Limit of every other wait (connecting, a response after the body was sent).
const IO: Duration = Duration::from_secs(10);
/// Longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Runs the check when the registry is served over plain HTTP.
pub(crate) async fn run(ctx: &Ctx, rec: &mut Recorder<'_>) {
    if ctx.client.base().scheme() != "http" {
        return;
    }
    rec.record(
        "PATCH to an unknown upload answered before its body: connection kept or closed with notice",
        unknown_upload(ctx).await,
    );
}

async fn unknown_upload(ctx: &Ctx) -> Result<(), String> {
    let repo = ctx.repo("push");
    let id = ctx.with_gen(|g| g.token(32));
    let url = ctx
        .client
        .url(&format!("/v2/{repo}/blobs/uploads/{id}"))
        .map_err(|e| e.to_string())?;
    let next = ctx.client.url("/v2/").map_err(|e| e.to_string())?;
    let body = ctx.bytes(4096);
    let status = early_answer(&url, "PATCH", &[], &body, &next).await?;
    ensure!(
        status == 404,
        "PATCH to an unknown upload answered {status}, expected 404"
    );
    Ok(())
}

/// Sends `method url` with `headers` and a `body` withheld until the registry answered
/// (or [`EARLY`] passed), then checks that the connection either was announced closed
/// (`Connection: close`) or still serves a `GET next`. Returns the answer's status.
/// Plain `http://` URLs only.
pub async fn early_answer(
    url: &Url,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    next: &Url,
) -> Result<u16, String> {
    ensure!(
        url.scheme() == "http",
        "{url}: only plain http:// URLs can be checked"
    );
    let host = url.host_str().ok_or_else(|| format!("{url}: no host"))?;
    let port = url.port_or_known_default().unwrap_or(80);
    // An IPv6 literal is bracketed in URLs (and in `Host`), bare for connecting.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let mut stream = within(IO, "connect", TcpStream::connect((bare, port))).await?;
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n",
        target(url),
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    within(IO, "send the head", stream.write_all(head.as_bytes())).await?;

    let mut buf = Vec::new();
    let (answer, body_sent) = match timeout(EARLY, read_answer(&mut stream, &mut buf)).await {
        Ok(answer) => (answer.map_err(|e| format!("read the answer: {e}"))?, false),
        Err(_) => {
            within(IO, "send the body", stream.write_all(body)).await?;
            (
                within(IO, "read the answer", read_answer(&mut stream, &mut buf)).await?,
                true,
            )
        }
    };
    if answer.closes {
        return Ok(answer.status);
    }
    if !body_sent {
        // Nothing more is due from the registry; an end of stream now is a close it did
        // not announce.
        let mut probe = [0u8; 1];
        match timeout(WATCH, stream.read(&mut probe)).await {
            Err(_) => {}
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Err(format!(
                    "answered {} before the request body arrived, then closed the connection without Connection: close",
                    answer.status
                ));
            }
            Ok(Ok(_)) => {
                return Err(format!(
                    "sent more bytes after its complete {} answer",
                    answer.status
                ));
            }
        }
        within(IO, "send the body", stream.write_all(body)).await?;
    }
    let get = format!(
        "GET {} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n",
        target(next)
    );
    within(
        IO,
        "send the next request",
        stream.write_all(get.as_bytes()),
    )
    .await?;
    buf.clear();
    within(IO, "read the next answer", read_answer(&mut stream, &mut buf))
        .await
        .map_err(|e| {
            format!(
                "answered {} without Connection: close, but the next request on the connection failed: {e}",
                answer.status
            )
        })?;
    Ok(answer.status)
}

/// The request target of `url`: its path and query.
fn target(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Awaits `f` for at most `limit`, naming the step in errors.
async fn within<T>(
    limit: Duration,
    step: &str,
    f: impl Future<Output = std::io::Result<T>>,
) -> Result<T, String> {
    match timeout(limit, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{step}: {e}")),
        Err(_) => Err(format!("{step}: no progress in {limit:?}")),
    }
}

/// What matters of a response here.
struct Answer {
    status: u16,
    /// `Connection` lists `close`.
    closes: bool,
}

/// Reads one response (head, then a `Content-Length` or chunked body) from `stream`.
async fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Answer> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(bad("response head too long".into()));
        }
        fill(stream, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad(format!("no status line in {head:?}")))?;
    let (mut length, mut chunked, mut closes) = (None, false, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => {
                closes = value
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("close"));
            }
            _ => {}
        }
    }
    if chunked {
        while !buf[end..].windows(5).any(|w| w == b"0\r\n\r\n") {
            fill(stream, buf).await?;
        }
    } else if let Some(n) = length {
        while buf.len() < end + n {
            fill(stream, buf).await?;
        }
    }
    Ok(Answer { status, closes })
}

/// Appends what the next read brings; the end of the stream is an error here.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut piece = [0u8; 8192];
    let n = stream.read(&mut piece).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    buf.extend_from_slice(&piece[..n]);
    Ok(())
}
