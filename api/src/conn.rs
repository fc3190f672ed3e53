//! A deadline on reading each HTTP/1 request head (against slow-header attacks).
//!
//! poem's server has an idle timeout but no header-read timeout: a client that sends its request
//! line and headers one byte a second keeps a connection (and its task) forever, since every
//! byte counts as activity. [`HeadDeadlineAcceptor`] wraps the TCP acceptor; each connection's
//! reads are watched:
//!
//! * a **head phase** starts with the first byte of a request — at the start of the connection,
//!   and after each response was written — and ends when the blank line `\r\n\r\n` ending the
//!   head has been read;
//! * a head phase longer than `http.header_read_timeout_secs` fails the connection's read with
//!   `TimedOut`, so the server drops it;
//! * body bytes (after the head) are not timed here (the body limit and the idle timeout apply),
//!   and once the server answered `101 Switching Protocols` the connection is a WebSocket and is
//!   not watched any more.

use std::io::Result as IoResult;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Wraps an acceptor so every connection has a request-head deadline.
pub struct HeadDeadlineAcceptor<A> {
    inner: A,
    deadline: Duration,
}

impl<A> HeadDeadlineAcceptor<A> {
    /// `inner`'s connections, each request head due within `deadline`.
    pub fn new(inner: A, deadline: Duration) -> Self {
        Self { inner, deadline }
    }
}

impl<A: Acceptor> Acceptor for HeadDeadlineAcceptor<A> {
    type Io = HeadDeadline<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> IoResult<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, scheme) = self.inner.accept().await?;
        Ok((HeadDeadline::new(io, self.deadline), local, remote, scheme))
    }
}

/// Where a connection is in its request/response cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request's first byte (no deadline: the idle timeout applies).
    BeforeHead,
    /// Reading a request head, due by the timer.
    Head,
    /// Head read: body and response.
    AfterHead,
    /// Upgraded to a WebSocket: not watched.
    Upgraded,
}

/// A connection whose request heads must arrive within a deadline.
pub struct HeadDeadline<T> {
    inner: T,
    deadline: Duration,
    phase: Phase,
    /// The last bytes of the head read so far (to find `\r\n\r\n` across reads).
    tail: [u8; 3],
    tail_len: usize,
    /// Armed when a head phase starts (one timer per connection, reset per request).
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<T> HeadDeadline<T> {
    fn new(inner: T, deadline: Duration) -> Self {
        Self {
            inner,
            deadline,
            phase: Phase::Head,
            tail: [0; 3],
            tail_len: 0,
            timer: Box::pin(tokio::time::sleep(deadline)),
        }
    }

    /// Looks for the end of the head in `bytes` (continuing the previous reads), without
    /// allocating: the blank line may straddle two reads, so the last three bytes are kept.
    fn scan_head(&mut self, bytes: &[u8]) -> bool {
        const END: &[u8; 4] = b"\r\n\r\n";
        // Across the boundary: the kept tail followed by the first bytes of this read.
        let mut joint = [0u8; 6];
        let head = bytes.len().min(3);
        joint[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
        joint[self.tail_len..self.tail_len + head].copy_from_slice(&bytes[..head]);
        let joint = &joint[..self.tail_len + head];
        if joint.windows(4).any(|w| w == END) || bytes.windows(4).any(|w| w == END) {
            self.tail_len = 0;
            return true;
        }
        if bytes.len() >= 3 {
            self.tail.copy_from_slice(&bytes[bytes.len() - 3..]);
            self.tail_len = 3;
        } else {
            let keep = joint.len().min(3);
            let mut tail = [0u8; 3];
            tail[..keep].copy_from_slice(&joint[joint.len() - keep..]);
            self.tail = tail;
            self.tail_len = keep;
        }
        false
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HeadDeadline<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<IoResult<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        match polled {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().get(before..).unwrap_or_default();
                if read.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                if this.phase == Phase::BeforeHead {
                    this.phase = Phase::Head;
                    this.timer.as_mut().reset(tokio::time::Instant::now() + this.deadline);
                }
                if this.phase == Phase::Head && this.scan_head(read) {
                    this.phase = Phase::AfterHead;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.phase == Phase::Head && this.timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "request head not received within the header read timeout",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeadDeadline<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<IoResult<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &written
            && *n > 0
            && this.phase != Phase::Upgraded
        {
            if buf.starts_with(b"HTTP/1.1 101") {
                this.phase = Phase::Upgraded;
            } else if buf.starts_with(b"HTTP/1.") {
                // A response: the next byte read starts the next request head.
                this.phase = Phase::BeforeHead;
                this.tail_len = 0;
            }
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<IoResult<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<IoResult<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<IoResult<usize>> {
        let first = bufs.iter().find(|b| !b.is_empty()).map(|b| &b[..]).unwrap_or_default();
        let this = self.get_mut();
        let is_response = first.starts_with(b"HTTP/1.");
        let is_upgrade = first.starts_with(b"HTTP/1.1 101");
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &written
            && *n > 0
            && this.phase != Phase::Upgraded
            && is_response
        {
            this.phase = if is_upgrade { Phase::Upgraded } else { Phase::BeforeHead };
            this.tail_len = 0;
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_end_of_a_head_is_found_across_reads() {
        let mut c = HeadDeadline::new((), Duration::from_secs(1));
        assert!(!c.scan_head(b"POST /graphql HTTP/1.1\r\nHost: x\r"));
        assert!(!c.scan_head(b"\n"));
        assert!(c.scan_head(b"\r\n{\"query\":1}"));
        let mut d = HeadDeadline::new((), Duration::from_secs(1));
        assert!(!d.scan_head(b"GET / HTTP/1.1\r\n"));
        assert!(d.scan_head(b"\r\n"));
        // One byte at a time.
        let mut e = HeadDeadline::new((), Duration::from_secs(1));
        let bytes = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let ends: Vec<bool> = bytes.iter().map(|b| e.scan_head(&[*b])).collect();
        assert_eq!(ends.iter().position(|x| *x), Some(bytes.len() - 1));
        let mut f = HeadDeadline::new((), Duration::from_secs(1));
        assert!(!f.scan_head(b"\r\n\r"));
        assert!(f.scan_head(b"\n"));
    }
}
