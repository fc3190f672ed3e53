//! A lean HTTP/1.1 client for the load generators: pre-built requests written to a kept-alive
//! connection and responses read by `Content-Length`, so the generator's own CPU stays small
//! beside the server it measures on the same cores.

use anyhow::Context as _;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

/// The first position of `needle` in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one HTTP/1.1 response (with `Content-Length`) from `stream`; returns its body.
pub(crate) async fn response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<Vec<u8>> {
    buf.clear();
    let mut chunk = [0_u8; 4096];
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = std::str::from_utf8(buf.get(..end).unwrap_or_default())?;
            if !head.starts_with("HTTP/1.1 200") {
                anyhow::bail!("unexpected response: {}", head.lines().next().unwrap_or_default());
            }
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .context("response without Content-Length")?;
            while buf.len() < end + 4 + len {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    anyhow::bail!("connection closed mid-body");
                }
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
            return Ok(buf.get(end + 4..end + 4 + len).unwrap_or_default().to_vec());
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            anyhow::bail!("connection closed before a response");
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}
