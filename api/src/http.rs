//! `/graphql` over HTTP, by the GraphQL over HTTP specification: the caller's identity, the
//! limits of one request, media types and status codes, then execution.
//!
//! Checked in this order, each before any work of the next:
//!
//! 1. **method**: `POST` runs anything; `GET` runs queries only (a mutation or subscription over
//!    GET is `405` with `Allow: POST`); parameters of a GET come from the query string
//!    (`query`, `operationName`, and `variables` / `extensions` as JSON text);
//! 2. **media types**: the response is `application/graphql-response+json` when the `Accept`
//!    header asks for it first, else `application/json` (also with no `Accept`, or `*/*`); an
//!    `Accept` that allows neither is `406`. A POST body must be `application/json` (UTF-8):
//!    anything else — `text/plain`, forms, no content type — is `415`, so a browser cannot send
//!    a mutation cross-site without a CORS preflight;
//! 3. **the token** (a header that does not verify → 401 `UNAUTHENTICATED`; no header →
//!    anonymous, which public fields accept and every other field refuses);
//! 4. **the body size** (`http.max_body_bytes`: 413 `PAYLOAD_TOO_LARGE`, from `Content-Length`
//!    when sent, else while reading — the body is never buffered past the limit);
//! 5. **the parameters**: the JSON (bodies over 64 KiB are parsed on a blocking thread so the
//!    async workers keep answering) must be an object — or an array when batching is on
//!    (`http.max_batch`, `BATCH_TOO_LARGE`) — whose `query` is a string (at most
//!    `http.max_query_bytes`, `QUERY_TOO_LARGE`), `operationName` a string, `variables` and
//!    `extensions` objects; anything else is 400 `BAD_REQUEST`. Instead of `query`, an
//!    operation may name a persisted document by hash (`extensions.persistedQuery`, Apollo's
//!    APQ, or `documentId`); a `query` sent with a hash must have it
//!    (`PERSISTED_QUERY_HASH_MISMATCH`, 400);
//! 6. **the document** ([`crate::graphql::persisted`]): a hash is looked up
//!    (`PERSISTED_QUERY_NOT_FOUND`, answered with `Cache-Control: private, no-cache,
//!    must-revalidate`), and with `http.trusted_documents = "enforce"` a document that is not
//!    trusted is refused (`OPERATION_NOT_TRUSTED`); a `query` sent with its hash is registered
//!    for every instance once it passed validation;
//! 7. **execution**, where [`crate::graphql::limits`] and [`crate::graphql::codes`] check and
//!    code the parsed document. Under `application/graphql-response+json`, a request that failed
//!    before execution (parse, validation, limits: [`crate::graphql::codes::is_request_error`])
//!    is `400` without a `data` entry; under `application/json` it stays `200`, as clients of
//!    that media type expect.

use std::borrow::Cow;
use std::sync::Arc;

use async_graphql::parser::types::OperationType;
use async_graphql::{BatchResponse, Variables};
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use serde_json::{Map, Value, json};

use crate::auth::{AuthError, Authenticator, Identity};
use crate::graphql::AppSchema;
use crate::graphql::codes::{is_request_error, validation_code};
use crate::graphql::documents::DocumentCache;
use crate::graphql::error::EdgeCode;
use crate::graphql::persisted::{PersistedQueries, Source};

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

/// `application/graphql-response+json`.
pub const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// The response media type a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// `application/json` (the legacy media type; request errors answer 200).
    Json,
    /// `application/graphql-response+json` (request errors answer 400).
    GraphqlResponse,
}

impl Media {
    fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json; charset=utf-8",
            Self::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
        }
    }
}

/// The first media type of `accept` this server can answer with (`None`: none of them).
pub fn negotiate(accept: Option<&str>) -> Option<Media> {
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return Some(Media::Json);
    };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let refused = parts.any(|p| p.replace(' ', "") == "q=0");
        if refused {
            continue;
        }
        match media.as_str() {
            GRAPHQL_RESPONSE_JSON => return Some(Media::GraphqlResponse),
            "application/json" | "application/*" | "*/*" => return Some(Media::Json),
            _ => {}
        }
    }
    None
}

