//! The OpenAI account gateway: [`QuotaGateway`] over HTTP (`openai_use_count` awards).
//!
//! `POST {api_host}/api/v1/account/adjust_quota` with the JSON body
//! `{appId, appToken, openid, increaseQuota, outBusinessNo}` and the header
//! `Idempotency-Key: <orderId>` (delivery is at least once: a gateway that honours either
//! applies a repeated call once). The gateway answers `{code, info, data}`; only code `0000`
//! with a 2xx status is a success. Any other code, any other status, a timeout or a connection
//! error is a [`PortError`], so the consumer retries with backoff (then parks the message).
//! Every call has a deadline (`timeout`, connecting included).

use std::time::Duration;

use domain::award::{QuotaGateway, QuotaIncrease};
use domain::ports::PortError;
use serde::{Deserialize, Serialize};

/// Path of the quota adjustment under the gateway's `api_host`.
pub const ADJUST_QUOTA_PATH: &str = "/api/v1/account/adjust_quota";
/// Header carrying the idempotency key (the award's order id).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// The gateway's success code.
pub const SUCCESS_CODE: &str = "0000";
/// Largest answer read (bytes); a larger one is a failure.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Where the gateway is and how to authenticate to it.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenAiGatewaySettings {
    /// Base URL, e.g. `https://gateway.example.com` (`http` or `https`).
    pub api_host: String,
    /// `appId` sent with every call.
    pub app_id: String,
    /// `appToken` sent with every call (a secret: never logged).
    pub app_token: String,
    /// Deadline of one call, connecting included.
    pub timeout: Duration,
}

impl std::fmt::Debug for OpenAiGatewaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiGatewaySettings")
            .field("api_host", &self.api_host)
            .field("app_id", &self.app_id)
            .field("app_token", &"…")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why a gateway could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum GatewayConfigError {
    /// `api_host` is not an `http` / `https` URL.
    #[error("awards.openai.api_host {0:?} is not an http(s) URL")]
    BadHost(String),
    /// The HTTP client could not be built.
    #[error("the HTTP client of the OpenAI gateway could not be built: {0}")]
    Client(#[from] reqwest::Error),
}

/// [`QuotaGateway`] calling the OpenAI account gateway.
#[derive(Clone)]
pub struct HttpQuotaGateway {
    client: reqwest::Client,
    url: reqwest::Url,
    app_id: String,
    app_token: String,
    timeout: Duration,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AdjustQuota<'a> {
    app_id: &'a str,
    app_token: &'a str,
    openid: &'a str,
    increase_quota: u32,
    out_business_no: &'a str,
}

#[derive(Deserialize)]
struct Answer {
    code: serde_json::Value,
    #[serde(default)]
    info: Option<String>,
}

impl HttpQuotaGateway {
    /// A gateway at `settings.api_host`.
    ///
    /// # Errors
    /// [`GatewayConfigError`] when `api_host` is not an http(s) URL or the client cannot be
    /// built.
    pub fn new(settings: &OpenAiGatewaySettings) -> Result<Self, GatewayConfigError> {
        let bad = || GatewayConfigError::BadHost(settings.api_host.clone());
        let base = settings.api_host.trim().trim_end_matches('/');
        let host = reqwest::Url::parse(base).map_err(|_| bad())?;
        if !matches!(host.scheme(), "http" | "https") || host.host_str().is_none_or(str::is_empty) {
            return Err(bad());
        }
        let url = reqwest::Url::parse(&format!("{base}{ADJUST_QUOTA_PATH}")).map_err(|_| bad())?;
        let timeout = settings.timeout.max(Duration::from_millis(1));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            client,
            url,
            app_id: settings.app_id.clone(),
            app_token: settings.app_token.clone(),
            timeout,
        })
    }

    /// The adjustment URL called.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    fn failure(&self, what: impl Into<String>) -> PortError {
        PortError::new(format!("openai gateway {}", self.url), what.into())
    }

    /// A transport error with its causes (never the request body, which holds the token).
    fn transport(&self, e: &reqwest::Error) -> PortError {
        if e.is_timeout() {
            return self.failure(format!("no answer within {} ms", self.timeout.as_millis()));
        }
        let mut text = kind_of(e).to_owned();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        self.failure(text)
    }
}

/// What failed, in words (the URL is in the error's context already).
fn kind_of(e: &reqwest::Error) -> &'static str {
    if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "reading the answer failed"
    } else {
        "the request failed"
    }
}

