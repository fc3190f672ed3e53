//! The measured path: `POST /graphql` with the `draw` mutation over keep-alive HTTP/1.1.

use anyhow::Context as _;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

use super::env::BenchUser;

/// A keep-alive client for the application's `/graphql` endpoint (one connection per
/// concurrent client, reused).
pub(crate) struct HttpDriver {
    client: reqwest::Client,
    url: String,
}

impl HttpDriver {
    /// A client for the application at `base_url`.
    pub(crate) fn new(base_url: &str) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(usize::MAX)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            client,
            url: format!("{base_url}/graphql"),
        })
    }

    /// One `draw`; succeeds when the response carries an `orderId` and no errors.
    pub(crate) async fn draw(&self, user: &BenchUser) -> anyhow::Result<()> {
        let resp = self
            .client
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .body(user.http_body.clone())
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() {
            anyhow::bail!("HTTP {status}: {body}");
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
