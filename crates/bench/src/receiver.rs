//! `receive`: a live notification endpoint for the operations mode of the benchmark. It
//! answers every `POST` 200 at once (keep-alive HTTP/1.1, any number of connections) and
//! counts the envelopes and the events in them; `GET /count` answers
//! `{"posts":N,"events":M}`. It parses only what it must: the head, `Content-Length`, and
//! the `events` array of the body.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head or body accepted; a registry's envelope is far smaller.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

#[derive(Default)]
struct Counts {
    posts: AtomicU64,
    events: AtomicU64,
}

/// Serves on `127.0.0.1:port` until the process is stopped.
pub async fn serve(port: u16) -> Result<(), String> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("receive: binding 127.0.0.1:{port}: {e}"))?;
    let counts = Arc::new(Counts::default());
    loop {
        let (stream, _) = listener
            .accept()
            .await
            .map_err(|e| format!("receive: accept: {e}"))?;
        let counts = counts.clone();
        tokio::spawn(async move {
            // A connection that breaks is the sender's business; the counts stay.
            let _ = connection(stream, &counts).await;
        });
    }
}

/// Answers the requests of one connection in turn.
async fn connection(mut stream: TcpStream, counts: &Counts) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_MESSAGE || read_more(&mut stream, &mut buf).await? == 0 {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let length = content_length(&head);
        if length > MAX_MESSAGE {
            return Ok(());
        }
        while buf.len() < head_end + length {
            if read_more(&mut stream, &mut buf).await? == 0 {
                return Ok(());
            }
        }
        let body = &buf[head_end..head_end + length];
        let reply = if head.starts_with("POST ") {
            counts.posts.fetch_add(1, Ordering::Relaxed);
            counts.events.fetch_add(events_in(body), Ordering::Relaxed);
            String::from("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        } else {
            let text = format!(
                "{{\"posts\":{},\"events\":{}}}",
                counts.posts.load(Ordering::Relaxed),
                counts.events.load(Ordering::Relaxed)
            );
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
                text.len()
            )
        };
        stream.write_all(reply.as_bytes()).await?;
        buf.drain(..head_end + length);
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 65536];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The `Content-Length` of a request head (0 when absent or unreadable).
fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// How many events an envelope holds (0 for anything else).
fn events_in(body: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("events").and_then(|e| e.as_array()).map(Vec::len))
        .map_or(0, |n| n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_counted_by_their_events() {
        assert_eq!(events_in(br#"{"events":[{"id":"a"},{"id":"b"}]}"#), 2);
        assert_eq!(events_in(b"not json"), 0);
        assert_eq!(
            content_length("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n"),
            12
        );
        assert_eq!(content_length("GET / HTTP/1.1\r\n\r\n"), 0);
    }

    #[tokio::test]
    async fn counts_what_it_receives() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        tokio::spawn(serve(port));
        let mut stream = loop {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", port)).await {
                break s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        let body = br#"{"events":[{"action":"pull"},{"action":"push"}]}"#;
        for _ in 0..2 {
            let req = format!(
                "POST /events HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(req.as_bytes()).await.unwrap();
            stream.write_all(body).await.unwrap();
        }
        stream
            .write_all(b"GET /count HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("\"events\":4}") {
            let n = read_more(&mut stream, &mut got).await.unwrap();
            assert!(n > 0, "{}", String::from_utf8_lossy(&got));
        }
        assert!(String::from_utf8_lossy(&got).contains("{\"posts\":2,\"events\":4}"));
    }
}
