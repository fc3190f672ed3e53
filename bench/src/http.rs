//! The measured path: `POST /graphql` with the `draw` mutation over keep-alive HTTP/1.1.

use std::sync::Mutex;

use anyhow::Context as _;
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use crate::env::BenchUser;
use crate::wire::response;

/// A keep-alive client for the application's `/graphql` endpoint: idle connections are kept
/// in a stack, so each concurrent client reuses one (the lean client of [`crate::wire`], so
/// the load generator's CPU stays small beside the server on the same cores).
pub(crate) struct HttpDriver {
    addr: String,
    idle: Mutex<Vec<TcpStream>>,
}

impl HttpDriver {
    /// A client for the application at `base_url` (`http://host:port`).
    pub(crate) fn new(base_url: &str) -> anyhow::Result<Self> {
        let addr = base_url
            .strip_prefix("http://")
            .context("the benchmark speaks plain http://")?
            .trim_end_matches('/')
            .to_owned();
        Ok(Self {
            addr,
            idle: Mutex::new(Vec::new()),
        })
    }

    async fn connection(&self) -> anyhow::Result<TcpStream> {
        if let Some(s) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(s);
        }
        let s = TcpStream::connect(&self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        s.set_nodelay(true)?;
        Ok(s)
    }

    /// One `draw`; succeeds when the response carries an `orderId` and no errors.
    pub(crate) async fn draw(&self, user: &BenchUser) -> anyhow::Result<()> {
        let mut stream = self.connection().await?;
        let request = format!(
            "POST /graphql HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            self.addr,
            user.token,
            user.http_body.len(),
            user.http_body
        );
        stream.write_all(request.as_bytes()).await?;
        let mut buf = Vec::with_capacity(1024);
        let body: Value = serde_json::from_slice(&response(&mut stream, &mut buf).await?)?;
        // The connection is clean after a whole response: keep it for the next draw.
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(stream);
        }
        if let Some(errors) = body.get("errors") {
            anyhow::bail!("GraphQL errors: {errors}");
        }
        if body.pointer("/data/draw/orderId").and_then(Value::as_str).is_none() {
            anyhow::bail!("no draw.orderId in {body}");
        }
        Ok(())
    }
}
