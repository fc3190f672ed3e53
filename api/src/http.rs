//! `POST /graphql`: the caller's identity from `Authorization: Bearer <token>`, then the limits
//! of one request, then execution.
//!
//! Checked in this order, each before any work of the next:
//!
//! 1. the token (a header that does not verify → 401 `UNAUTHENTICATED`; no header → anonymous,
//!    which public fields accept and every other field refuses);
//! 2. the body size (`http.max_body_bytes`: 413 `PAYLOAD_TOO_LARGE`, from `Content-Length` when
//!    sent, else while reading — the body is never buffered past the limit);
//! 3. the JSON (400 `BAD_REQUEST`; bodies over 64 KiB are parsed on a blocking thread so the
//!    async workers keep answering), the batch size (`http.max_batch`, 400 `BATCH_TOO_LARGE`)
//!    and the query text size (`http.max_query_bytes`, 400 `QUERY_TOO_LARGE`);
//! 4. execution, where [`crate::graphql::limits`] checks the parsed document.

use std::sync::Arc;

use async_graphql::BatchRequest;
use async_graphql_poem::GraphQLBatchResponse;
use poem::http::{StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use serde_json::json;

use crate::auth::{AuthError, Authenticator, Identity};
use crate::graphql::AppSchema;
use crate::graphql::error::EdgeCode;

/// Limits on one HTTP request.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Largest body in bytes.
    pub max_body_bytes: usize,
    /// Largest `query` text in bytes.
    pub max_query_bytes: usize,
    /// Operations per batch (1 = batching off).
    pub max_batch: usize,
}

/// Bodies larger than this are parsed off the async workers.
const PARSE_INLINE_BYTES: usize = 64 * 1024;

/// The GraphQL endpoint.
pub struct GraphQLHttp {
    /// The schema.
    pub schema: AppSchema,
    /// Token verification.
    pub auth: Arc<Authenticator>,
    /// Request limits.
    pub limits: RequestLimits,
}

/// A response with one GraphQL error carrying `code`.
pub fn refuse(status: StatusCode, code: EdgeCode, message: impl Into<String>) -> Response {
    let body = json!({ "errors": [{ "message": message.into(), "extensions": { "code": code.code() } }] });
    let mut resp = poem::web::Json(body).with_status(status).into_response();
    if code == EdgeCode::Unauthenticated {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    }
    resp
}

/// The identity of a request's `Authorization` header.
///
/// # Errors
/// A header that does not verify (answer it with [`unauthorized`]).
pub fn identify(auth: &Authenticator, req: &Request) -> Result<Identity, AuthError> {
    let header = match req.headers().get(header::AUTHORIZATION).map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => return Err(AuthError("the Authorization header is not text".into())),
    };
    auth.authorization(header)
}

/// The 401 answer to a refused token.
pub fn unauthorized(e: AuthError) -> Response {
    refuse(StatusCode::UNAUTHORIZED, EdgeCode::Unauthenticated, e.0)
}

fn parse(body: &[u8]) -> Result<BatchRequest, String> {
    serde_json::from_slice::<BatchRequest>(body).map_err(|e| format!("the body is not a GraphQL request in JSON: {e}"))
}

impl Endpoint for GraphQLHttp {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let identity = match identify(&self.auth, &req) {
            Ok(i) => i,
            Err(e) => return Ok(unauthorized(e)),
        };
        let max = self.limits.max_body_bytes;
        let too_large = || {
            refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                EdgeCode::PayloadTooLarge,
                format!("the body may be at most {max} bytes"),
            )
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Ok(too_large());
        }
        let body = match req.take_body().into_bytes_limit(max).await {
            Ok(b) => b,
            Err(poem::error::ReadBodyError::PayloadTooLarge) => return Ok(too_large()),
            Err(e) => {
                return Ok(refuse(
                    StatusCode::BAD_REQUEST,
                    EdgeCode::BadRequest,
                    format!("reading the body: {e}"),
                ));
            }
        };
        let parsed = if body.len() > PARSE_INLINE_BYTES {
            tokio::task::spawn_blocking(move || parse(&body))
                .await
                .unwrap_or_else(|e| Err(format!("parsing the body failed: {e}")))
        } else {
            parse(&body)
        };
        let batch = match parsed {
            Ok(b) => b,
            Err(e) => return Ok(refuse(StatusCode::BAD_REQUEST, EdgeCode::BadRequest, e)),
        };
        let requests: Vec<&async_graphql::Request> = match &batch {
            BatchRequest::Single(r) => vec![r],
            BatchRequest::Batch(rs) => {
                if rs.len() > self.limits.max_batch {
                    return Ok(refuse(
                        StatusCode::BAD_REQUEST,
                        EdgeCode::BatchTooLarge,
                        if self.limits.max_batch <= 1 {
                            "batched requests are switched off (http.max_batch)".to_owned()
                        } else {
                            format!("a batch may hold at most {} operations", self.limits.max_batch)
                        },
                    ));
                }
                rs.iter().collect()
            }
        };
        if let Some(r) = requests.iter().find(|r| r.query.len() > self.limits.max_query_bytes) {
            return Ok(refuse(
                StatusCode::BAD_REQUEST,
                EdgeCode::QueryTooLarge,
                format!(
                    "the query is {} bytes; at most {} are accepted",
                    r.query.len(),
                    self.limits.max_query_bytes
                ),
            ));
        }
        let response = self.schema.execute_batch(batch.data(identity)).await;
        Ok(GraphQLBatchResponse(response).into_response())
    }
}
