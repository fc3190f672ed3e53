//! Response compression: `br` or `gzip` (as the client's `Accept-Encoding` prefers) for text
//! answers — GraphQL JSON, GraphiQL, `/metrics` — of at least `min_bytes`. Upgrades (WebSocket),
//! already-encoded (GraphiQL's files, encoded once by [`crate::graphiql`]) and binary answers
//! pass untouched. Bodies over 64 KiB are compressed on a
//! blocking thread.

use std::io::Write as _;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response};

/// An encoding this server can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Brotli.
    Brotli,
    /// gzip.
    Gzip,
}

impl Encoding {
    /// Its `Content-Encoding` name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Brotli => "br",
            Self::Gzip => "gzip",
        }
    }

    /// `bytes`, encoded.
    ///
    /// # Errors
    /// When the encoder fails.
    pub fn encode(self, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Self::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(bytes)?;
                e.finish()
            }
            Self::Brotli => {
                let mut out = Vec::new();
                {
                    let mut w = brotli::CompressorWriter::new(&mut out, 4096, 4, 22);
                    w.write_all(bytes)?;
                }
                Ok(out)
            }
        }
    }
}

/// The encoding `accept_encoding` prefers among the ones this server has (by `q`, `br` first
/// on a tie); `None` for identity.
pub fn choose(accept_encoding: &str) -> Option<Encoding> {
    let mut best: Option<(Encoding, f32)> = None;
    for item in accept_encoding.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default().to_ascii_lowercase();
        let q = parts
            .find_map(|p| p.strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let enc = match name.as_str() {
            "br" => Encoding::Brotli,
            "gzip" => Encoding::Gzip,
            _ => continue,
        };
        if q <= 0.0 {
            continue;
        }
        let better = match best {
            None => true,
            Some((b, bq)) => q > bq || (q == bq && enc == Encoding::Brotli && b != Encoding::Brotli),
        };
        if better {
            best = Some((enc, q));
        }
    }
    best.map(|(e, _)| e)
}

fn compressible(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    ct.starts_with("application/json")
        || ct.starts_with("application/graphql-response+json")
        || ct.starts_with("text/")
        || ct.starts_with("application/javascript")
        || ct.starts_with("image/svg+xml")
}

/// The middleware.
#[derive(Debug, Clone, Copy)]
pub struct Compress {
    /// Smaller answers are sent as they are.
    pub min_bytes: usize,
}

impl<E: Endpoint> Middleware<E> for Compress {
    type Output = CompressEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        CompressEndpoint {
            inner: ep,
            min_bytes: self.min_bytes,
        }
    }
}

/// [`Compress`] around an endpoint.
pub struct CompressEndpoint<E> {
    inner: E,
    min_bytes: usize,
}

impl<E: Endpoint> Endpoint for CompressEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Self::Output> {
        let encoding = req
            .headers()
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .and_then(choose);
        let resp = self.inner.call(req).await?.into_response();
        let Some(encoding) = encoding else { return Ok(resp) };
        let eligible = resp.status() != StatusCode::SWITCHING_PROTOCOLS
            && !resp.headers().contains_key(header::CONTENT_ENCODING)
            && resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(compressible);
        if !eligible {
            return Ok(resp);
        }
        let (mut parts, body) = resp.into_parts();
        let bytes = body.into_bytes().await?;
        parts
            .headers
            .append(header::VARY, HeaderValue::from_static("accept-encoding"));
        if bytes.len() < self.min_bytes {
            return Ok(Response::from_parts(parts, Body::from(bytes)));
        }
        let encoded = if bytes.len() > 64 * 1024 {
            tokio::task::spawn_blocking(move || encoding.encode(&bytes))
                .await
                .map_err(|e| poem::Error::new(e, StatusCode::INTERNAL_SERVER_ERROR))?
        } else {
            encoding.encode(&bytes)
        }
        .map_err(|e| poem::Error::new(e, StatusCode::INTERNAL_SERVER_ERROR))?;
        parts.headers.remove(header::CONTENT_LENGTH);
        parts
            .headers
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding.name()));
        Ok(Response::from_parts(parts, Body::from(encoded)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preferred_known_encoding_wins() {
        assert_eq!(choose("gzip, deflate, br"), Some(Encoding::Brotli));
        assert_eq!(choose("gzip"), Some(Encoding::Gzip));
        assert_eq!(choose("br;q=0.5, gzip"), Some(Encoding::Gzip));
        assert_eq!(choose("br;q=0, identity"), None);
        assert_eq!(choose("deflate"), None);
    }

    #[test]
    fn both_encodings_round_trip() {
        use std::io::Read as _;
        let text = b"{\"data\":{\"__schema\":".repeat(200);
        let gz = Encoding::Gzip.encode(&text).unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, text);
        let br = Encoding::Brotli.encode(&text).unwrap();
        let mut back = Vec::new();
        brotli::Decompressor::new(&br[..], 4096).read_to_end(&mut back).unwrap();
        assert_eq!(back, text);
        assert!(br.len() < text.len() / 10 && gz.len() < text.len() / 10);
    }
}