/// An operation ready to run: the request with its parsed document, the hash to register its
/// text under once it ran (APQ), and the cached document.
type Prepared = (
    async_graphql::Request,
    Option<String>,
    Arc<crate::graphql::documents::Document>,
);

/// The GraphQL endpoint.
pub struct GraphQLHttp {
    /// The schema (built by [`crate::graphql::build_http`]: no extensions).
    pub schema: AppSchema,
    /// The same schema in async-graphql's fast validation mode (depth and complexity limits
    /// only), for documents that passed strict validation before (see
    /// [`crate::graphql::documents::Document::validated`]).
    pub fast_schema: AppSchema,
    /// Parsed, limit-checked documents by text.
    pub documents: Arc<DocumentCache>,
    /// Token verification.
    pub auth: Arc<Authenticator>,
    /// Request limits.
    pub limits: RequestLimits,
    /// Persisted documents and the trusted-documents mode.
    pub persisted: Arc<PersistedQueries>,
    /// Requests, errors and latency by operation (`None`: not counted).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// A response with one GraphQL error carrying `code`, as `application/json`.
pub fn refuse(status: StatusCode, code: EdgeCode, message: impl Into<String>) -> Response {
    refuse_as(Media::Json, status, code.code(), message)
}

fn refuse_as(media: Media, status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({ "errors": [{ "message": message.into(), "extensions": { "code": code } }] });
    let mut resp = Response::builder()
        .status(status)
        .content_type(media.content_type())
        .body(body.to_string());
    if code == EdgeCode::Unauthenticated.code() {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
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

/// One operation's parameters, checked for their JSON types, and how it names its document.
fn request_of(
    mut params: Map<String, Value>,
    max_query_bytes: usize,
) -> Result<(async_graphql::Request, Source), (EdgeCode, String)> {
    let bad = |m: &str| (EdgeCode::BadRequest, m.to_owned());
    let query = match params.remove("query") {
        Some(Value::String(q)) => Some(q),
        None | Some(Value::Null) => None,
        Some(_) => return Err(bad("`query` must be a string")),
    };
    let query_bytes = query.as_deref().map_or(0, str::len);
    if query_bytes > max_query_bytes {
        return Err((
            EdgeCode::QueryTooLarge,
            format!("the query is {query_bytes} bytes; at most {max_query_bytes} are accepted"),
        ));
    }
    let source = crate::graphql::persisted::take_source(&mut params, query.as_deref())?;
    let mut request = async_graphql::Request::new(query.unwrap_or_default());
    match params.remove("operationName") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => request = request.operation_name(name),
        Some(_) => return Err(bad("`operationName` must be a string")),
    }
    match params.remove("variables") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Object(_)) => request = request.variables(Variables::from_json(v)),
        Some(_) => return Err(bad("`variables` must be an object")),
    }
    match params.remove("extensions") {
        None | Some(Value::Null) => {}
        Some(Value::Object(ext)) => {
            for (k, v) in ext {
                if let Ok(v) = async_graphql::Value::from_json(v) {
                    request.extensions.insert(k, v);
                }
            }
        }
        Some(_) => return Err(bad("`extensions` must be an object")),
    }
    Ok((request, source))
}

/// The parameters of a GET request, from its query string (`variables` and `extensions` are
/// JSON text).
fn get_params(uri: &poem::http::Uri) -> Result<Map<String, Value>, String> {
    let mut params = Map::new();
    for (k, v) in form_pairs(uri.query().unwrap_or_default()) {
        let value = match k.as_str() {
            "variables" | "extensions" => serde_json::from_str(&v).map_err(|e| format!("`{k}` is not JSON: {e}"))?,
            _ => Value::String(v),
        };
        params.insert(k, value);
    }
    Ok(params)
}