#[async_trait::async_trait]
impl QuotaGateway for HttpQuotaGateway {
    async fn adjust_quota(&self, increase: &QuotaIncrease) -> Result<(), PortError> {
        let body = AdjustQuota {
            app_id: &self.app_id,
            app_token: &self.app_token,
            openid: &increase.user_id,
            increase_quota: increase.increase,
            out_business_no: &increase.idempotency_key,
        };
        let call = async {
            let answer = self
                .client
                .post(self.url.clone())
                .header(IDEMPOTENCY_HEADER, increase.idempotency_key.as_str())
                .json(&body)
                .send()
                .await
                .map_err(|e| self.transport(&e))?;
            let status = answer.status();
            if answer.content_length().is_some_and(|n| n > MAX_ANSWER_BYTES as u64) {
                return Err(self.failure(format!("HTTP {status}, answer too large")));
            }
            let bytes = answer.bytes().await.map_err(|e| self.transport(&e))?;
            if !status.is_success() {
                return Err(self.failure(format!("HTTP {status}")));
            }
            if bytes.len() > MAX_ANSWER_BYTES {
                return Err(self.failure("answer too large"));
            }
            let answer: Answer = serde_json::from_slice(&bytes)
                .map_err(|e| self.failure(format!("the answer is not {{code, info, data}}: {e}")))?;
            let code = match &answer.code {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if code != SUCCESS_CODE {
                let info = answer.info.unwrap_or_default();
                return Err(self.failure(format!("answered code {code}: {info}")));
            }
            Ok(())
        };
        // The client's own deadline covers the call; this one bounds it whatever happens.
        match tokio::time::timeout(self.timeout + Duration::from_millis(100), call).await {
            Ok(result) => {
                if result.is_ok() {
                    tracing::info!(
                        user_id = %increase.user_id,
                        increase = increase.increase,
                        key = %increase.idempotency_key,
                        "openai use count granted"
                    );
                }
                result
            }
            Err(_) => Err(self.failure(format!("no answer within {} ms", self.timeout.as_millis()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn settings(host: &str, timeout_ms: u64) -> OpenAiGatewaySettings {
        OpenAiGatewaySettings {
            api_host: host.into(),
            app_id: "app".into(),
            app_token: "secret-token".into(),
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    fn increase() -> QuotaIncrease {
        QuotaIncrease {
            user_id: "xiaofuge".into(),
            increase: 5,
            idempotency_key: "383394500451500032".into(),
        }
    }

    /// A server answering one request with `status` and `body` after `delay`; yields the
    /// request it read.
    async fn serve_once(
        status: &'static str,
        body: &'static str,
        delay: Duration,
    ) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = format!("http://{}/", listener.local_addr().unwrap());
        let handle = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = socket.read(&mut buf).await.unwrap();
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if rest.len() >= length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            tokio::time::sleep(delay).await;
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
            String::from_utf8_lossy(&request).to_string()
        });
        (host, handle)
    }

    #[test]
    fn hosts_must_be_http_urls() {
        for bad in ["", "gateway.example.com", "ftp://gateway.example.com", "http://"] {
            assert!(
                matches!(
                    HttpQuotaGateway::new(&settings(bad, 100)),
                    Err(GatewayConfigError::BadHost(_))
                ),
                "{bad:?}"
            );
        }
        let g = HttpQuotaGateway::new(&settings("https://gateway.example.com/", 100)).unwrap();
        assert_eq!(g.url(), "https://gateway.example.com/api/v1/account/adjust_quota");
        assert!(!format!("{:?}", settings("http://x", 1)).contains("secret-token"));
    }

    #[tokio::test]
    async fn a_0000_answer_grants_and_the_call_carries_the_idempotency_key() {
        let (host, server) = serve_once("200 OK", r#"{"code":"0000","info":"ok","data":true}"#, Duration::ZERO).await;
        let gateway = HttpQuotaGateway::new(&settings(&host, 2_000)).unwrap();
        gateway.adjust_quota(&increase()).await.unwrap();
        let request = server.await.unwrap();
        assert!(
            request.starts_with("POST /api/v1/account/adjust_quota HTTP/1.1"),
            "{request}"
        );
        assert!(
            request
                .to_ascii_lowercase()
                .contains("idempotency-key: 383394500451500032"),
            "{request}"
        );
        let body: serde_json::Value = serde_json::from_str(request.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"appId": "app", "appToken": "secret-token", "openid": "xiaofuge",
                "increaseQuota": 5, "outBusinessNo": "383394500451500032"})
        );
    }

    #[tokio::test]
    async fn other_codes_statuses_timeouts_and_refused_connections_are_failures() {
        let cases = [
            (
                "200 OK",
                r#"{"code":"0001","info":"busy","data":null}"#,
                Duration::ZERO,
                "answered code 0001: busy",
            ),
            ("200 OK", r#"{"code":7}"#, Duration::ZERO, "answered code 7"),
            ("200 OK", "<html>", Duration::ZERO, "is not {code, info, data}"),
            ("502 Bad Gateway", "", Duration::ZERO, "HTTP 502"),
            (
                "200 OK",
                r#"{"code":"0000"}"#,
                Duration::from_millis(800),
                "no answer within 200 ms",
            ),
        ];
        for (status, body, delay, expected) in cases {
            let (host, _server) = serve_once(status, body, delay).await;
            let gateway = HttpQuotaGateway::new(&settings(&host, 200)).unwrap();
            let e = gateway.adjust_quota(&increase()).await.unwrap_err().to_string();
            assert!(e.contains(expected), "{e} should contain {expected}");
            assert!(!e.contains("secret-token"), "{e}");
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let gateway = HttpQuotaGateway::new(&settings(&format!("http://127.0.0.1:{port}"), 200)).unwrap();
        let e = gateway.adjust_quota(&increase()).await.unwrap_err().to_string();
        assert!(e.contains("could not connect"), "{e}");
    }
}
