//! Plain-TCP connections that send mapped blob bytes with `sendfile`.
//!
//! Blob bodies leave the filesystem driver as slices of registered memory maps
//! (`berth_driver::mapped`). hyper writes a response as a list of slices (its head,
//! then the body chunks, which it does not copy); [`SendfileStream`] writes the slices
//! it does not recognise as usual and hands each large mapped one to `sendfile`, so the
//! kernel sends page-cache pages without the process copying (or even touching) them.
//! Anything the kernel refuses falls back to an ordinary write of the same memory,
//! which holds the same bytes. TLS connections never see mapped slices (rustls encrypts
//! into buffers of its own), so they are left as they are.

use std::fs::File;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum_server::accept::Accept;
use berth_driver::mapped;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Slices shorter than this are written as usual: a lookup and a separate system call
/// would cost more than the copy they save.
const MIN_SENDFILE: usize = 64 * 1024;

/// An accepted TCP connection whose writes of mapped file bytes become `sendfile`.
pub struct SendfileStream {
    inner: TcpStream,
}

/// Wraps every accepted plain-TCP connection in a [`SendfileStream`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SendfileAcceptor;

impl<S> Accept<TcpStream, S> for SendfileAcceptor {
    type Stream = SendfileStream;
    type Service = S;
    type Future = std::future::Ready<io::Result<(SendfileStream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        std::future::ready(Ok((SendfileStream { inner: stream }, service)))
    }
}

/// The file and offset behind `buf` when it is worth sending with `sendfile`.
fn source(buf: &[u8]) -> Option<(Arc<File>, u64)> {
    if buf.len() < MIN_SENDFILE {
        return None;
    }
    mapped::find(buf)
}

impl SendfileStream {
    /// Sends `buf`, which is `file` from `offset`, with `sendfile`; on any error but
    /// "would block" it writes `buf` as memory instead.
    fn poll_sendfile(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
        file: &File,
        offset: u64,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            let sent = self.inner.try_io(Interest::WRITABLE, || {
                let mut at = offset;
                rustix::fs::sendfile(&self.inner, file, Some(&mut at), buf.len())
                    .map_err(io::Error::from)
            });
            match sent {
                // 0 means the file ended early (it cannot: blobs are immutable); the
                // memory still holds the bytes, so write those.
                Ok(0) => break,
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => break,
            }
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match source(buf) {
            Some((file, offset)) => self.poll_sendfile(cx, buf, &file, offset),
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Up to the first mapped slice, one writev; a mapped slice first, one sendfile.
        // hyper calls again with what is left.
        for (i, buf) in bufs.iter().enumerate() {
            if let Some((file, offset)) = source(buf) {
                if i == 0 {
                    return self.poll_sendfile(cx, buf, &file, offset);
                }
                return Pin::new(&mut self.inner).poll_write_vectored(cx, &bufs[..i]);
            }
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        // hyper queues body chunks (instead of copying them into its buffer) only for
        // vectored writers; the mapped slices must reach this stream uncopied.
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::io::IoSlice;

    use berth_driver::{FilesystemDriver, StorageDriver};
    use bytes::Bytes;
    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Writes `head` and then `chunks` through a [`SendfileStream`] (vectored writes, as
    /// hyper does) and answers what the other end of the connection received.
    async fn send_through(head: &[u8], chunks: Vec<Bytes>) -> Vec<u8> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        let (socket, _) = listener.accept().await.unwrap();
        let mut stream = SendfileStream { inner: socket };
        let mut slices: Vec<IoSlice<'_>> = std::iter::once(IoSlice::new(head))
            .chain(chunks.iter().map(|c| IoSlice::new(c)))
            .collect();
        let mut left = &mut slices[..];
        while !left.is_empty() {
            let n = stream.write_vectored(left).await.unwrap();
            assert!(n > 0);
            IoSlice::advance_slices(&mut left, n);
        }
        stream.shutdown().await.unwrap();
        reader.await.unwrap()
    }

    #[tokio::test]
    async fn mapped_blob_bytes_arrive_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let driver = FilesystemDriver::new(dir.path());
        let data: Vec<u8> = (0..3 * 1024 * 1024 + 12_345)
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        driver
            .put_content("/big", Bytes::from(data.clone()))
            .await
            .unwrap();

        for (offset, len) in [(0u64, None), (4_097, Some(2 * 1024 * 1024 + 3))] {
            let chunks: Vec<Bytes> = driver
                .reader("/big", offset, len)
                .await
                .unwrap()
                .map(|c| c.unwrap())
                .collect()
                .await;
            assert!(
                chunks.iter().any(|c| source(c).is_some()),
                "large reads come as registered maps"
            );
            let got = send_through(b"HTTP/1.1 200 OK\r\n\r\n", chunks).await;
            let start = offset as usize;
            let end = len.map_or(data.len(), |l| start + l as usize);
            assert_eq!(&got[..19], b"HTTP/1.1 200 OK\r\n\r\n");
            assert!(
                got[19..] == data[start..end],
                "body differs at offset {offset}"
            );
        }
    }

    #[tokio::test]
    async fn ordinary_memory_is_written_as_usual() {
        let big = Bytes::from(vec![7u8; 300 * 1024]);
        assert!(source(&big).is_none());
        let got = send_through(b"head", vec![big.clone(), Bytes::from_static(b"tail")]).await;
        assert_eq!(got.len(), 4 + big.len() + 4);
        assert!(got.ends_with(b"tail"));
    }
}