/// `application/x-www-form-urlencoded` pairs of a query string.
fn form_pairs(query: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The type of the operation `request` would run, when its document parses.
fn operation_type(request: &mut async_graphql::Request) -> Option<OperationType> {
    let wanted = request.operation_name.clone();
    let wanted = wanted.as_deref();
    let doc = request.parsed_query().ok()?;
    doc.operations
        .iter()
        .find(|(name, _)| wanted.is_none() || name.map(|n| n.as_str()) == wanted)
        .map(|(_, op)| op.node.ty)
}

/// How logs and traces name an operation: its name, or for an anonymous one its type and root
/// fields (`mutation draw`).
fn operation_label(request: &mut async_graphql::Request) -> Cow<'_, str> {
    if request.operation_name.is_some() {
        return Cow::Borrowed(request.operation_name.as_deref().unwrap_or_default());
    }
    match request.parsed_query() {
        Ok(doc) => crate::telemetry::operation_label(None, doc),
        Err(_) => Cow::Borrowed("-"),
    }
}

fn parse_body(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice::<Value>(body).map_err(|e| format!("the body is not JSON: {e}"))
}

/// Gives every error of `resp` a code and tells whether it is a request error (nothing ran:
/// only codes of [`is_request_error`], no data). An error without a code and without a path
/// was raised before execution (validation, operation selection): it gets the code of its
/// validation message; one with a path came from a resolver: `0001`.
fn finish(resp: &mut async_graphql::Response) -> bool {
    let mut all_request_errors = true;
    for e in &mut resp.errors {
        let before_execution = e.path.is_empty();
        let ext = e.extensions.get_or_insert_with(Default::default);
        match ext.get("code") {
            Some(async_graphql::Value::String(c)) if is_request_error(c) => {}
            Some(_) => all_request_errors = false,
            None if before_execution => {
                ext.set("code", validation_code(&e.message));
            }
            None => {
                ext.set("code", "0001");
                all_request_errors = false;
            }
        }
    }
    all_request_errors && !resp.errors.is_empty() && resp.data == async_graphql::Value::Null
}

/// Is one of `resp`'s errors a persisted-query miss (not to be cached: the client registers
/// the document next)?
fn persisted_miss(resp: &async_graphql::Response) -> bool {
    let miss = EdgeCode::PersistedQueryNotFound.code();
    resp.errors.iter().any(|e| {
        e.extensions
            .as_ref()
            .and_then(|x| x.get("code"))
            .is_some_and(|c| matches!(c, async_graphql::Value::String(s) if s == miss))
    })
}

/// Did `resp` get past validation (so its document may be registered)? Errors raised before
/// execution have no path.
fn validated(resp: &async_graphql::Response) -> bool {
    resp.data != async_graphql::Value::Null || resp.errors.iter().all(|e| !e.path.is_empty())
}

/// The body of one response: serialized once; only a request error under
/// `application/graphql-response+json` goes through a JSON value, to lose its `data` entry.
fn response_body(mut resp: async_graphql::Response, media: Media) -> (String, bool) {
    let request_error = finish(&mut resp);
    if request_error && media == Media::GraphqlResponse {
        let mut json = serde_json::to_value(&resp).unwrap_or_else(|_| json!({}));
        if let Some(o) = json.as_object_mut() {
            o.remove("data");
        }
        return (json.to_string(), true);
    }
    (
        serde_json::to_string(&resp).unwrap_or_else(|_| "{}".to_owned()),
        request_error,
    )
}

impl GraphQLHttp {
    async fn answer(&self, req: Request, media: Media) -> Response {
        let refuse =
            |status: StatusCode, code: EdgeCode, message: String| refuse_as(media, status, code.code(), message);
        let identity = match identify(&self.auth, &req) {
            Ok(i) => i,
            Err(e) => return refuse(StatusCode::UNAUTHORIZED, EdgeCode::Unauthenticated, e.0),
        };
        let is_get = req.method() == Method::GET;
        let (batch, is_batch): (Vec<Map<String, Value>>, bool) = if is_get {
            match get_params(req.uri()) {
                Ok(p) => (vec![p], false),
                Err(e) => return refuse(StatusCode::BAD_REQUEST, EdgeCode::BadRequest, e),
            }
        } else {
            let content_type = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_ascii_lowercase();
            let mut parts = content_type.split(';').map(str::trim);
            let json_body = parts.next() == Some("application/json")
                && parts.all(|p| !p.starts_with("charset=") || p == "charset=utf-8" || p == "charset=\"utf-8\"");
            if !json_body {
                return refuse(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    EdgeCode::BadRequest,
                    "POST /graphql takes a body of Content-Type application/json (UTF-8)".to_owned(),
                );
            }
            match self.read_body(req).await {
                Ok(b) => b,
                Err(resp) => return resp,
            }
        };
        let mut requests = Vec::with_capacity(batch.len());
        for params in batch {
            match request_of(params, self.limits.max_query_bytes) {
                Ok((r, source)) => requests.push((r.data(identity.clone()), source)),
                Err((code, message)) => return refuse(StatusCode::BAD_REQUEST, code, message),
            }
        }
        // Each operation's text is found (a hash looked up, trust checked), then parsed and
        // checked against the limits once (then cached); a refusal answers that operation
        // without running it. `Some(hash)`: register the text under it once it ran.
        let mut prepared: Vec<Result<Prepared, async_graphql::ServerError>> = Vec::with_capacity(requests.len());
        for (mut r, source) in requests {
            let found = self.persisted.resolve(source, &mut r.query, &identity).await;
            prepared.push(found.and_then(|register| {
                let doc = self.documents.document(&r.query)?;
                r.set_parsed_query(doc.parsed());
                Ok((r, register, doc))
            }));
        }
        if is_get
            && let Some(Ok((first, ..))) = prepared.first_mut()
            && let Some(ty) = operation_type(first)
            && ty != OperationType::Query
        {
            let mut resp = refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                EdgeCode::BadRequest,
                "only queries run over GET; send mutations with POST".to_owned(),
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return resp;
        }
        let execute = |r: Result<Prepared, async_graphql::ServerError>| async move {
            let (r, register, doc) = match r {
                Ok(p) => p,
                Err(e) => return async_graphql::Response::from_errors(vec![e]),
            };
            // A document without variables that validated once validates the same again.
            if doc.validated() {
                return self.fast_schema.execute(r).await;
            }
            let text = register.is_some().then(|| r.query.clone());
            let resp = self.schema.execute(r).await;
            if validated(&resp) {
                doc.mark_validated();
                if let (Some(hash), Some(text)) = (register, text) {
                    self.persisted.register(&hash, &text).await;
                }
            }
            resp
        };
        // Counted by operation: its label is resolved before it runs (no allocation for a
        // name seen before), its errors by code once it ran.
        let run = |mut r: Result<Prepared, async_graphql::ServerError>| async move {
            let Some(metrics) = &self.metrics else {
                return execute(r).await;
            };
            let op = match r.as_mut() {
                Ok((r, ..)) => {
                    // Taken and put back: `parsed_query` borrows the request mutably.
                    let requested = r.operation_name.take();
                    let op = metrics.graphql.operation(requested.as_deref(), r.parsed_query().ok());
                    r.operation_name = requested;
                    op
                }
                Err(_) => metrics.graphql.operation(None, None),
            };
            let started = std::time::Instant::now();
            let resp = execute(r).await;
            metrics.graphql.observe(&op, started.elapsed(), &resp);
            resp
        };
        fn label(p: &mut Result<Prepared, async_graphql::ServerError>) -> Cow<'_, str> {
            p.as_mut().map_or(Cow::Borrowed("-"), |(r, ..)| operation_label(r))
        }
        // Logs and traces name the operation(s); one operation costs no allocation once named.
        let label = match prepared.as_mut_slice() {
            [one] => label(one),
            many => Cow::Owned(many.iter_mut().map(label).collect::<Vec<_>>().join(", ")),
        };
        crate::telemetry::record_operation(&label);
        let response = if !is_batch && prepared.len() == 1 {
            BatchResponse::Single(run(prepared.remove(0)).await)
        } else {
            BatchResponse::Batch(futures::future::join_all(prepared.into_iter().map(run)).await)
        };
        let mut uncacheable = false;
        let (body, status) = match response {
            BatchResponse::Single(r) => {
                uncacheable = persisted_miss(&r);
                let (body, request_error) = response_body(r, media);
                let status = if request_error && media == Media::GraphqlResponse {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::OK
                };
                (body, status)
            }
            BatchResponse::Batch(mut rs) => {
                rs.iter_mut().for_each(|r| {
                    finish(r);
                });
                (
                    serde_json::to_string(&rs).unwrap_or_else(|_| "[]".to_owned()),
                    StatusCode::OK,
                )
            }
        };
        let mut resp = Response::builder()
            .status(status)
            .content_type(media.content_type())
            .body(body);
        if uncacheable {
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-cache, must-revalidate"),
            );
        }
        resp
    }

    /// The body of a POST as operations' parameters (one, or a batch: `true`), within the
    /// limits.
    async fn read_body(&self, mut req: Request) -> Result<(Vec<Map<String, Value>>, bool), Response> {
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
            return Err(too_large());
        }
        let body = match req.take_body().into_bytes_limit(max).await {
            Ok(b) => b,
            Err(poem::error::ReadBodyError::PayloadTooLarge) => return Err(too_large()),
            Err(e) => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    EdgeCode::BadRequest,
                    format!("reading the body: {e}"),
                ));
            }
        };
        let parsed = if body.len() > PARSE_INLINE_BYTES {
            tokio::task::spawn_blocking(move || parse_body(&body))
                .await
                .unwrap_or_else(|e| Err(format!("parsing the body failed: {e}")))
        } else {
            parse_body(&body)
        };
        let bad = |m: String| refuse(StatusCode::BAD_REQUEST, EdgeCode::BadRequest, m);
        match parsed.map_err(bad)? {
            Value::Object(o) => Ok((vec![o], false)),
            Value::Array(items) => {
                if items.len() > self.limits.max_batch {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        EdgeCode::BatchTooLarge,
                        if self.limits.max_batch <= 1 {
                            "batched requests are switched off (http.max_batch)".to_owned()
                        } else {
                            format!("a batch may hold at most {} operations", self.limits.max_batch)
                        },
                    ));
                }
                let mut ops = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::Object(o) => ops.push(o),
                        _ => return Err(bad("every operation of a batch must be an object".into())),
                    }
                }
                Ok((ops, true))
            }
            _ => Err(bad("the body must be a JSON object with a `query`".into())),
        }
    }
}

impl Endpoint for GraphQLHttp {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Self::Output> {
        if req.method() != Method::GET && req.method() != Method::POST {
            let mut resp = refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                EdgeCode::BadRequest,
                "use POST (or GET for queries)",
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
            return Ok(resp);
        }
        let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
        let Some(media) = negotiate(accept) else {
            return Ok(refuse(
                StatusCode::NOT_ACCEPTABLE,
                EdgeCode::BadRequest,
                format!("answers are application/json or {GRAPHQL_RESPONSE_JSON}"),
            ));
        };
        // The request's span continues the caller's `traceparent` (or starts a trace); its
        // context is answered in `traceresponse`.
        let trace = crate::telemetry::RequestTrace::start(req.headers());
        let mut resp = trace.run(self.answer(req, media)).await.into_response();
        if let Some(value) = trace.traceresponse().and_then(|v| HeaderValue::from_str(&v).ok()) {
            resp.headers_mut().insert(crate::telemetry::TRACERESPONSE, value);
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_choose_the_first_media_type_this_server_speaks() {
        assert_eq!(negotiate(None), Some(Media::Json));
        assert_eq!(negotiate(Some("*/*")), Some(Media::Json));
        assert_eq!(negotiate(Some("application/json")), Some(Media::Json));
        assert_eq!(
            negotiate(Some("application/graphql-response+json, application/json;q=0.9")),
            Some(Media::GraphqlResponse)
        );
        assert_eq!(
            negotiate(Some("application/json, application/graphql-response+json")),
            Some(Media::Json)
        );
        assert_eq!(negotiate(Some("text/html")), None);
        assert_eq!(negotiate(Some("application/json;q=0, text/html")), None);
    }

    #[test]
    fn query_strings_decode_as_forms() {
        assert_eq!(
            form_pairs("query=%7B+__typename+%7D&operationName=&x"),
            vec![
                ("query".to_owned(), "{ __typename }".to_owned()),
                ("operationName".to_owned(), String::new()),
                ("x".to_owned(), String::new())
            ]
        );
    }
}
